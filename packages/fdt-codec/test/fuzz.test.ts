/**
 * Time-bounded mutation fuzzing of every registered target (test/support/fuzz.ts) over
 * the golden corpus. For every input each target may only return or throw an FdtError;
 * each call must finish within a budget proportional to the input and allocate at most
 * 64 bytes per input byte + 1 MiB. A failure saves the input to a temp file and names the
 * seed and iteration, which regenerate it exactly (`fuzzInput(corpus, seed, iteration)`).
 *
 *   FUZZ_SECONDS  run time (default 10; `pnpm fuzz` runs 300)
 *   FUZZ_SEED     u32 seed (default random, printed)
 *
 * A target that never returns cannot be interrupted from its own thread: a watchdog
 * worker sees the call counter stall, saves the input from shared memory and kills the
 * test process, so a hang is reported (with its input) instead of blocking the run.
 */
import { mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, describe, expect, it } from "vitest";
import { FdtError } from "../src/errors.js";
import { defaultTimeBudgetMs, FUZZ_TARGETS, fuzzInput, fuzzSeedFromEnv, runFuzz, type FuzzTarget } from "./support/fuzz.js";
import { goldenDtbs } from "./support/golden.js";

const SECONDS = Number(process.env["FUZZ_SECONDS"] ?? 10);
const SEED = fuzzSeedFromEnv();
const failureDir = mkdtempSync(join(tmpdir(), "fdt-fuzz-failures-"));
const corpus = goldenDtbs().map((b) => b.bytes);
afterAll(() => {
  // Keep the directory only when it holds a failing input.
  if (readdirSync(failureDir).length === 0) rmdirSync(failureDir);
});

/** The watchdog steps in only far past the time budget: a real hang, not a slow call. */
function hangMs(inputLength: number): number {
  return Math.max(10_000, 20 * defaultTimeBudgetMs(inputLength));
}

// state[0]: call counter (odd while a call runs, -1 to stop); [1]: target index;
// [2]: input length; [3]: hang threshold in ms; [4]: iteration.
const WATCHDOG_SOURCE = `
const { workerData } = require("node:worker_threads");
const { writeFileSync } = require("node:fs");
const state = new Int32Array(workerData.state);
const input = new Uint8Array(workerData.input);
const nap = new Int32Array(new SharedArrayBuffer(4));
let last = Atomics.load(state, 0);
let since = Date.now();
for (;;) {
  Atomics.wait(nap, 0, 0, 50);
  const now = Atomics.load(state, 0);
  if (now === -1) break;
  if (now !== last) { last = now; since = Date.now(); continue; }
  if ((now & 1) === 1 && Date.now() - since > Atomics.load(state, 3)) {
    const target = workerData.targets[Atomics.load(state, 1)];
    const iteration = Atomics.load(state, 4);
    const path = workerData.dir + "/hang-" + target + "-seed" + workerData.seed + "-iter" + iteration + ".dtb";
    writeFileSync(path, input.subarray(0, Atomics.load(state, 2)));
    process.stderr.write("fuzz: " + target + " hung on iteration " + iteration + " (seed " + workerData.seed + "); input saved to " + path + "\\n");
    process.kill(process.pid, "SIGKILL");
  }
}
`;

