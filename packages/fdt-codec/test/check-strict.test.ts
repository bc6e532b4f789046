/**
 * checkStrict: one hand-made blob per rule (built byte by byte here, so every expected
 * offset is known by construction), dtc-compiled trees whose offsets come from
 * `fdtdump -d`, the character sets measured against dtc 1.6.1 itself, and the golden
 * corpus (real kernel trees: only findings that are verified true here).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkLibfdt } from "../src/check-libfdt.js";
import { FDT_MAX_PROBLEMS, type FdtCheckReport } from "../src/check-report.js";
import { checkStrict } from "../src/check-strict.js";
import { fuzzInput } from "./support/fuzz.js";
import { goldenDtbs } from "./support/golden.js";

// ---------------------------------------------------------------------------------------
// A byte builder: struct tokens with their offsets, a strings table, and a packer that
// places the blocks (dtc order by default) and writes a consistent header.

function be32(v: number): number[] {
  return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}
function latin1(s: string): number[] {
  return Array.from({ length: s.length }, (_, i) => s.charCodeAt(i));
}
/** `dst.push(...src)` without the argument-count limit of a spread. */
function append(dst: number[], src: readonly number[]): void {
  for (const v of src) dst.push(v);
}

class Tree {
  readonly struct: number[] = [];
  readonly strings: number[] = [];
  private readonly nameoffs = new Map<string, number>();

  /** Relative offset of the next token. */
  get at(): number {
    return this.struct.length;
  }
  word(v: number): number {
    const at = this.at;
    this.struct.push(...be32(v));
    return at;
  }
  /** BEGIN_NODE with `name` and `padding` (zero by default) after its NUL. */
  begin(name: string, padding?: number[]): number {
    const at = this.word(1);
    const bytes = [...latin1(name), 0];
    const pad = padding ?? new Array<number>((4 - (bytes.length % 4)) % 4).fill(0);
    this.struct.push(...bytes, ...pad);
    return at;
  }
  end(): number {
    return this.word(2);
  }
  nop(): number {
    return this.word(4);
  }
  finish(): number {
    return this.word(9);
  }
  nameoff(name: string): number {
    let off = this.nameoffs.get(name);
    if (off === undefined) {
      off = this.strings.length;
      append(this.strings, latin1(name));
      this.strings.push(0);
      this.nameoffs.set(name, off);
    }
    return off;
  }
  /** PROP `name` = `value` (bytes), value padding zero unless given. */
  prop(name: string, value: number[] = [], padding?: number[]): number {
    return this.rawProp(value.length, this.nameoff(name), value, padding);
  }
  cells(name: string, ...cells: number[]): number {
    return this.prop(name, cells.flatMap(be32));
  }
  rawProp(len: number, nameoff: number, value: number[], padding?: number[]): number {
    const at = this.word(3);
    this.struct.push(...be32(len), ...be32(nameoff), ...value);
    this.struct.push(...(padding ?? new Array<number>((4 - (value.length % 4)) % 4).fill(0)));
    return at;
  }
}

type BlockName = "rsv" | "struct" | "strings";
interface PackOptions {
  /** Reserve map bytes (default: just the terminator). */
  rsv?: number[];
  order?: BlockName[];
  /** Bytes placed before each block (default none) and after the last one. */
  gaps?: Partial<Record<BlockName | "tail", number[]>>;
  /** Header fields to overwrite, by byte offset. */
  header?: Record<number, number>;
  /** Zero-pad before the reserve map to 8 and the struct block to 4 (default true). */
  align?: boolean;
}
interface Packed {
  bytes: Uint8Array;
  offRsv: number;
  offStruct: number;
  offStrings: number;
}
function pack(tree: Tree, opts: PackOptions = {}): Packed {
  const parts: Record<BlockName, number[]> = { rsv: opts.rsv ?? new Array<number>(16).fill(0), struct: tree.struct, strings: tree.strings };
  const out: number[] = new Array<number>(40).fill(0);
  const offs: Record<BlockName, number> = { rsv: 0, struct: 0, strings: 0 };
  for (const name of opts.order ?? ["rsv", "struct", "strings"]) {
    out.push(...(opts.gaps?.[name] ?? []));
    const alignment = opts.align === false ? 1 : name === "rsv" ? 8 : name === "struct" ? 4 : 1;
    while (out.length % alignment !== 0) out.push(0);
    offs[name] = out.length;
    append(out, parts[name]);
  }
  out.push(...(opts.gaps?.tail ?? []));
  const fields = [0xd00dfeed, out.length, offs.struct, offs.strings, offs.rsv, 17, 16, 0, tree.strings.length, tree.struct.length];
  fields.forEach((v, i) => out.splice(4 * i, 4, ...be32(v)));
  for (const [field, v] of Object.entries(opts.header ?? {})) out.splice(Number(field), 4, ...be32(v));
  return { bytes: new Uint8Array(out), offRsv: offs.rsv, offStruct: offs.struct, offStrings: offs.strings };
}

