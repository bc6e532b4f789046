/**
 * The next kernel's side of KHO: what it finds at boot and what subsystems restore from it.
 *
 * Boot (`kho_populate` + `kho_memory_init`), in the constructor, never throwing:
 * 1. the root FDT the previous kernel handed over must pass `fdt_check_header`, have a root
 *    compatible with `"kho-v4"` and an 8-byte, non-zero `preserved-memory-map`;
 * 2. the map is walked ({@link walkRadixMap}, hostile-input checked) and the head page of
 *    every run is stamped `{order, KHOP}`: in a side table, as the kernel keeps it in
 *    `struct page->private`, never in the page's contents.
 * Any failure disables revival: nothing is stamped, every {@link KhoIncoming.retrieveSubtree}
 * is `ENOENT`, and the reason is kept ({@link KhoIncoming.disabledReason}). A half-done walk
 * stamps nothing (the stamps are committed only once the whole map has been read).
 *
 * Restore (`kho_restore_folio` / `kho_restore_pages`): the head page must carry the stamp
 * (and, for pages, the order the split gives); the stamp is cleared, so a run is restored
 * at most once, and the pages go to the caller through the machine's allocator. A failed
 * restore changes nothing.
 */
import { KHO_FDT_SIZE, KHO_KEXEC_METADATA_NAME, KHO_KEXEC_METADATA_SIZE, KHO_PAGE_MAGIC, PAGE_SHIFT, PAGE_SIZE } from "./abi.js";
import { FormatError, KernelError } from "./errors.js";
import { decodeKexecMetadata } from "./kexec-metadata.js";
import { checkKhoRootFdt, listKhoSubtrees, retrieveKhoSubtree, type KhoSubtree } from "./kho-root-fdt.js";
import type { PhysicalMemory } from "./memory.js";
import { INV_POW2, MemoryRangeCache, POW2, alignedRunOrder, floorLog2, type PageAllocator } from "./page-allocator.js";
import { NumberList, PfnRunList, stretchLength } from "./pfn-runs.js";
import { MAX_RUN_ORDER, walkRadixMapSegments, type RadixNodePage } from "./radix-map.js";
import type { KhoRestorer, PreservedRun } from "./types.js";

/** What kexec hands the next kernel (x86 `kho_data` without the scratch part). */
export interface KhoHandover {
  /** Physical address of the previous kernel's root FDT. */
  readonly fdtPhys: number;
  /** Its mapping size (`fdt_size`; one page). */
  readonly fdtSize?: number;
}

/** How the incoming side came up. */
export type KhoIncomingState = "cold" | "revived" | "disabled";

/** The stamp on the head page of a preserved run (`union kho_page_info` in `page->private`). */
export interface KhoPageStamp {
  readonly order: number;
  /** Always `KHO_PAGE_MAGIC` ("KHOP") while stamped. */
  readonly magic: number;
}

const MAX_FDT_SIZE = 0x7fffffff;
/** Multiplying a page-aligned address by it gives its pfn exactly. */
const INVERSE_PAGE_SIZE = 1 / PAGE_SIZE;

/**
 * The `KHOP` stamps, as stretches of adjacent runs of one order: stretch `s` is `counts[s]`
 * runs of `2^orders[s]` pages from head pfn `starts[s]`, stretches ascending and their heads
 * disjoint (no head of one lies within another's heads). Runs are numbered in address order
 * (`firsts[s]` is the number of stretch `s`'s first run) and `cleared` holds, per run, whether
 * a restore consumed its stamp. A million adjacent pages preserved one by one are one
 * stretch; a lookup is a binary search over stretches that starts from the last one found,
 * so lookups in address order cost O(1).
 */
class StampTable {
  readonly starts: Float64Array;
  readonly orders: Uint8Array;
  readonly counts: Float64Array;
  readonly firsts: Float64Array;
  readonly cleared: Uint8Array;
  readonly #clearedWords: Uint32Array;
  /** The stretch of the last run {@link StampTable.find} found. */
  found = 0;

