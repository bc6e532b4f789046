/**
 * The Live Update Orchestrator of one kernel: the whole lifecycle state machine of the
 * device, sessions and files (luo_core.c, luo_session.c, luo_file.c of Linux 7.2), with the
 * kernel's checks in the kernel's order and its errnos. Everything else in the package is a
 * view on this (handles, the ioctl adapter, the top-level `LiveUpdate`).
 *
 * ```text
 * KERNEL (one per boot)
 *   incoming   none ............................ no "LUO" sub-tree (cold boot, KHO off): start fresh
 *              corrupt ......................... boot checks failed (blob < 32 bytes, not "luo-v5",
 *                                                corrupt session chain). Linux panics; the model
 *                                                keeps the typed error and every open throws it.
 *              pending --first open--> deserialized   every record valid, every compatible has
 *                 |                                    a handler in THIS kernel's registry: commit
 *                 +------first open--> failed         sticky: this and every later open EIO
 *              (a failed first open commits nothing: no stamp, no byte of the image changes)
 *   outgoing   live --kexec: freeze all ok--> frozen   (the kexec proceeds; ops EBUSY after it)
 *                 +--kexec: a freeze fails--> live     (everything unfrozen; the kexec fails)
 *   device     closed --open--> open --close--> closed  (a second open EBUSY; close keeps sessions)
 *
 * OUTGOING SESSION (CREATE_SESSION in this kernel)
 *   created --PRESERVE_FD--> created (+1 file)
 *      +--close (release)--> gone: files unpreserved last to first
 *      +--kexec------------> serialized: one luo_session_ser, its files in a chain
 * INCOMING SESSION (from the previous kernel)
 *   deserialized --RETRIEVE_SESSION--> retrieved (again: EINVAL) --FINISH--> retrieved, 0 files
 *   retrieved --close--> finish again, then gone; if a can_finish refuses the session stays
 *   (leaked, as in Linux: its name can never be retrieved again)
 *
 * OUTGOING FILE                                     INCOMING FILE
 *   preserved --kexec freeze--> frozen               deserialized (status 0)
 *   frozen --a later freeze fails--> preserved         --RETRIEVE_FD ok--> retrieved (1): the same file again
 *   preserved --session close--> unpreserved           --RETRIEVE_FD fails--> failed (-errno): that error again
 *                                                    any --FINISH (every can_finish true)--> finished
 * ```
 *
 * Checks, in the kernel's order:
 * - create session: name length 1..63 (`EINVAL`), [frozen `EBUSY`], grow the session chain,
 *   duplicate `EEXIST` (the block grown for it stays: 7.2 behaviour, see `preflight`).
 * - retrieve session: [frozen], unknown `ENOENT`, already retrieved `EINVAL`.
 * - preserve: incoming session `EINVAL`, token in use `EEXIST`, grow the file chain, bad fd
 *   `EBADF`, no handler `ENOENT`, file already preserved (by `getId`, any session, also a
 *   retrieved file not yet finished) `EBUSY`, FLB preserve, handler preserve; any failure
 *   shrinks the chain back.
 * - retrieve file: outgoing session `EINVAL`, unknown token `ENOENT`, earlier failure: that
 *   error, earlier success: the same file, else the handler's retrieve.
 * - finish: outgoing session `EINVAL`, any `can_finish` false `EBUSY` (nothing changes),
 *   then every file finished last to first (never-retrieved ones too) and its chain freed.
 *
 * Differences from Linux, all where Linux panics, hangs or trusts the image: boot checks keep
 * a typed error instead of panicking; after a successful freeze, ops fail `EBUSY` where Linux
 * blocks forever on its rwsem; the whole incoming state is validated (records, chains,
 * stamps, handlers) before the first byte is consumed, so the blob, the session blocks and
 * the file blocks are restored at the first successful open (Linux restores the blob at boot
 * and leaks the sessions restored before a failure).
 */
