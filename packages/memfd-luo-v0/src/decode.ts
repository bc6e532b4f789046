/**
 * Reading a `memfd-v0` record without consuming anything: for the next kernel's retrieve
 * (which validates the whole record this way before it reclaims the first page, so a
 * failed retrieve changes nothing) and for an inspector reading a memory image.
 *
 * The record is hostile input. Every failure is a `FormatError("memfd-v0", offset, rule,
 * errno)`; offsets are physical addresses.
 *
 * | rule | errno | what |
 * |---|---|---|
 * | `fdt-missing` | ENOENT | `data` is 0, not a page of memory, or (with stamps) not a preserved folio |
 * | `fdt` | EINVAL | not a readable FDT (header, structure; libfdt's reader rules), or no root node |
 * | `fdt-size` | EINVAL | `totalsize` larger than the folio the FDT sits in |
 * | `fdt-order` | EINVAL | the FDT folio's order does not fit the variant (see below) |
 * | `folios-missing`, `folios-length` | EINVAL | no `folios`; its length not a multiple of 16 |
 * | `size-missing`, `size-length`, `pos-missing`, `pos-length` | EINVAL | missing or not 8 bytes |
 * | `size-range` | EINVAL | more than 2^32 - 1 pages (more than preserve accepts) |
 * | `pos-range` | EOVERFLOW | `pos` beyond 2^52 (`MEMFD_MAX_BYTES`: the memfd model's largest offset) |
 * | `folios-array` | EINVAL | the KHO array is malformed (the kho-array rule is in the message and `cause`) |
 * | `array-page-not-preserved` | EINVAL | (with stamps) a page of the array is not a preserved order-0 folio |
 * | `folio-entry` | EINVAL | an array entry that is a pointer, not a value |
 * | `folio-flags` | EINVAL | flag bits other than DIRTY and UPTODATE |
 * | `folio-index` | EINVAL | a folio at or beyond the file's last page |
 * | `folio-pointer` | EINVAL | a folio (head page, or any of its pages) outside memory |
 * | `folio-not-preserved` | EIO | (with stamps) a folio whose head page carries no `KHOP` stamp |
 * | `folio-order` | EINVAL | (with stamps) a folio larger than a shmem folio can be (order 9) |
 * | `folio-alignment` | EINVAL | an index that is not a multiple of the folio's pages |
 * | `folio-overlap` | EINVAL | two folios covering the same page offset |
 * | `folio-duplicate` | EINVAL | two folios (or a folio and the FDT or an array page) sharing a physical page |
 *
 * Which variant: with stamps the FDT folio's order decides. Order 0 holds a seed record
 * (a 16-byte `folios`, read as a KHO array descriptor, so a damaged one is reported as the
 * KHO array's error) or an empty posted list (0 bytes); order >= 1 holds a posted list whose
 * `get_order(PAGE_ALIGN(16 n) + PAGE_SIZE)` must be that order. Without stamps (an image):
 * 0 bytes is posted; 16 bytes starting with `KARR` is seed; 16 bytes whose first record has
 * only known flags is posted, any other 16 bytes seed (so the magic is what is reported);
 * more is posted.
 *
 * @packageDocumentation
 */
import { Fdt, FdtError } from "@liveupdate/fdt-codec";
import { FormatError, MAX_PAGE_ORDER, PAGE_SIZE, PhysicalMemory, type Errno, type KhoStampReader, type OffsetSpace, type PhysReader } from "@liveupdate/kho";
import { KHO_ARRAY_ENTRIES_PER_PAGE, KHO_ARRAY_MAGIC, KHO_ARRAY_PAGE_ENTRIES_OFFSET, readKhoArrayLayout } from "@liveupdate/kho-array";
import { MEMFD_MAX_BYTES } from "@liveupdate/memfd";
import { MEMFD_V0_ORDER_UNKNOWN, MemfdV0FolioTable } from "./folio-table.js";
import {
  MEMFD_V0_FOLIO_KNOWN_FLAGS,
  MEMFD_V0_FOLIOS_DESCRIPTOR_SIZE,
  MEMFD_V0_MAX_FOLIO_ORDER,
  MEMFD_V0_MAX_PAGES,
  MEMFD_V0_POSTED_RECORD_SIZE,
  MEMFD_V0_PROP_FOLIOS,
  MEMFD_V0_PROP_POS,
  MEMFD_V0_PROP_SIZE,
  MEMFD_V0_U64_SIZE,
  memfdV0PostedFdtBufferSize,
  memfdV0PostedFdtOrder,
  memfdV0ValueFlags,
  memfdV0ValuePfn,
} from "./format.js";

