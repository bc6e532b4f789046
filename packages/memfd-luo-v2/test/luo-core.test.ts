/**
 * End to end through luo-core's device: sessions, PRESERVE_FD, kexec, RETRIEVE_FD, FINISH,
 * with the memfd-v2 handler registered in both kernels (the Linux selftests' scenarios).
 */
import { PAGE_SIZE } from "@liveupdate/kho";
import { LiveUpdate } from "@liveupdate/luo-core";
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, MFD_ALLOW_SEALING, MFD_HUGETLB, MemfdFile, memfd } from "@liveupdate/memfd";
import { describe, expect, it } from "vitest";
import { MEMFD_V2_COMPATIBLE, decodeMemfdV2, memfdV2 } from "../src/index.js";
import { errnoOf } from "./support/ops.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Every page the memfd records of the incoming state hold (record, array, chunks, folios); before the first open. */
function memfdPages(lu: LiveUpdate): number[] {
  const pages: number[] = [];
  for (const session of lu.inspectIncoming()?.sessions ?? []) {
    for (const file of session.files) {
      const d = decodeMemfdV2(lu.machine.memory, Number(file.data));
      pages.push(d.serPhys, ...(d.folios.layout?.chunks ?? []), ...(d.folios.layout?.runs ?? []));
      for (let i = 0; i < d.folios.count; i++) pages.push(d.folios.pfns[i]! * PAGE_SIZE);
    }
  }
  return pages;
}

/** How many of `pages` are still preserved and not restored. */
function stillStamped(lu: LiveUpdate, pages: readonly number[]): number {
  return pages.filter((p) => lu.machine.incoming.stampOf(p) !== undefined).length;
}

function asMemfd(file: unknown): MemfdFile {
  if (!(file instanceof MemfdFile)) throw new Error("not a memfd");
  return file;
}

