/**
 * The next kernel's side of KHO: what it finds at boot and what subsystems restore from it.
 *
 * Boot (`kho_populate` + `kho_memory_init`), in the constructor, never throwing:
 * 1. the root FDT the previous kernel handed over must pass `fdt_check_header`, have a root
 *    compatible with `"kho-v4"` and an 8-byte, non-zero `preserved-memory-map`;
 * 2. the map is walked ({@link walkRadixMap}, hostile-input checked) and the head page of
 *    every run is stamped `{order, KHOP}`: in a side table, as the kernel keeps it in
 *    `struct page->private`, never in the page's contents.
 * Any failure disables revival: nothing is stamped, every {@link KhoIncoming.retrieveSubtree}
 * is `ENOENT`, and the reason is kept ({@link KhoIncoming.disabledReason}). A half-done walk
 * stamps nothing (the stamps are committed only once the whole map has been read).
 *
 * Restore (`kho_restore_folio` / `kho_restore_pages`): the head page must carry the stamp
 * (and, for pages, the order the split gives); the stamp is cleared, so a run is restored
 * at most once, and the pages go to the caller through the machine's allocator. A failed
 * restore changes nothing.
 */
import { KHO_FDT_SIZE, KHO_KEXEC_METADATA_NAME, KHO_KEXEC_METADATA_SIZE, KHO_PAGE_MAGIC, PAGE_SIZE } from "./abi.js";
import { FormatError, KernelError } from "./errors.js";
import { decodeKexecMetadata } from "./kexec-metadata.js";
import { checkKhoRootFdt, listKhoSubtrees, retrieveKhoSubtree, type KhoSubtree } from "./kho-root-fdt.js";
import type { PhysicalMemory } from "./memory.js";
import { POW2, alignedRunOrder, type PageAllocator } from "./page-allocator.js";
import { PfnRunList } from "./pfn-runs.js";
import { walkRadixMap, type RadixNodePage } from "./radix-map.js";
import type { KhoRestorer, PreservedRun } from "./types.js";

/** What kexec hands the next kernel (x86 `kho_data` without the scratch part). */
export interface KhoHandover {
  /** Physical address of the previous kernel's root FDT. */
  readonly fdtPhys: number;
  /** Its mapping size (`fdt_size`; one page). */
  readonly fdtSize?: number;
}

/** How the incoming side came up. */
export type KhoIncomingState = "cold" | "revived" | "disabled";

/** The stamp on the head page of a preserved run (`union kho_page_info` in `page->private`). */
export interface KhoPageStamp {
  readonly order: number;
  /** Always `KHO_PAGE_MAGIC` ("KHOP") while stamped. */
  readonly magic: number;
}

const MAX_FDT_SIZE = 0x7fffffff;

/** Sorted stamp table: head pfn, order, and whether the stamp was cleared by a restore. */
interface StampTable {
  readonly pfns: Float64Array;
  readonly orders: Uint8Array;
  readonly cleared: Uint8Array;
}

const EMPTY_TABLE: StampTable = { pfns: new Float64Array(0), orders: new Uint8Array(0), cleared: new Uint8Array(0) };

/**
 * The sorted table of runs in walk order (values: orders). A pfn stamped twice keeps its
 * LAST stamp, as the kernel overwrites `page->private` (the sort is stable).
 */
function buildStampTable(runs: PfnRunList): StampTable {
  runs.sortByPfn();
  const src = runs.pfns;
  const vals = runs.values;
  const n = src.length;
  let m = 0;
  for (let i = 0; i < n; i++) if (i + 1 === n || src[i + 1] !== src[i]) m++;
  if (m === n) return { pfns: src.slice(), orders: Uint8Array.from(vals), cleared: new Uint8Array(n) };
  const pfns = new Float64Array(m);
  const orders = new Uint8Array(m);
  let k = 0;
  for (let i = 0; i < n; i++) {
    if (i + 1 < n && src[i + 1] === src[i]) continue;
    pfns[k] = src[i]!;
    orders[k++] = vals[i]!;
  }
  return { pfns, orders, cleared: new Uint8Array(m) };
}

