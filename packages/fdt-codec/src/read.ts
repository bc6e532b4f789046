/**
 * The reader: a zero-copy, lazily materialised index over a blob.
 *
 * `Fdt.from(bytes)` checks the header, counts the reserve map and makes ONE pass over the
 * structure block that records where every node and property is. Nothing else is built:
 * names become strings and values become `subarray` views only when asked for. Nodes and
 * properties are named by integer handles (their index in walk order), not by objects.
 *
 * ## Header (as libfdt 1.6.1's `fdt_check_header`, then `fdt_check_full`'s buffer check)
 *
 * ```text
 *  rule               failure                                             code
 *  header.size        buffer shorter than a v1 header (28 bytes)          TRUNCATED
 *  header.magic       magic != 0xd00dfeed (an unfinished 0x2ff20112 too)  BADMAGIC
 *  header.version     version < 2, last_comp_version > 17, version < last_comp
 *                                                                         BADVERSION
 *  header.totalsize   totalsize < header size or > INT_MAX                TRUNCATED
 *  header.buffer      buffer shorter than totalsize                       TRUNCATED
 *  header.rsvmap      off_mem_rsvmap outside [header, totalsize]          TRUNCATED
 *  header.struct      v17+: [off, off+size] outside [header, totalsize];
 *                     v2..v16: off outside it (the block runs to totalsize) TRUNCATED
 *  header.strings     [off, off+size] outside [header, totalsize]          TRUNCATED
 * ```
 *
 * Versions 2..18 are read (v2..v15 with full-path node names and 8-aligned long values);
 * the header size follows the version (v2 32, v3..v16 36, v17+ 40). Like libfdt, the
 * strings check of a v2 header uses the word at offset 32 although v2 has no
 * `size_dt_strings` (it is whatever follows the header; 0 past the buffer), while names
 * of any version before 17 are only bounded by totalsize.
 *
 * ## Reserve map
 *
 * 16-byte entries from `off_mem_rsvmap`; the first entry of size 0 ends the map (libfdt's
 * `fdt_num_mem_rsv`). An entry is readable while it ends at or before totalsize; a map
 * that reaches totalsize without its terminator is TRUNCATED (`rsvmap.terminator`).
 *
 * ## Structure block: the state machine
 *
 * Offsets are absolute in this module; alignment (the tag alignment, and the 8-byte value
 * alignment of versions before 16) is relative to the start of the block, as in libfdt,
 * because libfdt 1.6.1 does not require the block itself to be aligned. The limit is
 * `off_dt_struct + size_dt_struct` (v17+) or totalsize (v2..v16).
 *
 * ```text
 *  token       needs (else BADSTRUCTURE: libfdt's         then
 *              "premature end" after a tag)
 *  BEGIN_NODE  a NUL before the limit                     open a node (child of the open
 *                                                         node, or a top-level node)
 *  PROP        12 header bytes and the value before       a property of the open node (an
 *              the limit; nameoff < strings size and a    "orphan" outside any node);
 *              NUL before the block end (else BADOFFSET   bad name: BADOFFSET/TRUNCATED
 *              / TRUNCATED)
 *  END_NODE                                               close; BADSTRUCTURE if none open
 *  NOP                                                    nothing
 *  END                                                    stop; BADSTRUCTURE if a node is open
 *  other                                                  BADSTRUCTURE (struct.token)
 *  (limit)     the tag itself past the limit              TRUNCATED (struct.truncated)
 * ```
 *
 * Everything libfdt 1.6.1's `fdt_check_full` accepts is indexed, and a little more. The
 * oddities it accepts, and what this reader does with them:
 * - a structure block holding only END (or only NOPs and properties): `root` is -1;
 * - a property before the root, or after it closed: an orphan property (owner -1), counted
 *   in `propertyCount`, reachable from {@link Fdt.firstOrphanProperty};
 * - NOPs anywhere, empty names, names holding '/', duplicate siblings: indexed as they are;
 * - properties after subnodes: listed with the node's others, in blob order, but (as in
 *   libfdt, whose property lookups stop at the first subnode) not found by
 *   {@link Fdt.getProperty} and the lookups built on it (phandles, aliases);
 * - a named root (libfdt's check rejects it, its reader does not): `root` is that node;
 * - a second top-level node (check rejects, reader accepts): the next sibling of `root`.
 *
 * Deliberate differences from libfdt 1.6.1:
 * - it adds a PROP's length in wrapping 32-bit arithmetic, so a length near 2^32 can step
 *   backwards into the property's own header (or hang its walk); here such a length runs
 *   past the limit (BADSTRUCTURE, `struct.prop-truncated`);
 * - before v16 a node name is a full path and libfdt's `fdt_get_name` fails on one
 *   without '/'; here the name is then the whole stored string;
 * - path lookups start at the root node, not at offset 0 of the block (libfdt cannot
 *   navigate a blob whose first token is a NOP or a property), and bound alias chains.
 *
 * ## Index layout
 *
 * Two `Int32Array`s of fixed-size records, exactly `nodeCount` and `propertyCount` records
 * long (a node takes at least 12 bytes: BEGIN_NODE, an empty name, END_NODE; a property at
 * least 12, which bounds both by the block size):
 *
 * ```text
 *  node     [0] BEGIN_NODE offset  [1] name start  [2] name end (its NUL)  [3] parent
 *           [4] first child        [5] next sibling [6] first property     [7] depth
 *  property [0] PROP offset  [1] nameoff  [2] value offset  [3] value length
 *           [4] owner node   [5] next property of the same owner
 * ```
 *
 * Where the memory comes from (speed: on a blob of a few hundred bytes, a fresh backing
 * store per array costs more than the whole walk):
 * - the walk writes into scratch arrays kept by the module between calls (grown
 *   geometrically as needed, capped by the block size; not kept once they pass
 *   `SCRATCH_KEEP_INTS`); the scratch is taken for the walk and given back after it,
 *   so a re-entrant call would get fresh arrays, never the ones in use;
 * - the finished index is copied into storage of exactly its size: its own buffer when
 *   large, else a slice carved from a shared pool block (as Node's `Buffer` pool does).
 *   Slices are disjoint and never handed out twice, so no two `Fdt`s share index memory;
 *   a block stays alive while an `Fdt` using it does.
 *
 * @packageDocumentation
 */
import { FdtError, type FdtErrorCode } from "./errors.js";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_MAGIC,
  FDT_MAX_PHANDLE,
  FDT_MAX_TOTALSIZE,
  FDT_NOP,
  FDT_PROP,
  FDT_RESERVE_ENTRY_SIZE,
  HEADER,
  headerSizeForVersion,
  type FdtHeader,
  type FdtReserveEntry,
} from "./layout.js";
import type { FdtNode, FdtTree } from "./tree.js";
import { decodeLatin1, decodeLatin1Interned } from "./wire/strings.js";

