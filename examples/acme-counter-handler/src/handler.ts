/**
 * The handlers: one class, one instance per released format.
 *
 * ```text
 * outgoing kernel
 *   counter --preserve--> PRESERVED   record page allocated and preserved (kho_alloc_preserve),
 *                                     ring folio preserved with its order, record written;
 *                                     serializedData = record address. v1 refuses a step != 1
 *                                     (canPreserve false: v2 takes it).
 *   PRESERVED --freeze (kexec)--> the record's value/head/count refreshed (the counter may
 *                                 keep counting until the kexec: the ring is preserved memory)
 *   PRESERVED --unpreserve--> counter   both runs unpreserved, the record page freed
 * next kernel
 *   RECORD --retrieve--> a CounterFile over the same ring. Everything is validated before
 *                        anything is restored, so a failed retrieve changes nothing:
 *                        EINVAL (record address not a preserved page, reserved != 0, capacity,
 *                        head, count or step out of range, ring inside the record page),
 *                        EIO (ring not preserved with the order its capacity needs).
 *   RECORD --finish, never retrieved--> ring and record restored and freed, best effort
 * ```
 *
 * Why two formats and one class: a compatible string is a format. A kernel dispatches a
 * record only to the handler registered with exactly its compatible, so this package keeps
 * shipping the v1 handler (it writes and reads `acme-counter-v1` exactly as 1.x did) next to
 * v2: a next kernel that registers both reads records from a 1.x kernel and a 2.x kernel.
 * `test/fixtures.test.ts` proves it on the frozen fixtures of both formats.
 */
import { FormatError, KernelError, PAGE_SIZE, type Machine } from "@liveupdate/kho";
import type { FileHandler, FileOpArgs, LuoFile } from "@liveupdate/luo-core";
import {
  ACME_COUNTER_COMPATIBLE,
  ACME_COUNTER_SER_SIZE,
  SER_CAPACITY_OFFSET,
  SER_COUNT_OFFSET,
  SER_HEAD_OFFSET,
  SER_RESERVED_OFFSET,
  SER_RING_OFFSET,
  SER_STEP_OFFSET,
  decodeAcmeCounterSer,
  encodeAcmeCounterSer,
  type AcmeCounterVersion,
} from "./abi.js";
import { COUNTER_MAX_CAPACITY, CounterFile, ringOrder, type CounterState } from "./counter.js";

function counterOf(file: LuoFile | undefined): CounterFile {
  if (!(file instanceof CounterFile)) throw new KernelError("EINVAL", `${file?.description ?? "no file"} is not an acme counter`);
  return file;
}

