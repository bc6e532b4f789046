/**
 * The top-level API: a kernel with LUO, its registry and `/dev/liveupdate`.
 *
 * ```ts
 * const lu = LiveUpdate.boot({ memory: "8 GiB", handlers: [memfdV1, memfdV2] });
 * const dev = lu.open();
 * const s = dev.createSession("vm-42");
 * s.preserveFd(file, 0x1234n);
 * lu.preflight([memfdV2]);                              // [] when memfdV2 can take every file
 * const next = lu.kexec({ handlers: [memfdV2] });        // new kernel, new registry
 * const s2 = next.open().retrieveSession("vm-42");
 * const g = s2.retrieveFd(0x1234n);                     // dispatched on the record's compatible
 * s2.finish();
 * ```
 *
 * Decisions:
 * - A `LiveUpdate` is one kernel's LUO: `LiveUpdate.boot` cold-boots a `Machine` and attaches
 *   one; `LiveUpdate.attach(machine)` attaches one to a machine booted elsewhere (one per
 *   machine, `EBUSY` otherwise); `lu.kexec({handlers})` kexecs the machine (LUO serializes in
 *   its before-kexec hook) and attaches a new LUO with a NEW registry to the next machine.
 *   A plain `machine.kexec()` serializes too; attach to the next machine yourself.
 * - The registry is per kernel: give handler objects (a fresh `HandlerRegistry` is made) or
 *   a `HandlerRegistry` not used by another kernel. Register more before the first `open()`
 *   (as modules load before userspace opens the device); after it the dispatch is decided.
 * - `lu.fds` is the kernel's fd table (device, sessions, files) for the ioctl adapter
 *   (`lu.ioctl`); the object API takes `LuoFile`s or descriptors alike.
 * - A next kernel whose registry lacks a handler fails its first open (`EIO`, sticky) and
 *   consumes nothing of the handover. `detach()` then takes that LUO out of the machine and
 *   `LiveUpdate.attach(machine, {handlers})` runs a fresh one, with the right registry, on
 *   the same, untouched incoming state: the model's second next kernel (kho's `Machine`
 *   cannot boot a second next kernel from one handover).
 */
import { Machine, type MachineBootOptions, type MachineKexecOptions } from "@liveupdate/kho";
import { KernelError } from "@liveupdate/kho";
import { bytesKey, keyText } from "./cstring.js";
import { decodeLuoState, type LuoStateView } from "./decode.js";
import { LiveUpdateDevice, openDeviceHandle, releaseHandle } from "./device.js";
import { FdTable } from "./fd-table.js";
import type { FileHandler, FlbAccess } from "./handler.js";
import { luoIoctl } from "./ioctl.js";
import { LuoCore, type LuoIncomingStatus, type PreflightProblem } from "./lifecycle.js";
import { HandlerRegistry, compatibleKeysOf, type RegistryLike } from "./registry.js";

/** Handlers for a kernel: objects (registered in order) or a registry. */
export type HandlerList = readonly FileHandler[] | HandlerRegistry;

/** Options of {@link LiveUpdate.attach}. */
export interface LiveUpdateOptions {
  /** The kernel's handlers (default: none). */
  readonly handlers?: HandlerList;
}

/** Options of {@link LiveUpdate.boot}: the machine's and the LUO's. */
export interface LiveUpdateBootOptions extends MachineBootOptions, LiveUpdateOptions {}

/** Options of {@link LiveUpdate.kexec}: the next machine's and its LUO's. */
export interface LiveUpdateKexecOptions extends MachineKexecOptions, LiveUpdateOptions {}

/** A session of a kernel, as {@link LiveUpdate.sessions} lists it. */
export interface LuoSessionSummary {
  /** The session's name. */
  readonly name: string;
  /** From the previous kernel. */
  readonly incoming: boolean;
  /** Retrieved (incoming sessions only). */
  readonly retrieved: boolean;
  /** Its files in list order: token, handler compatible, retrieve status (0 / 1 / -errno). */
  readonly files: readonly { readonly token: bigint; readonly compatible: string; readonly retrieveStatus: number }[];
}

