/**
 * libfdt's read-write editor (`fdt_rw.c`, `fdt_wip.c`, `fdt_open_into`, `fdt_pack`,
 * `fdt_create_empty_tree`), byte-identical to Debian's libfdt 1.6.1, stale bytes included.
 * fdtput, fdtoverlay and the Linux KHO sub-trees write this layout.
 *
 * ## The read-write layout
 *
 * ```text
 *  0        40 (or 48)                                                         data end     totalsize
 *  | header | reserve map + terminator | struct block | strings block          | free space |
 *           off_mem_rsvmap             off_dt_struct  off_dt_strings                        |
 *                                                     + size_dt_strings = "data end"
 * ```
 *
 * - Blocks are in this order, back to back or with gaps; everything after the strings block
 *   up to totalsize is free space. Every edit checks the order first (`fdt_rw_probe_`:
 *   version >= 17 else BADVERSION; reserve map at >= 40, struct after the map's FIRST entry,
 *   strings after the struct, strings inside totalsize, else BADLAYOUT; a version above 17
 *   is rewritten to 17).
 * - Every edit is a SPLICE (`fdt_splice_`): to replace `oldlen` bytes at `p` by `newlen`
 *   bytes, everything from `p + oldlen` to the data end moves by `newlen - oldlen` (one
 *   memmove) and the header offsets/sizes of the blocks behind `p` are adjusted. Growing
 *   past totalsize is NOSPACE and changes nothing. Nothing is ever cleared:
 *   - a grown region keeps the bytes that were there (the start of the tail that moved
 *     away), and only what libfdt writes on top is new: a new property gets its 12-byte
 *     header and its value but NOT its padding; a resized value gets its new bytes but not
 *     its padding; a renamed node gets its name and NUL but not its padding; a new node's
 *     name IS zero-padded;
 *   - a shrink leaves the old bytes of the last `oldlen - newlen` bytes of the data in the
 *     free space after the data end ("stale padding"); so does a deleted property or node,
 *     and a name whose string was added and then rolled back after NOSPACE.
 * - What moves: a struct edit moves the rest of the struct block and the whole strings
 *   block (`size_dt_struct`, `off_dt_strings` change); a new name is appended at the end
 *   of the strings block (`size_dt_strings` grows; strings are never removed); a reserve-map
 *   edit moves the struct and strings blocks (`off_dt_struct`, `off_dt_strings`).
 * - Placement: a new property goes FIRST in its node (right after BEGIN_NODE and the name);
 *   a resized one stays where it is; a new subnode goes after the parent's properties (and
 *   NOPs) and BEFORE its existing children; a new reserve entry goes before the terminator.
 * - Names: `fdt_find_add_string_` scans the strings block from its start for the name plus
 *   its NUL at ANY byte position, so a name that is a suffix of a stored string reuses it
 *   ("phandle" inside "linux,phandle") and the OLDEST match wins; otherwise the name is
 *   appended. If the struct splice then fails, size_dt_strings is rolled back (the bytes
 *   stay, stale, in the free space).
 * - NOP edits (`fdt_nop_property`, `fdt_nop_node`) and in-place value writes
 *   (`fdt_setprop_inplace*`) move nothing and run no layout probe, as in libfdt.
 *
 * ## Opening (`fdt_open_into`) and packing (`fdt_pack`)
 *
 * - `openInto(blob, bufsize)`: the blob must pass `fdt_check_header` (1.6.1 rules) and be at
 *   least totalsize bytes long. Version 17+ takes size_dt_struct; version 16 measures the
 *   struct block by walking it to FDT_END; older versions are BADVERSION. If the blocks are
 *   already in rw order (reserve map at >= 40 with ALL its entries, struct after it, strings
 *   after the struct, all inside totalsize) the blob is copied as is (totalsize bytes, gaps
 *   included) and only version := 17, size_dt_struct and totalsize := bufsize change
 *   (NOSPACE if bufsize < the old totalsize). Otherwise the blocks are packed in rw order at
 *   40 (NOSPACE if they do not fit) and magic, totalsize, version 17, last_comp_version 16
 *   and boot_cpuid_phys are rewritten.
 *   The new buffer is a FRESH ZEROED `Uint8Array` of `bufsize` bytes, exactly like
 *   python3-libfdt's `Fdt.resize` (C's fdt_open_into writes into the caller's buffer and
 *   leaves the bytes it does not write as they were; here there is no previous content).
 * - `pack()`: moves the reserve map to 40 and makes the blocks contiguous, in place (three
 *   memmoves: map, struct, strings), sets totalsize to the data end, and shrinks the
 *   buffer to totalsize (python3-libfdt's `Fdt.pack` deletes the tail the same way). Bytes
 *   40..47 of a sequential-write blob (map at 48) are overwritten by the map; no byte is
 *   cleared.
 * - `createEmptyTree(bufsize)`: what `fdt_create_empty_tree` leaves: a zeroed buffer with
 *   the sequential writer's empty tree (map at 48, struct at 64, strings at 80) opened in
 *   place. NOSPACE below 80 bytes.
 *
 * ## Errors and deliberate divergences
 *
 * Every failure is an {@link FdtError} with libfdt's code; a failed edit changes nothing
 * except stale bytes in the free space (exactly what libfdt changes). Where libfdt 1.6.1
 * has undefined behaviour this editor refuses instead: a negative or fractional offset or
 * index is BADOFFSET / NOTFOUND (libfdt returns the offset itself as an "error", or writes
 * before the reserve map); a reserve map without terminator is TRUNCATED (libfdt computes
 * a negative size); a header whose blocks, after the libfdt checks, still reach past
 * totalsize or the buffer (32-bit wrap) is TRUNCATED; a name C cannot express (NUL, a
 * character above 0xff) or a bad length/number is BADVALUE.
 *
 * @packageDocumentation
 */
