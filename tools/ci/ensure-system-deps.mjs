#!/usr/bin/env node
// The tests and benchmarks check this project against real producers: Debian's dtc,
// fdtget, python3-libfdt and libfdt-dev (a C harness), and read zstd-compressed golden images. Install them when missing and we
// are allowed to (root with apt-get); otherwise say exactly what is missing and stop.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const needs = [
  { pkg: "device-tree-compiler", present: () => has("dtc") && has("fdtget") && has("fdtput") },
  { pkg: "python3-libfdt", present: () => spawnSync("/usr/bin/python3", ["-c", "import libfdt"]).status === 0 },
  { pkg: "libfdt-dev", present: () => existsSync("/usr/include/libfdt.h") },
  { pkg: "gcc", present: () => has("cc") },
  // The real-kernel golden images are zstd-compressed; readelf checks the ELF cores.
  { pkg: "zstd", present: () => has("zstd") },
  { pkg: "binutils", present: () => has("readelf") },
  // The --html outputs are checked in a real headless browser (playwright-core drives it).
  { pkg: "chromium", present: () => has("chromium") },
];

function has(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

const missing = needs.filter((n) => !n.present()).map((n) => n.pkg);
if (missing.length === 0) process.exit(0);

const root = typeof process.getuid === "function" && process.getuid() === 0;
if (!root || !has("apt-get")) {
  console.error(`missing Debian packages: ${missing.join(" ")}\ninstall them with: sudo apt-get install -y ${missing.join(" ")}`);
  process.exit(1);
}
console.log(`installing Debian packages: ${missing.join(" ")}`);
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { stdio: "inherit", env });
