import { describe, expect, it } from "vitest";
import { MAX_PAGE_ORDER, PAGE_SIZE } from "../src/abi.js";
import { KernelError } from "../src/errors.js";
import { Machine, parseByteSize } from "../src/machine.js";
import { POISON_BYTE, type PhysicalMemory } from "../src/memory.js";
import { Prng } from "./support/kho-prng.js";

const MiB = 2 ** 20;

interface Run {
  readonly phys: number;
  readonly order: number;
}

/** How a page range is split into runs, written independently of the model's helper. */
function splitRange(pfn: number, count: number): Run[] {
  const out: Run[] = [];
  const end = pfn + count;
  while (pfn < end) {
    let order = 0;
    while (pfn % 2 ** (order + 1) === 0 && pfn + 2 ** (order + 1) <= end) order++;
    out.push({ phys: pfn * PAGE_SIZE, order });
    pfn += 2 ** order;
  }
  return out;
}

function key(r: Run): string {
  return `${r.phys}/${r.order}`;
}

const ZERO = Buffer.alloc(PAGE_SIZE);
const POISON = Buffer.alloc(PAGE_SIZE, POISON_BYTE);

function samePage(memory: PhysicalMemory, pfn: number, expected: Uint8Array): boolean {
  const page = memory.readPage(pfn);
  return Buffer.from(page.buffer, page.byteOffset, page.byteLength).equals(expected);
}

function catchErrno(f: () => unknown): string | undefined {
  try {
    f();
  } catch (error) {
    if (error instanceof KernelError) return error.errno;
    throw error;
  }
  return undefined;
}

/** What one random scenario preserved, by how it must be restored. */
interface Scenario {
  folios: Run[];
  pageRanges: { phys: number; count: number }[];
  /** Allocated, written, but not (or no longer) preserved. */
  dropped: { phys: number; pages: number }[];
}

function randomScenario(m: Machine, rng: Prng, steps: number): Scenario {
  const s: Scenario = { folios: [], pageRanges: [], dropped: [] };
  for (let i = 0; i < steps; i++) {
    const order = rng.chance(0.6) ? rng.range(0, 3) : rng.range(4, MAX_PAGE_ORDER);
    let phys: number;
    try {
      phys = m.kho.allocFolio(order);
    } catch {
      continue;
    }
    const pages = 2 ** order;
    if (rng.chance(0.6)) {
      // Random data in a few of its pages (whole small folios).
      const writes = Math.min(pages, rng.range(1, 4));
      for (let w = 0; w < writes; w++) {
        const page = rng.int(pages);
        m.memory.write(phys + page * PAGE_SIZE + rng.int(64), rng.bytes(rng.range(1, PAGE_SIZE - 64)));
      }
    }
    const how = rng.int(10);
    if (how < 5) {
      m.kho.preserveFolio(phys, order);
      s.folios.push({ phys, order });
    } else if (how < 8 && pages > 1) {
      // A random sub-range of the folio, preserved as pages (split into several runs).
      const first = rng.int(pages);
      const count = rng.range(1, pages - first);
      m.kho.preservePages(phys + first * PAGE_SIZE, count);
      s.pageRanges.push({ phys: phys + first * PAGE_SIZE, count });
    } else {
      s.dropped.push({ phys, pages });
    }
  }
  // Unpreserve some before kexec: they must not survive.
  for (const list of [s.folios]) {
    for (let i = list.length - 1; i >= 0; i--) {
      if (!rng.chance(0.2)) continue;
      const [f] = list.splice(i, 1);
      m.kho.unpreserveFolio(f!.phys, f!.order);
      s.dropped.push({ phys: f!.phys, pages: 2 ** f!.order });
    }
  }
  for (let i = s.pageRanges.length - 1; i >= 0; i--) {
    if (!rng.chance(0.2)) continue;
    const [r] = s.pageRanges.splice(i, 1);
    m.kho.unpreservePages(r!.phys, r!.count);
    s.dropped.push({ phys: r!.phys, pages: r!.count });
  }
  return s;
}

