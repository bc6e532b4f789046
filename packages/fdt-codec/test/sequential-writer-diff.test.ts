/**
 * Differential tests of the sequential writer against Debian's libfdt 1.6.1: seeded random
 * call sequences replayed through python3-libfdt (`FdtSw`, and libfdt's raw calls on a
 * fixed-size bytearray) and through a small C program linked with -lfdt (placeholders, Latin-1
 * names, negative resize sizes, and every fixed-size case again), then through
 * `FdtSequentialWriter`: identical error codes and identical bytes (the whole working buffer
 * for fixed sizes, including stale bytes; the finished blob for growable writers). Then every
 * golden blob libfdt accepts, re-written through `encodeSequential`, against `FdtSw`.
 *
 * One python process and one C process for everything (stdin in, stdout out).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FDT_ERR, FdtError } from "../src/errors.js";
import { encodeSequential, FdtSequentialWriter } from "../src/sequential-writer.js";
import type { FdtNode, FdtTree } from "../src/tree.js";
import { goldenDtbs, libfdt161Verdicts } from "./support/golden.js";

const SUPPORT = fileURLToPath(new URL("./support/", import.meta.url));
const PYTHON = "/usr/bin/python3";
/** The oracles' code for a call libfdt 1.6.1 would answer by writing out of bounds (not made). */
const UB = 1000;

// ---- cases --------------------------------------------------------------------------------

type Op =
  | { k: "rsv"; address: bigint; size: bigint }
  | { k: "frsv" }
  | { k: "begin"; name: string }
  | { k: "prop"; name: string; value: Uint8Array }
  | { k: "str"; name: string; value: string }
  | { k: "u32"; name: string; value: number }
  | { k: "u64"; name: string; value: bigint }
  | { k: "ph"; name: string; len: number; fill: Uint8Array }
  | { k: "end" }
  | { k: "resize"; size: number }
  | { k: "finish" }
  | { k: "boot"; value: number };

interface Case {
  mode: "fixed" | "grow";
  size: number;
  flags: number;
  ops: Op[];
}

interface Outcome {
  create: number;
  codes: number[];
  /** Fixed: the whole working buffer; grow: the finished blob. Hex; "" when there is none. */
  buf: string;
}