describe("memfd-v2 through /dev/liveupdate", () => {
  it("luo_kexec_simple: \"hello kexec world\" in session test-session, token 0x1A", () => {
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV2] });
    const s = lu.open().createSession("test-session");
    const f = memfd.create(lu.machine, { name: "simple" });
    f.write(text("hello kexec world"));
    s.preserveFd(f, 0x1an);
    const next = lu.kexec({ handlers: [memfdV2] });
    const s2 = next.open().retrieveSession("test-session");
    const g = asMemfd(s2.retrieveFd(0x1an));
    expect(new TextDecoder().decode(g.pread(0, g.size))).toBe("hello kexec world");
    expect(g.position).toBe(17);
    expect(s2.retrieveFd(0x1an)).toBe(g); // already retrieved: the same file
    s2.finish();
  });

  it("preserve_unsupported_fd (ENOENT) and prevent_double_preservation (EBUSY)", () => {
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV2] });
    const dev = lu.open();
    const a = dev.createSession("a");
    const b = dev.createSession("b");
    expect(errnoOf(() => { a.preserveFd(memfd.create(lu.machine, { name: "h", flags: MFD_HUGETLB }), 1n); })).toBe("ENOENT");
    expect(errnoOf(() => { a.preserveFd(memfd.createTmpfsFile(lu.machine, { path: "/dev/shm/x" }), 2n); })).toBe("ENOENT");
    const f = memfd.create(lu.machine, { name: "once" });
    a.preserveFd(f, 0x1234n);
    expect(errnoOf(() => { b.preserveFd(f, 0x5678n); })).toBe("EBUSY");
    expect(errnoOf(() => { f.truncate(PAGE_SIZE); })).toBe("EPERM"); // frozen while preserved
    a.close(); // unpreserves
    f.truncate(PAGE_SIZE);
    b.preserveFd(f, 0x5678n);
  });

  it("luo_multi_session: two empty sessions and two with files; seals, sizes and positions survive", () => {
    const lu = LiveUpdate.boot({ memory: "512 MiB", handlers: [memfdV2] });
    const dev = lu.open();
    dev.createSession("multi-test-empty-1");
    dev.createSession("multi-test-empty-2");
    const s1 = dev.createSession("multi-test-files-1");
    const s2 = dev.createSession("multi-test-files-2");
    const files = new Map<bigint, { data: Uint8Array; seals: number; pos: number }>();
    const add = (session: typeof s1, token: bigint, data: Uint8Array, seals: number): void => {
      const f = memfd.create(lu.machine, { name: `t${token}`, flags: MFD_ALLOW_SEALING });
      f.write(data);
      f.addSeals(seals);
      session.preserveFd(f, token);
      files.set(token, { data, seals, pos: data.length });
    };
    add(s1, 0x1001n, text("session-1-file-1"), 0);
    add(s2, 0x2002n, new Uint8Array(3 * PAGE_SIZE + 5).fill(0x5a), F_SEAL_SHRINK | F_SEAL_GROW);
    add(s2, 0x3003n, new Uint8Array(0), F_SEAL_SEAL);
    const next = lu.kexec({ handlers: [memfdV2] });
    const pages = memfdPages(next);
    expect(stillStamped(next, pages)).toBe(pages.length);
    const dev2 = next.open();
    for (const name of ["multi-test-empty-1", "multi-test-empty-2"]) dev2.retrieveSession(name).finish();
    const r1 = dev2.retrieveSession("multi-test-files-1");
    const r2 = dev2.retrieveSession("multi-test-files-2");
    for (const [token, want] of files) {
      const g = asMemfd((token === 0x1001n ? r1 : r2).retrieveFd(token));
      expect([g.size, g.position, g.seals]).toEqual([want.data.length, want.pos, want.seals]);
      expect(Buffer.from(g.pread(0, g.size)).equals(Buffer.from(want.data))).toBe(true);
    }
    r1.finish();
    r2.finish();
    expect(stillStamped(next, pages)).toBe(0);
  });

  it("a file never retrieved is cleaned up by finish", () => {
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV2] });
    const s = lu.open().createSession("s");
    const kept = memfd.create(lu.machine, { name: "kept" });
    kept.write(new Uint8Array(5 * PAGE_SIZE).fill(1));
    const dropped = memfd.create(lu.machine, { name: "dropped" });
    dropped.write(new Uint8Array(7 * PAGE_SIZE).fill(2));
    s.preserveFd(kept, 1n);
    s.preserveFd(dropped, 2n);
    const next = lu.kexec({ handlers: [memfdV2] });
    const pages = memfdPages(next);
    expect(pages.length).toBe(2 * 3 + 5 + 7);
    const s2 = next.open().retrieveSession("s");
    asMemfd(s2.retrieveFd(1n));
    expect(stillStamped(next, pages)).toBe(3 + 7); // the dropped file's record, chunk, array page, folios
    s2.finish();
    expect(stillStamped(next, pages)).toBe(0);
  });

  it("inspect before the first open: luo-core finds the record, decodeMemfdV2 reads it", () => {
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV2] });
    const s = lu.open().createSession("inspect-me");
    const f = memfd.create(lu.machine, { name: "i" });
    const data = new Uint8Array(2 * PAGE_SIZE + 1).map((_, i) => (i * 7) & 0xff);
    f.write(data);
    s.preserveFd(f, 0xabcn);
    const next = lu.kexec({ handlers: [memfdV2] });
    const state = next.inspectIncoming();
    const file = state!.sessions[0]!.files[0]!;
    expect([file.compatible, file.token]).toEqual([MEMFD_V2_COMPATIBLE, 0xabcn]);
    const d = decodeMemfdV2(next.machine.memory, Number(file.data));
    expect([d.size, d.pos, d.nrFolios]).toEqual([data.length, data.length, 3]);
    expect(Buffer.from(d.contents.read(0, d.size)).equals(Buffer.from(data))).toBe(true);
    // Non-consuming: the retrieve still works.
    const g = asMemfd(next.open().retrieveSession("inspect-me").retrieveFd(0xabcn));
    expect(Buffer.from(g.pread(0, g.size)).equals(Buffer.from(data))).toBe(true);
  });

  it("a hostile record: RETRIEVE_FD fails with the handler's errno, again the same; finish cleans up", () => {
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV2] });
    const s = lu.open().createSession("h");
    const f = memfd.create(lu.machine, { name: "h" });
    f.write(new Uint8Array(PAGE_SIZE).fill(3));
    s.preserveFd(f, 7n);
    const next = lu.kexec({ handlers: [memfdV2] });
    const file = next.inspectIncoming()!.sessions[0]!.files[0]!;
    const pages = memfdPages(next);
    next.machine.memory.writeU32(Number(file.data) + 16, 0x100); // a seal bit memfd-v2 does not know
    const s2 = next.open().retrieveSession("h");
    expect(errnoOf(() => s2.retrieveFd(7n))).toBe("EOPNOTSUPP");
    expect(errnoOf(() => s2.retrieveFd(7n))).toBe("EOPNOTSUPP");
    expect(stillStamped(next, pages)).toBe(pages.length); // the failed retrieve took nothing
    s2.finish();
    expect(stillStamped(next, pages)).toBe(0);
  });
});
