/**
 * The `memfd-v0` record: the whole wire layout in one place (like the kernel's ABI headers).
 *
 * The first posted memfd preservation format (LUO v3 series, Aug 2025). Upstream called it
 * `"memfd-v1"` too; this project names it `"memfd-v0"` so the versions can be told apart.
 * `luo_file_ser.data` is the physical address of an FDT that holds three raw little-endian
 * properties in its root node and nothing else (no `compatible`, no sub-nodes).
 *
 * ## Seed variant (what this package writes)
 *
 * The FDT is built with libfdt's **sequential-write** API, as the posted series built it
 * (`memfd_luo_create_fdt`: `fdt_create(buf, PAGE_SIZE)` on a zeroed order-0 folio,
 * `fdt_finish_reservemap`, `fdt_begin_node("")`; then `fdt_property` for each value; then
 * `fdt_end_node`, `fdt_finish`), and the folio is preserved with `kho_preserve_folio`:
 *
 * ```text
 * root property   bytes  value
 * pos             8      u64 LE f_pos (re-read and rewritten in place at freeze, as fdt_setprop
 *                        with an equal length leaves the layout alone)
 * size            8      u64 LE i_size
 * folios          16     the KHO array descriptor (abi-kho-array.md): magic "KARR", version 0,
 *                        reserved 0, u64 phys of the first array page
 *
 * KHO array entry   index = the folio's page offset in the file (its pgoff)
 *                   value = pfn << 11 | flags     (11 flag bits, so the value fits 63 bits)
 * flags             bit 0 DIRTY (holds user data), bit 1 UPTODATE (zeroed/initialised);
 *                   bits 2..10 reserved, 0
 * ```
 *
 * The folio's order is not in the record: each folio is preserved with its own order and
 * the next kernel learns it from the folio's `KHOP` stamp (`kho_restore_folio`).
 *
 * The FDT, byte for byte (164 bytes; the rest of the page is as libfdt leaves it: zeros,
 * and the strings block's first copy in the last 16 bytes, where `fdt_sw` grew it):
 *
 * ```text
 * off   size  what
 * 0     40    header: magic d00dfeed, totalsize 164, off_dt_struct 64, off_dt_strings 148,
 *             off_mem_rsvmap 48, version 17, last_comp_version 16, boot_cpuid_phys 0,
 *             size_dt_strings 16, size_dt_struct 84 (all big-endian, as FDT headers are)
 * 40    8     0 (fdt_sw puts the reserve map at 48: the header rounded up to 16)
 * 48    16    reserve map terminator
 * 64    8     BEGIN_NODE ""
 * 72    12    PROP len 8, nameoff 12 ("pos")        84   8   pos value
 * 92    12    PROP len 8, nameoff 7 ("size")        104  8   size value
 * 112   12    PROP len 16, nameoff 0 ("folios")     124  16  KHO array descriptor
 * 140   4     END_NODE
 * 144   4     END
 * 148   16    strings "folios\0size\0pos\0" (reverse order of first use, as fdt_sw leaves it)
 * ```
 *
 * ## Posted variant (read only)
 *
 * `folios` = n x 16-byte records `{u64 desc; u64 index}`, `desc = pfn << 12 | flags` (flags
 * in bits 0-11), n = length / 16, a record with desc 0 skipped. The FDT buffer is
 * `PAGE_ALIGN(16 n) + PAGE_SIZE` bytes in one folio of `get_order` of that (so at most
 * `MAX_PAGE_ORDER`: about 1 GiB of order-0 folios). It is told apart from the seed variant
 * without guessing: a seed FDT is always an order-0 folio with a 16-byte `folios` starting
 * with the `KARR` magic; a posted one with n >= 1 records is a folio of order >= 1, and
 * with n = 0 its `folios` is empty. See `decode.ts` for the rules.
 *
 * @packageDocumentation
 */
import { FdtSequentialWriter } from "@liveupdate/fdt-codec";
import { KernelError, PAGE_SIZE, getOrder } from "@liveupdate/kho";
import { KHO_ARRAY_DESCRIPTOR_SIZE } from "@liveupdate/kho-array";

/** The compatible string this handler writes and reads. */
export const MEMFD_V0_COMPATIBLE = "memfd-v0";

