/**
 * `luo matrix`: which producer format retrieves in which next kernel. Rows are the handlers
 * that preserve (the repo's memfd-v0, v1, v2 and any `--handler` module's), columns the
 * handler registries of the next kernel (every non-empty subset, or `--consumers`); each cell
 * is one live update, verified byte for byte, and every failed cell is retried on the same
 * handover with the producer's handler to prove nothing was lost.
 *
 * Exit codes: 0 every cell OK or recovered; 1 a cell lost data, or its producer could not
 * preserve the workload; 2 usage errors, a bad handler module, an unwritable `--html` file.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseByteSize } from "@liveupdate/kho";
import { UsageError, type RunIO } from "../io.js";
import { collectHandlers, type MatrixHandler } from "../matrix/handlers.js";
import { renderMatrixHtml } from "../matrix/html.js";
import { nonEmptySubsets, runMatrix, type MatrixResult } from "../matrix/runner.js";
import { renderMatrixTable } from "../matrix/table.js";

/** The `schema` value of `luo matrix --json`. */
export const MATRIX_JSON_SCHEMA = "luo-matrix/1";

const HELP = `usage: luo matrix [--handler MODULE]... [--producers LIST] [--consumers SET]...
                  [--memory SIZE] [--json] [--html FILE] [--width N]

  Producer format x consumer registry. Each cell boots a machine whose only handler is the
  producer, preserves 5 memfds in 2 sessions (sparse, sealed, huge folios, empty, one byte),
  kexecs into a kernel whose registry is the consumer set, retrieves every file and checks
  its size, position and every byte. A failed cell is then retried on the same next machine
  (its LUO detached, attached again with the producer's handler): "recovered" proves the
  handover itself lost nothing.

options:
  --handler MODULE   a third-party handler module (repeatable): its default export (a
                     handler or an array) and named exports that are luo-core FileHandlers
                     join the rows and columns. A handler that does not take memfds
                     gets its own workload: the module's named export 'matrixSubjects'
                     (or 'subjects'), an array of @liveupdate/handler-testkit subjects
                     { handler(), makeFile(machine, seed), snapshot(file) }, one per
                     handler. Its cells preserve makeFile's files for 5 seeds in 2
                     sessions and check that snapshot(file) is equal (as JSON) after the
                     retrieve and after the recovery
  --producers LIST   rows: compatibles, comma-separated (default: every handler)
  --consumers SET    a column: compatibles joined by ',' or '+' (repeatable; default: every
                     non-empty subset of the handlers, at most ${2 ** 8 - 1})
  --memory SIZE      memory of each simulated machine (default 256 MiB; 32 MiB..64 GiB)
  --json             print the result as JSON (schema below) instead of the table
  --html FILE        also write a self-contained HTML page with the coloured grid
  --width N          wrap the table's columns at N characters (default: the terminal's, or 120)

exit: 0 every cell OK or recovered; 1 some cell lost data (LOST, MISMATCH) or could not
      preserve or kexec at all; 2 usage error

--json schema ("${MATRIX_JSON_SCHEMA}"):
  { schema, memory,
    handlers:  [{ compatible, source (package name or module path), builtin,
                  workload: "memfd" | "subject" }],
    producers: [compatible],                 rows, in order
    consumers: [[compatible]],               columns, in order
    workload:  [{ session, token (hex), name, size, pos, seals, sha256 }],  memfd producers

    cells:     [{ producer, consumers: [compatible],
                  status: "ok" | "error" | "mismatch",
                  label,                     the table's text: "OK", "EIO (ENOENT memfd-v1)"
                  stage: null | "preserve" | "kexec" | "open" | "retrieve" | "verify" | "finish",
                  errno: null | "EIO" | ...,  message: null | string,
                  cause: null | { errno, compatible },   why the first open failed
                  verified: boolean,         every file retrieved and checked in this cell
                  recovered: null (OK cells) | boolean,
                  recovery: null | string }],   row-major: producers x consumers
    summary:   { cells, ok, failed, recovered, lost, notHandedOver } }
`;

const MAX_SUBSET_HANDLERS = 8;
const MIN_MEMORY = 32 * 2 ** 20;
const MAX_MEMORY = 64 * 2 ** 30;

