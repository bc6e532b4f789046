/**
 * libfdt's offset-based read API (`fdt.c` + `fdt_ro.c`) over a blob that may be edited
 * between calls: the read-write editor (`editor.ts`) navigates with it.
 *
 * ## Offsets
 *
 * As in libfdt, a node or property is named by its byte offset INSIDE THE STRUCT BLOCK (the
 * offset of its BEGIN_NODE / PROP token, relative to `off_dt_struct`); the root is 0 in every
 * blob a real producer writes. Offsets are invalidated by any edit that moves bytes.
 *
 * ## Bounds (`fdt_offset_ptr`)
 *
 * Every read of the struct block goes through one rule: `[offset, offset + len)` is readable
 * iff `offset >= 0` and `off_dt_struct + offset + len <= totalsize` and, for version >= 17,
 * `offset + len <= size_dt_struct`. libfdt does this in unsigned 32-bit arithmetic with
 * explicit wrap checks; plain (exact) JavaScript arithmetic gives the same verdicts. This
 * module adds one bound libfdt cannot know: the end of the `Uint8Array` (a header whose
 * totalsize exceeds the buffer reads as truncated instead of out of bounds).
 *
 * ## fdt_next_tag
 *
 * ```text
 *  tag at offset  next offset                        premature end (returns FDT_END)
 *  BEGIN_NODE     after the name's NUL, aligned to 4  no NUL before the limit      -> BADSTRUCTURE
 *  PROP           offset + 12 + len, aligned to 4     len/value past the limit     -> BADSTRUCTURE
 *  END_NODE/NOP/END  offset + 4                       tag itself past the limit    -> TRUNCATED
 *  anything else  -                                   always                       -> BADSTRUCTURE
 * ```
 *
 * The "next offset" is an out parameter in C; here it is the `nextOffset` field, set by every
 * {@link FdtOffsets.nextTag} call. It always grows, so every walk below is bounded by the
 * struct size. One deliberate divergence: libfdt 1.6.1 adds a PROP's length in wrapping
 * 32-bit arithmetic, so a length near 2^32 can step backwards (or not at all, hanging the
 * walk); here, as in libfdt >= 1.7, a length that reaches INT_MAX is a premature end.
 *
 * ## Results
 *
 * The `raw*` methods are the low-level layer, the editor's building blocks: names are byte
 * strings, results are what libfdt returns (an offset/length >= 0, or a negative libfdt
 * error code), C's out parameters are the fields `nextOffset`, `depth`, `stringStart` and
 * `propLen`, and they never throw. The public
 * methods return an offset, or -1 (= -FDT_ERR_NOTFOUND, libfdt's own value) when the thing
 * looked up does not exist, and throw {@link FdtError} for every other failure.
 *
 * @packageDocumentation
 */
import { FDT_ERR, FdtError, fdtErrorCodeName } from "./errors.js";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_MAGIC,
  FDT_NOP,
  FDT_PROP,
  FDT_SW_MAGIC,
  HEADER,
  headerSizeForVersion,
  type FdtReserveEntry,
} from "./layout.js";
import { decodeLatin1, encodeLatin1, isLatin1 } from "./wire/strings.js";

/** libfdt's negative return values, as used by the raw API. */
export const ERR_NOTFOUND = -FDT_ERR.FDT_ERR_NOTFOUND;
export const ERR_EXISTS = -FDT_ERR.FDT_ERR_EXISTS;
export const ERR_NOSPACE = -FDT_ERR.FDT_ERR_NOSPACE;
export const ERR_BADOFFSET = -FDT_ERR.FDT_ERR_BADOFFSET;
export const ERR_BADPATH = -FDT_ERR.FDT_ERR_BADPATH;
export const ERR_BADSTATE = -FDT_ERR.FDT_ERR_BADSTATE;
export const ERR_TRUNCATED = -FDT_ERR.FDT_ERR_TRUNCATED;
export const ERR_BADMAGIC = -FDT_ERR.FDT_ERR_BADMAGIC;
export const ERR_BADVERSION = -FDT_ERR.FDT_ERR_BADVERSION;
export const ERR_BADSTRUCTURE = -FDT_ERR.FDT_ERR_BADSTRUCTURE;
export const ERR_BADLAYOUT = -FDT_ERR.FDT_ERR_BADLAYOUT;
export const ERR_INTERNAL = -FDT_ERR.FDT_ERR_INTERNAL;