/** The incoming KHO state of one boot. See the module comment. */
export class KhoIncoming implements KhoRestorer {
  readonly memory: PhysicalMemory;
  readonly state: KhoIncomingState;
  /** Why revival was disabled (undefined unless `state` is "disabled"). */
  readonly disabledReason: string | undefined;
  /** The map walk's failure, when that is what disabled revival. */
  readonly mapError: FormatError | undefined;
  /** The previous kernel's root FDT (undefined unless revived). */
  readonly fdtPhys: number | undefined;
  readonly #fdtSize: number;
  /** Root of the previous kernel's map (undefined unless revived). */
  readonly memoryMapPhys: number | undefined;
  /** The previous kernel's map pages, as walked at boot. */
  readonly mapNodes: readonly RadixNodePage[];
  /** `uname -r` of the previous kernel, from its `kexec-metadata` (if it left a usable one). */
  readonly previousRelease: string | undefined;
  /** `kexec_count` from the previous kernel's `kexec-metadata`; 0 after a cold boot. */
  readonly kexecCount: number;
  readonly #stamps: StampTable;
  #stampedCount: number;
  #allocator: PageAllocator | undefined;

  /**
   * Boot: check the handed-over FDT and walk its map. `handover` undefined is a cold boot.
   * Never throws for anything found in memory.
   */
  constructor(memory: PhysicalMemory, handover?: KhoHandover) {
    this.memory = memory;
    let state: KhoIncomingState = "cold";
    let reason: string | undefined;
    let mapError: FormatError | undefined;
    let fdtPhys: number | undefined;
    let mapPhys: number | undefined;
    let nodes: readonly RadixNodePage[] = [];
    let stamps = EMPTY_TABLE;
    const fdtSize = handover?.fdtSize ?? KHO_FDT_SIZE;
    this.#fdtSize = fdtSize;
    if (handover !== undefined) {
      const found = this.#boot(handover.fdtPhys, fdtSize);
      if (typeof found === "string") {
        state = "disabled";
        reason = found;
      } else if (found instanceof FormatError) {
        state = "disabled";
        reason = `the preserved-memory map is corrupt: ${found.message}`;
        mapError = found;
      } else {
        state = "revived";
        fdtPhys = handover.fdtPhys;
        mapPhys = found.mapPhys;
        nodes = found.nodes;
        stamps = found.stamps;
      }
    }
    this.state = state;
    this.disabledReason = reason;
    this.mapError = mapError;
    this.fdtPhys = fdtPhys;
    this.memoryMapPhys = mapPhys;
    this.mapNodes = nodes;
    this.#stamps = stamps;
    this.#stampedCount = stamps.pfns.length;

    // kho_in_kexec_metadata: a missing or unusable blob is fine, it is just not there.
    let previousRelease: string | undefined;
    let kexecCount = 0;
    if (state === "revived") {
      try {
        const { phys, size } = this.retrieveSubtree(KHO_KEXEC_METADATA_NAME);
        const len = Math.min(size, KHO_KEXEC_METADATA_SIZE);
        if (len >= 4 && memory.contains(phys, len)) {
          const decoded = decodeKexecMetadata(memory.read(phys, len), size);
          if (decoded !== undefined) {
            previousRelease = decoded.previousRelease;
            kexecCount = decoded.kexecCount;
          }
        }
      } catch (error) {
        if (!(error instanceof KernelError)) throw error;
      }
    }
    this.previousRelease = previousRelease;
    this.kexecCount = kexecCount;
  }

  /** Whether the previous kernel's state was accepted. */
  get revived(): boolean {
    return this.state === "revived";
  }

