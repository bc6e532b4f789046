#!/usr/bin/env node
// `pnpm bench` for @liveupdate/memfd-luo-v0: a 4 GiB memfd (1,048,576 order-0 folios, never
// written) through the memfd-v0 handler and across a kexec of the kho model, against
// Buffer.copy of the same metadata bytes (the KHO array's pages and the FDT page).
//
//   node bench/run.mjs [--json] [--reps R]        (after `npx tsc -p tsconfig.build.json`)
//
// Rows (median of R runs after a warm-up; each run a fresh 8 GiB machine):
//   serialize          the record alone: 1M KHO array values + the FDT, with a no-op KHO
//                      (bump allocator, preserve does nothing)             target <= 10x copy
//   decode             the record read and validated without consuming, no stamps      <= 10x
//   decode+stamps      the same with a stamp reader that costs nothing               <= 10x
//   preserve           handler.preserve: pin (memfd model), 1M kho_preserve_folio, record
//   freeze             handler.freeze: pos rewritten in the FDT
//   kexec              the kho model's kexec (map walk, stamps, hand-over)
//   retrieve           handler.retrieve: validate with the real stamps, 1M kho_restore_folio,
//                      the folios into a new file's page cache, FDT + array freed
//   round trip         preserve + freeze + kexec + retrieve                 target < 250 ms
// and, for where the time goes, the dependencies' own per-folio calls timed alone: memfd
// pinFolios, kho preserveFolio, incoming stampOf, incoming restoreFolio, memfd insertFolio.
//
// Setup, not timed: memfd_create, truncate to 4 GiB, fallocate the whole file (so every
// folio exists and is not uptodate, as a never-written, fallocated memfd's are).
import { Machine, PhysicalMemory, PAGE_SIZE } from "@liveupdate/kho";
import { MemfdFile, createMemfd } from "@liveupdate/memfd";
import { MemfdV0FolioTable, decodeMemfdV0, memfdV0, preserveMemfdV0 } from "../dist/index.js";

const FILE_BYTES = 2 ** 32;
const FOLIOS = FILE_BYTES / PAGE_SIZE;
const COPY_TARGET = 10;
const ROUND_TRIP_LIMIT_MS = 250;
const args = process.argv.slice(2);
const json = args.includes("--json");
const repsAt = args.indexOf("--reps");
const REPS = repsAt >= 0 ? Math.max(1, Number(args[repsAt + 1])) : Number(process.env.BENCH_REPS ?? 3);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => performance.now();

function copyMs(bytes) {
  const src = Buffer.alloc(bytes, 0x5a);
  const dst = Buffer.alloc(bytes);
  for (let i = 0; i < 10; i++) src.copy(dst);
  const samples = [];
  for (let r = 0; r < 31; r++) {
    const t0 = now();
    src.copy(dst);
    samples.push(now() - t0);
  }
  return median(samples);
}

const opArgs = (machine, file, serializedData = 0n) => ({ handler: memfdV0, machine, file, serializedData, privateData: undefined, retrieveStatus: 0 });

function setup() {
  const old = Machine.boot({ memory: "8 GiB" });
  const file = createMemfd(old, { name: "guest-ram" });
  file.truncate(FILE_BYTES);
  file.fallocate(0, 0, FILE_BYTES);
  return { old, file };
}

/** A KHO that allocates by bumping and preserves nothing: the record's own cost. */
function noopKho() {
  const memory = new PhysicalMemory([{ start: 0, size: 2 ** 33 }]);
  let next = 2 ** 32 + 2 ** 24; // above the folios
  return {
    memory,
    allocFolio: (order) => (next += PAGE_SIZE * 2 ** order) - PAGE_SIZE * 2 ** order,
    freeFolio() {},
    preserveFolio() {},
    unpreserveFolio() {},
    preservePages() {},
    unpreservePages() {},
    allocPreserve: () => (next += PAGE_SIZE) - PAGE_SIZE,
    unpreserveFree() {},
  };
}

const ORDER_0 = Object.freeze({ order: 0 });
const freeStamps = { stampOf: () => ORDER_0 };

const runs = {};
const add = (name, ms) => (runs[name] ??= []).push(ms);
let metadataBytes = 0;
let arrayPages = 0;

