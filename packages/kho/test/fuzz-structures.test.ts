/**
 * Seeded mutation fuzzing of the preserved-structure readers (`kho_vmalloc` restore, KHO
 * block-chain restore): valid structures are built and handed over by a fake kexec, then
 * corrupted the way a hostile or broken previous kernel could (bit flips, pointers to
 * interesting places, counts and totals off by a little or a lot, entries swapped or
 * duplicated). Every restore must either succeed consistently or throw a FormatError /
 * KernelError, quickly, and a failed one must leave every stamp in place.
 *
 * FUZZ_SECONDS (default 5) is the time per reader; FUZZ_SEED picks the seed. A failure
 * names the seed and iteration.
 */
import { describe, expect, it } from "vitest";
import { PAGE_SIZE } from "../src/abi.js";
import { FormatError, KernelError } from "../src/errors.js";
import { KhoBlockSet, writeKhoBlocks } from "../src/block.js";
import { allocVmallocArea, decodeKhoVmalloc, encodeKhoVmalloc, preserveVmalloc, restoreVmalloc, type KhoVmalloc } from "../src/vmalloc.js";
import { FakeKho, type FakeRestorer } from "./support/fake-kho.js";

const SECONDS = Number(process.env["FUZZ_SECONDS"] ?? 5);
const SEED = Number(process.env["FUZZ_SEED"] ?? 0x6b686f);
/** One restore of these small structures takes well under a millisecond; allow for GC pauses. */
const CALL_BUDGET_MS = 250;