function found(report: FdtCheckReport): [string, number][] {
  return report.problems.map((p) => [p.rule, p.offset]);
}

/** A root with one child, the usual frame for rule tests: build(t) fills the child. */
function withChild(build: (t: Tree) => void, childName = "child"): Tree {
  const t = new Tree();
  t.begin("");
  t.cells("#address-cells", 1);
  t.cells("#size-cells", 1);
  t.begin(childName);
  build(t);
  t.end();
  t.end();
  t.finish();
  return t;
}

// ---------------------------------------------------------------------------------------

describe("checkStrict on valid blobs", () => {
  it("accepts a tree using every legal construct", () => {
    const t = new Tree();
    t.nop();
    t.begin("");
    t.cells("#address-cells", 1);
    t.cells("#size-cells", 0);
    t.nop();
    t.prop("model", latin1("x,y\0"));
    t.prop("empty");
    t.prop("#weird?,chars_+.-", [1]);
    t.begin("cpu@0");
    t.cells("reg", 0);
    t.cells("phandle", 1);
    t.cells("linux,phandle", 1);
    t.prop("name", latin1("cpu\0"));
    t.end();
    t.begin("cpu@1");
    t.cells("reg", 1);
    t.cells("phandle", 2);
    t.end();
    t.begin("A,b.c_d+e-f");
    t.end();
    t.begin("x".repeat(31) + "@" + "1".repeat(40));
    t.end();
    t.end();
    t.nop();
    t.finish();
    const p = pack(t, { rsv: [...be32(0), ...be32(0x1000), ...be32(0), ...be32(0x1000), ...new Array<number>(16).fill(0)] });
    expect(found(checkStrict(p.bytes))).toEqual([]);
    expect(checkStrict(p.bytes).valid).toBe(true);
  });

  it("accepts the libfdt sequential-write layout (reserve map at 48, zero gap)", () => {
    const t = withChild(() => undefined);
    expect(found(checkStrict(pack(t, { gaps: { rsv: new Array<number>(8).fill(0) } }).bytes))).toEqual([]);
  });
});

