/**
 * The record's bytes: the FDT against a layout computed by hand from the FDT spec and the
 * format table, against Debian's libfdt replaying the posted series' calls (the real
 * producer), against dtc/fdtget reading it back; the value encodings against bigint
 * arithmetic.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PhysicalMemory } from "@liveupdate/kho";
import { afterAll, describe, expect, it } from "vitest";
import {
  MEMFD_V0_FDT_BUFFER_SIZE,
  MEMFD_V0_FDT_TOTALSIZE,
  MEMFD_V0_FOLIOS_VALUE_OFFSET,
  MEMFD_V0_POS_VALUE_OFFSET,
  MEMFD_V0_SIZE_VALUE_OFFSET,
  encodeMemfdV0Fdt,
  encodeMemfdV0PostedFdt,
  memfdV0FolioValue,
  memfdV0PostedDesc,
  memfdV0PostedFdtBufferSize,
  memfdV0PostedFdtOrder,
  memfdV0ValueFlags,
  memfdV0ValuePfn,
  writeMemfdV0Pos,
  type MemfdV0PostedRecord,
} from "../src/index.js";
import { libfdtBuffers, u64le } from "./support/oracle.js";
import { Prng } from "./support/prng.js";

const tmp = mkdtempSync(join(tmpdir(), "memfd-v0-"));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function descriptor(first: number): Uint8Array {
  const d = new Uint8Array(16);
  const v = new DataView(d.buffer);
  v.setUint32(0, 0x4b415252, true);
  v.setBigUint64(8, BigInt(first), true);
  return d;
}

/** The seed FDT built from the spec by hand: header, tokens, strings, and libfdt's stale tail. */
function handLayout(pos: number, size: number, desc: Uint8Array): Uint8Array {
  const page = new Uint8Array(4096);
  const v = new DataView(page.buffer);
  const be = (o: number, x: number): void => {
    v.setUint32(o, x);
  };
  // header
  be(0, 0xd00dfeed);
  be(4, 164); // totalsize
  be(8, 64); // off_dt_struct: reserve map at 48 + one 16-byte terminator
  be(12, 148); // off_dt_strings
  be(16, 48); // off_mem_rsvmap
  be(20, 17);
  be(24, 16);
  be(28, 0);
  be(32, 16); // "folios\0size\0pos\0"
  be(36, 84); // struct: 8 + 20 + 20 + 28 + 4 + 4
  // struct
  be(64, 1); // BEGIN_NODE, name "" padded to 4
  be(72, 3);
  be(76, 8);
  be(80, 12); // "pos" after "folios\0size\0"
  page.set(u64le(pos), 84);
  be(92, 3);
  be(96, 8);
  be(100, 7); // "size"
  page.set(u64le(size), 104);
  be(112, 3);
  be(116, 16);
  be(120, 0); // "folios"
  page.set(desc, 124);
  be(140, 2); // END_NODE
  be(144, 9); // END
  const strings = new TextEncoder().encode("folios\0size\0pos\0");
  page.set(strings, 148);
  // fdt_sw grew the strings down from the end of the buffer; fdt_finish copied, not moved.
  page.set(strings, 4096 - strings.length);
  return page;
}

