/**
 * A simulated machine: one boot of a kernel with KHO, and `kexec` into the next one.
 *
 * ```ts
 * const old = Machine.boot({ memory: "8 GiB" });
 * const phys = old.kho.allocPreserve(4096);
 * old.memory.write(phys, bytes);
 * old.kho.addSubtree("my-driver", phys, 4096);
 * const next = old.kexec();                        // only preserved pages survive
 * const { phys: p } = next.incoming.retrieveSubtree("my-driver");
 * next.incoming.restoreFree(p);                   // KHOP stamp checked and cleared
 * ```
 *
 * Boot order mirrors Linux: the incoming side first (`kho_populate` / `kho_memory_init`:
 * check the handed-over FDT, walk the map, stamp preserved runs), then the buddy allocator
 * over everything but scratch and the stamped runs, then `kho_init` (a fresh outgoing map,
 * root FDT and `kexec-metadata` with the count incremented), then the boot hooks.
 *
 * `kexec` runs the before-kexec hooks (where a subsystem such as LUO serializes its state
 * and adds sub-trees), then hands memory over: the next machine's memory keeps only the
 * preserved runs and the map's node pages (`PhysicalMemory.handOver`); every other page
 * reads as poison. The old machine is retired.
 *
 * Hooks are how other packages plug in (luo-core): `onBoot` hooks run on each new boot
 * (given at `boot`, inherited by `kexec` unless it passes its own), `onBeforeKexec`
 * registers a callback for this boot only.
 */
import { MAX_PAGE_ORDER, PAGE_SIZE } from "./abi.js";
import { KernelError } from "./errors.js";
import { KhoIncoming } from "./kho-incoming.js";
import { DEFAULT_RELEASE, KhoOutgoing } from "./kho-outgoing.js";
import { PhysicalMemory, type MemoryRange } from "./memory.js";
import { PageAllocator } from "./page-allocator.js";

/** How much memory, or its exact layout: `"8 GiB"`, a byte count, or page-aligned ranges. */
export type MemorySpec = string | number | readonly MemoryRange[];

/** A callback run on a machine (a boot hook or a before-kexec hook). */
export type MachineHook = (machine: Machine) => void;

/** Options of {@link Machine.boot}. */
export interface MachineBootOptions {
  readonly memory: MemorySpec;
  /**
   * Scratch regions (where the next kernel boots; nothing in them can be preserved): ranges,
   * or one size in bytes placed automatically, or `"none"`. Default: one region of 1/64 of
   * memory (4 MiB..1 GiB, 4 MiB aligned) at the top of the highest range that holds it.
   */
  readonly scratch?: readonly MemoryRange[] | number | "none";
  /** `uname -r` of the kernel (written into `kexec-metadata`). */
  readonly release?: string;
  /** Run on this boot and, unless `kexec` passes its own, on every later boot. */
  readonly onBoot?: MachineHook | readonly MachineHook[];
}

/** Options of {@link Machine.kexec}. */
export interface MachineKexecOptions {
  /** The next kernel's `uname -r` (default: the same as this one). */
  readonly release?: string;
  /** Boot hooks of the next kernel (default: this kernel's). */
  readonly onBoot?: MachineHook | readonly MachineHook[];
}

/** Alignment of scratch regions (`SCRATCH_ALIGNMENT_BYTES`: one MAX_PAGE_ORDER block). */
export const SCRATCH_ALIGNMENT = PAGE_SIZE * 2 ** MAX_PAGE_ORDER;

const UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
  K: 2 ** 10,
  M: 2 ** 20,
  G: 2 ** 30,
  T: 2 ** 40,
};

/** Bytes of a size such as `"8 GiB"`, `"512MiB"`, `"1T"`, `"4096"`. */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m?.[2] === undefined || m[2] === "" ? 1 : UNITS[m[2].toUpperCase()];
  if (m?.[1] === undefined || unit === undefined) throw new KernelError("EINVAL", `"${text}" is not a size (e.g. "8 GiB")`);
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new KernelError("EINVAL", `"${text}" is not a whole number of bytes`);
  return bytes;
}

function memoryRanges(spec: MemorySpec): readonly MemoryRange[] {
  if (typeof spec === "string" || typeof spec === "number") {
    const bytes = typeof spec === "string" ? parseByteSize(spec) : spec;
    return [{ start: 0, size: bytes }];
  }
  return spec;
}