// Tokens as module-local constants: the hot loops then compare against literals even where
// a loader turns imports into property reads (vitest's module transform does).
const BEGIN_NODE = FDT_BEGIN_NODE;
const END_NODE = FDT_END_NODE;
const PROP = FDT_PROP;
const NOP = FDT_NOP;
const END = FDT_END;

/** Oldest version libfdt reads (`FDT_FIRST_SUPPORTED_VERSION`). */
const FIRST_READABLE_VERSION = 2;
/** Highest `last_comp_version` libfdt reads (`FDT_LAST_SUPPORTED_VERSION`). */
const LAST_COMPATIBLE_VERSION = 17;
/** A v1 header: the least `fdt_check_full` wants to see. */
const V1_HEADER_SIZE = 28;
/** Smallest node (BEGIN_NODE, empty name, END_NODE) and smallest property (PROP, len, nameoff). */
const MIN_NODE_BYTES = 12;
const MIN_PROP_BYTES = 12;
/** Record strides of the two index arrays. */
const NODE_STRIDE = 8;
const PROP_STRIDE = 6;
/** Aliases may point at aliases (libfdt 1.6.1 recurses without a bound); this bounds the chain. */
const MAX_ALIAS_DEPTH = 64;
const SLASH = 0x2f;
const AT_SIGN = 0x40;

/** Node record fields. */
const N_OFFSET = 0;
const N_NAME_START = 1;
const N_NAME_END = 2;
const N_PARENT = 3;
const N_FIRST_CHILD = 4;
const N_NEXT_SIBLING = 5;
const N_FIRST_PROP = 6;
const N_DEPTH = 7;
/** Property record fields. */
const P_OFFSET = 0;
const P_NAMEOFF = 1;
const P_VALUE = 2;
const P_LENGTH = 3;
const P_OWNER = 4;
const P_NEXT = 5;

/** Property names are cached in an array indexed by nameoff up to this many bytes of strings. */
const PROP_NAME_ARRAY_MAX = 1 << 16;
/**
 * Private values (see privateValue): in a structure block of at most OWN_VALUES_STRUCT_MAX
 * bytes, a value of at most OWN_VALUE_MAX bytes gets its own array (V8 keeps those on its heap).
 */
const OWN_VALUE_MAX = 64;
const OWN_VALUES_STRUCT_MAX = 2048;
/** Up to this many bytes a copying loop beats a call that copies (`slice`, `set`). */
const SMALL_COPY_MAX = 4;

/** Pool blocks for small indexes: 16 KiB, handed out in disjoint slices of up to 4 KiB. */
const INDEX_POOL_INTS = 4096;
const INDEX_POOL_MAX_SLICE = 1024;
/** Scratch arrays larger than this (in elements) are dropped after the walk, not kept. */
const SCRATCH_KEEP_INTS = 1 << 16;

