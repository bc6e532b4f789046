/**
 * Find the KHO root FDT in a memory image (or a live machine): the entry point of every
 * decode of a handover.
 *
 * Strategies, cheapest and most authoritative first:
 *
 * 1. `given`: the caller knows the address (and size).
 * 2. `elf-note`: an ELF core written by this project names it (`NT_LIVEUPDATE_KHO_FDT`).
 * 3. `x86-setup-data`: what the next x86 kernel itself reads. `boot_params.hdr.setup_data`
 *    (at 0x250) heads a chain of `setup_data` entries; the one of type 10
 *    (`SETUP_KEXEC_KHO`) is `kho_data {fdt_addr, fdt_size, scratch_addr, scratch_size}`.
 *    A raw dump does not say where `boot_params` is (the CPU's `rsi` at the entry point
 *    does), so the pages are searched for the boot protocol's header signature
 *    (`boot_flag` 0xaa55 at 0x1fe, `"HdrS"` at 0x202, protocol version >= 2.09 at 0x206:
 *    the version that added `setup_data`). The search runs from the top of memory down:
 *    `kexec_file_load` places its segments top-down, so the `boot_params` it built for the
 *    next kernel is met before the stale copies lower down (the real-mode one the
 *    firmware loaded, the old kernel's own). The first candidate whose chain reaches a
 *    valid `kho-v4` FDT wins, and the search stops there.
 * 4. `fdt-scan`: every page-aligned page whose first word is the FDT magic 0xd00dfeed,
 *    checked with libfdt's rules (`checkLibfdt`) and as the next kernel checks a root FDT
 *    (`checkKhoRootFdt`: compatible `"kho-v4"`, a preserved-memory-map).
 *    A machine that went through several live updates may hold more than one valid root
 *    FDT (an incoming one stays intact, see the golden README); then the one whose
 *    `kexec-metadata` blob has the highest `kexec_count` is the newest.
 *
 * Strategies 3 and 4 share one top-down pass over the image that reads it in 256 KiB
 * chunks and looks at a few bytes of each page; the pass stops at the first x86 hit, so on
 * an x86 handover it reads a few MiB at most of a 1 GiB dump. What else the search reads is
 * bounded too, whatever the image holds: root FDT candidates of the scan are read one page
 * each at most (the root FDT is one page in `kho-v4`), so all of them together read at
 * most the image once more; and at most {@link X86_SCAN_MAX_CANDIDATES} `boot_params`
 * candidates are followed (a real image has a handful), each costing at most its page, its
 * chain's headers and a 1 MiB FDT.
 *
 * Hostile input: a `setup_data` chain is bounded ({@link X86_SETUP_DATA_MAX_ENTRIES}
 * entries, no entry visited twice, every entry inside the image) and fails with
 * `FormatError("x86-setup-data", ...)`; a bad FDT with `FormatError("kho-fdt", ...)`.
 * When the search finds nothing it throws the first such error it met, else `ENOENT`.
 */
import { checkLibfdt } from "@liveupdate/fdt-codec";
import {
  KHO_FDT_SIZE,
  KHO_KEXEC_METADATA_NAME,
  KHO_KEXEC_METADATA_SIZE,
  PAGE_SIZE,
  X86_BOOT_PARAMS_SETUP_DATA_OFFSET,
  X86_KHO_DATA_SIZE,
  X86_SETUP_DATA_HEADER_SIZE,
  X86_SETUP_TYPE_KEXEC_KHO,
} from "../abi.js";
import { FormatError, KernelError } from "../errors.js";
import { decodeKexecMetadata } from "../kexec-metadata.js";
import { checkKhoRootFdt, retrieveKhoSubtree } from "../kho-root-fdt.js";
import type { MemoryRange } from "../memory.js";
import type { PhysReader } from "../types.js";
import type { KhoFdtPointer } from "./elf-core.js";

