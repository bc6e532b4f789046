/**
 * checkLibfdt against Debian's libfdt 1.6.1 `fdt_check_full`: the recorded verdicts of the
 * golden corpus, and the live C oracle (compiled at test time) on the corpus, on hand-made
 * edge cases and on a few thousand seeded mutations.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkLibfdt } from "../src/check-libfdt.js";
import { libfdtReturnValue, type FdtCheckReport } from "../src/check-report.js";
import { FDT_ERR, fdtErrorCodeName } from "../src/errors.js";
import { runCheckOracle, runCheckOracleOnBlobs, type OracleVerdict } from "./support/check-oracle.js";
import { fuzzInput, fuzzSeedFromEnv } from "./support/fuzz.js";
import { goldenDtbs, libfdt161Verdicts } from "./support/golden.js";

/** The rules that stand for "1.6.1 hangs" and "1.6.1 crashes": used for those cases and no other. */
const HANG_RULE = "struct.prop-length-wraps";
const CRASH_RULE = "struct.root-path";

/** Why `report` does not match what the oracle did, or undefined when it does. */
function mismatch(report: FdtCheckReport, verdict: OracleVerdict): string | undefined {
  const rule = report.problems[0]?.rule;
  const got = `${libfdtReturnValue(report)} (${rule ?? "valid"})`;
  if (verdict === "hang") return rule === HANG_RULE ? undefined : `oracle hangs, checkLibfdt says ${got}`;
  if (verdict === "crash") return rule === CRASH_RULE ? undefined : `oracle crashes, checkLibfdt says ${got}`;
  if (rule === HANG_RULE || rule === CRASH_RULE) return `oracle returns ${verdict}, checkLibfdt says ${got}`;
  return libfdtReturnValue(report) === verdict ? undefined : `oracle returns ${verdict} (${fdtErrorCodeName(verdict) ?? "ok"}), checkLibfdt says ${got}`;
}

// --- a small blob builder for hand-made cases -------------------------------------------

