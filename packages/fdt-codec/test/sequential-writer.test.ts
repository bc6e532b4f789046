/**
 * The sequential writer's facts, asserted on bytes built from first principles (the
 * differential test compares it with libfdt itself).
 */
import { describe, expect, it } from "vitest";
import { FDT_ERR, FdtError, type FdtErrorCode } from "../src/errors.js";
import { FDT_MAGIC, FDT_SW_MAGIC, HEADER } from "../src/layout.js";
import {
  encodeSequential,
  FDT_CREATE_FLAG_NO_NAME_DEDUP,
  FdtSequentialWriter,
  suffixHashOf,
} from "../src/sequential-writer.js";
import type { FdtNode, FdtTree } from "../src/tree.js";

const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at);
const i32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getInt32(at);

function expectFdtError(fn: () => unknown, code: FdtErrorCode, rule?: string): FdtError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FdtError);
  const err = caught as FdtError;
  expect(err.code).toBe(code);
  expect(err.offset).toBe(-1);
  if (rule !== undefined) expect(err.rule).toBe(rule);
  return err;
}

/** A tiny independent model of a finished blob: header + rsv terminator at 48, struct, strings. */
function expectedBlob(struct: number[], strings: string, reserve: [bigint, bigint][] = []): Uint8Array {
  const structBytes = struct.length * 4;
  const offStruct = 48 + (reserve.length + 1) * 16;
  const offStrings = offStruct + structBytes;
  const total = offStrings + strings.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, FDT_MAGIC);
  dv.setUint32(4, total);
  dv.setUint32(8, offStruct);
  dv.setUint32(12, offStrings);
  dv.setUint32(16, 48);
  dv.setUint32(20, 17);
  dv.setUint32(24, 16);
  dv.setUint32(32, strings.length);
  dv.setUint32(36, structBytes);
  reserve.forEach(([a, s], i) => {
    dv.setBigUint64(48 + 16 * i, a);
    dv.setBigUint64(56 + 16 * i, s);
  });
  struct.forEach((w, i) => {
    dv.setUint32(offStruct + 4 * i, w);
  });
  out.set(latin1(strings), offStrings);
  return out;
}

