/**
 * A memfd's folio list as plain data, one typed array per field (a 4 GiB memfd has a
 * million folios: no object per folio on the hot paths).
 */

/** {@link MemfdV0FolioTable.order} of a folio whose order is not known (decoded without stamps). */
export const MEMFD_V0_ORDER_UNKNOWN = 0xff;

/** One folio of a memfd's page cache, as plain data. */
export interface MemfdV0Folio {
  /** Page offset of the folio's first page in the file (`folio->index`). */
  readonly index: number;
  /** Page frame number of the folio's head page. */
  readonly pfn: number;
  /** `MEMFD_V0_FOLIO_*` flags. */
  readonly flags: number;
  /** log2 of the folio's pages ({@link MEMFD_V0_ORDER_UNKNOWN} when not known). */
  readonly order: number;
}

/** A growable list of folios in typed arrays: `index`, `pfn`, `flags`, `order` per entry. */
export class MemfdV0FolioTable implements Iterable<MemfdV0Folio> {
  private indexes: Float64Array;
  private pfns: Float64Array;
  private flagBits: Uint16Array;
  private orders: Uint8Array;
  private count = 0;

  /** An empty table with room for `capacity` folios. */
  constructor(capacity = 16) {
    const n = Math.max(1, Math.floor(capacity));
    this.indexes = new Float64Array(n);
    this.pfns = new Float64Array(n);
    this.flagBits = new Uint16Array(n);
    this.orders = new Uint8Array(n);
  }

  /**
   * A table over existing columns (taken, not copied): entry `i` is `index[i]`, `pfn[i]`,
   * `flags[i]`, `order[i]` for `i < length`.
   */
  static fromColumns(index: Float64Array, pfn: Float64Array, flags: Uint16Array, order: Uint8Array, length: number): MemfdV0FolioTable {
    const n = Math.min(length, index.length, pfn.length, flags.length, order.length);
    const table = new MemfdV0FolioTable(1);
    table.indexes = index;
    table.pfns = pfn;
    table.flagBits = flags;
    table.orders = order;
    table.count = Math.max(0, n);
    return table;
  }

  /** A table of `folios`. */
  static from(folios: Iterable<MemfdV0Folio>): MemfdV0FolioTable {
    const table = new MemfdV0FolioTable();
    for (const f of folios) table.push(f.index, f.pfn, f.flags, f.order);
    return table;
  }

  /** Number of folios. */
  get length(): number {
    return this.count;
  }

  /** Append one folio. */
  push(index: number, pfn: number, flags: number, order: number): void {
    const i = this.count;
    if (i === this.indexes.length) this.grow(i * 2);
    this.indexes[i] = index;
    this.pfns[i] = pfn;
    this.flagBits[i] = flags;
    this.orders[i] = order;
    this.count = i + 1;
  }

  /** Page offset of folio `i`. */
  index(i: number): number {
    return this.indexes[i]!;
  }
  /** Head pfn of folio `i`. */
  pfn(i: number): number {
    return this.pfns[i]!;
  }
  /** Flags of folio `i`. */
  flags(i: number): number {
    return this.flagBits[i]!;
  }
  /** Order of folio `i`. */
  order(i: number): number {
    return this.orders[i]!;
  }

  /** Folio `i` as an object. */
  at(i: number): MemfdV0Folio {
    return { index: this.indexes[i]!, pfn: this.pfns[i]!, flags: this.flagBits[i]!, order: this.orders[i]! };
  }

  /** Every folio as an object (allocates per folio; the accessors do not). */
  *[Symbol.iterator](): Iterator<MemfdV0Folio> {
    for (let i = 0; i < this.count; i++) yield this.at(i);
  }

  private grow(size: number): void {
    const index = new Float64Array(size);
    const pfn = new Float64Array(size);
    const flags = new Uint16Array(size);
    const order = new Uint8Array(size);
    index.set(this.indexes);
    pfn.set(this.pfns);
    flags.set(this.flagBits);
    order.set(this.orders);
    this.indexes = index;
    this.pfns = pfn;
    this.flagBits = flags;
    this.orders = order;
  }
}
