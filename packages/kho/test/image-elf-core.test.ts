import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PAGE_SIZE } from "../src/abi.js";
import { FormatError } from "../src/errors.js";
import { PhysicalMemory, POISON_BYTE } from "../src/memory.js";
import {
  ELF64_EHDR_SIZE,
  ELF64_PHDR_SIZE,
  ElfCoreImage,
  NT_LIVEUPDATE_KHO_FDT,
  PN_XNUM,
  elfCoreChunks,
  planElfCore,
  writeElfCore,
} from "../src/image/elf-core.js";
import { prng, sameBytes, tempDir, u64le } from "./support/image-builders.js";

const MiB = 1024 * 1024;
const tmp = tempDir("kho-elf");
afterAll(() => { tmp.cleanup(); });

interface Segment {
  phys: number;
  fileSize: number;
  memSize: number;
}

/**
 * The PT_LOADs expected for `memory`, from first principles: visit every page, a data page
 * extends a segment's file part (if it has no zero tail yet), a zero page its zero tail.
 */
function expectedSegments(memory: PhysicalMemory): Segment[] {
  const out: Segment[] = [];
  for (const r of memory.ranges) {
    for (let pfn = r.start / PAGE_SIZE; pfn < (r.start + r.size) / PAGE_SIZE; pfn++) {
      const state = memory.pageState(pfn);
      if (state === "background") continue;
      const phys = pfn * PAGE_SIZE;
      const last = out[out.length - 1];
      const contiguous = last !== undefined && last.phys + last.memSize === phys;
      if (state === "data") {
        if (contiguous && last.fileSize === last.memSize) {
          last.fileSize += PAGE_SIZE;
          last.memSize += PAGE_SIZE;
        } else {
          out.push({ phys, fileSize: PAGE_SIZE, memSize: PAGE_SIZE });
        }
      } else if (contiguous) {
        last.memSize += PAGE_SIZE;
      } else {
        out.push({ phys, fileSize: 0, memSize: PAGE_SIZE });
      }
    }
  }
  return out;
}

/** A machine with holes, data pages, zero pages and both kinds adjacent. */
function sampleMachine(background: "zero" | "poison", seed: number): PhysicalMemory {
  const m = new PhysicalMemory([{ start: 0, size: 640 * 1024 }, { start: MiB, size: 15 * MiB }, { start: 64 * MiB, size: 4 * MiB }], background);
  const rand = prng(seed);
  const page = (pfn: number): Uint8Array => Uint8Array.from({ length: PAGE_SIZE }, (_, i) => (pfn * 31 + i * 7 + Math.floor(rand() * 3)) & 0xff);
  const data = [0, 1, 2, 0x9f, 0x100, 0x101, 0x180, 0x181, 0x182, 0x4000, 0x4001, 0x43ff];
  for (const pfn of data) m.write(pfn * PAGE_SIZE, page(pfn));
  // Zero pages: after a data run (a tail), alone, and before a data page.
  m.zero(0x102 * PAGE_SIZE, 3 * PAGE_SIZE);
  m.zero(0x200 * PAGE_SIZE, 5 * PAGE_SIZE);
  m.zero(0x17e * PAGE_SIZE, 2 * PAGE_SIZE);
  // A page written partly: data.
  m.write(0x300 * PAGE_SIZE + 100, Uint8Array.of(1, 2, 3));
  // Random data pages in the high range.
  for (let k = 0; k < 40; k++) {
    const pfn = 0x4000 + Math.floor(rand() * 1024);
    m.write(pfn * PAGE_SIZE, page(pfn));
  }
  return m;
}

function readelf(args: string[], file: string): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync("readelf", [...args, file], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

function loadsOfReadelf(stdout: string): Segment[] {
  const out: Segment[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^\s*LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/.exec(line);
    if (m) out.push({ phys: Number(m[3]), fileSize: Number(m[4]), memSize: Number(m[5]) });
  }
  return out;
}

function expectFormatError(fn: () => unknown, rule: string, offset?: number): FormatError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FormatError);
  const e = caught as FormatError;
  expect(e.format).toBe("elf-core");
  expect(e.rule).toBe(rule);
  if (offset !== undefined) expect(e.offset).toBe(offset);
  return e;
}

