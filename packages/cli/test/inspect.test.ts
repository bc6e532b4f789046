/**
 * `luo inspect` on the real-kernel golden images (every expectation derived from the case's
 * manifest.json and decoded.json), on an ELF core of a simulated live update, and on hostile
 * images. The memory-map page is checked in a real headless browser.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { KHO_FDT_SIZE, Machine, PAGE_SIZE, listKhoSubtrees, writeElfCore } from "@liveupdate/kho";
import { LiveUpdate, decodeLuoState, type LuoFile } from "@liveupdate/luo-core";
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, MFD_ALLOW_SEALING, MemfdFile, memfd } from "@liveupdate/memfd";
import { MEMFD_V0_COMPATIBLE, MemfdV0Handler } from "@liveupdate/memfd-luo-v0";
import { MEMFD_V1_COMPATIBLE, MemfdV1Handler } from "@liveupdate/memfd-luo-v1";
import { MEMFD_V2_COMPATIBLE, memfdV2 } from "@liveupdate/memfd-luo-v2";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/index.js";
import { MAP_CELLS } from "../src/inspect/html.js";
import { MEMFD_DECODER_COMPATIBLES } from "../src/inspect/memfd-decoders.js";
import { INSPECT_SCHEMA, type InspectReport } from "../src/inspect/report.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const GOLDEN = path.resolve(here, "../../../../shared/golden/real-kernel");
const CASES = ["full", "minimal", "no-sessions"] as const;
type Case = (typeof CASES)[number];
const BIN = path.resolve(here, "../dist/bin/luo.js");
const ARTIFACTS = path.resolve(here, "../.vitest");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "luo-inspect-test-"));
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- helpers -----------------------------------------------------------------------------

async function luo(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await run(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

async function inspectJson(...argv: string[]): Promise<{ code: number; report: InspectReport; err: string }> {
  const r = await luo("inspect", ...argv, "--json");
  return { code: r.code, report: JSON.parse(r.out) as InspectReport, err: r.err };
}

/** Same cache as kho's image tests: decompressed once per machine, keyed by size and mtime. */
function decompressed(kase: Case, name: string, long = false): string {
  const src = path.join(GOLDEN, kase, name);
  const st = fs.statSync(src);
  const dir = path.join(os.tmpdir(), "liveupdate-kho-golden-cache");
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, `${kase}-${name.replace(/\.zst$/, "")}-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (fs.existsSync(out)) return out;
  const part = `${out}.${process.pid}.${Date.now()}.part`;
  execFileSync("zstd", ["-d", "-q", "-f", ...(long ? ["--long=30"] : []), "-o", part, src], { stdio: ["ignore", "ignore", "inherit"] });
  fs.renameSync(part, out);
  return out;
}

interface ManifestFile { name: string; token: string; size: number; pos: number; seals: number; sha256: string }
interface Manifest { sessions: Array<{ name: string; order: number; files: ManifestFile[] }> }
interface Decoded {
  root_fdt: { phys: number; preserved_memory_map: number };
  radix_tree: { node_pages: Array<{ level: number; pa: number }>; preserved: Array<[number, number]> };
}
const manifestOf = (k: Case): Manifest => JSON.parse(fs.readFileSync(path.join(GOLDEN, k, "manifest.json"), "utf8")) as Manifest;
const decodedOf = (k: Case): Decoded => JSON.parse(fs.readFileSync(path.join(GOLDEN, k, "decoded.json"), "utf8")) as Decoded;

/** What the report must say about sessions and memfds, from the manifest. */
function expectManifest(report: InspectReport, manifest: Manifest): void {
  const sessions = [...manifest.sessions].sort((a, b) => a.order - b.order);
  expect(report.luo).not.toBeNull();
  expect(report.luo!.sessions.map((s) => s.name)).toEqual(sessions.map((s) => s.name));
  for (const s of sessions) {
    const got = report.luo!.sessions.find((x) => x.name === s.name)!;
    expect(got.files.map((f) => f.token), s.name).toEqual(s.files.map((f) => f.token));
  }
  const want = sessions.flatMap((s) => s.files.map((f) => ({ session: s.name, token: f.token, size: f.size, pos: f.pos, seals: f.seals, sha256: f.sha256 })));
  const got = report.memfds.map((m) => ({ session: m.session, token: m.token, size: m.size, pos: m.pos, seals: m.seals, sha256: m.sha256 }));
  expect(got).toEqual(want);
}

/** Runs per order of decoded.json's radix walk. */
function ordersOf(decoded: Decoded): Array<{ order: number; runs: number; bytes: number }> {
  const m = new Map<number, number>();
  for (const [, order] of decoded.radix_tree.preserved) m.set(order, (m.get(order) ?? 0) + 1);
  return [...m.entries()].sort(([a], [b]) => a - b).map(([order, runs]) => ({ order, runs, bytes: runs * 2 ** order * PAGE_SIZE }));
}

/** Every key of the schema, with the JSON type of its value. */
function expectSchema(r: InspectReport): void {
  expect(r.schema).toBe(INSPECT_SCHEMA);
  expect(Object.keys(r).sort()).toEqual(["image", "kho", "luo", "memfds", "metadata", "preserved", "problems", "schema"]);
  const hexRe = /^0x[0-9a-f]+$/;
  expect(r.kho.fdt.addr).toMatch(hexRe);
  expect(r.kho.memoryMap).toMatch(hexRe);
  for (const s of r.kho.subtrees) expect(s.phys).toMatch(hexRe);
  for (const m of r.memfds) {
    expect(Object.keys(m).sort()).toEqual(["compatible", "folios", "foliosByOrder", "note", "pages", "pos", "record", "seals", "session", "sha256", "size", "token"]);
    expect(m.token).toMatch(hexRe);
    expect(typeof m.session).toBe("string");
    expect(typeof m.size).toBe("number");
    expect(typeof m.pos).toBe("number");
    expect(m.seals === null || typeof m.seals === "number").toBe(true);
    expect(m.sha256 === null || /^[0-9a-f]{64}$/.test(m.sha256)).toBe(true);
  }
  for (const m of r.metadata) expect(["fdt", "radix", "subtree", "luo", "memfd-record"]).toContain(m.kind);
}

// ---- golden real-kernel images -----------------------------------------------------------

for (const kase of CASES) {
  describe(`golden ${kase}: handover-pages.bin (KHOSPRS1)`, () => {
    let image: string;
    beforeAll(() => {
      image = decompressed(kase, "handover-pages.bin.zst");
    });

    it("lists the manifest's sessions, tokens, sizes, positions, seals and sha256 values", async () => {
      const { code, report } = await inspectJson(image);
      expect(report.problems).toEqual([]);
      expect(code).toBe(0);
      expectSchema(report);
      const manifest = manifestOf(kase);
      if (manifest.sessions.length === 0) {
        expect(report.luo?.sessions).toEqual([]);
        expect(report.memfds).toEqual([]);
      } else expectManifest(report, manifest);
    });

    it("walks the preserved runs decoded.json lists, and finds the FDT it names", async () => {
      const { report } = await inspectJson(image);
      const decoded = decodedOf(kase);
      expect(report.kho.fdt.addr).toBe(`0x${decoded.root_fdt.phys.toString(16)}`);
      expect(report.kho.memoryMap).toBe(`0x${decoded.root_fdt.preserved_memory_map.toString(16)}`);
      expect(report.preserved!.byOrder).toEqual(ordersOf(decoded));
      expect(report.preserved!.nodePages).toEqual(decoded.radix_tree.node_pages.map((n) => ({ phys: `0x${n.pa.toString(16)}`, level: n.level })));
      expect(report.kho.dts).toContain('compatible = "kho-v4"');
    });

    it("prints every sha256 of the manifest in the text report", async () => {
      const r = await luo("inspect", image);
      expect(r.code).toBe(0);
      for (const s of manifestOf(kase).sessions) for (const f of s.files) expect(r.out).toContain(f.sha256);
      expect(r.out).toContain("preserved memory");
    });
  });
}

describe("golden minimal: compressed and raw images", () => {
  it("accepts the .zst sparse image as it ships (decompressed to a temporary file)", async () => {
    const { code, report } = await inspectJson(path.join(GOLDEN, "minimal", "handover-pages.bin.zst"));
    expect(code).toBe(0);
    expect(report.image.compressed).toBe(true);
    expect(report.image.format).toBe("khosprs1");
    expectManifest(report, manifestOf("minimal"));
  });

  it("decodes the 1 GiB raw dump, finding the FDT through boot_params, or at --fdt-addr", async () => {
    const raw = decompressed("minimal", "handover-mem.raw.zst", true);
    const decoded = decodedOf("minimal");
    const auto = await inspectJson(raw);
    expect(auto.code).toBe(0);
    expect(auto.report.image.format).toBe("raw-dump");
    expect(auto.report.kho.fdt.method).toBe("x86-setup-data");
    expect(auto.report.kho.scratch!.length).toBeGreaterThan(0);
    expectManifest(auto.report, manifestOf("minimal"));
    expect(auto.report.preserved!.byOrder).toEqual(ordersOf(decoded));

    const given = await inspectJson(raw, "--fdt-addr", `0x${decoded.root_fdt.phys.toString(16)}`);
    expect(given.code).toBe(0);
    expect(given.report.kho.fdt.method).toBe("given");
    expect(given.report.memfds).toEqual(auto.report.memfds);

    const wrong = await luo("inspect", raw, "--fdt-addr", `0x${(decoded.root_fdt.phys + PAGE_SIZE).toString(16)}`);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/^luo: .*kho-fdt: .*\(rule [\w.-]+, at phys 0x[0-9a-f]+\)\n$/);
  });

  it("the real binary prints the same JSON (spawned once)", () => {
    const raw = decompressed("minimal", "handover-mem.raw.zst", true);
    const r = spawnSync(process.execPath, [BIN, "inspect", raw, "--json"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expectManifest(JSON.parse(r.stdout) as InspectReport, manifestOf("minimal"));
  });
});

// ---- an ELF core of a simulated live update ----------------------------------------------

/** A memfd handler that only takes memfds whose name starts with `prefix` (to mix formats in one kernel). */
function only<T extends { canPreserve(file: LuoFile): boolean }>(handler: T, prefix: string): T {
  const original = handler.canPreserve.bind(handler);
  handler.canPreserve = (file: LuoFile): boolean => original(file) && file instanceof MemfdFile && file.name.startsWith(prefix);
  return handler;
}

interface Expected { session: string; token: string; compatible: string; size: number; pos: number; seals: number | null; sha256: string }

describe("an ELF core written at kexec of a simulated machine", () => {
  const core = path.join(tmp, "handover.core");
  const foreign = path.join(tmp, "foreign.core");
  const expected: Expected[] = [];
  let foreignToken = "";

  beforeAll(() => {
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [only(new MemfdV0Handler(), "v0"), only(new MemfdV1Handler(), "v1"), memfdV2] });
    const dev = lu.open();
    const add = (session: ReturnType<typeof dev.createSession>, name: string, token: bigint, fill: (f: MemfdFile) => void, compatible: string): void => {
      const f = memfd.create(lu.machine, { name, flags: MFD_ALLOW_SEALING, ...(name.includes("huge") ? { huge: "always" as const } : {}) });
      fill(f);
      session.preserveFd(f, token);
      const hasSeals = compatible === "memfd-v2";
      expected.push({ session: session.name, token: `0x${token.toString(16)}`, compatible, size: f.size, pos: f.position, seals: hasSeals ? f.seals : null, sha256: createHash("sha256").update(f.pread(0, f.size)).digest("hex") });
    };
    const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (seed + i * 31 + (i >> 12)) & 0xff);
    const a = dev.createSession("vm-a");
    add(a, "v0-small", 0x10n, (f) => { f.write(pattern(10_000, 1)); f.lseek(123, 0); }, "memfd-v0");
    add(a, "v1-sparse", 0x11n, (f) => { f.pwrite(5 * PAGE_SIZE, pattern(3 * PAGE_SIZE + 7, 2)); }, "memfd-v1");
    const b = dev.createSession("vm-b");
    add(b, "v2-sealed", 0xdeadbeefcafe0001n, (f) => { f.write(pattern(2 * PAGE_SIZE, 3)); f.addSeals(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW); }, "memfd-v2");
    add(b, "v2-huge", 0x13n, (f) => { f.write(pattern(4 * 1024 * 1024, 4)); }, "memfd-v2");
    add(b, "v2-empty", 0x14n, () => undefined, "memfd-v2");
    dev.createSession("vm-empty");

    // After LUO serialized (its hook was registered first), before the next kernel runs.
    lu.machine.onBeforeKexec((m: Machine) => {
      writeElfCore(m.memory, core, { khoFdt: { addr: m.kho.fdtPhys, size: KHO_FDT_SIZE } });
      // A second core where one file's compatible names a handler nobody ships.
      const tree = listKhoSubtrees(m.memory.read(m.kho.fdtPhys, KHO_FDT_SIZE)).find((s) => s.name === "LUO")!;
      const file = decodeLuoState(m.memory, tree.phys, tree.size).sessions.find((s) => s.name === "vm-a")!.files[1]!;
      foreignToken = `0x${file.token.toString(16)}`;
      const compat = new Uint8Array(48);
      compat.set(new TextEncoder().encode("acme-widget-v3"));
      m.memory.write(file.entryPhys, compat);
      writeElfCore(m.memory, foreign, { khoFdt: { addr: m.kho.fdtPhys, size: KHO_FDT_SIZE } });
    });
    lu.kexec({ handlers: [memfdV2] });
  });

  it("decodes every memfd with its format's decoder: sizes, positions, seals, sha256 of the contents", async () => {
    const { code, report } = await inspectJson(core);
    expect(report.problems).toEqual([]);
    expect(code).toBe(0);
    expectSchema(report);
    expect(report.image.format).toBe("elf-core");
    expect(report.kho.fdt.method).toBe("elf-note");
    expect(report.luo!.sessions.map((s) => s.name)).toEqual(["vm-a", "vm-b", "vm-empty"]);
    expect(report.memfds.map((m) => ({ session: m.session, token: m.token, compatible: m.compatible, size: m.size, pos: m.pos, seals: m.seals, sha256: m.sha256 }))).toEqual(expected);
    const huge = report.memfds.find((m) => m.token === "0x13")!;
    expect(huge.foliosByOrder.some((o) => o.order > 0)).toBe(true);
    expect(huge.pages * PAGE_SIZE).toBe(huge.size);
  });

  it("dispatches on exactly the handler packages' compatible strings", () => {
    expect([...MEMFD_DECODER_COMPATIBLES].sort()).toEqual([MEMFD_V0_COMPATIBLE, MEMFD_V1_COMPATIBLE, MEMFD_V2_COMPATIBLE].sort());
  });

  it("lists a file of an unknown compatible with 'no decoder' and still decodes the others", async () => {
    const { code, report } = await inspectJson(foreign);
    expect(code).toBe(0);
    const file = report.luo!.sessions[0]!.files.find((f) => f.token === foreignToken)!;
    expect(file).toMatchObject({ compatible: "acme-widget-v3", decoder: null });
    expect(report.memfds.map((m) => m.token)).toEqual(expected.map((e) => e.token).filter((t) => t !== foreignToken));
    const text = await luo("inspect", foreign);
    expect(text.out).toMatch(/acme-widget-v3\s+no decoder/);
  });

  it("writes a self-contained memory-map page that renders in headless chromium", async () => {
    const html = path.join(tmp, "core.html");
    const r = await luo("inspect", core, "--html", html);
    expect(r.code).toBe(0);
    const page = fs.readFileSync(html, "utf8");
    expect(page).not.toMatch(/<script|<link|src=|url\(/);
    const report = (await inspectJson(core)).report;
    await checkInBrowser(html, report, "inspect-elf-core");
  });
});

/** Load the page in chromium: the grid has every cell, the FDT's cell says so; keep a screenshot. */
async function checkInBrowser(html: string, report: InspectReport, name: string): Promise<void> {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`file://${html}`);
    const grid = page.locator("#memory-map");
    expect(await grid.locator(".cell").count()).toBe(MAP_CELLS);
    const base = parseInt((await grid.getAttribute("data-base"))!, 16);
    const cellBytes = Number(await grid.getAttribute("data-cell-bytes"));
    const fdtCell = Math.floor((parseInt(report.kho.fdt.addr, 16) - base) / cellBytes);
    expect(await grid.locator(".cell").nth(fdtCell).getAttribute("data-kind")).toBe("fdt");
    expect(await grid.locator('.cell[data-kind="radix"]').count()).toBeGreaterThan(0);
    expect(await grid.locator('.cell[data-kind="preserved"], .cell[data-kind="memfd-record"]').count()).toBeGreaterThan(0);
    const box = await grid.boundingBox();
    expect(box!.width).toBeGreaterThan(500);
    expect(box!.height).toBeGreaterThan(200);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  } finally {
    await browser.close();
  }
}