describe("checkStrict header and layout rules", () => {
  const valid = (): Tree => withChild((t) => t.prop("a", [1, 2, 3, 4]));

  it("header.magic, header.size", () => {
    const p = pack(valid(), { header: { 0: 0x2ff20112 } });
    expect(found(checkStrict(p.bytes))).toEqual([["header.magic", 0]]);
    expect(found(checkStrict(pack(valid()).bytes.slice(0, 39)))).toEqual([["header.size", 0]]);
    expect(found(checkStrict(new Uint8Array(2)))).toEqual([["header.size", 0]]);
  });

  it("header.version, header.last-comp-version (a v16 blob is still walked)", () => {
    expect(found(checkStrict(pack(valid(), { header: { 20: 16 } }).bytes))).toEqual([["header.version", 20]]);
    expect(found(checkStrict(pack(valid(), { header: { 20: 18 } }).bytes))).toEqual([["header.version", 20]]);
    expect(found(checkStrict(pack(valid(), { header: { 24: 17 } }).bytes))).toEqual([["header.last-comp-version", 24]]);
    // A v15 blob is another format: reported, not walked.
    expect(found(checkStrict(pack(valid(), { header: { 20: 15, 24: 2 } }).bytes))).toEqual([
      ["header.version", 20],
      ["header.last-comp-version", 24],
    ]);
  });

  it("header.totalsize", () => {
    const p = pack(valid());
    expect(found(checkStrict(p.bytes.slice(0, -1)))).toEqual([["header.totalsize", 4]]);
    expect(found(checkStrict(pack(valid(), { header: { 4: 39 } }).bytes))).toEqual([["header.totalsize", 4]]);
  });

  it("layout.rsvmap-align, layout.struct-align", () => {
    const p = pack(valid(), { gaps: { rsv: [0, 0, 0, 0] }, align: false });
    expect(found(checkStrict(p.bytes))).toEqual([["layout.rsvmap-align", 16]]);
    const q = pack(valid(), { gaps: { struct: [0, 0] }, align: false });
    expect(found(checkStrict(q.bytes))).toEqual([["layout.struct-align", 8]]);
  });

  it("layout.block-bounds", () => {
    const t = valid();
    const p = pack(t, { header: { 32: t.strings.length + 1 } });
    expect(found(checkStrict(p.bytes))).toEqual([["layout.block-bounds", 12]]);
    const q = pack(t, { header: { 8: 20 } });
    expect(found(checkStrict(q.bytes))).toEqual([["layout.block-bounds", 8]]);
  });

  it("layout.block-order", () => {
    const p = pack(valid(), { order: ["rsv", "strings", "struct"] });
    expect(found(checkStrict(p.bytes))).toEqual([["layout.block-order", 16]]);
  });

  it("layout.overlap: a strings block that starts on the END token", () => {
    const t = new Tree();
    t.begin("");
    t.rawProp(0, 8, []); // "a" sits 8 bytes into the strings block: past 00 00 00 09 and "x\0" + 2
    t.end();
    t.finish();
    // The strings block is the END token's 4 bytes, then "x\0\0\0", then "a\0".
    const strings = [...be32(9), ...latin1("x"), 0, 0, 0, ...latin1("a"), 0];
    const bytes = [...new Array<number>(40).fill(0), ...new Array<number>(16).fill(0), ...t.struct, ...strings.slice(4)];
    const offStruct = 56;
    const offStrings = offStruct + t.struct.length - 4;
    [0xd00dfeed, bytes.length, offStruct, offStrings, 40, 17, 16, 0, strings.length, t.struct.length].forEach((v, i) => bytes.splice(4 * i, 4, ...be32(v)));
    expect(found(checkStrict(new Uint8Array(bytes)))).toEqual([["layout.overlap", offStrings]]);
  });

  it("layout.gap-nonzero, between blocks and in the free space", () => {
    const p = pack(valid(), { gaps: { struct: [0, 0, 7, 0], tail: [0, 0, 0, 5] } });
    expect(found(checkStrict(p.bytes))).toEqual([
      ["layout.gap-nonzero", p.offStruct - 2],
      ["layout.gap-nonzero", p.bytes.length - 1],
    ]);
  });
});

describe("checkStrict reserve map rules", () => {
  const tree = (): Tree => withChild(() => undefined);
  const entry = (aHi: number, aLo: number, sHi: number, sLo: number): number[] => [...be32(aHi), ...be32(aLo), ...be32(sHi), ...be32(sLo)];
  const terminator = entry(0, 0, 0, 0);

  it("rsvmap.zero-size: libfdt ends the map there, dtc reads on", () => {
    const p = pack(tree(), { rsv: [...entry(0, 5, 0, 0), ...terminator] });
    expect(found(checkStrict(p.bytes))).toEqual([["rsvmap.zero-size", 40]]);
  });

  it("rsvmap.overflow", () => {
    const p = pack(tree(), { rsv: [...entry(0, 0x1000, 0, 0x1000), ...entry(0xffffffff, 0xffffffff, 0, 2), ...terminator] });
    expect(found(checkStrict(p.bytes))).toEqual([["rsvmap.overflow", 56]]);
    const q = pack(tree(), { rsv: [...entry(0xffffffff, 0xfffffffe, 0, 2), ...terminator] });
    expect(found(checkStrict(q.bytes))).toEqual([]);
  });

  it("rsvmap.terminator: a reserve map at the end without (0, 0)", () => {
    const p = pack(tree(), { rsv: entry(0, 1, 0, 1), order: ["struct", "strings", "rsv"] });
    expect(found(checkStrict(p.bytes))).toEqual([
      ["rsvmap.terminator", p.offRsv],
      ["layout.block-order", 16],
    ]);
  });
});

