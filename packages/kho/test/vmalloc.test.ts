import { describe, expect, it } from "vitest";
import { KHO_VMALLOC_ALLOC, KHO_VMALLOC_CHUNK_ENTRIES, KHO_VMALLOC_HUGE_VMAP, PAGE_SIZE } from "../src/abi.js";
import { FormatError, KernelError } from "../src/errors.js";
import { Machine } from "../src/machine.js";
import { PhysicalMemory } from "../src/memory.js";
import { SparsePagesImage } from "../src/image/sparse-pages.js";
import {
  allocVmallocArea,
  decodeKhoVmalloc,
  encodeKhoVmalloc,
  preserveVmalloc,
  readVmalloc,
  readVmallocArea,
  restoreVmalloc,
  unpreserveVmalloc,
  type KhoVmalloc,
} from "../src/vmalloc.js";
import { FakeKho, FakeRestorer, withoutStampReader } from "./support/fake-kho.js";
import { REAL_KERNEL_CASES, goldenFile, goldenJson } from "./support/golden-images.js";

const MEM_START = 16 << 20; // FakeKho's default memory: 64 MiB at 16 MiB

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
}

function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed + i * 13 + (i >> 12) * 7) & 0xff;
  return out;
}

/** Byte equality without a deep-equal walk of megabytes. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

/** Runs `fn`, expects a `FormatError("kho-vmalloc")` with `rule`; returns it. */
function expectFormatError(fn: () => unknown, rule: string): FormatError {
  const err = caught(fn);
  expect(err).toBeInstanceOf(FormatError);
  const fe = err as FormatError;
  expect({ format: fe.format, rule: fe.rule, errno: fe.errno }).toEqual({ format: "kho-vmalloc", rule, errno: "EINVAL" });
  return fe;
}

function writeU64(memory: PhysicalMemory, phys: number, value: number | bigint): void {
  memory.writeU64(phys, value);
}

/** A preserved area of `runs` order-`order` runs holding a pattern, handed over by a fake kexec. */
function handedOver(runs = 3, order = 0): { next: FakeRestorer; descriptor: Uint8Array; d: KhoVmalloc; bytes: Uint8Array; chunk: number } {
  const kho = new FakeKho();
  const bytes = pattern(runs * 2 ** order * PAGE_SIZE);
  const area = allocVmallocArea(kho, bytes, order);
  const descriptor = preserveVmalloc(kho, area);
  const d = decodeKhoVmalloc(descriptor);
  return { next: kho.kexec(), descriptor, d, bytes, chunk: d.first };
}

