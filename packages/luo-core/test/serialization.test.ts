/**
 * What the old kernel writes at kexec, byte for byte, against layouts computed by hand from
 * luo.h / block.h: luo_ser (32), the session chain (80-byte records, 51 per block), each
 * session's file chain (64-byte records, 63 per block), the FLB page; and the root FDT's
 * "LUO" node (blob-size 32).
 */
import { PAGE_SIZE, type PhysicalMemory } from "@liveupdate/kho";
import { describe, expect, it } from "vitest";
import { LiveUpdate, LUO_SER_SIZE, io, ioc } from "../src/index.js";
import { TestMemFile, testHandler, text } from "./support/test-handler.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** A little-endian byte builder. */
class Bytes {
  readonly b: Uint8Array;
  readonly v: DataView;
  constructor(n: number) {
    this.b = new Uint8Array(n);
    this.v = new DataView(this.b.buffer);
  }
  str(off: number, s: string): this {
    this.b.set(new TextEncoder().encode(s), off);
    return this;
  }
  u64(off: number, x: bigint | number): this {
    this.v.setBigUint64(off, BigInt(x), true);
    return this;
  }
}

function page(mem: PhysicalMemory, phys: number): Uint8Array {
  return mem.read(phys, PAGE_SIZE);
}

describe("serialization at kexec", () => {
  it("one session with two files and one without: every byte of luo_ser, blocks and the FLB page", () => {
    const h = testHandler({ compatible: "test-memfd-v1" });
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [h] });
    const dev = lu.open();
    const alpha = dev.createSession("alpha");
    alpha.preserveFd(new TestMemFile({ bytes: text("first") }), 0x11);
    alpha.preserveFd(new TestMemFile({ bytes: text("second") }), 0xfedcba9876543210n);
    dev.createSession("beta");
    const data = alpha.files.map((f) => f.serializedData);
    const luoPhys = lu.luoPhys;
    const flbPhys = lu.flbPagePhys;

    const next = lu.kexec({ handlers: [h] });
    const mem = next.machine.memory;
    // The root FDT names the blob, 32 bytes.
    expect(next.machine.incoming.retrieveSubtree("LUO")).toEqual({ phys: luoPhys, size: LUO_SER_SIZE });

    const ser = mem.read(luoPhys, 32);
    const sessionsPa = Number(new DataView(ser.buffer).getBigUint64(16, true));
    expect(hex(ser)).toBe(hex(new Bytes(32).str(0, "luo-v5").u64(8, 1).u64(16, sessionsPa).u64(24, flbPhys).b));
    expect(sessionsPa % PAGE_SIZE).toBe(0);

    const sblock = page(mem, sessionsPa);
    const filesPa = Number(new DataView(sblock.buffer).getBigUint64(16 + 64, true));
    const expectSessions = new Bytes(PAGE_SIZE)
      .u64(0, 0) // next
      .u64(8, 2) // count
      .str(16, "alpha")
      .u64(16 + 64, filesPa)
      .u64(16 + 72, 2)
      .str(16 + 80, "beta"); // files 0, count 0
    expect(hex(sblock)).toBe(hex(expectSessions.b));

    const fblock = page(mem, filesPa);
    const expectFiles = new Bytes(PAGE_SIZE)
      .u64(0, 0)
      .u64(8, 2)
      .str(16, "test-memfd-v1")
      .u64(16 + 48, data[0]!)
      .u64(16 + 56, 0x11)
      .str(16 + 64, "test-memfd-v1")
      .u64(16 + 64 + 48, data[1]!)
      .u64(16 + 64 + 56, 0xfedcba9876543210n);
    expect(hex(fblock)).toBe(hex(expectFiles.b));

    expect(hex(page(mem, flbPhys))).toBe(hex(new Bytes(PAGE_SIZE).u64(0, 1).u64(8, 0).b));

    // The next kernel's own blob: liveupdate_num 2, no sessions yet, its own FLB page.
    const own = mem.read(next.luoPhys, 32);
    expect(hex(own)).toBe(hex(new Bytes(32).str(0, "luo-v5").u64(8, 2).u64(16, 0).u64(24, next.flbPagePhys).b));
  });

  it("52 sessions and 64 files: two blocks each, linked, counts 51+1 and 63+1", () => {
    const h = testHandler();
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [h] });
    const dev = lu.open();
    const big = dev.createSession("big");
    for (let i = 0; i < 64; i++) big.preserveFd(new TestMemFile({ bytes: text(`f${i}`) }), i);
    for (let i = 1; i < 52; i++) dev.createSession(`s${i}`);
    const luoPhys = lu.luoPhys;
    const next = lu.kexec({ handlers: [h] });
    const mem = next.machine.memory;
    const head = Number(mem.readU64(luoPhys + 16));
    const second = Number(mem.readU64(head));
    expect(second).not.toBe(0);
    expect([mem.readU64(head + 8), mem.readU64(second), mem.readU64(second + 8)]).toEqual([51n, 0n, 1n]);
    // Record 51 (the 52nd session) is the first of the second block.
    expect(new TextDecoder().decode(mem.read(second + 16, 3))).toBe("s51");
    const files = Number(mem.readU64(head + 16 + 64));
    expect(mem.readU64(head + 16 + 72)).toBe(64n);
    const files2 = Number(mem.readU64(files));
    expect([mem.readU64(files + 8), mem.readU64(files2), mem.readU64(files2 + 8)]).toEqual([63n, 0n, 1n]);
    expect(mem.readU64(files2 + 16 + 56)).toBe(63n); // token of the 64th file
    const view = next.inspectIncoming();
    expect(view?.sessions.length).toBe(52);
    expect(view?.sessions[0]?.files.map((f) => f.token)).toEqual(Array.from({ length: 64 }, (_, i) => BigInt(i)));
  });

  it("names and compatibles are written with strscpy (bytes past the NUL untouched: zero)", () => {
    const long = "n".repeat(63);
    const h = testHandler({ compatible: "c".repeat(47) });
    const lu = LiveUpdate.boot({ memory: "256 MiB", handlers: [h] });
    lu.open().createSession(long).preserveFd(new TestMemFile({ kind: "a" }), 1);
    const luoPhys = lu.luoPhys;
    const next = lu.kexec({ handlers: [h] });
    const mem = next.machine.memory;
    const sb = Number(mem.readU64(luoPhys + 16));
    expect(hex(mem.read(sb + 16, 64))).toBe(hex(new Bytes(64).str(0, long).b));
    const fb = Number(mem.readU64(sb + 16 + 64));
    expect(hex(mem.read(fb + 16, 48))).toBe(hex(new Bytes(48).str(0, "c".repeat(47)).b));
    expect(next.open().retrieveSession(long).files[0]?.compatible).toBe("c".repeat(47));
  });

  it("ioctl request numbers are _IO(0xBA, nr)", () => {
    expect(io(0xba, 0x00)).toBe(0xba00);
    expect(io(0xba, 0x43)).toBe(0xba43);
    // _IOWR(0xBA, 0, 72) would be 0xC048BA00: a different request (ENOTTY).
    expect(ioc(3, 0xba, 0, 72)).toBe(0xc048ba00);
  });
});