describe("checkStrict struct rules", () => {
  it("struct.truncated: no END", () => {
    const t = new Tree();
    t.begin("");
    t.end();
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([["struct.truncated", p.offStruct + t.at]]);
  });

  it("struct.token: the walk stops at an unknown token", () => {
    const t = new Tree();
    t.begin("");
    const bad = t.word(7);
    t.begin("");
    t.end();
    t.finish();
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([["struct.token", p.offStruct + bad]]);
  });

  it("struct.name-unterminated", () => {
    const t = new Tree();
    t.begin("");
    const at = t.word(1);
    t.struct.push(...latin1("abcd"));
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([["struct.name-unterminated", p.offStruct + at]]);
  });

  it("struct.prop-truncated", () => {
    const t = new Tree();
    t.begin("");
    const at = t.rawProp(100, t.nameoff("a"), [1, 2, 3, 4]);
    t.end();
    t.finish();
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([["struct.prop-truncated", p.offStruct + at]]);
  });

  it("struct.padding after a node name and after a value", () => {
    let nameAt = 0;
    let propAt = 0;
    const t = withChild((c) => {
      propAt = c.prop("a", [1], [0, 0x55, 0]);
    });
    // The child "child\0" has 2 padding bytes; make the second non-zero.
    nameAt = t.struct.indexOf("c".charCodeAt(0));
    t.struct[nameAt + 7] = 0x66;
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([
      ["struct.padding", p.offStruct + nameAt + 7],
      ["struct.padding", p.offStruct + propAt + 12 + 1 + 1],
    ]);
  });

  it("struct.no-root, struct.root-name, struct.second-root", () => {
    const empty = new Tree();
    const end = empty.finish();
    const p = pack(empty);
    expect(found(checkStrict(p.bytes))).toEqual([["struct.no-root", p.offStruct + end]]);

    const named = new Tree();
    named.begin("root");
    named.end();
    named.finish();
    expect(found(checkStrict(pack(named).bytes))).toEqual([["struct.root-name", pack(named).offStruct + 4]]);

    const two = new Tree();
    two.begin("");
    two.end();
    const second = two.begin("");
    two.end();
    two.finish();
    expect(found(checkStrict(pack(two).bytes))).toEqual([["struct.second-root", pack(two).offStruct + second]]);
  });

  it("struct.prop-outside-node, struct.prop-after-subnode", () => {
    const t = new Tree();
    const before = t.prop("a");
    t.begin("");
    t.begin("child");
    t.end();
    const after = t.prop("b");
    t.end();
    t.finish();
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([
      ["struct.prop-outside-node", p.offStruct + before],
      ["struct.prop-after-subnode", p.offStruct + after],
    ]);
  });

  it("struct.end-node-depth, struct.end-depth", () => {
    const t = new Tree();
    t.begin("");
    t.end();
    const extra = t.end();
    t.finish();
    expect(found(checkStrict(pack(t).bytes))).toEqual([["struct.end-node-depth", pack(t).offStruct + extra]]);

    const u = new Tree();
    u.begin("");
    const end = u.finish();
    expect(found(checkStrict(pack(u).bytes))).toEqual([["struct.end-depth", pack(u).offStruct + end]]);
  });

  it("struct.after-end: a NOP after END; a NOP after the root is legal", () => {
    const t = new Tree();
    t.begin("");
    t.end();
    t.nop();
    t.finish();
    const after = t.nop();
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([["struct.after-end", p.offStruct + after]]);
  });
});

describe("checkStrict strings rules", () => {
  it("strings.nameoff", () => {
    let at = 0;
    const t = withChild((c) => {
      at = c.rawProp(0, 1000, []);
    });
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([["strings.nameoff", p.offStruct + at + 8]]);
  });

  it("strings.unterminated and strings.tail", () => {
    let at = 0;
    const t = withChild((c) => {
      at = c.rawProp(0, 0, []);
    });
    const tail = t.strings.length;
    t.strings.push(...latin1("oops"));
    const p = pack(t);
    // The property points at "oops" by patching its nameoff.
    const bytes = p.bytes;
    bytes.set(be32(tail), p.offStruct + at + 8);
    expect(found(checkStrict(bytes))).toEqual([
      ["strings.unterminated", p.offStrings + tail],
      ["strings.tail", p.offStrings + tail],
    ]);
  });
});

