/**
 * The buddy page allocator of one boot of a machine: folios of `2^order` pages, orders
 * 0..{@link MAX_PAGE_ORDER}, naturally aligned, zero-filled when handed out.
 *
 * No per-page state, so a 1 TiB machine costs nothing until it allocates:
 *
 * - untouched memory is a sorted list of free extents `[startPfn, endPfn)` (the memory
 *   ranges minus holes, minus scratch, minus page 0, minus what was reserved at boot);
 *   blocks are carved from the lowest extent only when the free lists run dry;
 * - carved memory lives in one free list per order (a set of block head pfns, plus a LIFO
 *   stack for picking one), exactly like the kernel's buddy free lists;
 * - what is handed out is one table entry per folio (head pfn -> order, a {@link PfnTable}),
 *   so a free can be checked, and a free of part of a restored page run (order-0 pages
 *   restored with `kho_restore_pages`, then freed one by one) can split it.
 *
 * Invariant: no two free buddies sit in the free lists at the same order. Freeing and
 * carving both insert through `#insertFree`, which merges with a free
 * buddy, so every fully free, aligned `2^MAX_PAGE_ORDER` block inside free memory can be
 * handed out.
 *
 * Page 0 is never handed out: a physical address of 0 means "none" in every KHO pointer.
 */
import { MAX_PAGE_ORDER, PAGE_SIZE } from "./abi.js";
import { KernelError } from "./errors.js";
import type { MemoryRange, PhysicalMemory } from "./memory.js";
import { PfnRunList, PfnTable, stretchLength, type PfnRun } from "./pfn-runs.js";

/** What to keep out of the allocator. */
export interface PageAllocatorOptions {
  /**
   * Scratch regions (the memory the next kernel boots in): reserved out of the allocator
   * for the life of the machine.
   */
  readonly scratch?: readonly MemoryRange[];
  /**
   * Pages in use before the allocator started (memory preserved by the previous kernel):
   * reserved until {@link PageAllocator.adopt} hands them to an owner, who may free them.
   * Runs may be unsorted and may overlap.
   */
  readonly reserved?: PfnRunList | Iterable<PfnRun>;
}

const TWO_32 = 2 ** 32;
/** 2^i for i in 0..63: a table lookup is much cheaper than `2 ** i` with a variable i. */
export const POW2: Float64Array = Float64Array.from({ length: 64 }, (_, i) => 2 ** i);
/** 2^-i for i in 0..63: multiplying by it divides by 2^i exactly, and far faster than a division. */
export const INV_POW2: Float64Array = Float64Array.from({ length: 64 }, (_, i) => 2 ** -i);
/** Largest block in a 52-bit physical address space (a whole adopted run can be this big). */
const MAX_BLOCK_ORDER = 40;
/** Added to the order of an owned entry whose aligned parts may be freed one by one. */
const SPLITTABLE = 64;

/** Count of trailing zero bits of a non-negative integer below 2^53 (64 for 0). */
export function trailingZeros(n: number): number {
  if (n === 0) return 64;
  const lo = n >>> 0;
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  const hi = Math.floor(n / TWO_32) >>> 0;
  return 32 + 31 - Math.clz32(hi & -hi);
}

/** floor(log2(n)) of a positive integer below 2^53. */
export function floorLog2(n: number): number {
  if (n < TWO_32) return 31 - Math.clz32(n);
  let r = Math.floor(Math.log2(n));
  // Math.log2 may round across a power of two for large n; correct by one either way.
  if (2 ** r > n) r--;
  else if (2 ** (r + 1) <= n) r++;
  return r;
}

/**
 * The order of the next aligned power-of-two run of `[pfn, endPfn)`, as the kernel splits
 * ranges (`min(count_trailing_zeros(pfn), ilog2(end - pfn))`), optionally capped.
 */
export function alignedRunOrder(pfn: number, endPfn: number, cap = Infinity): number {
  return Math.min(trailingZeros(pfn), floorLog2(endPfn - pfn), cap);
}

/** `get_order(size)`: the smallest order whose folio holds `size` bytes (size >= 1). */
export function getOrder(size: number): number {
  const pages = Math.ceil(size / PAGE_SIZE);
  return pages <= 1 ? 0 : floorLog2(pages - 1) + 1;
}