import { FdtError } from "./errors.js";
import { FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP, HEADER } from "./layout.js";
import {
  ERR_BADLAYOUT,
  ERR_BADOFFSET,
  ERR_BADVERSION,
  ERR_EXISTS,
  ERR_INTERNAL,
  ERR_NOSPACE,
  ERR_NOTFOUND,
  ERR_TRUNCATED,
  FdtOffsets,
  encodeCName,
  tagAlign,
  throwLibfdt,
} from "./offsets.js";

/** A node: a struct offset (libfdt's node offset) or an absolute path (or alias path). */
export type FdtNodeRef = number | string;

/** Where the rw layout puts the reserve map: the header rounded up to 8. */
const RW_RSVMAP_OFFSET = 40;
const INT_MAX = 0x7fffffff;
/** Size of the empty tree `fdt_create_empty_tree` writes before opening it. */
const EMPTY_TREE_SIZE = 80;

function badValue(rule: string, detail: string): never {
  throw new FdtError("FDT_ERR_BADVALUE", -1, rule, detail);
}

function checkBufsize(bufsize: number): void {
  if (!Number.isInteger(bufsize) || bufsize > INT_MAX) badValue("arg.bufsize", `buffer size ${bufsize} is not a C int`);
}

/** `fdt_blocks_misordered_` in libfdt's unsigned 32-bit arithmetic. */
function blocksMisordered(r: FdtOffsets, memRsvSize: number, structSize: number): boolean {
  return (
    r.offMemRsvmap() < RW_RSVMAP_OFFSET ||
    r.offDtStruct() < ((r.offMemRsvmap() + memRsvSize) >>> 0) ||
    r.offDtStrings() < ((r.offDtStruct() + structSize) >>> 0) ||
    r.totalsize() < ((r.offDtStrings() + r.sizeDtStrings()) >>> 0)
  );
}

/** memmove between (or within) buffers. */
function memmove(dst: Uint8Array, to: number, src: Uint8Array, from: number, len: number): void {
  if (len <= 0) return;
  if (dst === src) dst.copyWithin(to, from, from + len);
  else dst.set(src.subarray(from, from + len), to);
}

/**
 * `fdt_packblocks_`: reserve map to 40, struct after it, strings after that (three
 * memmoves in this order, source offsets read from `src`'s header just before each).
 */
