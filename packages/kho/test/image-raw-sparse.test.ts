import * as fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { PAGE_SIZE } from "../src/abi.js";
import { FormatError, KernelError } from "../src/errors.js";
import { PhysicalMemory } from "../src/memory.js";
import { RawDumpImage } from "../src/image/raw-dump.js";
import { SparsePagesImage } from "../src/image/sparse-pages.js";
import { firstDifference, khosprs1Bytes, khosprs1OfMemory, prng, tempDir, writeTemp } from "./support/image-builders.js";

const tmp = tempDir("kho-sparse");
afterAll(() => { tmp.cleanup(); });

function patterned(len: number, seed: number): Uint8Array {
  const rand = prng(seed);
  return Uint8Array.from({ length: len }, () => Math.floor(rand() * 256));
}

function expectFormatError(fn: () => unknown, format: string, rule: string, offset?: number): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FormatError);
  const e = caught as FormatError;
  expect({ format: e.format, rule: e.rule }).toEqual({ format, rule });
  if (offset !== undefined) expect(e.offset).toBe(offset);
}

describe("RawDumpImage", () => {
  const bytes = patterned(37 * PAGE_SIZE + 100, 1);
  const file = writeTemp(tmp.dir, "raw.bin", bytes);

  it("maps file offset to physical address, lazily, for any read shape", () => {
    const img = RawDumpImage.open(file);
    try {
      expect(img.ranges).toEqual([{ start: 0, size: bytes.length }]);
      expect(img.readStats.reads).toBe(0);
      const rand = prng(2);
      for (let k = 0; k < 300; k++) {
        const at = Math.floor(rand() * bytes.length);
        const len = Math.floor(rand() * Math.min(3 * PAGE_SIZE, bytes.length - at));
        expect(firstDifference(img.read(at, len), bytes.subarray(at, at + len))).toBe(-1);
      }
      expect(img.contains(bytes.length - 1, 1)).toBe(true);
      expect(img.contains(bytes.length - 1, 2)).toBe(false);
      expect(() => img.read(bytes.length, 1)).toThrow(KernelError);
      // The small-read cache is bounded: reading every page once keeps at most 64 of them.
      const before = img.readStats.reads;
      for (let p = 0; p < 37; p++) img.read(p * PAGE_SIZE, 8);
      for (let p = 0; p < 37; p++) img.read(p * PAGE_SIZE + 8, 8);
      expect(img.readStats.reads - before).toBeLessThanOrEqual(37);
    } finally {
      img.close();
    }
    expect(() => img.read(0, 1)).toThrow(expect.objectContaining({ errno: "EBADF" }));
  });

  it("honours a physical base and the expected size", () => {
    const img = RawDumpImage.open(file, { physBase: 0x100000 });
    try {
      expect(img.read(0x100000 + 5000, 10)).toEqual(bytes.subarray(5000, 5010));
      expect(img.contains(0, 1)).toBe(false);
    } finally {
      img.close();
    }
    expectFormatError(() => RawDumpImage.open(file, { expectedSize: bytes.length + 1 }), "raw-dump", "file.truncated", bytes.length);
    expectFormatError(() => RawDumpImage.open(file, { expectedSize: bytes.length - 1 }), "raw-dump", "file.size");
    expectFormatError(() => RawDumpImage.open(file, { physBase: 123 }), "raw-dump", "base.unaligned");
    expectFormatError(() => RawDumpImage.open(file, { physBase: 2 ** 52 - PAGE_SIZE }), "raw-dump", "file.beyond-phys");
    expectFormatError(() => RawDumpImage.open(writeTemp(tmp.dir, "empty.bin", new Uint8Array(0))), "raw-dump", "file.empty", 0);
  });

  it("reports a file that shrank after open as a truncated raw-dump, not a RangeError", () => {
    const p = writeTemp(tmp.dir, "shrinks.bin", bytes);
    const img = RawDumpImage.open(p);
    try {
      fs.truncateSync(p, 10 * PAGE_SIZE);
      expectFormatError(() => img.read(20 * PAGE_SIZE, 16), "raw-dump", "file.truncated", 20 * PAGE_SIZE);
      expectFormatError(() => img.read(20 * PAGE_SIZE, 4 * PAGE_SIZE), "raw-dump", "file.truncated", 20 * PAGE_SIZE);
    } finally {
      img.close();
    }
  });
});