function fail(code: FdtErrorCode, offset: number, rule: string, detail: string): never {
  throw new FdtError(code, offset, rule, detail);
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Options of {@link Fdt.toTree} and {@link decodeTree}. */
export interface FdtToTreeOptions {
  /**
   * Give values as `subarray` views of the input bytes (the tree then aliases them).
   * Default false: values are private copies, so the tree never aliases the input (views
   * of one private copy of the structure block, made once per call; in a small block,
   * small values are arrays of their own).
   */
  readonly shareValues?: boolean;
  /**
   * What to do with what the tree model cannot hold: orphan properties (outside any node)
   * and top-level nodes after the root. `"error"` (default) throws FDT_ERR_BADSTRUCTURE
   * (`tree.orphan-property`, `tree.second-root`); `"drop"` leaves them out.
   */
  readonly outside?: "error" | "drop";
}

/**
 * A read-only, indexed view of a flattened device tree. Create it with {@link Fdt.from}.
 *
 * Handles: a node is an integer in `[0, nodeCount)` and a property an integer in
 * `[0, propertyCount)`, both numbered in blob order; -1 means "none". Offsets are absolute
 * byte offsets in the blob (subtract {@link Fdt.structStart} for libfdt's offsets).
 * Methods taking a handle do not check it: an out-of-range handle gives unspecified
 * results (never a write, never a read outside the index).
 */
export class Fdt {
  // Fields are `declare`d and set in the constructor, in one order: cheaper to construct than
  // class-field definitions followed by assignments.

  /** The bytes the index refers to (the whole buffer given to {@link Fdt.from}). */
  declare readonly bytes: Uint8Array;
  /** The header; fields a version does not have read as 0. */
  declare readonly header: FdtHeader;
  /** The root node: the first top-level node, or -1 when the structure block has none. */
  declare readonly root: number;
  /** Number of nodes (including any top-level node after the root). */
  declare readonly nodeCount: number;
  /** Number of properties (including orphans, see {@link Fdt.firstOrphanProperty}). */
  declare readonly propertyCount: number;
  /** First property that belongs to no node (before the root or after it), or -1. */
  declare readonly firstOrphanProperty: number;
  /** Absolute offset of the strings block (`off_dt_strings`); `nameoff`s count from here. */
  declare readonly stringsStart: number;
  /** Absolute end (exclusive) of the strings block per the header (totalsize before v3). */
  declare readonly stringsEnd: number;
  /** Absolute offset of the structure block (`off_dt_struct`); libfdt's offsets count from here. */
  declare readonly structStart: number;
  /** Absolute end (exclusive) of the structure block as walked: the limit, not where END was. */
  declare readonly structEnd: number;
  /** Number of reserve-map entries before the terminator. */
  declare readonly reserveMapLength: number;

  private declare readonly nodes: Int32Array;
  private declare readonly props: Int32Array;
  private declare nodeNames: (string | undefined)[] | undefined;
  /**
   * Property names by `nameoff`, made on first use: an array indexed by `nameoff` when the
   * strings block is small (the common case; cheaper than a Map), else a Map.
   */
  private declare propNameArray: (string | undefined)[] | undefined;
  private declare propNameMap: Map<number, string> | undefined;
  private declare phandles: Map<number, number> | undefined;

  private constructor(
    bytes: Uint8Array,
    header: FdtHeader,
    index: StructIndex,
    stringsStart: number,
    stringsEnd: number,
    reserveMapLength: number,
  ) {
    this.bytes = bytes;
    this.header = header;
    this.nodes = index.nodes;
    this.props = index.props;
    this.nodeCount = index.nodeCount;
    this.propertyCount = index.propCount;
    this.root = index.nodeCount > 0 ? 0 : -1;
    this.firstOrphanProperty = index.firstOrphan;
    this.structStart = index.start;
    this.structEnd = index.end;
    this.stringsStart = stringsStart;
    this.stringsEnd = stringsEnd;
    this.reserveMapLength = reserveMapLength;
    this.nodeNames = undefined;
    this.propNameArray = undefined;
    this.propNameMap = undefined;
    this.phandles = undefined;
  }

  /**
   * Check the header and index the structure block. Throws {@link FdtError} (with libfdt's
   * code, the byte offset and a rule id) for anything that cannot be indexed safely; see
   * the module documentation for the rules. Never copies `bytes`.
   */
  static from(bytes: Uint8Array): Fdt {
    const header = readHeader(bytes);
    const total = header.totalsize;
    const reserveMapLength = countReserveEntries(bytes, header.offMemRsvmap, total);
    const structStart = header.offDtStruct;
    const structEnd = structEndOf(header);
    const stringsStart = header.offDtStrings;
    const stringsEnd = stringsEndOf(header);
    const nameLimit = nameLimitOf(header);
    const index = indexStruct(bytes, structStart, structEnd, stringsStart, nameLimit, header.version, null)!;
    return new Fdt(bytes, header, index, stringsStart, stringsEnd, reserveMapLength);
  }

  // ---- nodes -------------------------------------------------------------------------

  /** Absolute offset of the node's BEGIN_NODE token. */
  nodeOffset(n: number): number {
    return this.nodes[n * NODE_STRIDE + N_OFFSET]!;
  }

  /**
   * The node's name as stored (Latin-1, with any `@unit-address`; `""` for a normal root).
   * For versions before 16, names are full paths in the blob and this is the part after
   * the last '/', as libfdt's `fdt_get_name` gives (the whole name when it has no '/').
   */
  nodeName(n: number): string {
    let cache = this.nodeNames;
    if (cache === undefined) cache = this.nodeNames = new Array<string | undefined>(this.nodeCount);
    let name = cache[n];
    if (name === undefined) {
      const base = n * NODE_STRIDE;
      name = cache[n] = decodeLatin1(this.bytes, this.nodes[base + N_NAME_START]!, this.nodes[base + N_NAME_END]!);
    }
    return name;
  }

  /** Absolute offsets of the node's name bytes: `[start, end)`, `end` being its NUL. */
  nodeNameStart(n: number): number {
    return this.nodes[n * NODE_STRIDE + N_NAME_START]!;
  }
  /** See {@link Fdt.nodeNameStart}. */
  nodeNameEnd(n: number): number {
    return this.nodes[n * NODE_STRIDE + N_NAME_END]!;
  }

  /** Parent node, or -1 for a top-level node. */
  parent(n: number): number {
    return this.nodes[n * NODE_STRIDE + N_PARENT]!;
  }

  /** First child, or -1. */
  firstChild(n: number): number {
    return this.nodes[n * NODE_STRIDE + N_FIRST_CHILD]!;
  }

  /** Next sibling in blob order, or -1. */
  nextSibling(n: number): number {
    return this.nodes[n * NODE_STRIDE + N_NEXT_SIBLING]!;
  }

  /** Depth: 0 for the root (and any other top-level node), 1 for its children... */
  depth(n: number): number {
    return this.nodes[n * NODE_STRIDE + N_DEPTH]!;
  }

  /** First property of the node in blob order, or -1. */
  firstProperty(n: number): number {
    return this.nodes[n * NODE_STRIDE + N_FIRST_PROP]!;
  }

  /** The children of `n`, in order. A convenience; hot paths use firstChild/nextSibling. */
  *children(n: number): Generator<number, void, undefined> {
    for (let c = this.firstChild(n); c >= 0; c = this.nextSibling(c)) yield c;
  }

  /** The properties of `n`, in order. A convenience; hot paths use firstProperty/nextProperty. */
  *properties(n: number): Generator<number, void, undefined> {
    for (let p = this.firstProperty(n); p >= 0; p = this.nextProperty(p)) yield p;
  }

  // ---- properties --------------------------------------------------------------------

  /** Next property of the same owner, or -1. */
  nextProperty(p: number): number {
    return this.props[p * PROP_STRIDE + P_NEXT]!;
  }

  /** Owner node, or -1 for an orphan property. */
  propertyOwner(p: number): number {
    return this.props[p * PROP_STRIDE + P_OWNER]!;
  }

  /** Absolute offset of the PROP token. */
  propertyOffset(p: number): number {
    return this.props[p * PROP_STRIDE + P_OFFSET]!;
  }

  /** `nameoff`: the name's offset inside the strings block (as stored). */
  propertyNameOffset(p: number): number {
    return this.props[p * PROP_STRIDE + P_NAMEOFF]!;
  }

  /** Absolute offset of the value's first byte. */
  propertyValueOffset(p: number): number {
    return this.props[p * PROP_STRIDE + P_VALUE]!;
  }

  /** Value length in bytes. */
  propertyLength(p: number): number {
    return this.props[p * PROP_STRIDE + P_LENGTH]!;
  }

  /** The property's name (Latin-1), cached per `nameoff`. */
  propertyName(p: number): string {
    const nameoff = this.props[p * PROP_STRIDE + P_NAMEOFF]!;
    let array = this.propNameArray;
    if (array === undefined && this.propNameMap === undefined) {
      // The walk checked every nameoff against this span (libfdt's name limit).
      const span = nameLimitOf(this.header) - this.stringsStart;
      if (span <= PROP_NAME_ARRAY_MAX) array = this.propNameArray = new Array<string | undefined>(span);
      else this.propNameMap = new Map<number, string>();
    }
    let name = array !== undefined ? array[nameoff] : this.propNameMap!.get(nameoff);
    if (name === undefined) {
      const start = this.stringsStart + nameoff;
      // The NUL was found during indexing, so this search stays inside the strings block.
      name = decodeLatin1Interned(this.bytes, start, this.bytes.indexOf(0, start));
      if (array !== undefined) array[nameoff] = name;
      else this.propNameMap!.set(nameoff, name);
    }
    return name;
  }

  /** The value: a view of the blob (no copy). */
  propertyValue(p: number): Uint8Array {
    const base = p * PROP_STRIDE;
    const start = this.props[base + P_VALUE]!;
    return this.bytes.subarray(start, start + this.props[base + P_LENGTH]!);
  }

  /**
   * The first property of `n` called `name`, or -1, exactly as libfdt's `fdt_getprop`
   * finds it: the first match in blob order wins when a node repeats a name, and only
   * properties BEFORE the node's first subnode count (libfdt stops at the first
   * BEGIN_NODE; a property after a subnode is listed by firstProperty / nextProperty but
   * invisible here, as to fdtget).
   */
  getProperty(n: number, name: string): number {
    const child = this.firstChild(n);
    const limit = child < 0 ? Infinity : this.nodeOffset(child);
    for (let p = this.firstProperty(n); p >= 0; p = this.nextProperty(p)) {
      if (this.propertyOffset(p) > limit) break;
      if (this.propertyName(p) === name) return p;
    }
    return -1;
  }

  /** The value of {@link Fdt.getProperty}, or `undefined`. */
  getPropertyValue(n: number, name: string): Uint8Array | undefined {
    const p = this.getProperty(n, name);
    return p < 0 ? undefined : this.propertyValue(p);
  }

  /**
   * libfdt's `fdt_get_phandle`: the value of a 4-byte "phandle" property, else of a 4-byte
   * "linux,phandle", else 0.
   */
  phandle(n: number): number {
    let p = this.getProperty(n, "phandle");
    if (p < 0 || this.propertyLength(p) !== 4) p = this.getProperty(n, "linux,phandle");
    return p >= 0 && this.propertyLength(p) === 4 ? u32(this.bytes, this.propertyValueOffset(p)) : 0;
  }

  /**
   * The first node (in blob order) whose {@link Fdt.phandle} is `phandle`, or -1. 0 and
   * 0xffffffff are never phandles (-1). The table is built on first use.
   */
  nodeByPhandle(phandle: number): number {
    if (phandle <= 0 || phandle > FDT_MAX_PHANDLE || !Number.isInteger(phandle)) return -1;
    let table = this.phandles;
    if (table === undefined) {
      table = this.phandles = new Map<number, number>();
      for (let n = 0; n < this.nodeCount; n++) {
        const ph = this.phandle(n);
        if (ph !== 0 && !table.has(ph)) table.set(ph, n);
      }
    }
    return table.get(phandle) ?? -1;
  }

  // ---- paths -------------------------------------------------------------------------

  /**
   * The first child of `n` whose name matches `name` as libfdt's `fdt_subnode_offset`
   * matches: the exact name, or, when `name` has no '@', a stored name that continues with
   * '@' (`"cpu"` finds `"cpu@0"`). First match in blob order wins. -1 when none.
   */
  subnode(n: number, name: string): number {
    return this.subnodeRange(n, name, 0, name.length);
  }

  /**
   * libfdt's `fdt_path_offset`: components separated by one or more '/', each matched by
   * {@link Fdt.subnode}; a path not starting with '/' starts with an alias, looked up in
   * `/aliases` (libfdt 1.6.1: the alias value is used as a path whatever it holds, up to
   * its first NUL). Returns the node or -1 when a component does not exist.
   *
   * Throws FDT_ERR_BADPATH (rule `path.*`) where libfdt returns it: an empty path, an
   * alias that does not exist (or no `/aliases`), or an alias chain longer than 64 (libfdt
   * would recurse forever). A path is cut at its first NUL, as C sees it. A blob without a
   * root node has no paths (-1); libfdt would answer "/" with offset 0.
   */
  nodeByPath(path: string): number {
    return this.resolvePath(path, 0);
  }

  /**
   * The value of the alias `name` as a path string (libfdt 1.6.1's `fdt_get_alias`), or
   * `undefined` when `/aliases` or the property does not exist.
   */
  resolveAlias(name: string): string | undefined {
    const aliases = this.resolvePath("/aliases", 0);
    if (aliases < 0) return undefined;
    const p = this.getProperty(aliases, name);
    if (p < 0) return undefined;
    const start = this.propertyValueOffset(p);
    const end = start + this.propertyLength(p);
    const nul = this.bytes.indexOf(0, start);
    return decodeLatin1(this.bytes, start, nul < 0 || nul > end ? end : nul);
  }

  /** The node's path: `"/"` for the root (whatever its stored name), `"/a/b@1"` below it. */
  pathOf(n: number): string {
    const parts: string[] = [];
    for (let m = n; m >= 0 && this.depth(m) > 0; m = this.parent(m)) parts.push(this.nodeName(m));
    return "/" + parts.reverse().join("/");
  }

  // ---- reserve map -------------------------------------------------------------------

  /** The reserve map, terminator excluded (libfdt: the first entry of size 0 ends it). */
  reserveMap(): FdtReserveEntry[] {
    return readReserveMap(this.bytes, this.header.offMemRsvmap, this.reserveMapLength);
  }

  // ---- tree --------------------------------------------------------------------------

  /**
   * Materialise the whole tree under the root (properties and children in blob order).
   * Throws FDT_ERR_BADSTRUCTURE `tree.no-root` when there is no root, and, unless
   * `options.outside` is `"drop"`, `tree.orphan-property` / `tree.second-root` when the
   * blob holds something outside the root.
   */
  toTree(options: FdtToTreeOptions = {}): FdtTree {
    const root = this.root;
    if (root < 0) fail("FDT_ERR_BADSTRUCTURE", this.structStart, "tree.no-root", "the structure block has no root node");
    if (options.outside !== "drop") {
      const orphan = this.firstOrphanProperty;
      if (orphan >= 0) {
        fail("FDT_ERR_BADSTRUCTURE", this.propertyOffset(orphan), "tree.orphan-property", "a property outside any node");
      }
      const second = this.nextSibling(root);
      if (second >= 0) fail("FDT_ERR_BADSTRUCTURE", this.nodeOffset(second), "tree.second-root", "a second top-level node");
    }
    // Values are views of the input (shareValues), else private (see privateValue): the
    // tree never aliases the caller's bytes.
    const share = options.shareValues === true;
    const bytes = this.bytes;
    const values = valueSource(bytes, this.structStart, this.structEnd);
    // Handles are in pre-order and a parent comes before its children, so one pass over
    // the nodes and one over the properties build the tree (no recursion, no stack).
    const count = this.nodeCount;
    const made = new Array<FdtNode | undefined>(count);
    const nodes = this.nodes;
    for (let n = root; n < count; n++) {
      const base = n * NODE_STRIDE;
      const parent = nodes[base + N_PARENT]!;
      if (n !== root && parent < 0) break; // a second top-level node: dropped
      const node: FdtNode = { name: this.nodeName(n), properties: [], children: [] };
      made[n] = node;
      if (n !== root) made[parent]!.children.push(node);
    }
    const props = this.props;
    for (let p = 0; p < this.propertyCount; p++) {
      const base = p * PROP_STRIDE;
      const ownerIndex = props[base + P_OWNER]!;
      if (ownerIndex < 0) continue; // orphan
      const owner = made[ownerIndex];
      if (owner === undefined) continue; // under a dropped top-level node
      const start = props[base + P_VALUE]!;
      const len = props[base + P_LENGTH]!;
      const value = share ? bytes.subarray(start, start + len) : privateValue(values, start, len);
      owner.properties.push({ name: this.propertyName(p), value });
    }
    const rootNode = made[root]!;
    return { bootCpuidPhys: this.header.bootCpuidPhys, reserveMap: this.reserveMap(), root: rootNode };
  }

  // ---- internals ---------------------------------------------------------------------

  /** Does node `n`'s name match `path[from, to)` as libfdt's `fdt_nodename_eq_`? */
  private nameMatches(n: number, path: string, from: number, to: number): boolean {
    const base = n * NODE_STRIDE;
    const b = this.bytes;
    const start = this.nodes[base + N_NAME_START]!;
    const stored = this.nodes[base + N_NAME_END]! - start;
    const len = to - from;
    if (stored < len) return false;
    for (let i = 0; i < len; i++) if (b[start + i] !== path.charCodeAt(from + i)) return false;
    if (stored === len) return true;
    if (b[start + len] !== AT_SIGN) return false;
    for (let i = from; i < to; i++) if (path.charCodeAt(i) === AT_SIGN) return false;
    return true;
  }

  private subnodeRange(n: number, path: string, from: number, to: number): number {
    for (let c = this.firstChild(n); c >= 0; c = this.nextSibling(c)) {
      if (this.nameMatches(c, path, from, to)) return c;
    }
    return -1;
  }

  private resolvePath(rawPath: string, aliasDepth: number): number {
    const nul = rawPath.indexOf("\0");
    const path = nul < 0 ? rawPath : rawPath.slice(0, nul);
    const end = path.length;
    if (end === 0) fail("FDT_ERR_BADPATH", -1, "path.empty", "empty path");
    let p = 0;
    let node = this.root;
    if (path.charCodeAt(0) !== SLASH) {
      let q = path.indexOf("/");
      if (q < 0) q = end;
      const alias = path.slice(0, q);
      if (aliasDepth >= MAX_ALIAS_DEPTH) {
        fail("FDT_ERR_BADPATH", -1, "path.alias-loop", `alias chain through ${JSON.stringify(alias)} is too long`);
      }
      const target = this.resolveAlias(alias);
      if (target === undefined) fail("FDT_ERR_BADPATH", -1, "path.alias", `no alias ${JSON.stringify(alias)}`);
      node = this.resolvePath(target, aliasDepth + 1);
      p = q;
    }
    while (p < end) {
      while (path.charCodeAt(p) === SLASH) {
        p++;
        if (p === end) return node;
      }
      let q = path.indexOf("/", p);
      if (q < 0) q = end;
      if (node < 0) return -1;
      node = this.subnodeRange(node, path, p, q);
      if (node < 0) return -1;
      p = q;
    }
    return node;
  }
}

// ---- the plain tree -------------------------------------------------------------------

/** Where private values come from: the blob, and the one private copy of its structure block. */
interface ValueSource {
  readonly bytes: Uint8Array;
  readonly structStart: number;
  readonly structEnd: number;
  /** Whether small values get arrays of their own (a small structure block). */
  readonly ownSmall: boolean;
  /**
   * Whether `bytes` is a plain Uint8Array, whose `slice` is a copy into a new Uint8Array (a
   * subclass may differ: Node's Buffer#slice is a view).
   */
  readonly plain: boolean;
  copy: Uint8Array | undefined;
}

function valueSource(bytes: Uint8Array, structStart: number, structEnd: number): ValueSource {
  return {
    bytes,
    structStart,
    structEnd,
    ownSmall: structEnd - structStart <= OWN_VALUES_STRUCT_MAX,
    plain: bytes.constructor === Uint8Array,
    copy: undefined,
  };
}

/**
 * A value that does not alias the input. Mostly a view of ONE private copy of the structure
 * block, made for the first value that needs it (cheaper than a backing store per value). In
 * a small block, a small value gets an array of its own instead (V8 allocates those on its
 * heap, as cheaply as a view), so a small blob usually needs no copy of its block at all; in
 * a large block views are cheaper (fewer bytes for the garbage collector to move).
 */
function privateValue(source: ValueSource, start: number, len: number): Uint8Array {
  const bytes = source.bytes;
  if (len <= OWN_VALUE_MAX && source.ownSmall) {
    // `slice` copies with one call; a loop is cheaper for a few bytes (about 2 ns a byte).
    if (len > SMALL_COPY_MAX && source.plain) return bytes.slice(start, start + len);
    const value = new Uint8Array(len);
    for (let i = 0; i < len; i++) value[i] = bytes[start + i]!;
    return value;
  }
  let copy = source.copy;
  if (copy === undefined) {
    copy = source.copy = new Uint8Array(source.structEnd - source.structStart);
    copy.set(bytes.subarray(source.structStart, source.structEnd));
  }
  return new Uint8Array(copy.buffer, start - source.structStart, len);
}

/**
 * Builds the plain tree while the structure walk runs (`readTree`), giving what
 * `Fdt.toTree` gives: the first top-level node is the root; properties outside any node
 * (orphans) and top-level nodes after the root, with everything in them, are left out, and
 * the offsets of the first of each are noted for the caller to refuse.
 */
class TreeBuilder {
  root: FdtNode | undefined = undefined;
  /** PROP offset of the first orphan property, or -1. */
  firstOrphanAt = -1;
  /** BEGIN_NODE offset of the first top-level node after the root, or -1. */
  secondRootAt = -1;
  /** The node open at each depth; null inside a top-level node that is left out. */
  private readonly open: (FdtNode | null)[] = [];
  /** Property names by nameoff (see Fdt.propertyName). */
  private readonly nameArray: (string | undefined)[] | undefined;
  private readonly nameMap: Map<number, string> | undefined;
  private readonly values: ValueSource;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly share: boolean,
    structStart: number,
    structEnd: number,
    private readonly stringsStart: number,
    nameSpan: number,
  ) {
    this.values = valueSource(bytes, structStart, structEnd);
    if (nameSpan <= PROP_NAME_ARRAY_MAX) {
      this.nameArray = new Array<string | undefined>(nameSpan);
      this.nameMap = undefined;
    } else {
      this.nameArray = undefined;
      this.nameMap = new Map<number, string>();
    }
  }

  /** A BEGIN_NODE at `at` opened at `depth`, its (leaf) name at [nameStart, nameEnd). */
  node(depth: number, at: number, nameStart: number, nameEnd: number): void {
    let node: FdtNode | null = null;
    if (depth === 0) {
      if (this.root === undefined) {
        node = this.root = { name: decodeLatin1(this.bytes, nameStart, nameEnd), properties: [], children: [] };
      } else if (this.secondRootAt < 0) {
        this.secondRootAt = at;
      }
    } else {
      const parent = this.open[depth - 1];
      if (parent !== null && parent !== undefined) {
        node = { name: decodeLatin1(this.bytes, nameStart, nameEnd), properties: [], children: [] };
        parent.children.push(node);
      }
    }
    this.open[depth] = node;
  }

  /** A property of the node open at `depth` (the walk has checked its name and value). */
  property(depth: number, nameoff: number, value: number, len: number): void {
    const owner = this.open[depth];
    if (owner === null || owner === undefined) return; // inside a top-level node that is left out
    const bytes = this.bytes;
    const array = this.nameArray;
    let name = array !== undefined ? array[nameoff] : this.nameMap!.get(nameoff);
    if (name === undefined) {
      const start = this.stringsStart + nameoff;
      name = decodeLatin1Interned(bytes, start, bytes.indexOf(0, start));
      if (array !== undefined) array[nameoff] = name;
      else this.nameMap!.set(nameoff, name);
    }
    owner.properties.push({
      name,
      value: this.share ? bytes.subarray(value, value + len) : privateValue(this.values, value, len),
    });
  }
}

