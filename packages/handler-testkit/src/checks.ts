/**
 * The conformance checks. Each boots its own kernels, runs one scenario and returns the
 * problems it found (empty: the handler conforms). {@link describeHandlerConformance} wraps
 * them in vitest tests; they are exported so a kit user can run one alone or in a loop.
 *
 * | check | scenario | a problem is |
 * |---|---|---|
 * | round trip | 3 files preserved, kexec, 2 retrieved (last first), 1 left to `finish` | a snapshot that differs, a failed op, a read of poison during retrieve/finish, a handler page still preserved after finish (leak) |
 * | unpreserve | preserve, close the session before any kexec | a run left in the KHO map, a changed file, a second preserve refused |
 * | forgotten page | one handler run dropped from the map just before kexec | a retrieve that neither fails with an errno, nor reads poison, nor returns different contents |
 * | hostile records | the record's bytes, another page's bytes or `serializedData` corrupted (seeded) | a throw without an errno; a failed retrieve that changed a byte or a stamp; the original then not retrievable; a success that read poison |
 * | compatible | near-miss handlers (prefix, suffix, case) | a compatible outside 1..47 bytes, a dispatch to a near miss, the record lost |
 */
import { createHash } from "node:crypto";
import { KernelError, PAGE_SIZE, type Machine, type PreservedRun } from "@liveupdate/kho";
import { HandlerRegistry, LiveUpdate, type FileHandler, type FileOpArgs, type LuoFile } from "@liveupdate/luo-core";
import { SeededRandom } from "./prng.js";
import {
  DEFAULT_MEMORY,
  canonicalJson,
  describeError,
  hex,
  isTypedError,
  type ConformanceProblem,
  type HandlerSubject,
  type JsonValue,
  type MachineOptions,
} from "./subject.js";
import { delegateHandler, recordingHandler, watchPoisonReads, watchedHandler, type PoisonWatch, type RecordedFile } from "./wrappers.js";

/** The session every check preserves its files in. */
export const CONFORMANCE_SESSION = "handler-conformance";

/** Bytes a compatible may have (`char compatible[48]` with its NUL). */
export const MAX_COMPATIBLE_BYTES = 47;

/** Options of {@link checkRoundTrip}, {@link checkUnpreserve}, {@link checkForgottenPages}. */
export interface SeededCheckOptions extends MachineOptions {
  /** The scenario's seed; file seeds are derived from it. */
  readonly seed: number;
}

/** The handlers of a kernel: the subject's (possibly wrapped) first, then its companions. */
function kernelHandlers(subject: HandlerSubject, first: FileHandler): FileHandler[] {
  return [first, ...(subject.companions?.() ?? [])];
}

/** Seed of the `i`th file of a scenario. */
function fileSeed(seed: number, i: number): number {
  return seed * 8 + i;
}

function snapshotProblem(check: string, seed: number | undefined, what: string, before: JsonValue, after: JsonValue): ConformanceProblem | undefined {
  const a = canonicalJson(before);
  const b = canonicalJson(after);
  if (a === b) return undefined;
  const message = `${what}: snapshot ${b} differs from the preserved ${a}`;
  return seed === undefined ? { check, message } : { check, seed, message };
}

/** Every page address of `runs`. */
function pagesOf(runs: readonly PreservedRun[]): number[] {
  const pages: number[] = [];
  for (const r of runs) for (let i = 0; i < 2 ** r.order; i++) pages.push(r.phys + i * PAGE_SIZE);
  return pages;
}

function pageList(pages: readonly number[]): string {
  const shown = pages.slice(0, 8).map(hex).join(", ");
  return pages.length > 8 ? `${shown}, ... (${pages.length} pages)` : shown;
}

/** Runs of `runs` whose head page still carries its KHO stamp in `machine`. */
function stillStamped(machine: Machine, runs: readonly PreservedRun[]): PreservedRun[] {
  return runs.filter((r) => machine.incoming.stampOrderOf(r.phys) >= 0);
}

