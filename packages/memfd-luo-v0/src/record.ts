/**
 * A `memfd-v0` record over plain data (pos, size, a folio list): writing it into preserved
 * memory in the outgoing kernel, and reclaiming it in the next one. The file handler
 * (`handler.ts`) is these functions plus the memfd model.
 *
 * Outgoing (what the posted `memfd_luo_preserve` does, with the folios in a KHO array):
 * 1. allocate the FDT's zeroed order-0 folio (`memfd_luo_create_fdt`);
 * 2. for each folio in index order: `kho_preserve_folio` with its own order, and store
 *    `pfn << 11 | flags` at its index in the KHO array;
 * 3. preserve the array's pages, write the FDT (pos, size, the array descriptor) with the
 *    sequential writer, preserve the FDT folio.
 * A failure anywhere undoes what was done: nothing stays preserved or allocated.
 *
 * Next kernel: {@link restoreMemfdV0} validates everything ({@link decodeMemfdV0} with the
 * stamps) before it reclaims the first page, then reclaims the folios (now the caller's)
 * and frees the FDT and the array's pages, as the posted retrieve puts its FDT folio.
 */
import { Fdt } from "@liveupdate/fdt-codec";
import { KernelError, PAGE_SIZE, type KhoPreserver, type KhoRestorer, type KhoStampReader, type PhysicalMemory } from "@liveupdate/kho";
import { KhoArrayBuilder } from "@liveupdate/kho-array";
import { decodeMemfdV0, type MemfdV0Record } from "./decode.js";
import type { MemfdV0FolioTable } from "./folio-table.js";
import {
  MEMFD_V0_FDT_BUFFER_SIZE,
  MEMFD_V0_FOLIO_KNOWN_FLAGS,
  MEMFD_V0_MAX_FOLIO_ORDER,
  MEMFD_V0_MAX_PAGES,
  MEMFD_V0_PROP_POS,
  MEMFD_V0_U64_SIZE,
  encodeMemfdV0Fdt,
  memfdV0FolioValue,
} from "./format.js";

const TWO_32 = 0x1_0000_0000;

/** What to preserve: a memfd's state as plain data. */
export interface MemfdV0Contents {
  /** `f_pos` (a non-negative safe integer). */
  readonly pos: number;
  /** `i_size` in bytes (at most 2^32 - 1 pages). */
  readonly size: number;
  /** The page cache, ascending by index, non-overlapping, within the file. */
  readonly folios: MemfdV0FolioTable;
}

/** A record written by {@link preserveMemfdV0}: what unpreserve and freeze need. */
export interface MemfdV0Preserved {
  /** Physical address of the FDT: `luo_file_ser.data`. */
  readonly fdtPhys: number;
  /** The KHO array of folios (its pages preserved). */
  readonly array: KhoArrayBuilder;
  /** The folios preserved (each with its own order). */
  readonly folios: MemfdV0FolioTable;
}

function checkContents(c: MemfdV0Contents): void {
  if (!Number.isSafeInteger(c.pos) || c.pos < 0) throw new KernelError("EINVAL", `pos ${c.pos} is not a file position`);
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw new KernelError("EINVAL", `size ${c.size} is not a file size`);
  const pages = Math.ceil(c.size / PAGE_SIZE);
  if (pages > MEMFD_V0_MAX_PAGES) throw new KernelError("E2BIG", `a ${c.size}-byte file has more than ${MEMFD_V0_MAX_PAGES} pages`);
  const f = c.folios;
  let prevEnd = 0;
  for (let i = 0; i < f.length; i++) {
    const index = f.index(i);
    const order = f.order(i); // a Uint8Array entry: an integer 0..255
    // The table holds doubles: an integer index in [prevEnd, pages) is a safe integer.
    const ok = order <= MEMFD_V0_MAX_FOLIO_ORDER && index >= prevEnd && index < pages && Math.floor(index) === index && index % (1 << order) === 0;
    if (!ok || (f.flags(i) & ~MEMFD_V0_FOLIO_KNOWN_FLAGS) !== 0) {
      throw new KernelError("EINVAL", `folio ${i} (order ${order} at index ${index}, flags 0x${f.flags(i).toString(16)}) is not a shmem folio in ascending, non-overlapping order within the file`);
    }
    prevEnd = index + (1 << order);
  }
}

/**
 * Write the record for `contents` into preserved memory (see the module comment).
 *
 * @throws KernelError `E2BIG` for more than 2^32 - 1 pages; `EINVAL` for bad contents or a
 *   folio KHO refuses (inside scratch, not a folio of memory); `ENOMEM`. Nothing stays
 *   preserved or allocated on failure.
 */
