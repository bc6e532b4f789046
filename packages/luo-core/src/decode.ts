/**
 * Reading `luo-v5` state out of memory as the next kernel does, without consuming anything:
 * the checks of `luo_early_startup` (blob size, compatible, the session chain), of the first
 * open's `luo_session_deserialize` (session names, each session's file chain and count), and
 * of the FLB page, over hostile bytes.
 *
 * Used three ways: by {@link decodeLuoState} (an inspector over a live machine or a memory
 * image: "what would the next kernel see"), by the kernel model's boot and first open
 * (validate everything, then commit), and by the FLB lookup.
 *
 * Every failure is a `FormatError` naming the format (`luo`, `luo-session`, `luo-file`,
 * `luo-flb`, or `kho-block` for a chain), the physical address and the rule:
 *
 * | rule | errno | what |
 * |---|---|---|
 * | `blob-size` | EINVAL | the sub-tree's blob-size is below 32 |
 * | `blob-outside` | EINVAL | the blob is not in memory |
 * | `compatible` | EINVAL | not `"luo-v5"` (`strncmp` over 8 bytes) |
 * | `pointer-range` | EINVAL | a u64 pointer beyond 52-bit physical memory |
 * | `not-preserved` | EINVAL | a page the next kernel must restore carries no KHO stamp |
 * | `duplicate-session` | EEXIST | two sessions with the same name |
 * | `file-count` | EINVAL | a session's count differs from the records in its chain |
 * | `shared-block` | EINVAL | a page in two chains (or a chain and the blob): restored twice |
 * | `flb-outside` / `flb-count` | EINVAL | the FLB page is not in memory / holds more than 63 |
 *
 * Chain rules (`block-cycle`, `block-count`, ...) come from kho's `readKhoBlocks`.
 */
import {
  FormatError,
  PAGE_SIZE,
  pagesAreStamped,
  readKhoBlocks,
  type KhoBlock,
  type KhoStampReader,
  type PhysReader,
} from "@liveupdate/kho";
import {
  LIVEUPDATE_FLB_COMPAT_LENGTH,
  LIVEUPDATE_HNDL_COMPAT_LENGTH,
  LIVEUPDATE_SESSION_NAME_LENGTH,
  LUO_ABI_COMPATIBLE,
  LUO_ABI_COMPAT_LEN,
  LUO_BLOCK_HEADER_SIZE,
  LUO_FILE_FORMAT,
  LUO_FILE_SER_SIZE,
  LUO_FLB_FORMAT,
  LUO_FLB_HEADER_SER_SIZE,
  LUO_FLB_MAX,
  LUO_FLB_SER_SIZE,
  LUO_FORMAT,
  LUO_SER_SIZE,
  LUO_SESSION_FORMAT,
  LUO_SESSION_SER_SIZE,
} from "./abi.js";
import { keyBytes, keyText, readCString, utf8Bytes } from "./cstring.js";

const TWO_32 = 2 ** 32;
const PHYS_HIGH_LIMIT = 2 ** 20; // high word of a u64 at or above this: beyond 52 bits

/** The 32-byte `luo_ser`, decoded. */
export interface LuoSerView {
  /** Physical address of the blob. */
  readonly phys: number;
  /** The sub-tree's `blob-size`. */
  readonly blobSize: number;
  /** The compatible as the blob holds it (up to its first NUL, at most 8 bytes). */
  readonly compatible: string;
  /** `liveupdate_num`: live updates so far (the previous kernel's count + 1). */
  readonly liveupdateNum: bigint;
  /** First block of the session chain (0: none). */
  readonly sessionsPhys: number;
  /** The FLB header page (0: none; beyond 2^53 it is not exact, and not in any memory). */
  readonly flbsPhys: number;
}

/** One `luo_file_ser`. */
export interface LuoFileView {
  /** Physical address of the record. */
  readonly entryPhys: number;
  /** The handler compatible (bytes up to the first NUL, UTF-8 decoded). */
  readonly compatible: string;
  /** Those bytes exactly. */
  readonly compatibleBytes: Uint8Array;
  /** Whether the 48-byte field holds a NUL (an unterminated one matches no handler). */
  readonly compatibleTerminated: boolean;
  /** The handler's opaque handle. */
  readonly data: bigint;
  /** The user's token. */
  readonly token: bigint;
}

/** One `luo_session_ser` with its files. */
export interface LuoSessionView {
  /** Physical address of the record. */
  readonly entryPhys: number;
  /** The name as the next kernel copies it (at most 63 bytes, up to the first NUL), decoded. */
  readonly name: string;
  /** Those bytes exactly. */
  readonly nameBytes: Uint8Array;
  /** First block of the file chain (0: none). */
  readonly filesPhys: number;
  /** The record's file count (`count`). */
  readonly count: number;
  /** The blocks of its file chain. */
  readonly fileBlocks: readonly KhoBlock[];
  /** Its file records, in chain order. */
  readonly files: readonly LuoFileView[];
}

