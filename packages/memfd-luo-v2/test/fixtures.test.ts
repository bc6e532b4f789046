/**
 * Every frozen fixture of the released memfd-v2 format decodes with the handler this package
 * ships now: the same size, pos, seals and contents, no page read that was not
 * preserved, nothing left preserved after finish.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describeFixtures, listFixtures, parseFixtureManifest } from "./support/testkit.js";
import { describe, expect, it } from "vitest";
import { MEMFD_V2_COMPATIBLE, memfdV2 } from "../src/index.js";
import { memfdSnapshot } from "./support/fixture-subjects.js";

const dir = fileURLToPath(new URL("../fixtures/", import.meta.url));
const shipped = { handler: () => memfdV2, snapshot: memfdSnapshot };

describeFixtures(dir, shipped);

describe("frozen memfd-v2 fixtures", () => {
  const manifests = listFixtures(dir).map((name) => ({ name, manifest: parseFixtureManifest(readFileSync(`${dir}/${name}.json`, "utf8")) }));

  it("cover the format: memfd-v2 records only, sealed files and huge folios among them", () => {
    expect(manifests.length).toBeGreaterThanOrEqual(2);
    expect(new Set(manifests.map((m) => m.manifest.compatible))).toEqual(new Set([MEMFD_V2_COMPATIBLE]));
    const expected = manifests.flatMap((m) => m.manifest.files.map((f) => f.expected as ReturnType<typeof memfdSnapshot>));
    expect(expected.some((s) => s.seals !== 0)).toBe(true);
    // Huge folios are preserved as runs of their own order; order 0 is a page or a record.
    expect(manifests.some((m) => m.manifest.runs.some((r) => r.order > 0))).toBe(true);
  });
});
