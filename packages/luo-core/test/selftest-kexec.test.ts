/**
 * The kexec selftests of tools/testing/selftests/liveupdate (luo_kexec_simple.c,
 * luo_multi_session.c, luo_stress_sessions.c, luo_stress_files.c) through the simulated
 * kexec: stage 1 in the old kernel (the daemon keeps every session fd open), kexec, stage 2
 * in the new kernel, each with the `luo_test()` stage detection of luo_test_utils.c.
 */
import { describe, expect, it } from "vitest";
import { LiveUpdate } from "../src/index.js";
import { testHandler, type TestHandler } from "./support/test-handler.js";
import {
  ENOENT,
  Proc,
  createAndPreserveMemfd,
  createSession,
  createStateFile,
  restoreAndReadStage,
  restoreAndVerifyMemfd,
  retrieveSession,
  sessionFinish,
} from "./support/uapi.js";

type Stage1 = (p: Proc, luoFd: number) => void;
type Stage2 = (p: Proc, luoFd: number, stateSessionFd: number) => void;

/**
 * `luo_test()`: open the device, detect the stage by retrieving the state session, run it.
 * Stage 1 runs in a cold-booted kernel, then the machine kexecs (the daemon's fds stay open
 * in the old kernel) and stage 2 runs in the next one.
 */
function luoTest(stateSessionName: string, stage1: Stage1, stage2: Stage2, handler: TestHandler = testHandler()): LiveUpdate {
  const old = new Proc(LiveUpdate.boot({ memory: "1 GiB", handlers: [handler] }));
  let luoFd = old.open("/dev/liveupdate");
  expect(luoFd).toBeGreaterThanOrEqual(0);
  expect(retrieveSession(old, luoFd, stateSessionName)).toBe(-ENOENT); // stage 1 detected
  stage1(old, luoFd);

  const next = new Proc(old.lu.kexec({ handlers: [handler] }));
  expect(next.lu.incoming.state).toBe("pending");
  expect(next.lu.liveupdateNum).toBe(2n);
  luoFd = next.open("/dev/liveupdate");
  expect(luoFd).toBeGreaterThanOrEqual(0);
  const stateFd = retrieveSession(next, luoFd, stateSessionName);
  expect(stateFd).toBeGreaterThanOrEqual(0); // stage 2 detected
  stage2(next, luoFd, stateFd);
  return next.lu;
}

/**
 * After every session finished, the only preserved pages the next kernel has not reclaimed
 * are KHO's own (root FDT, kexec-metadata) and the FLB page (Linux never restores it).
 */
function expectOnlyKhoLeftovers(lu: LiveUpdate): void {
  const incoming = lu.machine.incoming;
  const expected = [incoming.fdtPhys, incoming.retrieveSubtree("kexec-metadata").phys, lu.incoming.flbsPhys].sort((a, b) => a! - b!);
  expect(incoming.stampedRuns().map((r) => r.phys)).toEqual(expected);
}