/** libfdt's INT_MAX / INT32_MAX bounds. */
const INT_MAX = 0x7fffffff;
const AT_SIGN = 0x40;
const SLASH = 0x2f;
const ALIASES_PATH = encodeLatin1("/aliases");

/** Round up to the next multiple of 4 without 32-bit overflow (`FDT_TAGALIGN`). */
export function tagAlign(n: number): number {
  return n + ((4 - (n & 3)) & 3);
}

/** Throw the {@link FdtError} for a negative libfdt return value. */
export function throwLibfdt(value: number, offset: number, rule: string, detail: string): never {
  throw new FdtError(fdtErrorCodeName(value) ?? "FDT_ERR_INTERNAL", offset, rule, detail);
}

/**
 * Encode a name (node, property or path) the way C sees it: one byte per character. A name
 * C cannot express (a NUL, a character above 0xff) is FDT_ERR_BADVALUE.
 */
export function encodeCName(name: string, what: string): Uint8Array {
  if (!isLatin1(name) || name.includes("\0")) {
    throw new FdtError("FDT_ERR_BADVALUE", -1, "arg.name", `${what} ${JSON.stringify(name)} has a NUL or a character above 0xff`);
  }
  return encodeLatin1(name);
}

/** One step of {@link FdtOffsets.nextNode}. */
export interface FdtNodeStep {
  /** Offset of the next node, or -1 when the walk left the tree (or the starting subtree). */
  readonly offset: number;
  /** Depth relative to the starting node after the step. */
  readonly depth: number;
}

/** A property found by offset (`fdt_get_property_by_offset`). */
export interface FdtPropertyAt {
  /** Struct offset of the PROP token. */
  readonly offset: number;
  /** `nameoff`: the name's offset in the strings block. */
  readonly nameoff: number;
  /** Absolute byte offset of the value in the blob. */
  readonly valueOffset: number;
  /** A live view of the value (invalidated by the next edit). */
  readonly value: Uint8Array;
}

/**
 * libfdt's offset-based read API over one buffer. Header fields are read again on every
 * call, so the buffer may be edited (by the editor) between calls.
 */
export class FdtOffsets {
  /** The blob (the whole buffer; totalsize may be smaller). */
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  /** Out parameter of {@link FdtOffsets.nextTag}: offset after the tag, or a negative libfdt error. */
  nextOffset = 0;
  /** In/out depth of {@link FdtOffsets.rawNextNode}. */
  depth = 0;
  /** Absolute start of the string found by `rawGetString` / `rawGetName`. */
  stringStart = 0;
  /** Value length of the property found by `rawGetPropertyNamelen` (C's `*lenp`). */
  propLen = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  // ---- header -------------------------------------------------------------------------

  /** A header field; fields beyond the end of a too-short buffer read as 0. */
  private field(off: number): number {
    return off + 4 <= this.bytes.length ? this.view.getUint32(off) : 0;
  }
  /** `magic` */
  magic(): number {
    return this.field(HEADER.magic);
  }
  /** `totalsize` */
  totalsize(): number {
    return this.field(HEADER.totalsize);
  }
  /** `off_dt_struct` */
  offDtStruct(): number {
    return this.field(HEADER.offDtStruct);
  }
  /** `off_dt_strings` */
  offDtStrings(): number {
    return this.field(HEADER.offDtStrings);
  }
  /** `off_mem_rsvmap` */
  offMemRsvmap(): number {
    return this.field(HEADER.offMemRsvmap);
  }
  /** `version` */
  version(): number {
    return this.field(HEADER.version);
  }
  /** `last_comp_version` */
  lastCompVersion(): number {
    return this.field(HEADER.lastCompVersion);
  }
  /** `boot_cpuid_phys` */
  bootCpuidPhys(): number {
    return this.field(HEADER.bootCpuidPhys);
  }
  /** `size_dt_strings` */
  sizeDtStrings(): number {
    return this.field(HEADER.sizeDtStrings);
  }
  /** `size_dt_struct` */
  sizeDtStruct(): number {
    return this.field(HEADER.sizeDtStruct);
  }

