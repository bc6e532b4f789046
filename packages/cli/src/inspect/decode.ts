/**
 * Decoding a handover image into an {@link InspectReport}: the root FDT (found as kho's
 * `findKhoFdt` finds it, or at `--fdt-addr`), its sub-trees, the preserved runs (kho's
 * `walkRadixMap`), the LUO state (luo-core's `decodeLuoState`, checked against the runs as
 * the next kernel checks its `KHOP` stamps), and every memfd through its handler package's
 * non-consuming decoder, chosen by the file's compatible.
 *
 * Only the pages these structures name are read. A memfd's contents are streamed in
 * {@link HASH_CHUNK_BYTES} pieces into one sha256, never held whole.
 *
 * Failures: finding and reading the root FDT is fatal (the typed error propagates). After
 * that, a corrupt part (the map, the LUO state, one memfd) becomes an entry of `problems`
 * and the rest is still decoded.
 */
import { createHash } from "node:crypto";
import { Fdt, FdtError, formatDts } from "@liveupdate/fdt-codec";
import {
  FormatError,
  KernelError,
  PAGE_SIZE,
  decodeKexecMetadata,
  findKhoFdt,
  listKhoSubtrees,
  walkRadixMap,
  type FileImage,
  type KhoFdtLocation,
  type MemoryRange,
} from "@liveupdate/kho";
import { decodeLuoState, type LuoStateView } from "@liveupdate/luo-core";
import { FolioContentsReader } from "@liveupdate/memfd";
import { loadMemfdDecoders, type DecodedMemfd, type MemfdDecoder } from "./memfd-decoders.js";
import type { OpenedImage } from "./open-image.js";
import { INSPECT_SCHEMA, hex, type InspectReport, type LuoJson, type MemfdJson, type MetadataJson, type ProblemJson, type RangeJson } from "./report.js";
import { RunIndex } from "./run-index.js";

/** Bytes of a memfd read at a time while hashing (16 pages). */
export const HASH_CHUNK_BYTES = 16 * PAGE_SIZE;
/** Default of `--hash-limit`: larger memfds are listed without a sha256. */
export const DEFAULT_HASH_LIMIT = 4 * 1024 ** 3;
/** The x86 `kho_scratch` array: `{u64 addr; u64 size}` entries; more than this is corrupt. */
const MAX_SCRATCH_ENTRIES = 1024;
const SCRATCH_ENTRY_SIZE = 16;
/** Most runs a walk may report: 2^24 runs are 128 MiB of index, far beyond any real map. */
const MAX_RUNS = 2 ** 24;

/** Options of {@link inspectImage}. */
export interface InspectOptions {
  /** Where the root FDT is (skips the search). */
  readonly fdtAddr?: number;
  /** Largest memfd (bytes) whose sha256 is computed. */
  readonly hashLimit?: number;
}

/** The report and what the memory-map picture needs besides it. */
export interface InspectResult {
  readonly report: InspectReport;
  /** The preserved runs (as far as the walk got). */
  readonly runs: RunIndex;
  /** Physical memory the image holds. */
  readonly ranges: readonly MemoryRange[];
  /** Scratch areas, when the image says. */
  readonly scratch: readonly MemoryRange[];
  /** Metadata pages with numeric addresses. */
  readonly metadata: ReadonlyArray<{ readonly kind: MetadataJson["kind"]; readonly phys: number; readonly size: number }>;
}

/** Whether `e` is the input's fault (a typed decode error), not a bug. */
export function isInputError(e: unknown): e is FormatError | KernelError | FdtError {
  return e instanceof FormatError || e instanceof KernelError || e instanceof FdtError;
}

function u64le(b: Uint8Array, i: number): number | undefined {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hi = view.getUint32(i + 4, true);
  return hi >= 0x200000 ? undefined : hi * 2 ** 32 + view.getUint32(i, true);
}