/** mulberry32: small, seeded, good enough to pick test shapes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const REAL_NAMES = [
  "compatible", "preserved-memory-map", "fdt", "phandle", "linux,phandle", "handle", "reg", "#address-cells",
  "#size-cells", "status", "okay", "ranges", "interrupts", "interrupt-parent", "parent", "name", "e", "",
];
const TAIL = "-shared-tail-of-a-long-property-name";
/** Long names (63 to 150 characters) sharing suffixes. */
const LONG_NAMES = [
  "x".repeat(28) + TAIL, // 64
  "y".repeat(29) + TAIL, // 65
  "zy".repeat(15) + TAIL, // 66
  "w".repeat(27) + TAIL, // 63
  "v".repeat(60) + TAIL,
  "u".repeat(61) + "v".repeat(60) + TAIL,
  TAIL,
  TAIL.slice(5),
];
const LATIN1_NAMES = ["\u00e9t\u00e9", "t\u00e9", "\u00ff", "na\u00efve,\u00e9t\u00e9"];

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function genCase(seed: number): Case {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const chance = (p: number): boolean => r() < p;

  const grow = chance(0.3);
  const latin1 = !grow && chance(0.1);
  const withLong = chance(0.25);
  const placeholders = !grow && chance(0.4);
  const pool: string[] = [];
  const poolSize = int(2, 24);
  for (let i = 0; i < poolSize; i++) {
    const roll = r();
    if (roll < 0.4) pool.push(pick(REAL_NAMES));
    else if (roll < 0.85 || !withLong) {
      // Short names over a tiny alphabet: suffix relations everywhere.
      let s = "";
      const n = int(0, 6);
      for (let j = 0; j < n; j++) s += pick(["a", "b", ",", "-"]);
      pool.push(s);
    } else pool.push(pick(LONG_NAMES));
    if (latin1 && chance(0.3)) pool.push(pick(LATIN1_NAMES));
  }
  const nodeNames = ["", "node", "cpu@0", "a", "memory@80000000", "x".repeat(int(0, 40)), ...(latin1 ? ["n\u00f6de"] : [])];
  const value = (): Uint8Array => {
    const roll = r();
    const len = roll < 0.15 ? 0 : roll < 0.85 ? int(1, 40) : int(100, 600);
    const v = new Uint8Array(len);
    for (let i = 0; i < len; i++) v[i] = int(0, 255);
    return v;
  };
  const text = (): string => {
    let s = "";
    const n = int(0, 12);
    for (let i = 0; i < n; i++) s += String.fromCharCode(int(0x20, 0x7e));
    return s;
  };

  const ops: Op[] = [];
  const faulty = chance(0.3);
  const shape = pick(["deep", "wide", "flat", "mixed"] as const);
  const nrsv = chance(0.5) ? int(0, 4) : 0;
  for (let i = 0; i < nrsv; i++) {
    ops.push({ k: "rsv", address: BigInt(int(0, 0xffffffff)) << BigInt(int(0, 32)), size: BigInt(int(0, 0xffffff)) });
  }
  if (!(faulty && chance(0.2))) ops.push({ k: "frsv" });
  const nops = chance(0.1) ? int(300, 1200) : int(3, 120);
  let depth = 0;
  const beginWeight = shape === "deep" ? 0.5 : shape === "wide" ? 0.25 : shape === "flat" ? 0.08 : 0.2;
  const endWeight = shape === "deep" ? 0.08 : 0.2;
  for (let i = 0; i < nops; i++) {
    const roll = r();
    if (faulty && chance(0.03)) {
      ops.push(pick<Op>([{ k: "frsv" }, { k: "rsv", address: 1n, size: 2n }, { k: "finish" }, { k: "end" }]));
    } else if (roll < beginWeight || depth === 0) {
      ops.push({ k: "begin", name: pick(nodeNames) });
      depth++;
    } else if (roll < beginWeight + endWeight) {
      ops.push({ k: "end" });
      depth--;
    } else {
      const name = pick(pool);
      const kind = r();
      if (kind < 0.55) ops.push({ k: "prop", name, value: value() });
      else if (kind < 0.7) ops.push({ k: "str", name, value: text() });
      else if (kind < 0.8) ops.push({ k: "u32", name, value: int(0, 0xffffffff) });
      else if (kind < 0.88) ops.push({ k: "u64", name, value: (BigInt(int(0, 0xffffffff)) << 32n) | BigInt(int(0, 0xffffffff)) });
      else if (placeholders) {
        const len = chance(0.2) ? 0 : int(1, 50);
        const fill = new Uint8Array(int(0, len));
        for (let j = 0; j < fill.length; j++) fill[j] = int(1, 255);
        ops.push({ k: "ph", name, len, fill });
      } else ops.push({ k: "prop", name, value: value() });
    }
    if (!grow && chance(0.01)) ops.push({ k: "resize", size: chance(0.1) ? -int(1, 100) : int(0, 6000) });
    if (chance(0.005)) ops.push({ k: "boot", value: int(0, 0xffffffff) });
  }
  // Mostly balanced; sometimes left open (libfdt does not care).
  if (!(faulty && chance(0.5))) while (depth-- > 0) ops.push({ k: "end" });
  if (!(faulty && chance(0.1))) ops.push({ k: "finish" });
  if (faulty && chance(0.5)) ops.push(pick<Op>([{ k: "finish" }, { k: "end" }, { k: "begin", name: "late" }, { k: "resize", size: 9000 }]));

  let flags = chance(0.25) ? 1 : 0;
  if (chance(0.02)) flags = int(2, 7);
  if (grow) return { mode: "grow", size: int(256, 2048), flags, ops: ops.filter((o) => o.k !== "resize") };

  let size: number;
  const roll = r();
  if (roll < 0.3) {
    // Exact size: the finished size in a big buffer (with a few bytes either way).
    const big = replayJs({ mode: "grow", size: 1024, flags, ops: ops.filter((o) => o.k !== "resize") }, new Set());
    const total = big.buf === "" ? 4096 : big.buf.length / 2;
    size = total + pick([0, 0, 0, -1, -4, -16, 3]);
  } else if (roll < 0.35) size = int(0, 60);
  else if (roll < 0.7) size = int(60, 500);
  else size = int(500, 4096);
  return { mode: "fixed", size, flags, ops };
}

