/**
 * What a handler author hands the kit: the handler, a way to make files of its type, and a
 * snapshot of what must survive the live update. And what the kit hands back: problems.
 */
import { FormatError, KernelError, type Machine, type MemorySpec } from "@liveupdate/kho";
import type { FileHandler, LuoFile } from "@liveupdate/luo-core";

/** A JSON value: what a {@link HandlerSubject.snapshot} returns (bigints as strings). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/**
 * The handler under test.
 *
 * ```ts
 * const subject: HandlerSubject = {
 *   handler: () => acmeCounterV2,
 *   makeFile: (machine, seed) => CounterFile.create(machine, { capacity: 8 + (seed % 50) }),
 *   snapshot: (file) => ({ value: (file as CounterFile).value.toString() }),
 * };
 * ```
 */
export interface HandlerSubject {
  /**
   * The handler, for each kernel the kit boots (the old one and the next one). May return
   * the same object every time: a handler instance may be registered in many kernels.
   */
  readonly handler: () => FileHandler;
  /**
   * A file the handler takes (`canPreserve` true), made in `machine` (a freshly booted
   * outgoing kernel), different for different seeds: sizes, contents, flags. Seeds are
   * small non-negative integers.
   */
  makeFile(machine: Machine, seed: number): LuoFile;
  /**
   * Everything that must be the same after the live update: contents (or their sha256),
   * sizes, positions, flags. Called on the original file before it is preserved and on the
   * retrieved one; the two must be equal as JSON. Also the "expected decoded fields" of a
   * frozen fixture, so it must not change between releases for the same file.
   */
  snapshot(file: LuoFile): JsonValue;
  /**
   * Handlers registered after {@link HandlerSubject.handler} in every kernel (e.g. the
   * readers of older formats the package still ships). Default: none.
   */
  readonly companions?: () => readonly FileHandler[];
}

/** Options shared by every check. */
export interface MachineOptions {
  /** Memory of every kernel the kit boots (default `"64 MiB"`). */
  readonly memory?: MemorySpec;
}

/** One thing a check found wrong. An empty list means the handler conforms. */
export interface ConformanceProblem {
  /** Which check: `"round-trip"`, `"unpreserve"`, `"forgotten-page"`, `"hostile-record"`, `"compatible"`, `"fixture"`. */
  readonly check: string;
  /** The seed of the case, when it has one. */
  readonly seed?: number;
  /** What was wrong, in a sentence that names pages, errnos and values. */
  readonly message: string;
}

/** Memory of the kit's kernels when the caller gives none. */
export const DEFAULT_MEMORY = "64 MiB";

/** JSON with sorted object keys: two snapshots are equal when these strings are. */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${(value as readonly JsonValue[]).map(canonicalJson).join(",")}]`;
  const record = value as { readonly [key: string]: JsonValue };
  const keys = Object.keys(record).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k] ?? null)}`).join(",")}}`;
}

/** Whether `error` is one of the typed errors a handler may throw (it carries an errno). */
export function isTypedError(error: unknown): error is KernelError | FormatError {
  return error instanceof KernelError || error instanceof FormatError;
}

/** A short description of anything thrown, for problem messages. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return `a thrown ${typeof error} (${String(error)})`;
}

/** `0x`-prefixed hexadecimal of an address or a u64. */
export function hex(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}
