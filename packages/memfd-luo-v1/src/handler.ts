/**
 * The `memfd-v1` file handler: Linux 6.19 `mm/memfd_luo.c` as a luo-core {@link FileHandler}.
 *
 * The whole lifecycle of one preserved memfd:
 *
 * ```text
 * outgoing kernel
 *   memfd --preserve--> PRESERVED    inode frozen (SHMEM_F_MAPPING_FROZEN: no grow, shrink,
 *                                    fallocate, punch); the 40-byte record allocated
 *                                    (kho_alloc_preserve); holes of [0, size) filled (zeroed,
 *                                    UPTODATE, clean); every folio pinned and
 *                                    kho_preserve_folio'd with its own order, its record
 *                                    carrying the folio's own DIRTY / UPTODATE flags; the folio
 *                                    array in a preserved kho_vmalloc; serializedData = record
 *                                    phys. Seals are neither checked nor recorded.
 *                                    Fails (undoing it all): EFBIG (more than 2^32 - 1 pages),
 *                                    ENOMEM, EINVAL.
 *   PRESERVED --freeze (kexec)--> FROZEN      record.pos = f_pos (the only field that can change)
 *   FROZEN --unfreeze (kexec aborted)--> PRESERVED   nothing to undo
 *   PRESERVED --unpreserve (session closed)--> memfd   everything above undone, inode unfrozen
 * next kernel
 *   RECORD --retrieve--> RETRIEVED   a new shmem file (shmem_file_setup("")): no seals carried
 *                                    over, and F_SEAL_SEAL set as on every kernel-made shmem
 *                                    file (so it takes no new seals either); pos and size
 *                                    restored; every folio in its page cache with the record's
 *                                    flags (a folio without UPTODATE reads as zeros until
 *                                    written); the array and the record page freed.
 *   RECORD --retrieve fails--> RECORD     unchanged: everything is validated before the first
 *                                    page is taken. EINVAL (no record, the array's kho_vmalloc
 *                                    is corrupt or not preserved, nr_folios beyond the array),
 *                                    EIO (a folio not preserved, outside memory, listed twice,
 *                                    or overlapping another), EEXIST (two folios for one page),
 *                                    EOVERFLOW (size or pos beyond the model's 2^52-byte files).
 *   RETRIEVED --finish--> done                nothing to do
 *   RECORD --finish (never retrieved, or its retrieve failed)--> the folios, the array and the
 *                                    record are restored and freed, best effort.
 * ```
 *
 * Differences from 6.19: a file of more than 2^32 - 1 pages is refused (`EFBIG`, as 7.x does)
 * where 6.19's `unsigned int` folio count silently preserved a prefix; hostile records are
 * refused before anything is restored (see `@liveupdate/memfd`'s folio-record rules).
 */
import { FormatError, KernelError, PAGE_SIZE, type Machine } from "@liveupdate/kho";
import type { FileHandler, FileOpArgs, LuoFile } from "@liveupdate/luo-core";
import {
  MEMFD_MAX_BYTES,
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
  MEMFD_V1_COMPATIBLE,
  MEMFD_V1_MAX_PAGES,
  MEMFD_V1_SER_FOLIOS_OFFSET,
  MEMFD_V1_SER_NR_FOLIOS_OFFSET,
  MEMFD_V1_SER_POS_OFFSET,
  MEMFD_V1_SER_SIZE,
  MEMFD_V1_SER_SIZE_OFFSET,
  decodeMemfdV1Ser,
  encodeMemfdV1Ser,
  type MemfdV1Ser,
} from "./abi.js";

/** What preserve keeps for unpreserve (the kernel's `private_data`: the vmap of the array). */
export interface MemfdV1PreservedState {
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
  return { format: MEMFD_V1_COMPATIBLE, nrFoliosAt: serPhys + MEMFD_V1_SER_NR_FOLIOS_OFFSET };
}

/** `serializedData` as a physical address (0 when it cannot be one). */
function serPhysOf(data: bigint): number {
  return data > 0n && data <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(data) : 0;
}

/** The record `data` points at in the next kernel, with its address; undefined when it is not a preserved record. */
function incomingRecord(machine: Machine, data: bigint): { serPhys: number; ser: MemfdV1Ser } | undefined {
  const serPhys = incomingRecordPhys(machine, data, MEMFD_V1_SER_SIZE);
  return serPhys === undefined ? undefined : { serPhys, ser: decodeMemfdV1Ser(machine.memory.read(serPhys, MEMFD_V1_SER_SIZE)) };
}

