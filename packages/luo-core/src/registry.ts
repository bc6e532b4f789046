/**
 * The handler registry of one kernel: `liveupdate_register_file_handler` /
 * `liveupdate_unregister_file_handler` (luo_file.c) and `liveupdate_register_flb` /
 * `liveupdate_unregister_flb` (luo_flb.c).
 *
 * - Handlers are kept in registration order: PRESERVE_FD asks each `canPreserve` in that
 *   order and the first that says yes takes the file. The next kernel finds a record's
 *   handler by exact compatible (`strcmp`).
 * - `register`: a missing required op (`preserve`, `unpreserve`, `retrieve`, `finish`,
 *   `canPreserve`) is `EINVAL`; a compatible already registered `EEXIST`. The kernel's field is
 *   `char compatible[48]`, so a longer string cannot even be built there; the model refuses
 *   one that is empty, longer than 47 UTF-8 bytes or holds a NUL with `EINVAL`.
 * - `unregister`: the kernel pins a handler's module while any file uses it; the model says
 *   `EBUSY` then. Unregistering drops the handler's FLB links first.
 * - `registerFlb(handler, flb)`: a missing FLB op or a handler not registered here `EINVAL`;
 *   the same FLB twice for a handler `EEXIST`; on an FLB's first registration, 63 FLBs
 *   already (`LUO_FLB_MAX`) `ENOSPC` and a compatible already taken by another FLB `EEXIST`.
 *   An FLB linked to several handlers is one global FLB with several users.
 *
 * A registry belongs to one kernel once a `LiveUpdate` is attached with it.
 */
import { KernelError } from "@liveupdate/kho";
import { LIVEUPDATE_FLB_COMPAT_LENGTH, LIVEUPDATE_HNDL_COMPAT_LENGTH, LUO_FLB_MAX } from "./abi.js";
import { bytesKey, strnlen, utf8Bytes } from "./cstring.js";
import type { FileHandler, LiveUpdateFlb, LuoFile } from "./handler.js";

const REQUIRED_FILE_OPS = ["preserve", "unpreserve", "retrieve", "finish", "canPreserve"] as const;
const REQUIRED_FLB_OPS = ["preserve", "unpreserve", "retrieve", "finish"] as const;

/** What the kernel owning a registry tells it (whether a handler has live files). */
export interface RegistryOwner {
  handlerInUse(handler: FileHandler): boolean;
}

let bindOwner: (registry: HandlerRegistry, owner: RegistryOwner) => void;

/** The key (bytes) of a compatible string, or `EINVAL` when it cannot be one. */
function compatibleKey(compatible: unknown, field: number, what: string): string {
  if (typeof compatible !== "string") throw new KernelError("EINVAL", `${what} compatible is not a string`);
  const bytes = utf8Bytes(compatible);
  if (bytes.length === 0 || bytes.length > field - 1 || strnlen(bytes, 0, bytes.length) !== bytes.length) {
    throw new KernelError("EINVAL", `${what} compatible "${compatible}" must be 1..${field - 1} bytes without NUL`);
  }
  return bytesKey(bytes);
}

/** A compatible for messages, whatever the caller put there. */
function shown(compatible: unknown): string {
  return typeof compatible === "string" ? compatible : typeof compatible;
}

function hasOps(obj: object, ops: readonly string[]): string | undefined {
  const record = obj as Record<string, unknown>;
  return ops.find((op) => typeof record[op] !== "function");
}

/** The file handlers and FLBs of one kernel. See the module comment. */
export class HandlerRegistry {
  readonly #handlers: FileHandler[] = [];
  readonly #byKey = new Map<string, FileHandler>();
  readonly #keyOf = new Map<FileHandler, string>();
  /** Each handler's FLB list (`fh->flb_list`), in registration order. */
  readonly #links = new Map<FileHandler, LiveUpdateFlb[]>();
  /** The global FLB list (`luo_flb_global.list`) and each FLB's number of users. */
  readonly #flbs: LiveUpdateFlb[] = [];
  readonly #flbUsers = new Map<LiveUpdateFlb, number>();
  #owner: RegistryOwner | undefined;