function parsing<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new UsageError((e as Error).message, HELP);
  }
}

function byCompatible(handlers: readonly MatrixHandler[], name: string, option: string): MatrixHandler {
  const found = handlers.find((h) => h.compatible === name);
  if (found === undefined) throw new UsageError(`${option}: no handler "${name}" (known: ${handlers.map((h) => h.compatible).join(", ")})`, HELP);
  return found;
}

function splitList(text: string, option: string): string[] {
  const names = text
    .split(/[,+]/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (names.length === 0) throw new UsageError(`${option}: empty list`, HELP);
  if (new Set(names).size !== names.length) throw new UsageError(`${option}: '${text}' names a handler twice`, HELP);
  return names;
}

function memoryOption(text: string): string {
  let bytes: number;
  try {
    bytes = parseByteSize(text);
  } catch {
    throw new UsageError(`--memory: '${text}' is not a size (e.g. "256 MiB")`, HELP);
  }
  if (bytes < MIN_MEMORY || bytes > MAX_MEMORY) throw new UsageError(`--memory: ${text} is outside 32 MiB..64 GiB`, HELP);
  return text;
}

function widthOption(text: string | undefined, io: RunIO): number {
  if (text === undefined) return io.isTTY === true ? (process.stdout.columns || 120) : 120;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 20) throw new UsageError(`--width: '${text}' is not a width of at least 20`, HELP);
  return n;
}

/** The `--json` document: {@link MatrixResult} with its schema name first. */
export function matrixJson(result: MatrixResult): string {
  return `${JSON.stringify({ schema: MATRIX_JSON_SCHEMA, ...result }, null, 2)}\n`;
}

/** Run `luo matrix ...`; resolves to the exit code. */
export async function matrixCommand(argv: readonly string[], io: RunIO): Promise<number> {
  const { values, positionals } = parsing(() =>
    parseArgs({
      args: [...argv],
      options: {
        handler: { type: "string", multiple: true },
        producers: { type: "string" },
        consumers: { type: "string", multiple: true },
        memory: { type: "string", default: "256 MiB" },
        json: { type: "boolean" },
        html: { type: "string" },
        width: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    }),
  );
  if (values.help === true) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0] ?? ""}'`, HELP);
  const memory = memoryOption(values.memory);
  const width = widthOption(values.width, io);
  const handlers = await collectHandlers(values.handler ?? []);
  const producers = values.producers === undefined ? handlers : splitList(values.producers, "--producers").map((n) => byCompatible(handlers, n, "--producers"));
  let consumers: MatrixHandler[][];
  if (values.consumers !== undefined) {
    consumers = values.consumers.map((set) => splitList(set, "--consumers").map((n) => byCompatible(handlers, n, "--consumers")));
  } else {
    if (handlers.length > MAX_SUBSET_HANDLERS) {
      throw new UsageError(`${handlers.length} handlers make ${2 ** handlers.length - 1} registries; choose columns with --consumers`, HELP);
    }
    consumers = nonEmptySubsets(handlers);
  }

  const progress = io.isTTY === true && values.json !== true;
  const result = runMatrix({
    handlers,
    producers,
    consumers,
    memory,
    ...(progress
      ? {
          onCell: (_cell, done, total) => {
            io.stderr(`\r  running cell ${done}/${total}${done === total ? "\r\x1b[K" : ""}`);
          },
        }
      : {}),
  });

  if (values.html !== undefined) {
    try {
      writeFileSync(values.html, renderMatrixHtml(result));
    } catch (e) {
      throw new UsageError(`cannot write ${values.html}: ${(e as NodeJS.ErrnoException).code ?? "EIO"}`);
    }
  }
  if (values.json === true) {
    io.stdout(matrixJson(result));
  } else {
    const color = io.isTTY === true && process.env["NO_COLOR"] === undefined;
    io.stdout(renderMatrixTable(result, { width, color }));
    if (values.html !== undefined) io.stdout(`html: ${values.html}\n`);
  }
  return result.summary.lost === 0 && result.summary.notHandedOver === 0 ? 0 : 1;
}
