/**
 * The libfdt-compatible check: the verdict and the error code of Debian's libfdt 1.6.1
 * `fdt_check_full(fdt, bufsize)` with `bufsize = bytes.length`, for every input.
 *
 * libfdt 1.6.1 runs, in this order (the first failure wins, so the order decides the code):
 *
 * ```text
 *  1 buffer    bufsize < 28 (v1 header)                           TRUNCATED
 *              bufsize < header size of the version field         TRUNCATED
 *  2 header    magic != 0xd00dfeed (an unfinished sw blob too)    BADMAGIC
 *              version < 2 or last_comp_version > 17              BADVERSION
 *              version < last_comp_version                        BADVERSION
 *              totalsize < header size or > INT_MAX               TRUNCATED
 *              off_mem_rsvmap outside [header, totalsize]         TRUNCATED
 *              v17+: struct block outside [header, totalsize]     TRUNCATED
 *              v2-16: off_dt_struct outside [header, totalsize]   TRUNCATED
 *              strings block outside [header, totalsize]          TRUNCATED
 *              bufsize < totalsize                                TRUNCATED
 *              (no alignment checks: those came with 1.8.0)
 *  3 rsvmap    no entry with size 0 before totalsize              TRUNCATED
 *  4 struct    token walk from offset 0, one tag at a time:
 *              tag not inside the struct block                    TRUNCATED
 *              node name without NUL inside the block             BADSTRUCTURE
 *              property header or value past the block            BADSTRUCTURE
 *              unknown tag                                        BADSTRUCTURE
 *              any tag but END after the root closed (NOP too)    BADSTRUCTURE
 *              END with a node open                               BADSTRUCTURE
 *              END_NODE with no node open                         BADSTRUCTURE
 *              root (depth-1) node with a non-empty name          BADSTRUCTURE
 *              property nameoff out of the strings block          BADOFFSET
 *              property name without NUL inside the block        TRUNCATED
 *              END at depth 0                                     valid
 * ```
 *
 * "Inside the struct block" means below `off_dt_struct + size_dt_struct` for v17+, below
 * `totalsize` for older versions. For v2-15 a property value of 8+ bytes whose struct
 * offset is not 8-aligned is preceded by 4 bytes of padding, and node names are paths:
 * the root name must end in `/`.
 *
 * Two inputs make 1.6.1 itself misbehave; this check terminates on both with
 * `FDT_ERR_BADSTRUCTURE` and a rule naming the case:
 *
 * - `struct.prop-length-wraps`: a property length of 0xfffffff4 (0xfffffff0 with v2-15
 *   realignment) wraps libfdt's 32-bit offset arithmetic back onto the PROP tag itself,
 *   and `fdt_check_full` loops forever. (Other wrapping lengths land a few bytes after
 *   the tag and the walk continues from there, exactly as libfdt's does.)
 * - `struct.root-path`: a v2-15 root whose name has no `/`; 1.6.1 dereferences the NULL
 *   that `fdt_get_name` returns and crashes.
 *
 * libfdt reads a property's `nameoff` without checking that it lies inside the block (only
 * the tag and the length are checked when the length wraps to a small span); bytes past
 * the end of the buffer read as zero here.
 *
 * Speed: one pass, u32 reads by byte arithmetic, no allocation unless a problem is
 * reported (or the memo below has to grow, up to its cap). libfdt rescans a property name
 * for its NUL at every use; this check scans a `nameoff` once per call and remembers it (a
 * stamp per `nameoff` in a module-level array, so nothing is cleared between calls;
 * `nameoff`s past the array's cap are rescanned). The
 * scanning is bounded by a budget proportional to the input (a hostile blob with many names
 * pointing into one long string), after which it answers from a next-NUL table built once,
 * keeping the worst case linear.
 */
import { singleProblemReport, FDT_VALID_REPORT, type FdtCheckReport } from "./check-report.js";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_MAGIC,
  FDT_MAX_TOTALSIZE,
  FDT_NOP,
  FDT_PROP,
  FDT_SW_MAGIC,
  HEADER,
  headerSizeForVersion,
} from "./layout.js";

// Tokens as module-local constants: the hot loop then compares against literals even
// where a loader turns imports into property reads (vitest's module transform does).
const BEGIN_NODE = FDT_BEGIN_NODE;
const END_NODE = FDT_END_NODE;
const PROP = FDT_PROP;
const NOP = FDT_NOP;
const END = FDT_END;

