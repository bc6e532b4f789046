/**
 * The real Linux 7.2 handover data (`<repo>/../shared/golden/real-kernel`, never copied into
 * the repo) and a small walk of it: root FDT -> "LUO" sub-tree -> luo_ser -> session blocks
 * -> file blocks. Just enough to find each file's compatible, data and token; the records
 * themselves are decoded by this package's code.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { PAGE_SIZE, checkKhoRootFdt, khoBlockEntryPhys, readKhoBlocks, retrieveKhoSubtree, type MemoryRange, type PhysReader } from "@liveupdate/kho";

const here = path.dirname(fileURLToPath(import.meta.url));

/** `<repo>/../shared/golden/real-kernel`. */
export const REAL_KERNEL_GOLDEN = path.resolve(here, "../../../../../shared/golden/real-kernel");

export type GoldenCase = "full" | "minimal";

export function goldenJson(kase: GoldenCase, name: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(REAL_KERNEL_GOLDEN, kase, name), "utf8"));
}

/** `handover-pages.bin.zst` decompressed (`zstd -dc`) once into a tmp cache keyed by size and mtime. */
export function handoverPagesPath(kase: GoldenCase): string {
  const src = path.join(REAL_KERNEL_GOLDEN, kase, "handover-pages.bin.zst");
  const st = fs.statSync(src);
  const dir = path.join(os.tmpdir(), "liveupdate-memfd-golden-cache");
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, `${kase}-handover-pages-${st.size}-${Math.floor(st.mtimeMs)}.bin`);
  if (fs.existsSync(out)) return out;
  const tmp = `${out}.${process.pid}.part`;
  fs.writeFileSync(tmp, execFileSync("zstd", ["-dc", src], { maxBuffer: 1 << 30 }));
  fs.renameSync(tmp, out);
  return out;
}

/** The machine's RAM from its `/proc/iomem` (top-level "System RAM" lines). */
export function systemRam(kase: GoldenCase): MemoryRange[] {
  const out: MemoryRange[] = [];
  for (const line of fs.readFileSync(path.join(REAL_KERNEL_GOLDEN, kase, "phase2-iomem.txt"), "utf8").split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) : System RAM$/.exec(line);
    if (m) {
      // Whole pages only (the first range starts at 0x1000 after page 0 is reserved, ends mid-page at 0x9fbff).
      const start = Math.ceil(parseInt(m[1]!, 16) / PAGE_SIZE) * PAGE_SIZE;
      const end = Math.floor((parseInt(m[2]!, 16) + 1) / PAGE_SIZE) * PAGE_SIZE;
      if (end > start) out.push({ start, size: end - start });
    }
  }
  return out;
}

/** One `luo_file_ser` found in the image. */
export interface GoldenFile {
  readonly session: string;
  readonly compatible: string;
  readonly data: bigint;
  readonly token: bigint;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** Walk the LUO state of the handover at `fdtPhys` in `reader`: every file of every session. */
export function walkLuoFiles(reader: PhysReader, fdtPhys: number): { files: GoldenFile[]; memoryMapPhys: number } {
  const fdt = new Uint8Array(PAGE_SIZE);
  reader.readInto(fdtPhys, fdt);
  const check = checkKhoRootFdt(fdt);
  if (!check.valid) throw new Error(`root FDT: ${check.reason}`);
  const luo = retrieveKhoSubtree(fdt, "LUO");
  const luoSer = new Uint8Array(luo.size);
  reader.readInto(luo.phys, luoSer);
  const luoView = new DataView(luoSer.buffer);
  if (cString(luoSer.subarray(0, 8)) !== "luo-v5") throw new Error("not luo-v5");
  const sessionsPa = Number(luoView.getBigUint64(16, true));
  const files: GoldenFile[] = [];
  const sessionEntry = new Uint8Array(80);
  const fileEntry = new Uint8Array(64);
  for (const block of readKhoBlocks(reader, sessionsPa, 80).blocks) {
    for (let i = 0; i < block.count; i++) {
      reader.readInto(khoBlockEntryPhys(block.phys, i, 80), sessionEntry);
      const view = new DataView(sessionEntry.buffer);
      const session = cString(sessionEntry.subarray(0, 64));
      const filesPa = Number(view.getBigUint64(64, true));
      for (const fblock of readKhoBlocks(reader, filesPa, 64).blocks) {
        for (let j = 0; j < fblock.count; j++) {
          reader.readInto(khoBlockEntryPhys(fblock.phys, j, 64), fileEntry);
          const fv = new DataView(fileEntry.buffer);
          files.push({ session, compatible: cString(fileEntry.subarray(0, 48)), data: fv.getBigUint64(48, true), token: fv.getBigUint64(56, true) });
        }
      }
    }
  }
  return { files, memoryMapPhys: check.memoryMapPhys };
}
