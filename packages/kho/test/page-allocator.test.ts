import { describe, expect, it } from "vitest";
import { MAX_PAGE_ORDER, PAGE_SIZE } from "../src/abi.js";
import { PhysicalMemory } from "../src/memory.js";
import { PageAllocator, alignedRunOrder, floorLog2, getOrder, trailingZeros } from "../src/page-allocator.js";
import { PfnRunList, PfnTable } from "../src/pfn-runs.js";
import { Prng } from "./support/kho-prng.js";

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const BLOCK = 2 ** MAX_PAGE_ORDER; // pages in a max-order block

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

/** Aligned max-order blocks wholly inside `[start, end)` pfn intervals: from first principles. */
function maxOrderBlocksIn(intervals: readonly [number, number][]): number {
  let n = 0;
  for (const [s, e] of intervals) {
    const first = Math.ceil(s / BLOCK) * BLOCK;
    if (e - first >= BLOCK) n += Math.floor((e - first) / BLOCK);
  }
  return n;
}

describe("helpers", () => {
  it("trailing zeros, floor log2, get_order and the kernel's range split", () => {
    expect(trailingZeros(1)).toBe(0);
    expect(trailingZeros(2 ** 33)).toBe(33);
    expect(trailingZeros(3 * 2 ** 40)).toBe(40);
    expect(floorLog2(1)).toBe(0);
    expect(floorLog2(2 ** 53 - 1)).toBe(52);
    expect(floorLog2(2 ** 40)).toBe(40);
    expect(getOrder(1)).toBe(0);
    expect(getOrder(PAGE_SIZE)).toBe(0);
    expect(getOrder(PAGE_SIZE + 1)).toBe(1);
    expect(getOrder(4 * MiB)).toBe(10);
    expect(getOrder(4 * MiB + 1)).toBe(11);
    // [3, 16): 3 (o0), 4..7 (o2), 8..15 (o3).
    const runs: [number, number][] = [];
    for (let pfn = 3; pfn < 16; ) {
      const o = alignedRunOrder(pfn, 16);
      runs.push([pfn, o]);
      pfn += 2 ** o;
    }
    expect(runs).toEqual([
      [3, 0],
      [4, 2],
      [8, 3],
    ]);
  });
});

