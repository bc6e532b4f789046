import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { memfdV0 } from "@liveupdate/memfd-luo-v0";
import { memfdV1 } from "@liveupdate/memfd-luo-v1";
import { memfdV2 } from "@liveupdate/memfd-luo-v2";
import { run } from "../src/index.js";

const tmp = mkdtempSync(join(tmpdir(), "luo-matrix-"));
const require = createRequire(import.meta.url);
/** The same module file the CLI imports, so the wrapper shares its memfd classes. */
const MEMFD_V2_URL = pathToFileURL(require.resolve("@liveupdate/memfd-luo-v2")).href;
const BUILTIN = [memfdV0.compatible, memfdV1.compatible, memfdV2.compatible];

/** The JSON document as the help documents it. */
interface MatrixJson {
  schema: string;
  memory: string;
  handlers: { compatible: string; source: string; builtin: boolean; workload: string }[];
  producers: string[];
  consumers: string[][];
  workload: { session: string; token: string; name: string; size: number; pos: number; seals: number; sha256: string }[];
  cells: {
    producer: string;
    consumers: string[];
    status: "ok" | "error" | "mismatch";
    label: string;
    stage: string | null;
    errno: string | null;
    message: string | null;
    cause: { errno: string; compatible: string | null } | null;
    verified: boolean;
    recovered: boolean | null;
    recovery: string | null;
  }[];
  summary: { cells: number; ok: number; failed: number; recovered: number; lost: number; notHandedOver: number };
}

