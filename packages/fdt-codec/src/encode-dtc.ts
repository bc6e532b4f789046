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

// Tokens as module-local constants (see check-libfdt.ts: loaders may turn imports into reads).
const BEGIN_NODE = FDT_BEGIN_NODE;
const END_NODE = FDT_END_NODE;
const PROP = FDT_PROP;
const END = FDT_END;

/** Up to this many stored strings, a new name is compared with each; beyond, by bucket. */
const STRINGS_LINEAR_MAX = 16;
/** Up to this many names found, a name is looked up by comparing with each; beyond, in a Map. */
const FOUND_LINEAR_MAX = 16;
/** Up to this depth, "is this node its own ancestor" scans the path; deeper levels use a Set. */
const ANCESTOR_SCAN_MAX = 32;
/** Values up to this many bytes are copied byte by byte (a loop costs about 2 ns a byte, `set` about 17 ns). */
const SMALL_VALUE_MAX = 8;
/** A structure block up to this many bytes is copied out of the scratch byte by byte. */
const SMALL_BLOCK_MAX = 16;
/** The scratch for the structure block: first size, most kept between calls, most ever written. */
const STRUCT_SCRATCH_INITIAL = 4096;
const STRUCT_SCRATCH_KEEP = 1 << 20;
const STRUCT_SCRATCH_MAX = 1 << 24;

function bad(offset: number, rule: string, detail: string): never {
  throw new FdtError("FDT_ERR_BADVALUE", offset, rule, detail);
}

/** Big-endian u32 at `at` (the buffer is fresh and long enough). */
function put32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = v >>> 16;
  out[at + 2] = v >>> 8;
  out[at + 3] = v;
}

/**
 * dtc's strings block: append-only; a name is stored once and found again at the earliest
 * place where "name\0" occurs, i.e. in the first stored string that ends with it.
 *
 * Repeats are found among the names seen so far: by comparing with each while there are
 * few (a decoded tree repeats the same string objects, so a hit is usually an identity
 * compare, and no string needs hashing), then in a Map. A new name is compared with every
 * stored string while there are few; past STRINGS_LINEAR_MAX, stored strings are bucketed
 * by their last two characters (a string ending with `name` ends with the same two
 * characters), so a new name meets a handful of candidates instead of every stored string.
 */
class DtcStringTable {
  /** Every name stored or found, with its offset: in two arrays while few, then in `found`. */
  private readonly foundNames: string[] = [];
  private readonly foundOffsets: number[] = [];
  private found: Map<string, number> | undefined = undefined;
  private buckets: Map<number, number[]> | undefined = undefined;
  readonly strings: string[] = [];
  private readonly offsets: number[] = [];
  size = 0;

  private static key(s: string): number {
    const n = s.length;
    return n >= 2 ? (s.charCodeAt(n - 2) << 8) | s.charCodeAt(n - 1) : -1 - n;
  }

  /** The offset of a name already stored or found, or -1. */
  lookup(name: string): number {
    const found = this.found;
    if (found !== undefined) return found.get(name) ?? -1;
    const names = this.foundNames;
    for (let i = 0; i < names.length; i++) if (names[i] === name) return this.foundOffsets[i]!;
    return -1;
  }

