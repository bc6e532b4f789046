/**
 * The model against a real Linux 7.2 handover (golden/real-kernel): the root FDT it builds
 * from the same addresses is byte-identical to the kernel's, and its walker and incoming
 * side read the kernel's radix map exactly as the independent reference decoder did.
 * Every expectation comes from the case's own JSON/FDT, never from constants.
 */
import { FdtOffsets } from "@liveupdate/fdt-codec";
import { describe, expect, it } from "vitest";
import { KHO_FDT_SIZE, KHO_KEXEC_METADATA_NAME, KHO_KEXEC_METADATA_SIZE, PAGE_SIZE } from "../src/abi.js";
import { decodeKexecMetadata, encodeKexecMetadata } from "../src/kexec-metadata.js";
import { KhoIncoming } from "../src/kho-incoming.js";
import { KhoRootFdtPage, checkKhoRootFdt, readU64Le } from "../src/kho-root-fdt.js";
import { Machine } from "../src/machine.js";
import { PhysicalMemory } from "../src/memory.js";
import { walkRadixMap } from "../src/radix-map.js";
import { SparseImage, hexNumber, readGoldenBytes, readGoldenJson } from "./support/khosprs1.js";

interface Addresses {
  kho_data: { fdt_addr: string; fdt_size: string };
  "preserved_memory_map(radix root)": string;
  sub_blobs: Record<string, { phys: string; size: number }>;
  radix_node_pages: { level: number; pa: string }[];
}

interface Decoded {
  root_fdt: { phys: number; preserved_memory_map: number; subnodes: { name: string; preserved_data: number; blob_size: number }[] };
  radix_tree: { root: number; preserved: [number, number][]; node_pages: { level: number; pa: number }[] };
  kexec_metadata: { previous_release: string; kexec_count: number };
}

const CASES = ["full", "minimal", "no-sessions"] as const;

/** The kernel's add order: the reverse of the document order (newest node first). */
function addOrderOf(decoded: Decoded): string[] {
  return decoded.root_fdt.subnodes.map((s) => s.name).reverse();
}

