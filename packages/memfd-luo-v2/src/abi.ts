/**
 * `memfd-v2` (Linux 7.x `include/linux/kho/abi/memfd.h`): the whole wire contract of this
 * handler in one place. Packed, little-endian.
 *
 * ```text
 * luo_file_ser.data = phys of memfd_luo_ser (a kho_alloc_preserve'd zeroed page)
 *
 * memfd_luo_ser, 48 bytes:
 *   off  size  field
 *   0    8     pos        u64  f_pos (re-read at freeze)
 *   8    8     size       u64  i_size
 *   16   4     seals      u32  F_SEAL_*: only MEMFD_LUO_ALL_SEALS (0x3f) may be set
 *   20   4     flags      u32  unused, 0 (7.2 neither sets nor checks it)
 *   24   8     nr_folios  u64  records in the folio array; 0 for an empty file
 *   32   16    folios     kho_vmalloc {u64 first, u32 total_pages, u16 flags, u16 order}
 *                              over nr_folios memfd_luo_folio_ser (see @liveupdate/memfd);
 *                              all zero when nr_folios is 0
 * every folio record: flags = DIRTY | UPTODATE (3); holes were filled at preserve time
 * ```
 */
import { KHO_VMALLOC_DESCRIPTOR_SIZE, FormatError } from "@liveupdate/kho";
import { F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE } from "@liveupdate/memfd";

/** `MEMFD_LUO_FH_COMPATIBLE`: the compatible string of this format. */
export const MEMFD_V2_COMPATIBLE = "memfd-v2";
/** Bytes of `memfd_luo_ser`. */
export const MEMFD_V2_SER_SIZE = 48;
/** Byte offset of `pos` in the record. */
export const MEMFD_V2_SER_POS_OFFSET = 0;
/** Byte offset of `size` in the record. */
export const MEMFD_V2_SER_SIZE_OFFSET = 8;
/** Byte offset of `seals` in the record. */
export const MEMFD_V2_SER_SEALS_OFFSET = 16;
/** Byte offset of `flags` in the record. */
export const MEMFD_V2_SER_FLAGS_OFFSET = 20;
/** Byte offset of `nr_folios` in the record. */
export const MEMFD_V2_SER_NR_FOLIOS_OFFSET = 24;
/** Byte offset of `folios` (the `kho_vmalloc`) in the record. */
export const MEMFD_V2_SER_FOLIOS_OFFSET = 32;
/** `MEMFD_LUO_ALL_SEALS`: the seals this version carries. */
export const MEMFD_V2_ALL_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;
/** `memfd_pin_folios` caps at `UINT_MAX` folios: a larger file is `EFBIG`. */
export const MEMFD_V2_MAX_PAGES = 0xffff_ffff;

const FORMAT = "memfd-v2";

/** A `memfd_luo_ser` as its fields (u64 fields as bigints: exact whatever the bytes say). */
export interface MemfdV2Ser {
  /** `pos`. */
  readonly pos: bigint;
  /** `size`. */
  readonly size: bigint;
  /** `seals` (u32). */
  readonly seals: number;
  /** `flags` (u32). */
  readonly flags: number;
  /** `nr_folios`. */
  readonly nrFolios: bigint;
  /** The 16 bytes of the `kho_vmalloc` (decode with kho's `decodeKhoVmalloc`). */
  readonly folios: Uint8Array;
}

/** The 48 bytes of a record (written into `into` at `offset` when given). */
export function encodeMemfdV2Ser(ser: MemfdV2Ser, into?: Uint8Array, offset = 0): Uint8Array {
  if (ser.folios.length !== KHO_VMALLOC_DESCRIPTOR_SIZE) throw new FormatError(FORMAT, offset, "blob", "folios-size", `the folios descriptor is ${ser.folios.length} bytes, not 16`);
  const out = into ?? new Uint8Array(MEMFD_V2_SER_SIZE);
  const view = new DataView(out.buffer, out.byteOffset + offset, MEMFD_V2_SER_SIZE);
  view.setBigUint64(MEMFD_V2_SER_POS_OFFSET, BigInt.asUintN(64, ser.pos), true);
  view.setBigUint64(MEMFD_V2_SER_SIZE_OFFSET, BigInt.asUintN(64, ser.size), true);
  view.setUint32(MEMFD_V2_SER_SEALS_OFFSET, ser.seals >>> 0, true);
  view.setUint32(MEMFD_V2_SER_FLAGS_OFFSET, ser.flags >>> 0, true);
  view.setBigUint64(MEMFD_V2_SER_NR_FOLIOS_OFFSET, BigInt.asUintN(64, ser.nrFolios), true);
  out.set(ser.folios, offset + MEMFD_V2_SER_FOLIOS_OFFSET);
  return out;
}

/** Decode a record from `bytes` at `offset` (48 bytes must be there). */
export function decodeMemfdV2Ser(bytes: Uint8Array, offset = 0): MemfdV2Ser {
  if (offset < 0 || bytes.length - offset < MEMFD_V2_SER_SIZE) {
    throw new FormatError(FORMAT, offset, "blob", "ser-size", `memfd_luo_ser needs ${MEMFD_V2_SER_SIZE} bytes, ${Math.max(0, bytes.length - offset)} there`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, MEMFD_V2_SER_SIZE);
  return {
    pos: view.getBigUint64(MEMFD_V2_SER_POS_OFFSET, true),
    size: view.getBigUint64(MEMFD_V2_SER_SIZE_OFFSET, true),
    seals: view.getUint32(MEMFD_V2_SER_SEALS_OFFSET, true),
    flags: view.getUint32(MEMFD_V2_SER_FLAGS_OFFSET, true),
    nrFolios: view.getBigUint64(MEMFD_V2_SER_NR_FOLIOS_OFFSET, true),
    folios: bytes.slice(offset + MEMFD_V2_SER_FOLIOS_OFFSET, offset + MEMFD_V2_SER_FOLIOS_OFFSET + KHO_VMALLOC_DESCRIPTOR_SIZE),
  };
}
