/**
 * Checking `KHOP` stamps without consuming them, so a structure's restore can prove that
 * every page it is about to reclaim is restorable before it reclaims the first one (a
 * failed restore must change nothing).
 *
 * `KhoRestorer` only has consuming calls (`restoreFolio` clears the stamp). A restorer that
 * also implements {@link KhoStampReader} lets the restores of `kho_vmalloc`, serialization
 * blocks and the KHO array validate the stamps first; with a restorer that does not, they
 * still validate everything else first and only a missing stamp can fail part-way.
 */
import { PAGE_SIZE } from "./abi.js";
import type { KhoRestorer } from "./types.js";

/** Read access to the next kernel's `KHOP` stamps (the `page->private` of a head page). */
export interface KhoStampReader {
  /** The stamp on the page at `phys` (its run's order), or `undefined` when it carries none. */
  stampOf(phys: number): { readonly order: number } | undefined;
  /**
   * Optional: the same answer as a number, the order or -1 for none, so that checking many
   * pages allocates nothing (`KhoIncoming` has it).
   */
  stampOrderOf?(phys: number): number;
}

/** The restorer's stamp reader, when it has one (`KhoIncoming` does). */
export function stampReaderOf(kho: KhoRestorer): KhoStampReader | undefined {
  const candidate = kho as KhoRestorer & Partial<KhoStampReader>;
  return typeof candidate.stampOf === "function" ? (candidate as KhoRestorer & KhoStampReader) : undefined;
}

/**
 * Whether `kho_restore_pages(phys, count)` would succeed: every aligned power-of-two run of
 * `[phys, phys + count pages)` (split as `kho_preserve_pages` splits it) carries a stamp of
 * that run's order.
 */
export function pagesAreStamped(stamps: KhoStampReader, phys: number, count: number): boolean {
  // One page is one order-0 run at `phys` (for addresses where `pfn + 1 > pfn`, as below).
  if (count === 1 && Math.abs(phys) <= Number.MAX_SAFE_INTEGER) return stampOrder(stamps, phys) === 0;
  let pfn = phys / PAGE_SIZE;
  const end = pfn + count;
  while (pfn < end) {
    const order = splitRunOrder(pfn, end - pfn);
    if (stampOrder(stamps, pfn * PAGE_SIZE) !== order) return false;
    pfn += 2 ** order;
  }
  return true;
}

/** `min(count_trailing_zeros(pfn), ilog2(remaining))`: the next run of a page-range split. */
export function splitRunOrder(pfn: number, remaining: number): number {
  let order = Math.floor(Math.log2(remaining));
  if (2 ** order > remaining) order--; // log2 rounding just below a power of two
  while (order > 0 && pfn % 2 ** order !== 0) order--;
  return order;
}

/**
 * The first `i` in `from <= i < to` for which {@link pagesAreStamped}`(stamps, physList[i],
 * count)` is false, or -1 when every range is stamped.
 */
export function firstUnstampedRange(stamps: KhoStampReader, physList: ArrayLike<number>, count: number, from = 0, to: number = physList.length): number {
  if (count === 1 && stamps.stampOrderOf !== undefined) return firstUnstampedPage(stamps as Required<KhoStampReader>, physList, from, to);
  for (let i = from; i < to; i++) if (!pagesAreStamped(stamps, physList[i]!, count)) return i;
  return -1;
}

/** {@link firstUnstampedRange} of single pages, as {@link pagesAreStamped} answers for them. */
function firstUnstampedPage(stamps: Required<KhoStampReader>, physList: ArrayLike<number>, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const phys = physList[i]!;
    if (Math.abs(phys) <= Number.MAX_SAFE_INTEGER ? stamps.stampOrderOf(phys) !== 0 : !pagesAreStamped(stamps, phys, 1)) return i;
  }
  return -1;
}

/** The order of the stamp at `phys`, -1 for none. */
function stampOrder(stamps: KhoStampReader, phys: number): number {
  if (stamps.stampOrderOf !== undefined) return stamps.stampOrderOf(phys);
  return stamps.stampOf(phys)?.order ?? -1;
}
