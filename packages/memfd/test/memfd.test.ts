import { Machine, PAGE_SIZE } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FOLIO_DIRTY,
  FOLIO_UPTODATE,
  F_ALL_SEALS,
  F_SEAL_EXEC,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MEMFD_MAX_BYTES,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGETLB,
  MFD_HUGE_1GB,
  MFD_NOEXEC_SEAL,
  MemfdFile,
  SEEK_CUR,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
  errnoOf,
  memfd,
  type MemfdErrno,
} from "../src/index.js";
import { Prng } from "./support/prng.js";

function boot(memory = "256 MiB"): Machine {
  return Machine.boot({ memory });
}

function errnoFrom(fn: () => unknown): MemfdErrno | undefined {
  try {
    fn();
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === undefined) throw error;
    return errno;
  }
  return undefined;
}

function filled(n: number, value: number): Uint8Array {
  return new Uint8Array(n).fill(value);
}

describe("memfd_create", () => {
  const m = boot();

  it("checks flags and the name as memfd_create does", () => {
    expect(errnoFrom(() => memfd.create(m, { name: "x", flags: 0x40 }))).toBe("EINVAL");
    expect(errnoFrom(() => memfd.create(m, { name: "x", flags: MFD_EXEC | MFD_NOEXEC_SEAL }))).toBe("EINVAL");
    // The hugetlb size field is only allowed with MFD_HUGETLB.
    expect(errnoFrom(() => memfd.create(m, { name: "x", flags: MFD_HUGE_1GB }))).toBe("EINVAL");
    expect(errnoFrom(() => memfd.create(m, { name: "x", flags: MFD_HUGETLB | (12 << 26) }))).toBe("EINVAL");
    expect(errnoFrom(() => memfd.create(m, { name: "n".repeat(250) }))).toBe("EINVAL");
    expect(memfd.create(m, { name: "n".repeat(249), flags: MFD_CLOEXEC }).description).toBe(`memfd:${"n".repeat(249)}`);
  });

  it("starts with F_SEAL_SEAL unless sealing is allowed; MFD_NOEXEC_SEAL sets F_SEAL_EXEC and clears the exec bits", () => {
    const plain = memfd.create(m, { name: "plain" });
    expect(plain.seals).toBe(F_SEAL_SEAL);
    expect(plain.mode).toBe(0o777);
    expect(memfd.create(m, { name: "s", flags: MFD_ALLOW_SEALING }).seals).toBe(0);
    const noexec = memfd.create(m, { name: "n", flags: MFD_NOEXEC_SEAL });
    expect(noexec.seals).toBe(F_SEAL_EXEC);
    expect(noexec.mode).toBe(0o666);
  });

  it("gives every file its own inode, and tells the kinds apart", () => {
    const a = memfd.create(m, { name: "a" });
    const b = memfd.create(m, { name: "b" });
    expect(a.inode).not.toBe(b.inode);
    const h = memfd.create(m, { name: "h", flags: MFD_HUGETLB });
    expect(h.kind).toBe("hugetlb");
    expect(h.isShmem).toBe(false);
    const t = memfd.createTmpfsFile(m, { path: "/dev/shm/vm" });
    expect([t.kind, t.isShmem, t.linkCount]).toEqual(["tmpfs", true, 1]);
    t.unlink();
    expect(t.linkCount).toBe(0);
    expect(errnoFrom(() => { t.unlink(); })).toBe("ENOENT");
    expect([a.kind, a.linkCount]).toEqual(["memfd", 0]);
  });
});

