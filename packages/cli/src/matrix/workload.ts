/**
 * The small live update every matrix cell runs: two sessions of memfds with varied contents,
 * sizes, seals, folio orders and file positions, and the check that a retrieved file is the
 * one that was preserved.
 */
import { createHash } from "node:crypto";
import type { Machine } from "@liveupdate/kho";
import type { LuoFile } from "@liveupdate/luo-core";
import { F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_WRITE, MFD_ALLOW_SEALING, MemfdFile, SEEK_SET, type ShmemHugePolicy } from "@liveupdate/memfd";

/** One memfd of the workload: how it is made and what it must hold after the update. */
export interface WorkloadFile {
  /** The session it is preserved in. */
  readonly session: string;
  /** Its token in that session. */
  readonly token: bigint;
  /** Its memfd name (for messages). */
  readonly name: string;
  /** `i_size` in bytes. */
  readonly size: number;
  /** `f_pos` at preserve. */
  readonly pos: number;
  /** `F_SEAL_*` added before preserve. */
  readonly seals: number;
  /** THP policy (folio orders). */
  readonly huge: ShmemHugePolicy;
  /** Written ranges: offset and length (the rest of `[0, size)` is a hole, read as zeros). */
  readonly writes: readonly { readonly offset: number; readonly length: number }[];
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** The workload: sparse, sealed, huge-folio, empty and one-byte files in two sessions. */
export const WORKLOAD: readonly WorkloadFile[] = [
  {
    session: "vm-1",
    token: 0x1000n,
    name: "guest-ram",
    size: 3 * MiB,
    pos: 0,
    seals: 0,
    huge: "never",
    writes: [
      { offset: 0, length: 64 * KiB },
      { offset: 2 * MiB + 100, length: 5000 },
    ],
  },
  {
    session: "vm-1",
    token: 0x1001n,
    name: "sealed-config",
    size: 10_000,
    pos: 4096,
    seals: F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE,
    huge: "never",
    writes: [{ offset: 0, length: 10_000 }],
  },
  {
    session: "vm-1",
    token: 0x1002n,
    name: "empty",
    size: 0,
    pos: 0,
    seals: 0,
    huge: "never",
    writes: [],
  },
  {
    session: "vm-2",
    token: 0x2000n,
    name: "thp-ram",
    size: 4 * MiB,
    pos: 123,
    seals: 0,
    huge: "always",
    writes: [{ offset: 3 * MiB + 7, length: 300 * KiB }],
  },
  {
    session: "vm-2",
    token: 0x2001n,
    name: "one-byte",
    size: 1,
    pos: 1,
    seals: F_SEAL_GROW,
    huge: "never",
    writes: [{ offset: 0, length: 1 }],
  },
];

/** The sessions of the workload, in order of first appearance. */
export function workloadSessions(): string[] {
  return [...new Set(WORKLOAD.map((f) => f.session))];
}

/** Deterministic bytes for a write: xorshift32 seeded by the file's name and the offset. */
function patternBytes(name: string, offset: number, length: number): Uint8Array {
  let seed = 0x811c9dc5 ^ offset;
  for (let i = 0; i < name.length; i++) seed = Math.imul(seed ^ name.charCodeAt(i), 0x01000193);
  let x = seed >>> 0 || 1;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const contentsCache = new WeakMap<WorkloadFile, Uint8Array>();

/** The whole contents `[0, size)` a file of the workload must have (computed once per file). */
export function expectedContents(file: WorkloadFile): Uint8Array {
  const cached = contentsCache.get(file);
  if (cached !== undefined) return cached;
  const bytes = new Uint8Array(file.size);
  for (const w of file.writes) bytes.set(patternBytes(file.name, w.offset, w.length), w.offset);
  contentsCache.set(file, bytes);
  return bytes;
}

/** sha256 (hex) of a file's expected contents. */
export function expectedSha256(file: WorkloadFile): string {
  return createHash("sha256").update(expectedContents(file)).digest("hex");
}

/** Create `file` in `machine`: size, contents, position and seals as the workload says. */
export function createWorkloadFile(machine: Machine, file: WorkloadFile): MemfdFile {
  const f = MemfdFile.create(machine, { name: file.name, flags: MFD_ALLOW_SEALING, huge: file.huge });
  f.truncate(file.size);
  for (const w of file.writes) f.pwrite(w.offset, patternBytes(file.name, w.offset, w.length));
  f.lseek(file.pos, SEEK_SET);
  if (file.seals !== 0) f.addSeals(file.seals);
  return f;
}

/**
 * Why a retrieved file is not `file` as preserved (undefined when it is): it must be a memfd
 * with the same size and position and every byte of `[0, size)` equal. Seals are not
 * compared: a format may not carry them (`memfd-v1` does not, as Linux 6.19).
 */
export function verifyRetrieved(retrieved: LuoFile | undefined, file: WorkloadFile): string | undefined {
  if (!(retrieved instanceof MemfdFile)) return `${file.session}/${file.name}: the retrieved file is not a memfd (${retrieved?.description ?? "none"})`;
  if (retrieved.size !== file.size) return `${file.session}/${file.name}: size ${retrieved.size}, preserved ${file.size}`;
  if (retrieved.position !== file.pos) return `${file.session}/${file.name}: position ${retrieved.position}, preserved ${file.pos}`;
  const want = expectedContents(file);
  const got = retrieved.pread(0, file.size);
  if (got.length !== want.length) return `${file.session}/${file.name}: read ${got.length} of ${want.length} bytes`;
  if (Buffer.from(got.buffer, got.byteOffset, got.length).equals(want)) return undefined;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) return `${file.session}/${file.name}: byte ${i} is 0x${(got[i] ?? 0).toString(16)}, preserved 0x${(want[i] ?? 0).toString(16)}`;
  }
  return undefined;
}

