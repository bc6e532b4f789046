/**
 * Physical memory: 4 KiB pages at 52-bit physical addresses, in ranges with holes
 * between them (a machine of a few MiB to beyond 1 TiB).
 *
 * Sparse by construction. A page is in one of three states:
 *
 * - background: never written since boot; reads as the memory's background, zero on a
 *   cold-booted machine, the poison pattern on a machine that came out of `kexec`;
 * - zero: known zero without storage (a preserved page the old kernel never wrote, a page
 *   cleared whole);
 * - data: backed by its own 4 KiB buffer.
 *
 * Only data pages cost memory (plus one bit per page of 128 MiB chunks that hold zero
 * pages), so a 64 GiB machine with 16 GiB preserved and never written costs almost nothing,
 * before and after `kexec`. Addresses are JS numbers: 52 bits fit a double exactly.
 */
import { PAGE_SIZE, PHYS_ADDR_BITS } from "./abi.js";
import { KernelError } from "./errors.js";

/** A range of physical memory, in bytes, page-aligned. */
export interface MemoryRange {
  readonly start: number;
  readonly size: number;
}

/** What never-written pages read as. */
export type MemoryBackground = "zero" | "poison";

/** The byte every poisoned page is filled with (slab's `POISON_FREE`). */
export const POISON_BYTE = 0x6b;

/** State of one page, see the module comment. */
export type PageState = "background" | "zero" | "data";

const CHUNK_SHIFT = 15; // pages per zero-bitmap chunk: 2^15 pages = 128 MiB
const CHUNK_PAGES = 1 << CHUNK_SHIFT;
const MAX_PHYS = 2 ** PHYS_ADDR_BITS;

const ZERO_PAGE = new Uint8Array(PAGE_SIZE);
const POISON_PAGE = new Uint8Array(PAGE_SIZE).fill(POISON_BYTE);

/** Sorted, merged, validated copy of `ranges`. */
function normaliseRanges(ranges: readonly MemoryRange[]): MemoryRange[] {
  for (const r of ranges) {
    if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.size) || r.start < 0 || r.size <= 0) {
      throw new KernelError("EINVAL", `memory range ${r.start}+${r.size} is not a positive byte range`);
    }
    if (r.start % PAGE_SIZE !== 0 || r.size % PAGE_SIZE !== 0) {
      throw new KernelError("EINVAL", `memory range 0x${r.start.toString(16)}+0x${r.size.toString(16)} is not page-aligned`);
    }
    if (r.start + r.size > MAX_PHYS) throw new KernelError("EINVAL", `memory range ends beyond 2^${PHYS_ADDR_BITS}`);
  }
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const out: MemoryRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start < last.start + last.size) throw new KernelError("EINVAL", `memory ranges overlap at 0x${r.start.toString(16)}`);
    if (last && r.start === last.start + last.size) out[out.length - 1] = { start: last.start, size: last.size + r.size };
    else out.push({ start: r.start, size: r.size });
  }
  if (out.length === 0) throw new KernelError("EINVAL", "no memory");
  return out;
}

/** The sparse physical memory of one machine (one boot of it). */
export class PhysicalMemory {
  readonly ranges: readonly MemoryRange[];
  readonly background: MemoryBackground;
  /** Sum of the ranges' sizes. */
  readonly totalBytes: number;
  readonly #startPfn: Float64Array;
  readonly #endPfn: Float64Array;
  readonly #data = new Map<number, Uint8Array>();
  readonly #zero = new Map<number, Uint8Array>(); // chunk index -> bitmap of zero pages
  #retired: string | undefined;

  constructor(ranges: readonly MemoryRange[], background: MemoryBackground = "zero") {
    this.ranges = Object.freeze(normaliseRanges(ranges));
    this.background = background;
    this.#startPfn = Float64Array.from(this.ranges, (r) => r.start / PAGE_SIZE);
    this.#endPfn = Float64Array.from(this.ranges, (r) => (r.start + r.size) / PAGE_SIZE);
    this.totalBytes = this.ranges.reduce((n, r) => n + r.size, 0);
  }

  /** One past the highest page frame number. */
  get endPfn(): number {
    return this.#endPfn[this.#endPfn.length - 1]!;
  }

  /** Number of pages backed by their own buffer. */
  get dataPageCount(): number {
    return this.#data.size;
  }

  /** Whether `pfn` is inside a memory range. */
  isValidPfn(pfn: number): boolean {
    return this.#rangeOf(pfn) >= 0;
  }

  /** Whether `[phys, phys + len)` lies in memory (any number of ranges, no hole). */
  contains(phys: number, len: number): boolean {
    if (!Number.isSafeInteger(phys) || !Number.isSafeInteger(len) || phys < 0 || len < 0) return false;
    if (len === 0) return this.#rangeOf(Math.floor(phys / PAGE_SIZE)) >= 0;
    let pfn = Math.floor(phys / PAGE_SIZE);
    const last = Math.floor((phys + len - 1) / PAGE_SIZE);
    while (pfn <= last) {
      const r = this.#rangeOf(pfn);
      if (r < 0) return false;
      pfn = this.#endPfn[r]!;
    }
    return true;
  }

