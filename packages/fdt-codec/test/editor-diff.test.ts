/**
 * Differential tests of the read-write editor against Debian's libfdt 1.6.1.
 *
 * Thousands of seeded random edit sequences run through `FdtEditor` (the sequence is drawn
 * from the editor's own state as it goes: real node offsets, the node's own property names,
 * sometimes wrong offsets) and are then replayed, offset for offset, through python3-libfdt
 * (`test/support/rw-oracle.py`, ONE process for every case). Compared after EVERY call:
 * the return value (new node offset, 0, or libfdt's negative error code) and the SHA-1 of
 * the WHOLE buffer (python's bytearray: bufsize bytes after resize/create, cut to totalsize
 * by pack, the blob itself for in-place edits), stale bytes in the free space included.
 *
 * Start trees: random DTS compiled by `dtc -I dts -O dtb` (one dtc process for all of
 * them), `create_empty_tree`, golden linux-6.1 dtbs (dtc and fdtoverlay layouts), and the
 * valid dtc test-suite blobs (every block order, v1..v17, NOP-filled, sequential-write).
 * Finally, `fdtput` on a golden blob equals the same edit through the editor.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FdtEditor } from "../src/editor.js";
import { FdtError } from "../src/errors.js";
import { goldenDtbs, libfdt161Verdicts } from "./support/golden.js";

const ORACLE = fileURLToPath(new URL("./support/rw-oracle.py", import.meta.url));
const CASES = 3000;

// ---- seeded randomness -------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  word(min: number, max: number): string {
    const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789,._-";
    let s = alphabet[this.int(26)]!;
    const n = this.range(min, max);
    while (s.length < n) s += alphabet[this.int(alphabet.length)]!;
    return s;
  }
}

// Names sharing suffixes, so the strings block's "oldest suffix match wins" rule is hit.
const PROP_NAMES = [
  "compatible", "patible", "ible", "le", "e", "handle", "phandle", "linux,phandle", "reg", "status",
  "name", "#address-cells", "address-cells", "cells", "#size-cells", "s", "x", "fdt", "preserved-memory-map",
  "a-rather-long-property-name-to-grow-the-strings", "",
];
const NODE_NAMES = ["cpu", "cpu@0", "cpu@1", "cpus", "memory", "memory@80000000", "n", "a", "a@1", "chosen", "kho", "fdt@0", "x@y@z"];

// ---- the editor side -----------------------------------------------------------------------

type Op = [string, ...(string | number)[]];

interface NodeInfo {
  offset: number;
  props: string[];
}

/**
 * Nodes (document order) and their property names, through the editor's read API (the raw
 * layer for property names: pre-v16 blobs refuse property offsets but not property walks).
 */
