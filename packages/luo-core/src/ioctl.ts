/**
 * The `/dev/liveupdate` ioctls byte for byte (`luo_ioctl` in luo_core.c, `luo_session_ioctl`
 * in luo_session.c), so the Linux selftests can be replayed with the same argument bytes and
 * the same errnos.
 *
 * `luoIoctl(lu, fd, request, arg)` returns 0 or a negative errno and writes the kernel's
 * answer into `arg` (`luo_ucmd_respond`: the whole struct, cut to the caller's `size`). The
 * request numbers are `_IO(0xBA, nr)` (direction and size bits 0): 0xBA00, 0xBA01 on the
 * device, 0xBA40..0xBA43 on a session file. Checks, in the kernel's order:
 *
 * 1. `fd` not open: `EBADF`; not the device or a session file: `ENOTTY` (no ioctl op).
 * 2. `_IOC_NR(request)` outside the file's table: `EINVAL`.
 * 3. `arg` shorter than the u32 `size`: `EFAULT` (`get_user`).
 * 4. `request` is not exactly the table's number (other type, direction or size bits):
 *    `ENOTTY` (`-ENOIOCTLCMD`).
 * 5. Session files: an op for the other kind of session (PRESERVE_FD on a retrieved one,
 *    RETRIEVE_FD / FINISH on one created here): `EINVAL`.
 * 6. `size` below the struct's last field: `EINVAL`.
 * 7. `copy_struct_from_user`: bytes beyond the struct the kernel knows must be zero (`E2BIG`);
 *    a shorter `size` reads as zeros; `arg` shorter than `size`: `EFAULT`.
 * 8. The op (FINISH and GET_NAME: `reserved` not 0 `EINVAL`).
 */
import { ERRNO, FormatError, KernelError, type Errno } from "@liveupdate/kho";
import {
  LIVEUPDATE_CMD_BASE,
  LIVEUPDATE_CMD_SESSION_BASE,
  LIVEUPDATE_IOCTL_CREATE_SESSION,
  LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
  LIVEUPDATE_IOCTL_SESSION_ARG_SIZE,
  LIVEUPDATE_SESSION_FD_ARG_SIZE,
  LIVEUPDATE_SESSION_FINISH,
  LIVEUPDATE_SESSION_FINISH_ARG_SIZE,
  LIVEUPDATE_SESSION_GET_NAME,
  LIVEUPDATE_SESSION_GET_NAME_ARG_SIZE,
  LIVEUPDATE_SESSION_NAME_LENGTH,
  LIVEUPDATE_SESSION_PRESERVE_FD,
  LIVEUPDATE_SESSION_RETRIEVE_FD,
} from "./abi.js";
import { writeCString } from "./cstring.js";
import { LiveUpdateDevice, LuoSession } from "./device.js";
import type { LiveUpdate } from "./liveupdate.js";

/** `ENOTTY` (25): not an ioctl this file has (the vfs's translation of `-ENOIOCTLCMD`). */
export const ENOTTY = 25;

/** An errno name an ioctl can return. */
export type IoctlErrno = Errno | "ENOTTY";

/** The errno name of a negative ioctl result (undefined for 0 or an unknown value). */
export function ioctlErrnoName(result: number): IoctlErrno | undefined {
  if (result === -ENOTTY) return "ENOTTY";
  for (const [name, value] of Object.entries(ERRNO)) if (-value === result) return name as Errno;
  return undefined;
}

/** Which sessions an op applies to (`enum luo_ioctl_type`). */
type SessionKind = "incoming" | "outgoing" | "all";

/** `struct luo_ioctl_op`. */
interface IoctlOp {
  /** `sizeof` the struct. */
  readonly size: number;
  /** `offsetofend` its last field. */
  readonly minSize: number;
  readonly request: number;
  readonly kind: SessionKind;
}

const DEVICE_OPS: readonly IoctlOp[] = [
  { size: LIVEUPDATE_IOCTL_SESSION_ARG_SIZE, minSize: LIVEUPDATE_IOCTL_SESSION_ARG_SIZE, request: LIVEUPDATE_IOCTL_CREATE_SESSION, kind: "all" },
  { size: LIVEUPDATE_IOCTL_SESSION_ARG_SIZE, minSize: LIVEUPDATE_IOCTL_SESSION_ARG_SIZE, request: LIVEUPDATE_IOCTL_RETRIEVE_SESSION, kind: "all" },
];

// Indexed by nr - 0x40 (the kernel's table is too: the order in its source differs).
const SESSION_OPS: readonly IoctlOp[] = [
  { size: LIVEUPDATE_SESSION_FD_ARG_SIZE, minSize: LIVEUPDATE_SESSION_FD_ARG_SIZE, request: LIVEUPDATE_SESSION_PRESERVE_FD, kind: "outgoing" },
  { size: LIVEUPDATE_SESSION_FD_ARG_SIZE, minSize: LIVEUPDATE_SESSION_FD_ARG_SIZE, request: LIVEUPDATE_SESSION_RETRIEVE_FD, kind: "incoming" },
  { size: LIVEUPDATE_SESSION_FINISH_ARG_SIZE, minSize: LIVEUPDATE_SESSION_FINISH_ARG_SIZE, request: LIVEUPDATE_SESSION_FINISH, kind: "incoming" },
  { size: LIVEUPDATE_SESSION_GET_NAME_ARG_SIZE, minSize: LIVEUPDATE_SESSION_GET_NAME_ARG_SIZE, request: LIVEUPDATE_SESSION_GET_NAME, kind: "all" },
];

