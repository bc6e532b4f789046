// Benchmarks of @liveupdate/kho: `node bench/run.mjs [--json]` (after `npx tsc -p
// tsconfig.build.json`; compile-free, it imports dist/).
//
// Runs every bench/*.bench.mjs that exports `async function rows()` and prints the rows.
// Each row is one object of this shape:
//
//   {
//     name:       string   what was measured
//     ms:         number   median wall time of the measured path, milliseconds
//     baselineMs: number   Buffer.copy of the same metadata bytes, in the same run (median)
//     ratio:      number   ms / baselineMs
//     target:     number | null   the largest acceptable ratio (null: the row has absolute
//                          limits instead, in extra.limits)
//     ok?:        boolean  whether the row meets its target (computed from ratio <= target
//                          when absent)
//     unit:       string   what `ms` is per ("ms", "ms per 1M-entry area", ...)
//     extra:      object   anything else worth printing (sizes, ns per entry, reps, notes)
//   }
//
// BENCH_REPS=<n> sets the repetitions of the rows that honour it (default 3).
import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Print rows as a table (or JSON). */
export function printRows(rows, json) {
  if (json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  for (const r of rows) {
    const ok = r.ok ?? (r.target !== null && r.ratio <= r.target);
    const target = r.target === null ? "absolute limits" : `target <= ${r.target}x`;
    const extra = Object.entries(r.extra ?? {})
      .filter(([, v]) => typeof v !== "object")
      .map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : v}`)
      .join(" ");
    console.log(
      `${ok ? "ok  " : "MISS"} ${r.name.padEnd(52)} ${r.ms.toFixed(1).padStart(9)} ${r.unit}  ${r.ratio.toFixed(1).padStart(8)}x of Buffer.copy (${r.baselineMs.toFixed(3)} ms)  ${target}  ${extra}`,
    );
  }
}

async function main() {
  const dir = fileURLToPath(new URL(".", import.meta.url));
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".bench.mjs"))
    .sort();
  const all = [];
  for (const f of files) {
    const mod = await import(pathToFileURL(`${dir}${f}`).href);
    if (typeof mod.rows !== "function") continue;
    const rows = await mod.rows();
    for (const r of rows) all.push({ file: f, ...r, ok: r.ok ?? (r.target !== null && r.ratio <= r.target) });
  }
  printRows(all, process.argv.includes("--json"));
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await main();
