/**
 * The golden corpus: blobs made by real producers, read from `../shared/golden/` beside
 * the repository (CI has it there too). Never copied into the project.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** `<repo>/../shared/golden`. */
export const GOLDEN_DIR = fileURLToPath(new URL("../../../../../shared/golden/", import.meta.url));
export const DTB_DIR = join(GOLDEN_DIR, "dtb");

if (!existsSync(DTB_DIR)) throw new Error(`golden corpus not found at ${DTB_DIR}: the repository must sit beside shared/`);

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".dtb")) out.push(p);
  }
  return out;
}

/** One golden blob. */
export interface GoldenBlob {
  /** Path relative to `golden/dtb/`, e.g. `linux-6.1-arm64/qcom/sc7280-herobrine-crd.dtb`. */
  name: string;
  path: string;
  bytes: Uint8Array;
}

/** Every `.dtb` under `golden/dtb/`, sorted by name. */
export function goldenDtbs(): GoldenBlob[] {
  return walk(DTB_DIR, []).map((path) => ({
    name: relative(DTB_DIR, path),
    path,
    bytes: new Uint8Array(readFileSync(path)),
  }));
}

/** libfdt 1.6.1's `fdt_check_full` return value for each dtc-tests blob, by file name. */
export function libfdt161Verdicts(): Map<string, number> {
  const text = readFileSync(join(DTB_DIR, "dtc-tests", "libfdt-1.6.1-check_full.txt"), "utf8");
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [name, code] = line.trim().split(/\s+/);
    if (name && code !== undefined) m.set(name, Number(code));
  }
  return m;
}
