/**
 * The `luo simulate` scenario: which VMs (sessions), which memfds in each, and what bytes
 * they hold, all derived from a seed so that nothing has to be kept to verify them.
 *
 * Contents are a pure function of `(file seed, byte offset)` (a counter-based hash of the
 * offset's 32-bit word), so the verify step regenerates the expected bytes of any range,
 * chunk by chunk, instead of holding a copy of every file. Bytes outside a file's written
 * extents are zero (holes, and the tail a sparse file was truncated to).
 *
 * File kinds, cycled over each VM's files (sizes grow with the VM's number, so the sizes
 * are mixed):
 *
 * | kind     | memfd                                   | size                  | written            |
 * |----------|-----------------------------------------|-----------------------|--------------------|
 * | `huge`   | THP `always`: 2 MiB (order-9) folios     | file-size x VM number, in 2 MiB | all of it |
 * | `sparse` | 4 KiB pages                             | 4 x file-size         | 8 seeded extents   |
 * | `sealed` | `MFD_ALLOW_SEALING`, then SEAL, SHRINK, GROW, WRITE | file-size / 4 + an odd tail | all of it |
 * | `mthp`   | THP `within_size`, orders 9..1 (mixed)  | 1.5 x file-size + 80 pages | all of it     |
 */
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE, MFD_ALLOW_SEALING, type ShmemHugePolicy } from "@liveupdate/memfd";

/** The kinds of memfd a scenario mixes. */
export type FileKind = "huge" | "sparse" | "sealed" | "mthp";

/** The kinds in the order each VM's files cycle through them. */
export const FILE_KINDS: readonly FileKind[] = ["huge", "sparse", "sealed", "mthp"];

/** A byte range of a file that holds generated contents. */
export interface Extent {
  readonly offset: number;
  readonly length: number;
}

/** One memfd of the scenario: how to create it and what it must read back as. */
export interface FileSpec {
  /** The session (VM) it is preserved in. */
  readonly session: string;
  /** Its LUO token. */
  readonly token: bigint;
  /** The memfd's name (`memfd:<name>`). */
  readonly name: string;
  readonly kind: FileKind;
  /** `memfd_create` flags. */
  readonly flags: number;
  readonly huge: ShmemHugePolicy;
  /** THP orders the policy may use (undefined: the model's default, order 9). */
  readonly hugeOrders: readonly number[] | undefined;
  /** File size in bytes. */
  readonly size: number;
  /** File position at preserve time (carried by every memfd format). */
  readonly pos: number;
  /** Seals added after writing (0: none; see {@link sealsOf} for the file's). */
  readonly seals: number;
  /** Written ranges, ascending and disjoint; everything else reads as zero. */
  readonly extents: readonly Extent[];
  /** Seed of the contents. */
  readonly seed: number;
}

/** One VM: a session and its files. */
export interface SessionSpec {
  readonly name: string;
  readonly files: readonly FileSpec[];
}

/** Scenario size knobs. */
export interface ScenarioSize {
  readonly vms: number;
  readonly filesPerVm: number;
  readonly fileSize: number;
}

/** The named sizes of `--scale`. */
export const SCALES: Readonly<Record<"small" | "default" | "large", ScenarioSize>> = {
  small: { vms: 2, filesPerVm: 4, fileSize: 1 << 20 },
  default: { vms: 3, filesPerVm: 4, fileSize: 4 << 20 },
  large: { vms: 6, filesPerVm: 4, fileSize: 16 << 20 },
};

/** The whole scenario. */
export interface Scenario extends ScenarioSize {
  readonly seed: number;
  readonly sessions: readonly SessionSpec[];
}

const PAGE = 4096;
const HUGE = 2 << 20;
const SPARSE_EXTENTS = 8;
/** Pages added to an `mthp` file: 80 pages within size is the kernel's order-6 + order-4 case. */
const MTHP_TAIL_PAGES = 80;

