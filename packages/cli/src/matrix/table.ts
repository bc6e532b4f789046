/**
 * The terminal form of a matrix: producers as rows, consumer registries as columns (each
 * column header lists the registry's handlers one per line), blocks of columns wrapped to the
 * terminal width, a legend and a summary.
 */
import { isLost, type MatrixCell, type MatrixResult } from "./runner.js";

/** Options of {@link renderMatrixTable}. */
export interface TableOptions {
  /** Wrap columns into blocks no wider than this (default 120). */
  readonly width?: number;
  /** ANSI colours (green OK, red failures). */
  readonly color?: boolean;
}

const GAP = "  ";
const PRODUCER_HEADER = "producer";

/** The text a cell shows: its label, and `LOST` when a handed-over update was not recovered. */
export function cellText(cell: MatrixCell): string {
  return isLost(cell) ? `${cell.label} LOST` : cell.label;
}

function paint(text: string, cell: MatrixCell, color: boolean): string {
  if (!color) return text;
  if (cell.status === "ok") return `\x1b[32m${text}\x1b[0m`;
  if (!isLost(cell)) return `\x1b[31m${text}\x1b[0m`;
  return `\x1b[1;97;41m${text}\x1b[0m`;
}

/** Split column indexes into blocks whose rows fit in `width` characters (at least one column each). */
function blocks(firstWidth: number, widths: readonly number[], width: number): number[][] {
  const out: number[][] = [];
  let current: number[] = [];
  let used = firstWidth;
  widths.forEach((w, i) => {
    if (current.length > 0 && used + GAP.length + w > width) {
      out.push(current);
      current = [];
      used = firstWidth;
    }
    current.push(i);
    used += GAP.length + w;
  });
  if (current.length > 0) out.push(current);
  return out;
}

/** Render `result` as aligned text (ends with a newline). */
export function renderMatrixTable(result: MatrixResult, options: TableOptions = {}): string {
  const width = options.width ?? 120;
  const color = options.color ?? false;
  const { producers, consumers, cells, summary } = result;
  const cellAt = (row: number, col: number): MatrixCell => {
    const cell = cells[row * consumers.length + col];
    if (cell === undefined) throw new Error(`matrix cell ${row},${col} missing`);
    return cell;
  };
  const firstWidth = Math.max(PRODUCER_HEADER.length, ...producers.map((p) => p.length));
  const colWidths = consumers.map((set, col) => Math.max(...set.map((c) => c.length), ...producers.map((_, row) => cellText(cellAt(row, col)).length)));
  const headerLines = Math.max(1, ...consumers.map((set) => set.length));
  const lines: string[] = [];
  lines.push(
    `luo matrix: ${producers.length} producer${producers.length === 1 ? "" : "s"} x ${consumers.length} consumer registr${consumers.length === 1 ? "y" : "ies"}; ` +
      `each cell: ${result.workload.length} memfds in ${new Set(result.workload.map((f) => f.session)).size} sessions, ${result.memory} machines`,
    "rows: the handler that preserved (producer); columns: the handlers registered in the next kernel",
    "",
  );
  const groups = blocks(firstWidth, colWidths, width);
  groups.forEach((group, g) => {
    if (groups.length > 1) lines.push(`columns ${(group[0] ?? 0) + 1}-${(group[group.length - 1] ?? 0) + 1} of ${consumers.length}`);
    // Header: each registry's handlers stacked, bottom-aligned over the rule.
    for (let line = 0; line < headerLines; line++) {
      const first = line === headerLines - 1 ? PRODUCER_HEADER : "";
      const parts = group.map((col) => {
        const set = consumers[col] ?? [];
        const member = set[line - (headerLines - set.length)] ?? "";
        return member.padEnd(colWidths[col] ?? 0);
      });
      lines.push([first.padEnd(firstWidth), ...parts].join(GAP).trimEnd());
    }
    lines.push(["-".repeat(firstWidth), ...group.map((col) => "-".repeat(colWidths[col] ?? 0))].join(GAP));
    producers.forEach((producer, row) => {
      const parts = group.map((col) => {
        const cell = cellAt(row, col);
        const text = cellText(cell);
        // Colour the text only, so padding stays outside the escape codes and trims away.
        return paint(text, cell, color) + " ".repeat(Math.max(0, (colWidths[col] ?? 0) - text.length));
      });
      lines.push([producer.padEnd(firstWidth), ...parts].join(GAP).trimEnd());
    });
    if (g < groups.length - 1) lines.push("");
  });
  lines.push("", "legend:");
  const example = cells.find((c) => c.cause !== null);
  const legend: [string, string][] = [
    ["OK", "retrieved in the next kernel: every file's size, position and bytes verified"],
    [example?.label ?? "EIO (ENOENT memfd-v1)", "the next kernel's first open failed (EIO): no handler (ENOENT) for that compatible"],
    ["ERRNO (stage)", "failed with ERRNO in that step: preserve, kexec, retrieve or finish"],
    ["MISMATCH", "retrieved, but a size, position or byte differs from what was preserved"],
    ["... LOST", "failed, and the handover did not retrieve with the producer's handler either"],
  ];
  const legendWidth = Math.max(...legend.map(([k]) => k.length));
  for (const [k, v] of legend) lines.push(`  ${k.padEnd(legendWidth)}  ${v}`);
  const notHandedOver = summary.notHandedOver > 0 ? `, ${summary.notHandedOver} never handed over (preserve or kexec failed)` : "";
  lines.push("", `${summary.cells} cells: ${summary.ok} OK, ${summary.failed} failed, ${summary.recovered} recovered, ${summary.lost} lost${notHandedOver}`);
  const handedOver = summary.failed - summary.notHandedOver;
  if (handedOver > 0) {
    lines.push(
      `recovered: the same next machine, its LUO detached and attached again with the producer's handler,`,
      `retrieved every file and verified every byte (${summary.recovered} of ${handedOver} failed handover${handedOver === 1 ? "" : "s"})`,
    );
  }
  return `${lines.join("\n")}\n`;
}
