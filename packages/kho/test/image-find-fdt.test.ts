import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PAGE_SIZE, X86_SETUP_TYPE_KEXEC_KHO } from "../src/abi.js";
import { FormatError, KernelError } from "../src/errors.js";
import { PhysicalMemory } from "../src/memory.js";
import { ElfCoreImage, writeElfCore } from "../src/image/elf-core.js";
import { X86_SCAN_MAX_CANDIDATES, X86_SETUP_DATA_MAX_ENTRIES, findKhoFdt, readKhoFdtAt, readX86KhoHandover, readX86SetupData } from "../src/image/find-fdt.js";
import { RawDumpImage } from "../src/image/raw-dump.js";
import { SparsePagesImage } from "../src/image/sparse-pages.js";
import {
  concat,
  kexecMetadataBlob,
  khoRootFdt,
  khosprs1OfMemory,
  layOutX86Handover,
  sameBytes,
  tempDir,
  u64le,
  writeBootParamsHeader,
  writeSetupData,
} from "./support/image-builders.js";

const MiB = 1024 * 1024;
const tmp = tempDir("kho-find");
afterAll(() => { tmp.cleanup(); });

function machine(): PhysicalMemory {
  return new PhysicalMemory([{ start: 0, size: 640 * 1024 }, { start: MiB, size: 15 * MiB }]);
}