describe("seals", () => {
  const m = boot();
  const sealable = (): MemfdFile => memfd.create(m, { name: "s", flags: MFD_ALLOW_SEALING });

  it("F_SEAL_SEAL blocks further seals; unknown bits are EINVAL", () => {
    const f = sealable();
    expect(errnoFrom(() => { f.addSeals(0x40); })).toBe("EINVAL");
    f.addSeals(F_SEAL_SHRINK);
    f.addSeals(F_SEAL_SEAL);
    expect(errnoFrom(() => { f.addSeals(F_SEAL_GROW); })).toBe("EPERM");
    expect(f.seals).toBe(F_SEAL_SHRINK | F_SEAL_SEAL);
    expect(errnoFrom(() => { memfd.create(m, { name: "p" }).addSeals(F_SEAL_GROW); })).toBe("EPERM");
  });

  it("a kernel that knows more seals accepts them", () => {
    const f = memfd.create(m, { name: "future", flags: MFD_ALLOW_SEALING, knownSeals: F_ALL_SEALS | 0x40 });
    f.addSeals(0x40);
    expect(f.seals).toBe(0x40);
  });

  it("SHRINK and GROW guard the size", () => {
    const f = sealable();
    f.truncate(8192);
    f.addSeals(F_SEAL_SHRINK | F_SEAL_GROW);
    expect(errnoFrom(() => { f.truncate(4096); })).toBe("EPERM");
    expect(errnoFrom(() => { f.truncate(12288); })).toBe("EPERM");
    f.truncate(8192); // no change: allowed
    expect(errnoFrom(() => { f.fallocate(0, 8192, 4096); })).toBe("EPERM");
    f.fallocate(FALLOC_FL_KEEP_SIZE, 0, 8192); // inside the size: allowed
  });

  it("GROW stops a write at EOF: a short write, or EPERM when nothing went", () => {
    const f = sealable();
    f.truncate(8192);
    f.addSeals(F_SEAL_GROW);
    expect(f.pwrite(4000, filled(10000, 7))).toBe(8192 - 4000);
    expect(f.size).toBe(8192);
    expect(errnoFrom(() => f.pwrite(8192, filled(1, 1)))).toBe("EPERM");
    expect(f.pread(4000, 4192)).toEqual(filled(4192, 7));
  });

  it("WRITE and FUTURE_WRITE refuse writes, punching holes and shared writable maps", () => {
    for (const seal of [F_SEAL_WRITE, F_SEAL_FUTURE_WRITE]) {
      const f = sealable();
      f.pwrite(0, filled(100, 1));
      f.addSeals(seal);
      expect(errnoFrom(() => f.pwrite(0, filled(1, 2)))).toBe("EPERM");
      expect(errnoFrom(() => { f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096); })).toBe("EPERM");
      expect(errnoFrom(() => f.mmap({ shared: true, writable: true }))).toBe("EPERM");
      f.mmap({ shared: false, writable: true }).unmap();
      f.truncate(50); // shrinking is not writing
      expect(f.pread(0, 100)).toEqual(filled(50, 1));
    }
  });

  it("adding F_SEAL_WRITE is EBUSY while shared writable mappings or pins exist", () => {
    const f = sealable();
    const map = f.mmap();
    expect(errnoFrom(() => { f.addSeals(F_SEAL_WRITE); })).toBe("EBUSY");
    map.unmap();
    map.unmap();
    f.truncate(4096);
    f.pinFolios();
    expect(errnoFrom(() => { f.addSeals(F_SEAL_WRITE); })).toBe("EBUSY");
    f.addSeals(F_SEAL_GROW); // other seals are fine while pinned
    f.unpinFolios();
    f.addSeals(F_SEAL_WRITE);
    expect(f.seals).toBe(F_SEAL_GROW | F_SEAL_WRITE);
  });

  it("F_SEAL_EXEC on an executable file implies W^X; it also freezes the exec bits", () => {
    const exec = sealable();
    exec.addSeals(F_SEAL_EXEC);
    expect(exec.seals).toBe(F_SEAL_EXEC | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE);
    expect(errnoFrom(() => { exec.chmod(0o666); })).toBe("EPERM");
    exec.chmod(0o775); // exec bits unchanged
    // Implied WRITE is refused while a shared writable mapping exists.
    const mapped = sealable();
    mapped.mmap();
    expect(errnoFrom(() => { mapped.addSeals(F_SEAL_EXEC); })).toBe("EBUSY");
    // Without exec bits, F_SEAL_EXEC is only itself.
    const noexec = sealable();
    noexec.chmod(0o644);
    noexec.addSeals(F_SEAL_EXEC);
    expect(noexec.seals).toBe(F_SEAL_EXEC);
    expect(errnoFrom(() => { noexec.chmod(0o755); })).toBe("EPERM");
  });
});