describe("kho_vmalloc layout", () => {
  it("writes the 16-byte descriptor and the chunk page byte for byte", () => {
    const kho = new FakeKho();
    const runs = [0x1100000, 0x1234000, 0x2000000];
    const descriptor = preserveVmalloc(kho, { runs, order: 0 });
    // The first allocation of the fake is the first page of memory: the chunk.
    expect(descriptor).toEqual(hex("0000000100000000 03000000 0100 0000"));
    const chunk = kho.memory.read(MEM_START, PAGE_SIZE);
    const expected = new Uint8Array(PAGE_SIZE);
    expected.set(hex("0000000000000000 0000100100000000 0040230100000000 0000000200000000"), 0);
    expect(chunk).toEqual(expected);
    // The chunk page and every run are preserved as order-0 pages; nothing else.
    expect([...kho.preserved].sort((a, b) => a[0] - b[0])).toEqual([
      [MEM_START / PAGE_SIZE, 0],
      [0x1100, 0],
      [0x1234, 0],
      [0x2000, 0],
    ]);
  });

  it("encodes and decodes descriptors, little-endian, with u64 addresses above 4 GiB", () => {
    const d: KhoVmalloc = { first: 0xa_bcde_f000, totalPages: 0xfedc_ba98, flags: 3, order: 9 };
    const bytes = encodeKhoVmalloc(d);
    expect(bytes).toEqual(hex("00f0debc0a000000 98badcfe 0300 0900"));
    expect(decodeKhoVmalloc(bytes)).toEqual(d);
    const into = new Uint8Array(24);
    encodeKhoVmalloc(d, into, 8);
    expect(decodeKhoVmalloc(into, 8)).toEqual(d);
    expectFormatError(() => decodeKhoVmalloc(bytes.subarray(0, 15)), "descriptor-size");
    expectFormatError(() => decodeKhoVmalloc(hex("0000000000001000 01000000 0100 0000")), "chunk-pointer");
  });

  it("starts a new chunk whenever one fills: 511 runs leave an empty second chunk", () => {
    for (const [count, entriesPerChunk] of [
      [510, [510]],
      [511, [511, 0]],
      [512, [511, 1]],
      [1022, [511, 511, 0]],
    ] as const) {
      const kho = new FakeKho();
      const runs = Array.from({ length: count }, (_, i) => 0x1400000 + i * PAGE_SIZE);
      const layout = readVmalloc(kho.memory, preserveVmalloc(kho, { runs, order: 0 }));
      expect(layout.chunks.length).toBe(entriesPerChunk.length);
      expect([...layout.runs]).toEqual(runs);
      // Each chunk's next link, and its zero terminator right after its last entry.
      for (const [i, chunk] of layout.chunks.entries()) {
        expect(kho.memory.readU64Number(chunk)).toBe(layout.chunks[i + 1] ?? 0);
        const n = entriesPerChunk[i]!;
        if (n < KHO_VMALLOC_CHUNK_ENTRIES) expect(kho.memory.readU64Number(chunk + 8 + n * 8)).toBe(0);
      }
      expect(kho.preserved.size).toBe(count + entriesPerChunk.length);
    }
  });

  it("preserves huge-vmap runs with their order", () => {
    const kho = new FakeKho();
    const runs = [0x1200000, 0x1600000];
    const d = decodeKhoVmalloc(preserveVmalloc(kho, { runs, order: 9, flags: KHO_VMALLOC_ALLOC | KHO_VMALLOC_HUGE_VMAP }));
    expect(d).toEqual({ first: MEM_START, totalPages: 1024, flags: 3, order: 9 });
    expect(kho.preserved.get(0x1200)).toBe(9);
    expect(kho.preserved.get(0x1600)).toBe(9);
  });
});

describe("kho_vmalloc preserve errors roll back", () => {
  it("refuses bad areas before touching anything", () => {
    const kho = new FakeKho();
    const err = (area: Parameters<typeof preserveVmalloc>[1]) => caught(() => preserveVmalloc(kho, area)) as KernelError;
    expect(err({ runs: [0x1100000], order: 0, flags: 4 }).errno).toBe("EOPNOTSUPP");
    expect(err({ runs: [0x1100000], order: 11 }).errno).toBe("EINVAL");
    expect(err({ runs: [], order: 0 }).errno).toBe("EINVAL");
    expect(err({ runs: [0], order: 0 }).errno).toBe("EINVAL");
    expect(err({ runs: [0x1100001], order: 0 }).errno).toBe("EINVAL");
    expect(err({ runs: new Array<number>(2 ** 23).fill(0x1100000), order: 9 }).errno).toBe("EINVAL"); // 2^32 pages
    expect(kho.preserved.size).toBe(0);
    expect(kho.allocated.size).toBe(0);
  });

  it("unpreserves everything and frees the chunks when a run is in scratch", () => {
    const kho = new FakeKho({ scratch: [{ start: 0x3000000, size: 0x100000 }] });
    const runs = [...Array.from({ length: 600 }, (_, i) => 0x1400000 + i * PAGE_SIZE), 0x3000000];
    const e = caught(() => preserveVmalloc(kho, { runs, order: 0 })) as KernelError;
    expect(e).toBeInstanceOf(KernelError);
    expect(e.errno).toBe("EINVAL");
    expect(kho.preserved.size).toBe(0);
    expect(kho.allocated.size).toBe(0);
  });

  it("reports ENOMEM when a chunk cannot be allocated, and rolls back", () => {
    const kho = new FakeKho();
    kho.limitAllocations(1); // the first chunk only
    const runs = Array.from({ length: 512 }, (_, i) => 0x1400000 + i * PAGE_SIZE);
    expect((caught(() => preserveVmalloc(kho, { runs, order: 0 })) as KernelError).errno).toBe("ENOMEM");
    expect(kho.preserved.size).toBe(0);
    expect(kho.allocated.size).toBe(0);
  });

  it("unpreserveVmalloc undoes a preservation", () => {
    const kho = new FakeKho();
    const area = allocVmallocArea(kho, pattern(5 * PAGE_SIZE));
    const before = kho.allocated.size;
    const descriptorPhys = kho.allocPreserve(16);
    preserveVmalloc(kho, area, descriptorPhys);
    expect(kho.allocated.size).toBe(before + 2);
    unpreserveVmalloc(kho, descriptorPhys);
    expect([...kho.preserved.keys()]).toEqual([descriptorPhys / PAGE_SIZE]);
    expect(kho.allocated.size).toBe(before + 1);
  });
});