const FORMAT = "memfd-v0";
const TWO_32 = 0x1_0000_0000;
const FDT_HEADER_SIZE = 40;
const MAX_FDT_BYTES = PAGE_SIZE * 2 ** MAX_PAGE_ORDER;
const PER_PAGE = KHO_ARRAY_ENTRIES_PER_PAGE;
const PAGE_WORDS = PAGE_SIZE / 4;
const FIRST_ENTRY_WORD = KHO_ARRAY_PAGE_ENTRIES_OFFSET / 4;
const HOST_LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** Which `folios` encoding a record uses. */
export type MemfdV0Variant = "kho-array" | "posted";

/** A decoded `memfd-v0` record. */
export interface MemfdV0Record {
  /** `"kho-array"`: the seed variant this package writes; `"posted"`: the 16-byte-record list. */
  readonly variant: MemfdV0Variant;
  /** Physical address of the FDT (`luo_file_ser.data`). */
  readonly fdtPhys: number;
  /** Order of the folio holding the FDT (from its stamp, or what the variant implies). */
  readonly fdtOrder: number;
  /** The FDT's `totalsize`. */
  readonly fdtSize: number;
  /** `f_pos`. */
  readonly pos: number;
  /** `i_size` in bytes. */
  readonly size: number;
  /**
   * The folios in ascending index order. Orders come from the stamps; without a stamp
   * reader they are {@link MEMFD_V0_ORDER_UNKNOWN}.
   */
  readonly folios: MemfdV0FolioTable;
  /** Seed variant: the KHO array's pages in chain order (empty for the posted variant). */
  readonly arrayPages: Float64Array;
}

/** Options of {@link decodeMemfdV0}. */
export interface MemfdV0DecodeOptions {
  /**
   * The next kernel's `KHOP` stamps (a `KhoIncoming`, or a table built from an image's
   * preserved-memory map). With them the FDT and every page must be preserved, and each
   * folio's order is known and checked.
   */
  readonly stamps?: KhoStampReader;
}

