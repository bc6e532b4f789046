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
import { POW2 } from "./page-allocator.js";
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

/** Options of {@link walkRadixMap}. */
export interface RadixWalkOptions {
  /**
   * Whether a run lies in memory. Defaults to `reader.contains`: right for a machine or a
   * whole-memory dump; an image that holds only some pages passes the machine's memory map.
   */
  readonly runInMemory?: (phys: number, len: number) => boolean;
  /**
   * Most runs accepted (`too-many-runs` beyond). Runs that do not overlap number at most
   * the pages of memory, so a kernel passes its page count: what the walk makes the caller
   * store per run then stays proportional to memory, whatever the bitmaps hold.
   */
  readonly maxRuns?: number;
}

/** The key of a run, the bit's leaf prefix and bit index. Assumes a valid, aligned run. */
function keyOf(phys: number, order: number): number {
  return POW2[KHO_ORDER_0_LOG2 - order]! + Math.floor(phys / POW2[PAGE_SHIFT + order]!);
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
  const runInMemory = options.runInMemory ?? ((phys: number, len: number) => reader.contains(phys, len));
  const maxRuns = options.maxRuns ?? Infinity;
  const nodes: RadixNodePage[] = [];
  const seen = new Set<number>();
  const buffers: Uint8Array[] = [];
  const views: DataView[] = [];
  for (let l = 0; l <= ROOT_LEVEL; l++) {
    const b = new Uint8Array(PAGE_SIZE);
    buffers.push(b);
    views.push(new DataView(b.buffer));
  }
  let runs = 0;

  const enter = (phys: number, level: number, entryAt: number): void => {
    const where = entryAt < 0 ? "the root pointer" : `the entry at 0x${entryAt.toString(16)}`;
    const offset = entryAt < 0 ? phys : entryAt;
    if (phys % PAGE_SIZE !== 0) fail(offset, "node-unaligned", `${where} points to 0x${phys.toString(16)}, not a page`);
    if (!reader.contains(phys, PAGE_SIZE)) fail(offset, "node-outside-memory", `${where} points to 0x${phys.toString(16)}, outside memory`);
    if (seen.has(phys)) fail(offset, "node-repeated", `${where} points to node page 0x${phys.toString(16)} a second time (cycle or shared subtree)`);
    seen.add(phys);
    nodes.push({ phys, level });
    reader.readInto(phys, buffers[level]!);
  };

  const walkLeaf = (leafPhys: number, base: number, orderValid: boolean): void => {
    const view = views[0]!;
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
    for (let w = 0; w < KHO_BITMAP_BITS / 32; w++) {
      let word = view.getUint32(w * 4, true);
      if (word === 0) continue;
      if (!orderValid) {
        fail(leafPhys + w * 4, "key-order", `a bit of the bitmap at 0x${leafPhys.toString(16)} is a key of negative order (root index >= ${ROOT_FIRST_INVALID_INDEX})`);
      }
      while (word !== 0) {
        const t = 31 - Math.clz32(word & -word);
        word = (word & (word - 1)) >>> 0;
        const bit = w * 32 + t;
        let phys: number;
        let runOrder: number;
        if (base > 0) {
          phys = (low + bit) * unit;
          runOrder = order;
        } else {
          if (bit === 0) fail(leafPhys, "key-order", `bit 0 of the bitmap at 0x${leafPhys.toString(16)} is key 0, which encodes no order`);
          const top = 31 - Math.clz32(bit);
          runOrder = KHO_ORDER_0_LOG2 - top;
          phys = (bit - POW2[top]!) * POW2[PAGE_SHIFT + runOrder]!;
        }
        const len = POW2[PAGE_SHIFT + runOrder]!;
        if (!spanInMemory && !runInMemory(phys, len)) {
          fail(leafPhys + (bit >>> 3), "run-outside-memory", `bit ${bit} of the bitmap at 0x${leafPhys.toString(16)} preserves 0x${phys.toString(16)} order ${runOrder}, not wholly in memory`);
        }
        if (++runs > maxRuns) {
          fail(leafPhys + (bit >>> 3), "too-many-runs", `the map holds more than ${maxRuns} runs, more than memory has pages`);
        }
        visit(phys, runOrder);
      }
    }
  };

  const walkTable = (tablePhys: number, level: number, base: number, orderValid: boolean): void => {
    const view = views[level]!;
    const span = 2 ** levelShiftLog2(level);
    for (let i = 0; i < KHO_TABLE_SIZE; i++) {
      const lo = view.getUint32(i * 8, true);
      const hi = view.getUint32(i * 8 + 4, true);
      if (lo === 0 && hi === 0) continue;
      const entryAt = tablePhys + i * 8;
      if (hi >= 2 ** (PHYS_ADDR_BITS - 32)) {
        fail(entryAt, "node-outside-memory", `the entry at 0x${entryAt.toString(16)} points beyond ${PHYS_ADDR_BITS} bits`);
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
  return { nodes, runs };
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
    const key = this.#key(phys, order);
    const prefix = Math.floor(key / KHO_BITMAP_BITS);
    const bit = key - prefix * KHO_BITMAP_BITS;
    let leafPfn: number;
    if (prefix === this.#lastPrefix) {
      leafPfn = this.#lastLeafPfn;
    } else {
      leafPfn = this.#descend(key);
      this.#lastPrefix = prefix;
      this.#lastLeafPfn = leafPfn;
    }
    const leaf = this.memory.pageForWrite(leafPfn);
    leaf[bit >>> 3]! |= 1 << (bit & 7);
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
    if (!Number.isInteger(order) || order < 0 || order > MAX_RUN_ORDER) {
      throw new KernelError("EINVAL", `order ${order} is outside 0..${MAX_RUN_ORDER}`);
    }
    if (!Number.isSafeInteger(phys) || phys < 0 || phys % POW2[PAGE_SHIFT + order]! !== 0 || phys >= MAX_PHYS) {
      throw new KernelError("EINVAL", `0x${phys.toString(16)} is not aligned to order ${order}`);
    }
    return keyOf(phys, order);
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
