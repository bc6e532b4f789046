/**
 * Frozen golden fixtures of a handler format: what the previous kernel handed over for some
 * files, byte for byte, so that every later release of the handler can prove it still
 * decodes them.
 *
 * A fixture `NAME` in a directory is two files:
 *
 * - `NAME.khosprs1`: the pages of every KHO run the handler preserved for the files (the
 *   record, the arrays, the data pages), as a `KHOSPRS1` sparse page image (the format of
 *   the real-kernel golden vectors; `SparsePagesImage` of `@liveupdate/kho` reads it);
 * - `NAME.json`: the manifest ({@link FixtureManifest}): the compatible and format version,
 *   the machine's memory layout, each run (address, order, sha256), each file (token,
 *   `serializedData`, and the `expected` snapshot), and the image's size and sha256.
 *
 * {@link loadFixture} replays it: it boots a machine with the same memory, claims the
 * fixture's pages from the allocator (so nothing else lands there), writes their bytes,
 * preserves each run with its order, and hands LUO a record per file with the fixture's
 * compatible and `serializedData` (a stand-in handler that only sets the data). After the
 * kexec the handler under test retrieves each file from exactly the bytes and stamps the
 * old kernel left, and its snapshot must equal the frozen one.
 *
 * Freezing never overwrites: a fixture, once committed, is never regenerated (`EEXIST`).
 * Fixtures of handlers with FLBs are not supported (the FLB's data is not replayed).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, KernelError, Machine, PAGE_SIZE, SparsePagesImage, KHOSPRS1_MAGIC, type MemoryRange, type PreservedRun } from "@liveupdate/kho";
import { LiveUpdate, type FileHandler, type LuoFile } from "@liveupdate/luo-core";
import { canonicalJson, DEFAULT_MEMORY, describeError, hex, type ConformanceProblem, type HandlerSubject, type JsonValue, type MachineOptions } from "./subject.js";
import { recordingHandler, watchPoisonReads, watchedHandler, type PoisonWatch } from "./wrappers.js";

/** The manifest's `fixtureFormat` this kit writes and reads. */
export const FIXTURE_FORMAT = 1;

/** The session a fixture's files are preserved in. */
export const FIXTURE_SESSION = "fixture";

const FORMAT = "handler-fixture";

/** One preserved run of a fixture. */
export interface FixtureRun {
  /** Physical address, hex (`"0x2d000"`). */
  readonly phys: string;
  /** `2^order` pages. */
  readonly order: number;
  /** sha256 of its bytes, hex. */
  readonly sha256: string;
}

/** One file of a fixture. */
export interface FixtureFile {
  /** Its token in the session, hex. */
  readonly token: string;
  /** `luo_file_ser.data`: what the handler's preserve/freeze set, hex u64. */
  readonly data: string;
  /** The seed `makeFile` made it from (informational). */
  readonly seed: number;
  /** The snapshot the retrieved file must have. */
  readonly expected: JsonValue;
}

/** `NAME.json`. All addresses and u64s are hex strings; the rest plain JSON. */
export interface FixtureManifest {
  readonly fixtureFormat: number;
  /** `"@liveupdate/handler-testkit"`. */
  readonly generator: string;
  readonly name: string;
  readonly description: string;
  /** The compatible of every file's record. */
  readonly compatible: string;
  /** The handler package's own name for the format version (e.g. `"1"`). */
  readonly formatVersion: string;
  /** The machine the fixture was frozen on: memory ranges and scratch, in bytes. */
  readonly machine: { readonly ranges: readonly MemoryRange[]; readonly scratch: readonly MemoryRange[] };
  readonly session: string;
  /** The page image: file name (beside the manifest), format, size and sha256. */
  readonly image: { readonly file: string; readonly format: "KHOSPRS1"; readonly bytes: number; readonly sha256: string };
  readonly runs: readonly FixtureRun[];
  readonly files: readonly FixtureFile[];
}

/** Options of {@link freezeFixture}. */
export interface FreezeFixtureOptions extends MachineOptions {
  /** Directory to write into (created if missing). */
  readonly dir: string;
  /** File name stem: letters, digits, `.`, `_`, `-`. */
  readonly name: string;
  /** The handler and its files. */
  readonly subject: HandlerSubject;
  /** The package's name for the format version the handler writes. */
  readonly formatVersion: string;
  /** One file per seed, tokens 1, 2, ... (default `[1]`). */
  readonly seeds?: readonly number[];
  /** A sentence for the manifest. */
  readonly description?: string;
}

