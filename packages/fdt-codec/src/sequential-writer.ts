/**
 * libfdt's sequential writer (`fdt_sw.c`: `fdt_create` ... `fdt_finish`), byte-identical to
 * Debian's libfdt 1.6.1. The Linux KHO root tree is built this way.
 *
 * ## Layout while writing
 *
 * ```text
 *  0        48                 offDtStruct          structTop           totalsize - sizeDtStrings   totalsize
 *  | header | reserve entries  | struct block  ->    |   free (zeroed)   |   <- strings block        |
 * ```
 *
 * - The buffer starts zeroed and is never cleared again; `resize` moves the head and the
 *   strings into a fresh zeroed buffer (as pylibfdt does), leaving the free space behind.
 * - The reserve map starts at 48 (the 40-byte header rounded up to a 16-byte entry).
 * - The struct block grows upward from the end of the reserve map; a token writes its tag,
 *   name and value but NOT its padding (padding is whatever the buffer held: zero, or the
 *   bytes of a string that was written and rolled back, see below).
 * - The strings block grows downward from the end of the buffer, so at `finish` it lists the
 *   names in reverse order of first insertion. A property's `nameoff` is stored as a negative
 *   offset from the end of the buffer until `finish`.
 * - De-duplication (`fdt_find_add_string_`): the table is scanned from its lowest address, so
 *   a name reuses the MOST RECENTLY ADDED stored string that ENDS WITH it ("handle" lands
 *   inside "linux,phandle"; even "phandle" does, if "linux,phandle" was stored after
 *   "phandle"). `FDT_CREATE_FLAG_NO_NAME_DEDUP` stores every name again.
 * - A property whose name was stored but whose struct space then ran out rolls the strings
 *   size back; the name's bytes stay in the free space (libfdt does not clear them) and can
 *   later show up as padding of struct tokens written over them. This writer reproduces that.
 * - `finish` appends FDT_END, moves the strings block down to follow the struct block, adds
 *   `size_dt_strings` to every `nameoff`, sets totalsize to the end of the strings, magic to
 *   FDT_MAGIC and last_comp_version to 16. No tail padding. No nesting checks: unbalanced
 *   BEGIN/END sequences finish without complaint.
 *
 * ## State machine (libfdt keeps it in the header; this writer keeps it in fields)
 *
 * ```text
 *  state        header while in it                      allowed calls
 *  reservemap   magic 0x2ff20112, off_dt_strings 0      addReservemapEntry, finishReservemap (-> struct), resize
 *  struct       magic 0x2ff20112, off_dt_strings        beginNode, endNode, property*, finish (-> finished),
 *               == totalsize                            resize
 *  finished     magic 0xd00dfeed                        none
 * ```
 *
 * (`setBootCpuidPhys` is a plain header write, like libfdt's `fdt_set_boot_cpuid_phys`: allowed
 * in every state.)
 *
 * During writing, `last_comp_version` holds the create flags and `version` is 17.
 * libfdt's probes, and what they return here:
 * - `FDT_SW_PROBE` (resize): magic FDT_MAGIC (finished) -> FDT_ERR_BADSTATE; any other magic
 *   than FDT_SW_MAGIC -> FDT_ERR_BADMAGIC. This writer owns its buffer, so its magic is always
 *   one of the two: only BADSTATE can occur.
 * - `FDT_SW_PROBE_MEMRSV` (addReservemapEntry, finishReservemap): the probe, then
 *   off_dt_strings != 0 (reserve map already finished) -> FDT_ERR_BADSTATE.
 * - `FDT_SW_PROBE_STRUCT` (beginNode, endNode, property*, finish): the probe, then
 *   off_dt_strings != totalsize (reserve map not finished yet) -> FDT_ERR_BADSTATE.
 * - `fdt_create_with_flags`: bufsize < 48 -> FDT_ERR_NOSPACE, checked before unknown flags ->
 *   FDT_ERR_BADFLAGS.
 * - No room -> FDT_ERR_NOSPACE and the writer is unchanged (except stale bytes, above); a
 *   `resize` to a larger buffer and a retry then succeed.
 *
 * Arguments C cannot even express (a name with a NUL or a character above 0xff, a negative or
 * fractional length, an integer out of range) are refused with FDT_ERR_BADVALUE before
 * anything is written. One deliberate divergence: libfdt 1.6.1 computes the room for a new
 * string in unsigned arithmetic, so a name longer than the whole buffer is written out of
 * bounds; here it is FDT_ERR_NOSPACE.
 *
 * ## Finding names without libfdt's O(table) scan per property
 *
 * libfdt's answer is the lowest address where "name\0" occurs in the strings block. Such an
 * occurrence ends at a NUL, and every NUL ends one stored string, so the answer is the tail of
 * the MOST RECENTLY stored string that ends with the name. Two modes:
 *
 * - Few strings (up to SCAN_MAX_STRINGS): the stored strings are kept as strings too, and a
 *   name is compared with each, newest first (length first; `===` for an exact repeat, the
 *   usual case; `endsWith` otherwise). No table, no Map: for the small trees most callers
 *   write, this costs less than setting up an index.
 * - More: every suffix of every stored string (the empty one included) goes into an
 *   open-addressing table keyed by a hash that extends from a suffix to the next longer one in
 *   O(1) (FNV-1a over the characters from the last one backwards), so storing a name costs
 *   O(its length) and no allocation. A newer string overwrites the slots of its suffixes: a
 *   slot holds the MOST RECENT suffix with its hash, which is exactly libfdt's answer once the
 *   bytes are verified; on a hash collision the lookup falls back to libfdt's own scan. On
 *   top, a Map from each name seen to its hash and last answer makes a repeated name one Map
 *   lookup plus one probe: the answer is still right while the slot for its hash still holds
 *   it. The table is built from the stored strings (oldest first) when the mode switches.
 *
 * @packageDocumentation
 */
