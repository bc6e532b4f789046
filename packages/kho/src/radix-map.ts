/**
 * The preserved-memory map (`kho-v4` radix tree): which runs of pages the next kernel must
 * keep. Layout (see abi.ts): every node is one page; levels 5..1 are tables of 512 u64 LE
 * physical addresses (0 = empty), level 0 is a bitmap of 32768 bits; a run of `2^order`
 * pages at `pa` is the bit of key `(1 << (52 - order)) | (pa >> (12 + order))`.
 *
 * Two sides:
 *
 * - {@link RadixMap}, the outgoing kernel's map (`kho_radix_add_page` / `kho_radix_del_page`):
 *   its nodes are real zeroed pages from the machine's allocator, and every table entry and
 *   bit is written into {@link PhysicalMemory}, so the bytes in memory ARE the map.
 * - {@link walkRadixMap}, the next kernel's walk over memory it did not write (a machine
 *   after kexec, or an image): every pointer and bit is hostile input.
 *
 * Keys stay below 2^53 for every order >= 0 (the highest key bit is 52 - order), so they are
 * exact JS numbers; a root index >= 4 can only hold keys of negative order, which the walker
 * reports instead of computing.
 */
import {
  KHO_BITMAP_BITS,
  KHO_BITMAP_SIZE_LOG2,
  KHO_ORDER_0_LOG2,
  KHO_TABLE_SIZE,
  KHO_TABLE_SIZE_LOG2,
  KHO_TREE_MAX_DEPTH,
  PAGE_SHIFT,
  PAGE_SIZE,
  PHYS_ADDR_BITS,
} from "./abi.js";
import { FormatError, KernelError } from "./errors.js";
import type { PhysicalMemory } from "./memory.js";
import { INV_POW2, POW2 } from "./page-allocator.js";
import { NumberList, stretchLength } from "./pfn-runs.js";
import type { PhysReader } from "./types.js";

/** The format name carried by every {@link FormatError} of the walker. */
export const RADIX_FORMAT = "kho-radix";

/** Largest order a run can have inside a 52-bit physical address space. */
export const MAX_RUN_ORDER = PHYS_ADDR_BITS - PAGE_SHIFT; // 40

/** The top table level (the root); level 0 is the bitmap. */
const ROOT_LEVEL = KHO_TREE_MAX_DEPTH - 1; // 5
/** Root entries at or above this index only hold keys >= 2^53: orders below 0. */
const MAX_PHYS = 2 ** PHYS_ADDR_BITS;
const ROOT_FIRST_INVALID_INDEX = 2 ** (KHO_ORDER_0_LOG2 + 1 - levelShiftLog2(ROOT_LEVEL)); // 4
const TWO_32 = 2 ** 32;

/** log2 of the key span of one entry of a table at `level` (1..5). */
function levelShiftLog2(level: number): number {
  return (level - 1) * KHO_TABLE_SIZE_LOG2 + KHO_BITMAP_SIZE_LOG2;
}

/** One page of the tree: its physical address and level (5 = root, 0 = bitmap). */
export interface RadixNodePage {
  readonly phys: number;
  readonly level: number;
}

/** What a walk saw. */
export interface RadixWalkResult {
  /** Every node page visited, root first, depth first. */
  readonly nodes: readonly RadixNodePage[];
  /** Number of runs reported to the visitor. */
  readonly runs: number;
}

/**
 * Receives `count` preserved runs of `2^order` pages: at `phys`, `phys + 2^order pages`, and
 * so on (adjacent in memory and consecutive in walk order).
 */
export type RadixSegmentVisitor = (phys: number, order: number, count: number) => void;

/** Options of {@link walkRadixMap}. */
export interface RadixWalkOptions {
  /**
   * Whether a run lies in memory. Defaults to `reader.contains`: right for a machine or a
   * whole-memory dump; an image that holds only some pages passes the machine's memory map.
   * It may also be asked about several adjacent runs at once (a whole bitmap's span, a
   * stretch of set bits): a span is in memory exactly when each of its runs is.
   */
  readonly runInMemory?: (phys: number, len: number) => boolean;
  /**
   * Most runs accepted (`too-many-runs` beyond). Runs that do not overlap number at most
   * the pages of memory, so a kernel passes its page count: what the walk makes the caller
   * store per run then stays proportional to memory, whatever the bitmaps hold.
   */
  readonly maxRuns?: number;
}

