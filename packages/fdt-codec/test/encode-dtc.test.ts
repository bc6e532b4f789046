import { afterAll, describe, expect, it } from "vitest";
import { decodeTree } from "../src/decode-tree.js";
import { encodeDtc, toDtcLayout } from "../src/encode-dtc.js";
import { FdtError } from "../src/errors.js";
import { readDtcTree } from "../src/read/dtc-blob.js";
import { Fdt } from "../src/read.js";
import type { FdtNode, FdtTree } from "../src/tree.js";
import { goldenDtbs, libfdt161Verdicts } from "./support/golden.js";
import {
  Rng,
  StringsWriter,
  StructWriter,
  cells,
  latin1,
  rawBlob,
  runDtc,
  scratchDir,
  str,
  writeBlobs,
  type DtcResult,
} from "./support/reader-blob.js";

const scratch = scratchDir();
afterAll(() => { scratch.dispose(); });

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

function attempt(f: () => Uint8Array): Uint8Array | FdtError {
  try {
    return f();
  } catch (e) {
    if (e instanceof FdtError) return e;
    throw e;
  }
}

/** toDtcLayout agrees with dtc: same bytes when dtc writes, an FdtError when it refuses. */
function expectLikeDtc(bytes: Uint8Array, dtc: DtcResult, what: string): "same" | "refused" {
  const mine = attempt(() => toDtcLayout(bytes));
  if (dtc.ok) {
    if (mine instanceof FdtError) expect.fail(`${what}: dtc writes it, toDtcLayout refuses: ${mine.message}`);
    if (!same(mine, dtc.bytes)) expect.fail(`${what}: bytes differ from dtc's`);
    return "same";
  }
  if (!(mine instanceof FdtError)) {
    expect.fail(`${what}: dtc refuses (status ${dtc.status}, signal ${dtc.signal}: ${dtc.stderr.trim().split("\n").at(-1)}), toDtcLayout writes it`);
  }
  return "refused";
}