import { FdtError } from "./errors.js";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_LAST_COMP_VERSION,
  FDT_LAST_SUPPORTED_VERSION,
  FDT_MAGIC,
  FDT_MAX_TOTALSIZE,
  FDT_PROP,
  FDT_RESERVE_ENTRY_SIZE,
  FDT_SW_MAGIC,
  FDT_SW_RSVMAP_OFFSET,
  HEADER,
} from "./layout.js";
import type { FdtNode, FdtTree } from "./tree.js";

/** `fdt_create_with_flags` flag: store every property name again instead of searching the strings block. */
export const FDT_CREATE_FLAG_NO_NAME_DEDUP = 0x1;
/** Every flag `FdtSequentialWriter` (and libfdt 1.6.1) knows; any other bit is FDT_ERR_BADFLAGS. */
export const FDT_CREATE_FLAGS_ALL = FDT_CREATE_FLAG_NO_NAME_DEDUP;

/** The phase a sequential writer is in (see the state machine in the module comment). */
export type FdtSequentialWriterState = "reservemap" | "struct" | "finished";

/** Options of {@link FdtSequentialWriter.growable}. */
export interface FdtSequentialWriterGrowableOptions {
  /** Initial buffer size; default 1024 (pylibfdt's `FdtSw`). At least 48. */
  initialSize?: number;
  /** `fdt_create_with_flags` flags; default 0. */
  flags?: number;
}

const PHASE_RESERVEMAP = 0;
const PHASE_STRUCT = 1;
const PHASE_FINISHED = 2;
const PHASE_NAMES: readonly FdtSequentialWriterState[] = ["reservemap", "struct", "finished"];

/** BEGIN_NODE tag; PROP tag + len + nameoff. */
const NODE_HEADER_SIZE = 4;
const PROP_HEADER_SIZE = 12;

/** `lookupHashed` result when no stored string ends with the name (libfdt offsets are all < 0). */
const NOT_FOUND = 1;

/** Up to this many stored strings, names are found by comparing with each (see the module comment). */
const SCAN_MAX_STRINGS = 24;
/**
 * Values up to this many bytes are copied byte by byte, larger ones with `set`. (Not lower:
 * a value that is a view of the working buffer itself must keep copying exactly as before.)
 */
const SMALL_VALUE_MAX = 16;
/** The suffix table before the index exists (never written: it has no slots). */
const NO_TABLE = new Int32Array(0);

// Tokens as module-local constants (see check-libfdt.ts: loaders may turn imports into reads).
const BEGIN_NODE = FDT_BEGIN_NODE;
const END_NODE = FDT_END_NODE;
const PROP = FDT_PROP;
const END = FDT_END;

/** FNV-1a over a suffix read from its last character backwards: extends to longer suffixes in O(1). */
const SUFFIX_HASH_SEED = 0x811c9dc5 | 0;
const SUFFIX_HASH_PRIME = 0x01000193;
const SUFFIX_TABLE_INITIAL = 256;

/**
 * The de-duplication index's hash of a name (tests use it to build colliding names).
 *
 * @internal
 */
export function suffixHashOf(name: string): number {
  let h = SUFFIX_HASH_SEED;
  for (let i = name.length - 1; i >= 0; i--) h = Math.imul(h ^ name.charCodeAt(i), SUFFIX_HASH_PRIME);
  return h;
}

const U64_LIMIT = 1n << 64n;


/** A property name's suffix hash and its last known position (NOT_FOUND until stored). */
class NameEntry {
  constructor(
    readonly hash: number,
    public pos: number,
  ) {}
}

function badValue(rule: string, detail: string): FdtError {
  return new FdtError("FDT_ERR_BADVALUE", -1, rule, detail);
}

function noSpace(rule: string, detail: string): FdtError {
  return new FdtError("FDT_ERR_NOSPACE", -1, rule, detail);
}

/** A zeroed buffer, or FDT_ERR_NOSPACE if the engine cannot allocate it. */
function allocate(size: number): Uint8Array {
  try {
    return new Uint8Array(size);
  } catch {
    throw noSpace("sw.alloc", `cannot allocate a ${size}-byte buffer`);
  }
}

/** Byte length of `name` as a C string, or FDT_ERR_BADVALUE if C could not pass it. */
function checkedNameLength(name: string, what: string): number {
  const n = name.length;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c === 0 || c > 0xff) {
      throw badValue(
        "sw.name",
        `${what} name has ${c === 0 ? "a NUL" : `character U+${c.toString(16)}`} at index ${i}: names are Latin-1 C strings`,
      );
    }
  }
  return n;
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw badValue("sw.value", `${what} must be an integer in [0, 2^32 - 1], got ${value}`);
  }
}