/** Bitmap words (u32) per leaf, table entries' u32 halves per table. */
const LEAF_WORDS = KHO_BITMAP_BITS / 32;
/** Leaves and tables are read as u32 words; the wire is little-endian, so only on such hosts. */
const HOST_LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** The key of a run. Assumes a valid, aligned run. */
function keyOf(phys: number, order: number): number {
  return POW2[KHO_ORDER_0_LOG2 - order]! + Math.floor(phys * INV_POW2[PAGE_SHIFT + order]!);
}

/** Whether `phys` is a valid start of a run of `order` (an integer order in 0..MAX_RUN_ORDER). */
function isRunStart(phys: number, order: number): boolean {
  if (!Number.isSafeInteger(phys) || phys < 0 || phys >= MAX_PHYS) return false;
  return Math.floor(phys * INV_POW2[PAGE_SHIFT + order]!) * POW2[PAGE_SHIFT + order]! === phys;
}

/**
 * The first `i` in `from <= i < to` whose `physList[i]` is not a run start of `order` (see
 * {@link isRunStart}), else `to`; the valid entries before it go into `stretches` as (start,
 * runs) pairs of adjacent runs. After a valid start, entries that continue it in memory are
 * valid while below 2^52: one comparison each.
 */
function firstNonRunStart(physList: ArrayLike<number>, order: number, from: number, to: number, stretches: NumberList): number {
  const unit = POW2[PAGE_SHIFT + order]!;
  let i = from;
  while (i < to) {
    const phys = physList[i]!;
    if (!isRunStart(phys, order)) return i;
    // Continuing entries are valid while below 2^52 (a whole number of units away).
    const n = stretchLength(physList, i, Math.min(to - i, (MAX_PHYS - phys) / unit), unit);
    stretches.push(phys);
    stretches.push(n);
    i += n;
  }
  return to;
}

function fail(offset: number, rule: string, message: string): never {
  throw new FormatError(RADIX_FORMAT, offset, "phys", rule, message, "EINVAL");
}

/**
 * Walk a preserved-memory map the previous kernel left in memory, calling `visit(phys,
 * order)` for every preserved run in key order (larger orders first, then ascending address),
 * as `kho_radix_walk_tree` does.
 *
 * Hostile input: fails with {@link FormatError} (`format` "kho-radix", errno `EINVAL`, the
 * offset a physical address) on a node pointer that is unaligned (`node-unaligned`), outside
 * memory or beyond 52 bits (`node-outside-memory`), or seen before (`node-repeated`: a cycle,
 * a table pointing to an ancestor, two entries sharing a subtree); on a bit whose key has no
 * valid order (`key-order`), whose run is not wholly in memory (`run-outside-memory`), or
 * beyond `options.maxRuns` (`too-many-runs`).
 * Since a node page is never visited twice and must lie in memory, the walk reads at most one
 * page per page of memory: it always ends. Runs reported before a failure stay reported.
 */
export function walkRadixMap(
  reader: PhysReader,
  rootPhys: number,
  visit: (phys: number, order: number) => void,
  options: RadixWalkOptions = {},
): RadixWalkResult {
  return walkRadixMapSegments(
    reader,
    rootPhys,
    (phys, order, count) => {
      const len = POW2[PAGE_SHIFT + order]!;
      for (let i = 0; i < count; i++) visit(phys + i * len, order);
    },
    options,
  );
}

/**
 * {@link walkRadixMap} reporting stretches of runs instead of single runs: `visit(phys, order,
 * count)` stands for the `count` runs of `order` at `phys`, `phys + 2^order pages`, ..., which
 * the walk meets one after another (adjacent bits of one order). Calling `visit(phys + i *
 * 2^order pages, order)` for each is exactly the per-run walk, failures included: the
 * stretches reported before a failure are the runs reported before it. A map of adjacent
 * runs (the common case: pages preserved in bulk) costs one call per stretch and one step per
 * bitmap word, not one per run.
 */
