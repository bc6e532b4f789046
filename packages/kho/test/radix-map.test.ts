import { describe, expect, it } from "vitest";
import { PAGE_SIZE, radixBitmapIndex, radixDecodeKey, radixEncodeKey, radixTableIndex } from "../src/abi.js";
import { FormatError, KernelError } from "../src/errors.js";
import { PhysicalMemory } from "../src/memory.js";
import { PageAllocator } from "../src/page-allocator.js";
import { MAX_RUN_ORDER, RadixMap, walkRadixMap, type RadixPageSource } from "../src/radix-map.js";
import { Prng } from "./support/kho-prng.js";

const MiB = 2 ** 20;

/** A machine's worth of memory and an allocator-backed page source for the map. */
function setup(bytes = 64 * MiB): { memory: PhysicalMemory; allocator: PageAllocator; pages: RadixPageSource } {
  const memory = new PhysicalMemory([{ start: 0, size: bytes }]);
  const allocator = new PageAllocator(memory);
  const pages: RadixPageSource = {
    allocPage: () => allocator.allocFolio(0),
    freePage: (phys) => {
      allocator.freeFolio(phys, 0);
    },
  };
  return { memory, allocator, pages };
}

function entry(memory: PhysicalMemory, table: number, index: number): number {
  return memory.readU64Number(table + index * 8)!;
}

/** The table entries that are set, as [index, value]. */
function setEntries(memory: PhysicalMemory, table: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < 512; i++) {
    const v = entry(memory, table, i);
    if (v !== 0) out.push([i, v]);
  }
  return out;
}

function setBits(memory: PhysicalMemory, leaf: number): number[] {
  const bytes = memory.read(leaf, PAGE_SIZE);
  const out: number[] = [];
  for (let i = 0; i < PAGE_SIZE * 8; i++) if ((bytes[i >>> 3]! >> (i & 7)) & 1) out.push(i);
  return out;
}

function walkAll(memory: PhysicalMemory, root: number): [number, number][] {
  const runs: [number, number][] = [];
  walkRadixMap(memory, root, (phys, order) => runs.push([phys, order]));
  return runs;
}

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe("radix keys (fact sheet examples)", () => {
  it("pa 0x1000 order 0 -> key 0x0010000000000001: root[2], index 0 at levels 4..1, leaf bit 1", () => {
    const key = radixEncodeKey(0x1000, 0);
    expect(key).toBe(Number(0x0010000000000001n));
    expect(radixTableIndex(key, 5)).toBe(2);
    for (let level = 4; level >= 1; level--) expect(radixTableIndex(key, level)).toBe(0);
    expect(radixBitmapIndex(key)).toBe(1);

    // The same, as bytes the map writes into memory.
    const { memory, pages } = setup();
    const map = new RadixMap(memory, pages);
    map.add(0x1000, 0);
    const root = setEntries(memory, map.rootPhys);
    expect(root.map(([i]) => i)).toEqual([2]);
    let node = root[0]![1];
    for (let level = 4; level >= 1; level--) {
      const set = setEntries(memory, node);
      expect(set.map(([i]) => i)).toEqual([0]);
      node = set[0]![1];
    }
    expect(setBits(memory, node)).toEqual([1]);
    expect(memory.read(node, 1)[0]).toBe(0b10); // bit 1 = byte 0, bit 1 (little-endian bitmap)
    expect(map.nodePages().map((n) => n.level)).toEqual([5, 4, 3, 2, 1, 0]);
  });

  it("pa 0x200000 order 9 -> key 0x0000080000000001", () => {
    const key = radixEncodeKey(0x200000, 9);
    expect(key).toBe(Number(0x0000080000000001n));
    expect(radixDecodeKey(key)).toEqual({ phys: 0x200000, order: 9 });
    const { memory, pages } = setup();
    const map = new RadixMap(memory, pages);
    map.add(0x200000, 9);
    expect(walkAll(memory, map.rootPhys)).toEqual([[0x200000, 9]]);
    // Key bit 43 is level 4 index 2 (bits 50:42); everything else is index 0; leaf bit 1.
    const root = setEntries(memory, map.rootPhys);
    expect(root.map(([i]) => i)).toEqual([0]);
    const l4 = setEntries(memory, root[0]![1]);
    expect(l4.map(([i]) => i)).toEqual([2]);
  });

  it("encode/decode round-trips every order at random aligned addresses", () => {
    const rng = new Prng(0x5eed0001);
    for (let order = 0; order <= MAX_RUN_ORDER; order++) {
      for (let i = 0; i < 50; i++) {
        const units = 2 ** (52 - 12 - order);
        const phys = rng.int(units) * PAGE_SIZE * 2 ** order;
        const key = radixEncodeKey(phys, order);
        expect(Number.isSafeInteger(key)).toBe(true);
        expect(radixDecodeKey(key)).toEqual({ phys, order });
      }
    }
  });

  it("the map returns exactly the runs added, for all orders at random addresses", () => {
    const rng = new Prng(0x5eed0002);
    const { memory, pages } = setup(256 * MiB);
    const map = new RadixMap(memory, pages);
    const expected = new Map<string, [number, number]>();
    for (let i = 0; i < 400; i++) {
      const order = rng.range(0, 15);
      const units = (256 * MiB) / (PAGE_SIZE * 2 ** order);
      const phys = rng.int(units) * PAGE_SIZE * 2 ** order;
      map.add(phys, order);
      expected.set(`${phys}/${order}`, [phys, order]);
    }
    const runs = walkAll(memory, map.rootPhys);
    const sort = (a: [number, number], b: [number, number]): number => a[0] - b[0] || a[1] - b[1];
    expect([...runs].sort(sort)).toEqual([...expected.values()].sort(sort));
    for (const [phys, order] of expected.values()) expect(map.has(phys, order)).toBe(true);
  });
});

