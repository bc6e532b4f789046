/**
 * `memfd-v1` (Linux 6.19 `include/linux/kho/abi/memfd.h`): the whole wire contract of this
 * handler in one place. Packed, little-endian.
 *
 * ```text
 * luo_file_ser.data = phys of memfd_luo_ser (a kho_alloc_preserve'd zeroed page)
 *
 * memfd_luo_ser, 40 bytes:
 *   off  size  field
 *   0    8     pos        u64  f_pos (re-read at freeze)
 *   8    8     size       u64  i_size
 *   16   8     nr_folios  u64  records in the folio array; 0 for an empty file
 *   24   16    folios     kho_vmalloc {u64 first, u32 total_pages, u16 flags, u16 order}
 *                              over nr_folios memfd_luo_folio_ser (see @liveupdate/memfd);
 *                              all zero when nr_folios is 0
 * folio record flags: the folio's own DIRTY (0x1) / UPTODATE (0x2) at preserve time
 *   (written 3, hole filled at preserve 2, fallocated and never written 1)
 * seals: not carried; the retrieved file is a fresh shmem file
 * ```
 */
import { KHO_VMALLOC_DESCRIPTOR_SIZE, FormatError } from "@liveupdate/kho";

/** `MEMFD_LUO_FH_COMPATIBLE` of Linux 6.19: the compatible string of this format. */
export const MEMFD_V1_COMPATIBLE = "memfd-v1";
/** Bytes of `memfd_luo_ser`. */
export const MEMFD_V1_SER_SIZE = 40;
/** Byte offset of `pos` in the record. */
export const MEMFD_V1_SER_POS_OFFSET = 0;
/** Byte offset of `size` in the record. */
export const MEMFD_V1_SER_SIZE_OFFSET = 8;
/** Byte offset of `nr_folios` in the record. */
export const MEMFD_V1_SER_NR_FOLIOS_OFFSET = 16;
/** Byte offset of `folios` (the `kho_vmalloc`) in the record. */
export const MEMFD_V1_SER_FOLIOS_OFFSET = 24;
/** More pages than `memfd_pin_folios` can pin (`unsigned int`): refused with `EFBIG`. */
export const MEMFD_V1_MAX_PAGES = 0xffff_ffff;

const FORMAT = "memfd-v1";

/** A `memfd_luo_ser` (6.19) as its fields (u64 fields as bigints: exact whatever the bytes say). */
export interface MemfdV1Ser {
  /** `pos`. */
  readonly pos: bigint;
  /** `size`. */
  readonly size: bigint;
  /** `nr_folios`. */
  readonly nrFolios: bigint;
  /** The 16 bytes of the `kho_vmalloc` (decode with kho's `decodeKhoVmalloc`). */
  readonly folios: Uint8Array;
}

/** The 40 bytes of a record (written into `into` at `offset` when given). */
export function encodeMemfdV1Ser(ser: MemfdV1Ser, into?: Uint8Array, offset = 0): Uint8Array {
  if (ser.folios.length !== KHO_VMALLOC_DESCRIPTOR_SIZE) throw new FormatError(FORMAT, offset, "blob", "folios-size", `the folios descriptor is ${ser.folios.length} bytes, not 16`);
  const out = into ?? new Uint8Array(MEMFD_V1_SER_SIZE);
  const view = new DataView(out.buffer, out.byteOffset + offset, MEMFD_V1_SER_SIZE);
  view.setBigUint64(MEMFD_V1_SER_POS_OFFSET, BigInt.asUintN(64, ser.pos), true);
  view.setBigUint64(MEMFD_V1_SER_SIZE_OFFSET, BigInt.asUintN(64, ser.size), true);
  view.setBigUint64(MEMFD_V1_SER_NR_FOLIOS_OFFSET, BigInt.asUintN(64, ser.nrFolios), true);
  out.set(ser.folios, offset + MEMFD_V1_SER_FOLIOS_OFFSET);
  return out;
}

/** Decode a record from `bytes` at `offset` (40 bytes must be there). */
export function decodeMemfdV1Ser(bytes: Uint8Array, offset = 0): MemfdV1Ser {
  if (offset < 0 || bytes.length - offset < MEMFD_V1_SER_SIZE) {
    throw new FormatError(FORMAT, offset, "blob", "ser-size", `memfd_luo_ser needs ${MEMFD_V1_SER_SIZE} bytes, ${Math.max(0, bytes.length - offset)} there`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, MEMFD_V1_SER_SIZE);
  return {
    pos: view.getBigUint64(MEMFD_V1_SER_POS_OFFSET, true),
    size: view.getBigUint64(MEMFD_V1_SER_SIZE_OFFSET, true),
    nrFolios: view.getBigUint64(MEMFD_V1_SER_NR_FOLIOS_OFFSET, true),
    folios: bytes.slice(offset + MEMFD_V1_SER_FOLIOS_OFFSET, offset + MEMFD_V1_SER_FOLIOS_OFFSET + KHO_VMALLOC_DESCRIPTOR_SIZE),
  };
}