describe("kho_vmalloc round trip through kexec", () => {
  it("restores the runs, the flags, the order and the contents; consumes exactly its stamps", () => {
    const kho = new FakeKho();
    const bytes = pattern(3 * PAGE_SIZE + 100);
    const area = allocVmallocArea(kho, bytes);
    const other = kho.allocPreserve(PAGE_SIZE); // someone else's preserved page
    const descriptorPhys = kho.allocPreserve(16);
    preserveVmalloc(kho, area, descriptorPhys);
    const next = kho.kexec();
    const restored = restoreVmalloc(next, descriptorPhys);
    expect([...restored.runs]).toEqual(Array.from(area.runs));
    expect({ order: restored.order, flags: restored.flags, totalPages: restored.totalPages }).toEqual({ order: 0, flags: KHO_VMALLOC_ALLOC, totalPages: 4 });
    const contents = readVmallocArea(next.memory, restored, restored.totalPages);
    expect(contents.subarray(0, bytes.length)).toEqual(bytes);
    expect(contents.subarray(bytes.length).every((b) => b === 0)).toBe(true);
    // Left: the descriptor's page and the other page. The chunk page was freed.
    expect([...next.stamps.keys()].sort()).toEqual([other / PAGE_SIZE, descriptorPhys / PAGE_SIZE].sort());
    expect(next.freed.size).toBe(1);
    // A second restore of the same area fails: the stamps are gone.
    expectFormatError(() => restoreVmalloc(next, descriptorPhys), "not-preserved");
  });

  it("round-trips 2000 huge runs over several chunks, in a memory with holes", () => {
    const kho = new FakeKho({ ranges: [{ start: 1 << 20, size: 15 << 20 }, { start: 2 ** 32, size: 8 * 2 ** 30 }] });
    const runs = Array.from({ length: 2000 }, (_, i) => 2 ** 32 + ((i * 7919) % 4000) * 0x200000);
    const descriptor = preserveVmalloc(kho, { runs, order: 9, flags: KHO_VMALLOC_HUGE_VMAP });
    const next = kho.kexec();
    const restored = restoreVmalloc(next, descriptor);
    expect([...restored.runs]).toEqual(runs);
    expect(restored.totalPages).toBe(2000 * 512);
    expect(next.stamps.size).toBe(0);
  });
});