describe("PageAllocator", () => {
  it("hands out aligned, zeroed folios inside memory, never page 0, holes or scratch", () => {
    const memory = new PhysicalMemory([
      { start: 0, size: 640 * 1024 },
      { start: MiB, size: 31 * MiB },
    ]);
    const scratch = [{ start: 16 * MiB, size: 4 * MiB }];
    const a = new PageAllocator(memory, { scratch });
    expect(a.managedPages).toBe(memory.totalBytes / PAGE_SIZE - 1 - 1024);
    const rng = new Prng(0xa110c);
    const got: [number, number][] = [];
    for (;;) {
      const order = rng.range(0, MAX_PAGE_ORDER);
      let phys: number;
      try {
        phys = a.allocFolio(order);
      } catch (error) {
        expect(error).toMatchObject({ errno: "ENOMEM" });
        if (order === 0) break;
        continue;
      }
      const size = PAGE_SIZE * 2 ** order;
      expect(phys % size).toBe(0);
      expect(phys).toBeGreaterThan(0);
      expect(memory.contains(phys, size)).toBe(true);
      expect(phys + size <= scratch[0]!.start || phys >= scratch[0]!.start + scratch[0]!.size).toBe(true);
      got.push([phys, size]);
    }
    // Disjoint, and together exactly the managed pages.
    got.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < got.length; i++) expect(got[i]![0]).toBeGreaterThanOrEqual(got[i - 1]![0] + got[i - 1]![1]);
    expect(got.reduce((n, [, s]) => n + s / PAGE_SIZE, 0)).toBe(a.managedPages);
    expect(a.freePages).toBe(0);
  });

  it("allocations are zeroed even after the previous owner wrote them", () => {
    const memory = new PhysicalMemory([{ start: 0, size: 8 * MiB }]);
    const a = new PageAllocator(memory);
    const p = a.allocFolio(2);
    memory.fill(p, 4 * PAGE_SIZE, 0xee);
    a.freeFolio(p, 2);
    const q = a.allocFolio(2);
    expect(q).toBe(p); // LIFO: the block just freed
    expect(memory.read(q, 4 * PAGE_SIZE)).toEqual(new Uint8Array(4 * PAGE_SIZE));
    expect(memory.dataPageCount).toBe(0);
  });

  it("random alloc/free keeps blocks disjoint and coalesces fully once everything is freed", () => {
    const memory = new PhysicalMemory([
      { start: 0, size: 6 * MiB + 12 * PAGE_SIZE },
      { start: 8 * MiB + 3 * PAGE_SIZE, size: 32 * MiB },
    ]);
    const scratch = [{ start: 20 * MiB, size: 4 * MiB }];
    const a = new PageAllocator(memory, { scratch });
    const rng = new Prng(0xb0dd1e5);
    const live = new Map<number, number>();
    for (let step = 0; step < 4000; step++) {
      if (live.size > 0 && rng.chance(0.45)) {
        const keys = [...live.keys()];
        const phys = rng.pick(keys);
        a.freeFolio(phys, live.get(phys)!);
        live.delete(phys);
      } else {
        const order = rng.range(0, 6);
        try {
          const phys = a.allocFolio(order);
          let overlaps = 0;
          for (const [p, o] of live) {
            if (phys + PAGE_SIZE * 2 ** order > p && phys < p + PAGE_SIZE * 2 ** o) overlaps++;
          }
          expect(overlaps).toBe(0);
          live.set(phys, order);
        } catch (error) {
          expect(error).toMatchObject({ errno: "ENOMEM" });
        }
      }
      const used = [...live.values()].reduce((n, o) => n + 2 ** o, 0);
      expect(a.freePages + used).toBe(a.managedPages);
    }
    for (const [p, o] of live) a.freeFolio(p, o);
    expect(a.freePages).toBe(a.managedPages);
    // Every aligned max-order block inside free memory must now be available.
    const free: [number, number][] = [
      [1, 6 * 256 + 12],
      [8 * 256 + 3, 20 * 256],
      [24 * 256, 8 * 256 + 3 + 32 * 256],
    ];
    const expected = maxOrderBlocksIn(free);
    expect(expected).toBeGreaterThan(0);
    let got = 0;
    while (got <= expected) {
      try {
        a.allocFolio(MAX_PAGE_ORDER);
        got++;
      } catch {
        break;
      }
    }
    expect(got).toBe(expected);
  });

  it("boot reservations stay out until adopted; parts of an adopted folio free one by one", () => {
    const memory = new PhysicalMemory([{ start: 0, size: 8 * MiB }]);
    const reserved = [
      { pfn: 512, count: 512 },
      { pfn: 100, count: 1 },
    ];
    const a = new PageAllocator(memory, { reserved });
    expect(a.managedPages).toBe(2048 - 1 - 513);
    const got: number[] = [];
    for (;;) {
      try {
        got.push(a.allocFolio(0) / PAGE_SIZE);
      } catch {
        break;
      }
    }
    expect(got.filter((p) => p === 0 || p === 100 || (p >= 512 && p < 1024))).toEqual([]);
    for (const p of got) a.freeFolio(p * PAGE_SIZE, 0);

    a.adopt(512 * PAGE_SIZE, 9, true);
    expect(a.isOwned(512 * PAGE_SIZE, 9)).toBe(true);
    a.freeFolio(700 * PAGE_SIZE, 0); // one page of the folio
    expect(a.isOwned(512 * PAGE_SIZE, 9)).toBe(false);
    expect(catchError(() => { a.freeFolio(700 * PAGE_SIZE, 0); })).toMatchObject({ errno: "EINVAL" });
    for (let p = 512; p < 1024; p++) if (p !== 700) a.freeFolio(p * PAGE_SIZE, 0);
    expect(a.freePages).toBe(2048 - 1 - 1);
    // The whole range coalesced back: 512..1023 comes out as one order-9 block again.
    const blocks: number[] = [];
    for (;;) {
      try {
        blocks.push(a.allocFolio(9) / PAGE_SIZE);
      } catch {
        break;
      }
    }
    expect(blocks).toContain(512);
  });

  it("refuses bad frees and orders", () => {
    const memory = new PhysicalMemory([{ start: 0, size: 8 * MiB }]);
    const a = new PageAllocator(memory);
    const p = a.allocFolio(3);
    expect(catchError(() => { a.freeFolio(p, 2); })).toMatchObject({ errno: "EINVAL" }); // part of a folio
    a.freeFolio(p, 3);
    expect(catchError(() => { a.freeFolio(p, 3); })).toMatchObject({ errno: "EINVAL" }); // double free
    expect(catchError(() => { a.freeFolio(p + PAGE_SIZE, 3); })).toMatchObject({ errno: "EINVAL" }); // unaligned
    expect(catchError(() => a.allocFolio(MAX_PAGE_ORDER + 1))).toMatchObject({ errno: "EINVAL" });
    expect(catchError(() => a.allocFolio(-1))).toMatchObject({ errno: "EINVAL" });
    expect(() => new PageAllocator(memory, { scratch: [{ start: 9 * MiB, size: MiB }] })).toThrow(/scratch/);
  });

  it("a 1 TiB machine costs nothing up front and allocates at once", () => {
    const memory = new PhysicalMemory([
      { start: 0, size: 3 * GiB },
      { start: 4 * GiB, size: 1021 * GiB },
    ]);
    const t0 = performance.now();
    const a = new PageAllocator(memory, { scratch: [{ start: 1000 * GiB, size: GiB }] });
    const phys: number[] = [];
    for (let i = 0; i < 1000; i++) phys.push(a.allocFolio(i % (MAX_PAGE_ORDER + 1)));
    expect(performance.now() - t0).toBeLessThan(2000); // hang guard: per-page state would take minutes
    expect(a.managedPages).toBe((1024 - 1) * 2 ** 18 - 1);
    expect(memory.dataPageCount).toBe(0);
    for (let i = 0; i < phys.length; i++) a.freeFolio(phys[i]!, i % (MAX_PAGE_ORDER + 1));
    expect(a.freePages).toBe(a.managedPages);
  });
});