function defaultScratch(memory: PhysicalMemory, size?: number): MemoryRange[] {
  const want = size ?? Math.min(2 ** 30, Math.max(SCRATCH_ALIGNMENT, Math.ceil(memory.totalBytes / 64 / SCRATCH_ALIGNMENT) * SCRATCH_ALIGNMENT));
  for (let i = memory.ranges.length - 1; i >= 0; i--) {
    const r = memory.ranges[i]!;
    const start = Math.floor((r.start + r.size - want) / SCRATCH_ALIGNMENT) * SCRATCH_ALIGNMENT;
    // Leave the range something besides scratch (and never take page 0).
    if (start > r.start && start >= SCRATCH_ALIGNMENT) return [{ start, size: want }];
  }
  return [];
}

function hookList(hooks: MachineHook | readonly MachineHook[] | undefined): readonly MachineHook[] {
  if (hooks === undefined) return [];
  return typeof hooks === "function" ? [hooks] : [...hooks];
}

interface MachineParts {
  readonly memory: PhysicalMemory;
  readonly scratch: readonly MemoryRange[];
  readonly release: string;
  readonly onBoot: readonly MachineHook[];
  readonly handover?: { readonly fdtPhys: number };
}

/** One boot of a simulated machine. See the module comment. */
export class Machine {
  readonly memory: PhysicalMemory;
  readonly allocator: PageAllocator;
  readonly scratch: readonly MemoryRange[];
  /** This kernel's `uname -r`. */
  readonly release: string;
  /** The outgoing KHO state: preserve here for the next kernel. */
  readonly kho: KhoOutgoing;
  /** The incoming KHO state: what the previous kernel preserved ("cold" after `boot`). */
  readonly incoming: KhoIncoming;
  readonly #onBoot: readonly MachineHook[];
  readonly #beforeKexec: MachineHook[] = [];
  #retired = false;

  private constructor(parts: MachineParts) {
    this.memory = parts.memory;
    this.scratch = parts.scratch;
    this.release = parts.release;
    this.#onBoot = parts.onBoot;
    this.incoming = new KhoIncoming(parts.memory, parts.handover);
    this.allocator = new PageAllocator(parts.memory, { scratch: parts.scratch, reserved: this.incoming.reservedRuns() });
    this.incoming.attachAllocator(this.allocator);
    this.kho = new KhoOutgoing(this.allocator, {
      scratch: parts.scratch,
      release: parts.release,
      previousKexecCount: this.incoming.kexecCount,
    });
    for (const hook of this.#onBoot) hook(this);
  }

  /** Cold-boot a machine: zeroed memory, nothing incoming. */
  static boot(options: MachineBootOptions): Machine {
    const memory = new PhysicalMemory(memoryRanges(options.memory));
    const s = options.scratch;
    const scratch = s === "none" ? [] : typeof s === "number" ? defaultScratch(memory, s) : s ?? defaultScratch(memory);
    if (typeof s === "number" && scratch.length === 0) throw new KernelError("ENOMEM", `no room for ${s} bytes of scratch`);
    return new Machine({ memory, scratch, release: options.release ?? DEFAULT_RELEASE, onBoot: hookList(options.onBoot) });
  }

  /** Kexecs behind this boot: 0 after a cold boot (the previous kernel's `kexec_count`). */
  get kexecCount(): number {
    return this.incoming.kexecCount;
  }

  /** Whether this machine has kexec'd (its memory is gone). */
  get retired(): boolean {
    return this.#retired;
  }

  /**
   * Run `hook` just before this machine kexecs (after hooks registered earlier). Returns a
   * function that unregisters it.
   */
  onBeforeKexec(hook: MachineHook): () => void {
    this.#live();
    this.#beforeKexec.push(hook);
    return () => {
      const i = this.#beforeKexec.indexOf(hook);
      if (i >= 0) this.#beforeKexec.splice(i, 1);
    };
  }

  /**
   * Kexec into the next kernel and return its machine. Before-kexec hooks run first; if one
   * throws, the kexec is abandoned and this machine stays as it is (minus what the hooks
   * did). Then memory is handed over and this machine is retired.
   *
   * @throws KernelError `EBUSY` when this machine already kexec'd.
   */
  kexec(options: MachineKexecOptions = {}): Machine {
    this.#live();
    for (const hook of [...this.#beforeKexec]) hook(this);
    const keep = this.kho.handoverRuns();
    const fdtPhys = this.kho.fdtPhys;
    const memory = this.memory.handOver(keep);
    this.#retired = true;
    return new Machine({
      memory,
      scratch: this.scratch,
      release: options.release ?? this.release,
      onBoot: options.onBoot === undefined ? this.#onBoot : hookList(options.onBoot),
      handover: { fdtPhys },
    });
  }

  #live(): void {
    if (this.#retired) throw new KernelError("EBUSY", "this machine has kexec'd into the next kernel");
  }
}