export function walkRadixMapSegments(
  reader: PhysReader,
  rootPhys: number,
  visit: RadixSegmentVisitor,
  options: RadixWalkOptions = {},
): RadixWalkResult {
  const runInMemory = options.runInMemory ?? ((phys: number, len: number) => reader.contains(phys, len));
  const maxRuns = options.maxRuns ?? Infinity;
  const nodes: RadixNodePage[] = [];
  const seen = new Set<number>();
  const buffers: Uint8Array[] = [];
  for (let l = 0; l <= ROOT_LEVEL; l++) buffers.push(new Uint8Array(PAGE_SIZE));
  // u32 words of each level's buffer (a decoded copy on big-endian hosts).
  const words = buffers.map((b) => (HOST_LITTLE_ENDIAN ? new Uint32Array(b.buffer) : new Uint32Array(PAGE_SIZE / 4)));
  let runs = 0;

  // The stretch not yet reported: runs are gathered while they stay adjacent and of one order.
  let pendingPhys = 0;
  let pendingOrder = 0;
  let pendingCount = 0;
  let pendingEnd = 0;
  const flush = (): void => {
    if (pendingCount === 0) return;
    const count = pendingCount;
    pendingCount = 0;
    visit(pendingPhys, pendingOrder, count);
  };
  const emit = (phys: number, order: number, count: number): void => {
    const len = POW2[PAGE_SHIFT + order]!;
    if (pendingCount > 0 && order === pendingOrder && phys === pendingEnd) {
      pendingCount += count;
      pendingEnd += count * len;
      return;
    }
    flush();
    pendingPhys = phys;
    pendingOrder = order;
    pendingCount = count;
    pendingEnd = phys + count * len;
  };
  // Report what came before, then fail: the visitor sees every run preceding the damage.
  const stop = (offset: number, rule: string, message: string): never => {
    flush();
    return fail(offset, rule, message);
  };

  const enter = (phys: number, level: number, entryAt: number): void => {
    const where = entryAt < 0 ? "the root pointer" : `the entry at 0x${entryAt.toString(16)}`;
    const offset = entryAt < 0 ? phys : entryAt;
    if (phys % PAGE_SIZE !== 0) stop(offset, "node-unaligned", `${where} points to 0x${phys.toString(16)}, not a page`);
    if (!reader.contains(phys, PAGE_SIZE)) stop(offset, "node-outside-memory", `${where} points to 0x${phys.toString(16)}, outside memory`);
    if (seen.has(phys)) stop(offset, "node-repeated", `${where} points to node page 0x${phys.toString(16)} a second time (cycle or shared subtree)`);
    seen.add(phys);
    nodes.push({ phys, level });
    const buffer = buffers[level]!;
    reader.readInto(phys, buffer);
    if (!HOST_LITTLE_ENDIAN) {
      const view = new DataView(buffer.buffer);
      const w = words[level]!;
      for (let i = 0; i < w.length; i++) w[i] = view.getUint32(i * 4, true);
    }
  };

  /** A bit of the leaf with prefix 0, where each key's order comes from the bit itself. */
  const mixedOrderBit = (leafPhys: number, bit: number): void => {
    if (bit === 0) stop(leafPhys, "key-order", `bit 0 of the bitmap at 0x${leafPhys.toString(16)} is key 0, which encodes no order`);
    const top = 31 - Math.clz32(bit);
    const runOrder = KHO_ORDER_0_LOG2 - top;
    const len = POW2[PAGE_SHIFT + runOrder]!;
    const phys = (bit - POW2[top]!) * len;
    if (!runInMemory(phys, len)) {
      stop(leafPhys + (bit >>> 3), "run-outside-memory", `bit ${bit} of the bitmap at 0x${leafPhys.toString(16)} preserves 0x${phys.toString(16)} order ${runOrder}, not wholly in memory`);
    }
    if (++runs > maxRuns) stop(leafPhys + (bit >>> 3), "too-many-runs", `the map holds more than ${maxRuns} runs, more than memory has pages`);
    emit(phys, runOrder, 1);
  };

  const walkLeaf = (leafPhys: number, base: number, orderValid: boolean): void => {
    const leaf = words[0]!;
    // With a non-zero prefix the key's top bit (hence the order) is the prefix's.
    let order = 0;
    let low = 0;
    let unit = 0;
    // Whether every run this leaf can hold is in memory: then no per-run check is needed.
    let spanInMemory = false;
    if (base > 0) {
      let top = Math.floor(Math.log2(base));
      if (2 ** top > base) top--;
      else if (2 ** (top + 1) <= base) top++;
      order = KHO_ORDER_0_LOG2 - top;
      low = base - 2 ** top;
      unit = 2 ** (PAGE_SHIFT + order);
      const spanStart = low * unit;
      const spanLen = KHO_BITMAP_BITS * unit;
      spanInMemory = spanStart + spanLen <= MAX_PHYS && runInMemory(spanStart, spanLen);
    }
    for (let w = 0; w < LEAF_WORDS; w++) {
      let word = leaf[w]!;
      if (word === 0) continue;
      if (!orderValid) {
        stop(leafPhys + w * 4, "key-order", `a bit of the bitmap at 0x${leafPhys.toString(16)} is a key of negative order (root index >= ${ROOT_FIRST_INVALID_INDEX})`);
      }
      if (base === 0) {
        while (word !== 0) {
          const t = 31 - Math.clz32(word & -word);
          word = (word & (word - 1)) >>> 0;
          mixedOrderBit(leafPhys, w * 32 + t);
        }
        continue;
      }
      // One step per stretch of adjacent set bits: bits [t, t + ones) of this word.
      while (word !== 0) {
        const t = 31 - Math.clz32(word & -word);
        const inverted = ~(word >>> t);
        const ones = inverted === 0 ? 32 : 31 - Math.clz32(inverted & -inverted);
        const end = t + ones;
        word = end >= 32 ? 0 : ((word >>> end) << end) >>> 0;
        const bit = w * 32 + t;
        const phys = (low + bit) * unit;
        // How many of the stretch's runs pass, in the per-run order of checks: in memory,
        // then within maxRuns.
        let ok = ones;
        let rule = "";
        if (!spanInMemory && !runInMemory(phys, ones * unit)) {
          ok = 0;
          while (ok < ones && runInMemory(phys + ok * unit, unit)) ok++;
          rule = "run-outside-memory";
        }
        const allowed = Math.max(0, Math.floor(maxRuns - runs));
        if (allowed < ok) {
          ok = allowed;
          rule = "too-many-runs";
        }
        if (ok > 0) {
          emit(phys, order, ok);
          runs += ok;
        }
        if (ok < ones) {
          const bad = bit + ok;
          if (rule === "too-many-runs") {
            stop(leafPhys + (bad >>> 3), rule, `the map holds more than ${maxRuns} runs, more than memory has pages`);
          }
          stop(leafPhys + (bad >>> 3), rule, `bit ${bad} of the bitmap at 0x${leafPhys.toString(16)} preserves 0x${(phys + ok * unit).toString(16)} order ${order}, not wholly in memory`);
        }
      }
    }
  };

  const walkTable = (tablePhys: number, level: number, base: number, orderValid: boolean): void => {
    const table = words[level]!;
    const span = 2 ** levelShiftLog2(level);
    for (let i = 0; i < KHO_TABLE_SIZE; i++) {
      const lo = table[i * 2]!;
      const hi = table[i * 2 + 1]!;
      if (lo === 0 && hi === 0) continue;
      const entryAt = tablePhys + i * 8;
      if (hi >= 2 ** (PHYS_ADDR_BITS - 32)) {
        stop(entryAt, "node-outside-memory", `the entry at 0x${entryAt.toString(16)} points beyond ${PHYS_ADDR_BITS} bits`);
      }
      const child = hi * TWO_32 + lo;
      const valid = orderValid && !(level === ROOT_LEVEL && i >= ROOT_FIRST_INVALID_INDEX);
      const childBase = valid ? base + i * span : 0;
      enter(child, level - 1, entryAt);
      if (level === 1) walkLeaf(child, childBase, valid);
      else walkTable(child, level - 1, childBase, valid);
    }
  };

  if (!Number.isSafeInteger(rootPhys) || rootPhys <= 0) {
    fail(Number.isSafeInteger(rootPhys) && rootPhys > 0 ? rootPhys : 0, "root-missing", "the map has no root (physical address 0)");
  }
  enter(rootPhys, ROOT_LEVEL, -1);
  walkTable(rootPhys, ROOT_LEVEL, 0, true);
  flush();
  return { nodes, runs };
}

