/**
 * `kho_vmalloc`: a virtually-contiguous area (runs of `2^order` pages anywhere in physical
 * memory) preserved across kexec, as `kho_preserve_vmalloc` / `kho_restore_vmalloc` do it.
 *
 * The layout is in `abi.ts` (16-byte descriptor, one-page chunks of a `next` link and 511
 * zero-terminated run addresses). Writer facts mirrored from the kernel:
 *
 * - the first chunk is allocated before any run is preserved, and a new chunk is allocated
 *   as soon as one fills, so a multiple of 511 runs ends with an empty chunk;
 * - chunk pages are preserved as single pages (`kho_preserve_pages(chunk, 1)`), each run
 *   with `kho_preserve_pages(run, 2^order)`;
 * - on failure everything preserved so far is unpreserved and the chunks freed.
 *
 * The reader treats the descriptor and the chunks as hostile: every pointer is checked
 * against memory before it is read, the chain is bounded (`total_pages / 511 + 1` chunks,
 * no page twice) and the run array grows with what was actually read, never with the
 * claimed `total_pages`. A restore validates everything (including, when the restorer can
 * tell, every stamp) before it reclaims the first page, so a failed restore changes nothing.
 */
import {
  KHO_VMALLOC_ALLOC,
  KHO_VMALLOC_CHUNK_ENTRIES,
  KHO_VMALLOC_DESCRIPTOR_SIZE,
  KHO_VMALLOC_KNOWN_FLAGS,
  MAX_PAGE_ORDER,
  PAGE_SIZE,
} from "./abi.js";
import { FormatError, KernelError, type OffsetSpace } from "./errors.js";
import { PhysicalMemory } from "./memory.js";
import { firstUnstampedRange, stampReaderOf, type KhoStampReader } from "./stamp-probe.js";
import type { KhoPreserver, KhoRestorer, PhysReader } from "./types.js";

const FORMAT = "kho-vmalloc";
const TWO_32 = 0x1_0000_0000;
const INVERSE_TWO_32 = 1 / TWO_32;
const INVERSE_PAGE_SIZE = 1 / PAGE_SIZE;
/** High half of a u64 at or above this is an address beyond 52 bits. */
const PHYS_HIGH_LIMIT = 0x10_0000;
/** Byte offset of `phys[0]` in a chunk, after the `next` link. */
const CHUNK_ENTRIES_OFFSET = 8;
/** u32 words in a page. */
const PAGE_WORDS = PAGE_SIZE / 4;
/** Hot loops use u32 views of pages; the wire is little-endian, so only on such hosts. */
const HOST_LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * The page's bytes as little-endian u32 words: a view on little-endian hosts (aligned
 * buffers), else a decoded copy in `scratch`.
 */
function pageWords(page: Uint8Array, scratch: Uint32Array): Uint32Array {
  if (HOST_LITTLE_ENDIAN && page.byteOffset % 4 === 0) return new Uint32Array(page.buffer, page.byteOffset, PAGE_WORDS);
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  for (let i = 0; i < PAGE_WORDS; i++) scratch[i] = view.getUint32(i * 4, true);
  return scratch;
}

/** A chunk page being written: u32 words when they can alias the page, else a DataView. */
interface ChunkWriter {
  readonly phys: number;
  readonly words: Uint32Array | undefined;
  /** Set exactly when `words` is not. */
  readonly view: DataView | undefined;
}

function writeWordPair(chunk: ChunkWriter, word: number, value: number): void {
  const lo = value >>> 0;
  const hi = (value - lo) / TWO_32;
  if (chunk.words) {
    chunk.words[word] = lo;
    chunk.words[word + 1] = hi;
  } else {
    chunk.view!.setUint32(word * 4, lo, true);
    chunk.view!.setUint32(word * 4 + 4, hi, true);
  }
}

