/**
 * The handlers a matrix is built from: the repo's own handler packages, and third-party
 * handler modules loaded by path (`--handler ./module.js`), validated before anything runs.
 */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Machine } from "@liveupdate/kho";
import type { FileHandler, LuoFile } from "@liveupdate/luo-core";
import { memfdV0 } from "@liveupdate/memfd-luo-v0";
import { memfdV1 } from "@liveupdate/memfd-luo-v1";
import { memfdV2 } from "@liveupdate/memfd-luo-v2";
import { UsageError } from "../io.js";

/** A handler in the matrix and where it came from. */
export interface MatrixHandler {
  /** Its compatible string (the matrix's name for it). */
  readonly compatible: string;
  /** The package (`@liveupdate/memfd-luo-v2`) or the absolute path of the module it came from. */
  readonly source: string;
  /** Whether it is one of the repo's handler packages. */
  readonly builtin: boolean;
  /** The handler object. */
  readonly handler: FileHandler;
  /**
   * How to make files this handler takes (from its module's `matrixSubjects` export): the
   * cells it produces preserve those instead of the memfd workload. Undefined: memfds.
   */
  readonly subject?: MatrixSubject;
}

/**
 * The part of a `@liveupdate/handler-testkit` `HandlerSubject` the matrix uses: files for a
 * seed, and the JSON snapshot that must be equal after the live update.
 */
export interface MatrixSubject {
  /** A file the handler takes, made in `machine`, different for different seeds. */
  makeFile(machine: Machine, seed: number): LuoFile;
  /** Everything that must survive the update, as JSON. */
  snapshot(file: LuoFile): unknown;
}

/** The named exports a module may give its subjects under (the first present is used). */
export const SUBJECT_EXPORTS = ["matrixSubjects", "subjects"] as const;

/** The repo's handler packages, oldest format first. */
export function builtinHandlers(): MatrixHandler[] {
  return [
    { compatible: memfdV0.compatible, source: "@liveupdate/memfd-luo-v0", builtin: true, handler: memfdV0 },
    { compatible: memfdV1.compatible, source: "@liveupdate/memfd-luo-v1", builtin: true, handler: memfdV1 },
    { compatible: memfdV2.compatible, source: "@liveupdate/memfd-luo-v2", builtin: true, handler: memfdV2 },
  ];
}

const REQUIRED_OPS = ["canPreserve", "getId", "preserve", "unpreserve", "retrieve", "finish"] as const;
const OPTIONAL_OPS = ["freeze", "unfreeze", "canFinish"] as const;
/** `char compatible[48]` in the kernel: at most 47 bytes and a NUL. */
const MAX_COMPATIBLE_BYTES = 47;

/**
 * Why `value` is not a luo-core `FileHandler`, or undefined when it is one: a compatible of
 * 1..47 UTF-8 bytes without NUL, every required op a function, optional ops functions when
 * present, `flbs` an array when present.
 */
export function fileHandlerProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return "not an object";
  const record = value as Record<string, unknown>;
  const compatible = record["compatible"];
  if (typeof compatible !== "string") return "its compatible is not a string";
  const bytes = new TextEncoder().encode(compatible).length;
  if (bytes === 0 || bytes > MAX_COMPATIBLE_BYTES || compatible.includes("\0")) {
    return `compatible "${compatible}" must be 1..${MAX_COMPATIBLE_BYTES} bytes without NUL (it is ${bytes})`;
  }
  const missing = REQUIRED_OPS.filter((op) => typeof record[op] !== "function");
  if (missing.length > 0) return `"${compatible}" has no ${missing.join(", ")} op${missing.length === 1 ? "" : "s"}`;
  const wrong = OPTIONAL_OPS.filter((op) => record[op] !== undefined && typeof record[op] !== "function");
  if (wrong.length > 0) return `"${compatible}": ${wrong.join(", ")} must be a function when present`;
  if (record["flbs"] !== undefined && !Array.isArray(record["flbs"])) return `"${compatible}": flbs must be an array when present`;
  return undefined;
}

/** Whether an export is meant as a handler: an object with a `compatible` (the rest is then checked). */
function looksLikeHandler(value: unknown): boolean {
  return typeof value === "object" && value !== null && "compatible" in value;
}

/**
 * Load a third-party handler module: its default export (a handler or an array of them) and
 * its named exports that are handlers. Every export that carries a `compatible` must be a
 * complete `FileHandler`; other exports (helpers, constants, classes) are ignored.
 *
 * @throws UsageError when the file is missing, fails to import, exports no handler, or
 *   exports a broken one.
 */
