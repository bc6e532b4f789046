/**
 * The strict check: every problem a blob has against the Devicetree Specification (v0.4,
 * chapter 5 and section 2.2) and the errors dtc's checks.c raises on the tree, listed in
 * blob order, up to {@link FDT_MAX_PROBLEMS}. Where libfdt reports the same failure, the
 * problem carries libfdt's code; otherwise the closest one (table below).
 *
 * Unlike {@link checkLibfdt} this is a specification check, not a model of one libfdt
 * release: a NOP after the root is legal (the spec allows NOP anywhere; libfdt 1.6.1's
 * rejection was a bug fixed in 1.8.1), and lengths never wrap.
 *
 * ```text
 * rule                         code            what
 * header.size                  TRUNCATED       buffer shorter than the 40-byte v17 header        (stops)
 * header.magic                 BADMAGIC        magic != 0xd00dfeed                               (stops)
 * header.version               BADVERSION      version != 17                  (stops if < 16 or unreadable)
 * header.last-comp-version     BADVERSION      last_comp_version != 16        (stops if > 17 or > version)
 * header.totalsize             TRUNCATED       totalsize below the header, above INT_MAX or the buffer (stops)
 * layout.rsvmap-align          ALIGNMENT       off_mem_rsvmap not 8-aligned
 * layout.struct-align          ALIGNMENT       off_dt_struct not 4-aligned
 * layout.block-bounds          TRUNCATED       a block outside [header, totalsize]               (stops)
 * layout.block-order           BADLAYOUT       blocks not in the order reserve map, struct, strings
 * layout.overlap               BADLAYOUT       two blocks share bytes
 * layout.gap-nonzero           BADLAYOUT       a non-zero byte between the header, blocks and totalsize
 * rsvmap.terminator            TRUNCATED       no (0, 0) entry before totalsize
 * rsvmap.zero-size             BADVALUE        an entry of size 0 with a non-zero address (libfdt ends the map there, dtc does not)
 * rsvmap.overflow              BADVALUE        address + size past 2^64
 * struct.truncated             TRUNCATED       no END before the end of the struct block          (stops)
 * struct.token                 BADSTRUCTURE    unknown token                                     (stops)
 * struct.name-unterminated     BADSTRUCTURE    node name without NUL in the block                (stops)
 * struct.prop-truncated        BADSTRUCTURE    property header or value past the block           (stops)
 * struct.padding               BADSTRUCTURE    non-zero padding after a node name or a value
 * struct.no-root               BADSTRUCTURE    END before any node
 * struct.root-name             BADSTRUCTURE    root node name not empty
 * struct.second-root           BADSTRUCTURE    a node after the root closed
 * struct.prop-outside-node     BADSTRUCTURE    a property outside every node
 * struct.prop-after-subnode    BADSTRUCTURE    a property after the node's first subnode
 * struct.end-node-depth        BADSTRUCTURE    END_NODE with no node open
 * struct.end-depth             BADSTRUCTURE    END with nodes still open
 * struct.after-end             BADSTRUCTURE    bytes after END inside size_dt_struct
 * strings.nameoff              BADOFFSET       nameoff outside the strings block
 * strings.unterminated         TRUNCATED       property name without NUL in the strings block
 * strings.tail                 TRUNCATED       strings block does not end with a NUL
 * name.node-empty              BADVALUE        node name (before '@') empty
 * name.node-length             BADVALUE        node name (before '@') longer than 31
 * name.node-first-char         BADVALUE        node name not starting with a letter
 * name.node-chars              BADVALUE        node name char outside [0-9a-zA-Z,._+-]
 * name.unit-empty              BADVALUE        '@' with nothing after it
 * name.unit-multiple-at        BADVALUE        a second '@' (dtc node_name_format)
 * name.unit-chars              BADVALUE        unit-address char outside [0-9a-zA-Z,._+-]
 * name.prop-empty              BADVALUE        property name empty
 * name.prop-length             BADVALUE        property name longer than 31
 * name.prop-chars              BADVALUE        property name char outside [0-9a-zA-Z,._+?#-]
 * node.duplicate-name          EXISTS          two sibling nodes with the same name
 * prop.duplicate-name          EXISTS          two properties with the same name in a node
 * prop.name-mismatch           BADVALUE        a "name" property that is not the node's base name (dtc name_properties)
 * phandle.length               BADPHANDLE      phandle / linux,phandle not 4 bytes
 * phandle.value                BADPHANDLE      phandle 0 or 0xffffffff
 * phandle.mismatch             BADPHANDLE      phandle and linux,phandle differ
 * phandle.duplicate            BADPHANDLE      two nodes with the same phandle
 * cells.length                 BADNCELLS       #address-cells / #size-cells not 4 bytes
 * cells.range                  BADNCELLS       #address-cells / #size-cells above 4 (libfdt FDT_MAX_NCELLS)
 * reg.length                   BADVALUE        reg empty or not a multiple of the parent's (#address-cells + #size-cells) cells
 * ```
 *
 * Names: the spec allows `[0-9a-zA-Z,._+-]` (1-31 chars, first a letter) in node names and
 * `[0-9a-zA-Z,._+?#-]` (1-31 chars) in property names. dtc 1.6.1's checks.c (measured: see
 * check-strict.test.ts) raises node_name_chars for any node-name byte outside
 * `[0-9a-zA-Z,._+-@]` and property_name_chars outside `[0-9a-zA-Z,._+*#?-]`, with no length
 * or first-letter rule, plus node_name_format for a second '@'. So the character sets agree
 * except `*` in property names, which dtc accepts and the spec (hence this check) does not.
 * The unit address, which the spec leaves to the bus binding, is held to dtc's node-name
 * set. NOP tokens are legal anywhere.
 */