describe("the fact-sheet example", () => {
  it("lists names in reverse order of first insertion, suffix-deduplicated, most recent wins", () => {
    const names = ["compatible", "preserved-memory-map", "fdt", "compatible", "phandle", "linux,phandle", "handle"];
    const w = new FdtSequentialWriter(1024);
    w.finishReservemap();
    w.beginNode("");
    names.forEach((n, i) => {
      w.propertyU32(n, i);
    });
    w.endNode();
    const blob = w.finish();

    const strings = "linux,phandle\0phandle\0fdt\0preserved-memory-map\0compatible\0";
    const at = (s: string): number => strings.indexOf(s + "\0");
    // phandle was stored before linux,phandle existed; handle lands inside linux,phandle.
    const nameoffs = [at("compatible"), at("preserved-memory-map"), at("fdt"), at("compatible"), 14, at("linux,phandle"), 7];
    expect(strings.slice(7, 14)).toBe("handle\0");
    const struct = [1, 0];
    names.forEach((_, i) => struct.push(3, 4, nameoffs[i]!, i));
    struct.push(2, 9);
    expect(blob).toEqual(expectedBlob(struct, strings));
    expect(blob.byteOffset).toBe(0);
    expect(blob.length).toBe(u32(blob, HEADER.totalsize));
  });

  it("a name stored earlier loses to a later string that ends with it", () => {
    const w = new FdtSequentialWriter(512);
    w.finishReservemap();
    w.beginNode("");
    w.property("phandle", new Uint8Array());
    w.property("linux,phandle", new Uint8Array());
    w.property("phandle", new Uint8Array());
    w.property("", new Uint8Array());
    w.endNode();
    // "linux,phandle\0phandle\0": the second "phandle" is found at 6, inside the newer string;
    // "" is the NUL that ends the most recent string.
    expect(w.finish()).toEqual(expectedBlob([1, 0, 3, 0, 14, 3, 0, 0, 3, 0, 6, 3, 0, 13, 2, 9], "linux,phandle\0phandle\0"));
  });

  it("FDT_CREATE_FLAG_NO_NAME_DEDUP stores every name again", () => {
    const w = new FdtSequentialWriter(512, FDT_CREATE_FLAG_NO_NAME_DEDUP);
    expect(w.flags).toBe(1);
    w.finishReservemap();
    expect(u32(w.workingBuffer, HEADER.lastCompVersion)).toBe(1); // flags live there until finish
    w.beginNode("");
    w.property("a", new Uint8Array());
    w.property("a", new Uint8Array());
    w.property("ba", new Uint8Array());
    w.endNode();
    expect(w.finish()).toEqual(expectedBlob([1, 0, 3, 0, 5, 3, 0, 3, 3, 0, 0, 2, 9], "ba\0a\0a\0"));
  });

  it("long names are found by suffix, short and long queries alike", () => {
    const long = "u".repeat(61) + "v".repeat(60) + "-tail";
    const w = FdtSequentialWriter.growable();
    w.finishReservemap();
    w.beginNode("");
    w.property(long, new Uint8Array()); // stored
    w.property(long.slice(40), new Uint8Array()); // long query: inside `long`
    w.property("v-tail", new Uint8Array()); // short query: inside `long`
    w.property("x-tail", new Uint8Array()); // stored
    w.property("-tail", new Uint8Array()); // now inside "x-tail", the most recent
    w.endNode();
    const strings = "x-tail\0" + long + "\0";
    const struct = [1, 0, 3, 0, 7, 3, 0, 7 + 40, 3, 0, 7 + long.length - 6, 3, 0, 0, 3, 0, 1, 2, 9];
    expect(w.finish()).toEqual(expectedBlob(struct, strings));
  });
});