/** mulberry32: a small seeded PRNG. */
class Prng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  u32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  below(n: number): number {
    return this.u32() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

/** A u64 worth writing into a pointer or count field. */
function interesting(rng: Prng, pages: readonly number[], memory: { start: number; end: number }): bigint {
  const page = (): number => rng.pick(pages);
  switch (rng.below(12)) {
    case 0:
      return 0n;
    case 1:
      return BigInt(page());
    case 2:
      return BigInt(page() + 8 * (1 + rng.below(8)));
    case 3:
      return BigInt(memory.start + rng.below((memory.end - memory.start) / PAGE_SIZE) * PAGE_SIZE);
    case 4:
      return BigInt(memory.end - PAGE_SIZE * rng.below(4));
    case 5:
      return 0x6b6b_6b6b_6b6b_6b6bn; // poison
    case 6:
      return 2n ** 52n - BigInt(PAGE_SIZE * rng.below(2));
    case 7:
      return BigInt(rng.u32()) | (BigInt(rng.u32()) << 32n);
    case 8:
      return BigInt(rng.below(600));
    case 9:
      return BigInt(rng.below(0x2000) * PAGE_SIZE);
    case 10:
      return 0xffff_ffff_ffff_ffffn;
    default:
      return BigInt(rng.u32());
  }
}

function isTyped(err: unknown): boolean {
  return err instanceof FormatError || err instanceof KernelError;
}

/** Run `iteration` until the time budget is spent; returns the iterations run. */
function fuzzFor(seconds: number, iteration: (rng: Prng, i: number) => void): number {
  const end = performance.now() + seconds * 1000;
  let i = 0;
  for (; performance.now() < end; i++) iteration(new Prng(SEED ^ Math.imul(i + 1, 0x9e3779b1)), i);
  return i;
}

function timed<T>(fn: () => T, where: string): { value?: T; error?: unknown } {
  const t0 = performance.now();
  let outcome: { value?: T; error?: unknown };
  try {
    outcome = { value: fn() };
  } catch (error) {
    if (!isTyped(error)) throw new Error(`${where}: untyped ${String(error)}`, { cause: error });
    outcome = { error };
  }
  const ms = performance.now() - t0;
  if (ms > CALL_BUDGET_MS) throw new Error(`${where}: took ${ms.toFixed(0)} ms`);
  return outcome;
}

describe("fuzzing the preserved-structure readers", () => {
  it(`kho_vmalloc restore: typed errors only, bounded, atomic (seed ${SEED}, ${SECONDS}s)`, () => {
    let failures = 0;
    let successes = 0;
    const rules = new Set<string>();
    const n = fuzzFor(SECONDS, (rng, i) => {
      const where = `seed ${SEED} iteration ${i}`;
      const kho = new FakeKho({ ranges: [{ start: 16 << 20, size: 32 << 20 }] });
      const order = rng.below(3);
      const runCount = 1 + (rng.below(4) === 0 ? rng.below(1100) : rng.below(20));
      const area = allocVmallocArea(kho, new Uint8Array(0), order);
      const runs = [...Array.from(area.runs), ...Array.from({ length: runCount - 1 }, () => kho.allocFolio(order))];
      const good = preserveVmalloc(kho, { runs, order, flags: 1 + rng.below(3) });
      const next: FakeRestorer = kho.kexec();
      const d = decodeKhoVmalloc(good);
      const chunks: number[] = [];
      for (let c = d.first; c !== 0 && chunks.length < 8; c = next.memory.readU64Number(c)!) chunks.push(c);
      const pages = [...chunks, ...runs];
      const memory = { start: 16 << 20, end: 48 << 20 };

      let descriptor: KhoVmalloc = d;
      for (let m = 1 + rng.below(3); m > 0; m--) {
        const kind = rng.below(8);
        if (kind === 0) {
          const field = rng.pick(["first", "totalPages", "flags", "order"] as const);
          const value =
            field === "first"
              ? Number(interesting(rng, pages, memory) & 0xf_ffff_ffff_ffffn)
              : field === "totalPages"
                ? rng.below(2) === 0
                  ? Math.max(0, d.totalPages + rng.below(5) - 2)
                  : rng.u32()
                : rng.below(2) === 0
                  ? rng.below(8)
                  : rng.u32() & 0xffff;
          descriptor = { ...descriptor, [field]: value };
        } else {
          const chunk = rng.pick(chunks);
          const slot = kind <= 2 ? 0 : rng.below(2) === 0 ? 1 + rng.below(Math.min(runCount, 511) + 1) : rng.below(512);
          const at = chunk + slot * 8;
          if (kind === 1 || kind === 3) next.memory.writeU64(at, interesting(rng, pages, memory));
          else if (kind === 4) next.memory.write(at, next.memory.read(chunk + 8 * (1 + rng.below(511)), 8)); // duplicate an entry
          else {
            const flipAt = at + rng.below(8);
            const byte = next.memory.read(flipAt, 1);
            byte[0]! ^= 1 << rng.below(8);
            next.memory.write(flipAt, byte);
          }
        }
      }

      const stamps = new Map(next.stamps);
      const result = timed(() => restoreVmalloc(next, encodeKhoVmalloc(descriptor)), where);
      if (result.error !== undefined) {
        failures++;
        if (result.error instanceof FormatError) rules.add(result.error.rule);
        expect(next.stamps, where).toEqual(stamps);
      } else {
        successes++;
        const restored = result.value!;
        expect(restored.runs.length * 2 ** restored.order, where).toBe(restored.totalPages);
        for (const run of restored.runs) expect(next.stamps.has(run / PAGE_SIZE), where).toBe(false);
      }
    });
    expect(n).toBeGreaterThan(50);
    expect(failures).toBeGreaterThan(0);
    expect(successes).toBeGreaterThan(0);
    // The mutations reach most of the rules.
    // Enough iterations reach most rules (a short FUZZ_SECONDS on a slow machine may not).
    if (n >= 2000) expect([...rules].sort()).toEqual(expect.arrayContaining(["chunk-cycle", "chunk-pointer", "flags", "not-preserved", "overlap", "run-alignment", "run-pointer", "too-few-pages", "too-many-pages"]));
    console.log(`kho_vmalloc fuzz: ${n} iterations, ${failures} refused, ${successes} restored, rules ${[...rules].sort().join(" ")}`);
  });

  it(`KHO block chain restore: typed errors only, bounded, atomic (seed ${SEED}, ${SECONDS}s)`, () => {
    let failures = 0;
    let successes = 0;
    const rules = new Set<string>();
    const n = fuzzFor(SECONDS, (rng, i) => {
      const where = `seed ${SEED} iteration ${i}`;
      const kho = new FakeKho({ ranges: [{ start: 16 << 20, size: 16 << 20 }] });
      const entrySize = rng.pick([16, 64, 80, 1000, 2040]);
      const count = 1 + rng.below(rng.below(4) === 0 ? 2000 : 100);
      const entries = Array.from({ length: count }, (_, e) => new Uint8Array(entrySize).fill(e & 0xff));
      const set = writeKhoBlocks(kho, entrySize, entries);
      const blocks = [...set.blocks];
      const spare = kho.allocPreserve(PAGE_SIZE);
      const next = kho.kexec();
      const memory = { start: 16 << 20, end: 32 << 20 };
      let head = set.headPa;

      for (let m = 1 + rng.below(3); m > 0; m--) {
        const kind = rng.below(7);
        const block = rng.pick(blocks);
        if (kind === 6) {
          // A stale copy of a block in a page nobody preserved, linked in.
          const stray = memory.start + (0x800 + rng.below(0x800)) * PAGE_SIZE;
          next.memory.write(stray, next.memory.read(block, PAGE_SIZE));
          next.memory.writeU64(rng.pick(blocks), stray);
          continue;
        }
        if (kind === 0) head = Number(interesting(rng, [...blocks, spare], memory) & 0xf_ffff_ffff_ffffn);
        else if (kind === 1 || kind === 2) next.memory.writeU64(block + 8 * (kind - 1), interesting(rng, [...blocks, spare], memory));
        else if (kind === 3) next.memory.writeU64(block + 8, rng.below(2) === 0 ? rng.below(300) : rng.u32());
        else {
          const at = block + rng.below(16);
          const byte = next.memory.read(at, 1);
          byte[0]! ^= 1 << rng.below(8);
          next.memory.write(at, byte);
        }
      }

      const stamps = new Map(next.stamps);
      const result = timed(() => KhoBlockSet.restore(next, head, entrySize), where);
      if (result.error !== undefined) {
        failures++;
        if (result.error instanceof FormatError) rules.add(result.error.rule);
        expect(next.stamps, where).toEqual(stamps);
      } else {
        successes++;
        const restored = result.value!;
        const read = timed(() => [...restored.entries()].length, where).value!;
        expect(read, where).toBeLessThanOrEqual(restored.blockCount * restored.entriesPerBlock);
        timed(() => {
          restored.destroy();
        }, where);
      }
    });
    expect(n).toBeGreaterThan(50);
    expect(failures).toBeGreaterThan(0);
    expect(successes).toBeGreaterThan(0);
    console.log(`kho block fuzz: ${n} iterations, ${failures} refused, ${successes} restored`);
    // Every rule but too-many-blocks (these chains are short; block.test.ts covers it).
    if (n >= 1000) expect([...rules].sort()).toEqual(["block-alignment", "block-count", "block-cycle", "block-pointer", "not-preserved"]);
  });
});
