/**
 * Run a `luo simulate` scenario end to end: boot, populate, preserve, kexec, restore,
 * retrieve, verify, finish; with timings around the luo-core and kho calls.
 *
 * How each phase is measured (`performance.now()`):
 * - `populate`: memfd_create, ftruncate, the writes, lseek and the seals (not a LUO phase).
 * - `preserve`: every `PRESERVE_FD` (the handler's preserve: pin, fill holes, folio array).
 * - `freeze`: the sum of the producer handlers' `freeze` ops, timed by a thin wrapper around
 *   each handler object (same compatible, same ops) during LUO's before-kexec hook.
 * - `serialize`: the rest of LUO's before-kexec hook (`liveupdate_reboot`: session and file
 *   records, FLBs): from the `kexec` call to a before-kexec hook registered after LUO's,
 *   minus `freeze`.
 * - `image` (with `--out`): the copy of the handed-over memory and the ELF core write, in
 *   that same hook; excluded from the others.
 * - `kexec`: from that hook to the return of `kexec`: the memory handover (every page not
 *   preserved becomes poison), the next kernel's KHO boot (FDT check, radix map walk, KHOP
 *   stamps) and LUO's attach (header check).
 * - `restore`: the first open of `/dev/liveupdate` in the next kernel (validate every record,
 *   restore the LUO blob and chains); with a failed first open, both opens.
 * - `recover` (after a failed first open): LUO detached and attached again with the
 *   producer's handler on the same, untouched handover.
 * - `retrieve`: every `RETRIEVE_SESSION` and `RETRIEVE_FD` (the handler's retrieve: folios
 *   into new page caches).
 * - `verify`: reading every byte back and comparing it with the regenerated contents (plus
 *   the sha256 of what was read).
 * - `finish`: every session's `FINISH`.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { performance } from "node:perf_hooks";
import { elfCoreChunks, FormatError, KernelError, KHO_FDT_SIZE, PAGE_SIZE, PhysicalMemory, planElfCore, POISON_BYTE, type Machine } from "@liveupdate/kho";
import { findUnretrievable, LiveUpdate, type FileHandler, type LiveUpdateDevice, type LuoFile, type LuoSession, type PreflightProblem } from "@liveupdate/luo-core";
import { F_SEAL_SEAL, memfd, MemfdFile, SEEK_SET } from "@liveupdate/memfd";
import { memfdV0 } from "@liveupdate/memfd-luo-v0";
import { memfdV1 } from "@liveupdate/memfd-luo-v1";
import { memfdV2 } from "@liveupdate/memfd-luo-v2";
import { formatBytes } from "./format.js";
import { fillContents, fillExpected, scenarioFiles, sealsOf, writtenBytes, type FileSpec, type Scenario } from "./scenario.js";

/** The handler packages `luo simulate` can put on either side. */
export const HANDLERS: Readonly<Record<string, FileHandler>> = Object.freeze({
  "memfd-v0": memfdV0,
  "memfd-v1": memfdV1,
  "memfd-v2": memfdV2,
});

/** Compatible strings whose records carry the memfd's seals. */
const SEAL_CARRYING = new Set(["memfd-v2"]);

/** The phases of a run, in the order they happen. */
export type PhaseName = "populate" | "preserve" | "freeze" | "serialize" | "image" | "kexec" | "restore" | "recover" | "retrieve" | "verify" | "finish";

/** One phase's time. */
export interface PhaseTiming {
  readonly phase: PhaseName;
  readonly ms: number;
}

/** What a run reports while it goes (progress bars, plain lines). */
export interface SimulateObserver {
  /** A step starts; it will report `total` units (bytes or files) of progress. */
  begin(step: string, total: number, unit: "bytes" | "files"): void;
  /** `done` of the step's `total` units are done. */
  progress(done: number): void;
  /** The step is over: one line saying what it did. */
  end(step: string, summary: string): void;
}