/** How the root FDT was found. */
export type KhoFdtMethod = "given" | "elf-note" | "x86-setup-data" | "fdt-scan";

/** The automatic strategies, in the order they are tried by default. */
export const KHO_FDT_AUTO_METHODS: readonly KhoFdtMethod[] = Object.freeze(["elf-note", "x86-setup-data", "fdt-scan"]);

/** x86 boot protocol: offset of `hdr.boot_flag` in `boot_params`. */
export const X86_BOOT_FLAG_OFFSET = 0x1fe;
/** `hdr.boot_flag`'s value. */
export const X86_BOOT_FLAG = 0xaa55;
/** Offset of `hdr.header` in `boot_params`. */
export const X86_HEADER_MAGIC_OFFSET = 0x202;
/** `hdr.header`: `"HdrS"` as a little-endian u32. */
export const X86_HEADER_MAGIC = 0x53726448;
/** Offset of `hdr.version` (the boot protocol version, u16) in `boot_params`. */
export const X86_BOOT_PROTOCOL_OFFSET = 0x206;
/** Boot protocol 2.09 added `setup_data`. */
export const X86_BOOT_PROTOCOL_SETUP_DATA = 0x0209;
/** `struct boot_params` is one page. */
export const X86_BOOT_PARAMS_SIZE = PAGE_SIZE;
/** A chain longer than this is corrupt (Linux defines about a dozen setup_data types). */
export const X86_SETUP_DATA_MAX_ENTRIES = 256;
/** The search follows at most this many `boot_params` candidates (see the module comment). */
export const X86_SCAN_MAX_CANDIDATES = 64;

const FDT_MAGIC = 0xd00dfeed;
const FDT_HEADER_SIZE = 40;
/** The search reads the image in chunks of this many bytes (page-aligned, top-down). */
export const KHO_FDT_SCAN_CHUNK_BYTES = 256 * 1024;
/** Default bound on an FDT whose size a producer gave (kho_data, ELF note, caller). */
const DEFAULT_MAX_FDT_SIZE = 1024 * 1024;

/** One `setup_data` entry of the chain. */
export interface X86SetupDataEntry {
  readonly phys: number;
  readonly next: number;
  readonly type: number;
  readonly len: number;
}

/** x86 `struct kho_data` (setup_data type 10). */
export interface X86KhoData {
  readonly fdtAddr: number;
  readonly fdtSize: number;
  readonly scratchAddr: number;
  readonly scratchSize: number;
}

/** What the x86 boot protocol hands the next kernel about KHO. */
export interface X86KhoHandover {
  readonly bootParams: number;
  readonly setupData: readonly X86SetupDataEntry[];
  readonly khoData: X86KhoData;
}

/** A found root FDT. */
export interface KhoFdtLocation {
  readonly fdtAddr: number;
  /** The FDT's memory size as recorded by whoever named it (kho_data, ELF note), else its totalsize. */
  readonly fdtSize: number;
  /** The FDT, cut to its header's `totalsize`. */
  readonly fdt: Uint8Array;
  /** Its `preserved-memory-map`: the radix tree's root page. */
  readonly memoryMapPhys: number;
  readonly method: KhoFdtMethod;
  /** How x86 handed it over, when found that way. */
  readonly x86?: X86KhoHandover;
  /** `fdt-scan`: every valid `kho-v4` root FDT address found, top-down (more than one: see module comment). */
  readonly candidates?: readonly number[];
}

/** Options of {@link findKhoFdt}. */
export interface FindKhoFdtOptions {
  /** The root FDT's address: only this is checked (method `given`). */
  readonly fdtAddr?: number;
  /** With `fdtAddr`: the FDT's size bound (default 1 MiB). */
  readonly fdtSize?: number;
  /** x86 `boot_params` address (e.g. `rsi` at the entry point): only its chain is followed. */
  readonly bootParams?: number;
  /** Automatic strategies to use, in order (default {@link KHO_FDT_AUTO_METHODS}). */
  readonly methods?: readonly KhoFdtMethod[];
  /**
   * Where to search: default an image's `dataRanges`, a `PhysicalMemory`'s data pages, else
   * the reader's `ranges`.
   */
  readonly ranges?: readonly MemoryRange[];
}

