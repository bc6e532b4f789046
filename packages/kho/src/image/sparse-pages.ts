/**
 * The sparse page image of the real-kernel golden vectors ("KHOSPRS1"): only the pages a
 * consumer reads, as page-aligned physical ranges. All integers little-endian.
 *
 * ```text
 * offset       size  field
 * 0            8     magic "KHOSPRS1"
 * 8            8     u64 N: number of ranges
 * 16           ...   N records, back to back:
 *   +0         8       u64 phys   (page-aligned)
 *   +8         8       u64 len    (page-aligned, > 0)
 *   +16        len     the memory content of [phys, phys + len)
 * ```
 *
 * Ranges are ascending and do not overlap (adjacent ranges are allowed: the writer merges
 * them, a reader need not care). The file ends right after record N. Memory outside every
 * range is unknown, so {@link SparsePagesImage.contains} is false there.
 *
 * Opening reads the record headers only (through a 64 KiB window, skipping the data); the
 * index costs 8 bytes per range. Every rule is checked before any range is used.
 */
import * as fs from "node:fs";
import { PAGE_SIZE, PHYS_ADDR_BITS } from "../abi.js";
import { FormatError } from "../errors.js";
import { FileImage, openImageFile, u64At, type ImageExtent } from "./file-image.js";

/** `"KHOSPRS1"`. */
export const KHOSPRS1_MAGIC = "KHOSPRS1";
/** Bytes before the first record: magic and N. */
export const KHOSPRS1_HEADER_SIZE = 16;
/** Bytes of a record header: phys and len. */
export const KHOSPRS1_RECORD_HEADER_SIZE = 16;

const FORMAT = "khosprs1";
const WINDOW_BYTES = 64 * 1024;

/** A KHOSPRS1 sparse page image read lazily from its file. */
export class SparsePagesImage extends FileImage {
  protected readonly format = FORMAT;

  private constructor(fd: number, path: string, size: number, extents: readonly ImageExtent[]) {
    super(fd, path, size, extents);
  }

  /** Open and index the image at `path`; `FormatError("khosprs1", ...)` when it breaks a rule. */
  static open(path: string): SparsePagesImage {
    const { fd, size } = openImageFile(path);
    try {
      return new SparsePagesImage(fd, path, size, indexRecords(fd, size, path));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }
}

function fail(offset: number, rule: string, message: string): never {
  throw new FormatError(FORMAT, offset, "file", rule, message);
}

/** One pass over the record headers: validated extents. */
function indexRecords(fd: number, size: number, path: string): ImageExtent[] {
  const window = new Uint8Array(Math.min(WINDOW_BYTES, Math.max(size, KHOSPRS1_HEADER_SIZE)));
  const view = new DataView(window.buffer);
  let windowStart = 0;
  let windowLen = 0;
  /** Make `[at, at + 16)` readable in the window; return its offset there. */
  const header = (at: number): number => {
    if (at < windowStart || at + 16 > windowStart + windowLen) {
      const want = Math.min(window.length, size - at);
      let got = 0;
      while (got < want) {
        const n = fs.readSync(fd, window, got, want - got, at + got);
        if (n <= 0) break;
        got += n;
      }
      windowStart = at;
      windowLen = got;
      if (got < 16) fail(at + got, "file.truncated", `${path} ends inside the 16-byte header at 0x${at.toString(16)}`);
    }
    return at - windowStart;
  };

  if (size < KHOSPRS1_HEADER_SIZE) fail(size, "header.truncated", `${size} bytes is shorter than the 16-byte header`);
  let o = header(0);
  for (let i = 0; i < 8; i++) {
    if (window[o + i] !== KHOSPRS1_MAGIC.charCodeAt(i)) fail(i, "header.magic", `magic is not "${KHOSPRS1_MAGIC}"`);
  }
  const count = u64At(view, o + 8);
  // Every record takes at least its 16-byte header: this bounds N (and the index) by the file.
  const maxCount = Math.floor((size - KHOSPRS1_HEADER_SIZE) / KHOSPRS1_RECORD_HEADER_SIZE);
  if (count === undefined || count > maxCount) {
    fail(8, "count.too-large", `N = ${count ?? ">= 2^53"} records cannot fit ${size} bytes (at most ${maxCount})`);
  }

  const extents: ImageExtent[] = [];
  let at = KHOSPRS1_HEADER_SIZE;
  let prevEnd = 0;
  for (let i = 0; i < count; i++) {
    if (at + KHOSPRS1_RECORD_HEADER_SIZE > size) fail(at, "range.truncated", `record ${i} header at 0x${at.toString(16)} is past the end of the file`);
    o = header(at);
    const phys = u64At(view, o);
    const len = u64At(view, o + 8);
    if (phys === undefined || len === undefined) fail(at, "range.u64", `record ${i}: phys or len is 2^53 or more`);
    if (phys % PAGE_SIZE !== 0 || len % PAGE_SIZE !== 0) {
      fail(at, "range.unaligned", `record ${i}: 0x${phys.toString(16)}+0x${len.toString(16)} is not page-aligned`);
    }
    if (len === 0) fail(at + 8, "range.empty", `record ${i} has length 0`);
    if (phys + len > 2 ** PHYS_ADDR_BITS) fail(at, "range.beyond-phys", `record ${i} ends beyond 2^${PHYS_ADDR_BITS}`);
    if (extents.length > 0 && phys < prevEnd) {
      const prev = extents[extents.length - 1]!;
      const rule = phys < prev.phys ? "range.unsorted" : "range.overlap";
      fail(at, rule, `record ${i} at 0x${phys.toString(16)} starts below the end 0x${prevEnd.toString(16)} of record ${i - 1}`);
    }
    const data = at + KHOSPRS1_RECORD_HEADER_SIZE;
    if (len > size - data) fail(at + 8, "range.data-truncated", `record ${i}: ${len} bytes of data at 0x${data.toString(16)} run past the end of the file`);
    extents.push({ phys, size: len, fileOffset: data, fill: 0 });
    prevEnd = phys + len;
    at = data + len;
  }
  if (at !== size) fail(at, "file.trailing-bytes", `${size - at} bytes after the last record`);
  return extents;
}