  // ---- probes -------------------------------------------------------------------------

  /** `fdt_ro_probe_`: totalsize, or a negative error. */
  rawRoProbe(): number {
    const magic = this.magic();
    if (magic === FDT_MAGIC) {
      if (this.version() < 2) return ERR_BADVERSION;
      if (this.lastCompVersion() > 17) return ERR_BADVERSION;
    } else if (magic === FDT_SW_MAGIC) {
      if (this.sizeDtStruct() === 0) return ERR_BADSTATE;
    } else {
      return ERR_BADMAGIC;
    }
    const totalsize = this.totalsize();
    return totalsize < INT_MAX ? totalsize : ERR_TRUNCATED;
  }

  /**
   * `fdt_check_header` as in libfdt 1.6.1 (no alignment rules: those came in
   * 1.7/1.8), plus the bound libfdt cannot check: the buffer holds totalsize bytes.
   */
  rawCheckHeader(): number {
    if (this.bytes.length < 4) return ERR_TRUNCATED;
    if (this.magic() !== FDT_MAGIC) return ERR_BADMAGIC;
    if (this.bytes.length < 28) return ERR_TRUNCATED;
    const version = this.version();
    if (version < 2 || this.lastCompVersion() > 17) return ERR_BADVERSION;
    if (version < this.lastCompVersion()) return ERR_BADVERSION;
    const hdrsize = headerSizeForVersion(version);
    const totalsize = this.totalsize();
    if (totalsize < hdrsize || totalsize > INT_MAX) return ERR_TRUNCATED;
    if (this.bytes.length < totalsize) return ERR_TRUNCATED;
    const inside = (off: number): boolean => off >= hdrsize && off <= totalsize;
    const block = (base: number, size: number): boolean => inside(base) && base + size <= 0xffffffff && inside(base + size);
    if (!inside(this.offMemRsvmap())) return ERR_TRUNCATED;
    if (version < 17) {
      if (!inside(this.offDtStruct())) return ERR_TRUNCATED;
    } else if (!block(this.offDtStruct(), this.sizeDtStruct())) {
      return ERR_TRUNCATED;
    }
    if (!block(this.offDtStrings(), this.sizeDtStrings())) return ERR_TRUNCATED;
    return 0;
  }

  // ---- tags ---------------------------------------------------------------------------

  /**
   * The end (exclusive, struct-relative) of what `fdt_offset_ptr` lets us read: may be
   * negative when the struct block starts past the end.
   */
  private structLimit(): number {
    const offStruct = this.offDtStruct();
    let limit = Math.min(this.totalsize(), this.bytes.length) - offStruct;
    if (this.version() >= 0x11) limit = Math.min(limit, this.sizeDtStruct());
    return limit;
  }