function usesPythonUnsafe(c: Case): boolean {
  for (const o of c.ops) {
    if (o.k === "ph") return true;
    if (o.k === "resize" && o.size < 0) return true;
    if ("name" in o && !isAscii(o.name)) return true;
  }
  return false;
}

// ---- the three replays --------------------------------------------------------------------

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

function codeOf(e: unknown): number {
  if (e instanceof FdtError) return -FDT_ERR[e.code];
  throw e;
}

/**
 * Replay through FdtSequentialWriter. At indices in `skip` libfdt would have written out of
 * bounds (the oracles report UB without calling it): there the writer must fail with NOSPACE,
 * reported as UB, and, like the call never made, change nothing.
 */
function replayJs(c: Case, skip: ReadonlySet<number>): Outcome {
  let w: FdtSequentialWriter;
  try {
    w = c.mode === "grow" ? FdtSequentialWriter.growable({ initialSize: c.size, flags: c.flags }) : new FdtSequentialWriter(c.size, c.flags);
  } catch (e) {
    return { create: codeOf(e), codes: [], buf: "" };
  }
  const codes: number[] = [];
  let blob: Uint8Array | null = null;
  for (let i = 0; i < c.ops.length; i++) {
    const o = c.ops[i]!;
    try {
      switch (o.k) {
        case "rsv": w.addReservemapEntry(o.address, o.size); break;
        case "frsv": w.finishReservemap(); break;
        case "begin": w.beginNode(o.name); break;
        case "prop": w.property(o.name, o.value); break;
        case "str": w.propertyString(o.name, o.value); break;
        case "u32": w.propertyU32(o.name, o.value); break;
        case "u64": w.propertyU64(o.name, o.value); break;
        case "ph": w.propertyPlaceholder(o.name, o.len).set(o.fill); break;
        case "end": w.endNode(); break;
        case "resize": w.resize(o.size); break;
        case "finish": blob = w.finish(); break;
        case "boot": w.setBootCpuidPhys(o.value); break;
      }
      codes.push(0);
    } catch (e) {
      const code = codeOf(e);
      // Where libfdt would write out of bounds, the writer must refuse without effect.
      codes.push(skip.has(i) && code === -FDT_ERR.FDT_ERR_NOSPACE ? UB : code);
    }
  }
  const buf = c.mode === "fixed" ? hex(w.workingBuffer) : blob === null ? "" : hex(blob);
  return { create: 0, codes, buf };
}

function latin1Hex(s: string): string {
  return s === "" ? "-" : Buffer.from(s, "latin1").toString("hex");
}

function toPythonLine(c: Case): string {
  const ops = c.ops.map((o): unknown[] => {
    switch (o.k) {
      case "rsv": return ["rsv", o.address.toString(), o.size.toString()];
      case "frsv": return ["frsv"];
      case "begin": return ["begin", o.name];
      case "prop": return ["prop", o.name, hex(o.value)];
      case "str": return ["str", o.name, o.value];
      case "u32": return ["u32", o.name, o.value];
      case "u64": return ["u64", o.name, o.value.toString()];
      case "end": return ["end"];
      case "resize": return ["resize", o.size];
      case "finish": return ["finish"];
      case "boot": return ["boot", o.value];
      case "ph": throw new Error("python cannot replay placeholders");
    }
  });
  return JSON.stringify({ mode: c.mode, size: c.size, flags: c.flags, ops });
}

