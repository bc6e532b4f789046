import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { decodeTree, fdtErrorCodeName } from "@liveupdate/fdt-codec";
import { run } from "../src/index.js";

const GOLDEN = fileURLToPath(new URL("../../../../shared/golden/dtb/", import.meta.url));
const EXAMPLE = fileURLToPath(new URL("../examples/virt-liveupdate.dtb", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "luo-cli-"));

async function luo(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await run(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

function verdicts(): [string, number][] {
  return readFileSync(join(GOLDEN, "dtc-tests", "libfdt-1.6.1-check_full.txt"), "utf8")
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .map(([name, code]) => [name!, Number(code)]);
}

describe("luo fdt check", () => {
  it("exit code and JSON code equal libfdt 1.6.1 on every dtc-tests blob", async () => {
    const list = verdicts();
    expect(list.length).toBeGreaterThan(0);
    for (const [name, expected] of list) {
      const r = await luo("fdt", "check", join(GOLDEN, "dtc-tests", name), "--json");
      const json = JSON.parse(r.out) as { valid: boolean; code: string | null; offset: number | null; message: string };
      expect(r.code, name).toBe(expected === 0 ? 0 : 1);
      expect(json.valid, name).toBe(expected === 0);
      expect(json.code, name).toBe(expected === 0 ? null : fdtErrorCodeName(expected));
      if (expected !== 0) expect(typeof json.offset, name).toBe("number");
    }
  });
  it("strict mode lists problems with rule and offset", async () => {
    const r = await luo("fdt", "check", "--mode", "strict", join(GOLDEN, "dtc-tests", "bad_node_char.dtb"));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FDT_ERR_\w+ at byte \d+ \[[\w.-]+\]/);
    const ok = await luo("fdt", "check", "--mode", "strict", EXAMPLE);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain("valid (strict)");
  });
  it("usage errors exit 2, unreadable input exits 2, garbage exits 1", async () => {
    expect((await luo("fdt", "check")).code).toBe(2);
    expect((await luo("fdt", "check", EXAMPLE, "--mode", "lax")).code).toBe(2);
    expect((await luo("fdt", "frobnicate")).code).toBe(2);
    expect((await luo("fdt", "check", join(tmp, "missing.dtb"))).err).toContain("ENOENT");
    const junk = join(tmp, "junk.bin");
    writeFileSync(junk, new Uint8Array(64).fill(0x5a));
    const r = await luo("fdt", "check", junk, "--json");
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ valid: false, code: "FDT_ERR_BADMAGIC" });
    const d = await luo("fdt", "dump", junk);
    expect(d.code).toBe(1);
    expect(d.err).toContain("FDT_ERR_BADMAGIC");
  });
});

describe("luo fdt convert", () => {
  const overlayMade = join(GOLDEN, "linux-6.1-arm64", "xilinx");
  it("--layout dtc equals `dtc -I dtb -O dtb` on a blob that was not in dtc layout", async () => {
    const src = spawnSync("sh", ["-c", `ls ${overlayMade}/*.dtb | head -1`], { encoding: "utf8" }).stdout.trim();
    const out = join(tmp, "dtc.dtb");
    const r = await luo("fdt", "convert", src, "-o", out);
    expect(r.code).toBe(0);
    const ref = spawnSync("dtc", ["-q", "-I", "dtb", "-O", "dtb", src], { maxBuffer: 64 << 20 }).stdout;
    expect(Buffer.compare(readFileSync(out), ref)).toBe(0);
  });
  it("--layout sw and --layout packed keep the tree", async () => {
    const input = new Uint8Array(readFileSync(EXAMPLE));
    for (const layout of ["sw", "packed"]) {
      const out = join(tmp, `${layout}.dtb`);
      expect((await luo("fdt", "convert", EXAMPLE, "-o", out, "--layout", layout)).code).toBe(0);
      const bytes = new Uint8Array(readFileSync(out));
      expect(decodeTree(bytes)).toEqual(decodeTree(input));
      expect((await luo("fdt", "check", out)).code).toBe(0);
    }
    // The sequential writer puts the reserve map at 48, the packed layout at 40.
    expect(readFileSync(join(tmp, "sw.dtb")).readUInt32BE(16)).toBe(48);
    expect(readFileSync(join(tmp, "packed.dtb")).readUInt32BE(16)).toBe(40);
  });
});

describe("luo fdt dump", () => {
  it("prints what dtc -O dts prints", async () => {
    const r = await luo("fdt", "dump", EXAMPLE);
    expect(r.code).toBe(0);
    expect(r.out).toBe(spawnSync("dtc", ["-q", "-I", "dtb", "-O", "dts", EXAMPLE], { encoding: "utf8" }).stdout);
  });
  it("--json gives header, reserve map and every node", async () => {
    const r = await luo("fdt", "dump", EXAMPLE, "--json");
    const json = JSON.parse(r.out) as { header: { totalsize: number }; reserveMap: unknown[]; nodes: { name: string }[] };
    expect(json.header.totalsize).toBe(readFileSync(EXAMPLE).length);
    expect(json.reserveMap).toEqual([{ address: "0x48000000", size: "0x100000" }]);
    expect(json.nodes.map((n) => n.name)).toContain("kho-scratch@7c000000");
  });
});

describe("the luo binary", () => {
  it("runs as a process with the documented exit codes", () => {
    const bin = fileURLToPath(new URL("../dist/bin/luo.js", import.meta.url));
    const ok = spawnSync(process.execPath, [bin, "fdt", "check", EXAMPLE], { encoding: "utf8" });
    expect(ok.status).toBe(0);
    const bad = spawnSync(process.execPath, [bin, "fdt", "check", join(GOLDEN, "dtc-tests", "two_roots.dtb")], { encoding: "utf8" });
    expect(bad.status).toBe(1);
    expect(spawnSync(process.execPath, [bin, "nope"]).status).toBe(2);
  });
});
