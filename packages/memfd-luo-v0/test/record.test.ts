/**
 * The record across a real kexec of the kho model: seeded round trips (empty, sparse,
 * dense, huge folios), hostile records (each rule, with nothing consumed and the repaired
 * image retrieving afterwards), a broken preserve caught by the poison, finish of a
 * never-retrieved file, and the non-consuming decoder on an ELF core image.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FdtSequentialWriter } from "@liveupdate/fdt-codec";
import { ElfCoreImage, FormatError, Machine, PAGE_SIZE, POISON_BYTE, writeElfCore } from "@liveupdate/kho";
import { afterAll, describe, expect, it } from "vitest";
import {
  MEMFD_V0_FOLIOS_VALUE_OFFSET as DESC_AT,
  MEMFD_V0_ORDER_UNKNOWN,
  MEMFD_V0_POS_VALUE_OFFSET as POS_AT,
  MEMFD_V0_SIZE_VALUE_OFFSET as SIZE_AT,
  MemfdV0FolioTable,
  decodeMemfdV0,
  discardMemfdV0,
  encodeMemfdV0PostedFdt,
  memfdV0PostedFdtOrder,
  preserveMemfdV0,
  restoreMemfdV0,
  unpreserveMemfdV0,
  writeMemfdV0Pos,
  type MemfdV0Record,
} from "../src/index.js";
import { folioBytes, randomMemfd, type PlainMemfd } from "./support/folios.js";
import { u64le } from "./support/oracle.js";
import { Prng } from "./support/prng.js";

const tmp = mkdtempSync(join(tmpdir(), "memfd-v0-rec-"));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function expectSameFolios(record: MemfdV0Record, m: PlainMemfd, next: Machine, withOrder = true): void {
  expect(record.folios.length).toBe(m.folios.length);
  for (let i = 0; i < m.folios.length; i++) {
    expect(record.folios.index(i)).toBe(m.folios.index(i));
    expect(record.folios.pfn(i)).toBe(m.folios.pfn(i));
    expect(record.folios.flags(i)).toBe(m.folios.flags(i));
    expect(record.folios.order(i)).toBe(withOrder ? m.folios.order(i) : MEMFD_V0_ORDER_UNKNOWN);
    const { head, tail } = folioBytes(next, m.folios.pfn(i), m.folios.order(i));
    expect(head).toEqual(m.heads[i]);
    expect(tail).toEqual(m.tails[i]);
  }
}

describe("round trip across kexec", () => {
  it("random sizes, holes, orders, contents and positions come back exactly", () => {
    const rng = new Prng(0x0d0e);
    const shapes: Array<{ pages: () => number; holes: number; orders: number[] }> = [
      { pages: () => 0, holes: 0, orders: [0] },
      { pages: () => 1, holes: 0, orders: [0] },
      { pages: () => 1 + rng.int(3000), holes: 0, orders: [0] },
      { pages: () => 1 + rng.int(3000), holes: 0.9, orders: [0] },
      { pages: () => 1 + rng.int(3000), holes: 0.3, orders: [0, 0, 2, 4, 9] },
      { pages: () => 512 * (1 + rng.int(6)), holes: 0, orders: [9] },
      { pages: () => 100_000 + rng.int(200_000), holes: 0.995, orders: [0, 9] },
    ];
    for (let round = 0; round < 21; round++) {
      const shape = shapes[round % shapes.length]!;
      const old = Machine.boot({ memory: "256 MiB" });
      const m = randomMemfd(old, rng, shape.pages(), shape.holes, shape.orders);
      const preserved = preserveMemfdV0(old.kho, m);
      const newPos = rng.int(2 ** 45);
      writeMemfdV0Pos(old.memory, preserved.fdtPhys, newPos); // freeze
      const arrayPages = preserved.array.pageCount;
      const next = old.kexec();
      const stamped = next.incoming.stampedCount;
      const record = restoreMemfdV0(next.incoming, BigInt(preserved.fdtPhys));
      expect(record.variant).toBe("kho-array");
      expect(record.pos).toBe(newPos);
      expect(record.size).toBe(m.size);
      expect(record.fdtOrder).toBe(0);
      expect(record.arrayPages.length).toBe(arrayPages);
      expectSameFolios(record, m, next);
      // every page of the record reclaimed: folios kept, FDT and array pages freed
      expect(next.incoming.stampedCount).toBe(stamped - m.folios.length - arrayPages - 1);
      for (let i = 0; i < m.folios.length; i++) expect(next.allocator.isOwned(m.folios.pfn(i) * PAGE_SIZE, m.folios.order(i))).toBe(true);
      expect(next.allocator.isOwned(preserved.fdtPhys, 0)).toBe(false);
      // a second retrieve finds nothing
      expect(() => restoreMemfdV0(next.incoming, preserved.fdtPhys)).toThrow(expect.objectContaining({ errno: "ENOENT", rule: "fdt-missing" }));
    }
  });

  it("unpreserve leaves nothing preserved or allocated", () => {
    const rng = new Prng(7);
    const old = Machine.boot({ memory: "64 MiB" });
    const m = randomMemfd(old, rng, 1200, 0.2, [0, 2]);
    const runsBefore = old.kho.preservedRuns().length;
    // the map's node pages stay allocated once made (as in the kernel); everything else goes
    const ownedBefore = old.allocator.ownedFolios - old.kho.radix.nodePages().length;
    const preserved = preserveMemfdV0(old.kho, m);
    expect(old.kho.preservedRuns().length).toBe(runsBefore + m.folios.length + preserved.array.pageCount + 1);
    unpreserveMemfdV0(old.kho, preserved);
    expect(old.kho.preservedRuns().length).toBe(runsBefore);
    expect(old.allocator.ownedFolios - old.kho.radix.nodePages().length).toBe(ownedBefore);
  });

  it("a failed preserve (a folio inside scratch) undoes everything", () => {
    const rng = new Prng(8);
    const old = Machine.boot({ memory: "64 MiB" });
    const m = randomMemfd(old, rng, 300, 0, [0]);
    const scratch = old.scratch[0]!;
    const folios = MemfdV0FolioTable.from([...m.folios, { index: 300, pfn: scratch.start / PAGE_SIZE, flags: 3, order: 0 }]);
    const runsBefore = old.kho.preservedRuns().length;
    const ownedBefore = old.allocator.ownedFolios - old.kho.radix.nodePages().length;
    expect(() => preserveMemfdV0(old.kho, { pos: 0, size: 301 * PAGE_SIZE, folios })).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(old.kho.preservedRuns().length).toBe(runsBefore);
    expect(old.allocator.ownedFolios - old.kho.radix.nodePages().length).toBe(ownedBefore);
  });

  it("refuses contents it cannot describe", () => {
    const old = Machine.boot({ memory: "64 MiB" });
    const f = (list: Array<[number, number, number, number]>): MemfdV0FolioTable => MemfdV0FolioTable.from(list.map(([index, pfn, flags, order]) => ({ index, pfn, flags, order })));
    const p = old.kho.allocFolio(0) / PAGE_SIZE;
    expect(() => preserveMemfdV0(old.kho, { pos: 0, size: 2 ** 44, folios: f([]) })).toThrow(expect.objectContaining({ errno: "E2BIG" }));
    expect(() => preserveMemfdV0(old.kho, { pos: -1, size: 0, folios: f([]) })).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(() => preserveMemfdV0(old.kho, { pos: 0, size: 4096, folios: f([[1, p, 3, 0]]) })).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(() => preserveMemfdV0(old.kho, { pos: 0, size: 8192, folios: f([[0, p, 4, 0]]) })).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(() => preserveMemfdV0(old.kho, { pos: 0, size: 2 ** 23, folios: f([[0, p, 3, 10]]) })).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(() => preserveMemfdV0(old.kho, { pos: 0, size: 2 ** 23, folios: f([[2, p, 3, 1]]) })).toThrow(expect.objectContaining({ errno: "EINVAL" }));
  });
});

// ---- hostile records --------------------------------------------------------------------

interface Fixture {
  old: Machine;
  next: Machine;
  m: PlainMemfd;
  fdtPhys: number;
  arrayPages: number[];
  /** A preserved order-0 page the record does not use. */
  sparePfn: number;
  /** An order-0 page of the next machine's memory that is not preserved. */
  unpreservedPfn: number;
}