describe("the de-duplication index", () => {
  /** Two different names with the same index hash (birthday search, seeded). */
  function collidingNames(): [string, string] {
    const seen = new Map<number, string>();
    let x = 12345;
    for (;;) {
      let name = "";
      for (let i = 0; i < 7; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        name += String.fromCharCode(0x61 + ((x >>> 16) % 26));
      }
      const h = suffixHashOf(name);
      const other = seen.get(h);
      if (other !== undefined && other !== name) return [other, name];
      seen.set(h, name);
    }
  }

  it("a hash collision falls back to libfdt's scan and still finds the right string", () => {
    const [a, b] = collidingNames();
    expect(suffixHashOf(a)).toBe(suffixHashOf(b));
    const w = new FdtSequentialWriter(512);
    w.finishReservemap();
    w.beginNode("");
    w.property(a, new Uint8Array()); // stored
    w.property(b, new Uint8Array()); // same hash, different bytes: stored, takes over the slot
    w.property(a, new Uint8Array()); // the slot names b: the scan finds a
    w.property(b, new Uint8Array()); // the slot names b: verified
    w.property(a.slice(3), new Uint8Array()); // a suffix of a
    w.endNode();
    const strings = b + "\0" + a + "\0";
    const struct = [1, 0, 3, 0, 8, 3, 0, 0, 3, 0, 8, 3, 0, 0, 3, 0, 11, 2, 9];
    expect(w.finish()).toEqual(expectedBlob(struct, strings));
  });

  it("a hash collision in the index (past the direct-scan size) still finds the right string", () => {
    const [a, b] = collidingNames();
    const w = new FdtSequentialWriter(4096);
    w.finishReservemap();
    w.beginNode("");
    // Enough stored names that lookups go through the suffix-hash index, not a direct scan.
    const fillers = Array.from({ length: 40 }, (_, i) => `filler${i}`);
    for (const f of fillers) w.property(f, new Uint8Array());
    const asked = [a, b, a, b, a.slice(3)];
    for (const n of asked) w.property(n, new Uint8Array());
    w.endNode();
    const blob = w.finish();
    const dv = new DataView(blob.buffer, blob.byteOffset);
    const offStrings = dv.getUint32(HEADER.offDtStrings);
    // a and b are both stored once; nothing else is added.
    expect(dv.getUint32(HEADER.sizeDtStrings)).toBe([...fillers, a, b].reduce((t, n) => t + n.length + 1, 0));
    const nameoffs: number[] = [];
    let at = dv.getUint32(HEADER.offDtStruct) + 8 + fillers.length * 12;
    for (let i = 0; i < asked.length; i++, at += 12) nameoffs.push(dv.getUint32(at + 8));
    for (const [i, n] of asked.entries()) {
      const off = offStrings + nameoffs[i]!;
      expect(new TextDecoder().decode(blob.subarray(off, blob.indexOf(0, off)))).toBe(n);
    }
    expect(nameoffs[2]).toBe(nameoffs[0]); // the slot held b: the scan found a again
    expect(nameoffs[4]).toBe(nameoffs[0]! + 3); // the suffix lands inside a
  });

  it("stays correct past many growths of the table", () => {
    const w = FdtSequentialWriter.growable();
    w.finishReservemap();
    w.beginNode("");
    const names: string[] = [];
    for (let i = 0; i < 3000; i++) names.push(`name-${i.toString(36)}-${"s".repeat(i % 40)}`);
    for (const n of names) w.property(n, new Uint8Array());
    for (const n of names) w.property(n.slice(2), new Uint8Array()); // suffixes: all found
    w.endNode();
    const blob = w.finish();
    const dv = new DataView(blob.buffer, blob.byteOffset);
    const offStrings = dv.getUint32(HEADER.offDtStrings);
    expect(dv.getUint32(HEADER.sizeDtStrings)).toBe(names.reduce((t, n) => t + n.length + 1, 0));
    // Every property's nameoff names what was asked for, and the suffix ones point into the originals.
    const asked = [...names, ...names.map((n) => n.slice(2))];
    let at = dv.getUint32(HEADER.offDtStruct) + 8;
    for (let i = 0; i < asked.length; i++, at += 12) {
      const off = offStrings + dv.getUint32(at + 8);
      const end = blob.indexOf(0, off);
      expect(Buffer.from(blob.subarray(off, end)).toString("latin1")).toBe(asked[i]);
      if (i >= names.length) expect(dv.getUint32(at + 8)).toBe(dv.getUint32(at + 8 - 12 * names.length) + 2);
    }
  });
});

