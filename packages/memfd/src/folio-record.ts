/**
 * `struct memfd_luo_folio_ser` and the folio array both memfd formats that use it (`memfd-v1`,
 * Linux 6.19, and `memfd-v2`, Linux 7.x) keep in a `kho_vmalloc` area: the record codec,
 * preserving the array (outgoing kernel), reading it without consuming anything (next kernel
 * or an inspector on an image), validating a restore before it takes the first page, the
 * restore itself, and the cleanup of a file never retrieved. One copy, for every handler.
 *
 * ```text
 * memfd_luo_folio_ser, 16 bytes, packed, little-endian:
 *   off 0  u64  bits 0..51  pfn      (C bit-field pfn:52, x86-64 / arm64 ABI)
 *               bits 52..63 flags    MEMFD_LUO_FOLIO_DIRTY 0x1 | MEMFD_LUO_FOLIO_UPTODATE 0x2
 *   off 8  u64  index                page offset of the folio's first page in the file
 *
 * folio array: nr_folios records back to back in a vcalloc'd area (order-0 pages,
 *   ceil(nr_folios * 16 / 4096) of them), preserved with kho_preserve_vmalloc; 256 per page.
 *   A record with pfn 0 is skipped. The folio's order is not in the record: it is the order
 *   the folio was preserved with (kho_preserve_folio), i.e. the KHO map's.
 * ```
 *
 * Restore is validate-then-commit, so a failed retrieve changes nothing and the same image
 * works again with a correct handler. Errors (`FormatError` named after the handler's format,
 * offsets are physical addresses) carry the errno the kernel returns for the same record:
 *
 * | rule | record problem | errno |
 * |---|---|---|
 * | `nr-folios` | more records than the vmalloc area holds | `EINVAL` |
 * | (kho-vmalloc rules) | the area's descriptor or chunks are corrupt, or not preserved | `EINVAL` |
 * | `folio-pfn` | the pfn is not memory | `EIO` |
 * | `folio-not-preserved` | the folio carries no `KHOP` stamp | `EIO` |
 * | `folio-duplicate` / `folio-overlap` | two records share pages, or a folio covers the record, the array or its chunks | `EIO` |
 * | `folio-index` | index not aligned to the folio's order, or beyond the model's largest file | `EINVAL` |
 * | `index-overlap` | two folios claim the same page of the file | `EEXIST` |
 *
 * (When one record breaks several rules the kernel reports the first it meets while
 * restoring; here per-record rules are checked in record order first, then the ones
 * between records, so the errno can differ for such records.)
 */
import {
  FormatError,
  KernelError,
  KHO_VMALLOC_ALLOC,
  KHO_VMALLOC_DESCRIPTOR_SIZE,
  PAGE_SIZE,
  PhysicalMemory,
  preserveVmalloc,
  readVmalloc,
  restoreVmalloc,
  pagesAreStamped,
  stampReaderOf,
  unpreserveVmalloc,
  type KhoPreserver,
  type KhoRestorer,
  type KhoStampReader,
  type KhoVmallocSource,
  type Machine,
  type PhysReader,
  type VmallocArea,
  type VmallocLayout,
} from "@liveupdate/kho";
import type { MemfdFile, PinnedFolios } from "./memfd.js";
import { FOLIO_DIRTY, FOLIO_UPTODATE, MAX_FOLIO_ORDER } from "./page-cache.js";
import { MEMFD_MAX_BYTES, memfdError } from "./uapi.js";

/** Bytes of one `memfd_luo_folio_ser`. */
export const MEMFD_LUO_FOLIO_SER_SIZE = 16;
/** Records per page of the folio array. */
export const MEMFD_LUO_FOLIOS_PER_PAGE = PAGE_SIZE / MEMFD_LUO_FOLIO_SER_SIZE;
/** Width of the `pfn` bit-field. */
export const MEMFD_LUO_FOLIO_PFN_BITS = 52;
/** Width of the `flags` bit-field (above the pfn). */
export const MEMFD_LUO_FOLIO_FLAGS_BITS = 12;
/** `MEMFD_LUO_FOLIO_DIRTY`: the folio holds data from the user. */
export const MEMFD_LUO_FOLIO_DIRTY = 0x1;
/** `MEMFD_LUO_FOLIO_UPTODATE`: the folio was initialised (zeroed or written). */
export const MEMFD_LUO_FOLIO_UPTODATE = 0x2;

const TWO_32 = 0x1_0000_0000;
const PAGE_WORDS = PAGE_SIZE / 4;
const MAX_PAGES = MEMFD_MAX_BYTES / PAGE_SIZE;
const HOST_LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** One decoded `memfd_luo_folio_ser`. */
export interface MemfdFolioRecord {
  /** Page frame number (52 bits). */
  readonly pfn: number;
  /** 12 flag bits. */
  readonly flags: number;
  /** Page offset in the file (u64; exact below 2^53). */
  readonly index: number;
}