function fail(rule: string, at: number, message: string, errno: Errno = "EINVAL", space: OffsetSpace = "phys"): never {
  throw new FormatError(FORMAT, at, space, rule, message, errno);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Physical address of `data` as a number, or undefined when it cannot be one. */
function dataAddress(data: number | bigint): number | undefined {
  if (typeof data === "bigint") return data >= 0n && data <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(data) : undefined;
  return Number.isSafeInteger(data) && data >= 0 ? data : undefined;
}

/** A bitmap over the pages `[base, base + span)`: flat, so marking a page is a shift and an OR. */
const MAX_BITMAP_PAGES = 2 ** 27; // 16 MiB of bitmap: 512 GiB of memory between the lowest and highest page

/** Where something the record points at lies: `pages` pages from `pfn`. */
interface PageRun {
  readonly pfn: number;
  readonly pages: number;
  /** Where the pointer to it is (for the error). */
  readonly at: number;
  readonly what: string;
}

/**
 * Check that no two parts of the record (the FDT folio, the array pages, the folios) share
 * a physical page: two restores of one page would hand it out twice. A flat bitmap from the
 * lowest to the highest page when that span is moderate, else a sort.
 */
function checkDisjoint(parts: readonly PageRun[], folios: MemfdV0FolioTable, locate: (i: number) => number): void {
  const n = folios.length;
  const pagesOf = (i: number): number => {
    const order = folios.order(i);
    return order === 0 || order === MEMFD_V0_ORDER_UNKNOWN ? 1 : 2 ** order;
  };
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of parts) {
    lo = Math.min(lo, p.pfn);
    hi = Math.max(hi, p.pfn + p.pages);
  }
  for (let i = 0; i < n; i++) {
    const pfn = folios.pfn(i);
    if (pfn < lo) lo = pfn;
    const end = pfn + pagesOf(i);
    if (end > hi) hi = end;
  }
  if (hi <= lo) return;
  const clash = (at: number, what: string): never => fail("folio-duplicate", at, `${what} shares a physical page with another part of the record`);
  if (hi - lo <= MAX_BITMAP_PAGES) {
    const bits = new Uint32Array(Math.ceil((hi - lo) / 32));
    const mark = (pfn: number, pages: number): boolean => {
      for (let off = pfn - lo, end = off + pages; off < end; ) {
        const w = off >>> 5;
        if ((off & 31) === 0 && end - off >= 32) {
          if (bits[w] !== 0) return false;
          bits[w] = 0xffff_ffff;
          off += 32;
          continue;
        }
        const mask = 1 << (off & 31);
        const word = bits[w]!;
        if ((word & mask) !== 0) return false;
        bits[w] = word | mask;
        off++;
      }
      return true;
    };
    for (const p of parts) if (!mark(p.pfn, p.pages)) clash(p.at, p.what);
    for (let i = 0; i < n; i++) {
      const order = folios.order(i);
      if (order === 0 || order === MEMFD_V0_ORDER_UNKNOWN) {
        // one page: test and set its bit here (the common case, a million times)
        const off = folios.pfn(i) - lo;
        const w = off >>> 5;
        const mask = 1 << (off & 31);
        const word = bits[w]!;
        if ((word & mask) === 0) {
          bits[w] = word | mask;
          continue;
        }
      } else if (mark(folios.pfn(i), 2 ** order)) continue;
      clash(locate(i), `folio at index ${folios.index(i)}`);
    }
    return;
  }
  // Sparse memory spread wide: sort the runs by first page and compare neighbours.
  const total = parts.length + n;
  const start = (k: number): number => (k < parts.length ? parts[k]!.pfn : folios.pfn(k - parts.length));
  const pages = (k: number): number => (k < parts.length ? parts[k]!.pages : pagesOf(k - parts.length));
  const order = Array.from({ length: total }, (_, k) => k).sort((a, b) => start(a) - start(b));
  for (let j = 1; j < total; j++) {
    const prev = order[j - 1]!;
    const k = order[j]!;
    if (start(k) < start(prev) + pages(prev)) {
      if (k < parts.length) clash(parts[k]!.at, parts[k]!.what);
      clash(locate(k - parts.length), `folio at index ${folios.index(k - parts.length)}`);
    }
  }
}

/** A stamp reader that can also answer without allocating (kho's `stampOrderOf`: order, or -1). */
interface StampOrderReader extends KhoStampReader {
  stampOrderOf?(phys: number): number;
}

/** Reads the fixed parts of the record; shared by both variants. */
interface Header {
  fdt: Fdt;
  fdtPhys: number;
  fdtOrder: number | undefined;
  foliosAt: number; // offset of the folios value in the FDT
  foliosLength: number;
  pos: number;
  size: number;
}

