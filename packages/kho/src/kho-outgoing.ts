/**
 * The outgoing kernel's side of KHO (`kexec_handover.c`, Linux 7.2): what a subsystem calls
 * to have memory survive the next `kexec`.
 *
 * State, all of it in physical memory:
 * - the preserved-memory map ({@link RadixMap}), its root allocated at `kho_init`;
 * - the root FDT, one preserved page ({@link KhoRootFdtPage}), built at `kho_init` and
 *   edited in place for every sub-tree; it is read back from memory before every edit;
 * - the `kexec-metadata` sub-tree, written at `kho_init`.
 *
 * Errors mirror the kernel's: preserving anything that overlaps scratch is `EINVAL`,
 * `kho_alloc_preserve(0)` is `EINVAL` and above `MAX_PAGE_ORDER` `E2BIG`, a node page that
 * cannot be allocated is `ENOMEM` (and `kho_preserve_pages` rolls back what it added), a
 * duplicate sub-tree is `EEXIST`. Beyond the kernel (which takes a `struct folio`, so
 * cannot be handed a bad one): an address that is not an aligned block of memory is `EINVAL`.
 */
import { KHO_FDT_SIZE, KHO_KEXEC_METADATA_NAME, KHO_KEXEC_METADATA_SIZE, MAX_PAGE_ORDER, PAGE_SHIFT, PAGE_SIZE } from "./abi.js";
import { KernelError, FormatError } from "./errors.js";
import { encodeKexecMetadata } from "./kexec-metadata.js";
import { KhoRootFdtPage, type KhoSubtree } from "./kho-root-fdt.js";
import type { MemoryRange, PhysicalMemory } from "./memory.js";
import { INV_POW2, MemoryRangeCache, POW2, alignedRunOrder, floorLog2, getOrder, type PageAllocator } from "./page-allocator.js";
import { NumberList, PfnRunList, stretchLength } from "./pfn-runs.js";
import { MAX_RUN_ORDER, RadixMap, addCheckedRun, addCheckedRunStretches, walkRadixMapSegments } from "./radix-map.js";
import type { KhoPreserver, PreservedRun } from "./types.js";

/** How the outgoing side is set up at `kho_init`. */
export interface KhoOutgoingOptions {
  /** Scratch regions: nothing inside them may be preserved. */
  readonly scratch?: readonly MemoryRange[];
  /** `uname -r` written into `kexec-metadata` (default {@link DEFAULT_RELEASE}). */
  readonly release?: string;
  /** The previous kernel's `kexec_count` (0 after a cold boot); the blob gets this + 1. */
  readonly previousKexecCount?: number;
}

/** The release a model kernel reports unless told otherwise: the reference kernel's. */
export const DEFAULT_RELEASE = "7.2.13";

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** The outgoing KHO state of one boot. See the module comment. */
export class KhoOutgoing implements KhoPreserver {
  readonly memory: PhysicalMemory;
  readonly allocator: PageAllocator;
  readonly scratch: readonly MemoryRange[];
  /** The preserved-memory map. */
  readonly radix: RadixMap;
  /** Physical address of the root FDT page (`kho_out.fdt`), what kexec hands over. */
  readonly fdtPhys: number;
  /** Physical address of this kernel's `kexec-metadata` blob. */
  readonly kexecMetadataPhys: number;
  readonly #ranges: MemoryRangeCache;

  /**
   * `kho_init`: allocate the map's root, the root FDT page (preserved), build the FDT, then
   * write and add `kexec-metadata`.
   */
  constructor(allocator: PageAllocator, options: KhoOutgoingOptions = {}) {
    this.memory = allocator.memory;
    this.allocator = allocator;
    this.scratch = options.scratch ?? allocator.scratch;
    this.#ranges = new MemoryRangeCache(this.memory);
    this.radix = new RadixMap(this.memory, {
      allocPage: () => allocator.allocFolio(0),
      freePage: (phys) => {
        allocator.freeFolio(phys, 0);
      },
    });
    this.fdtPhys = this.allocPreserve(KHO_FDT_SIZE);
    this.memory.write(this.fdtPhys, KhoRootFdtPage.create(this.radix.rootPhys).page);

    const metadata = encodeKexecMetadata(options.release ?? DEFAULT_RELEASE, (options.previousKexecCount ?? 0) + 1);
    this.kexecMetadataPhys = this.allocPreserve(KHO_KEXEC_METADATA_SIZE);
    this.memory.write(this.kexecMetadataPhys, metadata);
    try {
      this.addSubtree(KHO_KEXEC_METADATA_NAME, this.kexecMetadataPhys, KHO_KEXEC_METADATA_SIZE);
    } catch (error) {
      this.unpreserveFree(this.kexecMetadataPhys, KHO_KEXEC_METADATA_SIZE);
      throw error;
    }
  }