describe("the frozen state of a preserved file", () => {
  const m = boot();

  it("refuses growing, shrinking, fallocate and punching; writes inside the size still work", () => {
    const f = memfd.create(m, { name: "frozen" });
    f.pwrite(0, filled(3 * PAGE_SIZE, 9));
    f.freezeMapping(true);
    expect(errnoFrom(() => { f.truncate(PAGE_SIZE); })).toBe("EPERM");
    expect(errnoFrom(() => { f.truncate(4 * PAGE_SIZE); })).toBe("EPERM");
    f.truncate(3 * PAGE_SIZE);
    expect(errnoFrom(() => { f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE_SIZE); })).toBe("EPERM");
    expect(errnoFrom(() => { f.fallocate(FALLOC_FL_KEEP_SIZE, 0, PAGE_SIZE); })).toBe("EPERM");
    expect(f.pwrite(PAGE_SIZE, filled(10, 1))).toBe(10);
    expect(f.pwrite(3 * PAGE_SIZE - 5, filled(10, 2))).toBe(5);
    expect(errnoFrom(() => f.pwrite(3 * PAGE_SIZE, filled(1, 3)))).toBe("EPERM");
    f.freezeMapping(false);
    f.truncate(PAGE_SIZE);
    expect(f.size).toBe(PAGE_SIZE);
  });
});

