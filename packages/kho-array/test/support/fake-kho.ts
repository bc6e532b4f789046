/**
 * A small stand-in for the KHO core: a bump page allocator, the set of preserved folios,
 * and a "kexec" that hands the preserved pages over (`PhysicalMemory.handOver`) and stamps
 * each one, as the next kernel does after walking the radix map.
 */
import { KernelError, PAGE_SIZE, PhysicalMemory, type MemoryRange } from "@liveupdate/kho";
import type { KhoArrayPreserver, KhoArrayRestorer } from "../../src/kho-array.js";

export interface FakeKhoOptions {
  /** Default: 64 MiB at 16 MiB. */
  readonly ranges?: readonly MemoryRange[];
  /** Preserving a page in here fails `EINVAL` (like scratch). */
  readonly scratch?: MemoryRange;
}

export class FakeKho implements KhoArrayPreserver {
  readonly memory: PhysicalMemory;
  /** Preserved folios: head pfn -> order. */
  readonly preserved = new Map<number, number>();
  /** Allocated folios: head pfn -> order. */
  readonly allocated = new Map<number, number>();
  readonly #scratch: MemoryRange | undefined;
  #nextPfn: number;

  constructor(options: FakeKhoOptions = {}) {
    this.memory = new PhysicalMemory(options.ranges ?? [{ start: 16 << 20, size: 64 << 20 }]);
    this.#scratch = options.scratch;
    this.#nextPfn = this.memory.ranges[0]!.start / PAGE_SIZE;
  }

  allocFolio(order: number): number {
    const pages = 2 ** order;
    const pfn = Math.ceil(this.#nextPfn / pages) * pages;
    if (!this.memory.contains(pfn * PAGE_SIZE, pages * PAGE_SIZE)) throw new KernelError("ENOMEM", "fake allocator is out of memory");
    this.#nextPfn = pfn + pages;
    this.allocated.set(pfn, order);
    this.memory.zero(pfn * PAGE_SIZE, pages * PAGE_SIZE);
    return pfn * PAGE_SIZE;
  }

  freeFolio(phys: number, order: number): void {
    if (this.allocated.get(phys / PAGE_SIZE) !== order) throw new KernelError("EINVAL", "not allocated so");
    this.allocated.delete(phys / PAGE_SIZE);
  }

  preserveFolio(phys: number, order: number): void {
    const s = this.#scratch;
    if (s && phys < s.start + s.size && phys + 2 ** order * PAGE_SIZE > s.start) throw new KernelError("EINVAL", "preserving scratch");
    this.preserved.set(phys / PAGE_SIZE, order);
  }

  unpreserveFolio(phys: number, order: number): void {
    if (this.preserved.get(phys / PAGE_SIZE) === order) this.preserved.delete(phys / PAGE_SIZE);
  }

  /** Hand the preserved pages over; this memory is retired. */
  kexec(): FakeRestorer {
    const keep = [...this.preserved].map(([pfn, order]) => ({ pfn, count: 2 ** order }));
    return new FakeRestorer(this.memory.handOver(keep), new Map(this.preserved));
  }
}

export class FakeRestorer implements KhoArrayRestorer {
  readonly memory: PhysicalMemory;
  /** head pfn -> order, cleared by a restore. */
  readonly stamps: Map<number, number>;

  constructor(memory: PhysicalMemory, stamps: Map<number, number>) {
    this.memory = memory;
    this.stamps = stamps;
  }

  stampOf(phys: number): { order: number } | undefined {
    const order = this.stamps.get(phys / PAGE_SIZE);
    return order === undefined ? undefined : { order };
  }

  restoreFolio(phys: number): number {
    const order = this.stamps.get(phys / PAGE_SIZE);
    if (order === undefined) throw new KernelError("EINVAL", `0x${phys.toString(16)} carries no KHOP stamp`);
    this.stamps.delete(phys / PAGE_SIZE);
    return order;
  }
}
