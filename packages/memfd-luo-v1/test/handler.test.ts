/**
 * The memfd-v1 (Linux 6.19) handler's ops called directly, as luo-core calls them: preserve
 * on one Machine, kexec, retrieve on the next with fresh op args. Record bytes are checked
 * against layouts computed here by hand.
 */
import { KHO_VMALLOC_ALLOC, Machine, PAGE_SIZE, POISON_BYTE, type KhoVmalloc } from "@liveupdate/kho";
import {
  FALLOC_FL_KEEP_SIZE,
  FOLIO_DIRTY,
  FOLIO_UPTODATE,
  F_ALL_SEALS,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MFD_ALLOW_SEALING,
  MFD_HUGETLB,
  MemfdFile,
  memfd,
  type ShmemHugePolicy,
} from "@liveupdate/memfd";
import type { FileOpArgs, LuoFile } from "@liveupdate/luo-core";
import { describe, expect, it } from "vitest";
import { MEMFD_V1_COMPATIBLE, MEMFD_V1_SER_SIZE, MemfdV1Handler, decodeMemfdV1, memfdV1, type MemfdV1PreservedState } from "../src/index.js";
import { errnoOf, finish, freeze, opArgs, preserve, retrieve, thrown, unpreserve, type Preserved } from "./support/ops.js";
import { Prng } from "./support/prng.js";

function boot(memory = "512 MiB"): Machine {
  return Machine.boot({ memory });
}

function asMemfd(file: LuoFile): MemfdFile {
  if (!(file instanceof MemfdFile)) throw new Error("not a memfd");
  return file;
}

/** memfd_luo_ser (6.19) as the header lays it out, by hand. */
function handSer(f: { pos: number; size: number; nrFolios: number; vmalloc: KhoVmalloc }): Uint8Array {
  const b = new Uint8Array(40);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(f.pos), true); // pos
  v.setBigUint64(8, BigInt(f.size), true); // size
  v.setBigUint64(16, BigInt(f.nrFolios), true); // nr_folios
  v.setBigUint64(24, BigInt(f.vmalloc.first), true); // folios.first
  v.setUint32(32, f.vmalloc.totalPages, true); // folios.total_pages
  v.setUint16(36, f.vmalloc.flags, true); // folios.flags
  v.setUint16(38, f.vmalloc.order, true); // folios.order
  return b;
}

/** memfd_luo_folio_ser by hand: u64 pfn:52 | flags:12 (flags in bits 52..63), u64 index. */
function handFolio(phys: number, flags: number, index: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(phys / PAGE_SIZE) | (BigInt(flags) << 52n), true);
  v.setBigUint64(8, BigInt(index), true);
  return b;
}

function u64(memory: { readU64(phys: number): bigint }, phys: number): number {
  return Number(memory.readU64(phys));
}