/** The x86 `kho_scratch` array `kho_data` points at. */
function readScratch(image: FileImage, addr: number, size: number, problems: ProblemJson[]): MemoryRange[] | undefined {
  const count = Math.floor(size / SCRATCH_ENTRY_SIZE);
  if (count === 0) return [];
  if (count > MAX_SCRATCH_ENTRIES || !image.contains(addr, count * SCRATCH_ENTRY_SIZE)) {
    problems.push({ where: "kho_data", message: `scratch array at ${hex(addr)} (${size} bytes) is not readable` });
    return undefined;
  }
  const bytes = image.read(addr, count * SCRATCH_ENTRY_SIZE);
  const out: MemoryRange[] = [];
  for (let i = 0; i < count; i++) {
    const start = u64le(bytes, i * SCRATCH_ENTRY_SIZE);
    const len = u64le(bytes, i * SCRATCH_ENTRY_SIZE + 8);
    if (start === undefined || len === undefined) {
      problems.push({ where: "kho_data", message: `scratch entry ${i} is beyond 2^53` });
      return undefined;
    }
    out.push({ start, size: len });
  }
  return out;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Stream `contents` into sha256, {@link HASH_CHUNK_BYTES} at a time. */
function sha256Of(contents: FolioContentsReader): string {
  const hash = createHash("sha256");
  const size = contents.size;
  const chunk = new Uint8Array(Math.min(size, HASH_CHUNK_BYTES));
  for (let off = 0; off < size; off += HASH_CHUNK_BYTES) {
    const piece = chunk.subarray(0, Math.min(HASH_CHUNK_BYTES, size - off));
    contents.readInto(off, piece);
    hash.update(piece);
  }
  return hash.digest("hex");
}

/**
 * Decode the handover in `opened`.
 *
 * @throws FormatError / KernelError when no valid KHO root FDT can be found (or read at
 *   `options.fdtAddr`); everything later is reported in `problems`.
 */
export async function inspectImage(opened: OpenedImage, options: InspectOptions = {}): Promise<InspectResult> {
  const image = opened.image;
  const hashLimit = options.hashLimit ?? DEFAULT_HASH_LIMIT;
  const problems: ProblemJson[] = [];
  const metadata: Array<{ kind: MetadataJson["kind"]; phys: number; size: number; what: string }> = [];

  const found: KhoFdtLocation = findKhoFdt(image, options.fdtAddr === undefined ? {} : { fdtAddr: options.fdtAddr });
  const fdt = Fdt.from(found.fdt);
  metadata.push({ kind: "fdt", phys: found.fdtAddr, size: Math.max(found.fdt.length, PAGE_SIZE), what: "KHO root FDT" });
  const compatible = fdtCompatible(fdt);
  const subtrees = listKhoSubtrees(found.fdt);
  for (const s of subtrees) metadata.push({ kind: "subtree", phys: s.phys, size: s.size, what: `sub-tree ${s.name}` });

  // kexec-metadata: informative only; an unreadable one is a problem, not a failure.
  let kexecMetadata: InspectReport["kho"]["kexecMetadata"] = null;
  const km = subtrees.find((s) => s.name === "kexec-metadata");
  if (km !== undefined) {
    const len = Math.min(km.size, 4096);
    if (image.contains(km.phys, len)) {
      const m = decodeKexecMetadata(image.read(km.phys, len), km.size);
      if (m !== undefined) kexecMetadata = { version: m.version, previousRelease: m.previousRelease, kexecCount: m.kexecCount };
      else problems.push({ where: "kexec-metadata", message: `blob at ${hex(km.phys)} is not a version-1 kexec-metadata` });
    } else problems.push({ where: "kexec-metadata", message: `blob at ${hex(km.phys)} is not in the image` });
  }

  let scratch: MemoryRange[] | undefined;
  if (found.x86 !== undefined) scratch = readScratch(image, found.x86.khoData.scratchAddr, found.x86.khoData.scratchSize, problems);

  // The preserved runs. A sparse image holds only the pages a consumer reads, so a run
  // counts as in memory when its head page is there.
  const runs = new RunIndex();
  let nodePages: Array<{ phys: string; level: number }> = [];
  let walkComplete = false;
  try {
    const sparse = opened.format === "khosprs1";
    const walk = walkRadixMap(image, found.memoryMapPhys, (phys, order) => { runs.add(phys, order); }, {
      maxRuns: MAX_RUNS,
      ...(sparse ? { runInMemory: (phys: number) => image.contains(phys, PAGE_SIZE) } : {}),
    });
    nodePages = walk.nodes.map((n) => ({ phys: hex(n.phys), level: n.level }));
    for (const n of walk.nodes) metadata.push({ kind: "radix", phys: n.phys, size: PAGE_SIZE, what: `radix level ${n.level}` });
    walkComplete = true;
  } catch (e) {
    if (!isInputError(e)) throw e;
    problems.push({ where: "preserved-memory-map", message: describe(e) });
  }

  // LUO and its memfds.
  let luo: LuoJson | null = null;
  const memfds: MemfdJson[] = [];
  const luoTree = subtrees.find((s) => s.name === "LUO");
  if (luoTree !== undefined) {
    let state: LuoStateView | undefined;
    try {
      state = decodeLuoState(image, luoTree.phys, luoTree.size, walkComplete ? { stamps: runs } : {});
    } catch (e) {
      if (!isInputError(e)) throw e;
      problems.push({ where: "LUO", message: describe(e) });
    }
    if (state !== undefined) {
      for (const b of state.sessionBlocks) metadata.push({ kind: "luo", phys: b.phys, size: PAGE_SIZE, what: "LUO session block" });
      if (state.flbs !== undefined) metadata.push({ kind: "luo", phys: state.flbs.phys, size: PAGE_SIZE, what: "LUO FLB page" });
      const decoders = await loadMemfdDecoders(state.sessions.flatMap((s) => s.files.filter((f) => f.compatibleTerminated).map((f) => f.compatible)));
      const sessions: LuoJson["sessions"][number][] = [];
      for (const s of state.sessions) {
        for (const b of s.fileBlocks) metadata.push({ kind: "luo", phys: b.phys, size: PAGE_SIZE, what: `LUO file block of ${s.name}` });
        const files: LuoJson["sessions"][number]["files"][number][] = [];
        for (const f of s.files) {
          const decoder = f.compatibleTerminated ? decoders.get(f.compatible) : undefined;
          files.push({ token: hex(f.token), compatible: f.compatible, data: hex(f.data), decoder: decoder === undefined ? null : f.compatible });
          if (decoder !== undefined) memfds.push(memfdEntry(image, s.name, f.token, f.compatible, decoder, f.data, runs, walkComplete, hashLimit, metadata, problems));
        }
        sessions.push({ name: s.name, phys: hex(s.entryPhys), fileBlocks: s.fileBlocks.map((b) => hex(b.phys)), files });
      }
      luo = {
        phys: hex(state.phys),
        compatible: state.compatible,
        liveupdateNum: state.liveupdateNum.toString(),
        sessionsPhys: hex(state.sessionsPhys),
        flbsPhys: hex(state.flbsPhys),
        sessionBlocks: state.sessionBlocks.map((b) => hex(b.phys)),
        warnings: [...state.warnings],
        flbs: (state.flbs?.entries ?? []).map((e) => ({ name: e.name, data: hex(e.data), count: e.count.toString() })),
        sessions,
      };
    }
  }

  const rangesJson: RangeJson[] = image.ranges.map((r) => ({ start: hex(r.start), size: r.size }));
  const report: InspectReport = {
    schema: INSPECT_SCHEMA,
    image: { path: opened.path, format: opened.format, compressed: opened.compressed, fileSize: image.fileSize, ranges: rangesJson },
    kho: {
      fdt: {
        addr: hex(found.fdtAddr),
        size: found.fdt.length,
        method: found.method,
        candidates: found.candidates === undefined ? null : found.candidates.map(hex),
        bootParams: found.x86 === undefined ? null : hex(found.x86.bootParams),
      },
      compatible,
      memoryMap: hex(found.memoryMapPhys),
      subtrees: subtrees.map((s) => ({ name: s.name, phys: hex(s.phys), size: s.size })),
      kexecMetadata,
      scratch: scratch === undefined ? null : scratch.map((r) => ({ start: hex(r.start), size: r.size })),
      dts: formatDts(fdt),
    },
    preserved: walkComplete || runs.runs > 0 ? { runs: runs.runs, bytes: runs.bytes, byOrder: runs.totals(), nodePages } : null,
    luo,
    memfds,
    metadata: metadata.map((m) => ({ kind: m.kind, phys: hex(m.phys), size: m.size, what: m.what })),
    problems,
  };
  return { report, runs, ranges: image.ranges, scratch: scratch ?? [], metadata };
}

function fdtCompatible(fdt: Fdt): string {
  const value = fdt.getPropertyValue(fdt.root, "compatible");
  if (value === undefined) return "";
  const end = value.indexOf(0);
  return Buffer.from(value.subarray(0, end < 0 ? value.length : end)).toString("utf8");
}

function memfdEntry(
  image: FileImage,
  session: string,
  token: bigint,
  compatible: string,
  decode: MemfdDecoder,
  data: bigint,
  runs: RunIndex,
  stamps: boolean,
  hashLimit: number,
  metadata: Array<{ kind: MetadataJson["kind"]; phys: number; size: number; what: string }>,
  problems: ProblemJson[],
): MemfdJson {
  const base = { session, token: hex(token), compatible, record: hex(data) };
  const where = `${session}/${hex(token)}`;
  const failed = (message: string): MemfdJson => {
    problems.push({ where, message });
    return { ...base, size: 0, pos: 0, seals: null, folios: 0, pages: 0, foliosByOrder: [], sha256: null, note: message };
  };
  if (data <= 0n || data > BigInt(Number.MAX_SAFE_INTEGER)) return failed(`${compatible} record pointer ${hex(data)} is not an address`);
  let decoded: DecodedMemfd;
  try {
    decoded = decode(image, Number(data), stamps ? runs : undefined);
  } catch (e) {
    if (!isInputError(e)) throw e;
    return failed(describe(e));
  }
  for (const m of decoded.metadata) metadata.push({ kind: "memfd-record", ...m, what: `${m.what} (${where})` });

  // Folio statistics: the order from the record (v0 with stamps) or the preserved map.
  const { folios } = decoded;
  const byOrder = new Map<number, number>();
  let live = 0;
  let pages = 0;
  for (let i = 0; i < folios.count; i++) {
    const pfn = folios.pfns[i]!;
    if (pfn === 0) continue;
    const order = decoded.orderOfFolio?.(i) ?? runs.orderOf(pfn * PAGE_SIZE) ?? 0;
    byOrder.set(order, (byOrder.get(order) ?? 0) + 1);
    live++;
    pages += 2 ** order;
  }
  const foliosByOrder = [...byOrder.entries()].sort(([a], [b]) => a - b).map(([order, n]) => ({ order, folios: n }));

  let sha256: string | null = null;
  let note: string | null = null;
  if (decoded.size > hashLimit) note = `sha256 not computed: ${decoded.size} bytes is more than --hash-limit ${hashLimit}`;
  else {
    try {
      const contents = new FolioContentsReader(image, folios, decoded.size, {
        orderOf: (phys) => runs.orderOf(phys),
      });
      sha256 = sha256Of(contents);
    } catch (e) {
      if (!isInputError(e)) throw e;
      note = `contents unreadable: ${describe(e)}`;
      problems.push({ where, message: note });
    }
  }
  return { ...base, size: decoded.size, pos: decoded.pos, seals: decoded.seals, folios: live, pages, foliosByOrder, sha256, note };
}
