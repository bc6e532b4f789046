/**
 * `luo inspect --html FILE`: one self-contained page (inline CSS, no script, no external
 * resource) with a picture of physical memory as a CSS grid, and the report's tables.
 *
 * The grid has {@link MAP_CELLS} cells of equal size spanning the image's lowest to highest
 * address; each cell shows the most telling thing inside it, by this priority (highest
 * first): the root FDT, radix nodes, LUO blocks, KHO sub-tree blobs, memfd records (the
 * handler's record, vmalloc chunks, folio arrays), other preserved runs (memfd folios),
 * scratch, memory the image holds, and nothing (a hole). So a single metadata page stays
 * visible in a cell of half a megabyte. Each cell is a `div.cell` with `data-kind`,
 * `data-start` and `data-end` (hex) for tools and tests.
 */
import type { MemoryRange } from "@liveupdate/kho";
import type { InspectResult } from "./decode.js";
import { hex, type MetadataKind } from "./report.js";
import { humanBytes } from "./text.js";

/** Grid columns. */
export const MAP_COLUMNS = 64;
/** Grid cells (64 x 32). */
export const MAP_CELLS = 2048;

/** What a cell can show, lowest priority first. */
export const MAP_KINDS = ["hole", "memory", "scratch", "preserved", "memfd-record", "subtree", "luo", "radix", "fdt"] as const;
/** One of {@link MAP_KINDS}. */
export type MapKind = (typeof MAP_KINDS)[number];

const LABELS: Record<MapKind, string> = {
  hole: "not in the image",
  memory: "memory (not preserved)",
  scratch: "scratch",
  preserved: "preserved runs (memfd folios, ...)",
  "memfd-record": "memfd records and folio arrays",
  subtree: "KHO sub-tree blobs",
  luo: "LUO session / file blocks, FLB page",
  radix: "radix tree nodes",
  fdt: "KHO root FDT",
};

const COLOURS: Record<MapKind, string> = {
  hole: "#f2f2f2",
  memory: "#d9dde3",
  scratch: "#f7d774",
  preserved: "#6cb36c",
  "memfd-record": "#2f8fd8",
  subtree: "#9b59b6",
  luo: "#e67e22",
  radix: "#c0392b",
  fdt: "#111111",
};

const PAGE = 4096;

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The cell kinds of the memory map, and its geometry. */
export interface MemoryMapCells {
  readonly base: number;
  readonly cellBytes: number;
  /** Index into {@link MAP_KINDS} per cell. */
  readonly kinds: Uint8Array;
}

/** Compute the grid for `result`. */
export function memoryMapCells(result: InspectResult): MemoryMapCells {
  const ranges = result.ranges;
  // Ranges are ascending (an image's contract); a loop, not Math.min(...), for any count.
  let base = Infinity;
  let end = -Infinity;
  for (const r of ranges) {
    base = Math.min(base, r.start);
    end = Math.max(end, r.start + r.size);
  }
  if (ranges.length === 0) [base, end] = [0, PAGE];
  const cellBytes = Math.max(PAGE, Math.ceil((end - base) / MAP_CELLS / PAGE) * PAGE);
  const kinds = new Uint8Array(MAP_CELLS);
  const mark = (start: number, size: number, kind: MapKind): void => {
    const k = MAP_KINDS.indexOf(kind);
    const first = Math.max(0, Math.floor((start - base) / cellBytes));
    const last = Math.min(MAP_CELLS - 1, Math.floor((start + Math.max(size, 1) - 1 - base) / cellBytes));
    for (let c = first; c <= last; c++) if (kinds[c]! < k) kinds[c] = k;
  };
  for (const r of ranges) mark(r.start, r.size, "memory");
  for (const s of result.scratch) mark(s.start, s.size, "scratch");
  result.runs.forEach((phys, bytes) => { mark(phys, bytes, "preserved"); });
  const order: readonly MetadataKind[] = ["memfd-record", "subtree", "luo", "radix", "fdt"];
  for (const kind of order) for (const m of result.metadata) if (m.kind === kind) mark(m.phys, m.size, kind);
  return { base, cellBytes, kinds };
}

