/**
 * Every frozen fixture of the released memfd-v1 format decodes with the handler this package
 * ships now: the same size, pos and contents, no page read that was not
 * preserved, nothing left preserved after finish.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describeFixtures, listFixtures, parseFixtureManifest } from "@liveupdate/handler-testkit";
import { describe, expect, it } from "vitest";
import { MEMFD_V1_COMPATIBLE, memfdV1 } from "../src/index.js";
import { memfdSnapshot } from "./support/fixture-subjects.js";

const dir = fileURLToPath(new URL("../fixtures/", import.meta.url));
const shipped = { handler: () => memfdV1, snapshot: memfdSnapshot };

describeFixtures(dir, shipped);

describe("frozen memfd-v1 fixtures", () => {
  const manifests = listFixtures(dir).map((name) => ({ name, manifest: parseFixtureManifest(readFileSync(`${dir}/${name}.json`, "utf8")) }));

  it("cover the format: memfd-v1 records only, huge folios among them", () => {
    expect(manifests.length).toBeGreaterThanOrEqual(2);
    expect(new Set(manifests.map((m) => m.manifest.compatible))).toEqual(new Set([MEMFD_V1_COMPATIBLE]));
    // Huge folios are preserved as runs of their own order; order 0 is a page or a record.
    expect(manifests.some((m) => m.manifest.runs.some((r) => r.order > 0))).toBe(true);
  });
});
