/**
 * Images of simulated machines: a machine after kexec, saved as an ELF core, decodes like
 * the machine itself (the FDT it was handed, the preserved runs, the preserved bytes).
 */
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KHO_FDT_SIZE, PAGE_SIZE } from "../src/abi.js";
import { POISON_BYTE } from "../src/memory.js";
import { Machine } from "../src/machine.js";
import { walkRadixMap } from "../src/radix-map.js";
import type { PreservedRun } from "../src/types.js";
import { ElfCoreImage, writeElfCore } from "../src/image/elf-core.js";
import { findKhoFdt } from "../src/image/find-fdt.js";
import { prng, sameBytes, tempDir } from "./support/image-builders.js";

const tmp = tempDir("kho-machine-image");
afterAll(() => {
  tmp.cleanup();
});

/** A machine that preserved a blob (as a sub-tree) and an order-3 folio, and wrote a page it did not preserve. */
function preparedMachine(): { old: Machine; blob: number; blobBytes: Uint8Array; folio: number; folioBytes: Uint8Array; scratchPage: number } {
  const old = Machine.boot({ memory: "256 MiB" });
  const rand = prng(7);
  const pattern = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
  const blob = old.kho.allocPreserve(2 * PAGE_SIZE);
  const blobBytes = pattern(2 * PAGE_SIZE);
  old.memory.write(blob, blobBytes);
  old.kho.addSubtree("image-test", blob, 2 * PAGE_SIZE);
  const folio = old.kho.allocFolio(3);
  const folioBytes = pattern(8 * PAGE_SIZE);
  old.memory.write(folio, folioBytes);
  old.kho.preserveFolio(folio, 3);
  const scratchPage = old.kho.allocFolio(0);
  old.memory.write(scratchPage, pattern(PAGE_SIZE));
  return { old, blob, blobBytes, folio, folioBytes, scratchPage };
}

describe("ELF core of a simulated handover", () => {
  it("at the next kernel's entry point: the handed-over FDT, every preserved run and byte, poison elsewhere", () => {
    const { old, blob, blobBytes, folio, folioBytes, scratchPage } = preparedMachine();
    const expectedRuns: PreservedRun[] = old.kho.preservedRuns();
    const handedFdt = old.kho.fdtPhys;
    // What kexec does before the next kernel runs: the memory at its first instruction
    // (what the golden images are: the radix nodes are still intact there).
    const entry = old.memory.handOver(old.kho.handoverRuns());
    const file = path.join(tmp.dir, "entry.core");
    writeElfCore(entry, file, { khoFdt: { addr: handedFdt, size: KHO_FDT_SIZE } });
    const img = ElfCoreImage.open(file);
    try {
      const found = findKhoFdt(img);
      expect(found.method).toBe("elf-note");
      expect(found.fdtAddr).toBe(handedFdt);
      expect(sameBytes(found.fdt, entry.read(handedFdt, found.fdt.length))).toBe(true);
      // Without the note, the scan finds the same (only) root FDT.
      expect(findKhoFdt(img, { methods: ["fdt-scan"] }).candidates).toEqual([handedFdt]);

      const runs: PreservedRun[] = [];
      walkRadixMap(img, found.memoryMapPhys, (phys, order) => runs.push({ phys, order }));
      expect(runs).toEqual(expectedRuns);

      expect(sameBytes(img.read(blob, blobBytes.length), blobBytes)).toBe(true);
      expect(sameBytes(img.read(folio, folioBytes.length), folioBytes)).toBe(true);
      expect(img.read(scratchPage, PAGE_SIZE).every((b) => b === POISON_BYTE)).toBe(true);
    } finally {
      img.close();
    }
  });

  it("after the next kernel booted: two root FDTs, the scan takes the newer by kexec_count", () => {
    const { old } = preparedMachine();
    const handedFdt = old.kho.fdtPhys;
    const next = old.kexec();
    expect(next.incoming.fdtPhys).toBe(handedFdt);
    const file = path.join(tmp.dir, "booted.core");
    writeElfCore(next.memory, file, { khoFdt: { addr: handedFdt, size: KHO_FDT_SIZE } });
    const img = ElfCoreImage.open(file);
    try {
      // The incoming root FDT stays intact (as in Linux); the new kernel built its own.
      expect(findKhoFdt(img).fdtAddr).toBe(handedFdt);
      const scanned = findKhoFdt(img, { methods: ["fdt-scan"] });
      expect([...scanned.candidates!].sort((a, b) => a - b)).toEqual([handedFdt, next.kho.fdtPhys].sort((a, b) => a - b));
      expect(scanned.fdtAddr).toBe(next.kho.fdtPhys);
    } finally {
      img.close();
    }
  });
});