const attached = new WeakMap<Machine, LiveUpdate>();

function registryOf(handlers: HandlerList | undefined): HandlerRegistry {
  if (handlers instanceof HandlerRegistry) return handlers;
  return new HandlerRegistry(handlers ?? []);
}

/** One kernel's Live Update Orchestrator. See the module comment. */
export class LiveUpdate {
  /** The kernel (machine boot) this LUO runs in. */
  readonly machine: Machine;
  /** Its handler registry. */
  readonly registry: HandlerRegistry;
  /** Its fd table. */
  readonly fds: FdTable;
  readonly #core: LuoCore;

  private constructor(machine: Machine, registry: HandlerRegistry) {
    this.machine = machine;
    this.registry = registry;
    this.#core = new LuoCore(machine, registry);
    this.fds = new FdTable(releaseHandle);
  }

  /** Cold-boot a machine and attach LUO with `handlers`. */
  static boot(options: LiveUpdateBootOptions): LiveUpdate {
    const { handlers, ...machineOptions } = options;
    return LiveUpdate.attach(Machine.boot(machineOptions), { ...(handlers === undefined ? {} : { handlers }) });
  }

  /**
   * Attach LUO to a booted machine: check the previous kernel's state (boot), set up this
   * kernel's (`"LUO"` sub-tree), hook its kexec.
   *
   * @throws KernelError `EBUSY` when LUO is attached already, or the registry belongs to
   *   another kernel; `EEXIST` when the machine has a `"LUO"` sub-tree from elsewhere.
   */
  static attach(machine: Machine, options: LiveUpdateOptions = {}): LiveUpdate {
    const current = attached.get(machine);
    if (current !== undefined && !current.detached) throw new KernelError("EBUSY", "LUO is already attached to this machine");
    if (machine.retired) throw new KernelError("EBUSY", "this machine has kexec'd into the next kernel");
    const registry = registryOf(options.handlers);
    if (registry.bound) throw new KernelError("EBUSY", "this registry already belongs to a kernel");
    const lu = new LiveUpdate(machine, registry);
    attached.set(machine, lu);
    return lu;
  }

  /** The LUO attached to `machine`, if any. */
  static of(machine: Machine): LiveUpdate | undefined {
    const lu = attached.get(machine);
    return lu === undefined || lu.detached ? undefined : lu;
  }

  /** The previous kernel's state as this kernel found it. */
  get incoming(): LuoIncomingStatus {
    return this.#core.incoming;
  }

  /** This kernel's `liveupdate_num` (the previous kernel's + 1; 1 after a cold boot). */
  get liveupdateNum(): bigint {
    return this.#core.liveupdateNum;
  }

  /** Physical address of this kernel's `luo_ser` (the `"LUO"` sub-tree's blob). */
  get luoPhys(): number {
    return this.#core.luoSerPhys;
  }

  /** Physical address of this kernel's FLB page. */
  get flbPagePhys(): number {
    return this.#core.flbPagePhys;
  }

  /** What the kernel logged (warnings, failures), oldest first. */
  get log(): readonly string[] {
    return this.#core.log;
  }

  /** The FLB accessors of this kernel (`liveupdate_flb_get_*`). */
  get flbs(): FlbAccess {
    return this.#core.flbs;
  }

  /** Whether `/dev/liveupdate` is open. */
  get deviceOpen(): boolean {
    return this.#core.deviceOpen;
  }

  /** Whether the state was serialized for a kexec. */
  get frozen(): boolean {
    return this.#core.frozen;
  }

  /** Whether this LUO was detached. */
  get detached(): boolean {
    return this.#core.detached;
  }

  /** Blocks of the outgoing session chain. */
  get sessionBlockCount(): number {
    return this.#core.sessionBlockCount;
  }