  /**
   * `fdt_next_tag`: the token at struct offset `offset`, with {@link FdtOffsets.nextOffset}
   * set to the offset of the following token. A premature end returns FDT_END with a
   * negative `nextOffset` (-TRUNCATED or -BADSTRUCTURE). Never throws.
   */
  nextTag(offset: number): number {
    this.nextOffset = ERR_TRUNCATED;
    const limit = this.structLimit();
    if (offset < 0 || offset + 4 > limit) return FDT_END;
    const base = this.offDtStruct();
    const tag = this.view.getUint32(base + offset);
    let end = offset + 4;
    this.nextOffset = ERR_BADSTRUCTURE;
    switch (tag) {
      case FDT_BEGIN_NODE: {
        // Skip the name: its NUL must lie before the limit.
        if (end >= limit) return FDT_END;
        const nul = this.bytes.indexOf(0, base + end);
        if (nul < 0 || nul >= base + limit) return FDT_END;
        end = nul - base + 1;
        break;
      }
      case FDT_PROP: {
        if (end + 4 > limit) return FDT_END;
        const len = this.view.getUint32(base + end);
        if (len + end >= INT_MAX) return FDT_END;
        end += 8 + len;
        // Before v16, values of 8+ bytes were aligned to 8 (one pad word after nameoff).
        if (this.version() < 0x10 && len >= 8 && (end - len) % 8 !== 0) end += 4;
        break;
      }
      case FDT_END:
      case FDT_END_NODE:
      case FDT_NOP:
        break;
      default:
        return FDT_END;
    }
    if (end > limit) return FDT_END;
    this.nextOffset = tagAlign(end);
    return tag;
  }

  /** `fdt_check_node_offset_`: offset after the BEGIN_NODE token, or an error. */
  rawCheckNodeOffset(offset: number): number {
    if (offset < 0 || offset % 4 !== 0) return ERR_BADOFFSET;
    if (this.nextTag(offset) !== FDT_BEGIN_NODE) return ERR_BADOFFSET;
    return this.nextOffset;
  }

  /** `fdt_check_prop_offset_`: offset after the PROP token, or an error. */
  rawCheckPropOffset(offset: number): number {
    if (offset < 0 || offset % 4 !== 0) return ERR_BADOFFSET;
    if (this.nextTag(offset) !== FDT_PROP) return ERR_BADOFFSET;
    return this.nextOffset;
  }

  /**
   * `fdt_next_node`; `trackDepth` stands for a non-NULL `depth` pointer, whose
   * value lives in {@link FdtOffsets.depth}. A negative `offset` starts at the root.
   */
  rawNextNode(offset: number, trackDepth: boolean): number {
    let next = 0;
    if (offset >= 0) {
      next = this.rawCheckNodeOffset(offset);
      if (next < 0) return next;
    }
    let tag: number;
    do {
      offset = next;
      tag = this.nextTag(offset);
      next = this.nextOffset;
      switch (tag) {
        case FDT_BEGIN_NODE:
          if (trackDepth) this.depth++;
          break;
        case FDT_END_NODE:
          if (trackDepth && --this.depth < 0) return next;
          break;
        case FDT_END:
          if (next >= 0 || (next === ERR_TRUNCATED && !trackDepth)) return ERR_NOTFOUND;
          return next;
        default:
          break;
      }
    } while (tag !== FDT_BEGIN_NODE);
    return offset;
  }

  /** `fdt_first_subnode` */
  rawFirstSubnode(offset: number): number {
    this.depth = 0;
    const r = this.rawNextNode(offset, true);
    if (r < 0 || this.depth !== 1) return ERR_NOTFOUND;
    return r;
  }

  /** `fdt_next_subnode` */
  rawNextSubnode(offset: number): number {
    this.depth = 1;
    do {
      offset = this.rawNextNode(offset, true);
      if (offset < 0 || this.depth < 1) return ERR_NOTFOUND;
    } while (this.depth > 1);
    return offset;
  }

  /** `fdt_node_end_offset_`: offset just after the node's END_NODE, or an error. */
  rawNodeEndOffset(offset: number): number {
    this.depth = 0;
    while (offset >= 0 && this.depth >= 0) offset = this.rawNextNode(offset, true);
    return offset;
  }

  // ---- strings and names --------------------------------------------------------------

