// The sequential-write call list of a blob, extracted in plain JavaScript (independently of
// the codec under test, and outside any timing), exactly as bench/c/fdt_bench.c extracts it
// with libfdt: every BEGIN_NODE / PROP / END_NODE of the struct block in order, NOPs dropped,
// plus the reserve map. Only used on blobs libfdt's fdt_check_full accepted; loops are still
// bounded by the blob size.
//
// Version quirks mirrored from libfdt: before version 16 a node name is a full path and
// fdt_get_name returns the part after the last '/', and a value of 8 bytes or more whose
// struct-relative start is not 8-aligned starts 4 bytes later.

const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;

export const CALL_BEGIN_NODE = 0;
export const CALL_PROPERTY = 1;
export const CALL_END_NODE = 2;

/**
 * @typedef {object} CallList
 * @property {Uint8Array} kinds CALL_* per call
 * @property {string[]} names node or property name per call ("" for END_NODE)
 * @property {Uint8Array[]} values property value per call (views into the blob; empty otherwise)
 * @property {{ address: bigint, size: bigint }[]} reserveMap
 * @property {number} nodes
 * @property {number} props
 */

/** @param {Uint8Array} bytes @param {number} start @param {number} end */
function latin1(bytes, start, end) {
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/** @param {Uint8Array} bytes @param {number} at @param {number} limit */
function nulAt(bytes, at, limit) {
  let i = at;
  while (i < limit && bytes[i] !== 0) i++;
  if (i >= limit) throw new Error(`unterminated name at ${at}`);
  return i;
}

/**
 * @param {Uint8Array} bytes a blob libfdt accepts
 * @returns {CallList}
 */
export function extractCalls(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const totalsize = dv.getUint32(4);
  const offStruct = dv.getUint32(8);
  const offStrings = dv.getUint32(12);
  const offRsv = dv.getUint32(16);
  const version = dv.getUint32(20);
  const end = Math.min(totalsize, bytes.length);

  /** @type {{ address: bigint, size: bigint }[]} */
  const reserveMap = [];
  for (let at = offRsv; at + 16 <= end; at += 16) {
    const address = dv.getBigUint64(at);
    const size = dv.getBigUint64(at + 8);
    if (size === 0n) break; // libfdt stops at the first entry of size 0
    reserveMap.push({ address, size });
  }

  /** @type {number[]} */
  const kinds = [];
  /** @type {string[]} */
  const names = [];
  /** @type {Uint8Array[]} */
  const values = [];
  const empty = new Uint8Array(0);
  let nodes = 0;
  let props = 0;
  let off = offStruct;
  while (off + 4 <= end) {
    const tag = dv.getUint32(off);
    if (tag === FDT_END) break;
    if (tag === FDT_BEGIN_NODE) {
      const nameStart = off + 4;
      const nul = nulAt(bytes, nameStart, end);
      let leaf = nameStart;
      if (version < 16) {
        for (let i = nameStart; i < nul; i++) if (bytes[i] === 0x2f) leaf = i + 1;
      }
      kinds.push(CALL_BEGIN_NODE);
      names.push(latin1(bytes, leaf, nul));
      values.push(empty);
      nodes++;
      off = (nul + 1 + 3) & ~3;
    } else if (tag === FDT_PROP) {
      const len = dv.getUint32(off + 4);
      const nameoff = dv.getUint32(off + 8);
      let valueStart = off + 12;
      if (version < 16 && len >= 8 && (valueStart - offStruct) % 8 !== 0) valueStart += 4;
      const nameAt = offStrings + nameoff;
      kinds.push(CALL_PROPERTY);
      names.push(latin1(bytes, nameAt, nulAt(bytes, nameAt, end)));
      values.push(bytes.subarray(valueStart, valueStart + len));
      props++;
      off = (valueStart + len + 3) & ~3;
    } else if (tag === FDT_END_NODE) {
      kinds.push(CALL_END_NODE);
      names.push("");
      values.push(empty);
      off += 4;
    } else if (tag === FDT_NOP) {
      off += 4;
    } else {
      throw new Error(`unexpected tag ${tag} at ${off}`);
    }
  }
  return { kinds: Uint8Array.from(kinds), names, values, reserveMap, nodes, props };
}

/** FNV-1a 32 of the bytes (the C harness hashes its sequential-write output the same way). */
export function fnv1a32(/** @type {Uint8Array} */ bytes) {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h >>> 0;
}
