/**
 * How dtc 1.6.1 reads a blob (`dtc -I dtb`): its own reader (flattree.c), not libfdt's,
 * followed by its checks (checks.c). `toDtcLayout` = this + `encodeDtc`.
 *
 * ## The reader (measured against Debian's dtc 1.6.1; refusals are "FATAL ERROR"s)
 *
 * ```text
 *  header   magic must be 0xd00dfeed; totalsize >= 28 and within the buffer; only the
 *           first totalsize bytes exist. No version check at all.
 *           off_mem_rsvmap < totalsize, off_dt_struct < totalsize, off_dt_strings <= totalsize;
 *           v3+: off_dt_strings + size_dt_strings <= totalsize (strings end there; before
 *           v3 at totalsize); v17+: off_dt_struct + size_dt_struct <= totalsize, but the
 *           struct is READ up to totalsize, not size_dt_struct.
 *           boot_cpuid_phys is read at offset 28 whatever the version.
 *  rsvmap   16-byte entries up to totalsize; the first entry of SIZE 0 ends it (whatever its
 *           address), exactly like libfdt.
 *  struct   the first word must be BEGIN_NODE (a leading NOP or property is fatal); the root
 *           is read recursively; right after the root's END_NODE the next word must be END
 *           (a NOP there, or a second root, is fatal). Inside nodes: PROP, BEGIN_NODE,
 *           END_NODE, NOP (ignored), END (fatal: premature), anything else fatal.
 *           Properties after subnodes are accepted (and written before them).
 *  names    a property name must start inside the strings block and end with a NUL
 *           before its end. Versions before 16: node names are full paths, and the name
 *           is the path minus its parent's path and the '/' (dtc's nodename_from_path);
 *           a path not under its parent's is fatal; a path equal to its parent's (or a
 *           root path "") makes dtc read past its heap copy of the path (undefined: it
 *           may accept or refuse), refused here; values of 8+ bytes are 8-aligned
 *           (relative to the structure block).
 * ```
 *
 * ## The checks (ERROR level: dtc exits 2 without output)
 *
 * duplicate_node_names (siblings), duplicate_property_names, node_name_chars
 * (`[0-9a-zA-Z,._+-@]`), node_name_format (one '@' at most), property_name_chars
 * (`[0-9a-zA-Z,._+*#?-]`), name_is_string / name_properties (a "name" property must be
 * the node's base name plus NUL, and is then DELETED from the output), explicit_phandles
 * ("phandle" / "linux,phandle" must be 4 bytes, not 0 or 0xffffffff, agree, and be unique).
 *
 * ## Crashes and hangs (dtc 1.6.1 dies or loops on some blobs libfdt accepts)
 *
 * - graph_nodes: the root has a child named "endpoint" (base name) or with a
 *   "remote-endpoint" property: NULL dereference (SIGSEGV);
 * - graph_child_address: a child of a graph port / ports node whose "reg" is not 4 bytes,
 *   met before any child with a non-zero 4-byte "reg": assertion (SIGABRT);
 * - graph_endpoint: an endpoint's (or its remote's) "remote-endpoint" not 4 bytes: assertion;
 * - interrupts_property: an "interrupt-parent" met while resolving a node's interrupt
 *   parent, or the parent's "#interrupt-cells", not 4 bytes: assertion;
 * - gpios_property: a "#gpio-cells" not 4 bytes: assertion; 0xffffffff: endless loop;
 * - the phandle-argument checks (clocks, dmas, resets, ...): a provider's cell count of
 *   0xffffffff: endless loop (the cell index never advances).
 *
 * Which buses a node is on (graph port / ports) depends on the PCI, simple-bus, I2C and
 * SPI bridge checks that run before; they are modelled with their prerequisites.
 *
 * @packageDocumentation
 */
import { FdtError, type FdtErrorCode } from "../errors.js";
import { FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP, HEADER, type FdtReserveEntry } from "../layout.js";
import type { FdtNode, FdtProperty, FdtTree } from "../tree.js";
import { decodeLatin1 } from "../wire/strings.js";

/** dtc refuses a blob smaller than a v1 header. */
const DTC_MIN_TOTALSIZE = 28;
const PHANDLE_NONE = 0xffffffff;

