/**
 * The KHO array (format 0, layout in `layout.ts`): build it in the outgoing kernel with
 * ascending writes, preserve its pages, and restore it in the next kernel with every rule
 * of the format checked before the first page is reclaimed.
 *
 * Hot paths work on u32 halves of the u64 words (views of the pages on little-endian
 * hosts), never on bigints: `bigint` appears only at the API edge, for values and
 * pointers that can exceed 2^53. Reading keeps the pages' `startpos` in a sorted array,
 * so a lookup by index is a binary search, not a walk of the chain.
 */
import { FormatError, KernelError, PhysicalMemory, type OffsetSpace } from "@liveupdate/kho";
import {
  KHO_ARRAY_DESCRIPTOR_SIZE,
  KHO_ARRAY_DESC_FIRST_OFFSET,
  KHO_ARRAY_DESC_MAGIC_OFFSET,
  KHO_ARRAY_DESC_RESERVED_OFFSET,
  KHO_ARRAY_DESC_VERSION_OFFSET,
  KHO_ARRAY_ENTRIES_PER_PAGE,
  KHO_ARRAY_FORMAT_VERSION,
  KHO_ARRAY_MAGIC,
  KHO_ARRAY_MAX_VALUE,
  KHO_ARRAY_PAGE_ENTRIES_OFFSET,
  KHO_ARRAY_PAGE_SIZE,
  KHO_ARRAY_PAGE_STARTPOS_OFFSET,
  KHO_ARRAY_POINTER_ALIGN,
} from "./layout.js";

const FORMAT = "kho-array";
const PAGE_SIZE = KHO_ARRAY_PAGE_SIZE;
const PER_PAGE = KHO_ARRAY_ENTRIES_PER_PAGE;
const TWO_32 = 0x1_0000_0000;
/** High half of a u64 at or above this: an address beyond 52 bits. */
const PHYS_HIGH_LIMIT = 0x10_0000;
const PAGE_WORDS = PAGE_SIZE / 4;
const FIRST_ENTRY_WORD = KHO_ARRAY_PAGE_ENTRIES_OFFSET / 4;
const STARTPOS_WORD = KHO_ARRAY_PAGE_STARTPOS_OFFSET / 4;
/** The highest `startpos` whose indices are all exact in a double. */
const MAX_STARTPOS = Math.floor((Number.MAX_SAFE_INTEGER - (PER_PAGE - 1)) / PER_PAGE) * PER_PAGE;
const TWO_32_MOD_PER_PAGE = TWO_32 % PER_PAGE;
const HOST_LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------
// Seams (satisfied by `@liveupdate/kho`'s KhoPreserver / KhoRestorer, e.g. a Machine's
// `kho` and `incoming`)

/** What the array needs from the outgoing kernel. */
export interface KhoArrayPreserver {
  /** The outgoing kernel's memory. */
  readonly memory: PhysicalMemory;
  /** A zeroed folio (the array only asks for order 0). */
  allocFolio(order: number): number;
  /** Give a folio back. */
  freeFolio(phys: number, order: number): void;
  /** `kho_preserve_folio`. */
  preserveFolio(phys: number, order: number): void;
  /** `kho_unpreserve_folio`. */
  unpreserveFolio(phys: number, order: number): void;
}

/** What the array needs from the next kernel. */
export interface KhoArrayRestorer {
  /** The next kernel's memory. */
  readonly memory: PhysicalMemory;
  /** `kho_restore_folio`: consumes the page's `KHOP` stamp, returns its order. */
  restoreFolio(phys: number): number;
  /**
   * The stamp on a page without consuming it. When present, restore proves every page
   * restorable before reclaiming any (a failed restore then changes nothing).
   */
  stampOf?(phys: number): { readonly order: number } | undefined;
}

/** Read-only memory for {@link readKhoArrayLayout}: a live machine or an image. */
export interface KhoArrayMemoryReader {
  /** Whether `[phys, phys + len)` can be read. */
  contains(phys: number, len: number): boolean;
  /** Copy `dst.length` bytes at `phys` into `dst`. */
  readInto(phys: number, dst: Uint8Array): void;
}

