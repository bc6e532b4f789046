/**
 * Freeze the fixtures of every released format that are not frozen yet. A fixture that
 * exists is never regenerated: to change what is covered, add a new name.
 * Run with `pnpm fixtures:freeze`, then commit `fixtures/`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { freezeFixture, type HandlerSubject } from "@liveupdate/handler-testkit";
import { expect, it } from "vitest";
import { v1Subject, v2Subject } from "../test/subjects.js";

const dir = fileURLToPath(new URL("../fixtures/", import.meta.url));

const PLAN: readonly { name: string; subject: HandlerSubject; formatVersion: string; seeds: number[]; description: string }[] = [
  { name: "v1-two-counters", subject: v1Subject, formatVersion: "1", seeds: [1, 2], description: "acme-counter-v1 (1.x): two counters, one ring wrapped, one order-1 ring" },
  { name: "v1-empty-ring", subject: v1Subject, formatVersion: "1", seeds: [0], description: "acme-counter-v1 (1.x): a counter never incremented (count 0)" },
  { name: "v2-stepped-counters", subject: v2Subject, formatVersion: "2", seeds: [3, 4], description: "acme-counter-v2 (2.x): two counters with steps 4 and 5" },
];

for (const f of PLAN) {
  it(`fixture ${f.name}`, () => {
    if (existsSync(`${dir}/${f.name}.json`)) return; // frozen: never regenerated
    const manifest = freezeFixture({ dir, name: f.name, subject: f.subject, formatVersion: f.formatVersion, seeds: f.seeds, description: f.description });
    expect(manifest.files).toHaveLength(f.seeds.length);
  });
}
