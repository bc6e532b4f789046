import { KHO_VMALLOC_ALLOC, Machine, PAGE_SIZE, FormatError } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import {
  FOLIO_DIRTY,
  FOLIO_UPTODATE,
  FolioContentsReader,
  MEMFD_LUO_FOLIO_DIRTY,
  MEMFD_LUO_FOLIO_UPTODATE,
  folioToRecordFlags,
  recordToFolioFlags,
  MEMFD_LUO_FOLIO_SER_SIZE,
  commitFolioRestore,
  decodeFolioRecord,
  encodeFolioRecord,
  folioRecordPhys,
  memfd,
  planFolioRestore,
  preserveFolioArray,
  preserveMemfdFolios,
  readFolioArray,
  unpreserveMemfdFolios,
  type PinnedFolios,
} from "../src/index.js";

const ctx = { format: "memfd-test", nrFoliosAt: 0x1000 };
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("memfd_luo_folio_ser", () => {
  it("its flag bits are the page cache's (the preserve path records folio flags as they are)", () => {
    expect([MEMFD_LUO_FOLIO_DIRTY, MEMFD_LUO_FOLIO_UPTODATE]).toEqual([FOLIO_DIRTY, FOLIO_UPTODATE]);
    expect([0, 1, 2, 3].map(recordToFolioFlags)).toEqual([0, 1, 2, 3]);
    expect([0, 1, 2, 3].map(folioToRecordFlags)).toEqual([0, 1, 2, 3]);
  });

  it("is 16 bytes: pfn in bits 0..51 and flags in 52..63 of word 0, index in word 1", () => {
    expect(MEMFD_LUO_FOLIO_SER_SIZE).toBe(16);
    // pfn 0x0_0012_3456_789a, flags 0xabc, index 0x1122334455 written out by hand (little-endian):
    // word 0 = 0xabc0_0123_4567_89a -> 9a 78 56 34 12 00 c0 ab ; word 1 = 55 44 33 22 11 00 00 00
    const bytes = encodeFolioRecord({ pfn: 0x123456789a, flags: 0xabc, index: 0x1122334455 });
    expect(hex(bytes)).toBe("9a78563412" + "00c0ab" + "5544332211000000");
    expect(decodeFolioRecord(bytes)).toEqual({ pfn: 0x123456789a, flags: 0xabc, index: 0x1122334455 });
    // The widest pfn (52 bits) with flags 3: word 0 = 0x003f_ffff_ffff_ffff.
    expect(hex(encodeFolioRecord({ pfn: 2 ** 52 - 1, flags: 3, index: 0 }))).toBe("ffffffffffff3f00" + "0000000000000000");
    expect(() => encodeFolioRecord({ pfn: 2 ** 52, flags: 0, index: 0 })).toThrow(/52 bits/);
    expect(() => encodeFolioRecord({ pfn: 1, flags: 0x1000, index: 0 })).toThrow(/12 bits/);
    expect(() => decodeFolioRecord(new Uint8Array(15))).toThrow(FormatError);
  });
});

function pinnedOf(machine: Machine, entries: Array<{ index: number; order: number }>): PinnedFolios {
  const n = entries.length;
  const pinned = { count: n, phys: new Float64Array(n), indices: new Float64Array(n), orders: new Uint8Array(n), flags: new Uint8Array(n) };
  entries.forEach((e, i) => {
    pinned.phys[i] = machine.kho.allocFolio(e.order);
    pinned.indices[i] = e.index;
    pinned.orders[i] = e.order;
    pinned.flags[i] = 3;
  });
  return pinned;
}

