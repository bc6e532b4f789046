/**
 * Unit tests of the read-write editor and the offset API: where every edit puts its bytes
 * (computed from the layout rules, not from fixtures), the error codes, and hostile input.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { FdtEditor } from "../src/editor.js";
import { FdtError, type FdtErrorCode } from "../src/errors.js";
import { FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP, HEADER } from "../src/layout.js";
import { nodeNameMatches } from "../src/names.js";
import { FdtOffsets } from "../src/offsets.js";
import { goldenDtbs } from "./support/golden.js";

const u32 = (b: Uint8Array, off: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off);
const setU32 = (b: Uint8Array, off: number, v: number): void => {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(off, v >>> 0);
};
const latin1 = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
const align4 = (n: number): number => (n + 3) & ~3;

function hdr(ed: FdtEditor) {
  const b = ed.buffer;
  return {
    totalsize: u32(b, HEADER.totalsize),
    offStruct: u32(b, HEADER.offDtStruct),
    offStrings: u32(b, HEADER.offDtStrings),
    offRsvmap: u32(b, HEADER.offMemRsvmap),
    version: u32(b, HEADER.version),
    lastComp: u32(b, HEADER.lastCompVersion),
    sizeStrings: u32(b, HEADER.sizeDtStrings),
    sizeStruct: u32(b, HEADER.sizeDtStruct),
  };
}

function expectFdtError(fn: () => unknown, code: FdtErrorCode): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FdtError);
    expect((e as FdtError).code).toBe(code);
    return;
  }
  expect.fail(`expected ${code}`);
}

/** Only FdtError may escape. */
function onlyFdtError(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof FdtError)) throw e;
  }
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One dtc call: a small tree with a reserve entry, properties and children. */
const DTS = `/dts-v1/;
/memreserve/ 0x10000 0x2000;
/ {
  compatible = "test,board";
  #address-cells = <1>;
  aliases { serial0 = "/soc/uart@1000"; };
  soc {
    ranges;
    uart@1000 { reg = <0x1000 0x100>; status = "okay"; };
    cpu@0 { reg = <0>; };
  };
  memory@80000000 { reg = <0x80000000 0x1000>; };
};
`;
function dtc(args: string[], input: string): Uint8Array {
  const r = spawnSync("dtc", ["-q", "-I", "dts", "-O", "dtb", ...args], { input, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`dtc: ${r.stderr.toString()}`);
  return new Uint8Array(r.stdout);
}
const DTB = dtc([], DTS);

describe("createEmptyTree / openInto", () => {
  it("creates libfdt's empty tree: map at 48, struct at 64, strings at 80, zero elsewhere", () => {
    expectFdtError(() => FdtEditor.createEmptyTree(79), "FDT_ERR_NOSPACE");
    const ed = FdtEditor.createEmptyTree(200);
    const b = ed.buffer;
    expect(b.length).toBe(200);
    expect(hdr(ed)).toMatchObject({ totalsize: 200, offRsvmap: 48, offStruct: 64, offStrings: 80, version: 17, lastComp: 16, sizeStruct: 16, sizeStrings: 0 });
    expect([u32(b, 64), u32(b, 68), u32(b, 72), u32(b, 76)]).toEqual([FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END]);
    expect(b.subarray(40, 64).every((x) => x === 0)).toBe(true);
    expect(b.subarray(80).every((x) => x === 0)).toBe(true);
  });

  it("copies an in-order blob as is and zero-fills the rest of the buffer", () => {
    const ed = FdtEditor.openInto(DTB, DTB.length + 100);
    const b = ed.buffer;
    expect(b.length).toBe(DTB.length + 100);
    expect(hdr(ed).totalsize).toBe(DTB.length + 100);
    expect(hdr(ed).version).toBe(17);
    // Everything but totalsize is the blob's own bytes.
    expect(latin1(b.subarray(8, DTB.length))).toBe(latin1(DTB.subarray(8, DTB.length)));
    expect(b.subarray(DTB.length).every((x) => x === 0)).toBe(true);
    expectFdtError(() => FdtEditor.openInto(DTB, DTB.length - 1), "FDT_ERR_NOSPACE");
    expectFdtError(() => FdtEditor.openInto(DTB, -1), "FDT_ERR_NOSPACE");
    expectFdtError(() => FdtEditor.openInto(DTB, 1.5), "FDT_ERR_BADVALUE");
  });

  it("re-orders blocks that are not in rw order (strings before struct) and packs them at 40", () => {
    // Build strings | struct from the dtc blob by hand: header, map, strings, struct.
    const h = new FdtOffsets(DTB);
    const map = DTB.slice(h.offMemRsvmap(), h.offDtStruct());
    const struct = DTB.slice(h.offDtStruct(), h.offDtStruct() + h.sizeDtStruct());
    const strings = DTB.slice(h.offDtStrings(), h.offDtStrings() + h.sizeDtStrings());
    const mangled = new Uint8Array(40 + map.length + strings.length + 3 + struct.length);
    mangled.set(DTB.subarray(0, 40));
    mangled.set(map, 40);
    const stringsAt = 40 + map.length;
    mangled.set(strings, stringsAt);
    const structAt = align4(stringsAt + strings.length);
    mangled.set(struct, structAt);
    setU32(mangled, HEADER.totalsize, mangled.length);
    setU32(mangled, HEADER.offDtStrings, stringsAt);
    setU32(mangled, HEADER.offDtStruct, structAt);
    setU32(mangled, HEADER.lastCompVersion, 2);
    setU32(mangled, HEADER.bootCpuidPhys, 7);
    // In place, rw edits refuse the layout.
    expectFdtError(() => {
      FdtEditor.wrap(mangled.slice()).setprop(0, "x", new Uint8Array(0));
    }, "FDT_ERR_BADLAYOUT");
    const needed = 40 + map.length + struct.length + strings.length;
    expectFdtError(() => FdtEditor.openInto(mangled, needed - 1), "FDT_ERR_NOSPACE");
    const ed = FdtEditor.openInto(mangled, needed + 16);
    expect(hdr(ed)).toMatchObject({ offRsvmap: 40, offStruct: 40 + map.length, offStrings: 40 + map.length + struct.length, lastComp: 16, version: 17, totalsize: needed + 16 });
    expect(u32(ed.buffer, HEADER.bootCpuidPhys)).toBe(7);
    expect(u32(ed.buffer, HEADER.magic)).toBe(FDT_MAGIC);
    // The re-ordered blob is the dtc blob (same block order) apart from the header fields rewritten.
    ed.pack();
    const packed = ed.bytes();
    expect(packed.length).toBe(DTB.length);
    expect(latin1(packed.subarray(40))).toBe(latin1(DTB.subarray(40)));
  });

  it("opens a v16 blob by walking its struct block to FDT_END", () => {
    const v16 = dtc(["-V", "16"], DTS);
    const r = new FdtOffsets(v16);
    expect(r.version()).toBe(16);
    let off = 0;
    while (r.nextTag(off) !== FDT_END) off = r.nextOffset;
    const ed = FdtEditor.openInto(v16, v16.length + 64);
    expect(hdr(ed).version).toBe(17);
    expect(hdr(ed).sizeStruct).toBe(r.nextOffset);
    expect(ed.offsets.pathOffset("/soc/uart@1000")).toBe(new FdtOffsets(DTB).pathOffset("/soc/uart@1000"));
    // Older versions cannot be opened; in place, rw edits want 17.
    const v15 = v16.slice();
    setU32(v15, HEADER.version, 15);
    expectFdtError(() => FdtEditor.openInto(v15, 4096), "FDT_ERR_BADVERSION");
    expectFdtError(() => {
      FdtEditor.wrap(v16.slice()).delprop(0, "compatible");
    }, "FDT_ERR_BADVERSION");
  });

  it("open + pack gives every packed golden blob back byte for byte", () => {
    const golden = goldenDtbs().filter((g) => g.name.startsWith("linux-6.1-arm64/"));
    expect(golden.length).toBeGreaterThan(0);
    for (const g of golden) {
      const ed = FdtEditor.openInto(g.bytes, g.bytes.length + 1024);
      ed.pack();
      expect(Buffer.from(ed.bytes()).equals(Buffer.from(g.bytes)), g.name).toBe(true);
    }
  });
});

describe("placement", () => {
  it("puts a new property first in its node, and an existing one stays where it is", () => {
    const ed = FdtEditor.createEmptyTree(512);
    ed.setprop(0, "first", new Uint8Array([1]));
    ed.setprop(0, "second", new Uint8Array([2, 2]));
    const r = ed.offsets;
    const p0 = r.firstProperty(0);
    expect(p0).toBe(8); // right after BEGIN_NODE + "" padded to 4
    expect(r.string(r.propertyByOffset(p0).nameoff)).toBe("second");
    const p1 = r.nextProperty(p0);
    expect(p1).toBe(p0 + 12 + align4(2));
    expect(r.string(r.propertyByOffset(p1).nameoff)).toBe("first");
    // Resizing "first" keeps the order.
    ed.setprop(0, "first", new Uint8Array(9).fill(3));
    expect(r.string(r.propertyByOffset(r.firstProperty(0)).nameoff)).toBe("second");
    expect(Array.from(r.getprop(0, "first")!)).toEqual(new Array(9).fill(3));
  });

  it("puts a new subnode after the parent's properties and before its existing children", () => {
    const ed = FdtEditor.createEmptyTree(512);
    ed.setprop(0, "p", new Uint8Array(5));
    const a = ed.addSubnode(0, "a");
    expect(a).toBe(8 + 12 + 8); // after root name and the property
    const b = ed.addSubnode(0, "bb@1");
    expect(b).toBe(a); // b takes a's place...
    const r = ed.offsets;
    expect(r.subnodeOffset(0, "a")).toBe(b + 4 + align4("bb@1".length + 1) + 4); // ...and a moves behind it
    expect(r.firstSubnode(0)).toBe(b);
    expect(r.getName(r.nextSubnode(b))).toBe("a");
    // A new node's name is zero-padded, its END_NODE follows.
    const at = hdr(ed).offStruct + b;
    expect(latin1(ed.buffer.subarray(at + 4, at + 12))).toBe("bb@1\0\0\0\0");
    expect(u32(ed.buffer, at + 12)).toBe(FDT_END_NODE);
    // A property added to the root now still goes before the children.
    ed.setprop(0, "q", new Uint8Array(0));
    expect(r.string(r.propertyByOffset(r.firstProperty(0)).nameoff)).toBe("q");
    expect(r.firstSubnode(0)).toBe(b + 12);
  });

  it("appends a new name to the strings block, reusing the OLDEST stored string that ends with it", () => {
    const ed = FdtEditor.createEmptyTree(512);
    ed.setprop(0, "xhandle", new Uint8Array(0));
    ed.setprop(0, "linux,phandle", new Uint8Array(0));
    const size = hdr(ed).sizeStrings;
    expect(size).toBe("xhandle\0linux,phandle\0".length);
    ed.setprop(0, "handle", new Uint8Array(0)); // suffix of both: the first one wins
    ed.setprop(0, "phandle", new Uint8Array(0));
    expect(hdr(ed).sizeStrings).toBe(size);
    const r = ed.offsets;
    expect(r.propertyByOffset(r.getProperty(0, "handle")).nameoff).toBe(1);
    expect(r.propertyByOffset(r.getProperty(0, "phandle")).nameoff).toBe("xhandle\0linux,".length);
    // A deleted property's name stays.
    ed.delprop(0, "xhandle");
    expect(hdr(ed).sizeStrings).toBe(size);
  });
});

describe("stale bytes", () => {
  it("keeps stale padding after a shrink and stale tail bytes after the data end", () => {
    const ed = FdtEditor.createEmptyTree(512);
    ed.setprop(0, "v", new Uint8Array(40).fill(0xaa));
    ed.setprop(0, "w", new Uint8Array([0x55]));
    const before = ed.buffer.slice();
    const end0 = hdr(ed).offStrings + hdr(ed).sizeStrings;
    const vAt = hdr(ed).offStruct + ed.offsets.getProperty(0, "v");
    ed.setprop(0, "v", new Uint8Array([0x01]));
    // The value's padding is what was there: the old value's bytes.
    expect(Array.from(ed.buffer.subarray(vAt + 12, vAt + 16))).toEqual([0x01, 0xaa, 0xaa, 0xaa]);
    // The data shrank by 36; the last 36 bytes of the old data are still after the new end.
    const end1 = hdr(ed).offStrings + hdr(ed).sizeStrings;
    expect(end0 - end1).toBe(40 - 4);
    expect(latin1(ed.buffer.subarray(end1, end0))).toBe(latin1(before.subarray(end1, end0)));
  });

  it("leaves a grown value's padding and a renamed node's padding as they were", () => {
    const ed = FdtEditor.createEmptyTree(512);
    const n = ed.addSubnode(0, "abcdefg");
    ed.setName(n, "ab");
    const at = hdr(ed).offStruct + n + 4;
    expect(latin1(ed.buffer.subarray(at, at + 4))).toBe("ab\0d");
    expect(u32(ed.buffer, at + 4)).toBe(FDT_END_NODE);
    // Growing a value: the new room holds the start of the tail that moved away.
    ed.setprop(n, "p", new Uint8Array([9]));
    const p = hdr(ed).offStruct + ed.offsets.getProperty(n, "p");
    const tailStart = ed.buffer.slice(p + 16, p + 24); // what follows the 4-byte value room
    ed.setprop(n, "p", new Uint8Array([1, 2, 3, 4, 5]));
    expect(Array.from(ed.buffer.subarray(p + 12, p + 20))).toEqual([1, 2, 3, 4, 5, ...Array.from(tailStart.subarray(1, 4))]);
  });

  it("rolls a new name back on NOSPACE but leaves its bytes in the free space", () => {
    const ed = FdtEditor.createEmptyTree(80 + 8);
    const before = hdr(ed);
    expectFdtError(() => {
      ed.setprop(0, "name", new Uint8Array(0));
    }, "FDT_ERR_NOSPACE");
    expect(hdr(ed)).toEqual(before);
    expect(latin1(ed.buffer.subarray(80, 85))).toBe("name\0");
  });

  it("pack moves a sequential-write blob's reserve map from 48 to 40 without clearing anything", () => {
    const ed = FdtEditor.createEmptyTree(256);
    ed.setprop(0, "compatible", new TextEncoder().encode("kho-v4\0"));
    ed.addMemRsv(0x1000n, 0x2000n);
    const h0 = hdr(ed);
    expect(h0.offRsvmap).toBe(48);
    const map = ed.buffer.slice(48, h0.offStruct);
    const struct = ed.buffer.slice(h0.offStruct, h0.offStruct + h0.sizeStruct);
    const strings = ed.buffer.slice(h0.offStrings, h0.offStrings + h0.sizeStrings);
    ed.pack();
    const h1 = hdr(ed);
    expect(h1.offRsvmap).toBe(40);
    expect(h1.offStruct).toBe(40 + map.length);
    expect(h1.offStrings).toBe(h1.offStruct + struct.length);
    expect(h1.totalsize).toBe(h1.offStrings + strings.length);
    expect(ed.buffer.length).toBe(h1.totalsize);
    expect(latin1(ed.buffer.subarray(40))).toBe(latin1(new Uint8Array([...map, ...struct, ...strings])));
    expect(ed.offsets.memRsv(0)).toEqual({ address: 0x1000n, size: 0x2000n });
    // Packed: no room left.
    expectFdtError(() => ed.addSubnode(0, "x"), "FDT_ERR_NOSPACE");
  });
});

describe("each call", () => {
  function tree(): FdtEditor {
    return FdtEditor.openInto(DTB, DTB.length + 2048);
  }

  it("setprop variants write big-endian numbers and NUL-terminated UTF-8", () => {
    const ed = tree();
    ed.setpropU32("/soc", "u", 0xdeadbeef);
    ed.setpropU64("/soc", "w", 0x0123456789abcdefn);
    ed.setpropString("/soc", "s", "é");
    const r = ed.offsets;
    const soc = r.pathOffset("/soc");
    expect(Array.from(r.getprop(soc, "u")!)).toEqual([0xde, 0xad, 0xbe, 0xef]);
    expect(Array.from(r.getprop(soc, "w")!)).toEqual([1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    expect(Array.from(r.getprop(soc, "s")!)).toEqual([0xc3, 0xa9, 0]);
    expectFdtError(() => {
      ed.setpropU32(soc, "u", -1);
    }, "FDT_ERR_BADVALUE");
    expectFdtError(() => {
      ed.setpropU64(soc, "w", 1n << 64n);
    }, "FDT_ERR_BADVALUE");
  });

  it("appendprop, placeholder and in-place writes", () => {
    const ed = tree();
    const uart = ed.pathOffset("/soc/uart@1000");
    ed.appendprop(uart, "reg", new Uint8Array([0, 0, 0, 7]));
    expect(Array.from(ed.offsets.getprop(uart, "reg")!)).toEqual([0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 0, 7]);
    ed.appendprop(uart, "new", new Uint8Array([5]));
    expect(ed.offsets.string(ed.offsets.propertyByOffset(ed.offsets.firstProperty(uart)).nameoff)).toBe("new");
    const view = ed.setpropPlaceholder(uart, "ph", 3);
    view.set([7, 8, 9]);
    expect(Array.from(ed.offsets.getprop(uart, "ph")!)).toEqual([7, 8, 9]);
    ed.setpropInplace(uart, "ph", new Uint8Array([1, 2, 3]));
    expect(Array.from(ed.offsets.getprop(uart, "ph")!)).toEqual([1, 2, 3]);
    expectFdtError(() => {
      ed.setpropInplace(uart, "ph", new Uint8Array([1, 2]));
    }, "FDT_ERR_NOSPACE");
    ed.setpropInplacePartial(uart, "ph", 1, new Uint8Array([0xff, 0xfe]));
    expect(Array.from(ed.offsets.getprop(uart, "ph")!)).toEqual([1, 0xff, 0xfe]);
    expectFdtError(() => {
      ed.setpropInplacePartial(uart, "ph", 2, new Uint8Array([0, 0]));
    }, "FDT_ERR_NOSPACE");
    expectFdtError(() => {
      ed.setpropInplace(uart, "absent", new Uint8Array(0));
    }, "FDT_ERR_NOTFOUND");
  });

  it("delprop, delNode, setName", () => {
    const ed = tree();
    const soc = ed.pathOffset("/soc");
    const structBefore = hdr(ed).sizeStruct;
    const end = ed.offsets.nodeEndOffset(soc);
    ed.delNode(soc);
    expect(hdr(ed).sizeStruct).toBe(structBefore - (end - soc));
    expect(ed.pathOffset("/soc")).toBe(-1);
    expect(ed.offsets.getName(soc)).toBe("memory@80000000"); // the next sibling moved in
    ed.delprop(0, "compatible");
    expect(ed.offsets.getprop(0, "compatible")).toBeUndefined();
    expectFdtError(() => {
      ed.delprop(0, "compatible");
    }, "FDT_ERR_NOTFOUND");
    const memory = ed.pathOffset("/memory"); // "memory" finds "memory@80000000"
    ed.setName("/memory", "ram@0");
    expect(ed.pathOffset("/ram@0")).toBe(memory);
  });

  it("nopProperty and nopNode overwrite with NOP tokens and move nothing", () => {
    const ed = tree();
    const uart = ed.pathOffset("/soc/uart@1000");
    const reg = ed.offsets.getProperty(uart, "reg");
    const size = hdr(ed).sizeStruct;
    ed.nopProperty(uart, "reg");
    const at = hdr(ed).offStruct + reg;
    for (let i = 0; i < 12 + 8; i += 4) expect(u32(ed.buffer, at + i)).toBe(FDT_NOP);
    expect(ed.offsets.getprop(uart, "reg")).toBeUndefined();
    expect(ed.offsets.getprop(uart, "status")).toBeDefined();
    const end = ed.offsets.nodeEndOffset(uart);
    ed.nopNode(uart);
    for (let o = uart; o < end; o += 4) expect(u32(ed.buffer, hdr(ed).offStruct + o)).toBe(FDT_NOP);
    expect(hdr(ed).sizeStruct).toBe(size);
    expect(ed.pathOffset("/soc/uart@1000")).toBe(-1);
    expect(ed.pathOffset("/soc/cpu@0")).toBeGreaterThan(0);
  });

  it("addMemRsv / delMemRsv move the struct and strings blocks by 16", () => {
    const ed = tree();
    const h0 = hdr(ed);
    expect(ed.numMemRsv()).toBe(1);
    ed.addMemRsv(0xffff_ffff_0000_0000n, 0x10n);
    expect(ed.numMemRsv()).toBe(2);
    expect(hdr(ed).offStruct).toBe(h0.offStruct + 16);
    expect(hdr(ed).offStrings).toBe(h0.offStrings + 16);
    expect(ed.offsets.memRsv(1)).toEqual({ address: 0xffff_ffff_0000_0000n, size: 0x10n });
    ed.delMemRsv(0);
    expect(ed.offsets.memRsv(0)).toEqual({ address: 0xffff_ffff_0000_0000n, size: 0x10n });
    expect(hdr(ed).offStruct).toBe(h0.offStruct);
    expectFdtError(() => {
      ed.delMemRsv(1);
    }, "FDT_ERR_NOTFOUND");
    expectFdtError(() => {
      ed.delMemRsv(-1);
    }, "FDT_ERR_NOTFOUND");
  });

  it("resize keeps the tree and fails without changing anything", () => {
    const ed = tree();
    const before = ed.bytes();
    expectFdtError(() => {
      ed.resize(before.length - 1);
    }, "FDT_ERR_NOSPACE");
    expect(Buffer.from(ed.bytes()).equals(Buffer.from(before))).toBe(true);
    ed.resize(before.length + 8);
    expect(ed.buffer.length).toBe(before.length + 8);
    expect(latin1(ed.buffer.subarray(8, before.length))).toBe(latin1(before.subarray(8)));
  });
});

describe("errors", () => {
  it("gives libfdt's codes", () => {
    const ed = FdtEditor.openInto(DTB, DTB.length + 256);
    expectFdtError(() => ed.addSubnode(0, "soc"), "FDT_ERR_EXISTS");
    expectFdtError(() => ed.addSubnode(0, "memory"), "FDT_ERR_EXISTS"); // matches memory@80000000
    expect(ed.addSubnode(0, "memory@1")).toBeGreaterThan(0); // a unit address must match exactly
    expectFdtError(() => ed.addSubnode(2, "x"), "FDT_ERR_BADOFFSET"); // unaligned
    expectFdtError(() => ed.addSubnode(ed.offsets.firstProperty(0), "x"), "FDT_ERR_BADOFFSET"); // a property
    expectFdtError(() => ed.addSubnode(-4, "x"), "FDT_ERR_BADOFFSET");
    expectFdtError(() => ed.addSubnode(1 << 20, "x"), "FDT_ERR_BADOFFSET");
    expectFdtError(() => ed.addSubnode("/nope", "x"), "FDT_ERR_NOTFOUND");
    expectFdtError(() => ed.addSubnode("nope", "x"), "FDT_ERR_BADPATH"); // no such alias
    expectFdtError(() => ed.addSubnode(0, "a\0b"), "FDT_ERR_BADVALUE");
    expectFdtError(() => ed.addSubnode(0, "\u0100"), "FDT_ERR_BADVALUE");
    expectFdtError(() => ed.setpropPlaceholder(0, "x", -1), "FDT_ERR_BADVALUE");
    expectFdtError(() => {
      ed.setprop(0, "big", new Uint8Array(4096));
    }, "FDT_ERR_NOSPACE");
    expectFdtError(() => {
      ed.delNode(3);
    }, "FDT_ERR_BADOFFSET");
    expectFdtError(() => FdtEditor.wrap(new Uint8Array(3)), "FDT_ERR_TRUNCATED");
    expectFdtError(() => FdtEditor.wrap(DTB.slice(0, 10)), "FDT_ERR_TRUNCATED");
    expectFdtError(() => FdtEditor.wrap(new Uint8Array(64)), "FDT_ERR_BADMAGIC");
    // Aliases resolve as paths.
    expect(ed.pathOffset("serial0")).toBe(ed.pathOffset("/soc/uart@1000"));
  });

  it("matches subnodes by libfdt's unit-address rule, as nodeNameMatches does", () => {
    const rnd = mulberry32(7);
    const names = ["cpu", "cpu@0", "cpu@1", "cpus", "c", "cpu@", "cpu@0@1", "@0", "x@cpu"];
    for (let round = 0; round < 40; round++) {
      const ed = FdtEditor.createEmptyTree(4096);
      const stored = names.filter(() => rnd() < 0.4);
      for (const s of stored) ed.addSubnode(0, s.length ? s : "z");
      const r = ed.offsets;
      const children: string[] = [];
      for (let c = r.firstSubnode(0); c >= 0; c = r.nextSubnode(c)) children.push(r.getName(c));
      for (const wanted of names) {
        const got = r.subnodeOffset(0, wanted);
        const expected = children.find((c) => nodeNameMatches(c, wanted));
        expect(got >= 0 ? r.getName(got) : undefined).toBe(expected);
      }
    }
  });
});

describe("hostile input", () => {
  it("openInto / wrap on every truncation of a blob: FdtError only", () => {
    for (let n = 0; n < DTB.length; n++) {
      const cut = DTB.slice(0, n);
      expectFdtError(() => FdtEditor.openInto(cut, 4096), "FDT_ERR_TRUNCATED");
      onlyFdtError(() => FdtEditor.wrap(cut));
    }
  });

  it("random corruption, then edits and reads: FdtError only, never a hang", () => {
    const rnd = mulberry32(99);
    const pick = (n: number): number => Math.floor(rnd() * n);
    const interesting = [0, 1, 3, 4, 0x7fffffff, 0x80000000, 0xfffffff4, 0xffffffff];
    for (let round = 0; round < 1500; round++) {
      const b = DTB.slice();
      const flips = 1 + pick(4);
      for (let i = 0; i < flips; i++) {
        const kind = pick(4);
        if (kind < 2) setU32(b, 4 * pick(10), rnd() < 0.5 ? interesting[pick(interesting.length)]! : pick(b.length * 2));
        else if (kind === 2) b[pick(b.length)] = pick(256);
        else setU32(b, 4 * pick(b.length / 4), [FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END, 0xffffffff][pick(6)]!);
      }
      const bufsize = rnd() < 0.5 ? b.length + pick(512) : pick(b.length * 2);
      for (const make of [() => FdtEditor.openInto(b, bufsize), () => FdtEditor.wrap(b.slice())]) {
        let ed: FdtEditor;
        try {
          ed = make();
        } catch (e) {
          if (!(e instanceof FdtError)) throw e;
          continue;
        }
        const r = ed.offsets;
        const off = rnd() < 0.5 ? 0 : 4 * pick(64);
        onlyFdtError(() => r.pathOffset("/soc/uart@1000"));
        onlyFdtError(() => r.pathOffset("serial0"));
        onlyFdtError(() => {
          for (let s = r.nextNode(-1, 0), k = 0; s.offset >= 0 && k < 10000; s = r.nextNode(s.offset, s.depth), k++) r.getName(s.offset);
        });
        onlyFdtError(() => {
          ed.setprop(off, "compatible", new Uint8Array(pick(20)));
        });
        onlyFdtError(() => ed.addSubnode(off, "n@1"));
        onlyFdtError(() => {
          ed.appendprop(off, "reg", new Uint8Array(3));
        });
        onlyFdtError(() => {
          ed.setName(off, "renamed-node");
        });
        onlyFdtError(() => {
          ed.delprop(off, "reg");
        });
        onlyFdtError(() => {
          ed.nopProperty(off, "status");
        });
        onlyFdtError(() => {
          ed.addMemRsv(1n, 2n);
        });
        onlyFdtError(() => {
          ed.delMemRsv(0);
        });
        onlyFdtError(() => {
          ed.delNode(off);
        });
        onlyFdtError(() => {
          ed.nopNode(off);
        });
        onlyFdtError(() => {
          ed.pack();
        });
        onlyFdtError(() => {
          ed.resize(pick(4096));
        });
      }
    }
  });

  it("a header tampered with through the live buffer is refused, not followed out of bounds", () => {
    for (const [field, value] of [
      [HEADER.totalsize, 0x7ffffff0],
      [HEADER.offDtStrings, 0xfffffff0],
      [HEADER.sizeDtStrings, 0xfffffff0],
      [HEADER.sizeDtStruct, 0xffffff00],
      [HEADER.offMemRsvmap, 0xffffffff],
      [HEADER.totalsize, 8],
    ] as const) {
      const ed = FdtEditor.openInto(DTB, DTB.length + 64);
      setU32(ed.buffer, field, value);
      for (const edit of [
        () => {
          ed.setprop(0, "x", new Uint8Array(4));
        },
        () => ed.addSubnode(0, "y"),
        () => {
          ed.pack();
        },
        () => {
          ed.addMemRsv(0n, 1n);
        },
        () => {
          ed.nopNode(4);
        },
      ]) {
        onlyFdtError(edit);
      }
    }
  });
});
