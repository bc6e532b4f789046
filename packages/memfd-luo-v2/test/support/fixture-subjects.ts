/**
 * memfd-v2 as handler-testkit subjects for the frozen fixtures: how the frozen files were
 * made from a seed, and what of a memfd must survive a live update.
 */
import { createHash } from "node:crypto";
import type { HandlerSubject } from "./testkit.js";
import { PAGE_SIZE, type Machine } from "@liveupdate/kho";
import type { LuoFile } from "@liveupdate/luo-core";
import { F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_WRITE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MFD_ALLOW_SEALING, MemfdFile, SEEK_SET, memfd } from "@liveupdate/memfd";
import { memfdV2 } from "../../src/index.js";

function asMemfd(file: LuoFile): MemfdFile {
  if (!(file instanceof MemfdFile)) throw new Error(`${file.description} is not a memfd`);
  return file;
}

/** Bytes that differ per seed and per offset, so a misplaced page changes the hash. */
function pattern(seed: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed * 7 + (i >>> 12)) & 0xff;
  return bytes;
}

/**
 * Everything memfd-v2 carries: size, position, seals and the contents (sha256 over
 * `[0, size)`, holes read as zeros). Not the folio layout: preserve pins every page of
 * `[0, size)` (`memfd_pin_folios`), which fills the holes of the outgoing file itself, so
 * the layout before preserve is not what any handler hands over.
 */
export function memfdSnapshot(file: LuoFile): { size: number; pos: number; seals: number; sha256: string } {
  const f = asMemfd(file);
  return {
    size: f.size,
    pos: f.position,
    seals: f.seals,
    sha256: createHash("sha256").update(f.pread(0, f.size)).digest("hex"),
  };
}

/** A small dense memfd: a few order-0 pages, all written, the last one partly; pos inside. */
function makeDense(machine: Machine, seed: number): MemfdFile {
  const f = memfd.create(machine, { name: `dense-${seed}`, flags: MFD_ALLOW_SEALING });
  const size = (2 + seed) * PAGE_SIZE + 100 * seed + 1;
  f.write(pattern(seed, size));
  f.lseek(size >>> 1, SEEK_SET);
  return f;
}

/**
 * A sparse, sealed memfd with huge folios: mixed-order THP (orders 2 and 1, to keep the frozen
 * image small), data at scattered offsets, a punched hole, a size past the last written page,
 * then the seals that freeze its shape and contents.
 */
function makeSparseSealedHuge(machine: Machine, seed: number): MemfdFile {
  const f = memfd.create(machine, { name: `sparse-${seed}`, flags: MFD_ALLOW_SEALING, huge: "always", hugeOrders: [2, 1] });
  const chunk = 4 * PAGE_SIZE;
  f.pwrite(0, pattern(seed, chunk));
  f.pwrite(5 * chunk + PAGE_SIZE, pattern(seed + 1, 2 * PAGE_SIZE + 17));
  f.pwrite((9 + seed) * chunk, pattern(seed + 2, PAGE_SIZE));
  f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PAGE_SIZE, 2 * PAGE_SIZE);
  f.truncate((12 + seed) * chunk);
  f.lseek(5 * chunk, SEEK_SET);
  f.addSeals(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  return f;
}

/** Small dense memfds, memfd-v2. */
export const denseSubject: HandlerSubject = { handler: () => memfdV2, makeFile: makeDense, snapshot: memfdSnapshot };

/** Sparse, sealed memfds with huge folios, memfd-v2. */
export const sparseSealedHugeSubject: HandlerSubject = { handler: () => memfdV2, makeFile: makeSparseSealedHuge, snapshot: memfdSnapshot };