describe("SparsePagesImage (KHOSPRS1)", () => {
  const m = new PhysicalMemory([{ start: 0, size: 64 * 1024 * 1024 }]);
  const pfns = [3, 4, 5, 9, 0x1000, 0x1001, 0x3fff];
  for (const pfn of pfns) m.write(pfn * PAGE_SIZE, patterned(PAGE_SIZE, pfn));
  const file = writeTemp(tmp.dir, "good.sprs", khosprs1OfMemory(m, pfns));

  it("indexes ranges on open and reads only what is asked", () => {
    const img = SparsePagesImage.open(file);
    try {
      expect(img.ranges).toEqual([
        { start: 3 * PAGE_SIZE, size: 3 * PAGE_SIZE },
        { start: 9 * PAGE_SIZE, size: PAGE_SIZE },
        { start: 0x1000 * PAGE_SIZE, size: 2 * PAGE_SIZE },
        { start: 0x3fff * PAGE_SIZE, size: PAGE_SIZE },
      ]);
      const opened = img.readStats.reads;
      expect(opened).toBe(0); // the index is built before the reader's counters start
      for (const pfn of pfns) expect(img.read(pfn * PAGE_SIZE, PAGE_SIZE)).toEqual(m.readPage(pfn));
      expect(img.read(3 * PAGE_SIZE + 7, 3 * PAGE_SIZE - 7)).toEqual(m.read(3 * PAGE_SIZE + 7, 3 * PAGE_SIZE - 7));
      expect(img.contains(6 * PAGE_SIZE, 1)).toBe(false);
      expect(img.contains(5 * PAGE_SIZE, PAGE_SIZE + 1)).toBe(false);
      expect(() => img.read(8 * PAGE_SIZE, 1)).toThrow(expect.objectContaining({ errno: "EFAULT" }));
    } finally {
      img.close();
    }
  });

  it("opens an image with many ranges in one pass over the headers", () => {
    const records = Array.from({ length: 5000 }, (_, k) => ({ phys: 2 * k * PAGE_SIZE, data: new Uint8Array(PAGE_SIZE).fill(k & 0xff) }));
    const p = writeTemp(tmp.dir, "many.sprs", khosprs1Bytes(records));
    const t = performance.now();
    const img = SparsePagesImage.open(p);
    const ms = performance.now() - t;
    try {
      expect(img.ranges).toHaveLength(5000);
      expect(img.read(2 * 4321 * PAGE_SIZE + 5, 1)[0]).toBe(4321 & 0xff);
      expect(ms).toBeLessThan(2000); // hang guard: one pass over headers takes a few ms
    } finally {
      img.close();
    }
  });

  const page = new Uint8Array(PAGE_SIZE);
  const two = (a: number, b: number): Uint8Array =>
    khosprs1Bytes([
      { phys: a, data: page },
      { phys: b, data: page },
    ]);
  const cases: Array<[string, Uint8Array, string, number?]> = [
    ["short header", new TextEncoder().encode("KHOSPRS1"), "header.truncated", 8],
    ["bad magic", khosprs1Bytes([]).map((b, i) => (i === 0 ? 0x4a : b)), "header.magic", 0],
    ["N too large for the file", khosprs1Bytes([{ phys: 0, data: page }], 2), "range.truncated", 16 + 16 + PAGE_SIZE],
    ["N beyond what the file can hold", khosprs1Bytes([{ phys: 0, data: page }], 1n << 40n), "count.too-large", 8],
    ["N of 2^63", khosprs1Bytes([], 1n << 63n), "count.too-large", 8],
    ["unaligned phys", khosprs1Bytes([{ phys: 100, data: page }]), "range.unaligned", 16],
    ["unaligned length", khosprs1Bytes([{ phys: 0, data: new Uint8Array(100) }]), "range.unaligned", 16],
    ["empty range", khosprs1Bytes([{ phys: 0, data: new Uint8Array(0) }]), "range.empty", 24],
    ["length past the end", khosprs1Bytes([{ phys: 0, len: 2 * PAGE_SIZE, data: page }]), "range.data-truncated", 24],
    ["huge length", khosprs1Bytes([{ phys: 0, len: 1n << 62n, data: page }]), "range.u64", 16],
    ["beyond 52 bits", khosprs1Bytes([{ phys: 2 ** 52, data: page }]), "range.beyond-phys", 16],
    ["overlap", two(PAGE_SIZE, PAGE_SIZE), "range.overlap", 16 + 16 + PAGE_SIZE],
    ["unsorted", two(5 * PAGE_SIZE, PAGE_SIZE), "range.unsorted", 16 + 16 + PAGE_SIZE],
    ["trailing bytes", new Uint8Array([...khosprs1Bytes([{ phys: 0, data: page }]), 1, 2, 3]), "file.trailing-bytes", 16 + 16 + PAGE_SIZE],
    ["truncated inside a record header", khosprs1Bytes([{ phys: 0, data: page }]).subarray(0, 20), "count.too-large", 8],
    ["truncated after a record", khosprs1Bytes([{ phys: 0, data: page }], 2).subarray(0, 16 + 16 + PAGE_SIZE + 20), "range.truncated", 16 + 16 + PAGE_SIZE],
  ];
  for (const [name, bytes, rule, offset] of cases) {
    it(`rejects ${name} (${rule})`, () => {
      expectFormatError(() => SparsePagesImage.open(writeTemp(tmp.dir, `bad-${rule}-${name.replace(/\W+/g, "-")}.sprs`, bytes)), "khosprs1", rule, offset);
    });
  }

  it("accepts adjacent (unmerged) ranges and an empty image", () => {
    const img = SparsePagesImage.open(writeTemp(tmp.dir, "adjacent.sprs", two(0, PAGE_SIZE)));
    try {
      expect(img.ranges).toEqual([{ start: 0, size: 2 * PAGE_SIZE }]);
      expect(img.contains(0, 2 * PAGE_SIZE)).toBe(true);
    } finally {
      img.close();
    }
    const empty = SparsePagesImage.open(writeTemp(tmp.dir, "empty.sprs", khosprs1Bytes([])));
    expect(empty.ranges).toEqual([]);
    expect(empty.contains(0, 0)).toBe(false);
    empty.close();
  });
});
