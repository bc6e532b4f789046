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
 * Two interleaved `Int32Array`s grown geometrically, capped by what the block can hold (a
 * node takes at least 12 bytes: BEGIN_NODE, an empty name, END_NODE; a property at least 12):
 *
 * ```text
 *  node     [0] BEGIN_NODE offset  [1] name start  [2] name end (its NUL)  [3] parent
 *           [4] first child        [5] next sibling [6] first property     [7] depth
 *  property [0] PROP offset  [1] nameoff  [2] value offset  [3] value length
 *           [4] owner node   [5] next property of the same owner
 * ```
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
import { decodeLatin1 } from "./wire/strings.js";

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
   * Default false: values are views of one private copy of the structure block, made
   * once per call, so the tree never aliases the input.
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
  /** The bytes the index refers to (the whole buffer given to {@link Fdt.from}). */
  readonly bytes: Uint8Array;
  /** The header; fields a version does not have read as 0. */
  readonly header: FdtHeader;
  /** The root node: the first top-level node, or -1 when the structure block has none. */
  readonly root: number;
  /** Number of nodes (including any top-level node after the root). */
  readonly nodeCount: number;
  /** Number of properties (including orphans, see {@link Fdt.firstOrphanProperty}). */
  readonly propertyCount: number;
  /** First property that belongs to no node (before the root or after it), or -1. */
  readonly firstOrphanProperty: number;
  /** Absolute offset of the strings block (`off_dt_strings`); `nameoff`s count from here. */
  readonly stringsStart: number;
  /** Absolute end (exclusive) of the strings block per the header (totalsize before v3). */
  readonly stringsEnd: number;
  /** Absolute offset of the structure block (`off_dt_struct`); libfdt's offsets count from here. */
  readonly structStart: number;
  /** Absolute end (exclusive) of the structure block as walked: the limit, not where END was. */
  readonly structEnd: number;
  /** Number of reserve-map entries before the terminator. */
  readonly reserveMapLength: number;

  private readonly nodes: Int32Array;
  private readonly props: Int32Array;
  private nodeNames: (string | undefined)[] | undefined;
  private readonly propNames = new Map<number, string>();
  private phandles: Map<number, number> | undefined;

  private constructor(
    bytes: Uint8Array,
    header: FdtHeader,
    index: StructIndex,
    strings: { start: number; end: number },
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
    this.stringsStart = strings.start;
    this.stringsEnd = strings.end;
    this.reserveMapLength = reserveMapLength;
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
    const structEnd = header.version >= 17 ? structStart + header.sizeDtStruct : total;
    const stringsStart = header.offDtStrings;
    const stringsEnd = header.version >= 3 ? stringsStart + header.sizeDtStrings : total;
    // libfdt bounds a name by size_dt_strings only from v17; before, by totalsize.
    const nameLimit = header.version >= 17 ? stringsEnd : total;
    const index = indexStruct(bytes, structStart, structEnd, stringsStart, nameLimit, header.version);
    return new Fdt(bytes, header, index, { start: stringsStart, end: stringsEnd }, reserveMapLength);
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
    let name = this.propNames.get(nameoff);
    if (name === undefined) {
      const start = this.stringsStart + nameoff;
      // The NUL was found during indexing, so this search stays inside the strings block.
      name = decodeLatin1(this.bytes, start, this.bytes.indexOf(0, start));
      this.propNames.set(nameoff, name);
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
    const out: FdtReserveEntry[] = [];
    const b = this.bytes;
    for (let i = 0, o = this.header.offMemRsvmap; i < this.reserveMapLength; i++, o += FDT_RESERVE_ENTRY_SIZE) {
      out.push({
        address: (BigInt(u32(b, o)) << 32n) | BigInt(u32(b, o + 4)),
        size: (BigInt(u32(b, o + 8)) << 32n) | BigInt(u32(b, o + 12)),
      });
    }
    return out;
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
    // Values view either the input or ONE private copy of the structure block (cheaper
    // than a copy per value, and the tree still does not alias the caller's bytes).
    let source = this.bytes;
    let shift = 0;
    if (options.shareValues !== true) {
      source = this.bytes.slice(this.structStart, this.structEnd);
      shift = this.structStart;
    }
    // Handles are in pre-order and a parent comes before its children, so one pass over
    // the nodes and one over the properties build the tree (no recursion, no stack).
    const count = this.nodeCount;
    const made = new Array<FdtNode | undefined>(count);
    const nodes = this.nodes;
    for (let n = root; n < count; n++) {
      const parent = nodes[n * NODE_STRIDE + N_PARENT]!;
      if (n !== root && parent < 0) break; // a second top-level node: dropped
      const node: FdtNode = { name: this.nodeName(n), properties: [], children: [] };
      made[n] = node;
      if (n !== root) made[parent]!.children.push(node);
    }
    const props = this.props;
    for (let p = 0; p < this.propertyCount; p++) {
      const owner = made[props[p * PROP_STRIDE + P_OWNER]!];
      if (owner === undefined) continue; // orphan, or under a dropped top-level node
      const start = props[p * PROP_STRIDE + P_VALUE]! - shift;
      const value = source.subarray(start, start + props[p * PROP_STRIDE + P_LENGTH]!);
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

// ---- header and reserve map ----------------------------------------------------------

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
  // From here on the whole header is inside the buffer (totalsize >= hdrSize).
  const field = (off: number, from: number): number => (version >= from ? u32(bytes, off) : 0);
  const header: FdtHeader = {
    magic,
    totalsize,
    offDtStruct: u32(bytes, HEADER.offDtStruct),
    offDtStrings: u32(bytes, HEADER.offDtStrings),
    offMemRsvmap: u32(bytes, HEADER.offMemRsvmap),
    version,
    lastCompVersion,
    bootCpuidPhys: field(HEADER.bootCpuidPhys, 2),
    sizeDtStrings: field(HEADER.sizeDtStrings, 3),
    sizeDtStruct: field(HEADER.sizeDtStruct, 17),
  };
  const inside = (off: number): boolean => off >= hdrSize && off <= totalsize;
  if (!inside(header.offMemRsvmap)) {
    fail("FDT_ERR_TRUNCATED", HEADER.offMemRsvmap, "header.rsvmap", `reserve map at ${header.offMemRsvmap} outside the blob`);
  }
  if (!inside(header.offDtStruct) || (version >= 17 && !inside(header.offDtStruct + header.sizeDtStruct))) {
    fail("FDT_ERR_TRUNCATED", HEADER.offDtStruct, "header.struct", "structure block outside the blob");
  }
  // libfdt reads size_dt_strings whatever the version (see the module documentation).
  const sizeStrings = len >= HEADER.sizeDtStrings + 4 ? u32(bytes, HEADER.sizeDtStrings) : 0;
  if (!inside(header.offDtStrings) || !inside(header.offDtStrings + sizeStrings)) {
    fail("FDT_ERR_TRUNCATED", HEADER.offDtStrings, "header.strings", "strings block outside the blob");
  }
  return header;
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

function grow(a: Int32Array, needed: number, stride: number, maxRecords: number): Int32Array {
  const records = Math.min(maxRecords, Math.max(needed, (a.length / stride) * 2));
  const next = new Int32Array(records * stride);
  next.set(a);
  return next;
}

/**
 * The one pass over the structure block (see the module documentation). Kept as one flat
 * loop: byte arithmetic, no strings, no objects per token.
 */
function indexStruct(
  b: Uint8Array,
  start: number,
  end: number,
  stringsStart: number,
  nameLimit: number,
  version: number,
): StructIndex {
  const size = end - start;
  const maxNodes = Math.floor(size / MIN_NODE_BYTES) + 1;
  const maxProps = Math.floor(size / MIN_PROP_BYTES) + 1;
  // First guess from typical blobs (~100 struct bytes per node, ~25 per property), so that
  // most real blobs never grow; hostile ones grow geometrically up to the caps above.
  let nodes: Int32Array = new Int32Array(Math.min(maxNodes, Math.max(16, size >>> 6)) * NODE_STRIDE);
  let props: Int32Array = new Int32Array(Math.min(maxProps, Math.max(16, size >>> 4)) * PROP_STRIDE);
  // Per open node (index = number of open nodes): the node, its last child, its last property.
  // Slot 0 is the top level: last top-level node, last orphan property.
  let openNode: Int32Array = new Int32Array(64);
  let lastChild: Int32Array = new Int32Array(64);
  let lastProp: Int32Array = new Int32Array(64);
  lastChild[0] = -1;
  lastProp[0] = -1;
  let open = 0;
  let nodeCount = 0;
  let propCount = 0;
  let firstOrphan = -1;
  const fullPathNames = version < 16;
  const varAlign = version < 16;
  const stringsSize = nameLimit - stringsStart;
  // nameoffs already proven to hold a NUL-terminated name (most names repeat).
  const checkedNames = new Uint8Array(stringsSize);
  let o = start;
  for (;;) {
    if (o + 4 > end) fail("FDT_ERR_TRUNCATED", o, "struct.truncated", "the structure block ends before FDT_END");
    const tag = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
    if (tag === FDT_PROP) {
      if (o + 12 > end) fail("FDT_ERR_BADSTRUCTURE", o, "struct.prop-truncated", "property header runs past the block");
      const len = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
      const nameoff = ((b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!) >>> 0;
      let value = o + 12;
      if (varAlign && len >= 8 && ((value - start) & 7) !== 0) value += 4;
      const valueEnd = value + len;
      if (valueEnd > end) fail("FDT_ERR_BADSTRUCTURE", o, "struct.prop-truncated", `property value of ${len} bytes runs past the block`);
      if (checkedNames[nameoff] !== 1) {
        if (nameoff >= stringsSize) {
          fail("FDT_ERR_BADOFFSET", o + 8, "prop.nameoff", `nameoff ${nameoff} outside the strings block (${stringsSize} bytes)`);
        }
        let i = stringsStart + nameoff;
        while (i < nameLimit && b[i] !== 0) i++;
        if (i >= nameLimit) fail("FDT_ERR_TRUNCATED", o + 8, "prop.name-nul", `the name at nameoff ${nameoff} has no NUL`);
        checkedNames[nameoff] = 1;
      }
      if (propCount * PROP_STRIDE >= props.length) props = grow(props, propCount + 1, PROP_STRIDE, maxProps);
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
      o = valueEnd + ((start - valueEnd) & 3);
    } else if (tag === FDT_BEGIN_NODE) {
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
      if (nodeCount * NODE_STRIDE >= nodes.length) nodes = grow(nodes, nodeCount + 1, NODE_STRIDE, maxNodes);
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
        // Depth is bounded by the node count, itself bounded by the block size.
        const deeper = (a: Int32Array): Int32Array => {
          const next = new Int32Array(a.length * 2);
          next.set(a);
          return next;
        };
        openNode = deeper(openNode);
        lastChild = deeper(lastChild);
        lastProp = deeper(lastProp);
      }
      openNode[open] = nodeCount++;
      open++;
      lastChild[open] = -1;
      lastProp[open] = -1;
      const next = i + 1;
      o = next + ((start - next) & 3);
    } else if (tag === FDT_END_NODE) {
      if (open === 0) fail("FDT_ERR_BADSTRUCTURE", o, "struct.end-node-depth", "FDT_END_NODE with no node open");
      open--;
      o += 4;
    } else if (tag === FDT_NOP) {
      o += 4;
    } else if (tag === FDT_END) {
      if (open !== 0) fail("FDT_ERR_BADSTRUCTURE", o, "struct.end-depth", `FDT_END with ${open} node(s) still open`);
      break;
    } else {
      fail("FDT_ERR_BADSTRUCTURE", o, "struct.token", `unknown token 0x${(tag >>> 0).toString(16)}`);
    }
  }
  return { nodes, props, nodeCount, propCount, firstOrphan, start, end };
}