// ---------------------------------------------------------------------------------------
// Entries

/** A non-empty entry: a tagged value or an (opaque) pointer. */
export type KhoArrayEntry = { readonly kind: "value"; readonly value: bigint } | { readonly kind: "pointer"; readonly pointer: bigint };

/** Decode the u64 `hi:lo` of a non-empty slot. */
function decodeEntry(lo: number, hi: number): KhoArrayEntry {
  if ((lo & 1) !== 0) return { kind: "value", value: (BigInt(hi) << 31n) | BigInt(lo >>> 1) };
  return { kind: "pointer", pointer: (BigInt(hi) << 32n) | BigInt(lo) };
}

function checkIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) throw new KernelError("EINVAL", `index ${index} is not a non-negative safe integer`);
}

/** The page's bytes as little-endian u32 words: a view where possible, else a decoded copy. */
function pageWords(page: Uint8Array, scratch: Uint32Array): Uint32Array {
  if (HOST_LITTLE_ENDIAN && page.byteOffset % 4 === 0) return new Uint32Array(page.buffer, page.byteOffset, PAGE_WORDS);
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  for (let i = 0; i < PAGE_WORDS; i++) scratch[i] = view.getUint32(i * 4, true);
  return scratch;
}

// ---------------------------------------------------------------------------------------
// Reading

/** Where each page of an array is and which indices it holds, ascending. */
export interface KhoArrayLayout {
  /** Physical address of each page, in chain order. */
  readonly pages: Float64Array;
  /** `startpos` of each page (strictly ascending multiples of 510). */
  readonly startPos: Float64Array;
  /** Non-empty entries. */
  readonly entryCount: number;
}

/** The pages of an array, ascending by `startpos` (grown by the builder). Internal. */
class PageTable {
  readonly memory: PhysicalMemory;
  phys: Float64Array;
  start: Float64Array;
  count: number;
  entries: number;
  readonly #scratch = new Uint32Array(PAGE_WORDS);

  constructor(memory: PhysicalMemory, layout: KhoArrayLayout) {
    this.memory = memory;
    this.count = Math.min(layout.pages.length, layout.startPos.length);
    this.phys = layout.pages.slice(0, this.count);
    this.start = layout.startPos.slice(0, this.count);
    this.entries = layout.entryCount;
  }

  push(phys: number, start: number): void {
    if (this.count === this.phys.length) {
      const size = Math.max(16, this.count * 2);
      const phys2 = new Float64Array(size);
      const start2 = new Float64Array(size);
      phys2.set(this.phys);
      start2.set(this.start);
      this.phys = phys2;
      this.start = start2;
    }
    this.phys[this.count] = phys;
    this.start[this.count] = start;
    this.count++;
  }