/**
 * `Fdt.from(bytes).toTree(options)` without the index: the same walk with the same checks
 * and errors in the same order (the whole structure block is checked before any `tree.*`
 * error), building the same tree as it goes. `decodeTree` is this.
 */
export function readTree(bytes: Uint8Array, options: FdtToTreeOptions = {}): FdtTree {
  const header = readHeader(bytes);
  const reserveMapLength = countReserveEntries(bytes, header.offMemRsvmap, header.totalsize);
  const structStart = header.offDtStruct;
  const structEnd = structEndOf(header);
  const stringsStart = header.offDtStrings;
  const nameLimit = nameLimitOf(header);
  const tree = new TreeBuilder(bytes, options.shareValues === true, structStart, structEnd, stringsStart, nameLimit - stringsStart);
  indexStruct(bytes, structStart, structEnd, stringsStart, nameLimit, header.version, tree);
  const root = tree.root;
  if (root === undefined) fail("FDT_ERR_BADSTRUCTURE", structStart, "tree.no-root", "the structure block has no root node");
  if (options.outside !== "drop") {
    if (tree.firstOrphanAt >= 0) fail("FDT_ERR_BADSTRUCTURE", tree.firstOrphanAt, "tree.orphan-property", "a property outside any node");
    if (tree.secondRootAt >= 0) fail("FDT_ERR_BADSTRUCTURE", tree.secondRootAt, "tree.second-root", "a second top-level node");
  }
  return { bootCpuidPhys: header.bootCpuidPhys, reserveMap: readReserveMap(bytes, header.offMemRsvmap, reserveMapLength), root };
}

