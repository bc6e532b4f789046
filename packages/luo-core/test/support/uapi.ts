/**
 * A tiny libc over a model kernel, enough to replay the Linux selftests line by line:
 * `open`, `close`, `ioctl` with C-layout argument bytes, `memfd_create`, `write`, `lseek`,
 * `read`, `ftruncate`, and `errno`. The luo_test_utils.c helpers are re-stated on top of it.
 */
import { KernelError, ERRNO } from "@liveupdate/kho";
import {
  LIVEUPDATE_IOCTL_CREATE_SESSION,
  LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
  LIVEUPDATE_SESSION_FINISH,
  LIVEUPDATE_SESSION_GET_NAME,
  LIVEUPDATE_SESSION_PRESERVE_FD,
  LIVEUPDATE_SESSION_RETRIEVE_FD,
  type LiveUpdate,
} from "../../src/index.js";
import { DevNull, TestMemFile } from "./test-handler.js";

export const EBUSY = ERRNO.EBUSY;
export const EEXIST = ERRNO.EEXIST;
export const ENOENT = ERRNO.ENOENT;
export const EINVAL = ERRNO.EINVAL;
export const EIO = ERRNO.EIO;
export const EBADF = ERRNO.EBADF;

/** One process of the test: its kernel and its errno. */
export class Proc {
  readonly lu: LiveUpdate;
  errno = 0;

  constructor(lu: LiveUpdate) {
    this.lu = lu;
  }

  #fail(error: unknown): number {
    if (error instanceof KernelError) {
      this.errno = ERRNO[error.errno];
      return -1;
    }
    throw error;
  }

  /** `open("/dev/liveupdate" | "/dev/null", O_RDWR)`. */
  open(path: string): number {
    try {
      if (path === "/dev/liveupdate") return this.lu.open().fd;
      if (path === "/dev/null") return this.lu.fds.install(new DevNull());
      throw new KernelError("ENOENT", path);
    } catch (error) {
      return this.#fail(error);
    }
  }

  close(fd: number): number {
    try {
      this.lu.fds.close(fd);
      return 0;
    } catch (error) {
      return this.#fail(error);
    }
  }

  /** `ioctl`: 0 or -1 with errno. */
  ioctl(fd: number, request: number, arg: Uint8Array): number {
    const r = this.lu.ioctl(fd, request, arg);
    if (r === 0) return 0;
    this.errno = -r;
    return -1;
  }

  memfdCreate(name: string): number {
    return this.lu.fds.install(new TestMemFile({ name }));
  }

  file(fd: number): TestMemFile {
    const f = this.lu.fds.get(fd);
    if (!(f instanceof TestMemFile)) throw new Error(`fd ${fd} is not a memfd`);
    return f;
  }

  write(fd: number, data: string): number {
    return this.file(fd).write(data);
  }

  lseek(fd: number, off: number): number {
    return this.file(fd).lseek(off);
  }

  read(fd: number, count: number): string {
    return new TextDecoder().decode(this.file(fd).read(count));
  }

  ftruncate(fd: number, size: number): number {
    this.file(fd).ftruncate(size);
    return 0;
  }
}

/** `struct liveupdate_ioctl_create_session` / `_retrieve_session` with `size = sizeof`. */
export function sessionArg(name: string | Uint8Array, size = 72): Uint8Array {
  const arg = new Uint8Array(72);
  const view = new DataView(arg.buffer);
  view.setUint32(0, size, true);
  const bytes = typeof name === "string" ? new TextEncoder().encode(name) : name;
  arg.set(bytes.subarray(0, 64), 8);
  return arg;
}

/** `struct liveupdate_session_preserve_fd` / `_retrieve_fd`. */
export function fdArg(fd: number, token: bigint | number, size = 16): Uint8Array {
  const arg = new Uint8Array(16);
  const view = new DataView(arg.buffer);
  view.setUint32(0, size, true);
  view.setInt32(4, fd, true);
  view.setBigUint64(8, BigInt(token), true);
  return arg;
}

export function s32(arg: Uint8Array, off: number): number {
  return new DataView(arg.buffer, arg.byteOffset).getInt32(off, true);
}