describe("kexec keeps exactly the preserved runs (seeded property test)", () => {
  it.each([1, 2, 3, 4, 5, 6])("seed %i", (seed) => {
    const rng = new Prng(0xc0ffee + seed);
    const m = Machine.boot({
      memory: [
        { start: 0, size: 48 * MiB },
        { start: 64 * MiB, size: 96 * MiB },
      ],
      scratch: [{ start: 40 * MiB, size: 8 * MiB }],
    });
    const s = randomScenario(m, rng, 120);

    const expectedRuns = new Map<string, Run>();
    const add = (r: Run): void => void expectedRuns.set(key(r), r);
    add({ phys: m.kho.fdtPhys, order: 0 });
    add({ phys: m.kho.kexecMetadataPhys, order: 0 });
    for (const f of s.folios) add(f);
    for (const r of s.pageRanges) for (const run of splitRange(r.phys / PAGE_SIZE, r.count)) add(run);
    // Preserved pages of one range may overlap a dropped range (same folio): the map decides.
    const kept = new Set<number>();
    for (const r of expectedRuns.values()) for (let i = 0; i < 2 ** r.order; i++) kept.add(r.phys / PAGE_SIZE + i);
    const nodePfns = new Set(m.kho.radix.nodePages().map((n) => n.phys / PAGE_SIZE));
    // Snapshot the kept pages that hold data; the others must arrive as zero.
    const snapshot = new Map<number, Buffer>();
    for (const pfn of m.memory.dataPfns()) if (kept.has(pfn)) snapshot.set(pfn, Buffer.from(m.memory.readPage(pfn)));
    let keptDataPages = snapshot.size;
    for (const pfn of m.memory.dataPfns()) if (nodePfns.has(pfn) && !kept.has(pfn)) keptDataPages++;

    const next = m.kexec();
    const inc = next.incoming;
    expect(inc.state).toBe("revived");
    expect(next.kexecCount).toBe(1);

    // Nothing else is restorable: the stamped runs are exactly the preserved ones.
    expect(inc.stampedRuns().map(key).sort()).toEqual([...expectedRuns.keys()].sort());

    // Every preserved page's bytes are identical.
    let changed = 0;
    for (const pfn of kept) if (!samePage(next.memory, pfn, snapshot.get(pfn) ?? ZERO)) changed++;
    expect(changed).toBe(0);
    expect(kept.size).toBeGreaterThan(100);

    // Every unpreserved page is poison: the dropped pages outside kept runs, and a sample.
    const fresh = new Set([...next.kho.radix.nodePages().map((n) => n.phys / PAGE_SIZE), next.kho.fdtPhys / PAGE_SIZE, next.kho.kexecMetadataPhys / PAGE_SIZE]);
    let checked = 0;
    let notPoison = 0;
    for (const d of s.dropped) {
      for (let i = 0; i < d.pages; i++) {
        const pfn = d.phys / PAGE_SIZE + i;
        if (kept.has(pfn) || nodePfns.has(pfn) || fresh.has(pfn)) continue;
        if (!samePage(next.memory, pfn, POISON)) notPoison++;
        checked++;
      }
    }
    for (let i = 0; i < 2000; i++) {
      const pfn = rng.int(next.memory.endPfn);
      if (!next.memory.isValidPfn(pfn) || kept.has(pfn) || nodePfns.has(pfn) || fresh.has(pfn)) continue;
      if (!samePage(next.memory, pfn, POISON)) notPoison++;
      checked++;
    }
    expect(checked).toBeGreaterThan(1000);
    expect(notPoison).toBe(0);
    // No page buffers appear for what was not kept (the new kernel adds its own few pages).
    expect(next.memory.dataPageCount).toBeLessThanOrEqual(keptDataPages + fresh.size);

    // Each run restores exactly once, as it was preserved; a second restore fails.
    for (const f of s.folios) {
      expect(inc.restoreFolio(f.phys)).toBe(f.order);
      expect(catchErrno(() => inc.restoreFolio(f.phys))).toBe("EINVAL");
    }
    for (const r of s.pageRanges) {
      inc.restorePages(r.phys, r.count);
      expect(catchErrno(() => { inc.restorePages(r.phys, r.count); })).toBe("EINVAL");
    }
    for (const d of s.dropped) {
      // (A dropped folio's head may also head a kept run of another preservation.)
      if (inc.stampOf(d.phys) === undefined) expect(catchErrno(() => inc.restoreFolio(d.phys))).toBe("EINVAL");
    }
    expect(inc.stampedCount).toBe(2); // the previous kernel's FDT and kexec-metadata pages
  });
});

