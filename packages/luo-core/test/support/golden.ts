/**
 * The real-kernel golden images (read from `<repo>/../shared/golden`, never copied): the
 * sparse page image decompressed with `zstd -dc` into a temporary file, the root FDT found
 * as the next kernel finds it, and the JSON references parsed with every u64 kept exact.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { SparsePagesImage, findKhoFdt, retrieveKhoSubtree } from "@liveupdate/kho";

const here = path.dirname(fileURLToPath(import.meta.url));

/** `<repo>/../shared/golden/real-kernel`. */
export const REAL_KERNEL_GOLDEN = path.resolve(here, "../../../../../shared/golden/real-kernel");

export const GOLDEN_CASES = ["full", "minimal", "no-sessions"] as const;
export type GoldenCase = (typeof GOLDEN_CASES)[number];

export function goldenPath(kase: GoldenCase, name: string): string {
  return path.join(REAL_KERNEL_GOLDEN, kase, name);
}

/**
 * Parse a JSON file keeping every integer that does not fit a double exactly: integers are
 * turned into strings before parsing when they have 16 digits or more.
 */
export function goldenJson(kase: GoldenCase, name: string): unknown {
  const raw = fs.readFileSync(goldenPath(kase, name), "utf8");
  return JSON.parse(raw.replace(/(?<=[:[,]\s*)(\d{16,})(?=\s*[,\]}])/g, '"$1"'));
}

/** A JSON integer (number or, when large, string) as a bigint. */
export function big(value: unknown): bigint {
  if (typeof value === "number" || typeof value === "string") return BigInt(value);
  throw new Error(`not an integer: ${String(value)}`);
}

/** The decompressed sparse image of one case, in a temporary directory removed by `cleanup`. */
export function openGoldenImage(kase: GoldenCase): { image: SparsePagesImage; luoPhys: number; luoSize: number; fdtPhys: number; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `luo-core-golden-${kase}-`));
  const out = path.join(dir, "handover-pages.bin");
  const raw = execFileSync("zstd", ["-dc", goldenPath(kase, "handover-pages.bin.zst")], { maxBuffer: 256 * 1024 * 1024 });
  fs.writeFileSync(out, raw);
  const image = SparsePagesImage.open(out);
  const fdt = findKhoFdt(image);
  const luo = retrieveKhoSubtree(fdt.fdt, "LUO");
  return {
    image,
    luoPhys: luo.phys,
    luoSize: luo.size,
    fdtPhys: fdt.fdtAddr,
    cleanup: () => {
      image.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