const neg = (errno: Errno): number => -ERRNO[errno];

/** A user command copied in (`struct luo_ucmd` + the kernel's buffer). */
interface Ucmd {
  readonly userSize: number;
  readonly buf: Uint8Array;
  readonly view: DataView;
}

/** `get_user(size)` + the number check; then (after the caller's checks) the struct copy. */
function copyIn(op: IoctlOp, arg: Uint8Array, userSize: number): Ucmd | number {
  if (userSize < op.minSize) return neg("EINVAL");
  if (userSize > op.size) {
    if (arg.length < userSize) return neg("EFAULT");
    for (let i = op.size; i < userSize; i++) if (arg[i] !== 0) return neg("E2BIG");
  }
  const n = Math.min(op.size, userSize);
  if (arg.length < n) return neg("EFAULT");
  const buf = new Uint8Array(op.size);
  buf.set(arg.subarray(0, n));
  return { userSize, buf, view: new DataView(buf.buffer) };
}

/** `luo_ucmd_respond`: the struct back, cut to the caller's size. */
function respond(ucmd: Ucmd, arg: Uint8Array): void {
  arg.set(ucmd.buf.subarray(0, Math.min(ucmd.userSize, ucmd.buf.length)));
}

function errnoResult(error: unknown): number {
  if (error instanceof KernelError || error instanceof FormatError) return neg(error.errno);
  throw error;
}

/**
 * `ioctl(fd, request, arg)` against the kernel of `lu`. See the module comment.
 *
 * @returns 0, or the negative errno (`-ENOTTY` is -25).
 */
export function luoIoctl(lu: LiveUpdate, fd: number, request: number, arg: Uint8Array): number {
  if (!lu.fds.has(fd)) return neg("EBADF");
  const file = lu.fds.get(fd);
  const cmd = request >>> 0;
  const nr = cmd & 0xff;
  if (file instanceof LiveUpdateDevice) {
    const op = DEVICE_OPS[nr - LIVEUPDATE_CMD_BASE];
    if (op === undefined) return neg("EINVAL");
    if (arg.length < 4) return neg("EFAULT");
    if (op.request !== cmd) return -ENOTTY;
    const ucmd = copyIn(op, arg, new DataView(arg.buffer, arg.byteOffset, 4).getUint32(0, true));
    if (typeof ucmd === "number") return ucmd;
    try {
      const name = ucmd.buf.subarray(8, 8 + LIVEUPDATE_SESSION_NAME_LENGTH);
      const session = cmd === LIVEUPDATE_IOCTL_CREATE_SESSION ? file.createSession(name) : file.retrieveSession(name);
      ucmd.view.setInt32(4, session.fd, true);
    } catch (error) {
      return errnoResult(error);
    }
    respond(ucmd, arg);
    return 0;
  }
  if (file instanceof LuoSession) {
    const op = nr < LIVEUPDATE_CMD_SESSION_BASE ? undefined : SESSION_OPS[nr - LIVEUPDATE_CMD_SESSION_BASE];
    if (op === undefined) return neg("EINVAL");
    if (arg.length < 4) return neg("EFAULT");
    if (op.request !== cmd) return -ENOTTY;
    if ((op.kind === "incoming" && !file.incoming) || (op.kind === "outgoing" && file.incoming)) return neg("EINVAL");
    const ucmd = copyIn(op, arg, new DataView(arg.buffer, arg.byteOffset, 4).getUint32(0, true));
    if (typeof ucmd === "number") return ucmd;
    if (lu.frozen) return neg("EBUSY");
    try {
      switch (cmd) {
        case LIVEUPDATE_SESSION_PRESERVE_FD:
          file.preserveFd(ucmd.view.getInt32(4, true), ucmd.view.getBigUint64(8, true));
          break;
        case LIVEUPDATE_SESSION_RETRIEVE_FD: {
          const retrieved = file.retrieveFd(ucmd.view.getBigUint64(8, true));
          ucmd.view.setInt32(4, lu.fds.install(retrieved), true);
          break;
        }
        case LIVEUPDATE_SESSION_FINISH:
          if (ucmd.view.getUint32(4, true) !== 0) return neg("EINVAL");
          file.finish();
          break;
        default:
          if (ucmd.view.getUint32(4, true) !== 0) return neg("EINVAL");
          writeCString(ucmd.buf, 8, LIVEUPDATE_SESSION_NAME_LENGTH, file.nameBytes);
          break;
      }
    } catch (error) {
      return errnoResult(error);
    }
    respond(ucmd, arg);
    return 0;
  }
  return -ENOTTY;
}
