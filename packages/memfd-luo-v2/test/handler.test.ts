/**
 * The memfd-v2 handler's ops called directly, as luo-core calls them: preserve on one
 * Machine, kexec, retrieve on the next with fresh op args. Record bytes are checked against
 * layouts computed here by hand (offsets and bit positions written out, not taken from src).
 */
import { KHO_VMALLOC_ALLOC, Machine, PAGE_SIZE, POISON_BYTE, type KhoVmalloc } from "@liveupdate/kho";
import {
  FALLOC_FL_KEEP_SIZE,
  FOLIO_DIRTY,
  FOLIO_UPTODATE,
  F_ALL_SEALS,
  F_SEAL_EXEC,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MFD_ALLOW_SEALING,
  MFD_HUGETLB,
  MFD_NOEXEC_SEAL,
  MemfdFile,
  memfd,
  type ShmemHugePolicy,
} from "@liveupdate/memfd";
import type { FileOpArgs, LuoFile } from "@liveupdate/luo-core";
import { describe, expect, it } from "vitest";
import { MEMFD_V2_COMPATIBLE, MemfdV2Handler, decodeMemfdV2, memfdV2, type MemfdV2PreservedState } from "../src/index.js";
import { errnoOf, finish, freeze, opArgs, preserve, retrieve, thrown, unpreserve, type Preserved } from "./support/ops.js";
import { Prng } from "./support/prng.js";

const TWO_32 = 2 ** 32;

function boot(memory = "512 MiB"): Machine {
  return Machine.boot({ memory });
}

function asMemfd(file: LuoFile): MemfdFile {
  if (!(file instanceof MemfdFile)) throw new Error("not a memfd");
  return file;
}

/** memfd_luo_ser as the header lays it out, by hand. */
function handSer(f: { pos: number; size: number; seals: number; nrFolios: number; vmalloc: KhoVmalloc }): Uint8Array {
  const b = new Uint8Array(48);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(f.pos), true); // pos
  v.setBigUint64(8, BigInt(f.size), true); // size
  v.setUint32(16, f.seals, true); // seals
  v.setUint32(20, 0, true); // flags
  v.setBigUint64(24, BigInt(f.nrFolios), true); // nr_folios
  v.setBigUint64(32, BigInt(f.vmalloc.first), true); // folios.first
  v.setUint32(40, f.vmalloc.totalPages, true); // folios.total_pages
  v.setUint16(44, f.vmalloc.flags, true); // folios.flags
  v.setUint16(46, f.vmalloc.order, true); // folios.order
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

/** A deterministic pattern for file `seed`, so contents can be told apart. */
function pattern(seed: number, length: number, offset = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + ((offset + i) * 13) + ((offset + i) >>> 12)) & 0xff | 1;
  return out;
}

