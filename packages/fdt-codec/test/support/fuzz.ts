/**
 * Seeded mutation fuzzing over the golden corpus: a small PRNG, mutators that know the
 * FDT layout (header fields, the struct block's 4-byte tokens, block boundaries), and the
 * registry of targets every input is fed to.
 *
 * An input is a pure function of `(seed, iteration)`, so a failure reported with its seed
 * and iteration can be regenerated exactly with {@link fuzzInput}.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkLibfdt } from "../../src/check-libfdt.js";
import { FDT_MAX_PROBLEMS, type FdtCheckReport } from "../../src/check-report.js";
import { checkStrict } from "../../src/check-strict.js";
import { FDT_ERR, FdtError } from "../../src/errors.js";
import { HEADER } from "../../src/layout.js";
import { Fdt } from "../../src/read.js";
import { decodeTree } from "../../src/decode-tree.js";
import { encodeDtc, toDtcLayout } from "../../src/encode-dtc.js";
import { encodeSequential } from "../../src/sequential-writer.js";
import { FdtEditor } from "../../src/editor.js";
import { fdtToJson, formatDts } from "../../src/format.js";

// ---------------------------------------------------------------------------------------
// Targets

/**
 * Something fed every fuzz input. `run` may return anything or throw an `FdtError`; any
 * other exception, a call slower than the budget or allocating more than the bound fails
 * the fuzz test. `verify` (optional) checks the returned value and names what is wrong.
 */
export interface FuzzTarget {
  readonly name: string;
  readonly run: (bytes: Uint8Array) => unknown;
  readonly verify?: (bytes: Uint8Array, result: unknown) => string | undefined;
}

function verifyReport(result: unknown, maxProblems: number): string | undefined {
  const report = result as FdtCheckReport;
  if (report.valid !== (report.problems.length === 0)) return "valid disagrees with the problem list";
  if (report.problems.length > maxProblems) return `${report.problems.length} problems, more than ${maxProblems}`;
  for (const p of report.problems) {
    if (!Number.isInteger(p.offset) || p.offset < 0) return `problem ${p.rule} has offset ${p.offset}`;
    if (p.rule.length === 0 || p.message.length === 0) return "problem without rule or message";
  }
  return undefined;
}

/** Every fuzz target. Add a codec entry point with one line. */
export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  { name: "checkLibfdt", run: checkLibfdt, verify: (_b, r) => verifyReport(r, 1) },
  { name: "checkStrict", run: checkStrict, verify: (_b, r) => verifyReport(r, FDT_MAX_PROBLEMS) },
  { name: "Fdt.from + walk", run: walkEverything },
  { name: "formatDts", run: (b) => formatDts(Fdt.from(b), { offsets: true }).length },
  { name: "fdtToJson", run: (b) => fdtToJson(Fdt.from(b)).nodes.length },
  { name: "toDtcLayout", run: toDtcLayout },
  { name: "FdtEditor edit + pack", run: editAndPack },
  // What libfdt accepts must decode, and re-encode (dtc and sequential layouts) into blobs libfdt accepts.
  { name: "valid => round trip", run: roundTripIfValid, verify: (_b, r) => (r === "broken" ? "a libfdt-valid blob did not round-trip to a valid blob" : undefined) },
];

/** Touch every node and property the reader indexed, and every lookup path. */
function walkEverything(bytes: Uint8Array): number {
  const fdt = Fdt.from(bytes);
  let sink = fdt.reserveMap().length;
  for (let n = 0; n < fdt.nodeCount; n++) {
    sink += fdt.nodeName(n).length + fdt.depth(n);
    for (let p = fdt.firstProperty(n); p >= 0; p = fdt.nextProperty(p)) sink += fdt.propertyName(p).length + fdt.propertyValue(p).length;
  }
  if (fdt.root >= 0) {
    const last = fdt.nodeCount - 1;
    sink += fdt.nodeByPath(fdt.pathOf(last));
    sink += fdt.nodeByPhandle(1);
  }
  return sink;
}

function editAndPack(bytes: Uint8Array): number {
  const editor = FdtEditor.openInto(bytes, bytes.length + 256);
  const node = editor.addSubnode(0, "fuzz@1");
  editor.setprop(node, "compatible", Uint8Array.of(0x61, 0));
  editor.pack();
  return editor.bytes().length;
}

function roundTripIfValid(bytes: Uint8Array): string {
  if (!checkLibfdt(bytes).valid) return "skipped";
  const tree = decodeTree(bytes);
  if (!checkLibfdt(encodeDtc(tree)).valid || !checkLibfdt(encodeSequential(tree)).valid) return "broken";
  return "ok";
}

// ---------------------------------------------------------------------------------------
// PRNG