function refuse(code: FdtErrorCode, offset: number, rule: string, detail: string): never {
  throw new FdtError(code, offset, rule, `dtc refuses the blob: ${detail}`);
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Options of {@link readDtcTree}. */
export interface DtcReadOptions {
  /** Give values as views of `bytes` instead of copies. Default false. */
  readonly shareValues?: boolean;
}

/** dtc's in-memory node while reading and checking. */
interface DtcNode {
  name: string;
  /** The name as stored in the blob (a full path before v16). */
  flatName: string;
  /** The name up to its first '@' (dtc's basenamelen). */
  base: string;
  properties: FdtProperty[];
  children: DtcNode[];
  parent: DtcNode | null;
  /** Properties by name, built once the names are known to be unique. */
  byName: Map<string, FdtProperty>;
  /** Assigned by explicit_phandles. */
  phandle: number;
  bus: Bus;
}

const enum Bus {
  None,
  Pci,
  SimpleBus,
  I2c,
  Spi,
  GraphPort,
  GraphPorts,
}

// ---- the reader -----------------------------------------------------------------------

/**
 * Read `bytes` as `dtc -I dtb` 1.6.1 does, run its checks, and return the tree it would
 * write (after its clean-ups). Throws {@link FdtError} where dtc refuses, crashes or hangs:
 * reader failures carry TRUNCATED / BADMAGIC / BADSTRUCTURE / BADOFFSET (`dtc.read.*`),
 * checks FDT_ERR_BADVALUE (`dtc.<check name>`), crashes and hangs FDT_ERR_BADVALUE
 * (`dtc.crash.<check>` / `dtc.hang.<check>`). See the module documentation.
 */
export function readDtcTree(bytes: Uint8Array, options: DtcReadOptions = {}): FdtTree {
  const len = bytes.length;
  if (len < 8) refuse("FDT_ERR_TRUNCATED", 0, "dtc.read.header", "EOF reading the magic number or size");
  const magic = u32(bytes, HEADER.magic);
  if (magic !== FDT_MAGIC) refuse("FDT_ERR_BADMAGIC", 0, "dtc.read.magic", "incorrect magic number");
  const total = u32(bytes, HEADER.totalsize);
  if (total < DTC_MIN_TOTALSIZE) refuse("FDT_ERR_TRUNCATED", HEADER.totalsize, "dtc.read.totalsize", `blob size ${total} is too small`);
  if (len < total) refuse("FDT_ERR_TRUNCATED", len, "dtc.read.eof", `EOF before reading ${total} bytes`);
  const version = u32(bytes, HEADER.version);
  // dtc reads boot_cpuid_phys (and size_dt_strings from v3) whatever the header size; past
  // totalsize that is outside its buffer, which we call a refusal rather than guess.
  const fieldsEnd = version >= 17 ? 40 : version >= 3 ? 36 : 32;
  if (total < fieldsEnd) refuse("FDT_ERR_TRUNCATED", HEADER.totalsize, "dtc.read.header-fields", "header fields past totalsize");
  const offStruct = u32(bytes, HEADER.offDtStruct);
  const offStrings = u32(bytes, HEADER.offDtStrings);
  const offRsvmap = u32(bytes, HEADER.offMemRsvmap);
  const bootCpuidPhys = u32(bytes, HEADER.bootCpuidPhys);
  if (offRsvmap >= total) refuse("FDT_ERR_TRUNCATED", HEADER.offMemRsvmap, "dtc.read.rsvmap", "reserve map offset exceeds total size");
  if (offStruct >= total) refuse("FDT_ERR_TRUNCATED", HEADER.offDtStruct, "dtc.read.struct", "structure offset exceeds total size");
  if (offStrings > total) refuse("FDT_ERR_TRUNCATED", HEADER.offDtStrings, "dtc.read.strings", "string table offset exceeds total size");
  let stringsEnd = total;
  if (version >= 3) {
    stringsEnd = offStrings + u32(bytes, HEADER.sizeDtStrings);
    if (stringsEnd > total) refuse("FDT_ERR_TRUNCATED", HEADER.sizeDtStrings, "dtc.read.strings", "string table extends past total size");
  }
  if (version >= 17 && offStruct + u32(bytes, HEADER.sizeDtStruct) > total) {
    refuse("FDT_ERR_TRUNCATED", HEADER.sizeDtStruct, "dtc.read.struct", "structure block extends past total size");
  }

  const reserveMap: FdtReserveEntry[] = [];
  for (let o = offRsvmap; ; o += 16) {
    if (o + 16 > total) refuse("FDT_ERR_TRUNCATED", o, "dtc.read.rsvmap", "premature end of data in the reserve map");
    const size = (BigInt(u32(bytes, o + 8)) << 32n) | BigInt(u32(bytes, o + 12));
    if (size === 0n) break;
    reserveMap.push({ address: (BigInt(u32(bytes, o)) << 32n) | BigInt(u32(bytes, o + 4)), size });
  }

  const root = readStruct(bytes, offStruct, total, offStrings, stringsEnd, version, options.shareValues === true);
  runChecks(root);
  return { bootCpuidPhys, reserveMap, root: toFdtNode(root) };
}

/** dtc's unflatten_tree, iteratively. */
function readStruct(
  b: Uint8Array,
  start: number,
  limit: number,
  stringsStart: number,
  stringsEnd: number,
  version: number,
  share: boolean,
): DtcNode {
  const fullPath = version < 16;
  const names = new Map<number, string>();
  let o = start;
  const word = (): number => {
    if (o + 4 > limit) refuse("FDT_ERR_TRUNCATED", o, "dtc.read.truncated", "premature end of data parsing the structure block");
    const w = u32(b, o);
    o += 4;
    return w;
  };
  // Alignment is relative to the start of the structure block (dtc's inbuf base).
  const realign = (to: number): void => {
    o = start + Math.ceil((o - start) / to) * to;
    if (o > limit) refuse("FDT_ERR_TRUNCATED", o, "dtc.read.truncated", "premature end of data parsing the structure block");
  };
  const readName = (parent: DtcNode | null): DtcNode => {
    const nameStart = o;
    let i = o;
    while (i < limit && b[i] !== 0) i++;
    if (i >= limit) refuse("FDT_ERR_TRUNCATED", nameStart, "dtc.read.truncated", "node name runs past the blob");
    const flatName = decodeLatin1(b, nameStart, i);
    o = i + 1;
    realign(4);
    let name = flatName;
    if (fullPath) {
      const parentPath = parent === null ? "" : parent.flatName;
      if (!flatName.startsWith(parentPath)) {
        refuse("FDT_ERR_BADSTRUCTURE", nameStart, "dtc.read.path", `path ${JSON.stringify(flatName)} is not under ${JSON.stringify(parentPath)}`);
      }
      const skip = parentPath === "/" ? 1 : parentPath.length + 1;
      // A path equal to its parent's (or a root path ""): dtc 1.6.1 reads past the end of
      // its heap copy of the path, so what it does depends on heap garbage. Refused.
      if (skip > flatName.length) refuse("FDT_ERR_BADSTRUCTURE", nameStart, "dtc.read.path-undefined", `path ${JSON.stringify(flatName)} has no name after its parent's`);
      name = flatName.slice(skip);
    }
    const at = name.indexOf("@");
    const base = at < 0 ? name : name.slice(0, at);
    return { name, flatName, base, properties: [], children: [], parent, byName: new Map(), phandle: 0, bus: Bus.None };
  };
  const readProperty = (node: DtcNode): void => {
    const at = o - 4;
    const len = word();
    const nameoff = word();
    if (nameoff >= 0x80000000 || stringsStart + nameoff >= stringsEnd) {
      refuse("FDT_ERR_BADOFFSET", at + 8, "dtc.read.nameoff", `string offset ${nameoff} overruns the string table`);
    }
    let name = names.get(nameoff);
    if (name === undefined) {
      let i = stringsStart + nameoff;
      while (i < stringsEnd && b[i] !== 0) i++;
      if (i >= stringsEnd) refuse("FDT_ERR_BADOFFSET", at + 8, "dtc.read.nameoff", `string offset ${nameoff} overruns the string table`);
      name = decodeLatin1(b, stringsStart + nameoff, i);
      names.set(nameoff, name);
    }
    if (fullPath && len >= 8) realign(8);
    if (len >= 0x80000000 || o + len > limit) refuse("FDT_ERR_TRUNCATED", at, "dtc.read.truncated", "property value runs past the blob");
    const view = b.subarray(o, o + len);
    if (len > 0) {
      o += len;
      realign(4);
    }
    node.properties.push({ name, value: share ? view : view.slice() });
  };

  if (word() !== FDT_BEGIN_NODE) refuse("FDT_ERR_BADSTRUCTURE", start, "dtc.read.first-token", "the structure block does not begin with FDT_BEGIN_NODE");
  const root = readName(null);
  let node = root;
  for (;;) {
    const at = o;
    const tag = word();
    if (tag === FDT_PROP) {
      readProperty(node);
    } else if (tag === FDT_BEGIN_NODE) {
      const child = readName(node);
      node.children.push(child);
      node = child;
    } else if (tag === FDT_END_NODE) {
      if (node.parent === null) break;
      node = node.parent;
    } else if (tag === FDT_END) {
      refuse("FDT_ERR_BADSTRUCTURE", at, "dtc.read.premature-end", "premature FDT_END");
    } else if (tag !== FDT_NOP) {
      refuse("FDT_ERR_BADSTRUCTURE", at, "dtc.read.token", `invalid opcode word 0x${tag.toString(16)}`);
    }
  }
  const endAt = o;
  if (word() !== FDT_END) refuse("FDT_ERR_BADSTRUCTURE", endAt, "dtc.read.last-token", "the structure block does not end with FDT_END");
  return root;
}

/** The plain tree, without dtc's bookkeeping (iterative: trees may be deep). */
function toFdtNode(root: DtcNode): FdtNode {
  const made: FdtNode = { name: root.name, properties: root.properties, children: [] };
  const todo: [DtcNode, FdtNode][] = [[root, made]];
  while (todo.length > 0) {
    const [from, to] = todo.pop()!;
    for (const c of from.children) {
      const child: FdtNode = { name: c.name, properties: c.properties, children: [] };
      to.children.push(child);
      todo.push([c, child]);
    }
  }
  return made;
}

// ---- the checks -----------------------------------------------------------------------

/** Pre-order list of every node (the order dtc's checks visit them). */
function preorder(root: DtcNode): DtcNode[] {
  const out: DtcNode[] = [];
  const stack: DtcNode[] = [root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    out.push(n);
    for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]!);
  }
  return out;
}