describe("the folio array over kho_vmalloc", () => {
  it("preserve writes n records in ceil(n / 256) pages, readFolioArray reads them back without consuming", () => {
    const m = Machine.boot({ memory: "256 MiB" });
    const entries = Array.from({ length: 600 }, (_, i) => ({ index: i, order: 0 }));
    const pinned = pinnedOf(m, entries);
    const flags = Uint8Array.from(entries, (_, i) => i % 4);
    const preserved = preserveFolioArray(m.kho, pinned, flags);
    expect(preserved.nrFolios).toBe(600);
    expect(preserved.area?.runs.length).toBe(3);
    const d = new DataView(preserved.descriptor.buffer);
    expect([d.getUint32(8, true), d.getUint16(12, true), d.getUint16(14, true)]).toEqual([3, KHO_VMALLOC_ALLOC, 0]);
    for (let i = 0; i < 600; i++) expect(m.kho.isPreserved(pinned.phys[i]!, 0)).toBe(true);
    const array = readFolioArray(m.memory, preserved.descriptor, 600, ctx);
    for (const i of [0, 255, 256, 599]) {
      expect([array.pfns[i], array.flags[i], array.indices[i]]).toEqual([pinned.phys[i]! / PAGE_SIZE, i % 4, i]);
      expect(hex(m.memory.read(folioRecordPhys(array, i), 16))).toBe(hex(encodeFolioRecord({ pfn: pinned.phys[i]! / PAGE_SIZE, flags: i % 4, index: i })));
    }
    expect(() => readFolioArray(m.memory, preserved.descriptor, 3 * 256 + 1, ctx)).toThrow(/nr_folios/);
  });

  it("a failure part-way undoes everything (a folio inside scratch cannot be preserved)", () => {
    const m = Machine.boot({ memory: "256 MiB" });
    const baseline = m.kho.preservedRuns().length;
    const free = m.allocator.freePages;
    const pinned = pinnedOf(m, [
      { index: 0, order: 0 },
      { index: 1, order: 0 },
    ]);
    pinned.phys[1] = m.scratch[0]!.start; // not preservable
    expect(() => preserveFolioArray(m.kho, pinned, [3, 3])).toThrow(/scratch/);
    expect(m.kho.preservedRuns().length).toBe(baseline);
    expect(m.allocator.freePages).toBe(free - 2);
  });

  it("preserveMemfdFolios / unpreserveMemfdFolios pin and unpin the file", () => {
    const m = Machine.boot({ memory: "256 MiB" });
    const f = memfd.create(m, { name: "p" });
    f.truncate(3 * PAGE_SIZE);
    const preserved = preserveMemfdFolios(f, m.kho, { markDirtyUptodate: false });
    expect([preserved.nrFolios, f.pinCount]).toEqual([3, 1]);
    unpreserveMemfdFolios(f, m.kho, preserved);
    expect(f.pinCount).toBe(0);
  });
});

