/**
 * ELF64 core files of a machine's physical memory: written from a {@link PhysicalMemory}
 * (streamed, never one buffer of all memory) and read lazily as a {@link PhysReader}.
 *
 * What is written: one `PT_LOAD` per run of pages that are not background. A run of data
 * pages has its bytes in the file (`p_filesz = p_memsz`); zero pages (a preserved page the
 * old kernel never wrote, on a machine after `kexec`) cost no file bytes: they are the
 * `p_memsz - p_filesz` tail of the data run they follow, or a `p_filesz = 0` segment of
 * their own. Background pages (never written: zero on a cold machine, poison after
 * `kexec`) are not written; the `LIVEUPDATE` memory note says which byte they read as, so
 * the reader gives back every page of the machine exactly.
 *
 * ```text
 * file layout (all little-endian)
 * offset                 size          what
 * 0                      64            Elf64_Ehdr: ELFCLASS64, ELFDATA2LSB, ET_CORE,
 *                                        EM_X86_64, e_phoff = 64, e_phentsize = 56
 * 64                     56 * phnum    Elf64_Phdr[]: PT_NOTE first, then PT_LOAD by p_paddr
 * (only if phnum >= 0xffff) 64         Elf64_Shdr[0]: SHT_NULL, sh_info = phnum
 *                                        (PN_XNUM: e_phnum = 0xffff, e_shnum = 1)
 * ...                    notes         the PT_NOTE segment (4-byte aligned entries)
 * next page boundary     ...           PT_LOAD data, ascending p_paddr, back to back
 *
 * PT_LOAD: p_flags = PF_R | PF_W, p_offset = file bytes (page-aligned), p_paddr = the
 *          physical address, p_vaddr = p_paddr (identity, for tools that only look at
 *          virtual addresses), p_filesz = data bytes, p_memsz = data + zero bytes,
 *          p_align = 4096
 *
 * note entry:  u32 namesz | u32 descsz | u32 type | name, NUL, pad to 4 | desc, pad to 4
 * owner "LIVEUPDATE" (namesz 11):
 *   type 0x4c550001 NT_LIVEUPDATE_KHO_FDT (16 bytes): u64 fdt_addr | u64 fdt_size
 *          the KHO root FDT handed to the next kernel (what x86 passes in kho_data)
 *   type 0x4c550002 NT_LIVEUPDATE_MEMORY (16 + 16 n bytes): u64 background | u64 n |
 *          n x { u64 start | u64 size }
 *          the machine's memory ranges; bytes of a range outside every PT_LOAD read as
 *          the background byte (0 on a cold machine, 0x6b poison after kexec)
 *   other owners and types are skipped
 * ```
 *
 * The reader accepts any little-endian ELF64 core (QEMU `dump-guest-memory`, kdump
 * `vmcore`, ...) by `p_paddr`; the LIVEUPDATE notes are optional there. It validates the
 * header, every program header (inside the file, `p_filesz <= p_memsz`, no two PT_LOADs
 * overlapping in physical memory or sharing file bytes; their number is bounded by the file
 * size) and every note
 * before any memory is read; then reads only the pages asked for.
 */
import * as fs from "node:fs";
import { PAGE_SIZE, PHYS_ADDR_BITS } from "../abi.js";
import { FormatError, KernelError } from "../errors.js";
import { POISON_BYTE, type MemoryRange, type PhysicalMemory } from "../memory.js";
import { FileImage, openImageFile, readFileBytes, u64At, type ImageExtent } from "./file-image.js";

/** `e_ident[EI_CLASS]`: 64-bit objects. */
export const ELFCLASS64 = 2;
/** `e_ident[EI_DATA]`: little-endian. */
export const ELFDATA2LSB = 1;
/** `e_ident[EI_VERSION]` and `e_version`. */
export const EV_CURRENT = 1;
/** `e_type` of a core file. */
export const ET_CORE = 4;
/** `e_machine` of x86-64. */
export const EM_X86_64 = 62;
/** `p_type` of a loadable segment (memory contents). */
export const PT_LOAD = 1;
/** `p_type` of a note segment. */
export const PT_NOTE = 4;
/** `e_phnum` value saying the real count is in section header 0's `sh_info`. */
export const PN_XNUM = 0xffff;
/** `sizeof(Elf64_Ehdr)`. */
export const ELF64_EHDR_SIZE = 64;
/** `sizeof(Elf64_Phdr)`. */
export const ELF64_PHDR_SIZE = 56;
/** `sizeof(Elf64_Shdr)`. */
export const ELF64_SHDR_SIZE = 64;
const PF_W = 2;
const PF_R = 4;