export async function loadHandlerModule(path: string): Promise<MatrixHandler[]> {
  const absolute = resolve(path);
  try {
    const info = await stat(absolute);
    if (!info.isFile()) throw new UsageError(`--handler ${path}: not a file`);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--handler ${path}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? "EIO"}`);
  }
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`--handler ${path}: the module failed to load: ${e instanceof Error ? e.message : String(e)}`);
  }
  const candidates: [string, unknown][] = [];
  for (const [name, value] of Object.entries(namespace)) {
    if (name === "default" && Array.isArray(value)) value.forEach((v: unknown, i) => candidates.push([`default[${i}]`, v]));
    else candidates.push([name, value]);
  }
  const found: MatrixHandler[] = [];
  const seen = new Set<unknown>();
  for (const [name, value] of candidates) {
    if (!looksLikeHandler(value) || seen.has(value)) continue;
    let problem: string | undefined;
    try {
      problem = fileHandlerProblem(value);
    } catch (e) {
      problem = `reading it threw: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (problem !== undefined) throw new UsageError(`--handler ${path}: export '${name}' is not a luo-core FileHandler: ${problem}`);
    seen.add(value);
    const handler = value as FileHandler;
    if (found.some((h) => h.compatible === handler.compatible)) {
      throw new UsageError(`--handler ${path}: two exports have the compatible "${handler.compatible}"`);
    }
    found.push({ compatible: handler.compatible, source: absolute, builtin: false, handler });
  }
  if (found.length === 0) {
    throw new UsageError(
      `--handler ${path}: exports no luo-core FileHandler (a default or named export with a compatible string and ${REQUIRED_OPS.join(", ")} ops)`,
    );
  }
  return attachSubjects(path, namespace, found);
}

function describeThrown(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Give each handler of a module its subject: the module's `matrixSubjects` (or `subjects`)
 * export, an array of handler-testkit `HandlerSubject`s, each naming one of the module's
 * handlers through `handler()`.
 */
function attachSubjects(path: string, namespace: Record<string, unknown>, found: readonly MatrixHandler[]): MatrixHandler[] {
  const exportName = SUBJECT_EXPORTS.find((name) => namespace[name] !== undefined);
  if (exportName === undefined) return [...found];
  const list = namespace[exportName];
  const where = `--handler ${path}: export '${exportName}'`;
  if (!Array.isArray(list)) throw new UsageError(`${where} must be an array of handler-testkit subjects ({ handler, makeFile, snapshot })`);
  const subjects = new Map<string, MatrixSubject>();
  list.forEach((item: unknown, i) => {
    const at = `${where}[${i}]`;
    if (typeof item !== "object" || item === null) throw new UsageError(`${at} is not a subject object`);
    const record = item as Record<string, unknown>;
    const missing = ["handler", "makeFile", "snapshot"].filter((key) => typeof record[key] !== "function");
    if (missing.length > 0) throw new UsageError(`${at}: ${missing.join(", ")} must be function${missing.length === 1 ? "" : "s"}`);
    let handler: unknown;
    try {
      handler = (record["handler"] as () => unknown)();
    } catch (e) {
      throw new UsageError(`${at}: handler() threw: ${describeThrown(e)}`);
    }
    const owner = found.find((h) => h.handler === handler);
    if (owner === undefined) {
      const named = typeof handler === "object" && handler !== null ? (handler as Record<string, unknown>)["compatible"] : undefined;
      throw new UsageError(
        `${at}: handler() returns ${typeof named === "string" ? `"${named}"` : "something"} that is not one of the module's exported handlers (${found.map((h) => h.compatible).join(", ")})`,
      );
    }
    if (subjects.has(owner.compatible)) throw new UsageError(`${where}: two subjects for "${owner.compatible}"`);
    const makeFile = record["makeFile"] as MatrixSubject["makeFile"];
    const snapshot = record["snapshot"] as MatrixSubject["snapshot"];
    subjects.set(owner.compatible, { makeFile: (machine, seed) => makeFile.call(item, machine, seed), snapshot: (file) => snapshot.call(item, file) });
  });
  return found.map((h) => {
    const subject = subjects.get(h.compatible);
    return subject === undefined ? h : { ...h, subject };
  });
}

/**
 * The built-in handlers followed by those of `modules` (in order), each compatible once.
 *
 * @throws UsageError as {@link loadHandlerModule}, and when a module repeats a compatible
 *   that an earlier handler has.
 */
export async function collectHandlers(modules: readonly string[]): Promise<MatrixHandler[]> {
  const all = builtinHandlers();
  for (const path of modules) {
    for (const h of await loadHandlerModule(path)) {
      const clash = all.find((other) => other.compatible === h.compatible);
      if (clash !== undefined) throw new UsageError(`--handler ${path}: compatible "${h.compatible}" is already given by ${clash.source}`);
      all.push(h);
    }
  }
  return all;
}
