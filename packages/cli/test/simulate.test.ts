import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ElfCoreImage, findKhoFdt, POISON_BYTE, retrieveKhoSubtree } from "@liveupdate/kho";
import { decodeLuoState } from "@liveupdate/luo-core";
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE } from "@liveupdate/memfd";
import { decodeMemfdV2 } from "@liveupdate/memfd-luo-v2";
import { run } from "../src/index.js";
import { runSimulation } from "../src/simulate/runner.js";
import { buildScenario, FILE_KINDS, fillExpected, scenarioFiles, SCALES, sealsOf, type FileSpec, type ScenarioSize } from "../src/simulate/scenario.js";

const tmp = mkdtempSync(join(tmpdir(), "luo-simulate-"));

async function luo(argv: string[], isTTY = false): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await run(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), isTTY });
  return { code, out, err };
}

interface FileJson {
  token: string;
  name: string;
  kind: string;
  size: number;
  pos: number;
  seals: number;
  written: number;
  format: string | null;
  result: string;
  errno: string | null;
  problems: string[];
  sealsCarried: boolean;
  folios: Record<string, number> | null;
  sha256: string | null;
}

interface SimulateJson {
  schema: string;
  exitCode: number;
  ok: boolean;
  seed: number;
  machine: { memory: number; scratch: number };
  producer: string;
  consumer: string[];
  scenario: { vms: number; filesPerVm: number; fileSize: number };
  totals: { sessions: number; files: number; bytes: number; written: number; ok: number; recovered: number; failed: number };
  sessions: { name: string; files: FileJson[] }[];
  phases: { phase: string; ms: number }[];
  totalMs: number;
  preflight: { kind: string; errno: string; session?: string; token?: string; compatible?: string }[];
  failure: null | {
    openErrno: string;
    errno: string;
    message: string;
    failedAt: { session: string; token?: string; compatible?: string } | null;
    predicted: boolean;
    stampsBefore: number;
    stampsAfter: number;
    recoveryHandlers: string[];
  };
  image: null | { path: string; bytes: number; segments: number; fdtAddr: string; fdtSize: number };
}

async function simulateJson(...argv: string[]): Promise<{ code: number; json: SimulateJson; err: string }> {
  const r = await luo(["simulate", ...argv, "--json"]);
  return { code: r.code, json: JSON.parse(r.out) as SimulateJson, err: r.err };
}

/** sha256 of what `file` must hold, regenerated from the scenario (not from the run). */
function expectedSha256(file: FileSpec): string {
  const hash = createHash("sha256");
  const chunk = new Uint8Array(1 << 20);
  for (let at = 0; at < file.size; at += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, file.size - at));
    fillExpected(file, at, part);
    hash.update(part);
  }
  return hash.digest("hex");
}

function filesOf(json: SimulateJson): (FileJson & { session: string })[] {
  return json.sessions.flatMap((s) => s.files.map((f) => ({ ...f, session: s.name })));
}

const PHASES = ["populate", "preserve", "freeze", "serialize", "image", "kexec", "restore", "recover", "retrieve", "verify", "finish"];

