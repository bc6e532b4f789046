/**
 * The LUO state of a real Linux 7.2 handover, decoded by `decodeLuoState` from the golden
 * sparse page images, must equal the independent reference decode (decoded.json) and the
 * plan (manifest.json): every address, block, count, name byte, compatible, data and token.
 * Expectations come from the JSON files only.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LUO_FILES_PER_BLOCK, LUO_SESSIONS_PER_BLOCK, LUO_SESSION_SER_SIZE, decodeLuoState, findUnretrievable, type LuoStateView } from "../src/index.js";
import { GOLDEN_CASES, big, goldenJson, goldenPath, openGoldenImage, type GoldenCase } from "./support/golden.js";

interface Block {
  pa: number;
  next: number;
  count: number;
}
interface DecodedFile {
  compatible: string;
  data: number | string;
  token: number | string;
}
interface DecodedSession {
  name: string;
  name_raw_hex: string;
  files_pa: number;
  count: number;
  file_blocks: Block[];
  files: DecodedFile[];
}
interface DecodedLuo {
  pa: number;
  size: number;
  compatible: string;
  liveupdate_num: number;
  sessions_pa: number;
  flbs_pa: number;
  flb_header: { pgcnt: number; count: number; entries: { name: string; data: number; count: number }[] };
  session_blocks: Block[];
  sessions: DecodedSession[];
}
interface Manifest {
  sessions: { name: string; order: number; files: { name: string; token: string }[] }[];
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

describe.each(GOLDEN_CASES)("golden real-kernel LUO state: %s", (kase: GoldenCase) => {
  let golden: ReturnType<typeof openGoldenImage>;
  let view: LuoStateView;
  const ref = (goldenJson(kase, "decoded.json") as { luo: DecodedLuo }).luo;
  const manifest = goldenJson(kase, "manifest.json") as Manifest;

  beforeAll(() => {
    golden = openGoldenImage(kase);
    view = decodeLuoState(golden.image, golden.luoPhys, golden.luoSize);
  });
  afterAll(() => {
    golden.cleanup();
  });

  it("luo_ser: the blob the root FDT names, as decoded.json and blobs/LUO.bin have it", () => {
    expect(golden.luoPhys).toBe(ref.pa);
    expect(golden.luoSize).toBe(ref.size);
    expect(view.compatible).toBe(ref.compatible);
    expect(view.liveupdateNum).toBe(big(ref.liveupdate_num));
    expect(view.sessionsPhys).toBe(ref.sessions_pa);
    expect(view.flbsPhys).toBe(ref.flbs_pa);
    const blob = new Uint8Array(32);
    golden.image.readInto(golden.luoPhys, blob);
    expect(hex(blob)).toBe(hex(fs.readFileSync(goldenPath(kase, "blobs/LUO.bin"))));
  });

  it("FLB page", () => {
    expect(view.flbs).toBeDefined();
    expect(view.flbs?.pgcnt).toBe(big(ref.flb_header.pgcnt));
    expect(view.flbs?.count).toBe(ref.flb_header.count);
    expect(view.flbs?.entries.map((e) => ({ name: e.name, data: e.data, count: e.count }))).toEqual(
      ref.flb_header.entries.map((e) => ({ name: e.name, data: big(e.data), count: big(e.count) })),
    );
  });

  it("session chain: blocks and records", () => {
    expect(view.sessionBlocks.map((b) => ({ pa: b.phys, next: b.next, count: b.count }))).toEqual(ref.session_blocks);
    expect(view.sessionBlocks.length).toBe(Math.ceil(ref.sessions.length / LUO_SESSIONS_PER_BLOCK));
    expect(view.sessions.length).toBe(ref.sessions.length);
    expect(view.warnings).toEqual([]);
    for (const [i, s] of view.sessions.entries()) {
      const r = ref.sessions[i]!;
      expect(s.name).toBe(r.name);
      expect(s.filesPhys).toBe(r.files_pa);
      expect(s.count).toBe(r.count);
      expect(s.fileBlocks.map((b) => ({ pa: b.phys, next: b.next, count: b.count }))).toEqual(r.file_blocks);
      expect(s.fileBlocks.length).toBe(Math.ceil(r.count / LUO_FILES_PER_BLOCK));
      // The raw 64-byte name field, byte for byte.
      const raw = new Uint8Array(64);
      golden.image.readInto(s.entryPhys, raw);
      expect(hex(raw)).toBe(r.name_raw_hex);
      // Entry addresses follow the 80-byte layout inside the blocks.
      const block = view.sessionBlocks[Math.floor(i / LUO_SESSIONS_PER_BLOCK)]!;
      expect(s.entryPhys).toBe(block.phys + 16 + (i % LUO_SESSIONS_PER_BLOCK) * LUO_SESSION_SER_SIZE);
      expect(s.files.map((f) => ({ compatible: f.compatible, data: f.data, token: f.token, terminated: f.compatibleTerminated }))).toEqual(
        r.files.map((f) => ({ compatible: f.compatible, data: big(f.data), token: big(f.token), terminated: true })),
      );
    }
  });

  it("matches the plan (manifest.json): session names in order, tokens in order", () => {
    const planned = [...manifest.sessions].sort((a, b) => a.order - b.order);
    expect(view.sessions.map((s) => s.name)).toEqual(planned.map((s) => s.name));
    for (const [i, s] of view.sessions.entries()) {
      expect(s.files.map((f) => f.token)).toEqual(planned[i]!.files.map((f) => BigInt(f.token)));
    }
  });

  it("pre-flight over the image: a memfd-v2 kernel takes everything, a memfd-v1 one nothing", () => {
    const total = ref.sessions.reduce((n, s) => n + s.files.length, 0);
    const compatibles = new Set(ref.sessions.flatMap((s) => s.files.map((f) => f.compatible)));
    expect(findUnretrievable(view, [...compatibles])).toEqual([]);
    const missing = findUnretrievable(view, ["memfd-v1"]);
    expect(missing.length).toBe(compatibles.has("memfd-v1") ? 0 : total);
    if (total > 0) expect(missing[0]).toMatchObject({ kind: "no-handler", errno: "ENOENT", session: ref.sessions.find((s) => s.files.length > 0)!.name });
  });
});
