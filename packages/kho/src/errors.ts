/**
 * Errors. Two kinds, one class each:
 *
 * - `KernelError`: what the kernel would return, by errno name (`EINVAL`, `ENOENT`, ...),
 *   so a test can assert the same errno the Linux selftests do.
 * - `FormatError`: hostile or corrupt bytes in a preserved structure or an image: names
 *   the format, the offset (a physical address or a file offset, said which), the rule
 *   broken, and the errno the kernel's reader returns for it.
 *
 * Both carry `errno`, so callers that only care about the errno need no `instanceof`.
 */

/** Linux errno numbers (x86-64) for the names this project uses. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  ENAMETOOLONG: 36,
  ENODATA: 61,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
} as const;

/** An errno name such as `"EINVAL"`. */
export type Errno = keyof typeof ERRNO;

/** A failure the kernel reports with an errno. */
export class KernelError extends Error {
  readonly errno: Errno;
  constructor(errno: Errno, message: string) {
    super(`${errno}: ${message}`);
    this.name = "KernelError";
    this.errno = errno;
  }
  /** The negative value a kernel function returns. */
  get value(): number {
    return -ERRNO[this.errno];
  }
}

/** Where a {@link FormatError} offset points. */
export type OffsetSpace = "phys" | "file" | "blob";

/** Corrupt or hostile bytes in a preserved structure or an image. */
export class FormatError extends Error {
  readonly errno: Errno;
  /** Which format: `"kho-radix"`, `"kho-vmalloc"`, `"kho-block"`, `"elf-core"`, ... */
  readonly format: string;
  readonly offset: number;
  readonly space: OffsetSpace;
  /** A short stable id of the rule broken. */
  readonly rule: string;
  constructor(format: string, offset: number, space: OffsetSpace, rule: string, message: string, errno: Errno = "EINVAL") {
    super(`${format}: ${message} (rule ${rule}, at ${space} 0x${offset.toString(16)})`);
    this.name = "FormatError";
    this.format = format;
    this.offset = offset;
    this.space = space;
    this.rule = rule;
    this.errno = errno;
  }
}