function u32le(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function readHeader(reader: PhysReader, data: number | bigint, stamps: KhoStampReader | undefined): Header {
  const phys = dataAddress(data);
  if (phys === undefined || phys === 0) fail("fdt-missing", 0, `data ${String(data)} is not the address of a record`, "ENOENT");
  if (phys % PAGE_SIZE !== 0 || !reader.contains(phys, FDT_HEADER_SIZE)) fail("fdt-missing", phys, `data ${hex(phys)} is not a page of memory`, "ENOENT");
  let fdtOrder: number | undefined;
  let room = MAX_FDT_BYTES;
  if (stamps) {
    const stamp = stamps.stampOf(phys);
    if (stamp === undefined) fail("fdt-missing", phys, `the FDT at ${hex(phys)} is not a preserved folio`, "ENOENT");
    fdtOrder = stamp.order;
    if (fdtOrder > MAX_PAGE_ORDER) fail("fdt-order", phys, `the FDT sits in an order-${fdtOrder} folio, above MAX_PAGE_ORDER ${MAX_PAGE_ORDER}`);
    room = PAGE_SIZE * 2 ** fdtOrder;
  }
  const head = new Uint8Array(FDT_HEADER_SIZE);
  reader.readInto(phys, head);
  const totalsize = new DataView(head.buffer).getUint32(4);
  if (totalsize > room) fail("fdt-size", phys + 4, `FDT totalsize ${totalsize} is larger than its ${room}-byte folio`);
  const length = Math.max(totalsize, FDT_HEADER_SIZE);
  if (!reader.contains(phys, length)) fail("fdt-size", phys + 4, `FDT totalsize ${totalsize} runs past memory`);
  const bytes = new Uint8Array(length);
  reader.readInto(phys, bytes);
  let fdt: Fdt;
  try {
    fdt = Fdt.from(bytes);
  } catch (error) {
    if (error instanceof FdtError) fail("fdt", phys + Math.max(0, error.offset), `not a readable FDT: ${error.message}`);
    throw error;
  }
  const root = fdt.root;
  if (root < 0) fail("fdt", phys, "the FDT has no root node");

  // In the posted kernel's order: folios, size, pos.
  const folios = fdt.getProperty(root, MEMFD_V0_PROP_FOLIOS);
  if (folios < 0) fail("folios-missing", phys, `no "${MEMFD_V0_PROP_FOLIOS}" property`);
  const foliosLength = fdt.propertyLength(folios);
  if (foliosLength % MEMFD_V0_POSTED_RECORD_SIZE !== 0) {
    fail("folios-length", phys + fdt.propertyOffset(folios), `"${MEMFD_V0_PROP_FOLIOS}" is ${foliosLength} bytes, not a multiple of ${MEMFD_V0_POSTED_RECORD_SIZE}`);
  }
  const u64 = (name: string, rule: string): { low: number; high: number; at: number } => {
    const p = fdt.getProperty(root, name);
    if (p < 0) fail(`${rule}-missing`, phys, `no "${name}" property`);
    const len = fdt.propertyLength(p);
    const at = fdt.propertyValueOffset(p);
    if (len !== MEMFD_V0_U64_SIZE) fail(`${rule}-length`, phys + fdt.propertyOffset(p), `"${name}" is ${len} bytes, not ${MEMFD_V0_U64_SIZE}`);
    return { low: u32le(bytes, at), high: u32le(bytes, at + 4), at: phys + at };
  };
  const size = u64(MEMFD_V0_PROP_SIZE, "size");
  const pos = u64(MEMFD_V0_PROP_POS, "pos");
  // 2^32 - 1 pages is just below 2^44 bytes: a high half of 2^12 or more is always too big.
  const sizeBytes = size.high * TWO_32 + size.low;
  if (size.high >= 0x1000 || Math.ceil(sizeBytes / PAGE_SIZE) > MEMFD_V0_MAX_PAGES) {
    fail("size-range", size.at, `size ${hex(size.high)}${size.low.toString(16).padStart(8, "0")} is more than ${MEMFD_V0_MAX_PAGES} pages`);
  }
  // The kernel's limit is MAX_LFS_FILESIZE (2^63 - 1); the memfd model's is 2^52.
  if (pos.high * TWO_32 + pos.low > MEMFD_MAX_BYTES) {
    fail("pos-range", pos.at, `pos ${hex(pos.high)}${pos.low.toString(16).padStart(8, "0")} is beyond the model's largest offset 2^52`, "EOVERFLOW");
  }
  return {
    fdt,
    fdtPhys: phys,
    fdtOrder,
    foliosAt: fdt.propertyValueOffset(folios),
    foliosLength,
    pos: pos.high * TWO_32 + pos.low,
    size: sizeBytes,
  };
}

/** Which variant the `folios` value is (see the module comment). */
function variantOf(h: Header): MemfdV0Variant {
  const bytes = h.fdt.bytes;
  const len = h.foliosLength;
  const at = h.foliosAt;
  if (h.fdtOrder !== undefined) {
    if (h.fdtOrder === 0) {
      if (len === 0) return "posted";
      if (len === MEMFD_V0_FOLIOS_DESCRIPTOR_SIZE) return "kho-array";
      fail("fdt-order", h.fdtPhys, `an order-0 FDT folio holds a 16-byte KHO array descriptor or no posted records; "folios" is ${len} bytes`);
    }
    const expected = memfdV0PostedFdtOrder(len / MEMFD_V0_POSTED_RECORD_SIZE);
    if (h.fdtOrder !== expected) {
      fail("fdt-order", h.fdtPhys, `${len / MEMFD_V0_POSTED_RECORD_SIZE} posted records need an order-${expected} FDT folio, not order ${h.fdtOrder}`);
    }
    return "posted";
  }
  if (len === 0) return "posted";
  if (len === MEMFD_V0_FOLIOS_DESCRIPTOR_SIZE) {
    if (u32le(bytes, at) === KHO_ARRAY_MAGIC) return "kho-array";
    return (u32le(bytes, at) & 0xfff & ~MEMFD_V0_FOLIO_KNOWN_FLAGS) === 0 ? "posted" : "kho-array";
  }
  return "posted";
}

/**
 * Per-folio checks shared by both variants; appends the folio to `table`. Plain fields and
 * no allocation per folio: this runs a million times for a 4 GiB memfd.
 */
class FolioChecker {
  readonly table: MemfdV0FolioTable;
  private readonly reader: PhysReader;
  private readonly stamps: StampOrderReader | undefined;
  /** Whether the reader has the allocation-free lookup (`KhoIncoming.stampOrderOf`). */
  private readonly hasOrderOf: boolean;
  private readonly pages: number;
  /** `[0, memoryEnd)` is one memory range of a PhysicalMemory: a folio inside it needs no `contains` call. */
  private readonly memoryEnd: number;
  private prevEnd = 0;
  private lastIndex = -1;
  private ascending = true;

  constructor(reader: PhysReader, stamps: KhoStampReader | undefined, size: number, capacity: number) {
    this.reader = reader;
    this.stamps = stamps;
    this.hasOrderOf = typeof (stamps as StampOrderReader | undefined)?.stampOrderOf === "function";
    this.pages = Math.ceil(size / PAGE_SIZE);
    this.table = new MemfdV0FolioTable(capacity);
    const first = reader instanceof PhysicalMemory ? reader.ranges[0] : undefined;
    this.memoryEnd = first?.start === 0 ? first.size : 0;
  }

  /**
   * Check one folio and append it. The checks are cheap comparisons; a failure goes to
   * {@link FolioChecker.reject}, which works out the message (keeping this method small
   * enough for V8 to inline into the decoding loops).
   */
  add(index: number, pfn: number, flags: number, at: number): void {
    const phys = pfn * PAGE_SIZE;
    if ((flags & ~MEMFD_V0_FOLIO_KNOWN_FLAGS) !== 0 || index >= this.pages || (phys + PAGE_SIZE > this.memoryEnd && !this.reader.contains(phys, PAGE_SIZE))) {
      this.reject(index, pfn, flags, at, MEMFD_V0_ORDER_UNKNOWN);
    }
    let order = MEMFD_V0_ORDER_UNKNOWN;
    let pages = 1;
    if (this.stamps !== undefined) {
      order = this.hasOrderOf ? this.stamps.stampOrderOf!(phys) : (this.stamps.stampOf(phys)?.order ?? -1);
      if (order < 0) this.reject(index, pfn, flags, at, MEMFD_V0_ORDER_UNKNOWN);
      if (order !== 0) {
        pages = 2 ** order;
        if (order > MEMFD_V0_MAX_FOLIO_ORDER || index % pages !== 0 || (phys + pages * PAGE_SIZE > this.memoryEnd && !this.reader.contains(phys, pages * PAGE_SIZE))) {
          this.reject(index, pfn, flags, at, order);
        }
      }
    }
    // While the list is ascending, overlaps show at once; otherwise `finish` sorts and checks.
    if (this.ascending) {
      if (index >= this.prevEnd) this.prevEnd = index + pages;
      else if (index > this.lastIndex) this.reject(index, pfn, flags, at, order);
      else this.ascending = false;
      this.lastIndex = index;
    }
    this.table.push(index, pfn, flags, order);
  }

  /** Throw the error for a folio {@link FolioChecker.add} refused (`order`: from its stamp, if read). */
  private reject(index: number, pfn: number, flags: number, at: number, order: number): never {
    const phys = pfn * PAGE_SIZE;
    if ((flags & ~MEMFD_V0_FOLIO_KNOWN_FLAGS) !== 0) fail("folio-flags", at, `folio at index ${index} has unknown flag bits ${hex(flags)}`);
    if (index >= this.pages) fail("folio-index", at, `folio at index ${index} is beyond the file's ${this.pages} pages`);
    if (!this.reader.contains(phys, PAGE_SIZE)) fail("folio-pointer", at, `folio at index ${index}: pfn ${hex(pfn)} is not memory`);
    if (order === MEMFD_V0_ORDER_UNKNOWN && this.stamps !== undefined) {
      fail("folio-not-preserved", at, `folio at index ${index} (${hex(phys)}) carries no KHOP stamp`, "EIO");
    }
    const pages = order === MEMFD_V0_ORDER_UNKNOWN ? 1 : 2 ** order;
    if (order !== MEMFD_V0_ORDER_UNKNOWN) {
      if (order > MEMFD_V0_MAX_FOLIO_ORDER) fail("folio-order", at, `folio at index ${index} is an order-${order} run; shmem folios are at most order ${MEMFD_V0_MAX_FOLIO_ORDER}`);
      if (index % pages !== 0) fail("folio-alignment", at, `order-${order} folio at index ${index} is not aligned to ${pages} pages`);
      if (!this.reader.contains(phys, pages * PAGE_SIZE)) fail("folio-pointer", at, `order-${order} folio at ${hex(phys)} runs past memory`);
    }
    fail("folio-overlap", at, `folio at index ${index} overlaps the one before it`);
  }

  /** For lists that were not ascending: sort by index and check for overlaps. */
  finish(at: number): MemfdV0FolioTable {
    if (this.ascending) return this.table;
    const t = this.table;
    const perm = Array.from({ length: t.length }, (_, i) => i).sort((a, b) => t.index(a) - t.index(b));
    const out = new MemfdV0FolioTable(t.length);
    let prevEnd = 0;
    for (const i of perm) {
      const index = t.index(i);
      if (index < prevEnd) fail("folio-overlap", at, `two folios cover index ${index}`);
      const order = t.order(i);
      prevEnd = index + (order === MEMFD_V0_ORDER_UNKNOWN ? 1 : 2 ** order);
      out.push(index, t.pfn(i), t.flags(i), order);
    }
    return out;
  }
}

function pageWords(page: Uint8Array, scratch: Uint32Array): Uint32Array {
  if (HOST_LITTLE_ENDIAN && page.byteOffset % 4 === 0) return new Uint32Array(page.buffer, page.byteOffset, PAGE_WORDS);
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  for (let i = 0; i < PAGE_WORDS; i++) scratch[i] = view.getUint32(i * 4, true);
  return scratch;
}

function decodeKhoArrayFolios(reader: PhysReader, h: Header, stamps: KhoStampReader | undefined): { folios: MemfdV0FolioTable; arrayPages: Float64Array } {
  const descriptor = h.fdt.bytes.subarray(h.foliosAt, h.foliosAt + MEMFD_V0_FOLIOS_DESCRIPTOR_SIZE);
  let layout;
  try {
    layout = readKhoArrayLayout(reader, descriptor);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    // The descriptor's own offsets are relative to the FDT value; report them in memory.
    const at = error.space === "blob" ? h.fdtPhys + h.foliosAt + error.offset : error.offset;
    const wrapped = new FormatError(FORMAT, at, "phys", "folios-array", `the folio list is not a valid KHO array: ${error.message}`, "EINVAL");
    wrapped.cause = error;
    throw wrapped;
  }
  const pages = layout.pages;
  const checker = new FolioChecker(reader, stamps, h.size, Math.max(1, layout.entryCount));
  const parts: PageRun[] = [fdtRun(h, Math.ceil(h.fdt.header.totalsize / PAGE_SIZE))];
  for (let i = 0; i < pages.length; i++) {
    const page = pages[i]!;
    if (stamps && stamps.stampOf(page)?.order !== 0) fail("array-page-not-preserved", page, `KHO array page ${hex(page)} is not a preserved order-0 folio`);
    parts.push({ pfn: page / PAGE_SIZE, pages: 1, at: i === 0 ? h.fdtPhys + h.foliosAt + 8 : pages[i - 1]!, what: `KHO array page ${hex(page)}` });
  }
  const memory = reader instanceof PhysicalMemory ? reader : undefined;
  const buffer = new Uint8Array(PAGE_SIZE);
  const scratch = new Uint32Array(PAGE_WORDS);
  for (let i = 0; i < pages.length; i++) {
    const page = pages[i]!;
    let words: Uint32Array;
    if (memory) words = pageWords(memory.readPage(page / PAGE_SIZE), scratch);
    else {
      reader.readInto(page, buffer);
      words = pageWords(buffer, scratch);
    }
    const start = layout.startPos[i]!;
    for (let slot = 0; slot < PER_PAGE; slot++) {
      const w = FIRST_ENTRY_WORD + slot * 2;
      const lo = words[w]!;
      const hi = words[w + 1]!;
      if ((lo | hi) === 0) continue;
      const at = page + w * 4;
      if ((lo & 1) === 0) fail("folio-entry", at, `entry ${start + slot} is a pointer, not a folio value`);
      checker.add(start + slot, memfdV0ValuePfn(lo, hi), memfdV0ValueFlags(lo), at);
    }
  }
  // Ascending by construction of the array, so `finish` only returns the table.
  const folios = checker.finish(h.fdtPhys + h.foliosAt);
  checkDisjoint(parts, folios, (i) => {
    // the entry of folio i: its page by binary search over startpos
    const index = folios.index(i);
    let a = 0;
    let b = pages.length - 1;
    while (a < b) {
      const mid = (a + b + 1) >>> 1;
      if (layout.startPos[mid]! <= index) a = mid;
      else b = mid - 1;
    }
    return pages[a]! + KHO_ARRAY_PAGE_ENTRIES_OFFSET + (index - layout.startPos[a]!) * 8;
  });
  return { folios, arrayPages: pages };
}

function decodePostedFolios(reader: PhysReader, h: Header, stamps: KhoStampReader | undefined): MemfdV0FolioTable {
  const bytes = h.fdt.bytes;
  const count = h.foliosLength / MEMFD_V0_POSTED_RECORD_SIZE;
  const buffer = memfdV0PostedFdtBufferSize(count);
  if (h.fdtOrder === undefined && h.fdt.header.totalsize > buffer) {
    fail("fdt-size", h.fdtPhys + 4, `a posted FDT with ${count} records has a ${buffer}-byte buffer, not ${h.fdt.header.totalsize}`);
  }
  const checker = new FolioChecker(reader, stamps, h.size, Math.max(1, count));
  for (let i = 0; i < count; i++) {
    const o = h.foliosAt + i * MEMFD_V0_POSTED_RECORD_SIZE;
    const descLo = u32le(bytes, o);
    const descHi = u32le(bytes, o + 4);
    if ((descLo | descHi) === 0) continue; // the posted kernel skips empty records
    const indexLo = u32le(bytes, o + 8);
    const indexHi = u32le(bytes, o + 12);
    const at = h.fdtPhys + o;
    // An index of 2^53 or more is far beyond any file this format can describe.
    const index = indexHi >= 0x20_0000 ? Number.MAX_SAFE_INTEGER : indexHi * TWO_32 + indexLo;
    checker.add(index, descHi * 0x10_0000 + (descLo >>> 12), descLo & 0xfff, at);
  }
  const folios = checker.finish(h.fdtPhys + h.foliosAt);
  checkDisjoint([fdtRun(h, buffer / PAGE_SIZE)], folios, (i) => {
    for (let r = 0; r < count; r++) {
      const o = h.foliosAt + r * MEMFD_V0_POSTED_RECORD_SIZE;
      const lo = u32le(bytes, o);
      if (u32le(bytes, o + 4) * 0x10_0000 + (lo >>> 12) === folios.pfn(i) && u32le(bytes, o + 8) === folios.index(i) % TWO_32) return h.fdtPhys + o;
    }
    return h.fdtPhys + h.foliosAt;
  });
  return folios;
}

/** The FDT's own pages: its folio with stamps, else `pagesWithoutStamps`. */
function fdtRun(h: Header, pagesWithoutStamps: number): PageRun {
  return { pfn: h.fdtPhys / PAGE_SIZE, pages: h.fdtOrder === undefined ? pagesWithoutStamps : 2 ** h.fdtOrder, at: h.fdtPhys, what: "the FDT" };
}

/**
 * Decode and validate the `memfd-v0` record at `data` (`luo_file_ser.data`) without
 * reclaiming or changing anything. Reads only through `reader`, bounded by what the
 * record's parts may span (the FDT at most one MAX_PAGE_ORDER folio, the KHO array at most
 * one visit per page of memory).
 *
 * @throws FormatError (format `"memfd-v0"`) for every rule in the module table.
 */
export function decodeMemfdV0(reader: PhysReader, data: number | bigint, options: MemfdV0DecodeOptions = {}): MemfdV0Record {
  const stamps = options.stamps;
  const h = readHeader(reader, data, stamps);
  const variant = variantOf(h);
  let folios: MemfdV0FolioTable;
  let arrayPages: Float64Array = new Float64Array(0);
  let fdtOrder: number;
  if (variant === "kho-array") {
    if (h.fdtOrder === undefined && h.fdt.header.totalsize > PAGE_SIZE) {
      fail("fdt-size", h.fdtPhys + 4, `a seed FDT sits in one page; totalsize is ${h.fdt.header.totalsize}`);
    }
    ({ folios, arrayPages } = decodeKhoArrayFolios(reader, h, stamps));
    fdtOrder = h.fdtOrder ?? 0;
  } else {
    folios = decodePostedFolios(reader, h, stamps);
    fdtOrder = h.fdtOrder ?? memfdV0PostedFdtOrder(h.foliosLength / MEMFD_V0_POSTED_RECORD_SIZE);
  }
  return { variant, fdtPhys: h.fdtPhys, fdtOrder, fdtSize: h.fdt.header.totalsize, pos: h.pos, size: h.size, folios, arrayPages };
}
