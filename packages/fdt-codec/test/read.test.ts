import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decodeTree } from "../src/decode-tree.js";
import { FDT_ERR, FdtError } from "../src/errors.js";
import { Fdt, readHeader } from "../src/read.js";
import { goldenDtbs, libfdt161Verdicts, type GoldenBlob } from "./support/golden.js";
import { runCheckOracleOnBlobs, type OracleVerdict } from "./support/check-oracle.js";
import {
  Rng,
  StringsWriter,
  StructWriter,
  blobOf,
  cells,
  latin1,
  rawBlob,
  runPyLibfdt,
  scratchDir,
  str,
  type PyLibfdtJob,
} from "./support/reader-blob.js";

const scratch = scratchDir();
afterAll(() => { scratch.dispose(); });

const BADSTRUCTURE = -FDT_ERR.FDT_ERR_BADSTRUCTURE;

/** The libfdt value Fdt.from gives: 0, or the negative code of the FdtError it throws. */
function readVerdict(bytes: Uint8Array): number {
  try {
    Fdt.from(bytes);
    return 0;
  } catch (e) {
    if (!(e instanceof FdtError)) throw e;
    return e.libfdtValue;
  }
}

function thrown(f: () => unknown): FdtError {
  try {
    f();
  } catch (e) {
    if (e instanceof FdtError) return e;
    throw e;
  }
  throw new Error("expected an FdtError");
}

/** Touch everything an index offers, so that a bad index would throw or misbehave. */
function exerciseAll(fdt: Fdt): void {
  for (let n = 0; n < fdt.nodeCount; n++) {
    fdt.nodeName(n);
    fdt.pathOf(n);
    for (let p = fdt.firstProperty(n); p >= 0; p = fdt.nextProperty(p)) {
      fdt.propertyName(p);
      expect(fdt.propertyValue(p).length).toBe(fdt.propertyLength(p));
    }
  }
  fdt.reserveMap();
  fdt.nodeByPhandle(1);
  for (const path of ["/", "/a/b", "serial0", "x/y"]) {
    try {
      fdt.nodeByPath(path);
    } catch (e) {
      if (!(e instanceof FdtError)) throw e;
    }
  }
}