  constructor(starts: Float64Array, orders: Uint8Array, counts: Float64Array) {
    this.starts = starts;
    this.orders = orders;
    this.counts = counts;
    this.firsts = new Float64Array(starts.length);
    let total = 0;
    for (let s = 0; s < starts.length; s++) {
      this.firsts[s] = total;
      total += counts[s]!;
    }
    // Whole u32 words of it, for scans (its buffer is its own: offset 0).
    this.cleared = new Uint8Array(total);
    this.#clearedWords = new Uint32Array(this.cleared.buffer, 0, total >>> 2);
  }

  get runCount(): number {
    return this.cleared.length;
  }

  /** Number of the run whose head is page `pfn` (its stretch in `found`), or -1. */
  find(pfn: number): number {
    const starts = this.starts;
    const n = starts.length;
    let s = this.found;
    // The last stretch found, or the next one (lookups in address order), else a search.
    if (!(s < n && starts[s]! <= pfn && (s + 1 === n || starts[s + 1]! > pfn))) {
      s++;
      if (!(s < n && starts[s]! <= pfn && (s + 1 === n || starts[s + 1]! > pfn))) {
        // The last stretch starting at or below pfn (none: -1).
        let lo = 0;
        let hi = n - 1;
        s = -1;
        while (lo <= hi) {
          const mid = (lo + hi) >>> 1;
          if (starts[mid]! <= pfn) {
            s = mid;
            lo = mid + 1;
          } else hi = mid - 1;
        }
        if (s < 0) return -1;
      }
    }
    this.found = s;
    const index = (pfn - starts[s]!) * INV_POW2[this.orders[s]!]!;
    if (index >= this.counts[s]! || Math.floor(index) !== index) return -1;
    return this.firsts[s]! + index;
  }

  /** The first run in `[from, to)` whose stamp is cleared or marked (non-zero), else `to`. */
  firstTaken(from: number, to: number): number {
    const cleared = this.cleared;
    let i = from;
    while (i < to && (i & 3) !== 0) {
      if (cleared[i] !== 0) return i;
      i++;
    }
    // Four runs at a time.
    const words = this.#clearedWords;
    for (let w = i >>> 2; i + 4 <= to; w++, i += 4) if (words[w] !== 0) break;
    for (; i < to; i++) if (cleared[i] !== 0) return i;
    return to;
  }

  /** Runs from `run` (found by the last {@link StampTable.find}) to the end of its stretch. */
  runsFrom(run: number): number {
    return this.firsts[this.found]! + this.counts[this.found]! - run;
  }
}

const EMPTY_TABLE = new StampTable(new Float64Array(0), new Uint8Array(0), new Float64Array(0));

/** The stretches a map walk reported, in walk order (appended, grown as needed). */
class StretchList {
  starts = new Float64Array(64);
  orders = new Uint8Array(64);
  counts = new Float64Array(64);
  length = 0;

  push(pfn: number, order: number, count: number): void {
    if (this.length === this.starts.length) {
      const size = this.length * 4;
      const starts = new Float64Array(size);
      starts.set(this.starts);
      this.starts = starts;
      const orders = new Uint8Array(size);
      orders.set(this.orders);
      this.orders = orders;
      const counts = new Float64Array(size);
      counts.set(this.counts);
      this.counts = counts;
    }
    this.starts[this.length] = pfn;
    this.orders[this.length] = order;
    this.counts[this.length++] = count;
  }
}

/** Whether stretches `order` (indices) are ascending with disjoint heads. */
function headsDisjoint(list: StretchList, order: ArrayLike<number> | undefined): boolean {
  let lastHead = -1;
  for (let k = 0; k < list.length; k++) {
    const s = order === undefined ? k : order[k]!;
    const start = list.starts[s]!;
    if (start <= lastHead) return false;
    lastHead = start + (list.counts[s]! - 1) * POW2[list.orders[s]!]!;
  }
  return true;
}

/**
 * The stamp table of the runs a walk reported (stretches in walk order). A page stamped twice
 * keeps its LAST stamp, as the kernel overwrites `page->private`. Heads of sane maps never
 * collide, so the stretches are only sorted (one pass when the walk was ascending, as it is
 * for one order); colliding heads (a hostile map) are resolved run by run.
 */