/** A small deterministic generator (mulberry32) for the scenario's layout choices. */
function layoutRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pageAlign(n: number): number {
  return Math.max(PAGE, Math.floor(n / PAGE) * PAGE);
}

/** Seeded, disjoint, ascending extents inside `size` bytes (lengths up to `size / 32`). */
function sparseExtents(size: number, rand: () => number): Extent[] {
  const slot = Math.floor(size / SPARSE_EXTENTS);
  const out: Extent[] = [];
  for (let k = 0; k < SPARSE_EXTENTS; k++) {
    // One extent per slot keeps them disjoint; odd offsets and lengths on purpose.
    const length = 1 + Math.floor(rand() * Math.max(1, Math.min(slot - 1, Math.floor(size / 32))));
    const offset = k * slot + Math.floor(rand() * Math.max(1, slot - length));
    out.push({ offset, length });
  }
  return out;
}

/** The file of kind `kind` at position `index` of VM `vm` (0-based). */
function fileSpec(session: string, vm: number, index: number, fileSize: number, seed: number, rand: () => number): FileSpec {
  const kind = FILE_KINDS[index % FILE_KINDS.length]!;
  const round = Math.floor(index / FILE_KINDS.length);
  const base = { session, token: BigInt((vm + 1) * 0x1000 + index), seed: (seed ^ Math.imul(vm + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0 };
  const suffix = round === 0 ? "" : `-${round + 1}`;
  switch (kind) {
    case "huge": {
      // Whole 2 MiB folios: guest RAM is sized in huge pages.
      const size = Math.ceil((fileSize * (vm + 1)) / HUGE) * HUGE;
      return { ...base, name: `guest-ram${suffix}`, kind, flags: 0, huge: "always", hugeOrders: undefined, size, pos: 0, seals: 0, extents: [{ offset: 0, length: size }] };
    }
    case "sparse": {
      const size = pageAlign(fileSize * 4);
      const extents = sparseExtents(size, rand);
      return { ...base, name: `balloon${suffix}`, kind, flags: 0, huge: "never", hugeOrders: undefined, size, pos: Math.floor(rand() * size), seals: 0, extents };
    }
    case "sealed": {
      // An odd size: the last page is partly beyond EOF.
      const size = Math.max(1, Math.floor(fileSize / 4)) + 1 + Math.floor(rand() * (PAGE - 2));
      return {
        ...base,
        name: `firmware${suffix}`,
        kind,
        flags: MFD_ALLOW_SEALING,
        huge: "never",
        hugeOrders: undefined,
        size,
        pos: size,
        seals: F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE,
        extents: [{ offset: 0, length: size }],
      };
    }
    case "mthp": {
      const size = pageAlign(fileSize * 1.5) + MTHP_TAIL_PAGES * PAGE;
      return {
        ...base,
        name: `vram${suffix}`,
        kind,
        flags: 0,
        huge: "within_size",
        hugeOrders: [9, 8, 7, 6, 5, 4, 3, 2, 1],
        size,
        pos: PAGE * 3,
        seals: 0,
        extents: [{ offset: 0, length: size }],
      };
    }
  }
}

/** Build the scenario of `size` from `seed`. */
export function buildScenario(size: ScenarioSize, seed: number): Scenario {
  const rand = layoutRandom(seed);
  const sessions: SessionSpec[] = [];
  for (let vm = 0; vm < size.vms; vm++) {
    const name = `vm-${vm + 1}`;
    const files: FileSpec[] = [];
    for (let i = 0; i < size.filesPerVm; i++) files.push(fileSpec(name, vm, i, size.fileSize, seed, rand));
    sessions.push({ name, files });
  }
  return { ...size, seed, sessions };
}

/** Every file of the scenario, session by session. */
export function scenarioFiles(scenario: Scenario): FileSpec[] {
  return scenario.sessions.flatMap((s) => s.files);
}

/** Sum of the files' sizes (what the handlers preserve: holes are filled at preserve). */
export function totalSize(scenario: Scenario): number {
  return scenarioFiles(scenario).reduce((n, f) => n + f.size, 0);
}

/**
 * The seals the old kernel's file has: those added after writing, on top of what
 * `memfd_create` starts with (`F_SEAL_SEAL` unless `MFD_ALLOW_SEALING`).
 */
export function sealsOf(file: FileSpec): number {
  return file.seals | ((file.flags & MFD_ALLOW_SEALING) === 0 ? F_SEAL_SEAL : 0);
}

/** Sum of the bytes the populate step writes. */
export function writtenBytes(file: FileSpec): number {
  return file.extents.reduce((n, e) => n + e.length, 0);
}

// ---------------------------------------------------------------------------------------
// contents
// ---------------------------------------------------------------------------------------

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Word `k` of the contents of seed `seed`: a 32-bit finaliser of (seed, k), seekable. */
function word(seed: number, lo: number, hi: number): number {
  let x = (seed ^ Math.imul(lo, 0x9e3779b1) ^ Math.imul(hi + 1, 0x7feb352d)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Fill `dst` with the generated contents of `[offset, offset + dst.length)` (as if the
 * whole file were one extent). Byte `o` is byte `o % 4` (little-endian) of word
 * `floor(o / 4)`, so any sub-range regenerates exactly.
 */
export function fillContents(seed: number, offset: number, dst: Uint8Array): void {
  const n = dst.length;
  let i = 0;
  let o = offset;
  // Leading bytes up to a word boundary.
  while (i < n && o % 4 !== 0) {
    const k = Math.floor(o / 4);
    dst[i++] = (word(seed, k >>> 0, Math.floor(k / 2 ** 32)) >>> ((o % 4) * 8)) & 0xff;
    o++;
  }
  const words = Math.floor((n - i) / 4);
  if (words > 0 && LITTLE_ENDIAN && (dst.byteOffset + i) % 4 === 0) {
    // The host's byte order is the contents' (little-endian): write whole words.
    const out = new Uint32Array(dst.buffer, dst.byteOffset + i, words);
    const k0 = o / 4;
    const hi = Math.floor(k0 / 2 ** 32);
    if (hi === Math.floor((k0 + words - 1) / 2 ** 32)) {
      const lo0 = k0 >>> 0;
      for (let w = 0; w < words; w++) out[w] = word(seed, (lo0 + w) >>> 0, hi);
    } else {
      for (let w = 0; w < words; w++) out[w] = word(seed, (k0 + w) >>> 0, Math.floor((k0 + w) / 2 ** 32));
    }
    i += words * 4;
    o += words * 4;
  } else if (words > 0) {
    const k0 = o / 4;
    const view = new DataView(dst.buffer, dst.byteOffset + i, words * 4);
    for (let w = 0; w < words; w++) {
      const k = k0 + w;
      view.setUint32(w * 4, word(seed, k >>> 0, Math.floor(k / 2 ** 32)), true);
    }
    i += words * 4;
    o += words * 4;
  }
  while (i < n) {
    const k = Math.floor(o / 4);
    dst[i++] = (word(seed, k >>> 0, Math.floor(k / 2 ** 32)) >>> ((o % 4) * 8)) & 0xff;
    o++;
  }
}

/**
 * Fill `dst` with what `file` must read as at `[offset, offset + dst.length)`: zero, with
 * the generated contents where an extent overlaps.
 */
export function fillExpected(file: FileSpec, offset: number, dst: Uint8Array): void {
  dst.fill(0);
  const end = offset + dst.length;
  for (const e of file.extents) {
    const from = Math.max(offset, e.offset);
    const to = Math.min(end, e.offset + e.length);
    if (from < to) fillContents(file.seed, from, dst.subarray(from - offset, to - offset));
  }
}
