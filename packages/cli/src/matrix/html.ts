/**
 * The `--html` form of a matrix: one self-contained page (inline CSS, no scripts, no
 * external resources) with a coloured grid: green OK, red failed and recovered, dark red
 * lost or mismatched; each cell's `title` holds its details.
 *
 * Structure the browser test relies on: `table.matrix`, one `td.cell` per cell with class
 * `ok`, `error` or `mismatch` (plus `lost` when not recovered) and `data-producer` /
 * `data-consumers` (compatibles joined with `+`).
 */
import { isLost, type MatrixCell, type MatrixResult } from "./runner.js";
import { cellText } from "./table.js";

const ESCAPES: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** `text` safe inside HTML text and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** The details a cell's tooltip shows, one fact per line. */
export function cellTooltip(cell: MatrixCell): string {
  const lines = [`producer: ${cell.producer}`, `next kernel's handlers: ${cell.consumers.join(", ")}`];
  if (cell.status === "ok") {
    lines.push("OK: every file retrieved; size, position and every byte verified");
    return lines.join("\n");
  }
  lines.push(`${cell.status} at ${cell.stage ?? "?"}: ${cell.label}`);
  if (cell.cause !== null) lines.push(`cause: ${cell.cause.errno}${cell.cause.compatible === null ? "" : ` (no handler for "${cell.cause.compatible}")`}`);
  if (cell.message !== null) lines.push(`message: ${cell.message}`);
  lines.push(`recovered: ${cell.recovered === true ? "yes" : "NO"}${cell.recovery === null ? "" : `: ${cell.recovery}`}`);
  return lines.join("\n");
}

const CSS = `
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 24px; color: #1b1f24; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.sub { margin: 0 0 16px; color: #57606a; }
table.matrix { border-collapse: separate; border-spacing: 3px; }
table.matrix th { font: 12px ui-monospace, Menlo, Consolas, monospace; font-weight: 600; padding: 4px 8px; }
table.matrix thead th { vertical-align: bottom; text-align: center; background: #f0f3f6; border-radius: 4px; }
table.matrix tbody th { text-align: right; background: #f0f3f6; border-radius: 4px; white-space: nowrap; }
table.matrix th.corner { background: none; text-align: right; color: #57606a; font-weight: 400; }
td.cell { font: 12px ui-monospace, Menlo, Consolas, monospace; padding: 8px 10px; text-align: center; border-radius: 4px; white-space: nowrap; cursor: help; min-width: 64px; }
td.cell.ok { background: #2da44e; color: #fff; }
td.cell.error { background: #f8d7da; color: #82071e; border: 1px solid #e5a0a8; }
td.cell.mismatch, td.cell.lost { background: #82071e; color: #fff; font-weight: 700; }
.legend { display: flex; gap: 18px; flex-wrap: wrap; margin: 18px 0 8px; font-size: 13px; }
.legend span.swatch { display: inline-block; width: 14px; height: 14px; border-radius: 3px; vertical-align: -2px; margin-right: 6px; }
.swatch.ok { background: #2da44e; } .swatch.error { background: #f8d7da; border: 1px solid #e5a0a8; } .swatch.lost { background: #82071e; }
p.summary { font-size: 14px; margin: 8px 0 18px; }
table.facts { border-collapse: collapse; font-size: 12px; margin-bottom: 16px; }
table.facts th, table.facts td { text-align: left; padding: 2px 12px 2px 0; }
table.facts td { font-family: ui-monospace, Menlo, Consolas, monospace; }
h2 { font-size: 15px; margin: 18px 0 6px; }
`;

function cellClasses(cell: MatrixCell): string {
  return ["cell", cell.status, ...(isLost(cell) ? ["lost"] : [])].join(" ");
}

/** Render `result` as a self-contained HTML page. */
export function renderMatrixHtml(result: MatrixResult): string {
  const { producers, consumers, cells, summary } = result;
  const head = consumers.map((set) => `<th scope="col">${set.map(escapeHtml).join("<br>")}</th>`).join("");
  const rows = producers.map((producer, row) => {
    const tds = consumers.map((set, col) => {
      const cell = cells[row * consumers.length + col];
      if (cell === undefined) return "<td></td>";
      return `<td class="${cellClasses(cell)}" data-producer="${escapeHtml(cell.producer)}" data-consumers="${escapeHtml(set.join("+"))}" title="${escapeHtml(cellTooltip(cell))}">${escapeHtml(cellText(cell))}</td>`;
    });
    return `<tr><th scope="row">${escapeHtml(producer)}</th>${tds.join("")}</tr>`;
  });
  const handlers = result.handlers.map((h) => `<tr><td>${escapeHtml(h.compatible)}</td><td>${escapeHtml(h.source)}</td><td>${h.builtin ? "built-in" : "loaded by path"}</td></tr>`);
  const workload = result.workload.map(
    (f) =>
      `<tr><td>${escapeHtml(f.session)}</td><td>${escapeHtml(f.token)}</td><td>${escapeHtml(f.name)}</td><td>${f.size}</td><td>${f.pos}</td><td>0x${f.seals.toString(16)}</td><td>${f.sha256.slice(0, 16)}…</td></tr>`,
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>luo matrix: ${producers.length} x ${consumers.length}</title>
<style>${CSS}</style>
</head>
<body>
<h1>luo matrix</h1>
<p class="sub">Rows: the handler that preserved (producer format). Columns: the handlers registered in the next kernel. Each cell is one live update of ${result.workload.length} memfds on ${escapeHtml(result.memory)} machines; hover a cell for its details.</p>
<table class="matrix">
<thead><tr><th class="corner" scope="col">producer \\ next kernel</th>${head}</tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
<div class="legend">
<span><span class="swatch ok"></span>OK: retrieved, every byte verified</span>
<span><span class="swatch error"></span>failed (errno), and recovered: the same handover retrieved with the producer's handler</span>
<span><span class="swatch lost"></span>LOST or MISMATCH: not recovered, or retrieved with different contents</span>
</div>
<p class="summary" id="summary">${summary.cells} cells: <b>${summary.ok} OK</b>, ${summary.failed} failed, ${summary.recovered} recovered, <b>${summary.lost} lost</b>${summary.notHandedOver > 0 ? `, ${summary.notHandedOver} never handed over (preserve or kexec failed)` : ""}.</p>
<h2>Handlers</h2>
<table class="facts"><tr><th>compatible</th><th>source</th><th></th></tr>${handlers.join("")}</table>
<h2>Workload (each cell)</h2>
<table class="facts"><tr><th>session</th><th>token</th><th>memfd</th><th>size</th><th>pos</th><th>seals</th><th>sha256</th></tr>${workload.join("")}</table>
</body>
</html>
`;
}