describe("read, write, truncate, fallocate, punch", () => {
  const m = boot();

  it("writes and reads at positions; holes read as zeros; EOF bounds reads", () => {
    const f = memfd.create(m, { name: "rw" });
    expect(f.write(new TextEncoder().encode("hello"))).toBe(5);
    expect(f.position).toBe(5);
    f.pwrite(3 * PAGE_SIZE + 10, new Uint8Array([1, 2, 3]));
    expect(f.position).toBe(5);
    expect(f.size).toBe(3 * PAGE_SIZE + 13);
    expect(f.allocatedPages).toBe(2);
    const all = f.pread(0, 1 << 20);
    expect(all.length).toBe(f.size);
    expect(new TextDecoder().decode(all.subarray(0, 5))).toBe("hello");
    expect(all.subarray(5, 3 * PAGE_SIZE + 10).every((b) => b === 0)).toBe(true);
    expect([...all.subarray(3 * PAGE_SIZE + 10)]).toEqual([1, 2, 3]);
    f.lseek(0, SEEK_SET);
    expect(new TextDecoder().decode(f.read(5))).toBe("hello");
    expect(f.position).toBe(5);
    expect(f.pread(f.size, 10).length).toBe(0);
    expect(errnoFrom(() => f.pread(-1, 1))).toBe("EINVAL");
    expect(errnoFrom(() => f.pwrite(MEMFD_MAX_BYTES, filled(1, 1)))).toBe("EFBIG");
  });

  it("truncate frees folios past the end, zeroes the rest of the last page, and regrows with zeros", () => {
    const f = memfd.create(m, { name: "trunc" });
    const freeBefore = m.allocator.freePages;
    f.pwrite(0, filled(4 * PAGE_SIZE, 5));
    expect(m.allocator.freePages).toBe(freeBefore - 4);
    f.truncate(PAGE_SIZE + 100);
    expect(f.allocatedPages).toBe(2);
    expect(m.allocator.freePages).toBe(freeBefore - 2);
    f.truncate(4 * PAGE_SIZE);
    const back = f.pread(0, 4 * PAGE_SIZE);
    expect(back.subarray(0, PAGE_SIZE + 100).every((b) => b === 5)).toBe(true);
    expect(back.subarray(PAGE_SIZE + 100).every((b) => b === 0)).toBe(true);
    expect(errnoFrom(() => { f.truncate(-1); })).toBe("EINVAL");
    expect(errnoFrom(() => { f.truncate(MEMFD_MAX_BYTES + PAGE_SIZE); })).toBe("EFBIG");
    f.truncate(0);
    expect(f.allocatedPages).toBe(0);
    expect(m.allocator.freePages).toBe(freeBefore);
  });

  it("fallocate allocates folios that read as zeros and count as holes for SEEK_DATA", () => {
    const f = memfd.create(m, { name: "falloc" });
    f.fallocate(FALLOC_FL_KEEP_SIZE, 0, 3 * PAGE_SIZE);
    expect(f.size).toBe(0);
    expect(f.allocatedPages).toBe(3);
    f.fallocate(0, PAGE_SIZE, PAGE_SIZE + 1);
    expect(f.size).toBe(2 * PAGE_SIZE + 1);
    for (const folio of f.folios()) expect(folio.flags).toBe(FOLIO_DIRTY); // dirty, not uptodate
    expect(f.pread(0, f.size).every((b) => b === 0)).toBe(true);
    expect(errnoFrom(() => f.lseek(0, SEEK_DATA))).toBe("ENXIO");
    expect(f.lseek(5, SEEK_HOLE)).toBe(5);
    f.pwrite(PAGE_SIZE + 7, new Uint8Array([0xaa]));
    expect(f.lseek(0, SEEK_DATA)).toBe(PAGE_SIZE);
    expect(f.lseek(PAGE_SIZE, SEEK_HOLE)).toBe(2 * PAGE_SIZE);
    const page = f.pread(PAGE_SIZE, PAGE_SIZE);
    expect(page[7]).toBe(0xaa);
    expect(page.reduce((n, b) => n + (b === 0 ? 1 : 0), 0)).toBe(PAGE_SIZE - 1);
    expect(errnoFrom(() => { f.fallocate(0, 0, 0); })).toBe("EINVAL");
    expect(errnoFrom(() => { f.fallocate(FALLOC_FL_PUNCH_HOLE, 0, 1); })).toBe("EOPNOTSUPP");
    expect(errnoFrom(() => { f.fallocate(0x10, 0, 1); })).toBe("EOPNOTSUPP");
    expect(errnoFrom(() => { f.fallocate(0x100, 0, 1); })).toBe("EOPNOTSUPP");
    expect(errnoFrom(() => { f.fallocate(0, MEMFD_MAX_BYTES, 1); })).toBe("EFBIG");
  });

  it("fallocate that runs out of memory frees what it allocated", () => {
    const small = Machine.boot({ memory: "16 MiB", scratch: "none" });
    const f = memfd.create(small, { name: "big" });
    const free = small.allocator.freePages;
    expect(errnoFrom(() => { f.fallocate(0, 0, (free + 1) * PAGE_SIZE); })).toBe("ENOMEM");
    expect(f.allocatedPages).toBe(0);
    expect(f.size).toBe(0);
    expect(small.allocator.freePages).toBe(free);
  });

  it("punching a hole frees whole folios and zeroes partial pages", () => {
    const f = memfd.create(m, { name: "punch" });
    f.pwrite(0, filled(4 * PAGE_SIZE, 3));
    f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PAGE_SIZE - 10, 2 * PAGE_SIZE + 20);
    expect(f.size).toBe(4 * PAGE_SIZE);
    expect(f.allocatedPages).toBe(2); // pages 1 and 2 freed, pages 0 and 3 partly zeroed
    const data = f.pread(0, f.size);
    for (let i = 0; i < data.length; i++) {
      const inHole = i >= PAGE_SIZE - 10 && i < 3 * PAGE_SIZE + 10;
      if (data[i] !== (inHole ? 0 : 3)) throw new Error(`byte ${i} is ${data[i]}`);
    }
    expect(f.lseek(0, SEEK_HOLE)).toBe(PAGE_SIZE);
  });

  it("lseek: SET, CUR, END, and its errors", () => {
    const f = memfd.create(m, { name: "seek" });
    f.truncate(1000);
    expect(f.lseek(10, SEEK_SET)).toBe(10);
    expect(f.lseek(5, SEEK_CUR)).toBe(15);
    expect(f.lseek(-100, SEEK_END)).toBe(900);
    expect(f.lseek(10_000, SEEK_SET)).toBe(10_000); // past EOF is fine
    expect(errnoFrom(() => f.lseek(-1, SEEK_SET))).toBe("EINVAL");
    expect(errnoFrom(() => f.lseek(0, 7))).toBe("EINVAL");
    expect(errnoFrom(() => f.lseek(1000, SEEK_DATA))).toBe("ENXIO");
    expect(f.lseek(0, SEEK_HOLE)).toBe(0); // all hole
    expect(errnoFrom(() => f.lseek(0, SEEK_DATA))).toBe("ENXIO");
  });

  it("hugetlb memfds: sizes in huge pages, no write(2)", () => {
    const h = memfd.create(m, { name: "h", flags: MFD_HUGETLB });
    expect(errnoFrom(() => { h.truncate(PAGE_SIZE); })).toBe("EINVAL");
    h.truncate(2 << 20);
    expect(errnoFrom(() => h.pwrite(0, filled(1, 1)))).toBe("EINVAL");
    h.fallocate(0, 0, 1);
    expect(h.folios().map((f) => f.order)).toEqual([9]);
    const giant = memfd.create(m, { name: "g", flags: MFD_HUGETLB | MFD_HUGE_1GB });
    expect(errnoFrom(() => { giant.fallocate(0, 0, 1); })).toBe("ENOMEM");
  });
});

