/**
 * The kit catches broken handlers: each test breaks memfd-v2 in one way (through a
 * delegating wrapper) and asserts that the check meant for it reports a problem, while the
 * real handler passes the same check.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FormatError, KernelError } from "@liveupdate/kho";
import type { FileHandler } from "@liveupdate/luo-core";
import { describe, expect, it } from "vitest";
import {
  checkCompatibleRules,
  checkForgottenPages,
  checkHostileRecords,
  checkRoundTrip,
  checkUnpreserve,
  delegateHandler,
  freezeFixture,
  loadFixture,
  nearMissCompatibles,
  type HandlerSubject,
} from "../src/index.js";
import { memfdV2Subject } from "./support/memfd-v2-subject.js";

const real = memfdV2Subject.handler();
const broken = (handler: FileHandler): HandlerSubject => ({ ...memfdV2Subject, handler: () => handler });
const messages = (problems: readonly { message: string }[]): string => problems.map((p) => p.message).join("\n");

describe("the kit catches", () => {
  it("a handler that forgets a page at freeze (round trip: retrieve fails)", () => {
    const forgetful = delegateHandler(real, real.compatible, {
      freeze: (args, op) => {
        op();
        args.machine.kho.unpreserveFree(Number(args.serializedData), 48); // drops its own record page
      },
    });
    expect(checkRoundTrip(memfdV2Subject, { seed: 1 })).toEqual([]);
    expect(messages(checkRoundTrip(broken(forgetful), { seed: 1 }))).toMatch(/retrieve of token \d failed/);
  });

  it("a retrieve that reads memory nobody preserved (poison read)", () => {
    const snooping = delegateHandler(real, real.compatible, {
      retrieve: (args, op) => {
        const top = args.machine.memory.ranges[0]!;
        args.machine.memory.read(top.start + top.size / 2, 16);
        op();
      },
    });
    expect(messages(checkRoundTrip(broken(snooping), { seed: 2 }))).toMatch(/did not preserve \(poison\)/);
  });

  it("a finish that leaks the pages of a file never retrieved", () => {
    const leaky = delegateHandler(real, real.compatible, { finish: (args, op) => { if (args.retrieveStatus > 0) op(); } });
    expect(messages(checkRoundTrip(broken(leaky), { seed: 3 }))).toMatch(/leaked/);
  });

  it("an unpreserve that gives nothing back", () => {
    const sticky: FileHandler = { ...delegateHandler(real, real.compatible), unpreserve: () => undefined };
    expect(checkUnpreserve(memfdV2Subject, { seed: 1 })).toEqual([]);
    expect(messages(checkUnpreserve(broken(sticky), { seed: 1 }))).toMatch(/still preserved after the session was closed/);
  });

  it("a preserved page nothing uses (forgotten-page check)", () => {
    const hoarding = delegateHandler(real, real.compatible, {
      preserve: (args, op) => {
        op();
        args.machine.kho.allocPreserve(4096); // preserved, never restored, never read
      },
    });
    const good = checkForgottenPages(memfdV2Subject, { seed: 1 });
    expect(good.problems).toEqual([]);
    expect(good.caught.length).toBe(good.runs);
    const report = checkForgottenPages(broken(hoarding), { seed: 1 });
    expect(messages(report.problems)).toMatch(/nothing noticed/);
  });

  it("an untyped exception on a hostile record, and a failed retrieve that changed the pages", () => {
    const untyped = delegateHandler(real, real.compatible, {
      retrieve: (_args, op) => {
        try {
          op();
        } catch (e) {
          throw new RangeError(e instanceof Error ? e.message : "bad");
        }
      },
    });
    expect(messages(checkHostileRecords(broken(untyped), { seed: 7, cases: 24 }).problems)).toMatch(/RangeError/);
    const scribbling = delegateHandler(real, real.compatible, {
      retrieve: (args, op) => {
        try {
          op();
        } catch (e) {
          const at = Number(args.serializedData);
          if (Number.isSafeInteger(at) && args.machine.incoming.stampOrderOf(at - (at % 4096)) >= 0) args.machine.memory.write(at - (at % 4096), Uint8Array.of(0x5a));
          throw e;
        }
      },
    });
    const report = checkHostileRecords(broken(scribbling), { seed: 7, cases: 24 });
    expect(report.cases.some((c) => c.outcome !== "retrieved")).toBe(true);
    expect(messages(report.problems)).toMatch(/changed the handler's pages/);
  });

  it("compatible strings: too long, a handler taking foreign files; near misses never dispatch", () => {
    expect(checkCompatibleRules(memfdV2Subject)).toEqual([]);
    expect(messages(checkCompatibleRules(broken(delegateHandler(real, "m".repeat(48)))))).toMatch(/48 bytes; it must be 1\.\.47/);
    const greedy: FileHandler = { ...delegateHandler(real, real.compatible), canPreserve: () => true };
    expect(messages(checkCompatibleRules(broken(greedy)))).toMatch(/not the handler's own/);
    expect(nearMissCompatibles("memfd-v2")).toEqual(["memfd-v2x", "memfd-v", "xmemfd-v2", "Memfd-v2"]);
    for (const c of nearMissCompatibles("a".repeat(47))) expect(new TextEncoder().encode(c).length).toBeLessThanOrEqual(47);
  });
});

describe("fixtures", () => {
  const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "handler-testkit-"));

  it("freeze, then load: the same snapshots; never overwritten", () => {
    const dir = tmp();
    const manifest = freezeFixture({ dir, name: "memfd-v2-two", subject: memfdV2Subject, formatVersion: "2", seeds: [5, 6] });
    expect(manifest.compatible).toBe("memfd-v2");
    const result = loadFixture(dir, "memfd-v2-two", memfdV2Subject);
    expect(result.problems).toEqual([]);
    expect(result.files.map((f) => f.actual)).toEqual(manifest.files.map((f) => f.expected));
    expect(() => freezeFixture({ dir, name: "memfd-v2-two", subject: memfdV2Subject, formatVersion: "2" })).toThrow(KernelError);
  });

  it("a tampered image, a tampered expectation, a registry without the compatible", () => {
    const dir = tmp();
    const manifest = freezeFixture({ dir, name: "f", subject: memfdV2Subject, formatVersion: "2" });
    const json = path.join(dir, "f.json");
    const wrong = { ...manifest, files: manifest.files.map((f) => ({ ...f, expected: { size: -1 } })) };
    fs.writeFileSync(json, JSON.stringify(wrong));
    expect(messages(loadFixture(dir, "f", memfdV2Subject).problems)).toMatch(/the fixture expects \{"size":-1\}/);
    const other = { ...memfdV2Subject, handler: () => delegateHandler(real, "memfd-v3") };
    fs.writeFileSync(json, JSON.stringify(manifest));
    expect(messages(loadFixture(dir, "f", other).problems)).toMatch(/refused the handover.*EIO/);
    const image = path.join(dir, "f.khosprs1");
    const bytes = fs.readFileSync(image);
    bytes[bytes.length - 1]! ^= 1;
    fs.writeFileSync(image, bytes);
    expect(() => loadFixture(dir, "f", memfdV2Subject)).toThrow(FormatError);
    fs.writeFileSync(json, "{");
    expect(() => loadFixture(dir, "f", memfdV2Subject)).toThrow(/not JSON/);
  });
});