/** Index of the first run that is not a non-zero page address (a safe integer), or -1. */
function firstBadRun(runs: ArrayLike<number>): number {
  for (let i = 0; i < runs.length; i++) {
    const phys = runs[i]!;
    // A positive integer exact in a double, page-aligned: a whole number of pages (NaN fails
    // every comparison; multiplying by 1/4096 is exact and avoids a floating-point modulo).
    if (!(phys > 0 && phys <= Number.MAX_SAFE_INTEGER && Math.floor(phys * INVERSE_PAGE_SIZE) * PAGE_SIZE === phys)) return i;
  }
  return -1;
}

/** Write runs `[from, to)` into the chunk from u32 word `word`; the word after them. */
function writeRuns(chunk: ChunkWriter, word: number, runs: ArrayLike<number>, from: number, to: number): number {
  const words = chunk.words;
  if (words === undefined) {
    for (let i = from; i < to; i++, word += 2) writeWordPair(chunk, word, runs[i]!);
    return word;
  }
  for (let i = from; i < to; i++, word += 2) {
    const value = runs[i]!;
    const lo = value >>> 0;
    words[word] = lo;
    words[word + 1] = (value - lo) * INVERSE_TWO_32; // exact: a multiple of 2^32 over 2^32
  }
  return word;
}

/** A decoded `struct kho_vmalloc`. */
export interface KhoVmalloc {
  /** Physical address of the first chunk page (0 = none). */
  readonly first: number;
  /** Pages in the area (u32). */
  readonly totalPages: number;
  /** `KHO_VMALLOC_ALLOC` | `KHO_VMALLOC_HUGE_VMAP` (u16). */
  readonly flags: number;
  /** Page order of every run (u16). */
  readonly order: number;
}

/** A vmalloc area to preserve: the physical address of each run of `2^order` pages, in area order. */
export interface VmallocArea {
  readonly runs: ArrayLike<number>;
  readonly order: number;
  /** KHO vmalloc flags; default `KHO_VMALLOC_ALLOC`. */
  readonly flags?: number;
}

/** A `kho_vmalloc` descriptor: its 16 bytes, the decoded fields, or the physical address it is stored at. */
export type KhoVmallocSource = Uint8Array | KhoVmalloc | number;

/** What a valid preservation holds, as read (not reclaimed) by {@link readVmalloc}. */
export interface VmallocLayout {
  readonly descriptor: KhoVmalloc;
  /** Physical address of each run, in area order. */
  readonly runs: Float64Array;
  /** Physical address of each chunk page, in chain order. */
  readonly chunks: Float64Array;
}

/** A restored area ({@link restoreVmalloc}): the next kernel owns every run now. */
export interface RestoredVmalloc {
  /** Physical address of each run of `2^order` pages, in area order. */
  readonly runs: Float64Array;
  readonly order: number;
  readonly flags: number;
  readonly totalPages: number;
}

/** The 16 bytes of a `kho_vmalloc` (written into `into` at `offset` when given). */
export function encodeKhoVmalloc(descriptor: KhoVmalloc, into?: Uint8Array, offset = 0): Uint8Array {
  const out = into ?? new Uint8Array(KHO_VMALLOC_DESCRIPTOR_SIZE);
  const view = new DataView(out.buffer, out.byteOffset + offset, KHO_VMALLOC_DESCRIPTOR_SIZE);
  view.setUint32(0, descriptor.first % TWO_32, true);
  view.setUint32(4, Math.floor(descriptor.first / TWO_32), true);
  view.setUint32(8, descriptor.totalPages, true);
  view.setUint16(12, descriptor.flags, true);
  view.setUint16(14, descriptor.order, true);
  return out;
}

/**
 * Decode a `kho_vmalloc` from `bytes` at `offset`. Fails (`EINVAL`) when fewer than 16 bytes
 * are there or `first` is not a 52-bit address; the rest is checked by {@link readVmalloc}.
 */
export function decodeKhoVmalloc(bytes: Uint8Array, offset = 0): KhoVmalloc {
  return decodeAt(bytes, offset, "blob", offset);
}