describe("checkStrict tree rules", () => {
  it("node.duplicate-name, prop.duplicate-name", () => {
    const t = new Tree();
    t.begin("");
    t.prop("a");
    const dupProp = t.prop("a");
    t.begin("n@1");
    t.end();
    t.begin("n@2");
    t.end();
    const dupNode = t.begin("n@1");
    t.end();
    t.end();
    t.finish();
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([
      ["prop.duplicate-name", p.offStruct + dupProp],
      ["node.duplicate-name", p.offStruct + dupNode],
    ]);
  });

  it("phandle.length, phandle.value, phandle.mismatch, phandle.duplicate", () => {
    const t = new Tree();
    t.begin("");
    t.begin("a");
    const length = t.prop("phandle", [0, 1]);
    t.end();
    t.begin("b");
    const zero = t.cells("phandle", 0);
    const minus = t.cells("linux,phandle", 0xffffffff);
    t.end();
    t.begin("c");
    t.cells("phandle", 7);
    const mismatch = t.cells("linux,phandle", 8);
    t.end();
    t.begin("d");
    const dup = t.cells("linux,phandle", 7);
    t.end();
    t.end();
    t.finish();
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([
      ["phandle.length", p.offStruct + length],
      ["phandle.value", p.offStruct + zero],
      ["phandle.value", p.offStruct + minus],
      ["phandle.mismatch", p.offStruct + mismatch],
      ["phandle.duplicate", p.offStruct + dup],
    ]);
  });

  it("cells.length, cells.range, reg.length", () => {
    const t = new Tree();
    t.begin("");
    t.begin("bus");
    t.cells("#address-cells", 2);
    t.cells("#size-cells", 2);
    t.begin("dev@1");
    const badReg = t.cells("reg", 0, 1, 0);
    t.end();
    t.begin("dev@2");
    t.cells("reg", 0, 2, 0, 0x100);
    const length = t.prop("#address-cells", [0, 0, 1]);
    const range = t.cells("#size-cells", 5);
    t.begin("leaf@3");
    t.cells("reg", 3); // not checked: the parent's cells are unusable (reported above)
    t.end();
    t.end();
    t.end();
    t.begin("dflt@4");
    const dflt = t.cells("reg", 0, 4); // root has no cells: defaults 2 + 1
    t.end();
    t.begin("empty@5");
    const empty = t.prop("reg");
    t.end();
    t.end();
    t.finish();
    const p = pack(t);
    expect(found(checkStrict(p.bytes))).toEqual([
      ["reg.length", p.offStruct + badReg],
      ["cells.length", p.offStruct + length],
      ["cells.range", p.offStruct + range],
      ["reg.length", p.offStruct + dflt],
      ["reg.length", p.offStruct + empty],
    ]);
  });

  it("prop.name-mismatch", () => {
    let good = 0;
    let bad = 0;
    const t = new Tree();
    t.begin("");
    t.begin("dev@1");
    good = t.prop("name", latin1("dev\0"));
    t.end();
    t.begin("other");
    bad = t.prop("name", latin1("dev\0"));
    t.end();
    t.end();
    t.finish();
    const p = pack(t);
    expect(good).toBeGreaterThan(0);
    expect(found(checkStrict(p.bytes))).toEqual([["prop.name-mismatch", p.offStruct + bad]]);
  });
});

describe("checkStrict name rules", () => {
  const nodeCase = (name: string): [string, number][] => {
    let at = 0;
    const t = new Tree();
    t.begin("");
    at = t.begin(name);
    t.end();
    t.end();
    t.finish();
    const p = pack(t);
    return found(checkStrict(p.bytes)).map(([rule, off]) => [rule, off - (p.offStruct + at + 4)]);
  };
  const propCase = (name: string): string[] => {
    const t = new Tree();
    t.begin("");
    const at = t.prop(name);
    t.end();
    t.finish();
    const p = pack(t);
    const report = checkStrict(p.bytes);
    for (const problem of report.problems) expect(problem.offset).toBe(p.offStruct + at);
    return report.problems.map((x) => x.rule);
  };

  it("node names: offsets relative to the name's first byte", () => {
    expect(nodeCase("a".repeat(31))).toEqual([]);
    expect(nodeCase("a".repeat(32))).toEqual([["name.node-length", 0]]);
    expect(nodeCase("")).toEqual([["name.node-empty", 0]]);
    expect(nodeCase("@1")).toEqual([["name.node-empty", 0]]);
    expect(nodeCase("__symbols__")).toEqual([["name.node-first-char", 0]]);
    expect(nodeCase("1abc")).toEqual([["name.node-first-char", 0]]);
    expect(nodeCase("ab#c")).toEqual([["name.node-chars", 2]]);
    expect(nodeCase("ab/c")).toEqual([["name.node-chars", 2]]);
    expect(nodeCase("a@")).toEqual([["name.unit-empty", 1]]);
    expect(nodeCase("a@1@2")).toEqual([["name.unit-multiple-at", 3]]);
    expect(nodeCase("a@1*")).toEqual([["name.unit-chars", 3]]);
    expect(nodeCase("_x#@")).toEqual([
      ["name.node-first-char", 0],
      ["name.node-chars", 2],
      ["name.unit-empty", 3],
    ]);
  });

  it("property names: reported at the PROP token", () => {
    expect(propCase("a".repeat(31))).toEqual([]);
    expect(propCase("#address-cells?")).toEqual([]);
    expect(propCase("a".repeat(32))).toEqual(["name.prop-length"]);
    expect(propCase("")).toEqual(["name.prop-empty"]);
    expect(propCase("a*b")).toEqual(["name.prop-chars"]);
    expect(propCase("a@b")).toEqual(["name.prop-chars"]);
  });
});

