/**
 * File-Lifecycle-Bound objects at run time (luo_flb.c): one outgoing and one incoming state
 * per FLB per kernel, reference counted by the files of the handlers that depend on it.
 *
 * Outgoing: the first dependent file's PRESERVE_FD calls the FLB's `preserve` (count 1),
 * later ones only count; closing a session puts a reference per file (in reverse
 * registration order) and the last put calls `unpreserve`. At kexec every FLB with a count
 * is written to the FLB page: `{name, data, count}` in global registration order.
 *
 * Incoming: nothing happens until a handler asks (`getIncoming`): then the FLB is looked up
 * by exact name in the previous kernel's page, its count set from the record and its
 * `retrieve` called once (status kept: a failure is returned again, as for files). Each
 * finished dependent file puts a reference; the last put calls `finish`. A put on a count
 * already 0 is the kernel's refcount underflow warning: logged, nothing else happens.
 * Errors: finished `ENODATA`, no FLB page `ENODATA`, no such record `ENOENT`.
 */
import { ERRNO, FormatError, KernelError, type Machine } from "@liveupdate/kho";
import { LIVEUPDATE_FLB_COMPAT_LENGTH, LUO_FLB_HEADER_SER_SIZE, LUO_FLB_SER_SIZE } from "./abi.js";
import { utf8Bytes, writeCString } from "./cstring.js";
import { readFlbTable } from "./decode.js";
import type { FileHandler, FlbAccess, FlbOpArgs, LiveUpdateFlb } from "./handler.js";
import type { HandlerRegistry } from "./registry.js";

/** `struct luo_flb_private_state`. */
interface FlbState {
  count: number;
  data: bigint;
  obj: unknown;
  finished: boolean;
  retrieveStatus: number;
  error: Error | undefined;
}

function freshState(): FlbState {
  return { count: 0, data: 0n, obj: undefined, finished: false, retrieveStatus: 0, error: undefined };
}

/** The errno of an error an op threw, when it carries one. */
export function errnoOf(error: unknown): number | undefined {
  if (error instanceof KernelError || error instanceof FormatError) return ERRNO[error.errno];
  return undefined;
}

const U64_MASK = (1n << 64n) - 1n;

/** The FLB states of one kernel. See the module comment. */
export class FlbRuntime implements FlbAccess {
  readonly #machine: Machine;
  readonly #registry: HandlerRegistry;
  readonly #incomingPhys: number;
  readonly #log: (message: string) => void;
  readonly #outgoing = new Map<LiveUpdateFlb, FlbState>();
  readonly #incoming = new Map<LiveUpdateFlb, FlbState>();

  /** `incomingPhys`: the previous kernel's `flbs_pa` (0: none). */
  constructor(machine: Machine, registry: HandlerRegistry, incomingPhys: number, log: (message: string) => void) {
    this.#machine = machine;
    this.#registry = registry;
    this.#incomingPhys = incomingPhys;
    this.#log = log;
  }

  #args(flb: LiveUpdateFlb, data: bigint, obj: unknown): FlbOpArgs {
    return { flb, machine: this.#machine, data, obj };
  }