describe("ELF core writer and reader", () => {
  for (const background of ["zero", "poison"] as const) {
    it(`round-trips every page of a ${background}-background machine`, () => {
      const m = sampleMachine(background, background === "zero" ? 1 : 2);
      const file = path.join(tmp.dir, `rt-${background}.core`);
      const planned = writeElfCore(m, file, { khoFdt: { addr: 0x180 * PAGE_SIZE, size: PAGE_SIZE } });
      expect(fs.statSync(file).size).toBe(planned.fileSize);
      // File bytes: headers plus data pages only; zero and background pages cost nothing.
      expect(planned.fileSize).toBe(planned.headerBytes + m.dataPageCount * PAGE_SIZE);
      const expected = expectedSegments(m);
      expect(planned.segments.map(({ phys, fileSize, memSize }) => ({ phys, fileSize, memSize }))).toEqual(expected);
      if (background === "poison") expect(expected.some((s) => s.fileSize > 0 && s.memSize > s.fileSize)).toBe(true);

      const img = ElfCoreImage.open(file);
      try {
        expect(img.machine).toBe(62);
        expect(img.khoFdt).toEqual({ fdtAddr: 0x180 * PAGE_SIZE, fdtSize: PAGE_SIZE });
        expect(img.background).toBe(background === "poison" ? POISON_BYTE : 0);
        expect(img.memoryRanges).toEqual(m.ranges);
        expect(img.ranges).toEqual(m.ranges);
        const got = new Uint8Array(PAGE_SIZE);
        let pages = 0;
        for (const r of m.ranges) {
          for (let pfn = r.start / PAGE_SIZE; pfn < (r.start + r.size) / PAGE_SIZE; pfn++) {
            img.readInto(pfn * PAGE_SIZE, got);
            if (!sameBytes(got, m.readPage(pfn))) throw new Error(`page ${pfn.toString(16)} differs`);
            pages++;
          }
        }
        expect(pages).toBe(m.totalBytes / PAGE_SIZE);
        // A read across a data page, a zero tail and a background page, unaligned.
        const at = 0x101 * PAGE_SIZE + 123;
        expect(sameBytes(img.read(at, 5 * PAGE_SIZE), m.read(at, 5 * PAGE_SIZE))).toBe(true);
        expect(img.contains(0xa0000, 1)).toBe(false);
        expect(img.contains(0x9f000, PAGE_SIZE)).toBe(true);
        expect(img.contains(0x9f000, PAGE_SIZE + 1)).toBe(false);
        expect(() => { img.readInto(0xa0000, new Uint8Array(1)); }).toThrow(expect.objectContaining({ errno: "EFAULT" }));
      } finally {
        img.close();
      }
    });
  }

  it("is accepted by binutils readelf, which lists the PT_LOADs and the LIVEUPDATE note", () => {
    const m = sampleMachine("poison", 3);
    const file = path.join(tmp.dir, "readelf.core");
    writeElfCore(m, file, { khoFdt: { addr: 0x180 * PAGE_SIZE, size: PAGE_SIZE } });
    const l = readelf(["-lW"], file);
    expect(l.status).toBe(0);
    expect(l.stderr).toBe("");
    expect(l.stdout).toMatch(/Elf file type is CORE/);
    const expected = expectedSegments(m);
    expect(l.stdout).toContain(`There are ${expected.length + 1} program headers`);
    expect(loadsOfReadelf(l.stdout)).toEqual(expected);
    const n = readelf(["-nW"], file);
    expect(n.status).toBe(0);
    expect(n.stderr).toBe("");
    expect(n.stdout).toMatch(new RegExp(`LIVEUPDATE\\s+0x00000010\\s+Unknown note type: \\(0x${NT_LIVEUPDATE_KHO_FDT.toString(16).padStart(8, "0")}\\)`));
    expect(n.stdout.match(/LIVEUPDATE/g)).toHaveLength(2);
  });

  it("uses ELF extended numbering past 65534 segments (readelf agrees) and reads it back", () => {
    const pages = 2 * 70_000;
    const m = new PhysicalMemory([{ start: 16 * MiB, size: pages * PAGE_SIZE }], "poison");
    for (let k = 0; k < pages; k += 2) m.zero(16 * MiB + k * PAGE_SIZE, PAGE_SIZE);
    m.write(16 * MiB + 1001 * PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(0x11)); // lands between zero pages
    const file = path.join(tmp.dir, "xnum.core");
    const planned = writeElfCore(m, file);
    expect(planned.phnum).toBeGreaterThanOrEqual(PN_XNUM);
    const header = fs.readFileSync(file).subarray(0, ELF64_EHDR_SIZE);
    expect(new DataView(header.buffer, header.byteOffset).getUint16(56, true)).toBe(PN_XNUM);
    const l = readelf(["-lW"], file);
    expect(l.status).toBe(0);
    expect(l.stdout).toContain(`There are ${planned.phnum} program headers`);
    const img = ElfCoreImage.open(file);
    try {
      expect(img.loads).toHaveLength(planned.phnum - 1);
      for (const pfn of [0, 1, 999, 1000, 1001, 1002, pages - 1]) {
        expect(sameBytes(img.read(16 * MiB + pfn * PAGE_SIZE, PAGE_SIZE), m.readPage(16 * MiB / PAGE_SIZE + pfn))).toBe(true);
      }
    } finally {
      img.close();
    }
  });

  it("streams: chunks are bounded, independent, and concatenate to the file", () => {
    const m = sampleMachine("zero", 4);
    const chunks = [...elfCoreChunks(m, { chunkBytes: 3 * PAGE_SIZE })];
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(3 * PAGE_SIZE);
    const whole = Buffer.concat(chunks);
    expect(whole.length).toBe(planElfCore(m).fileSize);
    const file = path.join(tmp.dir, "fd.core");
    const fd = fs.openSync(file, "w");
    try {
      writeElfCore(m, fd);
    } finally {
      fs.closeSync(fd);
    }
    expect(fs.readFileSync(file).equals(whole)).toBe(true);
    // A chunk kept by the caller is not changed by writes to the machine afterwards.
    const copy = Buffer.from(chunks[chunks.length - 1]!);
    m.fill(0, m.ranges[0]!.size, 0x77);
    expect(Buffer.from(chunks[chunks.length - 1]!).equals(copy)).toBe(true);
  });
});