/** `serializedData` as a page address, or undefined. */
function pageAddress(data: bigint): number | undefined {
  if (data <= 0n || data > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const phys = Number(data);
  return phys % PAGE_SIZE === 0 ? phys : undefined;
}

/** A validated record: what retrieve restores. */
interface ValidRecord {
  readonly serPhys: number;
  readonly state: CounterState;
  readonly order: number;
}

/** The acme counter handler of one format. {@link acmeCounterV1} and {@link acmeCounterV2} are ready instances. */
export class AcmeCounterHandler implements FileHandler {
  readonly compatible: string;
  /** The format this instance writes and reads. */
  readonly version: AcmeCounterVersion;

  constructor(version: AcmeCounterVersion) {
    this.version = version;
    this.compatible = ACME_COUNTER_COMPATIBLE[version];
  }

  get #size(): number {
    return ACME_COUNTER_SER_SIZE[this.version];
  }

  /** Counters only; v1 cannot carry a step other than 1. */
  canPreserve(file: LuoFile): boolean {
    return file instanceof CounterFile && (this.version === 2 || file.step === 1n);
  }

  getId(file: LuoFile): number {
    return counterOf(file).id;
  }

  preserve(args: FileOpArgs): void {
    const file = counterOf(args.file);
    if (file.machine !== args.machine) throw new KernelError("EINVAL", `${file.description} belongs to another kernel`);
    if (!this.canPreserve(file)) throw new KernelError("EOPNOTSUPP", `${this.compatible} cannot carry step ${file.step}`);
    const kho = args.machine.kho;
    const serPhys = kho.allocPreserve(this.#size);
    try {
      kho.preserveFolio(file.ringPhys, ringOrder(file.capacity));
    } catch (error) {
      kho.unpreserveFree(serPhys, this.#size);
      throw error;
    }
    this.#write(args.machine, serPhys, file);
    args.serializedData = BigInt(serPhys);
  }

  /** The counter may have moved since preserve: write its final state. */
  freeze(args: FileOpArgs): void {
    const serPhys = pageAddress(args.serializedData);
    if (serPhys === undefined) throw new KernelError("EINVAL", "freeze of a counter that was not preserved");
    this.#write(args.machine, serPhys, counterOf(args.file));
  }

  unfreeze(): void {
    // intentionally empty: freeze only rewrote the record
  }

  unpreserve(args: FileOpArgs): void {
    const serPhys = pageAddress(args.serializedData);
    const file = counterOf(args.file);
    if (serPhys === undefined) return;
    args.machine.kho.unpreserveFolio(file.ringPhys, ringOrder(file.capacity));
    args.machine.kho.unpreserveFree(serPhys, this.#size);
  }

  retrieve(args: FileOpArgs): void {
    const machine = args.machine;
    const { serPhys, state } = this.#validate(machine, args.serializedData);
    // Commit: nothing below can fail on the record's account.
    machine.incoming.restoreFolio(state.ringPhys);
    machine.incoming.restoreFree(serPhys);
    args.file = CounterFile.restore(machine, state);
  }

  /** A file never retrieved (or whose retrieve failed): give its pages back, best effort. */
  finish(args: FileOpArgs): void {
    if (args.retrieveStatus > 0) return;
    let record: ValidRecord;
    try {
      record = this.#validate(args.machine, args.serializedData);
    } catch {
      return; // nothing of ours can be trusted there
    }
    const incoming = args.machine.incoming;
    incoming.restoreFolio(record.state.ringPhys);
    args.machine.allocator.freeFolio(record.state.ringPhys, record.order);
    incoming.restoreFree(record.serPhys);
  }

  #write(machine: Machine, serPhys: number, file: CounterFile): void {
    const record = encodeAcmeCounterSer(this.version, {
      value: file.value,
      ringPa: BigInt(file.ringPhys),
      capacity: file.capacity,
      head: file.head,
      count: file.count,
      reserved: 0,
      step: file.step,
    });
    machine.memory.write(serPhys, record);
  }

  #fail(at: number, rule: string, message: string, errno: "EINVAL" | "EIO" = "EINVAL"): never {
    throw new FormatError(this.compatible, at, "phys", rule, message, errno);
  }

  /** Every rule of the record, checked without consuming anything. */
  #validate(machine: Machine, data: bigint): ValidRecord {
    const serPhys = pageAddress(data);
    if (serPhys === undefined || !machine.memory.contains(serPhys, PAGE_SIZE) || machine.incoming.stampOrderOf(serPhys) !== 0) {
      this.#fail(serPhys ?? 0, "record-not-preserved", `serializedData 0x${data.toString(16)} is not a preserved record page`);
    }
    const ser = decodeAcmeCounterSer(this.version, machine.memory.read(serPhys, this.#size));
    if (ser.reserved !== 0) this.#fail(serPhys + SER_RESERVED_OFFSET, "reserved", `reserved is 0x${ser.reserved.toString(16)}, not 0`);
    if (ser.capacity < 1 || ser.capacity > COUNTER_MAX_CAPACITY) this.#fail(serPhys + SER_CAPACITY_OFFSET, "capacity", `capacity ${ser.capacity} is outside 1..${COUNTER_MAX_CAPACITY}`);
    if (ser.head >= ser.capacity) this.#fail(serPhys + SER_HEAD_OFFSET, "head", `head ${ser.head} is not below capacity ${ser.capacity}`);
    if (ser.count > ser.capacity) this.#fail(serPhys + SER_COUNT_OFFSET, "count", `count ${ser.count} is above capacity ${ser.capacity}`);
    if (ser.step === 0n) this.#fail(serPhys + SER_STEP_OFFSET, "step", "step is 0");
    const order = ringOrder(ser.capacity);
    const ringPhys = ser.ringPa <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ser.ringPa) : -1;
    const ringBytes = PAGE_SIZE * 2 ** order;
    if (ringPhys <= 0 || ringPhys % ringBytes !== 0 || !machine.memory.contains(ringPhys, ringBytes)) {
      this.#fail(serPhys + SER_RING_OFFSET, "ring-address", `ring_pa 0x${ser.ringPa.toString(16)} is not an order-${order} folio of memory`);
    }
    if (serPhys >= ringPhys && serPhys < ringPhys + ringBytes) this.#fail(serPhys + SER_RING_OFFSET, "ring-overlaps-record", "the ring overlaps the record page");
    if (machine.incoming.stampOrderOf(ringPhys) !== order) {
      this.#fail(serPhys + SER_RING_OFFSET, "ring-not-preserved", `the ring at 0x${ringPhys.toString(16)} is not preserved as an order-${order} folio`, "EIO");
    }
    return { serPhys, order, state: { value: ser.value, step: ser.step, capacity: ser.capacity, head: ser.head, count: ser.count, ringPhys } };
  }
}

/** The `acme-counter-v1` handler (the 1.x format, still read and written exactly as 1.x did). */
export const acmeCounterV1: AcmeCounterHandler = new AcmeCounterHandler(1);

/** The `acme-counter-v2` handler (adds `step`). */
export const acmeCounterV2: AcmeCounterHandler = new AcmeCounterHandler(2);
