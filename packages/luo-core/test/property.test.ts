/**
 * Property (seeded): random sessions and files of three handler kinds, some sessions closed
 * before the kexec, then a next kernel with a random subset of the handlers.
 *
 * - the pre-flight names exactly the files of the missing kinds, in list order;
 * - the next kernel sees exactly the open sessions (inspection before the first open);
 * - with every needed handler: every file comes back byte for byte in any order, and after
 *   the sessions finish only KHO's own pages and the FLB page stay preserved;
 * - lacking one: the first open is EIO (cause ENOENT at the first missing file, as the
 *   pre-flight said), nothing of the handover changed, and a second LUO with the right
 *   handlers on the same machine retrieves everything.
 */
import { describe, expect, it } from "vitest";
import { LiveUpdate, type PreflightProblem } from "../src/index.js";
import { incomingFingerprint } from "./support/handover.js";
import { Prng } from "./support/prng.js";
import { TestMemFile, asMem, testHandler, type TestHandler } from "./support/test-handler.js";

const KINDS = ["a", "b", "c"] as const;
const NAME_CHARS = Array.from("abcdefghijklmnopqrstuvwxyz0123456789-_.é€");

interface PlannedFile {
  token: bigint;
  kind: string;
  bytes: Uint8Array;
}
interface PlannedSession {
  name: string;
  files: PlannedFile[];
  closed: boolean;
}

function randomName(rng: Prng, used: Set<string>): string {
  for (;;) {
    let name = "";
    const len = rng.range(1, 20);
    for (let i = 0; i < len; i++) name += rng.pick(NAME_CHARS);
    if (new TextEncoder().encode(name).length <= 63 && !used.has(name)) {
      used.add(name);
      return name;
    }
  }
}

function handlersFor(kinds: readonly string[]): TestHandler[] {
  return kinds.map((kind) => testHandler({ kind }));
}

function shuffle<T>(rng: Prng, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function retrieveEverything(rng: Prng, lu: LiveUpdate, sessions: readonly PlannedSession[]): void {
  const dev = lu.open();
  for (const s of shuffle(rng, sessions)) {
    const handle = dev.retrieveSession(s.name);
    for (const f of shuffle(rng, s.files)) {
      const file = asMem(handle.retrieveFd(f.token));
      expect(Buffer.from(file.contents()).equals(Buffer.from(f.bytes))).toBe(true);
      expect(file.kind).toBe(f.kind);
    }
    handle.finish();
    handle.close();
  }
  const inc = lu.machine.incoming;
  const leftovers = [inc.fdtPhys, inc.retrieveSubtree("kexec-metadata").phys, lu.incoming.flbsPhys].sort((x, y) => x! - y!);
  expect(inc.stampedRuns().map((r) => r.phys)).toEqual(leftovers);
}

describe("property: random live updates", () => {
  it("preflight, retrieve, and a failed next kernel that consumes nothing (seeded)", () => {
    const CASES = 40;
    let failedFirst = 0;
    for (let c = 0; c < CASES; c++) {
      const rng = new Prng(0xc0ffee + c);
      const old = LiveUpdate.boot({ memory: "128 MiB", handlers: handlersFor(shuffle(rng, KINDS)) });
      const dev = old.open();
      const used = new Set<string>();
      const planned: PlannedSession[] = [];
      const sessionCount = rng.range(0, 6);
      for (let i = 0; i < sessionCount; i++) {
        const name = randomName(rng, used);
        const handle = dev.createSession(name);
        const files: PlannedFile[] = [];
        const tokens = new Set<bigint>();
        const fileCount = rng.range(0, 5);
        for (let k = 0; k < fileCount; k++) {
          let token = rng.chance(0.3) ? BigInt(rng.int(8)) : rng.u64();
          while (tokens.has(token)) token++;
          tokens.add(token);
          const kind = rng.pick(KINDS);
          const bytes = new Uint8Array(rng.range(0, 3000)).map(() => rng.int(256));
          handle.preserveFd(new TestMemFile({ bytes, kind }), token);
          files.push({ token, kind, bytes });
        }
        const closed = rng.chance(0.2);
        if (closed) handle.close();
        planned.push({ name, files, closed });
      }
      if (rng.chance(0.5)) dev.close();
      const handed = planned.filter((s) => !s.closed);

      const targetKinds = KINDS.filter(() => rng.chance(0.7));
      const expectedMissing = handed.flatMap((s) => s.files.filter((f) => !targetKinds.includes(f.kind as (typeof KINDS)[number])).map((f) => ({ session: s.name, token: f.token })));
      const problems = old.preflight(targetKinds.map((k) => `test-${k}-v1`));
      expect(problems.map((p: PreflightProblem) => (p.kind === "no-handler" ? { session: p.session, token: p.token } : p.kind))).toEqual(expectedMissing);

      const next = old.kexec({ handlers: handlersFor(shuffle(rng, targetKinds)) });
      const view = next.inspectIncoming();
      expect(view?.sessions.map((s) => ({ name: s.name, tokens: s.files.map((f) => f.token), compat: s.files.map((f) => f.compatible) }))).toEqual(
        handed.map((s) => ({ name: s.name, tokens: s.files.map((f) => f.token), compat: s.files.map((f) => `test-${f.kind}-v1`) })),
      );

      if (expectedMissing.length === 0) {
        retrieveEverything(rng, next, handed);
        continue;
      }
      failedFirst++;
      const before = incomingFingerprint(next.machine);
      expect(() => next.open()).toThrow(/EIO/);
      expect(next.incoming.errno).toBe("ENOENT");
      expect({ session: next.incoming.failedAt?.session, token: next.incoming.failedAt?.token }).toEqual(expectedMissing[0]);
      expect(() => next.open()).toThrow(/EIO/);
      expect(incomingFingerprint(next.machine)).toBe(before);
      // The second next kernel on the same handover, with every handler.
      next.detach();
      const second = LiveUpdate.attach(next.machine, { handlers: handlersFor(shuffle(rng, KINDS)) });
      retrieveEverything(rng, second, handed);
    }
    expect(failedFirst).toBeGreaterThan(5);
    expect(failedFirst).toBeLessThan(CASES);
  });
});
