import { FormatError, KernelError, PAGE_SIZE, PhysicalMemory } from "@liveupdate/kho";
import { describe, expect, it, vi } from "vitest";
import { KhoArrayBuilder, readKhoArrayLayout, restoreKhoArray, type KhoArray } from "../src/kho-array.js";
import { KHO_ARRAY_MAX_VALUE } from "../src/layout.js";
import { FakeKho, type FakeRestorer } from "./support/fake-kho.js";

const MEM_START = 16 << 20; // FakeKho's default memory: 64 MiB at 16 MiB

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

function errnoOf(fn: () => unknown): string {
  const err = caught(fn);
  expect(err).toBeInstanceOf(KernelError);
  return (err as KernelError).errno;
}

function expectFormatError(fn: () => unknown, rule: string, errno = "EINVAL"): FormatError {
  const err = caught(fn);
  expect(err).toBeInstanceOf(FormatError);
  const fe = err as FormatError;
  expect({ format: fe.format, rule: fe.rule, errno: fe.errno }).toEqual({ format: "kho-array", rule, errno });
  return fe;
}

/** Every entry as [index, "v:<value>" | "p:<pointer hex>"]. */
function dump(array: KhoArray): [number, string][] {
  const out: [number, string][] = [];
  const c = array.cursor();
  while (c.next()) out.push([c.index, c.isValue ? `v:${c.value}` : `p:${c.pointer.toString(16)}`]);
  return out;
}

describe("KHO array format 0 layout", () => {
  it("writes the descriptor, the page headers and tagged entries byte for byte", () => {
    const kho = new FakeKho();
    const b = new KhoArrayBuilder(kho);
    b.setValue(0, 0);
    b.setValue(1, 5);
    b.setPointer(2, 0x1234_5678_9abc_def0n);
    b.setValue(509, KHO_ARRAY_MAX_VALUE);
    b.setValue(510, 1);
    b.setValue(5100, 2 ** 40 + 3);
    // Pages come from the fake's first allocations: 16 MiB, +4 KiB, +8 KiB.
    expect(b.descriptor()).toEqual(hex("5252414b 0000 0000 0000000100000000"));
    const p0 = kho.memory.read(MEM_START, PAGE_SIZE);
    expect(p0.subarray(0, 40)).toEqual(hex("0010000100000000 0000000000000000 0100000000000000 0b00000000000000 f0debc9a78563412"));
    expect(p0.subarray(40, 4088).every((x) => x === 0)).toBe(true);
    expect(p0.subarray(4088)).toEqual(hex("ffffffffffffffff"));
    const p1 = kho.memory.read(MEM_START + PAGE_SIZE, 24);
    expect(p1).toEqual(hex("0020000100000000 fe01000000000000 0300000000000000"));
    // 5100 = 10 * 510 -> startpos 0x13ec, slot 0; (2^40 + 3) << 1 | 1 = 0x200_0000_0007.
    const p2 = kho.memory.read(MEM_START + 2 * PAGE_SIZE, 24);
    expect(p2).toEqual(hex("0000000000000000 ec13000000000000 0700000000020000"));
    expect(b.pageCount).toBe(3);
    expect(b.entryCount).toBe(6);
    expect(b.byteSize).toBe(3 * PAGE_SIZE);
  });

  it("values span 0..2^63-1 as numbers or bigints; pointers are non-zero and 8-byte aligned", () => {
    const b = new KhoArrayBuilder(new FakeKho());
    b.setValue(0, Number.MAX_SAFE_INTEGER);
    b.setValue(1, 2n ** 53n);
    b.setValue(2, KHO_ARRAY_MAX_VALUE);
    b.setPointer(3, 0xffff_ffff_ffff_fff8n);
    b.setPointer(4, 8);
    expect(dump(b)).toEqual([
      [0, `v:${Number.MAX_SAFE_INTEGER}`],
      [1, `v:${2n ** 53n}`],
      [2, `v:${KHO_ARRAY_MAX_VALUE}`],
      [3, "p:fffffffffffffff8"],
      [4, "p:8"],
    ]);
    const c = b.cursor();
    expect(c.next() && c.valueNumber).toBe(Number.MAX_SAFE_INTEGER);
    expect(c.next() && errnoOf(() => c.valueNumber)).toBe("EOVERFLOW");
    c.next();
    c.next();
    expect(errnoOf(() => c.value)).toBe("EINVAL");
    expect(errnoOf(() => c.pointerNumber)).toBe("EOVERFLOW");
    expect(c.next() && c.pointerNumber).toBe(8);
    expect(errnoOf(() => { b.setValue(5, 2n ** 63n); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setValue(5, -1); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setValue(5, 2 ** 53); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setValue(5, 1.5); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setPointer(5, 0); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setPointer(5, 0x1004); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setPointer(5, 2n ** 64n); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setValue(-1, 0); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setValue(2 ** 53, 0); })).toBe("EINVAL");
    expect(b.entryCount).toBe(5);
  });

  it("writes go in ascending order: backwards is EINVAL, the same index overwrites", () => {
    const b = new KhoArrayBuilder(new FakeKho());
    b.setValue(100, 1);
    b.setValue(100, 2);
    expect(errnoOf(() => { b.setValue(99, 3); })).toBe("EINVAL");
    expect(errnoOf(() => { b.setPointer(0, 8); })).toBe("EINVAL");
    b.setValue(2000, 4);
    expect(errnoOf(() => { b.setValue(1999, 5); })).toBe("EINVAL");
    expect(dump(b)).toEqual([
      [100, "v:2"],
      [2000, "v:4"],
    ]);
    expect(b.entryCount).toBe(2);
  });
});