  // ---- folios and pages ---------------------------------------------------------------

  /** A zeroed folio from the buddy allocator (not preserved). @throws KernelError `ENOMEM`. */
  allocFolio(order: number): number {
    return this.allocator.allocFolio(order);
  }

  /** Give a folio back to the allocator. @throws KernelError `EINVAL` if it is not one. */
  freeFolio(phys: number, order: number): void {
    this.allocator.freeFolio(phys, order);
  }

  /**
   * `kho_preserve_folio`: one run of `2^order` pages.
   *
   * @throws KernelError `EINVAL` inside scratch or for a block that is not an aligned folio
   *   of memory; `ENOMEM` when a map node cannot be allocated.
   */
  preserveFolio(phys: number, order: number): void {
    this.#checkFolio(phys, order);
    this.#checkScratch(phys, POW2[PAGE_SHIFT + order]!);
    addCheckedRun(this.radix, phys, order); // a folio of memory is a valid run
  }

  /** `kho_unpreserve_folio`: clear the folio's run (a run never preserved is left alone). */
  unpreserveFolio(phys: number, order: number): void {
    this.#checkFolio(phys, order);
    this.radix.delete(phys, order);
  }

  /**
   * `kho_preserve_pages`: `count` order-0 pages, split into aligned power-of-two runs
   * (`order = min(ctz(pfn), log2(remaining))`, no cap), one map entry each. On failure the
   * runs added so far are removed again.
   *
   * @throws KernelError `EINVAL` inside scratch or outside memory; `ENOMEM`.
   */
  preservePages(phys: number, count: number): void {
    this.#checkPages(phys, count);
    this.#checkScratch(phys, count * PAGE_SIZE);
    const start = phys / PAGE_SIZE;
    const end = start + count;
    let pfn = start;
    try {
      while (pfn < end) {
        const order = alignedRunOrder(pfn, end);
        this.radix.add(pfn * PAGE_SIZE, order);
        pfn += 2 ** order;
      }
    } catch (error) {
      this.#unpreserveRange(start, pfn);
      throw error;
    }
  }

  /** `kho_unpreserve_pages`: the same split as {@link KhoOutgoing.preservePages}, cleared. */
  unpreservePages(phys: number, count: number): void {
    this.#checkPages(phys, count);
    const start = phys / PAGE_SIZE;
    this.#unpreserveRange(start, start + count);
  }

  /**
   * `kho_preserve_folio` of every folio `physList[i]`, `from <= i < to`, all of `order`: the
   * result of that loop of {@link KhoOutgoing.preserveFolio} calls, unwound on failure (the
   * folios this call preserved before the failing one are unpreserved again; map nodes
   * created on the way stay, as the kernel keeps them). Checks and map updates cost a few
   * steps per folio instead of a call each.
   *
   * @throws KernelError as {@link KhoOutgoing.preserveFolio}, for the first folio that fails.
   */
  preserveFolios(physList: ArrayLike<number>, order: number, from = 0, to: number = physList.length): void {
    if (from >= to) return;
    this.#checkOrder(order);
    const stretches = new NumberList();
    const valid = this.#firstNonFolio(physList, from, to, order, stretches);
    addCheckedRunStretches(this.radix, stretches, order); // unwinds itself on failure
    if (valid < to) {
      for (let i = from; i < valid; i++) this.radix.delete(physList[i]!, order);
      this.preserveFolio(physList[valid]!, order); // throws the folio's error
    }
  }

  /**
   * `kho_preserve_pages(physList[i], count)` for every `from <= i < to`: the result of that
   * loop of {@link KhoOutgoing.preservePages} calls, unwound on failure (the ranges this call
   * preserved before the failing one are unpreserved again). When `count` is a power of two
   * and a range is aligned to it (a folio: `kho_vmalloc` areas), its one run costs a few
   * steps instead of a call.
   *
   * @throws KernelError as {@link KhoOutgoing.preservePages}, for the first range that fails.
   */
  preservePagesMany(physList: ArrayLike<number>, count: number, from = 0, to: number = physList.length): void {
    if (from >= to) return;
    // One run per range needs a power-of-two count; anything else goes range by range.
    const order = Number.isSafeInteger(count) && count > 0 ? floorLog2(count) : -1;
    const single = order >= 0 && POW2[order] === count && order <= MAX_RUN_ORDER;
    let i = from;
    try {
      while (i < to) {
        let stop = i;
        if (single) {
          const stretches = new NumberList();
          stop = this.#firstNonFolio(physList, i, to, order, stretches);
          addCheckedRunStretches(this.radix, stretches, order); // unwinds its own runs on failure
        }
        i = stop;
        if (i < to) {
          this.preservePages(physList[i]!, count);
          i++;
        }
      }
    } catch (error) {
      for (let k = from; k < i; k++) this.#unpreserveRange(physList[k]! / PAGE_SIZE, physList[k]! / PAGE_SIZE + count);
      throw error;
    }
  }