function toCScript(c: Case): string {
  const lines = [`case ${c.size} ${c.flags}`];
  for (const o of c.ops) {
    switch (o.k) {
      case "rsv": lines.push(`R ${o.address.toString(16)} ${o.size.toString(16)}`); break;
      case "frsv": lines.push("F"); break;
      case "begin": lines.push(`B ${latin1Hex(o.name)}`); break;
      case "prop": lines.push(`P ${latin1Hex(o.name)} ${o.value.length ? hex(o.value) : "-"}`); break;
      case "str": lines.push(`S ${latin1Hex(o.name)} ${latin1Hex(o.value)}`); break;
      case "u32": lines.push(`U ${latin1Hex(o.name)} ${o.value}`); break;
      case "u64": lines.push(`Q ${latin1Hex(o.name)} ${o.value.toString(16)}`); break;
      case "ph": lines.push(`H ${latin1Hex(o.name)} ${o.len} ${o.fill.length ? hex(o.fill) : "-"}`); break;
      case "end": lines.push("E"); break;
      case "resize": lines.push(`Z ${o.size}`); break;
      case "finish": lines.push("X"); break;
      case "boot": lines.push(`C ${o.value}`); break;
    }
  }
  lines.push("run");
  return lines.join("\n") + "\n";
}

function runPython(lines: string[]): Outcome[] {
  const r = spawnSync(PYTHON, [join(SUPPORT, "sw-oracle.py")], {
    input: lines.join("\n") + "\n",
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`sw-oracle.py failed: ${r.stderr}`);
  const out = r.stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Outcome);
  if (out.length !== lines.length) throw new Error(`sw-oracle.py answered ${out.length} of ${lines.length}`);
  return out;
}

let cOracle = "";
let tempDir = "";

function runC(scripts: string[]): Outcome[] {
  const r = spawnSync(cOracle, [], { input: scripts.join(""), encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`sw-oracle (C) failed: ${r.stderr}`);
  const out = r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l): Outcome => {
      const [create, codes, buf] = l.split(" ");
      return {
        create: Number(create),
        codes: codes === "-" || codes === undefined ? [] : codes.split(",").map(Number),
        buf: buf === "-" || buf === undefined ? "" : buf,
      };
    });
  if (out.length !== scripts.length) throw new Error(`sw-oracle (C) answered ${out.length} of ${scripts.length}`);
  return out;
}

beforeAll(() => {
  tempDir = mkdtempSync(join(tmpdir(), "sw-oracle-"));
  cOracle = join(tempDir, "sw-oracle");
  const cc = spawnSync("cc", ["-O2", "-o", cOracle, join(SUPPORT, "sw-oracle.c"), "-lfdt"], { encoding: "utf8" });
  if (cc.status !== 0) throw new Error(`cannot build the C oracle: ${cc.stderr}`);
});

afterAll(() => {
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
});

function ubIndices(o: Outcome): Set<number> {
  const s = new Set<number>();
  o.codes.forEach((code, i) => {
    if (code === UB) s.add(i);
  });
  return s;
}

// ---- random sequences ---------------------------------------------------------------------

const CASES = 3000;
const SEED = 0x5eed5;

describe("random call sequences: FdtSequentialWriter == libfdt 1.6.1", () => {
  it(`${CASES} seeded cases through pylibfdt and the C oracle`, () => {
    const cases: Case[] = [];
    for (let i = 0; i < CASES; i++) cases.push(genCase(SEED + i));

    const pyIdx: number[] = [];
    const cIdx: number[] = [];
    cases.forEach((c, i) => {
      if (c.mode === "fixed") cIdx.push(i);
      if (c.mode === "grow" || !usesPythonUnsafe(c)) pyIdx.push(i);
    });
    const py = runPython(pyIdx.map((i) => toPythonLine(cases[i]!)));
    const cc = runC(cIdx.map((i) => toCScript(cases[i]!)));
    const pyOut = new Map(pyIdx.map((i, j) => [i, py[j]!]));
    const cOut = new Map(cIdx.map((i, j) => [i, cc[j]!]));

    const stats = { nospace: 0, badstate: 0, finished: 0, exact: 0, ub: 0, crossChecked: 0, placeholders: 0, noDedup: 0 };
    cases.forEach((c, i) => {
      const fromC = cOut.get(i);
      const fromPy = pyOut.get(i);
      const oracle = fromC ?? fromPy!;
      if (fromC && fromPy) {
        expect(fromPy, `case ${i}: pylibfdt and the C oracle disagree`).toEqual(fromC);
        stats.crossChecked++;
      }
      const mine = replayJs(c, ubIndices(oracle));
      expect(mine.create, `case ${i} create`).toBe(oracle.create);
      expect(mine.codes, `case ${i} codes`).toEqual(oracle.codes);
      if (mine.buf !== oracle.buf) expect.fail(`case ${i} (${c.mode}, size ${c.size}): bytes differ\n js ${mine.buf}\n lib ${oracle.buf}`);
      for (const code of oracle.codes) {
        if (code === -FDT_ERR.FDT_ERR_NOSPACE) stats.nospace++;
        if (code === -FDT_ERR.FDT_ERR_BADSTATE) stats.badstate++;
        if (code === UB) stats.ub++;
      }
      const fin = c.ops.findIndex((o, j) => o.k === "finish" && oracle.codes[j] === 0);
      if (fin >= 0) stats.finished++;
      if (fin >= 0 && c.mode === "fixed" && Number.parseInt(oracle.buf.slice(8, 16), 16) === c.size) stats.exact++;
      if (c.ops.some((o) => o.k === "ph")) stats.placeholders++;
      if (c.flags === 1) stats.noDedup++;
    });
    console.log(`sequential writer diff: ${CASES} cases`, stats);
    // The generator must actually reach the interesting paths.
    expect(stats.nospace).toBeGreaterThan(100);
    expect(stats.badstate).toBeGreaterThan(100);
    expect(stats.finished).toBeGreaterThan(CASES / 2);
    expect(stats.exact).toBeGreaterThan(100);
    expect(stats.placeholders).toBeGreaterThan(100);
    expect(stats.noDedup).toBeGreaterThan(100);
    expect(stats.crossChecked).toBeGreaterThan(500);
  });
});