function buildStampTable(list: StretchList): StampTable {
  const n = list.length;
  if (headsDisjoint(list, undefined)) {
    return new StampTable(list.starts.slice(0, n), list.orders.slice(0, n), list.counts.slice(0, n));
  }
  // Sort the stretches by start (stably: a natural merge, one ascending stretch per order).
  const byStart = new PfnRunList(n);
  for (let s = 0; s < n; s++) byStart.push(list.starts[s]!, s);
  byStart.sortByPfn();
  const sorted = byStart.values;
  if (headsDisjoint(list, sorted)) {
    const starts = new Float64Array(n);
    const orders = new Uint8Array(n);
    const counts = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const s = sorted[k]!;
      starts[k] = list.starts[s]!;
      orders[k] = list.orders[s]!;
      counts[k] = list.counts[s]!;
    }
    return new StampTable(starts, orders, counts);
  }
  // Colliding heads: every run in walk order, sorted stably by pfn, the last of equal pfns
  // kept, then regrouped into stretches.
  const runs = new PfnRunList(1024);
  for (let s = 0; s < n; s++) {
    const step = POW2[list.orders[s]!]!;
    for (let r = 0; r < list.counts[s]!; r++) runs.push(list.starts[s]! + r * step, list.orders[s]!);
  }
  runs.sortByPfn();
  const pfns = runs.pfns;
  const orders = runs.values;
  const out = new StretchList();
  for (let i = 0; i < pfns.length; i++) {
    if (i + 1 < pfns.length && pfns[i + 1] === pfns[i]) continue;
    const pfn = pfns[i]!;
    const order = orders[i]!;
    const last = out.length - 1;
    if (last >= 0 && out.orders[last] === order && out.starts[last]! + out.counts[last]! * POW2[order]! === pfn) out.counts[last] = out.counts[last]! + 1;
    else out.push(pfn, order, 1);
  }
  const m = out.length;
  return new StampTable(out.starts.slice(0, m), out.orders.slice(0, m), out.counts.slice(0, m));
}

/** The incoming KHO state of one boot. See the module comment. */
export class KhoIncoming implements KhoRestorer {
  readonly memory: PhysicalMemory;
  readonly state: KhoIncomingState;
  /** Why revival was disabled (undefined unless `state` is "disabled"). */
  readonly disabledReason: string | undefined;
  /** The map walk's failure, when that is what disabled revival. */
  readonly mapError: FormatError | undefined;
  /** The previous kernel's root FDT (undefined unless revived). */
  readonly fdtPhys: number | undefined;
  readonly #fdtSize: number;
  /** Root of the previous kernel's map (undefined unless revived). */
  readonly memoryMapPhys: number | undefined;
  /** The previous kernel's map pages, as walked at boot. */
  readonly mapNodes: readonly RadixNodePage[];
  /** `uname -r` of the previous kernel, from its `kexec-metadata` (if it left a usable one). */
  readonly previousRelease: string | undefined;
  /** `kexec_count` from the previous kernel's `kexec-metadata`; 0 after a cold boot. */
  readonly kexecCount: number;
  readonly #stamps: StampTable;
  readonly #ranges: MemoryRangeCache;
  #stampedCount: number;
  #allocator: PageAllocator | undefined;

