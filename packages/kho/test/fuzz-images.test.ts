/**
 * Seeded mutation fuzzing of the image readers and the root-FDT search: every mutated file
 * either opens and reads consistently or fails with a FormatError/KernelError; nothing
 * throws anything else, nothing hangs, and what an opened image may make a search read is
 * bounded by its file size.
 *
 * FUZZ_SECONDS (default 5) is the total budget, shared by the three formats; FUZZ_SEED
 * picks the sequence (printed on failure, so a failing case can be replayed).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PAGE_SIZE } from "../src/abi.js";
import { FormatError, KernelError } from "../src/errors.js";
import { PhysicalMemory } from "../src/memory.js";
import { ElfCoreImage, elfCoreChunks } from "../src/image/elf-core.js";
import type { FileImage } from "../src/image/file-image.js";
import { findKhoFdt, readKhoFdtAt } from "../src/image/find-fdt.js";
import { RawDumpImage } from "../src/image/raw-dump.js";
import { SparsePagesImage } from "../src/image/sparse-pages.js";
import { khosprs1OfMemory, layOutX86Handover, prng, tempDir } from "./support/image-builders.js";

const SECONDS = Number(process.env["FUZZ_SECONDS"] ?? 5);
const SEED = Number(process.env["FUZZ_SEED"] ?? 0x6b686f);
const PER_TARGET_MS = (SECONDS * 1000) / 3;
const MiB = 1024 * 1024;

const tmp = tempDir("kho-fuzz");
afterAll(() => { tmp.cleanup(); });

/** A 2 MiB machine after kexec: an x86 handover, zero pages, poison background. */
function baseMachine(): { m: PhysicalMemory; hot: Array<[number, number]> } {
  const m = new PhysicalMemory([{ start: 0, size: 640 * 1024 }, { start: MiB, size: MiB }], "poison");
  const l = layOutX86Handover(m, { bootParams: MiB + 0x40000, fdtAddr: 0x20000 });
  m.zero(MiB + 0x10000, 3 * PAGE_SIZE);
  m.write(MiB + 0x14000, new Uint8Array(PAGE_SIZE).fill(0x42));
  // Byte ranges (phys) holding the structures a mutation should hit most.
  const hot: Array<[number, number]> = [
    [l.bootParams + 0x1f0, 0x70],
    [l.rngSeed, 48],
    [l.khoData, 48],
    [l.fdtAddr, l.fdt.length],
  ];
  return { m, hot };
}

const INTERESTING_U64 = [0n, 1n, 0xfffn, 0x1000n, 0x7fffffffn, 0xffffffffn, 1n << 32n, 1n << 52n, (1n << 53n) - 1n, 1n << 53n, 1n << 63n, (1n << 64n) - 1n];

/** One random mutation of `src`; `hot` are file byte ranges to favour. */
function mutate(src: Buffer, hot: ReadonlyArray<[number, number]>, rand: () => number): Buffer {
  let b = Buffer.from(src);
  const pick = (): number => {
    if (hot.length > 0 && rand() < 0.8) {
      const [start, len] = hot[Math.floor(rand() * hot.length)]!;
      return Math.min(b.length - 1, start + Math.floor(rand() * len));
    }
    return Math.floor(rand() * b.length);
  };
  const ops = 1 + Math.floor(rand() * 3);
  for (let k = 0; k < ops && b.length > 0; k++) {
    const op = Math.floor(rand() * 6);
    const at = pick();
    if (op === 0) b[at] = Math.floor(rand() * 256);
    else if (op === 1) b[at]! ^= 1 << Math.floor(rand() * 8);
    else if (op === 2 && at + 8 <= b.length) {
      const base = INTERESTING_U64[Math.floor(rand() * INTERESTING_U64.length)]!;
      const v = rand() < 0.3 ? BigInt(src.length + Math.floor(rand() * 64) - 32) & ((1n << 64n) - 1n) : base;
      b.writeBigUInt64LE(v, at & ~7);
    } else if (op === 3 && at + 4 <= b.length) b.writeUInt32LE(Math.floor(rand() * 2 ** 32), at & ~3);
    else if (op === 4) b = b.subarray(0, Math.floor(rand() * b.length));
    else b = Buffer.concat([b, Buffer.alloc(Math.floor(rand() * 64), Math.floor(rand() * 256))]);
  }
  return b;
}