/** The KHOSPRS1 image of `ranges` (ascending, merged), read from `read`. */
export function encodeSparsePages(ranges: readonly { readonly phys: number; readonly bytes: Uint8Array }[]): Uint8Array {
  let size = 16;
  for (const r of ranges) size += 16 + r.bytes.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(KHOSPRS1_MAGIC), 0);
  view.setBigUint64(8, BigInt(ranges.length), true);
  let at = 16;
  for (const r of ranges) {
    view.setBigUint64(at, BigInt(r.phys), true);
    view.setBigUint64(at + 8, BigInt(r.bytes.length), true);
    out.set(r.bytes, at + 16);
    at += 16 + r.bytes.length;
  }
  return out;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function runBytes(run: PreservedRun): number {
  return PAGE_SIZE * 2 ** run.order;
}

/** Merge sorted runs into ascending ranges of adjacent pages. */
function mergeRuns(runs: readonly PreservedRun[]): { phys: number; size: number }[] {
  const out: { phys: number; size: number }[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last !== undefined && last.phys + last.size === r.phys) last.size += runBytes(r);
    else out.push({ phys: r.phys, size: runBytes(r) });
  }
  return out;
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new KernelError("EINVAL", `fixture name "${name}" must be 1..100 of [A-Za-z0-9._-]`);
}

/**
 * Freeze a fixture: preserve one file per seed with the subject's handler, kexec, check that
 * they retrieve with the same snapshots, and write `NAME.khosprs1` + `NAME.json` into `dir`.
 *
 * @throws KernelError `EEXIST` when either file exists (a frozen fixture is never
 *   regenerated), `EINVAL` for a bad name; the handler's error when the round trip fails.
 */
