/**
 * The `"memfd-v0"` file handler: the posted series' memfd ops (LUO v3, Aug 2025) over the
 * shared memfd model, with the folio list in a KHO array (the seed variant). The record
 * itself is `record.ts`; this file is the lifecycle around it.
 *
 * ```text
 * outgoing kernel
 *   (not preserved) --preserve--> preserved    mapping frozen (no grow/shrink/punch: EPERM),
 *                                              folios pinned (holes filled, as memfd_pin_folios
 *                                              does), each folio preserved with its own order,
 *                                              KHO array + FDT written and preserved;
 *                                              failure: everything undone, file unfrozen
 *   preserved --freeze--> frozen               `pos` re-read and rewritten in the FDT in place
 *   frozen --unfreeze--> preserved             nothing to undo (the next freeze rewrites pos)
 *   preserved|frozen --unpreserve--> (not preserved)
 *                                              folios, array and FDT unpreserved and freed
 *                                              (except the folios, which stay the file's),
 *                                              unpinned, mapping unfrozen
 *   frozen --kexec--> record handed over (serializedData = phys of the FDT)
 *
 * next kernel
 *   record --retrieve--> retrieved             validated whole first (decode.ts rules), then the
 *                                              folios go into a new shmem file ("", F_SEAL_SEAL),
 *                                              pos and size set; FDT and array pages freed
 *   record --retrieve fails--> record          nothing changed (status < 0, the same error again)
 *   record --finish, never retrieved--> gone   every page of the record reclaimed and freed
 *   retrieved | failed --finish--> (nothing)   as the kernel: a failed retrieve is not cleaned up
 * ```
 *
 * What is recorded per folio is what the posted series recorded: its own DIRTY and UPTODATE
 * state at preserve time (Linux 7.2 later marks every preserved folio dirty and uptodate).
 */
import { PAGE_SIZE, KernelError, type Machine } from "@liveupdate/kho";
import type { FileHandler, FileOpArgs, LuoFile } from "@liveupdate/luo-core";
import { FOLIO_DIRTY, FOLIO_UPTODATE, MemfdFile, SEEK_SET } from "@liveupdate/memfd";
import { MemfdV0FolioTable } from "./folio-table.js";
import { MEMFD_V0_COMPATIBLE, MEMFD_V0_FOLIO_DIRTY, MEMFD_V0_FOLIO_UPTODATE, MEMFD_V0_MAX_PAGES } from "./format.js";
import { discardMemfdV0, preserveMemfdV0, restoreMemfdV0, unpreserveMemfdV0, writeMemfdV0Pos, type MemfdV0Preserved } from "./record.js";

/** What the handler keeps in `privateData` between its outgoing ops on one file. */
class PreservedMemfd {
  constructor(
    readonly file: MemfdFile,
    readonly record: MemfdV0Preserved,
  ) {}
}

function memfdOf(args: FileOpArgs): MemfdFile {
  const file = args.file;
  if (!(file instanceof MemfdFile)) throw new KernelError("EINVAL", `${file?.description ?? "no file"} is not a memfd`);
  return file;
}

function preservedOf(args: FileOpArgs): PreservedMemfd {
  const state = args.privateData;
  if (!(state instanceof PreservedMemfd)) throw new KernelError("EINVAL", "the file was not preserved by memfd-v0");
  return state;
}

function toRecordFlags(folioFlags: number): number {
  return ((folioFlags & FOLIO_DIRTY) !== 0 ? MEMFD_V0_FOLIO_DIRTY : 0) | ((folioFlags & FOLIO_UPTODATE) !== 0 ? MEMFD_V0_FOLIO_UPTODATE : 0);
}

function toFolioFlags(recordFlags: number): number {
  return ((recordFlags & MEMFD_V0_FOLIO_DIRTY) !== 0 ? FOLIO_DIRTY : 0) | ((recordFlags & MEMFD_V0_FOLIO_UPTODATE) !== 0 ? FOLIO_UPTODATE : 0);
}

/** The `"memfd-v0"` handler (see the module comment for its state machine). */
export class MemfdV0Handler implements FileHandler {
  /** The records it writes and reads: `"memfd-v0"` ({@link MEMFD_V0_COMPATIBLE}). */
  readonly compatible = MEMFD_V0_COMPATIBLE;

