/**
 * Terminal rendering for `luo simulate`: sizes, durations, aligned tables, and the step
 * reporter (a redrawn progress bar on a terminal, one plain line per step otherwise).
 */
import type { RunIO } from "../io.js";

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** `4.0 MiB`, `812 B`, `8 GiB` (whole values without decimals). */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${n} B`;
  return `${Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`;
}

/** `0.42 ms`, `12.3 ms`, `1.23 s`. */
export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

const FOLIO_SIZES = ["4K", "8K", "16K", "32K", "64K", "128K", "256K", "512K", "1M", "2M"];

/** Folio counts by order as `2x2M 1x64K` (largest first; at most three groups). */
export function formatFolios(byOrder: Readonly<Record<number, number>>): string {
  const groups = Object.entries(byOrder)
    .map(([o, n]) => [Number(o), n] as const)
    .sort((a, b) => b[0] - a[0])
    .map(([o, n]) => `${n}x${FOLIO_SIZES[o] ?? `order-${o}`}`);
  if (groups.length === 0) return "none";
  return groups.length <= 3 ? groups.join(" ") : `${groups.slice(0, 3).join(" ")} +${groups.length - 3}`;
}

/** Column alignment. */
export type Align = "left" | "right";

/**
 * Rows as aligned text: a header, a rule, the rows; two spaces between columns. `paint`
 * may colour a cell after padding (so escape codes never break the alignment).
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly Align[],
  paint: (row: number, col: number, padded: string) => string = (_r, _c, s) => s,
): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const pad = (s: string, c: number): string => (align[c] === "right" ? s.padStart(widths[c]!) : s.padEnd(widths[c]!));
  const line = (cells: readonly string[], row: number): string =>
    cells
      .map((s, c) => (row < 0 ? pad(s, c) : paint(row, c, pad(s, c))))
      .join("  ")
      .trimEnd();
  const out = [line(header, -1), widths.map((w) => "-".repeat(w)).join("  ")];
  rows.forEach((r, i) => out.push(line(r, i)));
  return `${out.map((l) => `  ${l}`).join("\n")}\n`;
}

/** ANSI colours, only on a terminal. */
export interface Palette {
  ok(s: string): string;
  bad(s: string): string;
  warn(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const plain = (s: string): string => s;

/** Colours for `io` (identity functions unless stdout is a terminal). */
export function paletteFor(io: RunIO): Palette {
  if (io.isTTY !== true) return { ok: plain, bad: plain, warn: plain, dim: plain, bold: plain };
  const sgr = (code: string) => (s: string) => `\x1b[${code}m${s}\x1b[0m`;
  return { ok: sgr("32"), bad: sgr("31"), warn: sgr("33"), dim: sgr("2"), bold: sgr("1") };
}

const BAR_WIDTH = 28;
/** Progress bars only for steps longer than this many units (bytes or files). */
const BAR_MIN_BYTES = 8 << 20;

/**
 * Reports steps: on a terminal a progress bar redrawn in place (only when its text
 * changes) and replaced by the step's line when it ends; otherwise only the lines;
 * nothing at all when `quiet` (`--json`).
 */
export class StepReporter {
  readonly #io: RunIO;
  readonly #tty: boolean;
  readonly #quiet: boolean;
  readonly #palette: Palette;
  #step = "";
  #total = 0;
  #unit: "bytes" | "files" = "files";
  #drawn = "";
  #percent = -1;

  constructor(io: RunIO, quiet: boolean) {
    this.#io = io;
    this.#tty = io.isTTY === true;
    this.#quiet = quiet;
    this.#palette = paletteFor(io);
  }

  begin(step: string, total: number, unit: "bytes" | "files"): void {
    this.#step = step;
    this.#total = total;
    this.#unit = unit;
    this.#drawn = "";
    this.#percent = -1;
  }

  progress(done: number): void {
    if (this.#quiet || !this.#tty || this.#total <= 0) return;
    if (this.#unit === "bytes" && this.#total < BAR_MIN_BYTES) return;
    const frac = Math.min(1, done / this.#total);
    const percent = Math.floor(frac * 100);
    // Redraw once per percent: at most 101 writes per step, whatever its size.
    if (percent === this.#percent) return;
    this.#percent = percent;
    const fill = Math.round(frac * BAR_WIDTH);
    const amount = this.#unit === "bytes" ? `${formatBytes(done)} / ${formatBytes(this.#total)}` : `${done} / ${this.#total} files`;
    const text = `  ${this.#step.padEnd(9)} [${"#".repeat(fill)}${"-".repeat(BAR_WIDTH - fill)}] ${String(percent).padStart(3)}%  ${amount}`;
    this.#drawn = text;
    this.#io.stdout(`\r\x1b[2K${text}`);
  }

  end(step: string, summary: string): void {
    if (this.#quiet) return;
    const clear = this.#tty && this.#drawn !== "" ? "\r\x1b[2K" : "";
    this.#drawn = "";
    this.#io.stdout(`${clear}  ${this.#palette.bold(step.padEnd(9))} ${summary}\n`);
  }
}