/** folios: 0 (o0), 1 (o0), hole 2-3, 4 (o2), 8 (o3), 16 (o0), 20 (o0); 24 pages. */
function fixture(extra?: (old: Machine, folios: MemfdV0FolioTable) => void): Fixture {
  const old = Machine.boot({ memory: "64 MiB" });
  const rng = new Prng(0xbad);
  const folios = new MemfdV0FolioTable();
  const heads: Uint8Array[] = [];
  const tails: Uint8Array[] = [];
  for (const [index, order] of [[0, 0], [1, 0], [4, 2], [8, 3], [16, 0], [20, 0]] as const) {
    const phys = old.kho.allocFolio(order);
    const head = rng.bytes(64);
    const tail = rng.bytes(64);
    old.memory.write(phys, head);
    old.memory.write(phys + 2 ** order * PAGE_SIZE - 64, tail);
    folios.push(index, phys / PAGE_SIZE, 3, order);
    heads.push(head);
    tails.push(tail);
  }
  const m: PlainMemfd = { pos: 12345, size: 24 * PAGE_SIZE - 100, folios, heads, tails };
  const preserved = preserveMemfdV0(old.kho, m);
  const spare = old.kho.allocPreserve(PAGE_SIZE);
  extra?.(old, folios);
  const next = old.kexec();
  return {
    old,
    next,
    m,
    fdtPhys: preserved.fdtPhys,
    arrayPages: Array.from(preserved.array.layout().pages),
    sparePfn: spare / PAGE_SIZE,
    unpreservedPfn: next.kho.allocFolio(0) / PAGE_SIZE,
  };
}