import { FDT_MAX_PROBLEMS, FDT_VALID_REPORT, type FdtCheckReport, type FdtProblem } from "./check-report.js";
import type { FdtErrorCode } from "./errors.js";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_LAST_COMP_VERSION,
  FDT_LAST_SUPPORTED_VERSION,
  FDT_MAGIC,
  FDT_MAX_NAME_LENGTH,
  FDT_MAX_TOTALSIZE,
  FDT_NOP,
  FDT_PROP,
  HEADER,
  headerSizeForVersion,
} from "./layout.js";
import { isDtcPropertyNameChar, isNodeNameChar, isPropertyNameChar } from "./names.js";
import { decodeLatin1 } from "./wire/strings.js";

/** Names longer than this are not decoded whole (they break the 31-char rule anyway). */
const LONG_NAME = 255;
/** Longest name quoted in a message. */
const SHOWN = 64;

/** Index-relative next-NUL table for `b[start, end)`: `t[i]` = absolute offset of the first NUL at or after `start + i`, or -1. */
function buildNextNul(b: Uint8Array, start: number, end: number): Int32Array {
  const t = new Int32Array(end - start);
  let nul = -1;
  for (let i = end - 1; i >= start; i--) {
    if (b[i] === 0) nul = i;
    t[i - start] = nul;
  }
  return t;
}

/** How a message names a property (see resolvePropName for the key of a long name). */
function propertyLabel(name: string | null): string {
  if (name === null) return "property";
  return name.startsWith("\0") ? "property with a long name" : `property "${name}"`;
}

/** libfdt's `FDT_MAX_NCELLS`. */
const MAX_NCELLS = 4;
const AT = 0x40;

function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}

function isLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function printable(c: number): string {
  return c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : hex(c);
}

/** A node open during the walk. */
interface Frame {
  /** Offset of the BEGIN_NODE token. */
  readonly offset: number;
  readonly nameStart: number;
  /** End of the base name (the first '@', or the NUL). */
  readonly baseEnd: number;
  childNames: Set<string> | null;
  propNames: Set<string> | null;
  sawChild: boolean;
  /** -1 absent, -2 present but unusable, else the value. */
  addressCells: number;
  sizeCells: number;
  /** The node's phandle (from either property), or -1. */
  phandle: number;
}