describe("KHO array reading", () => {
  function sample(): KhoArrayBuilder {
    const b = new KhoArrayBuilder(new FakeKho());
    for (const i of [3, 7, 509, 510, 1020 * 50 + 17, 1020 * 50 + 509, 1e9]) b.setValue(i, i * 2);
    return b;
  }

  it("iterates forward over non-empty entries, skipping missing pages", () => {
    const b = sample();
    expect(dump(b).map(([i]) => i)).toEqual([3, 7, 509, 510, 51017, 51509, 1e9]);
    expect(b.pageCount).toBe(4);
    expect([...b.entries()].map(([i, e]) => [i, e])).toEqual(dump(b).map(([i, s]) => [i, { kind: "value", value: BigInt(s.slice(2)) }]));
  });

  it("starts a cursor anywhere: mid-page, in a gap, past the end", () => {
    const b = sample();
    const from = (i: number): number[] => {
      const c = b.cursor(i);
      const out: number[] = [];
      while (c.next()) out.push(c.index);
      return out;
    };
    expect(from(4)).toEqual([7, 509, 510, 51017, 51509, 1e9]);
    expect(from(510)).toEqual([510, 51017, 51509, 1e9]);
    expect(from(2000)).toEqual([51017, 51509, 1e9]);
    expect(from(51018)).toEqual([51509, 1e9]);
    expect(from(1e9 + 1)).toEqual([]);
  });

  it("looks an index up by binary search: one page read, whatever the array's size", () => {
    const b = new KhoArrayBuilder(new FakeKho());
    for (let i = 0; i < 2000; i++) b.setValue(i * 1021, i);
    expect(b.pageCount).toBe(2000);
    const reads = vi.spyOn(b.memory, "readPage");
    expect(b.get(1999 * 1021)).toEqual({ kind: "value", value: 1999n });
    expect(b.get(1021)).toEqual({ kind: "value", value: 1n });
    expect(b.get(1022)).toBeUndefined(); // same page, empty slot
    expect(b.get(510)).toBeUndefined(); // no page at all
    expect(reads.mock.calls.length).toBe(3);
    expect(b.has(0)).toBe(true);
    expect(errnoOf(() => b.get(-5))).toBe("EINVAL");
  });
});