describe("the memory map of a real handover", () => {
  it("renders the full case with its scratch areas", async () => {
    const image = decompressed("full", "handover-pages.bin.zst");
    const html = path.join(tmp, "full.html");
    const r = await luo("inspect", image, "--html", html);
    expect(r.code).toBe(0);
    const report = (await inspectJson(image)).report;
    await checkInBrowser(html, report, "inspect-golden-full");
  });
});

// ---- hostile images ------------------------------------------------------------------------

/** Physical address -> offset in a KHOSPRS1 file, from its record headers. */
function sparseOffsetOf(bytes: Uint8Array, phys: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(8, true));
  let at = 16;
  for (let i = 0; i < n; i++) {
    const start = Number(view.getBigUint64(at, true));
    const len = Number(view.getBigUint64(at + 8, true));
    if (phys >= start && phys < start + len) return at + 16 + (phys - start);
    at += 16 + len;
  }
  throw new Error(`0x${phys.toString(16)} is not in the image`);
}

function expectTypedFailure(r: { code: number; err: string }): void {
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/^luo: /);
  expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  expect(r.err).not.toMatch(/RangeError|TypeError/);
}

describe("hostile images", () => {
  const write = (name: string, bytes: Uint8Array): string => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, bytes);
    return p;
  };

  it("garbage, empty, truncated ELF / KHOSPRS1 / zstd files: exit 1 with a typed message", async () => {
    let seed = 12345;
    const garbage = Uint8Array.from({ length: 256 * 1024 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
    const sparse = new Uint8Array(fs.readFileSync(decompressed("minimal", "handover-pages.bin.zst")));
    const cases: Array<[string, Uint8Array]> = [
      ["garbage.bin", garbage],
      ["empty.bin", new Uint8Array(0)],
      ["elf-header-only.core", Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, ...new Uint8Array(20))],
      ["truncated.sprs", sparse.subarray(0, 5000)],
      ["zstd-garbage.zst", Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, ...garbage.subarray(0, 100))],
    ];
    for (const [name, bytes] of cases) {
      const r = await luo("inspect", write(name, bytes));
      expectTypedFailure(r);
      expect(r.out, name).toBe("");
    }
    const machine = Machine.boot({ memory: "64 MiB" });
    const whole = path.join(tmp, "small.core");
    writeElfCore(machine.memory, whole, { khoFdt: { addr: machine.kho.fdtPhys, size: KHO_FDT_SIZE } });
    expect((await luo("inspect", whole)).code).toBe(0);
    const core = new Uint8Array(fs.readFileSync(whole));
    for (const cut of [100, Math.floor(core.length / 2), core.length - 1]) {
      expectTypedFailure(await luo("inspect", write(`truncated-${cut}.core`, core.subarray(0, cut))));
    }
    expect((await luo("inspect", path.join(tmp, "missing.bin"))).code).toBe(2);
    expect((await luo("inspect")).code).toBe(2);
    expect((await luo("inspect", "x", "--fdt-addr", "zz")).code).toBe(2);
  });

  it("a corrupt LUO blob is a listed problem (exit 1) while the KHO part is still shown", async () => {
    const source = decompressed("minimal", "handover-pages.bin.zst");
    const { report } = await inspectJson(source);
    const luoPhys = parseInt(report.kho.subtrees.find((s) => s.name === "LUO")!.phys, 16);
    const bytes = new Uint8Array(fs.readFileSync(source));
    bytes.set(new TextEncoder().encode("luo-v9"), sparseOffsetOf(bytes, luoPhys));
    const r = await inspectJson(write("bad-luo.sprs", bytes));
    expect(r.code).toBe(1);
    expect(r.report.luo).toBeNull();
    expect(r.report.problems).toEqual([expect.objectContaining({ where: "LUO", message: expect.stringMatching(/rule compatible/) as unknown })]);
    expect(r.report.preserved!.runs).toBe(report.preserved!.runs);
  });

  it("random damage to every metadata page never crashes: exit 0 or 1, typed messages only", async () => {
    const source = decompressed("full", "handover-pages.bin.zst");
    const { report } = await inspectJson(source);
    const original = new Uint8Array(fs.readFileSync(source));
    const targets = report.metadata.map((m) => ({ offset: sparseOffsetOf(original, parseInt(m.phys, 16)), size: Math.min(m.size, PAGE_SIZE) }));
    let seed = 99;
    const rand = (n: number): number => ((seed = (seed * 1664525 + 1013904223) >>> 0) % n);
    const file = path.join(tmp, "damaged.sprs");
    const codes = new Set<number>();
    for (let round = 0; round < 150; round++) {
      const bytes = original.slice();
      const t = targets[rand(targets.length)]!;
      for (let k = 0; k < 1 + rand(8); k++) bytes[t.offset + rand(t.size)] = rand(256);
      fs.writeFileSync(file, bytes);
      const r = await luo("inspect", file, "--json", "--hash-limit", "0");
      codes.add(r.code);
      expect([0, 1]).toContain(r.code);
      if (r.out !== "") expect((JSON.parse(r.out) as InspectReport).schema).toBe(INSPECT_SCHEMA);
      else expectTypedFailure(r);
    }
    expect(codes.has(1)).toBe(true);
  });
});
