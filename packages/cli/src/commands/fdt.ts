/**
 * `luo fdt check | convert | dump`: the device tree tools.
 *
 * Exit codes: `check` 0 valid, 1 invalid; `convert` and `dump` 0 ok, 1 when the input is
 * not a blob they can decode; 2 for usage errors and unreadable files.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  checkLibfdt,
  checkStrict,
  decodeTree,
  encodeSequential,
  Fdt,
  FdtEditor,
  FdtError,
  formatDts,
  fdtToJson,
  toDtcLayout,
  type FdtCheckReport,
} from "@liveupdate/fdt-codec";
import { readInput, UsageError, type RunIO } from "../io.js";

const HELP = `usage:
  luo fdt check FILE [--mode libfdt|strict] [--json]
      libfdt: the verdict and FDT_ERR_* code of libfdt 1.6.1's fdt_check_full (default)
      strict: the spec and dtc's rules too; lists every problem
      exit 0 valid, 1 invalid
  luo fdt convert FILE -o OUT [--layout dtc|sw|packed]
      dtc:    byte-identical to 'dtc -I dtb -O dtb' (default)
      sw:     libfdt's sequential writer (fdt_create ... fdt_finish)
      packed: libfdt's read-write layout after fdt_open_into + fdt_pack
  luo fdt dump FILE [--offsets] [--json]
      the tree as 'dtc -O dts' prints it; --offsets adds each node's and property's
      byte offset; --json gives header, reserve map and tree with offsets
`;

/** Dispatch `luo fdt <verb> ...`. */
export function fdtCommand(argv: readonly string[], io: RunIO): number {
  const [verb, ...rest] = argv;
  switch (verb) {
    case "check":
      return check(rest, io);
    case "convert":
      return convert(rest, io);
    case "dump":
      return dump(rest, io);
    case undefined:
    case "--help":
    case "-h":
      io.stdout(HELP);
      return verb === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown 'fdt' command '${verb}'`, HELP);
  }
}

/** Run node's parseArgs; its complaints are usage errors (exit 2) with this command's help. */
function parsing<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new UsageError((e as Error).message, HELP);
  }
}

const help = { type: "boolean", short: "h" } as const;

function onlyFile(positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? "missing FILE" : `expected one FILE, got ${positionals.length}`, HELP);
  return positionals[0]!;
}

function check(argv: readonly string[], io: RunIO): number {
  const { values, positionals } = parsing(() =>
    parseArgs({ args: [...argv], options: { mode: { type: "string", default: "libfdt" }, json: { type: "boolean" }, help }, allowPositionals: true }),
  );
  if (values.help === true) return printHelp(io);
  const mode = values.mode;
  if (mode !== "libfdt" && mode !== "strict") throw new UsageError(`--mode must be libfdt or strict, not '${mode}'`, HELP);
  const file = onlyFile(positionals);
  const bytes = readInput(file);
  const report: FdtCheckReport = mode === "libfdt" ? checkLibfdt(bytes) : checkStrict(bytes);
  const first = report.problems[0];
  if (values.json === true) {
    const out: Record<string, unknown> = {
      valid: report.valid,
      code: first?.code ?? null,
      offset: first?.offset ?? null,
      message: first?.message ?? "valid",
    };
    if (mode === "strict") out["problems"] = report.problems;
    io.stdout(`${JSON.stringify(out)}\n`);
  } else if (report.valid) {
    io.stdout(`${file}: valid (${mode})\n`);
  } else {
    for (const p of report.problems) io.stdout(`${file}: ${p.code} at byte ${p.offset} [${p.rule}]: ${p.message}\n`);
    io.stdout(`${file}: invalid (${mode}, ${report.problems.length} problem${report.problems.length === 1 ? "" : "s"})\n`);
  }
  return report.valid ? 0 : 1;
}

function convert(argv: readonly string[], io: RunIO): number {
  const { values, positionals } = parsing(() =>
    parseArgs({ args: [...argv], options: { output: { type: "string", short: "o" }, layout: { type: "string", default: "dtc" }, help }, allowPositionals: true }),
  );
  if (values.help === true) return printHelp(io);
  const file = onlyFile(positionals);
  const out = values.output;
  if (typeof out !== "string") throw new UsageError("missing -o OUT", HELP);
  const layout = values.layout;
  if (layout !== "dtc" && layout !== "sw" && layout !== "packed") throw new UsageError(`--layout must be dtc, sw or packed, not '${layout}'`, HELP);
  const bytes = readInput(file);
  return decoding(file, io, () => {
    let result: Uint8Array;
    if (layout === "dtc") result = toDtcLayout(bytes);
    else if (layout === "sw") result = encodeSequential(decodeTree(bytes));
    else {
      const editor = FdtEditor.openInto(bytes, bytes.length);
      editor.pack();
      result = editor.bytes();
    }
    try {
      writeFileSync(out, result);
    } catch (e) {
      throw new UsageError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? "EIO"}`);
    }
    io.stdout(`${file} -> ${out}: ${result.length} bytes, ${layout} layout\n`);
    return 0;
  });
}

function dump(argv: readonly string[], io: RunIO): number {
  const { values, positionals } = parsing(() =>
    parseArgs({ args: [...argv], options: { offsets: { type: "boolean" }, json: { type: "boolean" }, help }, allowPositionals: true }),
  );
  if (values.help === true) return printHelp(io);
  const file = onlyFile(positionals);
  const bytes = readInput(file);
  return decoding(file, io, () => {
    const fdt = Fdt.from(bytes);
    if (values.json === true) io.stdout(`${JSON.stringify(fdtToJson(fdt), null, 2)}\n`);
    else io.stdout(formatDts(fdt, { offsets: values.offsets === true }));
    return 0;
  });
}

function printHelp(io: RunIO): number {
  io.stdout(HELP);
  return 0;
}

/** Run a decode; an FdtError is the input's fault: report it and exit 1. */
function decoding(file: string, io: RunIO, body: () => number): number {
  try {
    return body();
  } catch (e) {
    if (e instanceof FdtError) {
      io.stderr(`luo: ${file}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