describe("kho_vmalloc hostile images: a typed error each, and nothing changes", () => {
  /** Corrupt, expect the rule, check the stamps are untouched, undo, restore works. */
  function hostile(
    rule: string,
    corrupt: (img: ReturnType<typeof handedOver>) => unknown, // a new descriptor, or nothing
    setup: () => ReturnType<typeof handedOver> = () => handedOver(),
  ): FormatError {
    const img = setup();
    const chunkBefore = img.next.memory.read(img.chunk, PAGE_SIZE);
    const stampsBefore = new Map(img.next.stamps);
    const changed = corrupt(img);
    const descriptor = changed instanceof Uint8Array ? changed : img.descriptor;
    const err = expectFormatError(() => restoreVmalloc(img.next, descriptor), rule);
    expect(img.next.stamps).toEqual(stampsBefore);
    img.next.memory.write(img.chunk, chunkBefore);
    const restored = restoreVmalloc(img.next, img.descriptor);
    expect(sameBytes(readVmallocArea(img.next.memory, restored), img.bytes)).toBe(true);
    return err;
  }
  let extra = 0;
  const withFields = (d: KhoVmalloc, fields: Partial<KhoVmalloc>): Uint8Array => encodeKhoVmalloc({ ...d, ...fields });

  it("unknown flag bits", () => {
    hostile("flags", ({ d }) => withFields(d, { flags: 0x5 }));
    hostile("flags", ({ d }) => withFields(d, { flags: 0x8000 }));
  });

  it("total_pages that the runs do not add up to", () => {
    hostile("empty-area", ({ d }) => withFields(d, { totalPages: 0 }));
    hostile("too-few-pages", ({ d }) => withFields(d, { totalPages: d.totalPages + 1 }));
    hostile("too-many-pages", ({ d }) => withFields(d, { totalPages: d.totalPages - 1 }));
    hostile("too-few-pages", ({ d }) => withFields(d, { totalPages: 0xffff_ffff }));
    hostile("too-many-pages", ({ d }) => withFields(d, { order: 1 }));
    hostile("too-many-pages", ({ d }) => withFields(d, { order: 0xffff }));
    hostile("too-few-pages", ({ d }) => withFields(d, { first: 0 }));
  });

  it("cycles and over-long chains of chunks", () => {
    let linkAt = 0;
    const cycle = hostile("chunk-cycle", ({ next, d, chunk }) => {
      writeU64(next.memory, chunk, chunk);
      linkAt = chunk;
      return withFields(d, { totalPages: d.totalPages * 4 });
    });
    expect(cycle.offset).toBe(linkAt); // the next link that closes the cycle
    // A chain of empty chunks longer than total_pages / 511 + 1, each a real preserved page.
    hostile(
      "chunk-chain-too-long",
      ({ next, chunk }) => {
        writeU64(next.memory, chunk, extra);
      },
      () => {
        const kho = new FakeKho();
        const bytes = pattern(3 * PAGE_SIZE);
        const descriptor = preserveVmalloc(kho, allocVmallocArea(kho, bytes));
        extra = kho.allocPreserve(PAGE_SIZE);
        const d = decodeKhoVmalloc(descriptor);
        return { next: kho.kexec(), descriptor, d, bytes, chunk: d.first };
      },
    );
  });

  it("chunk pointers outside memory, unaligned, or beyond 52 bits", () => {
    hostile("chunk-pointer", ({ next, chunk }) => { writeU64(next.memory, chunk, 0x1000); });
    hostile("chunk-pointer", ({ next, chunk }) => { writeU64(next.memory, chunk, 0x5000000); });
    hostile("chunk-alignment", ({ next, chunk }) => { writeU64(next.memory, chunk, MEM_START + 8); });
    hostile("chunk-pointer", ({ next, chunk }) => { writeU64(next.memory, chunk, 2n ** 52n); });
    hostile("chunk-pointer", ({ d }) => withFields(d, { first: 2 ** 40 }));
    // A link to a page nobody preserved: after kexec it is poison, and so are its "entries".
    const poisoned = hostile("run-pointer", ({ next, chunk, d }) => {
      writeU64(next.memory, chunk, MEM_START + 0x100000);
      return withFields(d, { totalPages: 600 }); // room for a second chunk
    });
    expect(poisoned.offset).toBe(MEM_START + 0x100000 + 8);
  });

  it("run pointers outside memory, unaligned, beyond 52 bits, or straddling the end of memory", () => {
    hostile("run-pointer", ({ next, chunk }) => { writeU64(next.memory, chunk + 16, 0x8000); });
    hostile("run-alignment", ({ next, chunk }) => { writeU64(next.memory, chunk + 16, MEM_START + 0x10); });
    hostile("run-pointer", ({ next, chunk }) => { writeU64(next.memory, chunk + 16, 0xffff_ffff_ffff_f000n); });
    hostile(
      "run-pointer",
      ({ next, chunk }) => { writeU64(next.memory, chunk + 8, 0x5000000 - 0x100000); },
      () => handedOver(2, 9),
    );
  });

  it("a page listed twice, as two runs or as a run and a chunk", () => {
    hostile("overlap", ({ next, chunk }) => { next.memory.write(chunk + 24, next.memory.read(chunk + 8, 8)); });
    hostile("overlap", ({ next, chunk }) => { writeU64(next.memory, chunk + 16, chunk); });
    hostile(
      "overlap",
      ({ next, chunk }) => { writeU64(next.memory, chunk + 16, next.memory.readU64Number(chunk + 8)! + 0x100000); },
      () => handedOver(2, 9),
    );
  });

  it("a run that was not preserved (no KHOP stamp)", () => {
    const err = hostile("not-preserved", ({ next, chunk }) => { writeU64(next.memory, chunk + 8, MEM_START + 0x200000); });
    expect(err.offset).toBe(MEM_START + 0x200000);
    // A restorer that cannot look ahead still fails with a typed error (the restorer's own).
    const img = handedOver();
    writeU64(img.next.memory, img.chunk + 8, MEM_START + 0x200000);
    const e = caught(() => restoreVmalloc(withoutStampReader(img.next), img.descriptor));
    expect(e).toBeInstanceOf(KernelError);
  });

  it("descriptors that are short or not in memory", () => {
    const img = handedOver();
    expectFormatError(() => restoreVmalloc(img.next, img.descriptor.subarray(0, 8)), "descriptor-size");
    expectFormatError(() => restoreVmalloc(img.next, 0x100), "descriptor-pointer");
    expect(restoreVmalloc(img.next, img.descriptor).totalPages).toBe(3);
  });

  it("a claimed 2^32 - 1 pages costs what was read, not what was claimed", () => {
    const img = handedOver(600);
    const d = encodeKhoVmalloc({ ...img.d, totalPages: 0xffff_ffff });
    const t0 = performance.now();
    const heapBefore = process.memoryUsage().arrayBuffers;
    expectFormatError(() => restoreVmalloc(img.next, d), "too-few-pages");
    expect(process.memoryUsage().arrayBuffers - heapBefore).toBeLessThan(64 << 20);
    expect(performance.now() - t0).toBeLessThan(3000); // hang guard
  });
});