/** Free blocks of one order: membership set plus a LIFO pick stack (lazy deletion). */
class FreeList {
  readonly members = new Set<number>();
  #stack: number[] = [];

  add(pfn: number): void {
    this.members.add(pfn);
    this.#stack.push(pfn);
  }

  /** Remove a specific block (a buddy being merged); stale stack entries are skipped later. */
  remove(pfn: number): boolean {
    const had = this.members.delete(pfn);
    if (had && this.#stack.length > 4 * this.members.size + 1024) this.#stack = [...this.members];
    return had;
  }

  /** The most recently freed block, or -1. */
  pop(): number {
    const stack = this.#stack;
    while (stack.length > 0) {
      const pfn = stack.pop()!;
      if (this.members.delete(pfn)) return pfn;
    }
    return -1;
  }
}

/**
 * Whether ranges of physical memory are memory (`PhysicalMemory.contains`), remembering the
 * memory range the last answer fell in: checks of runs that cluster (a million pages
 * preserved or restored one by one) then cost two comparisons. Memory ranges never change,
 * so the remembered one stays right.
 */
export class MemoryRangeCache {
  readonly #memory: PhysicalMemory;
  #start = 0;
  #end = 0;

  constructor(memory: PhysicalMemory) {
    this.#memory = memory;
  }