  /**
   * Give restored pages to this allocator (so they can be freed later), and take them out of
   * it with {@link KhoIncoming.reservedRuns} at its construction. Called once by the machine.
   */
  attachAllocator(allocator: PageAllocator): void {
    if (this.#allocator !== undefined) throw new KernelError("EBUSY", "an allocator is already attached");
    this.#allocator = allocator;
  }

  /**
   * Every preserved run (stamped at boot) as pages to keep out of the allocator: ascending,
   * neighbouring runs joined.
   */
  reservedRuns(): PfnRunList {
    const { pfns, orders } = this.#stamps;
    const out = new PfnRunList(64);
    for (let i = 0; i < pfns.length; i++) out.pushJoined(pfns[i]!, POW2[orders[i]!]!);
    return out;
  }

  /** Runs still stamped (preserved and not restored yet), ascending by address. */
  stampedRuns(): PreservedRun[] {
    const { pfns, orders, cleared } = this.#stamps;
    const out: PreservedRun[] = [];
    for (let i = 0; i < pfns.length; i++) if (cleared[i] === 0) out.push({ phys: pfns[i]! * PAGE_SIZE, order: orders[i]! });
    return out;
  }

  /** Number of runs still stamped. */
  get stampedCount(): number {
    return this.#stampedCount;
  }

  /** The stamp on the page at `phys` (`page->private`), if any. */
  stampOf(phys: number): KhoPageStamp | undefined {
    const i = this.#find(Math.floor(phys / PAGE_SIZE));
    if (i < 0 || this.#stamps.cleared[i] !== 0) return undefined;
    return { order: this.#stamps.orders[i]!, magic: KHO_PAGE_MAGIC };
  }

  /**
   * `kho_restore_folio`: the folio at `phys` (the page `PHYS_PFN(phys)`), whose head must be
   * stamped. Clears the stamp and returns the order; the folio now belongs to the caller.
   *
   * @throws KernelError `EINVAL` when the page is not memory or carries no stamp (never
   *   preserved, already restored, revival disabled).
   */
  restoreFolio(phys: number): number {
    const i = this.#stamped(phys);
    const order = this.#stamps.orders[i]!;
    this.#clear(i);
    return order;
  }

  /**
   * `kho_restore_pages`: `count` order-0 pages preserved with `kho_preserve_pages`. Every
   * aligned run of the kernel's split must be stamped with the order the split gives (the
   * kernel checks the magic only; a mismatched order is a different preservation, refused
   * here). Checked before anything is cleared: a failure restores nothing.
   *
   * @throws KernelError `EINVAL`.
   */
  restorePages(phys: number, count: number): void {
    if (!Number.isSafeInteger(count) || count < 0) throw new KernelError("EINVAL", `page count ${count} is not a count`);
    const start = Math.floor(phys / PAGE_SIZE);
    if (count === 1) {
      // One page: one order-0 run (the common case of per-page restores).
      const i = this.#stamped(phys);
      if (this.#stamps.orders[i] !== 0) {
        throw new KernelError("EINVAL", `page 0x${(start * PAGE_SIZE).toString(16)} was preserved as order ${this.#stamps.orders[i]}, not 0`);
      }
      this.#clear(i, true);
      return;
    }
    const end = start + count;
    const found: number[] = [];
    for (let pfn = start; pfn < end; ) {
      const order = alignedRunOrder(pfn, end);
      const i = this.#stamped(pfn * PAGE_SIZE);
      if (this.#stamps.orders[i] !== order) {
        throw new KernelError("EINVAL", `page 0x${(pfn * PAGE_SIZE).toString(16)} was preserved as order ${this.#stamps.orders[i]}, not ${order}`);
      }
      found.push(i);
      pfn += 2 ** order;
    }
    for (const i of found) this.#clear(i, true);
  }

  /** `kho_restore_free`: restore a `kho_alloc_preserve` block, then free it. */
  restoreFree(phys: number): void {
    const i = this.#stamped(phys);
    const order = this.#stamps.orders[i]!;
    this.#clear(i);
    this.#allocator?.freeFolio(this.#stamps.pfns[i]! * PAGE_SIZE, order);
  }

  /**
   * `kho_retrieve_subtree(name)`: the blob the previous kernel recorded under `name`.
   *
   * @throws KernelError `ENOENT` when revival is off (cold boot, disabled) or there is no
   *   such sub-tree; `EINVAL` when its `preserved-data` or `blob-size` is missing or not 8
   *   bytes.
   */
  retrieveSubtree(name: string): { phys: number; size: number } {
    const blob = this.#fdt();
    if (blob === undefined) throw new KernelError("ENOENT", `no incoming KHO FDT (${this.state} boot)`);
    return retrieveKhoSubtree(blob, name);
  }

  /** The previous kernel's sub-trees in document order (empty unless revived). */
  subtrees(): KhoSubtree[] {
    const blob = this.#fdt();
    return blob === undefined ? [] : listKhoSubtrees(blob);
  }

  /** The previous kernel's root FDT as it is in memory now (undefined unless revived). */
  rootFdt(): Uint8Array | undefined {
    const blob = this.#fdt();
    if (blob === undefined) return undefined;
    const total = new DataView(blob.buffer, blob.byteOffset).getUint32(4);
    return blob.slice(0, Math.min(total, blob.length));
  }

  /** The live FDT mapping (the kernel reads the page each time), or undefined. */
  #fdt(): Uint8Array | undefined {
    if (this.fdtPhys === undefined || !this.memory.contains(this.fdtPhys, this.#fdtSize)) return undefined;
    return this.memory.read(this.fdtPhys, this.#fdtSize);
  }

  #boot(
    fdtPhys: number,
    fdtSize: number,
  ): string | FormatError | { mapPhys: number; nodes: readonly RadixNodePage[]; stamps: StampTable } {
    if (!Number.isSafeInteger(fdtSize) || fdtSize <= 0 || fdtSize > MAX_FDT_SIZE) return `FDT size ${fdtSize} is not a mapping size`;
    if (!Number.isSafeInteger(fdtPhys) || !this.memory.contains(fdtPhys, fdtSize)) {
      return `the FDT at ${String(fdtPhys)} (+${fdtSize}) is not in memory`;
    }
    const check = checkKhoRootFdt(this.memory.read(fdtPhys, fdtSize));
    if (!check.valid) return `handover FDT: ${check.reason}`;
    const runs = new PfnRunList(1024);
    try {
      const maxRuns = this.memory.totalBytes / PAGE_SIZE;
      const { nodes } = walkRadixMap(
        this.memory,
        check.memoryMapPhys,
        (phys, order) => {
          runs.push(phys / PAGE_SIZE, order);
        },
        { maxRuns },
      );
      return { mapPhys: check.memoryMapPhys, nodes, stamps: buildStampTable(runs) };
    } catch (error) {
      if (error instanceof FormatError) return error;
      throw error;
    }
  }

  /** Index of the live stamp of the page at `phys`. @throws KernelError `EINVAL`. */
  #stamped(phys: number): number {
    if (!Number.isSafeInteger(phys) || phys < 0 || !this.memory.contains(phys - (phys % PAGE_SIZE), PAGE_SIZE)) {
      throw new KernelError("EINVAL", `${String(phys)} is not a page of memory`);
    }
    const i = this.#find(Math.floor(phys / PAGE_SIZE));
    if (i < 0 || this.#stamps.cleared[i] !== 0) {
      throw new KernelError("EINVAL", `page 0x${phys.toString(16)} has no KHOP stamp (not preserved, or already restored)`);
    }
    return i;
  }

  #clear(i: number, asPages = false): void {
    const pfn = this.#stamps.pfns[i]!;
    const order = this.#stamps.orders[i]!;
    this.#stamps.cleared[i] = 1;
    this.#stampedCount--;
    this.#allocator?.adopt(pfn * PAGE_SIZE, order, asPages);
  }

  #find(pfn: number): number {
    const pfns = this.#stamps.pfns;
    let lo = 0;
    let hi = pfns.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = pfns[mid]!;
      if (v < pfn) lo = mid + 1;
      else if (v > pfn) hi = mid - 1;
      else return mid;
    }
    return -1;
  }
}