describe("sparse files", () => {
  it("holes cost nothing: a 1 TiB file with two written pages holds two folios", () => {
    const m = boot();
    const f = memfd.create(m, { name: "sparse" });
    const free = m.allocator.freePages;
    f.truncate(2 ** 40);
    f.pwrite(0, filled(10, 1));
    f.pwrite(2 ** 40 - 10, filled(10, 2));
    expect(f.folioCount).toBe(2);
    expect(m.allocator.freePages).toBe(free - 2);
    expect(f.pread(2 ** 39, 16).every((b) => b === 0)).toBe(true);
    expect(f.lseek(1, SEEK_HOLE)).toBe(PAGE_SIZE);
    expect(f.lseek(PAGE_SIZE, SEEK_DATA)).toBe(2 ** 40 - PAGE_SIZE);
    f.truncate(PAGE_SIZE);
    expect(f.folioCount).toBe(1);
  });
});

describe("huge folios", () => {
  const m = boot();

  it("always: a 4 MiB file written in full is two order-9 folios", () => {
    const f = memfd.create(m, { name: "thp2m", huge: "always" });
    f.truncate(4 << 20);
    for (let p = 0; p < 1024; p++) f.pwrite(p * PAGE_SIZE, filled(PAGE_SIZE, p & 0xff));
    expect(f.folios().map((x) => [x.index, x.order])).toEqual([
      [0, 9],
      [512, 9],
    ]);
    const data = f.pread(0, 4 << 20);
    for (let p = 0; p < 1024; p += 97) expect(data[p * PAGE_SIZE + 5]).toBe(p & 0xff);
  });

  it("always allocates the whole aligned block even past EOF; within_size does not", () => {
    const always = memfd.create(m, { name: "a", huge: "always" });
    always.pwrite(0, filled(10, 1));
    expect(always.folios().map((x) => x.order)).toEqual([9]);
    const within = memfd.create(m, { name: "w", huge: "within_size" });
    within.truncate(80 * PAGE_SIZE);
    within.pwrite(0, filled(10, 1));
    expect(within.folios().map((x) => x.order)).toEqual([0]);
  });

  it("within_size with every mTHP order: 80 pages become order 6 at 0 and order 4 at 64 (golden thp-within-size)", () => {
    const f = memfd.create(m, { name: "thp-within-size", huge: "within_size", hugeOrders: [9, 8, 7, 6, 5, 4, 3, 2, 1] });
    f.truncate(80 * PAGE_SIZE);
    for (let p = 0; p < 80; p++) f.pwrite(p * PAGE_SIZE, filled(PAGE_SIZE, p + 1));
    expect(f.folios().map((x) => [x.index, x.order])).toEqual([
      [0, 6],
      [64, 4],
    ]);
    const data = f.pread(0, f.size);
    for (let p = 0; p < 80; p++) expect(data[p * PAGE_SIZE + 100]).toBe(p + 1);
  });

  it("a large folio cut by truncate or punch keeps its other pages and reads zeros where cut", () => {
    const f = memfd.create(m, { name: "cut", huge: "always" });
    f.pwrite(0, filled(2 << 20, 4));
    f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10 * PAGE_SIZE, 3 * PAGE_SIZE);
    f.truncate(100 * PAGE_SIZE + 1);
    expect(f.folios().map((x) => x.order)).toEqual([9]);
    f.truncate(2 << 20);
    const data = f.pread(0, 2 << 20);
    for (let i = 0; i < data.length; i += 511) {
      const zero = (i >= 10 * PAGE_SIZE && i < 13 * PAGE_SIZE) || i >= 100 * PAGE_SIZE + 1;
      if (data[i] !== (zero ? 0 : 4)) throw new Error(`byte ${i} is ${data[i]}`);
    }
    f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2 << 20);
    expect(f.folioCount).toBe(0);
  });
});