/** Root property: `f_pos`, a raw LE u64. */
export const MEMFD_V0_PROP_POS = "pos";
/** Root property: `i_size`, a raw LE u64. */
export const MEMFD_V0_PROP_SIZE = "size";
/** Root property: the folio list (seed: a KHO array descriptor; posted: n x 16-byte records). */
export const MEMFD_V0_PROP_FOLIOS = "folios";
/** Bytes of the `pos` and `size` values. */
export const MEMFD_V0_U64_SIZE = 8;
/** Bytes of the seed variant's `folios` value: one KHO array descriptor. */
export const MEMFD_V0_FOLIOS_DESCRIPTOR_SIZE = KHO_ARRAY_DESCRIPTOR_SIZE;

/** The buffer `fdt_create` gets for a seed-variant FDT: one page (an order-0 folio). */
export const MEMFD_V0_FDT_BUFFER_SIZE = PAGE_SIZE;
/** `totalsize` of every seed-variant FDT. */
export const MEMFD_V0_FDT_TOTALSIZE = 164;
/** Offset of the `pos` value in a seed-variant FDT (where freeze rewrites it). */
export const MEMFD_V0_POS_VALUE_OFFSET = 84;
/** Offset of the `size` value in a seed-variant FDT. */
export const MEMFD_V0_SIZE_VALUE_OFFSET = 104;
/** Offset of the `folios` value (the KHO array descriptor) in a seed-variant FDT. */
export const MEMFD_V0_FOLIOS_VALUE_OFFSET = 124;

/** Folio flag: the folio holds user data (`PRESERVED_FLAG_DIRTY`). */
export const MEMFD_V0_FOLIO_DIRTY = 0x1;
/** Folio flag: the folio has been zeroed / initialised (`PRESERVED_FLAG_UPTODATE`). */
export const MEMFD_V0_FOLIO_UPTODATE = 0x2;
/** Every flag a `memfd-v0` record may carry; any other bit is malformed. */
export const MEMFD_V0_FOLIO_KNOWN_FLAGS = MEMFD_V0_FOLIO_DIRTY | MEMFD_V0_FOLIO_UPTODATE;

/** Seed variant: flag bits below the pfn in a KHO array value (`pfn << 11 | flags`). */
export const MEMFD_V0_VALUE_FLAG_BITS = 11;
/** Posted variant: flag bits below the pfn in a record's `desc` (`pfn << 12 | flags`). */
export const MEMFD_V0_POSTED_FLAG_BITS = 12;
/** Posted variant: bytes per `{u64 desc; u64 index}` record. */
export const MEMFD_V0_POSTED_RECORD_SIZE = 16;

/** The largest folio order a shmem page cache holds on x86-64 (PMD-sized, 2 MiB). */
export const MEMFD_V0_MAX_FOLIO_ORDER = 9;

/** The most pages a memfd may have to be preserved (`memfd_pin_folios` counts in an unsigned int). */
export const MEMFD_V0_MAX_PAGES = 0xffff_ffff;

const TWO_32 = 0x1_0000_0000;
const VALUE_PFN_SCALE = 2 ** MEMFD_V0_VALUE_FLAG_BITS;
const POSTED_PFN_SCALE = 2 ** MEMFD_V0_POSTED_FLAG_BITS;

/**
 * The KHO array value of a folio: `pfn << 11 | flags`. `pfn` is a page frame number of this
 * model's memory (below 2^41), so the value is an exact number.
 */
export function memfdV0FolioValue(pfn: number, flags: number): number {
  return pfn * VALUE_PFN_SCALE + flags;
}

/** The pfn of a KHO array value given as the u32 halves of its tagged word `(value << 1) | 1`. */
export function memfdV0ValuePfn(wordLow: number, wordHigh: number): number {
  return wordHigh * 0x10_0000 + (wordLow >>> (MEMFD_V0_VALUE_FLAG_BITS + 1));
}

/** The flags of a KHO array value given as the u32 halves of its tagged word. */
export function memfdV0ValueFlags(wordLow: number): number {
  return (wordLow >>> 1) & (VALUE_PFN_SCALE - 1);
}

/** A posted record's `desc`: `pfn << 12 | flags`, as u32 halves `[low, high]`. */
export function memfdV0PostedDesc(pfn: number, flags: number): [number, number] {
  const low = ((pfn % 0x10_0000) * POSTED_PFN_SCALE + flags) >>> 0;
  return [low, Math.floor(pfn / 0x10_0000)];
}