function checkU64(value: bigint, what: string): void {
  if (value < 0n || value >= U64_LIMIT) {
    throw badValue("sw.value", `${what} must be in [0, 2^64 - 1], got ${value}`);
  }
}

/**
 * libfdt's sequential writer (`fdt_sw.c`), byte-identical to libfdt 1.6.1: create, add reserve
 * entries, finish the reserve map, write nodes and properties in order, finish.
 *
 * Every failing call throws an {@link FdtError} with libfdt's code (offset -1) and leaves the
 * writer as libfdt leaves its buffer, so a caller can `resize` and retry after
 * FDT_ERR_NOSPACE. {@link FdtSequentialWriter.growable} does that automatically.
 *
 * ```ts
 * const w = FdtSequentialWriter.growable();
 * w.finishReservemap();
 * w.beginNode("");
 * w.propertyString("compatible", "kho-v1");
 * w.endNode();
 * const blob = w.finish();
 * ```
 */
export class FdtSequentialWriter {
  // Fields are `declare`d and set in the constructor, in one order: cheaper to construct than
  // class-field initializers (which define each property one by one).
  private declare buf: Uint8Array;
  private declare totalsize: number;
  /** Start of the struct block (during the reserve-map phase: end of the entries so far). */
  private declare offDtStruct: number;
  private declare sizeDtStruct: number;
  private declare sizeDtStrings: number;
  private declare phase: number;
  private declare readonly createFlags: number;
  private declare readonly dedup: boolean;
  private declare autoGrow: boolean;
  private declare bootCpuid: number;
  /** The one DataView of `buf` (big-endian words; replaced with the buffer on resize). */
  private declare view: DataView;
  /**
   * Scan mode (see the module comment): every stored string, and its position relative to the
   * end of the buffer (negative), oldest first. Emptied when the index takes over.
   */
  private declare storedNames: string[];
  private declare stored: number[];
  /**
   * Index mode: an open-addressing table from the hash of every suffix of every stored string
   * (the empty suffix included) to the position of that suffix relative to the end of the
   * buffer (negative; 0 marks an empty slot). A newer string overwrites the slots of its
   * suffixes, so a slot holds the most recent suffix with that hash; a lookup verifies the
   * bytes and falls back to libfdt's scan on a (rare) hash collision. NO_TABLE in scan mode.
   */
  private declare suffixHashes: Int32Array;
  private declare suffixPositions: Int32Array;
  private declare suffixCount: number;
  /**
   * Index mode: every property name seen, with its suffix hash and the answer last found for
   * it. The answer stays right while the index still holds it for that hash (a newer string
   * ending with the name would have replaced it), so a repeated name costs one Map lookup and
   * one probe. Undefined in scan mode.
   */
  private declare names: Map<string, NameEntry> | undefined;
  /** Absolute offsets of every property's nameoff field, for the fix-up in `finish`. */
  private declare readonly nameoffFields: number[];