describe("checkStrict bounds", () => {
  it(`stops collecting at ${FDT_MAX_PROBLEMS} problems`, () => {
    const t = new Tree();
    t.begin("");
    for (let i = 0; i < FDT_MAX_PROBLEMS + 500; i++) t.prop("bad*name");
    t.end();
    t.finish();
    const report = checkStrict(pack(t).bytes);
    expect(report.valid).toBe(false);
    expect(report.problems.length).toBe(FDT_MAX_PROBLEMS);
  });
});

describe("checkStrict on hostile name sharing", () => {
  it("stays linear in time and output when thousands of names point into one long string", () => {
    const t = new Tree();
    t.begin("");
    const length = 100_000;
    const base = t.nameoff("a".repeat(length));
    for (let i = 0; i < 40_000; i++) t.rawProp(0, base + (i % length), []);
    t.end();
    t.finish();
    const bytes = pack(t).bytes;
    const t0 = performance.now();
    const report = checkStrict(bytes);
    const ms = performance.now() - t0;
    expect(report.problems.length).toBe(FDT_MAX_PROBLEMS);
    expect(report.problems.every((x) => x.rule === "name.prop-length")).toBe(true);
    // Messages quote a bounded head of the name, not the whole string.
    expect(Math.max(...report.problems.map((x) => x.message.length))).toBeLessThan(200);
    expect(ms).toBeLessThan(1000);
  });
});

// ---------------------------------------------------------------------------------------
// dtc as the oracle: compiled trees (offsets from `fdtdump -d`) and dtc 1.6.1's own
// character checks.