/** Open, read, search: the properties every mutated image must keep. */
function exercise(open: () => FileImage, rand: () => number): "rejected" | "opened" | "found" {
  let img: FileImage;
  try {
    img = open();
  } catch (e) {
    if (e instanceof FormatError || e instanceof KernelError) return "rejected";
    throw e;
  }
  try {
    const dataBytes = img.dataRanges.reduce((n, r) => n + r.size, 0);
    expect(dataBytes).toBeLessThanOrEqual(img.fileSize);
    // Reads inside the image succeed; right after a range they fail with EFAULT.
    for (let k = 0; k < 4 && img.ranges.length > 0; k++) {
      const r = img.ranges[Math.floor(rand() * img.ranges.length)]!;
      const off = Math.floor(rand() * r.size);
      const len = Math.min(r.size - off, Math.floor(rand() * 3 * PAGE_SIZE));
      expect(img.contains(r.start + off, len)).toBe(true);
      img.read(r.start + off, len);
      expect(img.contains(r.start + r.size, 1)).toBe(false);
    }
    const before = img.readStats.bytes;
    let found;
    try {
      found = findKhoFdt(img);
    } catch (e) {
      if (e instanceof FormatError || e instanceof KernelError) return "opened";
      throw e;
    }
    // The search read at most twice the file (see find-fdt.ts) plus a few pages of chains.
    expect(img.readStats.bytes - before).toBeLessThanOrEqual(2 * img.fileSize + 64 * PAGE_SIZE);
    expect(Buffer.from(readKhoFdtAt(img, found.fdtAddr, found.fdt.length)).equals(Buffer.from(found.fdt))).toBe(true);
    return "found";
  } finally {
    img.close();
  }
}

function run(name: string, seed: number, base: Buffer, hot: ReadonlyArray<[number, number]>, open: (p: string) => FileImage): void {
  const rand = prng(seed);
  const file = path.join(tmp.dir, `${name}.bin`);
  const counts = { rejected: 0, opened: 0, found: 0 };
  // The unmutated image must be found: the fuzz starts from a meaningful input.
  fs.writeFileSync(file, base);
  expect(exercise(() => open(file), rand)).toBe("found");
  const deadline = performance.now() + PER_TARGET_MS;
  let iteration = 0;
  while (performance.now() < deadline) {
    const mutated = mutate(base, hot, rand);
    fs.writeFileSync(file, mutated);
    const t = performance.now();
    try {
      counts[exercise(() => open(file), rand)]++;
    } catch (e) {
      throw new Error(`${name}: FUZZ_SEED=${SEED} iteration ${iteration}: ${String(e)}`, { cause: e });
    }
    expect(performance.now() - t, `${name} iteration ${iteration} took too long`).toBeLessThan(2000);
    iteration++;
  }
  // Both outcomes happen: the mutations reach the validation and get past it.
  expect(counts.rejected + counts.opened).toBeGreaterThan(0);
  expect(counts.found).toBeGreaterThan(0);
  console.log(`fuzz ${name}: ${iteration} iterations`, counts);
}

describe(`image fuzz (${SECONDS} s, seed ${SEED})`, () => {
  const { m, hot } = baseMachine();

  it("ELF core", () => {
    const core = Buffer.concat([...elfCoreChunks(m)]);
    // Favour the headers and notes (everything before the first page of data).
    const headerEnd = Number(core.readBigUInt64LE(64 + 56 + 8));
    run("elf-core", SEED, core, [[0, Math.min(headerEnd, core.length)]], (p) => ElfCoreImage.open(p));
  });

  it("KHOSPRS1", () => {
    const sparse = Buffer.from(khosprs1OfMemory(m, m.dataPfns()));
    // Record headers: walk the valid file once to find them.
    const headers: Array<[number, number]> = [[0, 16]];
    for (let at = 16; at < sparse.length; ) {
      headers.push([at, 16]);
      at += 16 + Number(sparse.readBigUInt64LE(at + 8));
    }
    run("khosprs1", SEED + 1, sparse, headers, (p) => SparsePagesImage.open(p));
  });

  it("raw dump with an x86 handover", () => {
    const end = m.ranges.reduce((e, r) => Math.max(e, r.start + r.size), 0);
    const raw = Buffer.alloc(end);
    for (const r of m.ranges) raw.set(m.read(r.start, r.size), r.start);
    run("raw-dump", SEED + 2, raw, hot, (p) => RawDumpImage.open(p));
  });
});
