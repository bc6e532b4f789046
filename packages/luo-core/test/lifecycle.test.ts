/**
 * The lifecycle state machine through the object API: every transition and check of
 * lifecycle.ts, with the kernel's errnos and orders (luo_session.c, luo_file.c, luo_core.c).
 */
import { FormatError, KernelError } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import { LiveUpdate, type LuoFile } from "../src/index.js";
import { DevNull, TestMemFile, asMem, testHandler, text, type TestHandler } from "./support/test-handler.js";

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof KernelError || error instanceof FormatError) return error.errno;
    throw error;
  }
  return undefined;
}

function boot(handlers: TestHandler[] = [testHandler()]): LiveUpdate {
  return LiveUpdate.boot({ memory: "256 MiB", handlers });
}

function memfd(content: string, kind = "a"): TestMemFile {
  return new TestMemFile({ bytes: text(content), kind });
}

describe("device", () => {
  it("is exclusive; closing it keeps sessions; a closed handle is EBADF", () => {
    const lu = boot();
    const dev = lu.open();
    expect(errnoOf(() => lu.open())).toBe("EBUSY");
    const s = dev.createSession("keep-me");
    dev.close();
    expect(errnoOf(() => dev.createSession("x"))).toBe("EBADF");
    expect(errnoOf(() => { dev.close(); })).toBe("EBADF");
    expect(lu.sessions().map((x) => x.name)).toEqual(["keep-me"]);
    s.preserveFd(memfd("still works"), 1);
    const dev2 = lu.open();
    expect(dev2.fd).toBe(dev.fd); // the lowest free descriptor again
  });

  it("create: 1..63 bytes with a NUL; duplicate EEXIST; names are bytes", () => {
    const dev = boot().open();
    expect(errnoOf(() => dev.createSession(""))).toBe("EINVAL");
    expect(errnoOf(() => dev.createSession("x".repeat(64)))).toBe("EINVAL");
    expect(errnoOf(() => dev.createSession("a\0b"))).toBe("EINVAL");
    expect(dev.createSession("x".repeat(63)).name).toBe("x".repeat(63));
    const s = dev.createSession("ünïcode");
    expect(s.nameBytes.length).toBe(new TextEncoder().encode("ünïcode").length);
    expect(errnoOf(() => dev.createSession("ünïcode"))).toBe("EEXIST");
    // A 64-byte field with a NUL at 63 is the longest name; without NUL it is EINVAL.
    const field = new Uint8Array(64).fill(0x41);
    expect(errnoOf(() => dev.createSession(field))).toBe("EINVAL");
    field[63] = 0;
    expect(dev.createSession(field).name).toBe("A".repeat(63));
  });

  it("retrieve session only finds incoming ones: ENOENT in a cold-booted kernel", () => {
    const dev = boot().open();
    dev.createSession("outgoing");
    expect(errnoOf(() => dev.retrieveSession("outgoing"))).toBe("ENOENT");
  });
});