  /** The offset of a name `lookup` does not know: the earliest stored string ending with it, or a new one. */
  add(name: string): number {
    let offset = -1;
    const strings = this.strings;
    const buckets = this.buckets;
    const n = name.length;
    if (buckets === undefined || n < 2) {
      // Every stored string in order (names shorter than 2 characters can end any string).
      // Most are told apart by their length or last character, without a call.
      const last = n > 0 ? name.charCodeAt(n - 1) : -1;
      for (let i = 0; i < strings.length; i++) {
        const s = strings[i]!;
        if (s.length < n || (n > 0 && s.charCodeAt(s.length - 1) !== last)) continue;
        if (s.endsWith(name)) {
          offset = this.offsets[i]! + s.length - n;
          break;
        }
      }
    } else {
      const candidates = buckets.get(DtcStringTable.key(name));
      if (candidates !== undefined) {
        for (let c = 0; c < candidates.length; c++) {
          const i = candidates[c]!;
          const s = strings[i]!;
          if (s.endsWith(name)) {
            offset = this.offsets[i]! + s.length - name.length;
            break;
          }
        }
      }
    }
    if (offset < 0) {
      offset = this.size;
      const index = strings.length;
      strings.push(name);
      this.offsets.push(offset);
      this.size += name.length + 1;
      if (buckets !== undefined) this.bucket(buckets, index);
      else if (index + 1 > STRINGS_LINEAR_MAX) {
        const made = (this.buckets = new Map<number, number[]>());
        for (let i = 0; i <= index; i++) this.bucket(made, i);
      }
    }
    const found = this.found;
    if (found !== undefined) {
      found.set(name, offset);
    } else {
      const names = this.foundNames;
      names.push(name);
      this.foundOffsets.push(offset);
      if (names.length > FOUND_LINEAR_MAX) {
        const made = (this.found = new Map<string, number>());
        for (let i = 0; i < names.length; i++) made.set(names[i]!, this.foundOffsets[i]!);
      }
    }
    return offset;
  }

  private bucket(buckets: Map<number, number[]>, index: number): void {
    const key = DtcStringTable.key(this.strings[index]!);
    const bucket = buckets.get(key);
    if (bucket === undefined) buckets.set(key, [index]);
    else bucket.push(index);
  }
}

/** The first character of `name` that cannot be written (NUL or above 0xff), or -1. */
function badCharIndex(name: string): number {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0 || c > 0xff) return i;
  }
  return -1;
}

function badName(name: string, rule: string, what: string): FdtError {
  return new FdtError("FDT_ERR_BADVALUE", -1, rule, `${what} ${JSON.stringify(name)} has a NUL or a character above 0xff`);
}

/**
 * Where the structure block goes while the tree is walked: a scratch buffer (walk 1, grown as
 * needed up to STRUCT_SCRATCH_MAX, past which it stops writing and only counts), or the
 * result itself at the block's offset (walk 2, exactly the right size). `size` is the block
 * size so far either way.
 */
class StructSink {
  size = 0;
  constructor(
    public buf: Uint8Array,
    private readonly base: number,
    public writing: boolean,
    private readonly growable: boolean,
  ) {}

  /** Room for `n` more bytes; false (and no more writing) past the scratch limit. */
  private room(n: number): boolean {
    const end = this.base + this.size + n;
    if (end <= this.buf.length) return true;
    if (!this.growable || end > STRUCT_SCRATCH_MAX) return (this.writing = false);
    const bigger = new Uint8Array(Math.min(STRUCT_SCRATCH_MAX, Math.max(2 * this.buf.length, end)));
    bigger.set(this.buf.subarray(0, this.base + this.size));
    this.buf = bigger;
    return true;
  }

  /** BEGIN_NODE and the name (checked by the caller), NUL-padded to 4. */
  beginNode(name: string): void {
    const n = name.length;
    const need = 4 + alignTag(n + 1);
    if (this.writing && this.room(need)) {
      const b = this.buf;
      const at = this.base + this.size;
      put32(b, at, BEGIN_NODE);
      for (let i = 0; i < n; i++) b[at + 4 + i] = name.charCodeAt(i);
      for (let i = 4 + n; i < need; i++) b[at + i] = 0;
    }
    this.size += need;
  }

  /** PROP, len, nameoff and the value, zero-padded to 4. */
  property(nameoff: number, value: Uint8Array): void {
    const len = value.length;
    const padded = alignTag(len);
    if (this.writing && this.room(12 + padded)) {
      const b = this.buf;
      const at = this.base + this.size;
      put32(b, at, PROP);
      put32(b, at + 4, len);
      put32(b, at + 8, nameoff);
      const v = at + 12;
      if (len <= SMALL_VALUE_MAX) {
        for (let i = 0; i < len; i++) b[v + i] = value[i]!;
      } else {
        b.set(value, v);
      }
      for (let i = len; i < padded; i++) b[v + i] = 0;
    }
    this.size += 12 + padded;
  }

