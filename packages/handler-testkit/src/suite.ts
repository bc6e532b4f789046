/**
 * The vitest face of the kit: {@link describeHandlerConformance} registers one test per
 * check and seed, {@link describeFixtures} one per frozen fixture. Call them at the top level
 * of a `*.test.ts` file.
 */
import { describe, expect, it } from "vitest";
import { checkCompatibleRules, checkForgottenPages, checkHostileRecords, checkRoundTrip, checkUnpreserve } from "./checks.js";
import { listFixtures, loadFixture } from "./fixtures.js";
import type { HandlerSubject, MachineOptions } from "./subject.js";

/** Options of {@link describeHandlerConformance}. */
export interface ConformanceOptions extends MachineOptions {
  /** Title of the `describe` block (default: the handler's compatible). */
  readonly title?: string;
  /** Round-trip, unpreserve and forgotten-page scenarios, one per seed (default `[1, 2, 3]`). */
  readonly seeds?: readonly number[];
  /** Seed of the hostile-record cases (default `0x5eed`). */
  readonly hostileSeed?: number;
  /** How many hostile-record cases (default 48). */
  readonly hostileCases?: number;
  /** Runs dropped per forgotten-page scenario, at most (default 8). */
  readonly maxForgottenRuns?: number;
  /** A fixture directory to check as well ({@link describeFixtures}). */
  readonly fixtures?: string;
}

/**
 * Register the conformance suite for `subject` (see `checks.ts` for what each check does).
 * Every test asserts that its check found no problem, so a failure shows the problems.
 */
export function describeHandlerConformance(subject: HandlerSubject, options: ConformanceOptions = {}): void {
  const seeds = options.seeds ?? [1, 2, 3];
  const machine = options.memory === undefined ? {} : { memory: options.memory };
  describe(`${options.title ?? subject.handler().compatible}: handler conformance`, () => {
    it("compatible string: 1..47 bytes, dispatch by exact match only", () => {
      expect(checkCompatibleRules(subject, machine)).toEqual([]);
    });
    for (const seed of seeds) {
      it(`round trip across kexec, poison-free and leak-free (seed ${seed})`, () => {
        expect(checkRoundTrip(subject, { ...machine, seed })).toEqual([]);
      });
      it(`unpreserve gives every page back (seed ${seed})`, () => {
        expect(checkUnpreserve(subject, { ...machine, seed })).toEqual([]);
      });
      it(`a page the handler forgot to preserve is caught (seed ${seed})`, () => {
        const report = checkForgottenPages(subject, { ...machine, seed, ...(options.maxForgottenRuns === undefined ? {} : { maxRuns: options.maxForgottenRuns }) });
        expect(report.problems).toEqual([]);
      });
    }
    const hostileSeed = options.hostileSeed ?? 0x5eed;
    const cases = options.hostileCases ?? 48;
    it(`hostile records: ${cases} seeded corruptions give an errno or a valid file, and a failed retrieve changes nothing (seed ${hostileSeed})`, () => {
      const report = checkHostileRecords(subject, { ...machine, seed: hostileSeed, cases });
      expect(report.problems).toEqual([]);
      expect(report.cases).toHaveLength(cases);
    });
  });
  if (options.fixtures !== undefined) describeFixtures(options.fixtures, subject);
}

/**
 * Register one test per fixture in `dir` (`NAME.json` + its image): the subject's handlers
 * must retrieve every file with the frozen snapshot. A directory without fixtures fails.
 */
export function describeFixtures(dir: string, subject: Pick<HandlerSubject, "handler" | "companions" | "snapshot">): void {
  const names = listFixtures(dir);
  describe(`frozen fixtures in ${dir}`, () => {
    it("the directory holds fixtures", () => {
      expect(names.length).toBeGreaterThan(0);
    });
    for (const name of names) {
      it(`decodes ${name}`, () => {
        const result = loadFixture(dir, name, subject);
        expect(result.problems).toEqual([]);
        expect(result.files.map((f) => f.actual)).toEqual(result.manifest.files.map((f) => f.expected));
      });
    }
  });
}