describe("preserve: checks in the kernel's order", () => {
  it("EEXIST (token) before EBADF before ENOENT before EBUSY", () => {
    const lu = boot();
    const dev = lu.open();
    const s = dev.createSession("order");
    const f = memfd("x");
    s.preserveFd(f, 7);
    expect(errnoOf(() => { s.preserveFd(12345, 7); })).toBe("EEXIST");
    expect(errnoOf(() => { s.preserveFd(12345, 8); })).toBe("EBADF");
    expect(errnoOf(() => { s.preserveFd(new DevNull(), 8); })).toBe("ENOENT");
    expect(errnoOf(() => { s.preserveFd(f, 8); })).toBe("EBUSY");
    expect(errnoOf(() => { s.preserveFd(f, 7); })).toBe("EEXIST");
    // Descriptors work as well as objects.
    const fd = lu.fds.install(memfd("by fd"));
    s.preserveFd(fd, 9);
    expect(s.files.map((x) => x.token)).toEqual([7n, 9n]);
  });

  it("a failed preserve leaves nothing behind (chain shrunk, file not marked preserved)", () => {
    const failing = testHandler({ failPreserve: (file) => file.size === 3 });
    const lu = boot([failing]);
    const s = lu.open().createSession("fails");
    const before = lu.machine.kho.preservedRuns().length;
    const bad = memfd("bad");
    expect(errnoOf(() => { s.preserveFd(bad, 1); })).toBe("EOPNOTSUPP");
    expect(lu.machine.kho.preservedRuns().length).toBe(before);
    s.preserveFd(memfd("good!"), 1); // token 1 was not taken
    expect(s.files.length).toBe(1);
  });

  it("registration order decides which handler takes a file", () => {
    const first = testHandler({ compatible: "first-v1" });
    const second = testHandler({ compatible: "second-v1" });
    const s = boot([first, second]).open().createSession("order");
    s.preserveFd(memfd("x"), 1);
    expect(s.files[0]?.compatible).toBe("first-v1");
    expect(first.calls).toEqual([expect.stringMatching(/^preserve /)]);
    expect(second.calls).toEqual([]);
  });

  it("closing a session unpreserves its files last to first and frees its chain", () => {
    const h = testHandler();
    const lu = boot([h]);
    const before = lu.machine.kho.preservedRuns().length;
    const s = lu.open().createSession("close");
    const files = [memfd("1"), memfd("2"), memfd("3")];
    files.forEach((f, i) => {
      s.preserveFd(f, i);
    });
    s.close();
    expect(h.calls.filter((c) => c.startsWith("unpreserve"))).toEqual(files.reverse().map((f) => `unpreserve ${f.inode}`));
    expect(lu.machine.kho.preservedRuns().length).toBe(before);
    expect(errnoOf(() => { s.preserveFd(memfd("4"), 9); })).toBe("EBADF");
  });

  it("a retrieved session takes no PRESERVE_FD; an outgoing one no RETRIEVE_FD / FINISH", () => {
    const lu = boot();
    const dev = lu.open();
    const out = dev.createSession("out");
    expect(errnoOf(() => out.retrieveFd(1))).toBe("EINVAL");
    expect(errnoOf(() => { out.finish(); })).toBe("EINVAL");
    out.preserveFd(memfd("x"), 1);
    dev.close();
    const next = lu.kexec({ handlers: [testHandler()] });
    const s = next.open().retrieveSession("out");
    expect(errnoOf(() => { s.preserveFd(memfd("y"), 2); })).toBe("EINVAL");
  });

  it("tokens must be u64", () => {
    const s = boot().open().createSession("tokens");
    expect(errnoOf(() => { s.preserveFd(memfd("x"), -1); })).toBe("EINVAL");
    expect(errnoOf(() => { s.preserveFd(memfd("x"), 1n << 64n); })).toBe("EINVAL");
    s.preserveFd(memfd("x"), (1n << 64n) - 1n);
    expect(s.files[0]?.token).toBe((1n << 64n) - 1n);
  });
});

/** A kernel with sessions "a" (files 0x1, 0x2) and "b" (0x3), kexec'd into one with `next`. */
function acrossKexec(next: TestHandler[] = [testHandler()], old: TestHandler[] = [testHandler()]): { lu: LiveUpdate; files: TestMemFile[]; old: LiveUpdate } {
  const lu = boot(old);
  const dev = lu.open();
  const a = dev.createSession("a");
  const b = dev.createSession("b");
  const files = [memfd("one"), memfd("two"), memfd("three")];
  a.preserveFd(files[0]!, 0x1);
  a.preserveFd(files[1]!, 0x2);
  b.preserveFd(files[2]!, 0x3);
  return { lu: lu.kexec({ handlers: next }), files, old: lu };
}