describe("KHO array preserve, kexec, restore", () => {
  function built(kho: FakeKho): { b: KhoArrayBuilder; entries: [number, string][] } {
    const b = new KhoArrayBuilder(kho);
    for (let i = 0; i < 3000; i += 3) b.setValue(i, i);
    b.setPointer(10_000, 0x1234_0000);
    b.setValue(123_456_789, KHO_ARRAY_MAX_VALUE);
    return { b, entries: dump(b) };
  }

  it("preserves every page, restores them all, and reads the same entries", () => {
    const kho = new FakeKho();
    const { b, entries } = built(kho);
    const other = kho.allocFolio(0);
    kho.preserveFolio(other, 0);
    const descriptorPhys = kho.allocFolio(0);
    kho.preserveFolio(descriptorPhys, 0);
    b.preserve(descriptorPhys);
    expect(b.preserved).toBe(true);
    expect([...kho.preserved.keys()].sort((x, y) => x - y)).toEqual([...Array.from(b.layout().pages, (p) => p / PAGE_SIZE), other / PAGE_SIZE, descriptorPhys / PAGE_SIZE].sort((x, y) => x - y));
    const next = kho.kexec();
    const restored = restoreKhoArray(next, descriptorPhys);
    expect(dump(restored)).toEqual(entries);
    expect(restored.entryCount).toBe(entries.length);
    expect(restored.get(123_456_789)).toEqual({ kind: "value", value: KHO_ARRAY_MAX_VALUE });
    expect([...next.stamps.keys()].sort()).toEqual([other / PAGE_SIZE, descriptorPhys / PAGE_SIZE].sort());
    expectFormatError(() => restoreKhoArray(next, descriptorPhys), "not-preserved");
  });

  it("pages added after preserve are preserved too; unpreserve and free undo everything", () => {
    const kho = new FakeKho();
    const b = new KhoArrayBuilder(kho);
    b.setValue(0, 1);
    b.preserve();
    b.setValue(5000, 2);
    expect(kho.preserved.size).toBe(2);
    b.unpreserve();
    expect(kho.preserved.size).toBe(0);
    b.preserve();
    b.free();
    expect(kho.preserved.size).toBe(0);
    expect(kho.allocated.size).toBe(0);
    expect(b.pageCount).toBe(0);
    b.setValue(0, 9); // usable again
    expect(dump(b)).toEqual([[0, "v:9"]]);
  });

  it("a failing preserve leaves nothing preserved", () => {
    const kho = new FakeKho({ scratch: { start: MEM_START + 2 * PAGE_SIZE, size: PAGE_SIZE } });
    const b = new KhoArrayBuilder(kho);
    for (let i = 0; i < 4; i++) b.setValue(i * 510, i);
    expect(errnoOf(() => b.preserve())).toBe("EINVAL");
    expect(kho.preserved.size).toBe(0);
    expect(b.preserved).toBe(false);
  });

  it("an empty array round-trips (first = 0)", () => {
    const kho = new FakeKho();
    const descriptor = new KhoArrayBuilder(kho).preserve();
    expect(descriptor).toEqual(hex("5252414b 0000 0000 0000000000000000"));
    const restored = restoreKhoArray(kho.kexec(), descriptor);
    expect(restored.entryCount).toBe(0);
    expect(restored.cursor().next()).toBe(false);
  });
});

