import { describe, expect, it } from "vitest";
import { headerSizeForVersion, alignTag, FdtError, fdtErrorCodeName, nodeNameMatches } from "../src/index.js";

describe("layout", () => {
  it("gives libfdt's header size per version", () => {
    expect([1, 2, 3, 16, 17, 18].map(headerSizeForVersion)).toEqual([28, 32, 36, 36, 40, 40]);
  });
  it("aligns to 4", () => {
    expect([0, 1, 3, 4, 5].map(alignTag)).toEqual([0, 4, 4, 4, 8]);
  });
});

describe("errors", () => {
  it("maps codes both ways and names offset and rule", () => {
    const e = new FdtError("FDT_ERR_TRUNCATED", 12, "header.totalsize", "blob shorter than totalsize");
    expect(e.libfdtValue).toBe(-8);
    expect(fdtErrorCodeName(-8)).toBe("FDT_ERR_TRUNCATED");
    expect(e.message).toContain("at byte 12");
    expect(e.format).toBe("fdt");
  });
});

describe("names", () => {
  it("matches libfdt's unit-address rule", () => {
    expect(nodeNameMatches("cpu@0", "cpu")).toBe(true);
    expect(nodeNameMatches("cpu@0", "cpu@0")).toBe(true);
    expect(nodeNameMatches("cpu@0", "cpu@1")).toBe(false);
    expect(nodeNameMatches("cpus", "cpu")).toBe(false);
  });
});
