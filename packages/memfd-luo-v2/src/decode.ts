/**
 * The non-consuming decoder of a `memfd-v2` record: what `luo inspect` shows of a preserved
 * memfd on a live machine or in a handover image, and what the next kernel's file would
 * hold. Nothing is restored; the input is hostile (every pointer checked against the reader,
 * every count bounded by the pages actually there).
 */
import { FormatError, decodeKhoVmalloc, type KhoVmalloc, type PhysReader } from "@liveupdate/kho";
import { FolioContentsReader, MEMFD_MAX_BYTES, readFolioArray, u64Field, type FolioContentsOptions, type MemfdFolioArray } from "@liveupdate/memfd";
import { MEMFD_V2_COMPATIBLE, MEMFD_V2_SER_FOLIOS_OFFSET, MEMFD_V2_SER_NR_FOLIOS_OFFSET, MEMFD_V2_SER_POS_OFFSET, MEMFD_V2_SER_SIZE, MEMFD_V2_SER_SIZE_OFFSET, decodeMemfdV2Ser, type MemfdV2Ser } from "./abi.js";

/** A decoded `memfd-v2` record and its folio array. */
export interface MemfdV2Decoded {
  /** Where the record is (`luo_file_ser.data`). */
  readonly serPhys: number;
  /** The record's raw fields. */
  readonly ser: MemfdV2Ser;
  /** `pos`, as a number. */
  readonly pos: number;
  /** `size`, as a number. */
  readonly size: number;
  /** `seals`. */
  readonly seals: number;
  /** `flags` (0 as written by 7.2). */
  readonly flags: number;
  /** `nr_folios`, as a number. */
  readonly nrFolios: number;
  /** The folio array's `kho_vmalloc` (undefined when `nrFolios` is 0: the kernel ignores it then). */
  readonly vmalloc: KhoVmalloc | undefined;
  /** Every record of the folio array. */
  readonly folios: MemfdFolioArray;
  /** The file's contents as the next kernel's retrieved file would read them. */
  readonly contents: FolioContentsReader;
}

/**
 * Decode the `memfd-v2` record at `serPhys` in `reader` and read its folio array.
 *
 * @throws FormatError `"memfd-v2"` rules `ser-pointer` (`EINVAL`: the record is not in the
 *   reader), `pos-range` / `size-range` (`EOVERFLOW`: beyond the model's 2^52-byte files),
 *   `nr-folios` (`EINVAL`); `"kho-vmalloc"` rules (`EINVAL`) for a corrupt folio array.
 */
export function decodeMemfdV2(reader: PhysReader, serPhys: number, options: FolioContentsOptions = {}): MemfdV2Decoded {
  if (!Number.isSafeInteger(serPhys) || serPhys <= 0 || !reader.contains(serPhys, MEMFD_V2_SER_SIZE)) {
    throw new FormatError(MEMFD_V2_COMPATIBLE, Number.isSafeInteger(serPhys) ? serPhys : 0, "phys", "ser-pointer", `memfd_luo_ser at ${String(serPhys)} is not readable memory`);
  }
  const bytes = new Uint8Array(MEMFD_V2_SER_SIZE);
  reader.readInto(serPhys, bytes);
  const ser = decodeMemfdV2Ser(bytes);
  const pos = u64Field(ser.pos, MEMFD_MAX_BYTES, MEMFD_V2_COMPATIBLE, serPhys + MEMFD_V2_SER_POS_OFFSET, "pos-range", "EOVERFLOW");
  const size = u64Field(ser.size, MEMFD_MAX_BYTES, MEMFD_V2_COMPATIBLE, serPhys + MEMFD_V2_SER_SIZE_OFFSET, "size-range", "EOVERFLOW");
  const nrFolios = u64Field(ser.nrFolios, Number.MAX_SAFE_INTEGER, MEMFD_V2_COMPATIBLE, serPhys + MEMFD_V2_SER_NR_FOLIOS_OFFSET, "nr-folios", "EINVAL");
  const context = { format: MEMFD_V2_COMPATIBLE, nrFoliosAt: serPhys + MEMFD_V2_SER_NR_FOLIOS_OFFSET };
  const folios = readFolioArray(reader, serPhys + MEMFD_V2_SER_FOLIOS_OFFSET, nrFolios, context);
  return {
    serPhys,
    ser,
    pos,
    size,
    seals: ser.seals,
    flags: ser.flags,
    nrFolios,
    vmalloc: nrFolios === 0 ? undefined : decodeKhoVmalloc(ser.folios),
    folios,
    contents: new FolioContentsReader(reader, folios, size, options),
  };
}