describe("restore planning", () => {
  /** A preserved array whose folios are allocated in descending physical order, as Linux's were in the golden image. */
  function descending(count: number): { next: Machine; descriptor: Uint8Array; recordPhys: number; phys: number[] } {
    const m = Machine.boot({ memory: "256 MiB" });
    const entries = Array.from({ length: count }, (_, i) => ({ index: i, order: 0 }));
    const pinned = pinnedOf(m, entries);
    pinned.phys.reverse();
    for (let i = 0; i < count; i++) m.memory.write(pinned.phys[i]!, new Uint8Array(PAGE_SIZE).fill(i + 1));
    const preserved = preserveFolioArray(m.kho, pinned, new Uint8Array(count).fill(3));
    const recordPhys = m.kho.allocPreserve(48);
    return { next: m.kexec(), descriptor: preserved.descriptor, recordPhys, phys: [...pinned.phys] };
  }

  it("accepts folios in any physical order and commits them into a file", () => {
    const { next, descriptor, recordPhys, phys } = descending(40);
    const array = readFolioArray(next.memory, descriptor, 40, ctx);
    const plan = planFolioRestore(next.incoming, array, recordPhys, ctx);
    const f = memfd.create(next, { name: "" });
    commitFolioRestore(next, plan, f);
    f.restoreSize(40 * PAGE_SIZE);
    const data = f.pread(0, 40 * PAGE_SIZE);
    for (let i = 0; i < 40; i++) expect(data[i * PAGE_SIZE]).toBe(i + 1);
    expect(f.folios().map((x) => x.phys)).toEqual(phys);
  });

  it("finds a duplicate among unsorted records (the sorted path), and reports the later record", () => {
    const { next, descriptor, recordPhys, phys } = descending(10);
    const array = readFolioArray(next.memory, descriptor, 10, ctx);
    next.memory.write(folioRecordPhys(array, 7), encodeFolioRecord({ pfn: phys[2]! / PAGE_SIZE, flags: 3, index: 7 }));
    const again = readFolioArray(next.memory, descriptor, 10, ctx);
    try {
      planFolioRestore(next.incoming, again, recordPhys, ctx);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(FormatError);
      const e = error as FormatError;
      expect([e.format, e.rule, e.errno, e.offset]).toEqual(["memfd-test", "folio-duplicate", "EIO", folioRecordPhys(array, 7)]);
    }
  });

  it("a folio covering the array's own page is refused, also when every record comes ascending", () => {
    const m = Machine.boot({ memory: "256 MiB" });
    const pinned = pinnedOf(m, Array.from({ length: 8 }, (_, i) => ({ index: i, order: 0 })));
    const preserved = preserveFolioArray(m.kho, pinned, new Uint8Array(8).fill(3));
    const arrayPage = preserved.area!.runs[0]!;
    expect(arrayPage).toBeGreaterThan(pinned.phys[7]!); // allocated after the folios: still ascending
    const recordPhys = m.kho.allocPreserve(48);
    const next = m.kexec();
    const array = readFolioArray(next.memory, preserved.descriptor, 8, ctx);
    next.memory.write(folioRecordPhys(array, 7), encodeFolioRecord({ pfn: arrayPage / PAGE_SIZE, flags: 3, index: 7 }));
    const hostile = readFolioArray(next.memory, preserved.descriptor, 8, ctx);
    expect(() => planFolioRestore(next.incoming, hostile, recordPhys, ctx)).toThrow(/covers page/);
  });

  it("records with pfn 0 are skipped", () => {
    const { next, descriptor, recordPhys } = descending(4);
    const array = readFolioArray(next.memory, descriptor, 4, ctx);
    next.memory.write(folioRecordPhys(array, 1), new Uint8Array(16));
    const plan = planFolioRestore(next.incoming, readFolioArray(next.memory, descriptor, 4, ctx), recordPhys, ctx);
    const f = memfd.create(next, { name: "" });
    commitFolioRestore(next, plan, f);
    expect(f.folios().map((x) => x.index)).toEqual([0, 2, 3]);
  });
});

describe("FolioContentsReader", () => {
  it("infers extents from the next record when orders are unknown, and uses them when known", () => {
    const m = Machine.boot({ memory: "64 MiB" });
    const big = m.kho.allocFolio(2);
    const small = m.kho.allocFolio(0);
    m.memory.write(big, new Uint8Array(4 * PAGE_SIZE).fill(0x11));
    m.memory.write(small, new Uint8Array(PAGE_SIZE).fill(0x22));
    const array = { count: 2, pfns: Float64Array.of(big / PAGE_SIZE, small / PAGE_SIZE), flags: Uint16Array.of(3, 3), indices: Float64Array.of(0, 4), layout: undefined };
    const inferred = new FolioContentsReader(m.memory, array, 5 * PAGE_SIZE).read(0, 5 * PAGE_SIZE);
    expect(inferred.subarray(0, 4 * PAGE_SIZE).every((b) => b === 0x11)).toBe(true);
    expect(inferred.subarray(4 * PAGE_SIZE).every((b) => b === 0x22)).toBe(true);
    // A hole after an order-0 folio: with orders known it reads zeros.
    const sparse = { ...array, indices: Float64Array.of(0, 8) };
    const orders = new Map([
      [big, 2],
      [small, 0],
    ]);
    const known = new FolioContentsReader(m.memory, sparse, 9 * PAGE_SIZE, { orderOf: (p) => orders.get(p) }).read(0, 9 * PAGE_SIZE);
    expect(known.subarray(4 * PAGE_SIZE, 8 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(known.subarray(8 * PAGE_SIZE).every((b) => b === 0x22)).toBe(true);
    // Not UPTODATE: zeros.
    const stale = new FolioContentsReader(m.memory, { ...array, flags: Uint16Array.of(1, 3) }, 5 * PAGE_SIZE).read(0, PAGE_SIZE);
    expect(stale.every((b) => b === 0)).toBe(true);
    expect(() => new FolioContentsReader(m.memory, array, 5 * PAGE_SIZE).read(5 * PAGE_SIZE - 1, 2)).toThrow(/outside/);
  });
});