  static {
    bindOwner = (registry, owner) => {
      if (registry.#owner !== undefined) throw new KernelError("EBUSY", "this registry already belongs to a kernel");
      registry.#owner = owner;
    };
  }

  /** A registry with `handlers` registered in order (and each one's `flbs`). */
  constructor(handlers: Iterable<FileHandler> = []) {
    for (const handler of handlers) this.register(handler);
  }

  /** The registered handlers, in registration order. */
  get handlers(): readonly FileHandler[] {
    return this.#handlers;
  }

  /** The registered FLBs, in the order of their first registration. */
  get flbs(): readonly LiveUpdateFlb[] {
    return this.#flbs;
  }

  /** Whether this registry belongs to a kernel. */
  get bound(): boolean {
    return this.#owner !== undefined;
  }

  /**
   * `liveupdate_register_file_handler`, then `liveupdate_register_flb` for each of the
   * handler's `flbs` (if one fails, the handler is unregistered again).
   *
   * @throws KernelError `EINVAL` (missing op, bad compatible), `EEXIST` (compatible taken, or
   *   the same handler again), and the FLB registration's errors.
   */
  register(handler: FileHandler): void {
    const missing = hasOps(handler, REQUIRED_FILE_OPS);
    if (missing !== undefined) throw new KernelError("EINVAL", `handler "${shown(handler.compatible)}" has no ${missing} op`);
    const key = compatibleKey(handler.compatible, LIVEUPDATE_HNDL_COMPAT_LENGTH, "handler");
    if (this.#byKey.has(key) || this.#keyOf.has(handler)) {
      throw new KernelError("EEXIST", `a handler with compatible "${handler.compatible}" is already registered`);
    }
    this.#handlers.push(handler);
    this.#byKey.set(key, handler);
    this.#keyOf.set(handler, key);
    this.#links.set(handler, []);
    const flbs = handler.flbs ?? [];
    try {
      for (const flb of flbs) this.registerFlb(handler, flb);
    } catch (error) {
      this.unregister(handler);
      throw error;
    }
  }

  /**
   * `liveupdate_unregister_file_handler`: drop the handler's FLB links, then the handler.
   *
   * @throws KernelError `ENOENT` when it is not registered here; `EBUSY` while files of this
   *   kernel use it (the kernel holds its module).
   */
  unregister(handler: FileHandler): void {
    const key = this.#keyOf.get(handler);
    if (key === undefined) throw new KernelError("ENOENT", `handler "${shown(handler.compatible)}" is not registered`);
    if (this.#owner?.handlerInUse(handler) === true) {
      throw new KernelError("EBUSY", `handler "${handler.compatible}" has preserved or incoming files`);
    }
    for (const flb of [...(this.#links.get(handler) ?? [])]) this.unregisterFlb(handler, flb);
    this.#handlers.splice(this.#handlers.indexOf(handler), 1);
    this.#byKey.delete(key);
    this.#keyOf.delete(handler);
    this.#links.delete(handler);
  }

  /** Whether `handler` is registered here. */
  has(handler: FileHandler): boolean {
    return this.#keyOf.has(handler);
  }

  /**
   * The handler whose compatible is exactly `compatible` (a string, or the bytes of a record
   * up to their first NUL), as the next kernel's `strcmp` finds it.
   */
  find(compatible: string | Uint8Array): FileHandler | undefined {
    const key = typeof compatible === "string" ? bytesKey(utf8Bytes(compatible)) : bytesKey(compatible, 0, strnlen(compatible, 0, compatible.length));
    return this.#byKey.get(key);
  }

  /** The handler of a compatible given as a key (bytes as chars). */
  findByKey(key: string): FileHandler | undefined {
    return this.#byKey.get(key);
  }

  /** The compatible of a registered handler as a key (bytes as chars). */
  keyOf(handler: FileHandler): string | undefined {
    return this.#keyOf.get(handler);
  }

  /** The first handler, in registration order, whose `canPreserve(file)` is true. */
  forFile(file: LuoFile): FileHandler | undefined {
    for (const handler of this.#handlers) if (handler.canPreserve(file)) return handler;
    return undefined;
  }

  /** The FLBs `handler` depends on, in registration order. */
  flbsOf(handler: FileHandler): readonly LiveUpdateFlb[] {
    return this.#links.get(handler) ?? [];
  }

  /**
   * `liveupdate_register_flb(handler, flb)`. See the module comment.
   *
   * @throws KernelError `EINVAL`, `EEXIST`, `ENOSPC`.
   */
  registerFlb(handler: FileHandler, flb: LiveUpdateFlb): void {
    const missing = hasOps(flb, REQUIRED_FLB_OPS);
    if (missing !== undefined) throw new KernelError("EINVAL", `FLB "${shown(flb.compatible)}" has no ${missing} op`);
    const key = compatibleKey(flb.compatible, LIVEUPDATE_FLB_COMPAT_LENGTH, "FLB");
    const links = this.#links.get(handler);
    if (links === undefined) throw new KernelError("EINVAL", `handler "${shown(handler.compatible)}" is not registered`);
    if (links.includes(flb)) throw new KernelError("EEXIST", `FLB "${flb.compatible}" is already registered for "${handler.compatible}"`);
    const users = this.#flbUsers.get(flb) ?? 0;
    if (users === 0) {
      if (this.#flbs.length === LUO_FLB_MAX) throw new KernelError("ENOSPC", `at most ${LUO_FLB_MAX} FLBs can be registered`);
      if (this.#flbs.some((other) => bytesKey(utf8Bytes(other.compatible)) === key)) {
        throw new KernelError("EEXIST", `an FLB with compatible "${flb.compatible}" is already registered`);
      }
      this.#flbs.push(flb);
    }
    this.#flbUsers.set(flb, users + 1);
    links.push(flb);
  }

  /**
   * `liveupdate_unregister_flb`: unlink `flb` from `handler`; the last user removes it from
   * the global list. Returns false (the kernel warns) when they were not linked.
   */
  unregisterFlb(handler: FileHandler, flb: LiveUpdateFlb): boolean {
    const links = this.#links.get(handler);
    const i = links?.indexOf(flb) ?? -1;
    if (links === undefined || i < 0) return false;
    links.splice(i, 1);
    const users = (this.#flbUsers.get(flb) ?? 1) - 1;
    if (users === 0) {
      this.#flbUsers.delete(flb);
      this.#flbs.splice(this.#flbs.indexOf(flb), 1);
    } else {
      this.#flbUsers.set(flb, users);
    }
    return true;
  }
}

/** Make `owner` the kernel of `registry` (once). Not part of the public API. */
export function bindRegistry(registry: HandlerRegistry, owner: RegistryOwner): void {
  bindOwner(registry, owner);
}

/** What a target registry for a pre-flight can be given as. */
export type RegistryLike = HandlerRegistry | readonly (FileHandler | string)[];

/** The set of compatible keys a registry-like accepts. */
export function compatibleKeysOf(target: RegistryLike): Set<string> {
  const keys = new Set<string>();
  const list = target instanceof HandlerRegistry ? target.handlers : target;
  for (const item of list) keys.add(bytesKey(utf8Bytes(typeof item === "string" ? item : item.compatible)));
  return keys;
}