/** The values of a seed-variant FDT. */
export interface MemfdV0FdtValues {
  /** `f_pos` (a safe integer). */
  readonly pos: number;
  /** `i_size` (a safe integer). */
  readonly size: number;
  /** The 16-byte KHO array descriptor stored in `folios`. */
  readonly foliosDescriptor: Uint8Array;
}

function u64Le(value: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, value >>> 0, true);
  view.setUint32(4, Math.floor(value / TWO_32), true);
  return out;
}

/**
 * The seed-variant FDT exactly as the posted series' calls leave their zeroed one-page
 * buffer: all {@link MEMFD_V0_FDT_BUFFER_SIZE} bytes, the blob in the first
 * {@link MEMFD_V0_FDT_TOTALSIZE} (write the whole page into the preserved folio).
 */
export function encodeMemfdV0Fdt(values: MemfdV0FdtValues): Uint8Array {
  if (values.foliosDescriptor.length !== MEMFD_V0_FOLIOS_DESCRIPTOR_SIZE) {
    throw new KernelError("EINVAL", `the folios descriptor must be ${MEMFD_V0_FOLIOS_DESCRIPTOR_SIZE} bytes, not ${values.foliosDescriptor.length}`);
  }
  const writer = new FdtSequentialWriter(MEMFD_V0_FDT_BUFFER_SIZE);
  writer.finishReservemap();
  writer.beginNode("");
  writer.property(MEMFD_V0_PROP_POS, u64Le(values.pos));
  writer.property(MEMFD_V0_PROP_SIZE, u64Le(values.size));
  writer.property(MEMFD_V0_PROP_FOLIOS, values.foliosDescriptor);
  writer.endNode();
  const blob = writer.finish();
  return new Uint8Array(blob.buffer, blob.byteOffset, MEMFD_V0_FDT_BUFFER_SIZE);
}

/** One posted-variant record (plain data, for writing test and compatibility images). */
export interface MemfdV0PostedRecord {
  readonly pfn: number;
  readonly flags: number;
  readonly index: number;
}

/** Buffer size of a posted-variant FDT holding `count` records: `PAGE_ALIGN(16 n) + PAGE_SIZE`. */
export function memfdV0PostedFdtBufferSize(count: number): number {
  return Math.ceil((count * MEMFD_V0_POSTED_RECORD_SIZE) / PAGE_SIZE) * PAGE_SIZE + PAGE_SIZE;
}

/** The folio order of a posted-variant FDT holding `count` records. */
export function memfdV0PostedFdtOrder(count: number): number {
  return getOrder(memfdV0PostedFdtBufferSize(count));
}

/**
 * A posted-variant FDT as the posted series leaves its zeroed buffer (`fdt_create` over the
 * whole folio, `pos`, `size`, then `fdt_property_placeholder("folios")` filled with the
 * records): the whole folio, `2^order` pages. The writer of this package never produces it;
 * it exists so images of the posted kernel can be made and read back.
 */
export function encodeMemfdV0PostedFdt(pos: number, size: number, records: readonly MemfdV0PostedRecord[]): Uint8Array {
  const folioBytes = PAGE_SIZE * 2 ** memfdV0PostedFdtOrder(records.length);
  const writer = new FdtSequentialWriter(folioBytes);
  writer.finishReservemap();
  writer.beginNode("");
  writer.property(MEMFD_V0_PROP_POS, u64Le(pos));
  writer.property(MEMFD_V0_PROP_SIZE, u64Le(size));
  const slot = writer.propertyPlaceholder(MEMFD_V0_PROP_FOLIOS, records.length * MEMFD_V0_POSTED_RECORD_SIZE);
  const view = new DataView(slot.buffer, slot.byteOffset, slot.length);
  records.forEach((r, i) => {
    const [low, high] = memfdV0PostedDesc(r.pfn, r.flags);
    view.setUint32(i * 16, low, true);
    view.setUint32(i * 16 + 4, high, true);
    view.setUint32(i * 16 + 8, r.index >>> 0, true);
    view.setUint32(i * 16 + 12, Math.floor(r.index / TWO_32), true);
  });
  writer.endNode();
  const blob = writer.finish();
  return new Uint8Array(blob.buffer, blob.byteOffset, folioBytes);
}