/** What a property name (one nameoff) resolves to, computed once per distinct nameoff. */
interface PropName {
  /** The decoded name, or null when it cannot be read. */
  readonly name: string | null;
  /** Problem with the nameoff or the string itself, reported at each use. */
  readonly fault: readonly [FdtErrorCode, string, string, number] | null;
  /** Problems with the name's characters or length. */
  readonly nameFaults: readonly (readonly [string, string])[];
}

interface Block {
  readonly what: string;
  readonly start: number;
  readonly end: number;
}

class StrictChecker {
  readonly problems: FdtProblem[] = [];
  private readonly b: Uint8Array;
  private hdrSize = 40;
  private totalsize = 0;
  private offStrings = 0;
  private sizeStrings = 0;
  private readonly propNames = new Map<number, PropName>();
  /** `nextNul[i]`: offset of the first NUL at or after strings-block index i, or -1. */
  private nextNul: Int32Array | null = null;
  private readonly phandles = new Map<number, number>();

  constructor(bytes: Uint8Array) {
    this.b = bytes;
  }

  private add(code: FdtErrorCode, offset: number, rule: string, message: string): void {
    if (this.problems.length < FDT_MAX_PROBLEMS) this.problems.push({ code, offset, rule, message });
  }

  private get full(): boolean {
    return this.problems.length >= FDT_MAX_PROBLEMS;
  }

  run(): void {
    const b = this.b;
    const size = b.length;
    if (size >= 4 && u32(b, HEADER.magic) !== FDT_MAGIC) {
      this.add("FDT_ERR_BADMAGIC", HEADER.magic, "header.magic", `magic ${hex(u32(b, HEADER.magic))} is not 0xd00dfeed`);
      return;
    }
    if (size < 40) {
      this.add("FDT_ERR_TRUNCATED", 0, "header.size", `buffer of ${size} bytes is shorter than the 40-byte v17 header`);
      return;
    }
    const version = u32(b, HEADER.version);
    const lastComp = u32(b, HEADER.lastCompVersion);
    if (version !== FDT_LAST_SUPPORTED_VERSION) this.add("FDT_ERR_BADVERSION", HEADER.version, "header.version", `version ${version} is not 17`);
    if (lastComp !== FDT_LAST_COMP_VERSION) this.add("FDT_ERR_BADVERSION", HEADER.lastCompVersion, "header.last-comp-version", `last_comp_version ${lastComp} is not 16`);
    // Below v16 names are paths and values are realigned: a different format, not walked.
    if (version < 16 || lastComp > FDT_LAST_SUPPORTED_VERSION || version < lastComp) return;
    const isV17 = version >= 17;
    const hdrSize = headerSizeForVersion(version);
    this.hdrSize = hdrSize;

    const totalsize = u32(b, HEADER.totalsize);
    if (totalsize < hdrSize || totalsize > FDT_MAX_TOTALSIZE || totalsize > size) {
      this.add("FDT_ERR_TRUNCATED", HEADER.totalsize, "header.totalsize", `totalsize ${totalsize} is outside [${hdrSize}, min(INT_MAX, buffer size ${size})]`);
      return;
    }
    this.totalsize = totalsize;
    const offRsv = u32(b, HEADER.offMemRsvmap);
    const offStruct = u32(b, HEADER.offDtStruct);
    const offStrings = u32(b, HEADER.offDtStrings);
    const sizeStrings = u32(b, HEADER.sizeDtStrings);
    const sizeStruct = isV17 ? u32(b, HEADER.sizeDtStruct) : 0;
    if (offRsv % 8 !== 0) this.add("FDT_ERR_ALIGNMENT", HEADER.offMemRsvmap, "layout.rsvmap-align", `off_mem_rsvmap ${offRsv} is not 8-aligned`);
    if (offStruct % 4 !== 0) this.add("FDT_ERR_ALIGNMENT", HEADER.offDtStruct, "layout.struct-align", `off_dt_struct ${offStruct} is not 4-aligned`);
    const inBounds = (field: number, what: string, start: number, length: number): boolean => {
      if (start >= hdrSize && start + length <= totalsize) return true;
      this.add("FDT_ERR_TRUNCATED", field, "layout.block-bounds", `${what} [${start}, +${length}) is outside [${hdrSize}, ${totalsize}]`);
      return false;
    };
    const rsvOk = inBounds(HEADER.offMemRsvmap, "reserve map", offRsv, 0);
    const structOk = inBounds(HEADER.offDtStruct, "struct block", offStruct, sizeStruct);
    const stringsOk = inBounds(HEADER.offDtStrings, "strings block", offStrings, sizeStrings);
    if (!rsvOk || !structOk || !stringsOk) return;
    this.offStrings = offStrings;
    this.sizeStrings = sizeStrings;

    const rsvEnd = this.checkReserveMap(offRsv);
    const structEnd = isV17 ? offStruct + sizeStruct : totalsize;
    const walkEnd = this.walk(offStruct, structEnd, isV17);
    this.checkStringsTail();
    // Without size_dt_struct (v16) the struct block ends where the walk found END.
    const structBlockEnd = isV17 ? structEnd : walkEnd;
    const blocks: Block[] = [{ what: "reserve map", start: offRsv, end: rsvEnd }];
    if (structBlockEnd >= 0) blocks.push({ what: "struct block", start: offStruct, end: structBlockEnd });
    blocks.push({ what: "strings block", start: offStrings, end: offStrings + sizeStrings });
    this.checkLayout(blocks, structBlockEnd >= 0);
  }