describe("RadixMap (outgoing)", () => {
  it("add is idempotent, delete clears one bit and keeps the nodes, has reports", () => {
    const { memory, pages } = setup();
    const map = new RadixMap(memory, pages);
    map.add(0x5000, 0);
    map.add(0x5000, 0);
    map.add(0x6000, 0);
    const nodes = map.nodePages().length;
    expect(walkAll(memory, map.rootPhys)).toEqual([
      [0x5000, 0],
      [0x6000, 0],
    ]);
    expect(map.delete(0x5000, 0)).toBe(true);
    expect(map.delete(0x5000, 0)).toBe(false);
    expect(map.delete(0x8000, 3)).toBe(false); // path never created: left alone
    expect(map.has(0x5000, 0)).toBe(false);
    expect(map.has(0x6000, 0)).toBe(true);
    expect(map.nodePages().length).toBe(nodes);
    expect(walkAll(memory, map.rootPhys)).toEqual([[0x6000, 0]]);
  });

  it("refuses runs not aligned to their order", () => {
    const { memory, pages } = setup();
    const map = new RadixMap(memory, pages);
    expect(catchError(() => { map.add(0x1000, 1); })).toMatchObject({ errno: "EINVAL" });
    expect(catchError(() => { map.add(0x1001, 0); })).toMatchObject({ errno: "EINVAL" });
    expect(catchError(() => { map.add(0, MAX_RUN_ORDER + 1); })).toMatchObject({ errno: "EINVAL" });
  });

  it("ENOMEM while creating a path frees the new nodes and unlinks the branch", () => {
    const { memory, pages } = setup();
    let budget = 3;
    const limited: RadixPageSource = {
      allocPage: () => {
        if (budget-- <= 0) throw new KernelError("ENOMEM", "test budget");
        return pages.allocPage();
      },
      freePage: (phys) => {
        pages.freePage(phys);
      },
    };
    const map = new RadixMap(memory, limited); // uses 1 page
    const before = memory.read(map.rootPhys, PAGE_SIZE);
    expect(catchError(() => { map.add(0x1000, 0); })).toMatchObject({ errno: "ENOMEM" });
    expect(memory.read(map.rootPhys, PAGE_SIZE)).toEqual(before);
    expect(map.nodePages().length).toBe(1);
    expect(walkAll(memory, map.rootPhys)).toEqual([]);
    budget = 5;
    map.add(0x1000, 0);
    expect(walkAll(memory, map.rootPhys)).toEqual([[0x1000, 0]]);
  });
});

