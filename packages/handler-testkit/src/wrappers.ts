/**
 * The instruments the checks put around a handler, each a {@link FileHandler} that delegates
 * every op to the real one:
 *
 * - {@link recordingHandler}: learns which KHO runs the handler preserved for each file (the
 *   outgoing map before and after its `preserve` and `freeze`) and the `serializedData` it
 *   handed LUO. That is how the kit knows "the handler's pages" without knowing its format.
 * - {@link watchPoisonReads}: records every read, while armed, of a page of the next kernel
 *   that the previous kernel did not preserve (still in the poison background: never
 *   written since the kexec). A retrieve that reads one used memory it does not own.
 */
import { PAGE_SIZE, type PhysicalMemory, type PreservedRun } from "@liveupdate/kho";
import type { FileHandler, FileOpArgs, LuoFile } from "@liveupdate/luo-core";

/** The ops of `inner`, under another compatible, with hooks around some. */
export interface DelegateHooks {
  readonly preserve?: (args: FileOpArgs, op: () => void) => void;
  readonly freeze?: (args: FileOpArgs, op: () => void) => void;
  readonly retrieve?: (args: FileOpArgs, op: () => void) => void;
  readonly finish?: (args: FileOpArgs, op: () => void) => void;
}

/**
 * A handler that delegates every op to `inner` (called with `inner` as `this`), under
 * `compatible`, with `hooks` around preserve, freeze, retrieve and finish. `freeze` is always
 * present (so the hook runs at kexec) and calls `inner.freeze` when it has one.
 */
export function delegateHandler(inner: FileHandler, compatible: string, hooks: DelegateHooks = {}): FileHandler {
  const around = (hook: ((args: FileOpArgs, op: () => void) => void) | undefined, args: FileOpArgs, op: () => void): void => {
    if (hook === undefined) op();
    else hook(args, op);
  };
  const handler: FileHandler = {
    compatible,
    canPreserve: (file) => inner.canPreserve(file),
    getId: (file) => inner.getId(file),
    preserve: (args) => { around(hooks.preserve, args, () => { inner.preserve(args); }); },
    unpreserve: (args) => { inner.unpreserve(args); },
    freeze: (args) => { around(hooks.freeze, args, () => { inner.freeze?.(args); }); },
    unfreeze: (args) => { inner.unfreeze?.(args); },
    retrieve: (args) => { around(hooks.retrieve, args, () => { inner.retrieve(args); }); },
    finish: (args) => { around(hooks.finish, args, () => { inner.finish(args); }); },
    ...(inner.canFinish === undefined ? {} : { canFinish: (args: FileOpArgs) => inner.canFinish?.(args) ?? true }),
    ...(inner.flbs === undefined ? {} : { flbs: inner.flbs }),
  };
  return handler;
}

/** Key of a run for set membership. */
export function runKey(run: PreservedRun): string {
  return `${run.phys}/${run.order}`;
}

/** What {@link recordingHandler} learned about one preserved file. */
export interface RecordedFile {
  /** Runs the handler preserved for it, in address order. */
  runs: PreservedRun[];
  /** `serializedData` after preserve, then after freeze. */
  data: bigint;
}

/** A delegating handler plus what it recorded, per preserved file in preserve order. */
export interface RecordingHandler {
  readonly handler: FileHandler;
  readonly files: RecordedFile[];
}

function runsAdded(before: ReadonlySet<string>, after: readonly PreservedRun[]): PreservedRun[] {
  return after.filter((r) => !before.has(runKey(r)));
}

/**
 * Wrap `inner` so that each preserve and freeze records the runs it added to the outgoing
 * map and the `serializedData` it set. `onFrozen` runs after each file's freeze (the last
 * moment before the kexec hands memory over).
 */