describe("retrieve and finish", () => {
  it("retrieve: ENOENT for an unknown token; the same file again; any order", () => {
    const { lu } = acrossKexec();
    const dev = lu.open();
    const a = dev.retrieveSession("a");
    expect(errnoOf(() => dev.retrieveSession("a"))).toBe("EINVAL");
    expect(errnoOf(() => dev.retrieveSession("zzz"))).toBe("ENOENT");
    expect(errnoOf(() => a.retrieveFd(0x3))).toBe("ENOENT");
    const two = asMem(a.retrieveFd(0x2));
    const one = asMem(a.retrieveFd(0x1));
    expect(new TextDecoder().decode(one.contents())).toBe("one");
    expect(new TextDecoder().decode(two.contents())).toBe("two");
    expect(a.retrieveFd(0x2)).toBe(two);
    expect(a.files.map((f) => f.retrieveStatus)).toEqual([1, 1]);
  });

  it("a failed retrieve returns the same error again without calling the handler again", () => {
    const h = testHandler({ failRetrieve: () => true });
    const { lu } = acrossKexec([h]);
    const b = lu.open().retrieveSession("b");
    expect(errnoOf(() => b.retrieveFd(0x3))).toBe("EIO");
    expect(errnoOf(() => b.retrieveFd(0x3))).toBe("EIO");
    expect(h.calls.filter((c) => c.startsWith("retrieve"))).toHaveLength(1);
    expect(b.files[0]?.retrieveStatus).toBe(-5);
    b.finish();
    expect(h.calls.at(-1)).toBe("finish -5");
  });

  it("finish: all can_finish first (EBUSY changes nothing), then last to first, unretrieved too", () => {
    let allow = false;
    const h = testHandler({ canFinish: () => allow });
    const { lu } = acrossKexec([h]);
    const a = lu.open().retrieveSession("a");
    a.retrieveFd(0x2);
    expect(errnoOf(() => { a.finish(); })).toBe("EBUSY");
    expect(h.calls.filter((c) => c.startsWith("finish"))).toEqual([]);
    expect(a.files.length).toBe(2);
    allow = true;
    a.finish();
    expect(h.calls.filter((c) => c.startsWith("canFinish") || c.startsWith("finish"))).toEqual([
      "canFinish 0", // the first, refused round stopped at file 0x1
      "canFinish 0",
      "canFinish 1",
      "finish 1", // 0x2 (retrieved), last
      "finish 0", // 0x1 never retrieved: cleaned up by finish
    ]);
    expect(a.files).toEqual([]);
    expect(errnoOf(() => a.retrieveFd(0x1))).toBe("ENOENT");
    a.finish(); // nothing left: fine
  });

  it("closing a retrieved session finishes it; a refused finish leaves it (leaked) with the error", () => {
    const h = testHandler({ canFinish: () => false });
    const { lu } = acrossKexec([h]);
    const dev = lu.open();
    const b = dev.retrieveSession("b");
    b.close();
    expect(b.releaseError?.errno).toBe("EBUSY");
    expect(lu.sessions().find((s) => s.name === "b")?.retrieved).toBe(true);
    expect(errnoOf(() => dev.retrieveSession("b"))).toBe("EINVAL");
    expect(lu.log.some((l) => l.includes("Unable to finish session [b]"))).toBe(true);
  });

  it("a retrieved file cannot be preserved again until its session finished (EBUSY)", () => {
    const { lu } = acrossKexec();
    const dev = lu.open();
    const a = dev.retrieveSession("a");
    const one = a.retrieveFd(0x1);
    const out = dev.createSession("again");
    expect(errnoOf(() => { out.preserveFd(one, 1); })).toBe("EBUSY");
    a.finish();
    out.preserveFd(one, 1);
    expect(out.files[0]?.file).toBe(one);
  });

  it("a handler cannot be unregistered while its files are in the kernel", () => {
    const h = testHandler();
    const { lu } = acrossKexec([h]);
    const dev = lu.open();
    expect(errnoOf(() => { lu.registry.unregister(h); })).toBe("EBUSY");
    for (const name of ["a", "b"]) dev.retrieveSession(name).finish();
    lu.registry.unregister(h);
    expect(lu.registry.handlers).toEqual([]);
  });

  it("finishing every session reclaims every preserved page but KHO's own and the FLB page", () => {
    const { lu } = acrossKexec();
    const dev = lu.open();
    for (const name of ["a", "b"]) {
      const s = dev.retrieveSession(name);
      for (const f of s.files) s.retrieveFd(f.token);
      s.finish();
      s.close();
    }
    const inc = lu.machine.incoming;
    expect(inc.stampedRuns().map((r) => r.phys).sort((x, y) => x - y)).toEqual(
      [inc.fdtPhys, inc.retrieveSubtree("kexec-metadata").phys, lu.incoming.flbsPhys].sort((x, y) => x! - y!),
    );
    expect(lu.sessions()).toEqual([]);
  });

  it("liveupdate_num counts live updates", () => {
    let lu = boot();
    expect(lu.liveupdateNum).toBe(1n);
    expect(lu.incoming.state).toBe("none");
    for (let n = 2n; n <= 4n; n++) {
      lu = lu.kexec({ handlers: [testHandler()] });
      expect(lu.incoming.liveupdateNum).toBe(n - 1n);
      expect(lu.liveupdateNum).toBe(n);
      lu.open().close();
    }
  });
});