function fail(format: string, phys: number, rule: string, message: string): never {
  throw new FormatError(format, phys, "phys", rule, message);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Little-endian u64 of `b` at `i` as a number, undefined from 2^53. */
function u64(b: Uint8Array, i: number): number | undefined {
  const lo = (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  const hi = (b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24)) >>> 0;
  return hi >= 0x200000 ? undefined : hi * 0x100000000 + lo;
}

function u32le(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

function u32be(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

/** Whether the page at `off` of `page` carries the x86 boot protocol header of a `boot_params` with `setup_data`. */
export function looksLikeX86BootParams(page: Uint8Array, off = 0): boolean {
  if (off + X86_BOOT_PROTOCOL_OFFSET + 2 > page.length) return false;
  return (
    page[off + X86_BOOT_FLAG_OFFSET] === (X86_BOOT_FLAG & 0xff) &&
    page[off + X86_BOOT_FLAG_OFFSET + 1] === X86_BOOT_FLAG >>> 8 &&
    u32le(page, off + X86_HEADER_MAGIC_OFFSET) === X86_HEADER_MAGIC &&
    (page[off + X86_BOOT_PROTOCOL_OFFSET]! | (page[off + X86_BOOT_PROTOCOL_OFFSET + 1]! << 8)) >= X86_BOOT_PROTOCOL_SETUP_DATA
  );
}

/**
 * The `setup_data` chain of the `boot_params` at `bootParams`, validated: every entry
 * (header and data) inside the reader, no entry twice, at most
 * {@link X86_SETUP_DATA_MAX_ENTRIES}. `FormatError("x86-setup-data", ...)` otherwise.
 */
export function readX86SetupData(reader: PhysReader, bootParams: number): X86SetupDataEntry[] {
  const F = "x86-setup-data";
  if (!reader.contains(bootParams, X86_BOOT_PARAMS_SIZE)) fail(F, bootParams, "boot-params.outside", `boot_params page at ${hex(bootParams)} is not in the image`);
  const page = new Uint8Array(X86_BOOT_PARAMS_SIZE);
  reader.readInto(bootParams, page);
  if (!looksLikeX86BootParams(page)) fail(F, bootParams + X86_HEADER_MAGIC_OFFSET, "boot-params.signature", `no boot protocol >= 2.09 header ("HdrS", 0xaa55) at ${hex(bootParams)}`);
  const headAt = bootParams + X86_BOOT_PARAMS_SETUP_DATA_OFFSET;
  let next = u64(page, X86_BOOT_PARAMS_SETUP_DATA_OFFSET);
  let linkAt = headAt;
  const entries: X86SetupDataEntry[] = [];
  const seen = new Set<number>();
  const header = new Uint8Array(X86_SETUP_DATA_HEADER_SIZE);
  while (next !== 0) {
    if (next === undefined) fail(F, linkAt, "setup-data.u64", "setup_data pointer is 2^53 or more");
    if (seen.has(next)) fail(F, linkAt, "setup-data.cycle", `setup_data ${hex(next)} is reached twice`);
    if (entries.length >= X86_SETUP_DATA_MAX_ENTRIES) fail(F, linkAt, "setup-data.too-long", `more than ${X86_SETUP_DATA_MAX_ENTRIES} setup_data entries`);
    if (!reader.contains(next, X86_SETUP_DATA_HEADER_SIZE)) fail(F, linkAt, "setup-data.outside", `setup_data ${hex(next)} is not in the image`);
    seen.add(next);
    reader.readInto(next, header);
    const type = u32le(header, 8);
    const len = u32le(header, 12);
    if (!reader.contains(next + X86_SETUP_DATA_HEADER_SIZE, len)) fail(F, next + 12, "setup-data.len-outside", `setup_data ${hex(next)}: ${len} bytes of data are not in the image`);
    const after = u64(header, 0);
    entries.push({ phys: next, next: after ?? -1, type, len });
    linkAt = next;
    next = after;
  }
  return entries;
}

/** The x86 KHO handover of the `boot_params` at `bootParams`: its chain and `kho_data`. */
export function readX86KhoHandover(reader: PhysReader, bootParams: number): X86KhoHandover {
  const setupData = readX86SetupData(reader, bootParams);
  const kho = setupData.find((e) => e.type === X86_SETUP_TYPE_KEXEC_KHO);
  if (kho === undefined) throw new KernelError("ENOENT", `the setup_data chain of boot_params ${hex(bootParams)} has no SETUP_KEXEC_KHO entry`);
  const at = kho.phys + X86_SETUP_DATA_HEADER_SIZE;
  if (kho.len < X86_KHO_DATA_SIZE) fail("x86-setup-data", kho.phys + 12, "kho-data.short", `kho_data has ${kho.len} bytes, fewer than ${X86_KHO_DATA_SIZE}`);
  const b = new Uint8Array(X86_KHO_DATA_SIZE);
  reader.readInto(at, b);
  const fields = [u64(b, 0), u64(b, 8), u64(b, 16), u64(b, 24)];
  const bad = fields.findIndex((f) => f === undefined);
  if (bad >= 0) fail("x86-setup-data", at + 8 * bad, "kho-data.u64", "a kho_data field is 2^53 or more");
  const [fdtAddr, fdtSize, scratchAddr, scratchSize] = fields as number[];
  return { bootParams, setupData, khoData: { fdtAddr: fdtAddr!, fdtSize: fdtSize!, scratchAddr: scratchAddr!, scratchSize: scratchSize! } };
}

/**
 * The KHO root FDT at `addr`, checked with libfdt's full structure check (`checkLibfdt`)
 * and as the next kernel checks it before reviving (`checkKhoRootFdt`: root compatible
 * `"kho-v4"`, an 8-byte non-zero `preserved-memory-map`), cut to its totalsize, which must
 * not exceed `sizeLimit`. `FormatError("kho-fdt", ...)` otherwise.
 */
export function readKhoFdtAt(reader: PhysReader, addr: number, sizeLimit: number = DEFAULT_MAX_FDT_SIZE): Uint8Array {
  return checkedFdtAt(reader, addr, sizeLimit).fdt;
}

function checkedFdtAt(reader: PhysReader, addr: number, sizeLimit: number): { fdt: Uint8Array; memoryMapPhys: number } {
  const F = "kho-fdt";
  if (!reader.contains(addr, FDT_HEADER_SIZE)) fail(F, addr, "fdt.outside", `no FDT header at ${hex(addr)} in the image`);
  const head = new Uint8Array(FDT_HEADER_SIZE);
  reader.readInto(addr, head);
  if (u32be(head, 0) !== FDT_MAGIC) fail(F, addr, "fdt.magic", `no FDT magic at ${hex(addr)}`);
  const totalsize = u32be(head, 4);
  if (totalsize < FDT_HEADER_SIZE || totalsize > sizeLimit) fail(F, addr + 4, "fdt.totalsize", `totalsize ${totalsize} is not within [${FDT_HEADER_SIZE}, ${sizeLimit}]`);
  if (!reader.contains(addr, totalsize)) fail(F, addr + 4, "fdt.outside", `FDT of ${totalsize} bytes at ${hex(addr)} is not all in the image`);
  const fdt = new Uint8Array(totalsize);
  reader.readInto(addr, fdt);
  const problem = checkLibfdt(fdt).problems[0];
  if (problem !== undefined) fail(F, addr + Math.max(0, problem.offset), `libfdt.${problem.rule}`, `${problem.code}: ${problem.message}`);
  const verdict = checkKhoRootFdt(fdt);
  if (!verdict.valid) fail(F, addr, "fdt.kho-root", `not a KHO root FDT the next kernel would take: ${verdict.reason}`);
  return { fdt, memoryMapPhys: verdict.memoryMapPhys };
}

/** `kexec_count` of the FDT's `kexec-metadata` blob, when it is there and readable. */
function kexecCountOf(reader: PhysReader, fdt: Uint8Array): number | undefined {
  let blob: { phys: number; size: number };
  try {
    blob = retrieveKhoSubtree(fdt, KHO_KEXEC_METADATA_NAME);
  } catch (e) {
    if (e instanceof KernelError) return undefined;
    throw e;
  }
  const len = Math.min(blob.size, KHO_KEXEC_METADATA_SIZE);
  if (!reader.contains(blob.phys, len)) return undefined;
  const bytes = new Uint8Array(len);
  reader.readInto(blob.phys, bytes);
  return decodeKexecMetadata(bytes, blob.size)?.kexecCount;
}

/**
 * Where to search `reader`. Only pages that can differ from a uniform fill can hold either
 * signature, so: an image's `dataRanges` (bytes from its file; a hostile header may claim
 * petabytes of fill), a `PhysicalMemory`'s data pages (`dataPfns()`), else its `ranges`.
 */
function rangesOf(reader: PhysReader): readonly MemoryRange[] | undefined {
  const { dataRanges, dataPfns, ranges } = reader as { readonly dataRanges?: unknown; readonly dataPfns?: unknown; readonly ranges?: unknown };
  if (Array.isArray(dataRanges)) return dataRanges as readonly MemoryRange[];
  if (typeof dataPfns === "function") {
    const out: MemoryRange[] = [];
    for (const pfn of (dataPfns as () => readonly number[]).call(reader)) {
      const phys = pfn * PAGE_SIZE;
      const last = out[out.length - 1];
      if (last !== undefined && last.start + last.size === phys) out[out.length - 1] = { start: last.start, size: last.size + PAGE_SIZE };
      else out.push({ start: phys, size: PAGE_SIZE });
    }
    return out;
  }
  return Array.isArray(ranges) ? (ranges as readonly MemoryRange[]) : undefined;
}

function noteOf(reader: PhysReader): KhoFdtPointer | undefined {
  const n = (reader as { readonly khoFdt?: unknown }).khoFdt;
  if (typeof n !== "object" || n === null) return undefined;
  const { fdtAddr, fdtSize } = n as Partial<KhoFdtPointer>;
  return typeof fdtAddr === "number" && typeof fdtSize === "number" ? { fdtAddr, fdtSize } : undefined;
}

/**
 * Find the KHO root FDT in `reader` (an image or a machine's memory). See the module
 * comment for the strategies and their order.
 */
export function findKhoFdt(reader: PhysReader, options: FindKhoFdtOptions = {}): KhoFdtLocation {
  if (options.fdtAddr !== undefined) {
    const { fdt, memoryMapPhys } = checkedFdtAt(reader, options.fdtAddr, options.fdtSize ?? DEFAULT_MAX_FDT_SIZE);
    return { fdtAddr: options.fdtAddr, fdtSize: options.fdtSize ?? fdt.length, fdt, memoryMapPhys, method: "given" };
  }
  if (options.bootParams !== undefined) return viaX86(reader, options.bootParams);

  const methods = options.methods ?? KHO_FDT_AUTO_METHODS;
  const note = methods.includes("elf-note") ? noteOf(reader) : undefined;
  if (note !== undefined) {
    const { fdt, memoryMapPhys } = checkedFdtAt(reader, note.fdtAddr, Math.min(note.fdtSize, DEFAULT_MAX_FDT_SIZE));
    return { fdtAddr: note.fdtAddr, fdtSize: note.fdtSize, fdt, memoryMapPhys, method: "elf-note" };
  }
  const x86 = methods.includes("x86-setup-data");
  const fdtScan = methods.includes("fdt-scan");
  if (!x86 && !fdtScan) throw new KernelError("ENOENT", "no KHO root FDT: no strategy left to try");
  const ranges = options.ranges ?? rangesOf(reader);
  if (ranges === undefined) throw new KernelError("EINVAL", "cannot search a reader without ranges: pass options.ranges");
  return scan(reader, ranges, x86, fdtScan);
}

function viaX86(reader: PhysReader, bootParams: number): KhoFdtLocation {
  const handover = readX86KhoHandover(reader, bootParams);
  const { fdtAddr, fdtSize } = handover.khoData;
  const { fdt, memoryMapPhys } = checkedFdtAt(reader, fdtAddr, Math.min(fdtSize, DEFAULT_MAX_FDT_SIZE));
  return { fdtAddr, fdtSize, fdt, memoryMapPhys, method: "x86-setup-data", x86: handover };
}

/** The shared top-down pass of strategies 3 and 4. */
function scan(reader: PhysReader, ranges: readonly MemoryRange[], x86: boolean, fdtScan: boolean): KhoFdtLocation {
  const chunk = new Uint8Array(KHO_FDT_SCAN_CHUNK_BYTES);
  const fdtPages: number[] = [];
  let firstError: FormatError | undefined;
  let x86Candidates = 0;
  const sorted = [...ranges].sort((a, b) => b.start - a.start);
  for (const r of sorted) {
    const lo = Math.ceil(r.start / PAGE_SIZE) * PAGE_SIZE;
    const hi = Math.floor((r.start + r.size) / PAGE_SIZE) * PAGE_SIZE;
    for (let end = hi; end > lo; ) {
      const start = Math.max(lo, end - KHO_FDT_SCAN_CHUNK_BYTES);
      const view = chunk.subarray(0, end - start);
      reader.readInto(start, view);
      for (let off = view.length - PAGE_SIZE; off >= 0; off -= PAGE_SIZE) {
        if (x86 && x86Candidates < X86_SCAN_MAX_CANDIDATES && looksLikeX86BootParams(view, off)) {
          x86Candidates++;
          try {
            return viaX86(reader, start + off);
          } catch (e) {
            // A stale or foreign boot_params: remember why, keep looking.
            if (e instanceof FormatError) firstError ??= e;
            else if (!(e instanceof KernelError)) throw e;
          }
        }
        if (fdtScan && u32be(view, off) === FDT_MAGIC) fdtPages.push(start + off);
      }
      end = start;
    }
  }
  const found: Array<{ addr: number; fdt: Uint8Array; memoryMapPhys: number }> = [];
  for (const addr of fdtPages) {
    try {
      found.push({ addr, ...checkedFdtAt(reader, addr, KHO_FDT_SIZE) });
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
    }
  }
  let best = found[0];
  if (best === undefined) {
    if (firstError !== undefined) throw firstError;
    const searched = [x86 ? `x86 boot_params (${x86Candidates} candidates followed)` : "", fdtScan ? `kho-v4 FDT pages (${fdtPages.length} with the magic)` : ""];
    throw new KernelError("ENOENT", `no KHO root FDT: searched ${searched.filter(Boolean).join(", ")}`);
  }
  if (found.length > 1) {
    let bestCount = -1;
    for (const f of found) {
      const count = kexecCountOf(reader, f.fdt) ?? -1;
      if (count > bestCount) {
        bestCount = count;
        best = f;
      }
    }
  }
  return { fdtAddr: best.addr, fdtSize: best.fdt.length, fdt: best.fdt, memoryMapPhys: best.memoryMapPhys, method: "fdt-scan", candidates: found.map((f) => f.addr) };
}
