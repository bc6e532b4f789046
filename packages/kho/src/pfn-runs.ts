/**
 * Lists of page runs for the paths that handle one entry per preserved run (a million of
 * them is a normal workload): two growable typed arrays instead of an object per run.
 *
 * The radix walk reports runs in key order: larger orders first, ascending addresses within
 * one order. That is a handful of ascending sequences, so a natural merge sort (merge the
 * ascending stretches pairwise) sorts it in O(n log k) for k orders, and in one linear pass
 * when there is one order.
 */

/** A run of pages: `count` pages from page frame `pfn`. */
export interface PfnRun {
  readonly pfn: number;
  readonly count: number;
}

/** A growable list of `(pfn, value)` pairs in typed arrays; value is a count or an order. */
export class PfnRunList implements Iterable<PfnRun> {
  #pfns: Float64Array<ArrayBuffer>;
  #values: Float64Array<ArrayBuffer>;
  #length = 0;

  constructor(capacity = 64) {
    this.#pfns = new Float64Array(Math.max(1, capacity));
    this.#values = new Float64Array(Math.max(1, capacity));
  }

  /** A list of `runs` (objects with pfn and count). */
  static from(runs: Iterable<PfnRun>): PfnRunList {
    const list = new PfnRunList();
    for (const r of runs) list.push(r.pfn, r.count);
    return list;
  }

  get length(): number {
    return this.#length;
  }