describe("selftests/liveupdate kexec tests", () => {
  it("luo_kexec_simple", () => {
    const TEST_SESSION_NAME = "test-session";
    const TEST_MEMFD_TOKEN = 0x1a;
    const TEST_MEMFD_DATA = "hello kexec world";
    const STATE_SESSION_NAME = "kexec_simple_state";
    const STATE_MEMFD_TOKEN = 999;
    const next = luoTest(
      STATE_SESSION_NAME,
      (p, luoFd) => {
        createStateFile(p, luoFd, STATE_SESSION_NAME, STATE_MEMFD_TOKEN, 2);
        const sessionFd = createSession(p, luoFd, TEST_SESSION_NAME);
        expect(sessionFd).toBeGreaterThanOrEqual(0);
        expect(createAndPreserveMemfd(p, sessionFd, TEST_MEMFD_TOKEN, TEST_MEMFD_DATA)).toBe(0);
        expect(p.close(luoFd)).toBe(0);
      },
      (p, luoFd, stateFd) => {
        expect(restoreAndReadStage(p, stateFd, STATE_MEMFD_TOKEN)).toBe(2);
        const sessionFd = retrieveSession(p, luoFd, TEST_SESSION_NAME);
        expect(sessionFd).toBeGreaterThanOrEqual(0);
        const mfd = restoreAndVerifyMemfd(p, sessionFd, TEST_MEMFD_TOKEN, TEST_MEMFD_DATA);
        expect(mfd).toBeGreaterThanOrEqual(0);
        p.close(mfd);
        expect(sessionFinish(p, sessionFd)).toBe(0);
        expect(p.close(sessionFd)).toBe(0);
        expect(sessionFinish(p, stateFd)).toBe(0);
        expect(p.close(stateFd)).toBe(0);
      },
    );
    expect(next.sessions()).toEqual([]);
    expectOnlyKhoLeftovers(next);
  });

  it("luo_multi_session", () => {
    const SESSION_EMPTY_1 = "multi-test-empty-1";
    const SESSION_EMPTY_2 = "multi-test-empty-2";
    const SESSION_FILES_1 = "multi-test-files-1";
    const SESSION_FILES_2 = "multi-test-files-2";
    const MFD1 = { token: 0x1001, data: "Data for session files 1" };
    const MFD2 = { token: 0x2002, data: "First file for session files 2" };
    const MFD3 = { token: 0x3003, data: "Second file for session files 2" };
    const STATE_SESSION_NAME = "kexec_multi_state";
    const STATE_MEMFD_TOKEN = 998;
    const next = luoTest(
      STATE_SESSION_NAME,
      (p, luoFd) => {
        createStateFile(p, luoFd, STATE_SESSION_NAME, STATE_MEMFD_TOKEN, 2);
        expect(createSession(p, luoFd, SESSION_EMPTY_1)).toBeGreaterThanOrEqual(0);
        expect(createSession(p, luoFd, SESSION_EMPTY_2)).toBeGreaterThanOrEqual(0);
        const f1 = createSession(p, luoFd, SESSION_FILES_1);
        expect(createAndPreserveMemfd(p, f1, MFD1.token, MFD1.data)).toBe(0);
        const f2 = createSession(p, luoFd, SESSION_FILES_2);
        expect(createAndPreserveMemfd(p, f2, MFD2.token, MFD2.data)).toBe(0);
        expect(createAndPreserveMemfd(p, f2, MFD3.token, MFD3.data)).toBe(0);
        expect(p.close(luoFd)).toBe(0);
      },
      (p, luoFd, stateFd) => {
        expect(restoreAndReadStage(p, stateFd, STATE_MEMFD_TOKEN)).toBe(2);
        const e1 = retrieveSession(p, luoFd, SESSION_EMPTY_1);
        const e2 = retrieveSession(p, luoFd, SESSION_EMPTY_2);
        const f1 = retrieveSession(p, luoFd, SESSION_FILES_1);
        const f2 = retrieveSession(p, luoFd, SESSION_FILES_2);
        for (const fd of [e1, e2, f1, f2]) expect(fd).toBeGreaterThanOrEqual(0);
        for (const [fd, m] of [
          [f1, MFD1],
          [f2, MFD2],
          [f2, MFD3],
        ] as const) {
          const mfd = restoreAndVerifyMemfd(p, fd, m.token, m.data);
          expect(mfd).toBeGreaterThanOrEqual(0);
          p.close(mfd);
        }
        for (const fd of [e1, e2, f1, f2, stateFd]) {
          expect(sessionFinish(p, fd)).toBe(0);
          expect(p.close(fd)).toBe(0);
        }
      },
    );
    expect(next.sessions()).toEqual([]);
  });

  it("luo_stress_sessions (2000 sessions)", () => {
    const NUM_SESSIONS = 2000;
    const STATE_SESSION_NAME = "kexec_many_state";
    const STATE_MEMFD_TOKEN = 999;
    luoTest(
      STATE_SESSION_NAME,
      (p, luoFd) => {
        createStateFile(p, luoFd, STATE_SESSION_NAME, STATE_MEMFD_TOKEN, 2);
        for (let i = 0; i < NUM_SESSIONS; i++) expect(createSession(p, luoFd, `many-test-${i}`)).toBeGreaterThanOrEqual(0);
        expect(p.lu.sessionBlockCount).toBe(Math.ceil((NUM_SESSIONS + 1) / 51));
        expect(p.close(luoFd)).toBe(0);
      },
      (p, luoFd, stateFd) => {
        const view = p.lu.incoming;
        expect(view.state).toBe("deserialized");
        expect(restoreAndReadStage(p, stateFd, STATE_MEMFD_TOKEN)).toBe(2);
        for (let i = 0; i < NUM_SESSIONS; i++) {
          const fd = retrieveSession(p, luoFd, `many-test-${i}`);
          expect(fd).toBeGreaterThanOrEqual(0);
          expect(sessionFinish(p, fd)).toBe(0);
          p.close(fd);
        }
        expect(sessionFinish(p, stateFd)).toBe(0);
        p.close(stateFd);
      },
    );
  });

  it("luo_stress_files (500 memfds)", () => {
    const NUM_FILES = 500;
    const STATE_SESSION_NAME = "kexec_many_files_state";
    const STATE_MEMFD_TOKEN = 9999;
    const TEST_SESSION_NAME = "many_files_session";
    const next = luoTest(
      STATE_SESSION_NAME,
      (p, luoFd) => {
        createStateFile(p, luoFd, STATE_SESSION_NAME, STATE_MEMFD_TOKEN, 2);
        const sessionFd = createSession(p, luoFd, TEST_SESSION_NAME);
        expect(sessionFd).toBeGreaterThanOrEqual(0);
        for (let i = 0; i < NUM_FILES; i++) expect(createAndPreserveMemfd(p, sessionFd, i, `file-data-${i}`)).toBe(0);
        expect(p.close(luoFd)).toBe(0);
      },
      (p, luoFd, stateFd) => {
        expect(restoreAndReadStage(p, stateFd, STATE_MEMFD_TOKEN)).toBe(2);
        const sessionFd = retrieveSession(p, luoFd, TEST_SESSION_NAME);
        expect(sessionFd).toBeGreaterThanOrEqual(0);
        // 500 files need ceil(500 / 63) = 8 blocks in the session's chain.
        for (let i = 0; i < NUM_FILES; i++) {
          const fd = restoreAndVerifyMemfd(p, sessionFd, i, `file-data-${i}`);
          expect(fd).toBeGreaterThanOrEqual(0);
          p.close(fd);
        }
        expect(sessionFinish(p, sessionFd)).toBe(0);
        p.close(sessionFd);
        expect(sessionFinish(p, stateFd)).toBe(0);
        p.close(stateFd);
      },
    );
    expectOnlyKhoLeftovers(next);
  });
});