export function freezeFixture(options: FreezeFixtureOptions): FixtureManifest {
  const { dir, name, subject } = options;
  checkName(name);
  const manifestPath = path.join(dir, `${name}.json`);
  const imageName = `${name}.khosprs1`;
  const imagePath = path.join(dir, imageName);
  for (const p of [manifestPath, imagePath]) if (fs.existsSync(p)) throw new KernelError("EEXIST", `${p} exists: a frozen fixture is never regenerated (freeze a new name)`);
  const seeds = options.seeds ?? [1];
  const inner = subject.handler();
  const rec = recordingHandler(inner);
  const lu = LiveUpdate.boot({ memory: options.memory ?? DEFAULT_MEMORY, handlers: [rec.handler, ...(subject.companions?.() ?? [])] });
  const ranges = lu.machine.memory.ranges.map((r) => ({ start: r.start, size: r.size }));
  const scratch = lu.machine.scratch.map((r) => ({ start: r.start, size: r.size }));
  const session = lu.open().createSession(FIXTURE_SESSION);
  const expected: JsonValue[] = [];
  seeds.forEach((seed, i) => {
    const file = subject.makeFile(lu.machine, seed);
    expected.push(subject.snapshot(file));
    session.preserveFd(file, BigInt(i + 1));
  });
  if (rec.files.length !== seeds.length) throw new KernelError("EINVAL", `${seeds.length} files preserved but the handler "${inner.compatible}" took ${rec.files.length}`);
  const next = lu.kexec({ handlers: [subject.handler(), ...(subject.companions?.() ?? [])] });
  const memory = next.machine.memory;
  const byKey = new Map<string, PreservedRun>();
  for (const f of rec.files) for (const r of f.runs) byKey.set(`${r.phys}/${r.order}`, r);
  const runs = [...byKey.values()].sort((a, b) => a.phys - b.phys);
  const fixtureRuns: FixtureRun[] = runs.map((r) => ({ phys: hex(r.phys), order: r.order, sha256: sha256(memory.read(r.phys, runBytes(r))) }));
  const image = encodeSparsePages(mergeRuns(runs).map((m) => ({ phys: m.phys, bytes: memory.read(m.phys, m.size) })));
  // The fixture must be a good one: retrieve it here, with the handler that wrote it.
  const s2 = next.open().retrieveSession(FIXTURE_SESSION);
  seeds.forEach((_, i) => {
    const got = canonicalJson(subject.snapshot(s2.retrieveFd(BigInt(i + 1))));
    if (got !== canonicalJson(expected[i]!)) throw new KernelError("EINVAL", `file ${i + 1} did not survive the kexec (${got}); not freezing a broken fixture`);
  });
  s2.finish();
  const manifest: FixtureManifest = {
    fixtureFormat: FIXTURE_FORMAT,
    generator: "@liveupdate/handler-testkit",
    name,
    description: options.description ?? `${inner.compatible} records of ${seeds.length} file(s), frozen by the handler-testkit`,
    compatible: inner.compatible,
    formatVersion: options.formatVersion,
    machine: { ranges, scratch },
    session: FIXTURE_SESSION,
    image: { file: imageName, format: "KHOSPRS1", bytes: image.length, sha256: sha256(image) },
    runs: fixtureRuns,
    files: rec.files.map((f, i) => ({ token: hex(i + 1), data: hex(f.data), seed: seeds[i]!, expected: expected[i]! })),
  };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(imagePath, image, { flag: "wx" });
  fs.writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`, { flag: "wx" });
  return manifest;
}

// ---------------------------------------------------------------------------------------
// reading
// ---------------------------------------------------------------------------------------

function fail(file: string, rule: string, message: string): never {
  throw new FormatError(FORMAT, 0, "file", rule, `${file}: ${message}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function hexNumber(file: string, where: string, v: unknown, max: bigint): bigint {
  if (typeof v !== "string" || !/^0x[0-9a-f]{1,16}$/.test(v)) fail(file, "hex", `${where} must be a lowercase 0x-hex string`);
  const n = BigInt(v);
  if (n > max) fail(file, "hex.range", `${where} ${v} is out of range`);
  return n;
}

function rangesOf(file: string, where: string, v: unknown): MemoryRange[] {
  if (!Array.isArray(v) || v.length > 64) fail(file, "machine", `${where} must be a list of at most 64 ranges`);
  return v.map((r: unknown, i) => {
    if (!isRecord(r) || !Number.isSafeInteger(r["start"]) || !Number.isSafeInteger(r["size"])) fail(file, "machine", `${where}[${i}] must be {start, size} in bytes`);
    return { start: r["start"] as number, size: r["size"] as number };
  });
}

/** Parse and check a manifest's text (every field, every bound). */
export function parseFixtureManifest(text: string, file = "manifest"): FixtureManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(file, "json", `not JSON: ${describeError(e)}`);
  }
  if (!isRecord(raw)) fail(file, "json", "not a JSON object");
  if (raw["fixtureFormat"] !== FIXTURE_FORMAT) fail(file, "fixture-format", `fixtureFormat ${String(raw["fixtureFormat"])} is not ${FIXTURE_FORMAT}`);
  for (const key of ["generator", "name", "description", "compatible", "formatVersion", "session"]) {
    if (typeof raw[key] !== "string") fail(file, "field", `${key} must be a string`);
  }
  const machine = raw["machine"];
  if (!isRecord(machine)) fail(file, "machine", "machine must be an object");
  const image = raw["image"];
  if (!isRecord(image) || typeof image["file"] !== "string" || image["format"] !== "KHOSPRS1" || !Number.isSafeInteger(image["bytes"]) || typeof image["sha256"] !== "string") {
    fail(file, "image", "image must be {file, format: \"KHOSPRS1\", bytes, sha256}");
  }
  if (path.basename(image["file"]) !== image["file"]) fail(file, "image", "image.file must be a file name beside the manifest");
  const runs = raw["runs"];
  const files = raw["files"];
  if (!Array.isArray(runs) || !Array.isArray(files) || files.length === 0) fail(file, "lists", "runs must be a list and files a non-empty list");
  const maxPhys = BigInt(Number.MAX_SAFE_INTEGER);
  const U64 = (1n << 64n) - 1n;
  return {
    fixtureFormat: FIXTURE_FORMAT,
    generator: raw["generator"] as string,
    name: raw["name"] as string,
    description: raw["description"] as string,
    compatible: raw["compatible"] as string,
    formatVersion: raw["formatVersion"] as string,
    machine: { ranges: rangesOf(file, "machine.ranges", machine["ranges"]), scratch: rangesOf(file, "machine.scratch", machine["scratch"]) },
    session: raw["session"] as string,
    image: { file: image["file"], format: "KHOSPRS1", bytes: image["bytes"] as number, sha256: image["sha256"] },
    runs: runs.map((r: unknown, i) => {
      if (!isRecord(r) || !Number.isInteger(r["order"]) || (r["order"] as number) < 0 || (r["order"] as number) > 30 || typeof r["sha256"] !== "string") {
        fail(file, "runs", `runs[${i}] must be {phys, order 0..30, sha256}`);
      }
      hexNumber(file, `runs[${i}].phys`, r["phys"], maxPhys);
      return { phys: r["phys"] as string, order: r["order"] as number, sha256: r["sha256"] };
    }),
    files: files.map((f: unknown, i) => {
      if (!isRecord(f) || !Number.isSafeInteger(f["seed"]) || !("expected" in f)) fail(file, "files", `files[${i}] must be {token, data, seed, expected}`);
      hexNumber(file, `files[${i}].token`, f["token"], U64);
      hexNumber(file, `files[${i}].data`, f["data"], U64);
      return { token: f["token"] as string, data: f["data"] as string, seed: f["seed"] as number, expected: f["expected"] as JsonValue };
    }),
  };
}