/** A seeded PRNG (mulberry32): small, fast, good enough to drive mutations. */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform u32. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in `[0, n)`; 0 when `n <= 0`. */
  below(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 0x100000000) * n);
  }
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }
}

/** Mix a run seed and an iteration number into the seed of that iteration's PRNG. */
export function iterationSeed(seed: number, iteration: number): number {
  let h = (seed ^ Math.imul(iteration + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------
// Mutators

function rd(b: Uint8Array, i: number): number {
  return i + 4 <= b.length ? ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0 : 0;
}
function wr(b: Uint8Array, i: number, v: number): void {
  if (i < 0 || i + 4 > b.length) return;
  b[i] = v >>> 24;
  b[i + 1] = (v >>> 16) & 0xff;
  b[i + 2] = (v >>> 8) & 0xff;
  b[i + 3] = v & 0xff;
}

/** Values that sit on the edges of libfdt's checks: tokens, header sizes, signed/unsigned limits, wrap-arounds. */
const INTERESTING: readonly number[] = [
  0, 1, 2, 3, 4, 5, 7, 8, 9, 0xa, 0xf, 0x10, 0x11, 0x12, 0x1c, 0x20, 0x24, 0x28, 0x30, 0x7f, 0x80, 0xff, 0x100,
  0x7fff, 0x8000, 0xffff, 0x10000, 0x7ffffffe, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffff0, 0xfffffff4,
  0xfffffff5, 0xfffffff8, 0xfffffffc, 0xfffffffe, 0xffffffff, 0xd00dfeed, 0x2ff20112,
];

/** An interesting value, or one near a length or offset of this blob. */
function interestingFor(rng: Prng, b: Uint8Array): number {
  if (rng.chance(0.6)) return rng.pick(INTERESTING);
  const anchors = [b.length, rd(b, HEADER.totalsize), rd(b, HEADER.offDtStruct), rd(b, HEADER.offDtStrings), rd(b, HEADER.offMemRsvmap), rd(b, HEADER.sizeDtStrings), rd(b, HEADER.sizeDtStruct)];
  return (rng.pick(anchors) + rng.below(17) - 8) >>> 0;
}

/** Struct block bounds as the header claims them, clamped to the buffer. */
function structRange(b: Uint8Array): [number, number] {
  const raw = rd(b, HEADER.offDtStruct);
  const off = Math.min(raw - (raw % 4), b.length);
  const size = rd(b, HEADER.sizeDtStruct);
  return [off, Math.min(off + size, b.length)];
}

/** A 4-aligned offset inside the struct block (or anywhere when it is empty). */
function structOffset(rng: Prng, b: Uint8Array): number {
  const [lo, hi] = structRange(b);
  if (hi - lo >= 4) return lo + 4 * rng.below((hi - lo) >> 2);
  return 4 * rng.below(b.length >> 2);
}

/**
 * Replace `[at, at + removed)` with `insert` and keep the header consistent with the move:
 * totalsize, size_dt_struct and every block offset past `at` follow, so the result gets
 * past the header checks and exercises the struct walk.
 */
function spliceFixup(b: Uint8Array, at: number, removed: number, insert: Uint8Array): Uint8Array {
  at = Math.max(0, Math.min(at, b.length));
  removed = Math.max(0, Math.min(removed, b.length - at));
  const out = new Uint8Array(b.length - removed + insert.length);
  out.set(b.subarray(0, at), 0);
  out.set(insert, at);
  out.set(b.subarray(at + removed), at + insert.length);
  const delta = insert.length - removed;
  if (out.length >= 40) {
    const [lo, hi] = structRange(b);
    for (const f of [HEADER.offDtStruct, HEADER.offDtStrings, HEADER.offMemRsvmap]) {
      const v = rd(b, f);
      if (v > at) wr(out, f, (v + delta) >>> 0);
    }
    if (at >= lo && at <= hi) wr(out, HEADER.sizeDtStruct, (rd(b, HEADER.sizeDtStruct) + delta) >>> 0);
    wr(out, HEADER.totalsize, (rd(b, HEADER.totalsize) + delta) >>> 0);
  }
  return out;
}

type Mutator = (rng: Prng, b: Uint8Array) => Uint8Array;

const MUTATORS: readonly { name: string; weight: number; run: Mutator }[] = [
  {
    name: "bit-flip",
    weight: 3,
    run: (rng, b) => {
      const out = b.slice();
      const n = 1 + rng.below(4);
      for (let k = 0; k < n && out.length > 0; k++) out[rng.below(out.length)]! ^= 1 << rng.below(8);
      return out;
    },
  },
  {
    name: "byte-set",
    weight: 2,
    run: (rng, b) => {
      const out = b.slice();
      if (out.length > 0) out[rng.below(out.length)] = rng.pick([0, 0xff, 0x2f, 0x40, 0x2a, 0x20, rng.below(256)]);
      return out;
    },
  },
  {
    name: "header-field",
    weight: 4,
    run: (rng, b) => {
      const out = b.slice();
      wr(out, 4 * rng.below(10), interestingFor(rng, b));
      return out;
    },
  },
  {
    name: "struct-u32",
    weight: 5,
    run: (rng, b) => {
      const out = b.slice();
      wr(out, structOffset(rng, b), interestingFor(rng, b));
      return out;
    },
  },
  {
    name: "truncate",
    weight: 2,
    run: (rng, b) => {
      const cuts = [rng.below(b.length + 1), rng.below(64), rd(b, HEADER.offDtStrings) + rng.below(8), structRange(b)[1] - rng.below(8), b.length - 1 - rng.below(8)];
      return b.slice(0, Math.max(0, Math.min(b.length, rng.pick(cuts))));
    },
  },
  {
    name: "token-splice",
    weight: 4,
    run: (rng, b) => {
      // Copy a run of struct words to another word boundary (duplicating a node or a
      // property, or cutting one in half), or delete one.
      const [lo, hi] = structRange(b);
      const words = (hi - lo) >> 2;
      if (words < 2) return b.slice();
      const from = lo + 4 * rng.below(words);
      const len = 4 * (1 + rng.below(Math.min(words, 16)));
      const to = lo + 4 * rng.below(words);
      if (rng.chance(0.3)) return spliceFixup(b, from, Math.min(len, hi - from), new Uint8Array(0));
      return spliceFixup(b, to, 0, b.slice(from, Math.min(from + len, hi)));
    },
  },
  {
    name: "insert-token",
    weight: 2,
    run: (rng, b) => {
      const tok = new Uint8Array(4);
      wr(tok, 0, rng.pick([1, 2, 3, 4, 4, 9]));
      return spliceFixup(b, structOffset(rng, b), 0, tok);
    },
  },
  {
    name: "swap-u32",
    weight: 1,
    run: (rng, b) => {
      const out = b.slice();
      const i = structOffset(rng, b);
      const j = structOffset(rng, b);
      const v = rd(out, i);
      wr(out, i, rd(out, j));
      wr(out, j, v);
      return out;
    },
  },
  {
    name: "strings-byte",
    weight: 2,
    run: (rng, b) => {
      const out = b.slice();
      const off = rd(b, HEADER.offDtStrings);
      const size = rd(b, HEADER.sizeDtStrings);
      if (off < out.length && size > 0) {
        const i = off + rng.below(Math.min(size, out.length - off));
        out[i] = rng.pick([0, 0x2a, 0x40, 0x2f, 0x41, 0xff]);
      }
      return out;
    },
  },
  {
    name: "append",
    weight: 1,
    run: (rng, b) => {
      const extra = new Uint8Array(1 + rng.below(64));
      for (let i = 0; i < extra.length; i++) extra[i] = rng.chance(0.5) ? 0 : rng.below(256);
      const out = new Uint8Array(b.length + extra.length);
      out.set(b);
      out.set(extra, b.length);
      return out;
    },
  },
];

const TOTAL_WEIGHT = MUTATORS.reduce((s, m) => s + m.weight, 0);

function pickMutator(rng: Prng): { name: string; run: Mutator } {
  let r = rng.below(TOTAL_WEIGHT);
  for (const m of MUTATORS) {
    if (r < m.weight) return m;
    r -= m.weight;
  }
  return MUTATORS[0]!;
}

/** One fuzz input and how it was made. */
export interface FuzzInput {
  /** Index of the corpus blob it was derived from. */
  base: number;
  /** Mutators applied, in order. */
  mutations: string[];
  bytes: Uint8Array;
}

/** The input of iteration `iteration` of a run seeded with `seed`: 1-4 stacked mutations of a corpus blob. */
export function fuzzInput(corpus: readonly Uint8Array[], seed: number, iteration: number): FuzzInput {
  const rng = new Prng(iterationSeed(seed, iteration));
  const base = rng.below(corpus.length);
  let bytes = corpus[base]!;
  const mutations: string[] = [];
  const n = 1 + rng.below(4);
  for (let k = 0; k < n; k++) {
    const m = pickMutator(rng);
    bytes = m.run(rng, bytes);
    mutations.push(m.name);
  }
  return { base, mutations, bytes };
}

/** The seed from `FUZZ_SEED` (decimal or 0x-hex), or a fresh random one. */
export function fuzzSeedFromEnv(fallback?: number): number {
  const env = process.env["FUZZ_SEED"];
  if (env !== undefined && env !== "") {
    const v = Number(env);
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`FUZZ_SEED must be a u32, got ${env}`);
    return v;
  }
  return fallback ?? Math.floor(Math.random() * 0x100000000);
}

// ---------------------------------------------------------------------------------------
// The runner

/** Per-call time budget: a generous constant (GC, JIT, a loaded CI box) plus a linear term. */
export function defaultTimeBudgetMs(inputLength: number): number {
  return 250 + inputLength * 0.005;
}

/** Per-call allocation bound: 64 bytes per input byte plus 1 MiB. */
export function defaultAllocationBound(inputLength: number): number {
  return 64 * inputLength + 1024 * 1024;
}

/** Why a run stopped early. */
export interface FuzzFailure {
  target: string;
  seed: number;
  iteration: number;
  why: string;
  /** Where the failing input was saved. */
  path: string;
}

export interface FuzzRunOptions {
  corpus: readonly Uint8Array[];
  targets: readonly FuzzTarget[];
  seed: number;
  /** Stop after this long (ms) ... */
  durationMs?: number;
  /** ... or after this many inputs, whichever comes first. */
  maxIterations?: number;
  /** Where failing inputs are saved. */
  failureDir: string;
  timeBudgetMs?: (inputLength: number) => number;
  allocationBound?: (inputLength: number) => number;
  /** Called with each input before any target sees it, and around every call (for a watchdog). */
  onInput?: (bytes: Uint8Array, iteration: number) => void;
  onCallStart?: (targetIndex: number) => void;
  onCallEnd?: (targetIndex: number) => void;
}

export interface FuzzRunResult {
  iterations: number;
  calls: number;
  /** Calls that threw an FdtError (the allowed failure). */
  thrown: number;
  failure: FuzzFailure | null;
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ""}` : String(error);
}

/**
 * Feed fuzz inputs to every target until the time or iteration limit, stopping at the
 * first failure: an exception other than a well-formed FdtError, a result `verify`
 * rejects, a call over the time budget or the allocation bound. A call over a budget is
 * retried twice and fails only if every attempt is over (GC pauses and first-call JIT
 * work are not the target's doing; GC during a call only lowers the measured growth).
 */
export function runFuzz(options: FuzzRunOptions): FuzzRunResult {
  const timeBudget = options.timeBudgetMs ?? defaultTimeBudgetMs;
  const allocBound = options.allocationBound ?? defaultAllocationBound;
  const deadline = Date.now() + (options.durationMs ?? Infinity);
  const maxIterations = options.maxIterations ?? Infinity;
  let calls = 0;
  let thrown = 0;
  let iteration = 0;
  for (; iteration < maxIterations && Date.now() < deadline; iteration++) {
    const input = fuzzInput(options.corpus, options.seed, iteration);
    const bytes = input.bytes;
    options.onInput?.(bytes, iteration);
    for (const [index, target] of options.targets.entries()) {
      const fail = (why: string): FuzzRunResult => {
        const path = join(options.failureDir, `${target.name}-seed${options.seed}-iter${iteration}.dtb`);
        writeFileSync(path, bytes);
        const made = `${input.mutations.join("+")} of corpus #${input.base}, ${bytes.length} bytes`;
        return { iterations: iteration + 1, calls, thrown, failure: { target: target.name, seed: options.seed, iteration, why: `${why} (input: ${made})`, path } };
      };
      let outcome: { result: unknown } | { error: unknown } = { result: undefined };
      let elapsed = 0;
      let allocated = 0;
      for (let attempt = 0; attempt < 3; attempt++) {
        const before = process.memoryUsage();
        options.onCallStart?.(index);
        const t0 = performance.now();
        try {
          outcome = { result: target.run(bytes) };
        } catch (error) {
          outcome = { error };
        }
        elapsed = performance.now() - t0;
        options.onCallEnd?.(index);
        const after = process.memoryUsage();
        allocated = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
        calls++;
        if (elapsed <= timeBudget(bytes.length) && allocated <= allocBound(bytes.length)) break;
      }
      if ("error" in outcome) {
        const error = outcome.error;
        if (!(error instanceof FdtError)) return fail(`threw ${describeError(error)}`);
        if (!(error.code in FDT_ERR) || !Number.isInteger(error.offset) || error.offset < -1 || error.rule.length === 0) {
          return fail(`threw a malformed FdtError: ${error.message}`);
        }
        thrown++;
      } else if (target.verify) {
        const why = target.verify(bytes, outcome.result);
        if (why !== undefined) return fail(`returned a bad result: ${why}`);
      }
      if (elapsed > timeBudget(bytes.length)) return fail(`took ${elapsed.toFixed(1)} ms, budget ${timeBudget(bytes.length).toFixed(1)} ms`);
      if (allocated > allocBound(bytes.length)) return fail(`allocated ${allocated} bytes, bound ${allocBound(bytes.length)}`);
    }
  }
  return { iterations: iteration, calls, thrown, failure: null };
}
