/**
 * tools/testing/selftests/liveupdate/liveupdate.c, test by test, through the byte-level ioctl
 * adapter with C-layout arguments and the same errno assertions. Memfds are the in-test
 * memfd-like file (test/support).
 */
import { beforeEach, describe, expect, it } from "vitest";
import { LIVEUPDATE_IOCTL_CREATE_SESSION, LiveUpdate } from "../src/index.js";
import { testHandler } from "./support/test-handler.js";
import { EBUSY, EEXIST, EINVAL, ENOENT, Proc, createSession, getSessionName, preserveFd, sessionArg } from "./support/uapi.js";

const LIVEUPDATE_DEV = "/dev/liveupdate";

describe("selftests/liveupdate/liveupdate.c (FIXTURE liveupdate_device)", () => {
  let p: Proc;
  let fd1: number;
  let fd2: number;

  beforeEach(() => {
    p = new Proc(LiveUpdate.boot({ memory: "512 MiB", handlers: [testHandler()] }));
    fd1 = -1;
    fd2 = -1;
    return () => {
      if (fd1 >= 0) p.close(fd1);
      if (fd2 >= 0) p.close(fd2);
    };
  });

  it("basic_open_close", () => {
    fd1 = p.open(LIVEUPDATE_DEV);
    expect(fd1).toBeGreaterThanOrEqual(0);
    expect(p.close(fd1)).toBe(0);
    fd1 = -1;
    // And it can be opened again afterwards.
    fd1 = p.open(LIVEUPDATE_DEV);
    expect(fd1).toBeGreaterThanOrEqual(0);
  });

  it("exclusive_open", () => {
    fd1 = p.open(LIVEUPDATE_DEV);
    expect(fd1).toBeGreaterThanOrEqual(0);
    fd2 = p.open(LIVEUPDATE_DEV);
    expect(fd2).toBeLessThan(0);
    expect(p.errno).toBe(EBUSY);
  });

  it("create_duplicate_session", () => {
    fd1 = p.open(LIVEUPDATE_DEV);
    const s1 = createSession(p, fd1, "duplicate-session-test");
    expect(s1).toBeGreaterThanOrEqual(0);
    const s2 = createSession(p, fd1, "duplicate-session-test");
    expect(s2).toBeLessThan(0);
    expect(-s2).toBe(EEXIST);
    expect(p.close(s1)).toBe(0);
  });

  it("create_distinct_sessions", () => {
    fd1 = p.open(LIVEUPDATE_DEV);
    const s1 = createSession(p, fd1, "distinct-session-1");
    expect(s1).toBeGreaterThanOrEqual(0);
    const s2 = createSession(p, fd1, "distinct-session-2");
    expect(s2).toBeGreaterThanOrEqual(0);
    expect(s2).not.toBe(s1);
    expect(p.close(s1)).toBe(0);
    expect(p.close(s2)).toBe(0);
  });

  it("preserve_memfd", () => {
    const testStr = "hello liveupdate";
    fd1 = p.open(LIVEUPDATE_DEV);
    const sessionFd = createSession(p, fd1, "preserve-memfd-test");
    expect(sessionFd).toBeGreaterThanOrEqual(0);
    const memFd = p.memfdCreate("test-memfd");
    expect(p.write(memFd, testStr)).toBe(testStr.length);
    expect(preserveFd(p, sessionFd, memFd, 0x1234)).toBe(0);
    expect(p.close(sessionFd)).toBe(0);
    expect(p.lseek(memFd, 0)).toBe(0);
    expect(p.read(memFd, 64)).toBe(testStr);
    expect(p.close(memFd)).toBe(0);
    // Closing the session unpreserved the file: its pages are no longer preserved.
    expect(p.lu.machine.kho.preservedRuns().length).toBe(countBaselineRuns());
  });

  it("preserve_multiple_memfds", () => {
    const str1 = "data for memfd one";
    const str2 = "data for memfd two";
    fd1 = p.open(LIVEUPDATE_DEV);
    const sessionFd = createSession(p, fd1, "preserve-multi-memfd-test");
    expect(sessionFd).toBeGreaterThanOrEqual(0);
    const m1 = p.memfdCreate("test-memfd-1");
    const m2 = p.memfdCreate("test-memfd-2");
    expect(p.write(m1, str1)).toBe(str1.length);
    expect(p.write(m2, str2)).toBe(str2.length);
    expect(preserveFd(p, sessionFd, m1, 0xaaaa)).toBe(0);
    expect(preserveFd(p, sessionFd, m2, 0xbbbb)).toBe(0);
    p.lseek(m1, 0);
    expect(p.read(m1, 64)).toBe(str1);
    p.lseek(m2, 0);
    expect(p.read(m2, 64)).toBe(str2);
    expect(p.close(m1)).toBe(0);
    expect(p.close(m2)).toBe(0);
    expect(p.lu.sessions()[0]?.files.map((f) => f.token)).toEqual([0xaaaan, 0xbbbbn]);
    expect(p.close(sessionFd)).toBe(0);
    expect(p.lu.sessions()).toEqual([]);
  });

  it("preserve_complex_scenario", () => {
    const data1 = "data for session 1";
    const data2 = "data for session 2";
    fd1 = p.open(LIVEUPDATE_DEV);
    const s1 = createSession(p, fd1, "complex-session-1");
    const s2 = createSession(p, fd1, "complex-session-2");
    expect(s1).toBeGreaterThanOrEqual(0);
    expect(s2).toBeGreaterThanOrEqual(0);
    const md1 = p.memfdCreate("data1");
    expect(p.write(md1, data1)).toBe(data1.length);
    const me1 = p.memfdCreate("empty1");
    const md2 = p.memfdCreate("data2");
    expect(p.write(md2, data2)).toBe(data2.length);
    const me2 = p.memfdCreate("empty2");
    expect(preserveFd(p, s1, md1, 0x1111)).toBe(0);
    expect(preserveFd(p, s1, me1, 0x2222)).toBe(0);
    expect(preserveFd(p, s2, md2, 0x3333)).toBe(0);
    expect(preserveFd(p, s2, me2, 0x4444)).toBe(0);
    p.lseek(md1, 0);
    expect(p.read(md1, 64)).toBe(data1);
    p.lseek(md2, 0);
    expect(p.read(md2, 64)).toBe(data2);
    p.lseek(me1, 0);
    expect(p.read(me1, 64)).toBe("");
    p.lseek(me2, 0);
    expect(p.read(me2, 64)).toBe("");
    for (const fd of [md1, me1, md2, me2, s1, s2]) expect(p.close(fd)).toBe(0);
  });

  it("preserve_unsupported_fd", () => {
    fd1 = p.open(LIVEUPDATE_DEV);
    const sessionFd = createSession(p, fd1, "unsupported-fd-test");
    expect(sessionFd).toBeGreaterThanOrEqual(0);
    const unsupported = p.open("/dev/null");
    expect(unsupported).toBeGreaterThanOrEqual(0);
    expect(preserveFd(p, sessionFd, unsupported, 0xdead)).toBe(-ENOENT);
    // The device and session files themselves are not preservable either.
    expect(preserveFd(p, sessionFd, fd1, 0xdead)).toBe(-ENOENT);
    expect(preserveFd(p, sessionFd, sessionFd, 0xdead)).toBe(-ENOENT);
    expect(p.close(unsupported)).toBe(0);
    expect(p.close(sessionFd)).toBe(0);
  });

  it("prevent_double_preservation", () => {
    fd1 = p.open(LIVEUPDATE_DEV);
    const s1 = createSession(p, fd1, "double-preserve-session-1");
    const s2 = createSession(p, fd1, "double-preserve-session-2");
    const memFd = p.memfdCreate("test-memfd");
    expect(preserveFd(p, s1, memFd, 0x1111)).toBe(0);
    expect(preserveFd(p, s2, memFd, 0x2222)).toBe(-EBUSY);
    expect(preserveFd(p, s1, memFd, 0x3333)).toBe(-EBUSY);
    expect(p.close(memFd)).toBe(0);
    expect(p.close(s1)).toBe(0);
    expect(p.close(s2)).toBe(0);
  });

  it("create_session_no_null_termination", () => {
    fd1 = p.open(LIVEUPDATE_DEV);
    const arg = sessionArg(new Uint8Array(64).fill("X".charCodeAt(0)));
    expect(p.ioctl(fd1, LIVEUPDATE_IOCTL_CREATE_SESSION, arg)).toBeLessThan(0);
    expect(p.errno).toBe(EINVAL);
  });

  it("create_session_empty_name", () => {
    fd1 = p.open(LIVEUPDATE_DEV);
    expect(createSession(p, fd1, "")).toBe(-EINVAL);
  });

  it("get_session_name", () => {
    const name = "get-name-test-session";
    fd1 = p.open(LIVEUPDATE_DEV);
    const sessionFd = createSession(p, fd1, name);
    expect(sessionFd).toBeGreaterThanOrEqual(0);
    expect(getSessionName(p, sessionFd)).toBe(name);
    expect(p.close(sessionFd)).toBe(0);
  });

  it("get_session_name_max_length", () => {
    const longName = "A".repeat(63);
    fd1 = p.open(LIVEUPDATE_DEV);
    const sessionFd = createSession(p, fd1, longName);
    expect(sessionFd).toBeGreaterThanOrEqual(0);
    expect(getSessionName(p, sessionFd)).toBe(longName);
    expect(p.close(sessionFd)).toBe(0);
  });

  it("preserve_many_sessions (2000)", () => {
    const MANY_SESSIONS = 2000;
    fd1 = p.open(LIVEUPDATE_DEV);
    const fds: number[] = [];
    for (let i = 0; i < MANY_SESSIONS; i++) {
      const fd = createSession(p, fd1, `many-session-${i}`);
      expect(fd).toBeGreaterThanOrEqual(0);
      fds.push(fd);
    }
    // 2000 sessions need ceil(2000 / 51) = 40 blocks of the chain.
    expect(p.lu.sessionBlockCount).toBe(Math.ceil(MANY_SESSIONS / 51));
    for (const fd of fds) expect(p.close(fd)).toBe(0);
    expect(p.lu.sessionBlockCount).toBe(0);
  });

  it("preserve_many_files (500)", () => {
    const MANY_FILES = 500;
    fd1 = p.open(LIVEUPDATE_DEV);
    const sessionFd = createSession(p, fd1, "many-files-test");
    expect(sessionFd).toBeGreaterThanOrEqual(0);
    const memFds: number[] = [];
    for (let i = 0; i < MANY_FILES; i++) {
      const m = p.memfdCreate("test-memfd");
      expect(m).toBeGreaterThanOrEqual(0);
      expect(preserveFd(p, sessionFd, m, i)).toBe(0);
      memFds.push(m);
    }
    for (const m of memFds) expect(p.close(m)).toBe(0);
    expect(p.lu.sessions()[0]?.files.length).toBe(MANY_FILES);
    expect(p.close(sessionFd)).toBe(0);
    expect(p.lu.machine.kho.preservedRuns().length).toBe(countBaselineRuns());
  });

  /** Runs preserved by a freshly booted kernel with LUO (root FDT, kexec-metadata, luo_ser, FLB page). */
  function countBaselineRuns(): number {
    return LiveUpdate.boot({ memory: "512 MiB" }).machine.kho.preservedRuns().length;
  }
});