// ---- golden blobs -------------------------------------------------------------------------

interface Calls {
  reserveMap: { address: bigint; size: bigint }[];
  ops: Op[];
  bootCpuidPhys: number;
}

/**
 * A minimal walk of a blob libfdt accepts, into the fdt_sw calls that would rebuild it:
 * reserve entries up to the first of size 0 (as libfdt reads them), then every BEGIN_NODE /
 * PROP / END_NODE in order (NOPs dropped). Before version 16 a node name is a full path (the
 * leaf is the part after the last '/') and a value of 8+ bytes starts 8-aligned.
 */
function walkCalls(bytes: Uint8Array): Calls {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const totalsize = Math.min(dv.getUint32(4), bytes.length);
  const offStruct = dv.getUint32(8);
  const offStrings = dv.getUint32(12);
  const offRsv = dv.getUint32(16);
  const version = dv.getUint32(20);
  const latin1 = (a: number, b: number): string => Buffer.from(bytes.subarray(a, b)).toString("latin1");
  const nul = (at: number): number => {
    const i = bytes.indexOf(0, at);
    if (i < 0 || i >= totalsize) throw new Error(`unterminated name at ${at}`);
    return i;
  };
  const reserveMap: { address: bigint; size: bigint }[] = [];
  for (let at = offRsv; at + 16 <= totalsize; at += 16) {
    const size = dv.getBigUint64(at + 8);
    if (size === 0n) break;
    reserveMap.push({ address: dv.getBigUint64(at), size });
  }
  const ops: Op[] = [];
  let off = offStruct;
  while (off + 4 <= totalsize) {
    const tag = dv.getUint32(off);
    if (tag === 9) break;
    if (tag === 1) {
      const end = nul(off + 4);
      let leaf = off + 4;
      if (version < 16) for (let i = off + 4; i < end; i++) if (bytes[i] === 0x2f) leaf = i + 1;
      ops.push({ k: "begin", name: latin1(leaf, end) });
      off = (end + 1 + 3) & ~3;
    } else if (tag === 3) {
      const len = dv.getUint32(off + 4);
      const nameAt = offStrings + dv.getUint32(off + 8);
      let valueAt = off + 12;
      if (version < 16 && len >= 8 && (valueAt - offStruct) % 8 !== 0) valueAt += 4;
      ops.push({ k: "prop", name: latin1(nameAt, nul(nameAt)), value: bytes.slice(valueAt, valueAt + len) });
      off = (valueAt + len + 3) & ~3;
    } else if (tag === 2) {
      ops.push({ k: "end" });
      off += 4;
    } else if (tag === 4) {
      off += 4;
    } else {
      throw new Error(`unexpected tag ${tag} at ${off}`);
    }
  }
  return { reserveMap, ops, bootCpuidPhys: version >= 2 ? dv.getUint32(28) : 0 };
}