  push(pfn: number, value: number): void {
    if (this.#length === this.#pfns.length) this.#grow();
    this.#pfns[this.#length] = pfn;
    this.#values[this.#length++] = value;
  }

  /**
   * Append `[pfn, pfn + count)`, joining it to the last entry when it starts where that one
   * ends (or inside it): runs arriving in ascending order collapse as they come.
   */
  pushJoined(pfn: number, count: number): void {
    const last = this.#length - 1;
    if (last >= 0) {
      const start = this.#pfns[last]!;
      const end = start + this.#values[last]!;
      if (pfn >= start && pfn <= end) {
        if (pfn + count > end) this.#values[last] = pfn + count - start;
        return;
      }
    }
    this.push(pfn, count);
  }

  #grow(): void {
    const size = this.#length * 4;
    const pfns = new Float64Array(size);
    pfns.set(this.#pfns);
    this.#pfns = pfns;
    const values = new Float64Array(size);
    values.set(this.#values);
    this.#values = values;
  }

  /** The pfns, as a view (valid until the next push or sort). */
  get pfns(): Float64Array {
    return this.#pfns.subarray(0, this.#length);
  }

  /** The values, as a view (valid until the next push or sort). */
  get values(): Float64Array {
    return this.#values.subarray(0, this.#length);
  }

  pfnAt(i: number): number {
    return this.#pfns[i]!;
  }

  valueAt(i: number): number {
    return this.#values[i]!;
  }

  /** Whether the pfns are ascending (ties allowed). */
  isSorted(): boolean {
    const p = this.#pfns;
    for (let i = 1; i < this.#length; i++) if (p[i]! < p[i - 1]!) return false;
    return true;
  }

  /**
   * Sort by pfn in place, stably (equal pfns keep their order): a natural merge sort, linear
   * on sorted input.
   */
  sortByPfn(): void {
    const n = this.#length;
    let bounds = [0];
    for (let i = 1; i < n; i++) if (this.#pfns[i]! < this.#pfns[i - 1]!) bounds.push(i);
    bounds.push(n);
    if (bounds.length <= 2) return;
    let srcP: Float64Array<ArrayBuffer> = this.#pfns;
    let srcV: Float64Array<ArrayBuffer> = this.#values;
    let dstP = new Float64Array(srcP.length);
    let dstV = new Float64Array(srcV.length);
    while (bounds.length > 2) {
      const next = [0];
      for (let g = 0; g + 1 < bounds.length; g += 2) {
        const a1 = bounds[g + 1]!;
        const b1 = g + 2 < bounds.length ? bounds[g + 2]! : a1;
        let i = bounds[g]!;
        let j = a1;
        let k = i;
        while (i < a1 && j < b1) {
          if (srcP[j]! < srcP[i]!) {
            dstP[k] = srcP[j]!;
            dstV[k++] = srcV[j++]!;
          } else {
            dstP[k] = srcP[i]!;
            dstV[k++] = srcV[i++]!;
          }
        }
        while (i < a1) {
          dstP[k] = srcP[i]!;
          dstV[k++] = srcV[i++]!;
        }
        while (j < b1) {
          dstP[k] = srcP[j]!;
          dstV[k++] = srcV[j++]!;
        }
        next.push(b1);
      }
      bounds = next;
      [srcP, dstP] = [dstP, srcP];
      [srcV, dstV] = [dstV, srcV];
    }
    this.#pfns = srcP;
    this.#values = srcV;
  }

  /**
   * A new list of `[pfn, pfn + count)` intervals (values read as counts), sorted, with
   * overlapping and touching runs joined.
   */
  merged(): PfnRunList {
    if (!this.isSorted()) this.sortByPfn();
    const out = new PfnRunList(16);
    let start = -1;
    let end = -1;
    for (let i = 0; i < this.#length; i++) {
      const pfn = this.#pfns[i]!;
      const stop = pfn + this.#values[i]!;
      if (start >= 0 && pfn <= end) {
        if (stop > end) end = stop;
        continue;
      }
      if (start >= 0) out.push(start, end - start);
      start = pfn;
      end = stop;
    }
    if (start >= 0) out.push(start, end - start);
    return out;
  }

  /** Each entry as `{ pfn, count }` (an object per entry: for short lists). */
  *[Symbol.iterator](): Iterator<PfnRun> {
    for (let i = 0; i < this.#length; i++) yield { pfn: this.#pfns[i]!, count: this.#values[i]! };
  }
}

/**
 * A map from page frame number to a small value (an order), as an open-addressing hash table
 * over typed arrays: a million entries cost 9 bytes each and no per-entry object (a JS
 * `Map` of that size is several times slower to fill and boxes keys above 2^30).
 * Linear probing with backward-shift deletion, so there are no tombstones.
 */
export class PfnTable {
  /** pfn + 1 per slot; 0 marks an empty slot. */
  #keys: Float64Array<ArrayBuffer>;
  #values: Uint8Array<ArrayBuffer>;
  #mask: number;
  /** 32 - log2(slots / 16): the product bits that pick a group. */
  #groupShift: number;
  #size = 0;

  constructor(capacity = 1024) {
    let slots = 32;
    while (slots < capacity * 2) slots *= 2;
    this.#keys = new Float64Array(slots);
    this.#values = new Uint8Array(slots);
    this.#mask = slots - 1;
    this.#groupShift = 32 - (31 - Math.clz32(slots >>> 4));
  }

  get size(): number {
    return this.#size;
  }

  /**
   * Groups of 16 neighbouring pfns share 16 neighbouring slots (runs restored in address
   * order touch the table almost sequentially, not one cache miss each); the groups are
   * placed by Fibonacci hashing (the product's high bits), which spreads aligned heads such
   * as every 512th pfn.
   */
  #slot(pfn: number): number {
    const lo = pfn >>> 0;
    const hi = Math.floor(pfn / 4294967296) >>> 0;
    const group = Math.imul((lo >>> 4) ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> this.#groupShift;
    return ((group << 4) | (lo & 15)) & this.#mask;
  }

  /** The value for `pfn`, or -1. */
  get(pfn: number): number {
    const key = pfn + 1;
    const keys = this.#keys;
    for (let i = this.#slot(pfn); ; i = (i + 1) & this.#mask) {
      const k = keys[i]!;
      if (k === key) return this.#values[i]!;
      if (k === 0) return -1;
    }
  }

  set(pfn: number, value: number): void {
    if ((this.#size + 1) * 2 > this.#keys.length) this.#rehash(this.#keys.length * 2);
    const key = pfn + 1;
    const keys = this.#keys;
    for (let i = this.#slot(pfn); ; i = (i + 1) & this.#mask) {
      const k = keys[i]!;
      if (k === key || k === 0) {
        if (k === 0) this.#size++;
        keys[i] = key;
        this.#values[i] = value;
        return;
      }
    }
  }

  /** Remove `pfn`; whether it was there. */
  delete(pfn: number): boolean {
    const key = pfn + 1;
    const keys = this.#keys;
    const values = this.#values;
    const mask = this.#mask;
    let i = this.#slot(pfn);
    for (; ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) break;
      if (k === 0) return false;
    }
    // Backward-shift: move later entries of the probe run into the hole when allowed.
    let hole = i;
    for (let j = (i + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const home = this.#slot(keys[j]! - 1);
      // Entry j may fill the hole if its home is not in (hole, j] (cyclically).
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        keys[hole] = keys[j]!;
        values[hole] = values[j]!;
        hole = j;
      }
    }
    keys[hole] = 0;
    values[hole] = 0;
    this.#size--;
    return true;
  }

  #rehash(slots: number): void {
    const oldKeys = this.#keys;
    const oldValues = this.#values;
    this.#keys = new Float64Array(slots);
    this.#values = new Uint8Array(slots);
    this.#mask = slots - 1;
    this.#groupShift = 32 - (31 - Math.clz32(slots >>> 4));
    this.#size = 0;
    for (let i = 0; i < oldKeys.length; i++) if (oldKeys[i] !== 0) this.set(oldKeys[i]! - 1, oldValues[i]!);
  }
}

/**
 * A growable list of numbers in a Float64Array: what the bulk paths collect (stretches of
 * adjacent runs, a few numbers each). Unlike a JS array it never changes element kind when
 * a large address follows a small count, which would send optimized code back to the
 * interpreter in the middle of a million-entry loop.
 */
export class NumberList {
  // 64 bytes: V8 keeps typed arrays this small on its heap (cheap to create, and a list is
  // created per bulk call); larger ones get a separately allocated backing store.
  #data = new Float64Array(8);
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(value: number): void {
    if (this.#length === this.#data.length) {
      const grown = new Float64Array(this.#length * 2);
      grown.set(this.#data);
      this.#data = grown;
    }
    this.#data[this.#length++] = value;
  }

  /** Entry `i` (`0 <= i < length`). */
  get(i: number): number {
    return this.#data[i]!;
  }
}

/**
 * How many entries from `list[i]` on, at least 1 and at most `most`, continue it in steps of
 * `step` (`list[i + k] === list[i] + k * step`): a stretch of adjacent runs. One small
 * function for every bulk path, so it is optimized early and stays so whatever its callers do.
 */
export function stretchLength(list: ArrayLike<number>, i: number, most: number, step: number): number {
  let n = 1;
  for (let next = list[i]! + step; n < most && list[i + n] === next; next += step) n++;
  return n;
}
