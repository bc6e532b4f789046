/**
 * The image readers on the real Linux 7.2 handover images. Every expectation comes from the
 * fixture's own JSON (decoded.json, manifest.json, handover-pages.index.json,
 * phase2-iomem.txt) or from kho-root.fdt; no address or count is written here.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { FdtOffsets } from "@liveupdate/fdt-codec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KHO_FDT_MEMORY_MAP_PROP_NAME, PAGE_SIZE } from "../src/abi.js";
import { KernelError } from "../src/errors.js";
import type { MemoryRange } from "../src/memory.js";
import type { PhysReader } from "../src/types.js";
import { walkRadixMap } from "../src/radix-map.js";
import { KHO_FDT_SCAN_CHUNK_BYTES, findKhoFdt } from "../src/image/find-fdt.js";
import { RawDumpImage } from "../src/image/raw-dump.js";
import { SparsePagesImage } from "../src/image/sparse-pages.js";
import { firstDifference, sameBytes } from "./support/image-builders.js";
import { REAL_KERNEL_CASES, decompressedGolden, goldenFile, goldenJson, type RealKernelCase } from "./support/golden-images.js";

// ---- the fixture's JSON, typed as far as the tests read it -----------------------------

interface Decoded {
  boot_params: { pa: number; setup_data: Array<{ pa: number; next: number; type: number; len: number; kho_data?: { fdt_addr: number; fdt_size: number; scratch_addr: number; scratch_size: number } }> };
  root_fdt: { phys: number; preserved_memory_map: number };
  radix_tree: { root: number; node_pages: Array<{ level: number; pa: number }>; preserved: Array<[number, number]> };
  luo: { sessions: Array<{ name: string; files: Array<{ manifest_name: string; memfd?: { size: number; folios: Array<{ pfn: number; index: number; order: number }> } }> }> } | null;
}

interface Manifest {
  page_size: number;
  sessions: Array<{ name: string; files: Array<{ name: string; size: number; seed: number; written_pages: "all" | number[]; sha256: string }> }>;
}

interface PagesIndex {
  ranges: Array<{ phys: string; length: number }>;
  pages: Array<{ phys: string; what: string }>;
}

const decodedOf = (k: RealKernelCase): Decoded => goldenJson(k, "decoded.json") as Decoded;
const manifestOf = (k: RealKernelCase): Manifest => goldenJson(k, "manifest.json") as Manifest;
const indexOf = (k: RealKernelCase): PagesIndex => goldenJson(k, "handover-pages.index.json") as PagesIndex;

/** Top-level "System RAM" lines of the machine's /proc/iomem: its memory map. */
function systemRam(k: RealKernelCase): MemoryRange[] {
  const out: MemoryRange[] = [];
  for (const line of fs.readFileSync(goldenFile(k, "phase2-iomem.txt"), "utf8").split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) : System RAM$/.exec(line);
    if (m) out.push({ start: parseInt(m[1]!, 16), size: parseInt(m[2]!, 16) + 1 - parseInt(m[1]!, 16) });
  }
  return out;
}

function inRam(ram: readonly MemoryRange[]): (phys: number, len: number) => boolean {
  return (phys, len) => ram.some((r) => phys >= r.start && phys + len <= r.start + r.size);
}

/** The manifest's generator: page `p` of a file with `seed` and `name`. */
function generatorPage(seed: number, p: number, name: string): Uint8Array {
  const b = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i++) b[i] = (seed + 7 * p + 13 * i) & 0xff;
  b.set(new TextEncoder().encode(`GOLDEN memfd=${name} page=${p}\n`), 0);
  return b;
}

/**
 * Rebuild each memfd the decoded LUO state lists from the image's folio pages and check it
 * against the manifest: sha256 of the whole content, and every written page against the
 * generator. Returns the number of folio pages read.
 */