  /** `memory.contains(phys, len)` for a safe-integer `phys >= 0` and `len >= 0`. */
  contains(phys: number, len: number): boolean {
    if (len > 0 && phys >= this.#start && phys + len <= this.#end) return true;
    if (!this.#memory.contains(phys, len)) return false;
    if (len > 0) {
      // Inside one (merged) range: remember it.
      for (const r of this.#memory.ranges) {
        if (phys >= r.start && phys < r.start + r.size) {
          this.#start = r.start;
          this.#end = r.start + r.size;
          break;
        }
      }
    }
    return true;
  }
}

/** Pages per chunk of the order-0 ownership bitmaps (16 MiB of memory). */
const OWNED_CHUNK_PAGES = 4096;
const OWNED_CHUNK_WORDS = OWNED_CHUNK_PAGES / 32;
/** Value of an owned order-0 page restored with `kho_restore_pages` (freed page by page). */
const SPLITTABLE_PAGE = SPLITTABLE;

/**
 * Handed-out folios, head pfn -> order (+ SPLITTABLE), as a map would hold them. Order-0
 * entries (most of them: single pages, restored page runs) are bits of per-chunk bitmaps, so
 * a million of them cost a bit each to set and to test; other entries live in a
 * {@link PfnTable}, flagged in the chunk's third bitmap so that a lookup of a page that owns
 * nothing never probes the table. Keys that are not page frame numbers (never stored) go
 * to the table, which answers as it always did.
 */
class OwnedFolios {
  readonly #table: PfnTable;
  /** chunk index -> [order-0 folio bits | SPLITTABLE page bits | "in the table" bits]. */
  readonly #chunks = new Map<number, Uint32Array>();
  #bitEntries = 0;
  #lastChunk = -1;
  #lastBits: Uint32Array | undefined;

  constructor(capacity: number) {
    this.#table = new PfnTable(capacity);
  }

  get size(): number {
    return this.#table.size + this.#bitEntries;
  }

  /** The chunk bitmaps of `chunk`, created when `create`. */
  #bits(chunk: number, create: boolean): Uint32Array | undefined {
    if (chunk === this.#lastChunk) return this.#lastBits;
    let bits = this.#chunks.get(chunk);
    if (bits === undefined) {
      if (!create) return undefined;
      bits = new Uint32Array(OWNED_CHUNK_WORDS * 3);
      this.#chunks.set(chunk, bits);
    }
    this.#lastChunk = chunk;
    this.#lastBits = bits;
    return bits;
  }

  /** The value for `pfn`, or -1. */
  get(pfn: number): number {
    if (!isPfn(pfn)) return this.#table.get(pfn);
    const chunk = Math.floor(pfn / OWNED_CHUNK_PAGES);
    const bits = this.#bits(chunk, false);
    if (bits === undefined) return -1;
    const index = pfn - chunk * OWNED_CHUNK_PAGES;
    const word = index >>> 5;
    const mask = 1 << (index & 31);
    if ((bits[word]! & mask) !== 0) return 0;
    if ((bits[OWNED_CHUNK_WORDS + word]! & mask) !== 0) return SPLITTABLE_PAGE;
    if ((bits[2 * OWNED_CHUNK_WORDS + word]! & mask) !== 0) return this.#table.get(pfn);
    return -1;
  }

  set(pfn: number, value: number): void {
    if (!isPfn(pfn)) {
      this.#table.set(pfn, value);
      return;
    }
    const chunk = Math.floor(pfn / OWNED_CHUNK_PAGES);
    const bits = this.#bits(chunk, true)!;
    const index = pfn - chunk * OWNED_CHUNK_PAGES;
    const word = index >>> 5;
    const mask = 1 << (index & 31);
    this.#clearBits(bits, pfn, word, mask);
    if (value === 0 || value === SPLITTABLE_PAGE) {
      const at = value === 0 ? word : OWNED_CHUNK_WORDS + word;
      bits[at] = bits[at]! | mask;
      this.#bitEntries++;
    } else {
      this.#table.set(pfn, value);
      const at = 2 * OWNED_CHUNK_WORDS + word;
      bits[at] = bits[at]! | mask;
    }
  }

  /**
   * `set(p, value)` for every page `p` of `[pfn, pfn + count)`, an order-0 value (0 or
   * SPLITTABLE_PAGE), a word of bits at a time.
   */
  setPages(pfn: number, count: number, value: number): void {
    const target = value === 0 ? 0 : OWNED_CHUNK_WORDS;
    const end = pfn + count;
    let p = pfn;
    while (p < end) {
      const chunk = Math.floor(p / OWNED_CHUNK_PAGES);
      const bits = this.#bits(chunk, true)!;
      const chunkStart = chunk * OWNED_CHUNK_PAGES;
      const stop = Math.min(end, chunkStart + OWNED_CHUNK_PAGES);
      while (p < stop) {
        const index = p - chunkStart;
        const word = index >>> 5;
        const shift = index & 31;
        const take = Math.min(32 - shift, stop - p);
        const mask = take === 32 ? -1 : ((1 << take) - 1) << shift;
        // Whatever these pages held goes first (as set() replaces an entry).
        const inTable = bits[2 * OWNED_CHUNK_WORDS + word]! & mask;
        if (inTable !== 0) {
          for (let b = 0; b < 32; b++) if ((inTable & (1 << b)) !== 0) this.#table.delete(chunkStart + word * 32 + b);
          bits[2 * OWNED_CHUNK_WORDS + word] = bits[2 * OWNED_CHUNK_WORDS + word]! & ~mask;
        }
        this.#bitEntries -= popcount32(bits[word]! & mask) + popcount32(bits[OWNED_CHUNK_WORDS + word]! & mask);
        bits[word] = bits[word]! & ~mask;
        bits[OWNED_CHUNK_WORDS + word] = bits[OWNED_CHUNK_WORDS + word]! & ~mask;
        bits[target + word] = bits[target + word]! | mask;
        this.#bitEntries += take;
        p += take;
      }
    }
  }

  /** Remove `pfn`; whether it was there. */
  delete(pfn: number): boolean {
    if (!isPfn(pfn)) return this.#table.delete(pfn);
    const chunk = Math.floor(pfn / OWNED_CHUNK_PAGES);
    const bits = this.#bits(chunk, false);
    if (bits === undefined) return false;
    const index = pfn - chunk * OWNED_CHUNK_PAGES;
    return this.#clearBits(bits, pfn, index >>> 5, 1 << (index & 31));
  }

  /** Drop whatever `pfn` holds; whether it held something. */
  #clearBits(bits: Uint32Array, pfn: number, word: number, mask: number): boolean {
    const inv = ~mask;
    if ((bits[word]! & mask) !== 0) {
      bits[word] = bits[word]! & inv;
      this.#bitEntries--;
      return true;
    }
    const pageWord = OWNED_CHUNK_WORDS + word;
    if ((bits[pageWord]! & mask) !== 0) {
      bits[pageWord] = bits[pageWord]! & inv;
      this.#bitEntries--;
      return true;
    }
    const tableWord = 2 * OWNED_CHUNK_WORDS + word;
    if ((bits[tableWord]! & mask) !== 0) {
      bits[tableWord] = bits[tableWord]! & inv;
      this.#table.delete(pfn);
      return true;
    }
    return false;
  }
}

/** Number of set bits of a 32-bit value. */
function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/** Whether `n` is a page frame number the bitmaps can hold (a safe integer >= 0). */
function isPfn(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** The buddy allocator of one machine boot. See the module comment. */
export class PageAllocator {
  readonly memory: PhysicalMemory;
  /** Scratch regions, reserved out of the allocator. */
  readonly scratch: readonly MemoryRange[];
  /** Pages the allocator manages (free or handed out), excluding scratch and boot reservations. */
  readonly managedPages: number;
  readonly #free: FreeList[] = [];
  /** Untouched free extents, ascending; `#next` is the first not yet carved away. */
  readonly #extStart: number[];
  readonly #extEnd: number[];
  #next = 0;
  #freePages = 0;
  /** Handed-out folios: head pfn -> order (+ SPLITTABLE for restored page runs). */
  readonly #owned: OwnedFolios;
  readonly #ranges: MemoryRangeCache;

  constructor(memory: PhysicalMemory, options: PageAllocatorOptions = {}) {
    this.memory = memory;
    const scratch = options.scratch ?? [];
    for (const s of scratch) {
      if (!memory.contains(s.start, s.size) || s.start % PAGE_SIZE !== 0 || s.size % PAGE_SIZE !== 0 || s.size <= 0) {
        throw new KernelError("EINVAL", `scratch 0x${s.start.toString(16)}+0x${s.size.toString(16)} is not page-aligned memory`);
      }
    }
    this.scratch = Object.freeze(scratch.map((s) => ({ start: s.start, size: s.size })));
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) this.#free.push(new FreeList());

    // Free extents = memory ranges minus (page 0, scratch, reserved), in one sweep.
    const exclude = new PfnRunList();
    exclude.push(0, 1);
    for (const s of this.scratch) exclude.push(s.start / PAGE_SIZE, s.size / PAGE_SIZE);
    const reserved = options.reserved ?? [];
    if (reserved instanceof PfnRunList) {
      for (let i = 0; i < reserved.length; i++) exclude.push(reserved.pfnAt(i), reserved.valueAt(i));
    } else {
      for (const r of reserved) exclude.push(r.pfn, r.count);
    }
    const excluded = exclude.merged();
    // Sized for the reserved runs: each may come back through adopt (restore).
    this.#owned = new OwnedFolios(Math.max(1024, exclude.length));
    this.#ranges = new MemoryRangeCache(memory);
    const extStart: number[] = [];
    const extEnd: number[] = [];
    let x = 0;
    for (const r of memory.ranges) {
      let pfn = r.start / PAGE_SIZE;
      const end = (r.start + r.size) / PAGE_SIZE;
      while (x < excluded.length && excluded.pfnAt(x) + excluded.valueAt(x) <= pfn) x++;
      let k = x;
      while (pfn < end) {
        const exStart = k < excluded.length ? excluded.pfnAt(k) : Infinity;
        if (exStart >= end) {
          extStart.push(pfn);
          extEnd.push(end);
          break;
        }
        if (exStart > pfn) {
          extStart.push(pfn);
          extEnd.push(exStart);
        }
        pfn = Math.max(pfn, excluded.pfnAt(k) + excluded.valueAt(k));
        k++;
      }
    }
    this.#extStart = extStart;
    this.#extEnd = extEnd;
    let pages = 0;
    for (let i = 0; i < extStart.length; i++) pages += extEnd[i]! - extStart[i]!;
    this.managedPages = pages;
    this.#freePages = pages;
  }

  /** Pages currently free (in the free lists or never carved). */
  get freePages(): number {
    return this.#freePages;
  }

  /** Number of folios currently handed out. */
  get ownedFolios(): number {
    return this.#owned.size;
  }

  /**
   * A zeroed folio of `2^order` pages, naturally aligned; its physical address.
   *
   * @throws KernelError `EINVAL` for an order outside 0..MAX_PAGE_ORDER, `ENOMEM` when no
   *   free block is large enough.
   */
  allocFolio(order: number): number {
    if (!Number.isInteger(order) || order < 0 || order > MAX_PAGE_ORDER) {
      throw new KernelError("EINVAL", `folio order ${order} is outside 0..${MAX_PAGE_ORDER}`);
    }
    let from = this.#smallestFreeOrder(order);
    while (from < 0 && this.#carve()) from = this.#smallestFreeOrder(order);
    if (from < 0) throw new KernelError("ENOMEM", `no free block of order ${order} (${this.#freePages} pages free)`);
    const pfn = this.#free[from]!.pop();
    // Split: keep the lower half, hand the upper halves back, one per order.
    for (let o = from - 1; o >= order; o--) this.#free[o]!.add(pfn + 2 ** o);
    this.#freePages -= 2 ** order;
    this.#owned.set(pfn, order);
    this.memory.zero(pfn * PAGE_SIZE, PAGE_SIZE * 2 ** order);
    return pfn * PAGE_SIZE;
  }

  /**
   * Give a folio (or an aligned part of one: a page of a restored run) back.
   *
   * @throws KernelError `EINVAL` when `[phys, 2^order pages)` is not an aligned block inside
   *   a folio this allocator handed out or adopted.
   */
  freeFolio(phys: number, order: number): void {
    const pfn = this.#checkBlock(phys, order);
    const owned = this.#owned.get(pfn);
    if (owned === order || owned === order + SPLITTABLE) {
      this.#owned.delete(pfn);
    } else {
      // A page range restored with kho_restore_pages: split the owner, keep the rest owned.
      const head = this.#splittableOwnerOf(pfn, order);
      if (head === undefined) {
        throw new KernelError("EINVAL", `0x${phys.toString(16)} order ${order} is not an allocated folio`);
      }
      let o = this.#owned.get(head) - SPLITTABLE;
      this.#owned.delete(head);
      let base = head;
      while (o > order) {
        o--;
        const half = 2 ** o;
        // Keep the half that does not hold `pfn` owned; descend into the other.
        if (pfn >= base + half) {
          this.#owned.set(base, o + SPLITTABLE);
          base += half;
        } else {
          this.#owned.set(base + half, o + SPLITTABLE);
        }
      }
    }
    this.#releaseRange(pfn, pfn + 2 ** order);
  }

  /**
   * Hand reserved pages (memory preserved by the previous kernel, just restored) to an
   * owner, who may later free them. The caller guarantees they were reserved at boot.
   * `asPages`: restored as order-0 pages (`kho_restore_pages`), so each aligned part may be
   * freed on its own; otherwise a folio, freed whole.
   */
  adopt(phys: number, order: number, asPages = false): void {
    const pfn = this.#checkBlock(phys, order);
    this.#owned.set(pfn, order + (asPages ? SPLITTABLE : 0));
  }

  /**
   * {@link PageAllocator.adopt} of every block `physList[i]` of `order`, `from <= i < to`: all
   * checked first (a failure adopts nothing), then adopted in list order.
   *
   * @throws KernelError `EINVAL` for the first entry that is not an aligned block of memory.
   */
  adoptMany(physList: ArrayLike<number>, order: number, asPages = false, from = 0, to: number = physList.length): void {
    if (from >= to) return;
    const size = PAGE_SIZE * POW2[order]!;
    // Check: entries that continue each other in memory are checked as one span.
    for (let i = from; i < to; ) {
      const phys = physList[i]!;
      this.#checkBlock(phys, order);
      const n = stretchLength(physList, i, to - i, size);
      if (n > 1 && !this.#ranges.contains(phys, n * size)) for (let k = 1; k < n; k++) this.#checkBlock(phys + k * size, order);
      i += n;
    }
    const value = order + (asPages ? SPLITTABLE : 0);
    const owned = this.#owned;
    const pages = POW2[order]!;
    for (let i = from; i < to; ) {
      const pfn = physList[i]! / PAGE_SIZE;
      const n = stretchLength(physList, i, to - i, size);
      if (order === 0) owned.setPages(pfn, n, value);
      else for (let k = 0; k < n; k++) owned.set(pfn + k * pages, value);
      i += n;
    }
  }

  /**
   * {@link PageAllocator.adopt} of `count` adjacent blocks of `order` from `phys` (`phys`,
   * `phys + 2^order pages`, ...), checked as one span first.
   *
   * @throws KernelError `EINVAL` when the span is not aligned blocks of memory (nothing adopted).
   */
  adoptRange(phys: number, count: number, order: number, asPages = false): void {
    if (!Number.isSafeInteger(count) || count < 0) throw new KernelError("EINVAL", `block count ${count} is not a count`);
    if (count === 0) return;
    this.#checkBlock(phys, order);
    const size = PAGE_SIZE * POW2[order]!;
    if (!this.#ranges.contains(phys, count * size)) for (let k = 1; k < count; k++) this.#checkBlock(phys + k * size, order);
    const value = order + (asPages ? SPLITTABLE : 0);
    const pfn = phys / PAGE_SIZE;
    if (order === 0) this.#owned.setPages(pfn, count, value);
    else for (let k = 0; k < count; k++) this.#owned.set(pfn + k * POW2[order]!, value);
  }

  /** Whether `[phys, 2^order pages)` is exactly a folio (or adopted page run) handed out. */
  isOwned(phys: number, order: number): boolean {
    const owned = this.#owned.get(phys / PAGE_SIZE);
    return owned === order || owned === order + SPLITTABLE;
  }

  #checkBlock(phys: number, order: number): number {
    if (!Number.isInteger(order) || order < 0 || order > MAX_BLOCK_ORDER) {
      throw new KernelError("EINVAL", `order ${order} is not a folio order`);
    }
    const size = PAGE_SIZE * POW2[order]!;
    if (!Number.isSafeInteger(phys) || phys < 0 || phys % size !== 0 || !this.#ranges.contains(phys, size)) {
      throw new KernelError("EINVAL", `0x${phys.toString(16)} is not an order-${order} aligned block of memory`);
    }
    return phys / PAGE_SIZE;
  }

  /** The head of the adopted page run that strictly contains the block, if any. */
  #splittableOwnerOf(pfn: number, order: number): number | undefined {
    for (let o = order + 1; o <= MAX_BLOCK_ORDER; o++) {
      const size = 2 ** o;
      const head = Math.floor(pfn / size) * size;
      if (this.#owned.get(head) === o + SPLITTABLE) return head;
    }
    return undefined;
  }

  /** Free every page of `[pfn, end)` as aligned blocks of at most MAX_PAGE_ORDER. */
  #releaseRange(pfn: number, end: number): void {
    this.#freePages += end - pfn;
    while (pfn < end) {
      const order = alignedRunOrder(pfn, end, MAX_PAGE_ORDER);
      this.#insertFree(pfn, order);
      pfn += 2 ** order;
    }
  }

  /** Put a free block in its list, merging with its free buddy as far as possible. */
  #insertFree(pfn: number, order: number): void {
    while (order < MAX_PAGE_ORDER) {
      const size = 2 ** order;
      const lower = Math.floor(pfn / size) % 2 === 0;
      const buddy = lower ? pfn + size : pfn - size;
      if (!this.#free[order]!.remove(buddy)) break;
      if (!lower) pfn = buddy;
      order++;
    }
    this.#free[order]!.add(pfn);
  }

  #smallestFreeOrder(order: number): number {
    for (let o = order; o <= MAX_PAGE_ORDER; o++) if (this.#free[o]!.members.size > 0) return o;
    return -1;
  }

  /** Move the next aligned block of the lowest untouched extent into the free lists. */
  #carve(): boolean {
    while (this.#next < this.#extStart.length) {
      const start = this.#extStart[this.#next]!;
      const end = this.#extEnd[this.#next]!;
      if (start >= end) {
        this.#next++;
        continue;
      }
      const order = alignedRunOrder(start, end, MAX_PAGE_ORDER);
      this.#extStart[this.#next] = start + 2 ** order;
      this.#insertFree(start, order);
      return true;
    }
    return false;
  }
}
