// The benchmark both memfd handlers run (memfd-luo-v1 and -v2 `bench/run.mjs` call
// `handlerBenchRows`): one 4 GiB memfd of 1,048,576 order-0 folios that were never written
// (fallocated: allocated, not UPTODATE, so no contents are materialised) on an 8 GiB machine.
//
// Rows (each the median of `reps` runs, each on a fresh machine; setup is not timed):
//   preserve + freeze + serialize   handler.preserve (freeze the inode, pin, [v2: zero + mark
//                                   every folio DIRTY|UPTODATE], kho_preserve_folio x 1M, write
//                                   the 16 MiB folio array, kho_preserve_vmalloc, the record)
//                                   then handler.freeze (pos)
//   retrieve                        handler.retrieve on the next machine (read and validate the
//                                   array and every stamp, then restore 1M folios into a new
//                                   file's page cache, free the array)
//   round trip                      the two above (extra.kexecMs: Machine.kexec in between, KHO's)
// Baseline: Buffer.copy of the same metadata bytes (1M x 16-byte folio records + the record),
// median of 31 copies. Target: within 10x of the copy; the round trip also under 250 ms.
//
// extra.khoFloorMs is what KHO alone costs for the same folios on the same kind of machine
// (1M kho_preserve_folio; 1M stamp checks + 1M kho_restore_folio), so extra.handlerMs =
// ms - khoFloorMs is the handler's own share.
import { Machine } from "@liveupdate/kho";
import { memfd } from "@liveupdate/memfd";

const FOLIOS = 1_048_576;
const PAGE = 4096;
const TARGET = 10;
const ROUND_TRIP_LIMIT_MS = 250;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(fn) {
  const t0 = performance.now();
  const value = fn();
  return { ms: performance.now() - t0, value };
}

/** Buffer.copy of `bytes`, median of 31 copies after a warm-up. */
export function copyBaselineMs(bytes) {
  const src = Buffer.alloc(bytes, 0x5a);
  const dst = Buffer.alloc(bytes);
  for (let i = 0; i < 20; i++) src.copy(dst);
  const samples = [];
  for (let r = 0; r < 31; r++) samples.push(time(() => src.copy(dst)).ms);
  return median(samples);
}

function opArgs(handler, machine, init) {
  return { handler, machine, file: undefined, serializedData: 0n, privateData: undefined, retrieveStatus: 0, ...init };
}

function handlerOnce(handler) {
  const machine = Machine.boot({ memory: "8 GiB" });
  const file = memfd.create(machine, { name: "guest-ram" });
  file.fallocate(0, 0, FOLIOS * PAGE);
  file.lseek(12345, 0);
  const p = opArgs(handler, machine, { file });
  const preserve = time(() => {
    handler.preserve(p);
    handler.freeze(p);
  });
  const kexec = time(() => machine.kexec());
  const r = opArgs(handler, kexec.value, { serializedData: p.serializedData });
  const retrieve = time(() => handler.retrieve(r));
  const g = r.file;
  if (g.size !== FOLIOS * PAGE || g.folioCount !== FOLIOS || g.position !== 12345) throw new Error("the round trip lost something");
  return { preserveMs: preserve.ms, kexecMs: kexec.ms, retrieveMs: retrieve.ms };
}

/** KHO alone on the same workload: the floor under any handler. */
function khoFloorOnce() {
  const machine = Machine.boot({ memory: "8 GiB" });
  const phys = new Float64Array(FOLIOS);
  for (let i = 0; i < FOLIOS; i++) phys[i] = machine.kho.allocFolio(0);
  const preserve = time(() => {
    for (let i = 0; i < FOLIOS; i++) machine.kho.preserveFolio(phys[i], 0);
  });
  const next = machine.kexec();
  const retrieve = time(() => {
    for (let i = 0; i < FOLIOS; i++) if (next.incoming.stampOf(phys[i]) === undefined) throw new Error("lost");
    for (let i = 0; i < FOLIOS; i++) next.incoming.restoreFolio(phys[i]);
  });
  return { preserveMs: preserve.ms, retrieveMs: retrieve.ms };
}

/** The rows for `handler` (named `label`), `reps` runs each. */
export function handlerBenchRows(handler, label, recordBytes, reps) {
  const metadataBytes = FOLIOS * 16 + recordBytes;
  const baselineMs = copyBaselineMs(metadataBytes);
  handlerOnce(handler); // warm-up
  khoFloorOnce();
  const runs = [];
  const floors = [];
  for (let i = 0; i < reps; i++) {
    runs.push(handlerOnce(handler));
    floors.push(khoFloorOnce());
  }
  const preserveMs = median(runs.map((r) => r.preserveMs));
  const retrieveMs = median(runs.map((r) => r.retrieveMs));
  const roundTripMs = median(runs.map((r) => r.preserveMs + r.retrieveMs));
  const floorPreserve = median(floors.map((f) => f.preserveMs));
  const floorRetrieve = median(floors.map((f) => f.retrieveMs));
  const kexecMs = median(runs.map((r) => r.kexecMs));
  const row = (name, ms, floor, more = {}) => ({
    name,
    ms,
    baselineMs,
    ratio: ms / baselineMs,
    target: TARGET,
    ok: ms / baselineMs <= TARGET,
    unit: "ms",
    extra: { folios: FOLIOS, metadataBytes, reps, nsPerFolio: (ms * 1e6) / FOLIOS, khoFloorMs: floor, handlerMs: ms - floor, ...more },
  });
  const roundTrip = row(`${label} round trip, 4 GiB (1M folios)`, roundTripMs, floorPreserve + floorRetrieve, { kexecMs, limits: { ratio: TARGET, ms: ROUND_TRIP_LIMIT_MS } });
  roundTrip.ok = roundTrip.ratio <= TARGET && roundTripMs <= ROUND_TRIP_LIMIT_MS;
  roundTrip.extra.underLimitMs = roundTripMs <= ROUND_TRIP_LIMIT_MS;
  return [
    row(`${label} preserve + freeze + serialize, 4 GiB (1M folios)`, preserveMs, floorPreserve),
    row(`${label} retrieve, 4 GiB (1M folios)`, retrieveMs, floorRetrieve),
    roundTrip,
  ];
}

/** Print rows as a table, or JSON. */
export function printRows(rows, json) {
  if (json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  for (const r of rows) {
    const extra = Object.entries(r.extra)
      .filter(([, v]) => typeof v !== "object")
      .map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(1) : v}`)
      .join(" ");
    console.log(`${r.ok ? "ok  " : "MISS"} ${r.name.padEnd(58)} ${r.ms.toFixed(1).padStart(7)} ms ${r.ratio.toFixed(0).padStart(5)}x of Buffer.copy (${r.baselineMs.toFixed(3)} ms)  target <= ${r.target}x  ${extra}`);
  }
}