function checkMemfdContents(image: PhysReader, k: RealKernelCase): number {
  const decoded = decodedOf(k);
  const manifest = manifestOf(k);
  let pagesRead = 0;
  const manifestFiles = manifest.sessions.flatMap((s) => s.files.map((f) => ({ session: s.name, ...f })));
  const decodedFiles = (decoded.luo?.sessions ?? []).flatMap((s) => s.files.map((f) => ({ session: s.name, ...f })));
  expect(decodedFiles.length).toBe(manifestFiles.length);
  for (const f of decodedFiles) {
    const want = manifestFiles.find((m) => m.session === f.session && m.name === f.manifest_name);
    expect(want, `${f.session}/${f.manifest_name} in the manifest`).toBeDefined();
    const memfd = f.memfd!;
    const content = new Uint8Array(memfd.size);
    for (const folio of memfd.folios) {
      for (let q = 0; q < 2 ** folio.order; q++) {
        const p = folio.index + q;
        if (p * PAGE_SIZE >= memfd.size) continue;
        const n = Math.min(PAGE_SIZE, memfd.size - p * PAGE_SIZE);
        const bytes = new Uint8Array(n);
        image.readInto((folio.pfn + q) * PAGE_SIZE, bytes);
        content.set(bytes, p * PAGE_SIZE);
        pagesRead++;
        const written = want!.written_pages === "all" || want!.written_pages.includes(p);
        const expected = written ? generatorPage(want!.seed, p, want!.name).subarray(0, n) : new Uint8Array(n);
        expect(firstDifference(bytes, expected), `${f.session}/${f.manifest_name} page ${p}`).toBe(-1);
      }
    }
    expect(createHash("sha256").update(content).digest("hex"), `${f.session}/${f.manifest_name}`).toBe(want!.sha256);
  }
  return pagesRead;
}

/** The root FDT's preserved-memory-map (a raw LE u64, see the golden README). */
function radixRootOf(fdt: Uint8Array): number {
  const v = new FdtOffsets(fdt).getprop(0, KHO_FDT_MEMORY_MAP_PROP_NAME)!;
  expect(v.length).toBe(8);
  return Number(Buffer.from(v).readBigUInt64LE(0));
}

/** Walk the radix map from `image` and compare with decoded.json: runs and node pages. */
function checkRadixWalk(image: PhysReader, fdt: Uint8Array, k: RealKernelCase, runInMemory?: (phys: number, len: number) => boolean): void {
  const decoded = decodedOf(k);
  const root = radixRootOf(fdt);
  expect(root).toBe(decoded.radix_tree.root);
  const runs: Array<[number, number]> = [];
  const result = walkRadixMap(image, root, (phys, order) => runs.push([phys, order]), runInMemory ? { runInMemory } : {});
  const byAddress = (a: [number, number], b: [number, number]): number => a[0] - b[0] || a[1] - b[1];
  expect(runs.length).toBe(decoded.radix_tree.preserved.length);
  expect([...runs].sort(byAddress)).toEqual([...decoded.radix_tree.preserved].sort(byAddress));
  expect(result.nodes.map((n) => ({ level: n.level, pa: n.phys }))).toEqual(decoded.radix_tree.node_pages);
}

// ---- the sparse page images of every case ----------------------------------------------