  /**
   * `fdt_get_string`: the length of the string at `stroffset` (a C `int`: pass
   * `nameoff | 0`), its start in {@link FdtOffsets.stringStart}; or an error.
   */
  rawGetString(stroffset: number): number {
    const totalsize = this.rawRoProbe();
    if (totalsize < 0) return totalsize;
    const absoffset = (stroffset + this.offDtStrings()) >>> 0;
    if (absoffset >= totalsize) return ERR_BADOFFSET;
    let len = totalsize - absoffset;
    const magic = this.magic();
    if (magic === FDT_MAGIC) {
      if (stroffset < 0) return ERR_BADOFFSET;
      if (this.version() >= 17) {
        const size = this.sizeDtStrings();
        if (stroffset >= size) return ERR_BADOFFSET;
        if (size - stroffset < len) len = size - stroffset;
      }
    } else {
      // FDT_SW_MAGIC (rawRoProbe let nothing else through): offsets count back from the end.
      const sw = -stroffset;
      if (stroffset >= 0 || sw > this.sizeDtStrings()) return ERR_BADOFFSET;
      if (sw < len) len = sw;
    }
    const end = Math.min(absoffset + len, this.bytes.length);
    const nul = absoffset < end ? this.bytes.indexOf(0, absoffset) : -1;
    if (nul < 0 || nul >= end) return ERR_TRUNCATED;
    this.stringStart = absoffset;
    return nul - absoffset;
  }

  /** `fdt_string_eq_`: does the string at `stroffset` equal `s`? */
  private stringEq(stroffset: number, s: Uint8Array): boolean {
    const len = this.rawGetString(stroffset);
    if (len !== s.length) return false;
    const p = this.stringStart;
    for (let i = 0; i < len; i++) if (this.bytes[p + i] !== s[i]) return false;
    return true;
  }

  /**
   * `fdt_get_name`: the length of the node's name, its start in
   * {@link FdtOffsets.stringStart}; or an error. Before v16 names were full paths: the
   * leaf (after the last '/') is returned, as libfdt does.
   */
  rawGetName(node: number): number {
    const p = this.rawRoProbe();
    if (p < 0) return p;
    const next = this.rawCheckNodeOffset(node);
    if (next < 0) return next;
    let start = this.offDtStruct() + node + 4;
    const nul = this.bytes.indexOf(0, start); // found: rawCheckNodeOffset saw it
    if (this.version() < 0x10) {
      const slash = this.bytes.lastIndexOf(SLASH, nul);
      if (slash < start) return ERR_BADSTRUCTURE;
      start = slash + 1;
    }
    this.stringStart = start;
    return nul - start;
  }

  /** `fdt_nodename_eq_`: the node's name is `s`, or `s` has no '@' and the name is `s@...`. */
  private nodeNameEq(node: number, s: Uint8Array): boolean {
    const olen = this.rawGetName(node);
    if (olen < s.length) return false; // also every error
    const p = this.stringStart;
    for (let i = 0; i < s.length; i++) if (this.bytes[p + i] !== s[i]) return false;
    const c = this.bytes[p + s.length];
    if (c === 0) return true;
    return c === AT_SIGN && !s.includes(AT_SIGN);
  }

  // ---- lookups ------------------------------------------------------------------------

  /** `fdt_subnode_offset_namelen` */
  rawSubnodeOffset(parent: number, name: Uint8Array): number {
    const p = this.rawRoProbe();
    if (p < 0) return p;
    this.depth = 0;
    let offset = parent;
    while (offset >= 0 && this.depth >= 0) {
      if (this.depth === 1 && this.nodeNameEq(offset, name)) return offset;
      offset = this.rawNextNode(offset, true);
    }
    if (this.depth < 0) return ERR_NOTFOUND;
    return offset;
  }

