// The C side: build bench/c/fdt_bench.c against Debian's libfdt into a git-ignored cache dir
// (rebuilt when the source or the compile command changed) and run it.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * @param {string} pkgDir the package directory
 * @param {{ force?: boolean, log: (s: string) => void }} options
 * @returns {string} path of the binary
 */
export function buildHarness(pkgDir, { force = false, log }) {
  const cacheDir = join(pkgDir, "node_modules", ".cache", "fdt-bench");
  mkdirSync(cacheDir, { recursive: true });
  const source = join(pkgDir, "bench", "c", "fdt_bench.c");
  const binary = join(cacheDir, "fdt_bench");
  const stamp = join(cacheDir, "fdt_bench.cmd");
  const args = ["-O2", "-o", binary, source, "-lfdt"];
  const command = ["cc", ...args].join(" ");
  const fresh =
    !force &&
    existsSync(binary) &&
    existsSync(stamp) &&
    readFileSync(stamp, "utf8") === command &&
    statSync(binary).mtimeMs >= statSync(source).mtimeMs;
  if (!fresh) {
    log(`compiling: ${command}`);
    execFileSync("cc", args, { stdio: ["ignore", "inherit", "inherit"] });
    writeFileSync(stamp, command);
  }
  return binary;
}

/**
 * @param {string} binary
 * @param {string[]} argv
 * @returns {Record<string, unknown>[]} the JSON lines it printed
 */
export function runHarness(binary, argv) {
  const out = execFileSync(binary, argv, {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return out
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line));
}

/** `cc --version`, first line. */
export function ccVersion() {
  try {
    return execFileSync("cc", ["--version"], { encoding: "utf8" }).split("\n")[0].trim();
  } catch {
    return null;
  }
}

/** The installed libfdt package version (Debian), if dpkg knows it. */
export function libfdtVersion() {
  try {
    return execFileSync("dpkg-query", ["-W", "-f=${Version}", "libfdt1"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return null;
  }
}

/**
 * The harness in `serve` mode: one command per line, one JSON line back (see serve() in
 * fdt_bench.c). Lets run.mjs alternate C and TS samples so both see the same machine load.
 * @param {string} binary
 */
export function startServer(binary) {
  const child = spawn(binary, ["serve"], { stdio: ["pipe", "pipe", "pipe"] });
  let buffered = "";
  let stderr = "";
  /** @type {{ resolve: (v: any) => void, reject: (e: Error) => void }[]} */
  const waiting = [];
  const failAll = (/** @type {Error} */ e) => {
    for (const w of waiting.splice(0)) w.reject(e);
  };
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (/** @type {string} */ chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiting.shift();
      if (w) w.resolve(JSON.parse(line));
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (/** @type {string} */ chunk) => (stderr += chunk));
  child.on("exit", (code) => failAll(new Error(`fdt_bench serve exited (${code}): ${stderr.trim()}`)));
  child.on("error", (e) => failAll(e));
  return {
    /** @param {string} line @returns {Promise<any>} */
    send(line) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        child.stdin.write(line + "\n");
      });
    },
    close() {
      child.stdin.end("quit\n");
    },
  };
}