  /**
   * Open `/dev/liveupdate` (the first open deserializes the previous kernel's sessions).
   *
   * @throws KernelError `EBUSY` (open already), `EIO` (the previous kernel's state failed to
   *   deserialize, now or before); the boot error (`FormatError`) when that state is corrupt.
   */
  open(): LiveUpdateDevice {
    return openDeviceHandle({ core: this.#core, fds: this.fds });
  }

  /**
   * Kexec into the next kernel: this LUO freezes and serializes every session (a failure
   * aborts the kexec and is thrown, this kernel unchanged), then the next machine boots with
   * a new LUO whose registry is `options.handlers`.
   *
   * @throws KernelError `EBUSY` (before anything happens) when `options.handlers` is a
   *   registry of another kernel; the freeze error that aborted the kexec.
   */
  kexec(options: LiveUpdateKexecOptions = {}): LiveUpdate {
    const { handlers, ...machineOptions } = options;
    // Check what attach would refuse before the machine is gone.
    if (handlers instanceof HandlerRegistry && handlers.bound) throw new KernelError("EBUSY", "this registry already belongs to a kernel");
    const registry = registryOf(handlers);
    const next = this.machine.kexec(machineOptions);
    return LiveUpdate.attach(next, { handlers: registry });
  }

  /**
   * Pre-flight before a kexec: which outgoing files a next kernel with `target` (a registry,
   * handlers or compatible strings) could not retrieve, and whether the state would be
   * refused as a whole. Empty when the next kernel would take everything.
   */
  preflight(target: RegistryLike): PreflightProblem[] {
    return this.#core.preflight(compatibleKeysOf(target));
  }

  /**
   * What this kernel was handed (non-consuming): the previous kernel's LUO state decoded, or
   * undefined when there is none. Only before the first open (which consumes it).
   *
   * @throws KernelError `EBUSY` after the first successful open; `FormatError` when corrupt.
   */
  inspectIncoming(): LuoStateView | undefined {
    const status = this.#core.incoming;
    if (status.state === "none") return undefined;
    if (status.state === "deserialized") throw new KernelError("EBUSY", "the incoming state was consumed by the first open");
    if (status.state === "corrupt" && status.luoPhys === undefined) throw status.error ?? new KernelError("EINVAL", "corrupt");
    const blob = this.machine.incoming.retrieveSubtree("LUO");
    return decodeLuoState(this.machine.memory, blob.phys, blob.size);
  }

  /** Every session of this kernel: outgoing ones, then incoming ones, each in list order. */
  sessions(): LuoSessionSummary[] {
    const list: LuoSessionSummary[] = [];
    for (const s of [...this.#core.outgoingSessions(), ...this.#core.incomingSessions()]) {
      list.push({
        name: keyText(s.key),
        incoming: s.incoming,
        retrieved: s.retrieved,
        files: s.files.map((f) => ({ token: f.token, compatible: f.handler.compatible, retrieveStatus: f.retrieveStatus })),
      });
    }
    return list;
  }

  /**
   * Take LUO out of this machine (hook, sub-tree, blob). See the module comment.
   *
   * @throws KernelError `EBUSY` while the device is open or sessions exist.
   */
  detach(): void {
    this.#core.detach();
  }

  /**
   * `ioctl(fd, request, arg)` on this kernel's fd table, byte for byte: returns 0 or a
   * negative errno and writes the output fields into `arg`. See `luoIoctl`.
   */
  ioctl(fd: number, request: number, arg: Uint8Array): number {
    return luoIoctl(this, fd, request, arg);
  }
}

/**
 * Pre-flight over decoded state (an image, `decodeLuoState`): the files a kernel with
 * `target` could not retrieve (an unterminated compatible matches nothing).
 */
export function findUnretrievable(state: LuoStateView, target: RegistryLike): PreflightProblem[] {
  const keys = compatibleKeysOf(target);
  const problems: PreflightProblem[] = [];
  for (const s of state.sessions) {
    for (const f of s.files) {
      if (f.compatibleTerminated && keys.has(bytesKey(f.compatibleBytes))) continue;
      problems.push({
        kind: "no-handler",
        session: s.name,
        token: f.token,
        compatible: f.compatible,
        errno: "ENOENT",
        reason: `no handler for "${f.compatible}" in the target registry: the first open fails and /dev/liveupdate returns EIO`,
      });
    }
  }
  return problems;
}