  /**
   * `fdt_create_with_flags(buf, bufsize, flags)`: a zeroed buffer of `bufsize` bytes in the
   * reserve-map phase.
   *
   * @throws FdtError FDT_ERR_NOSPACE if `bufsize` < 48; FDT_ERR_BADFLAGS for flags outside
   *   {@link FDT_CREATE_FLAGS_ALL}; FDT_ERR_BADVALUE if `bufsize` is not an integer <= 2^31 - 1.
   */
  constructor(bufsize: number, flags = 0) {
    if (!Number.isInteger(bufsize) || bufsize > FDT_MAX_TOTALSIZE) {
      throw badValue("sw.create.size", `bufsize must be an integer <= ${FDT_MAX_TOTALSIZE}, got ${bufsize}`);
    }
    if (bufsize < FDT_SW_RSVMAP_OFFSET) {
      throw noSpace("sw.create.size", `bufsize ${bufsize} is below the ${FDT_SW_RSVMAP_OFFSET}-byte header`);
    }
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff || (flags & ~FDT_CREATE_FLAGS_ALL) !== 0) {
      throw new FdtError("FDT_ERR_BADFLAGS", -1, "sw.create.flags", `unknown create flags ${flags}`);
    }
    this.buf = allocate(bufsize);
    this.totalsize = bufsize;
    this.offDtStruct = FDT_SW_RSVMAP_OFFSET;
    this.sizeDtStruct = 0;
    this.sizeDtStrings = 0;
    this.phase = PHASE_RESERVEMAP;
    this.createFlags = flags;
    this.dedup = (flags & FDT_CREATE_FLAG_NO_NAME_DEDUP) === 0;
    this.autoGrow = false;
    this.bootCpuid = 0;
    this.view = new DataView(this.buf.buffer);
    this.storedNames = [];
    this.stored = [];
    this.suffixHashes = NO_TABLE;
    this.suffixPositions = NO_TABLE;
    this.suffixCount = 0;
    this.names = undefined;
    this.nameoffFields = [];
    // The header is written whenever the buffer is handed out (workingBuffer, finish).
  }

  /**
   * A writer that grows its buffer whenever a call would fail with FDT_ERR_NOSPACE, like
   * pylibfdt's `FdtSw`. Growing happens before the call, so no call is ever rolled back and the
   * output is the same as with a buffer large enough from the start (which is also what
   * pylibfdt's grow-and-retry produces: a resize copies only the head and the strings).
   */
  static growable(options: FdtSequentialWriterGrowableOptions = {}): FdtSequentialWriter {
    const writer = new FdtSequentialWriter(options.initialSize ?? 1024, options.flags ?? 0);
    writer.autoGrow = true;
    return writer;
  }

  /** The current phase. */
  get state(): FdtSequentialWriterState {
    return PHASE_NAMES[this.phase]!;
  }

  /** The current buffer size (`totalsize` while writing; the blob size once finished). */
  get bufferSize(): number {
    return this.totalsize;
  }

  /** The create flags. */
  get flags(): number {
    return this.createFlags;
  }

  /**
   * The whole working buffer with its header brought up to date: byte for byte what libfdt's
   * buffer holds at this point (intermediate magic and flags, negative nameoffs, strings at
   * the end). A live view, valid until the next `resize` (or automatic growth); treat it as
   * read-only.
   */
  get workingBuffer(): Uint8Array {
    this.syncHeader();
    return this.buf;
  }

  /**
   * Set the header's `boot_cpuid_phys` (libfdt: `fdt_set_boot_cpuid_phys` on the buffer, which
   * no probe guards); 0 unless set. Allowed in every state: after `finish` it writes the header
   * of the blob `finish` returned (the same memory), as the C call would.
   *
   * @throws FdtError FDT_ERR_BADVALUE if `value` is not an integer in [0, 2^32).
   */
  setBootCpuidPhys(value: number): void {
    checkU32(value, "boot_cpuid_phys");
    this.bootCpuid = value;
    if (this.phase === PHASE_FINISHED) this.view.setUint32(HEADER.bootCpuidPhys, value);
  }

  /**
   * `fdt_resize`: move the work into a new zeroed buffer of `bufsize` bytes (head at the start,
   * strings at the end). Stale bytes in the free space are not carried over.
   *
   * @throws FdtError FDT_ERR_BADSTATE once finished; FDT_ERR_NOSPACE if the head and strings
   *   written so far do not fit (or `bufsize` < 0).
   */
  resize(bufsize: number): void {
    if (this.phase === PHASE_FINISHED) throw this.badState("resize");
    if (!Number.isInteger(bufsize) || bufsize > FDT_MAX_TOTALSIZE) {
      throw badValue("sw.resize.size", `bufsize must be an integer <= ${FDT_MAX_TOTALSIZE}, got ${bufsize}`);
    }
    const head = this.offDtStruct + this.sizeDtStruct;
    const tail = this.sizeDtStrings;
    if (bufsize < 0 || head + tail > bufsize) {
      throw noSpace("sw.resize.space", `${head + tail} bytes written do not fit in ${bufsize}`);
    }
    const next = allocate(bufsize);
    next.set(this.buf.subarray(0, head), 0);
    next.set(this.buf.subarray(this.totalsize - tail, this.totalsize), bufsize - tail);
    this.buf = next;
    this.view = new DataView(next.buffer);
    this.totalsize = bufsize;
  }

  /**
   * `fdt_add_reservemap_entry`: append a memory reservation. Reserve-map phase only.
   *
   * @throws FdtError FDT_ERR_BADSTATE after `finishReservemap`; FDT_ERR_NOSPACE;
   *   FDT_ERR_BADVALUE if a value is outside [0, 2^64).
   */
  addReservemapEntry(address: bigint, size: bigint): void {
    this.requireReservemap("addReservemapEntry");
    checkU64(address, "reserve-map address");
    checkU64(size, "reserve-map size");
    this.putReserveEntry(address, size);
  }

  /**
   * `fdt_finish_reservemap`: write the terminating (0, 0) entry and enter the struct phase.
   *
   * @throws FdtError FDT_ERR_BADSTATE if already finished; FDT_ERR_NOSPACE.
   */
  finishReservemap(): void {
    this.requireReservemap("finishReservemap");
    this.putReserveEntry(null, 0n);
    this.phase = PHASE_STRUCT;
  }

  /**
   * `fdt_begin_node`: open a node (`""` for the root). Struct phase only.
   *
   * @throws FdtError FDT_ERR_BADSTATE; FDT_ERR_NOSPACE; FDT_ERR_BADVALUE for a name C cannot
   *   pass (NUL or a character above 0xff).
   */
  beginNode(name: string): void {
    this.requireStruct("beginNode");
    const n = checkedNameLength(name, "node");
    const need = NODE_HEADER_SIZE + ((n + 1 + 3) & ~3);
    const at = this.grabStruct(need, 0, "sw.space.struct");
    const buf = this.buf;
    this.view.setUint32(at, BEGIN_NODE);
    const p = at + NODE_HEADER_SIZE;
    for (let i = 0; i < n; i++) buf[p + i] = name.charCodeAt(i);
    buf[p + n] = 0;
  }

  /**
   * `fdt_end_node`: close the innermost node. Struct phase only; nesting is not checked.
   *
   * @throws FdtError FDT_ERR_BADSTATE; FDT_ERR_NOSPACE.
   */
  endNode(): void {
    this.requireStruct("endNode");
    const at = this.grabStruct(4, 0, "sw.space.struct");
    this.view.setUint32(at, END_NODE);
  }

  /**
   * `fdt_property`: a property with a copy of `value`. Struct phase only.
   *
   * @throws FdtError FDT_ERR_BADSTATE; FDT_ERR_NOSPACE; FDT_ERR_BADVALUE for a bad name.
   */
  property(name: string, value: Uint8Array): void {
    const len = value.length;
    const at = this.reserveProperty(name, len);
    const buf = this.buf;
    if (len <= SMALL_VALUE_MAX) {
      for (let i = 0; i < len; i++) buf[at + i] = value[i]!;
    } else {
      buf.set(value, at);
    }
  }

  /**
   * `fdt_property_string`: a property holding `value` and a terminating NUL. `value` is
   * written as Latin-1 (one byte per character).
   *
   * @throws FdtError as {@link FdtSequentialWriter.property}; FDT_ERR_BADVALUE if `value`
   *   holds a NUL or a character above 0xff (use `property` for string lists).
   */
  propertyString(name: string, value: string): void {
    this.requireStruct("propertyString");
    const n = value.length;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c === 0 || c > 0xff) {
        throw badValue("sw.value", `string value has ${c === 0 ? "a NUL" : `character U+${c.toString(16)}`} at index ${i}`);
      }
    }
    const at = this.reserveProperty(name, n + 1);
    const buf = this.buf;
    for (let i = 0; i < n; i++) buf[at + i] = value.charCodeAt(i);
    buf[at + n] = 0;
  }

  /**
   * `fdt_property_u32`: a one-cell big-endian property.
   *
   * @throws FdtError as {@link FdtSequentialWriter.property}; FDT_ERR_BADVALUE if `value` is
   *   not an integer in [0, 2^32).
   */
  propertyU32(name: string, value: number): void {
    this.requireStruct("propertyU32");
    checkU32(value, "u32 property value");
    const at = this.reserveProperty(name, 4);
    this.view.setUint32(at, value);
  }

  /**
   * `fdt_property_u64`: a two-cell big-endian property. The value is a `bigint` (this is an API
   * edge where the full range matters).
   *
   * @throws FdtError as {@link FdtSequentialWriter.property}; FDT_ERR_BADVALUE if `value` is
   *   outside [0, 2^64).
   */
  propertyU64(name: string, value: bigint): void {
    this.requireStruct("propertyU64");
    checkU64(value, "u64 property value");
    const at = this.reserveProperty(name, 8);
    this.view.setBigUint64(at, value);
  }

  /**
   * `fdt_property_placeholder`: a property of `len` bytes whose value the caller fills in
   * through the returned view. The view aliases the working buffer: fill it before the next
   * call that may move the buffer (`resize`, or any call of a growable writer). Its bytes are
   * not cleared (zero, unless stale bytes lie there, as in libfdt).
   *
   * @throws FdtError as {@link FdtSequentialWriter.property}; FDT_ERR_BADVALUE if `len` is not
   *   an integer in [0, 2^31).
   */
  propertyPlaceholder(name: string, len: number): Uint8Array {
    const at = this.reserveProperty(name, len);
    return this.buf.subarray(at, at + len);
  }

  /**
   * `fdt_finish`: append FDT_END, move the strings block down behind the struct block, fix
   * every `nameoff`, and seal the header.
   *
   * @returns the finished blob: a view of the first `totalsize` bytes of the working buffer
   *   (byteOffset 0; the underlying ArrayBuffer may be longer). The writer never touches it
   *   again. `slice()` it to own exactly `totalsize` bytes.
   * @throws FdtError FDT_ERR_BADSTATE outside the struct phase; FDT_ERR_NOSPACE if the 4-byte
   *   END token does not fit.
   */
  finish(): Uint8Array {
    this.requireStruct("finish");
    const at = this.grabStruct(4, 0, "sw.space.struct");
    const view = this.view;
    view.setUint32(at, END);
    const stringsSize = this.sizeDtStrings;
    const oldStrings = this.totalsize - stringsSize;
    const newStrings = this.offDtStruct + this.sizeDtStruct;
    this.buf.copyWithin(newStrings, oldStrings, this.totalsize);
    const fields = this.nameoffFields;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      view.setInt32(f, view.getInt32(f) + stringsSize);
    }
    this.totalsize = newStrings + stringsSize;
    this.phase = PHASE_FINISHED;
    this.syncHeader();
    return this.buf.subarray(0, this.totalsize);
  }

  // ---- internals ------------------------------------------------------------------------

  private badState(call: string): FdtError {
    const why =
      this.phase === PHASE_FINISHED
        ? "the tree is finished"
        : this.phase === PHASE_STRUCT
          ? "the reserve map is already finished"
          : "the reserve map is not finished yet (call finishReservemap first)";
    return new FdtError("FDT_ERR_BADSTATE", -1, `sw.state.${PHASE_NAMES[this.phase]!}`, `${call}() not allowed: ${why}`);
  }

  /** FDT_SW_PROBE_MEMRSV. */
  private requireReservemap(call: string): void {
    if (this.phase !== PHASE_RESERVEMAP) throw this.badState(call);
  }

  /** FDT_SW_PROBE_STRUCT. */
  private requireStruct(call: string): void {
    if (this.phase !== PHASE_STRUCT) throw this.badState(call);
  }

  /** The header libfdt would hold now. */
  private syncHeader(): void {
    const v = this.view;
    const finished = this.phase === PHASE_FINISHED;
    v.setUint32(HEADER.magic, finished ? FDT_MAGIC : FDT_SW_MAGIC);
    v.setUint32(HEADER.totalsize, this.totalsize);
    v.setUint32(HEADER.offDtStruct, this.offDtStruct);
    v.setUint32(
      HEADER.offDtStrings,
      this.phase === PHASE_RESERVEMAP ? 0 : finished ? this.offDtStruct + this.sizeDtStruct : this.totalsize,
    );
    v.setUint32(HEADER.offMemRsvmap, FDT_SW_RSVMAP_OFFSET);
    v.setUint32(HEADER.version, FDT_LAST_SUPPORTED_VERSION);
    v.setUint32(HEADER.lastCompVersion, finished ? FDT_LAST_COMP_VERSION : this.createFlags);
    v.setUint32(HEADER.bootCpuidPhys, this.bootCpuid);
    v.setUint32(HEADER.sizeDtStrings, this.sizeDtStrings);
    v.setUint32(HEADER.sizeDtStruct, this.sizeDtStruct);
  }

  /** Grow (growable writers only) so that `need` more bytes fit between struct and strings. */
  private ensureFree(need: number): void {
    const free = this.totalsize - this.offDtStruct - this.sizeDtStruct - this.sizeDtStrings;
    if (free >= need) return;
    const wanted = Math.max(this.totalsize * 2, this.totalsize + need - free);
    const size = Math.min(wanted, FDT_MAX_TOTALSIZE);
    if (size > this.totalsize) this.resize(size);
  }

  /** One reserve-map entry (two u64s, already range-checked), or the (0, 0) terminator (null). */
  private putReserveEntry(address: bigint | null, size: bigint): void {
    if (this.autoGrow) this.ensureFree(FDT_RESERVE_ENTRY_SIZE);
    const at = this.offDtStruct;
    if (at + FDT_RESERVE_ENTRY_SIZE > this.totalsize) {
      throw noSpace("sw.space.reservemap", `no room for a reserve-map entry at ${at} in a ${this.totalsize}-byte buffer`);
    }
    const view = this.view;
    if (address === null) {
      for (let i = 0; i < FDT_RESERVE_ENTRY_SIZE; i += 4) view.setUint32(at + i, 0);
    } else {
      // setBigUint64 writes each u64 without the four bigint operations of splitting it.
      view.setBigUint64(at, address);
      view.setBigUint64(at + 8, size);
    }
    this.offDtStruct = at + FDT_RESERVE_ENTRY_SIZE;
  }

  /**
   * `fdt_grab_space_`: claim `need` struct bytes, given `pendingStrings` bytes of a string just
   * stored (counted against the room as libfdt does). Returns their absolute offset.
   */
  private grabStruct(need: number, pendingStrings: number, rule: string): number {
    if (this.autoGrow) this.ensureFree(need + pendingStrings);
    const at = this.sizeDtStruct;
    if (at + need > this.totalsize - this.offDtStruct - this.sizeDtStrings - pendingStrings) {
      throw noSpace(rule, `no room for ${need} struct bytes in a ${this.totalsize}-byte buffer`);
    }
    this.sizeDtStruct = at + need;
    return this.offDtStruct + at;
  }

  /**
   * `fdt_property_placeholder`: store or find the name, claim the struct bytes, write the
   * PROP header. Returns the absolute offset of the value.
   */
  private reserveProperty(name: string, len: number): number {
    this.requireStruct("property");
    if (!Number.isInteger(len) || len < 0 || len > FDT_MAX_TOTALSIZE) {
      throw badValue("sw.value", `property length must be an integer in [0, 2^31), got ${len}`);
    }
    const structNeed = PROP_HEADER_SIZE + ((len + 3) & ~3);
    let entry: NameEntry | undefined;
    let nameoff = NOT_FOUND;
    if (this.dedup) {
      const names = this.names;
      if (names === undefined) {
        // Scan mode. A name that matches a stored string (all valid) is valid; one that does
        // not is validated below, before it is stored.
        nameoff = this.scanStored(name);
      } else {
        entry = names.get(name);
        if (entry === undefined) {
          // Validate before any byte comparison: "a\0b" must not match across two stored strings.
          checkedNameLength(name, "property");
          const hash = suffixHashOf(name);
          entry = new NameEntry(hash, this.lookupHashed(name, hash));
          names.set(name, entry);
        } else if (entry.pos === NOT_FOUND || this.slotPosition(entry.hash) !== entry.pos) {
          // Not stored yet, or a newer suffix with this hash arrived: maybe a newer string ends with it.
          entry.pos = this.lookupHashed(name, entry.hash);
        }
        nameoff = entry.pos;
      }
    }
    if (nameoff === NOT_FOUND) {
      // fdt_add_string_: the new string must fit above the struct block as it stands. (In
      // index mode the name was validated when its entry was made.)
      const n = entry !== undefined ? name.length : checkedNameLength(name, "property");
      const strLen = n + 1;
      if (this.autoGrow) this.ensureFree(structNeed + strLen);
      const stringsSize = this.sizeDtStrings + strLen;
      const strAt = this.totalsize - stringsSize;
      if (strAt < this.offDtStruct + this.sizeDtStruct) {
        throw noSpace("sw.space.strings", `no room for the ${strLen}-byte name "${name}"`);
      }
      const buf = this.buf;
      for (let i = 0; i < n; i++) buf[strAt + i] = name.charCodeAt(i);
      buf[strAt + n] = 0;
      // fdt_grab_space_ with the string counted; on failure libfdt rolls the size back and
      // leaves the bytes just written where they are.
      const at = this.grabStruct(structNeed, strLen, "sw.space.struct");
      this.sizeDtStrings = stringsSize;
      nameoff = -stringsSize;
      if (entry !== undefined) {
        this.indexStored(nameoff, n);
        entry.pos = nameoff;
      } else if (this.dedup) {
        this.storedNames.push(name);
        this.stored.push(nameoff);
        if (this.stored.length > SCAN_MAX_STRINGS) this.buildIndex();
      }
      return this.putPropertyHeader(at, len, nameoff);
    }
    const at = this.grabStruct(structNeed, 0, "sw.space.struct");
    return this.putPropertyHeader(at, len, nameoff);
  }

  private putPropertyHeader(at: number, len: number, nameoff: number): number {
    const v = this.view;
    v.setUint32(at, PROP);
    v.setUint32(at + 4, len);
    v.setInt32(at + 8, nameoff);
    this.nameoffFields.push(at + 8);
    return at + PROP_HEADER_SIZE;
  }

  /**
   * Scan mode's `fdt_find_string_`: the tail of the most recently stored string that ends with
   * `name` (position relative to the end of the buffer), NOT_FOUND if none.
   */
  private scanStored(name: string): number {
    const storedNames = this.storedNames;
    const n = name.length;
    for (let i = storedNames.length - 1; i >= 0; i--) {
      const s = storedNames[i]!;
      const extra = s.length - n;
      if (extra < 0) continue;
      if (extra === 0 ? s === name : s.endsWith(name)) return this.stored[i]! + extra;
    }
    return NOT_FOUND;
  }

  /** Switch to index mode: index every stored string, oldest first, as if indexed when stored. */
  private buildIndex(): void {
    let size = SUFFIX_TABLE_INITIAL;
    // Each string of n bytes adds n + 1 suffixes: sizeDtStrings in all.
    while (2 * this.sizeDtStrings > size) size *= 4;
    this.suffixHashes = new Int32Array(size);
    this.suffixPositions = new Int32Array(size);
    this.suffixCount = 0;
    const stored = this.stored;
    for (let i = 0; i < stored.length; i++) {
      const above = i === 0 ? 0 : stored[i - 1]!;
      this.indexStored(stored[i]!, above - stored[i]! - 1);
    }
    this.stored = [];
    this.storedNames = [];
    this.names = new Map<string, NameEntry>();
  }

  /**
   * `fdt_find_string_` over the stored strings: the lowest position (relative to the end of
   * the buffer) where `name` + NUL occurs, i.e. the end of the most recently stored string
   * ending with `name`; NOT_FOUND if none. `h` is `suffixHashOf(name)`.
   */
  private lookupHashed(name: string, h: number): number {
    const hashes = this.suffixHashes;
    const positions = this.suffixPositions;
    const mask = hashes.length - 1;
    for (let slot = (h ^ (h >>> 15)) & mask; ; slot = (slot + 1) & mask) {
      const pos = positions[slot]!;
      if (pos === 0) return NOT_FOUND;
      if (hashes[slot] === h) return this.storedAt(name, pos) ? pos : this.scanStrings(name);
    }
  }

  /** The position the index holds for suffix hash `h`, 0 if none. */
  private slotPosition(h: number): number {
    const hashes = this.suffixHashes;
    const positions = this.suffixPositions;
    const mask = hashes.length - 1;
    for (let slot = (h ^ (h >>> 15)) & mask; ; slot = (slot + 1) & mask) {
      const pos = positions[slot]!;
      if (pos === 0 || hashes[slot] === h) return pos;
    }
  }

  /** Whether `name` + NUL is stored at `pos` (relative to the end of the buffer). */
  private storedAt(name: string, pos: number): boolean {
    const buf = this.buf;
    const at = this.totalsize + pos;
    const n = name.length;
    if (pos + n >= 0 || buf[at + n] !== 0) return false;
    for (let i = 0; i < n; i++) if (buf[at + i] !== name.charCodeAt(i)) return false;
    return true;
  }

  /** libfdt's own search, lowest address first: only after a hash collision. */
  private scanStrings(name: string): number {
    const end = this.totalsize;
    const n = name.length;
    for (let at = end - this.sizeDtStrings; at + n < end; at++) {
      if (this.storedAt(name, at - end)) return at - end;
    }
    return NOT_FOUND;
  }

  /**
   * Record the stored string of `n` bytes at `start` (relative to the end of the buffer): it
   * now wins for every one of its suffixes.
   */
  private indexStored(start: number, n: number): void {
    if (2 * (this.suffixCount + n + 1) > this.suffixHashes.length) this.growSuffixTable(this.suffixCount + n + 1);
    const buf = this.buf;
    const at = this.totalsize + start;
    let h = SUFFIX_HASH_SEED;
    this.putSuffix(h, start + n);
    for (let i = n - 1; i >= 0; i--) {
      h = Math.imul(h ^ buf[at + i]!, SUFFIX_HASH_PRIME);
      this.putSuffix(h, start + i);
    }
  }

  private putSuffix(h: number, pos: number): void {
    const hashes = this.suffixHashes;
    const positions = this.suffixPositions;
    const mask = hashes.length - 1;
    let slot = (h ^ (h >>> 15)) & mask;
    while (positions[slot] !== 0 && hashes[slot] !== h) slot = (slot + 1) & mask;
    if (positions[slot] === 0) this.suffixCount++;
    hashes[slot] = h;
    positions[slot] = pos;
  }

  private growSuffixTable(entries: number): void {
    const oldHashes = this.suffixHashes;
    const oldPositions = this.suffixPositions;
    let size = oldHashes.length;
    while (2 * entries > size) size *= 4;
    this.suffixHashes = new Int32Array(size);
    this.suffixPositions = new Int32Array(size);
    this.suffixCount = 0;
    for (let i = 0; i < oldHashes.length; i++) {
      const pos = oldPositions[i]!;
      if (pos !== 0) this.putSuffix(oldHashes[i]!, pos);
    }
  }
}

