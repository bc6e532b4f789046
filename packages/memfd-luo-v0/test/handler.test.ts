/**
 * The handler's ops called directly, as luo-core calls them, on memfds of the shared model
 * across a kexec of the kho model: contents, size, position and folio state come back; the
 * preserved file is frozen; unpreserve undoes everything; failed retrieves change nothing.
 */
import { FormatError, Machine, PAGE_SIZE } from "@liveupdate/kho";
import { FALLOC_FL_KEEP_SIZE, MemfdFile, SEEK_SET, createMemfd, createTmpfsFile, type ShmemHugePolicy } from "@liveupdate/memfd";
import { describe, expect, it } from "vitest";
import { MEMFD_V0_COMPATIBLE, MEMFD_V0_FOLIOS_VALUE_OFFSET, decodeMemfdV0, memfdV0 } from "../src/index.js";
import { opArgs } from "./support/args.js";
import { asMemfd } from "./support/args.js";
import { Prng } from "./support/prng.js";

/** A memfd with random writes (and holes) of about `bytes` bytes. */
function randomFile(machine: Machine, rng: Prng, bytes: number, huge: ShmemHugePolicy): MemfdFile {
  const file = createMemfd(machine, { name: "vm-ram", huge });
  if (bytes > 0) {
    file.truncate(bytes);
    for (let w = rng.int(12); w > 0; w--) {
      const at = rng.int(bytes);
      file.pwrite(at, rng.bytes(Math.min(bytes - at, 1 + rng.int(3 * PAGE_SIZE))));
    }
    if (rng.chance(0.5)) file.fallocate(FALLOC_FL_KEEP_SIZE, rng.int(bytes), 1 + rng.int(PAGE_SIZE * 8));
  }
  file.lseek(rng.int(bytes + 100), SEEK_SET);
  return file;
}

function kexecRoundTrip(
  old: Machine,
  file: MemfdFile,
  movePos?: number,
): { next: Machine; restored: MemfdFile; before: Uint8Array; folios: ReturnType<MemfdFile["folios"]>; otherRuns: number } {
  const otherRuns = old.kho.preservedRuns().length;
  const args = opArgs(old, file);
  expect(memfdV0.canPreserve(file)).toBe(true);
  memfdV0.preserve(args);
  if (movePos !== undefined) file.lseek(movePos, SEEK_SET);
  memfdV0.freeze(args);
  const before = file.pread(0, file.size);
  const folios = file.folios();
  const next = old.kexec();
  const incoming = opArgs(next, undefined, args.serializedData);
  memfdV0.retrieve(incoming);
  const restored = incoming.file;
  expect(restored).toBeInstanceOf(MemfdFile);
  return { next, restored: asMemfd(restored), before, folios, otherRuns };
}

