import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { Fdt } from "../src/read.js";
import { fdtToJson, formatDts, formatValue, guessValueKind } from "../src/format.js";
import { goldenDtbs, libfdt161Verdicts } from "./support/golden.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("value formatting follows dtc's guess", () => {
  it("strings, string lists, cells, bytes, empty", () => {
    expect(formatValue(enc("okay\0"))).toBe('"okay"');
    expect(formatValue(enc("a\0bc\0"))).toBe('"a\\0bc"');
    expect(formatValue(enc('q"\\\t\0'))).toBe('"q\\"\\\\\\t"');
    expect(formatValue(new Uint8Array([0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]))).toBe("<0x01 0xdeadbeef>");
    expect(formatValue(new Uint8Array([1, 2, 0xff]))).toBe("[01 02 ff]");
    expect(guessValueKind(new Uint8Array())).toBe("empty");
    // More NULs than text: not a string even though it ends in NUL.
    expect(guessValueKind(enc("a\0\0\0"))).toBe("cells");
    expect(guessValueKind(enc("\0"))).toBe("bytes");
  });
});

describe("formatDts equals `dtc -I dtb -O dts` on every golden blob dtc decodes", () => {
  const verdicts = libfdt161Verdicts();
  const blobs = goldenDtbs().filter((b) => (verdicts.get(b.name.replace(/^dtc-tests\//, "")) ?? 0) === 0);
  it(`${blobs.length} blobs`, () => {
    let compared = 0;
    let withNameProperties = 0;
    for (const b of blobs) {
      // dtc 1.6.1 loops on some hostile blobs (phandle-args-overflow): bounded, and skipped if so.
      const r = spawnSync("dtc", ["-q", "-I", "dtb", "-O", "dts", b.path], { encoding: "utf8", maxBuffer: 64 << 20, timeout: 5000 });
      if (r.status !== 0) continue;
      const fdt = Fdt.from(b.bytes);
      expect(formatDts(fdt, { omitRedundantNameProperties: true }), b.name).toBe(r.stdout);
      // Without the dtc fixup the dump differs only where a redundant `name` property exists.
      if (formatDts(fdt) !== r.stdout) withNameProperties++;
      compared++;
    }
    expect(compared).toBeGreaterThan(blobs.length * 0.9);
    expect(withNameProperties).toBeLessThan(compared / 4);
  });
});

describe("offsets and JSON", () => {
  const [largest] = goldenDtbs()
    .filter((b) => b.name.startsWith("linux-6.1-arm64/"))
    .sort((a, b) => b.bytes.length - a.bytes.length);
  it("every offset printed points at the token it names", () => {
    const bytes = largest!.bytes;
    const fdt = Fdt.from(bytes);
    const text = formatDts(fdt, { offsets: true });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let lines = 0;
    for (const m of text.matchAll(/^\/\* @0x([0-9a-f]+) \*\/ \t*(.*)$/gm)) {
      const token = view.getUint32(parseInt(m[1]!, 16));
      expect(token, m[2]).toBe(m[2]!.endsWith("{") ? 1 : 3);
      lines++;
    }
    expect(lines).toBe(fdt.nodeCount + fdt.propertyCount);
  });
  it("JSON lists every node flat with its parent and every property with its bytes", () => {
    const fdt = Fdt.from(largest!.bytes);
    const json = fdtToJson(fdt);
    expect(json.nodes.length).toBe(fdt.nodeCount);
    expect(json.nodes.reduce((n, x) => n + x.properties.length, 0)).toBe(fdt.propertyCount);
    expect(json.nodes[0]!.parent).toBe(-1);
    for (const [i, n] of json.nodes.entries()) {
      if (i > 0) expect(json.nodes[n.parent]!.depth).toBe(n.depth - 1);
      for (const p of n.properties) expect(p.hex.length).toBe(p.length * 2);
    }
    // Survives a JSON round trip whatever the depth.
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });
  it("a tree nested 100000 deep prints without recursion", () => {
    const depth = 100_000;
    const struct: number[] = [];
    for (let i = 0; i < depth; i++) struct.push(1, i === 0 ? 0 : 0x61000000); // root "", then "a" nested
    for (let i = 0; i < depth; i++) struct.push(2);
    struct.push(9);
    const structBytes = struct.length * 4;
    const total = 40 + 16 + structBytes;
    const blob = new Uint8Array(total);
    const v = new DataView(blob.buffer);
    [0xd00dfeed, total, 56, total, 40, 17, 16, 0, 0, structBytes].forEach((x, i) => { v.setUint32(i * 4, x); });
    struct.forEach((x, i) => { v.setUint32(56 + i * 4, x); });
    const fdt = Fdt.from(blob);
    const text = formatDts(fdt);
    expect(text.split("\n").filter((l) => l.trim() === "};").length).toBe(depth);
    expect(text.length).toBeLessThan(blob.length * 40);
    expect(fdtToJson(fdt).nodes.length).toBe(depth);
  });
});