function decodeAt(bytes: Uint8Array, offset: number, space: OffsetSpace, where: number): KhoVmalloc {
  if (offset < 0 || bytes.length - offset < KHO_VMALLOC_DESCRIPTOR_SIZE) {
    throw new FormatError(FORMAT, where, space, "descriptor-size", `needs ${KHO_VMALLOC_DESCRIPTOR_SIZE} bytes, ${Math.max(0, bytes.length - offset)} there`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, KHO_VMALLOC_DESCRIPTOR_SIZE);
  const firstHigh = view.getUint32(4, true);
  if (firstHigh >= PHYS_HIGH_LIMIT) {
    throw new FormatError(FORMAT, where, space, "chunk-pointer", `first chunk 0x${firstHigh.toString(16)}xxxxxxxx is beyond 52-bit physical memory`);
  }
  return {
    first: firstHigh * TWO_32 + view.getUint32(0, true),
    totalPages: view.getUint32(8, true),
    flags: view.getUint16(12, true),
    order: view.getUint16(14, true),
  };
}

/** The descriptor and where errors about its fields point. */
function resolveDescriptor(reader: PhysReader, source: KhoVmallocSource): { d: KhoVmalloc; space: OffsetSpace; at: number } {
  if (typeof source === "number") {
    if (!reader.contains(source, KHO_VMALLOC_DESCRIPTOR_SIZE)) {
      throw new FormatError(FORMAT, source, "phys", "descriptor-pointer", "descriptor is not in memory");
    }
    const bytes = new Uint8Array(KHO_VMALLOC_DESCRIPTOR_SIZE);
    reader.readInto(source, bytes);
    return { d: decodeAt(bytes, 0, "phys", source), space: "phys", at: source };
  }
  if (source instanceof Uint8Array) return { d: decodeKhoVmalloc(source), space: "blob", at: 0 };
  return { d: source, space: "blob", at: 0 };
}

// ---------------------------------------------------------------------------------------
// Outgoing kernel

/**
 * `kho_preserve_vmalloc`: preserve every run and a chain of chunk pages listing them.
 * Returns the 16-byte descriptor (also written at `descriptorPhys` when given).
 *
 * Errors: unknown flags `EOPNOTSUPP`; an order above `MAX_PAGE_ORDER`, no runs, more than
 * 2^32 - 1 pages or a run address that is not a non-zero page address `EINVAL`; a run the
 * preserver refuses (inside scratch `EINVAL`) with its error; a chunk that cannot be
 * allocated or preserved `ENOMEM` (as the kernel reports it). On failure nothing stays
 * preserved and the chunk pages are freed.
 */
export function preserveVmalloc(kho: KhoPreserver, area: VmallocArea, descriptorPhys?: number): Uint8Array {
  const flags = area.flags ?? KHO_VMALLOC_ALLOC;
  const { order, runs } = area;
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~KHO_VMALLOC_KNOWN_FLAGS) !== 0) {
    throw new KernelError("EOPNOTSUPP", `vmalloc flags 0x${flags.toString(16)} are not supported`);
  }
  if (!Number.isInteger(order) || order < 0 || order > MAX_PAGE_ORDER) throw new KernelError("EINVAL", `vmalloc page order ${order} is out of range`);
  const pagesPerRun = 2 ** order;
  const totalPages = runs.length * pagesPerRun;
  if (runs.length === 0) throw new KernelError("EINVAL", "a vmalloc area has at least one page");
  if (totalPages > 0xffff_ffff) throw new KernelError("EINVAL", `${totalPages} pages do not fit total_pages (u32)`);
  const bad = firstBadRun(runs);
  if (bad >= 0) throw new KernelError("EINVAL", `run ${bad} at ${runs[bad]} is not a non-zero page address`);

  const chunks: number[] = [];
  let recorded = 0; // runs written into chunks so far
  const rollback = (): void => {
    // kho_unpreserve_vmalloc: each chunk page, each run it records, then free the chunk.
    let r = 0;
    for (const chunk of chunks) {
      kho.unpreservePages(chunk, 1);
      const stop = Math.min(recorded, r + KHO_VMALLOC_CHUNK_ENTRIES);
      for (; r < stop; r++) kho.unpreservePages(runs[r]!, pagesPerRun);
      kho.freeFolio(chunk, 0);
    }
  };

  let chunk = newChunk(kho, chunks, undefined);
  let word = CHUNK_ENTRIES_OFFSET / 4; // u32 index of the next entry in the chunk
  const endWord = PAGE_WORDS;
  const bulk = bulkPreserverOf(kho);
  try {
    if (bulk !== undefined) {
      // A chunk's worth of runs per call. The same calls in the same order as run by run
      // (nodes and chunks allocated at the same points); a failing batch unwinds itself,
      // so only the batches before it are recorded for the rollback.
      for (let i = 0; i < runs.length; ) {
        const stop = Math.min(runs.length, i + (endWord - word) / 2);
        bulk.preservePagesMany(runs, pagesPerRun, i, stop);
        word = writeRuns(chunk, word, runs, i, stop);
        i = stop;
        recorded = stop;
        if (word === endWord) {
          chunk = newChunk(kho, chunks, chunk);
          word = CHUNK_ENTRIES_OFFSET / 4;
        }
      }
    } else {
      for (let i = 0; i < runs.length; i++) {
        const phys = runs[i]!;
        kho.preservePages(phys, pagesPerRun);
        writeWordPair(chunk, word, phys);
        recorded = i + 1;
        word += 2;
        if (word === endWord) {
          chunk = newChunk(kho, chunks, chunk);
          word = CHUNK_ENTRIES_OFFSET / 4;
        }
      }
    }
  } catch (err) {
    rollback();
    throw err;
  }

  const descriptor = encodeKhoVmalloc({ first: chunks[0]!, totalPages, flags, order });
  if (descriptorPhys !== undefined) kho.memory.write(descriptorPhys, descriptor);
  return descriptor;
}