  /** Walk the reserve map; returns the end of its terminator (or totalsize when it has none). */
  private checkReserveMap(offRsv: number): number {
    const b = this.b;
    for (let at = offRsv; at + 16 <= this.totalsize; at += 16) {
      const aHi = u32(b, at);
      const aLo = u32(b, at + 4);
      const sHi = u32(b, at + 8);
      const sLo = u32(b, at + 12);
      if ((aHi | aLo | sHi | sLo) === 0) return at + 16;
      if ((sHi | sLo) === 0) {
        this.add("FDT_ERR_BADVALUE", at, "rsvmap.zero-size", `reserve map entry with address ${hex(aHi)}_${hex(aLo).slice(2).padStart(8, "0")} and size 0 (libfdt ends the map here, dtc does not)`);
      } else {
        // The region may end exactly at 2^64; past that it wraps.
        const lo = aLo + sLo;
        const hi = aHi + sHi + (lo > 0xffffffff ? 1 : 0);
        if (hi > 0x100000000 || (hi === 0x100000000 && lo % 0x100000000 !== 0)) {
          this.add("FDT_ERR_BADVALUE", at, "rsvmap.overflow", "reserve map entry address + size runs past 2^64");
        }
      }
      if (this.full) return this.totalsize;
    }
    this.add("FDT_ERR_TRUNCATED", offRsv, "rsvmap.terminator", `reserve map has no (0, 0) terminator before totalsize ${this.totalsize}`);
    return this.totalsize;
  }

  /** Non-zero bytes in `[from, to)` are reported once, at the first of them. */
  private checkZero(from: number, to: number, rule: string, code: FdtErrorCode, what: string): void {
    const b = this.b;
    for (let i = from; i < to; i++) {
      if (b[i] !== 0) {
        this.add(code, i, rule, `non-zero byte ${hex(b[i]!)} in ${what}`);
        return;
      }
    }
  }

