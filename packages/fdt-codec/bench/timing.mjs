// Timing for the TypeScript side, with the same scheme as bench/c/fdt_bench.c so the two
// columns are comparable: calibrate the iteration count so one sample takes about targetMs,
// take samples (run.mjs alternates them with the C harness's), report the median ns per
// operation. A JIT warm-up runs first.

/** Folded into by every timed operation so V8 cannot drop the work; printed at the end. */
let sink = 0;

/** @param {number} x */
export function consume(x) {
  sink = (sink + x) | 0;
}

export function sinkValue() {
  return sink;
}

/** @returns {number} monotonic nanoseconds (as a double: exact to 2^53 ns, ~104 days). */
function nowNs() {
  return Number(process.hrtime.bigint());
}

/**
 * @param {() => number} op one operation; its result goes into the sink
 * @param {number} iters
 * @returns {number} elapsed ns
 */
function runIters(op, iters) {
  let acc = 0;
  const t0 = nowNs();
  for (let i = 0; i < iters; i++) acc = (acc + op()) | 0;
  const t1 = nowNs();
  consume(acc);
  return t1 - t0;
}

/**
 * Let V8 tier the operation up (Ignition -> Sparkplug -> Maglev/TurboFan) before anything is
 * measured: at least 20 calls and at least `ms` milliseconds.
 * @param {() => number} op @param {number} ms
 */
export function warmUp(op, ms) {
  const end = nowNs() + ms * 1e6;
  for (let i = 0; i < 20 || nowNs() < end; i++) consume(op());
}

/**
 * Iterations for one sample of about targetMs: double until a run takes >= 1/8 of it, then
 * scale (the C harness calibrates the same way).
 * @param {() => number} op @param {number} targetMs
 */
export function calibrate(op, targetMs) {
  const targetNs = targetMs * 1e6;
  let iters = 1;
  let elapsed;
  for (;;) {
    elapsed = runIters(op, iters);
    if (elapsed >= targetNs / 8 || iters >= 2 ** 40) break;
    iters *= 2;
  }
  return Math.max(1, Math.round(targetNs / Math.max(elapsed / iters, 1)));
}

/** One sample: ns per operation over `iters` back-to-back calls. @param {() => number} op @param {number} iters */
export function sample(op, iters) {
  return runIters(op, iters) / iters;
}

/** @param {number[]} xs */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
