/**
 * Access to the real-kernel golden images (read from `<repo>/../shared/golden`, never
 * copied into the repo) for the image tests.
 *
 * The compressed files are decompressed with the `zstd` command line into a cache under
 * `os.tmpdir()`, keyed by the compressed file's size and mtime, so the 1 GiB raw dump is
 * decompressed once per machine (not once per test run) and a changed fixture is never
 * served stale.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** `<repo>/../shared/golden/real-kernel`. */
export const REAL_KERNEL_GOLDEN = path.resolve(here, "../../../../../shared/golden/real-kernel");

/** The real-kernel cases that ship in the shared folder. */
export const REAL_KERNEL_CASES = ["full", "minimal", "no-sessions"] as const;
export type RealKernelCase = (typeof REAL_KERNEL_CASES)[number];

/** Path of a file of one case. */
export function goldenFile(kase: RealKernelCase, name: string): string {
  return path.join(REAL_KERNEL_GOLDEN, kase, name);
}

/** Parsed JSON file of one case. */
export function goldenJson(kase: RealKernelCase, name: string): unknown {
  return JSON.parse(fs.readFileSync(goldenFile(kase, name), "utf8"));
}

const CACHE_DIR = path.join(os.tmpdir(), "liveupdate-kho-golden-cache");

/**
 * Decompress `kase/name` (a `.zst`) once into the tmp cache and return the path of the
 * decompressed file. `long` passes `--long=30` (needed by the 1 GiB raw dumps).
 */
export function decompressedGolden(kase: RealKernelCase, name: string, long = false): string {
  const src = goldenFile(kase, name);
  const st = fs.statSync(src);
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const key = `${kase}-${name.replace(/\.zst$/, "")}-${st.size}-${Math.floor(st.mtimeMs)}`;
  const out = path.join(CACHE_DIR, key);
  if (fs.existsSync(out)) return out;
  // Decompress to a unique temporary name, then rename: a concurrent or interrupted run
  // never leaves a partial file under the final name.
  const tmp = `${out}.${process.pid}.${Date.now()}.part`;
  const args = ["-d", "-q", "-f", ...(long ? ["--long=30"] : []), "-o", tmp, src];
  execFileSync("zstd", args, { stdio: ["ignore", "ignore", "inherit"] });
  fs.renameSync(tmp, out);
  return out;
}