  /** Walk the struct block; returns the offset after END, or -1 when the walk could not finish. */
  private walk(offStruct: number, structEnd: number, isV17: boolean): number {
    const b = this.b;
    const stack: Frame[] = [];
    let rootSeen = false;
    let rootClosed = false;
    let p = offStruct;
    for (;;) {
      if (this.full) return -1;
      if (p + 4 > structEnd) {
        this.add("FDT_ERR_TRUNCATED", p, "struct.truncated", `no END token before the end of the struct block at ${structEnd}`);
        return -1;
      }
      const tag = u32(b, p);
      let next = p + 4;
      if (tag === FDT_BEGIN_NODE) {
        const nameStart = p + 4;
        let q = nameStart;
        while (q < structEnd && b[q] !== 0) q++;
        if (q >= structEnd) {
          this.add("FDT_ERR_BADSTRUCTURE", p, "struct.name-unterminated", `node name has no NUL before the end of the struct block at ${structEnd}`);
          return -1;
        }
        next = offStruct + ((q + 1 - offStruct + 3) & ~3);
        this.checkZero(q + 1, Math.min(next, structEnd), "struct.padding", "FDT_ERR_BADSTRUCTURE", "node name padding");
        let baseEnd = nameStart;
        while (baseEnd < q && b[baseEnd] !== AT) baseEnd++;
        const parent = stack[stack.length - 1];
        if (parent === undefined) {
          if (rootClosed) this.add("FDT_ERR_BADSTRUCTURE", p, "struct.second-root", "a second top-level node after the root closed");
          else if (q !== nameStart) this.add("FDT_ERR_BADSTRUCTURE", nameStart, "struct.root-name", `root node name "${this.show(nameStart, q)}" is not empty`);
          rootSeen = true;
        } else {
          parent.sawChild = true;
          this.checkNodeName(nameStart, baseEnd, q);
          const name = decodeLatin1(b, nameStart, q);
          parent.childNames ??= new Set();
          if (parent.childNames.has(name)) this.add("FDT_ERR_EXISTS", p, "node.duplicate-name", `duplicate sibling node name "${this.show(nameStart, q)}"`);
          else parent.childNames.add(name);
        }
        stack.push({ offset: p, nameStart, baseEnd, childNames: null, propNames: null, sawChild: false, addressCells: -1, sizeCells: -1, phandle: -1 });
      } else if (tag === FDT_END_NODE) {
        if (stack.length === 0) {
          this.add("FDT_ERR_BADSTRUCTURE", p, "struct.end-node-depth", "END_NODE with no node open");
        } else {
          stack.pop();
          if (stack.length === 0) rootClosed = true;
        }
      } else if (tag === FDT_PROP) {
        if (p + 12 > structEnd) {
          this.add("FDT_ERR_BADSTRUCTURE", p, "struct.prop-truncated", `property header runs past the end of the struct block at ${structEnd}`);
          return -1;
        }
        const len = u32(b, p + 4);
        const valueStart = p + 12;
        const valueEnd = valueStart + len;
        if (valueEnd > structEnd) {
          this.add("FDT_ERR_BADSTRUCTURE", p, "struct.prop-truncated", `property value of ${len} bytes runs past the end of the struct block at ${structEnd}`);
          return -1;
        }
        next = offStruct + ((valueEnd - offStruct + 3) & ~3);
        this.checkZero(valueEnd, Math.min(next, structEnd), "struct.padding", "FDT_ERR_BADSTRUCTURE", "property value padding");
        const name = this.propName(p);
        const frame = stack[stack.length - 1];
        if (frame === undefined) {
          this.add("FDT_ERR_BADSTRUCTURE", p, "struct.prop-outside-node", `${propertyLabel(name)} outside every node`);
        } else {
          if (frame.sawChild) this.add("FDT_ERR_BADSTRUCTURE", p, "struct.prop-after-subnode", `${propertyLabel(name)} after a subnode`);
          if (name !== null) {
            frame.propNames ??= new Set();
            if (frame.propNames.has(name)) this.add("FDT_ERR_EXISTS", p, "prop.duplicate-name", `duplicate ${propertyLabel(name)} in a node`);
            else frame.propNames.add(name);
            this.checkSpecialProperty(p, name, valueStart, len, frame, stack.length >= 2 ? stack[stack.length - 2]! : null);
          }
        }
      } else if (tag === FDT_END) {
        if (stack.length !== 0) this.add("FDT_ERR_BADSTRUCTURE", p, "struct.end-depth", `END with ${stack.length} node(s) still open`);
        if (!rootSeen) this.add("FDT_ERR_BADSTRUCTURE", p, "struct.no-root", "END before any node: the tree has no root");
        const end = p + 4;
        if (isV17 && end < structEnd) this.add("FDT_ERR_BADSTRUCTURE", end, "struct.after-end", `${structEnd - end} bytes after END inside size_dt_struct`);
        return end;
      } else if (tag !== FDT_NOP) {
        this.add("FDT_ERR_BADSTRUCTURE", p, "struct.token", `unknown token ${hex(tag)}`);
        return -1;
      }
      p = next;
    }
  }