function checkOrder(order: number): void {
  if (!Number.isInteger(order) || order < 0 || order > MAX_RUN_ORDER) {
    throw new KernelError("EINVAL", `order ${order} is outside 0..${MAX_RUN_ORDER}`);
  }
}

/** Set bits `[bit, bit + count)` of a little-endian bitmap (byte `b >> 3`, bit `b & 7`). */
function setBitRange(bitmap: Uint8Array, bit: number, count: number): void {
  let b = bit;
  const end = bit + count;
  while (b < end && (b & 7) !== 0) {
    bitmap[b >>> 3]! |= 1 << (b & 7);
    b++;
  }
  if (end - b >= 8) {
    bitmap.fill(0xff, b >>> 3, end >>> 3);
    b = end & ~7;
  }
  while (b < end) {
    bitmap[b >>> 3]! |= 1 << (b & 7);
    b++;
  }
}

/** The package's way to add runs a caller has already checked (see {@link addCheckedRun}). */
let addKey: (map: RadixMap, key: number) => void;
let addCheckedStretches: (map: RadixMap, stretches: NumberList, order: number) => void;

/**
 * {@link RadixMap.add} of a run the caller has checked to be a valid run start of a valid
 * order (`KhoOutgoing` checks folios against memory, which implies it): the same result,
 * without checking twice. Internal to the package (not exported from its index).
 */