/**
 * Round trip across kexec: three files (seeds derived from `seed`) preserved in one session;
 * the next kernel retrieves the last two, newest first, compares each snapshot with the one
 * taken before preserve, and finishes the session, so the first file goes through `finish`
 * without a retrieve. Retrieve and finish are watched for reads of poison; after finish no
 * run the handler preserved may still be stamped.
 */
export function checkRoundTrip(subject: HandlerSubject, options: SeededCheckOptions): ConformanceProblem[] {
  const { seed } = options;
  const check = "round-trip";
  const problems: ConformanceProblem[] = [];
  const inner = subject.handler();
  const rec = recordingHandler(inner);
  const lu = LiveUpdate.boot({ memory: options.memory ?? DEFAULT_MEMORY, handlers: kernelHandlers(subject, rec.handler) });
  const session = lu.open().createSession(CONFORMANCE_SESSION);
  const FILES = 3;
  const expected: JsonValue[] = [];
  for (let i = 0; i < FILES; i++) {
    const file = subject.makeFile(lu.machine, fileSeed(seed, i));
    if (!inner.canPreserve(file)) {
      problems.push({ check, seed, message: `canPreserve is false for ${file.description}, a file makeFile made for this handler` });
      return problems;
    }
    expected.push(subject.snapshot(file));
    try {
      session.preserveFd(file, BigInt(i + 1));
    } catch (e) {
      problems.push({ check, seed, message: `preserve of ${file.description} failed: ${describeError(e)}` });
      return problems;
    }
  }
  const armedWatch: { current?: PoisonWatch } = {};
  let next: LiveUpdate;
  try {
    next = lu.kexec({ handlers: kernelHandlers(subject, watchedHandler(subject.handler(), () => armedWatch.current)) });
  } catch (e) {
    problems.push({ check, seed, message: `kexec (freeze) failed: ${describeError(e)}` });
    return problems;
  }
  const watch = watchPoisonReads(next.machine.memory);
  armedWatch.current = watch;
  try {
    const records = next.inspectIncoming()?.sessions.find((s) => s.name === CONFORMANCE_SESSION)?.files ?? [];
    rec.files.forEach((f, i) => {
      const record = records.find((r) => r.token === BigInt(i + 1));
      if (record?.data !== f.data) {
        problems.push({ check, seed, message: `file ${i + 1}: the next kernel's record holds data ${record === undefined ? "none" : hex(record.data)}, the handler set ${hex(f.data)}` });
      }
    });
    const s2 = next.open().retrieveSession(CONFORMANCE_SESSION);
    for (let i = FILES - 1; i >= 1; i--) {
      let file: LuoFile;
      try {
        file = s2.retrieveFd(BigInt(i + 1));
      } catch (e) {
        problems.push({ check, seed, message: `retrieve of token ${i + 1} failed: ${describeError(e)}` });
        continue;
      }
      const p = snapshotProblem(check, seed, `token ${i + 1} (${file.description})`, expected[i]!, subject.snapshot(file));
      if (p !== undefined) problems.push(p);
    }
    try {
      s2.finish();
    } catch (e) {
      problems.push({ check, seed, message: `finish failed: ${describeError(e)}` });
    }
    const poison = watch.pages();
    if (poison.length > 0) {
      problems.push({ check, seed, message: `retrieve/finish read ${poison.length} page(s) the previous kernel did not preserve (poison): ${pageList(poison)}` });
    }
    const leaked = stillStamped(next.machine, rec.files.flatMap((f) => f.runs));
    if (leaked.length > 0) {
      problems.push({
        check,
        seed,
        message: `after finish ${leaked.length} run(s) the handler preserved are still preserved, never restored (leaked): ${leaked.map((r) => `${hex(r.phys)}/order ${r.order}`).join(", ")}`,
      });
    }
  } finally {
    watch.stop();
  }
  return problems;
}

/**
 * Unpreserve: preserve a file, close the session before any kexec. Every run the handler
 * added must be gone from the KHO map, the file's snapshot unchanged, and the file must be
 * preservable again.
 */
