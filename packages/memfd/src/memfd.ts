/**
 * The memfd model: an unlinked shmem file (`memfd_create`) whose page cache lives in a
 * simulated machine's physical pages, with the behaviour of Linux 7.2's `mm/memfd.c` and
 * `mm/shmem.c` that a live update can observe.
 *
 * State of one file (one inode and its one open file description):
 *
 * ```text
 * kind      "memfd"   unlinked shmem (memfd_create, or shmem_file_setup for a restored v1 file)
 *           "hugetlb" memfd_create(MFD_HUGETLB): hugetlbfs, not shmem   -> no LUO handler takes it
 *           "tmpfs"   a named tmpfs file (i_nlink 1 until unlink())      -> no LUO handler takes it
 * size      i_size; pos: f_pos; mode: i_mode (0777, exec bits cleared by MFD_NOEXEC_SEAL)
 * seals     F_SEAL_*; F_SEAL_SEAL from the start unless MFD_ALLOW_SEALING / MFD_NOEXEC_SEAL
 * frozen    SHMEM_F_MAPPING_FROZEN, set by a LUO preserve, cleared by unpreserve
 * pins      folio pins held by a LUO preservation (memfd_pin_folios)
 * maps      shared writable mappings (i_mmap_writable)
 * cache     PageCache: index -> folio (order 0..9) in machine.memory, flags DIRTY / UPTODATE
 * ```
 *
 * The rules, each with the errno Linux returns:
 *
 * | operation | refused when | errno |
 * |---|---|---|
 * | `addSeals` | unknown bit / `F_SEAL_SEAL` already set / adding `F_SEAL_WRITE` with writable maps or pins | `EINVAL` / `EPERM` / `EBUSY` |
 * | `addSeals(F_SEAL_EXEC)` on a file with exec bits | adds `SHRINK | GROW | WRITE | FUTURE_WRITE` too (W^X) | — |
 * | `pwrite` | `F_SEAL_WRITE`/`FUTURE_WRITE`; past EOF with `F_SEAL_GROW` or while frozen (short write if some bytes went) | `EPERM` |
 * | `truncate` | shrink with `F_SEAL_SHRINK`, grow with `F_SEAL_GROW`, any size change while frozen | `EPERM` |
 * | `fallocate` | frozen (any mode); past EOF with `F_SEAL_GROW`; punch with `F_SEAL_WRITE`/`FUTURE_WRITE` | `EPERM` |
 * | `chmod` | changing exec bits with `F_SEAL_EXEC` | `EPERM` |
 * | `mmap(shared, writable)` | `F_SEAL_WRITE`/`FUTURE_WRITE` | `EPERM` |
 * | `lseek(SEEK_DATA/HOLE)` | offset at or past EOF, or no data after it | `ENXIO` |
 *
 * Folios come from `machine.kho.allocFolio` (zeroed) and go back with `freeFolio`. Reads of
 * a hole or of a folio that is not UPTODATE (fallocated, never written) return zeros, as
 * shmem's do. Large folios follow the file's THP policy (`huge`, `hugeOrders`), as
 * `shmem_enabled` does: `"never"` (order 0), `"always"` (the largest enabled order whose
 * aligned block is free), `"within_size"` (the same, only if the block ends within
 * `max(i_size, write end)`). Writes go in chunks of the largest folio size, as
 * `generic_perform_write` does (4 KiB without THP, 2 MiB with).
 *
 * Differences from Linux, on purpose: sizes and offsets stay below {@link MEMFD_MAX_BYTES}
 * (2^52; the kernel's limit is 2^63 - 1); a large folio cut by truncate or punch-hole is
 * kept whole with the cut part zeroed (the kernel splits it and zeroes when it cannot); a
 * 1 GiB hugetlb page cannot be allocated (`ENOMEM`).
 */
import { MAX_PAGE_ORDER, PAGE_SIZE, type Machine } from "@liveupdate/kho";
import { FOLIO_DIRTY, FOLIO_UPTODATE, MAX_FOLIO_ORDER, PageCache, type CachedFolio } from "./page-cache.js";
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_SUPPORTED_MASK,
  F_ALL_SEALS,
  F_SEAL_EXEC,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MEMFD_DEFAULT_MODE,
  MEMFD_MAX_BYTES,
  MFD_ALLOW_SEALING,
  MFD_ALL_FLAGS,
  MFD_EXEC,
  MFD_HUGETLB,
  MFD_HUGE_MASK,
  MFD_HUGE_SHIFT,
  MFD_NAME_MAX_LEN,
  MFD_NOEXEC_SEAL,
  SEEK_CUR,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
  memfdError,
} from "./uapi.js";

/** What kind of shmem-like file: see the module comment. */
export type ShmemFileKind = "memfd" | "hugetlb" | "tmpfs";

/** The file's transparent-huge-page policy (`shmem_enabled` / the `huge=` mount option). */
export type ShmemHugePolicy = "never" | "always" | "within_size";