  /** Spec and dtc rules on a non-root node name `[start, end)` whose base name ends at `baseEnd`. */
  private checkNodeName(start: number, baseEnd: number, end: number): void {
    const b = this.b;
    const baseLen = baseEnd - start;
    if (baseLen === 0) {
      this.add("FDT_ERR_BADVALUE", start, "name.node-empty", end === start ? "empty node name" : "node name has nothing before '@'");
    } else {
      if (baseLen > FDT_MAX_NAME_LENGTH) this.add("FDT_ERR_BADVALUE", start, "name.node-length", `node name "${this.show(start, baseEnd)}" is ${baseLen} chars, more than 31`);
      if (!isLetter(b[start]!)) this.add("FDT_ERR_BADVALUE", start, "name.node-first-char", `node name starts with ${printable(b[start]!)}, not a letter`);
      for (let i = start; i < baseEnd; i++) {
        if (!isNodeNameChar(b[i]!)) {
          this.add("FDT_ERR_BADVALUE", i, "name.node-chars", `character ${printable(b[i]!)} not allowed in a node name`);
          break;
        }
      }
    }
    if (baseEnd < end) {
      if (baseEnd + 1 === end) this.add("FDT_ERR_BADVALUE", baseEnd, "name.unit-empty", "'@' without a unit address");
      for (let i = baseEnd + 1; i < end; i++) {
        const c = b[i]!;
        if (c === AT) {
          this.add("FDT_ERR_BADVALUE", i, "name.unit-multiple-at", "more than one '@' in a node name");
          break;
        }
        if (!isNodeNameChar(c)) {
          this.add("FDT_ERR_BADVALUE", i, "name.unit-chars", `character ${printable(c)} not allowed in a unit address`);
          break;
        }
      }
    }
  }

  /** Resolve the name of the property at `p`, reporting problems with it at this use. */
  private propName(p: number): string | null {
    const nameoff = u32(this.b, p + 8);
    let info = this.propNames.get(nameoff);
    if (info === undefined) {
      info = this.resolvePropName(nameoff, p);
      this.propNames.set(nameoff, info);
    }
    if (info.fault !== null) {
      const [code, rule, message, at] = info.fault;
      this.add(code, at < 0 ? p + 8 : at, rule, message);
    }
    for (const [rule, message] of info.nameFaults) this.add("FDT_ERR_BADVALUE", p, rule, message);
    return info.name;
  }

