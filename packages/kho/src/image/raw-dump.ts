/**
 * Raw physical-memory dumps: QEMU's `pmemsave <addr> <size> <file>` (and `dd` of
 * `/dev/mem`-like sources). No header: file offset `o` holds physical address
 * `physBase + o`, where `physBase` is the dump's start address (0 for `pmemsave 0 ...`).
 *
 * ```text
 * file offset    physical address
 * 0              physBase
 * o              physBase + o         (o < file size)
 * ```
 *
 * Holes of the machine (e.g. x86's 0xa0000-0xfffff, MMIO below 4 GiB) are in the file like
 * any memory; what they hold is whatever the dumper read there. Nothing is validated but
 * the size: a raw dump has no structure to be hostile with. Opening costs one `fstat`.
 */
import * as fs from "node:fs";
import { PAGE_SIZE, PHYS_ADDR_BITS } from "../abi.js";
import { FormatError } from "../errors.js";
import { FileImage, openImageFile } from "./file-image.js";

/** Options of {@link RawDumpImage.open}. */
export interface RawDumpOptions {
  /** Physical address of file offset 0 (page-aligned). Default 0. */
  readonly physBase?: number;
  /**
   * Size the dump must have (the `size` given to `pmemsave`): a shorter file is a
   * truncated dump (`file.truncated`), a longer one is not this dump (`file.size`).
   */
  readonly expectedSize?: number;
}

/** A raw physical-memory dump read lazily from its file. */
export class RawDumpImage extends FileImage {
  protected readonly format = "raw-dump";
  /** Physical address of file offset 0. */
  readonly physBase: number;

  private constructor(fd: number, path: string, size: number, physBase: number) {
    super(fd, path, size, [{ phys: physBase, size, fileOffset: 0, fill: 0 }]);
    this.physBase = physBase;
  }

  /** Open the dump at `path`. Throws `FormatError("raw-dump", ...)` for an empty or misplaced dump. */
  static open(path: string, options: RawDumpOptions = {}): RawDumpImage {
    const physBase = options.physBase ?? 0;
    const { fd, size } = openImageFile(path);
    try {
      if (!Number.isSafeInteger(physBase) || physBase < 0 || physBase % PAGE_SIZE !== 0) {
        throw new FormatError("raw-dump", 0, "file", "base.unaligned", `physical base ${physBase} is not a page-aligned address`);
      }
      if (size === 0) throw new FormatError("raw-dump", 0, "file", "file.empty", `${path} is empty`);
      if (physBase + size > 2 ** PHYS_ADDR_BITS) {
        throw new FormatError("raw-dump", size, "file", "file.beyond-phys", `dump of ${size} bytes at 0x${physBase.toString(16)} ends beyond 2^${PHYS_ADDR_BITS}`);
      }
      const expected = options.expectedSize;
      if (expected !== undefined && size < expected) {
        throw new FormatError("raw-dump", size, "file", "file.truncated", `${path} has ${size} bytes, the dump has ${expected}`, "EIO");
      }
      if (expected !== undefined && size > expected) {
        throw new FormatError("raw-dump", expected, "file", "file.size", `${path} has ${size} bytes, the dump has ${expected}`);
      }
      return new RawDumpImage(fd, path, size, physBase);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }
}
