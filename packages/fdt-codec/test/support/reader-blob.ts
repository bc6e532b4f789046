/**
 * Test helpers of the reader and dtc-layout tests: a tiny byte builder for hand-made
 * blobs (any version, any block order, any oddity), a seeded PRNG, and oracle runners
 * (dtc, fdtget, python3-libfdt) that batch their work.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** mulberry32: small, seeded, good enough for test data. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed | 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Latin-1 bytes of a string. */
export function latin1(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** Big-endian u32 cells. */
export function cells(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => { view.setUint32(i * 4, v >>> 0); });
  return out;
}

/** A NUL-terminated string value. */
export function str(s: string): Uint8Array {
  return latin1(s + "\0");
}

/** The strings block: appends each new name, returns its offset (no dedup unless asked). */
export class StringsWriter {
  private readonly parts: number[] = [];
  private readonly offsets = new Map<string, number>();
  /** Offset of `name`, appending it the first time. */
  add(name: string): number {
    const known = this.offsets.get(name);
    if (known !== undefined) return known;
    const off = this.parts.length;
    for (const c of latin1(name)) this.parts.push(c);
    this.parts.push(0);
    this.offsets.set(name, off);
    return off;
  }
  /** Raw bytes appended as they are (e.g. a name without its NUL). */
  raw(bytes: ArrayLike<number>): number {
    const off = this.parts.length;
    for (let i = 0; i < bytes.length; i++) this.parts.push(bytes[i]!);
    return off;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** The structure block, token by token. `varAlign`: 8-align values of 8+ bytes (v < 16). */
export class StructWriter {
  private readonly out: number[] = [];
  constructor(
    readonly strings: StringsWriter = new StringsWriter(),
    private readonly varAlign = false,
  ) {}
  word(v: number): this {
    this.out.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
    return this;
  }
  private pad(to = 4): void {
    while (this.out.length % to !== 0) this.out.push(0);
  }
  begin(name: string): this {
    this.word(1);
    for (const c of latin1(name)) this.out.push(c);
    this.out.push(0);
    this.pad();
    return this;
  }
  end(): this {
    return this.word(2);
  }
  nop(): this {
    return this.word(4);
  }
  finish(): this {
    return this.word(9);
  }
  /** A property by name (the name goes through the strings writer). */
  prop(name: string, value: Uint8Array = new Uint8Array()): this {
    return this.propAt(this.strings.add(name), value);
  }
  /** A property with an explicit nameoff. */
  propAt(nameoff: number, value: Uint8Array): this {
    this.word(3).word(value.length).word(nameoff);
    if (this.varAlign && value.length >= 8) this.pad(8);
    for (const b of value) this.out.push(b);
    this.pad();
    return this;
  }
  /** Raw bytes (for hostile blobs). */
  raw(bytes: ArrayLike<number>): this {
    for (let i = 0; i < bytes.length; i++) this.out.push(bytes[i]!);
    return this;
  }
  get length(): number {
    return this.out.length;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

/** Everything a hand-made blob may choose. */
export interface RawBlobOptions {
  struct: Uint8Array;
  strings: Uint8Array;
  version?: number;
  lastCompVersion?: number;
  bootCpuidPhys?: number;
  /** Reserve entries written as they are; a (0, 0) terminator is added unless `noTerminator`. */
  reserve?: readonly (readonly [bigint, bigint])[];
  noTerminator?: boolean;
  /** Block order after the header (default reserve map, struct, strings). */
  order?: readonly ("rsvmap" | "struct" | "strings")[];
  /** Bytes of free space after the last block (zero). */
  tail?: number;
}

/** A blob laid out block after block; header fields of old versions are written anyway. */
export function rawBlob(o: RawBlobOptions): Uint8Array {
  const version = o.version ?? 17;
  const headerSize = version >= 17 ? 40 : version >= 3 ? 36 : version >= 2 ? 32 : 28;
  const rsv: number[] = [];
  const push64 = (v: bigint): void => {
    for (let i = 7; i >= 0; i--) rsv.push(Number((v >> BigInt(i * 8)) & 0xffn));
  };
  for (const [a, s] of o.reserve ?? []) {
    push64(a);
    push64(s);
  }
  if (o.noTerminator !== true) {
    push64(0n);
    push64(0n);
  }
  const blocks = { rsvmap: Uint8Array.from(rsv), struct: o.struct, strings: o.strings };
  const offsets = { rsvmap: 0, struct: 0, strings: 0 };
  let at = headerSize;
  for (const name of o.order ?? ["rsvmap", "struct", "strings"]) {
    if (name !== "strings") at = (at + 7) & ~7;
    offsets[name] = at;
    at += blocks[name].length;
  }
  const total = at + (o.tail ?? 0);
  const out = new Uint8Array(Math.max(total, 40));
  const view = new DataView(out.buffer);
  view.setUint32(0, 0xd00dfeed);
  view.setUint32(4, total);
  view.setUint32(8, offsets.struct);
  view.setUint32(12, offsets.strings);
  view.setUint32(16, offsets.rsvmap);
  view.setUint32(20, version);
  view.setUint32(24, o.lastCompVersion ?? Math.min(version, 16));
  if (headerSize >= 32) view.setUint32(28, o.bootCpuidPhys ?? 0);
  if (headerSize >= 36) view.setUint32(32, o.strings.length);
  if (headerSize >= 40) view.setUint32(36, o.struct.length);
  for (const name of ["rsvmap", "struct", "strings"] as const) out.set(blocks[name], offsets[name]);
  return out.subarray(0, total);
}

/** Shorthand: a v17 blob from a filled StructWriter. */
export function blobOf(s: StructWriter, options: Omit<RawBlobOptions, "struct" | "strings"> = {}): Uint8Array {
  return rawBlob({ ...options, struct: s.bytes(), strings: s.strings.bytes() });
}

// ---- oracles ----------------------------------------------------------------------------

/** A scratch directory removed by `dispose`. */
export function scratchDir(): { dir: string; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "fdt-reader-"));
  return { dir, dispose: () => { rmSync(dir, { recursive: true, force: true }); } };
}

/** What `dtc -I dtb -O dtb` did: its output, or that it refused (exit status, signal or timeout). */
export type DtcResult = { ok: true; bytes: Uint8Array } | { ok: false; status: number | null; signal: string | null; stderr: string };

/**
 * Run `dtc -I dtb -O dtb` on every file, `parallel` at a time, each bounded by `timeoutMs`
 * (dtc 1.6.1 hangs on some blobs). Results in input order.
 */
export async function runDtc(paths: readonly string[], outDir: string, timeoutMs = 3000, parallel = 2): Promise<DtcResult[]> {
  const results: DtcResult[] = new Array<DtcResult>(paths.length);
  const runDir = mkdtempSync(join(outDir, "dtc-")); // concurrent runs never share outputs
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= paths.length) return;
      const out = join(runDir, `${i}.dtb`);
      results[i] = await new Promise<DtcResult>((resolve) => {
        const child = spawn("dtc", ["-q", "-I", "dtb", "-O", "dtb", "-o", out, paths[i]!], { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("close", (status, signal) => {
          clearTimeout(timer);
          if (status === 0) resolve({ ok: true, bytes: new Uint8Array(readFileSync(out)) });
          else resolve({ ok: false, status, signal, stderr });
        });
      });
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return results;
}

/** Write blobs to files in `dir`, returning their paths. */
export function writeBlobs(dir: string, blobs: readonly Uint8Array[], prefix = "blob"): string[] {
  return blobs.map((b, i) => {
    const p = join(dir, `${prefix}-${i}.dtb`);
    writeFileSync(p, b);
    return p;
  });
}

/** One job of the python3-libfdt oracle. */
export interface PyLibfdtJob {
  file: string;
  /** `fdt_path_offset` of each path (struct-relative offset or negative error). */
  paths?: string[];
  /** `fdt_node_offset_by_phandle` of each phandle. */
  phandles?: number[];
  /** `fdt_getprop(fdt_path_offset(path), name)`: hex value or a negative error. */
  props?: [string, string][];
}

/** The oracle's answers, parallel to the job's questions. */
export interface PyLibfdtAnswer {
  paths: number[];
  phandles: number[];
  props: (string | number)[];
}

const PY_ORACLE = fileURLToPath(new URL("./reader-pylibfdt.py", import.meta.url));

/** Run every job in ONE python3-libfdt process. */
export function runPyLibfdt(jobs: readonly PyLibfdtJob[]): PyLibfdtAnswer[] {
  const r = spawnSync("/usr/bin/python3", [PY_ORACLE], { input: JSON.stringify(jobs), encoding: "utf8", maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`python3-libfdt oracle failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as PyLibfdtAnswer[];
}

/**
 * `fdtget -t bx <file> <node> <prop> ...` for all pairs in one call: each value as bytes.
 * Throws when fdtget fails (it stops at the first error).
 */
export function runFdtget(file: string, pairs: readonly (readonly [string, string])[]): Uint8Array[] {
  if (pairs.length === 0) return [];
  const args = ["-t", "bx", "--", file];
  for (const [node, prop] of pairs) args.push(node, prop);
  const r = spawnSync("fdtget", args, { encoding: "latin1", maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`fdtget failed (${r.status}) on ${file}: ${r.stderr}`);
  const lines = r.stdout.split("\n");
  lines.pop(); // after the last newline
  if (lines.length !== pairs.length) throw new Error(`fdtget printed ${lines.length} values for ${pairs.length} properties`);
  return lines.map((line) => (line === "" ? new Uint8Array() : Uint8Array.from(line.trim().split(" "), (h) => parseInt(h, 16))));
}

/** One node as libfdt's walk saw it (see reader-dump.c). */
export interface DumpedNode {
  /** Offset relative to the structure block, as libfdt counts. */
  offset: number;
  /** libfdt's depth: 1 for the root. */
  depth: number;
  name: string;
  properties: { offset: number; name: string; value: string }[];
}

/** What reader-dump.c printed for one blob. */
export interface DumpedBlob {
  checkFull: number;
  nodes: DumpedNode[];
  /** A libfdt error met during the walk, if any. */
  error?: number;
}

const DUMP_SOURCE = fileURLToPath(new URL("./reader-dump.c", import.meta.url));
let dumpBinary: string | undefined;

/** The compiled reader-dump.c, cached in the temp dir under the hash of its source. */
function readerDumpBinary(): string {
  if (dumpBinary !== undefined) return dumpBinary;
  const source = readFileSync(DUMP_SOURCE);
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), "fdt-codec-reader-dump");
  mkdirSync(dir, { recursive: true });
  const target = join(dir, `reader-dump-${hash}`);
  if (!existsSync(target)) {
    const partial = `${target}.${process.pid}.${Date.now()}`;
    execFileSync("cc", ["-O2", "-Wall", "-o", partial, DUMP_SOURCE, "-lfdt"], { stdio: ["ignore", "ignore", "pipe"] });
    renameSync(partial, target);
  }
  return (dumpBinary = target);
}

const fromHex = (h: string): string => (h === "-" ? "" : Buffer.from(h, "hex").toString("latin1"));

/** libfdt's view of every file, in ONE process. */
export function runReaderDump(paths: readonly string[]): DumpedBlob[] {
  const r = spawnSync(readerDumpBinary(), [], { input: paths.join("\n") + "\n", encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`reader-dump failed (${r.status}): ${r.stderr}`);
  const out: DumpedBlob[] = [];
  for (const line of r.stdout.split("\n")) {
    const [kind, a, b, c] = line.split(" ");
    if (kind === "F") out.push({ checkFull: Number(a), nodes: [] });
    else if (kind === "N") out.at(-1)!.nodes.push({ offset: Number(a), depth: Number(b), name: fromHex(c!), properties: [] });
    else if (kind === "P") out.at(-1)!.nodes.at(-1)!.properties.push({ offset: Number(a), name: fromHex(b!), value: c === "-" ? "" : c! });
    else if (kind === "E") out.at(-1)!.error = Number(a);
  }
  if (out.length !== paths.length) throw new Error(`reader-dump answered ${out.length} of ${paths.length} files`);
  return out;
}