export function addCheckedRun(map: RadixMap, phys: number, order: number): void {
  addKey(map, keyOf(phys, order));
}

/**
 * Add checked runs (see {@link addCheckedRun}) given as stretches: (start, runs) pairs, each
 * `runs` adjacent runs of `order` from physical address `start`, in list order. On a failure
 * the runs this call added are deleted again and the error is thrown (as
 * {@link RadixMap.addMany}). Internal to the package.
 */
export function addCheckedRunStretches(map: RadixMap, stretches: NumberList, order: number): void {
  if (stretches.length > 0) addCheckedStretches(map, stretches, order);
}

/** Where the outgoing map gets its node pages. */
export interface RadixPageSource {
  /** A zeroed page (`get_zeroed_page`); its physical address. Throws `ENOMEM` when out. */
  allocPage(): number;
  /** Give back a page from {@link RadixPageSource.allocPage}. */
  freePage(phys: number): void;
}

/** Little-endian u64 (as a number below 2^53) at byte `at` of a page. */
function readEntry(page: Uint8Array, at: number): number {
  const lo = (page[at]! | (page[at + 1]! << 8) | (page[at + 2]! << 16) | (page[at + 3]! << 24)) >>> 0;
  const hi = (page[at + 4]! | (page[at + 5]! << 8) | (page[at + 6]! << 16) | (page[at + 7]! << 24)) >>> 0;
  return hi * TWO_32 + lo;
}

function writeEntry(page: Uint8Array, at: number, value: number): void {
  const lo = value >>> 0;
  const hi = Math.floor(value / TWO_32) >>> 0;
  page[at] = lo & 0xff;
  page[at + 1] = (lo >>> 8) & 0xff;
  page[at + 2] = (lo >>> 16) & 0xff;
  page[at + 3] = lo >>> 24;
  page[at + 4] = hi & 0xff;
  page[at + 5] = (hi >>> 8) & 0xff;
  page[at + 6] = (hi >>> 16) & 0xff;
  page[at + 7] = hi >>> 24;
}

/**
 * The outgoing kernel's preserved-memory map, living in physical memory. See the module
 * comment. Nodes are never freed once linked (as in the kernel: deleting the last bit of a
 * leaf keeps the path), except the new ones of an `add` that ran out of memory.
 */
export class RadixMap {
  readonly memory: PhysicalMemory;
  /** Physical address of the root table (the FDT's `preserved-memory-map`). */
  readonly rootPhys: number;
  readonly #pages: RadixPageSource;
  readonly #nodes: RadixNodePage[] = [];
  /** The leaf of the last add/has/delete: runs preserved one after another share it. */
  #lastPrefix = -1;
  #lastLeafPfn = -1;

  static {
    addKey = (map, key) => {
      map.#addKey(key);
    };
    addCheckedStretches = (map, stretches, order) => {
      map.#addStretches(stretches, order);
    };
  }