/**
 * Exact struct-block bytes of a tree (BEGIN/END per node, every PROP, the END token), walked
 * in the writer's order. Refuses a node that is its own ancestor (the walk would never end)
 * and stops as soon as the size passes what a blob can hold.
 */
function structSizeOf(root: FdtNode): number {
  let size = 4;
  const nodes: FdtNode[] = [];
  const next: number[] = [];
  const onPath = new Set<FdtNode>();
  const enter = (node: FdtNode): void => {
    if (onPath.has(node)) throw badValue("sw.tree.cycle", `node "${node.name}" contains itself`);
    onPath.add(node);
    size += NODE_HEADER_SIZE + ((node.name.length + 1 + 3) & ~3) + 4;
    for (const p of node.properties) size += PROP_HEADER_SIZE + ((p.value.length + 3) & ~3);
    if (size > FDT_MAX_TOTALSIZE) throw noSpace("sw.tree.size", `the tree needs more than ${FDT_MAX_TOTALSIZE} bytes`);
    nodes.push(node);
    next.push(0);
  };
  enter(root);
  while (nodes.length > 0) {
    const top = nodes.length - 1;
    const node = nodes[top]!;
    const i = next[top]!;
    if (i < node.children.length) {
      next[top] = i + 1;
      enter(node.children[i]!);
    } else {
      onPath.delete(node);
      nodes.pop();
      next.pop();
    }
  }
  return size;
}

