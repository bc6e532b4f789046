/**
 * The `memfd-v2` file handler: Linux 7.2 `mm/memfd_luo.c` as a luo-core {@link FileHandler}.
 *
 * The whole lifecycle of one preserved memfd:
 *
 * ```text
 * outgoing kernel
 *   memfd --preserve--> PRESERVED    inode frozen (SHMEM_F_MAPPING_FROZEN: no grow, shrink,
 *                                    fallocate, punch); the 48-byte record allocated
 *                                    (kho_alloc_preserve); holes of [0, size) filled; every
 *                                    folio pinned, zeroed if not UPTODATE, marked DIRTY|UPTODATE,
 *                                    kho_preserve_folio'd with its own order; the folio array
 *                                    in a preserved kho_vmalloc; serializedData = record phys.
 *                                    Fails (undoing it all): EOPNOTSUPP (a seal v2 cannot
 *                                    carry), EFBIG (more than 2^32 - 1 pages), ENOMEM, EINVAL.
 *   PRESERVED --freeze (kexec)--> FROZEN      record.pos = f_pos (the only field that can change)
 *   FROZEN --unfreeze (kexec aborted)--> PRESERVED   nothing to undo
 *   PRESERVED --unpreserve (session closed)--> memfd   everything above undone, inode unfrozen
 * next kernel
 *   RECORD --retrieve--> RETRIEVED   a new memfd (memfd_alloc_file("", MFD_ALLOW_SEALING)) with
 *                                    the seals (F_SEAL_EXEC on its 0777 mode implies the W^X
 *                                    seals, as memfd_add_seals does), pos and size; every folio
 *                                    restored into its page cache with the record's flags; the
 *                                    array and the record page freed.
 *   RECORD --retrieve fails--> RECORD     unchanged: everything is validated before the first
 *                                    page is taken, so the same image retrieves again with a
 *                                    correct handler. EINVAL (no record, the array's kho_vmalloc
 *                                    is corrupt or not preserved, nr_folios beyond the array),
 *                                    EOPNOTSUPP (unknown seals), EIO (a folio not preserved,
 *                                    outside memory, listed twice, or overlapping another),
 *                                    EEXIST (two folios for one page of the file), EOVERFLOW
 *                                    (size or pos beyond the model's 2^52-byte files).
 *   RETRIEVED --finish--> done                nothing to do
 *   RECORD --finish (never retrieved, or its retrieve failed)--> the folios, the array and the
 *                                    record are restored and freed, best effort (the kernel's
 *                                    memfd_luo_discard_folios; after a failed retrieve the
 *                                    kernel has already freed them, the model frees them here).
 * ```
 *
 * Differences from the kernel, on hostile records only: the kernel would read past a folio
 * array shorter than `nr_folios`, BUG on a misaligned index, and give one page to two folios;
 * here those are refused with the errnos above before anything is restored. A `pos` beyond
 * 2^63 - 1 is ignored as the kernel's `vfs_setpos` failure is (pos 0).
 */
import { FormatError, KernelError, PAGE_SIZE, type Machine } from "@liveupdate/kho";
import type { FileHandler, FileOpArgs, LuoFile } from "@liveupdate/luo-core";
import {
  MEMFD_MAX_BYTES,
  MFD_ALLOW_SEALING,
  MemfdFile,
  SEEK_SET,
  commitFolioRestore,
  discardFolioArray,
  incomingRecordPhys,
  memfdError,
  planFolioRestore,
  preserveMemfdFolios,
  readFolioArray,
  u64Field,
  unpreserveMemfdFolios,
  type FolioArrayContext,
  type PreservedFolioArray,
} from "@liveupdate/memfd";
import {
  MEMFD_V2_ALL_SEALS,
  MEMFD_V2_COMPATIBLE,
  MEMFD_V2_MAX_PAGES,
  MEMFD_V2_SER_FOLIOS_OFFSET,
  MEMFD_V2_SER_NR_FOLIOS_OFFSET,
  MEMFD_V2_SER_POS_OFFSET,
  MEMFD_V2_SER_SEALS_OFFSET,
  MEMFD_V2_SER_SIZE,
  MEMFD_V2_SER_SIZE_OFFSET,
  decodeMemfdV2Ser,
  encodeMemfdV2Ser,
  type MemfdV2Ser,
} from "./abi.js";

