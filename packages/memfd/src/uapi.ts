/**
 * The user-visible constants of memfds and shmem files (Linux uAPI `linux/memfd.h`,
 * `linux/fcntl.h`, `linux/falloc.h`, `linux/fs.h`), the limits the model keeps, and the
 * errno names the model needs beyond `@liveupdate/kho`'s table.
 *
 * ```text
 * memfd_create flags   CLOEXEC 0x1 | ALLOW_SEALING 0x2 | HUGETLB 0x4 | NOEXEC_SEAL 0x8 | EXEC 0x10
 *                      hugetlb page size: log2(size) << 26 (6 bits); 0 = the default (2 MiB)
 * F_SEAL_*             SEAL 0x1 | SHRINK 0x2 | GROW 0x4 | WRITE 0x8 | FUTURE_WRITE 0x10 | EXEC 0x20
 * fallocate modes      KEEP_SIZE 0x1 | PUNCH_HOLE 0x2 (the only two shmem supports)
 * lseek whence         SET 0 | CUR 1 | END 2 | DATA 3 | HOLE 4
 * ```
 */
import { ERRNO, KernelError, type Errno } from "@liveupdate/kho";

/** `MFD_CLOEXEC`: not preserved across a live update (must be set again). */
export const MFD_CLOEXEC = 0x1;
/** `MFD_ALLOW_SEALING`: the memfd starts without `F_SEAL_SEAL`, so seals can be added. */
export const MFD_ALLOW_SEALING = 0x2;
/** `MFD_HUGETLB`: a hugetlbfs file instead of shmem (no LUO handler accepts it). */
export const MFD_HUGETLB = 0x4;
/** `MFD_NOEXEC_SEAL`: mode loses its exec bits and `F_SEAL_EXEC` is set (implies sealing allowed). */
export const MFD_NOEXEC_SEAL = 0x8;
/** `MFD_EXEC`: executable (the default with `vm.memfd_noexec = 0`). */
export const MFD_EXEC = 0x10;
/** Every flag bit `memfd_create` knows besides the hugetlb page size. */
export const MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
/** Shift of the hugetlb page-size field (`log2(bytes)`), 6 bits wide. */
export const MFD_HUGE_SHIFT = 26;
/** Width mask of the hugetlb page-size field. */
export const MFD_HUGE_MASK = 0x3f;
/** `MFD_HUGE_2MB`: 2 MiB hugetlb pages (the default size). */
export const MFD_HUGE_2MB = 21 << MFD_HUGE_SHIFT;
/** `MFD_HUGE_1GB`: 1 GiB hugetlb pages. */
export const MFD_HUGE_1GB = 30 << MFD_HUGE_SHIFT;
/** `NAME_MAX - strlen("memfd:")`: longest memfd name (bytes, without the NUL). */
export const MFD_NAME_MAX_LEN = 249;

/** `F_SEAL_SEAL`: no further seals can be added. */
export const F_SEAL_SEAL = 0x1;
/** `F_SEAL_SHRINK`: the file cannot shrink. */
export const F_SEAL_SHRINK = 0x2;
/** `F_SEAL_GROW`: the file cannot grow. */
export const F_SEAL_GROW = 0x4;
/** `F_SEAL_WRITE`: no writes, no shared writable mappings. */
export const F_SEAL_WRITE = 0x8;
/** `F_SEAL_FUTURE_WRITE`: no new writes or writable shared mappings (existing ones stay). */
export const F_SEAL_FUTURE_WRITE = 0x10;
/** `F_SEAL_EXEC`: the exec bits of the mode cannot change. */
export const F_SEAL_EXEC = 0x20;
/** `F_ALL_SEALS` of Linux 7.2: what `F_ADD_SEALS` accepts. */
export const F_ALL_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;

/** `FALLOC_FL_KEEP_SIZE`: allocate without changing `i_size`. */
export const FALLOC_FL_KEEP_SIZE = 0x1;
/** `FALLOC_FL_PUNCH_HOLE`: free the range (needs `FALLOC_FL_KEEP_SIZE`). */
export const FALLOC_FL_PUNCH_HOLE = 0x2;
/** Every mode bit `vfs_fallocate` knows (`FALLOC_FL_SUPPORTED_MASK`, Linux 7.2). */
export const FALLOC_FL_SUPPORTED_MASK = 0x1 | 0x2 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80;

/** `lseek` from the start of the file. */
export const SEEK_SET = 0;
/** `lseek` from the file position. */
export const SEEK_CUR = 1;
/** `lseek` from the end of the file. */
export const SEEK_END = 2;
/** `lseek` to the next data at or after the offset. */
export const SEEK_DATA = 3;
/** `lseek` to the next hole at or after the offset (EOF is one). */
export const SEEK_HOLE = 4;

/** File mode bits of a new memfd: `S_IRWXUGO` (0777), exec bits cleared by `MFD_NOEXEC_SEAL`. */
export const MEMFD_DEFAULT_MODE = 0o777;

/**
 * The largest file size and offset the model holds: 2^52 bytes (the kernel's
 * `MAX_LFS_FILESIZE` is 2^63 - 1; no file bigger than physical memory can be backed, and
 * 2^52 keeps every offset an exact JS number). Beyond it: `EFBIG` (size) or `EINVAL` (seek).
 */
export const MEMFD_MAX_BYTES = 2 ** 52;

/** Errno names the model uses that `@liveupdate/kho`'s {@link ERRNO} table does not have (x86-64 values). */
export const MEMFD_EXTRA_ERRNO = {
  ENXIO: 6,
  EFBIG: 27,
} as const;

/** Every errno name the memfd model and its handlers report. */
export type MemfdErrno = Errno | keyof typeof MEMFD_EXTRA_ERRNO;

/**
 * A {@link KernelError} whose errno is one of {@link MEMFD_EXTRA_ERRNO}: `errno` holds that
 * name and `value` its negative number. (Exists only until kho's errno table has them.)
 */
class ExtendedKernelError extends KernelError {
  override get value(): number {
    const name = this.errno as string;
    return name in MEMFD_EXTRA_ERRNO ? -MEMFD_EXTRA_ERRNO[name as keyof typeof MEMFD_EXTRA_ERRNO] : super.value;
  }
}

/** A `KernelError` for any {@link MemfdErrno}, so `EFBIG` and `ENXIO` are reported like the rest. */
export function memfdError(errno: MemfdErrno, message: string): KernelError {
  if (errno in ERRNO) return new KernelError(errno as Errno, message);
  return new ExtendedKernelError(errno as Errno, message);
}

/** The errno name of an error from the model (`undefined` for anything that is not a `KernelError`). */
export function errnoOf(error: unknown): MemfdErrno | undefined {
  return error instanceof KernelError ? error.errno : undefined;
}