export function checkUnpreserve(subject: HandlerSubject, options: SeededCheckOptions): ConformanceProblem[] {
  const { seed } = options;
  const check = "unpreserve";
  const problems: ConformanceProblem[] = [];
  const lu = LiveUpdate.boot({ memory: options.memory ?? DEFAULT_MEMORY, handlers: kernelHandlers(subject, subject.handler()) });
  const dev = lu.open();
  const before = new Set(lu.machine.kho.preservedRuns().map((r) => `${r.phys}/${r.order}`));
  const file = subject.makeFile(lu.machine, fileSeed(seed, 0));
  const expected = subject.snapshot(file);
  const session = dev.createSession(CONFORMANCE_SESSION);
  try {
    session.preserveFd(file, 1n);
  } catch (e) {
    return [{ check, seed, message: `preserve failed: ${describeError(e)}` }];
  }
  session.close();
  const left = lu.machine.kho.preservedRuns().filter((r) => !before.has(`${r.phys}/${r.order}`));
  if (left.length > 0) {
    problems.push({ check, seed, message: `${left.length} run(s) still preserved after the session was closed: ${left.map((r) => `${hex(r.phys)}/order ${r.order}`).join(", ")}` });
  }
  const p = snapshotProblem(check, seed, `${file.description} after unpreserve`, expected, subject.snapshot(file));
  if (p !== undefined) problems.push(p);
  try {
    dev.createSession(`${CONFORMANCE_SESSION}-again`).preserveFd(file, 2n);
  } catch (e) {
    problems.push({ check, seed, message: `preserving the file again after unpreserve failed: ${describeError(e)}` });
  }
  return problems;
}

/** Options of {@link checkForgottenPages}. */
export interface ForgottenPagesOptions extends SeededCheckOptions {
  /** At most this many runs are dropped, one per kexec, spread over the list (default 8). */
  readonly maxRuns?: number;
}

/** What {@link checkForgottenPages} did. */
export interface ForgottenPagesReport {
  /** Runs the handler preserved for the file. */
  readonly runs: number;
  /** How each dropped run was caught, by index. */
  readonly caught: readonly { readonly run: number; readonly by: "errno" | "poison-read" | "snapshot" }[];
  readonly problems: ConformanceProblem[];
}

/** Up to `max` indices of `0..n-1`, spread evenly, first and last included. */
function spread(n: number, max: number): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const out = new Set<number>();
  for (let k = 0; k < max; k++) out.add(Math.round((k * (n - 1)) / (max - 1)));
  return [...out];
}

/**
 * Poison detection: the handler "forgets" one of its runs (the kit drops it from the KHO map
 * right after the handler's freeze, so the next kernel sees poison there), and the dropped
 * page must be caught: the retrieve fails with an errno (e.g. a missing `KHOP` stamp), or it
 * reads the poison (the kit watches reads), or the retrieved file's snapshot differs. A run
 * whose loss none of these notices is a page the handler preserves and never uses: a
 * problem (preserve less, or restore it in retrieve).
 */