function be32(...values: number[]): number[] {
  return values.flatMap((v) => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}
function latin1(s: string): number[] {
  return Array.from({ length: s.length }, (_, i) => s.charCodeAt(i));
}
function nodeName(name: string): number[] {
  const bytes = latin1(name);
  bytes.push(0);
  while (bytes.length % 4 !== 0) bytes.push(0);
  return bytes;
}
interface BlobSpec {
  struct: number[];
  strings?: string;
  version?: number;
  lastComp?: number;
  magic?: number;
}
/** Header at 0, reserve map (one terminator) at 40, struct, strings: the dtc layout. */
function blob(spec: BlobSpec): Uint8Array {
  const strings = latin1(spec.strings ?? "");
  const offRsv = 40;
  const offStruct = offRsv + 16;
  const offStrings = offStruct + spec.struct.length;
  const total = offStrings + strings.length;
  const header = be32(spec.magic ?? 0xd00dfeed, total, offStruct, offStrings, offRsv, spec.version ?? 17, spec.lastComp ?? 16, 0, strings.length, spec.struct.length);
  return new Uint8Array([...header, ...new Array<number>(16).fill(0), ...spec.struct, ...strings]);
}
const ROOT = [...be32(1), ...nodeName("")];
const OLD_ROOT = [...be32(1), ...nodeName("/")];

describe("checkLibfdt on the golden corpus", () => {
  const blobs = goldenDtbs();
  const recorded = libfdt161Verdicts();
  const live = runCheckOracle(blobs.map((b) => b.path));

  it("the live oracle is libfdt 1.6.1: it agrees with every recorded verdict", () => {
    let compared = 0;
    blobs.forEach((b, i) => {
      const want = recorded.get(b.name.replace(/^dtc-tests\//, ""));
      if (!b.name.startsWith("dtc-tests/") || want === undefined) return;
      expect(live[i], b.name).toBe(want);
      compared++;
    });
    expect(compared).toBe(recorded.size);
  });

  it("gives the recorded 1.6.1 verdict and code on every dtc-tests blob", () => {
    for (const b of blobs.filter((x) => x.name.startsWith("dtc-tests/"))) {
      const want = recorded.get(b.name.slice("dtc-tests/".length));
      expect(want, b.name).toBeDefined();
      expect(libfdtReturnValue(checkLibfdt(b.bytes)), b.name).toBe(want);
    }
  });

  it("matches the live oracle on every golden blob", () => {
    blobs.forEach((b, i) => {
      expect(mismatch(checkLibfdt(b.bytes), live[i]!), b.name).toBeUndefined();
    });
    // The corpus covers both verdicts.
    expect(live.filter((v) => v === 0).length).toBeGreaterThan(0);
    expect(live.filter((v) => typeof v === "number" && v < 0).length).toBeGreaterThan(0);
  });

  it("names the rule and the offset of the NOP-after-root rejection", () => {
    const noppy = blobs.find((b) => b.name === "dtc-tests/noppy.test_tree1.dtb");
    expect(noppy).toBeDefined();
    const bytes = noppy!.bytes;
    const report = checkLibfdt(bytes);
    const problem = report.problems[0]!;
    expect(problem.rule).toBe("struct.nop-after-root");
    // The offset is a NOP token right after an END_NODE that closed the root.
    const at = problem.offset;
    const word = (i: number): number => ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    expect(word(at)).toBe(4);
    expect(word(at - 4)).toBe(2);
  });
});

describe("checkLibfdt on hand-made edge cases", () => {
  const cases: { name: string; bytes: Uint8Array; rule: string | null }[] = [
    { name: "minimal tree", bytes: blob({ struct: [...ROOT, ...be32(2, 9)] }), rule: null },
    { name: "struct holding only END", bytes: blob({ struct: be32(9) }), rule: null },
    { name: "property before the root", bytes: blob({ struct: [...be32(3, 0, 0), ...ROOT, ...be32(2, 9)], strings: "a\0" }), rule: null },
    { name: "version 18", bytes: blob({ struct: [...ROOT, ...be32(2, 9)], version: 18 }), rule: null },
    { name: "NOP after the root", bytes: blob({ struct: [...ROOT, ...be32(2, 4, 9)] }), rule: "struct.nop-after-root" },
    { name: "second root", bytes: blob({ struct: [...ROOT, ...be32(2), ...ROOT, ...be32(2, 9)] }), rule: "struct.after-root" },
    { name: "named root", bytes: blob({ struct: [...be32(1), ...nodeName("x"), ...be32(2, 9)] }), rule: "struct.root-name" },
    { name: "END_NODE at depth 0", bytes: blob({ struct: be32(2, 9) }), rule: "struct.end-node-depth" },
    { name: "END inside a node", bytes: blob({ struct: [...ROOT, ...be32(9)] }), rule: "struct.end-depth" },
    { name: "unknown token", bytes: blob({ struct: [...ROOT, ...be32(7, 2, 9)] }), rule: "struct.token" },
    { name: "no END", bytes: blob({ struct: [...ROOT, ...be32(2)] }), rule: "struct.truncated" },
    { name: "nameoff past the strings", bytes: blob({ struct: [...ROOT, ...be32(3, 0, 2), ...be32(2, 9)], strings: "a\0" }), rule: "strings.nameoff" },
    { name: "name without NUL", bytes: blob({ struct: [...ROOT, ...be32(3, 0, 0), ...be32(2, 9)], strings: "ab" }), rule: "strings.unterminated" },
    { name: "length wrapping onto its tag", bytes: blob({ struct: [...ROOT, ...be32(3, 0xfffffff4, 0), ...be32(2, 9)], strings: "a\0" }), rule: HANG_RULE },
    { name: "length wrapping 4 bytes on", bytes: blob({ struct: [...ROOT, ...be32(3, 0xfffffff8, 0), ...be32(2, 9)], strings: "a\0" }), rule: "struct.token" },
    // Length 0xfffffffc wraps the span to 8: the next tag is the nameoff field, here 4 = NOP,
    // and the walk goes on from there. 1.6.1 calls this tree valid.
    { name: "length wrapping onto a NOP", bytes: blob({ struct: [...ROOT, ...be32(3, 0xfffffffc, 4), ...be32(2, 9)], strings: "abc\0\0" }), rule: null },
    { name: "v15 root path", bytes: blob({ struct: [...OLD_ROOT, ...be32(2, 9)], version: 15, lastComp: 2 }), rule: null },
    { name: "v15 root without '/'", bytes: blob({ struct: [...be32(1), ...nodeName("abc"), ...be32(2, 9)], version: 15, lastComp: 2 }), rule: CRASH_RULE },
    { name: "v15 root '/x'", bytes: blob({ struct: [...be32(1), ...nodeName("/x"), ...be32(2, 9)], version: 15, lastComp: 2 }), rule: "struct.root-name" },
    { name: "v15 realigned 8-byte value", bytes: blob({ struct: [...OLD_ROOT, ...be32(3, 8, 0, 0, 1, 2), ...be32(2, 9)], strings: "a\0", version: 15, lastComp: 2 }), rule: null },
    { name: "v15 wrap with realignment", bytes: blob({ struct: [...OLD_ROOT, ...be32(3, 0xfffffff0, 0), ...be32(2, 9)], strings: "a\0", version: 15, lastComp: 2 }), rule: HANG_RULE },
    { name: "version 1", bytes: blob({ struct: [...ROOT, ...be32(2, 9)], version: 1, lastComp: 1 }), rule: "header.version" },
    { name: "last_comp 18", bytes: blob({ struct: [...ROOT, ...be32(2, 9)], version: 18, lastComp: 18 }), rule: "header.last-comp-version" },
    { name: "version below last_comp", bytes: blob({ struct: [...ROOT, ...be32(2, 9)], version: 16, lastComp: 17 }), rule: "header.version-order" },
    { name: "sequential-write magic", bytes: blob({ struct: [...ROOT, ...be32(2, 9)], magic: 0x2ff20112 }), rule: "header.magic" },
    { name: "27 bytes", bytes: blob({ struct: [...ROOT, ...be32(2, 9)] }).slice(0, 27), rule: "header.size" },
    { name: "30 bytes of a v2 header", bytes: blob({ struct: [...OLD_ROOT, ...be32(2, 9)], version: 2, lastComp: 2 }).slice(0, 30), rule: "header.size" },
    { name: "34 bytes of a v2 header", bytes: blob({ struct: [...OLD_ROOT, ...be32(2, 9)], version: 2, lastComp: 2 }).slice(0, 34), rule: "header.totalsize-buffer" },
    { name: "one byte short", bytes: blob({ struct: [...ROOT, ...be32(2, 9)] }).slice(0, -1), rule: "header.totalsize-buffer" },
  ];
  // Variants made by patching header fields of the minimal tree.
  const patched = (field: number, value: number): Uint8Array => {
    const b = blob({ struct: [...ROOT, ...be32(2, 9)] });
    new DataView(b.buffer).setUint32(field, value);
    return b;
  };
  cases.push(
    { name: "unaligned off_mem_rsvmap (no check before 1.8.0)", bytes: patched(16, 41), rule: null },
    { name: "totalsize below the header", bytes: patched(4, 39), rule: "header.totalsize" },
    { name: "totalsize above INT_MAX", bytes: patched(4, 0x80000000), rule: "header.totalsize" },
    { name: "rsvmap past totalsize", bytes: patched(16, 0x1000), rule: "header.rsvmap-bounds" },
    { name: "struct block past totalsize", bytes: patched(36, 0x1000), rule: "header.struct-bounds" },
    { name: "struct size wrapping", bytes: patched(36, 0xfffffff0), rule: "header.struct-bounds" },
    { name: "strings block past totalsize", bytes: patched(32, 0x1000), rule: "header.strings-bounds" },
    { name: "reserve map without terminator", bytes: patched(16, 64), rule: "rsvmap.terminator" },
  );

  const verdicts = runCheckOracleOnBlobs(cases.map((c) => c.bytes));

  for (const [i, c] of cases.entries()) {
    it(`${c.name}: ${c.rule ?? "valid"}, as the oracle says`, () => {
      const report = checkLibfdt(c.bytes);
      expect(report.problems[0]?.rule ?? null).toBe(c.rule);
      expect(report.valid).toBe(c.rule === null);
      expect(mismatch(report, verdicts[i]!)).toBeUndefined();
    });
  }

  it("reads the realigned v15 value where libfdt does: a value placed without the gap fails", () => {
    const unaligned = blob({ struct: [...OLD_ROOT, ...be32(3, 8, 0, 1, 2), ...be32(2, 9)], strings: "a\0", version: 15, lastComp: 2 });
    const [verdict] = runCheckOracleOnBlobs([unaligned]);
    expect(verdict).toBe(-FDT_ERR.FDT_ERR_BADSTRUCTURE);
    expect(mismatch(checkLibfdt(unaligned), verdict!)).toBeUndefined();
  });
});

describe("checkLibfdt on hostile name sharing", () => {
  /** A root with `count` properties whose names start at successive offsets of one long string. */
  const sharedNames = (length: number, count: number, tail = ""): { bytes: Uint8Array; tailProp: number } => {
    const struct = [...ROOT];
    for (let i = 0; i < count; i++) struct.push(...be32(3, 0, i % length));
    const tailProp = struct.length;
    if (tail !== "") struct.push(...be32(3, 0, length + 1));
    struct.push(...be32(2, 9));
    return { bytes: blob({ struct, strings: `${"a".repeat(length)}\0${tail}` }), tailProp };
  };

  it("stays linear when thousands of names point into one long string", () => {
    const { bytes } = sharedNames(100_000, 40_000);
    const t0 = performance.now();
    const report = checkLibfdt(bytes);
    const ms = performance.now() - t0;
    expect(report.valid).toBe(true);
    // A hang guard, not a speed test (speed is `pnpm bench`): rescanning every name would walk
    // ~4e9 bytes (seconds); the next-NUL table keeps it to a few ms.
    expect(ms).toBeLessThan(1000);
  });

  it("gives the oracle's verdicts once the scan budget has switched to the table", () => {
    const valid = sharedNames(20_000, 10_000);
    const unterminated = sharedNames(20_000, 10_000, "bbbb");
    const verdicts = runCheckOracleOnBlobs([valid.bytes, unterminated.bytes]);
    expect(verdicts).toEqual([0, -FDT_ERR.FDT_ERR_TRUNCATED]);
    expect(mismatch(checkLibfdt(valid.bytes), verdicts[0]!)).toBeUndefined();
    const report = checkLibfdt(unterminated.bytes);
    expect(mismatch(report, verdicts[1]!)).toBeUndefined();
    expect(report.problems[0]!.rule).toBe("strings.unterminated");
  });
});

describe("checkLibfdt differential fuzz against the oracle", () => {
  it("gives the oracle's verdict and code on thousands of seeded mutations", () => {
    const seed = fuzzSeedFromEnv(0x1b6f0c4d);
    const count = Number(process.env["FUZZ_DIFF_COUNT"] ?? 3000);
    console.log(`checkLibfdt differential fuzz: seed ${seed}, ${count} inputs`);
    const corpus = goldenDtbs().map((b) => b.bytes);
    const dir = mkdtempSync(join(tmpdir(), "fdt-check-diff-"));
    const inputs = Array.from({ length: count }, (_, i) => fuzzInput(corpus, seed, i));
    const paths = inputs.map((input, i) => {
      const path = join(dir, `${i}.dtb`);
      writeFileSync(path, input.bytes);
      return path;
    });
    const verdicts = runCheckOracle(paths);
    const failures: string[] = [];
    const seen = new Map<string, number>();
    inputs.forEach((input, i) => {
      const verdict = verdicts[i]!;
      const key = typeof verdict === "number" ? (fdtErrorCodeName(verdict) ?? "valid") : verdict;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      const why = mismatch(checkLibfdt(input.bytes), verdict);
      if (why !== undefined) failures.push(`iteration ${i} (${input.mutations.join("+")} of corpus #${input.base}, file ${paths[i]!}): ${why}`);
    });
    console.log(`oracle verdicts: ${[...seen].map(([k, n]) => `${k} ${n}`).join(", ")}`);
    expect(failures.slice(0, 10), `seed ${seed}: ${failures.length} mismatches (inputs kept in ${dir})`).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
    // The mutators reach every stage of the check, not just the header.
    for (const code of ["valid", "FDT_ERR_TRUNCATED", "FDT_ERR_BADMAGIC", "FDT_ERR_BADVERSION", "FDT_ERR_BADSTRUCTURE", "FDT_ERR_BADOFFSET"]) {
      expect(seen.get(code) ?? 0, code).toBeGreaterThan(0);
    }
  });
});

