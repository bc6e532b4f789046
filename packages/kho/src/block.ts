/**
 * KHO serialization blocks (`kho_block.c`, `block.h`): a chain of preserved one-page blocks,
 * each `{u64 next; u64 count}` followed by fixed-size entries (layout in `abi.ts`). LUO 7.2
 * keeps its sessions (80-byte entries, 51 per block) and each session's files (64-byte
 * entries, 63 per block) in them.
 *
 * {@link KhoBlockSet} is `struct kho_block_set` with the operations LUO uses: `grow` /
 * `shrink` (pre-allocate before serializing, drop trailing blocks), an iterator that
 * reserves entries while serializing (setting each block's count), reads them back in the
 * next kernel and steps back on an error, `clear`, `destroy`, and `restore` from a head
 * address. {@link readKhoBlocks} is the validating reader on its own, for inspectors.
 *
 * Entries are addressed by physical address (the kernel hands out pointers into the
 * block); read and write them through the set's `memory`.
 *
 * Differences from the kernel, on hostile input only: a chain of 10001..20000 blocks is
 * `EINVAL` here (the kernel's cycle check lets it pass and `kho_block_add` then fails with
 * `ENOSPC`); a block pointer that is not a page in memory, or a block that was not
 * preserved, is refused up front (the kernel would fault, or WARN when freeing it); and a
 * failed restore leaves the chain as it was (the kernel frees every block of it).
 */
import { KHO_BLOCK_HEADER_SIZE, KHO_BLOCK_MAX_BLOCKS, KHO_BLOCK_SIZE, PAGE_SIZE, khoBlockEntriesPerBlock } from "./abi.js";
import { FormatError, KernelError } from "./errors.js";
import type { PhysicalMemory } from "./memory.js";
import { pagesAreStamped, stampReaderOf } from "./stamp-probe.js";
import type { KhoPreserver, KhoRestorer, PhysReader } from "./types.js";

const FORMAT = "kho-block";
const TWO_32 = 0x1_0000_0000;
const PHYS_HIGH_LIMIT = 0x10_0000; // high half of a u64 at or above this: beyond 52 bits

/** One block of a chain, as read. */
export interface KhoBlock {
  readonly phys: number;
  readonly next: number;
  readonly count: number;
}

/** A validated chain ({@link readKhoBlocks}). */
export interface KhoBlockChain {
  readonly entrySize: number;
  readonly entriesPerBlock: number;
  readonly blocks: readonly KhoBlock[];
  /** Sum of the blocks' counts. */
  readonly entryCount: number;
}

/** Physical address of entry `index` of the block at `blockPhys`. */
export function khoBlockEntryPhys(blockPhys: number, index: number, entrySize: number): number {
  return blockPhys + KHO_BLOCK_HEADER_SIZE + index * entrySize;
}

function checkEntrySize(entrySize: number): number {
  if (!Number.isInteger(entrySize) || entrySize < 1 || entrySize > KHO_BLOCK_SIZE - KHO_BLOCK_HEADER_SIZE) {
    throw new KernelError("EINVAL", `entry size ${entrySize} does not fit a block`);
  }
  return khoBlockEntriesPerBlock(entrySize);
}

/**
 * Read and validate the chain at `headPa` (`kho_block_set_restore` without taking the
 * blocks): head 0 is an empty chain; every block must be a page in memory, the chain must
 * end within 10000 blocks without revisiting a block, and every block must hold
 * `1..entriesPerBlock` entries. Failures are `FormatError("kho-block", ..., "EINVAL")` with
 * rule `block-pointer`, `block-alignment`, `block-cycle`, `too-many-blocks` or
 * `block-count`. The links are checked over the whole chain before any count, as the
 * kernel's cycle check runs before its count check.
 */
