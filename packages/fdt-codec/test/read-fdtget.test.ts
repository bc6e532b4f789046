import { afterAll, describe, expect, it } from "vitest";
import { Fdt } from "../src/read.js";
import { goldenDtbs, libfdt161Verdicts } from "./support/golden.js";
import { Rng, runFdtget, runReaderDump, scratchDir, writeBlobs, type DumpedBlob } from "./support/reader-blob.js";

/**
 * Every property read equals fdtget.
 *
 * 1. libfdt itself (reader-dump.c: fdt_next_node, fdt_first/next_property_offset,
 *    fdt_getprop_by_offset, all in one process) walks every golden blob libfdt 1.6.1
 *    accepts, plus seeded mutants of them that it still accepts; the reader must see the
 *    same nodes (offset, depth, name) and, per node, the same properties (offset, name,
 *    value bytes), in the same order.
 * 2. The real `fdtget -t bx` binary reads a seeded sample of (path, property) pairs of
 *    every golden blob, one call per blob (fdtget takes many pairs), through the same
 *    path lookup and `getProperty` the reader offers.
 */

const scratch = scratchDir();
afterAll(() => { scratch.dispose(); });

const verdicts = libfdt161Verdicts();
const accepted = goldenDtbs().filter((b) => (verdicts.get(b.name.replace(/^dtc-tests\//, "")) ?? 0) === 0);
const hex = (v: Uint8Array): string => Buffer.from(v).toString("hex");

/**
 * The reader's view in libfdt's terms. libfdt lists a node's properties only up to its
 * first subnode (its property iteration stops at a BEGIN_NODE), so do the same here.
 */
function readerView(fdt: Fdt): DumpedBlob["nodes"] {
  const nodes: DumpedBlob["nodes"] = [];
  for (let n = 0; n < fdt.nodeCount; n++) {
    const child = fdt.firstChild(n);
    const limit = child < 0 ? Infinity : fdt.nodeOffset(child);
    const properties: DumpedBlob["nodes"][number]["properties"] = [];
    for (let p = fdt.firstProperty(n); p >= 0 && fdt.propertyOffset(p) < limit; p = fdt.nextProperty(p)) {
      properties.push({ offset: fdt.propertyOffset(p) - fdt.structStart, name: fdt.propertyName(p), value: hex(fdt.propertyValue(p)) });
    }
    nodes.push({ offset: fdt.nodeOffset(n) - fdt.structStart, depth: fdt.depth(n) + 1, name: fdt.nodeName(n), properties });
  }
  return nodes;
}

describe("every property read equals libfdt's", () => {
  it(`the ${accepted.length} golden blobs libfdt 1.6.1 accepts`, () => {
    const dumps = runReaderDump(accepted.map((b) => b.path));
    accepted.forEach((b, i) => {
      const dump = dumps[i]!;
      expect(dump.checkFull, b.name).toBe(0);
      expect(dump.error, b.name).toBeUndefined();
      const fdt = Fdt.from(b.bytes);
      expect(readerView(fdt), b.name).toEqual(dump.nodes);
      // The kernel's trees have no orphan or late properties: libfdt saw every one.
      if (b.name.startsWith("linux-6.1-arm64/")) {
        expect(dump.nodes.reduce((s, n) => s + n.properties.length, 0), b.name).toBe(fdt.propertyCount);
      }
    });
  });

  it("seeded mutants that libfdt still accepts", () => {
    const rng = new Rng(0xfd7);
    const sources = accepted.filter((b) => b.bytes.length < 8192);
    const mutants: Uint8Array[] = [];
    for (let i = 0; i < 3000; i++) {
      const b = rng.pick(sources).bytes.slice();
      for (let k = 1 + rng.int(2); k > 0; k--) {
        const at = rng.int(b.length);
        b[at] = rng.chance(0.5) ? rng.int(256) : rng.pick([0, 1, 2, 3, 4, 0x40, 0x2f]);
      }
      mutants.push(b);
    }
    const dumps = runReaderDump(writeBlobs(scratch.dir, mutants, "mutant"));
    let compared = 0;
    mutants.forEach((b, i) => {
      const dump = dumps[i]!;
      if (dump.checkFull !== 0 || dump.error !== undefined) return;
      expect(readerView(Fdt.from(b)), `mutant ${i}`).toEqual(dump.nodes);
      compared++;
    });
    expect(compared).toBeGreaterThan(500);
  });
});

describe("every property read equals fdtget", () => {
  const printable = (s: string): boolean => /^[\x21-\x7e]*$/.test(s);

  it(`${accepted.length} blobs, one sampled fdtget batch each`, () => {
    const rng = new Rng(0xf0);
    let compared = 0;
    for (const b of accepted) {
      const fdt = Fdt.from(b.bytes);
      const pairs: [string, string][] = [];
      for (let n = 0; n < fdt.nodeCount; n++) {
        const path = fdt.pathOf(n);
        // Addressable: printable, and the path leads back to this node under libfdt's rules.
        if (!printable(path) || fdt.nodeByPath(path) !== n) continue;
        for (let p = fdt.firstProperty(n); p >= 0; p = fdt.nextProperty(p)) {
          const name = fdt.propertyName(p);
          // (A property after a subnode is invisible to libfdt lookups, fdtget's included.)
          if (printable(name) && fdt.getProperty(n, name) >= 0) pairs.push([path, name]);
        }
      }
      // Up to 60 per blob (fdtget's path lookups rescan the blob each time).
      const sample = pairs.length <= 60 ? pairs : pairs.filter(() => rng.chance(60 / pairs.length));
      const got = runFdtget(b.path, sample);
      sample.forEach(([path, name], i) => {
        const value = fdt.getPropertyValue(fdt.nodeByPath(path), name);
        expect(value, `${b.name} ${path}:${name}`).toBeDefined();
        expect(hex(value!), `${b.name} ${path}:${name}`).toBe(hex(got[i]!));
      });
      compared += sample.length;
    }
    expect(compared).toBeGreaterThan(5000);
  });
});