  /**
   * `kho_alloc_preserve`: a zeroed folio of `get_order(size)` pages, preserved.
   *
   * @throws KernelError `EINVAL` for size 0 (or not a positive integer), `E2BIG` above
   *   MAX_PAGE_ORDER, `ENOMEM`, and `EINVAL` if the folio cannot be preserved.
   */
  allocPreserve(size: number): number {
    if (!Number.isSafeInteger(size) || size <= 0) throw new KernelError("EINVAL", `kho_alloc_preserve(${size}): size must be a positive byte count`);
    const order = getOrder(size);
    if (order > MAX_PAGE_ORDER) throw new KernelError("E2BIG", `kho_alloc_preserve(${size}): order ${order} > MAX_PAGE_ORDER ${MAX_PAGE_ORDER}`);
    const phys = this.allocator.allocFolio(order);
    try {
      this.preserveFolio(phys, order);
    } catch (error) {
      this.allocator.freeFolio(phys, order);
      throw error;
    }
    return phys;
  }

  /**
   * `kho_unpreserve_free`: unpreserve and free a block from {@link KhoOutgoing.allocPreserve}
   * of `size` bytes. Address 0 does nothing (the kernel's NULL).
   *
   * @throws KernelError `EINVAL` when `phys` is not such a block.
   */
  unpreserveFree(phys: number, size: number): void {
    if (phys === 0) return;
    if (!Number.isSafeInteger(size) || size <= 0) throw new KernelError("EINVAL", `kho_unpreserve_free: size ${size} is not a positive byte count`);
    const order = getOrder(size);
    if (!this.allocator.isOwned(phys, order)) throw new KernelError("EINVAL", `kho_unpreserve_free: ${hex(phys)} is not an allocated order-${order} folio`);
    this.radix.delete(phys, order);
    this.allocator.freeFolio(phys, order);
  }

  /** Whether the run `[phys, 2^order pages)` is in the map. */
  isPreserved(phys: number, order: number): boolean {
    return this.radix.has(phys, order);
  }

  /** Every preserved run, in map order, as the next kernel will see them. */
  preservedRuns(): PreservedRun[] {
    const runs: PreservedRun[] = [];
    this.radix.walk((phys, order) => runs.push({ phys, order }));
    return runs;
  }

  // ---- sub-trees ----------------------------------------------------------------------

  /**
   * `kho_add_subtree(name, blob, size)`: record a preserved blob under `name` in the root FDT.
   * The blob's pages must be preserved separately (as in the kernel).
   *
   * @throws KernelError `EEXIST` for a name already there; `ENOMEM` when libfdt fails otherwise.
   */
  addSubtree(name: string, phys: number, size: number): void {
    const page = this.#rootFdt();
    try {
      page.addSubtree(name, phys, size);
    } finally {
      // libfdt edits the page in place even when it fails (pack); write what it left.
      this.memory.write(this.fdtPhys, page.page);
    }
  }

  /** `kho_remove_subtree`: drop the sub-tree whose blob is at `phys`; whether one was found. */
  removeSubtree(phys: number): boolean {
    const page = this.#rootFdt();
    const found = page.removeSubtree(phys);
    this.memory.write(this.fdtPhys, page.page);
    return found;
  }

  /** The sub-trees, newest first. */
  subtrees(): KhoSubtree[] {
    return this.#rootFdt().subtrees();
  }

  /** The root FDT blob (`totalsize` bytes) as it is in memory now. */
  rootFdt(): Uint8Array {
    return this.#rootFdt().bytes();
  }

  // ---- kexec --------------------------------------------------------------------------

