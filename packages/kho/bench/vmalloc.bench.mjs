// kho_vmalloc of 1,048,576 order-0 runs (a 4 GiB area): preserve in the outgoing kernel,
// validate and restore in the next one, through the real Machine (radix map, kexec, stamps).
// The baseline is Buffer.copy of the same metadata bytes (the chunk pages: 2053 x 4 KiB).
//
// Rows:
//   preserve       preserveVmalloc: 1M kho_preserve_pages calls (radix map) + 2053 chunk pages
//   encode only    the same with a no-op preserver: the chunk writing alone (this module's cost;
//                  the no-op has preservePagesMany, so it takes the path the real KHO takes)
//   read           readVmalloc: walk + validate every pointer, no reclaim
//   restore        restoreVmalloc: read + stamp check + kho_restore_pages of every run
//
// `export async function rows()` is what bench/run.mjs collects; `node bench/vmalloc.bench.mjs
// [--json]` prints the rows alone. Needs dist/ (npm run build).
import { pathToFileURL } from "node:url";
import { Machine } from "../dist/machine.js";
import { PhysicalMemory } from "../dist/memory.js";
import { preserveVmalloc, readVmalloc, restoreVmalloc } from "../dist/vmalloc.js";

const ENTRIES = 1_048_576;
const PAGE = 4096;
const CHUNK_ENTRIES = 511;
const CHUNKS = Math.floor(ENTRIES / CHUNK_ENTRIES) + 1;
const METADATA_BYTES = CHUNKS * PAGE + 16;
const TARGET = 10; // within 10x of copying the metadata
const REPS = Number(process.env.BENCH_REPS ?? 3);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(fn) {
  const t0 = performance.now();
  const value = fn();
  return { ms: performance.now() - t0, value };
}

/** Buffer.copy of the metadata bytes, median of many (fast: warm caches both ways). */
function baselineMs() {
  const src = Buffer.alloc(METADATA_BYTES, 0x5a);
  const dst = Buffer.alloc(METADATA_BYTES);
  for (let i = 0; i < 20; i++) src.copy(dst);
  const samples = [];
  for (let r = 0; r < 31; r++) samples.push(time(() => src.copy(dst)).ms);
  return median(samples);
}

/** A machine with `entries` pages to list as the area (allocated as order-10 folios). */
function bootWithArea(entries = ENTRIES) {
  const machine = Machine.boot({ memory: "8 GiB" });
  const runs = new Float64Array(entries);
  for (let f = 0; f < entries / 1024; f++) {
    const base = machine.kho.allocFolio(10);
    for (let p = 0; p < 1024; p++) runs[f * 1024 + p] = base + p * PAGE;
  }
  return { machine, runs };
}

/** A preserver that only allocates and hands out pages: isolates the chunk writing. */
function noopPreserver() {
  const memory = new PhysicalMemory([{ start: 0, size: 2 ** 33 }]);
  let next = 2 ** 32;
  return {
    memory,
    allocFolio: () => (next += PAGE) - PAGE,
    freeFolio() {},
    preserveFolio() {},
    unpreserveFolio() {},
    preservePages() {},
    preservePagesMany() {},
    unpreservePages() {},
    allocPreserve: () => (next += PAGE) - PAGE,
    unpreserveFree() {},
  };
}

export async function rows() {
  const base = baselineMs();
  const preserve = [];
  const encode = [];
  const read = [];
  const restore = [];
  // Warm-up: the whole path on a 64 Ki-entry area, 4 times, so the JIT has tiered up (V8
  // needs a few calls of each path to settle: fewer left the first measured rep cold).
  for (let w = 0; w < 4; w++) {
    const { machine, runs } = bootWithArea(65_536);
    const descriptor = preserveVmalloc(machine.kho, { runs, order: 0 });
    preserveVmalloc(noopPreserver(), { runs, order: 0 });
    const next = machine.kexec();
    readVmalloc(next.memory, descriptor);
    restoreVmalloc(next.incoming, descriptor);
  }
  for (let r = 0; r < REPS; r++) {
    const { machine, runs } = bootWithArea();
    const area = { runs, order: 0 };
    const { ms: preserveMs, value: descriptor } = time(() => preserveVmalloc(machine.kho, area));
    preserve.push(preserveMs);
    encode.push(time(() => preserveVmalloc(noopPreserver(), area)).ms);
    const next = machine.kexec();
    read.push(time(() => readVmalloc(next.memory, descriptor)).ms);
    const { ms: restoreMs, value: restored } = time(() => restoreVmalloc(next.incoming, descriptor));
    if (restored.runs.length !== ENTRIES) throw new Error("restore lost runs");
    restore.push(restoreMs);
  }
  const row = (name, samples, note) => {
    const ms = median(samples);
    return {
      name,
      ms,
      baselineMs: base,
      ratio: ms / base,
      target: TARGET,
      unit: "ms per 1M-entry area",
      extra: { entries: ENTRIES, chunks: CHUNKS, metadataBytes: METADATA_BYTES, nsPerEntry: (ms * 1e6) / ENTRIES, reps: samples.length, note },
    };
  };
  return [
    row("kho_vmalloc preserve 1M runs (real KHO)", preserve, "includes 1M kho_preserve_pages into the radix map"),
    row("kho_vmalloc encode 1M runs (no-op preserver)", encode, "chunk writing alone"),
    row("kho_vmalloc read+validate 1M runs", read, "walk, bounds, overlap check; no reclaim"),
    row("kho_vmalloc restore 1M runs (real KHO)", restore, "read + stamp check + 1M kho_restore_pages"),
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await rows();
  if (process.argv.includes("--json")) console.log(JSON.stringify(result, null, 2));
  else for (const r of result) console.log(`${r.name.padEnd(48)} ${r.ms.toFixed(1).padStart(8)} ms  ${r.ratio.toFixed(1).padStart(6)}x of Buffer.copy (${r.baselineMs.toFixed(2)} ms)  target <= ${r.target}x  ${r.extra.nsPerEntry.toFixed(1)} ns/entry`);
}
