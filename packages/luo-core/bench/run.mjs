// Benchmarks of @liveupdate/luo-core: `node bench/run.mjs [--json]` (after `npx tsc -p
// tsconfig.build.json`; compile-free, it imports dist/).
//
// The Linux selftests' stress sizes end to end, with the bench handler (bench/stress-handler.mjs):
//
//   sessions: luo_stress_sessions: 2000 sessions created (+ the state session), kexec, first
//             open (deserialize), 2000 x retrieve + finish + close
//   files:    luo_stress_files: 500 one-page memfds preserved in one session, kexec, first
//             open, 500 x retrieve (+ byte check), finish
//   ioctl:    the sessions case through the byte-level ioctl adapter (create / retrieve /
//             finish with C-layout argument bytes), as the selftest binary drives it
//
// Each row: { name, ms (median total), unit, phases: {create|preserve, kexec, open, retrieve}
// (median ms each), extra: { reps, perItemUs } }. BENCH_REPS=<n> sets the repetitions (default 5).
import { pathToFileURL } from "node:url";
import {
  LiveUpdate,
  LIVEUPDATE_IOCTL_CREATE_SESSION,
  LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
  LIVEUPDATE_SESSION_FINISH,
} from "../dist/index.js";
import { BenchFile, benchHandler } from "./stress-handler.mjs";

const REPS = Number(process.env.BENCH_REPS ?? 5);
const NUM_SESSIONS = 2000;
const NUM_FILES = 500;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timed(phases, name, fn) {
  const t0 = performance.now();
  const out = fn();
  phases[name] = performance.now() - t0;
  return out;
}

function check(cond, what) {
  if (!cond) throw new Error(`bench check failed: ${what}`);
}

function sessionsOnce() {
  const phases = {};
  const lu = LiveUpdate.boot({ memory: "1 GiB", handlers: [benchHandler] });
  const dev = lu.open();
  timed(phases, "create", () => {
    const state = dev.createSession("kexec_many_state");
    state.preserveFd(new BenchFile(new TextEncoder().encode("2")), 999);
    for (let i = 0; i < NUM_SESSIONS; i++) dev.createSession(`many-test-${i}`);
  });
  const next = timed(phases, "kexec", () => lu.kexec({ handlers: [benchHandler] }));
  const dev2 = timed(phases, "open", () => next.open());
  timed(phases, "retrieve", () => {
    for (let i = 0; i < NUM_SESSIONS; i++) {
      const s = dev2.retrieveSession(`many-test-${i}`);
      s.finish();
      s.close();
    }
    const state = dev2.retrieveSession("kexec_many_state");
    check(state.retrieveFd(999).bytes[0] === 0x32, "state file");
    state.finish();
  });
  check(next.sessions().length === 1, "sessions left");
  return phases;
}

function filesOnce() {
  const phases = {};
  const lu = LiveUpdate.boot({ memory: "1 GiB", handlers: [benchHandler] });
  const dev = lu.open();
  const page = (i) => {
    const b = new Uint8Array(4096);
    b.set(new TextEncoder().encode(`file-data-${i}`));
    return b;
  };
  timed(phases, "preserve", () => {
    const s = dev.createSession("many_files_session");
    for (let i = 0; i < NUM_FILES; i++) s.preserveFd(new BenchFile(page(i)), i);
  });
  const next = timed(phases, "kexec", () => lu.kexec({ handlers: [benchHandler] }));
  const dev2 = timed(phases, "open", () => next.open());
  timed(phases, "retrieve", () => {
    const s = dev2.retrieveSession("many_files_session");
    for (let i = 0; i < NUM_FILES; i++) {
      const f = s.retrieveFd(i);
      check(new TextDecoder().decode(f.bytes.subarray(0, 10 + String(i).length)) === `file-data-${i}`, `file ${i}`);
    }
    s.finish();
  });
  return phases;
}

function sessionArg(name) {
  const arg = new Uint8Array(72);
  new DataView(arg.buffer).setUint32(0, 72, true);
  arg.set(new TextEncoder().encode(name), 8);
  return arg;
}

function ioctlOnce() {
  const phases = {};
  const lu = LiveUpdate.boot({ memory: "1 GiB", handlers: [benchHandler] });
  const luFd = lu.open().fd;
  timed(phases, "create", () => {
    for (let i = 0; i < NUM_SESSIONS; i++) check(lu.ioctl(luFd, LIVEUPDATE_IOCTL_CREATE_SESSION, sessionArg(`many-test-${i}`)) === 0, "create");
  });
  const next = timed(phases, "kexec", () => lu.kexec({ handlers: [benchHandler] }));
  const fd2 = timed(phases, "open", () => next.open().fd);
  const finish = new Uint8Array(8);
  new DataView(finish.buffer).setUint32(0, 8, true);
  timed(phases, "retrieve", () => {
    for (let i = 0; i < NUM_SESSIONS; i++) {
      const arg = sessionArg(`many-test-${i}`);
      check(next.ioctl(fd2, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, arg) === 0, "retrieve");
      const sfd = new DataView(arg.buffer).getInt32(4, true);
      check(next.ioctl(sfd, LIVEUPDATE_SESSION_FINISH, finish) === 0, "finish");
      next.fds.close(sfd);
    }
  });
  return phases;
}

function row(name, once, items, unit) {
  once(); // warm-up
  const runs = [];
  for (let r = 0; r < REPS; r++) runs.push(once());
  const phaseNames = Object.keys(runs[0]);
  const phases = Object.fromEntries(phaseNames.map((p) => [p, median(runs.map((x) => x[p]))]));
  const totals = runs.map((x) => phaseNames.reduce((a, p) => a + x[p], 0));
  const ms = median(totals);
  return { name, ms, unit, phases, extra: { reps: REPS, items, perItemUs: (ms * 1000) / items } };
}

export function rows() {
  return [
    row(`luo_stress_sessions: ${NUM_SESSIONS} sessions end to end`, sessionsOnce, NUM_SESSIONS, "ms"),
    row(`luo_stress_files: ${NUM_FILES} memfds end to end`, filesOnce, NUM_FILES, "ms"),
    row(`ioctl bytes: ${NUM_SESSIONS} sessions end to end`, ioctlOnce, NUM_SESSIONS, "ms"),
  ];
}

function main() {
  const all = rows();
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(all, null, 2));
    return;
  }
  for (const r of all) {
    const phases = Object.entries(r.phases)
      .map(([k, v]) => `${k}=${v.toFixed(1)}`)
      .join(" ");
    console.log(`${r.name.padEnd(48)} ${r.ms.toFixed(1).padStart(8)} ${r.unit}  (${r.extra.perItemUs.toFixed(1)} us/item; ${phases}; reps=${r.extra.reps})`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main();