const acceptedGolden: GoldenBlob[] = (() => {
  const verdicts = libfdt161Verdicts();
  return goldenDtbs().filter((b) => (verdicts.get(b.name.replace(/^dtc-tests\//, "")) ?? 0) === 0);
})();

/** A small tree with units, aliases, phandles and a reserve map. */
function sampleBlob(): { bytes: Uint8Array; s: StructWriter } {
  const s = new StructWriter();
  s.begin("")
    .prop("compatible", str("acme,board"))
    .prop("#address-cells", cells(1))
    .begin("cpus")
    .begin("cpu@0")
    .prop("reg", cells(0))
    .prop("phandle", cells(7))
    .end()
    .begin("cpu@1")
    .prop("reg", cells(1))
    .prop("linux,phandle", cells(9))
    .end()
    .end()
    .begin("soc")
    .begin("serial@1000")
    .prop("status", str("okay"))
    .end()
    .begin("serial")
    .end()
    .begin("serial@2000")
    .end()
    .end()
    .begin("aliases")
    .prop("serial0", str("/soc/serial@1000"))
    .prop("cpu", str("/cpus/cpu@1"))
    .prop("ser", str("serial0"))
    .prop("nonul", latin1("/soc"))
    .end()
    .end()
    .finish();
  return { bytes: blobOf(s, { reserve: [[0x1000n, 0x10n], [0xffffffff00000001n, 0x8000000000000000n]], bootCpuidPhys: 3 }), s };
}

describe("Fdt: navigation", () => {
  const { bytes } = sampleBlob();
  const fdt = Fdt.from(bytes);
  const u32 = (o: number): number => new DataView(bytes.buffer, bytes.byteOffset).getUint32(o);

  it("indexes every node and property in blob order", () => {
    expect(fdt.nodeCount).toBe(9);
    expect(fdt.propertyCount).toBe(11);
    expect(fdt.root).toBe(0);
    expect(fdt.parent(fdt.root)).toBe(-1);
    expect(fdt.nextSibling(fdt.root)).toBe(-1);
    expect(fdt.nodeName(fdt.root)).toBe("");
    expect([...fdt.children(fdt.root)].map((n) => fdt.nodeName(n))).toEqual(["cpus", "soc", "aliases"]);
    const soc = fdt.subnode(fdt.root, "soc");
    expect([...fdt.children(soc)].map((n) => fdt.pathOf(n))).toEqual(["/soc/serial@1000", "/soc/serial", "/soc/serial@2000"]);
    expect([...fdt.properties(fdt.root)].map((p) => fdt.propertyName(p))).toEqual(["compatible", "#address-cells"]);
    for (let n = 0; n < fdt.nodeCount; n++) {
      const parent = fdt.parent(n);
      expect(fdt.depth(n)).toBe(parent < 0 ? 0 : fdt.depth(parent) + 1);
      if (parent >= 0) expect([...fdt.children(parent)]).toContain(n);
    }
  });

  it("gives offsets that point at the tokens, names and values in the blob", () => {
    for (let n = 0; n < fdt.nodeCount; n++) {
      const off = fdt.nodeOffset(n);
      expect(u32(off)).toBe(1);
      const name = latin1(fdt.nodeName(n));
      expect(bytes.subarray(off + 4, off + 4 + name.length)).toEqual(name);
      expect(bytes[off + 4 + name.length]).toBe(0);
      for (let p = fdt.firstProperty(n); p >= 0; p = fdt.nextProperty(p)) {
        const po = fdt.propertyOffset(p);
        expect(u32(po)).toBe(3);
        expect(u32(po + 4)).toBe(fdt.propertyLength(p));
        expect(u32(po + 8)).toBe(fdt.propertyNameOffset(p));
        expect(fdt.propertyValueOffset(p)).toBe(po + 12);
        expect(fdt.propertyOwner(p)).toBe(n);
        const nameAt = fdt.stringsStart + fdt.propertyNameOffset(p);
        expect(bytes.subarray(nameAt, nameAt + fdt.propertyName(p).length)).toEqual(latin1(fdt.propertyName(p)));
      }
    }
  });

  it("returns values as views of the blob, not copies", () => {
    const p = fdt.getProperty(fdt.root, "compatible");
    const v = fdt.propertyValue(p);
    expect(v.buffer).toBe(bytes.buffer);
    expect(v.byteOffset).toBe(bytes.byteOffset + fdt.propertyValueOffset(p));
    expect(v).toEqual(str("acme,board"));
    expect(fdt.getPropertyValue(fdt.root, "missing")).toBeUndefined();
  });

  it("reads the header and the reserve map", () => {
    expect(fdt.header).toEqual(readHeader(bytes));
    expect(fdt.header.bootCpuidPhys).toBe(3);
    expect(fdt.reserveMap()).toEqual([
      { address: 0x1000n, size: 0x10n },
      { address: 0xffffffff00000001n, size: 0x8000000000000000n },
    ]);
  });

  it("finds nodes by phandle and by linux,phandle", () => {
    const cpu0 = fdt.nodeByPath("/cpus/cpu@0");
    const cpu1 = fdt.nodeByPath("/cpus/cpu@1");
    expect(fdt.nodeByPhandle(7)).toBe(cpu0);
    expect(fdt.nodeByPhandle(9)).toBe(cpu1);
    expect(fdt.phandle(cpu1)).toBe(9);
    expect(fdt.nodeByPhandle(8)).toBe(-1);
    expect(fdt.nodeByPhandle(0)).toBe(-1);
    expect(fdt.nodeByPhandle(0xffffffff)).toBe(-1);
  });

  it("resolves paths, units and aliases exactly as libfdt 1.6.1 does", () => {
    const file = join(scratch.dir, "sample.dtb");
    writeFileSync(file, bytes);
    const paths = [
      "/", "//", "/cpus", "/cpus/cpu", "/cpus/cpu@1", "/cpus//cpu@1/", "/soc/serial", "/soc/serial@2000",
      "/soc/serial@", "/soc/serial@3000", "/nope", "/cpus/cpu@0/x", "serial0", "cpu", "ser", "nonul",
      "serial0/", "cpu/x", "aliases", "nope/x", "/aliases", "/soc\0/serial",
    ];
    const [answer] = runPyLibfdt([{ file, paths }]);
    const mine = paths.map((p) => {
      try {
        const n = fdt.nodeByPath(p);
        return n < 0 ? -1 : fdt.nodeOffset(n) - fdt.structStart;
      } catch (e) {
        if (e instanceof FdtError) return e.libfdtValue;
        throw e;
      }
    });
    expect(mine).toEqual(answer!.paths);
    // And the cases above really cover the interesting outcomes.
    expect(answer!.paths).toContain(-1);
    expect(answer!.paths).toContain(-FDT_ERR.FDT_ERR_BADPATH);
  });

  it("rejects what libfdt calls a bad path", () => {
    expect(thrown(() => fdt.nodeByPath("")).code).toBe("FDT_ERR_BADPATH");
    expect(thrown(() => fdt.nodeByPath("nosuchalias/x")).rule).toBe("path.alias");
    expect(fdt.resolveAlias("serial0")).toBe("/soc/serial@1000");
    expect(fdt.resolveAlias("nope")).toBeUndefined();
  });

  it("bounds alias chains that libfdt would follow forever", () => {
    const s = new StructWriter();
    s.begin("").begin("aliases").prop("a", str("b")).prop("b", str("a")).end().end().finish();
    const loop = Fdt.from(blobOf(s));
    expect(thrown(() => loop.nodeByPath("a")).rule).toBe("path.alias-loop");
  });
});

describe("Fdt: paths and phandles agree with libfdt on the golden corpus", () => {
  it(`${acceptedGolden.length} blobs`, () => {
    const jobs: PyLibfdtJob[] = [];
    const fdts: Fdt[] = [];
    for (const b of acceptedGolden) {
      const fdt = Fdt.from(b.bytes);
      fdts.push(fdt);
      const paths = new Set<string>(["/", "/nonexistent", "/aliases"]);
      for (let n = 0; n < fdt.nodeCount; n++) {
        const path = fdt.pathOf(n);
        paths.add(path);
        paths.add(path.replace(/@[^/]*/g, "")); // implicit unit matching
        paths.add(`${path}/missing`);
      }
      const aliases = fdt.nodeByPath("/aliases");
      if (aliases >= 0) {
        for (const p of fdt.properties(aliases)) {
          paths.add(fdt.propertyName(p));
          paths.add(`${fdt.propertyName(p)}/x`);
        }
      }
      const phandles = new Set<number>([1, 2, 3, 0x1000, 0xfffffffe]);
      // (0 and 0xffffffff: libfdt says BADPHANDLE, the reader says "no node".)
      for (let n = 0; n < fdt.nodeCount; n++) if (fdt.phandle(n) !== 0 && fdt.phandle(n) !== 0xffffffff) phandles.add(fdt.phandle(n));
      // libfdt 1.6.1 follows an alias loop until its stack overflows: keep those away from it.
      const loops = (p: string): boolean => {
        try {
          fdt.nodeByPath(p);
          return false;
        } catch (e) {
          return e instanceof FdtError && e.rule === "path.alias-loop";
        }
      };
      // libfdt's path lookup scans the whole blob per component: sample big blobs.
      const rng = new Rng(fdts.length);
      const usable = [...paths].filter((p) => !/[^\x20-\x7e]/.test(p) && !loops(p) && (paths.size < 300 || rng.chance(300 / paths.size)));
      jobs.push({ file: b.path, paths: usable, phandles: [...phandles] });
    }
    const answers = runPyLibfdt(jobs);
    let compared = 0;
    jobs.forEach((job, i) => {
      const fdt = fdts[i]!;
      const name = acceptedGolden[i]!.name;
      const rel = (n: number): number => (n < 0 ? -1 : fdt.nodeOffset(n) - fdt.structStart);
      const mine = job.paths!.map((p) => {
        try {
          return rel(fdt.nodeByPath(p));
        } catch (e) {
          if (e instanceof FdtError) return e.libfdtValue;
          throw e;
        }
      });
      // libfdt answers "/" with offset 0 even when the root is not the first token.
      if (fdt.root >= 0 && fdt.nodeOffset(fdt.root) === fdt.structStart) {
        expect(mine, name).toEqual(answers[i]!.paths);
        compared += mine.length;
      }
      expect(job.phandles!.map((ph) => rel(fdt.nodeByPhandle(ph))), name).toEqual(answers[i]!.phandles);
    });
    expect(compared).toBeGreaterThan(10_000);
  });
});

describe("Fdt: old versions", () => {
  it("reads v16 headers (no size_dt_struct: the block runs to totalsize)", () => {
    const s = new StructWriter();
    s.begin("").prop("model", str("v16")).begin("a@1").prop("reg", cells(1, 2)).end().end().finish();
    const bytes = blobOf(s, { version: 16 });
    const fdt = Fdt.from(bytes);
    expect(fdt.header.version).toBe(16);
    expect(fdt.header.sizeDtStruct).toBe(0);
    expect(fdt.structEnd).toBe(fdt.header.totalsize);
    expect(fdt.getPropertyValue(fdt.nodeByPath("/a"), "reg")).toEqual(cells(1, 2));
  });

  it("reads full-path names and 8-aligned values of versions before 16, as libfdt", () => {
    const s = new StructWriter(new StringsWriter(), true);
    s.begin("/")
      .prop("small", cells(1))
      .prop("big", cells(1, 2, 3))
      .begin("/a@1")
      .prop("x", cells(5))
      .prop("long", str("0123456789"))
      .begin("/a@1/b")
      .prop("y", cells(6, 7))
      .end()
      .end()
      .end()
      .finish();
    const bytes = blobOf(s, { version: 3, lastCompVersion: 1 });
    const fdt = Fdt.from(bytes);
    expect(fdt.nodeName(fdt.root)).toBe("");
    expect(fdt.pathOf(fdt.nodeCount - 1)).toBe("/a@1/b");
    const file = join(scratch.dir, "v3.dtb");
    writeFileSync(file, bytes);
    const props: [string, string][] = [["/", "small"], ["/", "big"], ["/a", "x"], ["/a@1", "long"], ["/a/b", "y"]];
    const [answer] = runPyLibfdt([{ file, props, paths: props.map(([p]) => p) }]);
    expect(props.map(([path, name]) => Buffer.from(fdt.getPropertyValue(fdt.nodeByPath(path), name)!).toString("hex"))).toEqual(answer!.props);
    expect(props.map(([path]) => fdt.nodeOffset(fdt.nodeByPath(path)) - fdt.structStart)).toEqual(answer!.paths);
  });

  it("reads every golden v2..v16 blob like libfdt", () => {
    const old = acceptedGolden.filter((b) => readHeader(b.bytes).version < 17);
    expect(old.length).toBeGreaterThan(5);
    const jobs = old.map((b) => {
      const fdt = Fdt.from(b.bytes);
      const props: [string, string][] = [];
      for (let n = 0; n < fdt.nodeCount; n++) for (const p of fdt.properties(n)) props.push([fdt.pathOf(n), fdt.propertyName(p)]);
      return { file: b.path, props };
    });
    const answers = runPyLibfdt(jobs);
    jobs.forEach((job, i) => {
      const fdt = Fdt.from(old[i]!.bytes);
      const mine = job.props.map(([path, name]) => Buffer.from(fdt.getPropertyValue(fdt.nodeByPath(path), name)!).toString("hex"));
      expect(mine, old[i]!.name).toEqual(answers[i]!.props);
    });
  });
});

describe("Fdt: reserve map", () => {
  const s = new StructWriter().begin("").end().finish();
  it("stops at the first entry of size 0, whatever its address (libfdt)", () => {
    const fdt = Fdt.from(blobOf(s, { reserve: [[0x1000n, 0x10n], [0x2000n, 0n], [0x3000n, 0x20n]] }));
    expect(fdt.reserveMap()).toEqual([{ address: 0x1000n, size: 0x10n }]);
    expect(fdt.reserveMapLength).toBe(1);
  });
  it("is TRUNCATED without a terminator before totalsize", () => {
    const bytes = rawBlob({ struct: new Uint8Array(), strings: new Uint8Array(), reserve: [[1n, 1n]], noTerminator: true, order: ["struct", "strings", "rsvmap"] });
    const e = thrown(() => Fdt.from(bytes));
    expect([e.code, e.rule]).toEqual(["FDT_ERR_TRUNCATED", "rsvmap.terminator"]);
  });
});

describe("Fdt: what fdt_check_full accepts, oddities included", () => {
  it("a structure block holding only END: no root", () => {
    const fdt = Fdt.from(blobOf(new StructWriter().finish()));
    expect([fdt.root, fdt.nodeCount, fdt.propertyCount]).toEqual([-1, 0, 0]);
    expect(fdt.nodeByPath("/")).toBe(-1);
    expect(thrown(() => fdt.toTree()).rule).toBe("tree.no-root");
  });

  it("properties before the root are orphans (owner -1)", () => {
    const s = new StructWriter();
    s.nop().prop("early", cells(1)).begin("").prop("late", cells(2)).end().finish();
    const fdt = Fdt.from(blobOf(s));
    expect(fdt.firstOrphanProperty).toBe(0);
    expect(fdt.propertyOwner(0)).toBe(-1);
    expect(fdt.propertyName(fdt.firstProperty(fdt.root))).toBe("late");
    expect(fdt.propertyCount).toBe(2);
    expect(thrown(() => fdt.toTree()).rule).toBe("tree.orphan-property");
    expect(fdt.toTree({ outside: "drop" }).root.properties.map((p) => p.name)).toEqual(["late"]);
  });

  it("NOPs anywhere, properties after subnodes, empty and '/'-holding names, duplicate siblings", () => {
    const s = new StructWriter();
    s.nop().begin("").nop().begin("a").nop().end().prop("after", cells(1)).nop();
    s.begin("").end().begin("x/y").end().begin("a").end().end().finish();
    const fdt = Fdt.from(blobOf(s));
    expect([...fdt.children(fdt.root)].map((n) => fdt.nodeName(n))).toEqual(["a", "", "x/y", "a"]);
    expect(fdt.propertyName(fdt.firstProperty(fdt.root))).toBe("after");
    // libfdt's lookups stop at the first subnode.
    expect(fdt.getProperty(fdt.root, "after")).toBe(-1);
    const tree = fdt.toTree();
    expect(tree.root.properties.map((p) => p.name)).toEqual(["after"]);
    expect(tree.root.children.map((c) => c.name)).toEqual(["a", "", "x/y", "a"]);
    expect(fdt.nodeByPath("/a")).toBe(1);
  });

  it("a named root and a second top-level node (rejected by the check, not by the reader)", () => {
    const s = new StructWriter();
    s.begin("named").end().begin("second").end().finish();
    const fdt = Fdt.from(blobOf(s));
    expect(fdt.nodeName(fdt.root)).toBe("named");
    expect(fdt.pathOf(fdt.root)).toBe("/");
    expect(fdt.nodeName(fdt.nextSibling(fdt.root))).toBe("second");
    expect(thrown(() => fdt.toTree()).rule).toBe("tree.second-root");
    expect(fdt.toTree({ outside: "drop" }).root.name).toBe("named");
  });

  it("version 18 and data after END", () => {
    const s = new StructWriter().begin("").end().finish().raw([1, 2, 3, 4, 5, 6, 7, 8]);
    const fdt = Fdt.from(blobOf(s, { version: 18, lastCompVersion: 16 }));
    expect(fdt.nodeCount).toBe(1);
  });

  it("every golden blob libfdt 1.6.1 accepts", () => {
    for (const b of acceptedGolden) exerciseAll(Fdt.from(b.bytes));
  });
});

describe("Fdt: toTree / decodeTree", () => {
  it("materialises names, values (copies by default) and order", () => {
    const { bytes } = sampleBlob();
    const tree = decodeTree(bytes);
    expect(tree.bootCpuidPhys).toBe(3);
    expect(tree.reserveMap).toHaveLength(2);
    expect(tree.root.children.map((c) => c.name)).toEqual(["cpus", "soc", "aliases"]);
    const compatible = tree.root.properties[0]!;
    expect(compatible.value.buffer).not.toBe(bytes.buffer);
    const shared = decodeTree(bytes, { shareValues: true }).root.properties[0]!;
    expect(shared.value.buffer).toBe(bytes.buffer);
  });

  it("matches the index node for node on every accepted golden blob", () => {
    for (const b of acceptedGolden) {
      const fdt = Fdt.from(b.bytes);
      const tree = fdt.toTree({ outside: "drop" });
      let count = 0;
      const stack = [tree.root];
      const handles = [fdt.root];
      while (stack.length > 0) {
        const node = stack.pop()!;
        const n = handles.pop()!;
        count++;
        expect(node.name).toBe(fdt.nodeName(n));
        expect(node.properties.map((p) => p.name)).toEqual([...fdt.properties(n)].map((p) => fdt.propertyName(p)));
        const kids = [...fdt.children(n)];
        expect(node.children.length).toBe(kids.length);
        node.children.forEach((c, i) => {
          stack.push(c);
          handles.push(kids[i]!);
        });
      }
      expect(count, b.name).toBeLessThanOrEqual(fdt.nodeCount);
    }
  });

  it("handles trees deeper than the JS stack", () => {
    const s = new StructWriter().begin("");
    const depth = 20_000;
    for (let i = 0; i < depth; i++) s.begin("n");
    for (let i = 0; i <= depth; i++) s.end();
    const fdt = Fdt.from(blobOf(s.finish()));
    expect(fdt.depth(fdt.nodeCount - 1)).toBe(depth);
    let node = fdt.toTree().root;
    let d = 0;
    while (node.children.length > 0) {
      node = node.children[0]!;
      d++;
    }
    expect(d).toBe(depth);
  });
});

describe("Fdt: hostile input fails with FdtError only", () => {
  it("header rules carry libfdt's codes", () => {
    const good = blobOf(new StructWriter().begin("").end().finish());
    const patch = (off: number, v: number): Uint8Array => {
      const b = good.slice();
      new DataView(b.buffer).setUint32(off, v);
      return b;
    };
    const cases: [Uint8Array, string, string][] = [
      [good.subarray(0, 27), "FDT_ERR_TRUNCATED", "header.size"],
      [patch(0, 0x2ff20112), "FDT_ERR_BADMAGIC", "header.magic"],
      [patch(20, 1), "FDT_ERR_BADVERSION", "header.version"],
      [patch(24, 18), "FDT_ERR_BADVERSION", "header.version"],
      [patch(4, 39), "FDT_ERR_TRUNCATED", "header.totalsize"],
      [patch(4, 0x80000000), "FDT_ERR_TRUNCATED", "header.totalsize"],
      [good.subarray(0, good.length - 1), "FDT_ERR_TRUNCATED", "header.buffer"],
      [patch(16, 8), "FDT_ERR_TRUNCATED", "header.rsvmap"],
      [patch(36, 0x1000), "FDT_ERR_TRUNCATED", "header.struct"],
      [patch(32, 0xffffffff), "FDT_ERR_TRUNCATED", "header.strings"],
    ];
    for (const [bytes, code, rule] of cases) {
      const e = thrown(() => Fdt.from(bytes));
      expect([e.code, e.rule]).toEqual([code, rule]);
    }
  });

  it("structure rules: unknown tokens, names without NUL, bad nameoffs, depth", () => {
    const s = (f: (w: StructWriter) => void): Uint8Array => {
      const w = new StructWriter();
      f(w);
      return blobOf(w);
    };
    const cases: [Uint8Array, string, string][] = [
      [s((w) => w.begin("").word(5).end().finish()), "FDT_ERR_BADSTRUCTURE", "struct.token"],
      [s((w) => w.begin("").word(0xffffffff).end().finish()), "FDT_ERR_BADSTRUCTURE", "struct.token"],
      [s((w) => w.word(1).raw(latin1("noterminator"))), "FDT_ERR_BADSTRUCTURE", "struct.name-nul"],
      [s((w) => w.begin("").end().end().finish()), "FDT_ERR_BADSTRUCTURE", "struct.end-node-depth"],
      [s((w) => w.begin("").begin("a").end().finish()), "FDT_ERR_BADSTRUCTURE", "struct.end-depth"],
      [s((w) => w.begin("").end()), "FDT_ERR_TRUNCATED", "struct.truncated"],
      [s((w) => w.begin("").propAt(1000, cells(1)).end().finish()), "FDT_ERR_BADOFFSET", "prop.nameoff"],
      [s((w) => w.begin("").word(3).word(0xfffffff0).word(0)), "FDT_ERR_BADSTRUCTURE", "struct.prop-truncated"],
    ];
    const noNul = new StructWriter();
    const off = noNul.strings.raw(latin1("unterminated"));
    noNul.begin("").propAt(off, cells(1)).end().finish();
    cases.push([blobOf(noNul), "FDT_ERR_TRUNCATED", "prop.name-nul"]);
    for (const [bytes, code, rule] of cases) {
      const e = thrown(() => Fdt.from(bytes));
      expect([e.code, e.rule]).toEqual([code, rule]);
    }
  });

  it("every truncation of a blob, with its header kept consistent, agrees with fdt_check_full", () => {
    const { bytes } = sampleBlob();
    const truncated: Uint8Array[] = [];
    for (let len = 0; len < bytes.length; len++) {
      truncated.push(bytes.slice(0, len));
      if (len >= 40) {
        const b = bytes.slice(0, len);
        const view = new DataView(b.buffer);
        view.setUint32(4, len);
        const h = readHeader(bytes);
        view.setUint32(36, Math.max(0, Math.min(h.sizeDtStruct, len - h.offDtStruct)));
        view.setUint32(32, Math.max(0, Math.min(h.sizeDtStrings, len - h.offDtStrings)));
        truncated.push(b);
      }
    }
    compareWithCheckFull(truncated, runCheckOracleOnBlobs(truncated));
  });

  it("random header fields and byte mutations agree with fdt_check_full (seeded)", () => {
    const rng = new Rng(0x5eed);
    const sources = acceptedGolden.filter((b) => b.bytes.length < 4096).map((b) => b.bytes);
    expect(sources.length).toBeGreaterThan(50);
    const mutants: Uint8Array[] = [];
    for (let i = 0; i < 2500; i++) {
      const b = rng.pick(sources).slice();
      const view = new DataView(b.buffer);
      if (rng.chance(0.3)) {
        const field = 4 * (1 + rng.int(9));
        const old = view.getUint32(field);
        view.setUint32(field, rng.pick([0, 1, 3, 4, 8, 27, 28, 40, 0x7fffffff, 0x80000000, 0xffffffff, old + 1, old - 1, old + 4, old - 4, b.length, rng.int(b.length)]) >>> 0);
      } else {
        for (let k = 1 + rng.int(3); k > 0; k--) {
          const at = rng.int(b.length);
          b[at] = rng.chance(0.5) ? rng.int(256) : rng.pick([0, 1, 2, 3, 4, 9, 0xff]);
        }
      }
      mutants.push(b);
    }
    const verdicts = runCheckOracleOnBlobs(mutants);
    compareWithCheckFull(mutants, verdicts);
    // The mutations reach both outcomes often enough to mean something.
    expect(verdicts.filter((v) => v === 0).length).toBeGreaterThan(300);
    expect(verdicts.filter((v) => v !== 0).length).toBeGreaterThan(1000);
  });

  it("never allocates beyond the input: a block of a million NOPs indexes to nothing", () => {
    const s = new StructWriter();
    s.raw(new Uint8Array(4 * 250_000).map((_, i) => (i % 4 === 3 ? 4 : 0)));
    s.begin("").end().finish();
    const fdt = Fdt.from(blobOf(s));
    expect([fdt.nodeCount, fdt.propertyCount]).toEqual([1, 0]);
  });
});

/**
 * The reader accepts everything fdt_check_full accepts; where both reject, they reject
 * with the same code, except where libfdt's check objects to what the reader deliberately
 * allows (a named root, a second root, a NOP after the root: all BADSTRUCTURE).
 */
function compareWithCheckFull(blobs: readonly Uint8Array[], verdicts: readonly OracleVerdict[]): void {
  blobs.forEach((b, i) => {
    const ref = verdicts[i]!;
    const mine = readVerdict(b);
    if (ref === 0) expect(mine, `blob ${i}: libfdt accepts`).toBe(0);
    if (mine === 0) {
      expect([0, BADSTRUCTURE, "hang", "crash"], `blob ${i}: reader accepts`).toContain(ref);
      exerciseAll(Fdt.from(b));
    } else if (typeof ref === "number" && ref !== BADSTRUCTURE) {
      expect(mine, `blob ${i}`).toBe(ref);
    }
  });
}