  /** A bare token: END_NODE or END. */
  token(tag: number): void {
    if (this.writing && this.room(4)) put32(this.buf, this.base + this.size, tag);
    this.size += 4;
  }
}

/** The scratch of walk 1 between calls; null while a call holds it. */
let spareScratch: Uint8Array | null = null;

/**
 * Walk the tree in dtc's order (pre-order; a node's properties before its children) without
 * recursion, writing into `sink`. Walk 1 (`check`) also refuses what dtc could not write, in
 * the order a full check of each kind would find it: a node that is its own ancestor (a cycle
 * in the object graph) anywhere in the tree first, then the first name (in walk order) that
 * is not Latin-1 without NUL; and it enters every property name in `strings`. A node object
 * used twice elsewhere is written twice. The ancestor test scans the path for the first
 * ANCESTOR_SCAN_MAX levels (trees are shallow; no Set to fill) and asks a Set for deeper ones
 * (a deep chain stays linear).
 */
function walkTree(root: FdtNode, strings: DtcStringTable, sink: StructSink, check: boolean): void {
  const stack: FdtNode[] = [root];
  const next: number[] = [0];
  let deep: Set<FdtNode> | undefined;
  // The first bad name, thrown once the whole tree is known to have no cycle.
  let nameError: FdtError | undefined;
  let node = root;
  for (;;) {
    // Enter `node`: BEGIN_NODE, name, properties.
    if (nameError === undefined) {
      const name = node.name;
      if (check && badCharIndex(name) >= 0) nameError = badName(name, "tree.node-name", "node name");
      else sink.beginNode(name);
      const properties = node.properties;
      for (let p = 0; p < properties.length && nameError === undefined; p++) {
        const prop = properties[p]!;
        const pname = prop.name;
        let nameoff = strings.lookup(pname);
        if (nameoff < 0) {
          // Not seen yet (walk 1 only: by walk 2 every name is in the table).
          if (badCharIndex(pname) >= 0) {
            nameError = badName(pname, "tree.property-name", "property name");
            break;
          }
          nameoff = strings.add(pname);
        }
        sink.property(nameoff, prop.value);
      }
      if (nameError !== undefined) sink.writing = false;
    }
    // The next node in pre-order, closing the ones that end on the way.
    let child: FdtNode | undefined;
    while (stack.length > 0) {
      const top = stack.length - 1;
      const parent = stack[top]!;
      const i = next[top]!;
      if (i < parent.children.length) {
        next[top] = i + 1;
        child = parent.children[i]!;
        if (check) {
          const scan = Math.min(stack.length, ANCESTOR_SCAN_MAX);
          for (let k = 0; k < scan; k++) {
            if (stack[k] === child) bad(-1, "tree.cycle", `node ${JSON.stringify(child.name)} contains itself`);
          }
          if (deep !== undefined && deep.has(child)) bad(-1, "tree.cycle", `node ${JSON.stringify(child.name)} contains itself`);
          if (stack.length >= ANCESTOR_SCAN_MAX) (deep ??= new Set<FdtNode>()).add(child);
        }
        stack.push(child);
        next.push(0);
        break;
      }
      if (check && top >= ANCESTOR_SCAN_MAX) deep!.delete(parent);
      stack.pop();
      next.pop();
      if (nameError === undefined) sink.token(END_NODE);
    }
    if (child === undefined) break;
    node = child;
  }
  if (nameError !== undefined) throw nameError;
  sink.token(END);
}

