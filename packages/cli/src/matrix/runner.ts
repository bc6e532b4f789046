/**
 * The matrix runner: for each producer handler and each consumer registry, one live update
 * (the {@link WORKLOAD} preserved with the producer, kexec into a kernel whose registry is
 * the consumer set, retrieve and verify), and for a failed cell the proof that nothing was
 * lost: the same next machine, its failed LUO detached, attached again with a registry that
 * has the producer's handler, retrieves and verifies every file.
 */
import { FormatError, KernelError } from "@liveupdate/kho";
import { LiveUpdate, type LiveUpdateDevice } from "@liveupdate/luo-core";
import type { MatrixHandler } from "./handlers.js";
import { WORKLOAD, expectedSha256, memfdWorkload, sessionsOf, subjectWorkload, type CellWorkload } from "./workload.js";

/** How a cell ended: retrieved and verified, an error, or retrieved with different contents. */
export type CellStatus = "ok" | "error" | "mismatch";

/** Where a cell stopped: the producer's preserve, the kexec, the next kernel's first open, a retrieve, the contents check, a session's finish. */
export type CellStage = "preserve" | "kexec" | "open" | "retrieve" | "verify" | "finish";

/** One cell of the matrix (also its `--json` form). */
export interface MatrixCell {
  /** The producer handler's compatible (the format the image was written in). */
  readonly producer: string;
  /** The compatibles registered in the next kernel, in registration order. */
  readonly consumers: readonly string[];
  /** See {@link CellStatus}. */
  readonly status: CellStatus;
  /** What the table prints: `"OK"`, `"EIO (ENOENT memfd-v1)"`, `"EINVAL (retrieve)"`, `"MISMATCH"`. */
  readonly label: string;
  /** Where it failed; null when OK. */
  readonly stage: CellStage | null;
  /** The errno name of the failure (`"EIO"`); null when OK or when the error carried none. */
  readonly errno: string | null;
  /** The full error message; null when OK. */
  readonly message: string | null;
  /** Why the first open failed, as the kernel recorded it: errno and the compatible without a handler. */
  readonly cause: { readonly errno: string; readonly compatible: string | null } | null;
  /** Every file retrieved in this cell's kernel with the right size, position and bytes. */
  readonly verified: boolean;
  /**
   * Failed cells: whether the same handover then retrieved and verified with a registry that
   * has the producer's handler (false: something was lost). Null for OK cells.
   */
  readonly recovered: boolean | null;
  /** How the recovery went (or why none was possible); null for OK cells. */
  readonly recovery: string | null;
}

/** A whole matrix run (the `--json` document; see the command's help for the schema). */
export interface MatrixResult {
  /** Memory of every simulated machine. */
  readonly memory: string;
  /** Every handler known to the run (built-in first, then loaded modules'). */
  readonly handlers: readonly { readonly compatible: string; readonly source: string; readonly builtin: boolean; readonly workload: "memfd" | "subject" }[];
  /** Row order: producer compatibles. */
  readonly producers: readonly string[];
  /** Column order: consumer registries. */
  readonly consumers: readonly (readonly string[])[];
  /** The files each cell of a memfd producer preserves (producers with a subject preserve its files instead). */
  readonly workload: readonly { readonly session: string; readonly token: string; readonly name: string; readonly size: number; readonly pos: number; readonly seals: number; readonly sha256: string }[];
  /** Row-major: producers x consumers. */
  readonly cells: readonly MatrixCell[];
  /** Counts over `cells`. */
  readonly summary: MatrixSummary;
}

/** Counts of a matrix. */
export interface MatrixSummary {
  /** All cells. */
  readonly cells: number;
  /** Cells that retrieved and verified. */
  readonly ok: number;
  /** Cells that did not. */
  readonly failed: number;
  /** Failed cells whose handover then retrieved with the producer's handler. */
  readonly recovered: number;
  /** Failed cells after the handover that did not recover either: data lost (see {@link isLost}). */
  readonly lost: number;
  /** Failed cells where nothing was handed over (the producer's preserve or the kexec failed). */
  readonly notHandedOver: number;
}

/** What {@link runMatrix} runs. */
export interface MatrixPlan {
  /** Every handler known to the run. */
  readonly handlers: readonly MatrixHandler[];
  /** The rows. */
  readonly producers: readonly MatrixHandler[];
  /** The columns. */
  readonly consumers: readonly (readonly MatrixHandler[])[];
  /** Memory of each simulated machine, e.g. `"256 MiB"`. */
  readonly memory: string;
  /** Called after each cell (progress). */
  readonly onCell?: (cell: MatrixCell, done: number, total: number) => void;
}