describe("memfd-v0 handler", () => {
  it("is the memfd-v0 compatible and takes memfds only", () => {
    const m = Machine.boot({ memory: "64 MiB" });
    expect(memfdV0.compatible).toBe(MEMFD_V0_COMPATIBLE);
    const a = createMemfd(m, { name: "a" });
    const b = createMemfd(m, { name: "b" });
    expect(memfdV0.canPreserve(a)).toBe(true);
    expect(memfdV0.getId(a)).not.toBe(memfdV0.getId(b));
    expect(memfdV0.getId(a)).toBe(a.inode);
    expect(memfdV0.canPreserve(createMemfd(m, { name: "h", flags: 0x4 /* MFD_HUGETLB */ }))).toBe(false);
    const named = createTmpfsFile(m, { path: "/dev/shm/x" });
    expect(memfdV0.canPreserve(named)).toBe(false);
    named.unlink();
    expect(memfdV0.canPreserve(named)).toBe(true); // unlinked shmem, as shmem_file && !i_nlink
    expect(memfdV0.canPreserve({ description: "/dev/null" })).toBe(false);
  });

  it("round trips random files (holes, huge folios, positions) across kexec", () => {
    const rng = new Prng(0x3e3f);
    for (let round = 0; round < 12; round++) {
      const old = Machine.boot({ memory: "256 MiB" });
      const huge = (["never", "always", "within_size"] as const)[round % 3]!;
      const bytes = round % 4 === 0 ? 0 : rng.int(6 * 2 ** 20);
      const file = randomFile(old, rng, bytes, huge);
      const newPos = rng.int(2 ** 40);
      const { next, restored, before, folios, otherRuns } = kexecRoundTrip(old, file, newPos);
      expect(restored.size).toBe(bytes);
      expect(restored.position).toBe(newPos);
      expect(Buffer.from(restored.pread(0, bytes)).equals(Buffer.from(before))).toBe(true);
      // holes were filled at preserve; every folio comes back where it was, with its flags
      expect(folios.reduce((n, f) => n + 2 ** f.order, 0)).toBeGreaterThanOrEqual(Math.ceil(bytes / PAGE_SIZE));
      expect(restored.folios()).toEqual(folios);
      expect(restored.seals).toBe(0x1); // F_SEAL_SEAL: a shmem_file_setup file
      expect(next.incoming.stampedCount).toBe(otherRuns); // every page of the record reclaimed
    }
  });

  it("records each folio's own DIRTY / UPTODATE state (the posted series did not force them)", () => {
    const old = Machine.boot({ memory: "64 MiB" });
    const file = createMemfd(old, { name: "flags" });
    file.truncate(4 * PAGE_SIZE);
    file.pwrite(0, Uint8Array.of(1)); // page 0: dirty, uptodate
    file.fallocate(FALLOC_FL_KEEP_SIZE, PAGE_SIZE, PAGE_SIZE); // page 1: allocated, not uptodate
    // pages 2, 3: holes, filled by the pin: uptodate, not dirty
    const args = opArgs(old, file);
    memfdV0.preserve(args);
    const record = decodeMemfdV0(old.memory, args.serializedData);
    const flags = [...record.folios].map((f) => [f.index, f.flags]);
    expect(flags).toEqual(file.folios().map((f) => [f.index, f.flags]));
    expect(flags[0]).toEqual([0, 3]);
    expect(flags[1]![1]! & 2).toBe(0);
    expect(flags.slice(2)).toEqual([
      [2, 2],
      [3, 2],
    ]);
  });

  it("freezes the preserved file's size; unpreserve undoes everything", () => {
    const rng = new Prng(5);
    const old = Machine.boot({ memory: "64 MiB" });
    const file = randomFile(old, rng, 300 * PAGE_SIZE, "never");
    const runs = old.kho.preservedRuns().length;
    const args = opArgs(old, file);
    memfdV0.preserve(args);
    expect(file.mappingFrozen).toBe(true);
    expect(file.pinCount).toBe(1);
    expect(() => {
      file.truncate(10);
    }).toThrow(expect.objectContaining({ errno: "EPERM" }));
    expect(old.kho.preservedRuns().length).toBeGreaterThan(runs + 300);
    memfdV0.freeze(args);
    memfdV0.unfreeze(args);
    memfdV0.unpreserve(args);
    expect(file.mappingFrozen).toBe(false);
    expect(file.pinCount).toBe(0);
    expect(old.kho.preservedRuns().length).toBe(runs);
    file.truncate(10);
    expect(file.size).toBe(10);
    // and it can be preserved again
    const again = opArgs(old, file);
    memfdV0.preserve(again);
    const { restored } = (() => {
      const next = old.kexec();
      const inc = opArgs(next, undefined, again.serializedData);
      memfdV0.retrieve(inc);
      return { restored: asMemfd(inc.file) };
    })();
    expect(restored.size).toBe(10);
  });

  it("refuses a file of more than 2^32 - 1 pages with E2BIG, leaving it unfrozen", () => {
    const old = Machine.boot({ memory: "64 MiB" });
    const file = createMemfd(old, { name: "big" });
    file.truncate(2 ** 44);
    expect(() => {
      memfdV0.preserve(opArgs(old, file));
    }).toThrow(expect.objectContaining({ errno: "E2BIG" }));
    expect(file.mappingFrozen).toBe(false);
    expect(file.pinCount).toBe(0);
  });

  it("a failed retrieve changes nothing and the repaired record retrieves; finish then does nothing", () => {
    const rng = new Prng(11);
    const old = Machine.boot({ memory: "64 MiB" });
    const file = randomFile(old, rng, 40 * PAGE_SIZE, "never");
    const args = opArgs(old, file);
    memfdV0.preserve(args);
    memfdV0.freeze(args);
    const before = file.pread(0, file.size);
    const next = old.kexec();
    const fdt = Number(args.serializedData);
    const good = next.memory.read(fdt, PAGE_SIZE);
    next.memory.write(fdt + MEMFD_V0_FOLIOS_VALUE_OFFSET, Uint8Array.of(0)); // break the KHO array magic
    const stamped = next.incoming.stampedCount;
    const inc = opArgs(next, undefined, args.serializedData);
    expect(() => {
      memfdV0.retrieve(inc);
    }).toThrow(FormatError);
    expect(inc.file).toBeUndefined();
    expect(next.incoming.stampedCount).toBe(stamped);
    next.memory.write(fdt, good);
    memfdV0.retrieve(inc);
    expect(asMemfd(inc.file).pread(0, 40 * PAGE_SIZE)).toEqual(before);
    const left = next.incoming.stampedCount;
    memfdV0.finish(opArgs(next, inc.file, args.serializedData, 1));
    expect(next.incoming.stampedCount).toBe(left);
  });

  it("finish of a never-retrieved file frees every page of its record", () => {
    const rng = new Prng(12);
    const old = Machine.boot({ memory: "64 MiB" });
    const file = randomFile(old, rng, 700 * PAGE_SIZE, "always");
    const args = opArgs(old, file);
    memfdV0.preserve(args);
    const next = old.kexec();
    const baseline = next.incoming.stampedCount;
    const record = decodeMemfdV0(next.memory, args.serializedData, { stamps: next.incoming });
    const owned = next.allocator.ownedFolios;
    memfdV0.finish(opArgs(next, undefined, args.serializedData, 0));
    expect(next.incoming.stampedCount).toBe(baseline - record.folios.length - record.arrayPages.length - 1);
    expect(next.allocator.ownedFolios).toBe(owned);
  });
});
