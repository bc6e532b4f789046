/**
 * `luo simulate`: a live update end to end on a simulated machine, verified byte for byte.
 *
 * Exit codes: 0 every file retrieved by the consumer kernel and verified; 1 otherwise (a
 * retrieve failed, as the handler sets predict or not, or a byte differs; a step refused);
 * 2 usage errors and an unwritable `--out`.
 */
import { parseArgs } from "node:util";
import { parseByteSize } from "@liveupdate/kho";
import { UsageError, type RunIO } from "../io.js";
import { formatBytes, formatFolios, formatMs, formatTable, paletteFor, StepReporter, type Palette } from "../simulate/format.js";
import { HANDLERS, ImageWriteError, runSimulation, SimulateError, type FileOutcome, type SimulationResult } from "../simulate/runner.js";
import { F_SEAL_SEAL } from "@liveupdate/memfd";
import { buildScenario, SCALES, scenarioFiles, sealsOf, totalSize, writtenBytes, type ScenarioSize } from "../simulate/scenario.js";

const HANDLER_NAMES = Object.keys(HANDLERS);

const HELP = `usage: luo simulate [options]

Boot a machine, put memfds of mixed kinds (THP guest RAM, sparse, sealed, multi-size THP)
into one LUO session per VM, preserve them, kexec into a next kernel with a chosen handler
set, retrieve, and verify every byte against contents regenerated from the seed.

options:
  --producer H        handler in the old kernel: ${HANDLER_NAMES.join(" | ")} (default memfd-v2)
  --consumer H[,H]    handlers in the next kernel, comma-separated, or "none"
                      (default: the producer)
  --memory SIZE       machine memory (default 8GiB)
  --scale S           small | default | large: scenario size presets
  --vms N             sessions, one per VM (1..256)
  --files N           memfds per VM (1..256), kinds cycling huge, sparse, sealed, mthp
  --file-size SIZE    base file size (4KiB..1GiB); sizes grow with the VM number
  --seed N            contents and layout seed, 0..4294967295 (default 1)
  --out IMAGE         keep the handover as an ELF core: the next kernel's memory at its
                      entry point (KHO root FDT in a LIVEUPDATE note); read it with
                      'luo inspect IMAGE'
  --json              one JSON document on stdout (schema below), no progress
  -h, --help

presets (VMs x memfds per VM, base file size):
  small ${SCALES.small.vms} x ${SCALES.small.filesPerVm}, ${formatBytes(SCALES.small.fileSize)}; default ${SCALES.default.vms} x ${SCALES.default.filesPerVm}, ${formatBytes(SCALES.default.fileSize)}; large ${SCALES.large.vms} x ${SCALES.large.filesPerVm}, ${formatBytes(SCALES.large.fileSize)}

exit status: 0 every file retrieved by the next kernel and verified; 1 a file was not
(the next kernel lacks the producer's handler: the errno is printed, and the same
handover is retrieved with the producer's handler to show nothing was lost; or a byte
differs); 2 usage.

time breakdown (wall clock around the luo-core and kho calls):
  populate   memfd_create, ftruncate, the writes, the seals (not a LUO phase)
  preserve   every PRESERVE_FD (the handler pins, fills holes, writes its folio array)
  freeze     the producer handler's freeze ops, timed by a thin wrapper around it
  serialize  LUO's before-kexec hook (session and file records, FLBs) minus freeze:
             from the kexec call to a hook registered after LUO's
  image      with --out: copying the handed-over memory and writing the ELF core
  kexec      memory handover (every page not preserved becomes poison), the next
             kernel's KHO boot (FDT check, radix walk, KHOP stamps), LUO attach
  restore    first open of /dev/liveupdate in the next kernel (both opens after a failure)
  recover    after a failed first open: LUO detached and attached again with the producer
  retrieve   every RETRIEVE_SESSION and RETRIEVE_FD (folios into new page caches)
  verify     reading every byte back, comparing, sha256
  finish     every FINISH

--json schema ("luo-simulate/1"; sizes in bytes, times in milliseconds, tokens and
addresses as "0x" hex strings):
  { schema, exitCode: 0|1, ok: boolean, seed,
    machine: { memory, scratch }, producer: string, consumer: string[],
    scenario: { vms, filesPerVm, fileSize },
    totals: { sessions, files, bytes (sum of sizes), written, ok, recovered, failed },
    sessions: [ { name, files: [ { token, name, kind: "huge"|"sparse"|"sealed"|"mthp",
        size, pos, seals, written, format (the record's compatible) | null,
        result: "ok"|"recovered"|"failed", errno (the next kernel's) | null,
        problems: string[], sealsCarried: boolean,
        folios: { "<order>": count } | null, sha256 (of the bytes read back) | null } ] } ],
    phases: [ { phase, ms } ], totalMs,
    preflight: [ { kind, errno, reason, session?, token?, compatible? } ],
    failure: null | { openErrno, errno, message, failedAt: { session, token?, compatible? } | null,
        predicted, stampsBefore, stampsAfter, recoveryHandlers: string[] },
    image: null | { path, bytes, segments, fdtAddr, fdtSize } }
`;