/** The fixture names in `dir` (each `NAME.json`), sorted; none when `dir` does not exist. */
export function listFixtures(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
}

/** One file of a fixture as the current handler retrieved it. */
export interface FixtureFileResult {
  readonly token: string;
  readonly expected: JsonValue;
  /** The retrieved file's snapshot, or undefined when retrieve failed. */
  readonly actual: JsonValue | undefined;
  /** The retrieve error, when it failed. */
  readonly error?: string;
}

/** What {@link loadFixture} found. */
export interface FixtureResult {
  readonly manifest: FixtureManifest;
  readonly files: readonly FixtureFileResult[];
  /** Everything wrong: a differing snapshot, a failed retrieve, a read of poison, a leaked run. */
  readonly problems: readonly ConformanceProblem[];
}

/** The stand-in file of a fixture record. */
class FixtureRecordFile implements LuoFile {
  readonly description: string;
  constructor(readonly id: number, readonly data: bigint) {
    this.description = `fixture-record:${id}`;
  }
}

/** The outgoing kernel's stand-in for the handler that wrote the fixture: it only sets `serializedData`. */
function standInHandler(compatible: string): FileHandler {
  return {
    compatible,
    canPreserve: (file) => file instanceof FixtureRecordFile,
    getId: (file) => (file instanceof FixtureRecordFile ? file.id : 0),
    preserve: (args) => {
      if (!(args.file instanceof FixtureRecordFile)) throw new KernelError("EINVAL", "not a fixture record");
      args.serializedData = args.file.data;
    },
    unpreserve: () => undefined,
    retrieve: () => {
      throw new KernelError("EOPNOTSUPP", "the fixture stand-in handler only writes records");
    },
    finish: () => undefined,
  };
}

/**
 * Take every page of `runs` from `machine`'s allocator (order-0 allocations until each is
 * ours; the others go back), so nothing the kernels allocate later lands on fixture bytes.
 */
function claimPages(machine: Machine, runs: readonly PreservedRun[], file: string): void {
  const wanted = new Set<number>();
  for (const r of runs) {
    if (!machine.memory.contains(r.phys, runBytes(r))) fail(file, "runs.outside-memory", `run ${hex(r.phys)}/order ${r.order} is outside the machine's memory`);
    for (let i = 0; i < 2 ** r.order; i++) wanted.add(r.phys / PAGE_SIZE + i);
  }
  const others: number[] = [];
  let missing = wanted.size;
  try {
    while (missing > 0) {
      const phys = machine.allocator.allocFolio(0);
      if (wanted.has(phys / PAGE_SIZE)) missing--;
      else others.push(phys);
    }
  } catch (e) {
    if (!(e instanceof KernelError) || e.errno !== "ENOMEM") throw e;
    fail(file, "runs.unclaimable", `${missing} fixture page(s) are not free in a freshly booted machine (in scratch, or used by the kernel itself)`);
  } finally {
    for (const phys of others) machine.allocator.freeFolio(phys, 0);
  }
}

/**
 * Load fixture `name` from `dir` and retrieve every file with `subject`'s handlers (the
 * handler, then its companions: the next kernel's registry), comparing each snapshot with
 * the frozen `expected`.
 *
 * @throws FormatError (`"handler-fixture"`) when the manifest or the image is broken or does
 *   not match its sha256s; `KHOSPRS1` errors from the image reader.
 */