function pattern(seed: number, length: number, offset = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((seed * 31 + (offset + i) * 13 + ((offset + i) >>> 12)) & 0xff) | 1;
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("records, byte for byte", () => {
  it("the 40-byte record and folio records carrying each folio's own flags (6.19)", () => {
    const m = boot();
    const f = memfd.create(m, { name: "layout", flags: MFD_ALLOW_SEALING });
    f.truncate(4 * PAGE_SIZE + 1);
    f.pwrite(0, pattern(1, PAGE_SIZE)); // page 0: written -> DIRTY | UPTODATE
    f.fallocate(FALLOC_FL_KEEP_SIZE, 2 * PAGE_SIZE, PAGE_SIZE); // page 2: fallocated -> DIRTY only
    f.addSeals(F_SEAL_SHRINK | F_SEAL_GROW); // not recorded
    f.lseek(4321, 0);
    const p = preserve(memfdV1, m, f);
    const serPhys = Number(p.serializedData);
    expect(serPhys % PAGE_SIZE).toBe(0);
    expect(m.kho.isPreserved(serPhys, 0)).toBe(true);
    const folios = f.folios(); // pages 1, 3, 4 were holes: filled UPTODATE, clean
    expect(folios.map((x) => [x.index, x.flags])).toEqual([
      [0, FOLIO_DIRTY | FOLIO_UPTODATE],
      [1, FOLIO_UPTODATE],
      [2, FOLIO_DIRTY],
      [3, FOLIO_UPTODATE],
      [4, FOLIO_UPTODATE],
    ]);
    const first = u64(m.memory, serPhys + 24);
    const arrayPage = u64(m.memory, first + 8);
    expect(u64(m.memory, first)).toBe(0);
    expect(u64(m.memory, first + 16)).toBe(0);
    expect(hex(m.memory.read(serPhys, 40))).toBe(hex(handSer({ pos: 4321, size: 4 * PAGE_SIZE + 1, nrFolios: 5, vmalloc: { first, totalPages: 1, flags: KHO_VMALLOC_ALLOC, order: 0 } })));
    // The record page was zeroed past the 40 bytes: no seals anywhere.
    expect(m.memory.read(serPhys + 40, 16).every((b) => b === 0)).toBe(true);
    const flags = [3, 2, 1, 2, 2];
    for (let i = 0; i < folios.length; i++) expect(hex(m.memory.read(arrayPage + 16 * i, 16))).toBe(hex(handFolio(folios[i]!.phys, flags[i]!, i)));
    expect(MEMFD_V1_SER_SIZE).toBe(40);
  });

  it("an empty memfd: nr_folios 0 and an all-zero kho_vmalloc", () => {
    const m = boot();
    const p = preserve(memfdV1, m, memfd.create(m, { name: "empty" }));
    expect(hex(m.memory.read(Number(p.serializedData), 40))).toBe("00".repeat(40));
  });

  it("large folios keep their order", () => {
    const m = boot();
    const f = memfd.create(m, { name: "thp", huge: "within_size", hugeOrders: [9, 8, 7, 6, 5, 4, 3, 2, 1] });
    f.truncate(80 * PAGE_SIZE);
    f.pwrite(0, pattern(2, 80 * PAGE_SIZE));
    const p = preserve(memfdV1, m, f);
    const folios = f.folios();
    expect(folios.map((x) => [x.index, x.order])).toEqual([
      [0, 6],
      [64, 4],
    ]);
    for (const x of folios) expect(m.kho.isPreserved(x.phys, x.order)).toBe(true);
    const arrayPage = u64(m.memory, u64(m.memory, Number(p.serializedData) + 24) + 8);
    expect(hex(m.memory.read(arrayPage, 32))).toBe(hex(handFolio(folios[0]!.phys, 3, 0)) + hex(handFolio(folios[1]!.phys, 3, 64)));
  });
});

describe("preserve, freeze, unpreserve", () => {
  it("freezes the file while preserved, records pos at freeze, and unpreserve undoes everything", () => {
    const m = boot();
    const baseline = m.kho.preservedRuns().length;
    const f = memfd.create(m, { name: "life", flags: MFD_ALLOW_SEALING });
    f.pwrite(0, pattern(4, 3 * PAGE_SIZE));
    const free = m.allocator.freePages;
    const p = preserve(memfdV1, m, f);
    expect(errnoOf(() => { f.truncate(1); })).toBe("EPERM");
    f.lseek(99, 0);
    freeze(memfdV1, m, p);
    expect(u64(m.memory, Number(p.serializedData))).toBe(99);
    memfdV1.unfreeze();
    unpreserve(memfdV1, m, p);
    expect([f.mappingFrozen, f.pinCount]).toEqual([false, 0]);
    expect(m.kho.preservedRuns().length).toBe(baseline);
    expect(m.allocator.freePages).toBe(free);
    f.addSeals(F_SEAL_WRITE);
  });

  it("does not look at seals (even ones the kernel does not know); refuses files over 2^32 - 1 pages (EFBIG)", () => {
    const m = boot();
    const future = memfd.create(m, { name: "future", flags: MFD_ALLOW_SEALING, knownSeals: F_ALL_SEALS | 0x40 });
    future.addSeals(0x40);
    preserve(memfdV1, m, future);
    const huge = memfd.create(m, { name: "16TiB" });
    huge.truncate(2 ** 32 * PAGE_SIZE);
    const baseline = m.kho.preservedRuns().length;
    expect(errnoOf(() => preserve(memfdV1, m, huge))).toBe("EFBIG");
    expect(huge.mappingFrozen).toBe(false);
    expect(m.kho.preservedRuns().length).toBe(baseline);
  });

  it("takes memfds only", () => {
    const m = boot();
    expect(memfdV1.canPreserve(memfd.create(m, { name: "a" }))).toBe(true);
    expect(memfdV1.canPreserve(memfd.create(m, { name: "h", flags: MFD_HUGETLB }))).toBe(false);
    expect(memfdV1.canPreserve(memfd.createTmpfsFile(m, { path: "/x" }))).toBe(false);
    expect(memfdV1.canPreserve({ description: "socket" })).toBe(false);
    expect(memfdV1.compatible).toBe(MEMFD_V1_COMPATIBLE);
  });
});

interface Source {
  readonly file: MemfdFile;
  readonly bytes: Uint8Array;
  readonly folios: Array<[number, number, number]>;
  p: Preserved;
}

describe("round trips across kexec (direct op calls)", () => {
  it("random sizes, contents and positions come back; seals do not (the file comes back unsealed)", () => {
    const rng = new Prng(0x61);
    const policies: ShmemHugePolicy[] = ["never", "always", "within_size"];
    for (let round = 0; round < 3; round++) {
      const m = boot("1 GiB");
      const sources: Source[] = [];
      for (let n = 0; n < 6; n++) {
        const f = memfd.create(m, { name: `rt-${n}`, flags: MFD_ALLOW_SEALING, huge: policies[rng.int(3)]!, hugeOrders: [9, 4] });
        const kind = rng.int(4);
        const size = kind === 0 ? 0 : kind === 1 ? rng.range(1, 3 * PAGE_SIZE) : kind === 2 ? rng.range(1, 32) * 512 * PAGE_SIZE : rng.range(1, 4 << 20);
        f.truncate(size);
        for (let w = 0; size > 0 && w < rng.range(1, 6); w++) {
          const off = rng.int(size);
          f.pwrite(off, pattern(n + w, Math.min(size - off, rng.range(1, 3 * PAGE_SIZE)), off));
        }
        if (size > 0 && rng.chance(0.5)) f.fallocate(FALLOC_FL_KEEP_SIZE, rng.int(size), rng.range(1, 6 * PAGE_SIZE));
        f.addSeals(rng.int(16) & ~F_SEAL_WRITE);
        f.lseek(rng.int(size + 100), 0);
        const bytes = f.pread(0, f.size);
        const p = preserve(memfdV1, m, f);
        const folios = f.folios().filter((x) => x.index * PAGE_SIZE < size).map((x): [number, number, number] => [x.index, x.order, x.flags]);
        sources.push({ file: f, bytes, folios, p });
      }
      for (const s of sources) {
        s.file.lseek(3, 1);
        s.p = freeze(memfdV1, m, s.p);
      }
      const next = m.kexec();
      for (const s of sources) {
        const g = asMemfd(retrieve(memfdV1, next, s.p.serializedData));
        expect([g.size, g.position]).toEqual([s.file.size, s.file.position]);
        expect(g.seals).toBe(F_SEAL_SEAL); // shmem_file_setup's: no sealing seals, no new seals
        expect(g.folios().map((x) => [x.index, x.order, x.flags])).toEqual(s.folios);
        expect(Buffer.from(g.pread(0, g.size)).equals(Buffer.from(s.bytes))).toBe(true);
        finish(memfdV1, next, s.p.serializedData, 1, g);
      }
      expect(next.incoming.stampedRuns().filter((r) => r.phys !== next.incoming.fdtPhys).length).toBe(1); // kexec-metadata only
    }
  });

  it("the retrieved file drops the seals: it grows, shrinks and is written; adding seals is EPERM", () => {
    const m = boot();
    const f = memfd.create(m, { name: "sealed", flags: MFD_ALLOW_SEALING });
    f.pwrite(0, pattern(5, 5000));
    f.addSeals(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    const p = preserve(memfdV1, m, f);
    const next = m.kexec();
    const g = asMemfd(retrieve(memfdV1, next, p.serializedData));
    g.pwrite(5000, pattern(6, 100));
    g.truncate(10);
    expect(g.pread(0, 100)).toEqual(pattern(5, 10));
    expect(errnoOf(() => { g.addSeals(F_SEAL_GROW); })).toBe("EPERM");
  });

  it("a fallocated folio comes back not UPTODATE: it reads zeros and its first write zeroes the rest", () => {
    const m = boot();
    const f = memfd.create(m, { name: "falloc" });
    f.fallocate(0, 0, 2 * PAGE_SIZE);
    const p = preserve(memfdV1, m, f);
    const next = m.kexec();
    const serPhys = Number(p.serializedData);
    // Whatever the next kernel finds in a non-UPTODATE folio is not data: scribble on it.
    const d = decodeMemfdV1(next.memory, serPhys);
    expect([...d.folios.flags]).toEqual([1, 1]);
    next.memory.write(d.folios.pfns[0]! * PAGE_SIZE, pattern(7, PAGE_SIZE));
    const g = asMemfd(retrieve(memfdV1, next, p.serializedData));
    expect(g.pread(0, 2 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    g.pwrite(10, new Uint8Array([9]));
    const page = g.pread(0, PAGE_SIZE);
    expect(page[10]).toBe(9);
    expect(page.reduce((n, b) => n + b, 0)).toBe(9);
  });

  it("finish of a file never retrieved frees everything it holds", () => {
    const m = boot();
    const f = memfd.create(m, { name: "dropped" });
    f.pwrite(0, pattern(8, 3 * PAGE_SIZE));
    const p = preserve(memfdV1, m, f);
    const next = m.kexec();
    const stamped = next.incoming.stampedCount;
    finish(memfdV1, next, p.serializedData, 0);
    expect(next.incoming.stampedCount).toBe(stamped - 6); // record, chunk, array page, 3 folios
  });
});

class ForgetfulV1 extends MemfdV1Handler {
  override preserve(args: FileOpArgs): void {
    super.preserve(args);
    const { folios } = (args.privateData as MemfdV1PreservedState).folios;
    args.machine.kho.unpreserveFolio(folios.phys[2]!, folios.orders[2]!);
  }
}

describe("the kexec poison catches a handler that forgets a folio", () => {
  it("poison where the folio was; retrieve fails with EIO and consumes nothing", () => {
    const m = boot();
    for (let i = 0; i < 4096; i++) m.kho.allocFolio(0); // keep the memfd away from pages the next kernel reuses
    const f = memfd.create(m, { name: "victim" });
    const original = pattern(9, 4 * PAGE_SIZE);
    f.pwrite(0, original);
    const p = preserve(new ForgetfulV1(), m, f);
    const next = m.kexec();
    const d = decodeMemfdV1(next.memory, Number(p.serializedData));
    const seen = d.contents.read(0, d.size);
    expect(seen.subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE).every((b) => b === POISON_BYTE)).toBe(true);
    expect(Buffer.from(seen.subarray(0, 2 * PAGE_SIZE)).equals(Buffer.from(original.subarray(0, 2 * PAGE_SIZE)))).toBe(true);
    const stamped = next.incoming.stampedCount;
    const error = thrown(() => retrieve(memfdV1, next, p.serializedData)) as { errno: string; rule: string };
    expect([error.errno, error.rule]).toEqual(["EIO", "folio-not-preserved"]);
    expect(next.incoming.stampedCount).toBe(stamped);
  });
});

describe("hostile records: the kernel's errno, nothing consumed, then the fixed image works", () => {
  const le64 = (v: bigint): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return b;
  };
  const cases: Array<{ name: string; errno: string; rule: string; at: (ser: number, array: number) => number; bytes: (ser: number) => Uint8Array }> = [
    { name: "vmalloc order unknown flags", errno: "EINVAL", rule: "flags", at: (s) => s + 36, bytes: () => new Uint8Array([0x04, 0]) },
    { name: "vmalloc total_pages 0", errno: "EINVAL", rule: "empty-area", at: (s) => s + 32, bytes: () => new Uint8Array(4) },
    { name: "nr_folios beyond the array", errno: "EINVAL", rule: "nr-folios", at: (s) => s + 16, bytes: () => le64(300n) },
    { name: "folio outside memory", errno: "EIO", rule: "folio-pfn", at: (_s, a) => a, bytes: () => le64((1n << 45n) | (3n << 52n)) },
    { name: "folio is the record page", errno: "EIO", rule: "folio-overlap", at: (_s, a) => a + 16, bytes: (s) => le64(BigInt(s / PAGE_SIZE) | (3n << 52n)) },
    { name: "two folios for one page", errno: "EEXIST", rule: "index-overlap", at: (_s, a) => a + 24, bytes: () => le64(0n) },
    { name: "pos beyond the model", errno: "EOVERFLOW", rule: "pos-range", at: (s) => s, bytes: () => le64(1n << 62n) },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.errno}`, () => {
      const m = boot();
      const f = memfd.create(m, { name: "target" });
      const original = pattern(10, 2 * PAGE_SIZE + 3);
      f.pwrite(0, original);
      const p = preserve(memfdV1, m, f);
      const next = m.kexec();
      const serPhys = Number(p.serializedData);
      const arrayPage = u64(next.memory, u64(next.memory, serPhys + 24) + 8);
      const at = c.at(serPhys, arrayPage);
      const bytes = c.bytes(serPhys);
      const saved = next.memory.read(at, bytes.length);
      next.memory.write(at, bytes);
      const stamped = next.incoming.stampedCount;
      const error = thrown(() => retrieve(memfdV1, next, p.serializedData)) as { errno: string; rule: string };
      expect([error.errno, error.rule]).toEqual([c.errno, c.rule]);
      expect(next.incoming.stampedCount).toBe(stamped);
      next.memory.write(at, saved);
      const g = asMemfd(retrieve(memfdV1, next, p.serializedData));
      expect(Buffer.from(g.pread(0, g.size)).equals(Buffer.from(original))).toBe(true);
      expect(errnoOf(() => retrieve(memfdV1, next, p.serializedData))).toBe("EINVAL"); // the record is gone now
    });
  }

  it("finish does not throw on a freeze without a record", () => {
    const m = boot();
    expect(errnoOf(() => { memfdV1.freeze(opArgs(memfdV1, m, { file: memfd.create(m, { name: "x" }) })); })).toBe("EINVAL");
    memfdV1.finish(opArgs(memfdV1, m, { serializedData: 0n }));
  });
});
