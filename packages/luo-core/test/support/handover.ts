/**
 * Helpers for tests that tamper with a handover: a next machine without LUO attached (so
 * the boot checks run on tampered bytes), and a fingerprint of the incoming state (every
 * stamp and every byte of every preserved run) to prove a failed attempt changed nothing.
 */
import { createHash } from "node:crypto";
import { PAGE_SIZE, type Machine } from "@liveupdate/kho";
import { LiveUpdate } from "../../src/index.js";
import { TestMemFile, testHandler, text, type TestHandler } from "./test-handler.js";

/** Every stamp and every byte of every still-stamped run of the incoming side. */
export function incomingFingerprint(machine: Machine): string {
  const hash = createHash("sha256");
  const runs = machine.incoming.stampedRuns();
  hash.update(JSON.stringify(runs));
  for (const r of runs) hash.update(machine.memory.read(r.phys, PAGE_SIZE * 2 ** r.order));
  return hash.digest("hex");
}

/** A described old kernel: sessions with files, by name. */
export type Plan = readonly { readonly name: string; readonly files: readonly { readonly token: bigint; readonly data: string; readonly kind?: string }[] }[];

/** Boot, preserve `plan`, and kexec with a plain `machine.kexec()` (no LUO attached next). */
export function handover(plan: Plan, handlers: TestHandler[] = [testHandler()]): { next: Machine; luoPhys: number; flbPhys: number } {
  const lu = LiveUpdate.boot({ memory: "128 MiB", handlers });
  const dev = lu.open();
  for (const s of plan) {
    const session = dev.createSession(s.name);
    for (const f of s.files) session.preserveFd(new TestMemFile({ bytes: text(f.data), kind: f.kind ?? "a" }), f.token);
  }
  return { next: lu.machine.kexec(), luoPhys: lu.luoPhys, flbPhys: lu.flbPagePhys };
}

/** Retrieve and check every file of `plan` in a next kernel; finish every session. */
export function retrieveAll(lu: LiveUpdate, plan: Plan): void {
  const dev = lu.open();
  for (const s of plan) {
    const session = dev.retrieveSession(s.name);
    for (const f of s.files) {
      const file = session.retrieveFd(f.token);
      if (!(file instanceof TestMemFile) || new TextDecoder().decode(file.contents()) !== f.data) {
        throw new Error(`file ${f.token} of ${s.name} came back wrong`);
      }
    }
    session.finish();
    session.close();
  }
  dev.close();
}