  /**
   * Boot: check the handed-over FDT and walk its map. `handover` undefined is a cold boot.
   * Never throws for anything found in memory.
   */
  constructor(memory: PhysicalMemory, handover?: KhoHandover) {
    this.memory = memory;
    this.#ranges = new MemoryRangeCache(memory);
    let state: KhoIncomingState = "cold";
    let reason: string | undefined;
    let mapError: FormatError | undefined;
    let fdtPhys: number | undefined;
    let mapPhys: number | undefined;
    let nodes: readonly RadixNodePage[] = [];
    let stamps = EMPTY_TABLE;
    const fdtSize = handover?.fdtSize ?? KHO_FDT_SIZE;
    this.#fdtSize = fdtSize;
    if (handover !== undefined) {
      const found = this.#boot(handover.fdtPhys, fdtSize);
      if (typeof found === "string") {
        state = "disabled";
        reason = found;
      } else if (found instanceof FormatError) {
        state = "disabled";
        reason = `the preserved-memory map is corrupt: ${found.message}`;
        mapError = found;
      } else {
        state = "revived";
        fdtPhys = handover.fdtPhys;
        mapPhys = found.mapPhys;
        nodes = found.nodes;
        stamps = found.stamps;
      }
    }
    this.state = state;
    this.disabledReason = reason;
    this.mapError = mapError;
    this.fdtPhys = fdtPhys;
    this.memoryMapPhys = mapPhys;
    this.mapNodes = nodes;
    this.#stamps = stamps;
    this.#stampedCount = stamps.runCount;

    // kho_in_kexec_metadata: a missing or unusable blob is fine, it is just not there.
    let previousRelease: string | undefined;
    let kexecCount = 0;
    if (state === "revived") {
      try {
        const { phys, size } = this.retrieveSubtree(KHO_KEXEC_METADATA_NAME);
        const len = Math.min(size, KHO_KEXEC_METADATA_SIZE);
        if (len >= 4 && memory.contains(phys, len)) {
          const decoded = decodeKexecMetadata(memory.read(phys, len), size);
          if (decoded !== undefined) {
            previousRelease = decoded.previousRelease;
            kexecCount = decoded.kexecCount;
          }
        }
      } catch (error) {
        if (!(error instanceof KernelError)) throw error;
      }
    }
    this.previousRelease = previousRelease;
    this.kexecCount = kexecCount;
  }

  /** Whether the previous kernel's state was accepted. */
  get revived(): boolean {
    return this.state === "revived";
  }