/** What preserve keeps for unpreserve (the kernel's `private_data`: the vmap of the array). */
export interface MemfdV2PreservedState {
  /** The preserved file (frozen, its folios pinned). */
  readonly file: MemfdFile;
  /** Where the record is. */
  readonly serPhys: number;
  /** The preserved folios and their array. */
  readonly folios: PreservedFolioArray;
}

/** `vfs_setpos(file, pos, MAX_LFS_FILESIZE)` fails above this (and memfd_luo ignores the failure). */
const MAX_LFS_FILESIZE = (1n << 63n) - 1n;

function memfdOf(file: LuoFile | undefined): MemfdFile {
  if (!(file instanceof MemfdFile)) throw new KernelError("EINVAL", `${file?.description ?? "no file"} is not a memfd`);
  return file;
}

function context(serPhys: number): FolioArrayContext {
  return { format: MEMFD_V2_COMPATIBLE, nrFoliosAt: serPhys + MEMFD_V2_SER_NR_FOLIOS_OFFSET };
}

/** `serializedData` as a physical address (0 when it cannot be one). */
function serPhysOf(data: bigint): number {
  return data > 0n && data <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(data) : 0;
}

/** The record `data` points at in the next kernel, with its address; undefined when it is not a preserved record. */
function incomingRecord(machine: Machine, data: bigint): { serPhys: number; ser: MemfdV2Ser } | undefined {
  const serPhys = incomingRecordPhys(machine, data, MEMFD_V2_SER_SIZE);
  return serPhys === undefined ? undefined : { serPhys, ser: decodeMemfdV2Ser(machine.memory.read(serPhys, MEMFD_V2_SER_SIZE)) };
}

/** The `memfd-v2` handler. See the module comment; {@link memfdV2} is a ready instance. */
export class MemfdV2Handler implements FileHandler {
  /** `"memfd-v2"`. */
  readonly compatible: string = MEMFD_V2_COMPATIBLE;

  /** `memfd_luo_can_preserve`: shmem files with no name left (memfds). Not hugetlb, not linked tmpfs files. */
  canPreserve(file: LuoFile): boolean {
    return file instanceof MemfdFile && file.isShmem && file.linkCount === 0;
  }

  /** `memfd_luo_get_id`: the inode. */
  getId(file: LuoFile): number {
    return memfdOf(file).inode;
  }

  /** `memfd_luo_preserve`: see the module comment (PRESERVED). */
  preserve(args: FileOpArgs): void {
    const file = memfdOf(args.file);
    if (file.machine !== args.machine) throw new KernelError("EINVAL", `${file.description} belongs to another kernel`);
    const kho = args.machine.kho;
    file.freezeMapping(true);
    let serPhys = 0;
    try {
      serPhys = kho.allocPreserve(MEMFD_V2_SER_SIZE);
      const seals = file.seals;
      if ((seals & ~MEMFD_V2_ALL_SEALS) !== 0) {
        throw new KernelError("EOPNOTSUPP", `${file.description} has seals 0x${(seals & ~MEMFD_V2_ALL_SEALS).toString(16)} that memfd-v2 cannot carry`);
      }
      const size = file.size;
      if (Math.ceil(size / PAGE_SIZE) > MEMFD_V2_MAX_PAGES) throw memfdError("EFBIG", `${file.description}: ${size} bytes is more than 2^32 - 1 pages`);
      const folios = preserveMemfdFolios(file, kho, { markDirtyUptodate: true });
      const record = encodeMemfdV2Ser({ pos: BigInt(file.position), size: BigInt(size), seals, flags: 0, nrFolios: BigInt(folios.nrFolios), folios: folios.descriptor });
      kho.memory.write(serPhys, record);
      const state: MemfdV2PreservedState = { file, serPhys, folios };
      args.privateData = state;
      args.serializedData = BigInt(serPhys);
    } catch (error) {
      if (serPhys !== 0) kho.unpreserveFree(serPhys, MEMFD_V2_SER_SIZE);
      file.freezeMapping(false);
      throw error;
    }
  }