/** One `luo_flb_ser`. */
export interface LuoFlbEntryView {
  /** Physical address of the record. */
  readonly entryPhys: number;
  /** The FLB compatible (UTF-8 decoded). */
  readonly name: string;
  /** Those bytes exactly. */
  readonly nameBytes: Uint8Array;
  /** Whether the 48-byte name field holds a NUL (an unterminated one matches no FLB). */
  readonly terminated: boolean;
  /** The FLB's handle. */
  readonly data: bigint;
  /** Files that used the FLB in the previous kernel. */
  readonly count: bigint;
}

/** The FLB page. */
export interface LuoFlbView {
  /** Physical address of the page. */
  readonly phys: number;
  /** `pgcnt` (1). */
  readonly pgcnt: bigint;
  /** `count`: records that follow. */
  readonly count: number;
  /** The records. */
  readonly entries: readonly LuoFlbEntryView[];
}

/** Everything the next kernel would find in the `"LUO"` sub-tree. */
export interface LuoStateView extends LuoSerView {
  /** The blocks of the session chain. */
  readonly sessionBlocks: readonly KhoBlock[];
  /** The session records, in chain order, each with its files. */
  readonly sessions: readonly LuoSessionView[];
  /** The FLB page, or undefined when `flbs_pa` is 0. */
  readonly flbs: LuoFlbView | undefined;
  /** What the kernel only warns about (a session with no file chain but a non-zero count). */
  readonly warnings: readonly string[];
}

/** The header and session chain, as checked at boot. */
export interface LuoHeader extends LuoSerView {
  /** The blocks of the session chain (validated). */
  readonly sessionBlocks: readonly KhoBlock[];
}

/** Options of the readers. */
export interface LuoReadOptions {
  /**
   * The next kernel's KHO stamps: when given, every page the kernel will restore (the blob,
   * every block) must carry one (rule `not-preserved`).
   */
  readonly stamps?: KhoStampReader;
}

function u64(view: DataView, off: number): bigint {
  return (BigInt(view.getUint32(off + 4, true)) << 32n) | BigInt(view.getUint32(off, true));
}

/** A u64 physical pointer as a number; `pointer-range` when it is beyond 52 bits. */
function pointer(view: DataView, off: number, format: string, at: number, what: string): number {
  const hi = view.getUint32(off + 4, true);
  if (hi >= PHYS_HIGH_LIMIT) throw new FormatError(format, at, "phys", "pointer-range", `${what} is beyond 52-bit physical memory`);
  return hi * TWO_32 + view.getUint32(off, true);
}

function requireStamp(stamps: KhoStampReader | undefined, phys: number, format: string, what: string): void {
  if (stamps !== undefined && stamps.stampOf(phys) === undefined) {
    throw new FormatError(format, phys, "phys", "not-preserved", `${what} at 0x${phys.toString(16)} was not preserved`);
  }
}

function requireBlocksStamped(stamps: KhoStampReader | undefined, blocks: readonly KhoBlock[], format: string): void {
  if (stamps === undefined) return;
  for (const b of blocks) {
    if (!pagesAreStamped(stamps, b.phys, 1)) throw new FormatError(format, b.phys, "phys", "not-preserved", `block 0x${b.phys.toString(16)} was not preserved`);
  }
}

const EXPECTED_COMPAT = utf8Bytes(LUO_ABI_COMPATIBLE);

/**
 * `luo_early_startup`'s checks: blob size, `strncmp(compatible, "luo-v5", 8)`, the session
 * chain (`kho_block_set_restore`). Reads nothing else.
 */
