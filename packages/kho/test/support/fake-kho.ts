/**
 * A small stand-in for the KHO core in the structure tests (vmalloc, blocks): a bump page
 * allocator, the set of preserved runs, and a "kexec" that hands the preserved pages over
 * (`PhysicalMemory.handOver`) and stamps the head page of each run, as the next kernel does
 * after walking the radix map. Deliberately simple; the real core is tested on its own.
 */
import { MAX_PAGE_ORDER, PAGE_SIZE } from "../../src/abi.js";
import { KernelError } from "../../src/errors.js";
import { PhysicalMemory, type MemoryRange } from "../../src/memory.js";
import { splitRunOrder, type KhoStampReader } from "../../src/stamp-probe.js";
import type { KhoPreserver, KhoRestorer } from "../../src/types.js";

/** `get_order(size)`. */
export function getOrder(size: number): number {
  let order = 0;
  while (2 ** order * PAGE_SIZE < size) order++;
  return order;
}

export interface FakeKhoOptions {
  /** Memory layout; default 64 MiB at 16 MiB (so physical address 0 is not memory). */
  readonly ranges?: readonly MemoryRange[];
  /** Where preserving is `EINVAL`. */
  readonly scratch?: readonly MemoryRange[];
  /** Refuse allocations after this many (to test rollback). */
  readonly allocLimit?: number;
}

/** The outgoing kernel. */
export class FakeKho implements KhoPreserver {
  readonly memory: PhysicalMemory;
  /** Preserved runs: head pfn -> order. */
  readonly preserved = new Map<number, number>();
  /** Allocated folios: head pfn -> order. */
  readonly allocated = new Map<number, number>();
  readonly #scratch: readonly MemoryRange[];
  #nextPfn: number;
  #allocLimit: number;

  constructor(options: FakeKhoOptions = {}) {
    this.memory = new PhysicalMemory(options.ranges ?? [{ start: 16 << 20, size: 64 << 20 }]);
    this.#scratch = options.scratch ?? [];
    this.#nextPfn = this.memory.ranges[0]!.start / PAGE_SIZE;
    this.#allocLimit = options.allocLimit ?? Infinity;
  }

  /** Allow `n` more allocations. */
  limitAllocations(n: number): void {
    this.#allocLimit = this.allocated.size + n;
  }

  allocFolio(order: number): number {
    if (this.allocated.size >= this.#allocLimit) throw new KernelError("ENOMEM", "fake allocation limit");
    const pages = 2 ** order;
    let pfn = Math.ceil(this.#nextPfn / pages) * pages;
    while (!this.memory.contains(pfn * PAGE_SIZE, pages * PAGE_SIZE)) {
      const next = this.memory.ranges.find((r) => r.start / PAGE_SIZE > pfn);
      if (!next) throw new KernelError("ENOMEM", "fake allocator is out of memory");
      pfn = Math.ceil(next.start / PAGE_SIZE / pages) * pages;
    }
    this.#nextPfn = pfn + pages;
    this.allocated.set(pfn, order);
    this.memory.zero(pfn * PAGE_SIZE, pages * PAGE_SIZE);
    return pfn * PAGE_SIZE;
  }

  freeFolio(phys: number, order: number): void {
    const pfn = phys / PAGE_SIZE;
    if (this.allocated.get(pfn) !== order) throw new KernelError("EINVAL", `free of 0x${phys.toString(16)} order ${order}: not allocated so`);
    this.allocated.delete(pfn);
  }

  preserveFolio(phys: number, order: number): void {
    const pages = 2 ** order;
    if (phys % (pages * PAGE_SIZE) !== 0) throw new KernelError("EINVAL", "unaligned folio");
    this.#checkNotScratch(phys, pages);
    this.preserved.set(phys / PAGE_SIZE, order);
  }

  unpreserveFolio(phys: number, order: number): void {
    if (this.preserved.get(phys / PAGE_SIZE) === order) this.preserved.delete(phys / PAGE_SIZE);
  }

  preservePages(phys: number, count: number): void {
    this.#checkNotScratch(phys, count);
    this.#split(phys, count, (pfn, order) => this.preserved.set(pfn, order));
  }

  unpreservePages(phys: number, count: number): void {
    this.#split(phys, count, (pfn, order) => {
      if (this.preserved.get(pfn) === order) this.preserved.delete(pfn);
    });
  }