  private resolvePropName(nameoff: number, p: number): PropName {
    const b = this.b;
    if (nameoff >= this.sizeStrings) {
      return { name: null, fault: ["FDT_ERR_BADOFFSET", "strings.nameoff", `nameoff ${nameoff} is outside the ${this.sizeStrings}-byte strings block`, p + 8], nameFaults: [] };
    }
    const start = this.offStrings + nameoff;
    const end = this.offStrings + this.sizeStrings;
    // One next-NUL table for the block: distinct nameoffs into one long string would
    // otherwise each rescan it.
    this.nextNul ??= buildNextNul(b, this.offStrings, end);
    const nul = this.nextNul[nameoff]!;
    if (nul < 0) {
      return { name: null, fault: ["FDT_ERR_TRUNCATED", "strings.unterminated", `property name at ${start} has no NUL before the end of the strings block at ${end}`, start], nameFaults: [] };
    }
    const length = nul - start;
    // A name past LONG_NAME is already wrong; it is keyed by its offset (so duplicates of
    // it at another offset go unreported) and only its head is checked and shown.
    const name = length <= LONG_NAME ? decodeLatin1(b, start, nul) : `\0@${start}`;
    const shown = this.show(start, nul);
    const nameFaults: (readonly [string, string])[] = [];
    if (length === 0) nameFaults.push(["name.prop-empty", "empty property name"]);
    if (length > FDT_MAX_NAME_LENGTH) nameFaults.push(["name.prop-length", `property name "${shown}" is ${length} chars, more than 31`]);
    for (let i = start, stop = Math.min(nul, start + LONG_NAME); i < stop; i++) {
      if (!isPropertyNameChar(b[i]!)) {
        const dtcToo = isDtcPropertyNameChar(b[i]!) ? " (dtc accepts it; the spec does not)" : "";
        nameFaults.push(["name.prop-chars", `character ${printable(b[i]!)} not allowed in property name "${shown}"${dtcToo}`]);
        break;
      }
    }
    return { name, fault: null, nameFaults };
  }

  /** A name for a message: at most SHOWN chars of `[start, end)`. */
  private show(start: number, end: number): string {
    return end - start <= SHOWN ? decodeLatin1(this.b, start, end) : `${decodeLatin1(this.b, start, start + SHOWN)}...`;
  }

  /** Rules on properties with a meaning: phandles, cell counts, reg, name. */
  private checkSpecialProperty(p: number, name: string, value: number, len: number, frame: Frame, parent: Frame | null): void {
    const b = this.b;
    switch (name) {
      case "phandle":
      case "linux,phandle": {
        if (len !== 4) {
          this.add("FDT_ERR_BADPHANDLE", p, "phandle.length", `${name} is ${len} bytes, not 4`);
          return;
        }
        const v = u32(b, value);
        if (v === 0 || v === 0xffffffff) {
          this.add("FDT_ERR_BADPHANDLE", p, "phandle.value", `${name} ${hex(v)} is not a valid phandle`);
          return;
        }
        if (frame.phandle >= 0) {
          if (frame.phandle !== v) this.add("FDT_ERR_BADPHANDLE", p, "phandle.mismatch", `${name} ${hex(v)} differs from the node's other phandle ${hex(frame.phandle)}`);
          return;
        }
        frame.phandle = v;
        const first = this.phandles.get(v);
        if (first !== undefined) this.add("FDT_ERR_BADPHANDLE", p, "phandle.duplicate", `phandle ${hex(v)} already used by the node at ${first}`);
        else this.phandles.set(v, frame.offset);
        return;
      }
      case "#address-cells":
      case "#size-cells": {
        let cells = -2;
        if (len !== 4) {
          this.add("FDT_ERR_BADNCELLS", p, "cells.length", `${name} is ${len} bytes, not 4`);
        } else {
          const v = u32(b, value);
          if (v > MAX_NCELLS) this.add("FDT_ERR_BADNCELLS", p, "cells.range", `${name} ${v} is above ${MAX_NCELLS}`);
          else cells = v;
        }
        if (name === "#address-cells") frame.addressCells = cells;
        else frame.sizeCells = cells;
        return;
      }
      case "reg": {
        if (parent === null) return; // dtc only warns about reg on the root; no cells to check against
        if (parent.addressCells === -2 || parent.sizeCells === -2) return; // already reported
        const a = parent.addressCells === -1 ? 2 : parent.addressCells;
        const s = parent.sizeCells === -1 ? 1 : parent.sizeCells;
        const entry = (a + s) * 4;
        if (len === 0) this.add("FDT_ERR_BADVALUE", p, "reg.length", "reg is empty");
        else if (entry === 0 || len % entry !== 0) this.add("FDT_ERR_BADVALUE", p, "reg.length", `reg is ${len} bytes, not a multiple of ${entry} (#address-cells ${a}, #size-cells ${s})`);
        return;
      }
      case "name": {
        const baseLen = frame.baseEnd - frame.nameStart;
        let same = len === baseLen + 1 && b[value + baseLen] === 0;
        for (let i = 0; same && i < baseLen; i++) same = b[value + i] === b[frame.nameStart + i];
        if (!same) this.add("FDT_ERR_BADVALUE", p, "prop.name-mismatch", `"name" property is not the node's base name "${this.show(frame.nameStart, frame.baseEnd)}"`);
        return;
      }
      default:
        return;
    }
  }