describe("what a LUO handler uses", () => {
  const m = boot();

  it("pinFolios fills holes with zeroed UPTODATE folios and lists each folio once", () => {
    const f = memfd.create(m, { name: "pin", huge: "within_size", hugeOrders: [4] });
    f.truncate(40 * PAGE_SIZE + 1);
    f.pwrite(0, filled(10, 1)); // order-4 folio at 0 (16 pages within 41)
    f.fallocate(FALLOC_FL_KEEP_SIZE, 20 * PAGE_SIZE, PAGE_SIZE); // one order-4 folio at 16
    f.pwrite(63 * PAGE_SIZE, filled(1, 1)); // grows the file to 64 pages: an order-4 folio at 48
    const pinned = f.pinFolios();
    expect(f.pinCount).toBe(1);
    const rows = Array.from({ length: pinned.count }, (_, i) => [pinned.indices[i], pinned.orders[i], pinned.flags[i]]);
    expect(rows).toEqual([
      [0, 4, FOLIO_DIRTY | FOLIO_UPTODATE],
      [16, 4, FOLIO_DIRTY],
      [32, 4, FOLIO_UPTODATE], // the hole, filled (within_size: 48 <= 64 pages)
      [48, 4, FOLIO_DIRTY | FOLIO_UPTODATE],
    ]);
    f.markFoliosPreserved(pinned);
    expect([...pinned.flags]).toEqual([3, 3, 3, 3]);
    expect(f.folios().every((x) => x.flags === (FOLIO_DIRTY | FOLIO_UPTODATE))).toBe(true);
    expect(f.pread(16 * PAGE_SIZE, 16 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    f.unpinFolios();
    expect(errnoFrom(() => { f.unpinFolios(); })).toBe("EINVAL");
  });

  it("insertFolio refuses misaligned indices and pages already cached", () => {
    const f = memfd.create(m, { name: "ins" });
    const phys = m.kho.allocFolio(2);
    expect(errnoFrom(() => { f.insertFolio(2, phys, 2, 3); })).toBe("EINVAL");
    expect(errnoFrom(() => { f.insertFolio(0, phys, 10, 3); })).toBe("EINVAL");
    f.insertFolio(4, phys, 2, 3);
    expect(errnoFrom(() => { f.insertFolio(4, m.kho.allocFolio(0), 0, 3); })).toBe("EEXIST");
    f.restoreSize(8 * PAGE_SIZE);
    expect(f.folios()).toEqual([{ index: 4, phys, order: 2, flags: 3 }]);
  });
});

describe("property: the model reads back what a plain byte array would hold", () => {
  it("random writes, truncates, fallocates and punches (seeded)", () => {
    const m = boot("512 MiB");
    for (const [seed, huge] of [
      [1, "never"],
      [2, "always"],
      [3, "within_size"],
    ] as const) {
      const rng = new Prng(seed);
      const f = memfd.create(m, { name: `prop-${seed}`, huge, hugeOrders: [9, 5, 2] });
      const limit = 3 << 20;
      let ref = new Uint8Array(0);
      for (let step = 0; step < 300; step++) {
        const op = rng.int(10);
        if (op < 5) {
          const off = rng.int(limit);
          const data = rng.bytes(rng.range(1, 3 * PAGE_SIZE));
          f.pwrite(off, data);
          if (off + data.length > ref.length) {
            const grown = new Uint8Array(off + data.length);
            grown.set(ref);
            ref = grown;
          }
          ref.set(data, off);
        } else if (op < 7) {
          const size = rng.int(limit);
          f.truncate(size);
          const next = new Uint8Array(size);
          next.set(ref.subarray(0, Math.min(size, ref.length)));
          ref = next;
        } else if (op < 8) {
          const off = rng.int(limit);
          const len = rng.range(1, 64 * PAGE_SIZE);
          const keep = rng.chance(0.5);
          f.fallocate(keep ? FALLOC_FL_KEEP_SIZE : 0, off, len);
          if (!keep && off + len > ref.length) {
            const grown = new Uint8Array(off + len);
            grown.set(ref);
            ref = grown;
          }
        } else {
          const off = rng.int(limit);
          const len = rng.range(1, 600 * PAGE_SIZE);
          f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
          ref.fill(0, Math.min(off, ref.length), Math.min(off + len, ref.length));
        }
        expect(f.size).toBe(ref.length);
        if (step % 25 === 0 || step === 299) {
          const got = f.pread(0, ref.length);
          expect(Buffer.compare(Buffer.from(got), Buffer.from(ref))).toBe(0);
        }
      }
      f.truncate(0);
      expect(f.folioCount).toBe(0);
    }
  });
});

describe("model limits", () => {
  it("errors carry their negative errno, EFBIG and ENXIO included", () => {
    const m = boot();
    const f = memfd.create(m, { name: "e" });
    try {
      f.truncate(MEMFD_MAX_BYTES + 1);
      expect.unreachable();
    } catch (error) {
      expect((error as { value: number }).value).toBe(-27);
    }
    try {
      f.lseek(0, SEEK_DATA);
      expect.unreachable();
    } catch (error) {
      expect((error as { value: number }).value).toBe(-6);
    }
  });
});
