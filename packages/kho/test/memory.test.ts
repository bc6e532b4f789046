import { describe, expect, it } from "vitest";
import { PhysicalMemory, POISON_BYTE, KernelError, PAGE_SIZE } from "../src/index.js";

const GiB = 2 ** 30;

describe("PhysicalMemory", () => {
  it("rejects unaligned, overlapping and empty layouts", () => {
    expect(() => new PhysicalMemory([{ start: 1, size: PAGE_SIZE }])).toThrow(KernelError);
    expect(() => new PhysicalMemory([{ start: 0, size: 2 * PAGE_SIZE }, { start: PAGE_SIZE, size: PAGE_SIZE }])).toThrow(/overlap/);
    expect(() => new PhysicalMemory([])).toThrow(/no memory/);
  });

  it("has holes, reads zero where never written, and faults outside memory", () => {
    const m = new PhysicalMemory([{ start: 0, size: 640 * 1024 }, { start: 1 << 20, size: 1 * GiB }]);
    expect(m.totalBytes).toBe(640 * 1024 + GiB);
    expect(m.isValidPfn(0xa0)).toBe(false);
    expect(m.contains(0x9f000, 0x1000)).toBe(true);
    expect(m.contains(0x9f000, 0x2000)).toBe(false);
    expect(m.read(0x100000, 16)).toEqual(new Uint8Array(16));
    expect(() => m.read(0xa0000, 1)).toThrow(expect.objectContaining({ errno: "EFAULT" }));
    expect(m.dataPageCount).toBe(0);
  });

  it("writes across page boundaries and reads back; u32/u64 are little-endian", () => {
    const m = new PhysicalMemory([{ start: 0, size: 16 * PAGE_SIZE }]);
    const bytes = Uint8Array.from({ length: 3 * PAGE_SIZE }, (_, i) => (i * 7) & 0xff);
    m.write(PAGE_SIZE - 5, bytes);
    expect(m.read(PAGE_SIZE - 5, bytes.length)).toEqual(bytes);
    expect(m.dataPageCount).toBe(4);
    m.writeU64(0x8000, 0x0102030405060708n);
    expect(m.read(0x8000, 8)).toEqual(Uint8Array.of(8, 7, 6, 5, 4, 3, 2, 1));
    expect(m.readU64(0x8000)).toBe(0x0102030405060708n);
    expect(m.readU64Number(0x8000)).toBeUndefined();
    m.writeU64(0x8000, 2 ** 52 - 4096);
    expect(m.readU64Number(0x8000)).toBe(2 ** 52 - 4096);
    m.zero(0, 16 * PAGE_SIZE);
    expect(m.dataPageCount).toBe(0);
  });

  it("hands over only the kept pages; everything else is poison; kept untouched pages are zero", () => {
    const m = new PhysicalMemory([{ start: 0, size: 64 * PAGE_SIZE }]);
    m.fill(0, 64 * PAGE_SIZE, 0xaa);
    const next = m.handOver([{ pfn: 4, count: 2 }, { pfn: 40, count: 1 }]);
    expect(next.read(4 * PAGE_SIZE, 2 * PAGE_SIZE)).toEqual(new Uint8Array(2 * PAGE_SIZE).fill(0xaa));
    expect(next.read(6 * PAGE_SIZE, 1)[0]).toBe(POISON_BYTE);
    expect(next.read(0, 1)[0]).toBe(POISON_BYTE);
    expect(() => m.read(0, 1)).toThrow(/handed over/);

    const fresh = new PhysicalMemory([{ start: 0, size: 64 * PAGE_SIZE }]);
    const after = fresh.handOver([{ pfn: 8, count: 8 }]);
    expect(after.pageState(8)).toBe("zero");
    expect(after.read(8 * PAGE_SIZE, 8 * PAGE_SIZE)).toEqual(new Uint8Array(8 * PAGE_SIZE));
    expect(after.pageState(16)).toBe("background");
    expect(after.dataPageCount).toBe(0);
    // A partial write to a poisoned page keeps the poison around it.
    after.write(16 * PAGE_SIZE + 10, Uint8Array.of(1));
    expect(after.read(16 * PAGE_SIZE + 9, 3)).toEqual(Uint8Array.of(POISON_BYTE, 1, POISON_BYTE));
  });

  it("a 64 GiB machine with 16 GiB kept costs no page buffers", () => {
    const m = new PhysicalMemory([{ start: 0, size: 64 * GiB }]);
    const keep = Array.from({ length: 8192 }, (_, i) => ({ pfn: 512 * 2 * i, count: 512 }));
    const next = m.handOver(keep);
    expect(next.dataPageCount).toBe(0);
    expect(next.pageState(512 * 2 * 100 + 3)).toBe("zero");
    expect(next.pageState(512 * 2 * 100 + 600)).toBe("background");
  });
});
