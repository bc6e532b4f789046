#!/usr/bin/env node
// Benchmarks of @liveupdate/memfd-luo-v1: `node bench/run.mjs [--json] [--reps R]` (after
// `npx tsc -p tsconfig.build.json` here and in its dependencies; it imports dist/).
// The workload, rows and targets are described in ../../memfd/bench/handler-bench.mjs (one
// driver for both memfd handlers). BENCH_REPS=<n> also sets the repetitions (default 3).
import { MEMFD_V1_SER_SIZE, memfdV1 } from "../dist/index.js";
import { handlerBenchRows, printRows } from "../../memfd/bench/handler-bench.mjs";

const args = process.argv.slice(2);
const repsAt = args.indexOf("--reps");
const reps = repsAt >= 0 ? Math.max(1, Number(args[repsAt + 1])) : Number(process.env.BENCH_REPS ?? 3);
printRows(handlerBenchRows(memfdV1, "memfd-v1", MEMFD_V1_SER_SIZE, reps), args.includes("--json"));
