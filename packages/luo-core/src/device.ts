/**
 * The open files of `/dev/liveupdate`: the device itself and session files, as objects with
 * one method per ioctl. Each is a `LuoFile` with a descriptor in the kernel's fd table, so
 * the byte-level ioctl adapter and this API drive the same state (lifecycle.ts); closing
 * the last descriptor releases the file (a session's release unpreserves or finishes it).
 */
import { KernelError } from "@liveupdate/kho";
import { LIVEUPDATE_SESSION_NAME_LENGTH } from "./abi.js";
import { keyBytes, keyText, strnlen, utf8Bytes } from "./cstring.js";
import type { FdTable } from "./fd-table.js";
import type { LuoFile } from "./handler.js";
import { toToken, type LuoCore, type SessionState } from "./lifecycle.js";

/** What a handle needs from its kernel. */
interface HandleContext {
  readonly core: LuoCore;
  readonly fds: FdTable;
}

/** One file of a session, as `LuoSession.files` lists it. */
export interface LuoSessionFileInfo {
  /** The user's token. */
  readonly token: bigint;
  /** The compatible of the file's handler. */
  readonly compatible: string;
  /** 0 never retrieved, 1 retrieved, negative: the errno of a failed retrieve (incoming only). */
  readonly retrieveStatus: number;
  /** The file (outgoing: the preserved one; incoming: once retrieved). */
  readonly file: LuoFile | undefined;
  /** The handler's handle (`luo_file_ser.data`). */
  readonly serializedData: bigint;
}

/** A 64-byte name field from an API name; `strict` refuses what the kernel would truncate. */
function nameField(name: string | Uint8Array, strict: boolean): Uint8Array {
  const field = new Uint8Array(LIVEUPDATE_SESSION_NAME_LENGTH);
  if (typeof name === "string") {
    const bytes = utf8Bytes(name);
    if (strict && (bytes.length > LIVEUPDATE_SESSION_NAME_LENGTH - 1 || strnlen(bytes, 0, bytes.length) !== bytes.length)) {
      throw new KernelError("EINVAL", `session name "${name}" must be 1..63 bytes without NUL`);
    }
    field.set(bytes.subarray(0, LIVEUPDATE_SESSION_NAME_LENGTH));
  } else {
    field.set(name.subarray(0, LIVEUPDATE_SESSION_NAME_LENGTH));
  }
  return field;
}

let newSession: (ctx: HandleContext, state: SessionState) => LuoSession;
let releaseDevice: (device: LiveUpdateDevice) => void;
let releaseSession: (session: LuoSession) => KernelError | undefined;
let newDevice: (ctx: HandleContext) => LiveUpdateDevice;

/**
 * An open `/dev/liveupdate` (the only one: the device is exclusive). Get it from
 * `LiveUpdate.open()`.
 */
export class LiveUpdateDevice implements LuoFile {
  /** `"/dev/liveupdate"`. */
  readonly description = "/dev/liveupdate";
  readonly #ctx: HandleContext;
  #fd = -1;
  #closed = false;

  static {
    newDevice = (ctx) => {
      const device = new LiveUpdateDevice(ctx);
      device.#fd = ctx.fds.install(device);
      return device;
    };
    releaseDevice = (device) => {
      device.#closed = true;
      device.#ctx.core.closeDevice();
    };
  }

  private constructor(ctx: HandleContext) {
    this.#ctx = ctx;
  }

