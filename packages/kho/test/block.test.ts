import { describe, expect, it } from "vitest";
import { KHO_BLOCK_MAX_BLOCKS, PAGE_SIZE, khoBlockEntriesPerBlock } from "../src/abi.js";
import { FormatError, KernelError } from "../src/errors.js";
import { Machine } from "../src/machine.js";
import { PhysicalMemory } from "../src/memory.js";
import { SparsePagesImage } from "../src/image/sparse-pages.js";
import { KhoBlockSet, khoBlockEntryPhys, readKhoBlocks, writeKhoBlocks } from "../src/block.js";
import { FakeKho, FakeRestorer } from "./support/fake-kho.js";
import { REAL_KERNEL_CASES, goldenFile, goldenJson } from "./support/golden-images.js";

const MEM_START = 16 << 20; // FakeKho's default memory: 64 MiB at 16 MiB
const SESSION_SER_SIZE = 80; // luo_session_ser
const FILE_SER_SIZE = 64; // luo_file_ser

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
}

/** An entry whose every byte says which entry it is. */
function entry(size: number, i: number): Uint8Array {
  return new Uint8Array(size).fill((i * 37 + 1) & 0xff);
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

function expectFormatError(fn: () => unknown, rule: string): FormatError {
  const err = caught(fn);
  expect(err).toBeInstanceOf(FormatError);
  const fe = err as FormatError;
  expect({ format: fe.format, rule: fe.rule, errno: fe.errno }).toEqual({ format: "kho-block", rule, errno: "EINVAL" });
  return fe;
}

describe("KHO serialization block layout", () => {
  it("fits 51 session entries and 63 file entries per block, as LUO 7.2 does", () => {
    expect(khoBlockEntriesPerBlock(SESSION_SER_SIZE)).toBe(51);
    expect(khoBlockEntriesPerBlock(FILE_SER_SIZE)).toBe(63);
    const kho = new FakeKho();
    expect(KhoBlockSet.create(kho, SESSION_SER_SIZE).entriesPerBlock).toBe(51);
    expect((caught(() => KhoBlockSet.create(kho, 0)) as KernelError).errno).toBe("EINVAL");
    expect((caught(() => KhoBlockSet.create(kho, 4081)) as KernelError).errno).toBe("EINVAL");
    expect(KhoBlockSet.create(kho, 4080).entriesPerBlock).toBe(1);
  });

  it("writes headers {next, count} and entries at 16 + i * size, byte for byte", () => {
    const kho = new FakeKho();
    const entries = Array.from({ length: 70 }, (_, i) => entry(FILE_SER_SIZE, i));
    const set = writeKhoBlocks(kho, FILE_SER_SIZE, entries);
    // The fake hands out pages from the start of memory: the blocks are its first two.
    expect(set.blocks).toEqual([MEM_START, MEM_START + PAGE_SIZE]);
    expect(set.headPa).toBe(MEM_START);
    expect(kho.memory.read(MEM_START, 16)).toEqual(hex("0010000100000000 3f00000000000000"));
    expect(kho.memory.read(MEM_START + PAGE_SIZE, 16)).toEqual(hex("0000000000000000 0700000000000000"));
    expect(kho.memory.read(MEM_START + 16 + 62 * 64, 64)).toEqual(entry(64, 62));
    expect(kho.memory.read(MEM_START + PAGE_SIZE + 16 + 6 * 64, 64)).toEqual(entry(64, 69));
    // Past the last entry of a block: zero (the block came zeroed).
    expect(kho.memory.read(MEM_START + PAGE_SIZE + 16 + 7 * 64, 64)).toEqual(new Uint8Array(64));
    expect(kho.memory.read(MEM_START + 16 + 63 * 64, 4096 - 16 - 63 * 64)).toEqual(new Uint8Array(48));
    expect([...kho.preserved]).toEqual([
      [MEM_START / PAGE_SIZE, 0],
      [MEM_START / PAGE_SIZE + 1, 0],
    ]);
    expect(khoBlockEntryPhys(MEM_START, 2, 64)).toBe(MEM_START + 16 + 128);
  });
});

describe("KhoBlockSet: grow, shrink, iterate (outgoing)", () => {
  it("grows to fit a count, shrinks back, and keeps the links right", () => {
    const kho = new FakeKho();
    const set = KhoBlockSet.create(kho, SESSION_SER_SIZE);
    expect(set.headPa).toBe(0);
    expect(set.isEmpty).toBe(true);
    set.grow(1);
    expect(set.blockCount).toBe(1);
    set.grow(51);
    expect(set.blockCount).toBe(1);
    set.grow(103);
    expect(set.blockCount).toBe(3);
    expect(kho.memory.readU64Number(set.blocks[0]!)).toBe(set.blocks[1]);
    expect(kho.memory.readU64Number(set.blocks[1]!)).toBe(set.blocks[2]);
    expect(kho.memory.readU64Number(set.blocks[2]!)).toBe(0);
    set.shrink(103);
    expect(set.blockCount).toBe(3);
    set.shrink(102);
    expect(set.blockCount).toBe(2);
    expect(kho.memory.readU64Number(set.blocks[1]!)).toBe(0);
    expect(kho.preserved.size).toBe(2);
    set.shrink(0);
    expect(set.headPa).toBe(0);
    expect(kho.preserved.size).toBe(0);
    expect(kho.allocated.size).toBe(0);
  });

  it("reserves entries across blocks, sets counts, steps back across a block boundary", () => {
    const kho = new FakeKho();
    const set = KhoBlockSet.create(kho, FILE_SER_SIZE);
    expect(set.iterator().reserveEntry()).toBeUndefined(); // no blocks yet
    set.grow(64);
    const it = set.iterator();
    const slots = Array.from({ length: 64 }, () => it.reserveEntry());
    expect(slots[0]).toBe(set.blocks[0]! + 16);
    expect(slots[63]).toBe(set.blocks[1]! + 16);
    expect(kho.memory.readU64Number(set.blocks[0]! + 8)).toBe(63);
    expect(kho.memory.readU64Number(set.blocks[1]! + 8)).toBe(1);
    expect(it.prev()).toBe(slots[63]);
    expect(it.prev()).toBe(slots[62]);
    expect(it.prev()).toBe(slots[61]);
    const back = set.iterator();
    expect(back.prev()).toBeUndefined();
    // Capacity 126: the 127th reservation fails.
    const full = set.iterator();
    for (let i = 0; i < 126; i++) expect(full.reserveEntry()).toBeDefined();
    expect(full.reserveEntry()).toBeUndefined();
    set.clear();
    expect(kho.memory.readU64Number(set.blocks[0]! + 8)).toBe(0);
    expect(kho.memory.readU64Number(set.blocks[0]!)).toBe(set.blocks[1]);
    expect(kho.memory.read(set.blocks[1]! + 16, 64)).toEqual(new Uint8Array(64));
  });

  it("fails ENOSPC past 10000 blocks and removes what the call added", () => {
    const kho = new FakeKho();
    const set = KhoBlockSet.create(kho, 2040); // 2 entries per block
    set.grow(2 * 9990);
    expect(set.blockCount).toBe(9990);
    const e = caught(() => { set.grow(2 * KHO_BLOCK_MAX_BLOCKS + 1); }) as KernelError;
    expect(e).toBeInstanceOf(KernelError);
    expect(e.errno).toBe("ENOSPC");
    expect(set.blockCount).toBe(9990);
    expect(kho.preserved.size).toBe(9990);
    expect(kho.allocated.size).toBe(9990);
    expect(kho.memory.readU64Number(set.blocks[9989]!)).toBe(0);
    set.grow(2 * KHO_BLOCK_MAX_BLOCKS);
    expect(set.blockCount).toBe(KHO_BLOCK_MAX_BLOCKS);
  });

  it("passes allocation failures through and rolls back", () => {
    const kho = new FakeKho();
    const set = KhoBlockSet.create(kho, FILE_SER_SIZE);
    set.grow(10);
    kho.limitAllocations(2);
    expect((caught(() => { set.grow(63 * 5); }) as KernelError).errno).toBe("ENOMEM");
    expect(set.blockCount).toBe(1);
    expect(kho.preserved.size).toBe(1);
  });
});

describe("KhoBlockSet round trip through kexec", () => {
  it("restores the chain, reads every entry back in order, and gives the blocks back on destroy", () => {
    const kho = new FakeKho();
    const entries = Array.from({ length: 130 }, (_, i) => entry(SESSION_SER_SIZE, i));
    const head = writeKhoBlocks(kho, SESSION_SER_SIZE, entries).headPa;
    const other = kho.allocPreserve(PAGE_SIZE);
    const next = kho.kexec();
    const set = KhoBlockSet.restore(next, head, SESSION_SER_SIZE);
    expect(set.incoming).toBe(true);
    expect(set.blockCount).toBe(3);
    const read = [...set.entries()].map((phys) => next.memory.read(phys, SESSION_SER_SIZE));
    expect(read).toEqual(entries);
    expect((caught(() => { set.grow(1000); }) as KernelError).errno).toBe("EINVAL");
    set.destroy();
    expect([...next.stamps.keys()]).toEqual([other / PAGE_SIZE]);
    expect(next.freed.size).toBe(3);
    expect(set.isEmpty).toBe(true);
  });

  it("an empty chain (head 0) restores to an empty set", () => {
    const next = new FakeKho().kexec();
    const set = KhoBlockSet.restore(next, 0, FILE_SER_SIZE);
    expect(set.isEmpty).toBe(true);
    expect(set.iterator().readEntry()).toBeUndefined();
  });
});

describe("KHO block hostile images: a typed error each, and nothing changes", () => {
  interface Img {
    next: FakeRestorer;
    head: number;
    blocks: readonly number[];
    spare: number; // a preserved page nobody links to
    count: number;
  }
  function handedOver(count = 100): Img {
    const kho = new FakeKho();
    const set = writeKhoBlocks(
      kho,
      FILE_SER_SIZE,
      Array.from({ length: count }, (_, i) => entry(FILE_SER_SIZE, i)),
    );
    const spare = kho.allocPreserve(PAGE_SIZE);
    return { next: kho.kexec(), head: set.headPa, blocks: [...set.blocks], spare, count };
  }
  /** A chain of `blocks` full blocks (headers only: entries left zero). */
  function longChain(blocks: number): Img {
    const kho = new FakeKho();
    const set = KhoBlockSet.create(kho, FILE_SER_SIZE);
    set.grow(blocks * set.entriesPerBlock);
    for (const b of set.blocks) kho.memory.writeU64(b + 8, set.entriesPerBlock);
    const spare = kho.allocPreserve(PAGE_SIZE);
    return { next: kho.kexec(), head: set.headPa, blocks: [...set.blocks], spare, count: blocks * set.entriesPerBlock };
  }
  function hostile(rule: string, corrupt: (img: Img) => void, setup: () => Img = () => handedOver()): FormatError {
    const img = setup();
    const before = img.blocks.map((b) => img.next.memory.read(b, PAGE_SIZE));
    const stamps = new Map(img.next.stamps);
    corrupt(img);
    const err = expectFormatError(() => KhoBlockSet.restore(img.next, img.head, FILE_SER_SIZE), rule);
    expect(img.next.stamps).toEqual(stamps);
    img.blocks.forEach((b, i) => {
      img.next.memory.write(b, before[i]!);
    });
    const set = KhoBlockSet.restore(img.next, img.head, FILE_SER_SIZE);
    expect(set.blocks).toEqual(img.blocks);
    if (img.count < 1000) expect([...set.entries()].length).toBe(img.count);
    set.destroy();
    return err;
  }

  it("counts of 0, beyond the block, or beyond 32 bits", () => {
    hostile("block-count", ({ next, blocks }) => {
      next.memory.writeU64(blocks[1]! + 8, 0);
    });
    hostile("block-count", ({ next, blocks }) => {
      next.memory.writeU64(blocks[0]! + 8, 64);
    });
    hostile("block-count", ({ next, blocks }) => {
      next.memory.writeU64(blocks[0]! + 8, 2n ** 32n + 1n);
    });
  });

  it("cycles, self-links and chains longer than 10000 blocks", () => {
    let closing = 0;
    const cycle = hostile("block-cycle", ({ next, blocks }) => {
      next.memory.writeU64(blocks[1]!, blocks[0]!);
      closing = blocks[1]!;
    });
    expect(cycle.offset).toBe(closing); // the link that closes the cycle
    hostile("block-cycle", ({ next, blocks }) => {
      next.memory.writeU64(blocks[0]!, blocks[0]!);
    });
    // 10000 real blocks, plus one more preserved page linked at the end.
    const t0 = performance.now();
    hostile(
      "too-many-blocks",
      ({ next, blocks, spare }) => {
        next.memory.writeU64(blocks[blocks.length - 1]!, spare);
        next.memory.writeU64(spare + 8, 1);
      },
      () => longChain(KHO_BLOCK_MAX_BLOCKS),
    );
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it("links outside memory, unaligned, beyond 52 bits, or into poison", () => {
    hostile("block-pointer", ({ next, blocks }) => {
      next.memory.writeU64(blocks[0]!, 0x2000);
    });
    hostile("block-pointer", ({ next, blocks }) => {
      next.memory.writeU64(blocks[0]!, 0x5000000);
    });
    hostile("block-alignment", ({ next, blocks }) => {
      next.memory.writeU64(blocks[0]!, blocks[1]! + 16);
    });
    hostile("block-pointer", ({ next, blocks }) => {
      next.memory.writeU64(blocks[0]!, 2n ** 60n);
    });
    // A link to a page nobody preserved reads poison: its own link is beyond 52 bits.
    const poison = hostile("block-pointer", ({ next, blocks }) => {
      next.memory.writeU64(blocks[0]!, MEM_START + 0x100000);
    });
    expect(poison.offset).toBe(MEM_START + 0x100000);
    expectFormatError(() => KhoBlockSet.restore(handedOver().next, 0x1000, FILE_SER_SIZE), "block-pointer");
  });

  it("a block that was not preserved, even with a plausible header", () => {
    const err = hostile("not-preserved", ({ next, blocks }) => {
      const stray = MEM_START + 0x200000;
      next.memory.write(stray, next.memory.read(blocks[1]!, PAGE_SIZE));
      next.memory.writeU64(blocks[0]!, stray);
    });
    expect(err.offset).toBe(MEM_START + 0x200000);
  });

  it("readKhoBlocks checks every link before any count, like the kernel's cycle check", () => {
    const memory = new PhysicalMemory([{ start: 0, size: 1 << 20 }]);
    memory.writeU64(0x1000, 0x2000);
    memory.writeU64(0x1008, 0); // bad count in the first block...
    memory.writeU64(0x2000, 0x1000); // ...and a cycle after it: the cycle is reported
    expectFormatError(() => readKhoBlocks(memory, 0x1000, 64), "block-cycle");
    memory.writeU64(0x2000, 0);
    expectFormatError(() => readKhoBlocks(memory, 0x1000, 64), "block-count");
    memory.writeU64(0x1008, 63);
    memory.writeU64(0x2008, 1);
    expect(readKhoBlocks(memory, 0x1000, 64)).toEqual({
      entrySize: 64,
      entriesPerBlock: 63,
      blocks: [
        { phys: 0x1000, next: 0x2000, count: 63 },
        { phys: 0x2000, next: 0, count: 1 },
      ],
      entryCount: 64,
    });
    expect(readKhoBlocks(memory, 0, 64).blocks).toEqual([]);
  });
});

describe("KHO blocks in the real Linux 7.2 handover images", () => {
  interface DecodedBlock {
    pa: number;
    next: number;
    count: number;
  }
  interface Decoded {
    radix_tree: { preserved: [number, number][] };
    luo: {
      sessions_pa: number;
      session_blocks: DecodedBlock[];
      sessions: { name: string; files_pa: number; count: number; file_blocks: DecodedBlock[]; files: { token: number; data: number; compatible: string }[] }[];
    };
  }
  const cString = (b: Uint8Array): string => new TextDecoder().decode(b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0)));

  for (const kase of REAL_KERNEL_CASES) {
    it(`reads the LUO session and file chains of case ${kase} as the reference decoder did, then restores them`, () => {
      const decoded = goldenJson(kase, "decoded.json") as Decoded;
      const image = SparsePagesImage.open(goldenFile(kase, "handover-meta-pages.bin"));
      try {
        const sessions = readKhoBlocks(image, decoded.luo.sessions_pa, SESSION_SER_SIZE);
        expect(sessions.blocks.map((b) => ({ pa: b.phys, next: b.next, count: b.count }))).toEqual(decoded.luo.session_blocks);
        expect(sessions.entryCount).toBe(decoded.luo.sessions.length);

        const memory = new PhysicalMemory([{ start: 0, size: 1 << 30 }], "poison");
        for (const r of image.ranges) {
          const bytes = new Uint8Array(r.size);
          image.readInto(r.start, bytes);
          memory.write(r.start, bytes);
        }
        const next = new FakeRestorer(memory, new Map(decoded.radix_tree.preserved.map(([phys, order]) => [phys / PAGE_SIZE, order])));
        const set = KhoBlockSet.restore(next, decoded.luo.sessions_pa, SESSION_SER_SIZE);
        const seen = [...set.entries()].map((phys) => {
          const ser = memory.read(phys, SESSION_SER_SIZE);
          const view = new DataView(ser.buffer);
          const files = Number(view.getBigUint64(64, true));
          const chain = KhoBlockSet.restore(next, files, FILE_SER_SIZE);
          const fileEntries = [...chain.entries()].map((f) => {
            const fileSer = memory.read(f, FILE_SER_SIZE);
            const fv = new DataView(fileSer.buffer);
            return { compatible: cString(fileSer.subarray(0, 48)), data: Number(fv.getBigUint64(48, true)), token: Number(fv.getBigUint64(56, true)) };
          });
          const blocks = chain.blocks.length;
          chain.destroy();
          return { name: cString(ser.subarray(0, 64)), files_pa: files, count: Number(view.getBigUint64(72, true)), blocks, fileEntries };
        });
        set.destroy();
        expect(seen).toEqual(
          decoded.luo.sessions.map((s) => ({
            name: s.name,
            files_pa: s.files_pa,
            count: s.count,
            blocks: s.file_blocks.length,
            fileEntries: s.files.map((f) => ({ compatible: f.compatible, data: f.data, token: f.token })),
          })),
        );
      } finally {
        image.close();
      }
    });
  }
});

describe("KHO blocks through the real Machine and kexec", () => {
  it("LUO-style session chain: grow, reserve, fill, hand over, restore, read back, destroy", () => {
    const old = Machine.boot({ memory: "128 MiB" });
    const names = Array.from({ length: 55 }, (_, i) => `session-${i}`);
    const set = KhoBlockSet.create(old.kho, SESSION_SER_SIZE);
    set.grow(names.length);
    const it = set.iterator();
    for (const name of names) old.memory.write(it.reserveEntry()!, new TextEncoder().encode(name));
    const blob = old.kho.allocPreserve(8);
    old.memory.writeU64(blob, set.headPa);
    old.kho.addSubtree("blocks-test", blob, 8);
    for (const b of set.blocks) expect(old.kho.isPreserved(b, 0)).toBe(true);

    const next = old.kexec();
    const head = next.memory.readU64Number(next.incoming.retrieveSubtree("blocks-test").phys)!;
    const chain = readKhoBlocks(next.memory, head, SESSION_SER_SIZE);
    expect(chain.blocks.map((b) => b.count)).toEqual([51, 4]);
    const restored = KhoBlockSet.restore(next.incoming, head, SESSION_SER_SIZE);
    const read = [...restored.entries()].map((phys) => {
      const bytes = next.memory.read(phys, 64);
      return new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
    });
    expect(read).toEqual(names);
    const stamped = next.incoming.stampedCount;
    restored.destroy();
    expect(stamped - next.incoming.stampedCount).toBe(2);
  });

  it("a corrupt chain is refused with every stamp left in place; repaired, it restores", () => {
    const old = Machine.boot({ memory: "128 MiB" });
    const set = writeKhoBlocks(
      old.kho,
      FILE_SER_SIZE,
      Array.from({ length: 200 }, (_, i) => entry(FILE_SER_SIZE, i)),
    );
    const blocks = [...set.blocks];
    const unpreserved = old.scratch[0]!.start;
    const next = old.kexec();
    const stamps = next.incoming.stampedRuns();
    next.memory.writeU64(blocks[3]!, blocks[1]!);
    expectFormatError(() => KhoBlockSet.restore(next.incoming, blocks[0]!, FILE_SER_SIZE), "block-cycle");
    next.memory.write(unpreserved, next.memory.read(blocks[3]!, PAGE_SIZE));
    next.memory.writeU64(unpreserved, 0);
    next.memory.writeU64(blocks[2]!, unpreserved);
    expectFormatError(() => KhoBlockSet.restore(next.incoming, blocks[0]!, FILE_SER_SIZE), "not-preserved");
    expect(next.incoming.stampedRuns()).toEqual(stamps);
    next.memory.writeU64(blocks[2]!, blocks[3]!);
    next.memory.writeU64(blocks[3]!, 0);
    expect([...KhoBlockSet.restore(next.incoming, blocks[0]!, FILE_SER_SIZE).entries()].length).toBe(200);
  });
});