describe("fuzz", () => {
  it(`every target returns or throws FdtError, in time and bounded memory (${SECONDS} s)`, { timeout: SECONDS * 1000 + 120_000 }, async () => {
    console.log(`fuzz: seed ${SEED} (FUZZ_SEED=${SEED} reproduces), ${SECONDS} s, targets ${FUZZ_TARGETS.map((t) => t.name).join(", ")}`);
    expect(FUZZ_TARGETS.length).toBeGreaterThan(0);
    const state = new Int32Array(new SharedArrayBuffer(8 * 4));
    // Mutations grow an input by a few splices at most; a larger one is saved truncated.
    const inputCopy = new Uint8Array(new SharedArrayBuffer(2 * Math.max(...corpus.map((c) => c.length)) + 65536));
    const watchdog = new Worker(WATCHDOG_SOURCE, {
      eval: true,
      workerData: { state: state.buffer, input: inputCopy.buffer, targets: FUZZ_TARGETS.map((t) => t.name), seed: SEED, dir: failureDir },
    });
    watchdog.unref();
    try {
      const run = runFuzz({
        corpus,
        targets: FUZZ_TARGETS,
        seed: SEED,
        durationMs: SECONDS * 1000,
        failureDir,
        onInput: (bytes, iteration) => {
          inputCopy.set(bytes.subarray(0, inputCopy.length));
          Atomics.store(state, 2, Math.min(bytes.length, inputCopy.length));
          Atomics.store(state, 3, hangMs(bytes.length));
          Atomics.store(state, 4, iteration);
        },
        onCallStart: (index) => {
          Atomics.store(state, 1, index);
          Atomics.add(state, 0, 1);
        },
        onCallEnd: () => {
          Atomics.add(state, 0, 1);
        },
      });
      const f = run.failure;
      if (f !== null) expect.fail(`target ${f.target}, seed ${f.seed}, iteration ${f.iteration}: ${f.why}; input saved to ${f.path}`);
      console.log(`fuzz: ${run.iterations} inputs, ${run.calls} calls, ${run.thrown} FdtError throws, no failure`);
      expect(run.iterations).toBeGreaterThan(0);
    } finally {
      Atomics.store(state, 0, -1);
      await watchdog.terminate();
    }
  });
});

describe("the fuzz harness itself", () => {
  const seed = 0xc0ffee;
  // The deliberate failures below save their inputs here, not beside real findings.
  const selfTestDir = mkdtempSync(join(tmpdir(), "fdt-fuzz-selftest-"));
  afterAll(() => {
    rmSync(selfTestDir, { recursive: true, force: true });
  });
  /** The first input `target` fails on, within a few iterations. */
  const firstFailure = (target: FuzzTarget, budgets: { time?: number; alloc?: number } = {}) =>
    runFuzz({
      corpus,
      targets: [target],
      seed,
      maxIterations: 5,
      failureDir: selfTestDir,
      ...(budgets.time === undefined ? {} : { timeBudgetMs: () => budgets.time! }),
      ...(budgets.alloc === undefined ? {} : { allocationBound: () => budgets.alloc! }),
    }).failure;

  it("accepts FdtError throws and plain returns", () => {
    const run = runFuzz({
      corpus,
      targets: [
        { name: "throws", run: () => { throw new FdtError("FDT_ERR_BADSTRUCTURE", 8, "test.rule", "always"); } },
        { name: "returns", run: (b) => b.length },
      ],
      seed,
      maxIterations: 20,
      failureDir: selfTestDir,
    });
    expect(run.failure).toBeNull();
    expect(run.iterations).toBe(20);
    expect(run.thrown).toBe(20);
  });

  it("fails on any other exception and saves the input that regenerates from seed and iteration", () => {
    const f = firstFailure({ name: "typeerror", run: (b) => (b.length % 2 === 0 ? ({} as { x: () => number }).x() : 0) });
    expect(f).not.toBeNull();
    expect(f!.why).toMatch(/^threw TypeError/);
    const saved = new Uint8Array(readFileSync(f!.path));
    expect(saved.length % 2).toBe(0);
    expect(saved).toEqual(fuzzInput(corpus, seed, f!.iteration).bytes);
  });

  it("fails on a malformed FdtError and on a result verify rejects", () => {
    expect(firstFailure({ name: "bad-offset", run: () => { throw new FdtError("FDT_ERR_BADSTRUCTURE", -5, "r", "m"); } })?.why).toMatch(/malformed FdtError/);
    expect(firstFailure({ name: "bad-result", run: () => 1, verify: () => "always wrong" })?.why).toMatch(/always wrong/);
  });

  it("fails a call over the time budget", () => {
    const slow = (): number => {
      const until = performance.now() + 15;
      let n = 0;
      while (performance.now() < until) n++;
      return n;
    };
    expect(firstFailure({ name: "slow", run: slow }, { time: 5 })?.why).toMatch(/^took .* ms, budget 5\.0 ms/);
  });

  it("fails a call allocating past the bound, and not one within it", () => {
    expect(firstFailure({ name: "hungry", run: (b) => new Uint8Array(b.length * 200 + 4 * 1024 * 1024).fill(1) })?.why).toMatch(/^allocated \d+ bytes/);
    expect(firstFailure({ name: "modest", run: (b) => new Uint8Array(b.length * 4).fill(1) })).toBeNull();
  });
});