export function readLuoHeader(reader: PhysReader, phys: number, blobSize: number = LUO_SER_SIZE, options: LuoReadOptions = {}): LuoHeader {
  if (!Number.isSafeInteger(blobSize) || blobSize < LUO_SER_SIZE) {
    throw new FormatError(LUO_FORMAT, phys, "phys", "blob-size", `LUO state is too small (${blobSize} < ${LUO_SER_SIZE})`);
  }
  if (!Number.isSafeInteger(phys) || phys < 0 || !reader.contains(phys, LUO_SER_SIZE)) {
    throw new FormatError(LUO_FORMAT, Math.max(0, Number.isFinite(phys) ? phys : 0), "phys", "blob-outside", `LUO state at ${String(phys)} is not in memory`);
  }
  const bytes = new Uint8Array(LUO_SER_SIZE);
  reader.readInto(phys, bytes);
  const view = new DataView(bytes.buffer);
  // strncmp over LUO_ABI_COMPAT_LEN bytes: equal up to and including the first NUL.
  for (let i = 0; i < LUO_ABI_COMPAT_LEN; i++) {
    const want = EXPECTED_COMPAT[i] ?? 0;
    if (bytes[i] !== want) {
      const shown = keyText(readCString(bytes, 0, LUO_ABI_COMPAT_LEN + 1).key);
      throw new FormatError(LUO_FORMAT, phys, "phys", "compatible", `LUO state "${shown}" is incompatible with "${LUO_ABI_COMPATIBLE}"`);
    }
    if (want === 0) break;
  }
  requireStamp(options.stamps, phys, LUO_FORMAT, "the LUO blob");
  const sessionsPhys = pointer(view, 16, LUO_FORMAT, phys + 16, "sessions_pa");
  // Linux reads the FLB page only when an FLB is first retrieved: a bad flbs_pa is not a
  // boot failure (readFlbTable refuses it then).
  const flbsPhys = view.getUint32(28, true) * TWO_32 + view.getUint32(24, true);
  const chain = readKhoBlocks(reader, sessionsPhys, LUO_SESSION_SER_SIZE);
  const blobPage = phys - (phys % PAGE_SIZE);
  for (const b of chain.blocks) {
    if (b.phys === blobPage) throw new FormatError(LUO_SESSION_FORMAT, b.phys, "phys", "shared-block", `session block 0x${b.phys.toString(16)} is the LUO blob's page`);
  }
  requireBlocksStamped(options.stamps, chain.blocks, LUO_SESSION_FORMAT);
  return {
    phys,
    blobSize,
    compatible: keyText(readCString(bytes, 0, LUO_ABI_COMPAT_LEN).key),
    liveupdateNum: u64(view, 8),
    sessionsPhys,
    flbsPhys,
    sessionBlocks: chain.blocks,
  };
}

/** What {@link walkLuoSessions} calls for each file record (throw to stop the walk). */
export type LuoFileVisitor = (session: LuoSessionView, file: LuoFileView) => void;

/**
 * `luo_session_deserialize`'s walk, in chain order: for each session the name (copied as
 * `strscpy(.., 64)` does, duplicates `EEXIST`), then its file chain, each record given to
 * `visit` (the kernel looks up the handler there), then the count check. The first failure
 * stops the walk, as in the kernel.
 */
export function walkLuoSessions(reader: PhysReader, header: LuoHeader, options: LuoReadOptions = {}, visit?: LuoFileVisitor): { sessions: LuoSessionView[]; warnings: string[] } {
  const sessions: LuoSessionView[] = [];
  const warnings: string[] = [];
  const names = new Set<string>();
  // Every page the next kernel restores must belong to one structure only (else it would
  // restore it twice): the blob's page, the session blocks, every file block.
  const pages = new Set<number>([header.phys - (header.phys % PAGE_SIZE)]);
  for (const sb of header.sessionBlocks) pages.add(sb.phys);
  const block = new Uint8Array(PAGE_SIZE);
  const blockView = new DataView(block.buffer);
  for (const sb of header.sessionBlocks) {
    reader.readInto(sb.phys, block);
    for (let i = 0; i < sb.count; i++) {
      const off = LUO_BLOCK_HEADER_SIZE + i * LUO_SESSION_SER_SIZE;
      const entryPhys = sb.phys + off;
      const { key } = readCString(block, off, LIVEUPDATE_SESSION_NAME_LENGTH);
      const name = keyText(key);
      if (names.has(key)) throw new FormatError(LUO_SESSION_FORMAT, entryPhys, "phys", "duplicate-session", `session "${name}" appears twice`, "EEXIST");
      names.add(key);
      const filesPhys = pointer(blockView, off + 64, LUO_SESSION_FORMAT, entryPhys + 64, `files of session "${name}"`);
      const countLo = blockView.getUint32(off + 72, true);
      const countHi = blockView.getUint32(off + 76, true);
      const declared = countHi * TWO_32 + countLo;
      const files: LuoFileView[] = [];
      const session: LuoSessionView = { entryPhys, name, nameBytes: keyBytes(key), filesPhys, count: declared, fileBlocks: [], files };
      if (filesPhys === 0) {
        if (declared !== 0) warnings.push(`session "${name}" has no file chain but a count of ${declared}`);
        sessions.push(session);
        continue;
      }
      const chain = readKhoBlocks(reader, filesPhys, LUO_FILE_SER_SIZE);
      for (const fb of chain.blocks) {
        if (pages.has(fb.phys)) throw new FormatError(LUO_FILE_FORMAT, fb.phys, "phys", "shared-block", `file block 0x${fb.phys.toString(16)} of session "${name}" belongs to another chain too`);
        pages.add(fb.phys);
      }
      requireBlocksStamped(options.stamps, chain.blocks, LUO_FILE_FORMAT);
      const withBlocks: LuoSessionView = { ...session, fileBlocks: chain.blocks };
      const fileBlock = new Uint8Array(PAGE_SIZE);
      const fileView = new DataView(fileBlock.buffer);
      for (const fb of chain.blocks) {
        reader.readInto(fb.phys, fileBlock);
        for (let j = 0; j < fb.count; j++) {
          const fo = LUO_BLOCK_HEADER_SIZE + j * LUO_FILE_SER_SIZE;
          const compat = readCString(fileBlock, fo, LIVEUPDATE_HNDL_COMPAT_LENGTH);
          // An unterminated field: strcmp would run on into `data`; it can match no handler.
          const compatKey = compat.terminated ? compat.key : readCString(fileBlock, fo, LIVEUPDATE_HNDL_COMPAT_LENGTH + 1).key;
          const file: LuoFileView = {
            entryPhys: fb.phys + fo,
            compatible: keyText(compatKey),
            compatibleBytes: keyBytes(compatKey),
            compatibleTerminated: compat.terminated,
            data: u64(fileView, fo + 48),
            token: u64(fileView, fo + 56),
          };
          visit?.(withBlocks, file);
          files.push(file);
        }
      }
      if (countHi !== 0 || declared !== chain.entryCount) {
        throw new FormatError(LUO_SESSION_FORMAT, entryPhys + 72, "phys", "file-count", `session "${name}" says ${countHi !== 0 ? `0x${countHi.toString(16)}${countLo.toString(16).padStart(8, "0")}` : declared} files, its chain holds ${chain.entryCount}`);
      }
      sessions.push(withBlocks);
    }
  }
  return { sessions, warnings };
}