/** dtc's get_property: the node's property called `name` (names are unique by now). */
function getProperty(node: DtcNode, name: string): FdtProperty | undefined {
  return node.byName.get(name);
}

function cell(value: Uint8Array, index = 0): number {
  return u32(value, index * 4);
}

function baseName(node: DtcNode): string {
  return node.base;
}

function charSet(chars: string): Uint8Array {
  const t = new Uint8Array(256);
  const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (const c of alnum + chars) t[c.charCodeAt(0)] = 1;
  return t;
}
/** dtc 1.6.1's NODECHARS and PROPCHARS (measured: every byte tried). */
const NODE_CHARS = charSet(",._+-@");
const PROP_CHARS = charSet(",._+*#?-");

function allIn(name: string, set: Uint8Array): boolean {
  for (let i = 0; i < name.length; i++) if (set[name.charCodeAt(i)] !== 1) return false;
  return true;
}

/** dtc's data_is_one_string: non-empty, ends with NUL, no NUL before. */
function isOneString(v: Uint8Array): boolean {
  const n = v.length;
  if (n === 0 || v[n - 1] !== 0) return false;
  for (let i = 0; i < n - 1; i++) if (v[i] === 0) return false;
  return true;
}

/** dtc's check_is_string_list: every string NUL-terminated (an empty value passes). */
function isStringList(v: Uint8Array): boolean {
  return v.length === 0 || v[v.length - 1] === 0;
}

