/**
 * Byte-string helpers shared by every reader and writer. FDT names are byte strings;
 * they are decoded as Latin-1 (one char per byte) so any byte round-trips exactly.
 */

/** Index of the first NUL at or after `start` and before `end`, or -1. */
export function findNul(bytes: Uint8Array, start: number, end: number): number {
  const i = bytes.indexOf(0, start);
  return i < 0 || i >= end ? -1 : i;
}

/** Decode `bytes[start, end)` as Latin-1. */
export function decodeLatin1(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 0) return "";
  if (n <= 64) {
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!);
    return s;
  }
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, Math.min(end, i + 4096))));
  }
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