describe("records, byte for byte", () => {
  it("preserve writes the 48-byte record, the folio array and the vmalloc chunk as the header says", () => {
    const m = boot();
    const f = memfd.create(m, { name: "layout", flags: MFD_ALLOW_SEALING });
    f.truncate(5 * PAGE_SIZE + 123);
    f.pwrite(0, pattern(1, PAGE_SIZE));
    f.pwrite(3 * PAGE_SIZE + 5, pattern(2, 100));
    f.fallocate(FALLOC_FL_KEEP_SIZE, 4 * PAGE_SIZE, PAGE_SIZE);
    f.addSeals(F_SEAL_SHRINK | F_SEAL_GROW);
    f.lseek(777, 0);
    const p = preserve(memfdV2, m, f);
    const serPhys = Number(p.serializedData);
    expect(serPhys % PAGE_SIZE).toBe(0);
    expect(m.kho.isPreserved(serPhys, 0)).toBe(true);

    // Holes filled: every page of [0, 6 pages) has a folio, each flags DIRTY|UPTODATE.
    const folios = f.folios();
    expect(folios.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(folios.every((x) => x.flags === (FOLIO_DIRTY | FOLIO_UPTODATE) && x.order === 0)).toBe(true);
    for (const x of folios) expect(m.kho.isPreserved(x.phys, 0)).toBe(true);

    // The vmalloc chunk: one page, next = 0, then the array's one page, then 0.
    const first = u64(m.memory, serPhys + 32);
    expect(m.kho.isPreserved(first, 0)).toBe(true);
    expect(u64(m.memory, first)).toBe(0);
    const arrayPage = u64(m.memory, first + 8);
    expect(u64(m.memory, first + 16)).toBe(0);
    expect(m.kho.isPreserved(arrayPage, 0)).toBe(true);

    const expected = handSer({ pos: 777, size: 5 * PAGE_SIZE + 123, seals: F_SEAL_SHRINK | F_SEAL_GROW, nrFolios: 6, vmalloc: { first, totalPages: 1, flags: KHO_VMALLOC_ALLOC, order: 0 } });
    expect(Buffer.from(m.memory.read(serPhys, 48)).toString("hex")).toBe(Buffer.from(expected).toString("hex"));
    for (let i = 0; i < folios.length; i++) {
      const rec = m.memory.read(arrayPage + 16 * i, 16);
      expect(Buffer.from(rec).toString("hex")).toBe(Buffer.from(handFolio(folios[i]!.phys, 3, i)).toString("hex"));
    }
    // Past the records the zeroed array page stays zero (vcalloc).
    expect(m.memory.read(arrayPage + 16 * folios.length, PAGE_SIZE - 16 * folios.length).every((b) => b === 0)).toBe(true);
  });

  it("an empty memfd: nr_folios 0 and an all-zero kho_vmalloc", () => {
    const m = boot();
    const f = memfd.create(m, { name: "empty", flags: MFD_ALLOW_SEALING });
    const p = preserve(memfdV2, m, f);
    const serPhys = Number(p.serializedData);
    expect(Buffer.from(m.memory.read(serPhys, 48)).toString("hex")).toBe("00".repeat(48));
    expect(f.pinCount).toBe(0);
  });

  it("large folios are preserved with their own order and listed once each", () => {
    const m = boot();
    const f = memfd.create(m, { name: "thp", huge: "always" });
    f.pwrite(0, pattern(3, 3 * 512 * PAGE_SIZE));
    const p = preserve(memfdV2, m, f);
    const serPhys = Number(p.serializedData);
    const folios = f.folios();
    expect(folios.map((x) => [x.index, x.order])).toEqual([
      [0, 9],
      [512, 9],
      [1024, 9],
    ]);
    for (const x of folios) expect(m.kho.isPreserved(x.phys, 9)).toBe(true);
    expect(u64(m.memory, serPhys + 24)).toBe(3);
    const arrayPage = u64(m.memory, u64(m.memory, serPhys + 32) + 8);
    for (let i = 0; i < 3; i++) {
      expect(Buffer.from(m.memory.read(arrayPage + 16 * i, 16)).equals(Buffer.from(handFolio(folios[i]!.phys, 3, 512 * i)))).toBe(true);
    }
  });

  it("a folio array of more than 256 records spans pages, and 511 pages need a second chunk", () => {
    const m = boot("1 GiB");
    const f = memfd.create(m, { name: "many" });
    const records = 511 * 256 + 3; // 512 array pages: a full first chunk and one entry in a second
    f.truncate(records * PAGE_SIZE);
    const p = preserve(memfdV2, m, f);
    const serPhys = Number(p.serializedData);
    const first = u64(m.memory, serPhys + 32);
    expect(m.memory.readU32(serPhys + 40)).toBe(512); // total_pages
    const second = u64(m.memory, first);
    expect(second).not.toBe(0);
    expect(u64(m.memory, second)).toBe(0);
    expect(u64(m.memory, second + 16)).toBe(0);
    const lastPage = u64(m.memory, second + 8);
    const folios = f.folios();
    const last = folios[records - 1]!;
    expect(Buffer.from(m.memory.read(lastPage + 16 * 2, 16)).equals(Buffer.from(handFolio(last.phys, 3, records - 1)))).toBe(true);
  });
});

describe("preserve, freeze, unpreserve", () => {
  it("freezes the file while preserved; freeze records the current pos; unpreserve undoes everything", () => {
    const m = boot();
    const baseline = m.kho.preservedRuns().length;
    const free = m.allocator.freePages;
    const f = memfd.create(m, { name: "life", flags: MFD_ALLOW_SEALING });
    f.pwrite(0, pattern(4, 3 * PAGE_SIZE));
    const freeAfterWrite = m.allocator.freePages;
    const p = preserve(memfdV2, m, f);
    expect(f.mappingFrozen).toBe(true);
    expect(errnoOf(() => { f.truncate(PAGE_SIZE); })).toBe("EPERM");
    expect(errnoOf(() => { f.addSeals(F_SEAL_WRITE); })).toBe("EBUSY"); // pinned
    f.lseek(1234, 0);
    freeze(memfdV2, m, p);
    expect(u64(m.memory, Number(p.serializedData))).toBe(1234);
    memfdV2.unfreeze();
    unpreserve(memfdV2, m, p);
    expect(f.mappingFrozen).toBe(false);
    expect(f.pinCount).toBe(0);
    expect(m.kho.preservedRuns().length).toBe(baseline);
    expect(m.allocator.freePages).toBe(freeAfterWrite);
    f.addSeals(F_SEAL_WRITE);
    f.truncate(0);
    expect(m.allocator.freePages).toBe(free);
  });

  it("freeze without a record is EINVAL", () => {
    const m = boot();
    const f = memfd.create(m, { name: "x" });
    expect(errnoOf(() => { memfdV2.freeze(opArgs(memfdV2, m, { file: f })); })).toBe("EINVAL");
  });

  it("refuses seals it cannot carry (EOPNOTSUPP) and files over 2^32 - 1 pages (EFBIG), leaving nothing behind", () => {
    const m = boot();
    const baseline = m.kho.preservedRuns().length;
    const free = m.allocator.freePages;
    const future = memfd.create(m, { name: "future", flags: MFD_ALLOW_SEALING, knownSeals: F_ALL_SEALS | 0x40 });
    future.addSeals(0x40);
    expect(errnoOf(() => preserve(memfdV2, m, future))).toBe("EOPNOTSUPP");
    expect(future.mappingFrozen).toBe(false);
    const huge = memfd.create(m, { name: "16TiB" });
    huge.truncate(TWO_32 * PAGE_SIZE);
    expect(errnoOf(() => preserve(memfdV2, m, huge))).toBe("EFBIG");
    huge.truncate((TWO_32 - 1) * PAGE_SIZE + 1);
    expect(errnoOf(() => preserve(memfdV2, m, huge))).toBe("EFBIG");
    expect(huge.mappingFrozen).toBe(false);
    expect(m.kho.preservedRuns().length).toBe(baseline);
    expect(m.allocator.freePages).toBe(free);
  });

  it("out of memory while filling holes: ENOMEM, nothing preserved, not pinned, not frozen", () => {
    const m = Machine.boot({ memory: "64 MiB" });
    const baseline = m.kho.preservedRuns().length;
    const f = memfd.create(m, { name: "too-big" });
    f.truncate(128 << 20);
    expect(errnoOf(() => preserve(memfdV2, m, f))).toBe("ENOMEM");
    expect([f.mappingFrozen, f.pinCount]).toEqual([false, 0]);
    expect(m.kho.preservedRuns().length).toBe(baseline);
    f.truncate(0);
  });

  it("takes memfds only: not hugetlb memfds, not linked tmpfs files, not other files", () => {
    const m = boot();
    expect(memfdV2.canPreserve(memfd.create(m, { name: "a" }))).toBe(true);
    expect(memfdV2.canPreserve(memfd.create(m, { name: "h", flags: MFD_HUGETLB }))).toBe(false);
    const t = memfd.createTmpfsFile(m, { path: "/tmp/x" });
    expect(memfdV2.canPreserve(t)).toBe(false);
    t.unlink();
    expect(memfdV2.canPreserve(t)).toBe(true);
    expect(memfdV2.canPreserve({ description: "/dev/null" })).toBe(false);
    expect(memfdV2.compatible).toBe("memfd-v2");
    const a = memfd.create(m, { name: "id" });
    expect(memfdV2.getId(a)).toBe(a.inode);
    expect(errnoOf(() => memfdV2.getId({ description: "/dev/null" }))).toBe("EINVAL");
  });
});

interface Source {
  readonly file: MemfdFile;
  readonly bytes: Uint8Array;
  readonly folios: Array<[number, number]>;
  p: Preserved;
}

function randomMemfd(m: Machine, rng: Prng, n: number): MemfdFile {
  const policies: ShmemHugePolicy[] = ["never", "always", "within_size"];
  const huge = policies[rng.int(3)]!;
  const f = memfd.create(m, { name: `rt-${n}`, flags: MFD_ALLOW_SEALING, huge, hugeOrders: rng.chance(0.5) ? [9] : [9, 6, 4, 2] });
  const kind = rng.int(4);
  const size = kind === 0 ? 0 : kind === 1 ? rng.range(1, PAGE_SIZE * 3) : kind === 2 ? rng.range(1, 64) * 512 * PAGE_SIZE + rng.int(PAGE_SIZE) : rng.range(1, 6 << 20);
  f.truncate(size);
  const writes = size === 0 ? 0 : rng.range(1, 8);
  for (let w = 0; w < writes; w++) {
    const off = rng.int(size);
    const len = Math.min(size - off, rng.range(1, 3 * PAGE_SIZE));
    f.pwrite(off, pattern(n * 100 + w, len, off));
  }
  if (size > 0 && rng.chance(0.3)) f.fallocate(FALLOC_FL_KEEP_SIZE, rng.int(size), rng.range(1, 8 * PAGE_SIZE));
  f.lseek(rng.int(size + 5000), 0);
  const seals = rng.int(0x20) & ~(F_SEAL_FUTURE_WRITE | F_SEAL_WRITE);
  f.addSeals(seals | (rng.chance(0.3) ? F_SEAL_WRITE : 0));
  return f;
}

describe("round trips across kexec (direct op calls)", () => {
  it("random sizes (0, tiny, sparse, huge), contents, seals and positions come back identical", () => {
    const rng = new Prng(0x5eed);
    for (let round = 0; round < 4; round++) {
      const m = boot("1 GiB");
      const sources: Source[] = [];
      for (let n = 0; n < 6; n++) {
        const file = randomMemfd(m, rng, round * 10 + n);
        const bytes = file.pread(0, file.size);
        const p = preserve(memfdV2, m, file);
        sources.push({ file, bytes, folios: file.folios().map((x) => [x.index, x.order]), p });
      }
      // Userspace keeps using the files between preserve and kexec: pos moves, data changes.
      for (const s of sources) {
        if (s.file.size > 0 && (s.file.seals & F_SEAL_WRITE) === 0) {
          const data = pattern(999, Math.min(100, s.file.size));
          s.file.pwrite(0, data);
          s.bytes.set(data, 0);
        }
        s.file.lseek(s.file.position + 7, 0);
        s.p = freeze(memfdV2, m, s.p);
      }
      const next = m.kexec();
      for (const s of sources) {
        const g = asMemfd(retrieve(memfdV2, next, s.p.serializedData));
        expect(g.machine).toBe(next);
        expect(g.size).toBe(s.file.size);
        expect(g.position).toBe(s.file.position);
        expect(g.seals).toBe(s.file.seals);
        expect(g.mappingFrozen).toBe(false);
        // Folios past EOF (fallocate KEEP_SIZE) are not preserved: memfd_pin_folios stops at size.
        expect(g.folios().map((x) => [x.index, x.order])).toEqual(s.folios.filter(([index]) => index * PAGE_SIZE < s.file.size));
        expect(g.folios().every((x) => x.flags === (FOLIO_DIRTY | FOLIO_UPTODATE))).toBe(true);
        expect(Buffer.from(g.pread(0, g.size)).equals(Buffer.from(s.bytes))).toBe(true);
        finish(memfdV2, next, s.p.serializedData, 1, g);
      }
      // Every preserved run was taken back: the record, the array, the chunks, every folio.
      const leftover = next.incoming.stampedRuns().filter((r) => r.phys !== next.incoming.fdtPhys);
      expect(leftover.length).toBe(1); // kexec-metadata
    }
  });

  it("the retrieved memfd is a normal memfd again: writable, growable, preservable", () => {
    const m = boot();
    const f = memfd.create(m, { name: "again" });
    f.pwrite(0, pattern(5, 10_000));
    const p = preserve(memfdV2, m, f);
    const next = m.kexec();
    const g = asMemfd(retrieve(memfdV2, next, p.serializedData));
    expect(g.seals).toBe(F_SEAL_SEAL); // a memfd without MFD_ALLOW_SEALING reports F_SEAL_SEAL, kept
    g.pwrite(20_000, pattern(6, 10));
    g.truncate(30_000);
    const p2 = preserve(memfdV2, next, g);
    const third = next.kexec();
    const h = asMemfd(retrieve(memfdV2, third, p2.serializedData));
    expect(h.size).toBe(30_000);
    expect(Buffer.from(h.pread(0, 10_000)).equals(Buffer.from(pattern(5, 10_000)))).toBe(true);
    expect(Buffer.from(h.pread(20_000, 10)).equals(Buffer.from(pattern(6, 10)))).toBe(true);
  });

  it("F_SEAL_EXEC comes back with the W^X seals on the new (0777) memfd, as memfd_add_seals implies them", () => {
    const m = boot();
    const f = memfd.create(m, { name: "noexec", flags: MFD_NOEXEC_SEAL });
    expect(f.seals).toBe(F_SEAL_EXEC);
    const p = preserve(memfdV2, m, f);
    expect(m.memory.readU32(Number(p.serializedData) + 16)).toBe(F_SEAL_EXEC);
    const next = m.kexec();
    const g = asMemfd(retrieve(memfdV2, next, p.serializedData));
    expect(g.seals).toBe(F_SEAL_EXEC | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE);
  });

  it("finish of a file never retrieved frees its folios, array and record", () => {
    const m = boot();
    const f = memfd.create(m, { name: "dropped", huge: "always" });
    f.pwrite(0, pattern(7, (2 << 20) + 5 * PAGE_SIZE));
    const p = preserve(memfdV2, m, f);
    const next = m.kexec();
    const stamped = next.incoming.stampedCount;
    const free = next.allocator.freePages;
    finish(memfdV2, next, p.serializedData, 0);
    // record + 1 chunk + 1 array page + 2 order-9 folios
    expect(next.incoming.stampedCount).toBe(stamped - 5);
    expect(next.allocator.freePages).toBe(free + 1 + 1 + 1 + 2 * 512);
    expect(errnoOf(() => retrieve(memfdV2, next, p.serializedData))).toBe("EINVAL");
  });
});

/** The v2 handler with a bug: it forgets to preserve folio `which` of every file. */
class ForgetfulV2 extends MemfdV2Handler {
  constructor(readonly which: number) {
    super();
  }

  override preserve(args: FileOpArgs): void {
    super.preserve(args);
    const state = args.privateData as MemfdV2PreservedState;
    const folios = state.folios.folios;
    args.machine.kho.unpreserveFolio(folios.phys[this.which]!, folios.orders[this.which]!);
  }
}

describe("the kexec poison catches a handler that forgets a folio", () => {
  it("the next kernel reads poison where the folio was, and retrieve fails with EIO", () => {
    const m = boot();
    // Low pages the old kernel used and did not preserve are the first the next kernel
    // allocates for itself; keep them away from the memfd so its lost page stays poison.
    for (let i = 0; i < 4096; i++) m.kho.allocFolio(0);
    const f = memfd.create(m, { name: "victim" });
    const original = pattern(8, 8 * PAGE_SIZE);
    f.pwrite(0, original);
    const broken = new ForgetfulV2(5);
    const p = preserve(broken, m, f);
    const next = m.kexec();
    const serPhys = Number(p.serializedData);
    // The record and the array made it; the contents did not.
    const decoded = decodeMemfdV2(next.memory, serPhys);
    const seen = decoded.contents.read(0, decoded.size);
    expect(Buffer.from(seen.subarray(0, 5 * PAGE_SIZE)).equals(Buffer.from(original.subarray(0, 5 * PAGE_SIZE)))).toBe(true);
    expect(seen.subarray(5 * PAGE_SIZE, 6 * PAGE_SIZE).every((b) => b === POISON_BYTE)).toBe(true);
    expect(Buffer.from(seen).equals(Buffer.from(original))).toBe(false);
    const stamped = next.incoming.stampedCount;
    const error = thrown(() => retrieve(memfdV2, next, p.serializedData)) as { errno: string; rule: string };
    expect([error.errno, error.rule]).toEqual(["EIO", "folio-not-preserved"]);
    expect(next.incoming.stampedCount).toBe(stamped);
  });
});

describe("hostile records: typed errors with the kernel's errno, nothing consumed", () => {
  interface Case {
    readonly name: string;
    readonly errno: string;
    readonly rule: string;
    /** Corrupt the next kernel's memory; return the bytes to put back. */
    corrupt(next: Machine, serPhys: number, arrayPage: number, folios: Array<{ phys: number; index: number }>): { at: number; bytes: Uint8Array };
  }
  const patch = (next: Machine, at: number, bytes: Uint8Array): { at: number; bytes: Uint8Array } => {
    const old = next.memory.read(at, bytes.length);
    next.memory.write(at, bytes);
    return { at, bytes: old };
  };
  const le64 = (v: bigint): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return b;
  };
  const le32 = (v: number): Uint8Array => new Uint8Array(Uint32Array.of(v).buffer);
  const cases: Case[] = [
    { name: "unknown seal bit", errno: "EOPNOTSUPP", rule: "seals", corrupt: (n, s) => patch(n, s + 16, le32(0x40 | F_SEAL_SEAL)) },
    { name: "vmalloc flags unknown", errno: "EINVAL", rule: "flags", corrupt: (n, s) => patch(n, s + 44, new Uint8Array([0x80, 0])) },
    { name: "vmalloc total_pages wrong", errno: "EINVAL", rule: "too-few-pages", corrupt: (n, s) => patch(n, s + 40, le32(2)) },
    { name: "vmalloc first outside memory", errno: "EINVAL", rule: "chunk-pointer", corrupt: (n, s) => patch(n, s + 32, le64(1n << 40n)) },
    { name: "nr_folios beyond the array", errno: "EINVAL", rule: "nr-folios", corrupt: (n, s) => patch(n, s + 24, le64(257n)) },
    { name: "nr_folios absurd", errno: "EINVAL", rule: "nr-folios", corrupt: (n, s) => patch(n, s + 24, le64(1n << 60n)) },
    { name: "folio pfn outside memory", errno: "EIO", rule: "folio-pfn", corrupt: (n, _s, a) => patch(n, a + 16, le64((1n << 39n) | (3n << 52n))) },
    { name: "folio not preserved", errno: "EIO", rule: "folio-not-preserved", corrupt: (n, _s, a, f) => patch(n, a + 16, le64(BigInt(f[1]!.phys / PAGE_SIZE + 100) | (3n << 52n))) },
    { name: "folio listed twice", errno: "EIO", rule: "folio-duplicate", corrupt: (n, _s, a, f) => patch(n, a + 16, le64(BigInt(f[0]!.phys / PAGE_SIZE) | (3n << 52n))) },
    { name: "folio pointing at the record", errno: "EIO", rule: "folio-overlap", corrupt: (n, s, a) => patch(n, a + 16, le64(BigInt(s / PAGE_SIZE) | (3n << 52n))) },
    { name: "two folios for one page", errno: "EEXIST", rule: "index-overlap", corrupt: (n, _s, a) => patch(n, a + 16 + 8, le64(0n)) },
    { name: "index beyond any file", errno: "EINVAL", rule: "folio-index", corrupt: (n, _s, a) => patch(n, a + 16 + 8, le64(1n << 62n)) },
    { name: "size beyond the model", errno: "EOVERFLOW", rule: "size-range", corrupt: (n, s) => patch(n, s + 8, le64(1n << 60n)) },
  ];

  for (const c of cases) {
    it(`${c.name}: ${c.errno}, and the untouched image then retrieves`, () => {
      const m = boot();
      const f = memfd.create(m, { name: "target", flags: MFD_ALLOW_SEALING });
      const original = pattern(9, 3 * PAGE_SIZE + 17);
      f.pwrite(0, original);
      f.addSeals(F_SEAL_GROW);
      f.lseek(42, 0);
      const folios = f.folios().map((x) => ({ phys: x.phys, index: x.index }));
      const p = preserve(memfdV2, m, f);
      const next = m.kexec();
      const serPhys = Number(p.serializedData);
      const arrayPage = u64(next.memory, u64(next.memory, serPhys + 32) + 8);
      const undo = c.corrupt(next, serPhys, arrayPage, folios);
      const stamped = next.incoming.stampedCount;
      const free = next.allocator.freePages;
      const error = thrown(() => retrieve(memfdV2, next, p.serializedData)) as { errno: string; rule: string; name: string };
      expect([error.name, error.errno, error.rule]).toEqual(["FormatError", c.errno, c.rule]);
      expect(next.incoming.stampedCount).toBe(stamped);
      expect(next.allocator.freePages).toBe(free);
      next.memory.write(undo.at, undo.bytes);
      const g = asMemfd(retrieve(memfdV2, next, p.serializedData));
      expect([g.size, g.position, g.seals]).toEqual([original.length, 42, F_SEAL_GROW]);
      expect(Buffer.from(g.pread(0, g.size)).equals(Buffer.from(original))).toBe(true);
    });
  }

  it("a record that is not a preserved page: EINVAL", () => {
    const m = boot();
    const f = memfd.create(m, { name: "t" });
    const p = preserve(memfdV2, m, f);
    const next = m.kexec();
    expect(errnoOf(() => retrieve(memfdV2, next, 0n))).toBe("EINVAL");
    expect(errnoOf(() => retrieve(memfdV2, next, p.serializedData + 4096n))).toBe("EINVAL");
    expect(errnoOf(() => retrieve(memfdV2, next, 1n << 60n))).toBe("EINVAL");
    retrieve(memfdV2, next, p.serializedData);
  });

  it("a pos beyond 2^63 - 1 is ignored (vfs_setpos fails, memfd_luo does not check): pos 0", () => {
    const m = boot();
    const f = memfd.create(m, { name: "t" });
    f.pwrite(0, pattern(1, 10));
    const p = preserve(memfdV2, m, f);
    const next = m.kexec();
    next.memory.writeU64(Number(p.serializedData), 1n << 63n);
    const g = asMemfd(retrieve(memfdV2, next, p.serializedData));
    expect([g.position, g.size]).toEqual([0, 10]);
  });

  it("a misaligned index for a large folio: EINVAL", () => {
    const m = boot();
    const f = memfd.create(m, { name: "thp", huge: "always" });
    f.pwrite(0, pattern(2, 2 << 20));
    const p = preserve(memfdV2, m, f);
    const next = m.kexec();
    const serPhys = Number(p.serializedData);
    const arrayPage = u64(next.memory, u64(next.memory, serPhys + 32) + 8);
    next.memory.writeU64(arrayPage + 8, 3n);
    const error = thrown(() => retrieve(memfdV2, next, p.serializedData)) as { errno: string; rule: string };
    expect([error.errno, error.rule]).toEqual(["EINVAL", "folio-index"]);
    next.memory.writeU64(arrayPage + 8, 0n);
    expect(asMemfd(retrieve(memfdV2, next, p.serializedData)).folios().map((x) => x.order)).toEqual([9]);
  });

  it("finish after a failed retrieve still frees what the record holds", () => {
    const m = boot();
    const f = memfd.create(m, { name: "t" });
    f.pwrite(0, pattern(3, 2 * PAGE_SIZE));
    const p = preserve(memfdV2, m, f);
    const next = m.kexec();
    const serPhys = Number(p.serializedData);
    next.memory.writeU32(serPhys + 16, 0x80);
    expect(errnoOf(() => retrieve(memfdV2, next, p.serializedData))).toBe("EOPNOTSUPP");
    const stamped = next.incoming.stampedCount;
    finish(memfdV2, next, p.serializedData, -95);
    expect(next.incoming.stampedCount).toBe(stamped - 5); // record, chunk, array page, 2 folios
  });

  it("finish never throws on a corrupt record", () => {
    const m = boot();
    const f = memfd.create(m, { name: "t" });
    f.pwrite(0, pattern(3, 2 * PAGE_SIZE));
    const p = preserve(memfdV2, m, f);
    const next = m.kexec();
    const serPhys = Number(p.serializedData);
    next.memory.writeU64(serPhys + 32, 0xdead000n);
    const stamped = next.incoming.stampedCount;
    finish(memfdV2, next, p.serializedData, 0);
    expect(next.incoming.stampedCount).toBe(stamped - 1); // only the record: the array is unreadable
    expect(MEMFD_V2_COMPATIBLE).toBe("memfd-v2");
  });
});