function sortRuns(runs: readonly (readonly [number, number])[]): [number, number][] {
  return runs.map(([p, o]) => [p, o] as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

describe.each(CASES)("real kernel case %s", (caseName) => {
  const addresses = readGoldenJson(caseName, "addresses.json") as Addresses;
  const decoded = readGoldenJson(caseName, "decoded.json") as Decoded;
  const kernelFdt = readGoldenBytes(caseName, "kho-root.fdt");
  const image = SparseImage.load(caseName);

  // The addresses, from addresses.json, cross-checked against the FDT's own properties.
  const fdtPhys = hexNumber(addresses.kho_data.fdt_addr);
  const radixRoot = hexNumber(addresses["preserved_memory_map(radix root)"]);
  const reader = new FdtOffsets(kernelFdt);
  const mapProp = reader.getprop(0, "preserved-memory-map");

  it("the FDT's own properties agree with addresses.json", () => {
    expect(mapProp).toBeDefined();
    expect(readU64Le(mapProp!)).toBe(radixRoot);
    for (const [name, blob] of Object.entries(addresses.sub_blobs)) {
      const node = reader.subnodeOffset(0, name);
      expect(node).toBeGreaterThanOrEqual(0);
      expect(readU64Le(reader.getprop(node, "preserved-data")!)).toBe(hexNumber(blob.phys));
      expect(readU64Le(reader.getprop(node, "blob-size")!)).toBe(blob.size);
    }
  });

  it("builds the root FDT byte for byte (kexec-metadata added first, newest node first)", () => {
    // kho_init adds kexec-metadata; every later sub-tree (LUO at late_initcall) comes after.
    // The kernel's document order is newest first, so the add order is its reverse.
    const documentOrder = decoded.root_fdt.subnodes.map((s) => s.name);
    const addOrder = addOrderOf(decoded);
    expect(addOrder[0]).toBe(KHO_KEXEC_METADATA_NAME);

    const page = KhoRootFdtPage.create(radixRoot);
    for (const name of addOrder) {
      const blob = addresses.sub_blobs[name]!;
      page.addSubtree(name, hexNumber(blob.phys), blob.size);
    }
    expect(page.bytes().length).toBe(kernelFdt.length);
    expect(Buffer.from(page.bytes()).equals(Buffer.from(kernelFdt))).toBe(true);

    // The whole page, tail included, equals the page in the kernel's memory.
    const realPage = new Uint8Array(KHO_FDT_SIZE);
    image.readInto(fdtPhys, realPage);
    expect(Buffer.from(page.page).equals(Buffer.from(realPage))).toBe(true);
    expect(page.subtrees().map((s) => s.name)).toEqual(documentOrder);
  });

  it("the kexec-metadata blob is the kernel's, byte for byte", () => {
    const blob = readGoldenBytes(caseName, "blobs/kexec-metadata.bin");
    const meta = decoded.kexec_metadata;
    expect(Buffer.from(encodeKexecMetadata(meta.previous_release, meta.kexec_count)).equals(Buffer.from(blob))).toBe(true);
    expect(decodeKexecMetadata(blob, blob.length)).toEqual({ version: 1, previousRelease: meta.previous_release, kexecCount: meta.kexec_count });
  });

  it("a model machine's root FDT page is what the verified builder makes from its addresses", () => {
    const m = Machine.boot({ memory: "256 MiB", release: decoded.kexec_metadata.previous_release });
    const lastSubtree = addOrderOf(decoded)[1]!;
    const blob = m.kho.allocPreserve(addresses.sub_blobs[lastSubtree]!.size);
    m.kho.addSubtree(lastSubtree, blob, addresses.sub_blobs[lastSubtree]!.size);
    const page = KhoRootFdtPage.create(m.kho.radix.rootPhys);
    page.addSubtree(KHO_KEXEC_METADATA_NAME, m.kho.kexecMetadataPhys, KHO_KEXEC_METADATA_SIZE);
    page.addSubtree(lastSubtree, blob, addresses.sub_blobs[lastSubtree]!.size);
    expect(Buffer.from(m.memory.read(m.kho.fdtPhys, KHO_FDT_SIZE)).equals(Buffer.from(page.page))).toBe(true);
    // Same length as the kernel's: only the four addresses differ.
    expect(m.kho.rootFdt().length).toBe(kernelFdt.length);
  });

  it("the next kernel's FDT check accepts the kernel's page", () => {
    const verdict = checkKhoRootFdt(kernelFdt);
    expect(verdict).toEqual({ valid: true, memoryMapPhys: decoded.root_fdt.preserved_memory_map });
  });

  it("walks the kernel's radix map to the reference decoder's runs and node pages", () => {
    const runs: [number, number][] = [];
    const result = walkRadixMap(image, radixRoot, (phys, order) => runs.push([phys, order]));
    expect(result.runs).toBe(decoded.radix_tree.preserved.length);
    expect(sortRuns(runs)).toEqual(sortRuns(decoded.radix_tree.preserved));
    const nodes = result.nodes.map((n) => ({ level: n.level, pa: n.phys }));
    const byPa = (a: { pa: number }, b: { pa: number }): number => a.pa - b.pa;
    expect([...nodes].sort(byPa)).toEqual(
      addresses.radix_node_pages.map((n) => ({ level: n.level, pa: hexNumber(n.pa) })).sort(byPa),
    );
    // Key order: larger orders first, ascending addresses within an order.
    for (let i = 1; i < runs.length; i++) {
      const [p0, o0] = runs[i - 1]!;
      const [p1, o1] = runs[i]!;
      expect(o1 < o0 || (o1 === o0 && p1 > p0)).toBe(true);
    }
  });

  it("boots the next kernel's incoming side from the image", () => {
    // Memory = the captured ranges (every preserved run and map page is among them).
    const ranges = [...image.ranges()];
    const memory = new PhysicalMemory(ranges.map((r) => ({ start: r.phys, size: r.bytes.length })), "poison");
    for (const r of ranges) memory.write(r.phys, r.bytes);
    const incoming = new KhoIncoming(memory, { fdtPhys, fdtSize: hexNumber(addresses.kho_data.fdt_size) });
    expect(incoming.state).toBe("revived");
    expect(incoming.memoryMapPhys).toBe(radixRoot);
    expect(sortRuns(incoming.stampedRuns().map((r) => [r.phys, r.order]))).toEqual(sortRuns(decoded.radix_tree.preserved));
    for (const [name, blob] of Object.entries(addresses.sub_blobs)) {
      expect(incoming.retrieveSubtree(name)).toEqual({ phys: hexNumber(blob.phys), size: blob.size });
    }
    expect(incoming.previousRelease).toBe(decoded.kexec_metadata.previous_release);
    expect(incoming.kexecCount).toBe(decoded.kexec_metadata.kexec_count);
    expect(Buffer.from(incoming.rootFdt()!).equals(Buffer.from(kernelFdt))).toBe(true);
    // Each run restores once; the stamp is on the head page only.
    const [phys, order] = decoded.radix_tree.preserved[0]!;
    if (order > 0) expect(incoming.stampOf(phys + PAGE_SIZE)).toBeUndefined();
    expect(incoming.restoreFolio(phys)).toBe(order);
    expect(() => incoming.restoreFolio(phys)).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(incoming.stampedCount).toBe(decoded.radix_tree.preserved.length - 1);
  });
});