export function checkForgottenPages(subject: HandlerSubject, options: ForgottenPagesOptions): ForgottenPagesReport {
  const { seed } = options;
  const check = "forgotten-page";
  const problems: ConformanceProblem[] = [];
  const caught: { run: number; by: "errno" | "poison-read" | "snapshot" }[] = [];
  const scenario = (drop: number | undefined): { runs: number } => {
    const inner = subject.handler();
    const rec = recordingHandler(inner, (file: RecordedFile, args: FileOpArgs) => {
      const run = drop === undefined ? undefined : file.runs[drop];
      if (run !== undefined) args.machine.kho.unpreservePages(run.phys, 2 ** run.order);
    });
    const lu = LiveUpdate.boot({ memory: options.memory ?? DEFAULT_MEMORY, handlers: kernelHandlers(subject, rec.handler) });
    const file = subject.makeFile(lu.machine, fileSeed(seed, 0));
    const expected = subject.snapshot(file);
    lu.open().createSession(CONFORMANCE_SESSION).preserveFd(file, 1n);
    if (drop === undefined) return { runs: rec.files[0]?.runs.length ?? 0 };
    const dropped = rec.files[0]?.runs[drop];
    const armedWatch: { current?: PoisonWatch } = {};
    const next = lu.kexec({ handlers: kernelHandlers(subject, watchedHandler(subject.handler(), () => armedWatch.current)) });
    const watch = watchPoisonReads(next.machine.memory);
    armedWatch.current = watch;
    const what = dropped === undefined ? `run ${drop}` : `run ${drop} (${hex(dropped.phys)}/order ${dropped.order})`;
    try {
      const s2 = next.open().retrieveSession(CONFORMANCE_SESSION);
      let file2: LuoFile;
      try {
        file2 = s2.retrieveFd(1n);
      } catch (e) {
        if (isTypedError(e)) caught.push({ run: drop, by: "errno" });
        else problems.push({ check, seed, message: `with ${what} not preserved, retrieve threw ${describeError(e)}: not a KernelError/FormatError with an errno` });
        return { runs: 0 };
      }
      if (watch.pages().length > 0) caught.push({ run: drop, by: "poison-read" });
      else if (canonicalJson(subject.snapshot(file2)) !== canonicalJson(expected)) caught.push({ run: drop, by: "snapshot" });
      else {
        problems.push({
          check,
          seed,
          message: `${what} was not preserved and nothing noticed: retrieve succeeded, read no poison and returned the same file. Restore every run you preserve (kho restore checks the KHOP stamp) or do not preserve it`,
        });
      }
    } finally {
      watch.stop();
    }
    return { runs: 0 };
  };
  const runs = scenario(undefined).runs;
  for (const k of spread(runs, options.maxRuns ?? 8)) scenario(k);
  return { runs, caught, problems };
}

/** Options of {@link checkHostileRecords}. */
export interface HostileRecordsOptions extends SeededCheckOptions {
  /** Corruptions to try, each on a fresh kexec (default 48). */
  readonly cases?: number;
}

/** One corruption and what the handler did with it. */
export interface HostileCase {
  /** Reproduces the case with {@link checkHostileRecords} `{ seed, cases: index + 1 }`. */
  readonly index: number;
  /** What was corrupted, e.g. `"record+0x10: u64 0xffffffffffffffff"`. */
  readonly mutation: string;
  /** `"retrieved"`, or the errno of the typed error, or `"untyped"`. */
  readonly outcome: string;
}

/** What {@link checkHostileRecords} did. */
export interface HostileRecordsReport {
  readonly cases: readonly HostileCase[];
  readonly problems: ConformanceProblem[];
}

interface Mutation {
  readonly text: string;
  /** `serializedData` to retrieve with. */
  readonly data: bigint;
  apply(): void;
  undo(): void;
}

const U64_MAX = (1n << 64n) - 1n;

function u64Bytes(value: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value & U64_MAX, true);
  return b;
}

/** A page of `machine` that holds poison: not preserved, never written in this kernel. */
function poisonPage(machine: Machine): number {
  const memory = machine.memory;
  const first = memory.ranges[0]!;
  const start = Math.floor(first.start / PAGE_SIZE) + Math.floor(first.size / PAGE_SIZE / 2);
  for (let pfn = start; memory.isValidPfn(pfn); pfn++) if (memory.pageState(pfn) === "background") return pfn * PAGE_SIZE;
  return first.start + first.size - PAGE_SIZE;
}