export function loadFixture(dir: string, name: string, subject: Pick<HandlerSubject, "handler" | "companions" | "snapshot">): FixtureResult {
  checkName(name);
  const manifestPath = path.join(dir, `${name}.json`);
  const manifest = parseFixtureManifest(fs.readFileSync(manifestPath, "utf8"), manifestPath);
  const imagePath = path.join(dir, manifest.image.file);
  const imageBytes = fs.readFileSync(imagePath);
  if (imageBytes.length !== manifest.image.bytes || sha256(imageBytes) !== manifest.image.sha256) {
    fail(imagePath, "image.sha256", `size or sha256 differs from the manifest (${imageBytes.length} bytes, ${sha256(imageBytes)})`);
  }
  const runs: PreservedRun[] = manifest.runs.map((r) => ({ phys: Number(BigInt(r.phys)), order: r.order }));
  const contents: Uint8Array[] = [];
  const image = SparsePagesImage.open(imagePath);
  try {
    runs.forEach((r, i) => {
      if (!image.contains(r.phys, runBytes(r))) fail(imagePath, "runs.not-in-image", `run ${hex(r.phys)}/order ${r.order} is not in the image`);
      const bytes = new Uint8Array(runBytes(r));
      image.readInto(r.phys, bytes);
      if (sha256(bytes) !== manifest.runs[i]!.sha256) fail(imagePath, "runs.sha256", `run ${hex(r.phys)} does not match its sha256`);
      contents.push(bytes);
    });
  } finally {
    image.close();
  }

  // The previous kernel, rebuilt: the fixture's pages, preserved with their orders, and a record per file.
  const machine = Machine.boot({ memory: manifest.machine.ranges, scratch: manifest.machine.scratch });
  claimPages(machine, runs, manifestPath);
  runs.forEach((r, i) => {
    machine.memory.write(r.phys, contents[i]!);
    machine.kho.preservePages(r.phys, 2 ** r.order);
  });
  const lu = LiveUpdate.attach(machine, { handlers: [standInHandler(manifest.compatible)] });
  const session = lu.open().createSession(manifest.session);
  manifest.files.forEach((f, i) => {
    session.preserveFd(new FixtureRecordFile(i + 1, BigInt(f.data)), BigInt(f.token));
  });

  const armedWatch: { current?: PoisonWatch } = {};
  const next = lu.kexec({ handlers: [watchedHandler(subject.handler(), () => armedWatch.current), ...(subject.companions?.() ?? [])] });
  const watch = watchPoisonReads(next.machine.memory);
  armedWatch.current = watch;
  const problems: ConformanceProblem[] = [];
  const results: FixtureFileResult[] = [];
  const check = "fixture";
  try {
    let s2;
    try {
      s2 = next.open().retrieveSession(manifest.session);
    } catch (e) {
      problems.push({ check, message: `${name}: the next kernel refused the handover: ${describeError(e)} (is a handler for "${manifest.compatible}" registered?)` });
      return { manifest, files: manifest.files.map((f) => ({ token: f.token, expected: f.expected, actual: undefined, error: describeError(e) })), problems };
    }
    for (const f of manifest.files) {
      try {
        const actual = subject.snapshot(s2.retrieveFd(BigInt(f.token)));
        results.push({ token: f.token, expected: f.expected, actual });
        if (canonicalJson(actual) !== canonicalJson(f.expected)) {
          problems.push({ check, message: `${name} token ${f.token}: decoded ${canonicalJson(actual)}, the fixture expects ${canonicalJson(f.expected)}` });
        }
      } catch (e) {
        results.push({ token: f.token, expected: f.expected, actual: undefined, error: describeError(e) });
        problems.push({ check, message: `${name} token ${f.token}: retrieve failed: ${describeError(e)}` });
      }
    }
    s2.finish();
    const poison = watch.pages();
    if (poison.length > 0) problems.push({ check, message: `${name}: retrieve read ${poison.length} page(s) outside the fixture's runs (poison): ${poison.slice(0, 8).map(hex).join(", ")}` });
    const leaked = runs.filter((r) => next.machine.incoming.stampOrderOf(r.phys) >= 0);
    if (leaked.length > 0) problems.push({ check, message: `${name}: ${leaked.length} run(s) still preserved after finish (leaked): ${leaked.map((r) => hex(r.phys)).join(", ")}` });
  } finally {
    watch.stop();
  }
  return { manifest, files: results, problems };
}