function packBlocks(src: FdtOffsets, dst: Uint8Array, dstView: DataView, memRsvSize: number, structSize: number, stringsSize: number): void {
  const structOff = RW_RSVMAP_OFFSET + memRsvSize;
  const stringsOff = structOff + structSize;
  memmove(dst, RW_RSVMAP_OFFSET, src.bytes, src.offMemRsvmap(), memRsvSize);
  dstView.setUint32(HEADER.offMemRsvmap, RW_RSVMAP_OFFSET);
  memmove(dst, structOff, src.bytes, src.offDtStruct(), structSize);
  dstView.setUint32(HEADER.offDtStruct, structOff);
  dstView.setUint32(HEADER.sizeDtStruct, structSize);
  const oldStringsSize = src.sizeDtStrings();
  memmove(dst, stringsOff, src.bytes, src.offDtStrings(), stringsSize);
  dstView.setUint32(HEADER.offDtStrings, stringsOff);
  dstView.setUint32(HEADER.sizeDtStrings, oldStringsSize);
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * An FDT in libfdt's read-write layout, edited in place with libfdt's algorithms
 * (`fdt_setprop`, `fdt_add_subnode`, `fdt_del_node`, `fdt_pack`, ...). Nodes are addressed
 * by libfdt struct offsets (see {@link FdtOffsets}) or by path; offsets are invalidated by
 * every edit that moves bytes, as in C.
 */
export class FdtEditor {
  private buf: Uint8Array;
  private view: DataView;
  private reader: FdtOffsets;
  /** `fdt_find_add_string_`'s `*allocated`. */
  private allocated = false;

  private constructor(bytes: Uint8Array) {
    this.buf = bytes;
    this.view = viewOf(bytes);
    this.reader = new FdtOffsets(bytes);
  }

  /**
   * `fdt_open_into`: a new editor holding `blob` opened into a fresh zeroed buffer of
   * `bufsize` bytes (see the module comment for what is copied, re-ordered and rewritten).
   */
  static openInto(blob: Uint8Array, bufsize: number): FdtEditor {
    checkBufsize(bufsize);
    const src = new FdtOffsets(blob);
    const hdr = src.rawCheckHeader();
    if (hdr < 0) throwLibfdt(hdr, 0, "header.check", "not a valid device tree header");
    const probe = src.rawRoProbe();
    if (probe < 0) throwLibfdt(probe, 0, "header.probe", "not a device tree");
    const numRsv = src.rawNumMemRsv();
    if (numRsv < 0) throwLibfdt(numRsv, src.offMemRsvmap(), "rsvmap.terminator", "reserve map has no terminator");
    const memRsvSize = (numRsv + 1) * 16;
    const version = src.version();
    let structSize: number;
    if (version >= 17) {
      structSize = src.sizeDtStruct();
    } else if (version === 16) {
      // v16 has no size_dt_struct: walk to FDT_END (bounded: offsets only grow).
      structSize = 0;
      while (src.nextTag(structSize) !== FDT_END) structSize = src.nextOffset;
      structSize = src.nextOffset;
      if (structSize < 0) throwLibfdt(structSize, src.offDtStruct(), "struct.end", "struct block does not end with FDT_END");
    } else {
      throwLibfdt(ERR_BADVERSION, HEADER.version, "header.version", `version ${version} cannot be opened read-write`);
    }
    const totalsize = src.totalsize();
    if (!blocksMisordered(src, memRsvSize, structSize)) {
      // fdt_move: copy totalsize bytes as they are.
      if (bufsize < 0 || totalsize > bufsize) throwLibfdt(ERR_NOSPACE, -1, "open.size", `buffer of ${bufsize} bytes < totalsize ${totalsize}`);
      const out = new Uint8Array(bufsize);
      out.set(blob.subarray(0, totalsize));
      const v = viewOf(out);
      v.setUint32(HEADER.version, 17);
      v.setUint32(HEADER.sizeDtStruct, structSize);
      v.setUint32(HEADER.totalsize, bufsize);
      return new FdtEditor(out);
    }
    const stringsSize = src.sizeDtStrings();
    const newsize = RW_RSVMAP_OFFSET + memRsvSize + structSize + stringsSize;
    if (bufsize < newsize) throwLibfdt(ERR_NOSPACE, -1, "open.size", `buffer of ${bufsize} bytes < ${newsize} needed to re-order the blocks`);
    const out = new Uint8Array(bufsize);
    const v = viewOf(out);
    packBlocks(src, out, v, memRsvSize, structSize, stringsSize);
    v.setUint32(HEADER.magic, FDT_MAGIC);
    v.setUint32(HEADER.totalsize, bufsize);
    v.setUint32(HEADER.version, 17);
    v.setUint32(HEADER.lastCompVersion, 16);
    v.setUint32(HEADER.bootCpuidPhys, src.bootCpuidPhys());
    return new FdtEditor(out);
  }

  /** `fdt_create_empty_tree`: an empty root node in a zeroed buffer of `bufsize` bytes. */
  static createEmptyTree(bufsize: number): FdtEditor {
    checkBufsize(bufsize);
    if (bufsize < EMPTY_TREE_SIZE) throwLibfdt(ERR_NOSPACE, -1, "open.size", `an empty tree needs ${EMPTY_TREE_SIZE} bytes`);
    // fdt_create + fdt_finish_reservemap + begin_node("") + end_node + fdt_finish: map at
    // 48 (terminator only), struct at 64 = BEGIN_NODE "" END_NODE END, no strings; then
    // fdt_open_into in place finds the blocks in order and only sets version, size_dt_struct
    // and totalsize.
    const out = new Uint8Array(bufsize);
    const v = viewOf(out);
    v.setUint32(HEADER.magic, FDT_MAGIC);
    v.setUint32(HEADER.totalsize, bufsize);
    v.setUint32(HEADER.offDtStruct, 64);
    v.setUint32(HEADER.offDtStrings, 80);
    v.setUint32(HEADER.offMemRsvmap, 48);
    v.setUint32(HEADER.version, 17);
    v.setUint32(HEADER.lastCompVersion, 16);
    v.setUint32(HEADER.sizeDtStruct, 16);
    v.setUint32(64, FDT_BEGIN_NODE);
    v.setUint32(72, FDT_END_NODE);
    v.setUint32(76, FDT_END);
    return new FdtEditor(out);
  }

  /**
   * Edit `blob` IN PLACE, as C code calling `fdt_setprop` on a loaded blob does: the room
   * for edits is the blob's own totalsize (a dtc blob has none: most edits are NOSPACE, and
   * a blob not in rw order is BADLAYOUT; use {@link FdtEditor.openInto}). The blob must
   * pass `fdt_check_header` and hold totalsize bytes.
   */
  static wrap(blob: Uint8Array): FdtEditor {
    const r = new FdtOffsets(blob).rawCheckHeader();
    if (r < 0) throwLibfdt(r, 0, "header.check", "not a valid device tree header");
    return new FdtEditor(blob);
  }

  // ---- state --------------------------------------------------------------------------

  /** The whole buffer, live (its length is the capacity; totalsize may be smaller). */
  get buffer(): Uint8Array {
    return this.buf;
  }

  /** The header's totalsize. */
  get totalsize(): number {
    return this.reader.totalsize();
  }

  /** A copy of the blob: the first totalsize bytes of the buffer. */
  bytes(): Uint8Array {
    return this.buf.slice(0, Math.min(this.reader.totalsize(), this.buf.length));
  }

  /** libfdt's read API over the current buffer (a new one after `resize` / `pack`). */
  get offsets(): FdtOffsets {
    return this.reader;
  }

  /** `fdt_path_offset`: the node at `path`, or -1. */
  pathOffset(path: string): number {
    return this.reader.pathOffset(path);
  }

  /** `fdt_num_mem_rsv` */
  numMemRsv(): number {
    return this.reader.numMemRsv();
  }

  private adopt(bytes: Uint8Array): void {
    this.buf = bytes;
    this.view = viewOf(bytes);
    this.reader = new FdtOffsets(bytes);
  }

  /**
   * python3-libfdt's `Fdt.resize`: `fdt_open_into` the current blob into a fresh zeroed
   * buffer of `bufsize` bytes. On failure nothing changes.
   */
  resize(bufsize: number): void {
    this.adopt(FdtEditor.openInto(this.buf, bufsize).buf);
  }

  // ---- plumbing -----------------------------------------------------------------------

  private u32(at: number): number {
    return this.view.getUint32(at);
  }
  private setU32(at: number, value: number): void {
    this.view.setUint32(at, value >>> 0);
  }
  private addToField(field: number, delta: number): void {
    this.setU32(field, this.u32(field) + delta);
  }

  /** A node argument as a struct offset (a path is looked up; absent: NOTFOUND). */
  private node(ref: FdtNodeRef): number {
    if (typeof ref === "string") {
      const r = this.reader.rawPathOffset(encodeCName(ref, "path"));
      if (r < 0) throwLibfdt(r, -1, "arg.path", `no node at path ${JSON.stringify(ref)}`);
      return r;
    }
    if (!Number.isInteger(ref) || ref < 0 || ref > INT_MAX) {
      throw new FdtError("FDT_ERR_BADOFFSET", -1, "arg.offset", `node offset ${ref} is not a struct offset`);
    }
    return ref;
  }

  /** Throw for a negative libfdt result. */
  private check(r: number, node: number, rule: string, detail: string): number {
    if (r < 0) throwLibfdt(r, r === ERR_NOSPACE || node < 0 ? -1 : this.reader.offDtStruct() + node, rule, detail);
    return r;
  }

  /**
   * `fdt_rw_probe_`, then the bound libfdt cannot check (its blocks may wrap in 32-bit
   * arithmetic and reach past the buffer): TRUNCATED.
   */
  private rwProbe(): number {
    const r = this.reader;
    const p = r.rawRoProbe();
    if (p < 0) return p;
    const version = r.version();
    if (version < 17) return ERR_BADVERSION;
    if (blocksMisordered(r, 16, r.sizeDtStruct())) return ERR_BADLAYOUT;
    if (version > 17) this.setU32(HEADER.version, 17);
    const totalsize = r.totalsize();
    if (
      totalsize > this.buf.length ||
      r.offDtStruct() + r.sizeDtStruct() > r.offDtStrings() ||
      r.offDtStrings() + r.sizeDtStrings() > totalsize ||
      r.offMemRsvmap() + 16 > totalsize
    ) {
      return ERR_TRUNCATED;
    }
    return 0;
  }

  /** `fdt_splice_`: replace `oldlen` bytes at absolute `p` by `newlen` bytes (tail moves). */
  private splice(p: number, oldlen: number, newlen: number): number {
    const dsize = this.reader.offDtStrings() + this.reader.sizeDtStrings();
    if (oldlen < 0 || p + oldlen > dsize) return ERR_BADOFFSET;
    if (p < 0 || dsize + newlen < oldlen) return ERR_BADOFFSET;
    if (dsize - oldlen + newlen > this.reader.totalsize()) return ERR_NOSPACE;
    this.buf.copyWithin(p + newlen, p + oldlen, dsize);
    return 0;
  }

  /** `fdt_splice_struct_` */
  private spliceStruct(p: number, oldlen: number, newlen: number): number {
    const err = this.splice(p, oldlen, newlen);
    if (err) return err;
    const delta = newlen - oldlen;
    this.addToField(HEADER.sizeDtStruct, delta);
    this.addToField(HEADER.offDtStrings, delta);
    return 0;
  }

  /** `fdt_splice_mem_rsv_` */
  private spliceMemRsv(p: number, oldn: number, newn: number): number {
    const err = this.splice(p, oldn * 16, newn * 16);
    if (err) return err;
    const delta = (newn - oldn) * 16;
    this.addToField(HEADER.offDtStruct, delta);
    this.addToField(HEADER.offDtStrings, delta);
    return 0;
  }

  /** `fdt_find_string_`: absolute offset of the first `s` + NUL inside the strings block, or -1. */
  private findString(s: Uint8Array): number {
    const bytes = this.buf;
    const base = this.reader.offDtStrings();
    const len = s.length + 1;
    const last = base + this.reader.sizeDtStrings() - len;
    if (last < base) return -1;
    const first = len === 1 ? 0 : s[0]!;
    // Candidate starts only: a view ending at `last` bounds indexOf's scan.
    const starts = bytes.subarray(0, last + 1);
    for (let p = base; p <= last; p++) {
      p = starts.indexOf(first, p);
      if (p < 0) return -1;
      if (bytes[p + s.length] !== 0) continue;
      let i = 1;
      while (i < s.length && bytes[p + i] === s[i]) i++;
      if (i >= s.length) return p;
    }
    return -1;
  }

  /** `fdt_find_add_string_`: the name's strings offset (found or appended), or an error. */
  private findAddString(s: Uint8Array): number {
    this.allocated = false;
    const base = this.reader.offDtStrings();
    const found = this.findString(s);
    if (found >= 0) return found - base;
    const size = this.reader.sizeDtStrings();
    const at = base + size;
    const err = this.splice(at, 0, s.length + 1);
    if (err) return err;
    this.addToField(HEADER.sizeDtStrings, s.length + 1);
    this.allocated = true;
    this.buf.set(s, at);
    this.buf[at + s.length] = 0;
    return size;
  }

  /** `fdt_get_property_w` (with its pre-v16 BADVERSION): the property's struct offset. */
  private getPropertyW(node: number, name: Uint8Array): number {
    if (this.reader.version() < 0x10) return ERR_BADVERSION;
    return this.reader.rawGetPropertyNamelen(node, name);
  }

  /** `fdt_add_property_`: a new property first in the node; absolute offset of its token. */
  private addProperty(node: number, name: Uint8Array, len: number): number {
    const next = this.reader.rawCheckNodeOffset(node);
    if (next < 0) return next;
    const nameoff = this.findAddString(name);
    if (nameoff < 0) return nameoff;
    const at = this.reader.offDtStruct() + next;
    const err = this.spliceStruct(at, 0, 12 + tagAlign(len));
    if (err) {
      if (this.allocated) this.addToField(HEADER.sizeDtStrings, -(name.length + 1));
      return err;
    }
    this.setU32(at, FDT_PROP);
    this.setU32(at + 4, len);
    this.setU32(at + 8, nameoff);
    return at;
  }

  /** `fdt_resize_property_`: absolute offset of the resized property's token. */
  private resizeProperty(node: number, name: Uint8Array, len: number): number {
    const prop = this.getPropertyW(node, name);
    if (prop < 0) return prop;
    const oldlen = this.reader.propLen;
    const at = this.reader.offDtStruct() + prop;
    const err = this.spliceStruct(at + 12, tagAlign(oldlen), tagAlign(len));
    if (err) return err;
    this.setU32(at + 4, len);
    return at;
  }

  /** `fdt_setprop_placeholder`: absolute offset of the (uninitialised) value. */
  private rawSetpropPlaceholder(node: number, name: Uint8Array, len: number): number {
    const p = this.rwProbe();
    if (p < 0) return p;
    let r = this.resizeProperty(node, name, len);
    if (r === ERR_NOTFOUND) r = this.addProperty(node, name, len);
    return r < 0 ? r : r + 12;
  }

  /** `fdt_nop_region_`: NOP words over `[at, at + len)` rounded up to a word (clipped to the buffer). */
  private nopRegion(at: number, len: number): void {
    const end = at + len;
    for (let p = at; p < end; p += 4) {
      if (p + 4 <= this.buf.length) this.setU32(p, FDT_NOP);
      else for (let i = 0; i < 4 && p + i < this.buf.length; i++) this.buf[p + i] = i === 3 ? FDT_NOP : 0;
    }
  }

  // ---- edits --------------------------------------------------------------------------

  /**
   * `fdt_add_subnode`: a new empty child `name` of `parent`, placed after the parent's
   * properties and before its existing children. Returns its offset. EXISTS if a child
   * already matches `name` (libfdt's unit-address rule: `"cpu"` matches `"cpu@0"`).
   */
  addSubnode(parent: FdtNodeRef, name: string): number {
    const node = this.node(parent);
    const nameBytes = encodeCName(name, "node name");
    return this.check(this.rawAddSubnode(node, nameBytes), node, "rw.add-subnode", `adding node ${JSON.stringify(name)}`);
  }

  private rawAddSubnode(parent: number, name: Uint8Array): number {
    const p = this.rwProbe();
    if (p < 0) return p;
    const r = this.reader;
    const existing = r.rawSubnodeOffset(parent, name);
    if (existing >= 0) return ERR_EXISTS;
    if (existing !== ERR_NOTFOUND) return existing;
    if (r.nextTag(parent) !== FDT_BEGIN_NODE) return ERR_INTERNAL;
    let next = r.nextOffset;
    let offset: number;
    let tag: number;
    do {
      offset = next;
      tag = r.nextTag(offset);
      next = r.nextOffset;
    } while (tag === FDT_PROP || tag === FDT_NOP);
    const at = r.offDtStruct() + offset;
    const nameRoom = tagAlign(name.length + 1);
    const nodelen = 4 + nameRoom + 4;
    const err = this.spliceStruct(at, 0, nodelen);
    if (err) return err;
    this.setU32(at, FDT_BEGIN_NODE);
    this.buf.fill(0, at + 4, at + 4 + nameRoom);
    this.buf.set(name, at + 4);
    this.setU32(at + nodelen - 4, FDT_END_NODE);
    return offset;
  }

  /**
   * `fdt_setprop`: set `name` to `value`. A new property goes first in the node; an
   * existing one is resized in place (its padding keeps stale bytes).
   */
  setprop(node: FdtNodeRef, name: string, value: Uint8Array): void {
    const at = this.placeholder(node, name, value.length);
    if (value.length) this.buf.set(value, at);
  }

  /**
   * `fdt_setprop_placeholder`: make room for a `len`-byte value and return a live view of
   * it (its bytes are whatever was there; fill it before the next edit).
   */
  setpropPlaceholder(node: FdtNodeRef, name: string, len: number): Uint8Array {
    const at = this.placeholder(node, name, len);
    return this.buf.subarray(at, at + len);
  }

  private placeholder(ref: FdtNodeRef, name: string, len: number): number {
    const node = this.node(ref);
    const nameBytes = encodeCName(name, "property name");
    if (!Number.isInteger(len) || len < 0 || len > INT_MAX) badValue("arg.len", `length ${len} is not a C int >= 0`);
    return this.check(this.rawSetpropPlaceholder(node, nameBytes, len), node, "rw.setprop", `setting property ${JSON.stringify(name)}`);
  }

  /** `fdt_setprop_string`: the UTF-8 bytes of `value` plus a NUL. */
  setpropString(node: FdtNodeRef, name: string, value: string): void {
    const utf8 = new TextEncoder().encode(value);
    const bytes = new Uint8Array(utf8.length + 1);
    bytes.set(utf8);
    this.setprop(node, name, bytes);
  }

  /** `fdt_setprop_u32`: one big-endian cell. */
  setpropU32(node: FdtNodeRef, name: string, value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) badValue("arg.u32", `${value} is not a u32`);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value);
    this.setprop(node, name, bytes);
  }

  /** `fdt_setprop_u64`: one big-endian u64. */
  setpropU64(node: FdtNodeRef, name: string, value: bigint): void {
    if (value < 0n || value > 0xffffffffffffffffn) badValue("arg.u64", `${value} is not a u64`);
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, value);
    this.setprop(node, name, bytes);
  }

  /**
   * `fdt_appendprop`: append `value` to `name` (created first in the node if absent).
   * As in libfdt, any lookup failure (not just NOTFOUND) falls back to creating it.
   */
  appendprop(node: FdtNodeRef, name: string, value: Uint8Array): void {
    const off = this.node(node);
    const nameBytes = encodeCName(name, "property name");
    this.check(this.rawAppendprop(off, nameBytes, value), off, "rw.appendprop", `appending to property ${JSON.stringify(name)}`);
  }

  private rawAppendprop(node: number, name: Uint8Array, value: Uint8Array): number {
    const p = this.rwProbe();
    if (p < 0) return p;
    const prop = this.getPropertyW(node, name);
    if (prop >= 0) {
      const oldlen = this.reader.propLen;
      const at = this.reader.offDtStruct() + prop;
      const err = this.spliceStruct(at + 12, tagAlign(oldlen), tagAlign(oldlen + value.length));
      if (err) return err;
      this.setU32(at + 4, oldlen + value.length);
      this.buf.set(value, at + 12 + oldlen);
      return 0;
    }
    const at = this.addProperty(node, name, value.length);
    if (at < 0) return at;
    this.buf.set(value, at + 12);
    return 0;
  }

  /** `fdt_delprop`: remove the property (its name stays in the strings block). */
  delprop(node: FdtNodeRef, name: string): void {
    const off = this.node(node);
    const nameBytes = encodeCName(name, "property name");
    this.check(this.rawDelprop(off, nameBytes), off, "rw.delprop", `deleting property ${JSON.stringify(name)}`);
  }

  private rawDelprop(node: number, name: Uint8Array): number {
    const p = this.rwProbe();
    if (p < 0) return p;
    const prop = this.getPropertyW(node, name);
    if (prop < 0) return prop;
    return this.spliceStruct(this.reader.offDtStruct() + prop, 12 + tagAlign(this.reader.propLen), 0);
  }

  /** `fdt_del_node`: remove the node and its subtree. */
  delNode(node: FdtNodeRef): void {
    const off = this.node(node);
    this.check(this.rawDelNode(off), off, "rw.del-node", `deleting node at ${off}`);
  }

  private rawDelNode(node: number): number {
    const p = this.rwProbe();
    if (p < 0) return p;
    const end = this.reader.rawNodeEndOffset(node);
    if (end < 0) return end;
    return this.spliceStruct(this.reader.offDtStruct() + node, end - node, 0);
  }

  /** `fdt_set_name`: rename the node (no duplicate check, as in libfdt; padding stays stale). */
  setName(node: FdtNodeRef, name: string): void {
    const off = this.node(node);
    const nameBytes = encodeCName(name, "node name");
    this.check(this.rawSetName(off, nameBytes), off, "rw.set-name", `renaming node at ${off}`);
  }

  private rawSetName(node: number, name: Uint8Array): number {
    const p = this.rwProbe();
    if (p < 0) return p;
    const oldlen = this.reader.rawGetName(node);
    if (oldlen < 0) return oldlen;
    const at = this.reader.stringStart;
    const err = this.spliceStruct(at, tagAlign(oldlen + 1), tagAlign(name.length + 1));
    if (err) return err;
    this.buf.set(name, at);
    this.buf[at + name.length] = 0;
    return 0;
  }

  /** `fdt_nop_property`: overwrite the property with NOP tokens (no layout probe). */
  nopProperty(node: FdtNodeRef, name: string): void {
    const off = this.node(node);
    const nameBytes = encodeCName(name, "property name");
    const prop = this.check(this.getPropertyW(off, nameBytes), off, "wip.nop-property", `property ${JSON.stringify(name)}`);
    this.nopRegion(this.reader.offDtStruct() + prop, this.reader.propLen + 12);
  }

  /** `fdt_nop_node`: overwrite the node and its subtree with NOP tokens (no layout probe). */
  nopNode(node: FdtNodeRef): void {
    const off = this.node(node);
    const end = this.check(this.reader.rawNodeEndOffset(off), off, "wip.nop-node", `node at ${off}`);
    this.nopRegion(this.reader.offDtStruct() + off, end - off);
  }

  /**
   * `fdt_setprop_inplace`: overwrite the value of an existing property of exactly
   * `value.length` bytes (NOSPACE otherwise); nothing moves, no layout probe.
   */
  setpropInplace(node: FdtNodeRef, name: string, value: Uint8Array): void {
    const off = this.node(node);
    const nameBytes = encodeCName(name, "property name");
    const prop = this.check(this.reader.rawGetPropertyNamelen(off, nameBytes), off, "wip.setprop-inplace", `property ${JSON.stringify(name)}`);
    if (this.reader.propLen !== value.length) {
      throwLibfdt(ERR_NOSPACE, -1, "wip.setprop-inplace", `property ${JSON.stringify(name)} has ${this.reader.propLen} bytes, not ${value.length}`);
    }
    this.buf.set(value, this.reader.rawPropData(prop));
  }

  /**
   * `fdt_setprop_inplace_namelen_partial`: overwrite `value.length` bytes of an existing
   * value at byte `index` (NOSPACE if that runs past the value).
   */
  setpropInplacePartial(node: FdtNodeRef, name: string, index: number, value: Uint8Array): void {
    const off = this.node(node);
    const nameBytes = encodeCName(name, "property name");
    if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) badValue("arg.index", `index ${index} is not a u32`);
    const prop = this.check(this.reader.rawGetPropertyNamelen(off, nameBytes), off, "wip.setprop-inplace", `property ${JSON.stringify(name)}`);
    if (this.reader.propLen < value.length + index) {
      throwLibfdt(ERR_NOSPACE, -1, "wip.setprop-inplace", `bytes ${index}..${index + value.length} run past the ${this.reader.propLen}-byte value`);
    }
    this.buf.set(value, this.reader.rawPropData(prop) + index);
  }

  /** `fdt_add_mem_rsv`: a new reserve entry before the terminator (moves struct and strings by 16). */
  addMemRsv(address: bigint, size: bigint): void {
    if (address < 0n || address > 0xffffffffffffffffn || size < 0n || size > 0xffffffffffffffffn) {
      badValue("arg.u64", "reserve entry address/size is not a u64");
    }
    const p = this.rwProbe();
    this.check(p, -1, "rw.add-mem-rsv", "adding a reserve entry");
    const n = this.check(this.reader.rawNumMemRsv(), -1, "rsvmap.terminator", "reserve map has no terminator");
    const at = this.reader.offMemRsvmap() + n * 16;
    this.check(this.spliceMemRsv(at, 0, 1), -1, "rw.add-mem-rsv", "adding a reserve entry");
    this.view.setBigUint64(at, address);
    this.view.setBigUint64(at + 8, size);
  }

  /** `fdt_del_mem_rsv`: remove reserve entry `index` (NOTFOUND past the last entry). */
  delMemRsv(index: number): void {
    const p = this.rwProbe();
    this.check(p, -1, "rw.del-mem-rsv", "deleting a reserve entry");
    const n = this.reader.rawNumMemRsv();
    if (!Number.isInteger(index) || index < 0 || index >= n) throwLibfdt(ERR_NOTFOUND, -1, "rw.del-mem-rsv", `no reserve entry ${index}`);
    this.check(this.spliceMemRsv(this.reader.offMemRsvmap() + index * 16, 1, 0), -1, "rw.del-mem-rsv", "deleting a reserve entry");
  }

  /**
   * `fdt_pack`: reserve map to 40, blocks contiguous, totalsize = end of the strings; the
   * buffer shrinks to totalsize (python3-libfdt's `Fdt.pack`).
   */
  pack(): void {
    this.check(this.rwProbe(), -1, "rw.pack", "packing");
    const r = this.reader;
    const n = this.check(r.rawNumMemRsv(), -1, "rsvmap.terminator", "reserve map has no terminator");
    const memRsvSize = (n + 1) * 16;
    const structSize = r.sizeDtStruct();
    const stringsSize = r.sizeDtStrings();
    if (RW_RSVMAP_OFFSET + memRsvSize + structSize + stringsSize > this.buf.length) {
      throwLibfdt(ERR_BADLAYOUT, r.offMemRsvmap(), "rw.pack", "reserve map overlaps the struct block");
    }
    packBlocks(r, this.buf, this.view, memRsvSize, structSize, stringsSize);
    const total = r.offDtStrings() + r.sizeDtStrings();
    this.setU32(HEADER.totalsize, total);
    this.adopt(this.buf.subarray(0, total));
  }
}