/**
 * The FLB page at `phys`: `{pgcnt, count}` and `count` records. The kernel reads it without
 * checks (`phys_to_virt`); the model needs the page in memory and `count <= 63`.
 */
export function readFlbTable(reader: PhysReader, phys: number): LuoFlbView {
  if (!Number.isSafeInteger(phys) || phys < 0 || !reader.contains(phys, PAGE_SIZE)) {
    throw new FormatError(LUO_FLB_FORMAT, Math.max(0, Number.isFinite(phys) ? phys : 0), "phys", "flb-outside", `FLB page at ${String(phys)} is not in memory`);
  }
  const page = new Uint8Array(PAGE_SIZE);
  reader.readInto(phys, page);
  const view = new DataView(page.buffer);
  const pgcnt = u64(view, 0);
  const countHi = view.getUint32(12, true);
  const count = view.getUint32(8, true);
  if (countHi !== 0 || count > LUO_FLB_MAX) {
    throw new FormatError(LUO_FLB_FORMAT, phys + 8, "phys", "flb-count", `FLB page holds ${countHi !== 0 ? "more than 2^32" : count} entries, at most ${LUO_FLB_MAX} fit`);
  }
  const entries: LuoFlbEntryView[] = [];
  for (let i = 0; i < count; i++) {
    const off = LUO_FLB_HEADER_SER_SIZE + i * LUO_FLB_SER_SIZE;
    const name = readCString(page, off, LIVEUPDATE_FLB_COMPAT_LENGTH);
    const nameKey = name.terminated ? name.key : readCString(page, off, LIVEUPDATE_FLB_COMPAT_LENGTH + 1).key;
    entries.push({
      entryPhys: phys + off,
      name: keyText(nameKey),
      nameBytes: keyBytes(nameKey),
      terminated: name.terminated,
      data: u64(view, off + 48),
      count: u64(view, off + 56),
    });
  }
  return { phys, pgcnt, count, entries };
}

/**
 * Decode the whole `luo-v5` state at `luoPhys` (the `"LUO"` sub-tree's `preserved-data`, of
 * `blobSize` bytes) from a live machine's memory or a memory image, checking it as the next
 * kernel would, and consuming nothing. Which handler takes each file is not decided here
 * (that depends on the next kernel's registry: see `findUnretrievable`).
 *
 * @throws FormatError for any rule in the module comment.
 */
export function decodeLuoState(reader: PhysReader, luoPhys: number, blobSize: number = LUO_SER_SIZE, options: LuoReadOptions = {}): LuoStateView {
  const header = readLuoHeader(reader, luoPhys, blobSize, options);
  const { sessions, warnings } = walkLuoSessions(reader, header, options);
  const flbs = header.flbsPhys === 0 ? undefined : readFlbTable(reader, header.flbsPhys);
  return { ...header, sessions, flbs, warnings };
}