/** The 16 bytes of a record (written into `into` at `offset` when given). */
export function encodeFolioRecord(record: MemfdFolioRecord, into?: Uint8Array, offset = 0): Uint8Array {
  const { pfn, flags, index } = record;
  if (!Number.isSafeInteger(pfn) || pfn < 0 || pfn >= 2 ** MEMFD_LUO_FOLIO_PFN_BITS) throw memfdError("EINVAL", `pfn ${pfn} does not fit 52 bits`);
  if (!Number.isInteger(flags) || flags < 0 || flags >= 2 ** MEMFD_LUO_FOLIO_FLAGS_BITS) throw memfdError("EINVAL", `flags ${flags} do not fit 12 bits`);
  if (!Number.isSafeInteger(index) || index < 0) throw memfdError("EINVAL", `index ${index} is not a page offset`);
  const out = into ?? new Uint8Array(MEMFD_LUO_FOLIO_SER_SIZE);
  const view = new DataView(out.buffer, out.byteOffset + offset, MEMFD_LUO_FOLIO_SER_SIZE);
  const pfnLo = pfn >>> 0;
  view.setUint32(0, pfnLo, true);
  view.setUint32(4, (((pfn - pfnLo) / TWO_32) | (flags << 20)) >>> 0, true);
  const indexLo = index >>> 0;
  view.setUint32(8, indexLo, true);
  view.setUint32(12, (index - indexLo) / TWO_32, true);
  return out;
}