  /** The page whose indices hold `index`, or -1. */
  holding(index: number): number {
    const start = index - (index % PER_PAGE);
    let lo = 0;
    let hi = this.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.start[mid]!;
      if (s === start) return mid;
      if (s < start) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** The first page whose indices end above `index` (it may hold `index` or later ones). */
  firstFrom(index: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.start[mid]! + PER_PAGE <= index) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Page `i`'s words (a view, or a decoded copy valid until the next call). */
  words(i: number): Uint32Array {
    return pageWords(this.memory.readPage(this.phys[i]! / PAGE_SIZE), this.#scratch);
  }
}

/** Module access to an array's pages, for the cursor and the builder. */
let tableOf: (array: KhoArray) => PageTable;

/** A KHO array whose pages are in `memory`: lookup by index, iteration. */
export class KhoArray {
  /** The memory the pages live in. */
  readonly memory: PhysicalMemory;
  readonly #table: PageTable;

  static {
    tableOf = (array) => array.#table;
  }

  /**
   * An array over pages already laid out in `memory` (as {@link readKhoArrayLayout} and
   * {@link restoreKhoArray} produce; reads stay within memory whatever the layout says).
   */
  constructor(memory: PhysicalMemory, layout: KhoArrayLayout) {
    this.memory = memory;
    this.#table = new PageTable(memory, layout);
  }

  /** Non-empty entries. */
  get entryCount(): number {
    return this.#table.entries;
  }

  /** Pages in the chain. */
  get pageCount(): number {
    return this.#table.count;
  }

  /** Metadata bytes: every page. */
  get byteSize(): number {
    return this.#table.count * PAGE_SIZE;
  }

  /** A copy of the layout (page addresses and `startpos`). */
  layout(): KhoArrayLayout {
    const t = this.#table;
    return { pages: t.phys.slice(0, t.count), startPos: t.start.slice(0, t.count), entryCount: t.entries };
  }

  /** The entry at `index`, or `undefined` when the slot is empty. A binary search over the pages. */
  get(index: number): KhoArrayEntry | undefined {
    checkIndex(index);
    const t = this.#table;
    const page = t.holding(index);
    if (page < 0) return undefined;
    const words = t.words(page);
    const w = FIRST_ENTRY_WORD + (index - t.start[page]!) * 2;
    const lo = words[w]!;
    const hi = words[w + 1]!;
    return (lo | hi) === 0 ? undefined : decodeEntry(lo, hi);
  }

  /** Whether the slot at `index` holds an entry. */
  has(index: number): boolean {
    return this.get(index) !== undefined;
  }

  /** A cursor over the non-empty entries at or after `from`, in index order. */
  cursor(from = 0): KhoArrayCursor {
    checkIndex(from);
    return new KhoArrayCursor(this, from);
  }

  /** Every non-empty entry as `[index, entry]`, ascending (allocates per entry; see {@link KhoArray.cursor}). */
  *entries(): Generator<[number, KhoArrayEntry], void, undefined> {
    const c = this.cursor();
    while (c.next()) yield [c.index, c.entry()];
  }
}

/**
 * A position over an array's non-empty entries: `next()` moves to the next one and the
 * getters read it, with no allocation per entry (only `value`, `pointer` and `entry()`
 * build bigints or objects).
 */
export class KhoArrayCursor {
  readonly #table: PageTable;
  #page: number;
  #slot: number; // slot of the current entry in #page; -1 before the first
  #words: Uint32Array | undefined;
  #start = 0; // startpos of #page
  #lo = 0;
  #hi = 0;
  #from: number;
  /** Index of the current entry (valid after `next()` returned true). */
  index = -1;

  /** A cursor before the first entry at or after `from` (see {@link KhoArray.cursor}). */
  constructor(array: KhoArray, from: number) {
    this.#table = tableOf(array);
    this.#from = from;
    this.#page = this.#table.firstFrom(from);
    this.#slot = -1;
    this.#words = undefined;
  }

  /** Move to the next non-empty entry; false when there is none. */
  next(): boolean {
    if (this.#words !== undefined && this.#scan()) return true;
    const table = this.#table;
    for (;;) {
      if (this.#words !== undefined) {
        this.#page++;
        this.#words = undefined;
      }
      if (this.#page >= table.count) {
        this.index = -1;
        return false;
      }
      this.#start = table.start[this.#page]!;
      this.#words = table.words(this.#page);
      this.#slot = Math.max(-1, this.#from - this.#start - 1);
      if (this.#scan()) return true;
    }
  }

  /** Stop on the next non-empty slot of the current page, if any. */
  #scan(): boolean {
    const words = this.#words!;
    for (let slot = this.#slot + 1; slot < PER_PAGE; slot++) {
      const w = FIRST_ENTRY_WORD + slot * 2;
      const lo = words[w]!;
      const hi = words[w + 1]!;
      if ((lo | hi) !== 0) {
        this.#slot = slot;
        this.#lo = lo;
        this.#hi = hi;
        this.index = this.#start + slot;
        return true;
      }
    }
    this.#slot = PER_PAGE;
    return false;
  }

  /** Whether the current entry is a value (else a pointer). */
  get isValue(): boolean {
    return (this.#lo & 1) !== 0;
  }

  /** The current value as a number; `EOVERFLOW` above 2^53 - 1 (use {@link KhoArrayCursor.value}), `EINVAL` on a pointer. */
  get valueNumber(): number {
    if (!this.isValue) throw new KernelError("EINVAL", `entry ${this.index} is a pointer, not a value`);
    if (this.#hi >= 0x40_0000) throw new KernelError("EOVERFLOW", `value at ${this.index} does not fit a double exactly`);
    return this.#hi * 0x8000_0000 + (this.#lo >>> 1);
  }

  /** The current value; `EINVAL` on a pointer. */
  get value(): bigint {
    if (!this.isValue) throw new KernelError("EINVAL", `entry ${this.index} is a pointer, not a value`);
    return (BigInt(this.#hi) << 31n) | BigInt(this.#lo >>> 1);
  }

  /** The current pointer; `EINVAL` on a value. */
  get pointer(): bigint {
    if (this.isValue) throw new KernelError("EINVAL", `entry ${this.index} is a value, not a pointer`);
    return (BigInt(this.#hi) << 32n) | BigInt(this.#lo);
  }

  /** The current pointer as a number (a physical address); `EOVERFLOW` above 2^53 - 1. */
  get pointerNumber(): number {
    if (this.isValue) throw new KernelError("EINVAL", `entry ${this.index} is a value, not a pointer`);
    if (this.#hi >= 0x20_0000) throw new KernelError("EOVERFLOW", `pointer at ${this.index} does not fit a double exactly`);
    return this.#hi * TWO_32 + this.#lo;
  }

  /** The raw u64 word of the current entry: its low half. */
  get rawLow(): number {
    return this.#lo;
  }
  /** The raw u64 word of the current entry: its high half. */
  get rawHigh(): number {
    return this.#hi;
  }

  /** The current entry as an object. */
  entry(): KhoArrayEntry {
    return decodeEntry(this.#lo, this.#hi);
  }
}

// ---------------------------------------------------------------------------------------
// Building (outgoing kernel)

/**
 * Builds a KHO array in preserved-to-be pages: writes go in ascending index order
 * (`EINVAL` below the last one written; the same index may be written again), each block
 * of 510 indices gets a zeroed page when its first entry is written.
 */
export class KhoArrayBuilder extends KhoArray {
  readonly #kho: KhoArrayPreserver;
  #position = -1; // the last index written
  #curStart = -1; // startpos of the last page
  #curWords: Uint32Array | undefined; // u32 view of the last page (little-endian hosts)
  #curView: DataView | undefined; // the last page otherwise
  #preserved = false;

  readonly #table: PageTable;

  constructor(kho: KhoArrayPreserver) {
    super(kho.memory, { pages: new Float64Array(0), startPos: new Float64Array(0), entryCount: 0 });
    this.#kho = kho;
    this.#table = tableOf(this);
  }

  /** Whether {@link KhoArrayBuilder.preserve} has run (and not been undone). */
  get preserved(): boolean {
    return this.#preserved;
  }

  /** Store value `value` (`0..2^63 - 1`) at `index`: the word `(value << 1) | 1`. */
  setValue(index: number, value: number | bigint): void {
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value) || value < 0) throw new KernelError("EINVAL", `value ${value} is not a non-negative safe integer (use a bigint above 2^53)`);
      const vlo = value >>> 0;
      const vhi = (value - vlo) / TWO_32;
      this.#set(index, ((vlo << 1) | 1) >>> 0, ((vhi << 1) | (vlo >>> 31)) >>> 0);
      return;
    }
    if (value < 0n || value > KHO_ARRAY_MAX_VALUE) throw new KernelError("EINVAL", `value ${value} is outside 0..2^63-1`);
    const vlo = Number(value & 0xffff_ffffn);
    const vhi = Number(value >> 32n);
    this.#set(index, ((vlo << 1) | 1) >>> 0, ((vhi << 1) | (vlo >>> 31)) >>> 0);
  }

  /** Store a pointer (non-zero, 8-byte aligned, below 2^64) at `index`. */
  setPointer(index: number, pointer: number | bigint): void {
    let lo: number;
    let hi: number;
    if (typeof pointer === "number") {
      if (!Number.isSafeInteger(pointer) || pointer <= 0) throw new KernelError("EINVAL", `pointer ${pointer} is not a positive safe integer`);
      lo = pointer >>> 0;
      hi = (pointer - lo) / TWO_32;
    } else {
      if (pointer <= 0n || pointer >= 2n ** 64n) throw new KernelError("EINVAL", `pointer ${pointer} is not a non-zero u64`);
      lo = Number(pointer & 0xffff_ffffn);
      hi = Number(pointer >> 32n);
    }
    if (lo % KHO_ARRAY_POINTER_ALIGN !== 0) throw new KernelError("EINVAL", `pointer 0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")} is not ${KHO_ARRAY_POINTER_ALIGN}-byte aligned`);
    this.#set(index, lo, hi);
  }

  #set(index: number, lo: number, hi: number): void {
    if (!(index >= 0 && index <= Number.MAX_SAFE_INTEGER && Math.floor(index) === index)) checkIndex(index);
    if (index < this.#position) throw new KernelError("EINVAL", `index ${index} is below the last one written (${this.#position}): writes go in ascending order`);
    const slot = index - this.#curStart;
    if (this.#curStart < 0 || slot >= PER_PAGE) this.#newPage(index - (index % PER_PAGE));
    const w = FIRST_ENTRY_WORD + (index - this.#curStart) * 2;
    const words = this.#curWords;
    if (words) {
      if ((words[w]! | words[w + 1]!) === 0) this.#table.entries++;
      words[w] = lo;
      words[w + 1] = hi;
    } else {
      const view = this.#curView!;
      if ((view.getUint32(w * 4, true) | view.getUint32(w * 4 + 4, true)) === 0) this.#table.entries++;
      view.setUint32(w * 4, lo, true);
      view.setUint32(w * 4 + 4, hi, true);
    }
    this.#position = index;
  }

  #newPage(startPos: number): void {
    const kho = this.#kho;
    const phys = kho.allocFolio(0);
    if (this.#preserved) {
      try {
        kho.preserveFolio(phys, 0);
      } catch (err) {
        kho.freeFolio(phys, 0);
        throw err;
      }
    }
    const page = this.memory.pageForWrite(phys / PAGE_SIZE);
    const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
    view.setUint32(KHO_ARRAY_PAGE_STARTPOS_OFFSET, startPos >>> 0, true);
    view.setUint32(KHO_ARRAY_PAGE_STARTPOS_OFFSET + 4, (startPos - (startPos >>> 0)) / TWO_32, true);
    const table = this.#table;
    if (table.count > 0) {
      const last = table.phys[table.count - 1]!;
      const lastPage = this.memory.pageForWrite(last / PAGE_SIZE);
      const lastView = new DataView(lastPage.buffer, lastPage.byteOffset, PAGE_SIZE);
      lastView.setUint32(0, phys >>> 0, true);
      lastView.setUint32(4, (phys - (phys >>> 0)) / TWO_32, true);
    }
    table.push(phys, startPos);
    this.#curStart = startPos;
    const aliasable = HOST_LITTLE_ENDIAN && page.byteOffset % 4 === 0;
    this.#curWords = aliasable ? new Uint32Array(page.buffer, page.byteOffset, PAGE_WORDS) : undefined;
    this.#curView = aliasable ? undefined : view;
  }

  /** The 16-byte descriptor of the array as it stands. */
  descriptor(): Uint8Array {
    const out = new Uint8Array(KHO_ARRAY_DESCRIPTOR_SIZE);
    const view = new DataView(out.buffer);
    view.setUint32(KHO_ARRAY_DESC_MAGIC_OFFSET, KHO_ARRAY_MAGIC, true);
    view.setUint16(KHO_ARRAY_DESC_VERSION_OFFSET, KHO_ARRAY_FORMAT_VERSION, true);
    view.setUint16(KHO_ARRAY_DESC_RESERVED_OFFSET, 0, true);
    const table = this.#table;
    const first = table.count > 0 ? table.phys[0]! : 0;
    view.setUint32(KHO_ARRAY_DESC_FIRST_OFFSET, first >>> 0, true);
    view.setUint32(KHO_ARRAY_DESC_FIRST_OFFSET + 4, (first - (first >>> 0)) / TWO_32, true);
    return out;
  }

  /**
   * Preserve every page (pages added later are preserved as they are allocated) and return
   * the descriptor, also written at `descriptorPhys` when given. On failure nothing stays
   * preserved.
   */
  preserve(descriptorPhys?: number): Uint8Array {
    const kho = this.#kho;
    if (!this.#preserved) {
      let done = 0;
      try {
        for (; done < this.#table.count; done++) kho.preserveFolio(this.#table.phys[done]!, 0);
      } catch (err) {
        for (let i = 0; i < done; i++) kho.unpreserveFolio(this.#table.phys[i]!, 0);
        throw err;
      }
      this.#preserved = true;
    }
    const descriptor = this.descriptor();
    if (descriptorPhys !== undefined) this.memory.write(descriptorPhys, descriptor);
    return descriptor;
  }

  /** Undo {@link KhoArrayBuilder.preserve}. */
  unpreserve(): void {
    if (!this.#preserved) return;
    for (let i = 0; i < this.#table.count; i++) this.#kho.unpreserveFolio(this.#table.phys[i]!, 0);
    this.#preserved = false;
  }

  /** Unpreserve (if preserved) and free every page; the builder is empty afterwards. */
  free(): void {
    this.unpreserve();
    for (let i = 0; i < this.#table.count; i++) this.#kho.freeFolio(this.#table.phys[i]!, 0);
    this.#table.count = 0;
    this.#table.entries = 0;
    this.#position = -1;
    this.#curStart = -1;
    this.#curWords = undefined;
    this.#curView = undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Restoring (next kernel)

/** A descriptor: its 16 bytes, or the physical address it is stored at. */
export type KhoArrayDescriptorSource = Uint8Array | number;

/**
 * Read and validate a preserved array without reclaiming anything. Every rule of format 0
 * plus the checks the RFC left out; each failure is a `FormatError("kho-array", ...)`:
 *
 * | rule | errno | what |
 * |---|---|---|
 * | `descriptor-size`, `descriptor-pointer` | EINVAL | fewer than 16 bytes; not in memory |
 * | `magic`, `version` | EOPNOTSUPP | not `KARR`; a version other than 0 |
 * | `reserved` | EINVAL | reserved field not 0 |
 * | `page-pointer`, `page-alignment` | EINVAL | a page outside memory (or beyond 52 bits); not page-aligned |
 * | `page-cycle` | EINVAL | a page reached twice (so the chain has at most as many pages as memory) |
 * | `startpos-alignment`, `startpos-order` | EINVAL | not a multiple of 510; not above the previous page's |
 * | `startpos-range` | EOVERFLOW | indices beyond 2^53 - 1 (this model's limit) |
 * | `tag` | EINVAL | a pointer entry that is not 8-byte aligned |
 * | `empty-page` | EINVAL | a page without entries (format 0 never writes one) |
 */
export function readKhoArrayLayout(reader: KhoArrayMemoryReader, descriptor: KhoArrayDescriptorSource): KhoArrayLayout {
  const { first, at, space } = readDescriptor(reader, descriptor);
  // Every page is checked to be memory and is visited once, so the walk (and what it
  // allocates) is bounded by the memory's size.
  const memory = reader instanceof PhysicalMemory ? reader : undefined;
  const buffer = new Uint8Array(PAGE_SIZE);
  const scratch = new Uint32Array(PAGE_WORDS);
  let pages = new Float64Array(16);
  let starts = new Float64Array(16);
  let count = 0;
  let entries = 0;
  const seen = new Set<number>();

  let phys = first;
  let linkAt = at + KHO_ARRAY_DESC_FIRST_OFFSET;
  let linkSpace: OffsetSpace = space;
  while (phys !== 0) {
    if (phys % PAGE_SIZE !== 0) throw new FormatError(FORMAT, linkAt, linkSpace, "page-alignment", `page 0x${phys.toString(16)} is not page-aligned`);
    if (!reader.contains(phys, PAGE_SIZE)) throw new FormatError(FORMAT, linkAt, linkSpace, "page-pointer", `page 0x${phys.toString(16)} is not in memory`);
    if (seen.has(phys)) throw new FormatError(FORMAT, linkAt, linkSpace, "page-cycle", `page 0x${phys.toString(16)} is reached twice`);
    seen.add(phys);

    let words: Uint32Array;
    if (memory) words = pageWords(memory.readPage(phys / PAGE_SIZE), scratch);
    else {
      reader.readInto(phys, buffer);
      words = pageWords(buffer, scratch);
    }

    const startLo = words[STARTPOS_WORD]!;
    const startHi = words[STARTPOS_WORD + 1]!;
    const startAt = phys + KHO_ARRAY_PAGE_STARTPOS_OFFSET;
    const startText = (): string => `0x${startHi.toString(16)}${startLo.toString(16).padStart(8, "0")}`;
    // (hi * 2^32 + lo) mod 510, exact for any u64 (small operands only).
    if (((startHi % PER_PAGE) * TWO_32_MOD_PER_PAGE + (startLo % PER_PAGE)) % PER_PAGE !== 0) {
      throw new FormatError(FORMAT, startAt, "phys", "startpos-alignment", `startpos ${startText()} is not a multiple of ${PER_PAGE}`);
    }
    const start = startHi * TWO_32 + startLo; // exact when it passes the range check
    if (startHi >= 0x20_0000 || start > MAX_STARTPOS) {
      throw new FormatError(FORMAT, startAt, "phys", "startpos-range", `startpos ${startText()} is beyond the indices this model represents (2^53)`, "EOVERFLOW");
    }
    if (count > 0 && start <= starts[count - 1]!) {
      throw new FormatError(FORMAT, startAt, "phys", "startpos-order", `startpos ${start} does not follow ${starts[count - 1]!}`);
    }

    let inPage = 0;
    for (let w = FIRST_ENTRY_WORD; w < PAGE_WORDS; w += 2) {
      const lo = words[w]!;
      if ((lo | words[w + 1]!) === 0) continue;
      if ((lo & 1) === 0 && (lo & (KHO_ARRAY_POINTER_ALIGN - 1)) !== 0) {
        throw new FormatError(FORMAT, phys + w * 4, "phys", "tag", `pointer entry 0x${words[w + 1]!.toString(16)}${lo.toString(16).padStart(8, "0")} is not ${KHO_ARRAY_POINTER_ALIGN}-byte aligned`);
      }
      inPage++;
    }
    if (inPage === 0) throw new FormatError(FORMAT, phys, "phys", "empty-page", `page 0x${phys.toString(16)} holds no entries`);
    entries += inPage;

    if (count === pages.length) {
      const p2 = new Float64Array(count * 2);
      const s2 = new Float64Array(count * 2);
      p2.set(pages);
      s2.set(starts);
      pages = p2;
      starts = s2;
    }
    pages[count] = phys;
    starts[count] = start;
    count++;

    const nextHi = words[1]!;
    if (nextHi >= PHYS_HIGH_LIMIT) throw new FormatError(FORMAT, phys, "phys", "page-pointer", "next page is beyond 52-bit physical memory");
    linkAt = phys;
    linkSpace = "phys";
    phys = nextHi * TWO_32 + words[0]!;
  }
  return { pages: pages.slice(0, count), startPos: starts.slice(0, count), entryCount: entries };
}

function readDescriptor(reader: KhoArrayMemoryReader, source: KhoArrayDescriptorSource): { first: number; at: number; space: OffsetSpace } {
  let bytes: Uint8Array;
  let at = 0;
  let space: OffsetSpace = "blob";
  if (typeof source === "number") {
    if (!reader.contains(source, KHO_ARRAY_DESCRIPTOR_SIZE)) throw new FormatError(FORMAT, source, "phys", "descriptor-pointer", "descriptor is not in memory");
    bytes = new Uint8Array(KHO_ARRAY_DESCRIPTOR_SIZE);
    reader.readInto(source, bytes);
    at = source;
    space = "phys";
  } else {
    if (source.length < KHO_ARRAY_DESCRIPTOR_SIZE) throw new FormatError(FORMAT, 0, "blob", "descriptor-size", `needs ${KHO_ARRAY_DESCRIPTOR_SIZE} bytes, ${source.length} there`);
    bytes = source;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, KHO_ARRAY_DESCRIPTOR_SIZE);
  const magic = view.getUint32(KHO_ARRAY_DESC_MAGIC_OFFSET, true);
  if (magic !== KHO_ARRAY_MAGIC) throw new FormatError(FORMAT, at, space, "magic", `magic 0x${magic.toString(16)} is not KARR`, "EOPNOTSUPP");
  const version = view.getUint16(KHO_ARRAY_DESC_VERSION_OFFSET, true);
  if (version !== KHO_ARRAY_FORMAT_VERSION) throw new FormatError(FORMAT, at + KHO_ARRAY_DESC_VERSION_OFFSET, space, "version", `format version ${version} is not ${KHO_ARRAY_FORMAT_VERSION}`, "EOPNOTSUPP");
  const reserved = view.getUint16(KHO_ARRAY_DESC_RESERVED_OFFSET, true);
  if (reserved !== 0) throw new FormatError(FORMAT, at + KHO_ARRAY_DESC_RESERVED_OFFSET, space, "reserved", `reserved is 0x${reserved.toString(16)}, not 0`);
  const firstHi = view.getUint32(KHO_ARRAY_DESC_FIRST_OFFSET + 4, true);
  if (firstHi >= PHYS_HIGH_LIMIT) throw new FormatError(FORMAT, at + KHO_ARRAY_DESC_FIRST_OFFSET, space, "page-pointer", "first page is beyond 52-bit physical memory");
  return { first: firstHi * TWO_32 + view.getUint32(KHO_ARRAY_DESC_FIRST_OFFSET, true), at, space };
}

/**
 * Restore a preserved array in the next kernel: validate it ({@link readKhoArrayLayout}),
 * check every page carries its order-0 `KHOP` stamp (rule `not-preserved`, when the
 * restorer can read stamps), then reclaim every page (`kho_restore_folio`). A failed
 * restore changes nothing.
 */
export function restoreKhoArray(kho: KhoArrayRestorer, descriptor: KhoArrayDescriptorSource): KhoArray {
  const layout = readKhoArrayLayout(kho.memory, descriptor);
  if (kho.stampOf) {
    for (const page of layout.pages) {
      if (kho.stampOf(page)?.order !== 0) throw new FormatError(FORMAT, page, "phys", "not-preserved", `page 0x${page.toString(16)} was not preserved as an order-0 page`);
    }
  }
  for (const page of layout.pages) {
    const order = kho.restoreFolio(page);
    if (order !== 0) throw new FormatError(FORMAT, page, "phys", "not-preserved", `page 0x${page.toString(16)} was preserved as order ${order}, not 0`);
  }
  return new KhoArray(kho.memory, layout);
}