/** A seeded corruption of the handler's record, one of its pages, or its `serializedData`. */
function pickMutation(rng: SeededRandom, machine: Machine, runs: readonly PreservedRun[], data: bigint): Mutation {
  const memory = machine.memory;
  const pages = pagesOf(runs);
  const dataPhys = data > 0n && data <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(data) : -1;
  const recordPage = pages.find((p) => dataPhys >= p && dataPhys < p + PAGE_SIZE);
  const poison = poisonPage(machine);
  const kind = pages.length === 0 ? 2 : rng.below(recordPage === undefined ? 2 : 3);
  if (kind === 2 || pages.length === 0) {
    const values: [string, bigint][] = [
      ["0", 0n],
      ["1", 1n],
      [`bit ${rng.below(64)} flipped`, data ^ (1n << BigInt(rng.below(64)))],
      ["+ one page", data + BigInt(PAGE_SIZE)],
      ["- one page", data - BigInt(PAGE_SIZE)],
      ["+ 8", data + 8n],
      ["2^64 - 1", U64_MAX],
      ["2^63", 1n << 63n],
      ["a poison page", BigInt(poison)],
    ];
    const [what, value] = rng.pick(values);
    return { text: `serializedData ${hex(data)} -> ${what} (${hex(value & U64_MAX)})`, data: value & U64_MAX, apply: () => undefined, undo: () => undefined };
  }
  // A byte range in the record (around serializedData) or anywhere in one of the handler's pages.
  let at: number;
  let where: string;
  if (kind === 1 && recordPage !== undefined) {
    const span = Math.min(256, recordPage + PAGE_SIZE - dataPhys);
    at = dataPhys + rng.below(span);
    where = `record+${hex(at - dataPhys)}`;
  } else {
    const page = rng.pick(pages);
    at = page + rng.below(PAGE_SIZE);
    where = `page ${hex(page)}+${hex(at - page)}`;
  }
  const page = at - (at % PAGE_SIZE);
  const aligned8 = at - (at % 8);
  const aligned4 = at - (at % 4);
  const other = rng.pick(pages);
  const old8 = memory.readU64(aligned8);
  const choices: [string, number, Uint8Array][] = [
    [`bit ${at % 8} of the byte flipped`, at, Uint8Array.of(memory.read(at, 1)[0]! ^ (1 << rng.below(8)))],
    ["byte 0x00", at, Uint8Array.of(0)],
    ["byte 0xff", at, Uint8Array.of(0xff)],
    ["a random byte", at, Uint8Array.of(rng.below(256))],
    ["u32 0xffffffff", aligned4, Uint8Array.of(0xff, 0xff, 0xff, 0xff)],
    ["u32 0x80000000", aligned4, Uint8Array.of(0, 0, 0, 0x80)],
    ["u64 0", aligned8, u64Bytes(0n)],
    ["u64 2^64 - 1", aligned8, u64Bytes(U64_MAX)],
    ["u64 2^63", aligned8, u64Bytes(1n << 63n)],
    ["u64 2^52", aligned8, u64Bytes(1n << 52n)],
    ["u64 + one page", aligned8, u64Bytes(old8 + BigInt(PAGE_SIZE))],
    ["u64 a poison page", aligned8, u64Bytes(BigInt(poison))],
    ["u64 another handler page", aligned8, u64Bytes(BigInt(other))],
    ["the whole page zeroed", page, new Uint8Array(PAGE_SIZE)],
    ["the whole page 0xff", page, new Uint8Array(PAGE_SIZE).fill(0xff)],
  ];
  const [what, target, bytes] = rng.pick(choices);
  const original = memory.read(target, bytes.length);
  return {
    text: `${where}: ${what}`,
    data,
    apply: () => { memory.write(target, bytes); },
    undo: () => { memory.write(target, original); },
  };
}

/** sha256 of every byte and stamp of `runs` in `machine`: "nothing changed" is this staying equal. */
function stateDigest(machine: Machine, runs: readonly PreservedRun[]): string {
  const h = createHash("sha256");
  for (const r of runs) {
    h.update(`${r.phys}:${machine.incoming.stampOrderOf(r.phys)};`);
    h.update(machine.memory.read(r.phys, PAGE_SIZE * 2 ** r.order));
  }
  return h.digest("hex");
}

function retrieveArgs(handler: FileHandler, next: LiveUpdate, data: bigint): FileOpArgs {
  return { handler, machine: next.machine, file: undefined, serializedData: data, privateData: undefined, retrieveStatus: 0, flbs: next.flbs };
}

/**
 * Hostile records: for each case, a fresh kexec of one file, then one seeded corruption (of
 * the record around `serializedData`, of any byte of the handler's pages, or of
 * `serializedData` itself), then the handler's `retrieve`, called directly (the next kernel's
 * LUO is never opened, so nothing else touches the handover):
 *
 * - it may succeed (the corruption hit a byte that does not matter, or made another valid
 *   file), but not after reading a page that was not preserved (poison);
 * - or throw a `KernelError` / `FormatError` (an errno): then every byte and every `KHOP`
 *   stamp of the handler's runs must be as before the call ("a failed retrieve changes
 *   nothing"), and, with the corruption undone, a second retrieve must succeed with the
 *   original snapshot;
 * - anything else thrown (`TypeError`, `RangeError`, a plain `Error`) is a problem.
 */
