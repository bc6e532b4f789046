#!/usr/bin/env node
// `pnpm bench` for @liveupdate/fdt-codec: the TypeScript codec against Debian's libfdt (C) on
// the same blobs.
//
//   node bench/run.mjs [--json | --markdown] [--target-ms N] [--reps R] [--warmup-ms N] [--rebuild] [--dist DIR] [blob.dtb...]
//
// --dist DIR times the codec built in DIR (tsc output, like dist/) instead of dist/, without
// rebuilding anything: e.g. a build of an older commit, to compare before and after under
// the same machine load (run the two alternately).
//
// Without blob arguments it measures three groups from the golden corpus (read in place from
// <repo>/../shared/golden/dtb, never copied): the largest dtb, the median-size dtb, and every
// dtb libfdt's fdt_check_full accepts (one operation = one pass over all of them, i.e. the sum
// of their times). With blob arguments, each blob is its own group.
//
// Rows (ns per operation, median of R calibrated samples of ~N ms each, both sides):
//   (a) check + walk     C: fdt_check_full + tag walk reading every property's name offset,
//                        value pointer and length.  TS: checkLibfdt + Fdt.from + the same visit.
//                        Target TS <= 1.0x C.
//   (b) sequential write C: fdt_create .. fdt_finish replaying a pre-extracted call list into a
//                        buffer of exactly the output size.  TS: the same list into
//                        FdtSequentialWriter with the same buffer size.  Target <= 1.5x.
//   (c) decode + encode  TS: decodeTree + encodeDtc, against C's (a).  Target <= 3.0x.
//
// Prints a table (or, with --json, one JSON document with the same data and the machine) and
// always exits 0 when it could measure: a missed target is reported, not failed.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, platform, release } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildHarness, ccVersion, libfdtVersion, runHarness, startServer } from "./c-harness.mjs";
import { extractCalls, fnv1a32 } from "./calls.mjs";
import { calibrate, median, sample, sinkValue, warmUp } from "./timing.mjs";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const goldenDtbDir = resolve(pkgDir, "..", "..", "..", "shared", "golden", "dtb");
const cacheDir = join(pkgDir, "node_modules", ".cache", "fdt-bench");

// ---- arguments ------------------------------------------------------------------------------

const options = {
  json: false,
  markdown: false,
  targetMs: 150,
  reps: 5,
  warmupMs: 200,
  rebuild: false,
  /** @type {string | null} */
  dist: null,
  blobs: /** @type {string[]} */ ([]),
};
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) usage(`${a} needs a positive number`);
      return v;
    };
    if (a === "--json") options.json = true;
    else if (a === "--markdown") options.markdown = true;
    else if (a === "--target-ms") options.targetMs = value();
    else if (a === "--reps") options.reps = Math.round(value());
    else if (a === "--warmup-ms") options.warmupMs = value();
    else if (a === "--rebuild") options.rebuild = true;
    else if (a === "--dist") {
      if (i + 1 >= argv.length) usage("--dist needs a directory");
      options.dist = resolve(argv[++i]);
    }
    else if (a === "--help" || a === "-h") usage(null);
    else if (a.startsWith("--")) usage(`unknown option ${a}`);
    else options.blobs.push(resolve(a));
  }
}

/** @param {string | null} error */
function usage(error) {
  const text =
    "usage: node bench/run.mjs [--json | --markdown] [--target-ms N] [--reps R] [--warmup-ms N] [--rebuild] [--dist DIR] [blob.dtb...]\n";
  if (error) {
    process.stderr.write(`bench: ${error}\n${text}`);
    process.exit(2);
  }
  process.stdout.write(text);
  process.exit(0);
}

/** Progress goes to stderr so `--json` keeps stdout a single JSON document. */
const log = (/** @type {string} */ s) => process.stderr.write(`bench: ${s}\n`);

// ---- the built package ----------------------------------------------------------------------

/** Rebuild dist/ with tsc when any src/*.ts is newer than its emitted .js (tsc emits even with type errors elsewhere). */
function ensureDist() {
  const srcDir = join(pkgDir, "src");
  const distDir = join(pkgDir, "dist");
  /** @type {string[]} */
  const stale = [];
  const walk = (/** @type {string} */ dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) {
        const out = join(distDir, relative(srcDir, p)).replace(/\.ts$/, ".js");
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(p).mtimeMs) stale.push(relative(pkgDir, p));
      }
    }
  };
  walk(srcDir);
  if (options.rebuild || stale.length > 0) {
    log(`dist is stale (${stale.slice(0, 5).join(", ")}${stale.length > 5 ? ", ..." : ""}): npx tsc -p tsconfig.build.json`);
    try {
      execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: pkgDir, stdio: ["ignore", "ignore", "inherit"] });
    } catch {
      log("tsc reported errors (it still emitted); continuing with what dist/ holds");
    }
  }
}

