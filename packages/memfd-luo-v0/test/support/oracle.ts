/** The python3-libfdt oracle (test/support/fdt-oracle.py): one process per call batch. */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./fdt-oracle.py", import.meta.url));

/** One oracle case: the posted series' call sequence on a zeroed `bufsize`-byte buffer. */
export interface OracleCase {
  readonly bufsize: number;
  readonly props: ReadonlyArray<readonly [string, Uint8Array]>;
  /** Run `fdt_setprop(fdt, 0, "pos", setpos)` after finishing (the posted freeze). */
  readonly setpos?: Uint8Array;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The whole buffer libfdt leaves for each case (throws when libfdt returned an error). */
export function libfdtBuffers(cases: readonly OracleCase[]): Uint8Array[] {
  const input = cases.map((c) => JSON.stringify({ bufsize: c.bufsize, props: c.props.map(([n, v]) => [n, hex(v)]), setpos: c.setpos ? hex(c.setpos) : null })).join("\n") + "\n";
  const run = spawnSync("/usr/bin/python3", [SCRIPT], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`fdt-oracle.py failed: ${run.stderr}`);
  return run.stdout
    .trim()
    .split("\n")
    .map((line) => {
      const r = JSON.parse(line) as { rc: number[]; buf: string };
      if (r.rc.some((c) => c !== 0)) throw new Error(`libfdt returned ${r.rc.join(",")}`);
      return new Uint8Array(Buffer.from(r.buf, "hex"));
    });
}

/** 8 little-endian bytes of `value`. */
export function u64le(value: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value), true);
  return out;
}
