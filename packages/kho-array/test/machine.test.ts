import { FormatError, Machine, PAGE_SIZE } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import { KhoArrayBuilder, restoreKhoArray } from "../src/kho-array.js";

describe("KHO array through the real Machine and kexec", () => {
  it("round-trips dense and sparse entries, handed over through a KHO sub-tree", () => {
    const old = Machine.boot({ memory: "512 MiB" });
    const b = new KhoArrayBuilder(old.kho);
    for (let i = 0; i < 5000; i++) b.setValue(i, i * 3);
    for (let i = 1; i <= 100; i++) b.setPointer(10_000 + i * 4999, i * 0x1000);
    const descriptorPhys = old.kho.allocPreserve(16);
    b.preserve(descriptorPhys);
    old.kho.addSubtree("kho-array-test", descriptorPhys, 16);
    const pages = Array.from(b.layout().pages);
    for (const p of pages) expect(old.kho.isPreserved(p, 0)).toBe(true);

    const next = old.kexec();
    const { phys, size } = next.incoming.retrieveSubtree("kho-array-test");
    expect(size).toBe(16);
    const stamped = next.incoming.stampedCount;
    const restored = restoreKhoArray(next.incoming, phys);
    expect(stamped - next.incoming.stampedCount).toBe(pages.length);
    expect(restored.entryCount).toBe(5100);
    expect(restored.get(4999)).toEqual({ kind: "value", value: 4999n * 3n });
    expect(restored.get(10_000 + 50 * 4999)).toEqual({ kind: "pointer", pointer: 50n * 0x1000n });
    let n = 0;
    for (const c = restored.cursor(); c.next(); n++) {
      if (c.index < 5000) expect(c.valueNumber).toBe(c.index * 3);
      else expect(c.pointerNumber).toBe(((c.index - 10_000) / 4999) * 0x1000);
    }
    expect(n).toBe(5100);
  });

  it("a corrupt array is refused with every stamp left; repaired, it restores", () => {
    const old = Machine.boot({ memory: "256 MiB" });
    const b = new KhoArrayBuilder(old.kho);
    for (let i = 0; i < 3000; i += 2) b.setValue(i, i);
    const descriptor = b.preserve();
    const pages = Array.from(b.layout().pages);
    const unpreserved = old.scratch[0]!.start;
    const next = old.kexec();
    const stamps = next.incoming.stampedRuns();
    const saved = next.memory.read(pages[2]!, 16);

    next.memory.writeU64(pages[3]!, pages[1]!);
    expect(() => restoreKhoArray(next.incoming, descriptor)).toThrow(FormatError);
    next.memory.write(unpreserved, next.memory.read(pages[3]!, PAGE_SIZE));
    next.memory.writeU64(unpreserved, 0);
    next.memory.writeU64(pages[2]!, unpreserved);
    expect(() => restoreKhoArray(next.incoming, descriptor)).toThrow(/not-preserved/);
    expect(next.incoming.stampedRuns()).toEqual(stamps);

    next.memory.write(pages[2]!, saved);
    next.memory.writeU64(pages[3]!, pages[4] ?? 0);
    expect(restoreKhoArray(next.incoming, descriptor).entryCount).toBe(1500);
  });
});