export function readKhoBlocks(reader: PhysReader, headPa: number, entrySize: number): KhoBlockChain {
  const perBlock = checkEntrySize(entrySize);
  const header = new Uint8Array(KHO_BLOCK_HEADER_SIZE);
  const view = new DataView(header.buffer);
  const blocks: KhoBlock[] = [];
  const seen = new Set<number>();
  const counts: { lo: number; hi: number }[] = [];

  let phys = headPa;
  let linkAt = headPa;
  while (phys !== 0) {
    if (!Number.isSafeInteger(phys) || phys < 0 || !reader.contains(phys, KHO_BLOCK_SIZE)) {
      throw new FormatError(FORMAT, linkAt, "phys", "block-pointer", `block 0x${phys.toString(16)} is not in memory`);
    }
    if (phys % PAGE_SIZE !== 0) throw new FormatError(FORMAT, linkAt, "phys", "block-alignment", `block 0x${phys.toString(16)} is not page-aligned`);
    if (seen.has(phys)) throw new FormatError(FORMAT, linkAt, "phys", "block-cycle", `block 0x${phys.toString(16)} is reached twice`);
    if (blocks.length === KHO_BLOCK_MAX_BLOCKS) {
      throw new FormatError(FORMAT, linkAt, "phys", "too-many-blocks", `more than ${KHO_BLOCK_MAX_BLOCKS} blocks`);
    }
    seen.add(phys);
    reader.readInto(phys, header);
    const nextLo = view.getUint32(0, true);
    const nextHi = view.getUint32(4, true);
    counts.push({ lo: view.getUint32(8, true), hi: view.getUint32(12, true) });
    if (nextHi >= PHYS_HIGH_LIMIT) throw new FormatError(FORMAT, phys, "phys", "block-pointer", "next block is beyond 52-bit physical memory");
    const next = nextHi * TWO_32 + nextLo;
    blocks.push({ phys, next, count: 0 });
    linkAt = phys;
    phys = next;
  }

  let entryCount = 0;
  for (let i = 0; i < blocks.length; i++) {
    const { lo, hi } = counts[i]!;
    const block = blocks[i]!;
    if (hi !== 0 || lo === 0 || lo > perBlock) {
      const shown = hi !== 0 ? `0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")}` : String(lo);
      throw new FormatError(FORMAT, block.phys + 8, "phys", "block-count", `block holds ${shown} entries, needs 1..${perBlock}`);
    }
    blocks[i] = { phys: block.phys, next: block.next, count: lo };
    entryCount += lo;
  }
  return { entrySize, entriesPerBlock: perBlock, blocks, entryCount };
}

/** Where the blocks of a set come from and go back to. */
type Owner = { readonly incoming: false; readonly kho: KhoPreserver } | { readonly incoming: true; readonly kho: KhoRestorer };

/** `struct kho_block_set`: a chain of serialization blocks, outgoing (being written) or incoming (restored). */
export class KhoBlockSet {
  /** Bytes per entry. */
  readonly entrySize: number;
  /** `(4096 - 16) / entrySize`. */
  readonly entriesPerBlock: number;
  readonly #owner: Owner;
  readonly #blocks: number[] = [];

  private constructor(owner: Owner, entrySize: number) {
    this.entriesPerBlock = checkEntrySize(entrySize);
    this.entrySize = entrySize;
    this.#owner = owner;
  }

  /** `kho_block_set_init`: an empty outgoing set. */
  static create(kho: KhoPreserver, entrySize: number): KhoBlockSet {
    return new KhoBlockSet({ incoming: false, kho }, entrySize);
  }

  /**
   * `kho_block_set_restore`: take over the chain at `headPa` in the next kernel. Validates it
   * ({@link readKhoBlocks}) and, when the restorer can read stamps, that every block was
   * preserved (rule `not-preserved`); on failure nothing changes. The blocks are reclaimed
   * (and freed) by {@link KhoBlockSet.destroy} or {@link KhoBlockSet.shrink}.
   */
  static restore(kho: KhoRestorer, headPa: number, entrySize: number): KhoBlockSet {
    const chain = readKhoBlocks(kho.memory, headPa, entrySize);
    const stamps = stampReaderOf(kho);
    if (stamps) {
      for (const block of chain.blocks) {
        if (!pagesAreStamped(stamps, block.phys, 1)) throw new FormatError(FORMAT, block.phys, "phys", "not-preserved", `block 0x${block.phys.toString(16)} was not preserved`);
      }
    }
    const set = new KhoBlockSet({ incoming: true, kho }, entrySize);
    for (const block of chain.blocks) set.#blocks.push(block.phys);
    return set;
  }