  allocPreserve(size: number): number {
    if (size === 0) throw new KernelError("EINVAL", "size 0");
    const order = getOrder(size);
    if (order > MAX_PAGE_ORDER) throw new KernelError("E2BIG", "too big");
    const phys = this.allocFolio(order);
    this.preserveFolio(phys, order);
    return phys;
  }

  unpreserveFree(phys: number, size: number): void {
    const order = getOrder(size);
    this.unpreserveFolio(phys, order);
    this.freeFolio(phys, order);
  }

  /** Hand the preserved pages over; this memory is retired. */
  kexec(): FakeRestorer {
    const runs = [...this.preserved].map(([pfn, order]) => ({ pfn, count: 2 ** order }));
    return new FakeRestorer(this.memory.handOver(runs), new Map(this.preserved));
  }

  #checkNotScratch(phys: number, pages: number): void {
    for (const s of this.#scratch) {
      if (phys < s.start + s.size && phys + pages * PAGE_SIZE > s.start) throw new KernelError("EINVAL", "preserving scratch");
    }
  }

  #split(phys: number, count: number, each: (pfn: number, order: number) => void): void {
    let pfn = phys / PAGE_SIZE;
    const end = pfn + count;
    while (pfn < end) {
      const order = splitRunOrder(pfn, end - pfn);
      each(pfn, order);
      pfn += 2 ** order;
    }
  }
}

/** The next kernel: stamps on the head page of each preserved run. */
export class FakeRestorer implements KhoRestorer, KhoStampReader {
  readonly memory: PhysicalMemory;
  /** head pfn -> order, cleared by a restore. */
  readonly stamps: Map<number, number>;
  /** Pages given back with `restoreFree`. */
  readonly freed = new Set<number>();

  constructor(memory: PhysicalMemory, stamps: Map<number, number>) {
    this.memory = memory;
    this.stamps = stamps;
  }

  stampOf(phys: number): { order: number } | undefined {
    const order = this.stamps.get(phys / PAGE_SIZE);
    return order === undefined ? undefined : { order };
  }

  restoreFolio(phys: number): number {
    const pfn = phys / PAGE_SIZE;
    const order = this.stamps.get(pfn);
    if (order === undefined) throw new KernelError("EINVAL", `0x${phys.toString(16)} carries no KHOP stamp`);
    this.stamps.delete(pfn);
    return order;
  }

  restorePages(phys: number, count: number): void {
    let pfn = phys / PAGE_SIZE;
    const end = pfn + count;
    // Check first, like a careful kernel would not: keeps the fake's own failures atomic.
    for (let p = pfn; p < end; ) {
      const order = splitRunOrder(p, end - p);
      if (this.stamps.get(p) !== order) throw new KernelError("EINVAL", `0x${(p * PAGE_SIZE).toString(16)} carries no KHOP stamp of order ${order}`);
      p += 2 ** order;
    }
    while (pfn < end) {
      const order = splitRunOrder(pfn, end - pfn);
      this.stamps.delete(pfn);
      pfn += 2 ** order;
    }
  }

  restoreFree(phys: number): void {
    this.restoreFolio(phys);
    this.freed.add(phys / PAGE_SIZE);
  }
}

/** The same restorer without the stamp reader: what a restore does when it cannot look ahead. */
export function withoutStampReader(kho: FakeRestorer): KhoRestorer {
  return {
    memory: kho.memory,
    restoreFolio: (phys) => kho.restoreFolio(phys),
    restorePages: (phys, count) => {
      kho.restorePages(phys, count);
    },
    restoreFree: (phys) => {
      kho.restoreFree(phys);
    },
  };
}
