// Child process of bench/kho.bench.mjs: kexec of a 64 GiB machine with 16 GiB preserved as
// order-9 folios that were never written. Prints one JSON line: wall time of kexec and the
// process's peak RSS (resourceUsage().maxRSS, its own process only).
import { Machine } from "../dist/machine.js";

const t0 = performance.now();
const machine = Machine.boot({ memory: "64 GiB" });
const folios = (16 * 2 ** 30) / (2 * 2 ** 20);
for (let i = 0; i < folios; i++) {
  const phys = machine.kho.allocFolio(9);
  machine.kho.preserveFolio(phys, 9);
}
const setupMs = performance.now() - t0;
const t1 = performance.now();
const next = machine.kexec();
const kexecMs = performance.now() - t1;
if (next.incoming.stampedCount !== folios + 2) throw new Error(`kexec kept ${next.incoming.stampedCount} runs`);
console.log(
  JSON.stringify({
    runs: folios,
    setupMs,
    kexecMs,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    rssAfterBytes: process.memoryUsage().rss,
    nextDataPages: next.memory.dataPageCount,
  }),
);