/** Physical address of the array entry for `index` (every fixture index is in the first page). */
function entryAt(fx: Fixture, index: number): number {
  return fx.arrayPages[0]! + 16 + index * 8;
}

function valueWord(pfn: number, flags: number): Uint8Array {
  return u64le(((BigInt(pfn) << 11n) | BigInt(flags)) * 2n + 1n);
}

/** A seed-variant FDT page with the given properties, in the given order. */
function fdtPage(props: Array<[string, Uint8Array]>): Uint8Array {
  const w = new FdtSequentialWriter(PAGE_SIZE);
  w.finishReservemap();
  w.beginNode("");
  for (const [name, value] of props) w.property(name, value);
  w.endNode();
  const blob = w.finish();
  return new Uint8Array(blob.buffer, 0, PAGE_SIZE);
}

function descriptorOf(fx: Fixture): Uint8Array {
  return fx.next.memory.read(fx.fdtPhys + DESC_AT, 16);
}

/** The order-10 folio the "order-10 folio" case preserved, per fixture. */
const bigFolio = new WeakMap<Machine, number>();

const hostile: Array<{
  name: string;
  rule: string;
  errno: string;
  data?: (fx: Fixture) => number | bigint;
  mutate?: (fx: Fixture) => void;
  extra?: (old: Machine, folios: MemfdV0FolioTable) => void;
}> = [
  { name: "data 0", rule: "fdt-missing", errno: "ENOENT", data: () => 0 },
  { name: "data not page-aligned", rule: "fdt-missing", errno: "ENOENT", data: (fx) => fx.fdtPhys + 8 },
  { name: "data beyond 2^53", rule: "fdt-missing", errno: "ENOENT", data: () => 1n << 60n },
  { name: "data beyond memory", rule: "fdt-missing", errno: "ENOENT", data: () => 2 ** 40 },
  { name: "data on a page that was not preserved", rule: "fdt-missing", errno: "ENOENT", data: (fx) => fx.unpreservedPfn * PAGE_SIZE },
  { name: "FDT magic", rule: "fdt", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys, Uint8Array.of(0xde, 0xad)); } },
  { name: "truncated FDT (totalsize 100)", rule: "fdt", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + 4, Uint8Array.of(0, 0, 0, 100)); } },
  { name: "FDT larger than its folio", rule: "fdt-size", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + 4, Uint8Array.of(0, 0, 0x20, 0)); } },
  { name: "struct token garbage", rule: "fdt", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + 140, Uint8Array.of(0, 0, 0, 7)); } },
  { name: "no folios", rule: "folios-missing", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys, fdtPage([["pos", u64le(1)], ["size", u64le(4096)]])); } },
  { name: "no size", rule: "size-missing", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys, fdtPage([["pos", u64le(1)], ["folios", descriptorOf(fx)]])); } },
  { name: "size of 4 bytes", rule: "size-length", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys, fdtPage([["pos", u64le(1)], ["size", new Uint8Array(4)], ["folios", descriptorOf(fx)]])); } },
  { name: "no pos", rule: "pos-missing", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys, fdtPage([["size", u64le(24 * 4096)], ["folios", descriptorOf(fx)]])); } },
  { name: "pos of 16 bytes", rule: "pos-length", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys, fdtPage([["pos", new Uint8Array(16)], ["size", u64le(24 * 4096)], ["folios", descriptorOf(fx)]])); } },
  { name: "folios of 20 bytes", rule: "folios-length", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys, fdtPage([["pos", u64le(1)], ["size", u64le(24 * 4096)], ["folios", new Uint8Array(20)]])); } },
  { name: "32-byte folios in an order-0 FDT", rule: "fdt-order", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys, fdtPage([["pos", u64le(1)], ["size", u64le(24 * 4096)], ["folios", new Uint8Array(32)]])); } },
  { name: "size of 2^32 pages", rule: "size-range", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + SIZE_AT, u64le(2n ** 44n)); } },
  { name: "size of 2^64 - 1", rule: "size-range", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + SIZE_AT, u64le(2n ** 64n - 1n)); } },
  { name: "pos just beyond the model's 2^52", rule: "pos-range", errno: "EOVERFLOW", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + POS_AT, u64le(2n ** 52n + 1n)); } },
  { name: "pos beyond 2^53", rule: "pos-range", errno: "EOVERFLOW", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + POS_AT, u64le(2n ** 60n)); } },
  { name: "KHO array magic", rule: "folios-array", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + DESC_AT, Uint8Array.of(0x52, 0x52, 0x41, 0x4c)); } },
  { name: "KHO array version", rule: "folios-array", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + DESC_AT + 4, Uint8Array.of(1)); } },
  { name: "KHO array first page outside memory", rule: "folios-array", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + DESC_AT + 8, u64le(2 ** 40)); } },
  { name: "KHO array page links to itself", rule: "folios-array", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.arrayPages[0]!, u64le(fx.arrayPages[0]!)); } },
  { name: "KHO array startpos not a multiple of 510", rule: "folios-array", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.arrayPages[0]! + 8, u64le(3)); } },
  {
    name: "KHO array page not preserved",
    rule: "array-page-not-preserved",
    errno: "EINVAL",
    mutate: (fx) => {
      fx.next.memory.write(fx.unpreservedPfn * PAGE_SIZE, fx.next.memory.read(fx.arrayPages[0]!, PAGE_SIZE));
      fx.next.memory.write(fx.fdtPhys + DESC_AT + 8, u64le(fx.unpreservedPfn * PAGE_SIZE));
    },
  },
  { name: "a pointer entry", rule: "folio-entry", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 2), u64le(0x1000)); } },
  { name: "unknown flag bits", rule: "folio-flags", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 0), valueWord(fx.m.folios.pfn(0), 3 | 0x20)); } },
  { name: "folio pointer outside memory", rule: "folio-pointer", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 1), valueWord(2 ** 30, 3)); } },
  { name: "folio pointer at 2^52 - 1", rule: "folio-pointer", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 1), valueWord(2 ** 52 - 1, 3)); } },
  { name: "folio not preserved", rule: "folio-not-preserved", errno: "EIO", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 20), valueWord(fx.unpreservedPfn, 3)); } },
  {
    name: "an order-10 folio",
    rule: "folio-order",
    errno: "EINVAL",
    extra: (old) => {
      const big = old.kho.allocFolio(10);
      old.kho.preserveFolio(big, 10);
      bigFolio.set(old, big);
    },
    mutate: (fx) => { fx.next.memory.write(entryAt(fx, 0), valueWord(bigFolio.get(fx.old)! / PAGE_SIZE, 3)); },
  },
  { name: "folio beyond size", rule: "folio-index", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(fx.fdtPhys + SIZE_AT, u64le(20 * 4096)); } },
  {
    name: "order-2 folio at an unaligned index",
    rule: "folio-alignment",
    errno: "EINVAL",
    mutate: (fx) => {
      fx.next.memory.write(entryAt(fx, 5), fx.next.memory.read(entryAt(fx, 4), 8));
      fx.next.memory.write(entryAt(fx, 4), new Uint8Array(8));
    },
  },
  { name: "a folio inside another's indices", rule: "folio-overlap", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 5), valueWord(fx.sparePfn, 3)); } },
  { name: "two entries, one folio", rule: "folio-duplicate", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 2), valueWord(fx.m.folios.pfn(0), 3)); } },
  { name: "a folio that is the FDT", rule: "folio-duplicate", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 2), valueWord(fx.fdtPhys / PAGE_SIZE, 3)); } },
  { name: "a folio that is the array page", rule: "folio-duplicate", errno: "EINVAL", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 2), valueWord(fx.arrayPages[0]! / PAGE_SIZE, 3)); } },
  { name: "a folio at a page inside another folio", rule: "folio-not-preserved", errno: "EIO", mutate: (fx) => { fx.next.memory.write(entryAt(fx, 2), valueWord(fx.m.folios.pfn(3) + 1, 3)); } },
  {
    name: "a folio inside another folio's pages (an overlapping run in the map)",
    rule: "folio-duplicate",
    errno: "EINVAL",
    extra: (old, folios) => {
      old.kho.preserveFolio((folios.pfn(3) + 1) * PAGE_SIZE, 0);
    },
    mutate: (fx) => { fx.next.memory.write(entryAt(fx, 2), valueWord(fx.m.folios.pfn(3) + 1, 3)); },
  },
];