/** C's streq on a value: the bytes up to the first NUL (or the end) equal `s`. */
function valueStreq(v: Uint8Array, s: string): boolean {
  let n = v.indexOf(0);
  if (n < 0) n = v.length;
  if (n !== s.length) return false;
  for (let i = 0; i < n; i++) if (v[i] !== s.charCodeAt(i)) return false;
  return true;
}

function checkError(node: DtcNode, rule: string, detail: string): never {
  refuse("FDT_ERR_BADVALUE", -1, `dtc.${rule}`, `ERROR (${rule}) at node ${JSON.stringify(node.flatName)}: ${detail}`);
}

function crash(rule: string, node: DtcNode, detail: string): never {
  refuse("FDT_ERR_BADVALUE", -1, `dtc.crash.${rule}`, `dtc 1.6.1 crashes in ${rule} at node ${JSON.stringify(node.flatName)}: ${detail}`);
}

function hang(rule: string, node: DtcNode, detail: string): never {
  refuse("FDT_ERR_BADVALUE", -1, `dtc.hang.${rule}`, `dtc 1.6.1 never ends in ${rule} at node ${JSON.stringify(node.flatName)}: ${detail}`);
}

/** The phandle-argument providers dtc 1.6.1 checks, with their cell-count properties. */
const PHANDLE_PROVIDERS: readonly { prop: string; cells: string; optional: boolean }[] = [
  { prop: "clocks", cells: "#clock-cells", optional: false },
  { prop: "cooling-device", cells: "#cooling-cells", optional: false },
  { prop: "dmas", cells: "#dma-cells", optional: false },
  { prop: "hwlocks", cells: "#hwlock-cells", optional: false },
  { prop: "interrupts-extended", cells: "#interrupt-cells", optional: false },
  { prop: "io-channels", cells: "#io-channel-cells", optional: false },
  { prop: "iommus", cells: "#iommu-cells", optional: false },
  { prop: "mboxes", cells: "#mbox-cells", optional: false },
  { prop: "msi-parent", cells: "#msi-cells", optional: true },
  { prop: "mux-controls", cells: "#mux-control-cells", optional: false },
  { prop: "phys", cells: "#phy-cells", optional: false },
  { prop: "power-domains", cells: "#power-domain-cells", optional: false },
  { prop: "pwms", cells: "#pwm-cells", optional: false },
  { prop: "resets", cells: "#reset-cells", optional: false },
  { prop: "sound-dai", cells: "#sound-dai-cells", optional: false },
  { prop: "thermal-sensors", cells: "#thermal-sensor-cells", optional: false },
];