import { FormatError, KernelError, KhoBlockSet, PAGE_SIZE, type Machine } from "@liveupdate/kho";
import {
  LIVEUPDATE_HNDL_COMPAT_LENGTH,
  LIVEUPDATE_SESSION_NAME_LENGTH,
  LUO_ABI_COMPATIBLE,
  LUO_ABI_COMPAT_LEN,
  LUO_FILE_SER_SIZE,
  LUO_FLB_PGCNT,
  LUO_KHO_ENTRY_NAME,
  LUO_SER_FLBS_PA_OFFSET,
  LUO_SER_LIVEUPDATE_NUM_OFFSET,
  LUO_SER_SESSIONS_PA_OFFSET,
  LUO_SER_SIZE,
  LUO_SESSIONS_PER_BLOCK,
  LUO_SESSION_SER_COUNT_OFFSET,
  LUO_SESSION_SER_FILES_OFFSET,
  LUO_SESSION_SER_SIZE,
} from "./abi.js";
import { bytesKey, keyBytes, keyText, strnlen, utf8Bytes, writeCString } from "./cstring.js";
import { readLuoHeader, walkLuoSessions, type LuoHeader } from "./decode.js";
import { FlbRuntime, errnoOf } from "./flb.js";
import type { FileHandler, FileOpArgs, LuoFile } from "./handler.js";
import { bindRegistry, type HandlerRegistry } from "./registry.js";

/** Where the previous kernel's LUO state stands in this kernel. See the module comment. */
export type LuoIncomingState = "none" | "corrupt" | "pending" | "deserialized" | "failed";

/** The incoming side of a kernel's LUO. */
export interface LuoIncomingStatus {
  /** See {@link LuoIncomingState}. */
  readonly state: LuoIncomingState;
  /** The previous kernel's `liveupdate_num` (0 when none). */
  readonly liveupdateNum: bigint;
  /** The previous kernel's `luo_ser` (undefined when none). */
  readonly luoPhys: number | undefined;
  /** The previous kernel's FLB page (never restored: Linux leaves it reserved). */
  readonly flbsPhys: number | undefined;
  /** Why the state is corrupt or failed. */
  readonly error: KernelError | FormatError | undefined;
  /** The errno the kernel's deserialization returned (failed), e.g. `"ENOENT"`. */
  readonly errno: string | undefined;
  /** Where a failed deserialization stopped. */
  readonly failedAt: { readonly session: string; readonly token?: bigint; readonly compatible?: string } | undefined;
}

/** One preserved file (`struct luo_file`). */
export interface FileState {
  readonly handler: FileHandler;
  readonly token: bigint;
  file: LuoFile | undefined;
  serializedData: bigint;
  privateData: unknown;
  retrieveStatus: number;
  retrieveError: Error | undefined;
  /** Its key in the kernel's table of preserved files. */
  idKey: bigint | LuoFile | undefined;
}

/** One session (`struct luo_session` with its `luo_file_set`). */
export interface SessionState {
  /** The name's bytes, one char per byte. */
  readonly key: string;
  /** From the previous kernel. */
  readonly incoming: boolean;
  retrieved: boolean;
  /** Files in list order (preservation order / record order). */
  readonly files: FileState[];
  /** First file of each token (records from a hostile image may repeat a token). */
  readonly byToken: Map<bigint, FileState>;
  /** The file chain: grown as files are preserved (outgoing), restored (incoming). */
  blocks: KhoBlockSet | undefined;
  gone: boolean;
}

/** What a pre-flight found that the next kernel could not retrieve. */
export type PreflightProblem =
  | {
      readonly kind: "no-handler";
      readonly session: string;
      readonly token: bigint;
      readonly compatible: string;
      readonly errno: "ENOENT";
      readonly reason: string;
    }
  | {
      readonly kind: "empty-session-block";
      readonly errno: "EINVAL";
      readonly reason: string;
    };

const U64 = (1n << 64n) - 1n;

function u64Bytes(view: DataView, off: number, value: bigint): void {
  const v = value & U64;
  view.setUint32(off, Number(v & 0xffffffffn), true);
  view.setUint32(off + 4, Number(v >> 32n), true);
}

/** A token given as a number or bigint, checked to be a u64. */
export function toToken(token: bigint | number): bigint {
  if (typeof token === "number") {
    if (!Number.isSafeInteger(token) || token < 0) throw new KernelError("EINVAL", `token ${token} is not a u64`);
    return BigInt(token);
  }
  if (token < 0n || token > U64) throw new KernelError("EINVAL", `token ${token} is not a u64`);
  return token;
}

/** The model of one kernel's LUO. See the module comment. */
export class LuoCore {
  readonly machine: Machine;
  readonly registry: HandlerRegistry;
  readonly flbs: FlbRuntime;
  /** What the kernel would print (warnings, failures). */
  readonly log: string[] = [];

  // ---- outgoing ----
  /** This kernel's `luo_ser` and FLB page (`luo_state_setup`). */
  readonly luoSerPhys: number;
  readonly flbPagePhys: number;
  readonly liveupdateNum: bigint;
  readonly #outgoing = new Map<string, SessionState>();
  readonly #sessionBlocks: KhoBlockSet;
  #frozen = false;
  readonly #unhook: () => void;

