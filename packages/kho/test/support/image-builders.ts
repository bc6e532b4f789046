/**
 * Builders for the image tests: temp files, KHOSPRS1 bytes, a kho-v4 root FDT, and an x86
 * handover (boot_params -> setup_data chain -> kho_data -> root FDT) laid out in a
 * PhysicalMemory, all from first principles (the layouts in abi.ts and the boot protocol).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FdtSequentialWriter } from "@liveupdate/fdt-codec";
import {
  KHO_FDT_COMPATIBLE,
  KHO_FDT_MEMORY_MAP_PROP_NAME,
  KHO_KEXEC_METADATA_NAME,
  KHO_KEXEC_METADATA_SIZE,
  KHO_KEXEC_METADATA_VERSION,
  KHO_SUB_TREE_PROP_NAME,
  KHO_SUB_TREE_SIZE_PROP_NAME,
  PAGE_SIZE,
  X86_BOOT_PARAMS_SETUP_DATA_OFFSET,
  X86_SETUP_TYPE_KEXEC_KHO,
} from "../../src/abi.js";
import type { PhysicalMemory } from "../../src/memory.js";

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  return { dir, cleanup: () => { fs.rmSync(dir, { recursive: true, force: true }); } };
}

export function u64le(value: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(value), true);
  return b;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** KHOSPRS1 bytes of `records` (written as given: tests pass hostile ones too). */
export function khosprs1Bytes(records: ReadonlyArray<{ phys: number | bigint; len?: number | bigint; data: Uint8Array }>, count?: number | bigint): Uint8Array {
  const parts: Uint8Array[] = [new TextEncoder().encode("KHOSPRS1"), u64le(count ?? records.length)];
  for (const r of records) parts.push(u64le(r.phys), u64le(r.len ?? r.data.length), r.data);
  return concat(parts);
}

/** KHOSPRS1 bytes of the given pages of `memory`, merged into ranges like the golden writer. */
export function khosprs1OfMemory(memory: PhysicalMemory, pfns: readonly number[]): Uint8Array {
  const sorted = [...new Set(pfns)].sort((a, b) => a - b);
  const records: Array<{ phys: number; data: Uint8Array }> = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i + 1;
    while (j < sorted.length && sorted[j] === sorted[j - 1]! + 1) j++;
    records.push({ phys: sorted[i]! * PAGE_SIZE, data: memory.read(sorted[i]! * PAGE_SIZE, (j - i) * PAGE_SIZE) });
    i = j;
  }
  return khosprs1Bytes(records);
}

/** A kho-v4 root FDT as the kernel writes it; `kexecMetadata` adds that sub-tree. */
export function khoRootFdt(radixRoot: number, kexecMetadata?: { phys: number; size: number }): Uint8Array {
  const w = new FdtSequentialWriter(PAGE_SIZE);
  w.finishReservemap();
  w.beginNode("");
  w.propertyString("compatible", KHO_FDT_COMPATIBLE);
  w.property(KHO_FDT_MEMORY_MAP_PROP_NAME, u64le(radixRoot));
  if (kexecMetadata !== undefined) {
    w.beginNode(KHO_KEXEC_METADATA_NAME);
    w.property(KHO_SUB_TREE_SIZE_PROP_NAME, u64le(kexecMetadata.size));
    w.property(KHO_SUB_TREE_PROP_NAME, u64le(kexecMetadata.phys));
    w.endNode();
  }
  w.endNode();
  return w.finish().slice();
}

/** A `kexec-metadata` blob (73 bytes): version 1, release, kexec_count. */
export function kexecMetadataBlob(kexecCount: number): Uint8Array {
  const b = new Uint8Array(KHO_KEXEC_METADATA_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, KHO_KEXEC_METADATA_VERSION, true);
  b.set(new TextEncoder().encode("7.2.13-test"), 4);
  v.setUint32(KHO_KEXEC_METADATA_SIZE - 4, kexecCount, true);
  return b;
}

/** Write the boot protocol header signature of a protocol-2.15 `boot_params` at `phys`. */
export function writeBootParamsHeader(memory: PhysicalMemory, phys: number, setupData: number): void {
  memory.write(phys + 0x1fe, Uint8Array.of(0x55, 0xaa));
  memory.write(phys + 0x202, new TextEncoder().encode("HdrS"));
  memory.write(phys + 0x206, Uint8Array.of(0x0f, 0x02));
  memory.writeU64(phys + X86_BOOT_PARAMS_SETUP_DATA_OFFSET, setupData);
}

/** A `setup_data` entry: header `{next, type, len}` then `data`. */
export function writeSetupData(memory: PhysicalMemory, phys: number, next: number, type: number, data: Uint8Array, len = data.length): void {
  memory.writeU64(phys, next);
  memory.writeU32(phys + 8, type);
  memory.writeU32(phys + 12, len);
  memory.write(phys + 16, data);
}

/** Where {@link layOutX86Handover} put things. */
export interface X86HandoverLayout {
  readonly bootParams: number;
  readonly rngSeed: number;
  readonly khoData: number;
  readonly fdtAddr: number;
  readonly fdt: Uint8Array;
}

/**
 * Lay out what x86 kexec hands the next kernel: a root FDT at `fdtAddr`, `boot_params` at
 * `bootParams` whose chain is an RNG seed (type 9) then `kho_data` (type 10), the setup_data
 * in the page after boot_params (as the real kernel places them).
 */
export function layOutX86Handover(memory: PhysicalMemory, at: { bootParams: number; fdtAddr: number; radixRoot?: number }): X86HandoverLayout {
  const fdt = khoRootFdt(at.radixRoot ?? at.fdtAddr + PAGE_SIZE);
  memory.write(at.fdtAddr, fdt);
  const rngSeed = at.bootParams + PAGE_SIZE + 0xe0;
  const khoData = at.bootParams + PAGE_SIZE + 0xb0;
  writeBootParamsHeader(memory, at.bootParams, rngSeed);
  writeSetupData(memory, rngSeed, khoData, 9, new Uint8Array(32).fill(0xa5));
  const kho = concat([u64le(at.fdtAddr), u64le(PAGE_SIZE), u64le(at.bootParams - 9 * PAGE_SIZE), u64le(0x30)]);
  writeSetupData(memory, khoData, 0, X86_SETUP_TYPE_KEXEC_KHO, kho);
  return { bootParams: at.bootParams, rngSeed, khoData, fdtAddr: at.fdtAddr, fdt };
}

/** Write `bytes` to a new file `name` in `dir`; returns its path. */
export function writeTemp(dir: string, name: string, bytes: Uint8Array): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** A deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Byte equality by `Buffer.equals` (vitest's deep equality is slow on large typed arrays). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Offset of the first differing byte of `a` and `b`, or -1 when equal (lengths included). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (sameBytes(a, b)) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