  private checkStringsTail(): void {
    if (this.sizeStrings === 0) return;
    const b = this.b;
    const end = this.offStrings + this.sizeStrings;
    if (b[end - 1] === 0) return;
    let start = end - 1;
    while (start > this.offStrings && b[start - 1] !== 0) start--;
    this.add("FDT_ERR_TRUNCATED", start, "strings.tail", `the last string of the strings block (at ${start}) has no NUL`);
  }

  /** Block order, overlaps, and zero bytes everywhere no block covers. */
  private checkLayout(blocks: Block[], haveStruct: boolean): void {
    const [rsv, second, third] = blocks;
    if (haveStruct && rsv !== undefined && second !== undefined && third !== undefined && !(rsv.start < second.start && second.start <= third.start)) {
      this.add("FDT_ERR_BADLAYOUT", HEADER.offMemRsvmap, "layout.block-order", `blocks are not in the order reserve map (${rsv.start}), struct (${second.start}), strings (${third.start})`);
    }
    for (let i = 0; i < blocks.length; i++) {
      for (let j = i + 1; j < blocks.length; j++) {
        const x = blocks[i]!;
        const y = blocks[j]!;
        const lo = Math.max(x.start, y.start);
        if (lo < Math.min(x.end, y.end)) this.add("FDT_ERR_BADLAYOUT", lo, "layout.overlap", `${x.what} [${x.start}, ${x.end}) and ${y.what} [${y.start}, ${y.end}) overlap`);
      }
    }
    // Sweep the gaps in [header, totalsize) left uncovered; without the struct block's
    // extent (a v16 blob whose walk failed) the gaps are unknown.
    if (!haveStruct) return;
    const sorted = blocks.filter((k) => k.end > k.start).sort((x, y) => x.start - y.start);
    // Bytes 36-40 of a v16 header are not a gap: the check holds every blob to v17's 40.
    let at = Math.max(this.hdrSize, 40);
    for (const k of sorted) {
      if (k.start > at) this.checkZero(at, k.start, "layout.gap-nonzero", "FDT_ERR_BADLAYOUT", `the gap [${at}, ${k.start}) before the ${k.what}`);
      at = Math.max(at, k.end);
    }
    if (at < this.totalsize) this.checkZero(at, this.totalsize, "layout.gap-nonzero", "FDT_ERR_BADLAYOUT", `the free space [${at}, ${this.totalsize})`);
  }
}

/**
 * Check `bytes` against the Devicetree Specification and dtc's tree errors, listing every
 * problem found (up to {@link FDT_MAX_PROBLEMS}). See the rule table above.
 */
export function checkStrict(bytes: Uint8Array): FdtCheckReport {
  const checker = new StrictChecker(bytes);
  checker.run();
  return checker.problems.length === 0 ? FDT_VALID_REPORT : { valid: false, problems: checker.problems };
}