for (let r = -1; r < REPS; r++) {
  const keep = r >= 0;
  // --- the record alone
  {
    const kho = noopKho();
    const folios = new MemfdV0FolioTable(FOLIOS);
    for (let i = 0; i < FOLIOS; i++) folios.push(i, 0x10 + i, 3, 0);
    let t0 = now();
    const rec = preserveMemfdV0(kho, { pos: 0, size: FILE_BYTES, folios });
    const ser = now() - t0;
    t0 = now();
    decodeMemfdV0(kho.memory, rec.fdtPhys, { stamps: freeStamps });
    const decS = now() - t0;
    t0 = now();
    const d = decodeMemfdV0(kho.memory, rec.fdtPhys);
    const dec = now() - t0;
    if (d.folios.length !== FOLIOS) throw new Error("decode lost folios");
    arrayPages = rec.array.pageCount;
    metadataBytes = (arrayPages + 1) * PAGE_SIZE;
    if (keep) {
      add("serialize", ser);
      add("decode", dec);
      add("decode+stamps", decS);
    }
  }
  // --- the handler across a kexec
  {
    const { old, file } = setup();
    const out = opArgs(old, file);
    let t0 = now();
    memfdV0.preserve(out);
    const pres = now() - t0;
    file.lseek(12345, 0);
    t0 = now();
    memfdV0.freeze(out);
    const frz = now() - t0;
    t0 = now();
    const next = old.kexec();
    const kx = now() - t0;
    const inc = opArgs(next, undefined, out.serializedData);
    t0 = now();
    memfdV0.retrieve(inc);
    const ret = now() - t0;
    if (inc.file.size !== FILE_BYTES || inc.file.folioCount !== FOLIOS || inc.file.position !== 12345) throw new Error("retrieve lost state");
    if (keep) {
      add("preserve", pres);
      add("freeze", frz);
      add("kexec", kx);
      add("retrieve", ret);
      add("round trip", pres + frz + kx + ret);
    }
  }
  // --- the dependencies' own calls, timed alone
  {
    const { old, file } = setup();
    let t0 = now();
    file.freezeMapping(true);
    const pinned = file.pinFolios();
    const pin = now() - t0;
    t0 = now();
    for (let i = 0; i < pinned.count; i++) old.kho.preserveFolio(pinned.phys[i], 0);
    const pf = now() - t0;
    const next = old.kexec();
    t0 = now();
    let s = 0;
    for (let i = 0; i < pinned.count; i++) s += next.incoming.stampOf(pinned.phys[i]).order;
    const st = now() - t0;
    t0 = now();
    for (let i = 0; i < pinned.count; i++) next.incoming.restoreFolio(pinned.phys[i]);
    const rf = now() - t0;
    const f = MemfdFile.createShmemFile(next, "");
    f.restoreSize(FILE_BYTES);
    t0 = now();
    for (let i = 0; i < pinned.count; i++) f.insertFolio(pinned.indices[i], pinned.phys[i], 0, 3);
    const ins = now() - t0;
    if (s !== 0) throw new Error("unexpected orders");
    if (keep) {
      add("dep: memfd pinFolios", pin);
      add("dep: kho preserveFolio x1M", pf);
      add("dep: kho stampOf x1M", st);
      add("dep: kho restoreFolio x1M", rf);
      add("dep: memfd insertFolio x1M", ins);
    }
  }
}

const base = copyMs(metadataBytes);
const ratioTargets = { serialize: COPY_TARGET, decode: COPY_TARGET, "decode+stamps": COPY_TARGET };
const rows = Object.entries(runs).map(([op, samples]) => {
  const ms = median(samples);
  const target = ratioTargets[op] ?? null;
  const limits = op === "round trip" ? { maxMs: ROUND_TRIP_LIMIT_MS } : undefined;
  const ok = target !== null ? ms / base <= target : limits ? ms <= limits.maxMs : undefined;
  return {
    name: `memfd-v0 4 GiB ${op}`,
    ms,
    baselineMs: base,
    ratio: ms / base,
    target,
    ...(ok === undefined ? {} : { ok }),
    unit: "ms",
    extra: {
      folios: FOLIOS,
      arrayPages,
      metadataBytes,
      bytesPerFolio: metadataBytes / FOLIOS,
      nsPerFolio: (ms * 1e6) / FOLIOS,
      reps: samples.length,
      ...(limits ? { limits } : {}),
      ...(op.startsWith("dep:") ? { note: "a dependency's own cost, timed alone (informative)" } : {}),
    },
  };
});

if (json) {
  console.log(JSON.stringify({ node: process.version, rows }, null, 2));
} else {
  for (const r of rows) {
    const verdict = r.ok === undefined ? "    " : r.ok ? "ok  " : "MISS";
    const target = r.target !== null ? `target <= ${r.target}x` : r.extra.limits ? `target < ${r.extra.limits.maxMs} ms` : "informative";
    console.log(
      `${verdict} ${r.name.padEnd(42)} ${r.ms.toFixed(1).padStart(8)} ms  ${r.extra.nsPerFolio.toFixed(1).padStart(7)} ns/folio  ${r.ratio.toFixed(1).padStart(7)}x copy (${r.baselineMs.toFixed(3)} ms of ${r.extra.metadataBytes} B)  ${target}`,
    );
  }
}