  /** `fdt_path_offset_namelen` (aliases included). */
  rawPathOffset(path: Uint8Array): number {
    const p = this.rawRoProbe();
    if (p < 0) return p;
    const end = path.length;
    if (end <= 0) return ERR_BADPATH;
    let i = 0;
    let offset = 0;
    if (path[0] !== SLASH) {
      let q = path.indexOf(SLASH);
      if (q < 0) q = end;
      const alias = this.rawGetAlias(path.subarray(0, q));
      if (alias < 0) return ERR_BADPATH;
      // fdt_path_offset(alias): strlen() of the alias value.
      const aliasEnd = this.bytes.indexOf(0, alias);
      offset = this.rawPathOffset(this.bytes.subarray(alias, aliasEnd));
      i = q;
    }
    while (i < end) {
      while (path[i] === SLASH) {
        i++;
        if (i === end) return offset;
      }
      let q = path.indexOf(SLASH, i);
      if (q < 0) q = end;
      offset = this.rawSubnodeOffset(offset, path.subarray(i, q));
      if (offset < 0) return offset;
      i = q;
    }
    return offset;
  }

  /** `fdt_get_alias_namelen`: absolute offset of the alias's path string, or -1. */
  private rawGetAlias(name: Uint8Array): number {
    const aliases = this.rawPathOffset(ALIASES_PATH);
    if (aliases < 0) return -1;
    const prop = this.rawGetPropertyNamelen(aliases, name);
    if (prop < 0) return -1;
    const len = this.propLen;
    const data = this.rawPropData(prop);
    if (!(len > 0 && this.bytes[data + len - 1] === 0 && this.bytes[data] === SLASH)) return -1;
    return data;
  }

  /** `nextprop_`: the first PROP at or after `offset` (skipping NOPs) before the next node. */
  private nextProp(offset: number): number {
    let tag: number;
    do {
      tag = this.nextTag(offset);
      const next = this.nextOffset;
      if (tag === FDT_END) return next >= 0 ? ERR_BADSTRUCTURE : next;
      if (tag === FDT_PROP) return offset;
      offset = next;
    } while (tag === FDT_NOP);
    return ERR_NOTFOUND;
  }

  /** `fdt_first_property_offset` */
  rawFirstProperty(node: number): number {
    const next = this.rawCheckNodeOffset(node);
    return next < 0 ? next : this.nextProp(next);
  }

  /** `fdt_next_property_offset` */
  rawNextProperty(prop: number): number {
    const next = this.rawCheckPropOffset(prop);
    return next < 0 ? next : this.nextProp(next);
  }

  /**
   * `fdt_get_property_namelen_` (no version check): the property's struct
   * offset, its length in {@link FdtOffsets.propLen}; or an error.
   */
  rawGetPropertyNamelen(node: number, name: Uint8Array): number {
    const base = this.offDtStruct();
    let offset = this.rawFirstProperty(node);
    for (; offset >= 0; offset = this.rawNextProperty(offset)) {
      // nextProp just validated the PROP token, so fdt_get_property_by_offset_ cannot fail.
      const at = base + offset;
      if (this.stringEq(this.view.getUint32(at + 8) | 0, name)) {
        this.propLen = this.view.getUint32(at + 4);
        return offset;
      }
    }
    return offset;
  }

  /**
   * Absolute offset of a property's value as `fdt_getprop*` returns it: after
   * the 12-byte header, plus libfdt's pre-v16 realignment of 8+ byte values.
   */
  rawPropData(prop: number): number {
    const at = this.offDtStruct() + prop;
    if (this.version() < 0x10 && (prop + 12) % 8 !== 0 && this.view.getUint32(at + 4) >= 8) return at + 16;
    return at + 12;
  }

  /** `fdt_num_mem_rsv` (bounded by the buffer as well as totalsize). */
  rawNumMemRsv(): number {
    const off = this.offMemRsvmap();
    const limit = Math.min(this.totalsize(), this.bytes.length);
    for (let i = 0, at = off; at + 16 <= limit; i++, at += 16) {
      if (this.view.getUint32(at + 8) === 0 && this.view.getUint32(at + 12) === 0) return i;
    }
    return ERR_TRUNCATED;
  }