  #out(flb: LiveUpdateFlb): FlbState {
    let state = this.#outgoing.get(flb);
    if (state === undefined) this.#outgoing.set(flb, (state = freshState()));
    return state;
  }

  #in(flb: LiveUpdateFlb): FlbState {
    let state = this.#incoming.get(flb);
    if (state === undefined) this.#incoming.set(flb, (state = freshState()));
    return state;
  }

  /** The outgoing reference count of `flb` (0: not preserved). */
  outgoingCount(flb: LiveUpdateFlb): number {
    return this.#outgoing.get(flb)?.count ?? 0;
  }

  /** The incoming reference count of `flb`. */
  incomingCount(flb: LiveUpdateFlb): number {
    return this.#incoming.get(flb)?.count ?? 0;
  }

  /**
   * `luo_flb_file_preserve`: take a reference on each FLB of `handler` (preserving it on the
   * first); on a failure put back the ones taken by this call, in reverse, and rethrow.
   */
  filePreserve(handler: FileHandler): void {
    const flbs = this.#registry.flbsOf(handler);
    let i = 0;
    try {
      for (; i < flbs.length; i++) this.#preserveOne(flbs[i]!);
    } catch (error) {
      for (let j = i - 1; j >= 0; j--) this.putOutgoing(flbs[j]!);
      throw error;
    }
  }

  /** `luo_flb_file_unpreserve`: put a reference on each FLB of `handler`, in reverse. */
  fileUnpreserve(handler: FileHandler): void {
    const flbs = this.#registry.flbsOf(handler);
    for (let i = flbs.length - 1; i >= 0; i--) this.putOutgoing(flbs[i]!);
  }

  /** `luo_flb_file_finish`: put an incoming reference on each FLB of `handler`, in reverse. */
  fileFinish(handler: FileHandler): void {
    const flbs = this.#registry.flbsOf(handler);
    for (let i = flbs.length - 1; i >= 0; i--) this.putIncoming(flbs[i]!);
  }

  #preserveOne(flb: LiveUpdateFlb): void {
    const state = this.#out(flb);
    if (state.count > 0) {
      state.count++;
      return;
    }
    const args = this.#args(flb, 0n, undefined);
    flb.preserve(args);
    state.data = BigInt.asUintN(64, args.data);
    state.obj = args.obj;
    state.count = 1;
  }

  /** `liveupdate_flb_get_outgoing`. @throws KernelError `ENOENT` when it holds no object. */
  getOutgoing(flb: LiveUpdateFlb): unknown {
    const state = this.#out(flb);
    if (state.obj === undefined) throw new KernelError("ENOENT", `FLB "${flb.compatible}" has no outgoing object`);
    state.count++;
    return state.obj;
  }

  /** `liveupdate_flb_put_outgoing`. */
  putOutgoing(flb: LiveUpdateFlb): void {
    const state = this.#out(flb);
    if (state.count === 0) {
      this.#log(`WARNING: refcount underflow on outgoing FLB "${flb.compatible}"`);
      return;
    }
    if (--state.count > 0) return;
    const args = this.#args(flb, state.data, state.obj);
    state.data = 0n;
    state.obj = undefined;
    flb.unpreserve(args);
  }

  /**
   * `liveupdate_flb_get_incoming`: retrieve on first use, then take a reference.
   *
   * @throws KernelError `ENODATA` (finished, or no FLB data from the previous kernel),
   *   `ENOENT` (not in the previous kernel's FLB page), the FLB's own retrieve error (kept
   *   and returned again); `FormatError` for a corrupt FLB page.
   */
  getIncoming(flb: LiveUpdateFlb): unknown {
    const state = this.#in(flb);
    if (state.obj === undefined) this.#retrieveOne(flb, state);
    state.count++;
    return state.obj;
  }

  /** `liveupdate_flb_put_incoming`: the last reference finishes the FLB. */
  putIncoming(flb: LiveUpdateFlb): void {
    const state = this.#in(flb);
    if (state.count === 0) {
      this.#log(`WARNING: refcount underflow on incoming FLB "${flb.compatible}"`);
      return;
    }
    if (--state.count > 0) return;
    if (state.retrieveStatus <= 0) {
      try {
        this.#retrieveOne(flb, state);
      } catch (error) {
        this.#log(`WARNING: FLB "${flb.compatible}" could not be retrieved to finish it: ${String(error)}`);
        return;
      }
    }
    const args = this.#args(flb, state.data, state.obj);
    flb.finish(args);
    state.data = 0n;
    state.obj = undefined;
    state.finished = true;
  }

  /** `luo_flb_retrieve_one`. */
  #retrieveOne(flb: LiveUpdateFlb, state: FlbState): void {
    if (state.finished) throw new KernelError("ENODATA", `FLB "${flb.compatible}" is finished`);
    if (state.retrieveStatus < 0) throw state.error ?? new KernelError("EINVAL", `FLB "${flb.compatible}" failed to retrieve`);
    if (state.retrieveStatus > 0) return;
    if (this.#incomingPhys === 0) throw new KernelError("ENODATA", "the previous kernel handed over no FLB data");
    const table = readFlbTable(this.#machine.memory, this.#incomingPhys);
    const name = utf8Bytes(flb.compatible);
    const record = table.entries.find((e) => e.terminated && e.nameBytes.length === name.length && e.nameBytes.every((b, i) => b === name[i]));
    if (record === undefined) throw new KernelError("ENOENT", `FLB "${flb.compatible}" is not in the previous kernel's FLB page`);
    state.data = record.data;
    state.count = Number(record.count > 0x7fffffffn ? 0x7fffffffn : record.count);
    const args = this.#args(flb, state.data, undefined);
    try {
      flb.retrieve(args);
    } catch (error) {
      const errno = errnoOf(error);
      if (errno !== undefined && error instanceof Error) {
        state.retrieveStatus = -errno;
        state.error = error;
      }
      throw error;
    }
    state.obj = args.obj;
    state.retrieveStatus = 1;
  }

  /**
   * `luo_flb_serialize`: write every FLB with outgoing references, in global registration
   * order, into the FLB page at `pagePhys` and set the header's count.
   */
  serialize(pagePhys: number): void {
    const memory = this.#machine.memory;
    const entry = new Uint8Array(LUO_FLB_SER_SIZE);
    const view = new DataView(entry.buffer);
    let i = 0;
    for (const flb of this.#registry.flbs) {
      const state = this.#outgoing.get(flb);
      if (state === undefined || state.count <= 0) continue;
      const at = pagePhys + LUO_FLB_HEADER_SER_SIZE + i * LUO_FLB_SER_SIZE;
      // strscpy into the entry as it is in memory (bytes past the NUL stay).
      memory.readInto(at, entry);
      writeCString(entry, 0, LIVEUPDATE_FLB_COMPAT_LENGTH, utf8Bytes(flb.compatible));
      const data = state.data & U64_MASK;
      view.setUint32(48, Number(data & 0xffffffffn), true);
      view.setUint32(52, Number(data >> 32n), true);
      view.setUint32(56, state.count >>> 0, true);
      view.setUint32(60, Math.floor(state.count / 2 ** 32), true);
      memory.write(at, entry);
      i++;
    }
    memory.writeU64(pagePhys + 8, i);
  }
}
