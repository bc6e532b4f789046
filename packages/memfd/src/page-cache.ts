/**
 * The page cache of one file (`inode->i_mapping`): page index -> the folio holding that page.
 *
 * Folios are naturally aligned blocks of `2^order` pages, order 0..{@link MAX_FOLIO_ORDER}
 * (9: a PMD-sized THP), both in physical memory and in the file's index space, as shmem
 * keeps them. The index space is cut into 512-page chunks, so a folio never straddles two;
 * a chunk exists only while it holds a folio, so holes cost nothing.
 *
 * ```text
 * chunk (512 slots, index & 511):
 *   pagePhys[slot]  physical address of the page at this index (head phys + offset), 0 = hole
 *   orders[slot]    the folio's order, on every page of it (finds the head: index & ~(2^order - 1))
 *   flags[slot]     folio flags (FOLIO_DIRTY | FOLIO_UPTODATE), meaningful on the head slot only
 * ```
 *
 * Struct-of-arrays per chunk: no object per folio, so a 4 GiB file of a million order-0
 * folios costs 2048 chunks of ~5 KiB.
 */
import { PAGE_SIZE } from "@liveupdate/kho";

/** The largest folio order shmem uses on x86-64 (`HPAGE_PMD_ORDER`, a 2 MiB THP). */
export const MAX_FOLIO_ORDER = 9;
/** Folio flag: the folio holds data written by the user (`PG_dirty`). Same bit as `MEMFD_LUO_FOLIO_DIRTY`. */
export const FOLIO_DIRTY = 0x1;
/** Folio flag: the folio's contents are valid (`PG_uptodate`); a folio without it reads as zeros. Same bit as `MEMFD_LUO_FOLIO_UPTODATE`. */
export const FOLIO_UPTODATE = 0x2;

const CHUNK_SHIFT = MAX_FOLIO_ORDER;
const CHUNK_PAGES = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_PAGES - 1;

/** One folio of a page cache, as reported by iteration. */
export interface CachedFolio {
  /** Page index of the folio's first page. */
  readonly index: number;
  /** Physical address of the folio (its first page). */
  readonly phys: number;
  /** The folio is `2^order` pages. */
  readonly order: number;
  /** `FOLIO_DIRTY` | `FOLIO_UPTODATE`. */
  readonly flags: number;
}

class Chunk {
  readonly pagePhys = new Float64Array(CHUNK_PAGES);
  readonly orders = new Uint8Array(CHUNK_PAGES);
  readonly flags = new Uint8Array(CHUNK_PAGES);
  /** Pages of this chunk that hold a folio. */
  pages = 0;
}

/** The page cache of one file. See the module comment. */
export class PageCache {
  readonly #chunks = new Map<number, Chunk>();
  #folios = 0;
  #pages = 0;
  /** The chunk looked up last (folio operations come in runs of neighbouring indices). */
  #lastKey = -1;
  #lastChunk: Chunk | undefined;
  /** Chunk keys ascending, rebuilt lazily after a chunk is added or dropped. */
  #sortedKeys: number[] | undefined = [];

  /** Number of folios cached. */
  get folioCount(): number {
    return this.#folios;
  }

  /** Number of pages those folios hold. */
  get pageCount(): number {
    return this.#pages;
  }

  /** Physical address of the page at `index`, or 0 for a hole. */
  pagePhys(index: number): number {
    const chunk = this.#chunk(Math.floor(index / CHUNK_PAGES));
    return chunk === undefined ? 0 : chunk.pagePhys[index & CHUNK_MASK]!;
  }

  /** Order of the folio holding page `index`, or -1 for a hole. */
  orderAt(index: number): number {
    const chunk = this.#chunk(Math.floor(index / CHUNK_PAGES));
    if (chunk === undefined) return -1;
    const slot = index & CHUNK_MASK;
    return chunk.pagePhys[slot] === 0 ? -1 : chunk.orders[slot]!;
  }