  /** `memfd_luo_freeze`: the position may have moved since preserve. */
  freeze(args: FileOpArgs): void {
    const serPhys = serPhysOf(args.serializedData);
    if (serPhys === 0) throw new KernelError("EINVAL", "freeze of a memfd that was not preserved");
    args.machine.memory.writeU64(serPhys + MEMFD_V2_SER_POS_OFFSET, memfdOf(args.file).position);
  }

  /** Nothing to undo: freeze only refreshed `pos` (the kernel's handler has no unfreeze). */
  unfreeze(): void {
    // intentionally empty
  }

  /** `memfd_luo_unpreserve`: undo preserve (the session was closed before a kexec). */
  unpreserve(args: FileOpArgs): void {
    const state = args.privateData as MemfdV2PreservedState | undefined;
    if (serPhysOf(args.serializedData) === 0 || state === undefined) return;
    const kho = args.machine.kho;
    state.file.freezeMapping(false);
    unpreserveMemfdFolios(state.file, kho, state.folios);
    kho.unpreserveFree(state.serPhys, MEMFD_V2_SER_SIZE);
  }

  /** `memfd_luo_retrieve`: validate the record, then rebuild the file (RETRIEVED). */
  retrieve(args: FileOpArgs): void {
    const machine = args.machine;
    const record = incomingRecord(machine, args.serializedData);
    if (record === undefined) {
      throw new FormatError(MEMFD_V2_COMPATIBLE, serPhysOf(args.serializedData), "phys", "ser-not-preserved", `no preserved memfd_luo_ser at ${args.serializedData.toString()}`);
    }
    const { serPhys, ser } = record;
    // Validate everything, in the kernel's order, before anything is restored.
    if ((ser.seals & ~MEMFD_V2_ALL_SEALS) !== 0) {
      throw new FormatError(MEMFD_V2_COMPATIBLE, serPhys + MEMFD_V2_SER_SEALS_OFFSET, "phys", "seals", `seals 0x${ser.seals.toString(16)} include some memfd-v2 does not know`, "EOPNOTSUPP");
    }
    const pos = ser.pos > MAX_LFS_FILESIZE ? 0 : u64Field(ser.pos, MEMFD_MAX_BYTES, MEMFD_V2_COMPATIBLE, serPhys + MEMFD_V2_SER_POS_OFFSET, "pos-range", "EOVERFLOW");
    const size = u64Field(ser.size, MEMFD_MAX_BYTES, MEMFD_V2_COMPATIBLE, serPhys + MEMFD_V2_SER_SIZE_OFFSET, "size-range", "EOVERFLOW");
    const nrFolios = u64Field(ser.nrFolios, Number.MAX_SAFE_INTEGER, MEMFD_V2_COMPATIBLE, serPhys + MEMFD_V2_SER_NR_FOLIOS_OFFSET, "nr-folios", "EINVAL");
    const array = readFolioArray(machine.memory, serPhys + MEMFD_V2_SER_FOLIOS_OFFSET, nrFolios, context(serPhys));
    const plan = planFolioRestore(machine.incoming, array, serPhys, context(serPhys));

    // Commit: nothing below can fail on the record's account.
    const file = MemfdFile.create(machine, { name: "", flags: MFD_ALLOW_SEALING });
    file.addSeals(ser.seals);
    file.lseek(pos, SEEK_SET);
    file.restoreSize(size);
    commitFolioRestore(machine, plan, file);
    machine.incoming.restoreFree(serPhys);
    args.file = file;
  }

  /** `memfd_luo_finish`: clean up a file that was never retrieved (or whose retrieve failed). */
  finish(args: FileOpArgs): void {
    if (args.retrieveStatus > 0) return;
    const machine = args.machine;
    const record = incomingRecord(machine, args.serializedData);
    if (record === undefined) return;
    const { serPhys, ser } = record;
    if (ser.nrFolios !== 0n && ser.nrFolios <= BigInt(Number.MAX_SAFE_INTEGER)) {
      discardFolioArray(machine, serPhys + MEMFD_V2_SER_FOLIOS_OFFSET, Number(ser.nrFolios), context(serPhys));
    }
    machine.incoming.restoreFree(serPhys);
  }
}

/** A ready `memfd-v2` handler to register in a kernel. */
export const memfdV2: MemfdV2Handler = new MemfdV2Handler();