/** `fdtdump -d` offsets: each node (by name) and property (by name) in order of appearance. */
function fdtdumpOffsets(path: string): { nodes: Map<string, number>; props: Map<string, number[]> } {
  const out = execFileSync("fdtdump", ["-d", path], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n");
  const nodes = new Map<string, number>();
  const props = new Map<string, number[]>();
  for (let i = 0; i + 1 < out.length; i++) {
    const tag = /^\/\/ ([0-9a-f]+): tag: 0x0000000([13]) /.exec(out[i]!);
    if (!tag) continue;
    const offset = parseInt(tag[1]!, 16);
    if (tag[2] === "1") {
      const name = /^\s*(.*) \{$/.exec(out[i + 1]!)?.[1];
      if (name !== undefined) nodes.set(name, offset);
    } else {
      const name = /^\/\/ [0-9a-f]+: string: (.*)$/.exec(out[i + 1]!)?.[1];
      if (name !== undefined) props.set(name, [...(props.get(name) ?? []), offset]);
    }
  }
  return { nodes, props };
}

function dtcCompile(dir: string, name: string, dts: string): string {
  const src = join(dir, `${name}.dts`);
  const dtb = join(dir, `${name}.dtb`);
  writeFileSync(src, dts);
  execFileSync("dtc", ["-f", "-q", "-I", "dts", "-O", "dtb", "-o", dtb, src], { stdio: "ignore" });
  return dtb;
}

describe("checkStrict on dtc output", () => {
  const dir = mkdtempSync(join(tmpdir(), "fdt-strict-dtc-"));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts a dtc-compiled tree with labels, references, a reserve map and cells", () => {
    const dtb = dtcCompile(
      dir,
      "good",
      `/dts-v1/;
/memreserve/ 0x10000000 0x4000;
/ {
  #address-cells = <2>; #size-cells = <1>;
  model = "test,board"; compatible = "test,board", "test,soc";
  chosen { bootargs = "console=ttyS0"; };
  intc: interrupt-controller@1000 { reg = <0 0x1000 0x100>; #interrupt-cells = <1>; #address-cells = <0>; interrupt-controller; };
  soc { #address-cells = <1>; #size-cells = <1>; ranges;
    uart@2000 { reg = <0x2000 0x100>; interrupt-parent = <&intc>; interrupts = <5>; status = "okay"; };
    ref { target = <&intc>; path = &intc; };
  };
};
`,
    );
    expect(found(checkStrict(new Uint8Array(readFileSync(dtb))))).toEqual([]);
  });

  it("reports name, phandle and reg findings at the offsets fdtdump gives", () => {
    const long = "n".repeat(32);
    const dtb = dtcCompile(
      dir,
      "bad",
      `/dts-v1/;
/ {
  #address-cells = <1>; #size-cells = <1>;
  ${long} { };
  a@1@2 { };
  e@ { };
  1abc { };
  p { foo*bar = <1>; this-property-name-is-thirty-two = <1>; };
  b { phandle = <0>; };
  c { phandle = <5>; linux,phandle = <6>; };
  d { name = "x"; };
  r@1 { reg = <1 2 3>; };
};
`,
    );
    const { nodes, props } = fdtdumpOffsets(dtb);
    const node = (name: string): number => nodes.get(name)! + 4; // the name follows its tag
    const prop = (name: string, index = 0): number => props.get(name)![index]!;
    const report = checkStrict(new Uint8Array(readFileSync(dtb)));
    expect(found(report)).toEqual([
      ["name.node-length", node(long)],
      ["name.unit-multiple-at", node("a@1@2") + 3],
      ["name.unit-empty", node("e@") + 1],
      ["name.node-first-char", node("1abc")],
      ["name.prop-chars", prop("foo*bar")],
      ["name.prop-length", prop("this-property-name-is-thirty-two")],
      ["phandle.value", prop("phandle", 0)],
      ["phandle.mismatch", prop("linux,phandle")],
      ["prop.name-mismatch", prop("name")],
      ["reg.length", prop("reg")],
    ]);
  });

  it("holds node and property names to the same characters as dtc 1.6.1, except '*' in property names", () => {
    // A blob of nodes "n<c>x" and one of properties "p<c>x", for every printable c; dtc
    // -I dtb reports the bad ones on stderr (one blob per kind: dtc stops reporting after
    // the first failing check), and the strict check must flag exactly those.
    const printable: number[] = [];
    for (let c = 0x21; c < 0x7f; c++) printable.push(c);
    const dtcFlags = (bytes: Uint8Array, kind: "node" | "property"): Set<number> => {
      const dtb = join(dir, `${kind}-chars.dtb`);
      writeFileSync(dtb, bytes);
      const dtc = spawnSync("dtc", ["-I", "dtb", "-O", "dtb", "-o", "/dev/null", dtb], { encoding: "latin1" });
      const flagged = new Set<number>();
      for (const line of dtc.stderr.split("\n")) {
        const m = new RegExp(`ERROR \\(${kind}_name_chars\\): .*Bad character '(.)'`).exec(line);
        if (m) flagged.add(m[1]!.charCodeAt(0));
      }
      return flagged;
    };
    const sorted = (xs: Iterable<number>): number[] => [...xs].sort((a, b) => a - b);

    const nodes = new Tree();
    nodes.begin("");
    const nodeAt = new Map<number, number>();
    for (const c of printable.filter((x) => x !== 0x40)) {
      nodeAt.set(nodes.begin(`n${String.fromCharCode(c)}x`) + 5, c);
      nodes.end();
    }
    nodes.end();
    nodes.finish();
    const pn = pack(nodes);
    const strictNode = checkStrict(pn.bytes).problems.filter((x) => x.rule === "name.node-chars").map((x) => nodeAt.get(x.offset - pn.offStruct)!);
    const dtcNode = dtcFlags(pn.bytes, "node");
    expect(dtcNode.size).toBeGreaterThan(0); // else the stderr parse is broken
    expect(sorted(strictNode)).toEqual(sorted(dtcNode));

    const props = new Tree();
    props.begin("");
    const propAt = new Map<number, number>();
    for (const c of printable) propAt.set(props.prop(`p${String.fromCharCode(c)}x`), c);
    props.end();
    props.finish();
    const pp = pack(props);
    const strictProp = checkStrict(pp.bytes).problems.filter((x) => x.rule === "name.prop-chars").map((x) => propAt.get(x.offset - pp.offStruct)!);
    const dtcProp = dtcFlags(pp.bytes, "property");
    expect(dtcProp.size).toBeGreaterThan(0);
    expect(sorted(strictProp)).toEqual(sorted([...dtcProp, 0x2a]));
  });

  it("rejects every non-printable byte in names", () => {
    const t = new Tree();
    t.begin("");
    const odd: number[] = [];
    for (let c = 1; c < 256; c++) if (c <= 0x20 || c >= 0x7f) odd.push(c);
    for (const c of odd) t.prop(`p${String.fromCharCode(c)}`);
    for (const c of odd) {
      t.begin(`n${String.fromCharCode(c)}`);
      t.end();
    }
    t.end();
    t.finish();
    const rules = checkStrict(pack(t).bytes).problems.map((x) => x.rule);
    expect(rules.filter((r) => r === "name.prop-chars").length).toBe(odd.length);
    expect(rules.filter((r) => r === "name.node-chars").length).toBe(odd.length);
  });
});