/**
 * Encode a tree in libfdt's sequential-write layout: reserve map, then every node in pre-order
 * (properties before children), exactly as a C caller of `fdt_create` ... `fdt_finish` would,
 * plus `boot_cpuid_phys` set in the header. The buffer grows as needed (the bytes do not
 * depend on the buffer size).
 *
 * @returns the blob, a view of exactly `totalsize` bytes at byteOffset 0 of a buffer that may
 *   be slightly longer.
 * @throws FdtError FDT_ERR_BADVALUE for a name or value libfdt could not be given, or a node
 *   that contains itself; FDT_ERR_NOSPACE beyond 2^31 - 1 bytes.
 */
export function encodeSequential(tree: FdtTree): Uint8Array {
  const head = FDT_SW_RSVMAP_OFFSET + (tree.reserveMap.length + 1) * FDT_RESERVE_ENTRY_SIZE;
  const structSize = structSizeOf(tree.root);
  // Room for the strings too, most of the time; the writer grows if not.
  const initial = Math.min(FDT_MAX_TOTALSIZE, head + structSize + 2048);
  const w = FdtSequentialWriter.growable({ initialSize: initial });
  w.setBootCpuidPhys(tree.bootCpuidPhys);
  for (const e of tree.reserveMap) w.addReservemapEntry(e.address, e.size);
  w.finishReservemap();

  // Pre-order with an explicit stack: no recursion limit on deep trees.
  const nodes: FdtNode[] = [];
  const next: number[] = [];
  const enter = (node: FdtNode): void => {
    w.beginNode(node.name);
    for (const p of node.properties) w.property(p.name, p.value);
    nodes.push(node);
    next.push(0);
  };
  enter(tree.root);
  while (nodes.length > 0) {
    const top = nodes.length - 1;
    const node = nodes[top]!;
    const i = next[top]!;
    if (i < node.children.length) {
      next[top] = i + 1;
      enter(node.children[i]!);
    } else {
      w.endNode();
      nodes.pop();
      next.pop();
    }
  }
  return w.finish();
}