  /**
   * Give restored pages to this allocator (so they can be freed later), and take them out of
   * it with {@link KhoIncoming.reservedRuns} at its construction. Called once by the machine.
   */
  attachAllocator(allocator: PageAllocator): void {
    if (this.#allocator !== undefined) throw new KernelError("EBUSY", "an allocator is already attached");
    this.#allocator = allocator;
  }

  /**
   * Every preserved run (stamped at boot) as pages to keep out of the allocator: ascending,
   * neighbouring runs joined.
   */
  reservedRuns(): PfnRunList {
    const { starts, orders, counts } = this.#stamps;
    const out = new PfnRunList(64);
    for (let s = 0; s < starts.length; s++) out.pushJoined(starts[s]!, counts[s]! * POW2[orders[s]!]!);
    return out;
  }

  /** Runs still stamped (preserved and not restored yet), ascending by address. */
  stampedRuns(): PreservedRun[] {
    const { starts, orders, counts, firsts, cleared } = this.#stamps;
    const out: PreservedRun[] = [];
    for (let s = 0; s < starts.length; s++) {
      const order = orders[s]!;
      const step = POW2[order]!;
      for (let r = 0; r < counts[s]!; r++) {
        if (cleared[firsts[s]! + r] === 0) out.push({ phys: (starts[s]! + r * step) * PAGE_SIZE, order });
      }
    }
    return out;
  }

  /** Number of runs still stamped. */
  get stampedCount(): number {
    return this.#stampedCount;
  }

  /** The stamp on the page at `phys` (`page->private`), if any. */
  stampOf(phys: number): KhoPageStamp | undefined {
    const order = this.stampOrderOf(phys);
    return order < 0 ? undefined : { order, magic: KHO_PAGE_MAGIC };
  }

  /**
   * The order of the stamp on the page at `phys`, or -1 when it carries none: {@link
   * KhoIncoming.stampOf} without an object per call, for checks of many pages.
   */
  stampOrderOf(phys: number): number {
    const i = this.#stamps.find(Math.floor(phys / PAGE_SIZE));
    if (i < 0 || this.#stamps.cleared[i] !== 0) return -1;
    return this.#stamps.orders[this.#stamps.found]!;
  }

  /**
   * `kho_restore_folio`: the folio at `phys` (the page `PHYS_PFN(phys)`), whose head must be
   * stamped. Clears the stamp and returns the order; the folio now belongs to the caller.
   *
   * @throws KernelError `EINVAL` when the page is not memory or carries no stamp (never
   *   preserved, already restored, revival disabled).
   */
  restoreFolio(phys: number): number {
    const i = this.#stamped(phys);
    const order = this.#stamps.orders[this.#stamps.found]!;
    this.#clear(i, Math.floor(phys / PAGE_SIZE), order, false);
    return order;
  }

  /**
   * `kho_restore_pages`: `count` order-0 pages preserved with `kho_preserve_pages`. Every
   * aligned run of the kernel's split must be stamped with the order the split gives (the
   * kernel checks the magic only; a mismatched order is a different preservation, refused
   * here). Checked before anything is cleared: a failure restores nothing.
   *
   * @throws KernelError `EINVAL`.
   */
  restorePages(phys: number, count: number): void {
    if (!Number.isSafeInteger(count) || count < 0) throw new KernelError("EINVAL", `page count ${count} is not a count`);
    const start = Math.floor(phys / PAGE_SIZE);
    if (count === 1) {
      // One page: one order-0 run (the common case of per-page restores).
      const i = this.#stamped(phys);
      const order = this.#stamps.orders[this.#stamps.found]!;
      if (order !== 0) throw new KernelError("EINVAL", `page 0x${(start * PAGE_SIZE).toString(16)} was preserved as order ${order}, not 0`);
      this.#clear(i, start, 0, true);
      return;
    }
    const end = start + count;
    const found: number[] = [];
    for (let pfn = start; pfn < end; ) {
      const order = alignedRunOrder(pfn, end);
      const i = this.#stamped(pfn * PAGE_SIZE);
      const stamped = this.#stamps.orders[this.#stamps.found]!;
      if (stamped !== order) {
        throw new KernelError("EINVAL", `page 0x${(pfn * PAGE_SIZE).toString(16)} was preserved as order ${stamped}, not ${order}`);
      }
      found.push(i, pfn, order);
      pfn += 2 ** order;
    }
    for (let k = 0; k < found.length; k += 3) this.#clear(found[k]!, found[k + 1]!, found[k + 2]!, true);
  }

  /**
   * `kho_restore_pages(physList[i], count)` for every `from <= i < to`, all or nothing:
   * every run of every range is checked first (as {@link KhoIncoming.restorePages} checks
   * one range, and a run listed twice fails as an already restored one), then all are
   * restored. Ranges in address order cost a few steps each.
   *
   * @throws KernelError `EINVAL` for the first range that cannot be restored; nothing changes.
   */
  restorePagesMany(physList: ArrayLike<number>, count: number, from = 0, to: number = physList.length): void {
    if (from >= to) return;
    if (!Number.isSafeInteger(count) || count < 0) throw new KernelError("EINVAL", `page count ${count} is not a count`);
    // Ranges that are each one stamped run (a power-of-two count, aligned): one pass each way.
    const order = count > 0 ? floorLog2(count) : -1;
    if (order >= 0 && POW2[order] === count && order <= MAX_RUN_ORDER) {
      const stretches = new NumberList();
      const marked = this.#markRuns(physList, from, to, order, stretches);
      if (marked === to) {
        this.#restoreRuns(stretches, order);
        return;
      }
      // Not all of that kind: undo, then range by range (which fails as restorePages would).
      for (let k = 0; k < stretches.length; k += 3) {
        const run = stretches.get(k + 1);
        this.#stamps.cleared.fill(0, run, run + stretches.get(k + 2));
      }
    }
    // Check, marking each run found as taken (2) so that a repeat fails; undone on failure.
    let i = from;
    try {
      for (; i < to; i++) this.#markRange(physList[i]!, count);
    } catch (error) {
      // The ranges before the failing one, and the runs of it marked before the failure.
      for (let k = from; k <= i && k < to; k++) this.#unmarkRange(physList[k]!, count);
      throw error;
    }
    for (let k = from; k < to; k++) this.#restoreRange(physList[k]!, count);
  }

  /**
   * Mark (2) the runs `physList[i]` of `order`, `from <= i < to`, while each is a stamped run of
   * that order (aligned, in memory, not yet restored or marked); the first `i` that is not.
   * Entries that continue each other in memory within one stretch of stamps are consecutive
   * runs of the table, looked up once: each is recorded in `stretches` as (head pfn, first
   * run, runs), marked runs only.
   */
  #markRuns(physList: ArrayLike<number>, from: number, to: number, order: number, stretches: NumberList): number {
    const stamps = this.#stamps;
    const cleared = stamps.cleared;
    const size = POW2[PAGE_SHIFT + order]!;
    const inverse = INV_POW2[PAGE_SHIFT + order]!;
    let i = from;
    while (i < to) {
      const phys = physList[i]!;
      if (!(Number.isSafeInteger(phys) && phys >= 0 && Math.floor(phys * inverse) * size === phys && this.#ranges.contains(phys, PAGE_SIZE))) return i;
      const run = stamps.find(phys * INVERSE_PAGE_SIZE);
      if (run < 0 || stamps.orders[stamps.found] !== order) return i;
      // The entries that continue this one, up to the end of its stretch of stamps, and of
      // those the runs not restored (nor marked: listed twice) yet.
      const n = stretchLength(physList, i, Math.min(to - i, stamps.runsFrom(run)), size);
      const free = stamps.firstTaken(run, run + n) - run;
      if (free > 0) {
        cleared.fill(2, run, run + free);
        stretches.push(phys * INVERSE_PAGE_SIZE);
        stretches.push(run);
        stretches.push(free);
      }
      i += free;
      if (free < n) return i;
    }
    return to;
  }

  /** Restore the stretches {@link KhoIncoming.#markRuns} marked. */
  #restoreRuns(stretches: NumberList, order: number): void {
    const cleared = this.#stamps.cleared;
    for (let k = 0; k < stretches.length; k += 3) {
      const run = stretches.get(k + 1);
      const n = stretches.get(k + 2);
      cleared.fill(1, run, run + n);
      this.#stampedCount -= n;
      this.#allocator?.adoptRange(stretches.get(k) * PAGE_SIZE, n, order, true);
    }
  }

  /** Check one range of {@link KhoIncoming.restorePagesMany} as restorePages does; mark its runs. */
  #markRange(phys: number, count: number): void {
    const stamps = this.#stamps;
    if (count === 1) {
      const run = this.#stamped(phys);
      const order = stamps.orders[stamps.found]!;
      if (order !== 0) throw new KernelError("EINVAL", `page 0x${(Math.floor(phys / PAGE_SIZE) * PAGE_SIZE).toString(16)} was preserved as order ${order}, not 0`);
      stamps.cleared[run] = 2;
      return;
    }
    const start = Math.floor(phys / PAGE_SIZE);
    const end = start + count;
    for (let pfn = start; pfn < end; ) {
      const order = alignedRunOrder(pfn, end);
      const run = this.#stamped(pfn * PAGE_SIZE);
      const stamped = stamps.orders[stamps.found]!;
      if (stamped !== order) {
        throw new KernelError("EINVAL", `page 0x${(pfn * PAGE_SIZE).toString(16)} was preserved as order ${stamped}, not ${order}`);
      }
      stamps.cleared[run] = 2;
      pfn += POW2[order]!;
    }
  }

  /** Undo the marks of {@link KhoIncoming.#markRange} (only marks: every other stamp is 0 or 1). */
  #unmarkRange(phys: number, count: number): void {
    if (!Number.isSafeInteger(phys) || phys < 0) return; // never marked
    const stamps = this.#stamps;
    const start = Math.floor(phys / PAGE_SIZE);
    const end = start + count;
    for (let pfn = start; pfn < end; ) {
      const order = alignedRunOrder(pfn, end);
      const run = stamps.find(pfn);
      if (run >= 0 && stamps.cleared[run] === 2) stamps.cleared[run] = 0;
      pfn += POW2[order]!;
    }
  }

