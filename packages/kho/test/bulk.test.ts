/**
 * The bulk preservation and restore calls must be exactly the loop of single calls they
 * replace: same map bytes, same stamps, same errors, and all-or-nothing where documented.
 */
import { describe, expect, it } from "vitest";
import { Machine, PAGE_SIZE, walkRadixMap } from "../src/index.js";

/** mulberry32. */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  };
}

/** Distinct, order-aligned folio addresses, some adjacent, in random order. */
function folios(machine: Machine, count: number, order: number, seed: number): number[] {
  const rand = prng(seed);
  const list: number[] = [];
  for (let i = 0; i < count; i++) list.push(machine.kho.allocFolio(order));
  for (let i = list.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}

function mapRuns(machine: Machine): string[] {
  const runs: string[] = [];
  walkRadixMap(machine.memory, machine.kho.radix.rootPhys, (phys, order) => runs.push(`${phys}:${order}`));
  return runs.sort();
}

describe("bulk preserve equals the loop of single calls", () => {
  for (const order of [0, 3, 9]) {
    it(`preserveFolios, order ${order}`, () => {
      const a = Machine.boot({ memory: "1 GiB", scratch: "none" });
      const b = Machine.boot({ memory: "1 GiB", scratch: "none" });
      const listA = folios(a, 300, order, 7 + order);
      const listB = folios(b, 300, order, 7 + order);
      expect(listB).toEqual(listA); // same allocator, same sequence
      const own = mapRuns(a).length; // the kernel's own preserved pages (FDT, kexec-metadata)
      a.kho.preserveFolios(listA, order);
      for (const phys of listB) b.kho.preserveFolio(phys, order);
      expect(mapRuns(a)).toEqual(mapRuns(b));
      expect(mapRuns(a)).toHaveLength(own + 300);
    });
  }

  it("preservePagesMany splits each range as preservePages does", () => {
    const a = Machine.boot({ memory: "512 MiB", scratch: "none" });
    const b = Machine.boot({ memory: "512 MiB", scratch: "none" });
    const ranges = [0x100000, 0x300000, 0x500000 + 5 * PAGE_SIZE];
    a.kho.preservePagesMany(ranges, 37);
    for (const phys of ranges) b.kho.preservePages(phys, 37);
    expect(mapRuns(a)).toEqual(mapRuns(b));
  });

  it("a failing folio unwinds what the call preserved and names the same errno", () => {
    const m = Machine.boot({ memory: "256 MiB", scratch: "none" });
    const good = folios(m, 10, 0, 1);
    const before = mapRuns(m);
    // An unaligned folio address fails, as preserveFolio does, after five good ones.
    const list = [...good.slice(0, 5), good[5]! + 1, ...good.slice(6)];
    let single: unknown;
    try {
      m.kho.preserveFolio(good[5]! + 1, 0);
    } catch (e) {
      single = e;
    }
    expect(() => { m.kho.preserveFolios(list, 0); }).toThrow(expect.objectContaining({ errno: (single as { errno: string }).errno }));
    expect(mapRuns(m)).toEqual(before);
  });
});

describe("bulk restore in the next kernel", () => {
  function handedOver(): { next: Machine; pages: number[] } {
    const old = Machine.boot({ memory: "256 MiB" });
    const pages = folios(old, 64, 0, 3).sort((x, y) => x - y);
    old.kho.preserveFolios(pages, 0);
    return { next: old.kexec(), pages };
  }

  it("stampOrderOf agrees with stampOf on stamped and unstamped pages", () => {
    const { next, pages } = handedOver();
    for (const phys of pages) {
      expect(next.incoming.stampOrderOf(phys)).toBe(next.incoming.stampOf(phys)?.order ?? -1);
      expect(next.incoming.stampOrderOf(phys)).toBe(0);
    }
    expect(next.incoming.stampOrderOf(pages[0]! + 512 * PAGE_SIZE * 64)).toBe(next.incoming.stampOf(pages[0]! + 512 * PAGE_SIZE * 64)?.order ?? -1);
  });

  it("restorePagesMany restores every range once; a bad range changes nothing", () => {
    const { next, pages } = handedOver();
    const stamped = next.incoming.stampedCount;
    // One range listed twice fails as an already restored one, before anything is restored.
    expect(() => { next.incoming.restorePagesMany([...pages, pages[3]!], 1); }).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(next.incoming.stampedCount).toBe(stamped);
    for (const phys of pages) expect(next.incoming.stampOrderOf(phys)).toBe(0);
    next.incoming.restorePagesMany(pages, 1);
    for (const phys of pages) expect(next.incoming.stampOrderOf(phys)).toBe(-1);
    expect(() => { next.incoming.restorePages(pages[0]!, 1); }).toThrow(expect.objectContaining({ errno: "EINVAL" }));
  });
});
