import { describe, expect, it } from "vitest";
import { goldenDtbs, libfdt161Verdicts } from "./support/golden.js";

describe("golden corpus", () => {
  it("is present and lists a libfdt 1.6.1 verdict for every dtc-tests blob", () => {
    const blobs = goldenDtbs();
    const verdicts = libfdt161Verdicts();
    const dtcTests = blobs.filter((b) => b.name.startsWith("dtc-tests/"));
    expect(blobs.filter((b) => b.name.startsWith("linux-6.1-arm64/")).length).toBeGreaterThan(0);
    expect(dtcTests.length).toBeGreaterThan(0);
    for (const b of dtcTests) expect(verdicts.has(b.name.slice("dtc-tests/".length)), b.name).toBe(true);
  });
});