describe("luo simulate: the default scenario", () => {
  it("with no arguments verifies every file and prints the table, the time breakdown and plain step lines", async () => {
    const r = await luo(["simulate"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const files = scenarioFiles(buildScenario(SCALES.default, 1));
    expect(r.out).toContain(`ok: ${files.length} of ${files.length} files in ${SCALES.default.vms} sessions retrieved and verified`);
    // One table row per file, each ending in "ok".
    for (const f of files) expect(r.out).toMatch(new RegExp(`^  ${f.session} +0x${f.token.toString(16)} +${f.name} +${f.kind} .* ok$`, "m"));
    for (const p of ["preserve", "freeze", "serialize", "kexec", "restore", "retrieve"]) expect(r.out).toMatch(new RegExp(`^  ${p} +[\\d.]+ m?s +[\\d.]+%$`, "m"));
    for (const step of ["boot", "populate", "preserve", "kexec", "restore", "retrieve", "verify"]) expect(r.out).toMatch(new RegExp(`^  ${step} +\\S`, "m"));
    // Not a terminal: no escape codes, no carriage returns.
    expect(r.out.includes("\x1b")).toBe(false);
    expect(r.out.includes("\r")).toBe(false);
  });

  it("--json: counts, sizes and sha256 agree with the scenario; every result ok", async () => {
    const { code, json } = await simulateJson();
    expect(code).toBe(0);
    const scenario = buildScenario(SCALES.default, json.seed);
    const specs = scenarioFiles(scenario);
    expect(json).toMatchObject({ schema: "luo-simulate/1", exitCode: 0, ok: true, producer: "memfd-v2", consumer: ["memfd-v2"], failure: null, image: null, preflight: [] });
    expect(json.scenario).toEqual({ vms: SCALES.default.vms, filesPerVm: SCALES.default.filesPerVm, fileSize: SCALES.default.fileSize });
    expect(json.machine.memory).toBe(8 * 2 ** 30);
    expect(json.machine.scratch).toBeGreaterThan(0);
    const files = filesOf(json);
    expect(json.sessions.map((s) => s.name)).toEqual(scenario.sessions.map((s) => s.name));
    expect(json.totals).toEqual({
      sessions: scenario.sessions.length,
      files: specs.length,
      bytes: files.reduce((n, f) => n + f.size, 0),
      written: files.reduce((n, f) => n + f.written, 0),
      ok: specs.length,
      recovered: 0,
      failed: 0,
    });
    expect(json.totals.bytes).toBe(specs.reduce((n, f) => n + f.size, 0));
    expect(new Set(files.map((f) => f.kind))).toEqual(new Set(FILE_KINDS));
    files.forEach((f, i) => {
      const spec = specs[i]!;
      expect(f).toMatchObject({ token: `0x${spec.token.toString(16)}`, name: spec.name, kind: spec.kind, size: spec.size, pos: spec.pos, seals: sealsOf(spec), format: "memfd-v2", result: "ok", errno: null, problems: [], sealsCarried: true });
      // The folios cover the file (holes are filled at preserve).
      const pages = Object.entries(f.folios ?? {}).reduce((n, [order, count]) => n + count * 2 ** Number(order), 0);
      expect(pages).toBeGreaterThanOrEqual(Math.ceil(spec.size / 4096));
      expect(f.sha256).toBe(expectedSha256(spec));
    });
    const sealed = files.filter((f) => f.kind === "sealed");
    expect(sealed.length).toBeGreaterThan(0);
    for (const f of sealed) expect(f.seals).toBe(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    const huge = files.filter((f) => f.kind === "huge");
    for (const f of huge) expect(Object.keys(f.folios ?? {})).toEqual(["9"]);
    const mthp = files.filter((f) => f.kind === "mthp");
    for (const f of mthp) expect(Object.keys(f.folios ?? {}).length).toBeGreaterThan(1);
    // Phases: the known ones, in order, none negative, adding up to the total.
    expect(json.phases.map((p) => p.phase)).toEqual(PHASES.filter((p) => p !== "image" && p !== "recover"));
    for (const p of json.phases) expect(p.ms).toBeGreaterThanOrEqual(0);
    expect(json.totalMs).toBeCloseTo(json.phases.reduce((n, p) => n + p.ms, 0), 1);
  });

  it("--seed and --vms/--files/--file-size shape the scenario; another seed, other contents", async () => {
    const size: ScenarioSize = { vms: 1, filesPerVm: 6, fileSize: 64 * 1024 };
    const a = await simulateJson("--vms", "1", "--files", "6", "--file-size", "64KiB", "--seed", "7");
    const b = await simulateJson("--vms", "1", "--files", "6", "--file-size", "64KiB", "--seed", "8");
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    const specs = scenarioFiles(buildScenario(size, 7));
    expect(filesOf(a.json).map((f) => f.name)).toEqual(specs.map((f) => f.name));
    expect(new Set(specs.map((f) => f.name)).size).toBe(specs.length);
    expect(filesOf(a.json).map((f) => f.sha256)).toEqual(specs.map(expectedSha256));
    const shaB = filesOf(b.json).map((f) => f.sha256);
    filesOf(a.json).forEach((f, i) => {
      expect(f.sha256).not.toBe(shaB[i]);
    });
  });

  it("an older producer: memfd-v1 into memfd-v0,memfd-v1 verifies, and reports that v1 does not carry seals", async () => {
    const { code, json } = await simulateJson("--producer", "memfd-v1", "--consumer", "memfd-v0,memfd-v1", "--scale", "small");
    expect(code).toBe(0);
    const files = filesOf(json);
    expect(files.every((f) => f.result === "ok" && f.format === "memfd-v1" && !f.sealsCarried)).toBe(true);
    const text = await luo(["simulate", "--producer", "memfd-v1", "--consumer", "memfd-v0,memfd-v1", "--scale", "small"]);
    expect(text.out).toContain("memfd-v1 does not carry seals");
  });
});

describe("luo simulate: a next kernel without the producer's handler", () => {
  it("exits 1 with EIO / ENOENT, predicted, the image intact and every file recovered with the producer's handler", async () => {
    const { code, json } = await simulateJson("--consumer", "memfd-v1", "--scale", "small");
    expect(code).toBe(1);
    expect(json.exitCode).toBe(1);
    expect(json.ok).toBe(false);
    const specs = scenarioFiles(buildScenario(SCALES.small, 1));
    expect(json.failure).toMatchObject({ openErrno: "EIO", errno: "ENOENT", predicted: true, recoveryHandlers: ["memfd-v2"] });
    expect(json.failure?.failedAt).toEqual({ session: specs[0]!.session, token: `0x${specs[0]!.token.toString(16)}`, compatible: "memfd-v2" });
    expect(json.failure?.stampsBefore).toBeGreaterThan(0);
    expect(json.failure?.stampsAfter).toBe(json.failure?.stampsBefore);
    expect(json.preflight.map((p) => `${p.session}/${p.token}`)).toEqual(specs.map((f) => `${f.session}/0x${f.token.toString(16)}`));
    expect(json.preflight.every((p) => p.errno === "ENOENT")).toBe(true);
    expect(json.totals).toMatchObject({ files: specs.length, ok: 0, recovered: specs.length, failed: 0 });
    filesOf(json).forEach((f, i) => {
      expect(f).toMatchObject({ result: "recovered", errno: "ENOENT", problems: [] });
      expect(f.sha256).toBe(expectedSha256(specs[i]!));
    });
    expect(json.phases.map((p) => p.phase)).toContain("recover");
  });

  it("says so in words: the errno, the prediction, the intact image", async () => {
    const r = await luo(["simulate", "--consumer", "none", "--scale", "small"]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("returned EIO; cause ENOENT");
    expect(r.out).toContain("as the handler sets predict");
    expect(r.out).toMatch(/image intact: (\d+) KHO-stamped runs before the failed open, \1 after/);
    expect(r.out).toMatch(/ENOENT, recovered: ok$/m);
  });
});

describe("luo simulate --out", () => {
  it("keeps an ELF core at the next kernel's entry point whose KHO FDT note leads to the LUO sessions and every memfd's bytes", async () => {
    const out = join(tmp, "handover.core");
    const { code, json } = await simulateJson("--scale", "small", "--out", out);
    expect(code).toBe(0);
    expect(json.image?.path).toBe(out);
    const scenario = buildScenario(SCALES.small, json.seed);
    const specs = scenarioFiles(scenario);
    const img = ElfCoreImage.open(out);
    try {
      expect(statSync(out).size).toBe(json.image?.bytes);
      const found = findKhoFdt(img);
      expect(found.method).toBe("elf-note");
      expect(`0x${found.fdtAddr.toString(16)}`).toBe(json.image?.fdtAddr);
      // At the entry point the next kernel has not built a root FDT of its own yet.
      expect(findKhoFdt(img, { methods: ["fdt-scan"] }).candidates).toEqual([found.fdtAddr]);
      expect(img.background).toBe(POISON_BYTE);
      const luoBlob = retrieveKhoSubtree(found.fdt, "LUO");
      const state = decodeLuoState(img, luoBlob.phys, luoBlob.size);
      expect(state.sessions.map((s) => s.name)).toEqual(scenario.sessions.map((s) => s.name));
      const records = state.sessions.flatMap((s) => s.files.map((f) => ({ session: s.name, ...f })));
      expect(records.map((f) => `${f.session}/${f.token}/${f.compatible}`)).toEqual(specs.map((f) => `${f.session}/${f.token}/memfd-v2`));
      // Every memfd, decoded from the image alone, holds what the scenario wrote.
      records.forEach((rec, i) => {
        const spec = specs[i]!;
        const memfd = decodeMemfdV2(img, Number(rec.data));
        expect({ size: memfd.size, pos: memfd.pos, seals: memfd.seals }).toEqual({ size: spec.size, pos: spec.pos, seals: sealsOf(spec) });
        const hash = createHash("sha256");
        for (let at = 0; at < spec.size; at += 1 << 20) hash.update(memfd.contents.read(at, Math.min(1 << 20, spec.size - at)));
        expect(hash.digest("hex")).toBe(expectedSha256(spec));
      });
    } finally {
      img.close();
    }
    const text = await luo(["simulate", "--scale", "small", "--out", join(tmp, "again.core")]);
    expect(text.out).toMatch(/^ {2}image +.*again\.core: ELF core/m);
    expect(text.out).toMatch(/^ {2}image +[\d.]+ m?s/m);
  });

  it("an unwritable --out is a usage error (exit 2)", async () => {
    const r = await luo(["simulate", "--scale", "small", "--out", join(tmp, "no", "such", "dir", "x.core")]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("ENOENT");
  });
});

describe("luo simulate: terminal output", () => {
  it("on a terminal draws a progress bar in place and colours the verdict", async () => {
    const r = await luo(["simulate"], true);
    expect(r.code).toBe(0);
    // Each redraw starts with "\r" and "erase line".
    const redraws = r.out.split("\r\x1b[2K").slice(1);
    expect(redraws.some((d) => /^ {2}populate +\[#*-*\] +\d+%/.test(d))).toBe(true);
    expect(redraws.some((d) => /^ {2}verify +\[#+\] +100%/.test(d))).toBe(true);
    expect(r.out).toContain("\x1b[32mok\x1b[0m");
  });
});

describe("luo simulate: usage", () => {
  it.each([
    [["--producer", "memfd-v9"], "unknown handler 'memfd-v9'"],
    [["--consumer", "memfd-v2,bogus"], "unknown handler 'bogus'"],
    [["--consumer", "memfd-v2,memfd-v2"], "twice"],
    [["--scale", "huge"], "--scale"],
    [["--vms", "0"], "--vms"],
    [["--vms", "3.5"], "--vms"],
    [["--files", "100000"], "--files"],
    [["--file-size", "12"], "--file-size"],
    [["--file-size", "lots"], "--file-size"],
    [["--memory", "eight"], "--memory"],
    [["--memory", "64MiB"], "cannot hold them"],
    [["--memory", "100000001"], "4 KiB pages"],
    [["--vms", "3", "--file-size", "1GiB", "--memory", "64TiB"], "holds every written byte"],
    [["--seed", "-1"], "--seed"],
    [["--seed", "4294967296"], "--seed"],
    [["--frobnicate"], "Unknown option"],
    [["extra"], "unexpected argument"],
  ])("%j exits 2 with a message", async (argv, message) => {
    const r = await luo(["simulate", ...argv]);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toContain(message);
    expect(r.err).toContain("usage: luo simulate");
  });

  it("--help documents the options, the exit codes, the phases and the JSON schema", async () => {
    const r = await luo(["simulate", "--help"]);
    expect(r.code).toBe(0);
    for (const word of ["--producer", "--consumer", "--memory", "--scale", "--vms", "--files", "--file-size", "--seed", "--out", "--json", "exit status", "luo-simulate/1"]) expect(r.out).toContain(word);
    for (const p of PHASES) expect(r.out).toContain(p);
  });
});

describe("the luo binary", () => {
  it("runs `luo simulate` with no arguments (the README's first command) and exits 0", () => {
    const bin = fileURLToPath(new URL("../dist/bin/luo.js", import.meta.url));
    const r = spawnSync(process.execPath, [bin, "simulate"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ {2}ok: \d+ of \d+ files/m);
  });
});

describe("runSimulation: verify catches what it must", () => {
  const quiet = { begin: () => undefined, progress: () => undefined, end: () => undefined };
  it("a byte flipped in a preserved folio after kexec: that file fails at that offset, the others pass, exit 1", () => {
    const scenario = buildScenario({ vms: 1, filesPerVm: 2, fileSize: 64 * 1024 }, 3);
    const victim = scenarioFiles(scenario)[0]!;
    const offset = 100;
    const result = runSimulation({
      scenario,
      memory: 256 * 2 ** 20,
      producer: "memfd-v2",
      consumer: ["memfd-v2"],
      observer: quiet,
      beforeRestore: (next) => {
        const handed = next.inspectIncoming()!;
        const rec = handed.sessions[0]!.files.find((f) => f.token === victim.token)!;
        const memfd = decodeMemfdV2(next.machine.memory, Number(rec.data));
        const k = Array.from(memfd.folios.indices).indexOf(0);
        const phys = memfd.folios.pfns[k]! * 4096 + offset;
        next.machine.memory.write(phys, Uint8Array.of(next.machine.memory.read(phys, 1)[0]! ^ 0xff));
      },
    });
    expect(result.exitCode).toBe(1);
    expect(result.files.map((f) => f.result)).toEqual(["failed", "ok"]);
    expect(result.files[0]!.problems).toEqual([`contents differ at byte ${offset}`]);
    expect(result.files[0]!.retrieved?.sha256).not.toBe(expectedSha256(victim));
  });
});
