/**
 * The dtc layout: what `dtc -O dtb` (1.6.1, default options) writes for a tree.
 *
 * ```text
 *  off  content
 *    0  header, v17: magic, totalsize, off_dt_struct, off_dt_strings, off_mem_rsvmap = 40,
 *       version 17, last_comp_version 16, boot_cpuid_phys, size_dt_strings, size_dt_struct
 *   40  reserve map: every entry of the tree, then one (0, 0) terminator
 *       structure block: pre-order; per node BEGIN_NODE, name NUL-padded to 4, its
 *       properties (PROP, len, nameoff, value zero-padded to 4), its children, END_NODE;
 *       then END
 *       strings block: each property name appended at its first use in that walk, unless
 *       it already occurs as "name\0" in the block (the EARLIEST occurrence wins, so
 *       "phandle" after "linux,phandle" points inside it); no padding after it
 * ```
 *
 * `encodeDtc(tree)` writes a tree. `toDtcLayout(bytes)` is `dtc -I dtb -O dtb`: it reads the
 * blob as dtc does (`readDtcTree`, with dtc's refusals) and writes it back.
 *
 * @packageDocumentation
 */
import { FdtError } from "./errors.js";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_LAST_COMP_VERSION,
  FDT_MAGIC,
  FDT_MAX_TOTALSIZE,
  FDT_PROP,
  FDT_RESERVE_ENTRY_SIZE,
  FDT_V17_HEADER_SIZE,
  HEADER,
  alignTag,
} from "./layout.js";
import { readDtcTree } from "./read/dtc-blob.js";
import type { FdtNode, FdtTree } from "./tree.js";

/** The version dtc writes by default. */
const DTC_VERSION = 17;
const U64_MAX = (1n << 64n) - 1n;

function bad(offset: number, rule: string, detail: string): never {
  throw new FdtError("FDT_ERR_BADVALUE", offset, rule, detail);
}

/**
 * dtc's strings block: append-only; a name is stored once and found again at the earliest
 * place where "name\0" occurs, i.e. in the first stored string that ends with it.
 *
 * Stored strings are bucketed by their last two characters (a string ending with `name`
 * ends with the same two characters), so a new name is compared with a handful of
 * candidates instead of every stored string; repeats are one Map lookup.
 */
class DtcStringTable {
  private readonly found = new Map<string, number>();
  private readonly buckets = new Map<number, number[]>();
  readonly strings: string[] = [];
  private readonly offsets: number[] = [];
  size = 0;

  private static key(s: string): number {
    const n = s.length;
    return n >= 2 ? (s.charCodeAt(n - 2) << 8) | s.charCodeAt(n - 1) : -1 - n;
  }

  insert(name: string): number {
    const known = this.found.get(name);
    if (known !== undefined) return known;
    let offset = -1;
    // Names shorter than 2 characters can end any string: scan them all (rare).
    const candidates = name.length >= 2 ? (this.buckets.get(DtcStringTable.key(name)) ?? []) : this.strings.map((_, i) => i);
    for (const i of candidates) {
      const s = this.strings[i]!;
      if (s.endsWith(name)) {
        offset = this.offsets[i]! + s.length - name.length;
        break;
      }
    }
    if (offset < 0) {
      offset = this.size;
      const index = this.strings.length;
      this.strings.push(name);
      this.offsets.push(offset);
      this.size += name.length + 1;
      const key = DtcStringTable.key(name);
      const bucket = this.buckets.get(key);
      if (bucket === undefined) this.buckets.set(key, [index]);
      else bucket.push(index);
    }
    this.found.set(name, offset);
    return offset;
  }
}

/** Check a name: Latin-1, no NUL. */
function checkName(name: string, rule: string, what: string): void {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0 || c > 0xff) bad(-1, rule, `${what} ${JSON.stringify(name)} has a NUL or a character above 0xff`);
  }
}

/**
 * Flatten the tree in dtc's order (pre-order; a node's properties before its children)
 * without recursion: `nodes` in the order they are written, and `closes[i]`, the number
 * of END_NODE tokens written after node i's properties (1 for a leaf, 0 for a node whose
 * children follow, more where subtrees end together). A node that is its own ancestor (a
 * cycle in the object graph) is an error; a node object used twice elsewhere is written
 * twice.
 */
function flatten(root: FdtNode): { nodes: FdtNode[]; closes: number[] } {
  const nodes: FdtNode[] = [];
  const closes: number[] = [];
  const stack: FdtNode[] = [root];
  const next: number[] = [0];
  const ancestors = new Set<FdtNode>([root]);
  nodes.push(root);
  closes.push(0);
  while (stack.length > 0) {
    const top = stack.length - 1;
    const node = stack[top]!;
    const i = next[top]!;
    if (i < node.children.length) {
      next[top] = i + 1;
      const child = node.children[i]!;
      if (ancestors.has(child)) bad(-1, "tree.cycle", `node ${JSON.stringify(child.name)} contains itself`);
      ancestors.add(child);
      stack.push(child);
      next.push(0);
      nodes.push(child);
      closes.push(0);
    } else {
      ancestors.delete(node);
      stack.pop();
      next.pop();
      closes[closes.length - 1]!++;
    }
  }
  return { nodes, closes };
}