/** One file of a cell's workload, whatever its type. */
export interface CellFile {
  /** The session it is preserved in. */
  readonly session: string;
  /** Its token in that session. */
  readonly token: bigint;
  /** A name for messages. */
  readonly name: string;
}

/**
 * What one cell preserves and how it checks what it retrieves: the memfd {@link WORKLOAD}, or
 * the files of the producer's subject. Made fresh for each cell (a subject's workload
 * remembers the snapshots of the files it made).
 */
export interface CellWorkload {
  /** The files, in preserve order. */
  readonly files: readonly CellFile[];
  /** How a verified file was checked, for messages ("every byte", "every snapshot"). */
  readonly checked: string;
  /** Make `files[index]` in the producing machine. */
  create(machine: Machine, index: number): LuoFile;
  /** Why the retrieved file is not `files[index]` as preserved; undefined when it is. */
  verify(retrieved: LuoFile | undefined, index: number): string | undefined;
}

/** The sessions of `files`, in order of first appearance. */
export function sessionsOf(files: readonly CellFile[]): string[] {
  return [...new Set(files.map((f) => f.session))];
}

/** The memfd workload of a cell (producers without a subject). */
export function memfdWorkload(): CellWorkload {
  return {
    files: WORKLOAD,
    checked: "verified every byte",
    create: (machine, index) => createWorkloadFile(machine, WORKLOAD[index] as WorkloadFile),
    verify: (retrieved, index) => verifyRetrieved(retrieved, WORKLOAD[index] as WorkloadFile),
  };
}

/** The seeds a subject's `makeFile` is called with, and their sessions and tokens. */
export const SUBJECT_FILES: readonly (CellFile & { readonly seed: number })[] = [
  { session: "vm-1", token: 0x1000n, name: "seed-0", seed: 0 },
  { session: "vm-1", token: 0x1001n, name: "seed-1", seed: 1 },
  { session: "vm-1", token: 0x1002n, name: "seed-2", seed: 2 },
  { session: "vm-2", token: 0x2000n, name: "seed-3", seed: 3 },
  { session: "vm-2", token: 0x2001n, name: "seed-7", seed: 7 },
];

/** JSON with sorted object keys (bigints as decimal strings): two snapshots are equal when these are. */
export function canonicalSnapshot(value: unknown): string {
  // JSON.stringify gives undefined for undefined (or a function): typed as such here.
  const text = JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
      const record = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(record)
          .sort()
          .map((k) => [k, record[k]]),
      );
    }) as string | undefined;
  return text ?? "undefined";
}

/** The workload of a producer with a subject: its files for {@link SUBJECT_FILES}' seeds, checked by snapshot. */
export function subjectWorkload(subject: { makeFile(machine: Machine, seed: number): LuoFile; snapshot(file: LuoFile): unknown }): CellWorkload {
  const expected: string[] = [];
  const label = (index: number): string => {
    const f = SUBJECT_FILES[index];
    return f === undefined ? `file ${index}` : `${f.session}/${f.name}`;
  };
  return {
    files: SUBJECT_FILES,
    checked: "verified every snapshot",
    create: (machine, index) => {
      const file = subject.makeFile(machine, SUBJECT_FILES[index]?.seed ?? index);
      expected[index] = canonicalSnapshot(subject.snapshot(file));
      return file;
    },
    verify: (retrieved, index) => {
      if (retrieved === undefined) return `${label(index)}: nothing retrieved`;
      let got: string;
      try {
        got = canonicalSnapshot(subject.snapshot(retrieved));
      } catch (e) {
        return `${label(index)}: the snapshot of the retrieved file threw: ${e instanceof Error ? e.message : String(e)}`;
      }
      const want = expected[index];
      return got === want ? undefined : `${label(index)}: snapshot ${got}, preserved ${want ?? "(none)"}`;
    },
  };
}
