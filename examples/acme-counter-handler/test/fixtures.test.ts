/**
 * The frozen fixtures of every released format decode with what this package ships now.
 *
 * Decision (see the README): a next kernel dispatches by exact compatible, so v2 cannot take
 * a v1 record under its own name; the package keeps the v1 handler as the reader of the 1.x
 * format and a kernel registers both. The second test shows why: without the v1 handler the
 * v1 handover is refused as a whole (EIO), nothing retrieved.
 */
import { fileURLToPath } from "node:url";
import { describeFixtures, listFixtures, loadFixture, parseFixtureManifest } from "@liveupdate/handler-testkit";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ACME_COUNTER_COMPATIBLE, acmeCounterV1, acmeCounterV2 } from "../src/index.js";
import { counterSnapshot } from "./subjects.js";

const dir = fileURLToPath(new URL("../fixtures/", import.meta.url));
const shipped = { handler: () => acmeCounterV2, companions: () => [acmeCounterV1], snapshot: counterSnapshot };

describeFixtures(dir, shipped);

describe("fixtures by format", () => {
  const manifests = listFixtures(dir).map((name) => ({ name, manifest: parseFixtureManifest(readFileSync(`${dir}/${name}.json`, "utf8")) }));

  it("every released format has at least one frozen fixture", () => {
    const formats = new Set(manifests.map((m) => m.manifest.compatible));
    expect([...formats].sort()).toEqual(Object.values(ACME_COUNTER_COMPATIBLE).sort());
  });

  it("a kernel with only the v2 handler refuses a v1 handover (exact match), the v1 reader takes it", () => {
    const v1 = manifests.filter((m) => m.manifest.compatible === acmeCounterV1.compatible);
    expect(v1.length).toBeGreaterThan(0);
    for (const { name, manifest } of v1) {
      const refused = loadFixture(dir, name, { handler: () => acmeCounterV2, snapshot: counterSnapshot });
      expect(refused.files.every((f) => f.actual === undefined)).toBe(true);
      expect(refused.problems.map((p) => p.message).join("\n")).toMatch(/EIO/);
      const read = loadFixture(dir, name, { handler: () => acmeCounterV1, snapshot: counterSnapshot });
      expect(read.problems).toEqual([]);
      expect(read.files.map((f) => f.actual)).toEqual(manifest.files.map((f) => f.expected));
    }
  });
});