/** Decode the record at `offset` of `bytes` (16 bytes must be there). */
export function decodeFolioRecord(bytes: Uint8Array, offset = 0): MemfdFolioRecord {
  if (offset < 0 || bytes.length - offset < MEMFD_LUO_FOLIO_SER_SIZE) {
    throw new FormatError("memfd-folio", offset, "blob", "record-size", `a record needs 16 bytes, ${Math.max(0, bytes.length - offset)} there`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, MEMFD_LUO_FOLIO_SER_SIZE);
  const hi = view.getUint32(4, true);
  return {
    pfn: (hi & 0xfffff) * TWO_32 + view.getUint32(0, true),
    flags: hi >>> 20,
    index: view.getUint32(12, true) * TWO_32 + view.getUint32(8, true),
  };
}

// ---------------------------------------------------------------------------------------
// Outgoing kernel

/** A preserved folio array (`memfd_luo_preserve_folios`'s result): what unpreserve needs. */
export interface PreservedFolioArray {
  /** `nr_folios`. */
  readonly nrFolios: number;
  /** The 16-byte `kho_vmalloc` of the array (all zero when `nrFolios` is 0). */
  readonly descriptor: Uint8Array;
  /** The array's pages (undefined when `nrFolios` is 0). */
  readonly area: VmallocArea | undefined;
  /** The folios preserved, as pinned. */
  readonly folios: PinnedFolios;
}

/**
 * The preserving half of `memfd_luo_preserve_folios`, after the folios were pinned: allocate
 * the array (`vcalloc`), `kho_preserve_folio` each folio with its own order and write its
 * record (`recordFlags[i]` in the flags field), then `kho_preserve_vmalloc` the array. On any
 * failure everything done here is undone and the error rethrown (`ENOMEM`, `EINVAL`).
 */
export function preserveFolioArray(kho: KhoPreserver, folios: PinnedFolios, recordFlags: ArrayLike<number>): PreservedFolioArray {
  const n = folios.count;
  if (n === 0) return { nrFolios: 0, descriptor: new Uint8Array(KHO_VMALLOC_DESCRIPTOR_SIZE), area: undefined, folios };
  const pages = Math.ceil(n / MEMFD_LUO_FOLIOS_PER_PAGE);
  const runs = new Float64Array(pages);
  let allocated = 0;
  let preserved = 0;
  try {
    for (; allocated < pages; allocated++) runs[allocated] = kho.allocFolio(0);
    const memory = kho.memory;
    const { phys: physOf, orders, indices } = folios;
    const bulk = bulkPreserverOf(kho);
    for (let page = 0; page < pages; page++) {
      const words = pageWordsForWrite(memory, runs[page]!);
      const first = page * MEMFD_LUO_FOLIOS_PER_PAGE;
      const last = Math.min(n, first + MEMFD_LUO_FOLIOS_PER_PAGE);
      let done = false;
      try {
        // kho_preserve_folio of the page's folios, a stretch of one order per bulk call. A
        // failing stretch (which unwinds itself) is redone folio by folio, which fails at the
        // same folio with the same error, as the per-folio loop would.
        for (let g = first; g < last; ) {
          const order = orders[g]!;
          let h = g + 1;
          while (h < last && orders[h] === order) h++;
          if (bulk !== undefined) {
            try {
              bulk.preserveFolios(physOf, order, g, h);
              preserved = h;
            } catch {
              for (let i = g; i < h; i++) {
                kho.preserveFolio(physOf[i]!, order);
                preserved = i + 1;
              }
            }
          } else {
            for (let i = g; i < h; i++) {
              kho.preserveFolio(physOf[i]!, order);
              preserved = i + 1;
            }
          }
          g = h;
        }
        done = true;
      } finally {
        // The records of the folios preserved (all of the page's, unless one failed).
        for (let i = first, w = 0; i < preserved; i++, w += 4) {
          const pfn = physOf[i]! / PAGE_SIZE;
          const pfnLo = pfn >>> 0;
          const index = indices[i]!;
          const indexLo = index >>> 0;
          words[w] = pfnLo;
          words[w + 1] = (((pfn - pfnLo) / TWO_32) | ((recordFlags[i]! & 0xfff) << 20)) >>> 0;
          words[w + 2] = indexLo;
          words[w + 3] = (index - indexLo) / TWO_32;
        }
        if (done) words.flush();
      }
    }
    const area: VmallocArea = { runs, order: 0, flags: KHO_VMALLOC_ALLOC };
    const descriptor = preserveVmalloc(kho, area);
    return { nrFolios: n, descriptor, area, folios };
  } catch (error) {
    for (let i = preserved - 1; i >= 0; i--) kho.unpreserveFolio(folios.phys[i]!, folios.orders[i]!);
    for (let p = 0; p < allocated; p++) kho.freeFolio(runs[p]!, 0);
    throw error;
  }
}

/**
 * `memfd_luo_unpreserve_folios` without the unpin: `kho_unpreserve_vmalloc`, unpreserve every
 * folio, free the array's pages.
 */
export function unpreserveFolioArray(kho: KhoPreserver, preserved: PreservedFolioArray): void {
  if (preserved.nrFolios === 0 || preserved.area === undefined) return;
  unpreserveVmalloc(kho, preserved.descriptor);
  const { folios } = preserved;
  for (let i = 0; i < folios.count; i++) kho.unpreserveFolio(folios.phys[i]!, folios.orders[i]!);
  const runs = preserved.area.runs;
  for (let p = 0; p < runs.length; p++) kho.freeFolio(runs[p]!, 0);
}

/** How a kernel records each preserved folio's flags. */
export interface MemfdFolioPreservePolicy {
  /**
   * Linux 7.x: zero every folio that is not UPTODATE and mark every folio DIRTY | UPTODATE
   * before recording it (flags 3 everywhere). Linux 6.19: record the folio's own flags.
   */
  readonly markDirtyUptodate: boolean;
}

const NO_FOLIOS: PinnedFolios = { count: 0, phys: new Float64Array(0), indices: new Float64Array(0), orders: new Uint8Array(0), flags: new Uint8Array(0) };

/**
 * `memfd_luo_preserve_folios`: nothing for a file of size 0; otherwise pin every folio of
 * `[0, size)` (filling holes), apply the kernel's flag policy, and {@link preserveFolioArray}.
 * On failure the folios are unpinned again (hole folios stay allocated, as in the kernel).
 */
export function preserveMemfdFolios(file: MemfdFile, kho: KhoPreserver, policy: MemfdFolioPreservePolicy): PreservedFolioArray {
  if (file.size === 0) return { nrFolios: 0, descriptor: new Uint8Array(KHO_VMALLOC_DESCRIPTOR_SIZE), area: undefined, folios: NO_FOLIOS };
  const pinned = file.pinFolios();
  try {
    if (policy.markDirtyUptodate) file.markFoliosPreserved(pinned);
    // FOLIO_DIRTY / FOLIO_UPTODATE are the record's MEMFD_LUO_FOLIO_DIRTY / _UPTODATE bits.
    return preserveFolioArray(kho, pinned, pinned.flags);
  } catch (error) {
    file.unpinFolios();
    throw error;
  }
}

/** `memfd_luo_unpreserve_folios`: undo {@link preserveMemfdFolios} (unpreserve, free the array, unpin). */
export function unpreserveMemfdFolios(file: MemfdFile, kho: KhoPreserver, preserved: PreservedFolioArray): void {
  if (preserved.nrFolios === 0) return;
  unpreserveFolioArray(kho, preserved);
  file.unpinFolios();
}

// ---------------------------------------------------------------------------------------
// Reading (next kernel, inspectors)

/** A folio array as read (nothing consumed), struct-of-arrays. */
export interface MemfdFolioArray {
  /** `nr_folios`: records read (including pfn-0 records, which restore skips). */
  readonly count: number;
  /** Page frame number of each record (0: skipped). */
  readonly pfns: Float64Array;
  /** Flags of each record (12 bits). */
  readonly flags: Uint16Array;
  /** File page index of each record (exact below 2^53; larger values are refused by restore). */
  readonly indices: Float64Array;
  /** Where the array lives (undefined when `count` is 0). */
  readonly layout: VmallocLayout | undefined;
}

/** Where a record structure sits, for errors: the format name and the physical address of `nr_folios`. */
export interface FolioArrayContext {
  /** The handler's format name, e.g. `"memfd-v2"`. */
  readonly format: string;
  /** Physical address of the `nr_folios` field. */
  readonly nrFoliosAt: number;
}

const EMPTY_ARRAY: MemfdFolioArray = { count: 0, pfns: new Float64Array(0), flags: new Uint16Array(0), indices: new Float64Array(0), layout: undefined };

/**
 * Read `nrFolios` records from the `kho_vmalloc` area `descriptor` (its 16 bytes, decoded
 * fields, or the physical address where they are stored) without consuming anything.
 *
 * @throws FormatError `kho-vmalloc` rules (`EINVAL`) for a corrupt area; `nr-folios`
 *   (`EINVAL`) when the area holds fewer than `nrFolios` records.
 */
export function readFolioArray(reader: PhysReader, descriptor: KhoVmallocSource, nrFolios: number, context: FolioArrayContext): MemfdFolioArray {
  if (nrFolios === 0) return EMPTY_ARRAY;
  if (!Number.isSafeInteger(nrFolios) || nrFolios < 0) {
    throw new FormatError(context.format, context.nrFoliosAt, "phys", "nr-folios", `nr_folios ${String(nrFolios)} is not a count`);
  }
  const layout = readVmalloc(reader, descriptor);
  const capacity = layout.descriptor.totalPages * MEMFD_LUO_FOLIOS_PER_PAGE;
  if (nrFolios > capacity) {
    throw new FormatError(context.format, context.nrFoliosAt, "phys", "nr-folios", `nr_folios ${nrFolios} is more than the ${capacity} records the folio array's ${layout.descriptor.totalPages} pages hold`);
  }
  const pfns = new Float64Array(nrFolios);
  const flags = new Uint16Array(nrFolios);
  const indices = new Float64Array(nrFolios);
  const pages = Math.ceil(nrFolios / MEMFD_LUO_FOLIOS_PER_PAGE);
  const pagesPerRun = 2 ** layout.descriptor.order;
  const source = new PageReader(reader);
  for (let page = 0; page < pages; page++) {
    const run = Math.floor(page / pagesPerRun);
    const words = source.words(layout.runs[run]! + (page - run * pagesPerRun) * PAGE_SIZE);
    const first = page * MEMFD_LUO_FOLIOS_PER_PAGE;
    const last = Math.min(nrFolios, first + MEMFD_LUO_FOLIOS_PER_PAGE);
    for (let i = first, w = 0; i < last; i++, w += 4) {
      const hi = words[w + 1]!;
      pfns[i] = (hi & 0xfffff) * TWO_32 + words[w]!;
      flags[i] = hi >>> 20;
      indices[i] = words[w + 3]! * TWO_32 + words[w + 2]!;
    }
  }
  return { count: nrFolios, pfns, flags, indices, layout };
}

/** Physical address of record `i` of an array read by {@link readFolioArray}. */
export function folioRecordPhys(array: MemfdFolioArray, i: number): number {
  const layout = array.layout;
  if (layout === undefined) return 0;
  const byte = i * MEMFD_LUO_FOLIO_SER_SIZE;
  const runBytes = PAGE_SIZE * 2 ** layout.descriptor.order;
  const run = Math.floor(byte / runBytes);
  return layout.runs[run]! + (byte - run * runBytes);
}

// ---------------------------------------------------------------------------------------
// Restore (next kernel)

/** A validated restore ({@link planFolioRestore}): every record's folio order, from its stamp. */
export interface FolioRestorePlan {
  /** The array that was validated. */
  readonly array: MemfdFolioArray;
  /** Order of each record's folio (0 for skipped records). */
  readonly orders: Uint8Array;
}

/**
 * Check that restoring `array` cannot fail part-way, consuming nothing: every record's folio
 * is memory and preserved (its `KHOP` stamp gives its order), no two folios share a page,
 * none covers the memfd record (`recordPhys`) or the array's own pages, indices are aligned
 * to their folio's order and no two folios claim the same page of the file. Also checks the
 * array's own pages are preserved. See the module comment for the rules and errnos.
 *
 * With a restorer that cannot read stamps, the stamp checks are left to the restore itself.
 */
export function planFolioRestore(incoming: KhoRestorer, array: MemfdFolioArray, recordPhys: number, context: FolioArrayContext): FolioRestorePlan {
  const { format } = context;
  const n = array.count;
  const orders = new Uint8Array(n);
  const stamps = stampReaderOf(incoming);
  const memory = incoming.memory;
  const fail = (i: number, rule: string, message: string, errno: "EIO" | "EINVAL" | "EEXIST"): never => {
    throw new FormatError(format, folioRecordPhys(array, i), "phys", rule, `folio record ${i}: ${message}`, errno);
  };
  // The array's pages and chunks must be restorable too (kho_restore_vmalloc: EINVAL).
  const layout = array.layout;
  if (layout !== undefined && stamps !== undefined) {
    const pagesPerRun = 2 ** layout.descriptor.order;
    for (const run of layout.runs) {
      if (!pagesAreStamped(stamps, run, pagesPerRun)) throw new FormatError("kho-vmalloc", run, "phys", "not-preserved", `folio array page 0x${run.toString(16)} was not preserved`);
    }
    for (const chunk of layout.chunks) {
      if (!pagesAreStamped(stamps, chunk, 1)) throw new FormatError("kho-vmalloc", chunk, "phys", "not-preserved", `folio array chunk 0x${chunk.toString(16)} was not preserved`);
    }
  }

  // Pass 1, record by record; note whether pfns and indices come ascending (the common case).
  let physAscending = true;
  let indexAscending = true;
  let prevPfnEnd = 0;
  let prevIndexEnd = 0;
  let live = 0;
  const { pfns, indices } = array;
  const endPfn = memory.endPfn;
  for (let i = 0; i < n; i++) {
    const pfn = pfns[i]!;
    if (pfn === 0) continue;
    live++;
    let order = 0;
    if (stamps !== undefined) {
      // A stamp is only ever on a page of memory: look it up first, ask why only on failure.
      order = pfn < endPfn ? stampOrder(stamps, pfn * PAGE_SIZE) : -1;
      if (order < 0) {
        if (pfn >= endPfn || !memory.contains(pfn * PAGE_SIZE, PAGE_SIZE)) fail(i, "folio-pfn", `pfn 0x${pfn.toString(16)} is not memory`, "EIO");
        fail(i, "folio-not-preserved", `the folio at 0x${(pfn * PAGE_SIZE).toString(16)} was not preserved (or was already restored)`, "EIO");
      }
      if (order > MAX_FOLIO_ORDER) fail(i, "folio-index", `the folio at 0x${(pfn * PAGE_SIZE).toString(16)} has order ${order}, more than a file folio's ${MAX_FOLIO_ORDER}`, "EINVAL");
    } else if (pfn >= endPfn || !memory.contains(pfn * PAGE_SIZE, PAGE_SIZE)) {
      fail(i, "folio-pfn", `pfn 0x${pfn.toString(16)} is not memory`, "EIO");
    }
    orders[i] = order;
    const span = 1 << order;
    const index = indices[i]!;
    if (index % span !== 0) fail(i, "folio-index", `index ${index} is not aligned to the folio's order ${order}`, "EINVAL");
    if (index + span > MAX_PAGES) fail(i, "folio-index", `index ${index} is beyond the model's largest file`, "EINVAL");
    if (pfn < prevPfnEnd) physAscending = false;
    prevPfnEnd = pfn + span;
    if (index < prevIndexEnd) indexAscending = false;
    prevIndexEnd = index + span;
  }

  // Pass 2, between records: physical duplicates / overlaps, file-index overlaps. Records that
  // came ascending (pass 1) cannot overlap; otherwise sort `value * 16 + order` keys.
  const byPhys = physAscending && live === n ? undefined : sortedKeys(array, orders, live, physAscending, (i) => pfns[i]!);
  if (!physAscending && byPhys !== undefined) {
    for (let k = 1; k < live; k++) {
      const prev = byPhys[k - 1]!;
      const curPfn = Math.floor(byPhys[k]! / 16);
      const prevPfn = Math.floor(prev / 16);
      if (curPfn < prevPfn + (1 << prev % 16)) {
        const i = recordOf(array, curPfn, (j) => pfns[j]!);
        if (curPfn === prevPfn) fail(i, "folio-duplicate", `pfn 0x${curPfn.toString(16)} is listed twice`, "EIO");
        fail(i, "folio-overlap", `the folio at pfn 0x${curPfn.toString(16)} overlaps the one at 0x${prevPfn.toString(16)}`, "EIO");
      }
    }
  }
  if (!indexAscending) {
    const byIndex = sortedKeys(array, orders, live, false, (i) => indices[i]!);
    for (let k = 1; k < live; k++) {
      const prev = byIndex[k - 1]!;
      const curIndex = Math.floor(byIndex[k]! / 16);
      if (curIndex < Math.floor(prev / 16) + (1 << prev % 16)) {
        fail(recordOf(array, curIndex, (j) => indices[j]!), "index-overlap", `page ${curIndex} of the file is claimed by two folios`, "EEXIST");
      }
    }
  }
  // No folio may cover the memfd record or the array's own pages (they are restored separately).
  const pfnAt = (k: number): number => (byPhys === undefined ? pfns[k]! : Math.floor(byPhys[k]! / 16));
  const orderAt = (k: number): number => (byPhys === undefined ? orders[k]! : byPhys[k]! % 16);
  const reserved: number[] = [recordPhys - (recordPhys % PAGE_SIZE), PAGE_SIZE];
  if (layout !== undefined) {
    const runBytes = PAGE_SIZE * 2 ** layout.descriptor.order;
    for (const run of layout.runs) reserved.push(run, runBytes);
    for (const chunk of layout.chunks) reserved.push(chunk, PAGE_SIZE);
  }
  for (let r = 0; r < reserved.length; r += 2) {
    const start = reserved[r]!;
    const limit = (start + reserved[r + 1]!) / PAGE_SIZE;
    // The last folio starting below the end of the reserved range is the only candidate.
    let lo = 0;
    let hi = live - 1;
    let k = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (pfnAt(mid) < limit) {
        k = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (k < 0) continue;
    const pfn = pfnAt(k);
    if ((pfn + 2 ** orderAt(k)) * PAGE_SIZE > start) {
      fail(recordOf(array, pfn, (j) => pfns[j]!), "folio-overlap", `the folio at pfn 0x${pfn.toString(16)} covers page 0x${start.toString(16)} of the memfd record or its folio array`, "EIO");
    }
  }
  return { array, orders };
}

/**
 * Commit a plan from {@link planFolioRestore} into `file` (a new, empty file of the next
 * kernel `machine`): `kho_restore_vmalloc` the array, restore each folio and add it to the
 * page cache with the record's DIRTY / UPTODATE flags, free the array's pages (`vfree`).
 */
export function commitFolioRestore(machine: Machine, plan: FolioRestorePlan, file: MemfdFile): void {
  const { array } = plan;
  const layout = array.layout;
  if (layout === undefined) return;
  const restored = restoreVmalloc(machine.incoming, layout.descriptor);
  const incoming = machine.incoming;
  for (let i = 0; i < array.count; i++) {
    const pfn = array.pfns[i]!;
    if (pfn === 0) continue;
    const phys = pfn * PAGE_SIZE;
    const order = incoming.restoreFolio(phys);
    file.insertFolio(array.indices[i]!, phys, order, recordToFolioFlags(array.flags[i]!));
  }
  for (const run of restored.runs) machine.kho.freeFolio(run, restored.order);
}

/**
 * `memfd_luo_discard_folios` for a file never retrieved (`finish`): restore the array and
 * every folio it lists that is still restorable, and free them all. Best effort, as in the
 * kernel: a corrupt array discards nothing, a folio that cannot be restored is skipped.
 * Never throws for anything found in memory.
 */
export function discardFolioArray(machine: Machine, descriptor: KhoVmallocSource, nrFolios: number, context: FolioArrayContext): void {
  let array: MemfdFolioArray;
  let runs: Float64Array;
  let order: number;
  try {
    array = readFolioArray(machine.memory, descriptor, nrFolios, context);
    if (array.layout === undefined) return;
    ({ runs, order } = restoreVmalloc(machine.incoming, array.layout.descriptor));
  } catch (error) {
    if (error instanceof FormatError || error instanceof KernelError) return;
    throw error;
  }
  const incoming = machine.incoming;
  const stamps = stampReaderOf(incoming);
  for (let i = 0; i < array.count; i++) {
    const pfn = array.pfns[i]!;
    if (pfn === 0) continue;
    const phys = pfn * PAGE_SIZE;
    if (!machine.memory.contains(phys, PAGE_SIZE) || (stamps !== undefined && stampOrder(stamps, phys) < 0)) continue;
    const folioOrder = incoming.restoreFolio(phys);
    machine.kho.freeFolio(phys, folioOrder);
  }
  for (const run of runs) machine.kho.freeFolio(run, order);
}

/** The page-cache flags a record's flags give (`MEMFD_LUO_FOLIO_*` -> `FOLIO_*`). */
export function recordToFolioFlags(recordFlags: number): number {
  return ((recordFlags & MEMFD_LUO_FOLIO_DIRTY) !== 0 ? FOLIO_DIRTY : 0) | ((recordFlags & MEMFD_LUO_FOLIO_UPTODATE) !== 0 ? FOLIO_UPTODATE : 0);
}

/** The record flags a page-cache folio's flags give (`FOLIO_*` -> `MEMFD_LUO_FOLIO_*`). */
export function folioToRecordFlags(folioFlags: number): number {
  return ((folioFlags & FOLIO_DIRTY) !== 0 ? MEMFD_LUO_FOLIO_DIRTY : 0) | ((folioFlags & FOLIO_UPTODATE) !== 0 ? MEMFD_LUO_FOLIO_UPTODATE : 0);
}

// ---------------------------------------------------------------------------------------
// The record around the array (shared by the handlers' retrieve and finish)

/**
 * `luo_file_ser.data` as the physical address of a handler's record in the next kernel:
 * defined when it is a safe integer whose page carries a `KHOP` stamp (it was preserved and
 * not yet restored) and `size` bytes there are memory; `undefined` otherwise.
 */
export function incomingRecordPhys(machine: Machine, data: bigint, size: number): number | undefined {
  if (data <= 0n || data > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const phys = Number(data);
  if (!machine.memory.contains(phys, size)) return undefined;
  const stamps = stampReaderOf(machine.incoming);
  return stamps === undefined || stampOrder(stamps, phys) >= 0 ? phys : undefined;
}

/**
 * A u64 record field as a number no larger than `max`.
 * @throws FormatError (`format`, at `at`, `rule`, `errno`) when it is larger.
 */
export function u64Field(value: bigint, max: number, format: string, at: number, rule: string, errno: "EINVAL" | "EOVERFLOW"): number {
  if (value > BigInt(max)) throw new FormatError(format, at, "phys", rule, `${rule.replace(/-range$/, "")} ${value} is larger than ${max}`, errno);
  return Number(value);
}

// ---------------------------------------------------------------------------------------
// Contents (inspectors)

/** Options of {@link FolioContentsReader}. */
export interface FolioContentsOptions {
  /**
   * The order each record's folio was preserved with (from the KHO map, e.g. a radix walk of
   * the image); without it a folio is taken to reach the next record's index (at most
   * 2^9 pages, and no further than its alignment allows), which is exact for arrays without
   * holes (every 6.19 / 7.x array).
   */
  readonly orderOf?: (phys: number) => number | undefined;
}

/**
 * A memfd's contents as the next kernel's file would read them, straight from a folio array
 * in any `PhysReader` (a machine's memory, an image): holes and folios without UPTODATE read
 * as zeros. Nothing is consumed.
 */
export class FolioContentsReader {
  /** File size in bytes. */
  readonly size: number;
  readonly #reader: PhysReader;
  /** Extents ascending by index: first page, page count, pfn, uptodate. */
  readonly #index: Float64Array;
  readonly #pages: Float64Array;
  readonly #pfn: Float64Array;
  readonly #uptodate: Uint8Array;

  constructor(reader: PhysReader, array: MemfdFolioArray, size: number, options: FolioContentsOptions = {}) {
    if (!Number.isSafeInteger(size) || size < 0) throw memfdError("EINVAL", `size ${size} is not a byte count`);
    this.size = size;
    this.#reader = reader;
    // The live records by index: in array order when they come ascending (every kernel writes
    // them so), else a sorted permutation.
    let live = 0;
    let ascending = true;
    let previous = -1;
    for (let i = 0; i < array.count; i++) {
      if (array.pfns[i] === 0) continue;
      const index = array.indices[i]!;
      if (index < previous) ascending = false;
      previous = index;
      live++;
    }
    const order = new Uint32Array(live);
    for (let i = 0, k = 0; i < array.count; i++) if (array.pfns[i] !== 0) order[k++] = i;
    if (!ascending) order.sort((a, b) => array.indices[a]! - array.indices[b]!);
    this.#index = new Float64Array(live);
    this.#pages = new Float64Array(live);
    this.#pfn = new Float64Array(live);
    this.#uptodate = new Uint8Array(live);
    for (let k = 0; k < live; k++) {
      const i = order[k]!;
      const index = array.indices[i]!;
      const pfn = array.pfns[i]!;
      const known = options.orderOf?.(pfn * PAGE_SIZE);
      let pages: number;
      if (known !== undefined) {
        pages = 2 ** known;
      } else {
        let align = MAX_FOLIO_ORDER;
        while (align > 0 && index % 2 ** align !== 0) align--;
        const next = k + 1 < live ? array.indices[order[k + 1]!]! : Infinity;
        pages = Math.max(1, Math.min(2 ** align, next - index));
      }
      this.#index[k] = index;
      this.#pages[k] = pages;
      this.#pfn[k] = pfn;
      this.#uptodate[k] = (array.flags[i]! & MEMFD_LUO_FOLIO_UPTODATE) !== 0 ? 1 : 0;
    }
  }

  /** Copy `dst.length` bytes at `offset` (within the size) into `dst`. */
  readInto(offset: number, dst: Uint8Array): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + dst.length > this.size) {
      throw memfdError("EINVAL", `[${offset}, +${dst.length}) is outside the file's ${this.size} bytes`);
    }
    dst.fill(0);
    let done = 0;
    let k = -1;
    while (done < dst.length) {
      const at = offset + done;
      const page = Math.floor(at / PAGE_SIZE);
      if (k < 0 || !(page >= this.#index[k]! && page < this.#index[k]! + this.#pages[k]!)) k = this.#extentOf(page);
      const inPage = at - page * PAGE_SIZE;
      if (k < 0) {
        done += Math.min(PAGE_SIZE - inPage, dst.length - done);
        continue;
      }
      const extentEnd = (this.#index[k]! + this.#pages[k]!) * PAGE_SIZE;
      const n = Math.min(extentEnd - at, dst.length - done);
      if (this.#uptodate[k] === 1) {
        const phys = this.#pfn[k]! * PAGE_SIZE + (at - this.#index[k]! * PAGE_SIZE);
        this.#reader.readInto(phys, dst.subarray(done, done + n));
      }
      done += n;
    }
  }

  /** `length` bytes at `offset` in a new array. */
  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.readInto(offset, out);
    return out;
  }

  /** The extent holding `page`, or -1. */
  #extentOf(page: number): number {
    let lo = 0;
    let hi = this.#index.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#index[mid]! <= page) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && page < this.#index[found]! + this.#pages[found]! ? found : -1;
  }
}

// ---------------------------------------------------------------------------------------
// helpers

/** A preserver with `preserveFolios` (`KhoOutgoing`): many `kho_preserve_folio` of one order, unwound on failure. */
interface BulkPreserver {
  preserveFolios(physList: ArrayLike<number>, order: number, from?: number, to?: number): void;
}

function bulkPreserverOf(kho: KhoPreserver): BulkPreserver | undefined {
  const candidate = kho as KhoPreserver & Partial<BulkPreserver>;
  return typeof candidate.preserveFolios === "function" ? (candidate as KhoPreserver & BulkPreserver) : undefined;
}

/** The order of the stamp at `phys`, -1 for none (allocation-free when the reader has `stampOrderOf`). */
function stampOrder(stamps: KhoStampReader, phys: number): number {
  return stamps.stampOrderOf !== undefined ? stamps.stampOrderOf(phys) : (stamps.stampOf(phys)?.order ?? -1);
}

/**
 * u32 words of a page about to be written: a view of the page itself on little-endian hosts
 * (`flush` does nothing), else a scratch array that `flush` stores little-endian.
 */
type PageWords = Uint32Array & { flush(): void };

function pageWordsForWrite(memory: PhysicalMemory, phys: number): PageWords {
  const page = memory.pageForWrite(phys / PAGE_SIZE);
  if (HOST_LITTLE_ENDIAN && page.byteOffset % 4 === 0) {
    return Object.assign(new Uint32Array(page.buffer, page.byteOffset, PAGE_WORDS), { flush: (): void => undefined });
  }
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  const words = new Uint32Array(PAGE_WORDS);
  for (let i = 0; i < PAGE_WORDS; i++) words[i] = view.getUint32(i * 4, true);
  return Object.assign(words, {
    flush: (): void => {
      for (let i = 0; i < PAGE_WORDS; i++) view.setUint32(i * 4, words[i]!, true);
    },
  });
}

/** Pages of a reader as little-endian u32 words (zero-copy for a machine's memory on LE hosts). */
class PageReader {
  readonly #reader: PhysReader;
  readonly #memory: PhysicalMemory | undefined;
  readonly #buffer = new Uint8Array(PAGE_SIZE);
  readonly #scratch = new Uint32Array(PAGE_WORDS);

  constructor(reader: PhysReader) {
    this.#reader = reader;
    this.#memory = reader instanceof PhysicalMemory ? reader : undefined;
  }

  words(phys: number): Uint32Array {
    const page = this.#memory !== undefined ? this.#memory.readPage(phys / PAGE_SIZE) : this.#readCopy(phys);
    if (HOST_LITTLE_ENDIAN && page.byteOffset % 4 === 0) return new Uint32Array(page.buffer, page.byteOffset, PAGE_WORDS);
    const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
    for (let i = 0; i < PAGE_WORDS; i++) this.#scratch[i] = view.getUint32(i * 4, true);
    return this.#scratch;
  }

  #readCopy(phys: number): Uint8Array {
    this.#reader.readInto(phys, this.#buffer);
    return this.#buffer;
  }
}

/**
 * Keys `value * 16 + order` of the live records, ascending by value: the records in array
 * order when they are known to be ascending, else a sorted copy.
 */
function sortedKeys(array: MemfdFolioArray, orders: Uint8Array, live: number, ascending: boolean, valueOf: (i: number) => number): Float64Array {
  const keys = new Float64Array(live);
  for (let i = 0, k = 0; i < array.count; i++) {
    if (array.pfns[i] === 0) continue;
    keys[k++] = valueOf(i) * 16 + orders[i]!;
  }
  if (!ascending) keys.sort();
  return keys;
}

/** The last record (in array order) whose value is `value`: where an error is reported. */
function recordOf(array: MemfdFolioArray, value: number, valueOf: (i: number) => number): number {
  for (let i = array.count - 1; i >= 0; i--) if (array.pfns[i] !== 0 && valueOf(i) === value) return i;
  return 0;
}