// ---- header and reserve map ----------------------------------------------------------

/** Where the walk stops: off_dt_struct + size_dt_struct (v17+), else totalsize. */
function structEndOf(header: FdtHeader): number {
  return header.version >= 17 ? header.offDtStruct + header.sizeDtStruct : header.totalsize;
}

/** End of the strings block: off_dt_strings + size_dt_strings (v3+), else totalsize. */
function stringsEndOf(header: FdtHeader): number {
  return header.version >= 3 ? header.offDtStrings + header.sizeDtStrings : header.totalsize;
}

/** libfdt bounds a name by size_dt_strings only from v17; before, by totalsize. */
function nameLimitOf(header: FdtHeader): number {
  return header.version >= 17 ? stringsEndOf(header) : header.totalsize;
}

/**
 * Read and check the header (see the module documentation for the rules). Exported for
 * the other readers of this package; most callers want {@link Fdt.from}.
 */
export function readHeader(bytes: Uint8Array): FdtHeader {
  const len = bytes.length;
  if (len < V1_HEADER_SIZE) fail("FDT_ERR_TRUNCATED", 0, "header.size", `${len} bytes cannot hold a header`);
  const magic = u32(bytes, HEADER.magic);
  if (magic !== FDT_MAGIC) fail("FDT_ERR_BADMAGIC", HEADER.magic, "header.magic", `bad magic 0x${magic.toString(16)}`);
  const version = u32(bytes, HEADER.version);
  const lastCompVersion = u32(bytes, HEADER.lastCompVersion);
  if (version < FIRST_READABLE_VERSION || lastCompVersion > LAST_COMPATIBLE_VERSION || version < lastCompVersion) {
    fail("FDT_ERR_BADVERSION", HEADER.version, "header.version", `version ${version}, last compatible ${lastCompVersion}`);
  }
  const hdrSize = headerSizeForVersion(version);
  const totalsize = u32(bytes, HEADER.totalsize);
  if (totalsize < hdrSize || totalsize > FDT_MAX_TOTALSIZE) {
    fail("FDT_ERR_TRUNCATED", HEADER.totalsize, "header.totalsize", `totalsize ${totalsize} for a ${hdrSize}-byte header`);
  }
  if (len < totalsize) fail("FDT_ERR_TRUNCATED", len, "header.buffer", `buffer of ${len} bytes, totalsize ${totalsize}`);
  // From here on the whole header is inside the buffer (totalsize >= hdrSize). Fields a
  // version does not have read as 0. ("Inside" below: in [hdrSize, totalsize].)
  const header: FdtHeader = {
    magic,
    totalsize,
    offDtStruct: u32(bytes, HEADER.offDtStruct),
    offDtStrings: u32(bytes, HEADER.offDtStrings),
    offMemRsvmap: u32(bytes, HEADER.offMemRsvmap),
    version,
    lastCompVersion,
    bootCpuidPhys: version >= 2 ? u32(bytes, HEADER.bootCpuidPhys) : 0,
    sizeDtStrings: version >= 3 ? u32(bytes, HEADER.sizeDtStrings) : 0,
    sizeDtStruct: version >= 17 ? u32(bytes, HEADER.sizeDtStruct) : 0,
  };
  const rsv = header.offMemRsvmap;
  if (rsv < hdrSize || rsv > totalsize) {
    fail("FDT_ERR_TRUNCATED", HEADER.offMemRsvmap, "header.rsvmap", `reserve map at ${rsv} outside the blob`);
  }
  const struct = header.offDtStruct;
  const structEnd = struct + header.sizeDtStruct;
  if (struct < hdrSize || struct > totalsize || (version >= 17 && (structEnd < hdrSize || structEnd > totalsize))) {
    fail("FDT_ERR_TRUNCATED", HEADER.offDtStruct, "header.struct", "structure block outside the blob");
  }
  // libfdt reads size_dt_strings whatever the version (see the module documentation).
  const sizeStrings = len >= HEADER.sizeDtStrings + 4 ? u32(bytes, HEADER.sizeDtStrings) : 0;
  const strings = header.offDtStrings;
  const stringsEnd = strings + sizeStrings;
  if (strings < hdrSize || strings > totalsize || stringsEnd < hdrSize || stringsEnd > totalsize) {
    fail("FDT_ERR_TRUNCATED", HEADER.offDtStrings, "header.strings", "strings block outside the blob");
  }
  return header;
}