  /** Allocates the root table (`kzalloc(PAGE_SIZE)`); throws `ENOMEM` when memory is out. */
  constructor(memory: PhysicalMemory, pages: RadixPageSource) {
    this.memory = memory;
    this.#pages = pages;
    this.rootPhys = pages.allocPage();
    this.#nodes.push({ phys: this.rootPhys, level: ROOT_LEVEL });
  }

  /** Every page of the tree, root first. They are not preserved runs of the map itself. */
  nodePages(): readonly RadixNodePage[] {
    return this.#nodes;
  }

  /**
   * `kho_radix_add_page`: set the run's bit, creating missing nodes (zeroed pages). On
   * `ENOMEM` the nodes created by this call are freed and the tree is as before.
   *
   * @throws KernelError `EINVAL` for a run that is not aligned to its order, `ENOMEM`.
   */
  add(phys: number, order: number): void {
    this.#addKey(this.#key(phys, order));
  }

  #addKey(key: number): void {
    const prefix = Math.floor(key * INV_POW2[KHO_BITMAP_SIZE_LOG2]!);
    const bit = key - prefix * KHO_BITMAP_BITS;
    const leaf = this.memory.pageForWrite(this.#leafFor(key, prefix));
    leaf[bit >>> 3]! |= 1 << (bit & 7);
  }

  /**
   * {@link RadixMap.add} of every run `physList[i]`, `from <= i < to`, all of `order`, in
   * list order, with the same result as that loop of calls; on a failure (`EINVAL` for a
   * run, `ENOMEM`), the runs this call added before it are deleted again (their paths stay,
   * as after a delete) and the error is thrown. Runs that share a leaf cost a few arithmetic
   * steps each: the leaf page is fetched once per stretch of them.
   *
   * @throws KernelError `EINVAL` for an order outside 0..MAX_RUN_ORDER or a run not aligned
   *   to it, `ENOMEM`.
   */
  addMany(physList: ArrayLike<number>, order: number, from = 0, to: number = physList.length): void {
    if (from >= to) return;
    checkOrder(order);
    // Valid runs first (a pure check), so the loop below has nothing to test per run.
    const stretches = new NumberList();
    const valid = firstNonRunStart(physList, order, from, to, stretches);
    this.#addStretches(stretches, order);
    if (valid < to) {
      this.#deleteStretches(stretches, order, stretches.length, 0);
      this.#key(physList[valid]!, order); // throws the run's EINVAL
    }
  }

  /**
   * `kho_radix_del_page`: clear the run's bit. Returns whether it was set; a run whose path
   * does not exist is left alone (the kernel warns and returns).
   */
  delete(phys: number, order: number): boolean {
    const key = this.#key(phys, order);
    const leafPfn = this.#find(key);
    if (leafPfn < 0) return false;
    const bit = key % KHO_BITMAP_BITS;
    const leaf = this.memory.readPage(leafPfn);
    const mask = 1 << (bit & 7);
    if ((leaf[bit >>> 3]! & mask) === 0) return false;
    this.memory.pageForWrite(leafPfn)[bit >>> 3]! &= ~mask;
    return true;
  }

  /** Whether the run's bit is set. */
  has(phys: number, order: number): boolean {
    const key = this.#key(phys, order);
    const leafPfn = this.#find(key);
    if (leafPfn < 0) return false;
    const bit = key % KHO_BITMAP_BITS;
    return (this.memory.readPage(leafPfn)[bit >>> 3]! & (1 << (bit & 7))) !== 0;
  }

  /** Walk the map as the next kernel will (same hostile-input rules). */
  walk(visit: (phys: number, order: number) => void): RadixWalkResult {
    return walkRadixMap(this.memory, this.rootPhys, visit);
  }