function snapshot(ed: FdtEditor): NodeInfo[] {
  const r = ed.offsets;
  const view = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
  const out: NodeInfo[] = [];
  try {
    let step = r.nextNode(-1, 0);
    while (step.offset >= 0 && out.length < 5000) {
      const props: string[] = [];
      for (let p = r.rawFirstProperty(step.offset); p >= 0; p = r.rawNextProperty(p)) {
        const len = r.rawGetString(view.getUint32(r.offDtStruct() + p + 8) | 0);
        if (len >= 0) props.push(Buffer.from(r.bytes.subarray(r.stringStart, r.stringStart + len)).toString("latin1"));
      }
      out.push({ offset: step.offset, props });
      step = r.nextNode(step.offset, step.depth);
    }
  } catch (e) {
    if (!(e instanceof FdtError)) throw e;
  }
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

function genOp(rng: Rng, ed: FdtEditor): Op {
  const nodes = snapshot(ed);
  const total = ed.totalsize;
  const structSize = ed.offsets.sizeDtStruct();
  const pickNode = (): number => {
    if (nodes.length === 0 || rng.chance(0.07)) return rng.chance(0.5) ? rng.int(Math.max(4, structSize)) : 4 * rng.int(Math.max(1, structSize / 4));
    return rng.pick(nodes).offset;
  };
  const propOf = (node: number): string => {
    const info = nodes.find((n) => n.offset === node);
    if (info && info.props.length > 0 && rng.chance(0.6)) return rng.pick(info.props);
    return rng.chance(0.7) ? rng.pick(PROP_NAMES) : rng.word(1, 12);
  };
  const value = (): Uint8Array => rng.bytes(rng.chance(0.2) ? 0 : rng.range(1, rng.chance(0.1) ? 300 : 24));
  const dataEnd = ed.offsets.offDtStrings() + ed.offsets.sizeDtStrings();
  // Before v17 only the in-place calls (fdt_wip) work: use mostly those there.
  const w = ed.offsets.version() < 17 && rng.chance(0.7) ? rng.pick([57, 58, 59, 60, 61, 62, 63, 64]) : rng.int(100);
  const node = pickNode();
  if (w < 22) return ["setprop", node, propOf(node), hex(value())];
  if (w < 36) return ["add_subnode", node, rng.chance(0.6) ? rng.pick(NODE_NAMES) : rng.word(1, 20) + (rng.chance(0.3) ? `@${rng.int(99)}` : "")];
  if (w < 43) return ["delprop", node, propOf(node)];
  // Deleting (or NOP-ing) the root ends a sequence's usefulness: rarely.
  const nonRoot = nodes.filter((n) => n.offset !== 0);
  const victim = nonRoot.length > 0 && rng.chance(0.97) ? rng.pick(nonRoot).offset : node;
  if (w < 47) return ["del_node", victim];
  if (w < 52) return ["set_name", node, rng.chance(0.5) ? rng.pick(NODE_NAMES) : rng.word(1, 30)];
  if (w < 57) return ["appendprop", node, propOf(node), hex(value())];
  if (w < 59) return ["nop_property", node, propOf(node)];
  if (w < 60) return ["nop_node", victim];
  if (w < 63) {
    const name = propOf(node);
    const cur = ed.offsets.rawGetPropertyNamelen(node, Buffer.from(name, "latin1"));
    const len = cur >= 0 && rng.chance(0.8) ? ed.offsets.propLen : rng.int(12);
    return ["inplace", node, name, hex(rng.bytes(len))];
  }
  if (w < 65) return ["inplace_partial", node, propOf(node), rng.int(10), hex(rng.bytes(rng.int(6)))];
  if (w < 67) return ["placeholder", node, propOf(node), rng.int(40)];
  if (w < 69) return ["setprop_u32", node, propOf(node), rng.int(0x100000000)];
  if (w < 71) return ["setprop_u64", node, propOf(node), (BigInt(rng.int(0x100000000)) * 0x100000000n + BigInt(rng.int(0x100000000))).toString()];
  if (w < 74) return ["setprop_str", node, propOf(node), rng.word(0, 20)];
  if (w < 77) return ["add_mem_rsv", String(rng.int(0x100000000) * 4096), String(rng.chance(0.1) ? 0 : rng.range(1, 1 << 30))];
  if (w < 80) return ["del_mem_rsv", rng.int(4)];
  if (w < 92) {
    // resize: tight (NOSPACE soon), roomy, or too small.
    const k = rng.int(4);
    const size = k === 0 ? dataEnd + 4 * rng.int(16) : k === 1 ? total + rng.range(0, 600) : k === 2 ? dataEnd + rng.range(0, 4096) : Math.max(0, dataEnd - rng.range(1, 64));
    return ["resize", size];
  }
  return ["pack"];
}

/** Apply one op to the editor the way the oracle applies it to libfdt: the libfdt return value. */
function applyOp(ed: FdtEditor, op: Op): number {
  const [kind] = op;
  const a = op.slice(1);
  const num = (i: number): number => a[i] as number;
  const str = (i: number): string => a[i] as string;
  const bin = (i: number): Uint8Array => new Uint8Array(Buffer.from(str(i), "hex"));
  try {
    switch (kind) {
      case "resize":
        ed.resize(num(0));
        return 0;
      case "pack":
        ed.pack();
        return 0;
      case "add_subnode":
        return ed.addSubnode(num(0), str(1));
      case "setprop":
        ed.setprop(num(0), str(1), bin(2));
        return 0;
      case "setprop_u32":
        ed.setpropU32(num(0), str(1), num(2));
        return 0;
      case "setprop_u64":
        ed.setpropU64(num(0), str(1), BigInt(str(2)));
        return 0;
      case "setprop_str":
        ed.setpropString(num(0), str(1), str(2));
        return 0;
      case "delprop":
        ed.delprop(num(0), str(1));
        return 0;
      case "del_node":
        ed.delNode(num(0));
        return 0;
      case "set_name":
        ed.setName(num(0), str(1));
        return 0;
      case "appendprop":
        ed.appendprop(num(0), str(1), bin(2));
        return 0;
      case "nop_property":
        ed.nopProperty(num(0), str(1));
        return 0;
      case "nop_node":
        ed.nopNode(num(0));
        return 0;
      case "add_mem_rsv":
        ed.addMemRsv(BigInt(str(0)), BigInt(str(1)));
        return 0;
      case "del_mem_rsv":
        ed.delMemRsv(num(0));
        return 0;
      case "placeholder":
        ed.setpropPlaceholder(num(0), str(1), num(2));
        return 0;
      case "inplace":
        ed.setpropInplace(num(0), str(1), bin(2));
        return 0;
      case "inplace_partial":
        ed.setpropInplacePartial(num(0), str(1), num(2), bin(3));
        return 0;
      default:
        throw new Error(`unknown op ${kind}`);
    }
  } catch (e) {
    if (e instanceof FdtError) return e.libfdtValue;
    throw e;
  }
}

const sha1 = (b: Uint8Array): string => createHash("sha1").update(b).digest("hex");

interface Start {
  blob?: string; // id of a registered blob
  empty?: number;
}

interface Case {
  label: string;
  start: Start;
  ops: Op[];
  codes: number[];
  shas: string[];
  startCode: number;
}

function runEditor(label: string, start: Start, blobs: Map<string, Uint8Array>, rng: Rng, nOps: number): Case {
  let ed: FdtEditor | undefined;
  let startCode = 0;
  try {
    ed = start.blob !== undefined ? FdtEditor.wrap(blobs.get(start.blob)!.slice()) : FdtEditor.createEmptyTree(start.empty!);
  } catch (e) {
    if (!(e instanceof FdtError)) throw e;
    startCode = e.libfdtValue;
  }
  const c: Case = { label, start, ops: [], codes: [], shas: [], startCode };
  if (!ed) return c;
  for (let i = 0; i < nOps; i++) {
    // Blobs straight from dtc have no room: open most of them into a bigger buffer first.
    const op: Op = i === 0 && start.blob !== undefined && ed.offsets.version() >= 17 && rng.chance(0.75) ? ["resize", ed.totalsize + rng.range(0, 2048)] : genOp(rng, ed);
    c.ops.push(op);
    c.codes.push(applyOp(ed, op));
    c.shas.push(sha1(ed.buffer));
  }
  return c;
}

// ---- random DTS through dtc -------------------------------------------------------------------

function randomDts(rng: Rng): string {
  let s = "/dts-v1/;\n";
  const nRsv = rng.chance(0.4) ? rng.range(1, 3) : 0;
  for (let i = 0; i < nRsv; i++) s += `/memreserve/ 0x${(rng.int(0xfffff) * 4096).toString(16)} 0x${rng.range(1, 0xffffff).toString(16)};\n`;
  const node = (depth: number): string => {
    let body = "";
    const used = new Set<string>();
    const nProps = rng.int(6);
    for (let i = 0; i < nProps; i++) {
      const name = rng.chance(0.6) ? rng.pick(PROP_NAMES.filter((n) => n !== "")) : rng.word(1, 16);
      if (used.has(name)) continue;
      used.add(name);
      const k = rng.int(5);
      const v =
        k === 0 ? "" :
        k === 1 ? ` = "${rng.word(0, 12)}"` :
        k === 2 ? ` = <${Array.from({ length: rng.range(1, 4) }, () => `0x${rng.int(0x100000000).toString(16)}`).join(" ")}>` :
        k === 3 ? ` = [${Array.from({ length: rng.range(1, 9) }, () => rng.int(256).toString(16).padStart(2, "0")).join(" ")}]` :
        ` = "${rng.word(1, 6)}", "${rng.word(1, 6)}"`;
      body += `${name}${v};\n`;
    }
    const nKids = depth < 3 ? rng.int(4 - depth) : 0;
    const kids = new Set<string>();
    for (let i = 0; i < nKids; i++) {
      const name = rng.chance(0.5) ? rng.pick(NODE_NAMES.filter((n) => !n.includes("@y"))) : rng.word(1, 10);
      if (kids.has(name)) continue;
      kids.add(name);
      body += `${name} ${node(depth + 1)};\n`;
    }
    return `{\n${body}}`;
  };
  return `${s}/ ${node(0)};\n`;
}

function compileDts(sources: string[], dir: string): Uint8Array[] {
  sources.forEach((src, i) => {
    writeFileSync(join(dir, `t${i}.dts`), src);
  });
  const script = `for i in $(seq 0 ${sources.length - 1}); do dtc -q -f -I dts -O dtb -o t$i.dtb t$i.dts || exit 1; done`;
  const r = spawnSync("sh", ["-c", script], { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`dtc failed: ${r.stderr}`);
  return sources.map((_, i) => new Uint8Array(readFileSync(join(dir, `t${i}.dtb`))));
}

// ---- the oracle ------------------------------------------------------------------------------

interface OracleResult {
  start: number;
  codes: number[];
  sha: string[];
  buf?: string;
}

function runOracle(cases: readonly Case[], blobs: Map<string, Uint8Array>, dump: boolean): OracleResult[] {
  const hexOf = new Map<string, string>();
  const lines = cases.map((c) => {
    let start: object;
    if (c.start.blob !== undefined) {
      let h = hexOf.get(c.start.blob);
      if (h === undefined) {
        h = hex(blobs.get(c.start.blob)!);
        hexOf.set(c.start.blob, h);
      }
      start = { blob: h };
    } else {
      start = { empty: c.start.empty };
    }
    return JSON.stringify({ start, ops: c.ops, dump });
  });
  const r = spawnSync("/usr/bin/python3", [ORACLE], { input: lines.join("\n") + "\n", encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`oracle failed: ${r.stderr}`);
  return r.stdout.trim().split("\n").map((l) => JSON.parse(l) as OracleResult);
}

/** Where two buffers first differ, for a readable failure. */
function explain(c: Case, blobs: Map<string, Uint8Array>): string {
  const [o] = runOracle([c], blobs, true);
  const ed: FdtEditor = c.start.blob !== undefined ? FdtEditor.wrap(blobs.get(c.start.blob)!.slice()) : FdtEditor.createEmptyTree(c.start.empty!);
  const lines: string[] = [];
  for (let i = 0; i < c.ops.length; i++) {
    const code = applyOp(ed, c.ops[i]!);
    const ok = code === o!.codes[i] && sha1(ed.buffer) === o!.sha[i];
    lines.push(`${ok ? "  " : "!!"} ${JSON.stringify(c.ops[i]).slice(0, 120)} -> ts ${code} / libfdt ${o!.codes[i]}`);
    if (!ok) break;
  }
  const ours = ed.buffer;
  const theirs = Buffer.from(o!.buf ?? "", "hex");
  let d = 0;
  while (d < Math.min(ours.length, theirs.length) && ours[d] === theirs[d]) d++;
  return `${c.label}\n${lines.join("\n")}\nfinal buffers: ts ${ours.length} bytes, libfdt ${theirs.length}; first difference at byte ${d}`;
}

// ---- the tests -------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), "fdt-rw-diff-"));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("FdtEditor against libfdt 1.6.1 (python3-libfdt)", () => {
  it(`replays ${CASES} random edit sequences byte for byte`, () => {
    const rng = new Rng(0x5eed1);
    const blobs = new Map<string, Uint8Array>();

    const dtsBlobs = compileDts(Array.from({ length: 60 }, () => randomDts(rng)), work);
    dtsBlobs.forEach((b, i) => blobs.set(`dtc:${i}`, b));

    const verdicts = libfdt161Verdicts();
    const golden = goldenDtbs().filter((g) => {
      if (g.name.startsWith("dtc-tests/")) return verdicts.get(g.name.slice("dtc-tests/".length)) === 0;
      return g.bytes.length <= 40000 || g.name.includes("fsl-ls1028a-qds") || g.name.includes("sc7280-herobrine-crd");
    });
    for (const g of golden) blobs.set(g.name, g.bytes);
    const goldenNames = golden.map((g) => g.name);
    const big = goldenNames.filter((n) => blobs.get(n)!.length > 40000);
    const small = goldenNames.filter((n) => blobs.get(n)!.length <= 40000);
    const old = goldenNames.filter((n) => new DataView(blobs.get(n)!.buffer).getUint32(20) < 17);
    expect(old.length).toBeGreaterThan(0);

    const cases: Case[] = [];
    for (let i = 0; i < CASES; i++) {
      const k = i % 10;
      const nOps = rng.range(3, 28);
      let start: Start;
      if (k < 4) start = { blob: `dtc:${rng.int(dtsBlobs.length)}` };
      else if (k < 6) start = { empty: rng.chance(0.05) ? rng.range(0, 79) : rng.range(80, 900) };
      else if (k === 9 && i % 30 === 19) start = { blob: rng.pick(old) };
      else if (k < 9 || big.length === 0 || i % 100 !== 9) start = { blob: rng.pick(small) };
      else start = { blob: rng.pick(big) };
      cases.push(runEditor(`case ${i} start ${JSON.stringify(start)}`, start, blobs, rng, nOps));
    }

    const results = runOracle(cases, blobs, false);
    expect(results.length).toBe(cases.length);
    let mismatches = 0;
    let firstBad: Case | undefined;
    const stats = { ops: 0, errors: new Map<number, number>(), kinds: new Map<string, number>() };
    cases.forEach((c, i) => {
      const o = results[i]!;
      const same = o.start === c.startCode && JSON.stringify(o.codes) === JSON.stringify(c.codes) && JSON.stringify(o.sha) === JSON.stringify(c.shas);
      if (!same) {
        mismatches++;
        firstBad ??= c;
      }
      stats.ops += c.ops.length;
      c.codes.forEach((code, j) => {
        if (code < 0) stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1);
        const kind = c.ops[j]![0];
        stats.kinds.set(kind, (stats.kinds.get(kind) ?? 0) + 1);
      });
    });
    if (firstBad) expect.fail(`${mismatches} of ${cases.length} sequences differ; first:\n${explain(firstBad, blobs)}`);
    // The run must actually exercise the error paths it claims to compare.
    for (const code of [-1, -2, -3, -4, -10, -12]) expect(stats.errors.get(code) ?? 0, `error ${code} exercised`).toBeGreaterThan(0);
    expect(stats.ops).toBeGreaterThan(CASES * 5);
  }, 120_000);

  it("fdtput on a golden blob equals the same edits through the editor", () => {
    const g = goldenDtbs().find((b) => b.name.startsWith("linux-6.1-arm64/"))!;
    const file = join(work, "fdtput.dtb");
    copyFileSync(g.path, file);
    const run = (args: string[]): void => {
      const r = spawnSync("fdtput", args, { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
    };
    run(["-t", "s", file, "/", "liveupdate,test", "hello"]);
    run(["-c", file, "/liveupdate-node"]);
    const fromFdtput = new Uint8Array(readFileSync(file));

    // fdtput: try the edit in place; on NOSPACE fdt_open_into (in place) a buffer grown by
    // what the edit needs (property: 12 + name + NUL + aligned value; node: 4 + aligned
    // name + NUL + 4), and try again. The result is written out as totalsize bytes.
    const name = "liveupdate,test";
    const value = new Uint8Array([...Buffer.from("hello"), 0]);
    let ed = FdtEditor.wrap(g.bytes.slice());
    expect(() => {
      ed.setprop("/", name, value);
    }).toThrow(FdtError);
    ed = FdtEditor.openInto(g.bytes, g.bytes.length + 12 + name.length + 1 + ((value.length + 3) & ~3));
    ed.setprop("/", name, value);
    expect(() => ed.addSubnode("/", "liveupdate-node")).toThrow(FdtError);
    ed = FdtEditor.openInto(ed.bytes(), ed.totalsize + 4 + ((("liveupdate-node".length + 1 + 3) & ~3) + 4));
    ed.addSubnode("/", "liveupdate-node");
    expect(Buffer.from(ed.bytes()).equals(Buffer.from(fromFdtput))).toBe(true);
  });
});
