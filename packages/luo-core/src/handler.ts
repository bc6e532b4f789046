/**
 * The contract between the orchestrator and a file handler: the model of the kernel's
 * `struct liveupdate_file_handler` / `liveupdate_file_ops` (include/linux/liveupdate.h).
 *
 * A handler package (`memfd-luo-v2`, a third party's) implements {@link FileHandler} and is
 * registered in a kernel's registry; the orchestrator calls its ops at the points the
 * kernel does:
 *
 * ```text
 * outgoing kernel                                 next kernel
 *   PRESERVE_FD:  canPreserve -> getId -> preserve   first open: find handler by exact compatible
 *   close session before kexec: unpreserve          RETRIEVE_FD: retrieve (once; status kept)
 *   kexec:        freeze (in order; on failure      FINISH: canFinish (all) -> finish (last to first;
 *                 unfreeze those frozen)                    never-retrieved files too)
 * ```
 *
 * Ops report failure by throwing a `KernelError` carrying the errno the kernel would return.
 */
import type { Machine } from "@liveupdate/kho";

export { LIVEUPDATE_HNDL_COMPAT_LENGTH } from "./abi.js";

/**
 * A file as the orchestrator sees it: the model's `struct file`. Handlers recognise their
 * own files (`instanceof`) in `canPreserve`; the orchestrator never looks inside.
 */
export interface LuoFile {
  /** A short description for messages, e.g. `"memfd:vm-ram"`. */
  readonly description: string;
}

/** `struct liveupdate_file_op_args`: what one op call gets, and what it hands back. */
export interface FileOpArgs {
  /** The handler being called. */
  readonly handler: FileHandler;
  /** The kernel the op runs in: the outgoing one for preserve..freeze, the next one for retrieve..finish. */
  readonly machine: Machine;
  /** The file: given to preserve/unpreserve/freeze/unfreeze; set by `retrieve`. */
  file: LuoFile | undefined;
  /** `luo_file_ser.data`: set by `preserve` (and may be updated by `freeze`); given to the next kernel's ops. */
  serializedData: bigint;
  /** Anything the handler wants to keep between its ops on this file in this kernel. */
  privateData: unknown;
  /** 0 never tried, > 0 retrieved, < 0 the negative errno of a failed retrieve. */
  readonly retrieveStatus: number;
  /**
   * The kernel's FLB accessors (`liveupdate_flb_get_incoming` / `_outgoing` and their puts)
   * for the FLBs of this kernel. Always set by the orchestrator; optional so a handler's own
   * test harness can build args without it.
   */
  readonly flbs?: FlbAccess;
}

/** `liveupdate_file_ops` plus the handler's compatible string. */
export interface FileHandler {
  /** Exact-match key of the serialized records this handler writes and reads (at most 47 bytes). */
  readonly compatible: string;
  /** Required. Whether this handler takes `file` (the first handler, in registration order, that does wins). */
  canPreserve(file: LuoFile): boolean;
  /** Required. Save the file's state; set `serializedData` (and `privateData`). */
  preserve(args: FileOpArgs): void;
  /** Required. Undo `preserve` (the session was closed before any kexec). */
  unpreserve(args: FileOpArgs): void;
  /** Optional. Last step before the kexec (may update `serializedData`). */
  freeze?(args: FileOpArgs): void;
  /** Optional. Undo `freeze` (a later freeze failed, the kexec is aborted). */
  unfreeze?(args: FileOpArgs): void;
  /** Required. New kernel: rebuild the file from `serializedData`; set `file`. */
  retrieve(args: FileOpArgs): void;
  /** Optional. New kernel: whether the file may finish now (all of a session's must). */
  canFinish?(args: FileOpArgs): boolean;
  /** Required. New kernel: release the preserved state (also for files never retrieved). */
  finish(args: FileOpArgs): void;
  /** Identity of the underlying object (memfd: the inode): the same file cannot be preserved twice. */
  getId(file: LuoFile): number | bigint;
  /**
   * FLBs this handler depends on, registered with it (`liveupdate_register_flb`) right after
   * the handler itself, in this order. Optional.
   */
  readonly flbs?: readonly LiveUpdateFlb[];
}

/**
 * `struct liveupdate_flb_op_args`: what one FLB op gets and hands back. `data` is the u64
 * handle that crosses the kexec (`luo_flb_ser.data`), `obj` the live object in this kernel.
 */
export interface FlbOpArgs {
  /** The FLB being called. */
  readonly flb: LiveUpdateFlb;
  /** The kernel the op runs in. */
  readonly machine: Machine;
  /** preserve: set it; unpreserve / retrieve: the handle from preserve. */
  data: bigint;
  /** preserve / retrieve: set it to the live object; unpreserve / finish: the object. */
  obj: unknown;
}

/**
 * A File-Lifecycle-Bound global object (`struct liveupdate_flb` + `liveupdate_flb_ops`): state
 * shared by every file of the handlers that depend on it, preserved with the first such file
 * and released with the last. Ops report failure by throwing a `KernelError`.
 */
export interface LiveUpdateFlb {
  /** `luo_flb_ser.name`: unique among the kernel's FLBs, at most 47 bytes. */
  readonly compatible: string;
  /** The first dependent file is being preserved: save the state, set `data` (and `obj`). */
  preserve(args: FlbOpArgs): void;
  /** The last dependent file was unpreserved before any kexec. */
  unpreserve(args: FlbOpArgs): void;
  /** New kernel, on first use: rebuild `obj` from `data`. */
  retrieve(args: FlbOpArgs): void;
  /** New kernel: the last dependent file finished. */
  finish(args: FlbOpArgs): void;
}

/** The FLB calls a handler makes from inside its ops (`liveupdate_flb_get_*` / `_put_*`). */
export interface FlbAccess {
  /** `liveupdate_flb_get_incoming`: the retrieved object (retrieving it on first use); takes a reference. */
  getIncoming(flb: LiveUpdateFlb): unknown;
  /** `liveupdate_flb_put_incoming`: drop a reference; the last one finishes the FLB. */
  putIncoming(flb: LiveUpdateFlb): void;
  /** `liveupdate_flb_get_outgoing`: the preserved object (`ENOENT` if none); takes a reference. */
  getOutgoing(flb: LiveUpdateFlb): unknown;
  /** `liveupdate_flb_put_outgoing`: drop a reference; the last one unpreserves the FLB. */
  putOutgoing(flb: LiveUpdateFlb): void;
}
