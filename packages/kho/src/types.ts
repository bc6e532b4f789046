/**
 * The seams between the parts of KHO: what a preserved structure (kho_vmalloc, blocks,
 * the KHO array, handlers) needs from the outgoing kernel, what it needs from the next
 * one, and what a decoder needs from memory (a live machine or an image file).
 */
import type { PhysicalMemory } from "./memory.js";

/** Read-only access to physical memory: a live machine, an ELF core, a raw dump. */
export interface PhysReader {
  /** Whether `[phys, phys + len)` can be read. */
  contains(phys: number, len: number): boolean;
  /** Copy `dst.length` bytes at `phys` into `dst` (throws when not contained). */
  readInto(phys: number, dst: Uint8Array): void;
}

/** One preserved run: `2^order` pages at `phys`. */
export interface PreservedRun {
  readonly phys: number;
  readonly order: number;
}

/** The outgoing kernel's preservation API (`kho_preserve_*`, `kho_alloc_preserve`). */
export interface KhoPreserver {
  readonly memory: PhysicalMemory;
  /** A zeroed folio of `2^order` pages from the buddy allocator (`ENOMEM`). Not preserved. */
  allocFolio(order: number): number;
  /** Give a folio back to the allocator. */
  freeFolio(phys: number, order: number): void;
  /** `kho_preserve_folio`: `EINVAL` inside scratch. */
  preserveFolio(phys: number, order: number): void;
  unpreserveFolio(phys: number, order: number): void;
  /** `kho_preserve_pages`: split into aligned power-of-two runs; `EINVAL` inside scratch. */
  preservePages(phys: number, count: number): void;
  unpreservePages(phys: number, count: number): void;
  /** `kho_alloc_preserve`: zeroed, preserved folio of `get_order(size)`; 0 `EINVAL`, too big `E2BIG`. */
  allocPreserve(size: number): number;
  /** `kho_unpreserve_free`. */
  unpreserveFree(phys: number, size: number): void;
}

/** The next kernel's restore API (`kho_restore_*`). */
export interface KhoRestorer {
  readonly memory: PhysicalMemory;
  /**
   * `kho_restore_folio`: needs the `KHOP` stamp on the head page; returns the order and
   * clears the stamp, so a second restore of the same folio fails (`EINVAL`).
   */
  restoreFolio(phys: number): number;
  /** `kho_restore_pages`: every aligned run in `[phys, phys + count pages)` must be stamped. */
  restorePages(phys: number, count: number): void;
  /** `kho_restore_free` of an `allocPreserve` block: restore, then free. */
  restoreFree(phys: number): void;
}