/**
 * A preserver with `preservePagesMany` (`KhoOutgoing`): `kho_preserve_pages` of many ranges
 * in one call, the result of the loop of calls, unwound on failure.
 */
interface BulkPreserver extends KhoPreserver {
  preservePagesMany(physList: ArrayLike<number>, count: number, from: number, to: number): void;
}

function bulkPreserverOf(kho: KhoPreserver): BulkPreserver | undefined {
  const candidate = kho as KhoPreserver & Partial<BulkPreserver>;
  return typeof candidate.preservePagesMany === "function" ? (candidate as BulkPreserver) : undefined;
}

/** A restorer with `restorePagesMany` (`KhoIncoming`): many `kho_restore_pages`, all or nothing. */
interface BulkRestorer extends KhoRestorer {
  restorePagesMany(physList: ArrayLike<number>, count: number): void;
}

function bulkRestorerOf(kho: KhoRestorer): BulkRestorer | undefined {
  const candidate = kho as KhoRestorer & Partial<BulkRestorer>;
  return typeof candidate.restorePagesMany === "function" ? (candidate as BulkRestorer) : undefined;
}

/** `new_vmalloc_chunk`: a zeroed, preserved page linked after `previous`; `ENOMEM` on failure. */
function newChunk(kho: KhoPreserver, chunks: number[], previous: ChunkWriter | undefined): ChunkWriter {
  const phys = kho.allocFolio(0);
  try {
    kho.preservePages(phys, 1);
  } catch (err) {
    kho.freeFolio(phys, 0);
    const why = err instanceof Error ? err.message : String(err);
    throw new KernelError("ENOMEM", `cannot preserve a vmalloc chunk page (${why})`);
  }
  chunks.push(phys);
  if (previous) writeWordPair(previous, 0, phys);
  const page = kho.memory.pageForWrite(phys / PAGE_SIZE);
  const aliasable = HOST_LITTLE_ENDIAN && page.byteOffset % 4 === 0;
  return {
    phys,
    words: aliasable ? new Uint32Array(page.buffer, page.byteOffset, PAGE_WORDS) : undefined,
    view: aliasable ? undefined : new DataView(page.buffer, page.byteOffset, PAGE_SIZE),
  };
}

/**
 * `kho_unpreserve_vmalloc`: unpreserve every run and chunk page of a preservation made by
 * {@link preserveVmalloc} in this kernel, and free the chunk pages. The chain is validated
 * first ({@link readVmalloc}), so a corrupt one changes nothing.
 */