/** A raw pmemsave-style dump of `[0, end)` of `m` (holes read as zero). */
function rawDumpOf(m: PhysicalMemory, name: string): string {
  const end = m.ranges.reduce((e, r) => Math.max(e, r.start + r.size), 0);
  const bytes = new Uint8Array(end);
  for (const r of m.ranges) bytes.set(m.read(r.start, r.size), r.start);
  const p = path.join(tmp.dir, name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** `fdt` with its last struct token (FDT_END) overwritten by an unknown tag. */
function withoutEndToken(fdt: Uint8Array): Uint8Array {
  const out = fdt.slice();
  const v = new DataView(out.buffer);
  const end = v.getUint32(8) + v.getUint32(36) - 4; // off_dt_struct + size_dt_struct - 4
  expect(v.getUint32(end)).toBe(9); // FDT_END
  v.setUint32(end, 0x77);
  return out;
}

function formatError(fn: () => unknown): FormatError {
  try {
    fn();
  } catch (e) {
    if (e instanceof FormatError) return e;
    throw e;
  }
  throw new Error("no error thrown");
}

describe("findKhoFdt on a synthetic x86 handover", () => {
  const m = machine();
  const layout = layOutX86Handover(m, { bootParams: 12 * MiB, fdtAddr: 3 * MiB });
  // A stale boot_params lower down (the firmware's real-mode copy: no setup_data).
  writeBootParamsHeader(m, 0x10000, 0);

  it("follows boot_params -> setup_data -> kho_data, in memory, a raw dump, a sparse image and an ELF core", () => {
    fs.writeFileSync(path.join(tmp.dir, "x86.sprs"), khosprs1OfMemory(m, m.dataPfns()));
    const readers = [m, RawDumpImage.open(rawDumpOf(m, "x86.raw")), SparsePagesImage.open(path.join(tmp.dir, "x86.sprs"))];
    for (const r of readers) {
      const found = findKhoFdt(r);
      expect(found.method).toBe("x86-setup-data");
      expect(found.fdtAddr).toBe(layout.fdtAddr);
      expect(sameBytes(found.fdt, layout.fdt)).toBe(true);
      expect(found.x86!.bootParams).toBe(layout.bootParams);
      expect(found.x86!.setupData.map((s) => [s.phys, s.type])).toEqual([
        [layout.rngSeed, 9],
        [layout.khoData, X86_SETUP_TYPE_KEXEC_KHO],
      ]);
      expect(found.x86!.khoData.fdtSize).toBe(PAGE_SIZE);
      if ("close" in r) r.close();
    }
    const core = path.join(tmp.dir, "x86.core");
    writeElfCore(m, core, { khoFdt: { addr: layout.fdtAddr, size: PAGE_SIZE } });
    const img = ElfCoreImage.open(core);
    try {
      const found = findKhoFdt(img);
      expect(found.method).toBe("elf-note");
      expect(sameBytes(found.fdt, layout.fdt)).toBe(true);
      expect(findKhoFdt(img, { methods: ["x86-setup-data"] }).x86!.bootParams).toBe(layout.bootParams);
    } finally {
      img.close();
    }
  });

  it("prefers the highest boot_params whose chain reaches a kho-v4 FDT", () => {
    const m2 = machine();
    const top = layOutX86Handover(m2, { bootParams: 14 * MiB, fdtAddr: 2 * MiB });
    layOutX86Handover(m2, { bootParams: 8 * MiB, fdtAddr: 4 * MiB }); // an older handover, lower
    writeBootParamsHeader(m2, 15 * MiB, 0); // higher, but no setup_data: skipped
    const found = findKhoFdt(m2);
    expect(found.x86!.bootParams).toBe(top.bootParams);
    expect(found.fdtAddr).toBe(top.fdtAddr);
  });

  it("takes a given address or boot_params without searching", () => {
    expect(findKhoFdt(m, { fdtAddr: layout.fdtAddr }).method).toBe("given");
    expect(findKhoFdt(m, { bootParams: layout.bootParams }).fdtAddr).toBe(layout.fdtAddr);
    expect(formatError(() => findKhoFdt(m, { fdtAddr: layout.fdtAddr + PAGE_SIZE })).rule).toBe("fdt.magic");
    expect(() => findKhoFdt(m, { bootParams: 0x10000 })).toThrow(expect.objectContaining({ errno: "ENOENT" }));
    expect(formatError(() => findKhoFdt(m, { bootParams: layout.bootParams + PAGE_SIZE })).rule).toBe("boot-params.signature");
  });

  it("needs ranges to search a bare reader", () => {
    const bare = { contains: (p: number, l: number) => m.contains(p, l), readInto: (p: number, d: Uint8Array) => { m.readInto(p, d); } };
    expect(() => findKhoFdt(bare)).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(findKhoFdt(bare, { ranges: m.ranges }).fdtAddr).toBe(layout.fdtAddr);
  });
});

describe("hostile setup_data chains and FDTs", () => {
  const bp = 12 * MiB;
  const sd = bp + PAGE_SIZE;
  const fdtAddr = 3 * MiB;
  function withChain(build: (m: PhysicalMemory) => void): PhysicalMemory {
    const m = machine();
    m.write(fdtAddr, khoRootFdt(fdtAddr + PAGE_SIZE));
    build(m);
    return m;
  }
  const khoData = (addr = fdtAddr, size = PAGE_SIZE): Uint8Array => concat([u64le(addr), u64le(size), u64le(0), u64le(0)]);

  const empty8 = new Uint8Array(8);
  const cases: Array<[string, (m: PhysicalMemory) => void, string, number]> = [
    ["a cycle", (m) => {
      writeBootParamsHeader(m, bp, sd);
      writeSetupData(m, sd, sd + 64, 9, empty8);
      writeSetupData(m, sd + 64, sd, 9, empty8);
    }, "setup-data.cycle", sd + 64],
    ["a self loop", (m) => {
      writeBootParamsHeader(m, bp, sd);
      writeSetupData(m, sd, sd, 9, empty8);
    }, "setup-data.cycle", sd],
    ["a pointer outside memory", (m) => {
      writeBootParamsHeader(m, bp, sd);
      writeSetupData(m, sd, 0xa0000, 9, empty8);
    }, "setup-data.outside", sd],
    ["a head pointer outside memory", (m) => {
      writeBootParamsHeader(m, bp, 64 * MiB);
    }, "setup-data.outside", bp + 0x250],
    ["a pointer of 2^60", (m) => {
      writeBootParamsHeader(m, bp, sd);
      writeSetupData(m, sd, 2 ** 60, 9, empty8);
    }, "setup-data.u64", sd],
    ["data running out of memory", (m) => {
      writeBootParamsHeader(m, bp, sd);
      writeSetupData(m, sd, 0, 9, empty8, 0x7fffffff);
    }, "setup-data.len-outside", sd + 12],
    ["a short kho_data", (m) => {
      writeBootParamsHeader(m, bp, sd);
      writeSetupData(m, sd, 0, X86_SETUP_TYPE_KEXEC_KHO, new Uint8Array(16));
    }, "kho-data.short", sd + 12],
    ["a kho_data field of 2^63", (m) => {
      writeBootParamsHeader(m, bp, sd);
      writeSetupData(m, sd, 0, X86_SETUP_TYPE_KEXEC_KHO, concat([u64le(1n << 63n), u64le(0), u64le(0), u64le(0)]));
    }, "kho-data.u64", sd + 16],
  ];

  for (const [name, build, rule, offset] of cases) {
    it(`rejects ${name} (${rule})`, () => {
      const m = withChain(build);
      for (const fn of [() => readX86KhoHandover(m, bp), () => findKhoFdt(m, { bootParams: bp }), () => findKhoFdt(m, { methods: ["x86-setup-data"] })]) {
        const e = formatError(fn);
        expect({ format: e.format, rule: e.rule, offset: e.offset, space: e.space }).toEqual({ format: "x86-setup-data", rule, offset, space: "phys" });
      }
      // The search does not give up on a broken boot_params: the FDT scan still finds the FDT.
      expect(findKhoFdt(m).method).toBe("fdt-scan");
    });
  }

  it("bounds a long acyclic chain", () => {
    const m = withChain((mm) => {
      writeBootParamsHeader(mm, bp, sd);
      for (let k = 0; k <= X86_SETUP_DATA_MAX_ENTRIES; k++) writeSetupData(mm, sd + 32 * k, sd + 32 * (k + 1), 9, new Uint8Array(16));
    });
    expect(formatError(() => readX86SetupData(m, bp)).rule).toBe("setup-data.too-long");
  });

  // [name, FDT bytes, kho_data fdt_size, rule, whether the FDT page is a valid root FDT by itself]
  const fdtCases: Array<[string, Uint8Array, number, string, boolean]> = [
    ["garbage", new Uint8Array(64).fill(0x5a), PAGE_SIZE, "fdt.magic", false],
    ["another compatible", khoRootFdt(fdtAddr + PAGE_SIZE).map((b, i, a) => (i > 0 && a[i - 1] === 0x76 && b === 0x34 ? 0x33 : b)), PAGE_SIZE, "fdt.kho-root", false],
    ["a totalsize beyond fdt_size", khoRootFdt(fdtAddr + PAGE_SIZE), 64, "fdt.totalsize", true],
    // The root and its properties still read fine (the kernel's own checks pass): only
    // libfdt's full structure check sees the struct block's END token is gone.
    ["a broken structure block", withoutEndToken(khoRootFdt(fdtAddr + PAGE_SIZE)), PAGE_SIZE, "libfdt.", false],
  ];
  for (const [name, fdt, size, rule, validAlone] of fdtCases) {
    it(`rejects a kho_data FDT with ${name} (${rule})`, () => {
      const m = machine();
      m.write(fdtAddr, fdt);
      writeBootParamsHeader(m, bp, sd);
      writeSetupData(m, sd, 0, X86_SETUP_TYPE_KEXEC_KHO, khoData(fdtAddr, size));
      const e = formatError(() => findKhoFdt(m, { bootParams: bp }));
      expect(e.format).toBe("kho-fdt");
      expect(e.rule.startsWith(rule)).toBe(true);
      // The search moves on to the FDT scan, which finds the page only if it is valid alone.
      if (validAlone) expect(findKhoFdt(m).method).toBe("fdt-scan");
      else expect(() => findKhoFdt(m)).toThrow(FormatError);
    });
  }

  it("with several valid root FDTs, picks the newest by kexec-metadata's kexec_count", () => {
    for (const newestHigh of [true, false]) {
      const m = machine();
      const [a, b] = newestHigh ? [2 * MiB, 9 * MiB] : [9 * MiB, 2 * MiB];
      m.write(a + 2 * PAGE_SIZE, kexecMetadataBlob(1));
      m.write(a, khoRootFdt(a + PAGE_SIZE, { phys: a + 2 * PAGE_SIZE, size: 73 }));
      m.write(b + 2 * PAGE_SIZE, kexecMetadataBlob(2));
      m.write(b, khoRootFdt(b + PAGE_SIZE, { phys: b + 2 * PAGE_SIZE, size: 73 }));
      const found = findKhoFdt(m);
      expect(found.method).toBe("fdt-scan");
      expect(found.fdtAddr).toBe(b);
      expect([...found.candidates!].sort((x, y) => x - y)).toEqual([2 * MiB, 9 * MiB]);
    }
  });

  it("follows a bounded number of boot_params candidates on an image full of them", () => {
    const m = machine();
    const real = layOutX86Handover(m, { bootParams: 2 * MiB, fdtAddr: MiB });
    // Above it, many decoys: each a boot_params whose chain leads to an FDT header claiming
    // a large totalsize (read as far as the size bound allows, then rejected).
    const decoys = 2 * X86_SCAN_MAX_CANDIDATES;
    for (let k = 0; k < decoys; k++) {
      const page = 4 * MiB + 2 * k * PAGE_SIZE;
      writeBootParamsHeader(m, page, page + PAGE_SIZE);
      writeSetupData(m, page + PAGE_SIZE, 0, X86_SETUP_TYPE_KEXEC_KHO, khoData(page + PAGE_SIZE + 64, MiB));
      m.write(page + PAGE_SIZE + 64, Uint8Array.of(0xd0, 0x0d, 0xfe, 0xed, 0, 0x0f, 0, 0));
    }
    const t = performance.now();
    const found = findKhoFdt(m);
    expect(performance.now() - t).toBeLessThan(2000);
    // The real boot_params lies below every decoy and the budget ran out before it: the FDT
    // scan finds the FDT instead.
    expect(found.method).toBe("fdt-scan");
    expect(found.fdtAddr).toBe(real.fdtAddr);
    expect(findKhoFdt(m, { bootParams: real.bootParams }).fdtAddr).toBe(real.fdtAddr);
  });

  it("reports ENOENT when there is nothing at all", () => {
    const m = machine();
    m.write(5 * MiB, new Uint8Array(PAGE_SIZE).fill(1));
    const e = (() => {
      try {
        findKhoFdt(m);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).errno).toBe("ENOENT");
    expect(formatError(() => readKhoFdtAt(m, 5 * MiB)).rule).toBe("fdt.magic");
  });
});