  /** Its descriptor in the kernel's fd table. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether it was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  #open(): void {
    if (this.#closed) throw new KernelError("EBADF", "/dev/liveupdate was closed");
  }

  /**
   * `LIVEUPDATE_IOCTL_CREATE_SESSION`: a new outgoing session, with its own session file.
   * A string name must be 1..63 UTF-8 bytes without NUL; bytes are taken as the ioctl's
   * 64-byte field.
   *
   * @throws KernelError `EINVAL`, `EEXIST`, `EBADF` (device closed).
   */
  createSession(name: string | Uint8Array): LuoSession {
    this.#open();
    const state = this.#ctx.core.createSession(nameField(name, true));
    return newSession(this.#ctx, state);
  }

  /**
   * `LIVEUPDATE_IOCTL_RETRIEVE_SESSION`: a session the previous kernel preserved.
   *
   * @throws KernelError `ENOENT` (no such session), `EINVAL` (retrieved already), `EBADF`.
   */
  retrieveSession(name: string | Uint8Array): LuoSession {
    this.#open();
    const state = this.#ctx.core.retrieveSession(nameField(name, false));
    return newSession(this.#ctx, state);
  }

  /** Close the device (sessions are not affected). */
  close(): void {
    this.#open();
    this.#ctx.fds.close(this.#fd);
  }
}

/** A session file: one session, created here or retrieved from the previous kernel. */
export class LuoSession implements LuoFile {
  /** `"[luo_session] <name>"`, as the kernel names the anonymous inode. */
  readonly description: string;
  readonly #ctx: HandleContext;
  readonly #state: SessionState;
  #fd = -1;
  #closed = false;
  #releaseError: KernelError | undefined;

  static {
    newSession = (ctx, state) => {
      const session = new LuoSession(ctx, state);
      session.#fd = ctx.fds.install(session);
      return session;
    };
    releaseSession = (session) => {
      session.#closed = true;
      session.#releaseError = session.#ctx.core.releaseSession(session.#state);
      return session.#releaseError;
    };
  }

  private constructor(ctx: HandleContext, state: SessionState) {
    this.#ctx = ctx;
    this.#state = state;
    this.description = `[luo_session] ${keyText(state.key)}`;
  }

  /** Its descriptor in the kernel's fd table. */
  get fd(): number {
    return this.#fd;
  }

  /** The session's name (UTF-8 decoded). */
  get name(): string {
    return keyText(this.#state.key);
  }

  /** The session's name, byte for byte. */
  get nameBytes(): Uint8Array {
    return keyBytes(this.#state.key);
  }

  /** Whether this session came from the previous kernel. */
  get incoming(): boolean {
    return this.#state.incoming;
  }

  /** Whether it was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * What releasing it returned: a retrieved session whose finish failed at close stays in
   * the kernel (as in Linux) and this holds the error.
   */
  get releaseError(): KernelError | undefined {
    return this.#releaseError;
  }

  /** Its files, in list order. */
  get files(): readonly LuoSessionFileInfo[] {
    return this.#state.files.map((f) => ({
      token: f.token,
      compatible: f.handler.compatible,
      retrieveStatus: f.retrieveStatus,
      file: f.file,
      serializedData: f.serializedData,
    }));
  }

  #open(): void {
    if (this.#closed) throw new KernelError("EBADF", `${this.description} was closed`);
  }

  /** `LIVEUPDATE_SESSION_GET_NAME`. */
  getName(): string {
    this.#open();
    return this.name;
  }

  /**
   * `LIVEUPDATE_SESSION_PRESERVE_FD`: preserve `file` (a `LuoFile`, or a descriptor of the
   * kernel's fd table) under `token`.
   *
   * @throws KernelError `EINVAL` (a retrieved session), `EEXIST` (token used), `EBADF`,
   *   `ENOENT` (no handler), `EBUSY` (already preserved), or the handler's error.
   */
  preserveFd(file: LuoFile | number, token: bigint | number): void {
    this.#open();
    const t = toToken(token);
    const fds = this.#ctx.fds;
    this.#ctx.core.preserveFile(this.#state, t, () => (typeof file === "number" ? fds.get(file) : file));
  }

  /**
   * `LIVEUPDATE_SESSION_RETRIEVE_FD`: the file preserved under `token` (the same file on
   * every later call; a failed retrieve fails the same way again).
   *
   * @throws KernelError `EINVAL` (not a retrieved session), `ENOENT` (token), the handler's error.
   */
  retrieveFd(token: bigint | number): LuoFile {
    this.#open();
    return this.#ctx.core.retrieveFile(this.#state, toToken(token));
  }

  /**
   * `LIVEUPDATE_SESSION_FINISH`: every file's `canFinish`, then every file finished (last to
   * first); LUO lets go of them.
   *
   * @throws KernelError `EINVAL` (not a retrieved session), `EBUSY` (a file cannot finish).
   */
  finish(): void {
    this.#open();
    this.#ctx.core.finishSession(this.#state);
  }

  /** Close the session file (outgoing: its files are unpreserved; retrieved: it finishes). */
  close(): void {
    this.#open();
    this.#ctx.fds.close(this.#fd);
  }
}

/** Open the device: a handle with a descriptor. Not part of the public API. */
export function openDeviceHandle(ctx: HandleContext): LiveUpdateDevice {
  ctx.core.openDevice();
  try {
    return newDevice(ctx);
  } catch (error) {
    ctx.core.closeDevice();
    throw error;
  }
}

/** The release of a file whose last descriptor was closed. Not part of the public API. */
export function releaseHandle(file: LuoFile): void {
  if (file instanceof LiveUpdateDevice) releaseDevice(file);
  else if (file instanceof LuoSession) releaseSession(file);
}
