/**
 * The preserved runs of an image's radix map, kept compact: one ascending `Float64Array` of
 * run addresses per order (8 bytes a run, where a `Map` costs ten times that), so a 1 GiB
 * dump's worst case (every page preserved) stays a couple of MiB.
 *
 * The walk reports runs by key order: larger orders first, and within an order by ascending
 * address, so each order's list is sorted as it arrives and a lookup is a binary search.
 */
import { PAGE_SIZE, type KhoStampReader } from "@liveupdate/kho";

/** Runs and bytes of one order. */
export interface OrderTotal {
  readonly order: number;
  readonly runs: number;
  readonly bytes: number;
}

/** Every preserved run of a map, by order. */
export class RunIndex implements KhoStampReader {
  readonly #byOrder = new Map<number, { phys: Float64Array; length: number; sorted: boolean }>();
  #runs = 0;
  #bytes = 0;

  /** Record the run of `2^order` pages at `phys` (in walk order). */
  add(phys: number, order: number): void {
    let list = this.#byOrder.get(order);
    if (list === undefined) {
      list = { phys: new Float64Array(64), length: 0, sorted: true };
      this.#byOrder.set(order, list);
    }
    if (list.length === list.phys.length) {
      const grown = new Float64Array(list.phys.length * 2);
      grown.set(list.phys);
      list.phys = grown;
    }
    // A walk keeps each order ascending; anything else is sorted before the first lookup.
    if (list.length > 0 && list.phys[list.length - 1]! > phys) list.sorted = false;
    list.phys[list.length++] = phys;
    this.#runs++;
    this.#bytes += 2 ** order * PAGE_SIZE;
  }

  /** Number of runs. */
  get runs(): number {
    return this.#runs;
  }

  /** Bytes the runs cover. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Runs and bytes per order, ascending by order. */
  totals(): OrderTotal[] {
    return [...this.#byOrder.entries()]
      .sort(([a], [b]) => a - b)
      .map(([order, list]) => ({ order, runs: list.length, bytes: list.length * 2 ** order * PAGE_SIZE }));
  }

  /** The order of the run that starts at `phys`, or undefined when none does. */
  orderOf(phys: number): number | undefined {
    for (const [order, list] of this.#byOrder) {
      if (!list.sorted) {
        list.phys.subarray(0, list.length).sort();
        list.sorted = true;
      }
      let lo = 0;
      let hi = list.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        const v = list.phys[mid]!;
        if (v === phys) return order;
        if (v < phys) lo = mid + 1;
        else hi = mid - 1;
      }
    }
    return undefined;
  }

  /** As the next kernel's `KHOP` stamps: a run's head page carries its order. */
  stampOf(phys: number): { readonly order: number } | undefined {
    const order = this.orderOf(phys);
    return order === undefined ? undefined : { order };
  }

  /** {@link RunIndex.stampOf} without allocating: the order or -1. */
  stampOrderOf(phys: number): number {
    return this.orderOf(phys) ?? -1;
  }

  /** Call `visit(phys, bytes)` for every run, order by order. */
  forEach(visit: (phys: number, bytes: number) => void): void {
    for (const [order, list] of this.#byOrder) {
      const bytes = 2 ** order * PAGE_SIZE;
      for (let i = 0; i < list.length; i++) visit(list.phys[i]!, bytes);
    }
  }
}