/** Every non-empty subset of `items`, smallest first, each in `items` order. */
export function nonEmptySubsets<T>(items: readonly T[]): T[][] {
  const subsets: T[][] = [];
  for (let mask = 1; mask < 2 ** items.length; mask++) subsets.push(items.filter((_, i) => (mask & (1 << i)) !== 0));
  return subsets.sort((a, b) => a.length - b.length || compareIndexes(items, a, b));
}

function compareIndexes<T>(items: readonly T[], a: readonly T[], b: readonly T[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = items.indexOf(a[i] as T) - items.indexOf(b[i] as T);
    if (d !== 0) return d;
  }
  return 0;
}

/** A failure inside a cell: where, and the error. */
class Failure {
  constructor(
    readonly stage: CellStage,
    readonly error: unknown,
  ) {}
}

function errnoOf(error: unknown): string | null {
  return error instanceof KernelError || error instanceof FormatError ? error.errno : null;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Run `step`; a throw becomes a {@link Failure} at `stage`. */
function at<T>(stage: CellStage, step: () => T): T | Failure {
  try {
    return step();
  } catch (error) {
    return new Failure(stage, error);
  }
}

function isFailure(value: unknown): value is Failure {
  return value instanceof Failure;
}

/**
 * The next kernel's side of the update: open `/dev/liveupdate`, retrieve every workload
 * session and file, verify each, finish each session. Undefined when all went well.
 */
function retrieveAndVerify(lu: LiveUpdate, workload: CellWorkload): Failure | undefined {
  const dev = at("open", () => lu.open());
  if (isFailure(dev)) return dev;
  return retrieveSessions(dev, workload);
}

function retrieveSessions(dev: LiveUpdateDevice, workload: CellWorkload): Failure | undefined {
  for (const name of sessionsOf(workload.files)) {
    const session = at("retrieve", () => dev.retrieveSession(name));
    if (isFailure(session)) return session;
    for (const [index, file] of workload.files.entries()) {
      if (file.session !== name) continue;
      const retrieved = at("retrieve", () => session.retrieveFd(file.token));
      if (isFailure(retrieved)) return retrieved;
      const problem = workload.verify(retrieved, index);
      if (problem !== undefined) return new Failure("verify", new Error(problem));
    }
    const finished = at("finish", () => {
      session.finish();
    });
    if (isFailure(finished)) return finished;
  }
  return undefined;
}

/** What a cell with `producer` preserves: its subject's files when it has one, else the memfds. */
export function cellWorkload(producer: MatrixHandler): CellWorkload {
  return producer.subject === undefined ? memfdWorkload() : subjectWorkload(producer.subject);
}

/** The outgoing side: boot with the producer, preserve the workload, kexec into `consumers`. */
function produceAndKexec(producer: MatrixHandler, consumers: readonly MatrixHandler[], memory: string, workload: CellWorkload): LiveUpdate | Failure {
  const lu = at("preserve", () => LiveUpdate.boot({ memory, handlers: [producer.handler] }));
  if (isFailure(lu)) return lu;
  const preserved = at("preserve", () => {
    const dev = lu.open();
    for (const name of sessionsOf(workload.files)) {
      const session = dev.createSession(name);
      for (const [index, file] of workload.files.entries()) if (file.session === name) session.preserveFd(workload.create(lu.machine, index), file.token);
    }
  });
  if (isFailure(preserved)) return preserved;
  return at("kexec", () => lu.kexec({ handlers: consumers.map((c) => c.handler) }));
}

/**
 * The proof that nothing was lost in a cell whose next kernel refused the handover: take the
 * failed LUO out of the next machine and attach one whose registry is the producer's handler.
 */
function recover(next: LiveUpdate, producer: MatrixHandler, workload: CellWorkload): { recovered: boolean; recovery: string } {
  const compat = producer.compatible;
  if (next.incoming.state === "deserialized") {
    return { recovered: false, recovery: "none possible: the next kernel's first open consumed the handover before the failure" };
  }
  const detached = at("open", () => {
    next.detach();
  });
  if (isFailure(detached)) return { recovered: false, recovery: `detach failed: ${messageOf(detached.error)}` };
  const again = at("open", () => LiveUpdate.attach(next.machine, { handlers: [producer.handler] }));
  if (isFailure(again)) return { recovered: false, recovery: `attach with [${compat}] failed: ${messageOf(again.error)}` };
  const failure = retrieveAndVerify(again, workload);
  if (failure === undefined) {
    return { recovered: true, recovery: `the same handover, attached again with [${compat}], retrieved all ${workload.files.length} files and ${workload.checked}` };
  }
  return { recovered: false, recovery: `attached again with [${compat}]: ${failure.stage} failed: ${messageOf(failure.error)}` };
}

function failedCell(producer: MatrixHandler, consumers: readonly string[], failure: Failure, next: LiveUpdate | undefined, workload: CellWorkload): MatrixCell {
  const errno = errnoOf(failure.error);
  const incoming = next?.incoming;
  const cause =
    failure.stage === "open" && incoming?.errno !== undefined ? { errno: incoming.errno, compatible: incoming.failedAt?.compatible ?? null } : null;
  const mismatch = failure.stage === "verify";
  const name = failure.error instanceof Error ? failure.error.name : "Error";
  let label: string;
  if (mismatch) label = "MISMATCH";
  else if (cause !== null) label = `${errno ?? name} (${cause.errno}${cause.compatible === null ? "" : ` ${cause.compatible}`})`;
  else label = `${errno ?? name} (${failure.stage})`;
  let recovery: { recovered: boolean | null; recovery: string };
  if (next === undefined) recovery = { recovered: false, recovery: `nothing was handed over: the ${failure.stage} failed in the producing kernel` };
  else if (failure.stage === "open") recovery = recover(next, producer, workload);
  else recovery = { recovered: false, recovery: "none possible: the next kernel's first open consumed the handover before the failure" };
  return {
    producer: producer.compatible,
    consumers,
    status: mismatch ? "mismatch" : "error",
    label,
    stage: failure.stage,
    errno,
    message: messageOf(failure.error),
    cause,
    verified: false,
    ...recovery,
  };
}

/** Run one cell. Never throws: every failure is in the cell. */
export function runCell(producer: MatrixHandler, consumers: readonly MatrixHandler[], memory: string): MatrixCell {
  const names = consumers.map((c) => c.compatible);
  const workload = cellWorkload(producer);
  const next = produceAndKexec(producer, consumers, memory, workload);
  if (isFailure(next)) return failedCell(producer, names, next, undefined, workload);
  const failure = retrieveAndVerify(next, workload);
  if (failure !== undefined) return failedCell(producer, names, failure, next, workload);
  return { producer: producer.compatible, consumers: names, status: "ok", label: "OK", stage: null, errno: null, message: null, cause: null, verified: true, recovered: null, recovery: null };
}

/** Run every cell of `plan`, row by row. */
export function runMatrix(plan: MatrixPlan): MatrixResult {
  const cells: MatrixCell[] = [];
  const total = plan.producers.length * plan.consumers.length;
  for (const producer of plan.producers) {
    for (const consumers of plan.consumers) {
      const cell = runCell(producer, consumers, plan.memory);
      cells.push(cell);
      plan.onCell?.(cell, cells.length, total);
    }
  }
  return {
    memory: plan.memory,
    handlers: plan.handlers.map((h) => ({ compatible: h.compatible, source: h.source, builtin: h.builtin, workload: h.subject === undefined ? "memfd" : "subject" })),
    producers: plan.producers.map((p) => p.compatible),
    consumers: plan.consumers.map((set) => set.map((c) => c.compatible)),
    workload: WORKLOAD.map((f) => ({ session: f.session, token: `0x${f.token.toString(16)}`, name: f.name, size: f.size, pos: f.pos, seals: f.seals, sha256: expectedSha256(f) })),
    cells,
    summary: summarize(cells),
  };
}

/**
 * Whether a cell shows data lost: it failed after the handover was made (open, retrieve,
 * verify, finish) and the handover did not retrieve with the producer's handler either.
 * (A preserve or kexec failure hands nothing over: it fails without losing anything.)
 */
export function isLost(cell: MatrixCell): boolean {
  return cell.status !== "ok" && cell.recovered !== true && cell.stage !== "preserve" && cell.stage !== "kexec";
}

/** Counts over `cells`. */
export function summarize(cells: readonly MatrixCell[]): MatrixSummary {
  const ok = cells.filter((c) => c.status === "ok").length;
  const recovered = cells.filter((c) => c.status !== "ok" && c.recovered === true).length;
  const lost = cells.filter(isLost).length;
  return { cells: cells.length, ok, failed: cells.length - ok, recovered, lost, notHandedOver: cells.length - ok - recovered - lost };
}