/** libfdt's `FDT_FIRST_SUPPORTED_VERSION`: the oldest version `fdt_check_header` accepts. */
const LIBFDT_FIRST_VERSION = 2;
/** libfdt's `FDT_LAST_SUPPORTED_VERSION`: the newest `last_comp_version` it accepts. */
const LIBFDT_LAST_VERSION = 17;
/** Size of the v1 header, the least `fdt_check_full` needs before reading anything. */
const V1_HEADER_SIZE = 28;
const SLASH = 0x2f;

/** `nameoff`s below this are remembered once proven (the memo never grows past it). */
const NAME_MEMO_CAP = 1 << 16;
/**
 * `nameMemo[nameoff] === nameStamp`: the name at `nameoff` has been proven NUL-terminated in
 * the current call. Each call takes a new stamp, so entries of other calls never match (not
 * even those of a re-entrant call). 31-bit stamps: the memo is cleared once every 2^31 - 1
 * calls, which keeps that path out of the optimised code (a path taken every few hundred
 * calls, never seen when the function was compiled, throws the compiled code away each time).
 */
let nameMemo = new Int32Array(0);
let nameStamp = 0;

/** Big-endian u32 at `i`; the caller has checked `i + 4 <= b.length`. */
function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

/** Big-endian u32 at `i`, bytes past the end of the buffer reading as zero. */
function u32OrZero(b: Uint8Array, i: number): number {
  if (i + 4 <= b.length) return u32(b, i);
  let v = 0;
  for (let k = 0; k < 4; k++) v = v * 256 + (i + k < b.length ? b[i + k]! : 0);
  return v;
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}

/** `next[i - start]` = index of the first NUL at or after `i` in `[start, end)`, or -1. */
function buildNextNulTable(b: Uint8Array, start: number, end: number): Int32Array {
  const next = new Int32Array(end - start);
  let nul = -1;
  for (let i = end - 1; i >= start; i--) {
    if (b[i] === 0) nul = i;
    next[i - start] = nul;
  }
  return next;
}

/**
 * Check `bytes` exactly as Debian's libfdt 1.6.1 `fdt_check_full(bytes, bytes.length)` does.
 *
 * @returns `{ valid: true }` when libfdt returns 0; otherwise one problem whose `code` is
 * the error libfdt returns, with the rule and the byte offset where it was found.
 */
