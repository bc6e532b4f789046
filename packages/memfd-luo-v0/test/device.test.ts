/**
 * memfd-v0 through luo-core's `/dev/liveupdate` model: preserve memfds in sessions, kexec
 * into a kernel that registers memfd-v0, retrieve and finish, as the Linux selftests do;
 * a kernel without the handler refuses the handover; a damaged record fails its file only,
 * with the same errno on every attempt, and changes nothing.
 */
import { PAGE_SIZE } from "@liveupdate/kho";
import { LiveUpdate, decodeLuoState, type FileHandler } from "@liveupdate/luo-core";
import { SEEK_SET, createMemfd } from "@liveupdate/memfd";
import { describe, expect, it } from "vitest";
import { MEMFD_V0_COMPATIBLE, MEMFD_V0_FOLIOS_VALUE_OFFSET, decodeMemfdV0, memfdV0 } from "../src/index.js";
import { asMemfd } from "./support/args.js";
import { Prng } from "./support/prng.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * After every session finished, the only preserved pages the next kernel has not reclaimed
 * are KHO's own (root FDT, kexec-metadata) and the FLB page (Linux never restores it):
 * every page of every memfd-v0 record was reclaimed.
 */
function expectOnlyKhoLeftovers(lu: LiveUpdate): void {
  const incoming = lu.machine.incoming;
  const expected = [incoming.fdtPhys, incoming.retrieveSubtree("kexec-metadata").phys, lu.incoming.flbsPhys].sort((a, b) => a! - b!);
  expect(incoming.stampedRuns().map((r) => r.phys)).toEqual(expected);
}