/** Options of {@link createMemfd}: `memfd_create(name, flags)` plus the kernel's settings. */
export interface MemfdCreateOptions {
  /** The name shown as `memfd:<name>` (at most 249 bytes). */
  readonly name: string;
  /** `MFD_*` flags (default 0; `MFD_EXEC` is implied, as with `vm.memfd_noexec = 0`). */
  readonly flags?: number;
  /** THP policy of the file's folios (default `"never"`). Ignored for hugetlb. */
  readonly huge?: ShmemHugePolicy;
  /**
   * Folio orders (1..9) the policy may use, like the per-size `hugepages-<size>kB/shmem_enabled`
   * knobs (default `[9]`: PMD-sized THP only). `[9, 8, ..., 1]` gives the mixed orders of
   * multi-size THP.
   */
  readonly hugeOrders?: readonly number[];
  /**
   * `F_ALL_SEALS` of the kernel the file lives in (default: Linux 7.2's six seals). A newer
   * kernel may know more; a handler must refuse seals it cannot carry.
   */
  readonly knownSeals?: number;
}

/** Options of {@link createTmpfsFile}. */
export interface TmpfsFileOptions {
  /** Its path in the tmpfs mount. */
  readonly path: string;
  /** THP policy (default `"never"`), as for a memfd. */
  readonly huge?: ShmemHugePolicy;
  /** Folio orders the THP policy may use (default `[9]`). */
  readonly hugeOrders?: readonly number[];
}

/** Options of {@link MemfdFile.mmap}. */
export interface MmapOptions {
  /** `MAP_SHARED` (default) or `MAP_PRIVATE`. */
  readonly shared?: boolean;
  /** `PROT_WRITE` (default true). */
  readonly writable?: boolean;
}

/** A mapping of the file (only what sealing needs: whether it is shared and writable). */
export interface MemfdMapping {
  /** `MAP_SHARED`. */
  readonly shared: boolean;
  /** `PROT_WRITE`. */
  readonly writable: boolean;
  /** `munmap`. A second call does nothing. */
  unmap(): void;
}

/**
 * The folios a LUO preservation pinned (`memfd_pin_folios(file, 0, size - 1)`): every folio
 * holding a page of `[0, size)`, each once, ascending by index; struct-of-arrays.
 */
export interface PinnedFolios {
  /** Number of folios pinned. */
  readonly count: number;
  /** Physical address of each folio. */
  readonly phys: Float64Array;
  /** Page index of each folio's first page. */
  readonly indices: Float64Array;
  /** Order of each folio. */
  readonly orders: Uint8Array;
  /** `FOLIO_DIRTY` | `FOLIO_UPTODATE` of each folio at pin time (updated by {@link MemfdFile.markFoliosPreserved}). */
  readonly flags: Uint8Array;
}

const PMD_BYTES = PAGE_SIZE << MAX_FOLIO_ORDER;
const MAX_PAGES = MEMFD_MAX_BYTES / PAGE_SIZE;
const DEFAULT_HUGE_ORDERS: readonly number[] = [MAX_FOLIO_ORDER];
const HUGETLB_DEFAULT_SHIFT = 21;
const NAME_ENCODER = new TextEncoder();

/** `get_next_ino`, per machine (inode numbers identify files in `getId`). */
const nextInode = new WeakMap<Machine, number>();