/** Owner name of this project's notes. */
export const LIVEUPDATE_NOTE_NAME = "LIVEUPDATE";
/**
 * Note type: `{ u64 fdt_addr, u64 fdt_size }` of the KHO root FDT. The 0x4c55 ("LU") high
 * half keeps our types clear of the core-file `NT_*` values (1 = `NT_PRSTATUS`, ...) that
 * readelf and bfd interpret whatever the owner name.
 */
export const NT_LIVEUPDATE_KHO_FDT = 0x4c550001;
/** Note type: `{ u64 background, u64 n, n x { u64 start, u64 size } }`: the memory ranges. */
export const NT_LIVEUPDATE_MEMORY = 0x4c550002;
/** A note segment larger than this is not read (real cores carry a few KiB of notes). */
export const ELF_NOTE_SEGMENT_MAX = 16 * 1024 * 1024;

const FORMAT = "elf-core";
const MAX_PHYS = 2 ** PHYS_ADDR_BITS;

/** Where the KHO root FDT is, as a producer recorded it. */
export interface KhoFdtPointer {
  readonly fdtAddr: number;
  readonly fdtSize: number;
}

// ---------------------------------------------------------------------------------------
// writer
// ---------------------------------------------------------------------------------------

/** One `PT_LOAD` of a planned core. */
export interface ElfLoadSegment {
  /** `p_paddr`. */
  readonly phys: number;
  /** `p_filesz`: bytes of data pages in the file. */
  readonly fileSize: number;
  /** `p_memsz`: data plus zero pages. */
  readonly memSize: number;
  /** `p_offset`. */
  readonly fileOffset: number;
}

/** Options of {@link planElfCore}, {@link elfCoreChunks} and {@link writeElfCore}. */
export interface ElfCoreWriteOptions {
  /** The KHO root FDT the next kernel is handed: written as the `NT_LIVEUPDATE_KHO_FDT` note. */
  readonly khoFdt?: { readonly addr: number; readonly size: number };
  /** Largest chunk {@link elfCoreChunks} yields, in bytes (default 1 MiB, at least a page). */
  readonly chunkBytes?: number;
}

/** The layout of a core before any byte is written. */
export interface ElfCorePlan {
  readonly segments: readonly ElfLoadSegment[];
  /** Program headers, the note's included. */
  readonly phnum: number;
  /** Bytes before the first PT_LOAD's data: headers, notes, padding. */
  readonly headerBytes: number;
  /** Size of the whole file. */
  readonly fileSize: number;
}

interface PageRun {
  pfn: number;
  count: number;
  data: boolean;
}

/** Runs of non-background pages of `memory`, ascending, each all data or all zero. */
function pageRuns(memory: PhysicalMemory): PageRun[] {
  const runs: PageRun[] = [];
  const dataPfns = memory.dataPfns();
  for (const pfn of dataPfns) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last.pfn + last.count === pfn) last.count++;
    else runs.push({ pfn, count: 1, data: true });
  }
  const zero = memory.zeroPageRuns().map((r) => ({ pfn: r.pfn, count: r.count, data: false }));
  // Merge two ascending, disjoint lists.
  const out: PageRun[] = [];
  let i = 0;
  let j = 0;
  while (i < runs.length || j < zero.length) {
    const a = runs[i];
    const b = zero[j];
    if (b === undefined || (a !== undefined && a.pfn < b.pfn)) {
      out.push(a!);
      i++;
    } else {
      out.push(b);
      j++;
    }
  }
  return out;
}