  /**
   * The pages `kexec` must carry over: every preserved run, plus the map's node pages (the
   * next kernel walks them before its allocator starts; they are not themselves preserved).
   * Sorted and merged. A map that damaged memory made unreadable carries the runs read
   * before the damage: the next kernel will find the same damage and disable revival.
   */
  handoverRuns(): PfnRunList {
    // Joined as they come: the walk is ascending within each order.
    const runs = new PfnRunList(1024);
    try {
      walkRadixMapSegments(this.memory, this.radix.rootPhys, (phys, order, count) => {
        runs.pushJoined(phys / PAGE_SIZE, count * POW2[order]!);
      });
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
    }
    for (const node of this.radix.nodePages()) runs.push(node.phys / PAGE_SIZE, 1);
    return runs.merged();
  }

  #rootFdt(): KhoRootFdtPage {
    return KhoRootFdtPage.fromPage(this.memory.read(this.fdtPhys, KHO_FDT_SIZE));
  }

  #unpreserveRange(start: number, end: number): void {
    let pfn = start;
    while (pfn < end) {
      const order = alignedRunOrder(pfn, end);
      this.radix.delete(pfn * PAGE_SIZE, order);
      pfn += 2 ** order;
    }
  }

  #checkOrder(order: number): void {
    if (!Number.isInteger(order) || order < 0 || order > MAX_RUN_ORDER) {
      throw new KernelError("EINVAL", `folio order ${order} is outside 0..${MAX_RUN_ORDER}`);
    }
  }

  /**
   * The first `i` in `from <= i < to` whose `physList[i]` is not a folio of `order` in memory
   * and outside scratch (what preserveFolio accepts), else `to`; the folios before it go into
   * `stretches` as (start, folios) pairs of adjacent folios.
   */
  #firstNonFolio(physList: ArrayLike<number>, from: number, to: number, order: number, stretches: NumberList): number {
    const size = POW2[PAGE_SHIFT + order]!;
    let i = from;
    while (i < to) {
      const phys = physList[i]!;
      if (!this.#isPreservableFolio(phys, order, size)) return i;
      // The folios that follow it in memory: one check for the whole stretch when it is all
      // memory and clear of scratch, else one by one.
      const n = stretchLength(physList, i, to - i, size);
      if (n > 1 && !(this.#ranges.contains(phys, n * size) && !this.#inScratch(phys, n * size))) {
        for (let k = 1; k < n; k++) {
          if (!this.#isPreservableFolio(phys + k * size, order, size)) {
            stretches.push(phys);
            stretches.push(k);
            return i + k;
          }
        }
      }
      stretches.push(phys);
      stretches.push(n);
      i += n;
    }
    return to;
  }

  /** Whether {@link KhoOutgoing.preserveFolio} accepts `phys` as a folio of `order` (`size` bytes). */
  #isPreservableFolio(phys: number, order: number, size: number): boolean {
    return this.#isFolio(phys, order, size) && !this.#inScratch(phys, size);
  }

  /** Whether `phys` is a folio of `order` (`size` bytes) in memory. */
  #isFolio(phys: number, order: number, size: number): boolean {
    return Number.isSafeInteger(phys) && phys >= 0 && Math.floor(phys * INV_POW2[PAGE_SHIFT + order]!) * size === phys && this.#ranges.contains(phys, size);
  }

  #checkFolio(phys: number, order: number): void {
    this.#checkOrder(order);
    const size = POW2[PAGE_SHIFT + order]!;
    if (!this.#isFolio(phys, order, size)) {
      throw new KernelError("EINVAL", `${hex(phys)} is not an order-${order} folio of memory`);
    }
  }

  #checkPages(phys: number, count: number): void {
    if (!Number.isSafeInteger(count) || count < 0) throw new KernelError("EINVAL", `page count ${count} is not a count`);
    if (!Number.isSafeInteger(phys) || phys < 0 || phys % PAGE_SIZE !== 0 || (count > 0 && !this.#ranges.contains(phys, count * PAGE_SIZE))) {
      throw new KernelError("EINVAL", `${hex(phys)} + ${count} pages is not page-aligned memory`);
    }
  }

  /** Whether `[phys, phys + size)` overlaps scratch (`kho_scratch_overlap`). */
  #inScratch(phys: number, size: number): boolean {
    const scratch = this.scratch;
    for (let k = 0; k < scratch.length; k++) {
      const s = scratch[k]!;
      if (phys < s.start + s.size && s.start < phys + size) return true;
    }
    return false;
  }

  /** `kho_scratch_overlap`. */
  #checkScratch(phys: number, size: number): void {
    if (!this.#inScratch(phys, size)) return;
    for (const s of this.scratch) {
      if (phys < s.start + s.size && s.start < phys + size) {
        throw new KernelError("EINVAL", `${hex(phys)}+${hex(size)} overlaps scratch ${hex(s.start)}+${hex(s.size)}`);
      }
    }
  }
}