describe("hostile records", () => {
  it.each(hostile)("$name -> $errno ($rule), nothing consumed, the repaired image retrieves", ({ rule, errno, data, mutate, extra }) => {
    const fx = fixture(extra);
    const saved = [fx.fdtPhys, ...fx.arrayPages].map((p) => [p, fx.next.memory.read(p, PAGE_SIZE)] as const);
    const stamped = fx.next.incoming.stampedCount;
    const owned = fx.next.allocator.ownedFolios;
    mutate?.(fx);
    const at = data ? data(fx) : fx.fdtPhys;
    let error: unknown;
    try {
      restoreMemfdV0(fx.next.incoming, at);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FormatError);
    expect(error).toMatchObject({ format: "memfd-v0", rule, errno });
    expect(fx.next.incoming.stampedCount).toBe(stamped);
    expect(fx.next.allocator.ownedFolios).toBe(owned);
    // finish of a record that does not validate leaves it alone too
    if (!data) expect(discardMemfdV0(fx.next.incoming, at)).toBe(false);
    expect(fx.next.incoming.stampedCount).toBe(stamped);
    for (const [p, bytes] of saved) fx.next.memory.write(p, bytes);
    const record = restoreMemfdV0(fx.next.incoming, fx.fdtPhys);
    expectSameFolios(record, fx.m, fx.next);
  });

  it("a KHO array error keeps the kho-array rule as its cause", () => {
    const fx = fixture();
    fx.next.memory.write(fx.fdtPhys + DESC_AT, Uint8Array.of(0));
    try {
      restoreMemfdV0(fx.next.incoming, fx.fdtPhys);
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ rule: "folios-array", cause: { format: "kho-array", rule: "magic", errno: "EOPNOTSUPP" } });
    }
  });
});