for (const kase of REAL_KERNEL_CASES) {
  describe(`golden ${kase}: handover-pages.bin (KHOSPRS1)`, () => {
    let image: SparsePagesImage;
    const expectedFdt = new Uint8Array(fs.readFileSync(goldenFile(kase, "kho-root.fdt")));
    const decoded = decodedOf(kase);
    const index = indexOf(kase);

    beforeAll(() => {
      image = SparsePagesImage.open(decompressedGolden(kase, "handover-pages.bin.zst"));
    });
    afterAll(() => { image.close(); });

    it("indexes exactly the ranges the index lists", () => {
      expect(image.ranges).toEqual(index.ranges.map((r) => ({ start: parseInt(r.phys, 16), size: r.length })));
    });

    it("finds the root FDT by scanning for kho-v4 FDT pages", () => {
      const found = findKhoFdt(image, { methods: ["fdt-scan"] });
      expect(found.method).toBe("fdt-scan");
      expect(found.fdtAddr).toBe(decoded.root_fdt.phys);
      expect(found.candidates).toEqual([decoded.root_fdt.phys]);
      expect(sameBytes(found.fdt, expectedFdt)).toBe(true);
      expect(found.memoryMapPhys).toBe(decoded.root_fdt.preserved_memory_map);
    });

    const hasBootParams = index.pages.some((p) => p.what === "boot_params" && parseInt(p.phys, 16) === decoded.boot_params.pa);
    it(`finds it through boot_params -> setup_data -> kho_data (${hasBootParams ? "present" : "absent"} in this image)`, () => {
      if (!hasBootParams) {
        expect(() => findKhoFdt(image, { methods: ["x86-setup-data"] })).toThrow(KernelError);
        return;
      }
      for (const found of [findKhoFdt(image, { methods: ["x86-setup-data"] }), findKhoFdt(image)]) {
        expect(found.method).toBe("x86-setup-data");
        expect(sameBytes(found.fdt, expectedFdt)).toBe(true);
        expect(found.x86!.bootParams).toBe(decoded.boot_params.pa);
        expect(found.x86!.setupData).toEqual(decoded.boot_params.setup_data.map((s) => ({ phys: s.pa, next: s.next, type: s.type, len: s.len })));
        const kho = decoded.boot_params.setup_data.find((s) => s.kho_data)!.kho_data!;
        expect(found.x86!.khoData).toEqual({ fdtAddr: kho.fdt_addr, fdtSize: kho.fdt_size, scratchAddr: kho.scratch_addr, scratchSize: kho.scratch_size });
        expect(found.fdtAddr).toBe(kho.fdt_addr);
        expect(found.fdtSize).toBe(kho.fdt_size);
      }
    });

    it("walks the preserved-memory map to exactly decoded.json's runs", () => {
      // The sparse image holds the radix nodes but not every preserved page: runs are
      // checked against the machine's memory map instead.
      checkRadixWalk(image, expectedFdt, kase, inRam(systemRam(kase)));
    });

    it("holds every memfd folio page, matching the manifest's generator and sha256", () => {
      const pages = checkMemfdContents(image, kase);
      const folioPages = (decoded.luo?.sessions ?? []).flatMap((s) => s.files).reduce((n, f) => n + (f.memfd?.folios.reduce((m, x) => m + 2 ** x.order, 0) ?? 0), 0);
      expect(pages).toBeLessThanOrEqual(folioPages);
      if (folioPages > 0) expect(pages).toBeGreaterThan(0);
    });
  });
}

// ---- the 1 GiB raw dump of the minimal case ----------------------------------------------

describe("golden minimal: handover-mem.raw (1 GiB pmemsave)", () => {
  const kase = "minimal";
  let raw: RawDumpImage;
  const expectedFdt = new Uint8Array(fs.readFileSync(goldenFile(kase, "kho-root.fdt")));
  const decoded = decodedOf(kase);

  beforeAll(() => {
    raw = RawDumpImage.open(decompressedGolden(kase, "handover-mem.raw.zst", true));
  }, 120_000);
  afterAll(() => { raw.close(); });

  it("finds the root FDT automatically (x86 boot_params found by its header) and reads little", () => {
    const before = { ...raw.readStats };
    const found = findKhoFdt(raw);
    expect(found.method).toBe("x86-setup-data");
    expect(found.x86!.bootParams).toBe(decoded.boot_params.pa);
    expect(found.fdtAddr).toBe(decoded.root_fdt.phys);
    expect(sameBytes(found.fdt, expectedFdt)).toBe(true);
    // The top-down search stops at the handover's boot_params: it reads the memory above it
    // (to the chunk holding boot_params) and a few pages, not the whole gigabyte.
    const read = raw.readStats.bytes - before.bytes;
    expect(read).toBeLessThanOrEqual(raw.fileSize - decoded.boot_params.pa + KHO_FDT_SCAN_CHUNK_BYTES + 16 * PAGE_SIZE);
  });

  it("finds the same FDT by a full kho-v4 FDT page scan, and only one", () => {
    const found = findKhoFdt(raw, { methods: ["fdt-scan"] });
    expect(found.fdtAddr).toBe(decoded.root_fdt.phys);
    expect(found.candidates).toEqual([decoded.root_fdt.phys]);
    expect(sameBytes(found.fdt, expectedFdt)).toBe(true);
  });

  it("agrees with the sparse image on every page the sparse image holds", () => {
    const sparse = SparsePagesImage.open(decompressedGolden(kase, "handover-pages.bin.zst"));
    try {
      for (const r of sparse.ranges) expect(firstDifference(raw.read(r.start, r.size), sparse.read(r.start, r.size)), `0x${r.start.toString(16)}`).toBe(-1);
    } finally {
      sparse.close();
    }
  });

  it("walks the preserved-memory map to exactly decoded.json's runs", () => {
    checkRadixWalk(raw, expectedFdt, kase);
  });

  it("holds the memfd folio pages, matching the manifest's generator and sha256", () => {
    expect(checkMemfdContents(raw, kase)).toBeGreaterThan(0);
  });
});