  /** Whether this set was restored from the previous kernel. */
  get incoming(): boolean {
    return this.#owner.incoming;
  }

  /** The memory the blocks live in. */
  get memory(): PhysicalMemory {
    return this.#owner.kho.memory;
  }

  /** `kho_block_set_head_pa`: the first block, 0 when empty. */
  get headPa(): number {
    return this.#blocks[0] ?? 0;
  }

  get blockCount(): number {
    return this.#blocks.length;
  }

  /** `kho_block_set_is_empty`. */
  get isEmpty(): boolean {
    return this.#blocks.length === 0;
  }

  /** Physical address of each block, in chain order. */
  get blocks(): readonly number[] {
    return this.#blocks;
  }

  /** Entries the blocks can hold. */
  get capacity(): number {
    return this.#blocks.length * this.entriesPerBlock;
  }

  /**
   * `kho_block_set_grow`: add preserved blocks until `count` entries fit. `ENOSPC` past
   * 10000 blocks, the allocator's error otherwise; on failure the blocks added by this call
   * are removed again. `EINVAL` on an incoming set.
   */
  grow(count: number): void {
    const owner = this.#owner;
    if (owner.incoming) throw new KernelError("EINVAL", "cannot grow a restored block set");
    const before = this.#blocks.length;
    try {
      while (count > this.capacity) {
        const block = owner.kho.allocPreserve(KHO_BLOCK_SIZE);
        if (this.#blocks.length >= KHO_BLOCK_MAX_BLOCKS) {
          owner.kho.unpreserveFree(block, KHO_BLOCK_SIZE);
          throw new KernelError("ENOSPC", `a block set holds at most ${KHO_BLOCK_MAX_BLOCKS} blocks`);
        }
        const last = this.#blocks[this.#blocks.length - 1];
        this.#blocks.push(block);
        if (last !== undefined) owner.kho.memory.writeU64(last, block);
      }
    } catch (err) {
      while (this.#blocks.length > before) this.#shrinkOne();
      throw err;
    }
  }

  /**
   * `kho_block_set_shrink`: drop trailing blocks not needed for `count` entries. Entries
   * must be removed in reverse order of insertion (the last block goes).
   */
  shrink(count: number): void {
    while (this.#blocks.length > 0 && count <= (this.#blocks.length - 1) * this.entriesPerBlock) this.#shrinkOne();
  }

  /** `kho_block_set_destroy`: give every block back (unpreserve + free, or restore + free). */
  destroy(): void {
    let failure: Error | undefined;
    for (const block of this.#blocks) {
      try {
        this.#freeBlock(block);
      } catch (err) {
        failure ??= err instanceof Error ? err : new Error(String(err));
      }
    }
    this.#blocks.length = 0;
    if (failure) throw failure;
  }

  /** `kho_block_set_clear`: zero every block's count and entries (links stay). */
  clear(): void {
    const memory = this.memory;
    for (const block of this.#blocks) memory.zero(block + 8, KHO_BLOCK_SIZE - 8);
  }

  /** `kho_block_set_it_init`: an iterator at the first entry. */
  iterator(): KhoBlockIterator {
    return new KhoBlockIterator(this);
  }

  /** Physical address of every stored entry, in order (reads each block's count). */
  *entries(): Generator<number, void, undefined> {
    const it = this.iterator();
    for (let entry = it.readEntry(); entry !== undefined; entry = it.readEntry()) yield entry;
  }

  #shrinkOne(): void {
    const last = this.#blocks.pop();
    if (last === undefined) return;
    this.#freeBlock(last);
    const newLast = this.#blocks[this.#blocks.length - 1];
    if (newLast !== undefined) this.memory.writeU64(newLast, 0);
  }

  #freeBlock(block: number): void {
    const owner = this.#owner;
    if (owner.incoming) owner.kho.restoreFree(block);
    else owner.kho.unpreserveFree(block, KHO_BLOCK_SIZE);
  }
}

/** `struct kho_block_set_it`: a position in a block set. */
export class KhoBlockIterator {
  readonly #set: KhoBlockSet;
  #block = 0; // index into set.blocks
  #i = 0;