export function unpreserveVmalloc(kho: KhoPreserver, descriptor: KhoVmallocSource): void {
  const layout = readVmalloc(kho.memory, descriptor);
  const pagesPerRun = 2 ** layout.descriptor.order;
  for (const chunk of layout.chunks) kho.unpreservePages(chunk, 1);
  for (const run of layout.runs) kho.unpreservePages(run, pagesPerRun);
  for (const chunk of layout.chunks) kho.freeFolio(chunk, 0);
}

// ---------------------------------------------------------------------------------------
// Reading (next kernel, or an inspector on an image)

/**
 * Read and validate a preservation without reclaiming anything: the reader half of
 * `kho_restore_vmalloc`, usable on a live machine's memory or an image.
 *
 * Every failure is a `FormatError` (`"kho-vmalloc"`, `EINVAL`, the errno `memfd` returns
 * when `kho_restore_vmalloc` fails), by rule: `flags` (an unknown bit), `empty-area`
 * (`total_pages` 0), `chunk-pointer` / `chunk-alignment` (a chunk outside memory or not a
 * page), `chunk-cycle`, `chunk-chain-too-long` (more than `total_pages / 511 + 1` chunks),
 * `run-pointer` / `run-alignment`, `too-many-pages` / `too-few-pages` (the runs do not add
 * up to `total_pages`), `overlap` (a page listed twice, as a run or a chunk: the second
 * restore of it would fail).
 */
export function readVmalloc(reader: PhysReader, descriptor: KhoVmallocSource): VmallocLayout {
  const { d, space, at } = resolveDescriptor(reader, descriptor);
  if ((d.flags & ~KHO_VMALLOC_KNOWN_FLAGS) !== 0) {
    throw new FormatError(FORMAT, at + 12, space, "flags", `unknown flag bits 0x${(d.flags & ~KHO_VMALLOC_KNOWN_FLAGS).toString(16)}`);
  }
  if (d.totalPages === 0) throw new FormatError(FORMAT, at + 8, space, "empty-area", "total_pages is 0");

  const pagesPerRun = 2 ** d.order;
  const runBytes = pagesPerRun * PAGE_SIZE;
  const maxChunks = Math.floor(d.totalPages / KHO_VMALLOC_CHUNK_ENTRIES) + 1;
  const pages = new PageSource(reader);

  // Runs fit the chunks present (511 each) and total_pages: size the array once for that.
  const present = countChunks(reader, d.first, maxChunks);
  const capacity = Math.min(Math.ceil(d.totalPages / pagesPerRun), present * KHO_VMALLOC_CHUNK_ENTRIES);
  const collected = new RunCollector(pages, pagesPerRun, d.totalPages, capacity);
  const chunks: number[] = [];
  const seenChunks = new Set<number>();

  let chunk = d.first;
  let linkAt = at; // where the pointer to `chunk` is stored, for errors
  let linkSpace: OffsetSpace = space;
  while (chunk !== 0) {
    if (chunk % PAGE_SIZE !== 0) throw new FormatError(FORMAT, linkAt, linkSpace, "chunk-alignment", `chunk 0x${chunk.toString(16)} is not page-aligned`);
    if (!reader.contains(chunk, PAGE_SIZE)) throw new FormatError(FORMAT, linkAt, linkSpace, "chunk-pointer", `chunk 0x${chunk.toString(16)} is not in memory`);
    if (seenChunks.has(chunk)) throw new FormatError(FORMAT, linkAt, linkSpace, "chunk-cycle", `chunk 0x${chunk.toString(16)} is reached twice`);
    if (chunks.length === maxChunks) {
      throw new FormatError(FORMAT, linkAt, linkSpace, "chunk-chain-too-long", `more than ${maxChunks} chunks for ${d.totalPages} pages`);
    }
    seenChunks.add(chunk);
    chunks.push(chunk);
    const words = pages.words(chunk);
    collected.readChunk(words, chunk);

    const nextHi = words[1]!;
    if (nextHi >= PHYS_HIGH_LIMIT) throw new FormatError(FORMAT, chunk, "phys", "chunk-pointer", "next chunk is beyond 52-bit physical memory");
    linkAt = chunk;
    linkSpace = "phys";
    chunk = nextHi * TWO_32 + words[0]!;
  }
  if (collected.pageCount !== d.totalPages) {
    throw new FormatError(FORMAT, at + 8, space, "too-few-pages", `runs add up to ${collected.pageCount} pages, total_pages is ${d.totalPages}`);
  }

  const runList = collected.runs.subarray(0, collected.runCount);
  const chunkList = Float64Array.from(chunks);
  checkNoOverlap(runList, collected.ascending, runBytes, chunkList);
  return { descriptor: d, runs: runList, chunks: chunkList };
}