/** The first `count` reserve-map entries from `start` (counted by countReserveEntries). */
function readReserveMap(bytes: Uint8Array, start: number, count: number): FdtReserveEntry[] {
  const out: FdtReserveEntry[] = [];
  if (count === 0) return out;
  // One bigint per u64 (getBigUint64), not five (two halves, a shift, an or).
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0, o = start; i < count; i++, o += FDT_RESERVE_ENTRY_SIZE) {
    out.push({ address: view.getBigUint64(o), size: view.getBigUint64(o + 8) });
  }
  return out;
}

/** libfdt's `fdt_num_mem_rsv`, throwing TRUNCATED where it returns it. */
function countReserveEntries(bytes: Uint8Array, start: number, total: number): number {
  let count = 0;
  for (let o = start; o + FDT_RESERVE_ENTRY_SIZE <= total; o += FDT_RESERVE_ENTRY_SIZE, count++) {
    if (u32(bytes, o + 8) === 0 && u32(bytes, o + 12) === 0) return count;
  }
  return fail("FDT_ERR_TRUNCATED", start, "rsvmap.terminator", "the reserve map has no terminator before totalsize");
}

// ---- the structure walk --------------------------------------------------------------

interface StructIndex {
  nodes: Int32Array;
  props: Int32Array;
  nodeCount: number;
  propCount: number;
  firstOrphan: number;
  start: number;
  end: number;
}