describe("memfd-v0 through /dev/liveupdate", () => {
  it("luo_kexec_simple: one memfd, token 0x1A, 'hello kexec world'", () => {
    const old = LiveUpdate.boot({ memory: "1 GiB", handlers: [memfdV0] });
    const s = old.open().createSession("test-session");
    const f = createMemfd(old.machine, { name: "test" });
    f.write(text("hello kexec world"));
    s.preserveFd(f, 0x1a);
    const next = old.kexec({ handlers: [memfdV0] });
    // the LUO record names the handler, its data is our FDT
    const view = next.inspectIncoming();
    const file = view?.sessions[0]?.files[0];
    expect(file?.compatible).toBe(MEMFD_V0_COMPATIBLE);
    expect(decodeMemfdV0(next.machine.memory, file!.data).size).toBe(17);
    const s2 = next.open().retrieveSession("test-session");
    const m = asMemfd(s2.retrieveFd(0x1a));
    expect(m.position).toBe(17);
    expect(new TextDecoder().decode(m.pread(0, 64))).toBe("hello kexec world");
    s2.finish();
    expectOnlyKhoLeftovers(next);
  });

  it("many files in two sessions, random contents and positions; a file never retrieved is freed at finish", () => {
    const rng = new Prng(0x5e55);
    const old = LiveUpdate.boot({ memory: "1 GiB", handlers: [memfdV0] });
    const dev = old.open();
    const sessions = [dev.createSession("vm-1"), dev.createSession("vm-2")];
    const files: Array<{ session: number; token: number; bytes: Uint8Array; pos: number; size: number }> = [];
    for (let i = 0; i < 24; i++) {
      const f = createMemfd(old.machine, { name: `f${i}`, huge: i % 3 === 0 ? "always" : "never" });
      const size = i % 5 === 0 ? 0 : rng.int(3 * 2 ** 20);
      f.truncate(size);
      const bytes = rng.bytes(Math.min(size, 1 + rng.int(20_000)));
      const at = size > bytes.length ? rng.int(size - bytes.length) : 0;
      f.pwrite(at, bytes);
      const pos = rng.int(2 ** 32);
      f.lseek(pos, SEEK_SET);
      sessions[i % 2]!.preserveFd(f, 0x1000 + i);
      files.push({ session: i % 2, token: 0x1000 + i, bytes: f.pread(0, size), pos, size });
    }
    const next = old.kexec({ handlers: [memfdV0] });
    const leftData = next.inspectIncoming()!.sessions[1]!.files.find((f) => f.token === 0x1007n)!.data;
    const skipped = decodeMemfdV0(next.machine.memory, leftData, { stamps: next.machine.incoming });
    const dev2 = next.open();
    const s2 = [dev2.retrieveSession("vm-1"), dev2.retrieveSession("vm-2")];
    for (const want of files) {
      if (want.token === 0x1000 + 7) continue; // left for finish
      const g = asMemfd(s2[want.session]!.retrieveFd(want.token));
      expect(g.size).toBe(want.size);
      expect(g.position).toBe(want.pos);
      expect(Buffer.from(g.pread(0, want.size)).equals(Buffer.from(want.bytes))).toBe(true);
    }
    s2[0]!.finish();
    expect(next.machine.incoming.stampOf(skipped.fdtPhys)).toBeDefined();
    s2[1]!.finish(); // finishes the never-retrieved file: its record is reclaimed and freed
    expectOnlyKhoLeftovers(next);
    for (let i = 0; i < skipped.folios.length; i++) expect(next.machine.allocator.isOwned(skipped.folios.pfn(i) * PAGE_SIZE, skipped.folios.order(i))).toBe(false);
    expect(next.machine.allocator.isOwned(skipped.fdtPhys, 0)).toBe(false);
  });

  it("a next kernel without memfd-v0 cannot take the handover (ENOENT for the file, EIO for the device)", () => {
    const old = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV0] });
    const s = old.open().createSession("vm");
    s.preserveFd(createMemfd(old.machine, { name: "x" }), 1);
    const other: FileHandler = { compatible: "memfd-v2", canPreserve: () => false, getId: () => 0, preserve() {}, unpreserve() {}, retrieve() {}, finish() {} };
    const next = old.kexec({ handlers: [other] });
    expect(() => next.open()).toThrow(expect.objectContaining({ errno: "EIO" }));
  });

  it("a damaged record fails its file with the same errno each time and changes nothing; other files retrieve", () => {
    const old = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV0] });
    const s = old.open().createSession("vm");
    const a = createMemfd(old.machine, { name: "a" });
    a.write(text("first"));
    const b = createMemfd(old.machine, { name: "b" });
    b.write(text("second"));
    s.preserveFd(a, 1);
    s.preserveFd(b, 2);
    const next = old.kexec({ handlers: [memfdV0] });
    const rec = next.inspectIncoming()!.sessions[0]!.files.find((f) => f.token === 1n)!;
    const fdt = Number(rec.data);
    next.machine.memory.write(fdt + MEMFD_V0_FOLIOS_VALUE_OFFSET, Uint8Array.of(0)); // KHO array magic
    const s2 = next.open().retrieveSession("vm");
    const stamped = next.machine.incoming.stampedCount;
    expect(() => s2.retrieveFd(1)).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(() => s2.retrieveFd(1)).toThrow(expect.objectContaining({ errno: "EINVAL" }));
    expect(next.machine.incoming.stampedCount).toBe(stamped);
    expect(new TextDecoder().decode(asMemfd(s2.retrieveFd(2)).pread(0, 6))).toBe("second");
    s2.finish(); // the failed file's record is left alone, as the kernel leaves it
    expect(next.machine.incoming.stampOf(fdt)).toBeDefined();
  });

  it("a memfd-v0 record reads back through luo-core's non-consuming decoder of the handover", () => {
    const old = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV0] });
    const f = createMemfd(old.machine, { name: "x" });
    f.truncate(5 * PAGE_SIZE);
    old.open().createSession("vm").preserveFd(f, 9);
    const next = old.kexec({ handlers: [memfdV0] });
    const state = decodeLuoState(next.machine.memory, next.machine.incoming.retrieveSubtree("LUO").phys);
    const data = state.sessions[0]!.files[0]!.data;
    const record = decodeMemfdV0(next.machine.memory, data);
    expect(record).toMatchObject({ variant: "kho-array", size: 5 * PAGE_SIZE, pos: 0 });
    expect(record.folios.length).toBe(5); // holes filled at preserve
  });
});