describe("random corruption", () => {
  it("every mutation of the FDT or the array page is either retrieved or refused with a FormatError, changing nothing", () => {
    const rng = new Prng(0xf022);
    let fx = fixture();
    let refused = 0;
    for (let round = 0; round < 400; round++) {
      const targets = [fx.fdtPhys, ...fx.arrayPages];
      const saved = targets.map((p) => [p, fx.next.memory.read(p, PAGE_SIZE)] as const);
      const stamped = fx.next.incoming.stampedCount;
      for (let k = 1 + rng.int(4); k > 0; k--) {
        const page = rng.pick(targets);
        const at = page === fx.fdtPhys ? rng.int(164) : rng.chance(0.3) ? rng.int(16) : 16 + rng.int(24) * 8 + rng.int(8);
        fx.next.memory.write(page + at, Uint8Array.of(rng.chance(0.5) ? rng.int(256) : fx.next.memory.read(page + at, 1)[0]! ^ (1 << rng.int(8))));
      }
      try {
        restoreMemfdV0(fx.next.incoming, fx.fdtPhys);
        fx = fixture(); // consumed: start again
      } catch (e) {
        expect(e).toBeInstanceOf(FormatError);
        expect(fx.next.incoming.stampedCount).toBe(stamped);
        refused++;
        for (const [p, bytes] of saved) fx.next.memory.write(p, bytes);
      }
    }
    expect(refused).toBeGreaterThan(200);
    expectSameFolios(restoreMemfdV0(fx.next.incoming, fx.fdtPhys), fx.m, fx.next);
  });
});