// ---- blobs ----------------------------------------------------------------------------------

/** @param {string} dir @param {string[]} out */
function walkDtbs(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walkDtbs(p, out);
    else if (name.endsWith(".dtb")) out.push(p);
  }
  return out;
}

/** A short name for a blob in the table. */
function label(/** @type {string} */ path) {
  const rel = relative(goldenDtbDir, path);
  return rel.startsWith("..") ? relative(process.cwd(), path) : rel;
}

// ---- main -----------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  if (options.dist === null) ensureDist();
  else if (!existsSync(options.dist)) throw new Error(`--dist: ${options.dist} does not exist`);
  const binary = buildHarness(pkgDir, { force: options.rebuild, log });
  const { loadCodec } = await import("./codec.mjs");
  const codec = await loadCodec(options.dist ?? join(pkgDir, "dist"), options.dist === null ? "dist" : relative(process.cwd(), options.dist) || ".");

  let paths = options.blobs;
  if (paths.length === 0) {
    if (!existsSync(goldenDtbDir)) throw new Error(`golden corpus not found at ${goldenDtbDir}`);
    paths = walkDtbs(goldenDtbDir, []);
  }

  // Probe: libfdt's verdict and sequential-write output for every blob (C), then the same
  // blobs through the TS codec once, outside any timing, to compare results and to find the
  // blobs both sides can run.
  log(`probing ${paths.length} blobs (C: fdt_check_full, sequential-write replay; TS: the same, once)`);
  /** @type {Map<string, any>} */
  const probes = new Map();
  for (const p of runHarness(binary, ["probe", ...paths])) probes.set(/** @type {string} */ (p.path), p);

  /** @type {any[]} */
  const blobs = [];
  const verdictMismatches = [];
  for (const path of paths) {
    const c = probes.get(path);
    const bytes = new Uint8Array(readFileSync(path));
    if (codec.libfdtVerdict) {
      let tsVerdict;
      try {
        tsVerdict = codec.libfdtVerdict(bytes);
      } catch (e) {
        tsVerdict = errorText(e);
      }
      if (tsVerdict !== c.check) verdictMismatches.push({ blob: label(path), c: c.check, ts: tsVerdict });
    }
    if (c.check !== 0) {
      if (options.blobs.length > 0) log(`${label(path)}: fdt_check_full says ${c.check}, not timed`);
      continue;
    }
    const blob = {
      path,
      label: label(path),
      bytes,
      size: bytes.length,
      nodes: c.nodes,
      props: c.props,
      swSize: c.swSize,
      swHash: c.swHash,
      calls: extractCalls(bytes),
      /** @type {string[]} */
      tsErrors: [],
      swBytesMatch: false,
      dtcEncodeIdentical: false,
    };
    if (blob.calls.nodes !== c.nodes || blob.calls.props !== c.props)
      throw new Error(`${blob.label}: JS call list (${blob.calls.nodes}/${blob.calls.props}) != C (${c.nodes}/${c.props})`);
    if (codec.checkWalk) {
      try {
        codec.checkWalk(bytes);
      } catch (e) {
        blob.tsErrors.push(`a: ${errorText(e)}`);
      }
    }
    if (codec.sequentialWriter) {
      try {
        const out = codec.sequentialWriter(blob.calls, blob.swSize)();
        blob.swBytesMatch = out.length === c.swSize && fnv1a32(out) === c.swHash;
      } catch (e) {
        blob.tsErrors.push(`b: ${errorText(e)}`);
      }
    }
    if (codec.decodeEncode) {
      try {
        const out = codec.decodeEncode(bytes);
        blob.dtcEncodeIdentical = out.length === bytes.length && out.every((x, i) => x === bytes[i]);
      } catch (e) {
        blob.tsErrors.push(`c: ${errorText(e)}`);
      }
    }
    blobs.push(blob);
  }
  const usable = blobs.filter((b) => b.tsErrors.length === 0);
  const excluded = blobs.filter((b) => b.tsErrors.length > 0).map((b) => ({ blob: b.label, errors: b.tsErrors }));
  const swMismatches = codec.sequentialWriter
    ? blobs.filter((b) => b.tsErrors.length === 0 && !b.swBytesMatch).map((b) => b.label)
    : [];
  if (codec.missing.length > 0) log(`not in dist/ yet: ${codec.missing.join(", ")} (their rows are n/a)`);
  for (const x of excluded) log(`TS codec fails on ${x.blob} (excluded from timing): ${x.errors.join("; ")}`);
  if (verdictMismatches.length > 0) log(`checkLibfdt disagrees with fdt_check_full on ${verdictMismatches.length} blob(s)`);
  if (swMismatches.length > 0) log(`FdtSequentialWriter output differs from libfdt's on ${swMismatches.length} blob(s)`);

  // Groups.
  /** @type {{ key: string, title: string, blobs: any[] }[]} */
  const groups = [];
  if (options.blobs.length > 0) {
    for (const b of usable) groups.push({ key: `blob${groups.length}`, title: b.label, blobs: [b] });
    if (groups.length === 0) throw new Error("none of the blobs given is accepted by both libfdt and the TS codec");
  } else {
    const bySize = [...usable].sort((x, y) => x.size - y.size || (x.path < y.path ? -1 : 1));
    if (bySize.length === 0) throw new Error("no blob both libfdt and the TS codec accept");
    const largest = bySize[bySize.length - 1];
    const medianBlob = bySize[(bySize.length - 1) >> 1];
    groups.push({ key: "largest", title: `largest: ${largest.label}`, blobs: [largest] });
    groups.push({ key: "median", title: `median: ${medianBlob.label}`, blobs: [medianBlob] });
    groups.push({ key: "corpus", title: `corpus: ${usable.length} blobs libfdt accepts`, blobs: usable });
  }

  // Timing: C (fdt_bench serve) and TS samples alternate, row by row, so both sides run
  // under the same machine load; each side is calibrated to ~targetMs per sample first.
  const server = startServer(binary);
  /** @type {any[]} */
  const rows = [];
  try {
    const cIndex = new Map();
    for (const g of groups) {
      let spec = `${g.key}=${g.blobs[0].path}`;
      if (g.blobs.length > 1) {
        const list = join(cacheDir, `${g.key}.list`);
        writeFileSync(list, g.blobs.map((b) => b.path).join("\n") + "\n");
        spec = `${g.key}=@${list}`;
      }
      const loaded = await server.send(`load ${spec}`);
      cIndex.set(g.key, loaded.index);
    }
    log(
      `timing C (libfdt) and TS (${codec.source}) alternately: ~${options.targetMs} ms x ${options.reps} samples ` +
        `per side per row, ${options.warmupMs} ms JIT warm-up`,
    );
    for (const g of groups) {
      const bytesList = g.blobs.map((b) => b.bytes);
      const { checkWalk, sequentialWriter, decodeEncode } = codec;
      const opA = checkWalk
        ? () => {
            let acc = 0;
            for (let i = 0; i < bytesList.length; i++) acc = (acc + checkWalk(bytesList[i])) | 0;
            return acc;
          }
        : null;
      const writers = sequentialWriter ? g.blobs.map((b) => sequentialWriter(b.calls, b.swSize)) : [];
      const opB = sequentialWriter
        ? () => {
            let acc = 0;
            for (let i = 0; i < writers.length; i++) acc = (acc + writers[i]().length) | 0;
            return acc;
          }
        : null;
      const opC = decodeEncode
        ? () => {
            let acc = 0;
            for (let i = 0; i < bytesList.length; i++) acc = (acc + decodeEncode(bytesList[i]).length) | 0;
            return acc;
          }
        : null;
      const bytes = g.blobs.reduce((sum, b) => sum + b.size, 0);
      const common = { group: g.key, blob: g.title, blobs: g.blobs.length, bytes };
      const idx = cIndex.get(g.key);
      rows.push(row("a", "check + walk", common, ...(await timePair(server, idx, "a", opA)), 1.0));
      rows.push(row("b", "sequential write", common, ...(await timePair(server, idx, "b", opB)), 1.5));
      rows.push(row("c", "decodeTree + encodeDtc vs C (a)", common, ...(await timePair(server, idx, "a", opC)), 3.0));
      log(`  ${g.title}: done`);
    }
  } finally {
    server.close();
  }

  const report = {
    package: "@liveupdate/fdt-codec",
    command: "node bench/run.mjs" + process.argv.slice(2).map((a) => ` ${a}`).join(""),
    date: new Date().toISOString(),
    machine: {
      node: process.version,
      v8: process.versions.v8,
      cc: ccVersion(),
      libfdt: libfdtVersion(),
      cpu: cpus()[0]?.model ?? null,
      cores: cpus().length,
      os: `${platform()} ${release()}`,
    },
    config: {
      targetMs: options.targetMs,
      reps: options.reps,
      warmupMs: options.warmupMs,
      statistic: "median ns per operation",
      codec: codec.source,
    },
    groups: groups.map((g) => ({
      key: g.key,
      title: g.title,
      blobs: g.blobs.length,
      bytes: g.blobs.reduce((sum, b) => sum + b.size, 0),
      nodes: g.blobs.reduce((sum, b) => sum + b.nodes, 0),
      properties: g.blobs.reduce((sum, b) => sum + b.props, 0),
      paths: g.blobs.length === 1 ? [g.blobs[0].path] : undefined,
    })),
    rows,
    correctness: {
      blobsProbed: paths.length,
      libfdtAccepted: blobs.length,
      timed: usable.length,
      missingExports: codec.missing,
      excluded,
      // null: that side of the codec is not built yet, nothing was compared.
      checkVerdictMismatches: codec.libfdtVerdict ? verdictMismatches : null,
      sequentialWriteByteMismatches: codec.sequentialWriter ? swMismatches : null,
      // Informational: blobs that decodeTree + encodeDtc give back byte for byte (those dtc wrote).
      dtcEncodeIdenticalToInput: codec.decodeEncode ? usable.filter((b) => b.dtcEncodeIdentical).length : null,
    },
    sink: sinkValue(),
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  if (options.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  else printTable(report);
}

/**
 * One row's measurements: calibrate both sides, then alternate C and TS samples (C first on
 * even samples, TS first on odd ones).
 * @param {{ send: (line: string) => Promise<any> }} server
 * @param {number} groupIndex the group's index in the C server
 * @param {"a" | "b"} cRow
 * @param {(() => number) | null} tsOp null when the TS side is not built yet
 * @returns {Promise<[Measured, Measured | null]>}
 */
async function timePair(server, groupIndex, cRow, tsOp) {
  const cIters = (await server.send(`calibrate ${groupIndex} ${cRow} ${options.targetMs}`)).iters;
  let tsIters = 0;
  if (tsOp) {
    warmUp(tsOp, options.warmupMs);
    tsIters = calibrate(tsOp, options.targetMs);
  }
  /** @type {number[]} */
  const cSamples = [];
  /** @type {number[]} */
  const tsSamples = [];
  const cSample = async () => cSamples.push((await server.send(`sample ${groupIndex} ${cRow} ${cIters}`)).nsPerOp);
  for (let r = 0; r < options.reps; r++) {
    if (r % 2 === 0) await cSample();
    if (tsOp) tsSamples.push(sample(tsOp, tsIters));
    if (r % 2 === 1) await cSample();
  }
  const round = (/** @type {number} */ x) => Math.round(x * 10) / 10;
  return [
    { cRow, nsPerOp: median(cSamples), iters: cIters, samples: cSamples.map(round) },
    tsOp ? { nsPerOp: median(tsSamples), iters: tsIters, samples: tsSamples.map(round) } : null,
  ];
}

/** @typedef {{ nsPerOp: number, iters: number, samples: number[], cRow?: string }} Measured */

/**
 * @param {string} id @param {string} what @param {object} common
 * @param {Measured} c C side (ns)
 * @param {Measured | null} ts null when the TS side is not built yet
 * @param {number} target
 */
function row(id, what, common, c, ts, target) {
  const ratio = ts ? ts.nsPerOp / c.nsPerOp : null;
  return {
    row: id,
    what,
    ...common,
    cUs: c.nsPerOp / 1000,
    tsUs: ts ? ts.nsPerOp / 1000 : null,
    ratio,
    target,
    pass: ratio === null ? null : ratio <= target,
    c: { row: c.cRow, iters: c.iters, samplesNs: c.samples },
    ts: ts ? { iters: ts.iters, samplesNs: ts.samples } : null,
  };
}

/** @param {unknown} e */
function errorText(e) {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** @param {any} report */
function printTable(report) {
  const fmtUs = (/** @type {number} */ us) => (us >= 100 ? us.toFixed(0) : us >= 10 ? us.toFixed(1) : us.toFixed(2));
  const header = ["row", "blob", "C us", "TS us", "TS/C", "target", ""];
  const lines = report.rows.map((/** @type {any} */ r) => [
    `(${r.row}) ${r.what}`,
    r.blob,
    fmtUs(r.cUs),
    r.tsUs === null ? "n/a" : fmtUs(r.tsUs),
    r.ratio === null ? "n/a" : `${r.ratio.toFixed(2)}x`,
    `<= ${r.target.toFixed(1)}x`,
    r.pass === null ? "n/a" : r.pass ? "ok" : "MISS",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((/** @type {string[]} */ l) => l[i].length)));
  const right = new Set([2, 3, 4, 5]);
  const md = options.markdown;
  const fmt = (/** @type {string[]} */ cells) => {
    const padded = cells.map((s, i) => (right.has(i) ? s.padStart(widths[i]) : s.padEnd(widths[i])));
    return md ? `| ${padded.join(" | ")} |` : padded.join("  ").trimEnd();
  };
  const rule = md
    ? `|${widths.map((w, i) => (right.has(i) ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`
    : widths.map((w) => "-".repeat(w)).join("  ");
  const m = report.machine;
  const out = [];
  const br = md ? "  " : ""; // markdown line break
  out.push(`@liveupdate/fdt-codec vs libfdt ${m.libfdt ?? "?"} (C, ${m.cc ?? "cc ?"} -O2)${br}`);
  out.push(`node ${m.node}, ${m.cpu} x${m.cores}, ${m.os}${br}`);
  out.push(`median of ${report.config.reps} samples of ~${report.config.targetMs} ms; us per operation (corpus: one pass over every blob)${br}`);
  out.push(`TS side: ${report.config.codec}`);
  out.push("");
  out.push(fmt(header));
  out.push(rule);
  for (const l of lines) out.push(fmt(l));
  out.push("");
  const misses = report.rows.filter((/** @type {any} */ r) => r.pass === false);
  const notMeasured = report.rows.filter((/** @type {any} */ r) => r.pass === null);
  const li = md ? "- " : ""; // markdown list item
  if (notMeasured.length > 0) out.push(`${li}NOT MEASURED (not in dist/ yet: ${report.correctness.missingExports.join(", ")}): ${notMeasured.length} row(s)`);
  if (misses.length === 0) out.push(li + (notMeasured.length > 0 ? "every measured row met its target" : "all targets met"));
  else
    for (const r of misses)
      out.push(`${li}MISSED TARGET: (${r.row}) ${r.what} on ${r.blob}: ${r.ratio.toFixed(2)}x C, target <= ${r.target.toFixed(1)}x`);
  const k = report.correctness;
  out.push(
    `${li}correctness: ${k.blobsProbed} blobs probed, ${k.libfdtAccepted} accepted by libfdt, ${k.timed} timed; ` +
      `checkLibfdt verdict mismatches: ${k.checkVerdictMismatches?.length ?? "n/a"}; ` +
      `sequential-write byte mismatches: ${k.sequentialWriteByteMismatches?.length ?? "n/a"}; TS failures: ${k.excluded.length}; ` +
      `decodeTree + encodeDtc identical to the input: ${k.dtcEncodeIdenticalToInput ?? "n/a"} of ${k.timed}`,
  );
  /** Up to `max` lines of a list, then a count of the rest (--json has them all). */
  const some = (/** @type {string[]} */ items, max = 8) => {
    for (const item of items.slice(0, max)) out.push(`  ${item}`);
    if (items.length > max) out.push(`  ... and ${items.length - max} more (see --json)`);
  };
  some((k.checkVerdictMismatches ?? []).map((/** @type {any} */ v) => `verdict mismatch: ${v.blob}: libfdt ${v.c}, checkLibfdt ${v.ts}`));
  some((k.sequentialWriteByteMismatches ?? []).map((/** @type {string} */ b) => `sequential-write bytes differ from libfdt: ${b}`));
  some(k.excluded.map((/** @type {any} */ x) => `TS failure (not timed): ${x.blob}: ${x.errors.join("; ")}`));
  out.push(`${li}(${report.seconds} s)`);
  process.stdout.write(out.join("\n") + "\n");
}

main().catch((e) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