  /** Restore the runs of one range {@link KhoIncoming.#markRange} checked. */
  #restoreRange(phys: number, count: number): void {
    const stamps = this.#stamps;
    const start = Math.floor(phys / PAGE_SIZE);
    const end = start + count;
    for (let pfn = start; pfn < end; ) {
      const order = alignedRunOrder(pfn, end);
      this.#clear(stamps.find(pfn), pfn, order, true);
      pfn += POW2[order]!;
    }
  }

  /** `kho_restore_free`: restore a `kho_alloc_preserve` block, then free it. */
  restoreFree(phys: number): void {
    const i = this.#stamped(phys);
    const order = this.#stamps.orders[this.#stamps.found]!;
    const pfn = Math.floor(phys / PAGE_SIZE);
    this.#clear(i, pfn, order, false);
    this.#allocator?.freeFolio(pfn * PAGE_SIZE, order);
  }

  /**
   * `kho_retrieve_subtree(name)`: the blob the previous kernel recorded under `name`.
   *
   * @throws KernelError `ENOENT` when revival is off (cold boot, disabled) or there is no
   *   such sub-tree; `EINVAL` when its `preserved-data` or `blob-size` is missing or not 8
   *   bytes.
   */
  retrieveSubtree(name: string): { phys: number; size: number } {
    const blob = this.#fdt();
    if (blob === undefined) throw new KernelError("ENOENT", `no incoming KHO FDT (${this.state} boot)`);
    return retrieveKhoSubtree(blob, name);
  }

  /** The previous kernel's sub-trees in document order (empty unless revived). */
  subtrees(): KhoSubtree[] {
    const blob = this.#fdt();
    return blob === undefined ? [] : listKhoSubtrees(blob);
  }

  /** The previous kernel's root FDT as it is in memory now (undefined unless revived). */
  rootFdt(): Uint8Array | undefined {
    const blob = this.#fdt();
    if (blob === undefined) return undefined;
    const total = new DataView(blob.buffer, blob.byteOffset).getUint32(4);
    return blob.slice(0, Math.min(total, blob.length));
  }

  /** The live FDT mapping (the kernel reads the page each time), or undefined. */
  #fdt(): Uint8Array | undefined {
    if (this.fdtPhys === undefined || !this.memory.contains(this.fdtPhys, this.#fdtSize)) return undefined;
    return this.memory.read(this.fdtPhys, this.#fdtSize);
  }

  #boot(
    fdtPhys: number,
    fdtSize: number,
  ): string | FormatError | { mapPhys: number; nodes: readonly RadixNodePage[]; stamps: StampTable } {
    if (!Number.isSafeInteger(fdtSize) || fdtSize <= 0 || fdtSize > MAX_FDT_SIZE) return `FDT size ${fdtSize} is not a mapping size`;
    if (!Number.isSafeInteger(fdtPhys) || !this.memory.contains(fdtPhys, fdtSize)) {
      return `the FDT at ${String(fdtPhys)} (+${fdtSize}) is not in memory`;
    }
    const check = checkKhoRootFdt(this.memory.read(fdtPhys, fdtSize));
    if (!check.valid) return `handover FDT: ${check.reason}`;
    const stretches = new StretchList();
    try {
      const maxRuns = this.memory.totalBytes / PAGE_SIZE;
      const { nodes } = walkRadixMapSegments(
        this.memory,
        check.memoryMapPhys,
        (phys, order, count) => {
          stretches.push(phys / PAGE_SIZE, order, count);
        },
        { maxRuns },
      );
      return { mapPhys: check.memoryMapPhys, nodes, stamps: buildStampTable(stretches) };
    } catch (error) {
      if (error instanceof FormatError) return error;
      throw error;
    }
  }

  /**
   * Number of the live stamp's run of the page at `phys` (its stretch in `#stamps.found`).
   * @throws KernelError `EINVAL`.
   */
  #stamped(phys: number): number {
    if (!Number.isSafeInteger(phys) || phys < 0 || !this.#ranges.contains(phys - (phys % PAGE_SIZE), PAGE_SIZE)) {
      throw new KernelError("EINVAL", `${String(phys)} is not a page of memory`);
    }
    const i = this.#stamps.find(Math.floor(phys / PAGE_SIZE));
    if (i < 0 || this.#stamps.cleared[i] !== 0) {
      throw new KernelError("EINVAL", `page 0x${phys.toString(16)} has no KHOP stamp (not preserved, or already restored)`);
    }
    return i;
  }

  #clear(run: number, pfn: number, order: number, asPages: boolean): void {
    this.#stamps.cleared[run] = 1;
    this.#stampedCount--;
    this.#allocator?.adopt(pfn * PAGE_SIZE, order, asPages);
  }
}
