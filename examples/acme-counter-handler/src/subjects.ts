/**
 * The example's handlers as workload subjects: how to make counters for a seed and what must
 * survive the live update. The shape is `@liveupdate/handler-testkit`'s `HandlerSubject`
 * (declared here from the public kho / luo-core types, so the package does not depend on the
 * kit), and `luo matrix --handler` runs its cells for these handlers with them: the named
 * export {@link matrixSubjects}.
 */
import type { Machine } from "@liveupdate/kho";
import type { FileHandler, LuoFile } from "@liveupdate/luo-core";
import { CounterFile } from "./counter.js";
import { acmeCounterV1, acmeCounterV2 } from "./handler.js";

/** What must survive a live update of a counter (JSON; bigints as decimal strings). A type, not an interface, so it is a testkit `JsonValue`. */
export type CounterSnapshot = {
  readonly value: string;
  readonly step: string;
  readonly capacity: number;
  readonly head: number;
  readonly count: number;
  readonly history: readonly string[];
};

/** A handler, how to make files it takes for a seed, and their snapshot (a handler-testkit `HandlerSubject`). */
export interface CounterSubject {
  /** The handler (the same object every time). */
  readonly handler: () => FileHandler;
  /** Handlers a kernel registers after it (the readers of older formats). */
  readonly companions?: () => readonly FileHandler[];
  /** A counter the handler takes, different for different seeds. */
  makeFile(machine: Machine, seed: number): LuoFile;
  /** Everything that must be the same after the live update. */
  snapshot(file: LuoFile): CounterSnapshot;
}

function counterOf(file: LuoFile): CounterFile {
  if (!(file instanceof CounterFile)) throw new Error(`${file.description} is not an acme counter`);
  return file;
}

/** Everything a counter must keep: value, step, ring geometry and every remembered value. */
export function counterSnapshot(file: LuoFile): CounterSnapshot {
  const c = counterOf(file);
  return { value: c.value.toString(), step: c.step.toString(), capacity: c.capacity, head: c.head, count: c.count, history: c.history().map(String) };
}

/** Counters of varied capacity (orders 0..2), start and fill, with a step when `withStep`. */
function makeCounter(machine: Machine, seed: number, withStep: boolean): CounterFile {
  const capacity = 1 + ((seed * 389) % 1500);
  const c = CounterFile.create(machine, { capacity, start: BigInt(seed) * 1_000_003n, step: withStep ? BigInt(1 + (seed % 7)) : 1n });
  c.increment((seed * 13) % (2 * capacity + 3));
  return c;
}

/** `acme-counter-v1`. */
export const v1Subject: CounterSubject = {
  handler: () => acmeCounterV1,
  makeFile: (machine, seed) => makeCounter(machine, seed, false),
  snapshot: counterSnapshot,
};

/** `acme-counter-v2`, with the v1 reader registered after it (as the package ships them). */
export const v2Subject: CounterSubject = {
  handler: () => acmeCounterV2,
  companions: () => [acmeCounterV1],
  makeFile: (machine, seed) => makeCounter(machine, seed, true),
  snapshot: counterSnapshot,
};

/** The workload `luo matrix --handler` uses for this package's handlers (instead of memfds). */
export const matrixSubjects: readonly CounterSubject[] = [v1Subject, v2Subject];
