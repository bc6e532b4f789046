/** The terminal rendering of an {@link InspectReport}: headed sections and aligned tables. */
import type { InspectReport } from "./report.js";

/** `1536` -> `"1.50 KiB"`; below 1 KiB the exact count. */
export function humanBytes(n: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  if (n < 1024) return `${n} B`;
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]!}`;
}

/**
 * Rows as columns padded to the widest cell. Columns named in `right` are right-aligned
 * (numbers); the last column is never padded (no trailing blanks).
 */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, right: readonly number[] = [], indent = "  "): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  const line = (r: readonly string[]): string =>
    indent +
    r
      .map((cell, c) => {
        if (c === r.length - 1 && !right.includes(c)) return cell;
        return right.includes(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!);
      })
      .join("  ");
  return `${all.map(line).join("\n")}\n`;
}

function indentBlock(text: string, indent = "  "): string {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => (l === "" ? l : indent + l))
    .join("\n");
}

/** The full text report. */
export function formatInspectText(r: InspectReport): string {
  const out: string[] = [];
  const fdt = r.kho.fdt;
  const how = fdt.method === "x86-setup-data" ? `x86 boot_params ${fdt.bootParams ?? "?"} -> setup_data type 10` : fdt.method;
  out.push(`image     ${r.image.path} (${r.image.format}${r.image.compressed ? ", zstd" : ""}, ${humanBytes(r.image.fileSize)})`);
  out.push(`root FDT  ${fdt.addr}, ${fdt.size} bytes, ${r.kho.compatible || "no compatible"}, found by ${how}`);
  if (fdt.candidates !== null && fdt.candidates.length > 1) out.push(`          other kho-v4 FDTs: ${fdt.candidates.filter((c) => c !== fdt.addr).join(", ")}`);
  if (r.kho.kexecMetadata !== null) out.push(`kexec     from release ${r.kho.kexecMetadata.previousRelease}, kexec_count ${r.kho.kexecMetadata.kexecCount}`);
  if (r.kho.scratch !== null) out.push(`scratch   ${r.kho.scratch.map((s) => `${s.start} ${humanBytes(s.size)}`).join(", ") || "none"}`);
  out.push("");

  out.push("KHO tree");
  out.push(indentBlock(r.kho.dts));
  out.push("");
  out.push("sub-trees");
  out.push(table(["name", "preserved-data", "blob-size"], r.kho.subtrees.map((s) => [s.name, s.phys, String(s.size)]), [2]).trimEnd());
  out.push("");

  if (r.preserved !== null) {
    const p = r.preserved;
    out.push(`preserved memory (radix root ${r.kho.memoryMap}, ${p.nodePages.length} node pages)`);
    const rows = p.byOrder.map((o) => [String(o.order), String(o.runs), humanBytes(o.bytes), String(o.bytes)]);
    rows.push(["total", String(p.runs), humanBytes(p.bytes), String(p.bytes)]);
    out.push(table(["order", "runs", "size", "bytes"], rows, [1, 2, 3]).trimEnd());
    out.push("");
  }

  if (r.luo === null) {
    out.push(r.kho.subtrees.some((s) => s.name === "LUO") ? "LUO: not decoded (see problems)" : "LUO: no \"LUO\" sub-tree");
  } else {
    const l = r.luo;
    const files = l.sessions.reduce((n, s) => n + s.files.length, 0);
    out.push(`LUO ${l.compatible} at ${l.phys}, liveupdate_num ${l.liveupdateNum}: ${l.sessions.length} session${l.sessions.length === 1 ? "" : "s"}, ${files} file${files === 1 ? "" : "s"}, ${l.flbs.length} FLB${l.flbs.length === 1 ? "" : "s"}`);
    for (const w of l.warnings) out.push(`  warning: ${w}`);
    if (l.sessions.length > 0) {
      const rows: string[][] = [];
      for (const s of l.sessions) {
        if (s.files.length === 0) rows.push([s.name, "-", "-", "-"]);
        for (const f of s.files) rows.push([s.name, f.token, f.compatible, f.decoder ?? "no decoder"]);
      }
      out.push(table(["session", "token", "compatible", "decoder"], rows).trimEnd());
    }
    if (l.flbs.length > 0) out.push(table(["FLB", "data", "count"], l.flbs.map((f) => [f.name, f.data, f.count]), [2]).trimEnd());
  }
  out.push("");

  if (r.memfds.length > 0) {
    out.push("memfds");
    const rows = r.memfds.map((m) => [
      m.session,
      m.token,
      m.compatible,
      String(m.size),
      String(m.pos),
      m.seals === null ? "-" : `0x${m.seals.toString(16)}`,
      m.foliosByOrder.length === 0 ? "0" : m.foliosByOrder.map((o) => `${o.folios}x${o.order === 0 ? "4K" : `o${o.order}`}`).join(" "),
      m.sha256 ?? `(${m.note ?? "none"})`,
    ]);
    out.push(table(["session", "token", "format", "size", "pos", "seals", "folios", "sha256"], rows, [3, 4]).trimEnd());
    out.push("");
  }

  if (r.problems.length > 0) {
    out.push(`problems (${r.problems.length})`);
    for (const p of r.problems) out.push(`  ${p.where}: ${p.message}`);
    out.push("");
  }
  return `${out.join("\n")}\n`;
}