  /** Page index of the head of the folio holding page `index`, or -1 for a hole. */
  headOf(index: number): number {
    const chunk = this.#chunk(Math.floor(index / CHUNK_PAGES));
    if (chunk === undefined) return -1;
    const slot = index & CHUNK_MASK;
    if (chunk.pagePhys[slot] === 0) return -1;
    const span = 1 << chunk.orders[slot]!;
    return index - (slot & (span - 1));
  }

  /** The folio holding page `index`, or undefined for a hole. */
  folioAt(index: number): CachedFolio | undefined {
    const head = this.headOf(index);
    if (head < 0) return undefined;
    const chunk = this.#chunk(Math.floor(head / CHUNK_PAGES))!;
    const slot = head & CHUNK_MASK;
    return { index: head, phys: chunk.pagePhys[slot]!, order: chunk.orders[slot]!, flags: chunk.flags[slot]! };
  }

  /** Flags of the folio whose head is at `head` (0 for a hole). */
  flagsOf(head: number): number {
    const chunk = this.#chunk(Math.floor(head / CHUNK_PAGES));
    return chunk === undefined ? 0 : chunk.flags[head & CHUNK_MASK]!;
  }

  /** Replace the flags of the folio whose head is at `head`. */
  setFlags(head: number, flags: number): void {
    const chunk = this.#chunk(Math.floor(head / CHUNK_PAGES));
    if (chunk !== undefined && chunk.pagePhys[head & CHUNK_MASK] !== 0) chunk.flags[head & CHUNK_MASK] = flags;
  }