function notesOf(memory: PhysicalMemory, options: ElfCoreWriteOptions): Uint8Array {
  const notes: Array<{ type: number; desc: Uint8Array }> = [];
  if (options.khoFdt !== undefined) {
    const { addr, size } = options.khoFdt;
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(size) || addr < 0 || size < 0) {
      throw new KernelError("EINVAL", `khoFdt ${addr}+${size} is not a byte range`);
    }
    const desc = new Uint8Array(16);
    const v = new DataView(desc.buffer);
    setU64(v, 0, addr);
    setU64(v, 8, size);
    notes.push({ type: NT_LIVEUPDATE_KHO_FDT, desc });
  }
  const ranges = memory.ranges;
  const mem = new Uint8Array(16 + 16 * ranges.length);
  const mv = new DataView(mem.buffer);
  setU64(mv, 0, memory.background === "poison" ? POISON_BYTE : 0);
  setU64(mv, 8, ranges.length);
  ranges.forEach((r, k) => {
    setU64(mv, 16 + 16 * k, r.start);
    setU64(mv, 24 + 16 * k, r.size);
  });
  notes.push({ type: NT_LIVEUPDATE_MEMORY, desc: mem });

  const name = LIVEUPDATE_NOTE_NAME + "\0";
  const nameBytes = align4(name.length);
  const total = notes.reduce((n, note) => n + 12 + nameBytes + align4(note.desc.length), 0);
  const out = new Uint8Array(total);
  const ov = new DataView(out.buffer);
  let at = 0;
  for (const note of notes) {
    ov.setUint32(at, name.length, true);
    ov.setUint32(at + 4, note.desc.length, true);
    ov.setUint32(at + 8, note.type, true);
    for (let k = 0; k < LIVEUPDATE_NOTE_NAME.length; k++) out[at + 12 + k] = LIVEUPDATE_NOTE_NAME.charCodeAt(k);
    out.set(note.desc, at + 12 + nameBytes);
    at += 12 + nameBytes + align4(note.desc.length);
  }
  return out;
}

/** The layout of the core {@link writeElfCore} would write, with the header bytes. */
function plan(memory: PhysicalMemory, options: ElfCoreWriteOptions): { plan: ElfCorePlan; runs: PageRun[]; header: Uint8Array } {
  const runs = pageRuns(memory);
  // Segments: a data run, extended by the zero run right after it; or a zero run alone.
  const segRuns: Array<{ pfn: number; dataPages: number; zeroPages: number }> = [];
  for (const r of runs) {
    const last = segRuns[segRuns.length - 1];
    if (!r.data && last !== undefined && last.zeroPages === 0 && last.pfn + last.dataPages === r.pfn) last.zeroPages = r.count;
    else segRuns.push({ pfn: r.pfn, dataPages: r.data ? r.count : 0, zeroPages: r.data ? 0 : r.count });
  }
  const notes = notesOf(memory, options);
  const phnum = segRuns.length + 1;
  const extnum = phnum >= PN_XNUM;
  const phoff = ELF64_EHDR_SIZE;
  const shoff = phoff + phnum * ELF64_PHDR_SIZE;
  const noteOff = shoff + (extnum ? ELF64_SHDR_SIZE : 0);
  const headerBytes = Math.ceil((noteOff + notes.length) / PAGE_SIZE) * PAGE_SIZE;

  const segments: ElfLoadSegment[] = [];
  let offset = headerBytes;
  for (const s of segRuns) {
    const fileSize = s.dataPages * PAGE_SIZE;
    segments.push({ phys: s.pfn * PAGE_SIZE, fileSize, memSize: fileSize + s.zeroPages * PAGE_SIZE, fileOffset: offset });
    offset += fileSize;
  }

  const header = new Uint8Array(headerBytes);
  const v = new DataView(header.buffer);
  header.set([0x7f, 0x45, 0x4c, 0x46, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, 0], 0);
  v.setUint16(16, ET_CORE, true);
  v.setUint16(18, EM_X86_64, true);
  v.setUint32(20, EV_CURRENT, true);
  setU64(v, 32, phoff);
  setU64(v, 40, extnum ? shoff : 0);
  v.setUint16(52, ELF64_EHDR_SIZE, true);
  v.setUint16(54, ELF64_PHDR_SIZE, true);
  v.setUint16(56, extnum ? PN_XNUM : phnum, true);
  v.setUint16(58, extnum ? ELF64_SHDR_SIZE : 0, true);
  v.setUint16(60, extnum ? 1 : 0, true);
  // PT_NOTE
  v.setUint32(phoff, PT_NOTE, true);
  v.setUint32(phoff + 4, PF_R, true);
  setU64(v, phoff + 8, noteOff);
  setU64(v, phoff + 32, notes.length);
  setU64(v, phoff + 48, 4);
  segments.forEach((s, k) => {
    const p = phoff + (k + 1) * ELF64_PHDR_SIZE;
    v.setUint32(p, PT_LOAD, true);
    v.setUint32(p + 4, PF_R | PF_W, true);
    setU64(v, p + 8, s.fileOffset);
    setU64(v, p + 16, s.phys);
    setU64(v, p + 24, s.phys);
    setU64(v, p + 32, s.fileSize);
    setU64(v, p + 40, s.memSize);
    setU64(v, p + 48, PAGE_SIZE);
  });
  if (extnum) {
    v.setUint32(shoff + 4, 0, true); // SHT_NULL
    v.setUint32(shoff + 44, phnum, true); // sh_info: the real program header count
  }
  header.set(notes, noteOff);
  return { plan: { segments, phnum, headerBytes, fileSize: offset }, runs, header };
}