  // ---- public, throwing API -----------------------------------------------------------

  private absolute(offset: number): number {
    return offset >= 0 ? this.offDtStruct() + offset : -1;
  }

  /** -1 for NOTFOUND, the value when >= 0, FdtError otherwise. */
  private found(r: number, at: number, rule: string, what: string): number {
    if (r >= 0 || r === ERR_NOTFOUND) return r;
    return throwLibfdt(r, this.absolute(at), rule, what);
  }

  private checkArg(offset: number, rule: string): void {
    if (!Number.isInteger(offset) || offset < 0 || offset > INT_MAX) {
      throw new FdtError("FDT_ERR_BADOFFSET", -1, rule, `offset ${offset} is not a struct offset`);
    }
  }

  /** `fdt_check_node_offset_`: the offset after the node's BEGIN_NODE token and name. */
  checkNodeOffset(node: number): number {
    this.checkArg(node, "offset.node");
    const r = this.rawCheckNodeOffset(node);
    if (r < 0) throwLibfdt(r, this.absolute(node), "offset.node", `no node at struct offset ${node}`);
    return r;
  }

  /** `fdt_check_prop_offset_`: the offset after the property (value and padding). */
  checkPropOffset(prop: number): number {
    this.checkArg(prop, "offset.prop");
    const r = this.rawCheckPropOffset(prop);
    if (r < 0) throwLibfdt(r, this.absolute(prop), "offset.prop", `no property at struct offset ${prop}`);
    return r;
  }

  /**
   * `fdt_next_node`: the next node in document order and the depth relative to `depth`
   * (pass -1 and 0 to start at the root). `offset` -1 in the result: the walk ended.
   */
  nextNode(offset: number, depth: number): FdtNodeStep {
    if (!Number.isInteger(offset) || offset > INT_MAX) this.checkArg(offset, "offset.node");
    this.depth = depth;
    const r = this.found(this.rawNextNode(offset < 0 ? -1 : offset, true), offset, "offset.next-node", "walking to the next node");
    return { offset: r, depth: this.depth };
  }

  /** `fdt_first_subnode`: the first child, or -1. */
  firstSubnode(node: number): number {
    this.checkArg(node, "offset.node");
    return this.found(this.rawFirstSubnode(node), node, "offset.subnode", "first subnode");
  }

  /** `fdt_next_subnode`: the next sibling, or -1. */
  nextSubnode(node: number): number {
    this.checkArg(node, "offset.node");
    return this.found(this.rawNextSubnode(node), node, "offset.subnode", "next subnode");
  }

  /** `fdt_first_property_offset`: the node's first property, or -1. */
  firstProperty(node: number): number {
    this.checkArg(node, "offset.node");
    return this.found(this.rawFirstProperty(node), node, "offset.property", "first property");
  }

  /** `fdt_next_property_offset`: the next property of the same node, or -1. */
  nextProperty(prop: number): number {
    this.checkArg(prop, "offset.prop");
    return this.found(this.rawNextProperty(prop), prop, "offset.property", "next property");
  }

  /** `fdt_get_property_by_offset`: name offset and value of the property at `prop`. */
  propertyByOffset(prop: number): FdtPropertyAt {
    this.checkArg(prop, "offset.prop");
    if (this.version() < 0x10) throwLibfdt(ERR_BADVERSION, -1, "offset.prop", "property offsets need version 16");
    const r = this.rawCheckPropOffset(prop);
    if (r < 0) throwLibfdt(r, this.absolute(prop), "offset.prop", `no property at struct offset ${prop}`);
    const at = this.offDtStruct() + prop;
    const len = this.view.getUint32(at + 4);
    return { offset: prop, nameoff: this.view.getUint32(at + 8), valueOffset: at + 12, value: this.bytes.subarray(at + 12, at + 12 + len) };
  }