/**
 * The runs of a chain's chunks, validated as they are read (see {@link readVmalloc}) into an
 * array sized for the chunks actually present (never for what `total_pages` claims).
 */
class RunCollector {
  readonly runs: Float64Array;
  runCount = 0;
  pageCount = 0;
  /** Whether every run starts at or after the end of the one before (then none overlap). */
  ascending = true;
  readonly #pages: PageSource;
  readonly #pagesPerRun: number;
  readonly #runBytes: number;
  readonly #totalPages: number;
  #previousEnd = 0;
  // The memory range the last run fell in: runs cluster, so most checks end here.
  #rangeStart = 0;
  #rangeEnd = 0;

  constructor(pages: PageSource, pagesPerRun: number, totalPages: number, capacity: number) {
    this.#pages = pages;
    this.#pagesPerRun = pagesPerRun;
    this.#runBytes = pagesPerRun * PAGE_SIZE;
    this.#totalPages = totalPages;
    this.runs = new Float64Array(capacity);
  }

  /** Check and keep the entries of the chunk page at `chunk` (its u32 `words`), up to the zero entry. */
  readChunk(words: Uint32Array, chunk: number): void {
    const pagesPerRun = this.#pagesPerRun;
    const runBytes = this.#runBytes;
    const totalPages = this.#totalPages;
    const runs = this.runs;
    let runCount = this.runCount;
    let pageCount = this.pageCount;
    let ascending = this.ascending;
    let previousEnd = this.#previousEnd;
    let rangeStart = this.#rangeStart;
    let rangeEnd = this.#rangeEnd;
    for (let w = CHUNK_ENTRIES_OFFSET / 4; w < PAGE_WORDS; w += 2) {
      const lo = words[w]!;
      const hi = words[w + 1]!;
      if ((lo | hi) === 0) break;
      if (hi >= PHYS_HIGH_LIMIT) throw runError(chunk + w * 4, "run-pointer", `run 0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")} is beyond 52-bit physical memory`);
      const phys = hi * TWO_32 + lo;
      if ((lo & (PAGE_SIZE - 1)) !== 0) throw runError(chunk + w * 4, "run-alignment", `run 0x${phys.toString(16)} is not page-aligned`);
      if (pageCount + pagesPerRun > totalPages) throw runError(chunk + w * 4, "too-many-pages", `runs add up to more than total_pages ${totalPages}`);
      if (phys < rangeStart || phys + runBytes > rangeEnd) {
        const range = this.#pages.rangeOf(phys, runBytes);
        if (!range) throw runError(chunk + w * 4, "run-pointer", `run 0x${phys.toString(16)} of ${pagesPerRun} pages is not in memory`);
        rangeStart = range.start;
        rangeEnd = range.end;
      }
      if (phys < previousEnd) ascending = false;
      previousEnd = phys + runBytes;
      // Within capacity: at most 511 runs per chunk the pre-walk counted, and at most the
      // runs total_pages allows (checked just above).
      runs[runCount++] = phys;
      pageCount += pagesPerRun;
    }
    this.runCount = runCount;
    this.pageCount = pageCount;
    this.ascending = ascending;
    this.#previousEnd = previousEnd;
    this.#rangeStart = rangeStart;
    this.#rangeEnd = rangeEnd;
  }
}

/**
 * Chunks the chain holds before anything the real walk would refuse (a pointer that is
 * unaligned, outside memory, repeated or beyond 52 bits), at most `limit`: reading only the
 * `next` links, never failing. The real walk then fails at the same place, in order.
 */
