/**
 * Freeze the fixtures of the released memfd-v0 format that are not frozen yet. A fixture that
 * exists is never regenerated: to change what is covered, add a new name.
 * Run with `pnpm fixtures:freeze`, then commit `fixtures/`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { freezeFixture, type HandlerSubject } from "@liveupdate/handler-testkit";
import { expect, it } from "vitest";
import { denseSubject, sparseHugeSubject } from "../test/support/fixture-subjects.js";

const dir = fileURLToPath(new URL("../fixtures/", import.meta.url));

const PLAN: readonly { name: string; subject: HandlerSubject; seeds: number[]; description: string }[] = [
  { name: "v0-small-dense", subject: denseSubject, seeds: [1, 2], description: "memfd-v0 (0.1.x): two small dense memfds of order-0 pages, pos inside" },
  { name: "v0-sparse-huge", subject: sparseHugeSubject, seeds: [1], description: "memfd-v0 (0.1.x): a sparse memfd of order-2/order-1 THP folios with a punched hole, its holes filled by preserve" },
];

for (const f of PLAN) {
  it(`fixture ${f.name}`, () => {
    if (existsSync(`${dir}/${f.name}.json`)) return; // frozen: never regenerated
    const manifest = freezeFixture({ dir, name: f.name, subject: f.subject, formatVersion: "0", seeds: f.seeds, description: f.description });
    expect(manifest.files).toHaveLength(f.seeds.length);
  });
}