describe("kexec", () => {
  it("a freeze failure unfreezes what was frozen, clears the records and aborts the kexec", () => {
    let fail = true;
    const h = testHandler({ failFreeze: (f) => fail && f.size === 5 });
    const lu = boot([h]);
    const dev = lu.open();
    const s1 = dev.createSession("s1");
    const s2 = dev.createSession("s2");
    const [f1, f2, f3] = [memfd("1"), memfd("22"), memfd("33333")];
    s1.preserveFd(f1, 1);
    s1.preserveFd(f2, 2);
    s2.preserveFd(f3, 3);
    h.calls.length = 0;
    expect(errnoOf(() => lu.kexec())).toBe("EAGAIN");
    expect(h.calls).toEqual([`freeze ${f1.inode}`, `freeze ${f2.inode}`, `freeze ${f3.inode}`, `unfreeze ${f1.inode}`, `unfreeze ${f2.inode}`]);
    expect(lu.machine.retired).toBe(false);
    expect(lu.frozen).toBe(false);
    expect(lu.machine.memory.readU64(lu.luoPhys + 16)).toBe(0n); // sessions_pa
    // The kernel keeps working, and the next attempt goes through.
    s2.preserveFd(memfd("late"), 4);
    fail = false;
    const next = lu.kexec({ handlers: [h] });
    const d2 = next.open();
    expect(d2.retrieveSession("s2").files.map((f) => f.token)).toEqual([3n, 4n]);
    expect(d2.retrieveSession("s1").files.map((f) => f.token)).toEqual([1n, 2n]);
  });

  it("the old kernel is gone after kexec; sessions closed before kexec are not handed over", () => {
    const lu = boot();
    const dev = lu.open();
    dev.createSession("closed").close();
    dev.createSession("kept");
    const next = lu.kexec({ handlers: [testHandler()] });
    expect(errnoOf(() => dev.createSession("late"))).toBe("EBUSY");
    expect(errnoOf(() => lu.kexec())).toBe("EBUSY");
    const view = next.inspectIncoming();
    expect(view?.sessions.map((s) => s.name)).toEqual(["kept"]);
    next.open();
    expect(errnoOf(() => next.inspectIncoming())).toBe("EBUSY");
    expect(next.sessions().map((s) => s.name)).toEqual(["kept"]);
  });

  it("a next kernel without the handler: first open EIO (sticky, ENOENT cause), nothing consumed", () => {
    const { lu } = acrossKexec([]);
    const stamps = JSON.stringify(lu.machine.incoming.stampedRuns());
    expect(errnoOf(() => lu.open())).toBe("EIO");
    expect(lu.incoming.state).toBe("failed");
    expect(lu.incoming.errno).toBe("ENOENT");
    expect(lu.incoming.failedAt).toEqual({ session: "a", token: 0x1n, compatible: "test-a-v1" });
    // Registering the handler now does not help: the failure is sticky, as in Linux.
    lu.registry.register(testHandler());
    expect(errnoOf(() => lu.open())).toBe("EIO");
    expect(JSON.stringify(lu.machine.incoming.stampedRuns())).toBe(stamps);
    // The model's second next kernel on the same handover: a fresh LUO with the right registry.
    lu.detach();
    const again = LiveUpdate.attach(lu.machine, { handlers: [testHandler()] });
    const b = again.open().retrieveSession("b");
    expect(new TextDecoder().decode(asMem(b.retrieveFd(0x3)).contents())).toBe("three");
  });

  it("preflight names every file the target registry cannot retrieve", () => {
    const a = testHandler({ kind: "a" });
    const b = testHandler({ kind: "b" });
    const lu = boot([a, b]);
    const s = lu.open().createSession("mixed");
    s.preserveFd(memfd("x", "a"), 1);
    s.preserveFd(memfd("y", "b"), 2);
    expect(lu.preflight([a, b])).toEqual([]);
    expect(lu.preflight(["test-a-v1"])).toEqual([expect.objectContaining({ kind: "no-handler", session: "mixed", token: 2n, compatible: "test-b-v1", errno: "ENOENT" })]);
    expect(lu.preflight([]).map((p) => (p.kind === "no-handler" ? p.token : -1n))).toEqual([1n, 2n]);
  });

  it("7.2 quirk: a duplicate create at a 51-session boundary leaves an empty block; the next kernel refuses the state", () => {
    const lu = boot();
    const dev = lu.open();
    for (let i = 0; i < 51; i++) dev.createSession(`s${i}`);
    expect(lu.sessionBlockCount).toBe(1);
    expect(errnoOf(() => dev.createSession("s0"))).toBe("EEXIST");
    expect(lu.sessionBlockCount).toBe(2);
    expect(lu.preflight([])).toEqual([expect.objectContaining({ kind: "empty-session-block", errno: "EINVAL" })]);
    const next = lu.kexec({ handlers: [testHandler()] });
    expect(next.incoming.state).toBe("corrupt");
    expect(next.incoming.error).toBeInstanceOf(FormatError);
    expect((next.incoming.error as FormatError).rule).toBe("block-count");
    expect(() => next.open()).toThrow(FormatError);
  });

  it("the quirk heals when a session closes (the chain shrinks)", () => {
    const lu = boot();
    const dev = lu.open();
    const sessions = Array.from({ length: 51 }, (_, i) => dev.createSession(`s${i}`));
    expect(errnoOf(() => dev.createSession("s0"))).toBe("EEXIST");
    sessions[50]!.close();
    expect(lu.sessionBlockCount).toBe(1);
    expect(lu.preflight([])).toEqual([]);
    expect(lu.kexec().incoming.state).toBe("pending");
  });

  it("attach: one LUO per machine; a registry belongs to one kernel", () => {
    const lu = boot();
    expect(errnoOf(() => LiveUpdate.attach(lu.machine))).toBe("EBUSY");
    expect(errnoOf(() => lu.kexec({ handlers: lu.registry }))).toBe("EBUSY");
    expect(lu.machine.retired).toBe(false); // refused before the kexec
    const next = lu.kexec();
    expect(errnoOf(() => LiveUpdate.attach(next.machine))).toBe("EBUSY");
    expect(LiveUpdate.of(next.machine)).toBe(next);
    expect(LiveUpdate.of(lu.machine)).toBe(lu);
  });
});

