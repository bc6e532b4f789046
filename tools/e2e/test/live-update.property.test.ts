/**
 * The whole stack, end to end, on random inputs: sessions of real memfds (sizes from 0 to
 * huge, sparse, sealed, with a position) preserved by a random producer handler, a kexec into
 * a next kernel with a random handler set, and then:
 *
 * - a next kernel that has the producer's handler gets every byte, size, pos (and, for
 *   memfd-v2, the seals) back;
 * - one that lacks it fails exactly as Linux does (the missing file `ENOENT`, the device
 *   `EIO`), the pre-flight named exactly those files before the reboot, and nothing is lost:
 *   LUO taken out and put back with the right handlers retrieves the same image in full.
 */
import { describe, expect, it } from "vitest";
import { KernelError } from "@liveupdate/kho";
import { LiveUpdate, type FileHandler } from "@liveupdate/luo-core";
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE, MFD_ALLOW_SEALING, MemfdFile, memfd } from "@liveupdate/memfd";
import { memfdV0 } from "@liveupdate/memfd-luo-v0";
import { memfdV1 } from "@liveupdate/memfd-luo-v1";
import { memfdV2 } from "@liveupdate/memfd-luo-v2";

const HANDLERS: readonly FileHandler[] = [memfdV0, memfdV1, memfdV2];
const PAGE = 4096;

/** mulberry32: small, seeded, reproducible. */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  };
}

interface Expected {
  session: string;
  token: bigint;
  size: number;
  pos: number;
  seals: number;
  bytes: Uint8Array;
}

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof KernelError || (e instanceof Error && "errno" in e)) return (e as { errno: string }).errno;
    throw e;
  }
}

/** One scenario: build, preserve with `producer`, kexec into `consumers`, check. */
function scenario(seed: number): { producer: string; consumers: string[]; files: number; recovered: boolean } {
  const rand = prng(seed);
  const producer = HANDLERS[rand(HANDLERS.length)]!;
  const consumers = HANDLERS.filter(() => rand(3) !== 0);
  const old = LiveUpdate.boot({ memory: "256 MiB", handlers: [producer] });
  const dev = old.open();
  const expected: Expected[] = [];
  const sessionCount = 1 + rand(3);
  for (let s = 0; s < sessionCount; s++) {
    const name = `vm-${seed}-${s}`;
    const session = dev.createSession(name);
    const fileCount = rand(4);
    for (let f = 0; f < fileCount; f++) {
      const huge = rand(4) === 0 ? "always" : "never";
      const file = memfd.create(old.machine, { name: `ram${f}`, flags: rand(2) === 0 ? MFD_ALLOW_SEALING : 0, huge });
      const shape = rand(4);
      const size = shape === 0 ? 0 : shape === 1 ? 1 + rand(3 * PAGE) : shape === 2 ? (64 + rand(512)) * PAGE : (1 + rand(3)) * 2 * 1024 * 1024;
      file.truncate(size);
      const bytes = new Uint8Array(size);
      // Sparse: write a few random extents, leave the rest as holes.
      for (let w = 0, writes = rand(6); w < writes && size > 0; w++) {
        const at = rand(size);
        const chunk = Uint8Array.from({ length: Math.min(size - at, 1 + rand(3 * PAGE)) }, () => rand(256));
        file.pwrite(at, chunk);
        bytes.set(chunk, at);
      }
      const pos = size === 0 ? 0 : rand(size + 1);
      file.lseek(pos, 0);
      let seals = file.seals;
      if ((seals & F_SEAL_SEAL) === 0 && rand(2) === 0) {
        file.addSeals([F_SEAL_GROW, F_SEAL_SHRINK | F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_SEAL][rand(4)]!);
        seals = file.seals;
      }
      const token = BigInt(seed) * 0x10000n + BigInt(s * 16 + f);
      session.preserveFd(file, token);
      expected.push({ session: name, token, size, pos, seals, bytes });
    }
  }

  const canRetrieve = consumers.includes(producer);
  // Pre-flight names exactly the files the next kernel will not be able to take.
  const problems = old.preflight(consumers);
  expect(problems.length, `seed ${seed}`).toBe(canRetrieve ? 0 : expected.length);

  const next = old.kexec({ handlers: consumers });
  let lu = next;
  let recovered = false;
  if (!canRetrieve && expected.length > 0) {
    expect(errnoOf(() => next.open()), `seed ${seed}: first open`).toBe("EIO");
    expect(errnoOf(() => next.open()), `seed ${seed}: sticky`).toBe("EIO");
    // Nothing was consumed: take LUO out and attach it again with the producer's handler.
    next.detach();
    lu = LiveUpdate.attach(next.machine, { handlers: [...consumers, producer] });
    recovered = true;
  }
  const dev2 = lu.open();
  const bySession = new Map<string, Expected[]>();
  for (const e of expected) bySession.set(e.session, [...(bySession.get(e.session) ?? []), e]);
  for (const [name, files] of bySession) {
    const session = dev2.retrieveSession(name);
    // Any order: retrieve back to front.
    for (const e of [...files].reverse()) {
      const m = session.retrieveFd(e.token);
      if (!(m instanceof MemfdFile)) throw new Error(`seed ${seed}: token ${e.token} did not come back as a memfd`);
      expect(m.size, `seed ${seed} size`).toBe(e.size);
      expect(m.position, `seed ${seed} pos`).toBe(e.pos);
      expect(Buffer.compare(m.pread(0, e.size), e.bytes), `seed ${seed} token ${e.token}: contents`).toBe(0);
      // memfd-v2 carries seals; v0 and v1 give back a kernel-made shmem file (F_SEAL_SEAL only).
      expect(m.seals, `seed ${seed} seals`).toBe(producer === memfdV2 ? e.seals : F_SEAL_SEAL);
    }
    session.finish();
  }
  return { producer: producer.compatible, consumers: consumers.map((h) => h.compatible), files: expected.length, recovered };
}

describe("live update end to end, random sessions, files and handler sets", () => {
  it("every file comes back whole, or fails as Linux does and then comes back whole", () => {
    const outcomes = Array.from({ length: 60 }, (_, i) => scenario(1000 + i));
    // The seeds reach every producer and both outcomes.
    expect(new Set(outcomes.map((o) => o.producer)).size).toBe(3);
    expect(outcomes.some((o) => o.recovered)).toBe(true);
    expect(outcomes.some((o) => !o.recovered && o.files > 0)).toBe(true);
    expect(outcomes.reduce((n, o) => n + o.files, 0)).toBeGreaterThan(60);
  });
});
