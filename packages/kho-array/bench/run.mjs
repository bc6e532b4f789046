#!/usr/bin/env node
// `pnpm bench` for @liveupdate/kho-array: the KHO array's own costs (building, iterating,
// validating + restoring), against Buffer.copy of the same metadata bytes (its pages).
//
//   node bench/run.mjs [--json] [--reps R]
//
// Workloads:
//   dense    1,048,576 values at indices 0..2^20-1 (2057 pages)
//   sparse   100,000 values at seeded random gaps of 1..127 indices (mean 64: ~8 per page)
// Rows per workload: build (setValue for each entry, pages allocated as it goes),
// iterate (a cursor over every entry, valueNumber), restore (validate every page and
// entry, check stamps, reclaim). Each is the median of R runs after a warm-up; the
// preserver / restorer are minimal in-bench ones (bump allocator, a stamp map), so the
// numbers are the array's, not the KHO core's. Target: within 10x of the copy.
// Needs dist/ (pnpm build).
import { PhysicalMemory } from "@liveupdate/kho";
import { KhoArrayBuilder, restoreKhoArray } from "../dist/index.js";

const PAGE = 4096;
const TARGET = 10;
const args = process.argv.slice(2);
const json = args.includes("--json");
const repsAt = args.indexOf("--reps");
const REPS = repsAt >= 0 ? Math.max(1, Number(args[repsAt + 1])) : 5;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(fn) {
  const t0 = performance.now();
  const value = fn();
  return { ms: performance.now() - t0, value };
}

/** Buffer.copy of `bytes`, median of many runs. */
function copyMs(bytes) {
  const src = Buffer.alloc(bytes, 0x5a);
  const dst = Buffer.alloc(bytes);
  for (let i = 0; i < 10; i++) src.copy(dst);
  const samples = [];
  for (let r = 0; r < 31; r++) samples.push(time(() => src.copy(dst)).ms);
  return median(samples);
}

/** A preserver over a fresh 4 GiB sparse memory, and the matching "kexec". */
function machine() {
  const memory = new PhysicalMemory([{ start: 0, size: 2 ** 32 }]);
  let next = 1 << 20;
  const preserved = new Map();
  return {
    memory,
    allocFolio: () => (next += PAGE) - PAGE,
    freeFolio() {},
    preserveFolio: (phys, order) => void preserved.set(phys, order),
    unpreserveFolio: (phys) => void preserved.delete(phys),
    kexec() {
      const stamps = new Map(preserved);
      return {
        memory,
        stampOf: (phys) => (stamps.has(phys) ? { order: stamps.get(phys) } : undefined),
        restoreFolio(phys) {
          const order = stamps.get(phys);
          if (order === undefined) throw new Error("not stamped");
          stamps.delete(phys);
          return order;
        },
      };
    },
  };
}

function denseIndices() {
  return Float64Array.from({ length: 1 << 20 }, (_, i) => i);
}

function sparseIndices() {
  let state = 0x5eed;
  const rand = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const out = new Float64Array(100_000);
  for (let i = 0, index = 0; i < out.length; i++, index += 1 + (rand() % 127)) out[i] = index;
  return out;
}

function build(kho, indices) {
  const b = new KhoArrayBuilder(kho);
  for (let i = 0; i < indices.length; i++) b.setValue(indices[i], i);
  return b;
}

function iterate(array) {
  let sum = 0;
  const c = array.cursor();
  while (c.next()) sum += c.valueNumber;
  return sum;
}

function measure(name, indices) {
  const runs = { build: [], iterate: [], restore: [] };
  let pages = 0;
  for (let r = -1; r < REPS; r++) {
    const kho = machine();
    const b = time(() => build(kho, indices));
    const it = time(() => iterate(b.value));
    const descriptor = b.value.preserve();
    const next = kho.kexec();
    const rs = time(() => restoreKhoArray(next, descriptor));
    if (rs.value.entryCount !== indices.length) throw new Error(`${name}: restored ${rs.value.entryCount} of ${indices.length}`);
    pages = b.value.pageCount;
    if (r < 0) continue; // warm-up
    runs.build.push(b.ms);
    runs.iterate.push(it.ms);
    runs.restore.push(rs.ms);
  }
  const bytes = pages * PAGE;
  const base = copyMs(bytes);
  return Object.entries(runs).map(([op, samples]) => {
    const ms = median(samples);
    return {
      name: `kho-array ${name} ${op}`,
      ms,
      baselineMs: base,
      ratio: ms / base,
      target: TARGET,
      unit: `ms per ${indices.length} entries`,
      extra: { entries: indices.length, pages, metadataBytes: bytes, bytesPerEntry: bytes / indices.length, nsPerEntry: (ms * 1e6) / indices.length, reps: samples.length },
    };
  });
}

const rows = [...measure("dense 1M", denseIndices()), ...measure("sparse 100k", sparseIndices())];
if (json) {
  console.log(JSON.stringify({ node: process.version, rows }, null, 2));
} else {
  for (const r of rows) {
    const verdict = r.ratio <= r.target ? "ok" : "MISSED";
    console.log(
      `${r.name.padEnd(34)} ${r.ms.toFixed(2).padStart(8)} ms  ${r.extra.nsPerEntry.toFixed(1).padStart(6)} ns/entry  ${r.extra.bytesPerEntry.toFixed(1).padStart(7)} B/entry  ${r.ratio.toFixed(1).padStart(6)}x copy (${r.baselineMs.toFixed(3)} ms)  target <= ${r.target}x ${verdict}`,
    );
  }
}
