/**
 * The real Linux 7.2 memfd-v2 records of the golden handovers (`full`, `minimal`): found by
 * walking the image (root FDT -> LUO -> sessions -> files), decoded with this package's
 * decoder, and retrieved with this package's handler on a next kernel whose memory is the
 * image. Every expectation comes from the case's manifest.json / decoded.json.
 */
import { createHash } from "node:crypto";
import { KhoIncoming, PAGE_SIZE, PhysicalMemory, SparsePagesImage, walkRadixMap, type Machine } from "@liveupdate/kho";
import { MemfdFile } from "@liveupdate/memfd";
import { afterAll, describe, expect, it } from "vitest";
import { MEMFD_V2_COMPATIBLE, decodeMemfdV2, memfdV2 } from "../src/index.js";
import { opArgs } from "./support/ops.js";
import { goldenJson, handoverPagesPath, systemRam, walkLuoFiles, type GoldenCase } from "./support/golden.js";

interface ManifestFile {
  name: string;
  token: string;
  size: number;
  pos: number;
  seals: number;
  sha256: string;
}
interface Manifest {
  sessions: Array<{ name: string; files: ManifestFile[] }>;
}
interface Addresses {
  kho_root_fdt: string;
}
interface DecodedJson {
  luo: { sessions: Array<{ name: string; files: Array<{ manifest_name: string; memfd?: { folios: Array<{ pfn: number; flags: number; index: number; order: number }> } }> }> };
}

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

const opened: SparsePagesImage[] = [];
afterAll(() => {
  for (const image of opened) image.close();
});

function open(kase: GoldenCase): { image: SparsePagesImage; fdtPhys: number; manifest: Manifest } {
  const image = SparsePagesImage.open(handoverPagesPath(kase));
  opened.push(image);
  return { image, fdtPhys: parseInt((goldenJson(kase, "addresses.json") as Addresses).kho_root_fdt, 16), manifest: goldenJson(kase, "manifest.json") as Manifest };
}

function manifestFile(manifest: Manifest, session: string, token: bigint): ManifestFile {
  const s = manifest.sessions.find((x) => x.name === session);
  const f = s?.files.find((x) => BigInt(x.token) === token);
  if (f === undefined) throw new Error(`no manifest entry for ${session} / 0x${token.toString(16)}`);
  return f;
}

describe.each(["full", "minimal"] as const)("real Linux 7.2 handover: %s", (kase) => {
  it("every memfd-v2 record decodes to the manifest's size, pos, seals and sha256", () => {
    const { image, fdtPhys, manifest } = open(kase);
    const { files, memoryMapPhys } = walkLuoFiles(image, fdtPhys);
    const orders = new Map<number, number>();
    walkRadixMap(image, memoryMapPhys, (phys, order) => orders.set(phys, order));
    const decodedJson = goldenJson(kase, "decoded.json") as DecodedJson;

    const memfds = files.filter((f) => f.compatible === MEMFD_V2_COMPATIBLE);
    expect(memfds.length).toBe(manifest.sessions.reduce((n, s) => n + s.files.length, 0));
    expect(files.length).toBe(memfds.length);
    for (const f of memfds) {
      const want = manifestFile(manifest, f.session, f.token);
      const d = decodeMemfdV2(image, Number(f.data), { orderOf: (phys) => orders.get(phys) });
      expect([d.size, d.pos, d.seals, d.flags]).toEqual([want.size, want.pos, want.seals, 0]);
      expect(sha256(d.contents.read(0, d.size))).toBe(want.sha256);
      // 7.2 marks every folio DIRTY | UPTODATE.
      for (let i = 0; i < d.folios.count; i++) expect(d.folios.flags[i]).toBe(3);
      // The folios, with their orders from the KHO map, are the independent decoder's.
      // (matched by the manifest's file name: decoded.json's u64 tokens do not survive JSON.parse)
      const ref = decodedJson.luo.sessions.find((s) => s.name === f.session)!.files.find((x) => x.manifest_name === want.name)!.memfd!.folios;
      const ours = Array.from({ length: d.folios.count }, (_, i) => ({ pfn: d.folios.pfns[i], flags: d.folios.flags[i], index: d.folios.indices[i], order: orders.get(d.folios.pfns[i]! * PAGE_SIZE) }));
      expect(ours).toEqual(ref);
      // Without the map, folio extents are inferred from the next record: the same bytes (7.2 fills holes).
      if (d.size > 0) expect(sha256(decodeMemfdV2(image, Number(f.data)).contents.read(0, d.size))).toBe(want.sha256);
    }
  });

  it("the handler retrieves every record on a next kernel whose memory is the image", () => {
    const { image, fdtPhys, manifest } = open(kase);
    const { files } = walkLuoFiles(image, fdtPhys);
    // The next kernel's memory: the machine's RAM, poison where the image has nothing.
    const memory = new PhysicalMemory(systemRam(kase), "poison");
    const buffer = new Uint8Array(1 << 20);
    for (const r of image.dataRanges) {
      for (let at = r.start; at < r.start + r.size; at += buffer.length) {
        const chunk = buffer.subarray(0, Math.min(buffer.length, r.start + r.size - at));
        image.readInto(at, chunk);
        memory.write(at, chunk);
      }
    }
    const incoming = new KhoIncoming(memory, { fdtPhys });
    expect(incoming.state).toBe("revived");
    const freed: number[] = [];
    const machine = { memory, incoming, kho: { freeFolio: (phys: number) => freed.push(phys) } } as unknown as Machine;
    // What each retrieve must take: its record, array pages, chunks and folios (from the decoder).
    let expectStamps = 0;
    let expectFreed = 0;
    for (const f of files) {
      const d = decodeMemfdV2(memory, Number(f.data));
      expectStamps += 1 + (d.folios.layout?.chunks.length ?? 0) + (d.vmalloc?.totalPages ?? 0) + d.folios.count;
      expectFreed += d.vmalloc?.totalPages ?? 0;
    }
    const before = incoming.stampedCount;
    for (const f of files) {
      const want = manifestFile(manifest, f.session, f.token);
      const args = opArgs(memfdV2, machine, { serializedData: f.data });
      memfdV2.retrieve(args);
      const file = args.file as MemfdFile;
      expect([file.size, file.position, file.seals]).toEqual([want.size, want.pos, want.seals]);
      expect(sha256(file.pread(0, file.size))).toBe(want.sha256);
    }
    expect(before - incoming.stampedCount).toBe(expectStamps);
    expect(freed.length).toBe(expectFreed); // the folio arrays, vfree'd
  });
});