/** What the next kernel gave back for one file, as read. */
export interface RetrievedFile {
  readonly size: number;
  readonly pos: number;
  readonly seals: number;
  /** Folio count by order. */
  readonly folios: Readonly<Record<number, number>>;
  /** sha256 of the bytes `[0, size)` as read back. */
  readonly sha256: string;
}

/** How one file came through. */
export interface FileOutcome {
  readonly spec: FileSpec;
  /** The compatible in its `luo_file_ser` record, as the next kernel was handed it. */
  readonly compatible: string | undefined;
  /**
   * `ok`: retrieved by the consumer kernel and every byte verified; `recovered`: the consumer
   * kernel could not retrieve it (as its handler set predicts) and the same handover, with
   * the producer's handler, retrieved and verified it; `failed`: not verified.
   */
  readonly result: "ok" | "recovered" | "failed";
  /** The consumer kernel's errno for this file (`ENOENT`: no handler; `EIO`: the open failed), or undefined. */
  readonly errno: string | undefined;
  /** What did not match, or why it could not be read. */
  readonly problems: readonly string[];
  readonly retrieved: RetrievedFile | undefined;
  /** Whether the format carries seals (else the next kernel's file has `F_SEAL_SEAL` only). */
  readonly sealsCarried: boolean;
}

/** The consumer kernel's failed first open, and the proof that nothing was lost. */
export interface RetrieveFailure {
  /** What `open("/dev/liveupdate")` returned (`EIO`). */
  readonly openErrno: string;
  /** Why the deserialization failed (`ENOENT`: no handler for a compatible). */
  readonly errno: string;
  readonly message: string;
  /** Where it stopped. */
  readonly failedAt: { readonly session: string; readonly token?: bigint; readonly compatible?: string } | undefined;
  /** Whether the pre-flight before kexec predicted it. */
  readonly predicted: boolean;
  /** KHO stamps (preserved runs not yet restored) before the failed open and after it. */
  readonly stampsBefore: number;
  readonly stampsAfter: number;
  /** The handlers of the second LUO attached to the same handover. */
  readonly recoveryHandlers: readonly string[];
}

/** The ELF core kept with `--out`. */
export interface ImageInfo {
  readonly path: string;
  readonly bytes: number;
  /** PT_LOAD segments. */
  readonly segments: number;
  /** The KHO root FDT handed to the next kernel (its `NT_LIVEUPDATE_KHO_FDT` note). */
  readonly fdtAddr: number;
  readonly fdtSize: number;
}

/** Inputs of {@link runSimulation}. */
export interface SimulateRun {
  readonly scenario: Scenario;
  /** Machine memory in bytes. */
  readonly memory: number;
  readonly producer: string;
  readonly consumer: readonly string[];
  /** Keep the handover as an ELF core here. */
  readonly out?: string | undefined;
  readonly observer: SimulateObserver;
  /**
   * Called with the next kernel after the kexec, before anything is restored: where a test
   * injects a fault (a flipped byte, a damaged record) that verify must catch.
   */
  readonly beforeRestore?: ((next: LiveUpdate) => void) | undefined;
}

/** Everything a run found. */
export interface SimulationResult {
  readonly scenario: Scenario;
  readonly memory: number;
  /** Scratch bytes of the machine. */
  readonly scratch: number;
  readonly producer: string;
  readonly consumer: readonly string[];
  readonly files: readonly FileOutcome[];
  readonly phases: readonly PhaseTiming[];
  /** What the pre-flight before kexec said the consumer kernel could not retrieve. */
  readonly preflight: readonly PreflightProblem[];
  readonly failure: RetrieveFailure | undefined;
  readonly image: ImageInfo | undefined;
  /** 0: every file `ok`; 1: otherwise. */
  readonly exitCode: 0 | 1;
}