  /** Memfds only: unlinked shmem files (not hugetlb memfds, not named tmpfs files). */
  canPreserve(file: LuoFile): boolean {
    return file instanceof MemfdFile && file.isShmem && file.linkCount === 0;
  }

  /** The inode: the same memfd cannot be preserved twice. */
  getId(file: LuoFile): number {
    if (!(file instanceof MemfdFile)) throw new KernelError("EINVAL", `${file.description} is not a memfd`);
    return file.inode;
  }

  /**
   * Freeze the mapping, pin every folio of `[0, size)` (filling holes), and write the record.
   *
   * @throws KernelError `E2BIG` for more than 2^32 - 1 pages; `ENOMEM`; `EINVAL`. On failure
   *   the file is unpinned and unfrozen and nothing stays preserved (folios allocated for
   *   holes stay in the file, as in the kernel).
   */
  preserve(args: FileOpArgs): void {
    const file = memfdOf(args);
    if (Math.ceil(file.size / PAGE_SIZE) > MEMFD_V0_MAX_PAGES) throw new KernelError("E2BIG", `${file.description} has more than ${MEMFD_V0_MAX_PAGES} pages`);
    file.freezeMapping(true);
    let pinned;
    try {
      pinned = file.pinFolios();
    } catch (error) {
      file.freezeMapping(false);
      throw error;
    }
    try {
      const n = pinned.count;
      const pfns = new Float64Array(n);
      const flags = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        pfns[i] = pinned.phys[i]! / PAGE_SIZE;
        flags[i] = toRecordFlags(pinned.flags[i]!);
      }
      const folios = MemfdV0FolioTable.fromColumns(pinned.indices, pfns, flags, pinned.orders, n);
      const record = preserveMemfdV0(args.machine.kho, { pos: file.position, size: file.size, folios });
      args.serializedData = BigInt(record.fdtPhys);
      args.privateData = new PreservedMemfd(file, record);
    } catch (error) {
      file.unpinFolios();
      file.freezeMapping(false);
      throw error;
    }
  }

  /** Re-read `f_pos` into the FDT (it may have moved since preserve). */
  freeze(args: FileOpArgs): void {
    const { file, record } = preservedOf(args);
    writeMemfdV0Pos(args.machine.memory, record.fdtPhys, file.position);
  }

  /** Nothing to undo: the position written at freeze is rewritten by the next freeze. */
  unfreeze(args: FileOpArgs): void {
    preservedOf(args);
  }

  /** Undo preserve: unpreserve and free the record, unpin, unfreeze the mapping. */
  unpreserve(args: FileOpArgs): void {
    const { file, record } = preservedOf(args);
    unpreserveMemfdV0(args.machine.kho, record);
    file.unpinFolios();
    file.freezeMapping(false);
    args.privateData = undefined;
  }

  /**
   * Validate the record, reclaim its folios into a new shmem file with the preserved size
   * and position; free the FDT and the array.
   *
   * @throws FormatError `ENOENT` (no FDT), `EINVAL` (malformed), `EIO` (a folio that cannot
   *   be reclaimed), `EOVERFLOW` (a position this model cannot represent). Nothing changes.
   */
  retrieve(args: FileOpArgs): void {
    const machine: Machine = args.machine;
    const record = restoreMemfdV0(machine.incoming, args.serializedData);
    // Only now (it cannot fail): a failed retrieve must not even use up an inode number.
    const file = MemfdFile.createShmemFile(machine, "");
    file.lseek(record.pos, SEEK_SET);
    file.restoreSize(record.size);
    const f = record.folios;
    for (let i = 0; i < f.length; i++) file.insertFolio(f.index(i), f.pfn(i) * PAGE_SIZE, f.order(i), toFolioFlags(f.flags(i)));
    args.file = file;
  }

  /** A file never retrieved: reclaim and free everything its record holds. */
  finish(args: FileOpArgs): void {
    if (args.retrieveStatus !== 0) return;
    discardMemfdV0(args.machine.incoming, args.serializedData);
  }
}

/** The handler instance to register: `registry.register(memfdV0)`. */
export const memfdV0: MemfdV0Handler = new MemfdV0Handler();