describe("walkRadixMap on hostile maps", () => {
  const SIZE = 4 * MiB;
  /** Memory with a root at page 1; returns a writer of u64 entries. */
  function hostile(ranges = [{ start: 0, size: SIZE }]): { memory: PhysicalMemory; put: (table: number, index: number, value: number | bigint) => void } {
    const memory = new PhysicalMemory(ranges);
    return { memory, put: (table, index, value) => { memory.writeU64(table + index * 8, value) ; }};
  }
  const page = (n: number): number => n * PAGE_SIZE;

  /** A valid path root(page 1) -> pages 2..6 for `key`; returns the leaf address. */
  function path(put: (t: number, i: number, v: number) => void, key: number, firstPage = 2): number {
    let table = page(1);
    for (let level = 5; level >= 1; level--) {
      const child = page(firstPage + (5 - level));
      put(table, radixTableIndex(key, level), child);
      table = child;
    }
    return table;
  }

  function expectFormat(f: () => unknown, rule: string, offset: number): void {
    const error = catchError(f);
    expect(error).toBeInstanceOf(FormatError);
    expect(error).toMatchObject({ format: "kho-radix", rule, offset, space: "phys", errno: "EINVAL" });
  }

  it("a table pointing to itself is a cycle", () => {
    const { memory, put } = hostile();
    put(page(1), 7, page(1));
    expectFormat(() => walkRadixMap(memory, page(1), () => {}), "node-repeated", page(1) + 7 * 8);
  });

  it("a deeper table pointing back to an ancestor is a cycle", () => {
    const { memory, put } = hostile();
    put(page(1), 2, page(2));
    put(page(2), 0, page(3));
    put(page(3), 5, page(1));
    expectFormat(() => walkRadixMap(memory, page(1), () => {}), "node-repeated", page(3) + 5 * 8);
  });

  it("two entries sharing a subtree are refused", () => {
    const { memory, put } = hostile();
    const key = radixEncodeKey(0x1000, 0);
    const leaf = path(put, key);
    memory.write(leaf, Uint8Array.of(0b10));
    put(page(1), 3, page(2)); // root[2] and root[3] -> the same level-4 table
    const runs: number[] = [];
    expectFormat(() => walkRadixMap(memory, page(1), (p) => runs.push(p)), "node-repeated", page(1) + 3 * 8);
    expect(runs).toEqual([0x1000]); // reported before the damage
  });

  it("a dense graph of pointers ends quickly (every page visited at most once)", () => {
    const pages = 256;
    const { memory } = hostile([{ start: 0, size: pages * PAGE_SIZE }]);
    const table = new Uint8Array(PAGE_SIZE);
    const view = new DataView(table.buffer);
    for (let i = 0; i < 512; i++) view.setUint32(i * 8, page(1 + (i % (pages - 1))), true);
    for (let p = 1; p < pages; p++) memory.write(page(p), table);
    const t0 = performance.now();
    const error = catchError(() => walkRadixMap(memory, page(1), () => {}));
    expect(error).toMatchObject({ rule: "node-repeated" });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("pointers outside memory, into a hole, beyond 52 bits or unaligned", () => {
    const { memory, put } = hostile([
      { start: 0, size: 64 * PAGE_SIZE },
      { start: 128 * PAGE_SIZE, size: 64 * PAGE_SIZE },
    ]);
    put(page(1), 2, page(1000));
    expectFormat(() => walkRadixMap(memory, page(1), () => {}), "node-outside-memory", page(1) + 16);
    put(page(1), 2, page(100)); // the hole
    expectFormat(() => walkRadixMap(memory, page(1), () => {}), "node-outside-memory", page(1) + 16);
    put(page(1), 2, 0xfff0_0000_0000_0000n);
    expectFormat(() => walkRadixMap(memory, page(1), () => {}), "node-outside-memory", page(1) + 16);
    put(page(1), 2, page(2) + 8);
    expectFormat(() => walkRadixMap(memory, page(1), () => {}), "node-unaligned", page(1) + 16);
    expectFormat(() => walkRadixMap(memory, 0, () => {}), "root-missing", 0);
    expectFormat(() => walkRadixMap(memory, page(100), () => {}), "node-outside-memory", page(100));
  });

  it("bits whose runs are not wholly in memory", () => {
    const { memory, put } = hostile([
      { start: 0, size: SIZE },
      { start: 2 * SIZE, size: SIZE },
    ]);
    // A page in the hole between the ranges.
    const inHole = SIZE + 5 * PAGE_SIZE;
    const key = radixEncodeKey(inHole, 0);
    const leaf = path(put, key);
    const bit = radixBitmapIndex(key);
    memory.write(leaf + (bit >>> 3), Uint8Array.of(1 << (bit & 7)));
    expectFormat(() => walkRadixMap(memory, page(1), () => {}), "run-outside-memory", leaf + (bit >>> 3));

    // An order-10 run starting in memory but running past its range's end.
    const { memory: m2, put: put2 } = hostile([{ start: 0, size: SIZE + 512 * PAGE_SIZE }]);
    const straddle = radixEncodeKey(SIZE, 10);
    const leaf2 = path(put2, straddle);
    const bit2 = radixBitmapIndex(straddle);
    m2.write(leaf2 + (bit2 >>> 3), Uint8Array.of(1 << (bit2 & 7)));
    expectFormat(() => walkRadixMap(m2, page(1), () => {}), "run-outside-memory", leaf2 + (bit2 >>> 3));
  });

  it("bits of keys with no valid order (root index >= 4, key 0)", () => {
    const { memory, put } = hostile();
    for (let level = 5; level >= 1; level--) put(page(1 + 5 - level), level === 5 ? 4 : 0, page(2 + 5 - level));
    const leaf = page(6);
    memory.write(leaf + 100, Uint8Array.of(0x10));
    expectFormat(() => walkRadixMap(memory, page(1), () => {}), "key-order", leaf + 100);

    const { memory: m2, put: put2 } = hostile();
    for (let level = 5; level >= 1; level--) put2(page(1 + 5 - level), 0, page(2 + 5 - level));
    m2.write(page(6), Uint8Array.of(1)); // key 0
    expectFormat(() => walkRadixMap(m2, page(1), () => {}), "key-order", page(6));
  });

  it("more runs than memory has pages are refused when the caller bounds them", () => {
    // Overlapping runs of every order over a 64-page memory: valid bits, but more runs
    // (order 0: 63, order 1: 32, ...) than pages.
    const { memory } = hostile([{ start: 0, size: 64 * PAGE_SIZE }]);
    let nextPage = 2;
    const leaves = new Map<number, number>();
    let expected = 0;
    for (let order = 0; order <= 6; order++) {
      for (let phys = order === 0 ? PAGE_SIZE : 0; phys + PAGE_SIZE * 2 ** order <= 64 * PAGE_SIZE; phys += PAGE_SIZE * 2 ** order) {
        const k = radixEncodeKey(phys, order);
        const prefix = Math.floor(k / 32768);
        let leaf = leaves.get(prefix);
        if (leaf === undefined) {
          let table = page(1);
          for (let level = 5; level >= 1; level--) {
            const at = table + radixTableIndex(k, level) * 8;
            let child = memory.readU64Number(at)!;
            if (child === 0) {
              child = page(nextPage++);
              memory.writeU64(at, child);
            }
            table = child;
          }
          leaf = table;
          leaves.set(prefix, leaf);
        }
        const bit = radixBitmapIndex(k);
        memory.write(leaf + (bit >>> 3), Uint8Array.of(memory.read(leaf + (bit >>> 3), 1)[0]! | (1 << (bit & 7))));
        expected++;
      }
    }
    expect(expected).toBeGreaterThan(64);
    expect(walkRadixMap(memory, page(1), () => {}).runs).toBe(expected);
    const error = catchError(() => walkRadixMap(memory, page(1), () => {}, { maxRuns: 64 }));
    expect(error).toMatchObject({ format: "kho-radix", rule: "too-many-runs" });
  });

  it("high-order keys whose top bit is inside the bitmap decode right", () => {
    // key < 2^15: the whole path is index 0 and the order comes from the bit itself.
    const { memory, put } = hostile([{ start: 0, size: 2 ** 40 }]);
    const key = radixEncodeKey(2 ** 39, 27); // 2^25 + 1: order from the prefix
    for (let level = 5; level >= 1; level--) put(page(1 + 5 - level), radixTableIndex(key, level), page(2 + 5 - level));
    const bit = radixBitmapIndex(key);
    memory.write(page(6) + (bit >>> 3), Uint8Array.of(1 << (bit & 7)));
    expect(walkAll(memory, page(1))).toEqual([[2 ** 39, 27]]);

    const small = radixEncodeKey(0, 40); // key 2^12: inside one bitmap
    expect(small).toBeLessThan(2 ** 15);
    const { memory: m2, put: put2 } = hostile([{ start: 0, size: 2 ** 52 - 2 ** 30 }]);
    for (let level = 5; level >= 1; level--) put2(page(1 + 5 - level), 0, page(2 + 5 - level));
    m2.write(page(6) + (small >>> 3), Uint8Array.of(1 << (small & 7)));
    expectFormat(() => walkRadixMap(m2, page(1), () => {}), "run-outside-memory", page(6) + (small >>> 3));
  });
});