  /** The state of page `pfn`. */
  pageState(pfn: number): PageState {
    this.#check(pfn * PAGE_SIZE, PAGE_SIZE);
    if (this.#data.has(pfn)) return "data";
    return this.#isZero(pfn) ? "zero" : "background";
  }

  /**
   * The page's contents, read-only: its own buffer for a data page, a shared zero or poison
   * page otherwise. Do not write to it; use {@link pageForWrite}.
   */
  readPage(pfn: number): Uint8Array {
    this.#check(pfn * PAGE_SIZE, PAGE_SIZE);
    return this.#data.get(pfn) ?? this.#implicit(pfn);
  }

  /** The page's own buffer, materialised (with its current contents) if it had none. */
  pageForWrite(pfn: number): Uint8Array {
    this.#check(pfn * PAGE_SIZE, PAGE_SIZE);
    let page = this.#data.get(pfn);
    if (!page) {
      page = new Uint8Array(PAGE_SIZE);
      if (!this.#isZero(pfn) && this.background === "poison") page.fill(POISON_BYTE);
      this.#data.set(pfn, page);
    }
    return page;
  }

  /** Copy `len` bytes at `phys` into a new array. */
  read(phys: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(phys, out);
    return out;
  }

  /** Copy `dst.length` bytes at `phys` into `dst`. */
  readInto(phys: number, dst: Uint8Array): void {
    this.#check(phys, dst.length);
    let done = 0;
    while (done < dst.length) {
      const at = phys + done;
      const pfn = Math.floor(at / PAGE_SIZE);
      const off = at - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, dst.length - done);
      const page = this.#data.get(pfn) ?? this.#implicit(pfn);
      dst.set(n === PAGE_SIZE ? page : page.subarray(off, off + n), done);
      done += n;
    }
  }

  /** Write `src` at `phys`. */
  write(phys: number, src: Uint8Array): void {
    this.#check(phys, src.length);
    let done = 0;
    while (done < src.length) {
      const at = phys + done;
      const pfn = Math.floor(at / PAGE_SIZE);
      const off = at - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, src.length - done);
      if (n === PAGE_SIZE) {
        // A whole page: take a copy as the page's buffer, no need to materialise first.
        this.#data.set(pfn, src.slice(done, done + PAGE_SIZE));
      } else {
        this.pageForWrite(pfn).set(src.subarray(done, done + n), off);
      }
      done += n;
    }
  }

  /**
   * Make `[phys, phys + len)` read as zero. Whole pages drop their buffer and become zero
   * pages (so clearing costs no memory); partial pages are written.
   */
  zero(phys: number, len: number): void {
    this.#check(phys, len);
    let done = 0;
    while (done < len) {
      const at = phys + done;
      const pfn = Math.floor(at / PAGE_SIZE);
      const off = at - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      if (n === PAGE_SIZE) {
        // Whole pages: a run of them at once.
        const pages = Math.floor((len - done) / PAGE_SIZE);
        this.#dropData(pfn, pages);
        this.#setZero(pfn, pages);
        done += pages * PAGE_SIZE;
        continue;
      }
      if (this.#data.has(pfn) || (this.background === "poison" && !this.#isZero(pfn))) {
        this.pageForWrite(pfn).fill(0, off, off + n);
      }
      done += n;
    }
  }

  /** Fill `[phys, phys + len)` with `value`. */
  fill(phys: number, len: number, value: number): void {
    if ((value & 0xff) === 0) {
      this.zero(phys, len);
      return;
    }
    this.#check(phys, len);
    let done = 0;
    while (done < len) {
      const at = phys + done;
      const pfn = Math.floor(at / PAGE_SIZE);
      const off = at - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      this.pageForWrite(pfn).fill(value, off, off + n);
      done += n;
    }
  }