/**
 * Write `tree` exactly as `dtc -O dtb` 1.6.1 writes it (default options: no padding, no
 * extra reserve slots). Names must be Latin-1 without NUL, `bootCpuidPhys` a u32, reserve
 * entries u64s; otherwise FDT_ERR_BADVALUE. A result over 2^31 - 1 bytes is
 * FDT_ERR_NOSPACE. The tree is written as given: dtc's own reading quirks (the "name"
 * property clean-up, its refusals) are `toDtcLayout`'s business.
 *
 * One walk over the tree checks it, fills the strings block and writes the structure block
 * into a scratch buffer, which is then copied behind the header (cheaper than walking the
 * tree again: on a large tree the second walk is mostly cache misses). A structure block
 * too large for the scratch is written by a second walk straight into the result.
 */
export function encodeDtc(tree: FdtTree): Uint8Array {
  const boot = tree.bootCpuidPhys;
  if (!Number.isInteger(boot) || boot < 0 || boot > 0xffffffff) bad(-1, "tree.boot-cpuid", `boot_cpuid_phys ${boot} is not a u32`);
  const reserveMap = tree.reserveMap;
  for (const r of reserveMap) {
    if (r.address < 0n || r.address > U64_MAX || r.size < 0n || r.size > U64_MAX) {
      bad(-1, "tree.reserve-entry", `reserve entry (${r.address}, ${r.size}) is not two u64s`);
    }
  }

  // Walk 1. The scratch is taken for the call and given back after it (a tree with getters
  // could call encodeDtc again from inside: that call gets a scratch of its own).
  const strings = new DtcStringTable();
  const sink = new StructSink(spareScratch ?? new Uint8Array(STRUCT_SCRATCH_INITIAL), 0, true, true);
  spareScratch = null;
  try {
    walkTree(tree.root, strings, sink, true);
    const structSize = sink.size;
    const reserveSize = (reserveMap.length + 1) * FDT_RESERVE_ENTRY_SIZE;
    const structOffset = FDT_V17_HEADER_SIZE + reserveSize;
    const stringsOffset = structOffset + structSize;
    const totalsize = stringsOffset + strings.size;
    if (totalsize > FDT_MAX_TOTALSIZE) {
      throw new FdtError("FDT_ERR_NOSPACE", -1, "encode.too-large", `the blob would take ${totalsize} bytes`);
    }

    // The result. The buffer starts zeroed; the structure block brings its own padding.
    const out = new Uint8Array(totalsize);
    put32(out, HEADER.magic, FDT_MAGIC);
    put32(out, HEADER.totalsize, totalsize);
    put32(out, HEADER.offDtStruct, structOffset);
    put32(out, HEADER.offDtStrings, stringsOffset);
    put32(out, HEADER.offMemRsvmap, FDT_V17_HEADER_SIZE);
    put32(out, HEADER.version, DTC_VERSION);
    put32(out, HEADER.lastCompVersion, FDT_LAST_COMP_VERSION);
    put32(out, HEADER.bootCpuidPhys, boot);
    put32(out, HEADER.sizeDtStrings, strings.size);
    put32(out, HEADER.sizeDtStruct, structSize);
    let o = FDT_V17_HEADER_SIZE;
    if (reserveMap.length > 0) {
      const view = new DataView(out.buffer);
      for (const r of reserveMap) {
        view.setBigUint64(o, r.address);
        view.setBigUint64(o + 8, r.size);
        o += FDT_RESERVE_ENTRY_SIZE;
      }
    }
    if (sink.writing) {
      const scratch = sink.buf;
      if (structSize <= SMALL_BLOCK_MAX) {
        for (let i = 0; i < structSize; i++) out[structOffset + i] = scratch[i]!;
      } else {
        out.set(scratch.subarray(0, structSize), structOffset);
      }
    } else {
      walkTree(tree.root, strings, new StructSink(out, structOffset, true, false), false);
    }
    o = stringsOffset;
    const stored = strings.strings;
    for (let k = 0; k < stored.length; k++) {
      const s = stored[k]!;
      for (let i = 0; i < s.length; i++) out[o + i] = s.charCodeAt(i);
      o += s.length + 1;
    }
    return out;
  } finally {
    // Keep the scratch unless it grew past what is worth keeping.
    spareScratch = sink.buf.length <= STRUCT_SCRATCH_KEEP ? sink.buf : null;
  }
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