describe("seed-variant FDT", () => {
  it("matches the layout computed by hand, field by field", () => {
    const desc = descriptor(0x1234_5000);
    const page = encodeMemfdV0Fdt({ pos: 0x1_0000_0003, size: 0x40_0000_1000, foliosDescriptor: desc });
    expect(page.length).toBe(MEMFD_V0_FDT_BUFFER_SIZE);
    expect(Buffer.from(page).equals(Buffer.from(handLayout(0x1_0000_0003, 0x40_0000_1000, desc)))).toBe(true);
    expect(new DataView(page.buffer, page.byteOffset).getUint32(4)).toBe(MEMFD_V0_FDT_TOTALSIZE);
    expect(page.subarray(MEMFD_V0_POS_VALUE_OFFSET, MEMFD_V0_POS_VALUE_OFFSET + 8)).toEqual(u64le(0x1_0000_0003));
    expect(page.subarray(MEMFD_V0_SIZE_VALUE_OFFSET, MEMFD_V0_SIZE_VALUE_OFFSET + 8)).toEqual(u64le(0x40_0000_1000));
    expect(page.subarray(MEMFD_V0_FOLIOS_VALUE_OFFSET, MEMFD_V0_FOLIOS_VALUE_OFFSET + 16)).toEqual(desc);
  });

  it("is byte-identical to libfdt's buffer for the posted series' calls, and so is the freeze", () => {
    const rng = new Prng(0x5eed0);
    const cases = Array.from({ length: 40 }, () => {
      const pos = rng.chance(0.2) ? 0 : rng.int(2 ** 30) * rng.int(2 ** 20);
      const size = rng.chance(0.2) ? 0 : rng.int(2 ** 32) * 4096 + rng.int(4096);
      const desc = rng.chance(0.1) ? descriptor(0) : descriptor(rng.int(2 ** 28) * 4096);
      const newPos = rng.int(2 ** 31) * rng.int(2 ** 21);
      return { pos, size, desc, newPos };
    });
    const oracle = libfdtBuffers(
      cases.flatMap((c) => {
        const props = [["pos", u64le(c.pos)], ["size", u64le(c.size)], ["folios", c.desc]] as const;
        return [{ bufsize: 4096, props }, { bufsize: 4096, props, setpos: u64le(c.newPos) }];
      }),
    );
    cases.forEach((c, i) => {
      const page = encodeMemfdV0Fdt({ pos: c.pos, size: c.size, foliosDescriptor: c.desc });
      expect(Buffer.from(page).equals(Buffer.from(oracle[2 * i]!)), `case ${i}`).toBe(true);
      // freeze rewrites pos in place as fdt_setprop does
      const memory = new PhysicalMemory([{ start: 0, size: 1 << 20 }]);
      memory.write(0x3000, page);
      writeMemfdV0Pos(memory, 0x3000, c.newPos);
      expect(Buffer.from(memory.read(0x3000, 4096)).equals(Buffer.from(oracle[2 * i + 1]!)), `freeze case ${i}`).toBe(true);
    });
  });

  it("reads back through dtc and fdtget as raw little-endian values", () => {
    const desc = descriptor(0xabc_d000);
    const page = encodeMemfdV0Fdt({ pos: 77, size: 0x2_0000_0000, foliosDescriptor: desc });
    const file = join(tmp, "seed.dtb");
    writeFileSync(file, page.subarray(0, MEMFD_V0_FDT_TOTALSIZE));
    const get = (prop: string): Uint8Array => {
      const r = spawnSync("fdtget", ["-t", "bx", file, "/", prop], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      return Uint8Array.from(r.stdout.trim().split(/\s+/).map((b) => parseInt(b, 16)));
    };
    expect(get("pos")).toEqual(u64le(77));
    expect(get("size")).toEqual(u64le(0x2_0000_0000));
    expect(get("folios")).toEqual(desc);
    const dts = spawnSync("dtc", ["-I", "dtb", "-O", "dts", file], { encoding: "utf8" });
    expect(dts.status, dts.stderr).toBe(0);
    // dtc shows 8-byte values as two big-endian cells: the LE bytes 4d 00 .. 00 read as 0x4d000000 0
    expect(dts.stdout).toContain("pos = <0x4d000000 0x00>;");
    expect(dts.stdout).toContain("size = <0x00 0x2000000>;");
    expect(dts.stdout).not.toMatch(/compatible/);
  });
});

describe("posted-variant FDT", () => {
  it("sizes its folio as PAGE_ALIGN(16 n) + PAGE_SIZE", () => {
    expect(memfdV0PostedFdtBufferSize(0)).toBe(4096);
    expect(memfdV0PostedFdtOrder(0)).toBe(0);
    expect(memfdV0PostedFdtBufferSize(1)).toBe(8192);
    expect(memfdV0PostedFdtOrder(1)).toBe(1);
    expect(memfdV0PostedFdtOrder(256)).toBe(1); // 4096 + 4096
    expect(memfdV0PostedFdtOrder(257)).toBe(2); // 8192 + 4096 -> 4 pages
    // MAX_PAGE_ORDER 10: 4 MiB holds 261888 records, about 1 GiB of order-0 folios
    expect(memfdV0PostedFdtOrder(261_888)).toBe(10);
    expect(memfdV0PostedFdtOrder(261_889)).toBe(11);
  });

  it("is byte-identical to libfdt's buffer (placeholder filled = property of the filled value)", () => {
    const rng = new Prng(0x9057ed);
    const counts = [0, 1, 2, 255, 256, 257, 700];
    const cases = counts.map((n) => {
      const records: MemfdV0PostedRecord[] = Array.from({ length: n }, (_, i) => ({ pfn: rng.int(2 ** 40), flags: rng.int(4), index: i * 2 + rng.int(2) }));
      return { pos: rng.int(2 ** 40), size: n * 8192, records };
    });
    const oracle = libfdtBuffers(
      cases.map((c) => {
        const list = new Uint8Array(c.records.length * 16);
        const v = new DataView(list.buffer);
        c.records.forEach((r, i) => {
          v.setBigUint64(i * 16, (BigInt(r.pfn) << 12n) | BigInt(r.flags), true);
          v.setBigUint64(i * 16 + 8, BigInt(r.index), true);
        });
        return { bufsize: memfdV0PostedFdtBufferSize(c.records.length) <= 4096 ? 4096 : 4096 * 2 ** memfdV0PostedFdtOrder(c.records.length), props: [["pos", u64le(c.pos)], ["size", u64le(c.size)], ["folios", list]] as const };
      }),
    );
    cases.forEach((c, i) => {
      const fdt = encodeMemfdV0PostedFdt(c.pos, c.size, c.records);
      expect(fdt.length).toBe(4096 * 2 ** memfdV0PostedFdtOrder(c.records.length));
      expect(Buffer.from(fdt).equals(Buffer.from(oracle[i]!)), `${c.records.length} records`).toBe(true);
    });
  });
});

describe("value encodings", () => {
  it("KHO array value pfn << 11 | flags, read back from the tagged word's halves", () => {
    const rng = new Prng(0xa11);
    for (let i = 0; i < 2000; i++) {
      const pfn = i < 4 ? [0, 1, 2 ** 40 - 1, 2 ** 20][i]! : rng.int(2 ** 40);
      const flags = rng.int(2048);
      const value = memfdV0FolioValue(pfn, flags);
      const ref = (BigInt(pfn) << 11n) | BigInt(flags);
      expect(BigInt(value)).toBe(ref);
      const word = (ref << 1n) | 1n;
      const lo = Number(word & 0xffff_ffffn);
      const hi = Number(word >> 32n);
      expect(memfdV0ValuePfn(lo, hi)).toBe(pfn);
      expect(memfdV0ValueFlags(lo)).toBe(flags);
    }
    // the largest value a 63-bit entry holds: pfn 2^52 - 1 with all 11 flag bits
    const max = (1n << 63n) - 1n;
    const word = (max << 1n) | 1n;
    expect(memfdV0ValuePfn(Number(word & 0xffff_ffffn), Number((word >> 32n) & 0xffff_ffffn))).toBe(2 ** 52 - 1);
    expect(memfdV0ValueFlags(Number(word & 0xffff_ffffn))).toBe(0x7ff);
  });

  it("posted desc pfn << 12 | flags", () => {
    const rng = new Prng(0xde5c);
    for (let i = 0; i < 2000; i++) {
      const pfn = rng.int(2 ** 40) + (i % 2) * 2 ** 45;
      const flags = rng.int(4096);
      const [lo, hi] = memfdV0PostedDesc(pfn, flags);
      expect((BigInt(hi) << 32n) | BigInt(lo)).toBe((BigInt(pfn) << 12n) | BigInt(flags));
    }
  });
});