describe("layout", () => {
  it("writes reserve entries at 48, tokens with their names, and no tail padding", () => {
    const w = new FdtSequentialWriter(4096);
    w.addReservemapEntry(0x1_0000_0000n, 0x2000n);
    w.addReservemapEntry(0xffff_ffff_ffff_ffffn, 1n);
    w.finishReservemap();
    w.beginNode("");
    w.beginNode("cpu@0");
    w.propertyString("status", "okay");
    w.propertyU64("reg", 0x0102_0304_0506_0708n);
    w.property("odd", latin1("\x01\x02\x03"));
    w.endNode();
    w.endNode();
    const blob = w.finish();
    const name = (s: string): number[] => {
      const b = latin1(s + "\0\0\0\0").subarray(0, (s.length + 4) & ~3);
      return Array.from({ length: b.length / 4 }, (_, i) => u32(b, 4 * i));
    };
    const strings = "odd\0reg\0status\0";
    const struct = [
      1, 0,
      1, ...name("cpu@0"),
      3, 5, strings.indexOf("status"), ...name("okay"),
      3, 8, strings.indexOf("reg"), 0x01020304, 0x05060708,
      3, 3, strings.indexOf("odd"), 0x01020300,
      2, 2, 9,
    ];
    expect(blob).toEqual(expectedBlob(struct, strings, [[0x1_0000_0000n, 0x2000n], [0xffff_ffff_ffff_ffffn, 1n]]));
  });

  it("keeps the intermediate header libfdt keeps", () => {
    const w = new FdtSequentialWriter(256);
    const b0 = w.workingBuffer;
    expect(b0.length).toBe(256);
    expect([u32(b0, 0), u32(b0, 4), u32(b0, 8), u32(b0, 12), u32(b0, 16), u32(b0, 20), u32(b0, 24)]).toEqual([
      FDT_SW_MAGIC, 256, 48, 0, 48, 17, 0,
    ]);
    expect(w.state).toBe("reservemap");
    w.finishReservemap();
    w.beginNode("");
    w.property("ab", new Uint8Array(1));
    const b1 = w.workingBuffer;
    expect(w.state).toBe("struct");
    expect(u32(b1, HEADER.offDtStrings)).toBe(256);
    expect(u32(b1, HEADER.offDtStruct)).toBe(64);
    expect(u32(b1, HEADER.sizeDtStruct)).toBe(8 + 16);
    expect(u32(b1, HEADER.sizeDtStrings)).toBe(3);
    expect(i32(b1, 64 + 8 + 8)).toBe(-3); // nameoff is negative until finish
    expect(Array.from(b1.subarray(253))).toEqual([0x61, 0x62, 0]);
    w.endNode();
    w.finish();
    expect(w.state).toBe("finished");
    expect(i32(w.workingBuffer, 64 + 8 + 8)).toBe(0);
  });

  it("does not check nesting: unbalanced sequences finish", () => {
    const open = new FdtSequentialWriter(256);
    open.finishReservemap();
    open.beginNode("");
    open.beginNode("a");
    expect(open.finish()).toEqual(expectedBlob([1, 0, 1, 0x61000000, 9], ""));
    const closed = new FdtSequentialWriter(256);
    closed.finishReservemap();
    closed.endNode();
    closed.propertyU32("x", 7);
    expect(closed.finish()).toEqual(expectedBlob([2, 3, 4, 0, 7, 9], "x\0"));
  });

  it("placeholders hand out a writable view of the value", () => {
    const w = new FdtSequentialWriter(256);
    w.finishReservemap();
    w.beginNode("");
    const v = w.propertyPlaceholder("reg", 6);
    expect(v.length).toBe(6);
    v.set([1, 2, 3, 4, 5, 6]);
    w.endNode();
    expect(w.finish()).toEqual(expectedBlob([1, 0, 3, 6, 0, 0x01020304, 0x05060000, 2, 9], "reg\0"));
  });

  it("boot_cpuid_phys is a plain header field, settable in any state", () => {
    const w = new FdtSequentialWriter(256);
    w.setBootCpuidPhys(3);
    w.finishReservemap();
    const blob = w.finish();
    expect(u32(blob, HEADER.bootCpuidPhys)).toBe(3);
    w.setBootCpuidPhys(0xffffffff);
    expect(u32(blob, HEADER.bootCpuidPhys)).toBe(0xffffffff);
  });
});