  /** Set `bits` in the flags of every folio with a page in `[from, to)`. */
  orFlags(from: number, to: number, bits: number): void {
    this.#eachChunk(from, to, (chunk, first, end) => {
      const phys = chunk.pagePhys;
      const orders = chunk.orders;
      let slot = first;
      if (phys[slot] !== 0) slot -= slot & ((1 << orders[slot]!) - 1);
      while (slot < end) {
        if (phys[slot] === 0) {
          slot++;
          continue;
        }
        chunk.flags[slot]! |= bits;
        slot += 1 << orders[slot]!;
      }
    });
  }

  /** Whether no page of `[index, index + count)` is cached (`count` within one chunk). */
  isEmpty(index: number, count: number): boolean {
    const chunk = this.#chunk(Math.floor(index / CHUNK_PAGES));
    if (chunk === undefined) return true;
    const start = index & CHUNK_MASK;
    const phys = chunk.pagePhys;
    for (let s = start; s < start + count; s++) if (phys[s] !== 0) return false;
    return true;
  }

  /**
   * Insert a folio of `2^order` pages at `phys` as pages `[index, index + 2^order)`, if that
   * range is empty; returns whether it was. `index` must be aligned to the order.
   */
  insert(index: number, phys: number, order: number, flags: number): boolean {
    const key = Math.floor(index / CHUNK_PAGES);
    let chunk = this.#chunk(key);
    const slot = index & CHUNK_MASK;
    const span = 1 << order;
    if (chunk === undefined) {
      chunk = new Chunk();
      this.#chunks.set(key, chunk);
      this.#sortedKeys = undefined;
    } else {
      for (let s = slot; s < slot + span; s++) if (chunk.pagePhys[s] !== 0) return false;
    }
    for (let s = 0; s < span; s++) {
      chunk.pagePhys[slot + s] = phys + s * PAGE_SIZE;
      chunk.orders[slot + s] = order;
    }
    chunk.flags[slot] = flags;
    chunk.pages += span;
    this.#folios++;
    this.#pages += span;
    return true;
  }

  /** Remove the folio whose head is at `head`; returns it (undefined when there is none). */
  remove(head: number): CachedFolio | undefined {
    const key = Math.floor(head / CHUNK_PAGES);
    const chunk = this.#chunk(key);
    if (chunk === undefined) return undefined;
    const slot = head & CHUNK_MASK;
    const phys = chunk.pagePhys[slot]!;
    if (phys === 0) return undefined;
    const order = chunk.orders[slot]!;
    const flags = chunk.flags[slot]!;
    const span = 1 << order;
    chunk.pagePhys.fill(0, slot, slot + span);
    chunk.orders.fill(0, slot, slot + span);
    chunk.flags[slot] = 0;
    chunk.pages -= span;
    this.#folios--;
    this.#pages -= span;
    if (chunk.pages === 0) {
      this.#chunks.delete(key);
      this.#sortedKeys = undefined;
      this.#lastKey = -1;
      this.#lastChunk = undefined;
    }
    return { index: head, phys, order, flags };
  }

  /**
   * Visit every folio that has a page in `[from, to)`, ascending by index. `visit` gets the
   * head index, physical address, order and flags; it may read the cache but not change it.
   */
  forEach(from: number, to: number, visit: (index: number, phys: number, order: number, flags: number) => void): void {
    this.#eachChunk(from, to, (chunk, first, end, base) => {
      const phys = chunk.pagePhys;
      const orders = chunk.orders;
      let slot = first;
      // Start at the head of a folio that begins before `from`.
      if (phys[slot] !== 0) slot -= slot & ((1 << orders[slot]!) - 1);
      while (slot < end) {
        const p = phys[slot]!;
        if (p === 0) {
          slot++;
          continue;
        }
        const order = orders[slot]!;
        visit(base + slot, p, order, chunk.flags[slot]!);
        slot += 1 << order;
      }
    });
  }

  /**
   * Visit the chunks holding pages of `[from, to)` in ascending order, with the slot range of
   * each inside it and its first page index. Walks the chunk keys of the range, or the sorted
   * keys when the range is mostly empty (a sparse file).
   */
  #eachChunk(from: number, to: number, visit: (chunk: Chunk, firstSlot: number, endSlot: number, base: number) => void): void {
    if (to <= from) return;
    const firstKey = Math.floor(from / CHUNK_PAGES);
    const lastKey = Math.floor((to - 1) / CHUNK_PAGES);
    const one = (key: number, chunk: Chunk): void => {
      const base = key * CHUNK_PAGES;
      visit(chunk, key === firstKey ? from - base : 0, key === lastKey ? to - base : CHUNK_PAGES, base);
    };
    if (lastKey - firstKey + 1 <= 4 * this.#chunks.size) {
      for (let key = firstKey; key <= lastKey; key++) {
        const chunk = this.#chunks.get(key);
        if (chunk !== undefined) one(key, chunk);
      }
    } else {
      for (const key of this.#keys()) {
        if (key < firstKey) continue;
        if (key > lastKey) break;
        one(key, this.#chunks.get(key)!);
      }
    }
  }

  /** The first page index `>= from` that holds a folio for which `accept(flags)` is true, or -1. */
  findPage(from: number, accept: (flags: number) => boolean): number {
    for (const key of this.#keys()) {
      if ((key + 1) * CHUNK_PAGES <= from) continue;
      const chunk = this.#chunks.get(key)!;
      const base = key * CHUNK_PAGES;
      for (let slot = Math.max(0, from - base); slot < CHUNK_PAGES; slot++) {
        if (chunk.pagePhys[slot] === 0) continue;
        const head = slot - (slot & ((1 << chunk.orders[slot]!) - 1));
        if (accept(chunk.flags[head]!)) return base + slot;
      }
    }
    return -1;
  }

  #chunk(key: number): Chunk | undefined {
    if (key === this.#lastKey) return this.#lastChunk;
    const chunk = this.#chunks.get(key);
    if (chunk !== undefined) {
      this.#lastKey = key;
      this.#lastChunk = chunk;
    }
    return chunk;
  }

  #keys(): number[] {
    this.#sortedKeys ??= [...this.#chunks.keys()].sort((a, b) => a - b);
    return this.#sortedKeys;
  }
}