/** The `memfd-v1` handler. See the module comment; {@link memfdV1} is a ready instance. */
export class MemfdV1Handler implements FileHandler {
  /** `"memfd-v1"`. */
  readonly compatible: string = MEMFD_V1_COMPATIBLE;

  /** `memfd_luo_can_preserve`: shmem files with no name left (memfds). Not hugetlb, not linked tmpfs files. */
  canPreserve(file: LuoFile): boolean {
    return file instanceof MemfdFile && file.isShmem && file.linkCount === 0;
  }

  /** The inode (6.19's LUO compared files themselves; the identity is the same). */
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
      serPhys = kho.allocPreserve(MEMFD_V1_SER_SIZE);
      const size = file.size;
      if (Math.ceil(size / PAGE_SIZE) > MEMFD_V1_MAX_PAGES) throw memfdError("EFBIG", `${file.description}: ${size} bytes is more than 2^32 - 1 pages`);
      const folios = preserveMemfdFolios(file, kho, { markDirtyUptodate: false });
      const record = encodeMemfdV1Ser({ pos: BigInt(file.position), size: BigInt(size), nrFolios: BigInt(folios.nrFolios), folios: folios.descriptor });
      kho.memory.write(serPhys, record);
      const state: MemfdV1PreservedState = { file, serPhys, folios };
      args.privateData = state;
      args.serializedData = BigInt(serPhys);
    } catch (error) {
      if (serPhys !== 0) kho.unpreserveFree(serPhys, MEMFD_V1_SER_SIZE);
      file.freezeMapping(false);
      throw error;
    }
  }

  /** `memfd_luo_freeze`: the position may have moved since preserve. */
  freeze(args: FileOpArgs): void {
    const serPhys = serPhysOf(args.serializedData);
    if (serPhys === 0) throw new KernelError("EINVAL", "freeze of a memfd that was not preserved");
    args.machine.memory.writeU64(serPhys + MEMFD_V1_SER_POS_OFFSET, memfdOf(args.file).position);
  }

  /** Nothing to undo: freeze only refreshed `pos` (the kernel's handler has no unfreeze). */
  unfreeze(): void {
    // intentionally empty
  }

  /** `memfd_luo_unpreserve`: undo preserve (the session was closed before a kexec). */
  unpreserve(args: FileOpArgs): void {
    const state = args.privateData as MemfdV1PreservedState | undefined;
    if (serPhysOf(args.serializedData) === 0 || state === undefined) return;
    const kho = args.machine.kho;
    state.file.freezeMapping(false);
    unpreserveMemfdFolios(state.file, kho, state.folios);
    kho.unpreserveFree(state.serPhys, MEMFD_V1_SER_SIZE);
  }

  /** `memfd_luo_retrieve`: validate the record, then rebuild the file (RETRIEVED). */
  retrieve(args: FileOpArgs): void {
    const machine = args.machine;
    const record = incomingRecord(machine, args.serializedData);
    if (record === undefined) {
      throw new FormatError(MEMFD_V1_COMPATIBLE, serPhysOf(args.serializedData), "phys", "ser-not-preserved", `no preserved memfd_luo_ser at ${args.serializedData.toString()}`);
    }
    const { serPhys, ser } = record;
    // Validate everything before anything is restored.
    const pos = ser.pos > MAX_LFS_FILESIZE ? 0 : u64Field(ser.pos, MEMFD_MAX_BYTES, MEMFD_V1_COMPATIBLE, serPhys + MEMFD_V1_SER_POS_OFFSET, "pos-range", "EOVERFLOW");
    const size = u64Field(ser.size, MEMFD_MAX_BYTES, MEMFD_V1_COMPATIBLE, serPhys + MEMFD_V1_SER_SIZE_OFFSET, "size-range", "EOVERFLOW");
    const nrFolios = u64Field(ser.nrFolios, Number.MAX_SAFE_INTEGER, MEMFD_V1_COMPATIBLE, serPhys + MEMFD_V1_SER_NR_FOLIOS_OFFSET, "nr-folios", "EINVAL");
    const array = readFolioArray(machine.memory, serPhys + MEMFD_V1_SER_FOLIOS_OFFSET, nrFolios, context(serPhys));
    const plan = planFolioRestore(machine.incoming, array, serPhys, context(serPhys));

    // Commit: nothing below can fail on the record's account.
    const file = MemfdFile.createShmemFile(machine, "");
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
      discardFolioArray(machine, serPhys + MEMFD_V1_SER_FOLIOS_OFFSET, Number(ser.nrFolios), context(serPhys));
    }
    machine.incoming.restoreFree(serPhys);
  }
}

/** A ready `memfd-v1` handler to register in a kernel. */
export const memfdV1: MemfdV1Handler = new MemfdV1Handler();