describe("kho_vmalloc in the real Linux 7.2 handover images", () => {
  interface DecodedChunk {
    pa: number;
    next: number;
    phys: number[];
  }
  interface DecodedVmalloc {
    first: number;
    total_pages: number;
    flags: number;
    order: number;
    chunks: DecodedChunk[];
  }
  interface DecodedFile {
    manifest_name: string;
    data: number;
    memfd: { pa: number; nr_folios: number; folios_vmalloc: DecodedVmalloc; folios: { pfn: number; flags: number; index: number }[] };
  }
  interface Decoded {
    radix_tree: { preserved: [number, number][] };
    luo: { sessions: { files: DecodedFile[] }[] };
  }
  const MEMFD_SER_FOLIOS_OFFSET = 32; // memfd_luo_ser: pos, size, seals, flags, nr_folios, then kho_vmalloc
  const FOLIO_SER_SIZE = 16;

  for (const kase of REAL_KERNEL_CASES) {
    it(`reads every memfd folio array of case ${kase} as the reference decoder did, then restores it`, () => {
      const decoded = goldenJson(kase, "decoded.json") as Decoded;
      const files = decoded.luo.sessions.flatMap((s) => s.files).filter((f) => f.memfd.nr_folios > 0);
      const image = SparsePagesImage.open(goldenFile(kase, "handover-meta-pages.bin"));
      // The next kernel's memory: the image's pages, stamped from the radix map.
      const memory = new PhysicalMemory([{ start: 0, size: 1 << 30 }], "poison");
      for (const r of image.ranges) {
        const bytes = new Uint8Array(r.size);
        image.readInto(r.start, bytes);
        memory.write(r.start, bytes);
      }
      const next = new FakeRestorer(memory, new Map(decoded.radix_tree.preserved.map(([phys, order]) => [phys / PAGE_SIZE, order])));
      try {
        for (const file of files) {
          const want = file.memfd.folios_vmalloc;
          const at = file.memfd.pa + MEMFD_SER_FOLIOS_OFFSET;
          const layout = readVmalloc(image, at);
          expect(layout.descriptor).toEqual({ first: want.first, totalPages: want.total_pages, flags: want.flags, order: want.order });
          expect([...layout.chunks]).toEqual(want.chunks.map((c) => c.pa));
          expect([...layout.runs]).toEqual(want.chunks.flatMap((c) => c.phys));
          // The folio array the area holds: u64 pfn | flags << 52, u64 index.
          const restored = restoreVmalloc(next, at);
          const area = readVmallocArea(memory, restored);
          const view = new DataView(area.buffer);
          expect(area.length).toBeGreaterThanOrEqual(file.memfd.nr_folios * FOLIO_SER_SIZE);
          file.memfd.folios.forEach((folio, i) => {
            const word = view.getBigUint64(i * FOLIO_SER_SIZE, true);
            expect(Number(word & (2n ** 52n - 1n))).toBe(folio.pfn);
            expect(Number(word >> 52n)).toBe(folio.flags);
            expect(Number(view.getBigUint64(i * FOLIO_SER_SIZE + 8, true))).toBe(folio.index);
          });
        }
      } finally {
        image.close();
      }
    });
  }
});

