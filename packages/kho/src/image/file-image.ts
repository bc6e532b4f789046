/**
 * The lazy file reader the image formats share: physical memory described as sorted,
 * non-overlapping extents, each read from a span of the file or filled with one byte
 * (ELF `p_memsz > p_filesz` tails, a machine's background). Opening an image costs its
 * headers only; a read costs the file bytes it covers.
 *
 * Reads of less than {@link DIRECT_READ_BYTES} go through a small LRU cache of file pages
 * (decoders read structures a few bytes at a time: a radix node, a block header); larger
 * reads go straight from the file into the caller's buffer (a scan, a folio), so a scan
 * does not churn the cache.
 */
import * as fs from "node:fs";
import { PAGE_SIZE } from "../abi.js";
import { FormatError, KernelError } from "../errors.js";
import type { MemoryRange } from "../memory.js";
import type { PhysReader } from "../types.js";

/** A span of physical memory and where its bytes come from. */
export interface ImageExtent {
  readonly phys: number;
  readonly size: number;
  /** File offset of the span's first byte, or -1 when every byte of it reads as `fill`. */
  readonly fileOffset: number;
  /** The byte a fill extent reads as (ignored for file extents). */
  readonly fill: number;
}

/** File pages kept by the read cache: 64 x 4 KiB = 256 KiB. */
const CACHE_PAGES = 64;
/** Reads at least this long bypass the cache. */
export const DIRECT_READ_BYTES = 2 * PAGE_SIZE;

/** How much an image has read from its file: for measurements and tests. */
export interface ImageReadStats {
  /** `read(2)` calls made. */
  reads: number;
  /** Bytes those calls returned. */
  bytes: number;
}

/** A physical-memory image backed by an open file. */
export abstract class FileImage implements PhysReader {
  /** The file it reads. */
  readonly path: string;
  /** Size of the file when it was opened. */
  readonly fileSize: number;
  /** The physical byte ranges the image covers, ascending, adjacent extents merged. */
  readonly ranges: readonly MemoryRange[];
  /**
   * The parts of {@link FileImage.ranges} whose bytes come from the file (not a fill), merged
   * when adjacent. Their total is at most the file size: a search that reads only these
   * stays bounded by the file, however large a hostile header says memory is.
   */
  readonly dataRanges: readonly MemoryRange[];
  /** Counters of file reads since open. */
  readonly readStats: ImageReadStats = { reads: 0, bytes: 0 };
  /** Format name used in errors (`"elf-core"`, `"raw-dump"`, `"khosprs1"`). */
  protected abstract readonly format: string;

  #fd: number;
  readonly #extStart: Float64Array;
  readonly #extEnd: Float64Array;
  readonly #extFile: Float64Array;
  readonly #extFill: Uint8Array;
  readonly #rangeStart: Float64Array;
  readonly #rangeEnd: Float64Array;
  readonly #cache = new Map<number, Uint8Array>();

  /**
   * @param extents sorted by `phys`, non-overlapping, non-empty, file spans inside the file:
   * each format validates its own bytes (with its own rules) before calling this.
   */
  protected constructor(fd: number, path: string, fileSize: number, extents: readonly ImageExtent[]) {
    this.#fd = fd;
    this.path = path;
    this.fileSize = fileSize;
    const n = extents.length;
    this.#extStart = new Float64Array(n);
    this.#extEnd = new Float64Array(n);
    this.#extFile = new Float64Array(n);
    this.#extFill = new Uint8Array(n);
    const ranges: MemoryRange[] = [];
    const dataRanges: MemoryRange[] = [];
    for (let i = 0; i < n; i++) {
      const e = extents[i]!;
      this.#extStart[i] = e.phys;
      this.#extEnd[i] = e.phys + e.size;
      this.#extFile[i] = e.fileOffset;
      this.#extFill[i] = e.fill;
      const last = ranges[ranges.length - 1];
      if (last !== undefined && last.start + last.size === e.phys) ranges[ranges.length - 1] = { start: last.start, size: last.size + e.size };
      else ranges.push({ start: e.phys, size: e.size });
      if (e.fileOffset < 0) continue;
      const lastData = dataRanges[dataRanges.length - 1];
      if (lastData !== undefined && lastData.start + lastData.size === e.phys) dataRanges[dataRanges.length - 1] = { start: lastData.start, size: lastData.size + e.size };
      else dataRanges.push({ start: e.phys, size: e.size });
    }
    this.ranges = Object.freeze(ranges);
    this.dataRanges = Object.freeze(dataRanges);
    this.#rangeStart = Float64Array.from(ranges, (r) => r.start);
    this.#rangeEnd = Float64Array.from(ranges, (r) => r.start + r.size);
  }

