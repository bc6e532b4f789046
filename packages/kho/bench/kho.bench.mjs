// KHO core hot paths: the radix preserved-memory map (outgoing build, next-kernel walk) and
// kexec itself, each against Buffer.copy of the same metadata in the same run.
//
// "The same metadata bytes": one u64 per preserved run (its radix key), i.e. what a flat list
// of the runs would hold (1,048,576 runs -> 8 MiB). The map itself is far smaller when runs
// are dense (a bitmap bit per run), so copying the map's node pages would be a much faster
// baseline; that size is reported as extra.mapBytes.
//
// Rows:
//   preserve 1M order-0 pages    1,048,576 kho_preserve_folio calls building the map in memory
//   preserveFolios 1M pages      the same map from one KhoOutgoing.preserveFolios call (the
//                                bulk path: checks and bits per stretch of adjacent folios)
//   kexec-walk 1M runs           the next kernel's boot work: FDT check, hostile-input walk of
//                                the map, KHOP stamp table (KhoIncoming on handed-over memory)
//   kexec 1M runs                Machine.kexec(): keep list, memory hand-over, next boot
//   restorePagesMany 1M pages    the next kernel restores every page with one call (stamps
//                                checked, cleared, pages adopted by the allocator)
//
// Every row is measured after a warm-up of the whole sequence on 64 Ki runs (4 times), so the
// JIT has tiered up: the rows are steady-state costs, as in bench/vmalloc.bench.mjs.
//   kexec 64 GiB / 16 GiB order-9 folios never written: wall time and peak RSS, measured in a
//                                child process (bench/kexec-64g.mjs) so the peak is its own
//
// `export async function rows()` is what bench/run.mjs collects; `node bench/kho.bench.mjs
// [--json]` prints these rows alone. Needs dist/ (npx tsc -p tsconfig.build.json).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { KhoIncoming } from "../dist/kho-incoming.js";
import { Machine } from "../dist/machine.js";

const RUNS = 1_048_576;
const PAGE = 4096;
const METADATA_BYTES = RUNS * 8;
const TARGET = 10; // within 10x of copying the metadata
const REPS = Number(process.env.BENCH_REPS ?? 3);
const BASE = 2 ** 32; // the preserved pages: 4 GiB..8 GiB of an 8 GiB machine
/** Warm-up passes on 64 Ki runs before measuring: V8 needs a few calls of each path to settle. */
const WARMUP_PASSES = 4;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(fn) {
  const t0 = performance.now();
  const value = fn();
  return { ms: performance.now() - t0, value };
}

/** Buffer.copy of `bytes` bytes, median of many (warm caches both ways). */
export function copyBaselineMs(bytes) {
  const src = Buffer.alloc(bytes, 0x5a);
  const dst = Buffer.alloc(bytes);
  for (let i = 0; i < 20; i++) src.copy(dst);
  const samples = [];
  for (let r = 0; r < 31; r++) samples.push(time(() => src.copy(dst)).ms);
  return median(samples);
}

function preserveAll(machine, runs = RUNS) {
  const kho = machine.kho;
  for (let i = 0; i < runs; i++) kho.preserveFolio(BASE + i * PAGE, 0);
}

/** The physical addresses of the preserved pages, for the bulk calls. */
function pageList(runs = RUNS) {
  const list = new Float64Array(runs);
  for (let i = 0; i < runs; i++) list[i] = BASE + i * PAGE;
  return list;
}

/** One pass over every path with `runs` runs (the warm-up uses a small one). */
function pass(runs, record) {
  const list = pageList(runs);
  const a = Machine.boot({ memory: "8 GiB", scratch: "none" });
  const preserveMs = time(() => preserveAll(a, runs)).ms;
  const mapBytes = a.kho.radix.nodePages().length * PAGE;
  const fdtPhys = a.kho.fdtPhys;
  const memory = a.memory.handOver(a.kho.handoverRuns());
  const { ms: walkMs, value: incoming } = time(() => new KhoIncoming(memory, { fdtPhys }));
  if (incoming.stampedCount !== runs + 2) throw new Error(`walk found ${incoming.stampedCount} runs`);

  const b = Machine.boot({ memory: "8 GiB", scratch: "none" });
  const bulkMs = time(() => b.kho.preserveFolios(list, 0)).ms;
  const { ms: kexecMs, value: next } = time(() => b.kexec());
  if (next.incoming.stampedCount !== runs + 2) throw new Error("kexec lost runs");
  const restoreMs = time(() => next.incoming.restorePagesMany(list, 1)).ms;
  if (next.incoming.stampedCount !== 2) throw new Error("restore left runs");
  record?.({ preserveMs, bulkMs, walkMs, kexecMs, restoreMs, mapBytes });
}

function row(name, samples, baselineMs, extra) {
  const ms = median(samples);
  return {
    name,
    ms,
    baselineMs,
    ratio: ms / baselineMs,
    target: TARGET,
    ok: ms / baselineMs <= TARGET,
    unit: "ms",
    extra: { runs: RUNS, metadataBytes: METADATA_BYTES, nsPerRun: (ms * 1e6) / RUNS, reps: samples.length, ...extra },
  };
}

/** The 64 GiB kexec, in a child process. */
function kexec64() {
  const script = fileURLToPath(new URL("./kexec-64g.mjs", import.meta.url));
  const out = execFileSync(process.execPath, [script], { encoding: "utf8", maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split("\n").pop());
}

export async function rows() {
  const base = copyBaselineMs(METADATA_BYTES);
  for (let w = 0; w < WARMUP_PASSES; w++) pass(65_536);
  const preserve = [];
  const bulk = [];
  const walk = [];
  const kexec = [];
  const restore = [];
  let mapBytes = 0;
  for (let r = 0; r < REPS; r++) {
    pass(RUNS, (m) => {
      preserve.push(m.preserveMs);
      bulk.push(m.bulkMs);
      walk.push(m.walkMs);
      kexec.push(m.kexecMs);
      restore.push(m.restoreMs);
      mapBytes = m.mapBytes;
    });
  }
  const big = kexec64();
  const limits = { ms: 2000, rssBytes: 2 ** 31 };
  const bigBase = copyBaselineMs(big.runs * 8);
  return [
    row("preserve 1M order-0 pages (build the map)", preserve, base, { mapBytes, note: "1M preserveFolio calls" }),
    row("preserveFolios 1M order-0 pages (one call)", bulk, base, { mapBytes, note: "bulk path" }),
    row("kexec-walk 1M runs (check, walk, stamp)", walk, base, { mapBytes }),
    row("kexec 1M runs (keep list, hand-over, next boot)", kexec, base, { mapBytes }),
    row("restorePagesMany 1M pages (one call)", restore, base, { mapBytes, note: "stamps checked and cleared, pages adopted" }),
    {
      name: "kexec 64 GiB, 16 GiB preserved as order-9 folios",
      ms: big.kexecMs,
      baselineMs: bigBase,
      ratio: big.kexecMs / bigBase,
      target: null,
      ok: big.kexecMs < limits.ms && big.maxRssBytes < limits.rssBytes,
      unit: "ms",
      extra: {
        runs: big.runs,
        metadataBytes: big.runs * 8,
        limits,
        maxRssBytes: big.maxRssBytes,
        rssAfterBytes: big.rssAfterBytes,
        setupMs: big.setupMs,
        nextDataPages: big.nextDataPages,
        note: "absolute targets (wall < 2 s, peak RSS < 2 GiB); the ratio is informational",
      },
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { printRows } = await import("./run.mjs");
  printRows(await rows(), process.argv.includes("--json"));
}