  // ---- incoming ----
  #incomingState: LuoIncomingState = "none";
  #incomingHeader: LuoHeader | undefined;
  #incomingError: KernelError | FormatError | undefined;
  #incomingErrno: string | undefined;
  #failedAt: LuoIncomingStatus["failedAt"];
  readonly #incomingNum: bigint;
  readonly #incoming = new Map<string, SessionState>();

  // ---- shared ----
  /** `luo_preserved_files`: every file preserved here or retrieved and not finished, by id. */
  readonly #preserved = new Map<bigint | LuoFile, LuoFile>();
  /** Files per handler (the kernel's module references). */
  readonly #users = new Map<FileHandler, number>();
  #deviceOpen = false;
  #detached = false;

  /**
   * Boot: `luo_early_startup` (check the previous kernel's state, commit nothing) and
   * `luo_state_setup` (this kernel's `luo_ser`, FLB page and `"LUO"` sub-tree), then hook the
   * kexec.
   */
  constructor(machine: Machine, registry: HandlerRegistry) {
    this.machine = machine;
    this.registry = registry;

    // luo_early_startup
    let incomingNum = 0n;
    let flbsIn = 0;
    let blob: { phys: number; size: number } | undefined;
    try {
      blob = machine.incoming.retrieveSubtree(LUO_KHO_ENTRY_NAME);
    } catch (error) {
      if (!(error instanceof KernelError) && !(error instanceof FormatError)) throw error;
      if (error.errno !== "ENOENT") this.#corrupt(error);
    }
    if (blob !== undefined) {
      try {
        this.#incomingHeader = readLuoHeader(machine.memory, blob.phys, blob.size, { stamps: machine.incoming });
        incomingNum = this.#incomingHeader.liveupdateNum;
        flbsIn = this.#incomingHeader.flbsPhys;
        this.#incomingState = "pending";
      } catch (error) {
        if (!(error instanceof FormatError) && !(error instanceof KernelError)) throw error;
        this.#corrupt(error);
      }
    }
    this.#incomingNum = incomingNum;
    this.flbs = new FlbRuntime(machine, registry, flbsIn, (m) => this.log.push(m));

    // luo_state_setup
    const kho = machine.kho;
    this.liveupdateNum = (incomingNum + 1n) & U64;
    this.luoSerPhys = kho.allocPreserve(LUO_SER_SIZE);
    try {
      const ser = new Uint8Array(LUO_SER_SIZE);
      const view = new DataView(ser.buffer);
      writeCString(ser, 0, LUO_ABI_COMPAT_LEN, utf8Bytes(LUO_ABI_COMPATIBLE));
      u64Bytes(view, LUO_SER_LIVEUPDATE_NUM_OFFSET, this.liveupdateNum);
      this.flbPagePhys = kho.allocPreserve(LUO_FLB_PGCNT * PAGE_SIZE);
      u64Bytes(view, LUO_SER_FLBS_PA_OFFSET, BigInt(this.flbPagePhys));
      machine.memory.writeU64(this.flbPagePhys, LUO_FLB_PGCNT);
      machine.memory.write(this.luoSerPhys, ser);
      try {
        kho.addSubtree(LUO_KHO_ENTRY_NAME, this.luoSerPhys, LUO_SER_SIZE);
      } catch (error) {
        kho.unpreserveFree(this.flbPagePhys, LUO_FLB_PGCNT * PAGE_SIZE);
        throw error;
      }
    } catch (error) {
      kho.unpreserveFree(this.luoSerPhys, LUO_SER_SIZE);
      throw error;
    }
    this.#sessionBlocks = KhoBlockSet.create(kho, LUO_SESSION_SER_SIZE);
    this.#unhook = machine.onBeforeKexec(() => {
      this.serialize();
    });
    bindRegistry(registry, { handlerInUse: (h) => (this.#users.get(h) ?? 0) > 0 });
  }

  #corrupt(error: KernelError | FormatError): void {
    this.#incomingState = "corrupt";
    this.#incomingError = error;
    this.#incomingErrno = error.errno;
    this.log.push(`The incoming tree failed to initialize properly [${error.message}]; Linux panics here`);
  }

  // ---- status ---------------------------------------------------------------------

  get incoming(): LuoIncomingStatus {
    return {
      state: this.#incomingState,
      liveupdateNum: this.#incomingNum,
      luoPhys: this.#incomingHeader?.phys,
      flbsPhys: this.#incomingHeader?.flbsPhys,
      error: this.#incomingError,
      errno: this.#incomingErrno,
      failedAt: this.#failedAt,
    };
  }

  /** The incoming blob as validated at boot (undefined unless pending, deserialized or failed). */
  get incomingHeader(): LuoHeader | undefined {
    return this.#incomingHeader;
  }

  get deviceOpen(): boolean {
    return this.#deviceOpen;
  }

  get frozen(): boolean {
    return this.#frozen;
  }

  get detached(): boolean {
    return this.#detached;
  }

  /** Outgoing sessions in list order. */
  outgoingSessions(): SessionState[] {
    return [...this.#outgoing.values()];
  }

  /** Incoming sessions (retrieved or not) in list order. */
  incomingSessions(): SessionState[] {
    return [...this.#incoming.values()];
  }

  /** Blocks of the outgoing session chain. */
  get sessionBlockCount(): number {
    return this.#sessionBlocks.blockCount;
  }

  /** Whether a handler has files here (the kernel's module reference). */
  handlerInUse(handler: FileHandler): boolean {
    return (this.#users.get(handler) ?? 0) > 0;
  }

  /** Whether the file with this id is preserved or retrieved-and-not-finished. */
  isPreserved(handler: FileHandler, file: LuoFile): boolean {
    return this.#preserved.has(this.#idKey(handler, file));
  }

  #live(): void {
    if (this.#detached) throw new KernelError("ENODEV", "LUO was detached from this kernel");
    if (this.machine.retired) throw new KernelError("EBUSY", "this kernel has kexec'd into the next one");
  }

  /** `luo_session_serialize_rwsem`: once serialized for a kexec, Linux blocks every op forever. */
  #unfrozen(): void {
    if (this.#frozen) throw new KernelError("EBUSY", "LUO is frozen for kexec (Linux would block here forever)");
  }

  #args(handler: FileHandler, f: Pick<FileState, "file" | "serializedData" | "privateData" | "retrieveStatus">): FileOpArgs {
    return {
      handler,
      machine: this.machine,
      file: f.file,
      serializedData: f.serializedData,
      privateData: f.privateData,
      retrieveStatus: f.retrieveStatus,
      flbs: this.flbs,
    };
  }

  /** `luo_get_id`: the handler's id of the file, or the file itself without `getId`. */
  #idKey(handler: FileHandler, file: LuoFile): bigint | LuoFile {
    if (typeof handler.getId !== "function") return file;
    const id = handler.getId(file);
    if (typeof id === "bigint") return BigInt.asUintN(64, id);
    if (!Number.isSafeInteger(id)) throw new KernelError("EINVAL", `handler "${handler.compatible}" gave a file id that is not an integer`);
    return BigInt.asUintN(64, BigInt(id));
  }

  #use(handler: FileHandler, delta: number): void {
    const n = (this.#users.get(handler) ?? 0) + delta;
    if (n > 0) this.#users.set(handler, n);
    else this.#users.delete(handler);
  }

  // ---- device ---------------------------------------------------------------------

  /**
   * `luo_open`: exclusive; the first open deserializes the previous kernel's sessions.
   *
   * @throws the boot error (corrupt state; Linux panicked at boot), KernelError `EBUSY`
   *   (already open), `EIO` (deserialization failed, now or at an earlier open).
   */
  openDevice(): void {
    this.#live();
    if (this.#incomingState === "corrupt" && this.#incomingError !== undefined) throw this.#incomingError;
    if (this.#deviceOpen) throw new KernelError("EBUSY", "/dev/liveupdate is already open");
    if (this.#incomingState === "pending") this.#deserialize();
    if (this.#incomingState === "failed") {
      throw new KernelError("EIO", `incoming LUO state failed to deserialize (${this.#incomingErrno ?? "?"}): ${this.#incomingError?.message ?? ""}`);
    }
    this.#deviceOpen = true;
  }

  /** `luo_release`: the sessions stay. */
  closeDevice(): void {
    this.#deviceOpen = false;
  }

  // ---- sessions -------------------------------------------------------------------

  /**
   * `luo_session_create` with the name field as the ioctl gives it (up to 64 bytes).
   *
   * @throws KernelError `EINVAL` (name empty or without NUL in 64 bytes), `EEXIST`,
   *   `ENOSPC` / `ENOMEM` (chain), `EBUSY` (frozen).
   */
  createSession(nameField: Uint8Array): SessionState {
    this.#live();
    const len = strnlen(nameField, 0, LIVEUPDATE_SESSION_NAME_LENGTH);
    if (len === 0 || len > LIVEUPDATE_SESSION_NAME_LENGTH - 1) throw new KernelError("EINVAL", "a session name needs 1..63 bytes and a NUL");
    this.#unfrozen();
    const key = bytesKey(nameField, 0, len);
    this.#sessionBlocks.grow(this.#outgoing.size + 1);
    if (this.#outgoing.has(key)) throw new KernelError("EEXIST", `session "${keyText(key)}" already exists`);
    const session: SessionState = { key, incoming: false, retrieved: false, files: [], byToken: new Map(), blocks: undefined, gone: false };
    this.#outgoing.set(key, session);
    return session;
  }

  /**
   * `luo_session_retrieve` (`strncmp` over the 64-byte field).
   *
   * @throws KernelError `ENOENT` (no such incoming session), `EINVAL` (already retrieved).
   */
  retrieveSession(nameField: Uint8Array): SessionState {
    this.#live();
    this.#unfrozen();
    const len = strnlen(nameField, 0, LIVEUPDATE_SESSION_NAME_LENGTH);
    const session = this.#incoming.get(bytesKey(nameField, 0, len));
    if (session === undefined) throw new KernelError("ENOENT", `no incoming session "${keyText(bytesKey(nameField, 0, len))}"`);
    if (session.retrieved) throw new KernelError("EINVAL", `session "${keyText(session.key)}" was already retrieved`);
    session.retrieved = true;
    return session;
  }

  /**
   * `luo_session_release` (the last close of a session file): an outgoing session unpreserves
   * its files and goes; a retrieved one finishes first and stays if that fails (the error is
   * returned, as `release` returns it; close itself succeeds).
   */
  releaseSession(session: SessionState): KernelError | undefined {
    this.#live();
    this.#unfrozen();
    if (session.gone) return undefined;
    if (session.retrieved) {
      try {
        this.#finishFiles(session);
      } catch (error) {
        if (!(error instanceof KernelError)) throw error;
        this.log.push(`Unable to finish session [${keyText(session.key)}] on release`);
        return error;
      }
      this.#incoming.delete(session.key);
    } else {
      this.#unpreserveFiles(session);
      this.#outgoing.delete(session.key);
      this.#sessionBlocks.shrink(this.#outgoing.size);
    }
    session.gone = true;
    return undefined;
  }

  // ---- files ----------------------------------------------------------------------

  /**
   * `luo_preserve_file`. `resolve` is the `fget(fd)` of the ioctl (it throws `EBADF`).
   *
   * @throws KernelError `EINVAL` (incoming session), `EEXIST` (token), `EBADF`, `ENOENT`
   *   (no handler), `EBUSY` (already preserved, or frozen), and the FLB's or handler's error.
   */
  preserveFile(session: SessionState, token: bigint, resolve: () => LuoFile): void {
    this.#live();
    this.#unfrozen();
    if (session.retrieved || session.incoming || session.gone) throw new KernelError("EINVAL", "files can only be preserved in a session created in this kernel");
    if (session.byToken.has(token)) throw new KernelError("EEXIST", `token 0x${token.toString(16)} is already used in session "${keyText(session.key)}"`);
    const blocks = (session.blocks ??= KhoBlockSet.create(this.machine.kho, LUO_FILE_SER_SIZE));
    blocks.grow(session.files.length + 1);
    try {
      const file = resolve();
      const handler = this.registry.forFile(file);
      if (handler === undefined) throw new KernelError("ENOENT", `no handler can preserve ${file.description}`);
      const idKey = this.#idKey(handler, file);
      if (this.#preserved.has(idKey)) throw new KernelError("EBUSY", `${file.description} is already preserved`);
      this.#preserved.set(idKey, file);
      try {
        this.flbs.filePreserve(handler);
        const f: FileState = { handler, token, file, serializedData: 0n, privateData: undefined, retrieveStatus: 0, retrieveError: undefined, idKey };
        const args = this.#args(handler, f);
        try {
          handler.preserve(args);
        } catch (error) {
          this.flbs.fileUnpreserve(handler);
          throw error;
        }
        f.serializedData = BigInt.asUintN(64, args.serializedData);
        f.privateData = args.privateData;
        session.files.push(f);
        session.byToken.set(token, f);
        this.#use(handler, 1);
      } catch (error) {
        this.#preserved.delete(idKey);
        throw error;
      }
    } catch (error) {
      blocks.shrink(session.files.length);
      throw error;
    }
  }

  /** `luo_file_unpreserve_files`: last to first, then the chain goes. */
  #unpreserveFiles(session: SessionState): void {
    const blocks = session.blocks;
    for (let f = session.files.at(-1); f !== undefined; f = session.files.at(-1)) {
      f.handler.unpreserve(this.#args(f.handler, f));
      this.flbs.fileUnpreserve(f.handler);
      if (f.idKey !== undefined) this.#preserved.delete(f.idKey);
      this.#use(f.handler, -1);
      session.files.pop();
      session.byToken.delete(f.token);
      blocks?.shrink(session.files.length);
    }
    blocks?.destroy();
    session.blocks = undefined;
  }

  /**
   * `luo_retrieve_file`.
   *
   * @throws KernelError `EINVAL` (outgoing session), `ENOENT` (token), the handler's error
   *   (kept: a later call throws it again).
   */
  retrieveFile(session: SessionState, token: bigint): LuoFile {
    this.#live();
    this.#unfrozen();
    if (!session.retrieved) throw new KernelError("EINVAL", "files can only be retrieved from a retrieved session");
    const f = session.byToken.get(token);
    if (f === undefined) throw new KernelError("ENOENT", `no file with token 0x${token.toString(16)} in session "${keyText(session.key)}"`);
    if (f.retrieveStatus < 0) throw f.retrieveError ?? new KernelError("EINVAL", "retrieve failed earlier");
    if (f.retrieveStatus > 0 && f.file !== undefined) return f.file;
    const args = this.#args(f.handler, { file: undefined, serializedData: f.serializedData, privateData: undefined, retrieveStatus: 0 });
    try {
      f.handler.retrieve(args);
      if (args.file === undefined) throw new KernelError("EINVAL", `handler "${f.handler.compatible}" retrieved no file`);
    } catch (error) {
      const errno = errnoOf(error);
      if (errno !== undefined && error instanceof Error) {
        f.retrieveStatus = -errno;
        f.retrieveError = error;
      }
      throw error;
    }
    const file = args.file;
    f.file = file;
    const idKey = this.#idKey(f.handler, file);
    if (this.#preserved.has(idKey)) this.log.push(`WARNING: retrieved file ${file.description} has the id of a file already preserved`);
    else {
      this.#preserved.set(idKey, file);
      f.idKey = idKey;
    }
    f.retrieveStatus = 1;
    return file;
  }

  /**
   * `luo_session_finish`.
   *
   * @throws KernelError `EINVAL` (outgoing session), `EBUSY` (a `canFinish` said no).
   */
  finishSession(session: SessionState): void {
    this.#live();
    this.#unfrozen();
    if (!session.retrieved) throw new KernelError("EINVAL", "only a retrieved session can finish");
    this.#finishFiles(session);
  }

  /** `luo_file_finish`. */
  #finishFiles(session: SessionState): void {
    if (session.files.length === 0) return;
    for (const f of session.files) {
      const can = f.handler.canFinish === undefined ? true : f.handler.canFinish(this.#args(f.handler, f));
      if (!can) throw new KernelError("EBUSY", `file 0x${f.token.toString(16)} of session "${keyText(session.key)}" cannot finish yet`);
    }
    const blocks = session.blocks;
    for (let f = session.files.at(-1); f !== undefined; f = session.files.at(-1)) {
      f.handler.finish(this.#args(f.handler, { file: f.file, serializedData: f.serializedData, privateData: undefined, retrieveStatus: f.retrieveStatus }));
      this.flbs.fileFinish(f.handler);
      if (f.file !== undefined && f.idKey !== undefined) this.#preserved.delete(f.idKey);
      this.#use(f.handler, -1);
      session.files.pop();
      if (session.byToken.get(f.token) === f) session.byToken.delete(f.token);
      blocks?.shrink(session.files.length);
    }
    blocks?.destroy();
    session.blocks = undefined;
  }

  // ---- kexec ----------------------------------------------------------------------

  /**
   * `liveupdate_reboot`: `luo_session_serialize` then `luo_flb_serialize`. Every session, in
   * list order, takes the next entry of the session chain; its files are frozen in order and
   * written into its file chain; then its name. A failure unfreezes everything done, clears
   * what was written, and is thrown (the kexec is abandoned).
   */
  serialize(): void {
    this.#live();
    this.#unfrozen();
    const memory = this.machine.memory;
    memory.writeU64(this.luoSerPhys + LUO_SER_SESSIONS_PA_OFFSET, 0);
    const it = this.#sessionBlocks.iterator();
    const sessions = [...this.#outgoing.values()];
    let i = 0;
    let failure: Error | undefined;
    for (; i < sessions.length; i++) {
      const session = sessions[i]!;
      const ser = it.reserveEntry();
      if (ser === undefined) {
        failure = new KernelError("ENOSPC", "the session chain has no room (blocks are grown at create)");
        break;
      }
      try {
        this.#freezeFiles(session, ser);
      } catch (error) {
        it.prev();
        failure = error instanceof Error ? error : new Error(String(error));
        break;
      }
      const name = memory.read(ser, LIVEUPDATE_SESSION_NAME_LENGTH);
      writeCString(name, 0, LIVEUPDATE_SESSION_NAME_LENGTH, keyBytes(session.key));
      memory.write(ser, name);
    }
    if (failure !== undefined) {
      for (let j = i - 1; j >= 0; j--) {
        const ser = it.prev()!;
        this.#unfreezeFiles(sessions[j]!, ser);
        memory.zero(ser, LIVEUPDATE_SESSION_NAME_LENGTH);
      }
      this.log.push(`liveupdate_reboot failed: ${failure.message}`);
      throw failure;
    }
    if (this.#outgoing.size > 0) memory.writeU64(this.luoSerPhys + LUO_SER_SESSIONS_PA_OFFSET, this.#sessionBlocks.headPa);
    this.flbs.serialize(this.flbPagePhys);
    this.#frozen = true;
  }

  /** `luo_file_freeze` into the session record at `ser`. */
  #freezeFiles(session: SessionState, ser: number): void {
    const files = session.files;
    if (files.length === 0) return;
    const blocks = session.blocks!;
    const memory = this.machine.memory;
    const it = blocks.iterator();
    const entry = new Uint8Array(LUO_FILE_SER_SIZE);
    const view = new DataView(entry.buffer);
    for (let k = 0; k < files.length; k++) {
      const f = files[k]!;
      const at = it.reserveEntry();
      try {
        if (at === undefined) throw new KernelError("ENOSPC", "the file chain has no room (blocks are grown at preserve)");
        if (f.handler.freeze !== undefined) {
          const args = this.#args(f.handler, f);
          f.handler.freeze(args);
          f.serializedData = BigInt.asUintN(64, args.serializedData);
        }
      } catch (error) {
        this.log.push(`Freeze failed for token[0x${f.token.toString(16)}] handler[${f.handler.compatible}] err[${String(error)}]`);
        for (let u = 0; u < k; u++) this.#unfreezeOne(files[u]!);
        blocks.clear();
        throw error;
      }
      memory.readInto(at, entry);
      writeCString(entry, 0, LIVEUPDATE_HNDL_COMPAT_LENGTH, keyBytes(this.registry.keyOf(f.handler) ?? bytesKey(utf8Bytes(f.handler.compatible))));
      u64Bytes(view, 48, f.serializedData);
      u64Bytes(view, 56, f.token);
      memory.write(at, entry);
    }
    memory.writeU64(ser + LUO_SESSION_SER_COUNT_OFFSET, files.length);
    memory.writeU64(ser + LUO_SESSION_SER_FILES_OFFSET, blocks.headPa);
  }

  #unfreezeOne(f: FileState): void {
    if (f.handler.unfreeze !== undefined) f.handler.unfreeze(this.#args(f.handler, f));
  }

  /** `luo_file_unfreeze`: every file, then clear the chain and the record's file set. */
  #unfreezeFiles(session: SessionState, ser: number): void {
    if (session.files.length === 0) return;
    for (const f of session.files) this.#unfreezeOne(f);
    session.blocks?.clear();
    this.machine.memory.zero(ser + LUO_SESSION_SER_FILES_OFFSET, 16);
  }

  // ---- the first open: deserialize ------------------------------------------------

  /**
   * `luo_session_deserialize`, all-or-nothing: walk every session and file record (names,
   * chains, counts, stamps, a handler for each compatible) without touching anything; on
   * the first failure the state is `failed` (sticky) and nothing was consumed. Then commit:
   * restore and free the blob and the session chain, restore each file chain, build the
   * sessions.
   */
  #deserialize(): void {
    const header = this.#incomingHeader!;
    const memory = this.machine.memory;
    const handlers = new Map<number, FileHandler>();
    const where: { at?: { session: string; token?: bigint; compatible?: string } } = {};
    let walked: ReturnType<typeof walkLuoSessions>;
    try {
      walked = walkLuoSessions(memory, header, { stamps: this.machine.incoming }, (s, f) => {
        where.at = { session: s.name, token: f.token, compatible: f.compatible };
        const handler = f.compatibleTerminated ? this.registry.find(f.compatibleBytes) : undefined;
        if (handler === undefined) throw new KernelError("ENOENT", `no registered handler for compatible "${f.compatible}"`);
        handlers.set(f.entryPhys, handler);
      });
    } catch (error) {
      if (!(error instanceof KernelError) && !(error instanceof FormatError)) throw error;
      this.#incomingState = "failed";
      this.#incomingError = error;
      this.#incomingErrno = error.errno;
      this.#failedAt = where.at;
      this.log.push(`Failed to deserialize session${where.at === undefined ? "s" : ` [${where.at.session}]`}: ${error.message}`);
      return;
    }
    // Commit. Everything below was validated above; nothing here can fail on the image.
    for (const w of walked.warnings) this.log.push(`WARNING: ${w}`);
    const incoming = this.machine.incoming;
    const sessionSet = header.sessionsPhys === 0 ? undefined : KhoBlockSet.restore(incoming, header.sessionsPhys, LUO_SESSION_SER_SIZE);
    for (const view of walked.sessions) {
      const session: SessionState = {
        key: bytesKey(view.nameBytes),
        incoming: true,
        retrieved: false,
        files: [],
        byToken: new Map(),
        blocks: view.filesPhys === 0 ? undefined : KhoBlockSet.restore(incoming, view.filesPhys, LUO_FILE_SER_SIZE),
        gone: false,
      };
      for (const fv of view.files) {
        const handler = handlers.get(fv.entryPhys)!;
        const f: FileState = { handler, token: fv.token, file: undefined, serializedData: fv.data, privateData: undefined, retrieveStatus: 0, retrieveError: undefined, idKey: undefined };
        session.files.push(f);
        if (!session.byToken.has(f.token)) session.byToken.set(f.token, f);
        this.#use(handler, 1);
      }
      this.#incoming.set(session.key, session);
    }
    sessionSet?.destroy();
    incoming.restoreFree(header.phys);
    this.#incomingState = "deserialized";
  }

  // ---- pre-flight, detach ---------------------------------------------------------

  /**
   * What a next kernel with the compatibles `targetKeys` could not retrieve: every outgoing
   * file whose handler's compatible is not among them (the next kernel's first open would
   * fail `ENOENT` and every open `EIO`), and a session chain ending in a block no session
   * uses (a duplicate create at a 51-session boundary leaves one in 7.2; the next kernel
   * finds a block with count 0, `EINVAL`, and panics).
   */
  preflight(targetKeys: ReadonlySet<string>): PreflightProblem[] {
    const problems: PreflightProblem[] = [];
    for (const s of this.#outgoing.values()) {
      for (const f of s.files) {
        const key = this.registry.keyOf(f.handler) ?? bytesKey(utf8Bytes(f.handler.compatible));
        if (!targetKeys.has(key)) {
          const compatible = keyText(key);
          problems.push({
            kind: "no-handler",
            session: keyText(s.key),
            token: f.token,
            compatible,
            errno: "ENOENT",
            reason: `no handler for "${compatible}" in the target registry: the next kernel's first open fails and /dev/liveupdate returns EIO`,
          });
        }
      }
    }
    const used = Math.ceil(this.#outgoing.size / LUO_SESSIONS_PER_BLOCK);
    if (this.#outgoing.size > 0 && this.#sessionBlocks.blockCount > used) {
      problems.push({
        kind: "empty-session-block",
        errno: "EINVAL",
        reason: `the session chain has ${this.#sessionBlocks.blockCount} blocks for ${this.#outgoing.size} sessions: the next kernel finds an empty block and refuses the whole state (Linux panics)`,
      });
    }
    return problems;
  }

  /**
   * Take LUO out of this kernel (the model's module unload): the kexec hook, the `"LUO"`
   * sub-tree, the blob and FLB page go. Only when nothing depends on them.
   *
   * @throws KernelError `EBUSY` while the device is open, outgoing sessions exist, or
   *   incoming sessions were deserialized and not all released.
   */
  detach(): void {
    if (this.#detached) return;
    if (this.#deviceOpen) throw new KernelError("EBUSY", "/dev/liveupdate is open");
    if (this.#outgoing.size > 0) throw new KernelError("EBUSY", "outgoing sessions exist");
    if (this.#incoming.size > 0) throw new KernelError("EBUSY", "incoming sessions exist");
    this.#unhook();
    if (!this.machine.retired) {
      const kho = this.machine.kho;
      kho.removeSubtree(this.luoSerPhys);
      kho.unpreserveFree(this.luoSerPhys, LUO_SER_SIZE);
      kho.unpreserveFree(this.flbPagePhys, LUO_FLB_PGCNT * PAGE_SIZE);
      this.#sessionBlocks.destroy();
    }
    this.#detached = true;
  }

}