  /** Whether `[phys, phys + len)` lies inside the image with no gap. */
  contains(phys: number, len: number): boolean {
    if (!Number.isSafeInteger(phys) || !Number.isSafeInteger(len) || phys < 0 || len < 0) return false;
    const r = lastAtOrBelow(this.#rangeStart, phys);
    if (r < 0) return false;
    const end = this.#rangeEnd[r]!;
    return len === 0 ? phys < end : phys + len <= end;
  }

  /** `len` bytes at `phys` in a new array (see {@link FileImage.readInto}). */
  read(phys: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(phys, out);
    return out;
  }

  /** Copy `dst.length` bytes at `phys` into `dst`; `EFAULT` when the image does not hold them all. */
  readInto(phys: number, dst: Uint8Array): void {
    if (this.#fd < 0) throw new KernelError("EBADF", `${this.format} image ${this.path} is closed`);
    if (!this.contains(phys, dst.length)) {
      throw new KernelError("EFAULT", `physical range 0x${phys.toString(16)}+0x${dst.length.toString(16)} is not in the ${this.format} image`);
    }
    let done = 0;
    let e = lastAtOrBelow(this.#extStart, phys);
    while (done < dst.length) {
      const at = phys + done;
      const n = Math.min(this.#extEnd[e]! - at, dst.length - done);
      const fileOffset = this.#extFile[e]!;
      const piece = dst.subarray(done, done + n);
      if (fileOffset < 0) piece.fill(this.#extFill[e]!);
      else this.#readFile(fileOffset + (at - this.#extStart[e]!), piece);
      done += n;
      e++;
    }
  }

  /** Close the file. Later reads fail with `EBADF`. */
  close(): void {
    if (this.#fd >= 0) fs.closeSync(this.#fd);
    this.#fd = -1;
    this.#cache.clear();
  }

  /** Read exactly `dst.length` file bytes at `offset` (through the cache when short). */
  #readFile(offset: number, dst: Uint8Array): void {
    if (dst.length >= DIRECT_READ_BYTES) {
      this.#readExact(offset, dst);
      return;
    }
    let done = 0;
    while (done < dst.length) {
      const at = offset + done;
      const pageIndex = Math.floor(at / PAGE_SIZE);
      const page = this.#cachedFilePage(pageIndex);
      const off = at - pageIndex * PAGE_SIZE;
      const n = Math.min(page.length - off, dst.length - done);
      if (n <= 0) this.#truncated(at);
      dst.set(page.subarray(off, off + n), done);
      done += n;
    }
  }

  #cachedFilePage(pageIndex: number): Uint8Array {
    const hit = this.#cache.get(pageIndex);
    if (hit !== undefined) {
      // Re-insert: Map iteration order is insertion order, so the first key is the LRU one.
      this.#cache.delete(pageIndex);
      this.#cache.set(pageIndex, hit);
      return hit;
    }
    const start = pageIndex * PAGE_SIZE;
    const page = new Uint8Array(Math.max(0, Math.min(PAGE_SIZE, this.fileSize - start)));
    this.#readExact(start, page);
    if (this.#cache.size >= CACHE_PAGES) {
      const oldest = this.#cache.keys().next();
      if (oldest.done !== true) this.#cache.delete(oldest.value);
    }
    this.#cache.set(pageIndex, page);
    return page;
  }

  #readExact(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const n = fs.readSync(this.#fd, dst, done, dst.length - done, offset + done);
      this.readStats.reads++;
      this.readStats.bytes += n;
      if (n <= 0) this.#truncated(offset + done);
      done += n;
    }
  }

  /** The file got shorter than it was at open (or than its headers said). */
  #truncated(offset: number): never {
    throw new FormatError(this.format, offset, "file", "file.truncated", `${this.path} ends before file offset 0x${offset.toString(16)}`, "EIO");
  }
}

/** Index of the last element of ascending `starts` that is `<= x`, or -1. */
export function lastAtOrBelow(starts: Float64Array, x: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid]! <= x) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/**
 * Open `path` read-only and return its descriptor and size. A missing or unreadable file
 * is the caller's problem (a Node `ENOENT`/`EACCES` error), not hostile bytes.
 */
export function openImageFile(path: string): { fd: number; size: number } {
  const fd = fs.openSync(path, "r");
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new KernelError("EINVAL", `${path} is not a regular file`);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Read exactly `len` bytes at file `offset` of `fd` (a header), or throw `file.truncated`. */
export function readFileBytes(fd: number, offset: number, len: number, format: string, path: string): Uint8Array {
  const out = new Uint8Array(len);
  let done = 0;
  while (done < len) {
    const n = fs.readSync(fd, out, done, len - done, offset + done);
    if (n <= 0) throw new FormatError(format, offset + done, "file", "file.truncated", `${path} ends before file offset 0x${(offset + done).toString(16)}`, "EIO");
    done += n;
  }
  return out;
}

/** Little-endian u64 at `i` of `view` as a number, or undefined when it is 2^53 or more. */
export function u64At(view: DataView, i: number): number | undefined {
  const lo = view.getUint32(i, true);
  const hi = view.getUint32(i + 4, true);
  return hi >= 0x200000 ? undefined : hi * 0x100000000 + lo;
}