/** The layout {@link writeElfCore} would produce for `memory`, without writing anything. */
export function planElfCore(memory: PhysicalMemory, options: ElfCoreWriteOptions = {}): ElfCorePlan {
  return plan(memory, options).plan;
}

/**
 * The core file of `memory`, as consecutive chunks of at most `chunkBytes` (headers first,
 * then page data). Each chunk is a fresh array the caller may keep; memory in flight is one
 * chunk, whatever the machine's size.
 */
export function elfCoreChunks(memory: PhysicalMemory, options: ElfCoreWriteOptions = {}): Generator<Uint8Array, void, undefined> {
  return chunksOf(memory, plan(memory, options), options.chunkBytes);
}

function* chunksOf(memory: PhysicalMemory, planned: ReturnType<typeof plan>, chunkOption: number | undefined): Generator<Uint8Array, void, undefined> {
  const chunkBytes = Math.max(PAGE_SIZE, Math.floor((chunkOption ?? 1 << 20) / PAGE_SIZE) * PAGE_SIZE);
  const { runs, header } = planned;
  for (let at = 0; at < header.length; at += chunkBytes) yield header.slice(at, at + chunkBytes);
  let chunk = new Uint8Array(chunkBytes);
  let fill = 0;
  for (const r of runs) {
    if (!r.data) continue;
    for (let pfn = r.pfn; pfn < r.pfn + r.count; pfn++) {
      chunk.set(memory.readPage(pfn), fill);
      fill += PAGE_SIZE;
      if (fill === chunkBytes) {
        yield chunk;
        chunk = new Uint8Array(chunkBytes);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield chunk.subarray(0, fill);
}

/**
 * Write the core file of `memory` to `target` (a path, created or truncated, or an open
 * file descriptor, written from its current position). Streams chunk by chunk; returns
 * the layout written.
 */
export function writeElfCore(memory: PhysicalMemory, target: string | number, options: ElfCoreWriteOptions = {}): ElfCorePlan {
  const planned = plan(memory, options);
  const fd = typeof target === "number" ? target : fs.openSync(target, "w");
  try {
    for (const chunk of chunksOf(memory, planned, options.chunkBytes)) {
      let done = 0;
      while (done < chunk.length) done += fs.writeSync(fd, chunk, done, chunk.length - done);
    }
    return planned.plan;
  } finally {
    if (typeof target !== "number") fs.closeSync(fd);
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % 0x100000000, true);
  v.setUint32(at + 4, Math.floor(value / 0x100000000), true);
}

// ---------------------------------------------------------------------------------------
// reader
// ---------------------------------------------------------------------------------------

function fail(offset: number, rule: string, message: string): never {
  throw new FormatError(FORMAT, offset, "file", rule, message);
}

/** A u64 field that must fit a JS number (every address, size and offset here does). */
function field(v: DataView, at: number, fileOffset: number, what: string): number {
  const value = u64At(v, at);
  if (value === undefined) fail(fileOffset, "u64.too-large", `${what} is 2^53 or more`);
  return value;
}

interface ParsedNotes {
  khoFdt: KhoFdtPointer | undefined;
  background: number | undefined;
  memoryRanges: MemoryRange[] | undefined;
}

/** An ELF64 core file read lazily as physical memory. */
export class ElfCoreImage extends FileImage {
  protected readonly format = FORMAT;
  /** `e_machine` (62 for x86-64). */
  readonly machine: number;
  /** The PT_LOAD segments, ascending by physical address. */
  readonly loads: readonly ElfLoadSegment[];
  /** The `NT_LIVEUPDATE_KHO_FDT` note, when the producer wrote one. */
  readonly khoFdt: KhoFdtPointer | undefined;
  /** The background byte of the `NT_LIVEUPDATE_MEMORY` note, when present. */
  readonly background: number | undefined;
  /** The machine's memory ranges from the `NT_LIVEUPDATE_MEMORY` note, when present. */
  readonly memoryRanges: readonly MemoryRange[] | undefined;

  private constructor(fd: number, path: string, size: number, machine: number, loads: ElfLoadSegment[], notes: ParsedNotes) {
    super(fd, path, size, extentsOf(loads, notes));
    this.machine = machine;
    this.loads = Object.freeze(loads);
    this.khoFdt = notes.khoFdt;
    this.background = notes.background;
    this.memoryRanges = notes.memoryRanges === undefined ? undefined : Object.freeze(notes.memoryRanges);
  }

  /** Open and validate the core at `path`; `FormatError("elf-core", ...)` when it breaks a rule. */
  static open(path: string): ElfCoreImage {
    const { fd, size } = openImageFile(path);
    try {
      return ElfCoreImage.#parse(fd, size, path);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  static #parse(fd: number, size: number, path: string): ElfCoreImage {
    if (size < ELF64_EHDR_SIZE) fail(size, "ehdr.truncated", `${size} bytes is shorter than the 64-byte ELF header`);
    const eh = readFileBytes(fd, 0, ELF64_EHDR_SIZE, FORMAT, path);
    const ev = new DataView(eh.buffer);
    if (eh[0] !== 0x7f || eh[1] !== 0x45 || eh[2] !== 0x4c || eh[3] !== 0x46) fail(0, "ehdr.magic", "not an ELF file");
    if (eh[4] !== ELFCLASS64) fail(4, "ehdr.class", `class ${eh[4]} is not ELFCLASS64`);
    if (eh[5] !== ELFDATA2LSB) fail(5, "ehdr.data", `data encoding ${eh[5]} is not little-endian`);
    if (eh[6] !== EV_CURRENT) fail(6, "ehdr.version", `ident version ${eh[6]} is not 1`);
    const type = ev.getUint16(16, true);
    if (type !== ET_CORE) fail(16, "ehdr.type", `e_type ${type} is not ET_CORE`);
    const machine = ev.getUint16(18, true);
    const phoff = field(ev, 32, 32, "e_phoff");
    const shoff = field(ev, 40, 40, "e_shoff");
    const phentsize = ev.getUint16(54, true);
    let phnum = ev.getUint16(56, true);
    if (phnum > 0 && phentsize !== ELF64_PHDR_SIZE) fail(54, "ehdr.phentsize", `e_phentsize ${phentsize} is not 56`);
    if (phnum === PN_XNUM) {
      // The real count is in section header 0 (ELF extended numbering).
      const shentsize = ev.getUint16(58, true);
      if (shoff === 0 || shentsize !== ELF64_SHDR_SIZE) fail(40, "shdr.extnum", "e_phnum is PN_XNUM but there is no 64-byte section header 0");
      if (shoff > size - ELF64_SHDR_SIZE) fail(40, "shdr.outside-file", `section header 0 at 0x${shoff.toString(16)} is outside the file`);
      const sh = readFileBytes(fd, shoff, ELF64_SHDR_SIZE, FORMAT, path);
      phnum = new DataView(sh.buffer).getUint32(44, true);
    }
    // The table must lie in the file: this bounds phnum (and what we allocate) by the file size.
    if (phnum > 0 && (phoff < ELF64_EHDR_SIZE || phoff > size || phnum > Math.floor((size - phoff) / ELF64_PHDR_SIZE))) {
      fail(32, "phdr.table-outside-file", `${phnum} program headers at 0x${phoff.toString(16)} do not fit ${size} bytes`);
    }
    const table = phnum > 0 ? readFileBytes(fd, phoff, phnum * ELF64_PHDR_SIZE, FORMAT, path) : new Uint8Array(0);
    const tv = new DataView(table.buffer);
    const loads: ElfLoadSegment[] = [];
    const loadPhdrAt: number[] = [];
    const notes: ParsedNotes = { khoFdt: undefined, background: undefined, memoryRanges: undefined };
    for (let k = 0; k < phnum; k++) {
      const p = k * ELF64_PHDR_SIZE;
      const at = phoff + p;
      const ptype = tv.getUint32(p, true);
      if (ptype !== PT_LOAD && ptype !== PT_NOTE) continue;
      const offset = field(tv, p + 8, at + 8, "p_offset");
      const filesz = field(tv, p + 32, at + 32, "p_filesz");
      if (offset > size || filesz > size - offset) {
        fail(at + 8, "phdr.outside-file", `program header ${k}: 0x${filesz.toString(16)} bytes at 0x${offset.toString(16)} run past the end of the file`);
      }
      if (ptype === PT_NOTE) {
        if (filesz > ELF_NOTE_SEGMENT_MAX) fail(at + 32, "note.too-large", `note segment of ${filesz} bytes`);
        const align = field(tv, p + 48, at + 48, "p_align");
        parseNotes(readFileBytes(fd, offset, filesz, FORMAT, path), offset, align === 8 ? 8 : 4, notes);
        continue;
      }
      const paddr = field(tv, p + 24, at + 24, "p_paddr");
      const memsz = field(tv, p + 40, at + 40, "p_memsz");
      if (filesz > memsz) fail(at + 32, "phdr.filesz-exceeds-memsz", `program header ${k}: p_filesz 0x${filesz.toString(16)} > p_memsz 0x${memsz.toString(16)}`);
      if (paddr + memsz > MAX_PHYS) fail(at + 24, "phdr.beyond-phys", `program header ${k} ends beyond 2^${PHYS_ADDR_BITS}`);
      if (memsz === 0) continue;
      loads.push({ phys: paddr, fileSize: filesz, memSize: memsz, fileOffset: offset });
      loadPhdrAt.push(at);
    }
    const order = loads.map((_, k) => k).sort((a, b) => loads[a]!.phys - loads[b]!.phys);
    for (let k = 1; k < order.length; k++) {
      const prev = loads[order[k - 1]!]!;
      const cur = loads[order[k]!]!;
      if (cur.phys < prev.phys + prev.memSize) {
        fail(loadPhdrAt[order[k]!]! + 24, "phdr.overlap", `PT_LOAD at 0x${cur.phys.toString(16)} overlaps the one at 0x${prev.phys.toString(16)}`);
      }
    }
    // No two PT_LOADs may share file bytes either: then the data a reader (or a search) can
    // be made to read is bounded by the file size, however many segments there are.
    const byOffset = loads.map((_, k) => k).filter((k) => loads[k]!.fileSize > 0);
    byOffset.sort((a, b) => loads[a]!.fileOffset - loads[b]!.fileOffset);
    for (let k = 1; k < byOffset.length; k++) {
      const prev = loads[byOffset[k - 1]!]!;
      const cur = loads[byOffset[k]!]!;
      if (cur.fileOffset < prev.fileOffset + prev.fileSize) {
        fail(loadPhdrAt[byOffset[k]!]! + 8, "phdr.file-overlap", `PT_LOAD data at file offset 0x${cur.fileOffset.toString(16)} overlaps another segment's`);
      }
    }
    return new ElfCoreImage(fd, path, size, machine, order.map((k) => loads[k]!), notes);
  }
}

/** Parse a note segment read from file offset `base` into `out` (LIVEUPDATE notes only). */
function parseNotes(bytes: Uint8Array, base: number, align: number, out: ParsedNotes): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pad = (n: number): number => Math.ceil(n / align) * align;
  let at = 0;
  // Each entry takes at least 12 bytes: the loop ends within bytes.length / 12 steps.
  while (at + 12 <= bytes.length) {
    const namesz = v.getUint32(at, true);
    const descsz = v.getUint32(at + 4, true);
    const type = v.getUint32(at + 8, true);
    const nameAt = at + 12;
    const descAt = nameAt + pad(namesz);
    const next = descAt + pad(descsz);
    if (descAt > bytes.length || descAt + descsz > bytes.length) {
      fail(base + at, "note.truncated", `note of name size ${namesz}, desc size ${descsz} runs past its segment`);
    }
    const isOurs = namesz === LIVEUPDATE_NOTE_NAME.length + 1 && bytes[nameAt + namesz - 1] === 0 && asciiEq(bytes, nameAt, LIVEUPDATE_NOTE_NAME);
    if (isOurs) parseLiveupdateNote(v, descAt, descsz, type, base, out);
    at = Math.min(next, bytes.length);
  }
  if (at !== bytes.length) fail(base + at, "note.truncated", `${bytes.length - at} stray bytes at the end of the note segment`);
}

function parseLiveupdateNote(v: DataView, descAt: number, descsz: number, type: number, base: number, out: ParsedNotes): void {
  const at = base + descAt;
  if (type === NT_LIVEUPDATE_KHO_FDT) {
    if (out.khoFdt !== undefined) fail(at, "note.duplicate", "two NT_LIVEUPDATE_KHO_FDT notes");
    if (descsz !== 16) fail(at, "note.kho-fdt-size", `NT_LIVEUPDATE_KHO_FDT has ${descsz} bytes, not 16`);
    const fdtAddr = field(v, descAt, at, "fdt_addr");
    const fdtSize = field(v, descAt + 8, at + 8, "fdt_size");
    out.khoFdt = { fdtAddr, fdtSize };
  } else if (type === NT_LIVEUPDATE_MEMORY) {
    if (out.memoryRanges !== undefined) fail(at, "note.duplicate", "two NT_LIVEUPDATE_MEMORY notes");
    if (descsz < 16) fail(at, "note.memory-size", `NT_LIVEUPDATE_MEMORY has ${descsz} bytes, fewer than 16`);
    const background = field(v, descAt, at, "background");
    if (background > 0xff) fail(at, "note.memory-background", `background ${background} is not a byte`);
    const n = field(v, descAt + 8, at + 8, "range count");
    if (descsz !== 16 + 16 * n) fail(at + 8, "note.memory-size", `${n} ranges need ${16 + 16 * n} bytes, the note has ${descsz}`);
    const ranges: MemoryRange[] = [];
    for (let k = 0; k < n; k++) {
      const start = field(v, descAt + 16 + 16 * k, at + 16 + 16 * k, "range start");
      const rsize = field(v, descAt + 24 + 16 * k, at + 24 + 16 * k, "range size");
      const prev = ranges[ranges.length - 1];
      if (rsize === 0 || start + rsize > MAX_PHYS || (prev !== undefined && start < prev.start + prev.size)) {
        fail(at + 16 + 16 * k, "note.memory-range", `memory range ${k} 0x${start.toString(16)}+0x${rsize.toString(16)} is empty, out of order, overlapping or beyond 2^52`);
      }
      ranges.push({ start, size: rsize });
    }
    out.background = background;
    out.memoryRanges = ranges;
  }
}

function asciiEq(b: Uint8Array, at: number, s: string): boolean {
  for (let k = 0; k < s.length; k++) if (b[at + k] !== s.charCodeAt(k)) return false;
  return true;
}

/**
 * Extents of a core: each PT_LOAD's file bytes and zero tail; then the parts of the memory
 * note's ranges no PT_LOAD covers, as the background byte. `loads` are sorted, disjoint.
 */
function extentsOf(loads: readonly ElfLoadSegment[], notes: ParsedNotes): ImageExtent[] {
  const out: ImageExtent[] = [];
  for (const l of loads) {
    if (l.fileSize > 0) out.push({ phys: l.phys, size: l.fileSize, fileOffset: l.fileOffset, fill: 0 });
    if (l.memSize > l.fileSize) out.push({ phys: l.phys + l.fileSize, size: l.memSize - l.fileSize, fileOffset: -1, fill: 0 });
  }
  const ranges = notes.memoryRanges;
  if (ranges === undefined) return out;
  const background = notes.background ?? 0;
  // Each range minus the loads (two ascending lists: one pass over each).
  let k = 0;
  for (const r of ranges) {
    const end = r.start + r.size;
    let at = r.start;
    while (k < loads.length && loads[k]!.phys + loads[k]!.memSize <= at) k++;
    for (let j = k; j < loads.length && loads[j]!.phys < end; j++) {
      const l = loads[j]!;
      if (l.phys > at) out.push({ phys: at, size: l.phys - at, fileOffset: -1, fill: background });
      at = Math.max(at, l.phys + l.memSize);
    }
    if (at < end) out.push({ phys: at, size: end - at, fileOffset: -1, fill: background });
  }
  return out.sort((a, b) => a.phys - b.phys);
}