/** A step of the run failed outright (a preserve refused, the kexec aborted). */
export class SimulateError extends Error {
  readonly step: string;
  readonly errno: string | undefined;
  constructor(step: string, cause: Error) {
    super(`${step} failed: ${cause.message}`, { cause });
    this.name = "SimulateError";
    this.step = step;
    this.errno = cause instanceof KernelError || cause instanceof FormatError ? cause.errno : undefined;
  }
}

const CHUNK = 1 << 20;

function handlerOf(name: string): FileHandler {
  const h = HANDLERS[name];
  if (h === undefined) throw new Error(`unknown handler ${name}`);
  return h;
}

/** The same handler, with its `freeze` op timed into `clock`. */
function withTimedFreeze(h: FileHandler, clock: { freezeMs: number }): FileHandler {
  return {
    compatible: h.compatible,
    canPreserve: (f) => h.canPreserve(f),
    preserve: (a) => {
      h.preserve(a);
    },
    unpreserve: (a) => {
      h.unpreserve(a);
    },
    retrieve: (a) => {
      h.retrieve(a);
    },
    finish: (a) => {
      h.finish(a);
    },
    getId: (f) => h.getId(f),
    freeze: (a) => {
      const t = performance.now();
      try {
        h.freeze?.(a);
      } finally {
        clock.freezeMs += performance.now() - t;
      }
    },
    ...(h.unfreeze === undefined ? {} : { unfreeze: (a) => h.unfreeze?.(a) }),
    ...(h.canFinish === undefined ? {} : { canFinish: (a) => h.canFinish?.(a) ?? true }),
    ...(h.flbs === undefined ? {} : { flbs: h.flbs }),
  };
}

function attempt<T>(step: string, body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (e instanceof KernelError || e instanceof FormatError) throw new SimulateError(step, e);
    throw e;
  }
}

/** Create and fill the scenario's memfds in `machine`. */
function populate(machine: Machine, files: readonly FileSpec[], observer: SimulateObserver): MemfdFile[] {
  const total = files.reduce((n, f) => n + writtenBytes(f), 0);
  observer.begin("populate", total, "bytes");
  const chunk = new Uint8Array(CHUNK);
  let done = 0;
  const out: MemfdFile[] = [];
  for (const spec of files) {
    const f = memfd.create(machine, { name: spec.name, flags: spec.flags, huge: spec.huge, ...(spec.hugeOrders === undefined ? {} : { hugeOrders: spec.hugeOrders }) });
    f.truncate(spec.size);
    for (const e of spec.extents) {
      for (let at = 0; at < e.length; at += CHUNK) {
        const part = chunk.subarray(0, Math.min(CHUNK, e.length - at));
        fillContents(spec.seed, e.offset + at, part);
        f.pwrite(e.offset + at, part);
        done += part.length;
        observer.progress(done);
      }
    }
    f.lseek(spec.pos, SEEK_SET);
    if (spec.seals !== 0) f.addSeals(spec.seals);
    out.push(f);
  }
  return out;
}

/**
 * The memory the next kernel finds at its entry point, before it runs: what
 * `PhysicalMemory.handOver` will make of `machine`'s memory (only the handover runs kept,
 * every other page poison), as a copy, so the real kexec can still take the original.
 */
function entryPointMemory(machine: Machine): PhysicalMemory {
  const src = machine.memory;
  const dst = new PhysicalMemory(src.ranges, "poison");
  for (const { pfn, count } of machine.kho.handoverRuns()) {
    // handOver: kept pages are zero unless they hold data (or were poison already).
    dst.zero(pfn * PAGE_SIZE, count * PAGE_SIZE);
    for (let p = pfn; p < pfn + count; p++) {
      const state = src.pageState(p);
      if (state === "data") dst.write(p * PAGE_SIZE, src.readPage(p));
      else if (state === "background" && src.background === "poison") dst.fill(p * PAGE_SIZE, PAGE_SIZE, POISON_BYTE);
    }
  }
  return dst;
}