describe("state machine", () => {
  type Call = [string, (w: FdtSequentialWriter) => unknown];
  const structCalls: Call[] = [
    ["beginNode", (w) => { w.beginNode("n"); }],
    ["endNode", (w) => { w.endNode(); }],
    ["property", (w) => { w.property("p", new Uint8Array(1)); }],
    ["propertyString", (w) => { w.propertyString("p", "s"); }],
    ["propertyU32", (w) => { w.propertyU32("p", 1); }],
    ["propertyU64", (w) => { w.propertyU64("p", 1n); }],
    ["propertyPlaceholder", (w) => w.propertyPlaceholder("p", 4)],
    ["finish", (w) => w.finish()],
  ];
  const reserveCalls: Call[] = [
    ["addReservemapEntry", (w) => { w.addReservemapEntry(1n, 2n); }],
    ["finishReservemap", (w) => { w.finishReservemap(); }],
  ];

  it.each(structCalls)("%s before finishReservemap is FDT_ERR_BADSTATE", (_, call) => {
    const w = new FdtSequentialWriter(256);
    const before = w.workingBuffer.slice();
    expectFdtError(() => call(w), "FDT_ERR_BADSTATE", "sw.state.reservemap");
    expect(w.workingBuffer).toEqual(before);
  });

  it.each(reserveCalls)("%s after finishReservemap is FDT_ERR_BADSTATE", (_, call) => {
    const w = new FdtSequentialWriter(256);
    w.finishReservemap();
    expectFdtError(() => call(w), "FDT_ERR_BADSTATE", "sw.state.struct");
  });

  it.each([...structCalls, ...reserveCalls, ["resize", (w: FdtSequentialWriter) => { w.resize(512); }] as Call])(
    "%s after finish is FDT_ERR_BADSTATE",
    (_, call) => {
      const w = new FdtSequentialWriter(256);
      w.finishReservemap();
      const blob = w.finish().slice();
      const err = expectFdtError(() => call(w), "FDT_ERR_BADSTATE", "sw.state.finished");
      expect(err.libfdtValue).toBe(-FDT_ERR.FDT_ERR_BADSTATE);
      expect(w.workingBuffer.subarray(0, blob.length)).toEqual(blob);
    },
  );

  it("create: below 48 bytes is NOSPACE (checked before the flags), unknown flags BADFLAGS", () => {
    expectFdtError(() => new FdtSequentialWriter(47), "FDT_ERR_NOSPACE", "sw.create.size");
    expectFdtError(() => new FdtSequentialWriter(-1), "FDT_ERR_NOSPACE", "sw.create.size");
    expectFdtError(() => new FdtSequentialWriter(47, 2), "FDT_ERR_NOSPACE", "sw.create.size");
    expectFdtError(() => new FdtSequentialWriter(48, 2), "FDT_ERR_BADFLAGS", "sw.create.flags");
    expectFdtError(() => FdtSequentialWriter.growable({ flags: 0x80000000 }), "FDT_ERR_BADFLAGS");
    expect(new FdtSequentialWriter(48).bufferSize).toBe(48);
  });
});