// ---------------------------------------------------------------------------------------

describe("checkStrict on the golden corpus", () => {
  const blobs = goldenDtbs();
  const word = (b: Uint8Array, i: number): number => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
  const isLetter = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

  it("flags every blob libfdt rejects, except 1.6.1's NOP-after-root", () => {
    const corpus = blobs.map((b) => b.bytes);
    const inputs = [...corpus, ...Array.from({ length: 1500 }, (_, i) => fuzzInput(corpus, 0x57c1, i).bytes)];
    for (const [i, bytes] of inputs.entries()) {
      const libfdt = checkLibfdt(bytes);
      if (libfdt.valid || libfdt.problems[0]!.rule === "struct.nop-after-root") continue;
      expect(checkStrict(bytes).valid, `input ${i}: libfdt ${libfdt.problems[0]!.rule}`).toBe(false);
    }
  });

  it("finds only true problems in the real kernel trees, each verified here from the bytes", () => {
    const verified = new Map<string, number>();
    for (const blob of blobs.filter((b) => b.name.startsWith("linux-6.1-arm64/"))) {
      const b = blob.bytes;
      const offStrings = word(b, 12);
      for (const problem of checkStrict(b).problems) {
        const at = problem.offset;
        const where = `${blob.name} ${problem.rule} at ${at}`;
        switch (problem.rule) {
          case "struct.padding":
            expect(b[at], where).not.toBe(0);
            break;
          case "name.prop-length": {
            expect(word(b, at), where).toBe(3);
            const start = offStrings + word(b, at + 8);
            expect(b.indexOf(0, start) - start, where).toBeGreaterThan(31);
            break;
          }
          case "name.node-length": {
            expect(word(b, at - 4), where).toBe(1);
            let end = at;
            while (b[end] !== 0 && b[end] !== 0x40) end++;
            expect(end - at, where).toBeGreaterThan(31);
            break;
          }
          case "name.node-first-char":
            expect(word(b, at - 4), where).toBe(1);
            expect(isLetter(b[at]!), where).toBe(false);
            break;
          default:
            expect.fail(`${where}: unexpected finding ${problem.message}`);
        }
        verified.set(problem.rule, (verified.get(problem.rule) ?? 0) + 1);
      }
    }
    console.log(`kernel tree findings: ${[...verified].map(([k, n]) => `${k} ${n}`).join(", ")}`);
  });

  it("finds no padding or layout problem in kernel trees rewritten by dtc (zero padding, packed blocks)", () => {
    const dir = mkdtempSync(join(tmpdir(), "fdt-strict-canon-"));
    for (const blob of blobs.filter((b) => b.name.startsWith("linux-6.1-arm64/"))) {
      const out = join(dir, "canon.dtb");
      execFileSync("dtc", ["-I", "dtb", "-O", "dtb", "-o", out, blob.path], { stdio: "ignore" });
      const rules = checkStrict(new Uint8Array(readFileSync(out))).problems.map((p) => p.rule);
      expect(rules.filter((r) => !r.startsWith("name.")), blob.name).toEqual([]);
    }
    rmSync(dir, { recursive: true, force: true });
  });
});
