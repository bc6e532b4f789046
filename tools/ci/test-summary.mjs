#!/usr/bin/env node
// One closing line for the whole tree, summed over every package's vitest JSON report
// (turbo replays cached reports, so a cache hit still counts its tests).
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

let passed = 0, failed = 0, skipped = 0;
const rows = [];
for (const group of ["packages", "tools", "examples"]) {
  if (!existsSync(group)) continue;
  for (const name of readdirSync(group)) {
    const report = join(group, name, ".vitest", "report.json");
    if (!existsSync(report)) continue;
    const r = JSON.parse(readFileSync(report, "utf8"));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests + r.numTodoTests;
    rows.push(`${join(group, name).padEnd(32)} ${String(r.numPassedTests).padStart(6)} passed ${String(r.numFailedTests).padStart(4)} failed`);
  }
}
console.log(rows.join("\n"));
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
