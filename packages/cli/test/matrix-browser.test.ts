/**
 * `luo matrix --html` in a real headless browser (Debian's chromium driven by
 * playwright-core): the page renders offline, the grid has one coloured cell per matrix
 * cell with the right class and tooltip, and a screenshot is kept as a test artifact.
 */
import { mkdirSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { run } from "../src/index.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("../.vitest/artifacts/", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "luo-matrix-html-"));

interface CellJson {
  producer: string;
  consumers: string[];
  status: string;
  label: string;
  recovered: boolean | null;
}

/** What the page shows for one grid cell. */
interface RenderedCell {
  producer: string;
  consumers: string;
  classes: string[];
  text: string;
  title: string;
  background: string;
  visible: boolean;
}

async function luo(...argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await run(argv, { stdout: (t) => (out += t), stderr: () => undefined });
  return { code, out };
}

describe("luo matrix --html in chromium", () => {
  it("renders the grid with one classed, titled cell per matrix cell; screenshot kept", async () => {
    expect(statSync(CHROMIUM).isFile(), "Debian chromium (tools/ci/ensure-system-deps.mjs installs it)").toBe(true);
    const html = join(tmp, "matrix.html");
    const r = await luo("matrix", "--json", "--html", html);
    expect(r.code).toBe(0);
    const { cells, producers, consumers } = JSON.parse(r.out) as { cells: CellJson[]; producers: string[]; consumers: string[][] };
    const source = readFileSync(html, "utf8");
    expect(source).not.toMatch(/(?:src|href)=["']?(?:https?:)?\/\//);

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const requested: string[] = [];
      page.on("request", (req) => requested.push(req.url()));
      const url = pathToFileURL(html).href;
      await page.goto(url);
      expect(requested).toEqual([url]);
      expect(await page.title()).toContain("luo matrix");

      // Runs in the page (a string: this package's TypeScript has no DOM types).
      const rendered = JSON.parse(
        await page.evaluate<string>(`JSON.stringify([...document.querySelectorAll("table.matrix td.cell")].map((td) => {
          const box = td.getBoundingClientRect();
          return {
            producer: td.getAttribute("data-producer") ?? "",
            consumers: td.getAttribute("data-consumers") ?? "",
            classes: [...td.classList].sort(),
            text: td.textContent,
            title: td.getAttribute("title") ?? "",
            background: getComputedStyle(td).backgroundColor,
            visible: box.width > 0 && box.height > 0,
          };
        }))`),
      ) as RenderedCell[];
      expect(rendered.length).toBe(producers.length * consumers.length);
      expect(await page.locator("table.matrix tbody tr").count()).toBe(producers.length);
      expect(await page.locator("table.matrix thead th").count()).toBe(consumers.length + 1);
      rendered.forEach((td, i) => {
        const cell = cells[i];
        if (cell === undefined) throw new Error(`no JSON cell ${i}`);
        const where = `${cell.producer} -> ${cell.consumers.join("+")}`;
        expect(td.producer, where).toBe(cell.producer);
        expect(td.consumers, where).toBe(cell.consumers.join("+"));
        // First principles: OK iff the next kernel has the producer's compatible.
        const ok = cell.consumers.includes(cell.producer);
        expect(td.classes, where).toEqual(ok ? ["cell", "ok"] : ["cell", "error"]);
        expect(td.text, where).toBe(ok ? "OK" : `EIO (ENOENT ${cell.producer})`);
        expect(td.title, where).toContain(`producer: ${cell.producer}`);
        if (!ok) expect(td.title, where).toMatch(/recovered: yes/);
        expect(td.visible, where).toBe(true);
      });
      // Readable at a glance: OK and failed cells are painted differently, each kind alike.
      const colours = (okCells: boolean): Set<string> => new Set(rendered.filter((td) => td.classes.includes("ok") === okCells).map((td) => td.background));
      expect(colours(true).size).toBe(1);
      expect(colours(false).size).toBe(1);
      expect([...colours(true)][0]).not.toBe([...colours(false)][0]);
      expect(await page.textContent("#summary")).toContain(`${cells.length} cells`);

      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, "matrix.png");
      await page.screenshot({ path: shot, fullPage: true });
      const png = readFileSync(shot);
      expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      expect(png.readUInt32BE(16)).toBeGreaterThan(0);
    } finally {
      await browser.close();
    }
  });
});