describe("ELF core reader on hostile files", () => {
  const m = new PhysicalMemory([{ start: 0, size: 32 * PAGE_SIZE }], "poison");
  m.write(2 * PAGE_SIZE, new Uint8Array(2 * PAGE_SIZE).fill(0x22));
  m.zero(4 * PAGE_SIZE, PAGE_SIZE);
  m.write(8 * PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(0x88));
  const goodPath = path.join(tmp.dir, "good.core");
  const planned = writeElfCore(m, goodPath, { khoFdt: { addr: 0, size: PAGE_SIZE } });
  const good = fs.readFileSync(goodPath);
  // Program header k (0 = the note) starts here.
  const ph = (k: number): number => ELF64_EHDR_SIZE + k * ELF64_PHDR_SIZE;

  /** A copy of the good file edited by `edit` (which may return a replacement buffer). */
  function variant(name: string, edit: (b: Buffer) => unknown): string {
    const b = Buffer.from(good);
    const r = edit(b);
    const out = Buffer.isBuffer(r) ? r : b;
    const p = path.join(tmp.dir, `${name}.core`);
    fs.writeFileSync(p, out);
    return p;
  }

  it("accepts the unmodified file", () => {
    expect(planned.segments).toHaveLength(2);
    ElfCoreImage.open(goodPath).close();
  });

  it("rejects truncation at every region of the file", () => {
    expectFormatError(() => ElfCoreImage.open(variant("t-ehdr", (b) => b.subarray(0, 40))), "ehdr.truncated", 40);
    expectFormatError(() => ElfCoreImage.open(variant("t-phdr", (b) => b.subarray(0, ph(1) + 10))), "phdr.table-outside-file", 32);
    // Cut inside the second PT_LOAD's data.
    const cut = planned.segments[1]!.fileOffset + 100;
    expectFormatError(() => ElfCoreImage.open(variant("t-data", (b) => b.subarray(0, cut))), "phdr.outside-file", ph(2) + 8);
  });

  it("rejects header fields it cannot read", () => {
    expectFormatError(() => ElfCoreImage.open(variant("magic", (b) => void (b[1] = 0))), "ehdr.magic", 0);
    expectFormatError(() => ElfCoreImage.open(variant("class", (b) => void (b[4] = 1))), "ehdr.class", 4);
    expectFormatError(() => ElfCoreImage.open(variant("be", (b) => void (b[5] = 2))), "ehdr.data", 5);
    expectFormatError(() => ElfCoreImage.open(variant("exec", (b) => void b.writeUInt16LE(2, 16))), "ehdr.type", 16);
    expectFormatError(() => ElfCoreImage.open(variant("phent", (b) => void b.writeUInt16LE(32, 54))), "ehdr.phentsize", 54);
    expectFormatError(() => ElfCoreImage.open(variant("phoff", (b) => void b.writeBigUInt64LE(1n << 60n, 32))), "u64.too-large", 32);
  });

  it("bounds the program header count by the file size (PN_XNUM included)", () => {
    expectFormatError(() => ElfCoreImage.open(variant("phnum", (b) => void b.writeUInt16LE(0xfffe, 56))), "phdr.table-outside-file");
    expectFormatError(() => ElfCoreImage.open(variant("xnum-no-sh", (b) => void b.writeUInt16LE(PN_XNUM, 56))), "shdr.extnum", 40);
    const xnum = variant("xnum-huge", (b) => {
      const sh = Buffer.alloc(64);
      sh.writeUInt32LE(0xffffffff, 44);
      const out = Buffer.concat([b, sh]);
      out.writeUInt16LE(PN_XNUM, 56);
      out.writeBigUInt64LE(BigInt(b.length), 40);
      out.writeUInt16LE(64, 58);
      return out;
    });
    expectFormatError(() => ElfCoreImage.open(xnum), "phdr.table-outside-file");
  });

  it("rejects program headers pointing outside the file, inverted sizes and overlaps", () => {
    expectFormatError(() => ElfCoreImage.open(variant("off", (b) => void b.writeBigUInt64LE(BigInt(good.length), ph(1) + 8))), "phdr.outside-file", ph(1) + 8);
    expectFormatError(() => ElfCoreImage.open(variant("filesz", (b) => void b.writeBigUInt64LE(BigInt(good.length) * 2n, ph(2) + 32))), "phdr.outside-file", ph(2) + 8);
    expectFormatError(() => ElfCoreImage.open(variant("memsz", (b) => void b.writeBigUInt64LE(0n, ph(1) + 40))), "phdr.filesz-exceeds-memsz", ph(1) + 32);
    // Move the second PT_LOAD onto the first one's pages.
    const first = planned.segments[0]!;
    const overlap = variant("overlap", (b) => void b.writeBigUInt64LE(BigInt(first.phys + PAGE_SIZE), ph(2) + 24));
    expectFormatError(() => ElfCoreImage.open(overlap), "phdr.overlap", ph(2) + 24);
    // Point the second PT_LOAD's data at the first one's file bytes (aliasing).
    const aliased = variant("alias", (b) => b.writeBigUInt64LE(BigInt(first.fileOffset), ph(2) + 8));
    expectFormatError(() => ElfCoreImage.open(aliased), "phdr.file-overlap", ph(2) + 8);
    expectFormatError(() => ElfCoreImage.open(variant("paddr", (b) => void b.writeBigUInt64LE(1n << 52n, ph(1) + 24))), "phdr.beyond-phys", ph(1) + 24);
  });

  it("rejects broken notes", () => {
    const noteOff = Number(good.readBigUInt64LE(ph(0) + 8));
    expectFormatError(() => ElfCoreImage.open(variant("note-desc", (b) => void b.writeUInt32LE(0x7fffffff, noteOff + 4))), "note.truncated", noteOff);
    expectFormatError(() => ElfCoreImage.open(variant("note-size", (b) => void b.writeUInt32LE(8, noteOff + 4))), "note.kho-fdt-size");
    // Make the memory note a second KHO_FDT note.
    const second = noteOff + 12 + 12 + 16;
    expectFormatError(() => ElfCoreImage.open(variant("note-dup", (b) => void b.writeUInt32LE(NT_LIVEUPDATE_KHO_FDT, second + 8))), "note.duplicate", second + 24);
    expectFormatError(() => ElfCoreImage.open(variant("note-u64", (b) => { b.set(u64le(1n << 60n), noteOff + 24); })), "u64.too-large", noteOff + 24);
    expectFormatError(() => ElfCoreImage.open(variant("note-bg", (b) => void b.writeBigUInt64LE(256n, second + 24))), "note.memory-background");
  });
});
