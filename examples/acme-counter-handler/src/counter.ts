/**
 * The file type of the example: a counter that remembers its last values.
 *
 * A `CounterFile` holds a u64 value, a step (what `increment` adds) and a history ring of
 * `capacity` u64 slots in a folio of the machine's memory (the ring is real memory, so a
 * live update must carry it across the kexec). `increment` adds the step and writes the new
 * value into the ring at `head`.
 */
import { KernelError, PAGE_SIZE, getOrder, type Machine } from "@liveupdate/kho";
import type { LuoFile } from "@liveupdate/luo-core";

/** Most slots a ring may have (64 KiB x 8 bytes = 512 KiB, an order-7 folio). */
export const COUNTER_MAX_CAPACITY = 65536;

/** Bytes of one ring slot (a little-endian u64). */
export const COUNTER_SLOT_BYTES = 8;

const U64_MAX = (1n << 64n) - 1n;

let nextId = 1;

/** The folio order of a ring of `capacity` slots. */
export function ringOrder(capacity: number): number {
  return getOrder(capacity * COUNTER_SLOT_BYTES);
}

/** Options of {@link CounterFile.create}. */
export interface CounterOptions {
  /** Ring slots, 1..65536 (default 16). */
  readonly capacity?: number;
  /** What `increment` adds, 1..2^64-1 (default 1). */
  readonly step?: bigint;
  /** The first value (default 0). */
  readonly start?: bigint;
}

/** The state a handler restores a counter from. */
export interface CounterState {
  readonly value: bigint;
  readonly step: bigint;
  readonly capacity: number;
  readonly head: number;
  readonly count: number;
  /** The ring folio, owned by the caller's machine. */
  readonly ringPhys: number;
}

/** A counter file in one machine. See the module comment. */
export class CounterFile implements LuoFile {
  readonly machine: Machine;
  /** Identity (the handler's `getId`). */
  readonly id: number;
  readonly capacity: number;
  readonly step: bigint;
  /** Physical address of the ring folio. */
  readonly ringPhys: number;
  #value: bigint;
  #head: number;
  #count: number;

  private constructor(machine: Machine, state: CounterState) {
    this.machine = machine;
    this.id = nextId++;
    this.capacity = state.capacity;
    this.step = state.step;
    this.ringPhys = state.ringPhys;
    this.#value = state.value;
    this.#head = state.head;
    this.#count = state.count;
  }

  /**
   * A new counter with its ring allocated in `machine`.
   *
   * @throws KernelError `EINVAL` for a capacity outside 1..65536 or a step outside 1..2^64-1;
   *   `ENOMEM`.
   */
  static create(machine: Machine, options: CounterOptions = {}): CounterFile {
    const capacity = options.capacity ?? 16;
    const step = options.step ?? 1n;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > COUNTER_MAX_CAPACITY) throw new KernelError("EINVAL", `capacity ${capacity} is outside 1..${COUNTER_MAX_CAPACITY}`);
    if (step < 1n || step > U64_MAX) throw new KernelError("EINVAL", `step ${step} is outside 1..2^64-1`);
    const ringPhys = machine.allocator.allocFolio(ringOrder(capacity));
    return new CounterFile(machine, { value: BigInt.asUintN(64, options.start ?? 0n), step, capacity, head: 0, count: 0, ringPhys });
  }

  /** A counter over a ring the caller already owns in `machine` (a handler's retrieve). */
  static restore(machine: Machine, state: CounterState): CounterFile {
    return new CounterFile(machine, state);
  }

  get description(): string {
    return `acme-counter:${this.id}`;
  }

  get value(): bigint {
    return this.#value;
  }

  /** The slot the next increment writes. */
  get head(): number {
    return this.#head;
  }

  /** Slots in use (at most `capacity`). */
  get count(): number {
    return this.#count;
  }

  /** Add the step `times` times (wrapping at 2^64), recording each new value in the ring. */
  increment(times = 1): bigint {
    const slot = new Uint8Array(COUNTER_SLOT_BYTES);
    const view = new DataView(slot.buffer);
    for (let i = 0; i < times; i++) {
      this.#value = BigInt.asUintN(64, this.#value + this.step);
      view.setBigUint64(0, this.#value, true);
      this.machine.memory.write(this.ringPhys + this.#head * COUNTER_SLOT_BYTES, slot);
      this.#head = (this.#head + 1) % this.capacity;
      this.#count = Math.min(this.#count + 1, this.capacity);
    }
    return this.#value;
  }

  /** The remembered values, oldest first. */
  history(): bigint[] {
    const out: bigint[] = [];
    const first = (this.#head - this.#count + this.capacity) % this.capacity;
    const ring = this.machine.memory.read(this.ringPhys, this.capacity * COUNTER_SLOT_BYTES);
    const view = new DataView(ring.buffer);
    for (let i = 0; i < this.#count; i++) out.push(view.getBigUint64(((first + i) % this.capacity) * COUNTER_SLOT_BYTES, true));
    return out;
  }

  /** Bytes of the ring folio. */
  get ringBytes(): number {
    return PAGE_SIZE * 2 ** ringOrder(this.capacity);
  }
}