  #key(phys: number, order: number): number {
    checkOrder(order);
    if (!isRunStart(phys, order)) {
      throw new KernelError("EINVAL", `0x${phys.toString(16)} is not aligned to order ${order}`);
    }
    return keyOf(phys, order);
  }

  /** The leaf pfn for `key` (whose leaf prefix is `prefix`), creating the missing path. */
  #leafFor(key: number, prefix: number): number {
    if (prefix === this.#lastPrefix) return this.#lastLeafPfn;
    const leafPfn = this.#descend(key);
    this.#lastPrefix = prefix;
    this.#lastLeafPfn = leafPfn;
    return leafPfn;
  }

  /**
   * Add the runs of `stretches` ((start, runs) pairs of adjacent valid runs of `order`), in
   * order: each stretch leaf by leaf, its bits within a leaf set with whole-byte writes and
   * the leaf page fetched once (between two fetches of a leaf no other code runs, so its
   * buffer stays the page's). On a failure, delete the runs added and rethrow.
   */
  #addStretches(stretches: NumberList, order: number): void {
    const base = POW2[KHO_ORDER_0_LOG2 - order]!;
    const unit = POW2[PAGE_SHIFT + order]!;
    const inverseUnit = INV_POW2[PAGE_SHIFT + order]!;
    let k = 0;
    let done = 0; // runs of stretch k added
    try {
      for (; k < stretches.length; k += 2) {
        const start = stretches.get(k);
        const runs = stretches.get(k + 1);
        for (done = 0; done < runs; ) {
          const key = base + Math.floor((start + done * unit) * inverseUnit);
          const prefix = Math.floor(key * INV_POW2[KHO_BITMAP_SIZE_LOG2]!);
          const bit = key - prefix * KHO_BITMAP_BITS;
          const n = Math.min(runs - done, KHO_BITMAP_BITS - bit);
          setBitRange(this.memory.pageForWrite(this.#leafFor(key, prefix)), bit, n);
          done += n;
        }
      }
    } catch (error) {
      this.#deleteStretches(stretches, order, k, done);
      throw error;
    }
  }

  /**
   * Delete the runs of the stretches before index `whole` of `stretches` and the first
   * `partial` runs of the one at `whole` (the runs {@link RadixMap.#addStretches} added).
   */
  #deleteStretches(stretches: NumberList, order: number, whole: number, partial: number): void {
    const unit = POW2[PAGE_SHIFT + order]!;
    for (let k = 0; k <= whole && k < stretches.length; k += 2) {
      const runs = k < whole ? stretches.get(k + 1) : partial;
      for (let r = 0; r < runs; r++) this.delete(stretches.get(k) + r * unit, order);
    }
  }

  /** The leaf pfn for `key`, or -1 when a table entry on the way is empty. */
  #find(key: number): number {
    const prefix = Math.floor(key / KHO_BITMAP_BITS);
    if (prefix === this.#lastPrefix) return this.#lastLeafPfn;
    let node = this.rootPhys;
    for (let level = ROOT_LEVEL; level > 0; level--) {
      const idx = Math.floor(key / POW2[levelShiftLog2(level)]!) % KHO_TABLE_SIZE;
      const next = readEntry(this.memory.readPage(node / PAGE_SIZE), idx * 8);
      if (next === 0) return -1;
      node = next;
    }
    return node / PAGE_SIZE;
  }

  /** The leaf pfn for `key`, creating the missing path (with the kernel's ENOMEM rollback). */
  #descend(key: number): number {
    let node = this.rootPhys;
    let anchor = -1;
    let anchorAt = 0;
    const created: number[] = [];
    try {
      for (let level = ROOT_LEVEL; level > 0; level--) {
        const at = (Math.floor(key / POW2[levelShiftLog2(level)]!) % KHO_TABLE_SIZE) * 8;
        const next = readEntry(this.memory.readPage(node / PAGE_SIZE), at);
        if (next !== 0) {
          node = next;
          continue;
        }
        const page = this.#pages.allocPage();
        created.push(page);
        this.#nodes.push({ phys: page, level: level - 1 });
        writeEntry(this.memory.pageForWrite(node / PAGE_SIZE), at, page);
        if (anchor < 0) {
          anchor = node;
          anchorAt = at;
        }
        node = page;
      }
    } catch (error) {
      // Undo this call's new branch: unlink it at its anchor and free its pages.
      if (anchor >= 0) writeEntry(this.memory.pageForWrite(anchor / PAGE_SIZE), anchorAt, 0);
      for (const page of created) this.#pages.freePage(page);
      this.#nodes.length -= created.length;
      throw error;
    }
    return node / PAGE_SIZE;
  }
}