function writeImage(machine: Machine, path: string, observer: SimulateObserver): ImageInfo {
  const memory = entryPointMemory(machine);
  const khoFdt = { addr: machine.kho.fdtPhys, size: KHO_FDT_SIZE };
  const plan = planElfCore(memory, { khoFdt });
  observer.begin("image", plan.fileSize, "bytes");
  let fd: number;
  try {
    fd = fs.openSync(path, "w");
  } catch (e) {
    throw new ImageWriteError(path, e as NodeJS.ErrnoException);
  }
  let written = 0;
  try {
    for (const chunk of elfCoreChunks(memory, { khoFdt, chunkBytes: 4 * CHUNK })) {
      let at = 0;
      while (at < chunk.length) at += fs.writeSync(fd, chunk, at, chunk.length - at);
      written += chunk.length;
      observer.progress(written);
    }
  } catch (e) {
    throw new ImageWriteError(path, e as NodeJS.ErrnoException);
  } finally {
    fs.closeSync(fd);
  }
  return { path, bytes: plan.fileSize, segments: plan.segments.length, fdtAddr: khoFdt.addr, fdtSize: khoFdt.size };
}

/** The `--out` file could not be written. */
export class ImageWriteError extends Error {
  readonly path: string;
  readonly code: string;
  constructor(path: string, cause: NodeJS.ErrnoException) {
    super(`cannot write ${path}: ${cause.code ?? cause.message}`, { cause });
    this.name = "ImageWriteError";
    this.path = path;
    this.code = cause.code ?? "EIO";
  }
}

function foliosByOrder(f: MemfdFile): Record<number, number> {
  const out: Record<number, number> = {};
  for (const folio of f.folios()) out[folio.order] = (out[folio.order] ?? 0) + 1;
  return out;
}

/** Read `file` back and compare it with `spec`; returns what was read and what did not match. */
function verifyFile(spec: FileSpec, file: LuoFile, carried: boolean, onBytes: (n: number) => void): { retrieved: RetrievedFile | undefined; problems: string[] } {
  if (!(file instanceof MemfdFile)) return { retrieved: undefined, problems: [`retrieved ${file.description}, not a memfd`] };
  const problems: string[] = [];
  if (file.size !== spec.size) problems.push(`size ${file.size}, expected ${spec.size}`);
  if (file.position !== spec.pos) problems.push(`pos ${file.position}, expected ${spec.pos}`);
  // A format that does not carry seals gives a kernel-made shmem file: F_SEAL_SEAL only.
  const seals = carried ? sealsOf(spec) : F_SEAL_SEAL;
  if (file.seals !== seals) problems.push(`seals 0x${file.seals.toString(16)}, expected 0x${seals.toString(16)}`);
  const hash = createHash("sha256");
  const expected = new Uint8Array(CHUNK);
  const size = Math.min(file.size, spec.size);
  let mismatch: number | undefined;
  for (let at = 0; at < size; at += CHUNK) {
    const n = Math.min(CHUNK, size - at);
    const actual = file.pread(at, n);
    hash.update(actual);
    if (mismatch === undefined) {
      const want = expected.subarray(0, n);
      fillExpected(spec, at, want);
      if (!Buffer.from(actual.buffer, actual.byteOffset, n).equals(Buffer.from(want.buffer, want.byteOffset, n))) {
        let k = 0;
        while (actual[k] === want[k]) k++;
        mismatch = at + k;
      }
    }
    onBytes(n);
  }
  if (mismatch !== undefined) problems.push(`contents differ at byte ${mismatch}`);
  return { retrieved: { size: file.size, pos: file.position, seals: file.seals, folios: foliosByOrder(file), sha256: hash.digest("hex") }, problems };
}

/** A kernel error's message without the `ERRNO: ` its text starts with. */
function withoutErrno(message: string): string {
  return message.replace(/^E[A-Z0-9]+: /, "");
}

function errnoOf(e: unknown): string {
  return e instanceof KernelError || e instanceof FormatError ? e.errno : "EIO";
}