describe("KHO array hostile images: a typed error each, and nothing changes", () => {
  interface Img {
    next: FakeRestorer;
    descriptor: Uint8Array;
    pages: number[];
    unpreserved: number;
  }
  function handedOver(): Img {
    const kho = new FakeKho();
    const b = new KhoArrayBuilder(kho);
    for (let i = 0; i < 2000; i += 7) b.setValue(i, i);
    b.setPointer(2001, 0x10_0000);
    const descriptor = b.preserve();
    const pages = Array.from(b.layout().pages);
    return { next: kho.kexec(), descriptor, pages, unpreserved: MEM_START + 0x100000 };
  }
  /** Corrupt, expect the rule, check no stamp moved, undo, restore works. */
  function hostile(rule: string, corrupt: (img: Img) => Uint8Array | number | undefined, errno = "EINVAL"): FormatError {
    const img = handedOver();
    const saved = img.pages.map((p) => img.next.memory.read(p, PAGE_SIZE));
    const stamps = new Map(img.next.stamps);
    const descriptor = corrupt(img) ?? img.descriptor;
    const err = expectFormatError(() => restoreKhoArray(img.next, descriptor), rule, errno);
    expect(img.next.stamps).toEqual(stamps);
    img.pages.forEach((p, i) => {
      img.next.memory.write(p, saved[i]!);
    });
    expect(restoreKhoArray(img.next, img.descriptor).entryCount).toBe(287);
    return err;
  }
  const withDescriptor = (d: Uint8Array, at: number, bytes: string): Uint8Array => {
    const out = d.slice();
    out.set(hex(bytes), at);
    return out;
  };

  it("magic and version: EOPNOTSUPP; reserved: EINVAL; short descriptors", () => {
    hostile("magic", ({ descriptor }) => withDescriptor(descriptor, 0, "5252414c"), "EOPNOTSUPP");
    hostile("version", ({ descriptor }) => withDescriptor(descriptor, 4, "0100"), "EOPNOTSUPP");
    hostile("reserved", ({ descriptor }) => withDescriptor(descriptor, 6, "0080"));
    hostile("descriptor-size", ({ descriptor }) => descriptor.subarray(0, 15));
    hostile("descriptor-pointer", () => 0x100); // a descriptor address outside memory
  });

  it("cycles and self-links", () => {
    hostile("page-cycle", ({ next, pages }) => {
      next.memory.writeU64(pages[3]!, pages[1]!);
      return undefined;
    });
    hostile("page-cycle", ({ next, pages }) => {
      next.memory.writeU64(pages[0]!, pages[0]!);
      return undefined;
    });
  });

  it("startpos: not a multiple of 510, not ascending, beyond 2^53", () => {
    hostile("startpos-alignment", ({ next, pages }) => {
      next.memory.writeU64(pages[1]! + 8, 511);
      return undefined;
    });
    hostile("startpos-alignment", ({ next, pages }) => {
      next.memory.writeU64(pages[1]! + 8, 2n ** 64n - 1n);
      return undefined;
    });
    hostile("startpos-order", ({ next, pages }) => {
      next.memory.writeU64(pages[2]! + 8, 510);
      return undefined;
    });
    hostile("startpos-order", ({ next, pages }) => {
      next.memory.writeU64(pages[1]! + 8, 0);
      return undefined;
    });
    const range = hostile(
      "startpos-range",
      ({ next, pages }) => {
        next.memory.writeU64(pages[3]! + 8, 510n * 2n ** 50n);
        return undefined;
      },
      "EOVERFLOW",
    );
    expect(range.offset).toBeGreaterThan(0);
  });

  it("tags: a pointer entry that is not 8-byte aligned; an empty page", () => {
    let at = 0;
    const tag = hostile("tag", ({ next, pages }) => {
      at = pages[2]! + 16 + 8 * 5;
      next.memory.writeU64(at, 0x1002);
      return undefined;
    });
    expect(tag.offset).toBe(at);
    hostile("tag", ({ next, pages }) => {
      next.memory.writeU64(pages[0]! + 16 + 8 * 509, 0xffff_ffff_ffff_fff4n);
      return undefined;
    });
    hostile("empty-page", ({ next, pages }) => {
      next.memory.zero(pages[2]! + 16, PAGE_SIZE - 16);
      return undefined;
    });
  });

  it("pointers outside memory, unaligned, beyond 52 bits, into poison, or to pages never preserved", () => {
    hostile("page-pointer", ({ next, pages }) => {
      next.memory.writeU64(pages[0]!, 0x3000);
      return undefined;
    });
    hostile("page-alignment", ({ next, pages }) => {
      next.memory.writeU64(pages[0]!, pages[1]! + 8);
      return undefined;
    });
    hostile("page-pointer", ({ descriptor }) => withDescriptor(descriptor, 8, "0000000000001000"));
    // Poison: startpos 0x6b6b...6b is not a multiple of 510.
    hostile("startpos-alignment", ({ next, pages, unpreserved }) => {
      next.memory.writeU64(pages[1]!, unpreserved);
      return undefined;
    });
    const stray = hostile("not-preserved", ({ next, pages, unpreserved }) => {
      next.memory.write(unpreserved, next.memory.read(pages[3]!, PAGE_SIZE));
      next.memory.writeU64(pages[2]!, unpreserved);
      return undefined;
    });
    expect(stray.offset).toBe(MEM_START + 0x100000);
  });

  it("a long chain ending in a cycle is refused quickly, with memory bounded by the pages read", () => {
    const kho = new FakeKho();
    const b = new KhoArrayBuilder(kho);
    for (let i = 0; i < 10_000; i++) b.setValue(i * 510, i);
    const descriptor = b.preserve();
    const pages = Array.from(b.layout().pages);
    const next = kho.kexec();
    next.memory.writeU64(pages[9999]!, pages[5000]!);
    const t0 = performance.now();
    expectFormatError(() => restoreKhoArray(next, descriptor), "page-cycle");
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(next.stamps.size).toBe(10_000);
  });

  it("readKhoArrayLayout reads an image through any reader, without reclaiming", () => {
    const kho = new FakeKho();
    const b = new KhoArrayBuilder(kho);
    b.setValue(7, 7);
    b.setValue(70_000, 8);
    const descriptorPhys = kho.allocFolio(0);
    b.preserve(descriptorPhys);
    const memory: PhysicalMemory = kho.memory;
    const reader = { contains: (p: number, n: number) => memory.contains(p, n), readInto: (p: number, d: Uint8Array) => { memory.readInto(p, d); } };
    expect(readKhoArrayLayout(reader, descriptorPhys)).toEqual(b.layout());
  });
});
