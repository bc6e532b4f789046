/**
 * The C oracle for `checkLibfdt`: check-oracle.c linked with the system libfdt (Debian's
 * 1.6.1), compiled once per test run and run on many blob files in one process.
 *
 * The binary is cached in the temp dir under the hash of its source, so every test file
 * (and every vitest worker) of a run shares one compilation; it is built under a unique
 * name and renamed into place, so concurrent workers never see a half-written file.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SOURCE = fileURLToPath(new URL("./check-oracle.c", import.meta.url));

/** What `fdt_check_full` did on one blob: its return value, or that it hung or crashed. */
export type OracleVerdict = number | "hang" | "crash";

let binary: string | undefined;

/** Path of the compiled oracle, compiling it on first use. */
export function checkOracleBinary(): string {
  if (binary !== undefined) return binary;
  const source = readFileSync(SOURCE);
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), "fdt-codec-check-oracle");
  mkdirSync(dir, { recursive: true });
  const target = join(dir, `check-oracle-${hash}`);
  if (!existsSync(target)) {
    const partial = `${target}.${process.pid}.${Date.now()}`;
    execFileSync("cc", ["-O2", "-Wall", "-o", partial, SOURCE, "-lfdt"], { stdio: ["ignore", "ignore", "pipe"] });
    renameSync(partial, target);
  }
  binary = target;
  return target;
}

/** Run `fdt_check_full` on every file (one process for all of them), in order. */
export function runCheckOracle(paths: readonly string[]): OracleVerdict[] {
  if (paths.length === 0) return [];
  const out = spawnSync(checkOracleBinary(), ["check"], {
    input: paths.join("\n") + "\n",
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (out.status !== 0) throw new Error(`check oracle failed (${out.status}): ${out.stderr}`);
  const lines = out.stdout.trim().split("\n");
  if (lines.length !== paths.length) throw new Error(`check oracle answered ${lines.length} of ${paths.length} files`);
  return lines.map((line) => (line === "hang" || line === "crash" ? line : Number(line)));
}

/** Run the oracle on in-memory blobs: each is written to a scratch directory first. */
export function runCheckOracleOnBlobs(blobs: readonly Uint8Array[]): OracleVerdict[] {
  const dir = mkdtempSync(join(tmpdir(), "fdt-check-blobs-"));
  try {
    const paths = blobs.map((blob, i) => {
      const path = join(dir, `${i}.dtb`);
      writeFileSync(path, blob);
      return path;
    });
    return runCheckOracle(paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
