/**
 * Byte-string helpers shared by every reader and writer. FDT names are byte strings;
 * they are decoded as Latin-1 (one char per byte) so any byte round-trips exactly.
 */

/** Index of the first NUL at or after `start` and before `end`, or -1. */
export function findNul(bytes: Uint8Array, start: number, end: number): number {
  const i = bytes.indexOf(0, start);
  return i < 0 || i >= end ? -1 : i;
}

/** Names up to this length are decoded through a reused argument array (see decodeLatin1). */
const SHORT_DECODE_MAX = 64;
/**
 * One reused array per short length: `String.fromCharCode.apply` on a packed array of the
 * exact length builds the string in one step, about 8x faster than appending one character
 * at a time (which makes a new string per character). The arrays never escape.
 */
const shortDecodeArgs: number[][] = [];

/** Decode `bytes[start, end)` as Latin-1. */
export function decodeLatin1(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 0) return "";
  if (n <= SHORT_DECODE_MAX) {
    let args = shortDecodeArgs[n];
    if (args === undefined) args = shortDecodeArgs[n] = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) args[i] = bytes[start + i]!;
    return String.fromCharCode.apply(null, args);
  }
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, Math.min(end, i + 4096))));
  }
  return s;
}

/** Names up to this length go through the intern table (longer ones are decoded each time). */
const INTERN_MAX_LENGTH = 48;
/** Slots of the intern table: a power of two (the slot is the top bits of a 32-bit mix). */
const INTERN_SLOT_BITS = 12;
/**
 * The intern table: one recently decoded name per slot, chosen by the name's length and three
 * of its bytes. Names repeat across nodes and across blobs ("compatible", "reg", ...), and
 * comparing a few bytes costs less than building a string; a reused string also keeps the
 * hash the engine cached in it, which makes Map lookups by name cheaper. A slot is verified
 * byte for byte before use, so a collision only costs a decode.
 */
const internTable: string[] = new Array<string>(1 << INTERN_SLOT_BITS).fill("");

/** {@link decodeLatin1}, returning the same string object for the same short name when it can. */
export function decodeLatin1Interned(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 0 || n > INTERN_MAX_LENGTH) return decodeLatin1(bytes, start, end);
  const mix =
    Math.imul(n, 0x9e3779b1) ^
    Math.imul(bytes[start]!, 0x85ebca6b) ^
    Math.imul(bytes[end - 1]!, 0xc2b2ae35) ^
    Math.imul(bytes[start + (n >> 1)]!, 0x27d4eb2f);
  const slot = mix >>> (32 - INTERN_SLOT_BITS);
  const cached = internTable[slot]!;
  if (cached.length === n) {
    let i = 0;
    while (i < n && cached.charCodeAt(i) === bytes[start + i]) i++;
    if (i === n) return cached;
  }
  const s = decodeLatin1(bytes, start, end);
  internTable[slot] = s;
  return s;
}

/** Encode a string as Latin-1 bytes; code points above 0xff are an error for the caller to report. */
export function encodeLatin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** Whether every code unit of `s` fits in a byte. */
export function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}