function allocInode(machine: Machine): number {
  const ino = nextInode.get(machine) ?? 1;
  nextInode.set(machine, ino + 1);
  return ino;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function checkHugeOrders(orders: readonly number[] | undefined): readonly number[] {
  if (orders === undefined) return DEFAULT_HUGE_ORDERS;
  for (const o of orders) {
    if (!Number.isInteger(o) || o < 1 || o > MAX_FOLIO_ORDER) throw memfdError("EINVAL", `huge folio order ${o} is outside 1..${MAX_FOLIO_ORDER}`);
  }
  return [...new Set(orders)].sort((a, b) => b - a);
}

interface FileParts {
  readonly machine: Machine;
  /** What kind of file: see the module comment. */
  readonly kind: ShmemFileKind;
  readonly name: string;
  readonly nlink: number;
  readonly mode: number;
  readonly seals: number;
  readonly knownSeals: number;
  readonly huge: ShmemHugePolicy;
  readonly hugeOrders: readonly number[];
  readonly hugetlbOrder: number;
}

/** One memfd / shmem file. See the module comment. Implements luo-core's `LuoFile`. */
export class MemfdFile {
  /** The kernel (boot) the file lives in. */
  readonly machine: Machine;
  /** What kind of file: see the module comment. */
  readonly kind: ShmemFileKind;
  /** The name given at creation (`memfd:<name>`), or the tmpfs path. */
  readonly name: string;
  /** The inode number: the file's identity (`get_id`). */
  readonly inode: number;
  /** THP policy of the file. */
  readonly huge: ShmemHugePolicy;
  /** Orders the THP policy may use, largest first. */
  readonly hugeOrders: readonly number[];
  /** `F_ALL_SEALS` of this file's kernel. */
  readonly knownSeals: number;
  readonly #cache = new PageCache();
  readonly #hugetlbOrder: number;
  #nlink: number;
  #mode: number;
  #size = 0;
  #pos = 0;
  #seals: number;
  #frozen = false;
  #pins = 0;
  #writableMaps = 0;

  private constructor(parts: FileParts) {
    this.machine = parts.machine;
    this.kind = parts.kind;
    this.name = parts.name;
    this.inode = allocInode(parts.machine);
    this.#nlink = parts.nlink;
    this.#mode = parts.mode;
    this.#seals = parts.seals;
    this.knownSeals = parts.knownSeals;
    this.huge = parts.huge;
    this.hugeOrders = parts.hugeOrders;
    this.#hugetlbOrder = parts.hugetlbOrder;
  }

  /** `memfd_create`. See {@link createMemfd}. */
  static create(machine: Machine, options: MemfdCreateOptions): MemfdFile {
    const flags = options.flags ?? 0;
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff_ffff) throw memfdError("EINVAL", `flags ${String(flags)} are not a u32`);
    const hugetlb = (flags & MFD_HUGETLB) !== 0;
    const allowed = hugetlb ? MFD_ALL_FLAGS | (MFD_HUGE_MASK << MFD_HUGE_SHIFT) : MFD_ALL_FLAGS;
    if ((flags & ~allowed) !== 0) throw memfdError("EINVAL", `unknown memfd_create flags ${hex(flags & ~allowed)}`);
    if ((flags & MFD_EXEC) !== 0 && (flags & MFD_NOEXEC_SEAL) !== 0) throw memfdError("EINVAL", "MFD_EXEC and MFD_NOEXEC_SEAL together");
    const nameBytes = NAME_ENCODER.encode(options.name).length;
    if (nameBytes > MFD_NAME_MAX_LEN) throw memfdError("EINVAL", `name of ${nameBytes} bytes is longer than ${MFD_NAME_MAX_LEN}`);
    if (options.name.includes("\0")) throw memfdError("EINVAL", "name holds a NUL");
    const knownSeals = options.knownSeals ?? F_ALL_SEALS;
    if (!Number.isInteger(knownSeals) || knownSeals < 0 || knownSeals > 0xffff_ffff) throw memfdError("EINVAL", "knownSeals is not a u32 mask");

    let hugetlbOrder = 0;
    if (hugetlb) {
      const shift = (flags >>> MFD_HUGE_SHIFT) & MFD_HUGE_MASK;
      const pageShift = shift === 0 ? HUGETLB_DEFAULT_SHIFT : shift;
      // x86-64 hstates: 2 MiB and 1 GiB.
      if (pageShift !== 21 && pageShift !== 30) throw memfdError("EINVAL", `no hugetlb page size of 2^${pageShift} bytes`);
      hugetlbOrder = pageShift - 12;
    }
    // memfd_alloc_file: NOEXEC_SEAL clears the exec bits and sets F_SEAL_EXEC; either flag drops F_SEAL_SEAL.
    let seals = F_SEAL_SEAL;
    let mode = MEMFD_DEFAULT_MODE;
    if ((flags & MFD_NOEXEC_SEAL) !== 0) {
      mode &= ~0o111;
      seals = F_SEAL_EXEC;
    } else if ((flags & MFD_ALLOW_SEALING) !== 0) {
      seals = 0;
    }
    return new MemfdFile({
      machine,
      kind: hugetlb ? "hugetlb" : "memfd",
      name: options.name,
      nlink: 0,
      mode,
      seals,
      knownSeals,
      huge: hugetlb ? "never" : options.huge ?? "never",
      hugeOrders: checkHugeOrders(options.hugeOrders),
      hugetlbOrder,
    });
  }

  /**
   * `shmem_file_setup(name, 0, VM_NORESERVE)`: an unlinked shmem file made by the kernel
   * itself (what the 6.19 memfd handler retrieves into): mode 0777 and `F_SEAL_SEAL`, so it
   * takes no seals.
   */
  static createShmemFile(machine: Machine, name: string): MemfdFile {
    return new MemfdFile({
      machine,
      kind: "memfd",
      name,
      nlink: 0,
      mode: MEMFD_DEFAULT_MODE,
      seals: F_SEAL_SEAL,
      knownSeals: F_ALL_SEALS,
      huge: "never",
      hugeOrders: DEFAULT_HUGE_ORDERS,
      hugetlbOrder: 0,
    });
  }

  /** A named tmpfs file (`open(O_CREAT)` on a tmpfs mount). See {@link createTmpfsFile}. */
  static createTmpfs(machine: Machine, options: TmpfsFileOptions): MemfdFile {
    if (options.path === "" || options.path.includes("\0")) throw memfdError("EINVAL", "a tmpfs path is a non-empty string without NUL");
    return new MemfdFile({
      machine,
      kind: "tmpfs",
      name: options.path,
      nlink: 1,
      mode: 0o644,
      seals: F_SEAL_SEAL,
      knownSeals: F_ALL_SEALS,
      huge: options.huge ?? "never",
      hugeOrders: checkHugeOrders(options.hugeOrders),
      hugetlbOrder: 0,
    });
  }

  // ---- identity ------------------------------------------------------------------------

  /** For messages: `memfd:<name>`, `memfd-hugetlb:<name>` or `tmpfs:<path>`. */
  get description(): string {
    return this.kind === "tmpfs" ? `tmpfs:${this.name}` : this.kind === "hugetlb" ? `memfd-hugetlb:${this.name}` : `memfd:${this.name}`;
  }

  /** Whether the file lives in shmem (memfds and tmpfs files; not hugetlbfs): `shmem_file()`. */
  get isShmem(): boolean {
    return this.kind !== "hugetlb";
  }

  /** `i_nlink`: 0 for memfds, 1 for a tmpfs file until {@link MemfdFile.unlink}. */
  get linkCount(): number {
    return this.#nlink;
  }

  /** `unlink(2)` of a tmpfs file: it stays open, now unlinked. */
  unlink(): void {
    if (this.kind !== "tmpfs" || this.#nlink === 0) throw memfdError("ENOENT", `${this.description} has no name to unlink`);
    this.#nlink = 0;
  }

  /** `i_mode & 07777`. */
  get mode(): number {
    return this.#mode;
  }

  // ---- size, position, contents --------------------------------------------------------

  /** `i_size` in bytes. */
  get size(): number {
    return this.#size;
  }

  /** `f_pos`. */
  get position(): number {
    return this.#pos;
  }

  /** Pages held by the page cache (`st_blocks / 8`). */
  get allocatedPages(): number {
    return this.#cache.pageCount;
  }

  /** Folios in the page cache. */
  get folioCount(): number {
    return this.#cache.folioCount;
  }

  /** Every folio of the page cache, ascending by index (for inspection and tests). */
  folios(): CachedFolio[] {
    const out: CachedFolio[] = [];
    this.#cache.forEach(0, MAX_PAGES, (index, phys, order, flags) => out.push({ index, phys, order, flags }));
    return out;
  }

  /** `pread`: up to `length` bytes at `offset` (fewer at EOF). Holes read as zeros. */
  pread(offset: number, length: number): Uint8Array {
    checkOffset(offset, "pread");
    if (!Number.isSafeInteger(length) || length < 0) throw memfdError("EINVAL", `pread length ${String(length)}`);
    const n = offset >= this.#size ? 0 : Math.min(length, this.#size - offset);
    const out = new Uint8Array(n);
    this.#readInto(offset, out);
    return out;
  }

  /** `read`: from the file position, which advances. */
  read(length: number): Uint8Array {
    const out = this.pread(this.#pos, length);
    this.#pos += out.length;
    return out;
  }

  /**
   * `pwrite`: write `data` at `offset`, allocating folios as needed; returns the bytes
   * written (fewer than asked when a seal or the frozen state stops it past EOF after some
   * bytes went, or memory runs out part-way).
   *
   * @throws KernelError `EINVAL` (negative offset; hugetlbfs has no write), `EFBIG`, `EPERM`
   *   (seals, frozen), `ENOMEM`.
   */
  pwrite(offset: number, data: Uint8Array): number {
    checkOffset(offset, "pwrite");
    if (this.kind === "hugetlb") throw memfdError("EINVAL", "hugetlbfs files cannot be written with write(2)");
    if (data.length === 0) return 0;
    if (offset >= MEMFD_MAX_BYTES) throw memfdError("EFBIG", `write at ${offset} is past the largest file size`);
    const count = Math.min(data.length, MEMFD_MAX_BYTES - offset);
    const chunkBytes = this.huge === "never" ? PAGE_SIZE : PMD_BYTES;
    let done = 0;
    while (done < count) {
      const pos = offset + done;
      const bytes = Math.min(chunkBytes - (pos % chunkBytes), count - done);
      // shmem_write_begin, per chunk.
      let refusal: string | undefined;
      if ((this.#seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) !== 0) refusal = "the file is sealed against writes";
      else if ((this.#seals & F_SEAL_GROW) !== 0 && pos + bytes > this.#size) refusal = "F_SEAL_GROW: the write would grow the file";
      else if (this.#frozen && pos + bytes > this.#size) refusal = "the file is preserved for a live update: it cannot grow";
      if (refusal !== undefined) {
        if (done > 0) return done;
        throw memfdError("EPERM", `${this.description}: ${refusal}`);
      }
      try {
        this.#writeChunk(pos, data.subarray(done, done + bytes));
      } catch (error) {
        if (done > 0) return done;
        throw error;
      }
      done += bytes;
      if (pos + bytes > this.#size) this.#size = pos + bytes;
    }
    return done;
  }

  /** `write`: at the file position, which advances by the bytes written. */
  write(data: Uint8Array): number {
    const n = this.pwrite(this.#pos, data);
    this.#pos += n;
    return n;
  }

  /**
   * `ftruncate`. Shrinking drops the folios past the new end and zeroes the rest of the last
   * page (any size at or below the old one also drops folios past EOF, as shmem does).
   *
   * @throws KernelError `EINVAL` (negative; hugetlb size not a multiple of its page),
   *   `EFBIG`, `EPERM` (`F_SEAL_SHRINK` / `F_SEAL_GROW`, or any size change while frozen).
   */
  truncate(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0) throw memfdError("EINVAL", `ftruncate to ${String(size)}`);
    if (size > MEMFD_MAX_BYTES) throw memfdError("EFBIG", `ftruncate to ${size} is past the largest file size`);
    if (this.kind === "hugetlb" && size % (PAGE_SIZE * 2 ** this.#hugetlbOrder) !== 0) {
      throw memfdError("EINVAL", `hugetlb size ${size} is not a multiple of the huge page size`);
    }
    const old = this.#size;
    if ((size < old && (this.#seals & F_SEAL_SHRINK) !== 0) || (size > old && (this.#seals & F_SEAL_GROW) !== 0)) {
      throw memfdError("EPERM", `${this.description}: sealed against ${size < old ? "shrinking" : "growing"}`);
    }
    if (size !== old && this.#frozen) throw memfdError("EPERM", `${this.description} is preserved for a live update: its size is frozen`);
    this.#size = size;
    if (size <= old) this.#truncateRange(size, MEMFD_MAX_BYTES);
  }

  /**
   * `fallocate(mode, offset, length)`: mode 0 or `FALLOC_FL_KEEP_SIZE` allocates folios
   * (not UPTODATE: they read as zeros) and, without KEEP_SIZE, grows the file;
   * `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` frees whole folios in the range and zeroes
   * partial ones. On `ENOMEM` the folios this call allocated are freed again.
   *
   * @throws KernelError `EINVAL`, `EOPNOTSUPP` (other modes, punch without KEEP_SIZE),
   *   `EFBIG`, `EPERM` (frozen; `F_SEAL_GROW` past EOF; punch with a write seal), `ENOMEM`.
   */
  fallocate(mode: number, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) {
      throw memfdError("EINVAL", `fallocate(${String(offset)}, ${String(length)})`);
    }
    if (!Number.isInteger(mode) || mode < 0 || (mode & ~FALLOC_FL_SUPPORTED_MASK) !== 0) throw memfdError("EOPNOTSUPP", `fallocate mode ${String(mode)}`);
    const punch = (mode & FALLOC_FL_PUNCH_HOLE) !== 0;
    if (punch && (mode & FALLOC_FL_KEEP_SIZE) === 0) throw memfdError("EOPNOTSUPP", "FALLOC_FL_PUNCH_HOLE needs FALLOC_FL_KEEP_SIZE");
    if (offset + length > MEMFD_MAX_BYTES) throw memfdError("EFBIG", `fallocate to ${offset + length} is past the largest file size`);
    if ((mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) !== 0) throw memfdError("EOPNOTSUPP", `shmem supports only KEEP_SIZE and PUNCH_HOLE (mode ${hex(mode)})`);
    if (this.#frozen) throw memfdError("EPERM", `${this.description} is preserved for a live update: fallocate is refused`);
    const end = offset + length;
    if (punch) {
      if ((this.#seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) !== 0) throw memfdError("EPERM", `${this.description}: sealed against writes (punch hole)`);
      this.#truncateRange(offset, end);
      return;
    }
    if ((this.#seals & F_SEAL_GROW) !== 0 && end > this.#size) throw memfdError("EPERM", `${this.description}: F_SEAL_GROW and fallocate past EOF`);
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.ceil(end / PAGE_SIZE);
    const added: number[] = [];
    try {
      for (let index = first; index < last; ) {
        let head = this.#cache.headOf(index);
        if (head < 0) {
          head = this.#allocFolio(index, end, 0);
          added.push(head);
        }
        // shmem_fallocate marks every folio of the range dirty (so reclaim keeps it).
        this.#cache.setFlags(head, this.#cache.flagsOf(head) | FOLIO_DIRTY);
        index = head + (1 << this.#cache.folioAt(head)!.order);
      }
    } catch (error) {
      for (const head of added) this.#freeFolioAt(head);
      throw error;
    }
    if ((mode & FALLOC_FL_KEEP_SIZE) === 0 && end > this.#size) this.#size = end;
  }

  /**
   * `lseek`. `SEEK_DATA` / `SEEK_HOLE` see folios that are UPTODATE as data and holes or
   * fallocated folios as holes (EOF is a hole).
   *
   * @throws KernelError `EINVAL` (bad whence, negative or too large result), `ENXIO`.
   */
  lseek(offset: number, whence: number): number {
    if (!Number.isSafeInteger(offset)) throw memfdError("EINVAL", `lseek offset ${String(offset)}`);
    let result: number;
    if (whence === SEEK_SET || whence === SEEK_CUR || whence === SEEK_END) {
      result = (whence === SEEK_SET ? 0 : whence === SEEK_CUR ? this.#pos : this.#size) + offset;
      if (result < 0 || result > MEMFD_MAX_BYTES) throw memfdError("EINVAL", `lseek to ${result}`);
    } else if (whence === SEEK_DATA || whence === SEEK_HOLE) {
      if (offset < 0 || offset >= this.#size) throw memfdError("ENXIO", `lseek(${offset}, SEEK_${whence === SEEK_DATA ? "DATA" : "HOLE"}) at or past EOF ${this.#size}`);
      result = whence === SEEK_DATA ? this.#seekData(offset) : this.#seekHole(offset);
    } else {
      throw memfdError("EINVAL", `lseek whence ${String(whence)}`);
    }
    this.#pos = result;
    return result;
  }

  // ---- seals, mode, mappings -----------------------------------------------------------

  /** `F_GET_SEALS`. */
  get seals(): number {
    return this.#seals;
  }

  /**
   * `F_ADD_SEALS` (`memfd_add_seals`).
   *
   * @throws KernelError `EINVAL` (a seal this kernel does not know), `EPERM` (`F_SEAL_SEAL`
   *   set), `EBUSY` (`F_SEAL_WRITE` while the file has shared writable mappings or pinned folios).
   */
  addSeals(seals: number): void {
    if (!Number.isInteger(seals) || seals < 0 || seals > 0xffff_ffff || (seals & ~this.knownSeals) !== 0) {
      throw memfdError("EINVAL", `unknown seals ${String(seals)}`);
    }
    if ((this.#seals & F_SEAL_SEAL) !== 0) throw memfdError("EPERM", `${this.description} is sealed against new seals (F_SEAL_SEAL)`);
    let add = seals;
    // SEAL_EXEC implies SEAL_WRITE (W^X from the start), before the write check.
    if ((add & F_SEAL_EXEC) !== 0 && (this.#mode & 0o111) !== 0) add |= F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
    if ((add & F_SEAL_WRITE) !== 0 && (this.#seals & F_SEAL_WRITE) === 0) {
      if (this.#writableMaps > 0) throw memfdError("EBUSY", `${this.description} has ${this.#writableMaps} shared writable mapping(s)`);
      if (this.#pins > 0) throw memfdError("EBUSY", `${this.description} has pinned folios (preserved for a live update)`);
    }
    this.#seals |= add;
  }

  /** `chmod`. @throws KernelError `EPERM` when `F_SEAL_EXEC` is set and the exec bits would change. */
  chmod(mode: number): void {
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw memfdError("EINVAL", `mode ${String(mode)}`);
    if ((this.#seals & F_SEAL_EXEC) !== 0 && ((mode ^ this.#mode) & 0o111) !== 0) throw memfdError("EPERM", `${this.description}: F_SEAL_EXEC forbids changing the exec bits`);
    this.#mode = mode;
  }

  /** `mmap`: only what seals interact with. @throws KernelError `EPERM` (shared writable on a write-sealed file). */
  mmap(options: MmapOptions = {}): MemfdMapping {
    const shared = options.shared ?? true;
    const writable = options.writable ?? true;
    const counts = shared && writable;
    if (counts && (this.#seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) !== 0) throw memfdError("EPERM", `${this.description} is sealed against writes`);
    if (counts) this.#writableMaps++;
    let mapped = true;
    return {
      shared,
      writable,
      unmap: () => {
        if (!mapped) return;
        mapped = false;
        if (counts) this.#writableMaps--;
      },
    };
  }

  // ---- what a LUO handler uses ---------------------------------------------------------

  /** `SHMEM_F_MAPPING_FROZEN`: set while the file is preserved for a live update. */
  get mappingFrozen(): boolean {
    return this.#frozen;
  }

  /** `shmem_freeze(inode, frozen)`. */
  freezeMapping(frozen: boolean): void {
    this.#frozen = frozen;
  }

  /** Number of outstanding {@link MemfdFile.pinFolios} calls. */
  get pinCount(): number {
    return this.#pins;
  }

  /**
   * `memfd_pin_folios(file, 0, size - 1)`: allocate a folio for every hole of `[0, size)`
   * (zeroed, UPTODATE, not dirty; large if the THP policy says so), then pin and list every
   * folio of the range. A file of size 0 pins nothing. On `ENOMEM` the folios allocated so
   * far stay in the page cache (as in the kernel) and nothing is pinned.
   */
  pinFolios(): PinnedFolios {
    const pages = Math.ceil(this.#size / PAGE_SIZE);
    const cache = this.#cache;
    // The holes of [0, pages): the gaps between the cached folios (found first, filled after).
    const gaps: number[] = [];
    let end = 0;
    cache.forEach(0, pages, (index, _phys, order) => {
      if (index > end) gaps.push(end, index);
      end = index + (1 << order);
    });
    if (end < pages) gaps.push(end, pages);
    for (let g = 0; g < gaps.length; g += 2) {
      for (let index = gaps[g]!; index < gaps[g + 1]!; ) {
        const head = this.#allocFolio(index, 0, FOLIO_UPTODATE);
        index = head + (1 << cache.orderAt(head));
      }
    }
    const capacity = cache.folioCount;
    const phys = new Float64Array(capacity);
    const indices = new Float64Array(capacity);
    const orders = new Uint8Array(capacity);
    const flags = new Uint8Array(capacity);
    let count = 0;
    cache.forEach(0, pages, (index, p, order, f) => {
      phys[count] = p;
      indices[count] = index;
      orders[count] = order;
      flags[count++] = f;
    });
    this.#pins++;
    return { count, phys: phys.subarray(0, count), indices: indices.subarray(0, count), orders: orders.subarray(0, count), flags: flags.subarray(0, count) };
  }

  /** `unpin_folios`: drop one {@link MemfdFile.pinFolios}. */
  unpinFolios(): void {
    if (this.#pins === 0) throw memfdError("EINVAL", `${this.description} has no pinned folios`);
    this.#pins--;
  }

  /**
   * What Linux 7.2 does to each pinned folio it preserves: zero a folio that is not
   * UPTODATE, then mark it DIRTY and UPTODATE (in the page cache and in `pinned.flags`).
   * Zeroing goes by physically contiguous runs.
   */
  markFoliosPreserved(pinned: PinnedFolios): void {
    const memory = this.machine.memory;
    const { count, phys: physOf, orders, flags } = pinned;
    let runStart = -1;
    let runEnd = -1;
    for (let i = 0; i < count; i++) {
      if ((flags[i]! & FOLIO_UPTODATE) !== 0) continue;
      const phys = physOf[i]!;
      if (phys !== runEnd) {
        if (runStart >= 0) memory.zero(runStart, runEnd - runStart);
        runStart = phys;
      }
      runEnd = phys + (PAGE_SIZE << orders[i]!);
    }
    if (runStart >= 0) memory.zero(runStart, runEnd - runStart);
    flags.fill(FOLIO_DIRTY | FOLIO_UPTODATE);
    this.#cache.orFlags(0, Math.ceil(this.#size / PAGE_SIZE), FOLIO_DIRTY | FOLIO_UPTODATE);
  }

  /**
   * `shmem_add_to_page_cache` of a restored folio (retrieve in the next kernel): `2^order`
   * pages at `phys` become pages `[index, index + 2^order)` with `flags` (DIRTY / UPTODATE).
   * The folio now belongs to the file (truncate frees it).
   *
   * @throws KernelError `EINVAL` (order beyond 9, index not aligned to it or past the model's
   *   largest file), `EEXIST` (a page of the range is already cached).
   */
  insertFolio(index: number, phys: number, order: number, flags: number): void {
    if (!Number.isInteger(order) || order < 0 || order > MAX_FOLIO_ORDER) throw memfdError("EINVAL", `folio order ${String(order)} is not 0..${MAX_FOLIO_ORDER}`);
    const span = 2 ** order;
    if (!Number.isSafeInteger(index) || index < 0 || index % span !== 0 || index + span > MAX_PAGES) {
      throw memfdError("EINVAL", `folio index ${String(index)} is not an order-${order} aligned page offset of a file`);
    }
    if (!this.#cache.insert(index, phys, order, flags & (FOLIO_DIRTY | FOLIO_UPTODATE))) throw memfdError("EEXIST", `${this.description}: page ${index} is already cached`);
  }

  /**
   * `i_size_write` by a retrieve: set the size with no seal or frozen check (folios are
   * left as they are). @throws KernelError `EFBIG` beyond the model's largest file.
   */
  restoreSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > MEMFD_MAX_BYTES) throw memfdError("EFBIG", `size ${String(size)} is beyond the model's largest file`);
    this.#size = size;
  }

  // ---- internals -----------------------------------------------------------------------

  #readInto(offset: number, out: Uint8Array): void {
    const memory = this.machine.memory;
    let done = 0;
    while (done < out.length) {
      const at = offset + done;
      const index = Math.floor(at / PAGE_SIZE);
      const head = this.#cache.headOf(index);
      if (head < 0) {
        done += Math.min(PAGE_SIZE - (at % PAGE_SIZE), out.length - done); // hole: stays zero
        continue;
      }
      const folio = this.#cache.folioAt(head)!;
      const folioEnd = (head + (1 << folio.order)) * PAGE_SIZE;
      const n = Math.min(folioEnd - at, out.length - done);
      if ((folio.flags & FOLIO_UPTODATE) !== 0) memory.readInto(folio.phys + (at - head * PAGE_SIZE), out.subarray(done, done + n));
      done += n;
    }
  }

  /** Write `src` at `pos` (one write chunk): allocate missing folios, initialise non-UPTODATE ones. */
  #writeChunk(pos: number, src: Uint8Array): void {
    const memory = this.machine.memory;
    const writeEnd = pos + src.length;
    let done = 0;
    while (done < src.length) {
      const at = pos + done;
      const index = Math.floor(at / PAGE_SIZE);
      let head = this.#cache.headOf(index);
      if (head < 0) head = this.#allocFolio(index, writeEnd, 0);
      const folio = this.#cache.folioAt(head)!;
      const folioBytes = PAGE_SIZE << folio.order;
      // A folio that is not UPTODATE (new, fallocated, restored without the flag) reads as
      // zeros: make its memory say so before part of it becomes data.
      if ((folio.flags & FOLIO_UPTODATE) === 0) memory.zero(folio.phys, folioBytes);
      const n = Math.min(head * PAGE_SIZE + folioBytes - at, src.length - done);
      memory.write(folio.phys + (at - head * PAGE_SIZE), src.subarray(done, done + n));
      this.#cache.setFlags(head, folio.flags | FOLIO_DIRTY | FOLIO_UPTODATE);
      done += n;
    }
  }

  /**
   * Allocate and cache the folio for page `index` following the THP policy (falling back
   * to smaller orders when a large folio cannot be had); returns its head index.
   * @throws KernelError `ENOMEM`.
   */
  #allocFolio(index: number, writeEnd: number, flags: number): number {
    if (index >= MAX_PAGES) throw memfdError("EFBIG", `page ${index} is past the largest file`);
    const kho = this.machine.kho;
    if (this.kind === "hugetlb") {
      const order = this.#hugetlbOrder;
      if (order > MAX_FOLIO_ORDER || order > MAX_PAGE_ORDER) throw memfdError("ENOMEM", "the model has no gigantic (1 GiB) hugetlb pages");
      const head = index - (index % 2 ** order);
      this.#put(head, kho.allocFolio(order), order, flags);
      return head;
    }
    if (this.huge !== "never") {
      const sizePages = Math.ceil(Math.max(this.#size, writeEnd) / PAGE_SIZE);
      for (const order of this.hugeOrders) {
        const span = 2 ** order;
        const head = index - (index % span);
        // within_size: the aligned block must end within max(i_size, write end).
        if (this.huge === "within_size" && Math.ceil((index + 1) / span) * span > sizePages) continue;
        if (head + span > MAX_PAGES || !this.#cache.isEmpty(head, span)) continue;
        let phys: number;
        try {
          phys = kho.allocFolio(order);
        } catch (error) {
          if (error instanceof Error && (error as { errno?: string }).errno === "ENOMEM") continue;
          throw error;
        }
        this.#put(head, phys, order, flags);
        return head;
      }
    }
    this.#put(index, kho.allocFolio(0), 0, flags);
    return index;
  }

  /** Cache a folio just allocated for a range known to be empty (freeing it if it was not). */
  #put(index: number, phys: number, order: number, flags: number): void {
    if (this.#cache.insert(index, phys, order, flags)) return;
    this.machine.kho.freeFolio(phys, order);
    throw memfdError("EEXIST", `${this.description}: page ${index} is already cached`);
  }

  #freeFolioAt(head: number): void {
    const folio = this.#cache.remove(head);
    if (folio !== undefined) this.machine.kho.freeFolio(folio.phys, folio.order);
  }

  /**
   * `shmem_undo_range` over bytes `[start, end)`: folios wholly inside are removed and
   * freed, the covered part of the others is zeroed.
   */
  #truncateRange(start: number, end: number): void {
    const heads: number[] = [];
    const partial: Array<{ phys: number; from: number; to: number }> = [];
    this.#cache.forEach(Math.floor(start / PAGE_SIZE), Math.ceil(end / PAGE_SIZE), (index, phys, order) => {
      const folioStart = index * PAGE_SIZE;
      const folioEnd = folioStart + PAGE_SIZE * 2 ** order;
      if (folioStart >= start && folioEnd <= end) heads.push(index);
      else partial.push({ phys, from: Math.max(start, folioStart) - folioStart, to: Math.min(end, folioEnd) - folioStart });
    });
    for (const head of heads) this.#freeFolioAt(head);
    for (const p of partial) this.machine.memory.zero(p.phys + p.from, p.to - p.from);
  }

  #seekData(offset: number): number {
    const page = this.#cache.findPage(Math.floor(offset / PAGE_SIZE), (flags) => (flags & FOLIO_UPTODATE) !== 0);
    if (page < 0 || page * PAGE_SIZE >= this.#size) throw memfdError("ENXIO", `no data at or after ${offset}`);
    return Math.max(offset, page * PAGE_SIZE);
  }

  #seekHole(offset: number): number {
    let index = Math.floor(offset / PAGE_SIZE);
    while (index * PAGE_SIZE < this.#size) {
      const head = this.#cache.headOf(index);
      if (head < 0) break;
      const folio = this.#cache.folioAt(head)!;
      if ((folio.flags & FOLIO_UPTODATE) === 0) break;
      index = head + 2 ** folio.order;
    }
    return Math.min(this.#size, Math.max(offset, index * PAGE_SIZE));
  }
}

function checkOffset(offset: number, what: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw memfdError("EINVAL", `${what} at offset ${String(offset)}`);
}

/**
 * `memfd_create(name, flags)` in `machine`'s kernel.
 *
 * @throws KernelError `EINVAL`: unknown flags, `MFD_EXEC | MFD_NOEXEC_SEAL`, a name longer
 *   than 249 bytes, an unsupported hugetlb page size.
 */
export function createMemfd(machine: Machine, options: MemfdCreateOptions): MemfdFile {
  return MemfdFile.create(machine, options);
}

/** A named (linked) tmpfs file: a shmem file no memfd handler takes until it is unlinked. */
export function createTmpfsFile(machine: Machine, options: TmpfsFileOptions): MemfdFile {
  return MemfdFile.createTmpfs(machine, options);
}

/** The model's `memfd_create` and friends, as in `memfd.create(machine, { name, flags })`. */
export const memfd: {
  readonly create: typeof createMemfd;
  readonly createTmpfsFile: typeof createTmpfsFile;
} = Object.freeze({ create: createMemfd, createTmpfsFile });
