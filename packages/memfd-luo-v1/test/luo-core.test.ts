/**
 * End to end through luo-core's device with the memfd-v1 handler, and across handler
 * versions: a memfd-v1 record meets a kernel that only has memfd-v2 (refused, nothing
 * consumed) and then one that has memfd-v1.
 */
import { PAGE_SIZE } from "@liveupdate/kho";
import { LiveUpdate } from "@liveupdate/luo-core";
import { F_SEAL_GROW, F_SEAL_SEAL, MFD_ALLOW_SEALING, MemfdFile, memfd } from "@liveupdate/memfd";
import { memfdV2 } from "@liveupdate/memfd-luo-v2";
import { describe, expect, it } from "vitest";
import { MEMFD_V1_COMPATIBLE, decodeMemfdV1, memfdV1 } from "../src/index.js";
import { errnoOf } from "./support/ops.js";

function asMemfd(file: unknown): MemfdFile {
  if (!(file instanceof MemfdFile)) throw new Error("not a memfd");
  return file;
}

describe("memfd-v1 through /dev/liveupdate", () => {
  it("luo_kexec_simple: the data, size and position come back; the seals do not", () => {
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV1] });
    const s = lu.open().createSession("test-session");
    const f = memfd.create(lu.machine, { name: "simple", flags: MFD_ALLOW_SEALING });
    f.write(new TextEncoder().encode("hello kexec world"));
    f.addSeals(F_SEAL_GROW);
    s.preserveFd(f, 0x1an);
    const next = lu.kexec({ handlers: [memfdV1] });
    const file = next.inspectIncoming()!.sessions[0]!.files[0]!;
    expect(file.compatible).toBe(MEMFD_V1_COMPATIBLE);
    expect(decodeMemfdV1(next.machine.memory, Number(file.data)).size).toBe(17);
    const s2 = next.open().retrieveSession("test-session");
    const g = asMemfd(s2.retrieveFd(0x1an));
    expect(new TextDecoder().decode(g.pread(0, g.size))).toBe("hello kexec world");
    expect([g.position, g.seals]).toEqual([17, F_SEAL_SEAL]);
    g.write(new Uint8Array(PAGE_SIZE)); // F_SEAL_GROW did not come back
    s2.finish();
  });

  it("a memfd-v1 record in a kernel with only memfd-v2: EIO at open, nothing consumed; a kernel with memfd-v1 then retrieves it", () => {
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [memfdV1] });
    const s = lu.open().createSession("cross");
    const f = memfd.create(lu.machine, { name: "old" });
    const data = new Uint8Array(3 * PAGE_SIZE + 9).map((_, i) => (i * 5 + 1) & 0xff);
    f.write(data);
    s.preserveFd(f, 0x99n);
    const next = lu.kexec({ handlers: [memfdV2] });
    const stamped = next.machine.incoming.stampedCount;
    expect(errnoOf(() => next.open())).toBe("EIO"); // no handler for "memfd-v1" (the ENOENT stays inside LUO)
    expect(errnoOf(() => next.open())).toBe("EIO");
    expect(next.machine.incoming.stampedCount).toBe(stamped);
    next.detach();
    const retry = LiveUpdate.attach(next.machine, { handlers: [memfdV2, memfdV1] });
    const g = asMemfd(retry.open().retrieveSession("cross").retrieveFd(0x99n));
    expect(Buffer.from(g.pread(0, g.size)).equals(Buffer.from(data))).toBe(true);
  });
});