describe("run lists and the pfn table", () => {
  it("PfnTable behaves as a Map under random inserts, updates and deletes", () => {
    const rng = new Prng(0x7ab1e);
    const table = new PfnTable(4);
    const model = new Map<number, number>();
    const keys: number[] = [];
    for (let i = 0; i < 300; i++) keys.push(rng.chance(0.5) ? rng.int(5000) : rng.int(2 ** 40));
    for (let step = 0; step < 20000; step++) {
      const k = rng.pick(keys);
      const op = rng.int(3);
      if (op === 0) {
        const v = rng.int(105);
        table.set(k, v);
        model.set(k, v);
      } else if (op === 1) {
        expect(table.delete(k)).toBe(model.delete(k));
      } else {
        expect(table.get(k)).toBe(model.get(k) ?? -1);
      }
    }
    expect(table.size).toBe(model.size);
    for (const k of keys) expect(table.get(k)).toBe(model.get(k) ?? -1);
  });

  it("PfnRunList sorts stably (natural merge) and merges touching runs", () => {
    const rng = new Prng(0x50e7);
    const list = new PfnRunList(2);
    const ref: [number, number, number][] = [];
    // A few ascending groups, as a radix walk produces (one per order).
    for (let g = 0; g < 5; g++) {
      let pfn = rng.int(100);
      for (let i = 0; i < 200; i++) {
        pfn += rng.int(40);
        list.push(pfn, ref.length);
        ref.push([pfn, ref.length, 0]);
      }
    }
    list.sortByPfn();
    const sorted = [...ref].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    expect([...list].map((r) => [r.pfn, r.count])).toEqual(sorted.map(([p, v]) => [p, v]));

    const runs = PfnRunList.from([
      { pfn: 10, count: 5 },
      { pfn: 0, count: 2 },
      { pfn: 15, count: 1 },
      { pfn: 12, count: 1 },
      { pfn: 2, count: 3 },
      { pfn: 30, count: 2 },
    ]);
    expect([...runs.merged()]).toEqual([
      { pfn: 0, count: 5 },
      { pfn: 10, count: 6 },
      { pfn: 30, count: 2 },
    ]);
    const joined = new PfnRunList();
    for (const [p, c] of [
      [4, 2],
      [6, 2],
      [7, 4],
      [20, 1],
    ] as const)
      joined.pushJoined(p, c);
    expect([...joined]).toEqual([
      { pfn: 4, count: 7 },
      { pfn: 20, count: 1 },
    ]);
  });
});
