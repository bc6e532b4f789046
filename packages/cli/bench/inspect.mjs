#!/usr/bin/env node
// `luo inspect --json` as a whole process on the 1 GiB raw dump of the golden `minimal` case:
// median wall time and peak RSS over several runs, against the budget of the issue (0.19 s,
// 100 MiB: what an independent Python decoder of the same dump takes). Baselines from the
// same run: a bare `node -e 0` and `luo --version` (process start and the CLI's own imports).
//
// usage: node bench/inspect.mjs [--runs N] [--json]     (after `pnpm build`)
//
// Peak RSS comes from GNU time (`/usr/bin/time -f "%e %M"`) when installed, else from a
// wrapper process that runs the CLI in-process and reports `process.resourceUsage().maxRSS`.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, "../dist/bin/luo.js");
const MAIN = path.resolve(here, "../dist/main.js");
const GOLDEN = path.resolve(here, "../../../../shared/golden/real-kernel");
const BUDGET_SECONDS = 0.19;
const BUDGET_MIB = 100;

const { values } = parseArgs({ options: { runs: { type: "string", default: "9" }, json: { type: "boolean" } } });
const runs = Math.max(1, Number(values.runs));

if (!fs.existsSync(BIN)) {
  console.error(`${BIN} is missing: run 'pnpm build' first`);
  process.exit(2);
}

/** The raw dump, decompressed once into the cache kho's tests use (keyed by size and mtime). */
function rawDump() {
  const src = path.join(GOLDEN, "minimal", "handover-mem.raw.zst");
  const st = fs.statSync(src);
  const dir = path.join(os.tmpdir(), "liveupdate-kho-golden-cache");
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, `minimal-handover-mem.raw-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (fs.existsSync(out)) return out;
  const part = `${out}.${process.pid}.${Date.now()}.part`;
  console.error(`decompressing ${src} (1 GiB, once) ...`);
  execFileSync("zstd", ["-d", "-q", "-f", "--long=30", "-o", part, src], { stdio: ["ignore", "ignore", "inherit"] });
  fs.renameSync(part, out);
  return out;
}

const gnuTime = fs.existsSync("/usr/bin/time") && spawnSync("/usr/bin/time", ["-f", "%e %M", "true"]).status === 0;

/** One process: wall seconds and peak RSS in KiB. */
function measure(args) {
  if (gnuTime) {
    const r = spawnSync("/usr/bin/time", ["-f", "%e %M", process.execPath, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`'${args.join(" ")}' exited ${r.status}: ${r.stderr}`);
    const [wall, kib] = r.stderr.trim().split("\n").at(-1).split(" ").map(Number);
    return { wall, kib };
  }
  // Fallback: the CLI in-process in a wrapper; wall time measured from here, RSS by the wrapper.
  const script = args[0] === BIN
    ? `const { run } = await import(${JSON.stringify(MAIN)}); const code = await run(${JSON.stringify(args.slice(1))}, { stdout: () => {}, stderr: (t) => process.stderr.write(t) }); process.stdout.write(JSON.stringify({ code, kib: process.resourceUsage().maxRSS }));`
    : `process.stdout.write(JSON.stringify({ code: 0, kib: process.resourceUsage().maxRSS }));`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const out = JSON.parse(r.stdout);
  if (out.code !== 0) throw new Error(`'${args.join(" ")}' exited ${out.code}: ${r.stderr}`);
  return { wall, kib: out.kib };
}

function series(args) {
  measure(args); // warm the page cache and the file system
  const samples = Array.from({ length: runs }, () => measure(args));
  const walls = samples.map((s) => s.wall).sort((a, b) => a - b);
  return { medianSeconds: walls[Math.floor(walls.length / 2)], minSeconds: walls[0], peakMiB: Math.max(...samples.map((s) => s.kib)) / 1024 };
}

const raw = rawDump();
const rows = [
  { name: "node -e 0", ...series(["-e", "0"]) },
  { name: "luo --version", ...series([BIN, "--version"]) },
  { name: "luo inspect <1 GiB raw> --json", ...series([BIN, "inspect", raw, "--json"]) },
];
const inspect = rows[2];
const within = inspect.medianSeconds < BUDGET_SECONDS && inspect.peakMiB < BUDGET_MIB;
const result = { runs, method: gnuTime ? "/usr/bin/time" : "resourceUsage wrapper", loadAverage: os.loadavg()[0], budget: { seconds: BUDGET_SECONDS, mib: BUDGET_MIB }, within, rows };

if (values.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`luo inspect on the golden minimal raw dump (${runs} runs each, ${result.method}, load ${result.loadAverage.toFixed(2)})`);
  const w = Math.max(...rows.map((r) => r.name.length));
  console.log(`  ${"process".padEnd(w)}  median s  min s  peak MiB`);
  for (const r of rows) console.log(`  ${r.name.padEnd(w)}  ${r.medianSeconds.toFixed(3).padStart(8)}  ${r.minSeconds.toFixed(3).padStart(5)}  ${r.peakMiB.toFixed(1).padStart(8)}`);
  console.log(`budget ${BUDGET_SECONDS} s and ${BUDGET_MIB} MiB: ${within ? "within" : "OVER"}`);
}