describe("the kexec poison", () => {
  it("catches a preserve that forgot one folio", () => {
    const rng = new Prng(0x9015);
    const old = Machine.boot({ memory: "64 MiB" });
    // 64 pages nobody preserves, below the memfd: the next kernel's own boot allocations
    // (its allocator carves the lowest free pages first) land here, not on the victim
    old.kho.allocFolio(6);
    const m = randomMemfd(old, rng, 500, 0.1, [0, 2]);
    const preserved = preserveMemfdV0(old.kho, m);
    const victim = m.folios.length - 1;
    old.kho.unpreserveFolio(m.folios.pfn(victim) * PAGE_SIZE, m.folios.order(victim)); // the bug
    const next = old.kexec();
    const stamped = next.incoming.stampedCount;
    expect(() => restoreMemfdV0(next.incoming, preserved.fdtPhys)).toThrow(expect.objectContaining({ rule: "folio-not-preserved", errno: "EIO" }));
    expect(next.incoming.stampedCount).toBe(stamped);
    // the decoder still reads the record; the forgotten folio's bytes are poison
    const decoded = decodeMemfdV0(next.memory, preserved.fdtPhys);
    expect(decoded.folios.pfn(victim)).toBe(m.folios.pfn(victim));
    expect(next.allocator.isOwned(m.folios.pfn(victim) * PAGE_SIZE, 0)).toBe(false);
    expect(next.memory.read(m.folios.pfn(victim) * PAGE_SIZE, 64)).toEqual(new Uint8Array(64).fill(POISON_BYTE));
  });
});