  /** `fdt_get_property`: the struct offset of the node's property `name`, or -1. */
  getProperty(node: number, name: string): number {
    this.checkArg(node, "offset.node");
    if (this.version() < 0x10) throwLibfdt(ERR_BADVERSION, -1, "offset.prop", "property offsets need version 16");
    return this.found(this.rawGetPropertyNamelen(node, encodeCName(name, "property name")), node, "offset.getprop", `property ${name}`);
  }

  /** `fdt_getprop`: a live view of the value of the node's property `name`, or undefined. */
  getprop(node: number, name: string): Uint8Array | undefined {
    this.checkArg(node, "offset.node");
    const r = this.found(this.rawGetPropertyNamelen(node, encodeCName(name, "property name")), node, "offset.getprop", `property ${name}`);
    if (r < 0) return undefined;
    const data = this.rawPropData(r);
    return this.bytes.subarray(data, data + this.propLen);
  }

  /** `fdt_subnode_offset`: the child of `parent` called `name` (`"cpu"` finds `"cpu@0"`), or -1. */
  subnodeOffset(parent: number, name: string): number {
    this.checkArg(parent, "offset.node");
    return this.found(this.rawSubnodeOffset(parent, encodeCName(name, "node name")), parent, "offset.subnode", `subnode ${name}`);
  }

  /** `fdt_path_offset`: the node at `path` (absolute, or starting with an alias), or -1. */
  pathOffset(path: string): number {
    const r = this.rawPathOffset(encodeCName(path, "path"));
    return this.found(r, -1, "offset.path", `path ${JSON.stringify(path)}`);
  }

  /** `fdt_get_name`: the node's name (with unit address; `""` for the root). */
  getName(node: number): string {
    this.checkArg(node, "offset.node");
    const len = this.rawGetName(node);
    if (len < 0) throwLibfdt(len, this.absolute(node), "offset.name", `no node at struct offset ${node}`);
    return decodeLatin1(this.bytes, this.stringStart, this.stringStart + len);
  }

  /** `fdt_string` / `fdt_get_string`: the string at `nameoff` in the strings block. */
  string(nameoff: number): string {
    const len = this.rawGetString(nameoff | 0);
    if (len < 0) throwLibfdt(len, -1, "offset.string", `no string at strings offset ${nameoff}`);
    return decodeLatin1(this.bytes, this.stringStart, this.stringStart + len);
  }

  /** `fdt_node_end_offset_`: the struct offset just after the node's END_NODE. */
  nodeEndOffset(node: number): number {
    this.checkArg(node, "offset.node");
    const r = this.rawNodeEndOffset(node);
    if (r < 0) throwLibfdt(r, this.absolute(node), "offset.node-end", `end of node at ${node}`);
    return r;
  }

  /** `fdt_num_mem_rsv`: entries before the first one of size 0. */
  numMemRsv(): number {
    const p = this.rawRoProbe();
    if (p < 0) throwLibfdt(p, 0, "header.probe", "not a device tree");
    const r = this.rawNumMemRsv();
    if (r < 0) throwLibfdt(r, this.offMemRsvmap(), "rsvmap.terminator", "reserve map has no terminator");
    return r;
  }

  /** `fdt_get_mem_rsv`: reserve-map entry `n` (any entry inside totalsize). */
  memRsv(n: number): FdtReserveEntry {
    const p = this.rawRoProbe();
    if (p < 0) throwLibfdt(p, 0, "header.probe", "not a device tree");
    const at = this.offMemRsvmap() + n * 16;
    if (!Number.isInteger(n) || n < 0 || at + 16 > Math.min(this.totalsize(), this.bytes.length)) {
      throw new FdtError("FDT_ERR_BADOFFSET", -1, "rsvmap.index", `no reserve entry ${n}`);
    }
    const u64 = (o: number): bigint => (BigInt(this.view.getUint32(o)) << 32n) | BigInt(this.view.getUint32(o + 4));
    return { address: u64(at), size: u64(at + 8) };
  }
}