describe("NOSPACE and resize", () => {
  it("a full buffer fails with nothing committed, and a resize lets the retry succeed", () => {
    const w = new FdtSequentialWriter(48);
    expectFdtError(() => { w.finishReservemap(); }, "FDT_ERR_NOSPACE", "sw.space.reservemap");
    w.resize(72);
    w.finishReservemap();
    w.beginNode(""); // 48 header + 16 terminator + 8 root: full
    const before = w.workingBuffer.slice();
    expectFdtError(() => { w.propertyU32("abc", 1); }, "FDT_ERR_NOSPACE", "sw.space.strings");
    expectFdtError(() => { w.endNode(); }, "FDT_ERR_NOSPACE", "sw.space.struct");
    expectFdtError(() => w.finish(), "FDT_ERR_NOSPACE", "sw.space.struct");
    expectFdtError(() => { w.resize(71); }, "FDT_ERR_NOSPACE", "sw.resize.space");
    expectFdtError(() => { w.resize(-1); }, "FDT_ERR_NOSPACE", "sw.resize.space");
    expect(w.workingBuffer).toEqual(before);
    w.resize(200);
    expect(w.bufferSize).toBe(200);
    w.propertyU32("abc", 1);
    w.endNode();
    const blob = w.finish();

    const big = new FdtSequentialWriter(4096);
    big.finishReservemap();
    big.beginNode("");
    big.propertyU32("abc", 1);
    big.endNode();
    expect(blob).toEqual(big.finish());
    expect(blob).toEqual(expectedBlob([1, 0, 3, 4, 0, 1, 2, 9], "abc\0"));
  });

  it("a rolled-back name stays in the free space and shows up in later padding, as in libfdt", () => {
    // 48 header + 16 terminator + 8 root = 72 bytes of head in a 100-byte buffer.
    const w = new FdtSequentialWriter(100);
    w.finishReservemap();
    w.beginNode("");
    expectFdtError(() => { w.property("abc", new Uint8Array(16)); }, "FDT_ERR_NOSPACE", "sw.space.struct");
    const b = w.workingBuffer;
    expect(u32(b, HEADER.sizeDtStrings)).toBe(0);
    expect(Array.from(b.subarray(96, 100))).toEqual([0x61, 0x62, 0x63, 0]);
    // A node at 72 with a 20-character name: its NUL is at 96, its padding 97..99 is not written.
    w.beginNode("n".repeat(20));
    expect(Array.from(w.workingBuffer.subarray(96, 100))).toEqual([0, 0x62, 0x63, 0]);
  });

  it("a name too long for the whole buffer is NOSPACE and changes nothing", () => {
    const w = new FdtSequentialWriter(128);
    w.finishReservemap();
    const before = w.workingBuffer.slice();
    expectFdtError(() => { w.propertyU32("n".repeat(200), 1); }, "FDT_ERR_NOSPACE", "sw.space.strings");
    expect(w.workingBuffer).toEqual(before);
  });

  it("growable writers give the same bytes whatever their initial size", () => {
    const write = (w: FdtSequentialWriter): Uint8Array => {
      w.addReservemapEntry(0x8000_0000n, 0x1000n);
      w.finishReservemap();
      w.beginNode("");
      for (let i = 0; i < 300; i++) {
        w.beginNode(`node@${i}`);
        w.property(`prop-${i % 37}`, new Uint8Array(i % 50).fill(i));
        w.propertyU32("phandle", i);
        w.endNode();
      }
      w.endNode();
      return w.finish().slice();
    };
    const reference = write(new FdtSequentialWriter(1 << 20));
    for (const initialSize of [48, 100, 1024, 5000]) expect(write(FdtSequentialWriter.growable({ initialSize }))).toEqual(reference);
    expectFdtError(() => FdtSequentialWriter.growable({ initialSize: 10 }), "FDT_ERR_NOSPACE");
  });
});

describe("arguments C cannot pass are FDT_ERR_BADVALUE, before anything is written", () => {
  it.each<[string, (w: FdtSequentialWriter) => unknown]>([
    ["NUL in a node name", (w) => { w.beginNode("a\0b"); }],
    ["non-Latin-1 node name", (w) => { w.beginNode("\u0100"); }],
    ["NUL in a property name", (w) => { w.propertyU32("a\0", 1); }],
    ["non-Latin-1 property name", (w) => { w.property("\u20ac", new Uint8Array()); }],
    ["NUL in a string value", (w) => { w.propertyString("s", "a\0b"); }],
    ["u32 out of range", (w) => { w.propertyU32("x", 2 ** 32); }],
    ["negative u32", (w) => { w.propertyU32("x", -1); }],
    ["u64 out of range", (w) => { w.propertyU64("x", 1n << 64n); }],
    ["negative placeholder length", (w) => w.propertyPlaceholder("x", -1)],
    ["fractional placeholder length", (w) => w.propertyPlaceholder("x", 1.5)],
    ["fractional resize", (w) => { w.resize(100.5); }],
    ["boot cpuid out of range", (w) => { w.setBootCpuidPhys(-1); }],
  ])("%s", (_, call) => {
    const w = new FdtSequentialWriter(256);
    w.finishReservemap();
    const before = w.workingBuffer.slice();
    expectFdtError(() => call(w), "FDT_ERR_BADVALUE");
    expect(w.workingBuffer).toEqual(before);
  });

  it("a name with a NUL is refused even where its bytes are stored (\"b\" then \"a\" gives a\\0b\\0)", () => {
    const w = new FdtSequentialWriter(256);
    w.finishReservemap();
    w.beginNode("");
    w.property("b", new Uint8Array());
    w.property("a", new Uint8Array());
    const before = w.workingBuffer.slice();
    expect(Array.from(before.subarray(252))).toEqual([0x61, 0, 0x62, 0]);
    expectFdtError(() => { w.property("a\0b", new Uint8Array()); }, "FDT_ERR_BADVALUE", "sw.name");
    expectFdtError(() => { w.property("a\0b", new Uint8Array()); }, "FDT_ERR_BADVALUE", "sw.name");
    expect(w.workingBuffer).toEqual(before);
  });

  it("reserve entries outside u64", () => {
    const w = new FdtSequentialWriter(256);
    expectFdtError(() => { w.addReservemapEntry(-1n, 0n); }, "FDT_ERR_BADVALUE", "sw.value");
    expectFdtError(() => { new FdtSequentialWriter(100.5); }, "FDT_ERR_BADVALUE");
  });

  it("Latin-1 names are written one byte per character", () => {
    const w = new FdtSequentialWriter(256);
    w.finishReservemap();
    w.beginNode("\u00e9");
    w.property("\u00ff", new Uint8Array());
    w.endNode();
    expect(w.finish()).toEqual(expectedBlob([1, 0xe9000000, 3, 0, 0, 2, 9], "\u00ff\0"));
  });
});

