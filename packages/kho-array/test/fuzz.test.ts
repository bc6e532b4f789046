/**
 * Seeded mutation fuzzing of the KHO array restore: valid arrays are built, preserved and
 * handed over by a fake kexec, then corrupted (descriptor fields, page links, startpos,
 * entries, bit flips, stale copies of pages linked in). Every restore must either succeed
 * with a self-consistent array or throw a FormatError / KernelError, quickly, and a failed
 * one must leave every stamp in place.
 *
 * FUZZ_SECONDS (default 5) is the time budget; FUZZ_SEED picks the seed. A failure names
 * the seed and iteration.
 */
import { FormatError, KernelError, PAGE_SIZE } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import { KhoArrayBuilder, restoreKhoArray, type KhoArray } from "../src/kho-array.js";
import { FakeKho } from "./support/fake-kho.js";

const SECONDS = Number(process.env["FUZZ_SECONDS"] ?? 5);
const SEED = Number(process.env["FUZZ_SEED"] ?? 0x6b6172);
const CALL_BUDGET_MS = 250;
const MEM = { start: 16 << 20, end: 48 << 20 };

/** mulberry32. */
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

function interestingU64(rng: Prng, pages: readonly number[]): bigint {
  switch (rng.below(10)) {
    case 0:
      return 0n;
    case 1:
      return BigInt(rng.pick(pages));
    case 2:
      return BigInt(rng.pick(pages) + 8 * (1 + rng.below(4)));
    case 3:
      return BigInt(MEM.start + rng.below((MEM.end - MEM.start) / PAGE_SIZE) * PAGE_SIZE);
    case 4:
      return 0x6b6b_6b6b_6b6b_6b6bn;
    case 5:
      return BigInt(510 * rng.below(100_000));
    case 6:
      return 510n * (2n ** 45n + BigInt(rng.u32()));
    case 7:
      return BigInt(rng.u32()) | (BigInt(rng.u32()) << 32n);
    case 8:
      return BigInt(rng.u32() & ~7);
    default:
      return BigInt(rng.u32() | 1);
  }
}

/** The array must be internally consistent: ascending unique indices, lookups agree. */
function checkConsistent(array: KhoArray, where: string): void {
  const c = array.cursor();
  let previous = -1;
  let n = 0;
  while (c.next()) {
    expect(c.index, where).toBeGreaterThan(previous);
    previous = c.index;
    if (n % 97 === 0) expect(array.get(c.index), where).toEqual(c.entry());
    n++;
  }
  expect(n, where).toBe(array.entryCount);
}

describe("fuzzing the KHO array restore", () => {
  it(`typed errors only, bounded, atomic (seed ${SEED}, ${SECONDS}s)`, () => {
    let failures = 0;
    let successes = 0;
    const rules = new Set<string>();
    const end = performance.now() + SECONDS * 1000;
    let i = 0;
    for (; performance.now() < end; i++) {
      const where = `seed ${SEED} iteration ${i}`;
      const rng = new Prng(SEED ^ Math.imul(i + 1, 0x9e3779b1));
      const kho = new FakeKho({ ranges: [{ start: MEM.start, size: MEM.end - MEM.start }] });
      const b = new KhoArrayBuilder(kho);
      const count = 1 + (rng.below(4) === 0 ? rng.below(3000) : rng.below(60));
      const gap = 1 + rng.below(rng.below(2) === 0 ? 4 : 2000);
      for (let e = 0, index = rng.below(1000); e < count; e++, index += 1 + rng.below(gap)) {
        if (rng.below(5) === 0) b.setPointer(index, (1 + rng.below(1 << 20)) * 8);
        else b.setValue(index, rng.below(2) === 0 ? rng.below(1000) : BigInt(rng.u32()) << BigInt(rng.below(32)));
      }
      let descriptor = b.preserve();
      const pages = Array.from(b.layout().pages);
      const next = kho.kexec();

      for (let m = 1 + rng.below(3); m > 0; m--) {
        const page = rng.pick(pages);
        switch (rng.below(8)) {
          case 0: {
            descriptor = descriptor.slice();
            const at = rng.below(16);
            descriptor[at]! ^= 1 << rng.below(8);
            break;
          }
          case 1:
            next.memory.writeU64(page, interestingU64(rng, pages));
            break;
          case 2:
            next.memory.writeU64(page + 8, interestingU64(rng, pages));
            break;
          case 3:
            next.memory.writeU64(page + 16 + 8 * rng.below(510), interestingU64(rng, pages));
            break;
          case 4:
            next.memory.zero(page + 16, PAGE_SIZE - 16);
            break;
          case 5: {
            const stray = MEM.start + (0x1000 + rng.below(0x1000)) * PAGE_SIZE;
            next.memory.write(stray, next.memory.read(page, PAGE_SIZE));
            next.memory.writeU64(rng.pick(pages), stray);
            break;
          }
          default: {
            const at = page + rng.below(PAGE_SIZE);
            const byte = next.memory.read(at, 1);
            byte[0]! ^= 1 << rng.below(8);
            next.memory.write(at, byte);
          }
        }
      }

      const stamps = new Map(next.stamps);
      const t0 = performance.now();
      let restored: KhoArray | undefined;
      try {
        restored = restoreKhoArray(next, descriptor);
      } catch (err) {
        if (!(err instanceof FormatError || err instanceof KernelError)) throw new Error(`${where}: untyped ${String(err)}`, { cause: err });
        failures++;
        if (err instanceof FormatError) rules.add(err.rule);
        expect(next.stamps, where).toEqual(stamps);
      }
      const ms = performance.now() - t0;
      if (ms > CALL_BUDGET_MS) throw new Error(`${where}: restore took ${ms.toFixed(0)} ms`);
      if (restored) {
        successes++;
        checkConsistent(restored, where);
      }
    }
    console.log(`kho-array fuzz: ${i} iterations, ${failures} refused, ${successes} restored, rules ${[...rules].sort().join(" ")}`);
    expect(i).toBeGreaterThan(50);
    expect(failures).toBeGreaterThan(0);
    expect(successes).toBeGreaterThan(0);
    if (i >= 1000) {
      expect([...rules].sort()).toEqual(
        expect.arrayContaining(["empty-page", "magic", "not-preserved", "page-alignment", "page-cycle", "page-pointer", "reserved", "startpos-alignment", "startpos-order", "startpos-range", "tag", "version"]),
      );
    }
  });
});