/** liveupdate.c `create_session`: strncpy(name, 63), returns fd or -errno. */
export function createSession(p: Proc, luFd: number, name: string): number {
  const bytes = new TextEncoder().encode(name).subarray(0, 63);
  const arg = sessionArg(bytes);
  if (p.ioctl(luFd, LIVEUPDATE_IOCTL_CREATE_SESSION, arg) !== 0) return -p.errno;
  return s32(arg, 4);
}

/** luo_test_utils.c `luo_retrieve_session`. */
export function retrieveSession(p: Proc, luFd: number, name: string): number {
  const bytes = new TextEncoder().encode(name).subarray(0, 63);
  const arg = sessionArg(bytes);
  if (p.ioctl(luFd, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, arg) !== 0) return -p.errno;
  return s32(arg, 4);
}

/** liveupdate.c `get_session_name`. */
export function getSessionName(p: Proc, sessionFd: number): string | number {
  const arg = new Uint8Array(72);
  new DataView(arg.buffer).setUint32(0, 72, true);
  if (p.ioctl(sessionFd, LIVEUPDATE_SESSION_GET_NAME, arg) !== 0) return -p.errno;
  const name = arg.subarray(8, 72);
  const end = name.indexOf(0);
  return new TextDecoder().decode(name.subarray(0, end < 0 ? 63 : Math.min(end, 63)));
}

/** liveupdate.c `preserve_fd`. */
export function preserveFd(p: Proc, sessionFd: number, fd: number, token: bigint | number): number {
  if (p.ioctl(sessionFd, LIVEUPDATE_SESSION_PRESERVE_FD, fdArg(fd, token)) !== 0) return -p.errno;
  return 0;
}

/** luo_test_utils.c `create_and_preserve_memfd`: one page, data at 0, preserve, close. */
export function createAndPreserveMemfd(p: Proc, sessionFd: number, token: number, data: string): number {
  const mfd = p.memfdCreate("test_mfd");
  p.ftruncate(mfd, 4096);
  p.file(mfd).pwrite(`${data}\0`, 0);
  const arg = fdArg(mfd, token);
  const ret = p.ioctl(sessionFd, LIVEUPDATE_SESSION_PRESERVE_FD, arg) === 0 ? 0 : -p.errno;
  p.close(mfd);
  return ret;
}

/** luo_test_utils.c `restore_and_verify_memfd`: fd, or -errno (-EINVAL on a data mismatch). */
export function restoreAndVerifyMemfd(p: Proc, sessionFd: number, token: number, expected: string | undefined): number {
  const arg = fdArg(-1, token);
  if (p.ioctl(sessionFd, LIVEUPDATE_SESSION_RETRIEVE_FD, arg) !== 0) return -p.errno;
  const mfd = s32(arg, 4);
  if (expected !== undefined && p.file(mfd).cString() !== expected) {
    p.close(mfd);
    return -EINVAL;
  }
  return mfd;
}

/** luo_test_utils.c `luo_session_finish`. */
export function sessionFinish(p: Proc, sessionFd: number): number {
  const arg = new Uint8Array(8);
  new DataView(arg.buffer).setUint32(0, 8, true);
  if (p.ioctl(sessionFd, LIVEUPDATE_SESSION_FINISH, arg) !== 0) return -p.errno;
  return 0;
}

/** luo_test_utils.c `create_state_file`: a session holding a memfd with the next stage. */
export function createStateFile(p: Proc, luFd: number, sessionName: string, token: number, nextStage: number): void {
  const fd = createSession(p, luFd, sessionName);
  if (fd < 0) throw new Error(`create state session: ${fd}`);
  if (createAndPreserveMemfd(p, fd, token, String(nextStage)) < 0) throw new Error("create state memfd");
}

/** luo_test_utils.c `restore_and_read_stage`. */
export function restoreAndReadStage(p: Proc, stateSessionFd: number, token: number): number {
  const mfd = restoreAndVerifyMemfd(p, stateSessionFd, token, undefined);
  if (mfd < 0) throw new Error(`restore state memfd: ${mfd}`);
  const stage = Number.parseInt(p.read(mfd, 31).replace(/\0.*$/s, ""), 10);
  p.close(mfd);
  return stage;
}