describe("encodeSequential", () => {
  const leaf = (name: string, ...props: [string, number[]][]): FdtNode => ({
    name,
    properties: props.map(([n, v]) => ({ name: n, value: Uint8Array.from(v) })),
    children: [],
  });

  it("writes reserve map, then nodes in pre-order with properties first, and boot_cpuid_phys", () => {
    const root = leaf("", ["compatible", [0x61, 0]]);
    root.children.push(leaf("a", ["reg", [1, 2, 3, 4]]), leaf("b"));
    const tree: FdtTree = { bootCpuidPhys: 2, reserveMap: [{ address: 0x1000n, size: 0x10n }], root };
    const blob = encodeSequential(tree);
    const w = new FdtSequentialWriter(1024);
    w.setBootCpuidPhys(2);
    w.addReservemapEntry(0x1000n, 0x10n);
    w.finishReservemap();
    w.beginNode("");
    w.property("compatible", Uint8Array.from([0x61, 0]));
    w.beginNode("a");
    w.property("reg", Uint8Array.from([1, 2, 3, 4]));
    w.endNode();
    w.beginNode("b");
    w.endNode();
    w.endNode();
    expect(blob).toEqual(w.finish());
    expect(u32(blob, HEADER.bootCpuidPhys)).toBe(2);
  });

  it("handles deep trees without recursion and shared (acyclic) nodes", () => {
    const root = leaf("");
    let cur = root;
    for (let i = 0; i < 20000; i++) {
      const next = leaf("d");
      cur.children.push(next);
      cur = next;
    }
    const shared = leaf("s", ["x", [1]]);
    root.children.push(shared, shared);
    const blob = encodeSequential({ bootCpuidPhys: 0, reserveMap: [], root });
    // 20001 nodes of BEGIN + "d\0" padded + END = 12 bytes (root: 8 + 4), 2 x ("s" node + one 1-byte property), END.
    const structSize = 12 + 20000 * 12 + 2 * (12 + 16) + 4;
    expect(u32(blob, HEADER.sizeDtStruct)).toBe(structSize);
    expect(blob.length).toBe(64 + structSize + 2);
  });

  it("refuses a node that contains itself", () => {
    const root = leaf("");
    const loop = leaf("loop");
    loop.children.push(loop);
    root.children.push(loop);
    expectFdtError(() => encodeSequential({ bootCpuidPhys: 0, reserveMap: [], root }), "FDT_ERR_BADVALUE", "sw.tree.cycle");
  });
});
