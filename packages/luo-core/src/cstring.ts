/**
 * C strings as the kernel handles them: bytes up to a NUL, `strnlen`, `strscpy`, and the
 * byte-exact comparison of `strcmp` / `strncmp`.
 *
 * Names and compatibles are bytes on the wire. The model keeps each one as a "key": the
 * bytes mapped one to one onto UTF-16 code units (latin1), so `===` and `Map` lookups compare
 * bytes exactly, whatever the encoding. API strings are UTF-8 encoded into bytes first.
 */

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8");

/** UTF-8 bytes of `text`. */
export function utf8Bytes(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** `strnlen(bytes + off, max)`. */
export function strnlen(bytes: Uint8Array, off: number, max: number): number {
  const end = Math.min(bytes.length, off + max);
  for (let i = off; i < end; i++) if (bytes[i] === 0) return i - off;
  return end - off;
}

/** The key (one char per byte) of `bytes[off, off + len)`. */
export function bytesKey(bytes: Uint8Array, off = 0, len = bytes.length - off): string {
  let key = "";
  for (let i = off; i < off + len; i++) key += String.fromCharCode(bytes[i]!);
  return key;
}

/** The bytes of a key. */
export function keyBytes(key: string): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

/** The key of a UTF-8 API string. */
export function utf8Key(text: string): string {
  return bytesKey(utf8Bytes(text));
}

/** A key shown as text (UTF-8 decoded; invalid sequences become U+FFFD). */
export function keyText(key: string): string {
  return utf8Decoder.decode(keyBytes(key));
}

/**
 * `strscpy(dst + off, src, field)`: copy at most `field - 1` bytes of `src` (up to its first
 * NUL) and a NUL. Bytes of the field after the NUL are left as they are (as the kernel's).
 */
export function writeCString(dst: Uint8Array, off: number, field: number, src: Uint8Array): void {
  const n = strnlen(src, 0, field - 1);
  dst.set(src.subarray(0, n), off);
  dst[off + n] = 0;
}

/**
 * The string a kernel reading a `char[field]` with `strscpy(.., field)` gets: the bytes up
 * to the first NUL, at most `field - 1` of them; and whether the field held a NUL at all.
 */
export function readCString(bytes: Uint8Array, off: number, field: number): { key: string; terminated: boolean } {
  const len = strnlen(bytes, off, field);
  const terminated = len < field;
  return { key: bytesKey(bytes, off, terminated ? len : field - 1), terminated };
}