export function checkLibfdt(bytes: Uint8Array): FdtCheckReport {
  const b = bytes;
  const size = b.length;

  // --- 1-2: buffer and header (fdt_check_full, fdt_check_header) ---
  if (size < V1_HEADER_SIZE) {
    return singleProblemReport("FDT_ERR_TRUNCATED", 0, "header.size", `buffer of ${size} bytes is shorter than the 28-byte v1 header`);
  }
  // The header size follows the (not yet validated) version field.
  const version = u32(b, HEADER.version);
  const hdrSize = headerSizeForVersion(version);
  if (size < hdrSize) {
    return singleProblemReport("FDT_ERR_TRUNCATED", 0, "header.size", `buffer of ${size} bytes is shorter than the ${hdrSize}-byte header of version ${version}`);
  }
  const magic = u32(b, HEADER.magic);
  if (magic !== FDT_MAGIC) {
    const what = magic === FDT_SW_MAGIC ? "an unfinished sequential-write blob" : "not a device tree";
    return singleProblemReport("FDT_ERR_BADMAGIC", HEADER.magic, "header.magic", `magic ${hex(magic)} is ${what} (want 0xd00dfeed)`);
  }
  const lastComp = u32(b, HEADER.lastCompVersion);
  if (version < LIBFDT_FIRST_VERSION) {
    return singleProblemReport("FDT_ERR_BADVERSION", HEADER.version, "header.version", `version ${version} is older than 2`);
  }
  if (lastComp > LIBFDT_LAST_VERSION) {
    return singleProblemReport("FDT_ERR_BADVERSION", HEADER.lastCompVersion, "header.last-comp-version", `last_comp_version ${lastComp} is newer than 17`);
  }
  if (version < lastComp) {
    return singleProblemReport("FDT_ERR_BADVERSION", HEADER.version, "header.version-order", `version ${version} is older than last_comp_version ${lastComp}`);
  }
  const totalsize = u32(b, HEADER.totalsize);
  if (totalsize < hdrSize || totalsize > FDT_MAX_TOTALSIZE) {
    return singleProblemReport("FDT_ERR_TRUNCATED", HEADER.totalsize, "header.totalsize", `totalsize ${totalsize} is below the ${hdrSize}-byte header or above INT_MAX`);
  }
  const offRsv = u32(b, HEADER.offMemRsvmap);
  if (offRsv < hdrSize || offRsv > totalsize) {
    return singleProblemReport("FDT_ERR_TRUNCATED", HEADER.offMemRsvmap, "header.rsvmap-bounds", `off_mem_rsvmap ${offRsv} is outside [${hdrSize}, ${totalsize}]`);
  }
  const offStruct = u32(b, HEADER.offDtStruct);
  const isV17 = version >= 17;
  // v17+ bounds the walk by size_dt_struct; older blobs by totalsize.
  let structEnd = totalsize;
  if (isV17) {
    const sizeStruct = u32(b, HEADER.sizeDtStruct);
    if (offStruct < hdrSize || offStruct > totalsize || offStruct + sizeStruct > totalsize) {
      return singleProblemReport("FDT_ERR_TRUNCATED", HEADER.offDtStruct, "header.struct-bounds", `struct block [${offStruct}, +${sizeStruct}) is outside [${hdrSize}, ${totalsize}]`);
    }
    structEnd = offStruct + sizeStruct;
  } else if (offStruct < hdrSize || offStruct > totalsize) {
    return singleProblemReport("FDT_ERR_TRUNCATED", HEADER.offDtStruct, "header.struct-bounds", `off_dt_struct ${offStruct} is outside [${hdrSize}, ${totalsize}]`);
  }
  const offStrings = u32(b, HEADER.offDtStrings);
  // A v2 header ends before size_dt_strings; libfdt reads the field anyway.
  const sizeStrings = u32OrZero(b, HEADER.sizeDtStrings);
  if (offStrings < hdrSize || offStrings > totalsize || offStrings + sizeStrings > totalsize) {
    return singleProblemReport("FDT_ERR_TRUNCATED", HEADER.offDtStrings, "header.strings-bounds", `strings block [${offStrings}, +${sizeStrings}) is outside [${hdrSize}, ${totalsize}]`);
  }
  if (size < totalsize) {
    return singleProblemReport("FDT_ERR_TRUNCATED", HEADER.totalsize, "header.totalsize-buffer", `totalsize ${totalsize} exceeds the ${size}-byte buffer`);
  }

  // --- 3: reserve map (fdt_num_mem_rsv): stop at the first entry of size 0 ---
  for (let at = offRsv; ; at += 16) {
    if (at > totalsize - 16) {
      return singleProblemReport("FDT_ERR_TRUNCATED", at, "rsvmap.terminator", `reserve map from ${offRsv} has no entry of size 0 before totalsize ${totalsize}`);
    }
    if (u32(b, at + 8) === 0 && u32(b, at + 12) === 0) break;
  }

  // --- 4: structure walk (fdt_check_full over fdt_next_tag) ---
  const oldNames = version < 16;
  const stringsEnd = isV17 ? offStrings + sizeStrings : totalsize;
  // String-scan budget before switching to the next-NUL table (see the file comment).
  let scanBudget = 8 * size + 65536;
  let nextNul: Int32Array | null = null;
  // Every nameoff is below totalsize - offStrings (checked before use).
  const memoSpan = Math.min(totalsize - offStrings, NAME_MEMO_CAP);
  if (nameMemo.length < memoSpan) nameMemo = new Int32Array(Math.max(memoSpan, Math.min(2 * nameMemo.length, NAME_MEMO_CAP)));
  if (nameStamp === 0x7fffffff) {
    nameMemo.fill(0);
    nameStamp = 0;
  }
  const memo = nameMemo;
  const stamp = ++nameStamp;
  let depth = 0;
  let expectEnd = false;
  let p = offStruct;
  for (;;) {
    if (p + 4 > structEnd) {
      return singleProblemReport("FDT_ERR_TRUNCATED", p, "struct.truncated", `no END token before the end of the structure block at ${structEnd}`);
    }
    const tag = u32(b, p);
    let next: number;
    let span = 0;
    let nameEnd = 0;
    if (tag === PROP) {
      if (p + 8 > structEnd) {
        return singleProblemReport("FDT_ERR_BADSTRUCTURE", p, "struct.prop-truncated", `property length field runs past the structure block end ${structEnd}`);
      }
      const len = u32(b, p + 4);
      // libfdt adds in 32 bits: a huge length wraps the span around.
      // (`>>> 0` reduces modulo 2^32 without a floating-point remainder.)
      span = oldNames && len >= 8 && ((p - offStruct + 12) & 7) !== 0 ? (16 + len) >>> 0 : (12 + len) >>> 0;
      if (p + span > structEnd) {
        return singleProblemReport("FDT_ERR_BADSTRUCTURE", p, "struct.prop-truncated", `property of length ${len} runs past the structure block end ${structEnd}`);
      }
      next = offStruct + ((p - offStruct + span + 3) & ~3);
    } else if (tag === BEGIN_NODE) {
      let q = p + 4;
      while (q < structEnd && b[q] !== 0) q++;
      if (q >= structEnd) {
        return singleProblemReport("FDT_ERR_BADSTRUCTURE", p, "struct.name-unterminated", `node name has no NUL before the structure block end ${structEnd}`);
      }
      nameEnd = q;
      next = offStruct + ((q + 1 - offStruct + 3) & ~3);
    } else if (tag === END_NODE || tag === NOP || tag === END) {
      next = p + 4;
    } else {
      return singleProblemReport("FDT_ERR_BADSTRUCTURE", p, "struct.token", `unknown token ${hex(tag)}`);
    }

    if (expectEnd && tag !== END) {
      return tag === NOP
        ? singleProblemReport("FDT_ERR_BADSTRUCTURE", p, "struct.nop-after-root", "NOP after the root node closed (rejected by libfdt 1.6.1, accepted from 1.8.1)")
        : singleProblemReport("FDT_ERR_BADSTRUCTURE", p, "struct.after-root", `token ${hex(tag)} after the root node closed (a second root?)`);
    }

    if (tag === PROP) {
      const nameoff = u32OrZero(b, p + 8);
      const abs = (offStrings + nameoff) >>> 0;
      if (abs >= totalsize || nameoff > 0x7fffffff || (isV17 && nameoff >= sizeStrings)) {
        return singleProblemReport("FDT_ERR_BADOFFSET", p + 8, "strings.nameoff", `property nameoff ${nameoff} is outside the strings block (size ${sizeStrings})`);
      }
      if (nameoff >= memoSpan || memo[nameoff] !== stamp) {
        let nul: number;
        if (nextNul === null) {
          nul = abs;
          while (nul < stringsEnd && b[nul] !== 0) nul++;
          scanBudget -= nul - abs;
          if (scanBudget < 0) nextNul = buildNextNulTable(b, offStrings, totalsize);
        } else {
          nul = nextNul[abs - offStrings]!;
          if (nul < 0) nul = stringsEnd;
        }
        if (nul >= stringsEnd) {
          return singleProblemReport("FDT_ERR_TRUNCATED", abs, "strings.unterminated", `property name at ${abs} has no NUL before the strings block end ${stringsEnd}`);
        }
        if (nameoff < memoSpan) memo[nameoff] = stamp;
      }
      if (span === 0) {
        return singleProblemReport("FDT_ERR_BADSTRUCTURE", p + 4, "struct.prop-length-wraps", `property length ${hex(u32(b, p + 4))} wraps the offset back onto its own tag (libfdt 1.6.1 loops forever)`);
      }
    } else if (tag === BEGIN_NODE) {
      depth++;
      if (depth === 1) {
        const nameStart = p + 4;
        if (oldNames) {
          // v2-15 names are paths; libfdt keeps what follows the last '/'.
          let slash = nameEnd - 1;
          while (slash >= nameStart && b[slash] !== SLASH) slash--;
          if (slash < nameStart) {
            return singleProblemReport("FDT_ERR_BADSTRUCTURE", nameStart, "struct.root-path", "v2-15 root node name has no '/' (libfdt 1.6.1 crashes here)");
          }
          if (slash !== nameEnd - 1) {
            return singleProblemReport("FDT_ERR_BADSTRUCTURE", nameStart, "struct.root-name", "root node name does not end in '/'");
          }
        } else if (nameEnd !== nameStart) {
          return singleProblemReport("FDT_ERR_BADSTRUCTURE", nameStart, "struct.root-name", "root node name is not empty");
        }
      }
    } else if (tag === END_NODE) {
      if (depth === 0) {
        return singleProblemReport("FDT_ERR_BADSTRUCTURE", p, "struct.end-node-depth", "END_NODE with no node open");
      }
      depth--;
      if (depth === 0) expectEnd = true;
    } else if (tag === END) {
      if (depth !== 0) {
        return singleProblemReport("FDT_ERR_BADSTRUCTURE", p, "struct.end-depth", `END with ${depth} node(s) still open`);
      }
      return FDT_VALID_REPORT;
    }
    p = next;
  }
}