/** What a usage error prints after its message (the whole help is one --help away). */
const USAGE = `usage: luo simulate [--producer H] [--consumer H,..] [--memory SIZE] [--scale S]
                    [--vms N] [--files N] [--file-size SIZE] [--seed N] [--out IMAGE] [--json]
       luo simulate --help   for what each option does, the exit codes and the JSON schema
`;

const MAX_COUNT = 256;
const MIN_FILE_SIZE = 4096;
const MAX_FILE_SIZE = 2 ** 30;
const MIN_MEMORY = 64 * 2 ** 20;
/** The simulated machine keeps written pages in this process's memory. */
const MAX_WRITTEN = 4 * 2 ** 30;

function parsing<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new UsageError((e as Error).message, USAGE);
  }
}

function count(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_COUNT) throw new UsageError(`--${name} must be a whole number 1..${MAX_COUNT}, not '${text}'`, USAGE);
  return Number(text);
}

function size(name: string, text: string, min: number, max: number): number {
  let bytes: number;
  try {
    bytes = parseByteSize(text);
  } catch {
    throw new UsageError(`--${name} must be a size such as 8GiB or 512MiB, not '${text}'`, USAGE);
  }
  if (bytes < min || bytes > max) throw new UsageError(`--${name} must be ${formatBytes(min)}..${formatBytes(max)}, not ${formatBytes(bytes)}`, USAGE);
  return bytes;
}

function handlerName(option: string, name: string): string {
  if (!(name in HANDLERS)) throw new UsageError(`${option}: unknown handler '${name}' (known: ${HANDLER_NAMES.join(", ")})`, USAGE);
  return name;
}