export function checkHostileRecords(subject: HandlerSubject, options: HostileRecordsOptions): HostileRecordsReport {
  const { seed } = options;
  const check = "hostile-record";
  const problems: ConformanceProblem[] = [];
  const cases: HostileCase[] = [];
  const count = options.cases ?? 48;
  for (let index = 0; index < count; index++) {
    const rng = new SeededRandom((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
    const inner = subject.handler();
    const rec = recordingHandler(inner);
    const lu = LiveUpdate.boot({ memory: options.memory ?? DEFAULT_MEMORY, handlers: kernelHandlers(subject, rec.handler) });
    const file = subject.makeFile(lu.machine, fileSeed(seed, index % 4));
    const expected = subject.snapshot(file);
    lu.open().createSession(CONFORMANCE_SESSION).preserveFd(file, 1n);
    const next = lu.kexec({ handlers: [] });
    const recorded = rec.files[0];
    if (recorded === undefined) {
      problems.push({ check, seed, message: "the handler's preserve was not called for its own file" });
      break;
    }
    const { runs, data } = recorded;
    const mutation = pickMutation(rng, next.machine, runs, data);
    const watch = watchPoisonReads(next.machine.memory);
    const at = `case ${index} (${mutation.text})`;
    try {
      mutation.apply();
      const digest = stateDigest(next.machine, runs);
      const args = retrieveArgs(inner, next, mutation.data);
      try {
        watch.armed(() => { inner.retrieve(args); });
      } catch (e) {
        if (!isTypedError(e)) {
          cases.push({ index, mutation: mutation.text, outcome: "untyped" });
          problems.push({ check, seed, message: `${at}: retrieve threw ${describeError(e)}; a hostile record must give a KernelError/FormatError with an errno` });
          continue;
        }
        cases.push({ index, mutation: mutation.text, outcome: e.errno });
        if (stateDigest(next.machine, runs) !== digest) {
          problems.push({ check, seed, message: `${at}: retrieve failed with ${e.errno} but changed the handler's pages or restored some of them: a failed retrieve must change nothing` });
          continue;
        }
        mutation.undo();
        const again = retrieveArgs(inner, next, data);
        try {
          inner.retrieve(again);
        } catch (e2) {
          problems.push({ check, seed, message: `${at}: after a failed retrieve (${e.errno}) and the corruption undone, retrieve failed: ${describeError(e2)}` });
          continue;
        }
        if (again.file === undefined) problems.push({ check, seed, message: `${at}: the second retrieve set no file` });
        else {
          const p = snapshotProblem(check, seed, `${at}: the second retrieve`, expected, subject.snapshot(again.file));
          if (p !== undefined) problems.push(p);
        }
        continue;
      }
      cases.push({ index, mutation: mutation.text, outcome: "retrieved" });
      const poison = watch.pages();
      if (poison.length > 0) {
        problems.push({ check, seed, message: `${at}: retrieve succeeded after reading ${poison.length} page(s) that were not preserved (poison): ${pageList(poison)}; check the KHOP stamp of every page a record points at` });
      }
    } finally {
      watch.stop();
    }
  }
  return { cases, problems };
}

/** Near misses of `compatible`: a suffix added, the last character dropped, the case of one letter changed. */
export function nearMissCompatibles(compatible: string): string[] {
  const out = new Set<string>();
  const fits = (s: string): boolean => s.length > 0 && new TextEncoder().encode(s).length <= MAX_COMPATIBLE_BYTES;
  const suffixed = `${compatible}x`;
  out.add(fits(suffixed) ? suffixed : `${compatible.slice(0, -1)}${compatible.endsWith("x") ? "y" : "x"}`);
  if (compatible.length > 1) out.add(compatible.slice(0, -1));
  out.add(`x${compatible}`.slice(0, fits(`x${compatible}`) ? undefined : -1));
  const letter = /[a-zA-Z]/.exec(compatible);
  if (letter !== null) {
    const c = letter[0];
    const swapped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
    out.add(compatible.slice(0, letter.index) + swapped + compatible.slice(letter.index + 1));
  }
  out.delete(compatible);
  return [...out].filter(fits);
}

/**
 * Compatible-string rules: the handler's compatible is 1..47 UTF-8 bytes without NUL (and a
 * 48-byte one is refused, `EINVAL`); `canPreserve` refuses a file that is not its own; and
 * dispatch is by exact match: a next kernel whose only handlers are near misses (prefix,
 * suffix, case) refuses the state (`EIO` on open, none of them called), and the same
 * untouched handover then retrieves with the real handler.
 */
export function checkCompatibleRules(subject: HandlerSubject, options: MachineOptions = {}): ConformanceProblem[] {
  const check = "compatible";
  const problems: ConformanceProblem[] = [];
  const inner = subject.handler();
  const compatible = inner.compatible;
  const bytes = new TextEncoder().encode(compatible);
  if (bytes.length === 0 || bytes.length > MAX_COMPATIBLE_BYTES || bytes.includes(0)) {
    return [{ check, message: `compatible "${compatible}" is ${bytes.length} bytes; it must be 1..${MAX_COMPATIBLE_BYTES} bytes without NUL (char compatible[48])` }];
  }
  const tooLong = compatible + "-".repeat(MAX_COMPATIBLE_BYTES + 1 - bytes.length);
  try {
    new HandlerRegistry([delegateHandler(inner, tooLong)]);
    problems.push({ check, message: `a 48-byte compatible ("${tooLong}") was accepted by the registry` });
  } catch (e) {
    if (!(e instanceof KernelError) || e.errno !== "EINVAL") problems.push({ check, message: `a 48-byte compatible was refused with ${describeError(e)}, not EINVAL` });
  }
  const foreign: LuoFile = { description: "handler-testkit:foreign-file" };
  if (inner.canPreserve(foreign)) problems.push({ check, message: "canPreserve is true for a file that is not the handler's own (it would take other handlers' files)" });

  const lu = LiveUpdate.boot({ memory: options.memory ?? DEFAULT_MEMORY, handlers: kernelHandlers(subject, inner) });
  const file = subject.makeFile(lu.machine, 1);
  const expected = subject.snapshot(file);
  lu.open().createSession(CONFORMANCE_SESSION).preserveFd(file, 1n);
  let calls = 0;
  const count = (_args: FileOpArgs, op: () => void): void => {
    calls++;
    op();
  };
  const twins = nearMissCompatibles(compatible).map((c) => delegateHandler(inner, c, { retrieve: count, finish: count }));
  const companions = subject.companions?.() ?? [];
  let next: LiveUpdate | undefined;
  for (const twin of twins) {
    const handlers = [twin, ...companions.filter((h) => h.compatible !== twin.compatible)];
    next = next === undefined ? lu.kexec({ handlers }) : LiveUpdate.attach(next.machine, { handlers });
    try {
      next.open();
      problems.push({ check, message: `a next kernel with "${twin.compatible}" instead of "${compatible}" opened /dev/liveupdate: the record was dispatched to a near miss` });
      return problems;
    } catch (e) {
      if (!(e instanceof KernelError) || e.errno !== "EIO") problems.push({ check, message: `with only "${twin.compatible}", open failed with ${describeError(e)}, not EIO` });
    }
    next.detach();
  }
  const all = [...twins, inner, ...companions];
  next = next === undefined ? lu.kexec({ handlers: all }) : LiveUpdate.attach(next.machine, { handlers: all });
  try {
    const s2 = next.open().retrieveSession(CONFORMANCE_SESSION);
    const p = snapshotProblem(check, undefined, "the record retrieved after the near misses", expected, subject.snapshot(s2.retrieveFd(1n)));
    if (p !== undefined) problems.push(p);
    s2.finish();
  } catch (e) {
    problems.push({ check, message: `after near misses refused it, the handover did not retrieve with the real handler: ${describeError(e)}` });
  }
  if (calls > 0) problems.push({ check, message: `near-miss handlers (${twins.map((t) => `"${t.compatible}"`).join(", ")}) were called ${calls} time(s)` });
  return problems;
}