  /** Little-endian u32 at `phys`. */
  readU32(phys: number): number {
    const b = this.read(phys, 4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  /** Little-endian u64 at `phys`, as two halves combined into a bigint. */
  readU64(phys: number): bigint {
    return (BigInt(this.readU32(phys + 4)) << 32n) | BigInt(this.readU32(phys));
  }

  /**
   * Little-endian u64 at `phys` as a number, for fields that hold physical addresses or
   * counts; `undefined` when the value does not fit 2^53 (the caller reports corruption).
   */
  readU64Number(phys: number): number | undefined {
    const lo = this.readU32(phys);
    const hi = this.readU32(phys + 4);
    return hi >= 0x200000 ? undefined : hi * 0x100000000 + lo;
  }

  writeU32(phys: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    this.write(phys, b);
  }

  writeU64(phys: number, value: bigint | number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(value), true);
    this.write(phys, b);
  }

  /** Page frame numbers of data pages, ascending. */
  dataPfns(): number[] {
    return [...this.#data.keys()].sort((a, b) => a - b);
  }

  /**
   * Pages in the zero state (known zero without storage; only a poison-background memory
   * has them), as ascending maximal runs. A data page is never part of a run. One pass over
   * the zero bitmaps, so an image writer need not visit every page of a large machine.
   */
  zeroPageRuns(): Array<{ pfn: number; count: number }> {
    this.#live();
    const runs: Array<{ pfn: number; count: number }> = [];
    let runStart = -1;
    let runEnd = -1;
    for (const chunk of [...this.#zero.keys()].sort((a, b) => a - b)) {
      const bits = this.#zero.get(chunk)!;
      const base = chunk * CHUNK_PAGES;
      for (let byte = 0; byte < bits.length; byte++) {
        const v = bits[byte]!;
        if (v === 0) continue;
        for (let bit = 0; bit < 8; bit++) {
          if ((v & (1 << bit)) === 0) continue;
          const pfn = base + byte * 8 + bit;
          if (this.#data.has(pfn)) continue;
          if (pfn !== runEnd) {
            if (runStart >= 0) runs.push({ pfn: runStart, count: runEnd - runStart });
            runStart = pfn;
          }
          runEnd = pfn + 1;
        }
      }
    }
    if (runStart >= 0) runs.push({ pfn: runStart, count: runEnd - runStart });
    return runs;
  }

  /**
   * The memory the next kernel sees after `kexec`: the same ranges with a poison
   * background, where only the pages in `keep` (runs of `[pfn, count)`) keep their
   * contents. Kept pages move (no copy); kept pages that were never written arrive as zero
   * pages. This memory is retired: any later access throws.
   */
  handOver(keep: Iterable<{ readonly pfn: number; readonly count: number }>): PhysicalMemory {
    this.#live();
    const next = new PhysicalMemory(this.ranges, "poison");
    for (const { pfn, count } of keep) {
      this.#check(pfn * PAGE_SIZE, count * PAGE_SIZE);
      next.#setZero(pfn, count);
      // Move data pages; cheap whether the run is sparse or dense.
      if (count <= this.#data.size) {
        for (let p = pfn; p < pfn + count; p++) next.#moveFrom(this, p);
      } else {
        for (const p of this.#data.keys()) if (p >= pfn && p < pfn + count) next.#moveFrom(this, p);
      }
    }
    // Zero state of kept pages that were zero pages here (or background zero) is already
    // set above; data pages moved over it take precedence.
    this.#retired = "this memory was handed over by kexec";
    this.#data.clear();
    this.#zero.clear();
    return next;
  }

  #moveFrom(old: PhysicalMemory, pfn: number): void {
    const page = old.#data.get(pfn);
    if (page) this.#data.set(pfn, page);
    else if (!old.#isZero(pfn) && old.background === "poison") this.#data.set(pfn, POISON_PAGE.slice());
  }

  #implicit(pfn: number): Uint8Array {
    return this.background === "zero" || this.#isZero(pfn) ? ZERO_PAGE : POISON_PAGE;
  }

  #isZero(pfn: number): boolean {
    const bits = this.#zero.get(Math.floor(pfn / CHUNK_PAGES));
    if (!bits) return false;
    const i = pfn % CHUNK_PAGES;
    return (bits[i >>> 3]! & (1 << (i & 7))) !== 0;
  }

  #setZero(pfn: number, count: number): void {
    if (this.background === "zero") return; // background already reads zero
    let p = pfn;
    const end = pfn + count;
    while (p < end) {
      const chunk = Math.floor(p / CHUNK_PAGES);
      let bits = this.#zero.get(chunk);
      if (!bits) this.#zero.set(chunk, (bits = new Uint8Array(CHUNK_PAGES / 8)));
      const stop = Math.min(end, (chunk + 1) * CHUNK_PAGES);
      let i = p % CHUNK_PAGES;
      const j = i + (stop - p);
      // Leading bits, whole bytes, trailing bits.
      while (i < j && (i & 7) !== 0) bits[i >>> 3]! |= 1 << (i++ & 7);
      if (j - i >= 8) {
        bits.fill(0xff, i >>> 3, j >>> 3);
        i = j & ~7;
      }
      while (i < j) bits[i >>> 3]! |= 1 << (i++ & 7);
      p = stop;
    }
  }

  #dropData(pfn: number, count: number): void {
    if (count <= this.#data.size) {
      for (let p = pfn; p < pfn + count; p++) this.#data.delete(p);
    } else {
      for (const p of [...this.#data.keys()]) if (p >= pfn && p < pfn + count) this.#data.delete(p);
    }
  }

  #rangeOf(pfn: number): number {
    let lo = 0;
    let hi = this.#startPfn.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (pfn < this.#startPfn[mid]!) hi = mid - 1;
      else if (pfn >= this.#endPfn[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  #live(): void {
    if (this.#retired !== undefined) throw new KernelError("EFAULT", this.#retired);
  }

  #check(phys: number, len: number): void {
    this.#live();
    if (!this.contains(phys, len)) {
      throw new KernelError("EFAULT", `physical range 0x${phys.toString(16)}+0x${len.toString(16)} is not memory`);
    }
  }
}