describe("a chain of kexecs", () => {
  it("restored memory can be preserved again; kexec-metadata counts the kexecs", () => {
    const rng = new Prng(42);
    let m = Machine.boot({ memory: "96 MiB", release: "7.2.0-a" });
    const data = rng.bytes(3 * PAGE_SIZE);
    let phys = m.kho.allocFolio(2);
    m.memory.write(phys, data);
    m.kho.preserveFolio(phys, 2);
    for (let gen = 1; gen <= 3; gen++) {
      const release = `7.2.${gen}-b`;
      const previous = m.release;
      m.kho.addSubtree("state", phys, 4 * PAGE_SIZE);
      m = m.kexec({ release });
      expect(m.kexecCount).toBe(gen);
      expect(m.incoming.previousRelease).toBe(previous);
      expect(m.release).toBe(release);
      const got = m.incoming.retrieveSubtree("state");
      expect(got).toEqual({ phys, size: 4 * PAGE_SIZE });
      expect(m.incoming.restoreFolio(got.phys)).toBe(2);
      expect(m.memory.read(got.phys, data.length)).toEqual(data);
      // Keep it for the next kernel, or move it to a fresh folio.
      if (gen % 2 === 0) {
        const moved = m.kho.allocFolio(2);
        m.memory.write(moved, m.memory.read(got.phys, 4 * PAGE_SIZE));
        m.kho.freeFolio(got.phys, 2);
        phys = moved;
      }
      m.kho.preserveFolio(phys, 2);
    }
  });
});

describe("Machine", () => {
  it("parses sizes and lays out memory and scratch", () => {
    expect(parseByteSize("8 GiB")).toBe(8 * 2 ** 30);
    expect(parseByteSize("512MiB")).toBe(512 * MiB);
    expect(parseByteSize("1T")).toBe(2 ** 40);
    expect(parseByteSize("4096")).toBe(4096);
    expect(() => parseByteSize("lots")).toThrow(KernelError);
    const m = Machine.boot({ memory: "8 GiB" });
    expect(m.memory.totalBytes).toBe(8 * 2 ** 30);
    expect(m.scratch).toHaveLength(1);
    const s = m.scratch[0]!;
    expect(s.start % (4 * MiB)).toBe(0);
    expect(s.start + s.size).toBeLessThanOrEqual(8 * 2 ** 30);
    expect(catchErrno(() => { m.kho.preserveFolio(s.start, 0); })).toBe("EINVAL");
    expect(Machine.boot({ memory: 64 * MiB, scratch: "none" }).scratch).toEqual([]);
    expect(Machine.boot({ memory: "1 TiB" }).memory.dataPageCount).toBeLessThan(16);
  });

  it("runs before-kexec hooks in order, then boot hooks on the next machine", () => {
    const log: string[] = [];
    const m = Machine.boot({ memory: "32 MiB", onBoot: (x) => log.push(`boot ${x.kexecCount}`) });
    m.onBeforeKexec((x) => {
      log.push("before 1");
      const p = x.kho.allocPreserve(64);
      x.memory.write(p, new TextEncoder().encode("serialized"));
      x.kho.addSubtree("LUO", p, 64);
    });
    const off = m.onBeforeKexec(() => log.push("removed"));
    m.onBeforeKexec(() => log.push("before 2"));
    off();
    const next = m.kexec();
    expect(log).toEqual(["boot 0", "before 1", "before 2", "boot 1"]);
    const { phys } = next.incoming.retrieveSubtree("LUO");
    expect(new TextDecoder().decode(next.memory.read(phys, 10))).toBe("serialized");
    // Boot hooks carry over unless kexec brings its own.
    next.kexec({ onBoot: [] });
    expect(log).toEqual(["boot 0", "before 1", "before 2", "boot 1"]);
  });

  it("a failing before-kexec hook abandons the kexec; a retired machine cannot kexec or be read", () => {
    const m = Machine.boot({ memory: "32 MiB" });
    const remove = m.onBeforeKexec(() => {
      throw new KernelError("EBUSY", "a session is busy");
    });
    expect(catchErrno(() => m.kexec())).toBe("EBUSY");
    expect(m.retired).toBe(false);
    remove();
    const next = m.kexec();
    expect(m.retired).toBe(true);
    expect(catchErrno(() => m.kexec())).toBe("EBUSY");
    expect(() => m.memory.read(0, 1)).toThrow(/handed over/);
    expect(next.retired).toBe(false);
  });

  it("kexec of a 64 GiB machine with 16 GiB of order-9 folios preserved stays cheap", () => {
    const m = Machine.boot({ memory: "64 GiB" });
    const folios: number[] = [];
    for (let i = 0; i < (16 * 2 ** 30) / (2 * MiB); i++) {
      const p = m.kho.allocFolio(9);
      m.kho.preserveFolio(p, 9);
      folios.push(p);
    }
    const next = m.kexec();
    expect(next.incoming.stampedCount).toBe(folios.length + 2);
    expect(next.memory.dataPageCount).toBeLessThan(64);
    const probe = folios[folios.length >> 1]!;
    expect(next.memory.read(probe + 5 * PAGE_SIZE, 16)).toEqual(new Uint8Array(16)); // preserved, never written: zero
    expect(next.incoming.restoreFolio(probe)).toBe(9);
  });
});