function countChunks(reader: PhysReader, first: number, limit: number): number {
  const seen = new Set<number>();
  const link = new Uint8Array(8);
  const view = new DataView(link.buffer);
  let chunk = first;
  let count = 0;
  while (chunk !== 0 && count < limit) {
    if (chunk % PAGE_SIZE !== 0 || !reader.contains(chunk, PAGE_SIZE) || seen.has(chunk)) break;
    seen.add(chunk);
    count++;
    reader.readInto(chunk, link);
    const hi = view.getUint32(4, true);
    if (hi >= PHYS_HIGH_LIMIT) break;
    chunk = hi * TWO_32 + view.getUint32(0, true);
  }
  return count;
}

function runError(offset: number, rule: string, message: string): FormatError {
  return new FormatError(FORMAT, offset, "phys", rule, message);
}

/** No page is listed twice: runs are disjoint, and no chunk page lies inside a run. */
function checkNoOverlap(runs: Float64Array, ascending: boolean, runBytes: number, chunks: Float64Array): void {
  // Ascending means each run starts at or after the end of the one before: none overlap.
  const sorted = ascending ? runs : runs.slice().sort();
  if (!ascending) {
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]! < sorted[i - 1]! + runBytes) {
        throw new FormatError(FORMAT, sorted[i]!, "phys", "overlap", `run 0x${sorted[i]!.toString(16)} overlaps the run at 0x${sorted[i - 1]!.toString(16)}`);
      }
    }
  }
  for (const chunk of chunks) {
    // The last run starting at or below the chunk page is the only one that can hold it.
    let lo = 0;
    let hi = sorted.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! <= chunk) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found >= 0 && chunk < sorted[found]! + runBytes) {
      throw new FormatError(FORMAT, chunk, "phys", "overlap", `chunk page 0x${chunk.toString(16)} is also inside a run`);
    }
  }
}

/**
 * Pages of a reader as u32 words: zero-copy views of a `PhysicalMemory` (on little-endian
 * hosts), one reused buffer for any other reader; and the memory range around an address.
 */
class PageSource {
  readonly #reader: PhysReader;
  readonly #memory: PhysicalMemory | undefined;
  readonly #buffer = new Uint8Array(PAGE_SIZE);
  readonly #scratch = new Uint32Array(PAGE_WORDS);

  constructor(reader: PhysReader) {
    this.#reader = reader;
    this.#memory = reader instanceof PhysicalMemory ? reader : undefined;
  }