/** Run the scenario. Throws {@link SimulateError} when a step before the retrieve fails. */
export function runSimulation(run: SimulateRun): SimulationResult {
  const { scenario, observer } = run;
  const files = scenarioFiles(scenario);
  const phases: PhaseTiming[] = [];
  const phase = (p: PhaseName, ms: number): void => {
    phases.push({ phase: p, ms });
  };
  const clock = { freezeMs: 0 };
  const producer = withTimedFreeze(handlerOf(run.producer), clock);
  const consumer = run.consumer.map(handlerOf);

  const lu = attempt("boot", () => LiveUpdate.boot({ memory: run.memory, handlers: [producer] }));
  const scratch = lu.machine.scratch.reduce((n, r) => n + r.size, 0);
  observer.end("boot", `${formatBytes(run.memory)} machine, ${formatBytes(scratch)} scratch, handlers ${run.producer}`);

  let t = performance.now();
  const memfds = attempt("populate", () => populate(lu.machine, files, observer));
  phase("populate", performance.now() - t);
  observer.end("populate", `${files.length} memfds, ${formatBytes(files.reduce((n, f) => n + writtenBytes(f), 0))} written`);

  observer.begin("preserve", files.length, "files");
  const dev = lu.open();
  const sessions: LuoSession[] = [];
  t = performance.now();
  let k = 0;
  for (const s of scenario.sessions) {
    const session = attempt(`create session ${s.name}`, () => dev.createSession(s.name));
    sessions.push(session);
    for (const spec of s.files) {
      const f = memfds[k]!;
      attempt(`preserve ${s.name}/${spec.name}`, () => {
        session.preserveFd(f, spec.token);
      });
      observer.progress(++k);
    }
  }
  phase("preserve", performance.now() - t);
  observer.end("preserve", `${scenario.sessions.length} sessions, ${files.length} files`);

  const preflight = lu.preflight(consumer);
  let image: ImageInfo | undefined;
  let serialized = 0;
  let imaged = 0;
  lu.machine.onBeforeKexec((machine) => {
    // Registered after LUO's hook (LUO hooks at attach): the state is serialized here.
    serialized = performance.now();
    if (run.out !== undefined) image = writeImage(machine, run.out, observer);
    imaged = performance.now();
  });
  t = performance.now();
  const next = attempt("kexec", () => lu.kexec({ handlers: consumer }));
  const booted = performance.now();
  phase("freeze", clock.freezeMs);
  phase("serialize", Math.max(0, serialized - t - clock.freezeMs));
  if (image !== undefined) {
    phase("image", imaged - serialized);
    observer.end("image", `${image.path}: ELF core, ${formatBytes(image.bytes)}, ${image.segments} segments, KHO FDT at 0x${image.fdtAddr.toString(16)}`);
  }
  phase("kexec", booted - imaged);
  observer.end("kexec", `into the next kernel, handlers ${run.consumer.join(", ") || "none"}`);

  run.beforeRestore?.(next);

  // What the next kernel was handed, read without consuming it.
  const handed = next.inspectIncoming();
  const compatibles = new Map<string, string>();
  for (const s of handed?.sessions ?? []) for (const f of s.files) compatibles.set(`${s.name}/${f.token}`, f.compatible);
  const unretrievable = handed === undefined ? [] : findUnretrievable(handed, consumer);
  const missing = new Set(unretrievable.map((p) => (p.kind === "no-handler" ? `${p.session}/${p.token}` : "")));

  // Restore: the consumer kernel's first open; on failure, the second LUO on the same handover.
  let kernel = next;
  let failure: RetrieveFailure | undefined;
  const stampsBefore = next.machine.incoming.stampedCount;
  t = performance.now();
  let dev2: LiveUpdateDevice;
  try {
    dev2 = next.open();
    phase("restore", performance.now() - t);
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    const failedOpen = performance.now() - t;
    const status = next.incoming;
    const stampsAfter = next.machine.incoming.stampedCount;
    const r = performance.now();
    next.detach();
    kernel = LiveUpdate.attach(next.machine, { handlers: [handlerOf(run.producer)] });
    const recoverMs = performance.now() - r;
    t = performance.now();
    dev2 = attempt("restore (recovery)", () => kernel.open());
    phase("restore", failedOpen + performance.now() - t);
    phase("recover", recoverMs);
    failure = {
      openErrno: e.errno,
      errno: status.errno ?? e.errno,
      message: withoutErrno(status.error?.message ?? e.message),
      failedAt: status.failedAt,
      predicted: preflight.length > 0,
      stampsBefore,
      stampsAfter,
      recoveryHandlers: [run.producer],
    };
    observer.end("restore", `first open of /dev/liveupdate: ${e.errno} (${failure.errno}: ${failure.message})`);
    observer.end("recover", `LUO attached again with ${run.producer} on the same handover: KHO stamps ${stampsBefore} before, ${stampsAfter} after the failed open`);
  }
  if (failure === undefined) observer.end("restore", `first open of /dev/liveupdate: ${handed?.sessions.length ?? 0} sessions`);

  observer.begin("retrieve", files.length, "files");
  const retrievedFiles: (LuoFile | Error)[] = [];
  const incomingSessions: LuoSession[] = [];
  let retrieveMs = 0;
  k = 0;
  for (const s of scenario.sessions) {
    t = performance.now();
    let session: LuoSession | Error;
    try {
      session = dev2.retrieveSession(s.name);
      incomingSessions.push(session);
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      session = e;
    }
    for (const spec of s.files) {
      if (session instanceof Error) retrievedFiles.push(session);
      else {
        try {
          retrievedFiles.push(session.retrieveFd(spec.token));
        } catch (e) {
          if (!(e instanceof KernelError) && !(e instanceof FormatError)) throw e;
          retrievedFiles.push(e);
        }
      }
    }
    retrieveMs += performance.now() - t;
    k += s.files.length;
    observer.progress(k);
  }
  phase("retrieve", retrieveMs);
  observer.end("retrieve", `${retrievedFiles.filter((f) => !(f instanceof Error)).length} of ${files.length} files`);

  observer.begin("verify", files.reduce((n, f) => n + f.size, 0), "bytes");
  t = performance.now();
  let verifiedBytes = 0;
  const outcomes: FileOutcome[] = files.map((spec, i) => {
    const got = retrievedFiles[i]!;
    const key = `${spec.session}/${spec.token}`;
    const compatible = compatibles.get(key);
    const carried = compatible !== undefined && SEAL_CARRYING.has(compatible);
    const consumerErrno = failure === undefined ? undefined : missing.has(key) ? "ENOENT" : failure.openErrno;
    if (got instanceof Error) {
      verifiedBytes += spec.size;
      observer.progress(verifiedBytes);
      return { spec, compatible, result: "failed", errno: errnoOf(got), problems: [`retrieve: ${got.message}`], retrieved: undefined, sealsCarried: carried };
    }
    const { retrieved, problems } = verifyFile(spec, got, carried, (n) => {
      verifiedBytes += n;
      observer.progress(verifiedBytes);
    });
    if (compatible === undefined) problems.push("no record for this token in the handover");
    const result = problems.length > 0 ? "failed" : failure === undefined ? "ok" : "recovered";
    return { spec, compatible, result, errno: consumerErrno, problems, retrieved, sealsCarried: carried };
  });
  phase("verify", performance.now() - t);
  const good = outcomes.filter((o) => o.result !== "failed").length;
  observer.end("verify", `${good} of ${files.length} files verified`);

  t = performance.now();
  for (const s of incomingSessions) {
    attempt(`finish ${s.name}`, () => {
      s.finish();
    });
  }
  phase("finish", performance.now() - t);

  const exitCode = outcomes.every((o) => o.result === "ok") ? 0 : 1;
  return { scenario, memory: run.memory, scratch, producer: run.producer, consumer: run.consumer, files: outcomes, phases, preflight, failure, image, exitCode };
}