/** The walk's working arrays (see "Where the memory comes from" in the module documentation). */
interface WalkScratch {
  nodes: Int32Array;
  props: Int32Array;
  /** Per open node (index = number of open nodes): the node, its last child, its last property. */
  openNode: Int32Array;
  lastChild: Int32Array;
  lastProp: Int32Array;
}

/** The scratch between walks; null while a walk holds it. */
let spareScratch: WalkScratch | null = null;

/**
 * nameoffs already proven to hold a NUL-terminated name (most names repeat):
 * `provenNames[nameoff] === provenStamp`. Each walk takes a new stamp, so entries of another
 * walk never match, not even those of a re-entrant one. 31-bit stamps: the array is cleared
 * once every 2^31 - 1 walks, which keeps that path out of the optimised walk (a path taken
 * every few hundred walks, never seen when the walk was compiled, would throw the compiled
 * code away each time). Kept for strings blocks up to SCRATCH_KEEP_INTS bytes; a larger one
 * gets a byte per strings byte of its own for the walk (as much as the input, not four times).
 */
let provenNames = new Int32Array(0);
let provenStamp = 0;

function newScratch(): WalkScratch {
  return {
    nodes: new Int32Array(64 * NODE_STRIDE),
    props: new Int32Array(256 * PROP_STRIDE),
    openNode: new Int32Array(64),
    lastChild: new Int32Array(64),
    lastProp: new Int32Array(64),
  };
}

/** Give the scratch back after a walk, minus any array that grew too large to keep. */
function releaseScratch(s: WalkScratch): void {
  if (s.nodes.length > SCRATCH_KEEP_INTS) s.nodes = new Int32Array(64 * NODE_STRIDE);
  if (s.props.length > SCRATCH_KEEP_INTS) s.props = new Int32Array(256 * PROP_STRIDE);
  if (s.openNode.length > SCRATCH_KEEP_INTS) {
    s.openNode = new Int32Array(64);
    s.lastChild = new Int32Array(64);
    s.lastProp = new Int32Array(64);
  }
  spareScratch = s;
}

/** The current pool block and how many of its elements are handed out. */
let indexPool = new ArrayBuffer(0);
let indexPoolUsed = INDEX_POOL_INTS;

/**
 * The finished index in exactly-sized storage, the scratch records copied in: a disjoint
 * slice of the pool block for a small index, its own buffer otherwise.
 */
function storeIndex(
  nodes: Int32Array,
  nodeCount: number,
  props: Int32Array,
  propCount: number,
  firstOrphan: number,
  start: number,
  end: number,
): StructIndex {
  const nodeInts = nodeCount * NODE_STRIDE;
  const propInts = propCount * PROP_STRIDE;
  const total = nodeInts + propInts;
  let buffer: ArrayBuffer;
  let at: number;
  if (total <= INDEX_POOL_MAX_SLICE) {
    if (indexPoolUsed + total > INDEX_POOL_INTS) {
      indexPool = new ArrayBuffer(INDEX_POOL_INTS * 4);
      indexPoolUsed = 0;
    }
    buffer = indexPool;
    at = indexPoolUsed * 4;
    indexPoolUsed += total;
  } else {
    buffer = new ArrayBuffer(total * 4);
    at = 0;
  }
  const outNodes = new Int32Array(buffer, at, nodeInts);
  const outProps = new Int32Array(buffer, at + nodeInts * 4, propInts);
  // A copying loop beats `set` (a memmove behind two extra views) only for a few dozen elements.
  if (total <= 64) {
    for (let i = 0; i < nodeInts; i++) outNodes[i] = nodes[i]!;
    for (let i = 0; i < propInts; i++) outProps[i] = props[i]!;
  } else {
    outNodes.set(nodes.subarray(0, nodeInts));
    outProps.set(props.subarray(0, propInts));
  }
  return { nodes: outNodes, props: outProps, nodeCount, propCount, firstOrphan, start, end };
}

function grow(a: Int32Array, needed: number, stride: number, maxRecords: number): Int32Array {
  const records = Math.min(maxRecords, Math.max(needed, (a.length / stride) * 2));
  const next = new Int32Array(records * stride);
  next.set(a);
  return next;
}

/** Double a per-depth array (depth is bounded by the node count, itself bounded by the block). */
function deeper(a: Int32Array): Int32Array {
  const next = new Int32Array(a.length * 2);
  next.set(a);
  return next;
}

/**
 * The one pass over the structure block (see the module documentation): takes the scratch,
 * walks, gives the scratch back. Without a builder it returns the index; with one, the walk
 * hands the builder every node and property instead (and returns null).
 */
function indexStruct(
  b: Uint8Array,
  start: number,
  end: number,
  stringsStart: number,
  nameLimit: number,
  version: number,
  tree: TreeBuilder | null,
): StructIndex | null {
  const scratch = spareScratch ?? newScratch();
  spareScratch = null;
  try {
    return walkStruct(scratch, b, start, end, stringsStart, nameLimit, version, tree);
  } finally {
    releaseScratch(scratch);
  }
}

/**
 * The walk itself. Kept as one flat loop: byte arithmetic, no strings, no objects per token
 * (except what a tree builder makes). Every check is made whether or not a builder is given.
 */