  constructor(set: KhoBlockSet) {
    this.#set = set;
  }

  /**
   * `kho_block_set_it_reserve_entry`: the next free slot while serializing (moving to the next
   * block when this one is full) and set the block's count; `undefined` when the set is full.
   */
  reserveEntry(): number | undefined {
    const set = this.#set;
    const blocks = set.blocks;
    if (this.#block >= blocks.length) return undefined;
    if (this.#i === set.entriesPerBlock) {
      if (this.#block === blocks.length - 1) return undefined;
      this.#block++;
      this.#i = 0;
    }
    const block = blocks[this.#block]!;
    const entry = khoBlockEntryPhys(block, this.#i++, set.entrySize);
    set.memory.writeU64(block + 8, this.#i);
    return entry;
  }

  /**
   * `kho_block_set_it_read_entry`: the next stored entry (respecting each block's count), or
   * `undefined` after the last. A count changed to more than a block holds since the set
   * was restored is a `FormatError` (`block-count`), not a read past the block.
   */
  readEntry(): number | undefined {
    const set = this.#set;
    const blocks = set.blocks;
    if (this.#block >= blocks.length) return undefined;
    if (this.#i === this.#count(blocks[this.#block]!)) {
      if (this.#block === blocks.length - 1) return undefined;
      this.#block++;
      this.#i = 0;
      // The kernel does not re-check: a block with count 0 still yields its first slot.
    }
    return khoBlockEntryPhys(blocks[this.#block]!, this.#i++, set.entrySize);
  }

  /**
   * `kho_block_set_it_prev`: step back one slot (to the end of the previous block at the
   * start of one) and return it; `undefined` at the very beginning.
   */
  prev(): number | undefined {
    const set = this.#set;
    const blocks = set.blocks;
    if (this.#block >= blocks.length) return undefined;
    if (this.#i === 0) {
      if (this.#block === 0) return undefined;
      this.#block--;
      this.#i = set.entriesPerBlock;
    }
    return khoBlockEntryPhys(blocks[this.#block]!, --this.#i, set.entrySize);
  }

  #count(block: number): number {
    const memory = this.#set.memory;
    const lo = memory.readU32(block + 8);
    const hi = memory.readU32(block + 12);
    if (hi !== 0 || lo > this.#set.entriesPerBlock) {
      throw new FormatError(FORMAT, block + 8, "phys", "block-count", `block holds more than ${this.#set.entriesPerBlock} entries`);
    }
    return lo;
  }
}

/**
 * Serialize `entries` (each exactly `entrySize` bytes) into a new outgoing set, the way LUO
 * does it: grow to fit, then reserve and fill each entry in order. On failure nothing stays
 * allocated.
 */
export function writeKhoBlocks(kho: KhoPreserver, entrySize: number, entries: readonly Uint8Array[]): KhoBlockSet {
  const set = KhoBlockSet.create(kho, entrySize);
  for (const [i, entry] of entries.entries()) {
    if (entry.length !== entrySize) throw new KernelError("EINVAL", `entry ${i} is ${entry.length} bytes, not ${entrySize}`);
  }
  set.grow(entries.length);
  const it = set.iterator();
  for (const entry of entries) kho.memory.write(it.reserveEntry()!, entry);
  return set;
}