describe("finish of a file never retrieved", () => {
  it("reclaims and frees every page of the record", () => {
    const rng = new Prng(0xf1);
    const old = Machine.boot({ memory: "64 MiB" });
    const m = randomMemfd(old, rng, 800, 0.2, [0, 3]);
    const preserved = preserveMemfdV0(old.kho, m);
    const pages = preserved.array.pageCount;
    const next = old.kexec();
    const stamped = next.incoming.stampedCount;
    const owned = next.allocator.ownedFolios;
    expect(discardMemfdV0(next.incoming, preserved.fdtPhys)).toBe(true);
    expect(next.incoming.stampedCount).toBe(stamped - m.folios.length - pages - 1);
    expect(next.allocator.ownedFolios).toBe(owned);
    for (let i = 0; i < m.folios.length; i++) expect(next.allocator.isOwned(m.folios.pfn(i) * PAGE_SIZE, m.folios.order(i))).toBe(false);
  });
});

describe("the non-consuming decoder", () => {
  it("reads an ELF core of the outgoing machine (no stamps: orders unknown) and the live next kernel", () => {
    const rng = new Prng(0xe1f);
    const old = Machine.boot({ memory: "64 MiB" });
    const m = randomMemfd(old, rng, 700, 0.3, [0, 2]);
    const preserved = preserveMemfdV0(old.kho, m);
    const path = join(tmp, "old.core");
    writeElfCore(old.memory, path);
    const image = ElfCoreImage.open(path);
    try {
      const fromImage = decodeMemfdV0(image, preserved.fdtPhys);
      expect(fromImage).toMatchObject({ variant: "kho-array", pos: m.pos, size: m.size, fdtOrder: 0, fdtSize: 164 });
      expectSameFolios(fromImage, m, old, false);
      // the image plus the next kernel's stamps gives the orders
      const next = old.kexec();
      const withStamps = decodeMemfdV0(image, preserved.fdtPhys, { stamps: next.incoming });
      expectSameFolios(withStamps, m, next);
      const stamped = next.incoming.stampedCount;
      decodeMemfdV0(next.memory, preserved.fdtPhys, { stamps: next.incoming });
      expect(next.incoming.stampedCount).toBe(stamped);
      // a reader with only stampOf, and one with the allocation-free stampOrderOf, agree
      const objectOnly = { stampOf: (phys: number) => next.incoming.stampOf(phys) };
      const numberToo = { ...objectOnly, stampOrderOf: (phys: number) => next.incoming.stampOf(phys)?.order ?? -1 };
      expectSameFolios(decodeMemfdV0(next.memory, preserved.fdtPhys, { stamps: objectOnly }), m, next);
      expectSameFolios(decodeMemfdV0(next.memory, preserved.fdtPhys, { stamps: numberToo }), m, next);
      const victim = m.folios.pfn(3) * PAGE_SIZE;
      const missing = (phys: number): number => (phys === victim ? -1 : (next.incoming.stampOf(phys)?.order ?? -1));
      const missingOne = { stampOf: objectOnly.stampOf, stampOrderOf: missing };
      expect(() => decodeMemfdV0(next.memory, preserved.fdtPhys, { stamps: missingOne })).toThrow(
        expect.objectContaining({ rule: "folio-not-preserved", errno: "EIO" }),
      );
    } finally {
      image.close();
    }
  });
});