/** `luo simulate [options]`. */
export function simulateCommand(argv: readonly string[], io: RunIO): number {
  const { values, positionals } = parsing(() =>
    parseArgs({
      args: [...argv],
      options: {
        producer: { type: "string", default: "memfd-v2" },
        consumer: { type: "string" },
        memory: { type: "string", default: "8GiB" },
        scale: { type: "string" },
        vms: { type: "string" },
        files: { type: "string" },
        "file-size": { type: "string" },
        seed: { type: "string", default: "1" },
        out: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    }),
  );
  if (values.help === true) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`, USAGE);
  const producer = handlerName("--producer", values.producer);
  const consumerText = values.consumer ?? producer;
  const consumer = consumerText === "none" ? [] : consumerText.split(",").map((n) => handlerName("--consumer", n.trim()));
  if (new Set(consumer).size !== consumer.length) throw new UsageError(`--consumer lists a handler twice: '${consumerText}'`, USAGE);
  const scale = values.scale ?? "default";
  if (scale !== "small" && scale !== "default" && scale !== "large") throw new UsageError(`--scale must be small, default or large, not '${scale}'`, USAGE);
  const preset = SCALES[scale];
  const sized: ScenarioSize = {
    vms: count("vms", values.vms) ?? preset.vms,
    filesPerVm: count("files", values.files) ?? preset.filesPerVm,
    fileSize: values["file-size"] === undefined ? preset.fileSize : size("file-size", values["file-size"], MIN_FILE_SIZE, MAX_FILE_SIZE),
  };
  const memory = size("memory", values.memory, MIN_MEMORY, 2 ** 46);
  if (memory % 4096 !== 0) throw new UsageError(`--memory must be a whole number of 4 KiB pages, not ${memory} bytes`, USAGE);
  if (!/^\d+$/.test(values.seed) || Number(values.seed) > 0xffffffff) throw new UsageError(`--seed must be a whole number 0..4294967295, not '${values.seed}'`, USAGE);
  const scenario = buildScenario(sized, Number(values.seed));
  // Holes are filled at preserve, so the machine needs every file's full size, plus room
  // for scratch (1/64), metadata and the next kernel's own pages.
  const need = totalSize(scenario);
  if (need > memory * 0.9 - memory / 64) {
    throw new UsageError(`the scenario needs ${formatBytes(need)} of memfds; a ${formatBytes(memory)} machine cannot hold them (raise --memory or lower the size)`, USAGE);
  }
  const written = scenarioFiles(scenario).reduce((n, f) => n + writtenBytes(f), 0);
  if (written > MAX_WRITTEN) {
    throw new UsageError(`the scenario writes ${formatBytes(written)}; luo simulate holds every written byte in this process, at most ${formatBytes(MAX_WRITTEN)}`, USAGE);
  }
  const json = values.json === true;
  const reporter = new StepReporter(io, json);
  const palette = paletteFor(io);
  if (!json) {
    const files = scenario.sessions.length * sized.filesPerVm;
    io.stdout(
      `${palette.bold("luo simulate")}: ${sized.vms} VM${sized.vms === 1 ? "" : "s"} x ${sized.filesPerVm} memfd${sized.filesPerVm === 1 ? "" : "s"} ` +
        `(${files} files, ${formatBytes(need)}), machine ${formatBytes(memory)}, seed ${scenario.seed}\n` +
        `  handlers: ${producer} (old kernel) -> ${consumer.join(", ") || "none"} (next kernel)\n\n`,
    );
  }
  let result: SimulationResult;
  try {
    result = runSimulation({ scenario, memory, producer, consumer, out: values.out, observer: reporter });
  } catch (e) {
    if (e instanceof ImageWriteError) throw new UsageError(e.message);
    if (e instanceof SimulateError) {
      io.stderr(`luo simulate: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  io.stdout(json ? `${JSON.stringify(toJson(result), null, 2)}\n` : render(result, palette));
  return result.exitCode;
}

// ---------------------------------------------------------------------------------------
// output
// ---------------------------------------------------------------------------------------

function hex(n: bigint | number): string {
  return `0x${n.toString(16)}`;
}

function sealsCell(o: FileOutcome): string {
  const seals = sealsOf(o.spec);
  return o.sealsCarried || seals === F_SEAL_SEAL ? hex(seals) : `${hex(seals)}*`;
}

function resultCell(o: FileOutcome): string {
  if (o.result === "ok") return "ok";
  if (o.result === "recovered") return `${o.errno ?? "failed"}, recovered: ok`;
  return `FAILED: ${o.problems.join("; ")}`;
}

function render(r: SimulationResult, p: Palette): string {
  let out = "\n";
  const rows = r.files.map((o) => [
    o.spec.session,
    hex(o.spec.token),
    o.spec.name,
    o.spec.kind,
    formatBytes(o.spec.size),
    o.retrieved === undefined ? "-" : formatFolios(o.retrieved.folios),
    sealsCell(o),
    o.compatible ?? "-",
    resultCell(o),
  ]);
  out += formatTable(["session", "token", "memfd", "kind", "size", "folios", "seals", "format", "result"], rows, ["left", "right", "left", "left", "right", "left", "left", "left", "left"], (row, col, s) => {
    if (col !== 8) return s;
    const o = r.files[row]!;
    return o.result === "ok" ? p.ok(s) : o.result === "recovered" ? p.warn(s) : p.bad(s);
  });
  const dropped = r.files.filter((o) => sealsOf(o.spec) !== F_SEAL_SEAL && !o.sealsCarried);
  if (dropped.length > 0) {
    const formats = [...new Set(dropped.map((o) => o.compatible ?? "?"))].join(", ");
    out += p.dim(`  * ${formats} does not carry seals: the next kernel's file has F_SEAL_SEAL only (checked)\n`);
  }

  out += "\n";
  const total = r.phases.reduce((n, ph) => n + ph.ms, 0);
  const phaseRows = r.phases.map((ph) => [ph.phase, formatMs(ph.ms), `${((100 * ph.ms) / (total || 1)).toFixed(1)}%`]);
  phaseRows.push(["total", formatMs(total), "100.0%"]);
  out += formatTable(["phase", "time", "share"], phaseRows, ["left", "right", "right"]);
  out += p.dim("  (luo simulate --help says what each phase covers)\n\n");

  if (r.image !== undefined) out += `  image: ${r.image.path} (ELF core, ${formatBytes(r.image.bytes)}); read it with 'luo inspect ${r.image.path}'\n`;

  const ok = r.files.filter((o) => o.result === "ok").length;
  const recovered = r.files.filter((o) => o.result === "recovered").length;
  const failed = r.files.length - ok - recovered;
  const bytes = r.files.reduce((n, o) => n + o.spec.size, 0);
  const f = r.failure;
  if (f !== undefined) {
    const at = f.failedAt === undefined ? "" : ` (session ${f.failedAt.session}${f.failedAt.token === undefined ? "" : `, token ${hex(f.failedAt.token)}`})`;
    out += `  ${p.bad("retrieve failed")}: the next kernel's first open of /dev/liveupdate returned ${f.openErrno}; cause ${f.errno}: ${f.message}${at}\n`;
    out += `  ${f.predicted ? "as the handler sets predict" : p.bad("NOT predicted")}: the next kernel has ${r.consumer.join(", ") || "no handlers"}, the records say ${[...new Set(r.files.map((o) => o.compatible ?? "?"))].join(", ")}\n`;
    out += `  image intact: ${f.stampsBefore} KHO-stamped runs before the failed open, ${f.stampsAfter} after; LUO attached again with ${f.recoveryHandlers.join(", ")} on the same handover retrieved and verified ${recovered} of ${r.files.length} files\n`;
  }
  if (r.exitCode === 0) out += `  ${p.ok("ok")}: ${ok} of ${r.files.length} files in ${r.scenario.sessions.length} sessions retrieved and verified, every byte (${formatBytes(bytes)})\n`;
  else if (failed > 0) out += `  ${p.bad("FAILED")}: ${failed} of ${r.files.length} files not verified\n`;
  else out += `  ${p.warn("no")}: ${r.consumer.join(", ") || "a kernel without handlers"} cannot retrieve what ${r.producer} preserved (exit 1); nothing was lost\n`;
  return out;
}

function fileJson(o: FileOutcome): Record<string, unknown> {
  return {
    token: hex(o.spec.token),
    name: o.spec.name,
    kind: o.spec.kind,
    size: o.spec.size,
    pos: o.spec.pos,
    seals: sealsOf(o.spec),
    written: writtenBytes(o.spec),
    format: o.compatible ?? null,
    result: o.result,
    errno: o.errno ?? null,
    problems: o.problems,
    sealsCarried: o.sealsCarried,
    folios: o.retrieved === undefined ? null : o.retrieved.folios,
    sha256: o.retrieved?.sha256 ?? null,
  };
}

function toJson(r: SimulationResult): Record<string, unknown> {
  const count = (res: FileOutcome["result"]): number => r.files.filter((o) => o.result === res).length;
  const f = r.failure;
  return {
    schema: "luo-simulate/1",
    exitCode: r.exitCode,
    ok: r.exitCode === 0,
    seed: r.scenario.seed,
    machine: { memory: r.memory, scratch: r.scratch },
    producer: r.producer,
    consumer: r.consumer,
    scenario: { vms: r.scenario.vms, filesPerVm: r.scenario.filesPerVm, fileSize: r.scenario.fileSize },
    totals: {
      sessions: r.scenario.sessions.length,
      files: r.files.length,
      bytes: r.files.reduce((n, o) => n + o.spec.size, 0),
      written: r.files.reduce((n, o) => n + writtenBytes(o.spec), 0),
      ok: count("ok"),
      recovered: count("recovered"),
      failed: count("failed"),
    },
    sessions: r.scenario.sessions.map((s) => ({ name: s.name, files: r.files.filter((o) => o.spec.session === s.name).map(fileJson) })),
    phases: r.phases.map((ph) => ({ phase: ph.phase, ms: Number(ph.ms.toFixed(3)) })),
    totalMs: Number(r.phases.reduce((n, ph) => n + ph.ms, 0).toFixed(3)),
    preflight: r.preflight.map((pr) => (pr.kind === "no-handler" ? { kind: pr.kind, errno: pr.errno, reason: pr.reason, session: pr.session, token: hex(pr.token), compatible: pr.compatible } : { kind: pr.kind, errno: pr.errno, reason: pr.reason })),
    failure:
      f === undefined
        ? null
        : {
            openErrno: f.openErrno,
            errno: f.errno,
            message: f.message,
            failedAt: f.failedAt === undefined ? null : { session: f.failedAt.session, ...(f.failedAt.token === undefined ? {} : { token: hex(f.failedAt.token) }), ...(f.failedAt.compatible === undefined ? {} : { compatible: f.failedAt.compatible }) },
            predicted: f.predicted,
            stampsBefore: f.stampsBefore,
            stampsAfter: f.stampsAfter,
            recoveryHandlers: f.recoveryHandlers,
          },
    image: r.image === undefined ? null : { path: r.image.path, bytes: r.image.bytes, segments: r.image.segments, fdtAddr: hex(r.image.fdtAddr), fdtSize: r.image.fdtSize },
  };
}