/** The image's ranges, listed when few (a sparse image has hundreds: then counted). */
function rangesText(ranges: readonly MemoryRange[]): string {
  if (ranges.length > 8) return `${ranges.length} ranges`;
  return ranges.map((r) => `${hex(r.start)}-${hex(r.start + r.size)}`).join(", ");
}

/** The whole page. */
export function formatInspectHtml(result: InspectResult): string {
  const r = result.report;
  const map = memoryMapCells(result);
  const counts = new Map<MapKind, number>();
  const cells: string[] = [];
  for (let c = 0; c < MAP_CELLS; c++) {
    const kind = MAP_KINDS[map.kinds[c]!]!;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    const start = map.base + c * map.cellBytes;
    const end = start + map.cellBytes;
    cells.push(`<div class="cell k-${kind}" data-kind="${kind}" data-start="${hex(start)}" data-end="${hex(end)}" title="${hex(start)}-${hex(end)}: ${escape(LABELS[kind])}"></div>`);
  }
  const legend = [...MAP_KINDS]
    .reverse()
    .map((k) => `<li><span class="swatch k-${k}"></span>${escape(LABELS[k])} <small>(${counts.get(k) ?? 0} cells)</small></li>`)
    .join("");
  const css = MAP_KINDS.map((k) => `.k-${k}{background:${COLOURS[k]}}`).join("");
  const row = (cols: readonly string[], tag = "td"): string => `<tr>${cols.map((c) => `<${tag}>${escape(c)}</${tag}>`).join("")}</tr>`;
  const tableOf = (head: readonly string[], rows: ReadonlyArray<readonly string[]>): string =>
    `<table><thead>${row(head, "th")}</thead><tbody>${rows.map((x) => row(x)).join("")}</tbody></table>`;

  const preserved = r.preserved === null ? "<p>not walked (see problems)</p>" : tableOf(["order", "runs", "bytes"], [...r.preserved.byOrder.map((o) => [String(o.order), String(o.runs), humanBytes(o.bytes)]), ["total", String(r.preserved.runs), humanBytes(r.preserved.bytes)]]);
  const memfds = tableOf(
    ["session", "token", "format", "size", "pos", "seals", "folios", "sha256"],
    r.memfds.map((m) => [m.session, m.token, m.compatible, String(m.size), String(m.pos), m.seals === null ? "-" : hex(m.seals), String(m.folios), m.sha256 ?? m.note ?? "-"]),
  );
  const metadata = tableOf(["kind", "phys", "size", "what"], r.metadata.map((m) => [m.kind, m.phys, String(m.size), m.what]));
  const problems = r.problems.length === 0 ? "<p>none</p>" : `<ul>${r.problems.map((p) => `<li>${escape(p.where)}: ${escape(p.message)}</li>`).join("")}</ul>`;

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>luo inspect: ${escape(r.image.path)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
code,td{font-family:ui-monospace,monospace;font-size:12px}
#memory-map{display:grid;grid-template-columns:repeat(${MAP_COLUMNS},1fr);gap:1px;max-width:1024px;background:#fff}
.cell{aspect-ratio:1}
.legend{list-style:none;padding:0;columns:2;max-width:1024px}.legend li{margin:2px 0}
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px;border:1px solid #999}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
${css}
</style></head><body>
<h1>luo inspect: <code>${escape(r.image.path)}</code></h1>
<p>${escape(r.image.format)}${r.image.compressed ? " (zstd)" : ""}, ${humanBytes(r.image.fileSize)}; root FDT at <code>${escape(r.kho.fdt.addr)}</code> (${escape(r.kho.fdt.method)}), ${escape(r.kho.compatible)}</p>
<h2>Memory map</h2>
<p>${hex(map.base)} to ${hex(map.base + MAP_CELLS * map.cellBytes)}, ${humanBytes(map.cellBytes)} per cell. Image ranges: <code>${escape(rangesText(result.ranges))}</code></p>
<div id="memory-map" data-base="${hex(map.base)}" data-cell-bytes="${map.cellBytes}">${cells.join("")}</div>
<ul class="legend">${legend}</ul>
<h2>Preserved runs</h2>${preserved}
<h2>memfds</h2>${memfds}
<h2>Metadata pages</h2>${metadata}
<h2>KHO tree</h2><pre>${escape(r.kho.dts)}</pre>
<h2>Problems</h2>${problems}
</body></html>
`;
}