export function recordingHandler(inner: FileHandler, onFrozen?: (file: RecordedFile, args: FileOpArgs) => void): RecordingHandler {
  const files: RecordedFile[] = [];
  // LUO builds fresh args for every op: a file is known by its LuoFile.
  const byFile = new Map<LuoFile, RecordedFile>();
  const diff = (args: FileOpArgs, op: () => void): PreservedRun[] => {
    const before = new Set(args.machine.kho.preservedRuns().map(runKey));
    op();
    return runsAdded(before, args.machine.kho.preservedRuns());
  };
  const handler = delegateHandler(inner, inner.compatible, {
    preserve: (args, op) => {
      const runs = diff(args, op);
      const file: RecordedFile = { runs, data: args.serializedData };
      files.push(file);
      if (args.file !== undefined) byFile.set(args.file, file);
    },
    freeze: (args, op) => {
      const runs = diff(args, op);
      const file = args.file === undefined ? undefined : byFile.get(args.file);
      if (file === undefined) return;
      file.runs = [...file.runs, ...runs].sort((a, b) => a.phys - b.phys);
      file.data = args.serializedData;
      onFrozen?.(file, args);
    },
  });
  return { handler, files };
}

/** The read methods of `PhysicalMemory` the watcher instruments. */
const READ_METHODS = ["readInto", "read", "readPage", "readU32", "readU64", "readU64Number"] as const;

/** A poison-read watcher: arm it around the ops to watch. */
export interface PoisonWatch {
  /** Run `op` with reads watched. */
  armed<T>(op: () => T): T;
  /** Page addresses read while armed that held poison, ascending, each once. */
  readonly pages: () => number[];
  /** Take the instrumentation off the memory. */
  stop(): void;
}

/**
 * Instrument `memory` (a next kernel's): while armed, a read of a page in the poison
 * background (not preserved by the previous kernel and not written since) is recorded.
 * Instance methods shadow the class's for this object only.
 */
export function watchPoisonReads(memory: PhysicalMemory): PoisonWatch {
  const found = new Set<number>();
  let depth = 0;
  const note = (phys: number, len: number): void => {
    if (depth === 0 || memory.background !== "poison" || !memory.contains(phys, Math.max(len, 1))) return;
    const first = Math.floor(phys / PAGE_SIZE);
    const last = Math.floor((phys + Math.max(len, 1) - 1) / PAGE_SIZE);
    for (let pfn = first; pfn <= last; pfn++) if (memory.pageState(pfn) === "background") found.add(pfn * PAGE_SIZE);
  };
  const target = memory as unknown as Record<string, unknown>;
  const proto = Object.getPrototypeOf(memory) as Record<string, (...a: unknown[]) => unknown>;
  for (const name of READ_METHODS) {
    const original = proto[name];
    if (typeof original !== "function") continue;
    target[name] = function (this: PhysicalMemory, ...a: unknown[]): unknown {
      const at = a[0];
      if (typeof at === "number") {
        if (name === "readPage") note(at * PAGE_SIZE, PAGE_SIZE);
        else if (name === "readInto") note(at, a[1] instanceof Uint8Array ? a[1].length : 1);
        else if (name === "read") note(at, typeof a[1] === "number" ? a[1] : 1);
        else note(at, name === "readU32" ? 4 : 8);
      }
      return original.apply(this, a);
    };
  }
  return {
    armed<T>(op: () => T): T {
      depth++;
      try {
        return op();
      } finally {
        depth--;
      }
    },
    pages: () => [...found].sort((a, b) => a - b),
    stop(): void {
      for (const name of READ_METHODS) Reflect.deleteProperty(target, name);
    },
  };
}

/** A handler delegating to `inner` whose retrieve and finish run armed under `watch`. */
export function watchedHandler(inner: FileHandler, watch: () => PoisonWatch | undefined): FileHandler {
  const armed = (_args: FileOpArgs, op: () => void): void => {
    const w = watch();
    if (w === undefined) op();
    else w.armed(op);
  };
  return delegateHandler(inner, inner.compatible, { retrieve: armed, finish: armed });
}