describe("kho_vmalloc through the real Machine and kexec", () => {
  it("round-trips an area over three chunks, handed over through a KHO sub-tree", () => {
    const old = Machine.boot({ memory: "256 MiB" });
    const bytes = pattern(1100 * PAGE_SIZE + 123);
    const area = allocVmallocArea(old.kho, bytes);
    const descriptorPhys = old.kho.allocPreserve(16);
    preserveVmalloc(old.kho, area, descriptorPhys);
    old.kho.addSubtree("vmalloc-test", descriptorPhys, 16);
    const chunks = readVmalloc(old.memory, descriptorPhys).chunks;
    expect(chunks.length).toBe(3);
    for (const run of [...Array.from(area.runs), ...chunks]) expect(old.kho.isPreserved(run, 0)).toBe(true);

    const next = old.kexec();
    const { phys } = next.incoming.retrieveSubtree("vmalloc-test");
    const stamped = next.incoming.stampedCount;
    const restored = restoreVmalloc(next.incoming, phys);
    expect(Array.from(restored.runs)).toEqual(Array.from(area.runs));
    expect(stamped - next.incoming.stampedCount).toBe(area.runs.length + chunks.length);
    expect(sameBytes(readVmallocArea(next.memory, restored).subarray(0, bytes.length), bytes)).toBe(true);
    for (const chunk of chunks) expect(next.incoming.stampOf(chunk)).toBeUndefined();
    expect(next.incoming.stampOf(phys)?.order).toBe(0); // the descriptor's page is the caller's to restore
  });

  it("a failed restore leaves every stamp in place; the repaired image then restores", () => {
    const old = Machine.boot({ memory: "128 MiB" });
    const area = allocVmallocArea(old.kho, pattern(600 * PAGE_SIZE));
    const descriptor = preserveVmalloc(old.kho, area);
    const chunk = decodeKhoVmalloc(descriptor).first;
    const unpreserved = old.scratch[0]!.start; // scratch is memory nothing can preserve
    const next = old.kexec();
    const stamps = next.incoming.stampedRuns();
    const lastEntry = next.memory.read(chunk + 8 + 510 * 8, 8);
    next.memory.writeU64(chunk + 8 + 510 * 8, area.runs[0]!); // run 510 := run 0
    expectFormatError(() => restoreVmalloc(next.incoming, descriptor), "overlap");
    next.memory.writeU64(chunk + 8 + 510 * 8, unpreserved);
    expectFormatError(() => restoreVmalloc(next.incoming, descriptor), "not-preserved");
    expect(next.incoming.stampedRuns()).toEqual(stamps);
    next.memory.write(chunk + 8 + 510 * 8, lastEntry);
    expect(restoreVmalloc(next.incoming, descriptor).runs.length).toBe(600);
  });

  it("refuses a run inside scratch and leaves the preserved-memory map as it was", () => {
    const old = Machine.boot({ memory: "128 MiB" });
    const before = old.kho.preservedRuns();
    const runs = [old.kho.allocFolio(0), old.kho.allocFolio(0), old.scratch[0]!.start];
    const err = caught(() => preserveVmalloc(old.kho, { runs, order: 0 })) as KernelError;
    expect(err).toBeInstanceOf(KernelError);
    expect(err.errno).toBe("EINVAL");
    expect(old.kho.preservedRuns()).toEqual(before);
  });
});