describe("FLBs", () => {
  function flbRecorder(compatible: string): { flb: import("../src/index.js").LiveUpdateFlb; calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      flb: {
        compatible,
        preserve(args) {
          calls.push(`preserve@${args.machine.kexecCount}`);
          args.data = 0xabcdef0123n;
          args.obj = { live: compatible };
        },
        unpreserve(args) {
          calls.push(`unpreserve ${args.data.toString(16)}`);
        },
        retrieve(args) {
          calls.push(`retrieve ${args.data.toString(16)}`);
          args.obj = { retrieved: args.data };
        },
        finish(args) {
          calls.push(`finish ${JSON.stringify(args.obj, (_k, v: unknown) => (typeof v === "bigint" ? v.toString(16) : v))}`);
        },
      },
    };
  }

  it("preserved with the first file, unpreserved with the last; serialized with its count", () => {
    const { flb, calls } = flbRecorder("test-flb-v1");
    const mk = (): TestHandler => testHandler({ flbs: [flb], useFlbs: true });
    const lu = boot([mk()]);
    const dev = lu.open();
    const closing = dev.createSession("closing");
    closing.preserveFd(memfd("1"), 1);
    closing.preserveFd(memfd("2"), 2);
    closing.close();
    expect(calls).toEqual(["preserve@0", "unpreserve abcdef0123"]);
    calls.length = 0;
    const kept = dev.createSession("kept");
    kept.preserveFd(memfd("3"), 3);
    kept.preserveFd(memfd("4"), 4);
    const h2 = mk();
    const next = lu.kexec({ handlers: [h2] });
    const view = next.inspectIncoming();
    expect(view?.flbs?.entries.map((e) => ({ name: e.name, data: e.data, count: e.count }))).toEqual([{ name: "test-flb-v1", data: 0xabcdef0123n, count: 2n }]);
    // New kernel: retrieved on first use, finished when the last file finished.
    const s = next.open().retrieveSession("kept");
    s.retrieveFd(3);
    s.retrieveFd(4);
    expect(calls).toEqual(["preserve@0", "retrieve abcdef0123"]);
    expect(h2.flbObjects).toEqual([{ retrieved: 0xabcdef0123n }, { retrieved: 0xabcdef0123n }]);
    s.finish();
    expect(calls.at(-1)).toBe('finish {"retrieved":"abcdef0123"}');
    expect(errnoOf(() => next.flbs.getIncoming(flb))).toBe("ENODATA");
  });

  it("get_incoming: ENOENT when the previous kernel had no such FLB; get_outgoing: ENOENT before any preserve", () => {
    const { flb } = flbRecorder("never-preserved-v1");
    const lu = boot([testHandler({ flbs: [flb] })]);
    expect(errnoOf(() => lu.flbs.getOutgoing(flb))).toBe("ENOENT");
    const next = lu.kexec({ handlers: [testHandler({ flbs: [flb] })] });
    expect(errnoOf(() => next.flbs.getIncoming(flb))).toBe("ENOENT");
  });

  it("a corrupt FLB page (count > 63) is a FormatError for inspection and for get_incoming", () => {
    const { flb } = flbRecorder("flb-v1");
    const lu = boot([testHandler({ flbs: [flb] })]);
    const flbPage = lu.flbPagePhys;
    const next = lu.kexec({ handlers: [testHandler({ flbs: [flb] })] });
    next.machine.memory.writeU64(flbPage + 8, 64);
    expect(() => next.inspectIncoming()).toThrow(FormatError);
    let error: unknown;
    try {
      next.flbs.getIncoming(flb);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FormatError);
    expect((error as FormatError).rule).toBe("flb-count");
  });

  it("a failing FLB preserve fails PRESERVE_FD and leaves nothing preserved", () => {
    const flb = { ...flbRecorder("failing-v1").flb, preserve: () => {
      throw new KernelError("ENOMEM", "test");
    } };
    const lu = boot([testHandler({ flbs: [flb] })]);
    const s = lu.open().createSession("x");
    const f: LuoFile = memfd("x");
    expect(errnoOf(() => { s.preserveFd(f, 1); })).toBe("ENOMEM");
    expect(s.files).toEqual([]);
    expect(lu.flbs).toBeDefined();
  });
});
