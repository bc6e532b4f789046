/**
 * Hostile "LUO" state: every corruption is refused with a typed error (at boot where Linux
 * panics, at the first open where Linux fails it with EIO), the incoming state (stamps and
 * preserved bytes) is left exactly as it was, and once the bytes are repaired a fresh LUO
 * with the right registry retrieves everything from the same machine.
 */
import { FormatError, KernelError, KhoRootFdtPage, KHO_FDT_SIZE, type Machine } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import { HandlerRegistry, LiveUpdate, LUO_SER_SIZE } from "../src/index.js";
import { handover, incomingFingerprint, retrieveAll, type Plan } from "./support/handover.js";
import { Prng } from "./support/prng.js";
import { testHandler } from "./support/test-handler.js";

const PLAN: Plan = [
  { name: "first", files: [{ token: 0x10n, data: "alpha" }, { token: 0x20n, data: "beta" }] },
  { name: "second", files: [{ token: 0x30n, data: "gamma" }] },
  { name: "empty", files: [] },
];

interface Layout {
  next: Machine;
  luo: number;
  sessions: number;
  /** Record address of session i. */
  session(i: number): number;
  /** First file block of session i. */
  files(i: number): number;
}

function layout(): Layout {
  const { next, luoPhys } = handover(PLAN);
  const m = next.memory;
  const sessions = Number(m.readU64(luoPhys + 16));
  const session = (i: number): number => sessions + 16 + i * 80;
  return { next, luo: luoPhys, sessions, session, files: (i) => Number(m.readU64(session(i) + 64)) };
}