export function preserveMemfdV0(kho: KhoPreserver, contents: MemfdV0Contents): MemfdV0Preserved {
  checkContents(contents);
  const folios = contents.folios;
  const fdtPhys = kho.allocFolio(0);
  const array = new KhoArrayBuilder(kho);
  let preserved = 0;
  let fdtPreserved = false;
  try {
    for (let i = 0; i < folios.length; i++) {
      const pfn = folios.pfn(i);
      kho.preserveFolio(pfn * PAGE_SIZE, folios.order(i));
      preserved = i + 1;
      array.setValue(folios.index(i), memfdV0FolioValue(pfn, folios.flags(i)));
    }
    const descriptor = array.preserve();
    kho.memory.write(fdtPhys, encodeMemfdV0Fdt({ pos: contents.pos, size: contents.size, foliosDescriptor: descriptor }));
    kho.preserveFolio(fdtPhys, 0);
    fdtPreserved = true;
  } catch (error) {
    for (let i = 0; i < preserved; i++) kho.unpreserveFolio(folios.pfn(i) * PAGE_SIZE, folios.order(i));
    array.free();
    if (fdtPreserved) kho.unpreserveFolio(fdtPhys, 0);
    kho.freeFolio(fdtPhys, 0);
    throw error;
  }
  return { fdtPhys, array, folios };
}

/**
 * Freeze: write `pos` into the record's FDT in place, as `fdt_setprop` of an equal-length
 * value does (the property is looked up, its 8 bytes replaced, nothing else moves).
 *
 * @throws KernelError `EINVAL` when the FDT has no 8-byte `pos` (it was damaged).
 */
export function writeMemfdV0Pos(memory: PhysicalMemory, fdtPhys: number, pos: number): void {
  if (!Number.isSafeInteger(pos) || pos < 0) throw new KernelError("EINVAL", `pos ${pos} is not a file position`);
  const page = memory.read(fdtPhys, MEMFD_V0_FDT_BUFFER_SIZE);
  let at = -1;
  try {
    const fdt = Fdt.from(page);
    const p = fdt.root < 0 ? -1 : fdt.getProperty(fdt.root, MEMFD_V0_PROP_POS);
    if (p >= 0 && fdt.propertyLength(p) === MEMFD_V0_U64_SIZE) at = fdt.propertyValueOffset(p);
  } catch {
    at = -1;
  }
  if (at < 0) throw new KernelError("EINVAL", `the FDT at 0x${fdtPhys.toString(16)} has no 8-byte "pos"`);
  const value = new Uint8Array(MEMFD_V0_U64_SIZE);
  const view = new DataView(value.buffer);
  view.setUint32(0, pos >>> 0, true);
  view.setUint32(4, Math.floor(pos / TWO_32), true);
  memory.write(fdtPhys + at, value);
}

/** Undo {@link preserveMemfdV0}: unpreserve the folios, free the array and the FDT. */
export function unpreserveMemfdV0(kho: KhoPreserver, preserved: MemfdV0Preserved): void {
  const f = preserved.folios;
  for (let i = 0; i < f.length; i++) kho.unpreserveFolio(f.pfn(i) * PAGE_SIZE, f.order(i));
  preserved.array.free();
  kho.unpreserveFolio(preserved.fdtPhys, 0);
  kho.freeFolio(preserved.fdtPhys, 0);
}

/** The next kernel's KHO as a record restore needs it: consuming restores and readable stamps. */
export type MemfdV0Restorer = KhoRestorer & KhoStampReader;

/**
 * Retrieve: validate the record at `data` completely (every rule of {@link decodeMemfdV0},
 * every page stamped), then reclaim: the folios become the caller's (allocated, with the
 * orders in the returned table), the FDT and the array's pages are restored and freed.
 * A failure changes nothing.
 *
 * @throws FormatError as {@link decodeMemfdV0} (`ENOENT` for a missing FDT, `EINVAL` for a
 *   malformed record, `EIO` for a folio that cannot be reclaimed).
 */
export function restoreMemfdV0(kho: MemfdV0Restorer, data: number | bigint): MemfdV0Record {
  const record = decodeMemfdV0(kho.memory, data, { stamps: kho });
  reclaim(kho, record, false);
  return record;
}

/**
 * Finish of a file never retrieved: reclaim and free everything the record holds (the
 * posted `memfd_luo_discard_folios` plus putting the FDT). A record that does not validate
 * is left alone (its pages stay reserved, as the kernel leaks what it cannot read);
 * returns whether it was discarded.
 */
export function discardMemfdV0(kho: MemfdV0Restorer, data: number | bigint): boolean {
  let record: MemfdV0Record;
  try {
    record = decodeMemfdV0(kho.memory, data, { stamps: kho });
  } catch {
    return false;
  }
  reclaim(kho, record, true);
  return true;
}

function reclaim(kho: MemfdV0Restorer, record: MemfdV0Record, freeFolios: boolean): void {
  const f = record.folios;
  for (let i = 0; i < f.length; i++) {
    const phys = f.pfn(i) * PAGE_SIZE;
    if (freeFolios) kho.restoreFree(phys);
    else kho.restoreFolio(phys);
  }
  for (const page of record.arrayPages) kho.restoreFree(page);
  kho.restoreFree(record.fdtPhys);
}