async function luo(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await run(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

async function matrixJson(...argv: string[]): Promise<{ code: number; json: MatrixJson }> {
  const r = await luo("matrix", "--json", ...argv);
  return { code: r.code, json: JSON.parse(r.out) as MatrixJson };
}

/** A third-party handler module: memfd-v2's code under another compatible, plus a non-handler export. */
function writeModule(name: string, body: string): string {
  const path = join(tmp, name);
  writeFileSync(path, body);
  return path;
}

function delegatingHandler(compatible: string, retrieve = "(a) => memfdV2.retrieve(a)"): string {
  return `{
  compatible: ${JSON.stringify(compatible)},
  canPreserve: (f) => memfdV2.canPreserve(f),
  getId: (f) => memfdV2.getId(f),
  preserve: (a) => memfdV2.preserve(a),
  freeze: (a) => memfdV2.freeze(a),
  unfreeze: () => {},
  unpreserve: (a) => memfdV2.unpreserve(a),
  retrieve: ${retrieve},
  finish: (a) => memfdV2.finish(a),
}`;
}

const ACME = writeModule(
  "acme-handler.mjs",
  `import { memfdV2 } from ${JSON.stringify(MEMFD_V2_URL)};
export const ACME_VERSION = 1;
export const acmeMemfdV1 = ${delegatingHandler("acme-memfd-v1")};
export default acmeMemfdV1;
`,
);

/** Every subset of `items` with at least one member, as sorted-key strings. */
function subsetKeys(items: readonly string[]): Set<string> {
  const keys = new Set<string>();
  for (let mask = 1; mask < 1 << items.length; mask++) keys.add(items.filter((_, i) => (mask & (1 << i)) !== 0).sort().join("+"));
  return keys;
}

/** The first-principles shape of a matrix over `handlers`: every cell, and OK iff the registry has the producer. */
function expectStructure(json: MatrixJson, handlers: readonly string[]): void {
  expect(json.schema).toBe("luo-matrix/1");
  expect(json.producers).toEqual(handlers);
  expect(json.consumers.length).toBe(2 ** handlers.length - 1);
  expect(new Set(json.consumers.map((set) => [...set].sort().join("+")))).toEqual(subsetKeys(handlers));
  expect(json.cells.length).toBe(json.producers.length * json.consumers.length);
  json.cells.forEach((cell, i) => {
    const where = `${cell.producer} -> [${cell.consumers.join(",")}]`;
    expect(cell.producer, where).toBe(json.producers[Math.floor(i / json.consumers.length)]);
    expect(cell.consumers, where).toEqual(json.consumers[i % json.consumers.length]);
    if (cell.consumers.includes(cell.producer)) {
      expect(cell, where).toMatchObject({ status: "ok", label: "OK", errno: null, verified: true, recovered: null });
    } else {
      expect(cell, where).toMatchObject({
        status: "error",
        stage: "open",
        errno: "EIO",
        cause: { errno: "ENOENT", compatible: cell.producer },
        label: `EIO (ENOENT ${cell.producer})`,
        verified: false,
        recovered: true,
      });
      expect(cell.message, where).toContain(cell.producer);
    }
  });
  const ok = json.cells.filter((c) => c.consumers.includes(c.producer)).length;
  expect(json.summary).toEqual({ cells: json.cells.length, ok, failed: json.cells.length - ok, recovered: json.cells.length - ok, lost: 0, notHandedOver: 0 });
}

/** Parse the terminal table (one block): producer -> consumer set key -> cell text. */
function parseTable(text: string): Map<string, Map<string, string>> {
  const lines = text.split("\n");
  const rule = lines.findIndex((l) => /^-+( {2}-+)+$/.test(l));
  expect(rule).toBeGreaterThan(0);
  const spans: [number, number][] = [];
  for (const m of (lines[rule] ?? "").matchAll(/-+/g)) spans.push([m.index, m.index + m[0].length]);
  const cut = (line: string, [a, b]: [number, number]): string => line.slice(a, b).trim();
  const header = lines.slice(0, rule).reverse();
  const columns = spans.slice(1).map((span) => {
    const members: string[] = [];
    for (const line of header) {
      const name = cut(line, span);
      if (name === "") break;
      members.unshift(name);
    }
    return members.sort().join("+");
  });
  const table = new Map<string, Map<string, string>>();
  for (const line of lines.slice(rule + 1)) {
    if (line.trim() === "") break;
    const row = new Map<string, string>();
    columns.forEach((key, i) => row.set(key, cut(line, spans[i + 1] ?? [0, 0])));
    table.set(cut(line, spans[0] ?? [0, 0]), row);
  }
  return table;
}

/** The example third-party package (counters, not memfds): its built module, rebuilt when older than its sources. */
const ACME_DIR = fileURLToPath(new URL("../../../examples/acme-counter-handler/", import.meta.url));
const ACME_COUNTER = join(ACME_DIR, "dist", "index.js");

function acmeDistStale(): boolean {
  if (!existsSync(ACME_COUNTER)) return true;
  const built = statSync(ACME_COUNTER).mtimeMs;
  return readdirSync(join(ACME_DIR, "src")).some((f) => statSync(join(ACME_DIR, "src", f)).mtimeMs > built);
}

describe("luo matrix", () => {
  beforeAll(() => {
    if (acmeDistStale()) execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: ACME_DIR, stdio: "pipe" });
  }, 120_000);

  it("a module's matrixSubjects are the workload of its handlers: acme counters OK exactly where the registry has the producer", async () => {
    const producers = ["acme-counter-v1", "acme-counter-v2", "memfd-v2"];
    const { code, json } = await matrixJson("--handler", ACME_COUNTER, "--producers", producers.join(","));
    expect(code).toBe(0);
    const all = [...BUILTIN, "acme-counter-v1", "acme-counter-v2"];
    expect(json.handlers.map((h) => [h.compatible, h.workload])).toEqual(all.map((c) => [c, c.startsWith("acme") ? "subject" : "memfd"]));
    expect(json.producers).toEqual(producers);
    expect(new Set(json.consumers.map((set) => [...set].sort().join("+")))).toEqual(subsetKeys(all));
    expect(json.cells.length).toBe(producers.length * (2 ** all.length - 1));
    for (const cell of json.cells) {
      const where = `${cell.producer} -> [${cell.consumers.join(",")}]`;
      if (cell.consumers.includes(cell.producer)) {
        expect(cell, where).toMatchObject({ status: "ok", label: "OK", verified: true, recovered: null });
      } else {
        expect(cell, where).toMatchObject({ status: "error", stage: "open", label: `EIO (ENOENT ${cell.producer})`, verified: false, recovered: true });
        if (cell.producer.startsWith("acme")) expect(cell.recovery, where).toContain("verified every snapshot");
      }
    }
    const ok = json.cells.filter((c) => c.consumers.includes(c.producer)).length;
    expect(json.summary).toEqual({ cells: json.cells.length, ok, failed: json.cells.length - ok, recovered: json.cells.length - ok, lost: 0, notHandedOver: 0 });
  });

  it("a subject whose snapshot changes across the update is a MISMATCH; bad subjects exit 2", async () => {
    const url = JSON.stringify(pathToFileURL(ACME_COUNTER).href);
    const drifting = writeModule(
      "drifting.mjs",
      `import { acmeCounterV2, v2Subject } from ${url};
export { acmeCounterV2 };
let n = 0;
export const matrixSubjects = [{ ...v2Subject, snapshot: (f) => ({ ...v2Subject.snapshot(f), n: n++ }) }];
`,
    );
    const { code, json } = await matrixJson("--handler", drifting, "--producers", "acme-counter-v2", "--consumers", "acme-counter-v2");
    expect(code).toBe(1);
    expect(json.cells[0]).toMatchObject({ status: "mismatch", stage: "verify", label: "MISMATCH" });
    expect(json.cells[0]?.message).toContain("vm-1/seed-0: snapshot");
    const cases: [string, RegExp][] = [
      [`export const matrixSubjects = v2Subject;`, /export 'matrixSubjects' must be an array/],
      [`export const subjects = [{ handler: () => acmeCounterV2 }];`, /'subjects'\[0\]: makeFile, snapshot must be functions/],
      [`export const matrixSubjects = [{ ...v2Subject, handler: () => acmeCounterV1 }];`, /"acme-counter-v1" that is not one of the module's exported handlers \(acme-counter-v2\)/],
      [`export const matrixSubjects = [v2Subject, v2Subject];`, /two subjects for "acme-counter-v2"/],
      [`export const matrixSubjects = [{ ...v2Subject, handler: () => { throw new Error("nope"); } }];`, /handler\(\) threw: nope/],
    ];
    for (const [i, [body, message]] of cases.entries()) {
      const path = writeModule(`bad-subject-${i}.mjs`, `import { acmeCounterV1, acmeCounterV2, v2Subject } from ${url};\nexport { acmeCounterV2 };\n${body}\n`);
      const r = await luo("matrix", "--handler", path);
      expect(r.code, body).toBe(2);
      expect(r.err, body).toMatch(message);
    }
  });

  it("built-in handlers: OK exactly where the next kernel has the producer's compatible, every failure recovered", async () => {
    const { code, json } = await matrixJson();
    expect(code).toBe(0);
    expectStructure(json, BUILTIN);
    expect(json.handlers.map((h) => h.builtin)).toEqual([true, true, true]);
    expect(json.workload.length).toBeGreaterThan(1);
    expect(new Set(json.workload.map((f) => f.session)).size).toBeGreaterThan(1);
    expect(json.workload.some((f) => f.seals !== 0)).toBe(true);
    expect(new Set(json.workload.map((f) => f.size)).size).toBe(json.workload.length);
    for (const f of json.workload) expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("the table shows the same cells as --json, with a legend and the summary", async () => {
    const { json } = await matrixJson();
    const r = await luo("matrix", "--width", "1000");
    expect(r.code).toBe(0);
    const table = parseTable(r.out);
    expect([...table.keys()]).toEqual(json.producers);
    for (const cell of json.cells) expect(table.get(cell.producer)?.get([...cell.consumers].sort().join("+")), cell.producer).toBe(cell.label);
    expect(r.out).toContain("legend:");
    expect(r.out).toContain(`${json.summary.cells} cells: ${json.summary.ok} OK, ${json.summary.failed} failed, ${json.summary.recovered} recovered, 0 lost`);
    // Narrow: the columns wrap into blocks, each line within the width.
    const narrow = await luo("matrix", "--width", "80");
    const blocks = narrow.out.split("\n").filter((l) => /^columns \d+-\d+ of \d+$/.test(l));
    expect(blocks.length).toBeGreaterThan(1);
    const gridLines = narrow.out.slice(0, narrow.out.indexOf("legend:")).split("\n");
    for (const line of gridLines.slice(2)) expect(line.length, line).toBeLessThanOrEqual(80);
  });

  it("a third-party handler module given by path joins the rows and the columns", async () => {
    const { code, json } = await matrixJson("--handler", ACME);
    expect(code).toBe(0);
    expectStructure(json, [...BUILTIN, "acme-memfd-v1"]);
    expect(json.handlers.at(-1)).toEqual({ compatible: "acme-memfd-v1", source: ACME, builtin: false, workload: "memfd" });
    // Same code as memfd-v2, but dispatch is by exact compatible: memfd-v2 alone cannot take acme's records.
    const cross = json.cells.find((c) => c.producer === "acme-memfd-v1" && c.consumers.join("+") === "memfd-v2");
    expect(cross).toMatchObject({ status: "error", label: "EIO (ENOENT acme-memfd-v1)", recovered: true });
    const table = await luo("matrix", "--handler", ACME, "--width", "100000");
    expect(parseTable(table.out).get("acme-memfd-v1")?.get("acme-memfd-v1")).toBe("OK");
    // A default export that is an array: a module with two format versions.
    const pair = writeModule(
      "pair-handler.mjs",
      `import { memfdV2 } from ${JSON.stringify(MEMFD_V2_URL)};
export default [${delegatingHandler("pair-v1")}, ${delegatingHandler("pair-v2")}];
`,
    );
    const both = await matrixJson("--handler", pair, "--producers", "pair-v1,pair-v2", "--consumers", "pair-v2");
    expect(both.json.handlers.slice(3).map((h) => h.compatible)).toEqual(["pair-v1", "pair-v2"]);
    expect(both.json.cells.map((c) => c.label)).toEqual(["EIO (ENOENT pair-v1)", "OK"]);
  });

  it("on a terminal: colours, a progress line on stderr, the same alignment without the colours", async () => {
    let out = "";
    let err = "";
    const code = await run(["matrix", "--width", "1000"], { stdout: (t) => (out += t), stderr: (t) => (err += t), isTTY: true });
    expect(code).toBe(0);
    expect(out).toContain("\x1b[32mOK");
    expect(out).toContain("\x1b[31mEIO (ENOENT memfd-v1)");
    expect(err).toMatch(/running cell 21\/21/);
    const plain = (await luo("matrix", "--width", "1000")).out;
    // eslint-disable-next-line no-control-regex -- stripping the ANSI colour codes
    expect(out.replace(/\x1b\[[0-9;]*m/g, "")).toBe(plain);
  });

  it("--producers and --consumers choose rows and columns", async () => {
    const { code, json } = await matrixJson("--producers", "memfd-v1", "--consumers", "memfd-v2", "--consumers", "memfd-v2+memfd-v1");
    expect(code).toBe(0);
    expect(json.consumers).toEqual([["memfd-v2"], ["memfd-v2", "memfd-v1"]]);
    expect(json.cells.map((c) => c.label)).toEqual(["EIO (ENOENT memfd-v1)", "OK"]);
  });

  it("a handler that changes what it retrieves is a MISMATCH, not recovered, exit 1", async () => {
    const lossy = writeModule(
      "lossy-handler.mjs",
      `import { memfdV2 } from ${JSON.stringify(MEMFD_V2_URL)};
export const lossy = ${delegatingHandler("lossy-memfd", "(a) => { memfdV2.retrieve(a); a.file.lseek(0, 0); }")};
`,
    );
    const { code, json } = await matrixJson("--handler", lossy, "--producers", "lossy-memfd,memfd-v2", "--consumers", "lossy-memfd", "--consumers", "memfd-v2");
    expect(code).toBe(1);
    const [lossyOwn, lossyV2, v2Lossy, v2Own] = json.cells;
    expect(lossyOwn).toMatchObject({ status: "mismatch", stage: "verify", label: "MISMATCH", verified: false, recovered: false });
    expect(lossyOwn?.message).toContain("position 0");
    expect(lossyV2).toMatchObject({ status: "error", recovered: false });
    expect(v2Lossy).toMatchObject({ status: "error", recovered: true });
    expect(v2Own).toMatchObject({ status: "ok" });
    expect(json.summary.lost).toBe(2);
    const table = await luo("matrix", "--handler", lossy, "--producers", "lossy-memfd", "--consumers", "lossy-memfd");
    expect(table.code).toBe(1);
    expect(table.out).toContain("MISMATCH LOST");
  });

  it("a producer that cannot preserve the workload fails at preserve, hands nothing over, exit 1", async () => {
    const picky = writeModule(
      "picky-handler.mjs",
      `import { memfdV2 } from ${JSON.stringify(MEMFD_V2_URL)};
export const picky = { ...${delegatingHandler("picky-v1")}, canPreserve: () => false };
`,
    );
    const { code, json } = await matrixJson("--handler", picky, "--producers", "picky-v1,memfd-v2", "--consumers", "picky-v1,memfd-v2");
    expect(code).toBe(1);
    expect(json.cells[0]).toMatchObject({ producer: "picky-v1", status: "error", stage: "preserve", verified: false, recovered: false });
    expect(json.cells[0]?.label).toMatch(/^E[A-Z]+ \(preserve\)$/);
    expect(json.cells[1]).toMatchObject({ producer: "memfd-v2", status: "ok" });
    expect(json.summary).toMatchObject({ failed: 1, lost: 0, notHandedOver: 1 });
  });

  it("bad handler modules and bad options exit 2 with a clear message", async () => {
    const cases: [string[], RegExp][] = [
      [["--handler", join(tmp, "missing.mjs")], /missing\.mjs: cannot read it: ENOENT/],
      [["--handler", tmp], /not a file/],
      [["--handler", writeModule("none.mjs", "export const answer = 42;\n")], /exports no luo-core FileHandler/],
      [["--handler", writeModule("throws.mjs", "throw new Error('boom at load');\n")], /failed to load: boom at load/],
      [["--handler", writeModule("syntax.mjs", "export const = ;\n")], /failed to load/],
      [["--handler", writeModule("half.mjs", "export default { compatible: 'half-v1', canPreserve() { return true; } };\n")], /export 'default' is not a luo-core FileHandler: "half-v1" has no getId, preserve, unpreserve, retrieve, finish ops/],
      [["--handler", writeModule("long.mjs", `import { memfdV2 } from ${JSON.stringify(MEMFD_V2_URL)};\nexport const h = ${delegatingHandler("x".repeat(48))};\n`)], /must be 1\.\.47 bytes without NUL \(it is 48\)/],
      [["--handler", writeModule("clash.mjs", `import { memfdV2 } from ${JSON.stringify(MEMFD_V2_URL)};\nexport const h = ${delegatingHandler("memfd-v2")};\n`)], /"memfd-v2" is already given by @liveupdate\/memfd-luo-v2/],
      [["--producers", "memfd-v9"], /no handler "memfd-v9" \(known: memfd-v0, memfd-v1, memfd-v2\)/],
      [["--consumers", ","], /empty list/],
      [["--consumers", "memfd-v1+memfd-v1"], /names a handler twice/],
      [["--memory", "lots"], /not a size/],
      [["--memory", "1 MiB"], /outside 32 MiB/],
      [["--width", "abc"], /--width/],
      [["extra"], /unexpected argument 'extra'/],
      [["--frobnicate"], /Unknown option/],
    ];
    for (const [argv, message] of cases) {
      const r = await luo("matrix", ...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err, argv.join(" ")).toMatch(message);
      expect(r.out, argv.join(" ")).toBe("");
    }
  });

  it("--help documents the JSON schema", async () => {
    const r = await luo("matrix", "--help");
    expect(r.code).toBe(0);
    for (const field of ["producer", "consumers", "status", "errno", "message", "verified", "recovered", "luo-matrix/1", "matrixSubjects", "makeFile", "snapshot"]) expect(r.out).toContain(field);
    expect((await luo("--help")).out).toContain("matrix");
  });

  it("the built binary runs it (a spawned process)", () => {
    const bin = fileURLToPath(new URL("../dist/bin/luo.js", import.meta.url));
    const argv = ["matrix", "--json", "--handler", ACME, "--producers", "acme-memfd-v1,memfd-v0", "--consumers", "memfd-v0", "--consumers", "acme-memfd-v1"];
    const r = spawnSync(process.execPath, [bin, ...argv], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as MatrixJson;
    expect(json.cells.map((c) => [c.label, c.recovered])).toEqual([
      ["EIO (ENOENT acme-memfd-v1)", true],
      ["OK", null],
      ["OK", null],
      ["EIO (ENOENT memfd-v0)", true],
    ]);
    expect(spawnSync(process.execPath, [bin, "matrix", "--handler", join(tmp, "nope.mjs")]).status).toBe(2);
  });
});