function walkStruct(
  scratch: WalkScratch,
  b: Uint8Array,
  start: number,
  end: number,
  stringsStart: number,
  nameLimit: number,
  version: number,
  tree: TreeBuilder | null,
): StructIndex | null {
  const size = end - start;
  const maxNodes = Math.floor(size / MIN_NODE_BYTES) + 1;
  const maxProps = Math.floor(size / MIN_PROP_BYTES) + 1;
  let nodes = scratch.nodes;
  let props = scratch.props;
  let openNode = scratch.openNode;
  let lastChild = scratch.lastChild;
  let lastProp = scratch.lastProp;
  // Slot 0 is the top level: last top-level node, last orphan property.
  lastChild[0] = -1;
  lastProp[0] = -1;
  let open = 0;
  let nodeCount = 0;
  let propCount = 0;
  let firstOrphan = -1;
  const fullPathNames = version < 16;
  const varAlign = version < 16;
  const stringsSize = nameLimit - stringsStart;
  let proven: Int32Array | Uint8Array;
  let stamp: number;
  if (stringsSize > SCRATCH_KEEP_INTS) {
    proven = new Uint8Array(stringsSize);
    stamp = 1;
  } else {
    if (provenNames.length < stringsSize) provenNames = new Int32Array(Math.max(stringsSize, Math.min(2 * provenNames.length, SCRATCH_KEEP_INTS)));
    if (provenStamp === 0x7fffffff) {
      provenNames.fill(0);
      provenStamp = 0;
    }
    proven = provenNames;
    stamp = ++provenStamp;
  }
  let o = start;
  for (;;) {
    if (o + 4 > end) fail("FDT_ERR_TRUNCATED", o, "struct.truncated", "the structure block ends before FDT_END");
    const tag = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
    if (tag === PROP) {
      if (o + 12 > end) fail("FDT_ERR_BADSTRUCTURE", o, "struct.prop-truncated", "property header runs past the block");
      const len = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
      const nameoff = ((b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!) >>> 0;
      let value = o + 12;
      if (varAlign && len >= 8 && ((value - start) & 7) !== 0) value += 4;
      const valueEnd = value + len;
      if (valueEnd > end) fail("FDT_ERR_BADSTRUCTURE", o, "struct.prop-truncated", `property value of ${len} bytes runs past the block`);
      if (nameoff >= stringsSize || proven[nameoff] !== stamp) {
        if (nameoff >= stringsSize) {
          fail("FDT_ERR_BADOFFSET", o + 8, "prop.nameoff", `nameoff ${nameoff} outside the strings block (${stringsSize} bytes)`);
        }
        let i = stringsStart + nameoff;
        while (i < nameLimit && b[i] !== 0) i++;
        if (i >= nameLimit) fail("FDT_ERR_TRUNCATED", o + 8, "prop.name-nul", `the name at nameoff ${nameoff} has no NUL`);
        proven[nameoff] = stamp;
      }
      if (tree !== null) {
        if (open > 0) tree.property(open - 1, nameoff, value, len);
        else if (tree.firstOrphanAt < 0) tree.firstOrphanAt = o;
      } else {
        if (propCount * PROP_STRIDE >= props.length) props = scratch.props = grow(props, propCount + 1, PROP_STRIDE, maxProps);
        const pb = propCount * PROP_STRIDE;
        props[pb + P_OFFSET] = o;
        props[pb + P_NAMEOFF] = nameoff;
        props[pb + P_VALUE] = value;
        props[pb + P_LENGTH] = len;
        props[pb + P_NEXT] = -1;
        const last = lastProp[open]!;
        if (open > 0) {
          const owner = openNode[open - 1]!;
          props[pb + P_OWNER] = owner;
          if (last < 0) nodes[owner * NODE_STRIDE + N_FIRST_PROP] = propCount;
          else props[last * PROP_STRIDE + P_NEXT] = propCount;
        } else {
          props[pb + P_OWNER] = -1;
          if (last < 0) firstOrphan = propCount;
          else props[last * PROP_STRIDE + P_NEXT] = propCount;
        }
        lastProp[open] = propCount++;
      }
      o = valueEnd + ((start - valueEnd) & 3);
    } else if (tag === BEGIN_NODE) {
      const nameStart = o + 4;
      let i = nameStart;
      let leaf = nameStart;
      if (fullPathNames) {
        while (i < end && b[i] !== 0) {
          if (b[i] === SLASH) leaf = i + 1;
          i++;
        }
      } else {
        while (i < end && b[i] !== 0) i++;
      }
      if (i >= end) fail("FDT_ERR_BADSTRUCTURE", o, "struct.name-nul", "node name runs past the block");
      if (tree !== null) {
        tree.node(open, o, leaf, i);
      } else {
        if (nodeCount * NODE_STRIDE >= nodes.length) nodes = scratch.nodes = grow(nodes, nodeCount + 1, NODE_STRIDE, maxNodes);
        const nb = nodeCount * NODE_STRIDE;
        const parent = open > 0 ? openNode[open - 1]! : -1;
        nodes[nb + N_OFFSET] = o;
        nodes[nb + N_NAME_START] = leaf;
        nodes[nb + N_NAME_END] = i;
        nodes[nb + N_PARENT] = parent;
        nodes[nb + N_FIRST_CHILD] = -1;
        nodes[nb + N_NEXT_SIBLING] = -1;
        nodes[nb + N_FIRST_PROP] = -1;
        nodes[nb + N_DEPTH] = open;
        const last = lastChild[open]!;
        if (last >= 0) nodes[last * NODE_STRIDE + N_NEXT_SIBLING] = nodeCount;
        else if (parent >= 0) nodes[parent * NODE_STRIDE + N_FIRST_CHILD] = nodeCount;
        lastChild[open] = nodeCount;
        if (open + 1 >= openNode.length) {
          openNode = scratch.openNode = deeper(openNode);
          lastChild = scratch.lastChild = deeper(lastChild);
          lastProp = scratch.lastProp = deeper(lastProp);
        }
        openNode[open] = nodeCount++;
        lastChild[open + 1] = -1;
        lastProp[open + 1] = -1;
      }
      open++;
      const next = i + 1;
      o = next + ((start - next) & 3);
    } else if (tag === END_NODE) {
      if (open === 0) fail("FDT_ERR_BADSTRUCTURE", o, "struct.end-node-depth", "FDT_END_NODE with no node open");
      open--;
      o += 4;
    } else if (tag === NOP) {
      o += 4;
    } else if (tag === END) {
      if (open !== 0) fail("FDT_ERR_BADSTRUCTURE", o, "struct.end-depth", `FDT_END with ${open} node(s) still open`);
      break;
    } else {
      fail("FDT_ERR_BADSTRUCTURE", o, "struct.token", `unknown token 0x${(tag >>> 0).toString(16)}`);
    }
  }
  if (tree !== null) return null;
  return storeIndex(nodes, nodeCount, props, propCount, firstOrphan, start, end);
}
