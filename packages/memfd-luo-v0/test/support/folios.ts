/** Plain-data memfd contents in a machine's memory, for round trips without the memfd model. */
import { PAGE_SIZE, type Machine } from "@liveupdate/kho";
import { MemfdV0FolioTable } from "../../src/index.js";
import type { Prng } from "./prng.js";

/** A memfd's state: its folio list and what each folio's first and last page hold. */
export interface PlainMemfd {
  readonly pos: number;
  readonly size: number;
  readonly folios: MemfdV0FolioTable;
  /** Per folio: the bytes written at its first page and at its last page. */
  readonly heads: Uint8Array[];
  readonly tails: Uint8Array[];
}

/**
 * A random memfd: `pages` pages (size with a random tail), holes with probability `holes`,
 * folio orders from `orders` where aligned and fitting, random flags, random bytes at the
 * head and tail page of each folio (the pages between stay zero).
 */
export function randomMemfd(machine: Machine, rng: Prng, pages: number, holes: number, orders: readonly number[]): PlainMemfd {
  const size = pages === 0 ? 0 : (pages - 1) * PAGE_SIZE + 1 + rng.int(PAGE_SIZE);
  const folios = new MemfdV0FolioTable();
  const heads: Uint8Array[] = [];
  const tails: Uint8Array[] = [];
  for (let index = 0; index < pages; ) {
    if (rng.chance(holes)) {
      index += 1 + rng.int(8);
      continue;
    }
    let order = rng.pick(orders);
    while (order > 0 && (index % 2 ** order !== 0 || index + 2 ** order > pages)) order--;
    const phys = machine.kho.allocFolio(order);
    const head = rng.bytes(64);
    const tail = rng.bytes(64);
    machine.memory.write(phys, head);
    machine.memory.write(phys + (2 ** order - 1) * PAGE_SIZE + PAGE_SIZE - 64, tail);
    folios.push(index, phys / PAGE_SIZE, rng.int(4), order);
    heads.push(head);
    tails.push(tail);
    index += 2 ** order;
  }
  return { pos: rng.int(2 ** 40), size, folios, heads, tails };
}

/** Read back what {@link randomMemfd} wrote, from folio `i` at `pfn` in `machine`. */
export function folioBytes(machine: Machine, pfn: number, order: number): { head: Uint8Array; tail: Uint8Array } {
  const phys = pfn * PAGE_SIZE;
  return { head: machine.memory.read(phys, 64), tail: machine.memory.read(phys + (2 ** order - 1) * PAGE_SIZE + PAGE_SIZE - 64, 64) };
}
