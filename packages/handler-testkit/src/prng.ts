/**
 * A small seeded generator (mulberry32): the same seed gives the same hostile cases on every
 * machine, so a failure report's seed reproduces it.
 */

/** A deterministic source of numbers. */
export class SeededRandom {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform u32. */
  nextU32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform integer in `[0, n)` (`n` at least 1). */
  below(n: number): number {
    return Math.floor((this.nextU32() / 0x100000000) * n);
  }

  /** One element of a non-empty list. */
  pick<T>(list: readonly T[]): T {
    return list[this.below(list.length)]!;
  }
}
