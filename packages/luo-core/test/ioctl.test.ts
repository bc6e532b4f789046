/**
 * The ioctl adapter's argument handling, in luo_ioctl / luo_session_ioctl order: EBADF,
 * ENOTTY, EINVAL (nr, type, size), EFAULT, E2BIG, the response cut to the caller's size.
 */
import { ERRNO } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import {
  ENOTTY,
  LIVEUPDATE_IOCTL_CREATE_SESSION,
  LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
  LIVEUPDATE_SESSION_FINISH,
  LIVEUPDATE_SESSION_GET_NAME,
  LIVEUPDATE_SESSION_PRESERVE_FD,
  LIVEUPDATE_SESSION_RETRIEVE_FD,
  LiveUpdate,
  ioc,
  ioctlErrnoName,
} from "../src/index.js";
import { TestMemFile, testHandler, text } from "./support/test-handler.js";
import { fdArg, s32, sessionArg } from "./support/uapi.js";

const E = ERRNO;

function setup(): { lu: LiveUpdate; dev: number; session: number } {
  const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [testHandler()] });
  const dev = lu.open().fd;
  const arg = sessionArg("s");
  expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, arg)).toBe(0);
  return { lu, dev, session: s32(arg, 4) };
}

describe("device ioctls", () => {
  it("EBADF for a closed fd, ENOTTY for a file without ioctls", () => {
    const { lu } = setup();
    expect(lu.ioctl(99, LIVEUPDATE_IOCTL_CREATE_SESSION, sessionArg("x"))).toBe(-E.EBADF);
    const memfd = lu.fds.install(new TestMemFile());
    expect(lu.ioctl(memfd, LIVEUPDATE_IOCTL_CREATE_SESSION, sessionArg("x"))).toBe(-ENOTTY);
    expect(ioctlErrnoName(-ENOTTY)).toBe("ENOTTY");
    expect(ioctlErrnoName(-E.E2BIG)).toBe("E2BIG");
  });

  it("nr outside the table EINVAL; the right nr with other bits ENOTTY; short arg EFAULT", () => {
    const { lu, dev } = setup();
    expect(lu.ioctl(dev, 0xba02, sessionArg("x"))).toBe(-E.EINVAL);
    expect(lu.ioctl(dev, LIVEUPDATE_SESSION_PRESERVE_FD, sessionArg("x"))).toBe(-E.EINVAL); // a session op on the device
    expect(lu.ioctl(dev, ioc(3, 0xba, 0, 72), sessionArg("x"))).toBe(-ENOTTY); // _IOWR encoding
    expect(lu.ioctl(dev, 0x1200, sessionArg("x"))).toBe(-ENOTTY); // other type, nr 0
    expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, new Uint8Array(3))).toBe(-E.EFAULT);
    expect(lu.ioctl(dev, 0xba07, new Uint8Array(0))).toBe(-E.EINVAL); // nr checked before get_user
  });

  it("size below the struct EINVAL; above it zeros are fine, anything else E2BIG; arg shorter than size EFAULT", () => {
    const { lu, dev } = setup();
    expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, sessionArg("x", 71))).toBe(-E.EINVAL);
    const big = new Uint8Array(80);
    big.set(sessionArg("bigger", 80));
    big[79] = 1;
    expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, big)).toBe(-E.E2BIG);
    big[79] = 0;
    big[76] = 0x5a; // still non-zero
    expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, big)).toBe(-E.E2BIG);
    big[76] = 0;
    expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, big)).toBe(0);
    expect(s32(big, 4)).toBeGreaterThan(0);
    expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, sessionArg("y", 200))).toBe(-E.EFAULT);
  });

  it("the response is the whole struct (size, fd, name) cut to size", () => {
    const { lu, dev } = setup();
    const arg = new Uint8Array(96).fill(0);
    arg.set(sessionArg("answer", 96));
    arg.fill(0, 72);
    expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, arg)).toBe(0);
    const fd = s32(arg, 4);
    expect(lu.fds.get(fd).description).toBe("[luo_session] answer");
    expect(new DataView(arg.buffer).getUint32(0, true)).toBe(96);
    expect(new TextDecoder().decode(arg.subarray(8, 14))).toBe("answer");
  });

  it("retrieve session: ENOENT in a cold kernel", () => {
    const { lu, dev } = setup();
    expect(lu.ioctl(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, sessionArg("s"))).toBe(-E.ENOENT);
  });
});

