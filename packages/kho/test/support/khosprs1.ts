/**
 * A tiny reader of the golden vectors' sparse page images (`KHOSPRS1`, all little-endian):
 * `"KHOSPRS1"`, u64 N, then N x {u64 phys, u64 len, len bytes}; ranges page-aligned, sorted,
 * merged when adjacent. Test support only (the package's image readers live elsewhere).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { PhysReader } from "../../src/types.js";

/** The golden vectors: `<repo>/../shared/golden/real-kernel`. */
export const GOLDEN_REAL_KERNEL = fileURLToPath(new URL("../../../../../shared/golden/real-kernel/", import.meta.url));

/** A sparse image as a {@link PhysReader}: only the captured ranges can be read. */
export class SparseImage implements PhysReader {
  readonly starts: number[] = [];
  readonly lengths: number[] = [];
  readonly #offsets: number[] = [];
  readonly #bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const magic = new TextDecoder().decode(bytes.subarray(0, 8));
    if (bytes.length < 16 || magic !== "KHOSPRS1") throw new Error("not a KHOSPRS1 image");
    const u64 = (at: number): number => view.getUint32(at + 4, true) * 2 ** 32 + view.getUint32(at, true);
    const n = u64(8);
    let at = 16;
    for (let i = 0; i < n; i++) {
      if (at + 16 > bytes.length) throw new Error(`range ${i}: header beyond the file`);
      const phys = u64(at);
      const len = u64(at + 8);
      at += 16;
      if (at + len > bytes.length) throw new Error(`range ${i}: data beyond the file`);
      this.starts.push(phys);
      this.lengths.push(len);
      this.#offsets.push(at);
      at += len;
    }
  }

  /** Decompress `<case>/handover-pages.bin.zst` with the `zstd` command. */
  static load(caseName: string): SparseImage {
    const path = `${GOLDEN_REAL_KERNEL}${caseName}/handover-pages.bin.zst`;
    const raw = execFileSync("zstd", ["-dc", path], { maxBuffer: 1 << 30 });
    return new SparseImage(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
  }

  #rangeOf(phys: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (phys < this.starts[mid]!) hi = mid - 1;
      else if (phys >= this.starts[mid]! + this.lengths[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  contains(phys: number, len: number): boolean {
    if (!Number.isSafeInteger(phys) || !Number.isSafeInteger(len) || phys < 0 || len < 0) return false;
    const r = this.#rangeOf(phys);
    return r >= 0 && phys + len <= this.starts[r]! + this.lengths[r]!;
  }

  readInto(phys: number, dst: Uint8Array): void {
    if (!this.contains(phys, dst.length)) throw new Error(`0x${phys.toString(16)}+${dst.length} is not in the image`);
    const r = this.#rangeOf(phys);
    const from = this.#offsets[r]! + (phys - this.starts[r]!);
    dst.set(this.#bytes.subarray(from, from + dst.length));
  }

  /** Every captured range with its bytes. */
  *ranges(): Generator<{ phys: number; bytes: Uint8Array }> {
    for (let i = 0; i < this.starts.length; i++) {
      const at = this.#offsets[i]!;
      yield { phys: this.starts[i]!, bytes: this.#bytes.subarray(at, at + this.lengths[i]!) };
    }
  }
}

/** Parse a JSON file of a golden case. */
export function readGoldenJson(caseName: string, file: string): unknown {
  return JSON.parse(readFileSync(`${GOLDEN_REAL_KERNEL}${caseName}/${file}`, "utf8"));
}

/** Read a binary file of a golden case. */
export function readGoldenBytes(caseName: string, file: string): Uint8Array {
  const b = readFileSync(`${GOLDEN_REAL_KERNEL}${caseName}/${file}`);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** `"0x2f11000"` or a number, as a number. */
export function hexNumber(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string" && /^0x[0-9a-f]+$/i.test(value)) return Number.parseInt(value.slice(2), 16);
  throw new Error(`not an address: ${JSON.stringify(value)}`);
}