describe("posted variant (read only)", () => {
  function postedFixture(records: Array<{ pfn: number; flags: number; index: number }>, size: number): { next: Machine; fdtPhys: number } {
    const old = Machine.boot({ memory: "64 MiB" });
    const order = memfdV0PostedFdtOrder(records.length);
    const fdtPhys = old.kho.allocPreserve(PAGE_SIZE * 2 ** order);
    old.memory.write(fdtPhys, encodeMemfdV0PostedFdt(99, size, records));
    return { next: old.kexec(), fdtPhys };
  }

  it("retrieves a posted record with its folios (desc 0 skipped, any index order)", () => {
    const old = Machine.boot({ memory: "64 MiB" });
    const folios = [0, 2, 0, 0].map((order) => old.kho.allocFolio(order));
    folios.forEach((phys, i) => {
      old.kho.preserveFolio(phys, [0, 2, 0, 0][i]!);
      old.memory.write(phys, Uint8Array.of(i + 1));
    });
    const records = [
      { pfn: folios[1]! / PAGE_SIZE, flags: 1, index: 4 },
      { pfn: 0, flags: 0, index: 0 }, // empty record
      { pfn: folios[0]! / PAGE_SIZE, flags: 3, index: 0 },
      { pfn: folios[2]! / PAGE_SIZE, flags: 2, index: 9 },
      { pfn: folios[3]! / PAGE_SIZE, flags: 0, index: 1 },
    ];
    const order = memfdV0PostedFdtOrder(records.length);
    const fdtPhys = old.kho.allocPreserve(PAGE_SIZE * 2 ** order);
    old.memory.write(fdtPhys, encodeMemfdV0PostedFdt(5, 10 * PAGE_SIZE, records));
    const next = old.kexec();
    const record = restoreMemfdV0(next.incoming, fdtPhys);
    expect(record).toMatchObject({ variant: "posted", pos: 5, size: 10 * PAGE_SIZE, fdtOrder: 1 });
    expect([...record.folios].map((f) => [f.index, f.pfn * PAGE_SIZE, f.flags, f.order])).toEqual([
      [0, folios[0], 3, 0],
      [1, folios[3], 0, 0],
      [4, folios[1], 1, 2],
      [9, folios[2], 2, 0],
    ]);
    expect(next.memory.read(folios[1]!, 1)).toEqual(Uint8Array.of(2));
    expect(next.incoming.stampOf(fdtPhys)).toBeUndefined();
  });

  it("an empty posted list is an empty file; overlapping posted folios are refused", () => {
    const empty = postedFixture([], 0);
    expect(restoreMemfdV0(empty.next.incoming, empty.fdtPhys)).toMatchObject({ variant: "posted", size: 0, pos: 99 });
    const old = Machine.boot({ memory: "64 MiB" });
    const a = old.kho.allocPreserve(4 * PAGE_SIZE);
    const b = old.kho.allocPreserve(PAGE_SIZE);
    const records = [
      { pfn: b / PAGE_SIZE, flags: 3, index: 6 },
      { pfn: a / PAGE_SIZE, flags: 3, index: 4 },
    ];
    const fdtPhys = old.kho.allocPreserve(PAGE_SIZE * 2);
    old.memory.write(fdtPhys, encodeMemfdV0PostedFdt(0, 8 * PAGE_SIZE, records));
    const next = old.kexec();
    const stamped = next.incoming.stampedCount;
    expect(() => restoreMemfdV0(next.incoming, fdtPhys)).toThrow(expect.objectContaining({ rule: "folio-overlap", errno: "EINVAL" }));
    expect(next.incoming.stampedCount).toBe(stamped);
  });

  it("a posted FDT in a folio of the wrong order is refused", () => {
    const old = Machine.boot({ memory: "64 MiB" });
    const phys = old.kho.allocPreserve(PAGE_SIZE);
    const fdtPhys = old.kho.allocPreserve(PAGE_SIZE * 4); // order 2; one record needs order 1
    old.memory.write(fdtPhys, encodeMemfdV0PostedFdt(0, PAGE_SIZE, [{ pfn: phys / PAGE_SIZE, flags: 3, index: 0 }]).subarray(0, 8192));
    const next = old.kexec();
    expect(() => restoreMemfdV0(next.incoming, fdtPhys)).toThrow(expect.objectContaining({ rule: "fdt-order", errno: "EINVAL" }));
  });
});