describe("session ioctls", () => {
  it("nr outside 0x40..0x43 EINVAL; other bits ENOTTY (before the type check)", () => {
    const { lu, session } = setup();
    expect(lu.ioctl(session, 0xba44, fdArg(0, 0))).toBe(-E.EINVAL);
    expect(lu.ioctl(session, LIVEUPDATE_IOCTL_CREATE_SESSION, sessionArg("x"))).toBe(-E.EINVAL);
    expect(lu.ioctl(session, ioc(3, 0xba, 0x41, 16), fdArg(0, 0))).toBe(-ENOTTY);
  });

  it("the session type is checked before size and E2BIG", () => {
    const { lu, session } = setup();
    const junk = new Uint8Array(32).fill(0xff);
    new DataView(junk.buffer).setUint32(0, 32, true);
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_RETRIEVE_FD, junk)).toBe(-E.EINVAL); // outgoing session
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_FINISH, junk)).toBe(-E.EINVAL);
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_PRESERVE_FD, junk)).toBe(-E.E2BIG);
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_PRESERVE_FD, fdArg(0, 0, 15))).toBe(-E.EINVAL);
  });

  it("GET_NAME: reserved must be 0; the name is strscpy'd over the caller's field", () => {
    const { lu, session } = setup();
    const arg = new Uint8Array(72).fill(0xee);
    const view = new DataView(arg.buffer);
    view.setUint32(0, 72, true);
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_GET_NAME, arg)).toBe(-E.EINVAL);
    view.setUint32(4, 0, true);
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_GET_NAME, arg)).toBe(0);
    expect([...arg.subarray(8, 11)]).toEqual([0x73, 0, 0xee]); // "s", NUL, the caller's byte
  });

  it("PRESERVE_FD / RETRIEVE_FD / FINISH across kexec, with the returned fds", () => {
    const { lu, dev, session } = setup();
    const memfd = lu.fds.install(new TestMemFile({ bytes: text("payload") }));
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_PRESERVE_FD, fdArg(memfd, 0x77))).toBe(0);
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_PRESERVE_FD, fdArg(memfd, 0x78))).toBe(-E.EBUSY);
    expect(lu.ioctl(session, LIVEUPDATE_SESSION_PRESERVE_FD, fdArg(555, 0x79))).toBe(-E.EBADF);
    expect(dev).toBeGreaterThan(0);
    const next = lu.kexec({ handlers: [testHandler()] });
    const d2 = next.open().fd;
    const sa = sessionArg("s");
    expect(next.ioctl(d2, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, sa)).toBe(0);
    const s2 = s32(sa, 4);
    expect(next.ioctl(s2, LIVEUPDATE_SESSION_PRESERVE_FD, fdArg(d2, 1))).toBe(-E.EINVAL); // incoming session
    const ra = fdArg(-1, 0x77);
    expect(next.ioctl(s2, LIVEUPDATE_SESSION_RETRIEVE_FD, ra)).toBe(0);
    const f1 = s32(ra, 4);
    const rb = fdArg(-1, 0x77);
    expect(next.ioctl(s2, LIVEUPDATE_SESSION_RETRIEVE_FD, rb)).toBe(0);
    expect(s32(rb, 4)).not.toBe(f1);
    expect(next.fds.get(s32(rb, 4))).toBe(next.fds.get(f1)); // a new fd, the same file
    expect(next.ioctl(s2, LIVEUPDATE_SESSION_RETRIEVE_FD, fdArg(-1, 0x78))).toBe(-E.ENOENT);
    const fin = new Uint8Array(8);
    new DataView(fin.buffer).setUint32(0, 8, true);
    new DataView(fin.buffer).setUint32(4, 1, true);
    expect(next.ioctl(s2, LIVEUPDATE_SESSION_FINISH, fin)).toBe(-E.EINVAL); // reserved
    new DataView(fin.buffer).setUint32(4, 0, true);
    expect(next.ioctl(s2, LIVEUPDATE_SESSION_FINISH, fin)).toBe(0);
  });
});