/** The calls as a tree, if they are exactly one balanced node (otherwise the model cannot hold them). */
function callsToTree(calls: Calls): FdtTree | null {
  const stack: FdtNode[] = [];
  let root: FdtNode | null = null;
  for (const o of calls.ops) {
    if (o.k === "begin") {
      if (root !== null && stack.length === 0) return null; // a second top-level node
      const node: FdtNode = { name: o.name, properties: [], children: [] };
      if (stack.length > 0) stack[stack.length - 1]!.children.push(node);
      else root = node;
      stack.push(node);
    } else if (o.k === "prop") {
      const top = stack[stack.length - 1];
      if (!top) return null; // a property outside any node
      top.properties.push({ name: o.name, value: o.value });
    } else if (o.k === "end") {
      if (!stack.pop()) return null;
    }
  }
  if (root === null || stack.length !== 0) return null;
  return { bootCpuidPhys: calls.bootCpuidPhys, reserveMap: calls.reserveMap, root };
}

describe("golden blobs re-written in the sequential layout == libfdt 1.6.1 FdtSw", () => {
  const verdicts = libfdt161Verdicts();
  const blobs = goldenDtbs().filter((b) => !b.name.startsWith("dtc-tests/") || verdicts.get(b.name.slice("dtc-tests/".length)) === 0);

  it(`${blobs.length} blobs libfdt accepts`, () => {
    const items = blobs.map((b) => {
      const calls = walkCalls(b.bytes);
      const ops: Op[] = [
        ...calls.reserveMap.map((e): Op => ({ k: "rsv", address: e.address, size: e.size })),
        { k: "frsv" },
        ...calls.ops,
        { k: "boot", value: calls.bootCpuidPhys },
        { k: "finish" },
      ];
      return { blob: b, calls, ops, ascii: ops.every((o) => !("name" in o) || isAscii(o.name)) };
    });
    // The C oracle (a buffer large enough) for every blob; pylibfdt's FdtSw too where the names
    // are ASCII (SWIG hands it UTF-8): the two must agree.
    const pyItems = items.filter((x) => x.ascii);
    const py = runPython(pyItems.map((x) => toPythonLine({ mode: "grow", size: 1024, flags: 0, ops: x.ops })));
    const cc = runC(items.map((x) => toCScript({ mode: "fixed", size: 2 * x.blob.bytes.length + 4096, flags: 0, ops: x.ops })));
    const expected = new Map<string, string>();
    items.forEach((x, i) => {
      const buf = cc[i]!.buf;
      expected.set(x.blob.name, buf.slice(0, 2 * Number.parseInt(buf.slice(8, 16), 16)));
    });
    pyItems.forEach((x, i) => {
      if (py[i]!.buf !== expected.get(x.blob.name)) expect.fail(`${x.blob.name}: pylibfdt FdtSw and the C oracle disagree`);
    });

    let trees = 0;
    for (const x of items) {
      const want = expected.get(x.blob.name)!;
      expect(want.length, x.blob.name).toBeGreaterThan(0);
      // The same calls through the writer...
      const replay = replayJs({ mode: "grow", size: 1024, flags: 0, ops: x.ops }, new Set());
      expect(replay.codes.every((c) => c === 0), x.blob.name).toBe(true);
      if (replay.buf !== want) expect.fail(`${x.blob.name}: replayed calls differ from libfdt`);
      // ...and the tree through encodeSequential.
      const tree = callsToTree(x.calls);
      if (tree === null) continue;
      const mine = encodeSequential(tree);
      if (hex(mine) !== want) expect.fail(`${x.blob.name}: encodeSequential differs from libfdt`);
      trees++;
    }
    console.log(`golden: ${items.length} blobs replayed (${pyItems.length} also through pylibfdt), ${trees} as trees through encodeSequential`);
    expect(pyItems.length).toBeGreaterThan(items.length * 0.9);
    expect(trees).toBeGreaterThan(items.length * 0.9);
  });
});
