/**
 * The handler registry: liveupdate_register_file_handler / _unregister and
 * liveupdate_register_flb / _unregister errnos and order.
 */
import { KernelError } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import { HandlerRegistry, LUO_FLB_MAX, type FileHandler, type LiveUpdateFlb } from "../src/index.js";
import { TestMemFile, testHandler } from "./support/test-handler.js";

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof KernelError) return error.errno;
    throw error;
  }
  return undefined;
}

function flb(compatible: string): LiveUpdateFlb {
  return { compatible, preserve: () => undefined, unpreserve: () => undefined, retrieve: () => undefined, finish: () => undefined };
}

describe("file handlers", () => {
  it("keeps registration order; the first canPreserve wins", () => {
    const a = testHandler({ compatible: "x-a" });
    const b = testHandler({ compatible: "x-b" });
    const reg = new HandlerRegistry([a, b]);
    expect(reg.handlers).toEqual([a, b]);
    expect(reg.forFile(new TestMemFile())).toBe(a);
    reg.unregister(a);
    expect(reg.forFile(new TestMemFile())).toBe(b);
    reg.register(a);
    expect(reg.handlers).toEqual([b, a]);
    expect(reg.forFile(new TestMemFile())).toBe(b);
  });

  it("duplicate compatible EEXIST (also the same handler twice)", () => {
    const reg = new HandlerRegistry([testHandler({ compatible: "dup" })]);
    expect(errnoOf(() => { reg.register(testHandler({ compatible: "dup" })); })).toBe("EEXIST");
    expect(errnoOf(() => { reg.register(reg.handlers[0]!); })).toBe("EEXIST");
  });

  it.each(["preserve", "unpreserve", "retrieve", "finish", "canPreserve"])("missing required op %s: EINVAL", (op) => {
    const h = { ...testHandler(), [op]: undefined } as unknown as FileHandler;
    expect(errnoOf(() => new HandlerRegistry([h]))).toBe("EINVAL");
  });

  it("optional ops may be missing (freeze, unfreeze, canFinish, getId)", () => {
    const h: Partial<FileHandler> = { ...testHandler() };
    delete h.freeze;
    delete h.unfreeze;
    delete (h as { getId?: unknown }).getId;
    expect(() => new HandlerRegistry([h as FileHandler])).not.toThrow();
  });

  it("compatible: 1..47 bytes without NUL (char compatible[48])", () => {
    const reg = new HandlerRegistry();
    reg.register(testHandler({ compatible: "c".repeat(47) }));
    expect(errnoOf(() => { reg.register(testHandler({ compatible: "d".repeat(48) })); })).toBe("EINVAL");
    expect(errnoOf(() => { reg.register(testHandler({ compatible: "é".repeat(24) })); })).toBe("EINVAL"); // 48 UTF-8 bytes
    expect(errnoOf(() => { reg.register(testHandler({ compatible: "" })); })).toBe("EINVAL");
    expect(errnoOf(() => { reg.register(testHandler({ compatible: "a\0b" })); })).toBe("EINVAL");
    expect(reg.find("c".repeat(47))).toBe(reg.handlers[0]);
    expect(reg.find(new TextEncoder().encode(`${"c".repeat(47)}\0junk`))).toBe(reg.handlers[0]);
    expect(reg.find("c".repeat(46))).toBeUndefined();
  });

  it("unregister of a handler not registered: ENOENT", () => {
    expect(errnoOf(() => { new HandlerRegistry().unregister(testHandler()); })).toBe("ENOENT");
  });
});

describe("FLBs", () => {
  it("register: handler must be registered, ops present; same FLB twice EEXIST; same compatible EEXIST", () => {
    const h = testHandler();
    const reg = new HandlerRegistry();
    const f = flb("flb-a");
    expect(errnoOf(() => { reg.registerFlb(h, f); })).toBe("EINVAL");
    reg.register(h);
    expect(errnoOf(() => { reg.registerFlb(h, { ...f, retrieve: undefined } as unknown as LiveUpdateFlb); })).toBe("EINVAL");
    reg.registerFlb(h, f);
    expect(errnoOf(() => { reg.registerFlb(h, f); })).toBe("EEXIST");
    expect(errnoOf(() => { reg.registerFlb(h, flb("flb-a")); })).toBe("EEXIST");
    expect(errnoOf(() => { reg.registerFlb(h, flb("x".repeat(48))); })).toBe("EINVAL");
  });

  it("one FLB for several handlers is one global FLB with several users", () => {
    const h1 = testHandler({ compatible: "h1" });
    const h2 = testHandler({ compatible: "h2" });
    const reg = new HandlerRegistry([h1, h2]);
    const f = flb("shared");
    reg.registerFlb(h1, f);
    reg.registerFlb(h2, f);
    expect(reg.flbs).toEqual([f]);
    expect(reg.unregisterFlb(h1, f)).toBe(true);
    expect(reg.flbs).toEqual([f]);
    expect(reg.unregisterFlb(h1, f)).toBe(false); // not linked (the kernel warns)
    reg.unregister(h2); // drops its links
    expect(reg.flbs).toEqual([]);
  });

  it(`at most ${LUO_FLB_MAX} FLBs: the next first registration is ENOSPC`, () => {
    const h = testHandler();
    const reg = new HandlerRegistry([h]);
    for (let i = 0; i < LUO_FLB_MAX; i++) reg.registerFlb(h, flb(`flb-${i}`));
    expect(errnoOf(() => { reg.registerFlb(h, flb("one-too-many")); })).toBe("ENOSPC");
    // Linking an FLB already registered needs no new slot.
    const h2 = testHandler({ compatible: "other" });
    reg.register(h2);
    reg.registerFlb(h2, reg.flbs[0]!);
    expect(reg.flbsOf(h2)).toEqual([reg.flbs[0]]);
  });

  it("a handler's own flbs are registered with it; a failure rolls the handler back", () => {
    const f = flb("own");
    const h = testHandler({ flbs: [f] });
    const reg = new HandlerRegistry([h]);
    expect(reg.flbsOf(h)).toEqual([f]);
    const clash = testHandler({ compatible: "clash", flbs: [flb("own")] });
    expect(errnoOf(() => { reg.register(clash); })).toBe("EEXIST");
    expect(reg.has(clash)).toBe(false);
  });
});
