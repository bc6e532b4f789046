/**
 * Opening a handover image for `luo inspect`: the format comes from the file's first bytes,
 * never from its name.
 *
 * | magic | format |
 * |---|---|
 * | `7f 45 4c 46` (`"\x7fELF"`) | ELF core (`luo simulate --out`), read with kho's `ElfCoreImage` |
 * | `"KHOSPRS1"` | sparse page image (the golden `handover-pages.bin`), `SparsePagesImage` |
 * | `28 b5 2f fd` | zstd: decompressed with `zstd -dc --long=31` into a private temporary file (removed when the image is closed), then detected again |
 * | anything else | raw physical-memory dump (QEMU `pmemsave`), `RawDumpImage` at `--phys-base` |
 *
 * A compressed image costs its decompressed size in the temporary directory and the time to
 * write it; for repeated inspection of a large dump, decompress it once yourself.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ElfCoreImage, KernelError, RawDumpImage, SparsePagesImage, type FileImage } from "@liveupdate/kho";
import { UsageError } from "../io.js";

/** Which reader an image was opened with. */
export type ImageFormat = "elf-core" | "khosprs1" | "raw-dump";

/** An open image and what it took to open it. */
export interface OpenedImage {
  readonly image: FileImage;
  readonly format: ImageFormat;
  /** The path given by the user. */
  readonly path: string;
  /** Whether the file was zstd-compressed (and read from a temporary decompressed copy). */
  readonly compressed: boolean;
  /** Close the image and remove any temporary file. */
  close(): void;
}

/** Options of {@link openHandoverImage}. */
export interface OpenImageOptions {
  /** Physical address of a raw dump's first byte (default 0). Ignored for other formats. */
  readonly physBase?: number;
}

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const KHOSPRS1 = [...Buffer.from("KHOSPRS1", "latin1")];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function startsWith(head: Uint8Array, magic: readonly number[]): boolean {
  return head.length >= magic.length && magic.every((b, i) => head[i] === b);
}

/** The first 8 bytes of `file` (fewer when it is shorter); unreadable: a usage error. */
function headOf(file: string): Uint8Array {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? "EIO"}`);
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new UsageError(`${file} is not a regular file`);
    const head = new Uint8Array(8);
    const n = fs.readSync(fd, head, 0, 8, 0);
    return head.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** The reader for a (decompressed) file, by its magic. */
function detect(head: Uint8Array): ImageFormat | "zstd" {
  if (startsWith(head, ELF_MAGIC)) return "elf-core";
  if (startsWith(head, KHOSPRS1)) return "khosprs1";
  if (startsWith(head, ZSTD_MAGIC)) return "zstd";
  return "raw-dump";
}

/** Decompress `file` into a new private temporary directory; returns the directory and the file. */
function decompress(file: string): { dir: string; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "luo-inspect-"));
  const out = path.join(dir, "image");
  const fd = fs.openSync(out, "w", 0o600);
  let result;
  try {
    result = spawnSync("zstd", ["-dc", "-q", "--long=31", file], { stdio: ["ignore", fd, "pipe"] });
  } finally {
    fs.closeSync(fd);
  }
  if (result.error !== undefined || result.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    const why = result.error !== undefined ? ((result.error as NodeJS.ErrnoException).code === "ENOENT" ? "the zstd command is not installed" : result.error.message) : result.stderr.toString().trim() || `zstd exited with ${String(result.status)}`;
    throw new KernelError("EIO", `cannot decompress ${file}: ${why}`);
  }
  return { dir, out };
}

/**
 * Open the handover image at `file` by its magic (see the module comment).
 *
 * @throws UsageError when the file cannot be read; kho's `FormatError` when its headers are
 *   corrupt; `KernelError("EIO")` when a zstd file does not decompress.
 */
export function openHandoverImage(file: string, options: OpenImageOptions = {}): OpenedImage {
  let format = detect(headOf(file));
  let readPath = file;
  let tempDir: string | undefined;
  if (format === "zstd") {
    const { dir, out } = decompress(file);
    tempDir = dir;
    readPath = out;
    format = detect(headOf(out));
    if (format === "zstd") {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new KernelError("EINVAL", `${file} decompresses to another zstd stream; decompress it yourself`);
    }
  }
  const removeTemp = (): void => {
    if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true });
  };
  let image: FileImage;
  try {
    if (format === "elf-core") image = ElfCoreImage.open(readPath);
    else if (format === "khosprs1") image = SparsePagesImage.open(readPath);
    else image = RawDumpImage.open(readPath, options.physBase === undefined ? {} : { physBase: options.physBase });
  } catch (e) {
    removeTemp();
    throw e;
  }
  return {
    image,
    format,
    path: file,
    compressed: tempDir !== undefined,
    close: () => {
      image.close();
      removeTemp();
    },
  };
}