/**
 * Write `tree` exactly as `dtc -O dtb` 1.6.1 writes it (default options: no padding, no
 * extra reserve slots). Names must be Latin-1 without NUL, `bootCpuidPhys` a u32, reserve
 * entries u64s; otherwise FDT_ERR_BADVALUE. A result over 2^31 - 1 bytes is
 * FDT_ERR_NOSPACE. The tree is written as given: dtc's own reading quirks (the "name"
 * property clean-up, its refusals) are `toDtcLayout`'s business.
 */
export function encodeDtc(tree: FdtTree): Uint8Array {
  const boot = tree.bootCpuidPhys;
  if (!Number.isInteger(boot) || boot < 0 || boot > 0xffffffff) bad(-1, "tree.boot-cpuid", `boot_cpuid_phys ${boot} is not a u32`);
  for (const r of tree.reserveMap) {
    if (r.address < 0n || r.address > U64_MAX || r.size < 0n || r.size > U64_MAX) {
      bad(-1, "tree.reserve-entry", `reserve entry (${r.address}, ${r.size}) is not two u64s`);
    }
  }

  // Pass 1: order, sizes and name offsets, in the order pass 2 writes.
  const { nodes, closes } = flatten(tree.root);
  const strings = new DtcStringTable();
  const nameoffs: number[] = [];
  let structSize = 4; // FDT_END
  for (const node of nodes) {
    checkName(node.name, "tree.node-name", "node name");
    structSize += 4 + alignTag(node.name.length + 1) + 4;
    for (const prop of node.properties) {
      checkName(prop.name, "tree.property-name", "property name");
      nameoffs.push(strings.insert(prop.name));
      structSize += 12 + alignTag(prop.value.length);
    }
  }
  const reserveSize = (tree.reserveMap.length + 1) * FDT_RESERVE_ENTRY_SIZE;
  const structOffset = FDT_V17_HEADER_SIZE + reserveSize;
  const stringsOffset = structOffset + structSize;
  const totalsize = stringsOffset + strings.size;
  if (totalsize > FDT_MAX_TOTALSIZE) {
    throw new FdtError("FDT_ERR_NOSPACE", -1, "encode.too-large", `the blob would take ${totalsize} bytes`);
  }

  // Pass 2: write. The buffer starts zeroed, which is all the padding there is.
  const out = new Uint8Array(totalsize);
  const view = new DataView(out.buffer);
  view.setUint32(HEADER.magic, FDT_MAGIC);
  view.setUint32(HEADER.totalsize, totalsize);
  view.setUint32(HEADER.offDtStruct, structOffset);
  view.setUint32(HEADER.offDtStrings, stringsOffset);
  view.setUint32(HEADER.offMemRsvmap, FDT_V17_HEADER_SIZE);
  view.setUint32(HEADER.version, DTC_VERSION);
  view.setUint32(HEADER.lastCompVersion, FDT_LAST_COMP_VERSION);
  view.setUint32(HEADER.bootCpuidPhys, boot);
  view.setUint32(HEADER.sizeDtStrings, strings.size);
  view.setUint32(HEADER.sizeDtStruct, structSize);
  let o = FDT_V17_HEADER_SIZE;
  for (const r of tree.reserveMap) {
    view.setBigUint64(o, r.address);
    view.setBigUint64(o + 8, r.size);
    o += FDT_RESERVE_ENTRY_SIZE;
  }
  o = structOffset;
  let nameIndex = 0;
  for (let n = 0; n < nodes.length; n++) {
    const node = nodes[n]!;
    out[o + 3] = FDT_BEGIN_NODE;
    const name = node.name;
    for (let i = 0; i < name.length; i++) out[o + 4 + i] = name.charCodeAt(i);
    o += 4 + alignTag(name.length + 1);
    for (const prop of node.properties) {
      const len = prop.value.length;
      out[o + 3] = FDT_PROP;
      view.setUint32(o + 4, len);
      view.setUint32(o + 8, nameoffs[nameIndex++]!);
      out.set(prop.value, o + 12);
      o += 12 + alignTag(len);
    }
    for (let c = closes[n]!; c > 0; c--) {
      out[o + 3] = FDT_END_NODE;
      o += 4;
    }
  }
  out[o + 3] = FDT_END;
  o = stringsOffset;
  for (const s of strings.strings) {
    for (let i = 0; i < s.length; i++) out[o + i] = s.charCodeAt(i);
    o += s.length + 1;
  }
  return out;
}

/**
 * `dtc -I dtb -O dtb` (1.6.1, default options): read the blob as dtc reads it and write
 * it in the dtc layout. Where dtc refuses the blob (a fatal read error, an ERROR-level
 * check, or one of the crashes and hangs dtc 1.6.1 has on some valid blobs), this throws
 * {@link FdtError}; see `readDtcTree` for the model.
 */
export function toDtcLayout(bytes: Uint8Array): Uint8Array {
  return encodeDtc(readDtcTree(bytes, { shareValues: true }));
}