  /** The words of the page at `phys` (page-aligned, contained); valid until the next call. */
  words(phys: number): Uint32Array {
    if (this.#memory) return pageWords(this.#memory.readPage(phys / PAGE_SIZE), this.#scratch);
    this.#reader.readInto(phys, this.#buffer);
    return pageWords(this.#buffer, this.#scratch);
  }

  /**
   * A span `[start, end)` of readable memory holding `[phys, phys + len)` (a whole memory
   * range when the reader is a `PhysicalMemory`), or undefined when it is not readable.
   */
  rangeOf(phys: number, len: number): { start: number; end: number } | undefined {
    if (!this.#reader.contains(phys, len)) return undefined;
    if (this.#memory) {
      for (const r of this.#memory.ranges) {
        if (phys >= r.start && phys < r.start + r.size) return { start: r.start, end: r.start + r.size };
      }
    }
    return { start: phys, end: phys + len };
  }
}

// ---------------------------------------------------------------------------------------
// Next kernel

/**
 * `kho_restore_vmalloc`: validate the preservation ({@link readVmalloc}), check that every
 * run and chunk page is restorable, then reclaim the runs (`kho_restore_pages`) and free
 * the chunk pages. A page without its `KHOP` stamp fails with rule `not-preserved`
 * (`EINVAL`) before anything is reclaimed, when the restorer can read stamps (see
 * `KhoStampReader`); a failed restore changes nothing.
 */
export function restoreVmalloc(kho: KhoRestorer, descriptor: KhoVmallocSource): RestoredVmalloc {
  const layout = readVmalloc(kho.memory, descriptor);
  const { order, flags, totalPages } = layout.descriptor;
  const pagesPerRun = 2 ** order;
  const stamps = stampReaderOf(kho);
  const bulk = stamps ? bulkRestorerOf(kho) : undefined;
  if (stamps && bulk) {
    // Chunks first (quietly), then every run at once: all or nothing, so a failure changes
    // nothing and is then reported as the run-by-run check reports it (runs before chunks).
    const chunk = firstUnstampedRange(stamps, layout.chunks, 1);
    if (chunk >= 0) {
      throwUnstampedRun(stamps, layout.runs, pagesPerRun);
      throw unstampedChunk(layout.chunks[chunk]!);
    }
    try {
      bulk.restorePagesMany(layout.runs, pagesPerRun);
    } catch (error) {
      if (error instanceof KernelError) throwUnstampedRun(stamps, layout.runs, pagesPerRun);
      throw error;
    }
  } else {
    if (stamps) {
      throwUnstampedRun(stamps, layout.runs, pagesPerRun);
      const chunk = firstUnstampedRange(stamps, layout.chunks, 1);
      if (chunk >= 0) throw unstampedChunk(layout.chunks[chunk]!);
    }
    for (const run of layout.runs) kho.restorePages(run, pagesPerRun);
  }
  for (const chunk of layout.chunks) kho.restoreFree(chunk);
  return { runs: layout.runs, order, flags, totalPages };
}

/** Throw `not-preserved` for the first run without its stamps, if any. */
function throwUnstampedRun(stamps: KhoStampReader, runs: Float64Array, pagesPerRun: number): void {
  const run = firstUnstampedRange(stamps, runs, pagesPerRun);
  if (run >= 0) throw new FormatError(FORMAT, runs[run]!, "phys", "not-preserved", `run 0x${runs[run]!.toString(16)} was not preserved`);
}

function unstampedChunk(chunk: number): FormatError {
  return new FormatError(FORMAT, chunk, "phys", "not-preserved", `chunk page 0x${chunk.toString(16)} was not preserved`);
}

// ---------------------------------------------------------------------------------------
// The area's contents

/**
 * `vmalloc` + fill: allocate `ceil(bytes / 2^order pages)` folios of `2^order` pages and
 * copy `bytes` into them (the rest is zero). The area is not preserved yet.
 */
export function allocVmallocArea(kho: KhoPreserver, bytes: Uint8Array, order = 0, flags: number = KHO_VMALLOC_ALLOC): VmallocArea {
  const runBytes = 2 ** order * PAGE_SIZE;
  const count = Math.max(1, Math.ceil(bytes.length / runBytes));
  const runs: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const phys = kho.allocFolio(order);
      runs.push(phys);
      const part = bytes.subarray(i * runBytes, (i + 1) * runBytes);
      if (part.length > 0) kho.memory.write(phys, part);
    }
  } catch (err) {
    for (const phys of runs) kho.freeFolio(phys, order);
    throw err;
  }
  return { runs, order, flags };
}

/** `vfree` of an area from {@link allocVmallocArea} (after {@link unpreserveVmalloc}, if it was preserved). */
export function freeVmallocArea(kho: KhoPreserver, area: VmallocArea): void {
  for (let i = 0; i < area.runs.length; i++) kho.freeFolio(area.runs[i]!, area.order);
}

/** The area's bytes: its runs concatenated, `totalPages` pages (default: every run in full). */
export function readVmallocArea(memory: PhysReader, area: { readonly runs: ArrayLike<number>; readonly order: number }, totalPages?: number): Uint8Array {
  const runBytes = 2 ** area.order * PAGE_SIZE;
  const pages = totalPages ?? area.runs.length * 2 ** area.order;
  if (pages > area.runs.length * 2 ** area.order) throw new KernelError("EINVAL", `${pages} pages asked of an area of ${area.runs.length} runs of order ${area.order}`);
  const size = pages * PAGE_SIZE;
  const out = new Uint8Array(size);
  for (let i = 0, done = 0; done < size; i++, done += runBytes) {
    memory.readInto(area.runs[i]!, out.subarray(done, Math.min(size, done + runBytes)));
  }
  return out;
}