/** Apply `mutate`, run the failing attempt, check nothing changed, repair, retrieve everything. */
function attempt(mutate: (m: Machine["memory"], l: Layout) => void, check: (lu: LiveUpdate) => void): void {
  const l = layout();
  const m = l.next.memory;
  const clean = incomingFingerprint(l.next);
  const saved = new Map<number, Uint8Array>();
  const tracked = {
    write: (phys: number, bytes: Uint8Array): void => {
      if (!saved.has(phys)) saved.set(phys, m.read(phys, bytes.length));
      m.write(phys, bytes);
    },
  };
  const proxy = new Proxy(m, {
    get(target, prop, receiver): unknown {
      if (prop === "write") return tracked.write;
      if (prop === "writeU64") {
        return (phys: number, v: bigint | number): void => {
          const b = new Uint8Array(8);
          new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
          tracked.write(phys, b);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  mutate(proxy, l);
  const tampered = incomingFingerprint(l.next);
  const lu = LiveUpdate.attach(l.next, { handlers: [testHandler()] });
  check(lu);
  expect(incomingFingerprint(l.next)).toBe(tampered);
  // Repair, and a fresh LUO on the same machine takes everything.
  for (const [phys, bytes] of [...saved].reverse()) m.write(phys, bytes);
  expect(incomingFingerprint(l.next)).toBe(clean);
  lu.detach();
  const again = LiveUpdate.attach(l.next, { handlers: [testHandler()] });
  expect(again.incoming.state).toBe("pending");
  retrieveAll(again, PLAN);
}

function bootError(lu: LiveUpdate, format: string, rule: string): void {
  expect(lu.incoming.state).toBe("corrupt");
  const error = lu.incoming.error;
  expect(error).toBeInstanceOf(FormatError);
  expect((error as FormatError).format).toBe(format);
  expect((error as FormatError).rule).toBe(rule);
  expect((error as FormatError).errno).toBe("EINVAL");
  expect(() => lu.open()).toThrow(FormatError);
  expect(() => lu.open()).toThrow(FormatError); // every time, never EBUSY
}

function openError(lu: LiveUpdate, errno: string, rule?: string): void {
  expect(lu.incoming.state).toBe("pending");
  let thrown: unknown;
  try {
    lu.open();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(KernelError);
  expect((thrown as KernelError).errno).toBe("EIO");
  expect(lu.incoming.state).toBe("failed");
  expect(lu.incoming.errno).toBe(errno);
  if (rule !== undefined) expect((lu.incoming.error as FormatError).rule).toBe(rule);
  expect(() => lu.open()).toThrow(/EIO/); // sticky
  expect(lu.deviceOpen).toBe(false);
}

describe("boot checks (Linux panics): typed error, nothing consumed", () => {
  it("wrong compatible", () => {
    attempt((m, l) => {
      m.write(l.luo, new TextEncoder().encode("luo-v4\0\0"));
    }, (lu) => {
      bootError(lu, "luo", "compatible");
    });
  });

  it("blob-size below 32 (a truncated blob)", () => {
    attempt((m, l) => {
      const fdt = l.next.incoming.fdtPhys!;
      const page = KhoRootFdtPage.fromPage(m.read(fdt, KHO_FDT_SIZE));
      page.removeSubtree(l.luo);
      page.addSubtree("LUO", l.luo, LUO_SER_SIZE - 8);
      m.write(fdt, page.page);
    }, (lu) => {
      bootError(lu, "luo", "blob-size");
    });
  });

  it("sessions_pa beyond 52 bits, or outside memory", () => {
    attempt((m, l) => {
      m.writeU64(l.luo + 16, 1n << 60n);
    }, (lu) => {
      bootError(lu, "luo", "pointer-range");
    });
    attempt((m, l) => {
      m.writeU64(l.luo + 16, 0x7f_0000_0000);
    }, (lu) => {
      bootError(lu, "kho-block", "block-pointer");
    });
  });

  it("a cycle in the session chain; block counts 0 and 52", () => {
    attempt((m, l) => {
      m.writeU64(l.sessions, l.sessions);
    }, (lu) => {
      bootError(lu, "kho-block", "block-cycle");
    });
    for (const count of [0, 52]) {
      attempt((m, l) => {
        m.writeU64(l.sessions + 8, count);
      }, (lu) => {
        bootError(lu, "kho-block", "block-count");
      });
    }
  });

  it("a compatible that differs only after its NUL still matches (strncmp)", () => {
    const l = layout();
    l.next.memory.write(l.luo + 7, new Uint8Array([0x58]));
    const lu = LiveUpdate.attach(l.next, { handlers: [testHandler()] });
    expect(lu.incoming.state).toBe("pending");
    retrieveAll(lu, PLAN);
  });
});

describe("FLB page and the outgoing sub-tree", () => {
  it("a bad flbs_pa is no boot failure (Linux reads it lazily): inspection and get_incoming refuse it", () => {
    const { next, luoPhys } = handover(PLAN);
    next.memory.writeU64(luoPhys + 24, 1n << 62n);
    const flb = { compatible: "f-v1", preserve: () => undefined, unpreserve: () => undefined, retrieve: () => undefined, finish: () => undefined };
    const lu = LiveUpdate.attach(next, { handlers: [testHandler({ flbs: [flb] })] });
    expect(lu.incoming.state).toBe("pending");
    expect(() => lu.inspectIncoming()).toThrow(expect.objectContaining({ rule: "flb-outside" }));
    expect(() => lu.flbs.getIncoming(flb)).toThrow(expect.objectContaining({ rule: "flb-outside" }));
    retrieveAll(lu, PLAN);
  });

  it("attach to a machine that already has a \"LUO\" sub-tree: EEXIST, and the registry stays free", () => {
    const { next } = handover(PLAN);
    const blob = next.kho.allocPreserve(32);
    next.kho.addSubtree("LUO", blob, 32);
    const registry = new HandlerRegistry([testHandler()]);
    expect(() => LiveUpdate.attach(next, { handlers: registry })).toThrow(expect.objectContaining({ errno: "EEXIST" }));
    expect(registry.bound).toBe(false);
    next.kho.removeSubtree(blob);
    retrieveAll(LiveUpdate.attach(next, { handlers: registry }), PLAN);
  });
});

describe("first-open checks (Linux: EIO): sticky EIO, nothing consumed", () => {
  it("a session's count differs from its chain", () => {
    attempt((m, l) => {
      m.writeU64(l.session(0) + 72, 3);
    }, (lu) => {
      openError(lu, "EINVAL", "file-count");
    });
  });

  it("a cycle in a file chain", () => {
    attempt((m, l) => {
      m.writeU64(l.files(1), l.files(1));
    }, (lu) => {
      openError(lu, "EINVAL", "block-cycle");
    });
  });

  it("two sessions with one name: EEXIST", () => {
    attempt((m, l) => {
      m.write(l.session(1), new TextEncoder().encode("first\0"));
    }, (lu) => {
      openError(lu, "EEXIST", "duplicate-session");
    });
  });

  it("a compatible no handler has, or one without NUL in 48 bytes: ENOENT", () => {
    attempt((m, l) => {
      m.write(l.files(1) + 16, new TextEncoder().encode("test-z-v1"));
    }, (lu) => {
      openError(lu, "ENOENT");
      expect(lu.incoming.failedAt).toEqual({ session: "second", token: 0x30n, compatible: "test-z-v1" });
    });
    attempt((m, l) => {
      m.write(l.files(0) + 16 + 64, new Uint8Array(48).fill(0x78));
    }, (lu) => {
      openError(lu, "ENOENT");
    });
  });

  it("a file chain in a page that was not preserved", () => {
    const stray = 96 * 2 ** 20;
    attempt((m, l) => {
      m.write(stray, m.read(l.files(1), 4096));
      m.writeU64(l.session(1) + 64, stray);
    }, (lu) => {
      openError(lu, "EINVAL", "not-preserved");
    });
  });

  it("two sessions sharing a file block", () => {
    attempt((m, l) => {
      m.writeU64(l.session(1) + 64, l.files(0));
      m.writeU64(l.session(1) + 72, 2);
    }, (lu) => {
      openError(lu, "EINVAL", "shared-block");
    });
  });

  it("no file chain but a count: the kernel only warns", () => {
    const l = layout();
    l.next.memory.writeU64(l.session(2) + 72, 5);
    const lu = LiveUpdate.attach(l.next, { handlers: [testHandler()] });
    lu.open().close();
    expect(lu.log.some((line) => line.includes('session "empty" has no file chain but a count of 5'))).toBe(true);
    retrieveAll(lu, PLAN);
  });
});

describe("fuzz: random byte damage to the LUO structures", () => {
  it("never anything but a typed error; a refused state is never consumed (seeded)", () => {
    const rng = new Prng(0x10c0);
    const counts = { boot: 0, open: 0, accepted: 0 };
    const ITERATIONS = 120;
    for (let iter = 0; iter < ITERATIONS; iter++) {
      const l = layout();
      const m = l.next.memory;
      const targets = [
        { at: l.luo, len: 32 },
        { at: l.sessions, len: 16 + 3 * 80 },
        { at: l.files(0), len: 16 + 2 * 64 },
        { at: l.files(1), len: 16 + 64 },
      ];
      const flips = rng.range(1, 4);
      for (let k = 0; k < flips; k++) {
        const t = rng.pick(targets);
        m.write(t.at + rng.int(t.len), new Uint8Array([rng.int(256)]));
      }
      const before = incomingFingerprint(l.next);
      const lu = LiveUpdate.attach(l.next, { handlers: [testHandler()] });
      if (lu.incoming.state === "corrupt") {
        counts.boot++;
        expect(() => lu.open()).toThrow(FormatError);
        expect(incomingFingerprint(l.next)).toBe(before);
        continue;
      }
      let dev: ReturnType<LiveUpdate["open"]>;
      try {
        dev = lu.open();
      } catch (error) {
        expect(error).toBeInstanceOf(KernelError);
        expect((error as KernelError).errno).toBe("EIO");
        expect(incomingFingerprint(l.next)).toBe(before);
        counts.open++;
        continue;
      }
      counts.accepted++;
      // Whatever was accepted retrieves and finishes with nothing but typed errors.
      for (const summary of lu.sessions()) {
        const typed = (fn: () => unknown): void => {
          try {
            fn();
          } catch (error) {
            expect(error instanceof KernelError || error instanceof FormatError).toBe(true);
          }
        };
        typed(() => {
          const s = dev.retrieveSession(summary.name);
          for (const f of summary.files) typed(() => s.retrieveFd(f.token));
          typed(() => {
            s.finish();
          });
        });
      }
    }
    expect(counts.boot + counts.open + counts.accepted).toBe(ITERATIONS);
    expect(counts.boot).toBeGreaterThan(0);
    expect(counts.open).toBeGreaterThan(0);
    expect(counts.accepted).toBeGreaterThan(0);
  });
});