describe("toDtcLayout equals `dtc -I dtb -O dtb` on the golden corpus", () => {
  const blobs = goldenDtbs();
  const verdicts = libfdt161Verdicts();
  const dtcRuns = runDtc(
    blobs.map((b) => b.path),
    scratch.dir,
  );

  it(`${blobs.length} blobs: same bytes where dtc writes, a refusal where it does not`, async () => {
    const results = await dtcRuns;
    let written = 0;
    let writtenLibfdtValid = 0;
    let refused = 0;
    blobs.forEach((b, i) => {
      const outcome = expectLikeDtc(b.bytes, results[i]!, b.name);
      if (outcome === "same") {
        written++;
        if ((verdicts.get(b.name.replace(/^dtc-tests\//, "")) ?? 0) === 0) writtenLibfdtValid++;
      } else refused++;
    });
    expect(writtenLibfdtValid).toBeGreaterThan(250);
    expect(refused).toBeGreaterThan(10);
    expect(written + refused).toBe(blobs.length);
  });

  it("blobs already in the dtc layout come back unchanged (the kernel's dtc-made trees)", async () => {
    const results = await dtcRuns;
    let unchanged = 0;
    let relaid = 0;
    blobs.forEach((b, i) => {
      const r = results[i]!;
      if (!b.name.startsWith("linux-6.1-arm64/") || !r.ok) return;
      // encodeDtc(decodeTree()) is the fast path the benchmark times: it must agree too.
      expect(same(encodeDtc(decodeTree(b.bytes, { shareValues: true })), r.bytes), b.name).toBe(true);
      if (same(r.bytes, b.bytes)) {
        unchanged++;
        expect(same(toDtcLayout(b.bytes), b.bytes), b.name).toBe(true);
      } else {
        relaid++;
      }
    });
    // Most kernel blobs are dtc-made; the fdtoverlay-made ones are relaid out (by dtc too).
    expect(unchanged).toBeGreaterThan(relaid);
    expect(relaid).toBeGreaterThan(0);
  });
});

// ---- random blobs against dtc -----------------------------------------------------------

const NODE_NAMES = [
  "a", "b", "cpu", "cpu@0", "cpu@1", "endpoint", "endpoint@0", "endpoint@1", "port", "port@0", "port@1",
  "ports", "spi", "spi@1", "i2c@5", "pci", "bus", "", "A-b_c.d+e,f", "name", "c@1", "d",
];
const PROP_NAMES = [
  "phandle", "linux,phandle", "name", "reg", "#address-cells", "#size-cells", "remote-endpoint", "interrupts",
  "interrupt-parent", "#interrupt-cells", "interrupt-controller", "clocks", "#clock-cells", "reset-gpios",
  "#gpio-cells", "compatible", "device_type", "status", "a*b", "dmas", "#dma-cells", "msi-parent", "#msi-cells",
  "gpio-hog", "x", "y",
];

interface RandomNode {
  name: string;
  props: { name: string; value: Uint8Array }[];
  children: RandomNode[];
}

/** A random tree, biased towards what dtc's checks look at, with the odd bad name. */
function randomTree(rng: Rng, depth: number, phandles: { next: number }): RandomNode {
  const node: RandomNode = {
    name: rng.chance(0.01) ? rng.pick(["x@1@2", "a#b"]) : rng.pick(NODE_NAMES),
    props: [],
    children: [],
  };
  for (let i = rng.int(4); i > 0; i--) {
    let name = rng.pick(PROP_NAMES);
    if (name === "name" && rng.chance(0.8)) name = "status";
    if (rng.chance(0.01)) name = rng.pick(["bad!", ""]);
    if (node.props.some((p) => p.name === name) && rng.chance(0.95)) continue;
    let value: Uint8Array;
    if ((name === "phandle" || name === "linux,phandle") && rng.chance(0.9)) {
      value = cells(rng.chance(0.7) ? phandles.next++ : 1 + rng.int(4));
    } else if (rng.chance(0.5)) {
      value = cells(...Array.from({ length: rng.pick([0, 1, 1, 1, 2, 3]) }, () => rng.pick([0, 1, 2, 3, 5, 0xffffffff, 0xfffffffe, 0x40000000])));
    } else if (rng.chance(0.6)) {
      value = latin1(rng.pick(["simple-bus", "pci", "okay", "a", "cpu", "spi", "", "endpoint"]) + (rng.chance(0.9) ? "\0" : ""));
    } else {
      value = Uint8Array.from({ length: rng.int(9) }, () => rng.int(256));
    }
    node.props.push({ name, value });
  }
  if (depth < 4) {
    for (let i = rng.int(depth === 0 ? 4 : 3); i > 0; i--) {
      const child = randomTree(rng, depth + 1, phandles);
      if (node.children.some((c) => c.name === child.name) && rng.chance(0.95)) continue;
      node.children.push(child);
    }
  }
  return node;
}

/**
 * Lay a random tree out NOT the way dtc would: names in the strings block in plain append
 * order, NOPs sprinkled around, now and then a property after the subnodes, a NOP before
 * or after the root, a named root, reserve entries of size 0, v16 headers, and v3 headers
 * with full-path names and 8-aligned values.
 */
function randomBlob(rng: Rng): Uint8Array {
  const tree = randomTree(rng, 0, { next: 1 });
  const roll = rng.next();
  const v16 = roll < 0.15;
  const v3 = !v16 && roll < 0.3;
  const strings = new StringsWriter();
  const s = new StructWriter(strings, v3);
  const emit = (n: RandomNode, parentPath: string | null): void => {
    if (rng.chance(0.05)) s.nop();
    let flat: string;
    // (Not a v3 root named "": dtc 1.6.1 reads heap garbage there; see the test below.)
    if (v3) flat = parentPath === null ? "/" : `${parentPath === "/" ? "" : parentPath}/${n.name}`;
    else flat = parentPath === null ? (rng.chance(0.1) ? "r" : "") : n.name;
    s.begin(flat);
    const late = n.props.length > 0 && rng.chance(0.2) ? 1 : 0;
    const early = n.props.slice(0, n.props.length - late);
    for (const p of early) {
      s.prop(p.name, p.value);
      if (rng.chance(0.05)) s.nop();
    }
    for (const c of n.children) emit(c, flat);
    for (const p of n.props.slice(early.length)) s.prop(p.name, p.value);
    s.end();
  };
  emit(tree, null);
  if (rng.chance(0.03)) s.nop();
  s.finish();
  const reserve: [bigint, bigint][] = [];
  for (let i = rng.int(3); i > 0; i--) reserve.push([rng.pick([0n, 0x1000n]), rng.pick([0n, 0x10n])]);
  return rawBlob({
    struct: s.bytes(),
    strings: strings.bytes(),
    version: v3 ? 3 : v16 ? 16 : 17,
    lastCompVersion: v3 ? 1 : 16,
    bootCpuidPhys: rng.pick([0, 1, 7]),
    reserve,
  });
}

describe("toDtcLayout equals dtc on random odd blobs (seeded)", () => {
  const rng = new Rng(0xd7c);
  const blobs = Array.from({ length: 600 }, () => randomBlob(rng));
  const runs = runDtc(writeBlobs(scratch.dir, blobs, "random"), scratch.dir, 3000);

  it(`${blobs.length} blobs`, async () => {
    const results = await runs;
    const outcomes = { same: 0, refused: 0 };
    const rules = new Set<string>();
    blobs.forEach((b, i) => {
      outcomes[expectLikeDtc(b, results[i]!, `random blob ${i}`)]++;
      const e = attempt(() => toDtcLayout(b));
      if (e instanceof FdtError) rules.add(e.rule.replace(/^dtc\.(crash|hang|read)\..*/, "dtc.$1"));
    });
    // Both outcomes, and refusals of every kind (reader, ERROR checks, crashes) occur.
    expect(outcomes.same).toBeGreaterThan(150);
    expect(outcomes.refused).toBeGreaterThan(150);
    for (const rule of ["dtc.read", "dtc.crash", "dtc.duplicate_node_names", "dtc.explicit_phandles", "dtc.name_properties"]) {
      expect([...rules], rule).toContain(rule);
    }
  });
});

describe("toDtcLayout equals dtc on mutated golden blobs (seeded)", () => {
  const rng = new Rng(0x3a7);
  const sources = goldenDtbs().filter((b) => b.name.startsWith("dtc-tests/") && b.bytes.length < 3000);
  const mutants = Array.from({ length: 500 }, () => {
    const b = rng.pick(sources).bytes.slice();
    for (let k = 1 + rng.int(2); k > 0; k--) {
      const at = rng.int(b.length);
      b[at] = rng.chance(0.5) ? rng.int(256) : rng.pick([0, 1, 2, 3, 4, 9, 0x40, 0x2f]);
    }
    return b;
  });
  const runs = runDtc(writeBlobs(scratch.dir, mutants, "mutant"), scratch.dir, 3000);

  it(`${mutants.length} mutants`, async () => {
    const results = await runs;
    const outcomes = { same: 0, refused: 0 };
    mutants.forEach((b, i) => outcomes[expectLikeDtc(b, results[i]!, `mutant ${i}`)]++);
    expect(outcomes.same).toBeGreaterThan(100);
    expect(outcomes.refused).toBeGreaterThan(100);
  });
});

// ---- encodeDtc ------------------------------------------------------------------------------

function node(name: string, properties: [string, Uint8Array][] = [], children: FdtNode[] = []): FdtNode {
  return { name, properties: properties.map(([n, value]) => ({ name: n, value })), children };
}

describe("encodeDtc", () => {
  it("shares a name with the EARLIEST stored string that ends with it", () => {
    const tree: FdtTree = {
      bootCpuidPhys: 0,
      reserveMap: [],
      root: node("", [["linux,phandle", cells(1)], ["phandle", cells(1)], ["handle", cells(2)], ["compatible", str("x")]], [
        node("a", [["phandle", cells(3)], ["linux,phandle", cells(3)], ["compatible", str("y")], ["le", new Uint8Array()]]),
      ]),
    };
    const fdt = Fdt.from(encodeDtc(tree));
    const nameoffs = [...fdt.properties(fdt.root), ...fdt.properties(1)].map((p) => [fdt.propertyName(p), fdt.propertyNameOffset(p)]);
    expect(nameoffs).toEqual([
      ["linux,phandle", 0],
      ["phandle", 6],
      ["handle", 7],
      ["compatible", 14],
      ["phandle", 6],
      ["linux,phandle", 0],
      ["compatible", 14],
      ["le", 11],
    ]);
    expect(fdt.stringsEnd - fdt.stringsStart).toBe("linux,phandle\0compatible\0".length);
  });

  it("writes the dtc header, reserve map and zero padding", () => {
    const tree: FdtTree = {
      bootCpuidPhys: 0xdeadbeef,
      reserveMap: [{ address: 0xffffffffffff0000n, size: 0x10000n }],
      root: node("", [["odd", latin1("abcde")]], [node("child@1")]),
    };
    const bytes = encodeDtc(tree);
    const fdt = Fdt.from(bytes);
    expect(fdt.header).toMatchObject({ version: 17, lastCompVersion: 16, offMemRsvmap: 40, offDtStruct: 72, bootCpuidPhys: 0xdeadbeef });
    expect(fdt.header.offDtStrings).toBe(fdt.header.offDtStruct + fdt.header.sizeDtStruct);
    expect(fdt.header.totalsize).toBe(bytes.length);
    expect(fdt.reserveMap()).toEqual(tree.reserveMap);
    const pad = fdt.propertyValueOffset(0) + 5;
    expect([...bytes.subarray(pad, pad + 3)]).toEqual([0, 0, 0]);
    expect(decodeTree(bytes)).toEqual(tree);
  });

  it("is a fixed point of dtc on random valid trees", async () => {
    const rng = new Rng(0xe1c);
    const names = ["a", "b", "c@1", "c@2", "x,y", "z.q", "_u", "", "k+1"];
    const props = ["compatible", "reg", "status", "linux,phandle", "a", "b,c", "#d", "e?", "f*", "", "handle", "dle"];
    const make = (depth: number, used: { ph: number }): FdtNode => {
      const n = node(depth === 0 ? "" : rng.pick(names));
      for (const name of new Set(Array.from({ length: rng.int(5) }, () => rng.pick(props)))) {
        const value = name === "linux,phandle" ? cells(used.ph++) : Uint8Array.from({ length: rng.int(11) }, () => rng.int(256));
        n.properties.push({ name, value });
      }
      const childNames = new Set(Array.from({ length: depth < 3 ? rng.int(4) : 0 }, () => rng.pick(names)));
      for (const c of childNames) {
        const child = make(depth + 1, used);
        child.name = c;
        n.children.push(child);
      }
      return n;
    };
    const trees: FdtTree[] = Array.from({ length: 150 }, () => ({
      bootCpuidPhys: rng.int(4),
      reserveMap: Array.from({ length: rng.int(3) }, () => ({ address: BigInt(rng.int(1 << 30)) << 12n, size: BigInt(1 + rng.int(1 << 20)) })),
      root: make(0, { ph: 1 }),
    }));
    const encoded = trees.map(encodeDtc);
    const results = await runDtc(writeBlobs(scratch.dir, encoded, "fixpoint"), scratch.dir);
    encoded.forEach((b, i) => {
      const r = results[i]!;
      expect(r.ok, `tree ${i}: ${r.ok ? "" : r.stderr}`).toBe(true);
      if (r.ok) expect(same(r.bytes, b), `tree ${i}`).toBe(true);
      expect(decodeTree(b), `tree ${i}`).toEqual(trees[i]);
    });
  });

  it("refuses what it cannot write with FdtError", () => {
    const base = (root: FdtNode, extra: Partial<FdtTree> = {}): FdtTree => ({ bootCpuidPhys: 0, reserveMap: [], root, ...extra });
    const loop = node("");
    loop.children.push(node("a", [], [loop]));
    const cases: [FdtTree, string][] = [
      [base(node("\u0100")), "tree.node-name"],
      [base(node("a\0b")), "tree.node-name"],
      [base(node("", [["p\u2603", new Uint8Array()]])), "tree.property-name"],
      [base(loop), "tree.cycle"],
      [base(node(""), { bootCpuidPhys: -1 }), "tree.boot-cpuid"],
      [base(node(""), { bootCpuidPhys: 2 ** 32 }), "tree.boot-cpuid"],
      [base(node(""), { reserveMap: [{ address: 1n << 64n, size: 1n }] }), "tree.reserve-entry"],
      [base(node(""), { reserveMap: [{ address: 0n, size: -1n }] }), "tree.reserve-entry"],
    ];
    for (const [tree, rule] of cases) {
      const e = attempt(() => encodeDtc(tree));
      expect(e instanceof FdtError ? [e.code, e.rule] : e, rule).toEqual(["FDT_ERR_BADVALUE", rule]);
    }
  });

  it("writes a node object that appears twice (not a cycle) twice", () => {
    const shared = node("s", [["v", cells(1)]]);
    const bytes = encodeDtc({ bootCpuidPhys: 0, reserveMap: [], root: node("", [], [node("a", [], [shared]), node("b", [], [shared])]) });
    const fdt = Fdt.from(bytes);
    expect(fdt.nodeByPath("/a/s")).toBeGreaterThan(0);
    expect(fdt.nodeByPath("/b/s")).toBeGreaterThan(0);
  });

  it("handles trees deeper than the JS stack, both ways", () => {
    let deepest = node("leaf", [["v", cells(7)]]);
    const root = deepest;
    for (let i = 0; i < 20_000; i++) deepest = node("n", [], [deepest]);
    deepest.name = "";
    const bytes = encodeDtc({ bootCpuidPhys: 0, reserveMap: [], root: deepest });
    expect(Fdt.from(bytes).nodeCount).toBe(20_001);
    expect(same(toDtcLayout(bytes), bytes)).toBe(true);
    expect(root.properties[0]!.value).toEqual(cells(7));
  });
});

describe("readDtcTree models dtc's reading", () => {
  it("drops a correct \"name\" property and keeps late properties (written before subnodes)", () => {
    const s = new StructWriter();
    s.begin("").prop("name", str("")).begin("dev@1").prop("name", str("dev")).prop("x", cells(1)).end().prop("late", cells(2)).end().finish();
    const tree = readDtcTree(rawBlob({ struct: s.bytes(), strings: s.strings.bytes() }));
    expect(tree.root.properties.map((p) => p.name)).toEqual(["late"]);
    expect(tree.root.children[0]!.properties.map((p) => p.name)).toEqual(["x"]);
  });

  it("refuses old-version paths that make dtc 1.6.1 read heap garbage", () => {
    const old = (s: StructWriter): Uint8Array => rawBlob({ struct: s.finish().bytes(), strings: new Uint8Array(), version: 3, lastCompVersion: 1 });
    const rootless = old(new StructWriter().begin("").begin("/a").end().end());
    const repeated = old(new StructWriter().begin("/").begin("/a").begin("/a").end().end().end());
    const fine = old(new StructWriter().begin("/").begin("/").end().begin("/a").begin("/a/b").end().end().end());
    for (const bytes of [rootless, repeated]) {
      const e = attempt(() => toDtcLayout(bytes));
      expect(e instanceof FdtError ? e.rule : "written").toBe("dtc.read.path-undefined");
    }
    // "/" under "/" is defined (dtc does not add a '/' after the root's path): a child named "".
    expect(readDtcTree(fine).root.children.map((c) => c.name)).toEqual(["", "a"]);
  });

  it("stops the reserve map at the first entry of size 0 (dtc 1.6.1, like libfdt)", () => {
    const s = new StructWriter().begin("").end().finish();
    const tree = readDtcTree(rawBlob({ struct: s.bytes(), strings: new Uint8Array(), reserve: [[0x1000n, 0x10n], [0x2000n, 0n], [0x3000n, 0x10n]] }));
    expect(tree.reserveMap).toEqual([{ address: 0x1000n, size: 0x10n }]);
  });
});