function runChecks(root: DtcNode): void {
  const nodes = preorder(root);

  // ERROR checks, in dtc's table order.
  const seen = new Set<string>();
  for (const n of nodes) {
    seen.clear();
    for (const c of n.children) {
      if (seen.has(c.name)) checkError(c, "duplicate_node_names", "duplicate node name");
      seen.add(c.name);
    }
  }
  for (const n of nodes) {
    for (const p of n.properties) {
      if (n.byName.has(p.name)) checkError(n, "duplicate_property_names", `duplicate property name ${JSON.stringify(p.name)}`);
      n.byName.set(p.name, p);
    }
  }
  for (const n of nodes) if (!allIn(n.name, NODE_CHARS)) checkError(n, "node_name_chars", "bad character in node name");
  for (const n of nodes) {
    const at = n.name.indexOf("@");
    if (at >= 0 && n.name.includes("@", at + 1)) checkError(n, "node_name_format", "multiple '@' characters in node name");
  }
  // Every property of every node, by name (names repeat a lot: each is checked once).
  const holders = new Map<string, DtcNode[]>();
  for (const n of nodes) {
    for (const p of n.properties) {
      const list = holders.get(p.name);
      if (list !== undefined) list.push(n);
      else {
        if (!allIn(p.name, PROP_CHARS)) checkError(n, "property_name_chars", `bad character in property name ${JSON.stringify(p.name)}`);
        holders.set(p.name, [n]);
      }
    }
  }
  for (const n of holders.get("name") ?? []) {
    if (!isOneString(getProperty(n, "name")!.value)) checkError(n, "name_is_string", "\"name\" is not a string");
  }
  for (const n of holders.get("name") ?? []) {
    const v = getProperty(n, "name")!.value;
    const base = baseName(n);
    let same = v.length === base.length + 1;
    for (let k = 0; same && k < base.length; k++) same = v[k] === base.charCodeAt(k);
    if (!same) checkError(n, "name_properties", "\"name\" property is not the base node name");
    // Correct, therefore redundant: dtc deletes it.
    n.properties.splice(n.properties.findIndex((p) => p.name === "name"), 1);
    n.byName.delete("name");
  }
  holders.delete("name");
  const byPhandle = new Map<number, DtcNode>();
  for (const n of nodes) {
    const phandleOf = (name: string): number => {
      const p = getProperty(n, name);
      if (p === undefined) return 0;
      if (p.value.length !== 4) checkError(n, "explicit_phandles", `bad length (${p.value.length}) ${name} property`);
      const v = cell(p.value);
      if (v === 0 || v === PHANDLE_NONE) checkError(n, "explicit_phandles", `bad value (0x${v.toString(16)}) in ${name} property`);
      return v;
    };
    let ph = phandleOf("phandle");
    const linux = phandleOf("linux,phandle");
    if (ph === 0 && linux === 0) continue;
    if (ph !== 0 && linux !== 0 && ph !== linux) checkError(n, "explicit_phandles", "mismatching 'phandle' and 'linux,phandle' properties");
    if (ph === 0) ph = linux;
    if (byPhandle.has(ph)) checkError(n, "explicit_phandles", `duplicated phandle 0x${ph.toString(16)}`);
    byPhandle.set(ph, n);
    n.phandle = ph;
  }

  // Warnings that crash or hang dtc 1.6.1.
  const anyNodeHas = (name: string, bad: (v: Uint8Array) => boolean): boolean =>
    (holders.get(name) ?? []).some((n) => bad(getProperty(n, name)!.value));
  const notCell = (v: Uint8Array): boolean => v.length !== 4;
  const addrSizeCellsRan = !anyNodeHas("#address-cells", notCell) && !anyNodeHas("#size-cells", notCell);
  const addrCells = (n: DtcNode): number => {
    const p = getProperty(n, "#address-cells");
    return p === undefined ? 2 : cell(p.value);
  };
  const sizeCells = (n: DtcNode): number => {
    const p = getProperty(n, "#size-cells");
    return p === undefined ? 1 : cell(p.value);
  };
  if (addrSizeCellsRan) {
    // pci_bridge (prereqs device_type_is_string, addr_size_cells)
    if (!anyNodeHas("device_type", (v) => !isOneString(v))) {
      for (const n of nodes) {
        const p = getProperty(n, "device_type");
        if (p !== undefined && valueStreq(p.value, "pci")) n.bus = Bus.Pci;
      }
    }
    // simple_bus_bridge (prereqs addr_size_cells, compatible_is_string_list)
    if (!anyNodeHas("compatible", (v) => !isStringList(v))) {
      for (const n of nodes) {
        const p = getProperty(n, "compatible");
        if (p === undefined) continue;
        const v = p.value;
        for (let s = 0; s < v.length; ) {
          let e = v.indexOf(0, s);
          if (e < 0) e = v.length;
          if (valueStreq(v.subarray(s, e), "simple-bus")) n.bus = Bus.SimpleBus;
          s = e + 1;
        }
      }
    }
    // i2c_bus_bridge (prereq addr_size_cells). dtc's test for an "i2c-bus" child compares
    // with the parent's base-name length, so it never matches.
    for (const n of nodes) {
      const base = baseName(n);
      if (base === "i2c" || base === "i2c-bus" || base === "i2c-arb") n.bus = Bus.I2c;
    }
    // spi_bus_bridge (prereq addr_size_cells)
    for (const n of nodes) {
      if (baseName(n) === "spi") {
        n.bus = Bus.Spi;
        continue;
      }
      if (addrCells(n) !== 1 || sizeCells(n) !== 0) continue;
      if (n.children.some((c) => c.properties.some((p) => p.name.startsWith("spi-")))) n.bus = Bus.Spi;
    }
  }

  // interrupts_property (no prerequisites)
  for (const n of holders.get("interrupts") ?? []) {
    const isProvider = (m: DtcNode): boolean =>
      getProperty(m, "interrupt-controller") !== undefined || getProperty(m, "interrupt-map") !== undefined;
    let irq: DtcNode | undefined;
    for (let p: DtcNode | null = n; p !== null; p = p.parent) {
      if (p !== n && isProvider(p)) {
        irq = p;
        break;
      }
      const ip = getProperty(p, "interrupt-parent");
      if (ip === undefined) continue;
      if (ip.value.length !== 4) crash("interrupts_property", p, "\"interrupt-parent\" is not one cell");
      const ph = cell(ip.value);
      if (ph !== 0 && ph !== PHANDLE_NONE) irq = byPhandle.get(ph);
      break;
    }
    if (irq === undefined) continue;
    const cells = getProperty(irq, "#interrupt-cells");
    if (cells !== undefined && cells.value.length !== 4) crash("interrupts_property", irq, "\"#interrupt-cells\" is not one cell");
  }

  // The phandle-argument checks: each provider check runs when every node's cell-count
  // property is one cell; gpios_property always runs.
  // dtc's loop, exactly: the cell index is a u32 that advances by size + 1 (wrapping), the
  // bound check multiplies the wrapped sum by 4 in 64 bits. Revisiting an index is a hang.
  const phandleArgs = (n: DtcNode, value: Uint8Array, cellsName: string, optional: boolean, rule: string): void => {
    if (value.length % 4 !== 0) return;
    const count = value.length / 4;
    const visited = new Uint8Array(count);
    for (let c = 0; c < count; ) {
      if (visited[c] === 1) hang(rule, n, `"${cellsName}" makes the cell index loop`);
      visited[c] = 1;
      const ph = cell(value, c);
      let size = 0;
      if (ph !== 0 && ph !== PHANDLE_NONE) {
        const provider = byPhandle.get(ph);
        if (provider === undefined) return;
        const cp = getProperty(provider, cellsName);
        if (cp !== undefined) {
          if (cp.value.length !== 4) crash(rule, provider, `"${cellsName}" is not one cell`);
          size = cell(cp.value);
        } else if (!optional) {
          return;
        }
        if (value.length < ((c + size + 1) % 0x100000000) * 4) return;
      }
      c = (c + size + 1) % 0x100000000;
    }
  };
  for (const provider of PHANDLE_PROVIDERS) {
    if (anyNodeHas(provider.cells, notCell)) continue;
    const rule = `${provider.prop.replace(/-/g, "_")}_property`;
    for (const n of holders.get(provider.prop) ?? []) {
      phandleArgs(n, getProperty(n, provider.prop)!.value, provider.cells, provider.optional, rule);
    }
  }
  for (const [name, list] of holders) {
    if (name.endsWith(",nr-gpios")) continue;
    if (!(name.endsWith("-gpios") || name === "gpios" || name.endsWith("-gpio") || name === "gpio")) continue;
    for (const n of list) {
      if (getProperty(n, "gpio-hog") === undefined) phandleArgs(n, getProperty(n, name)!.value, "#gpio-cells", false, "gpios_property");
    }
  }

  // graph_nodes, then graph_child_address and graph_endpoint.
  for (const n of nodes) {
    for (const c of n.children) {
      if (baseName(c) !== "endpoint" && getProperty(c, "remote-endpoint") === undefined) continue;
      if (n.parent === null) crash("graph_nodes", n, "the root has an endpoint child");
      n.bus = Bus.GraphPort;
      if (n.parent.bus === Bus.None && (n.parent.name === "ports" || getProperty(n, "reg") !== undefined)) {
        n.parent.bus = Bus.GraphPorts;
      }
      break;
    }
  }
  for (const n of nodes) {
    if (n.bus !== Bus.GraphPort && n.bus !== Bus.GraphPorts) continue;
    for (const c of n.children) {
      const reg = getProperty(c, "reg");
      if (reg === undefined) continue;
      if (reg.value.length !== 4) crash("graph_child_address", c, "\"reg\" is not one cell");
      if (cell(reg.value) !== 0) break;
    }
  }
  const remoteEndpoint = (n: DtcNode): DtcNode | undefined => {
    const p = getProperty(n, "remote-endpoint");
    if (p === undefined) return undefined;
    if (p.value.length !== 4) crash("graph_endpoint", n, "\"remote-endpoint\" is not one cell");
    const ph = cell(p.value);
    return ph === 0 || ph === PHANDLE_NONE ? undefined : byPhandle.get(ph);
  };
  for (const n of nodes) {
    if (n.parent?.bus !== Bus.GraphPort) continue;
    const remote = remoteEndpoint(n);
    if (remote !== undefined) remoteEndpoint(remote);
  }
}
