import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoReportData, runDemo, type DemoResult } from '../src/flows/demo.js';
import { quantizeFile } from '../src/flows/quantize-file.js';
import { quantizeReportData } from '../src/flows/quantize-report.js';
import { loadReportAssets } from '../src/flows/report-assets.js';
import { renderReport } from '../src/web/report/index.js';
import { sqnrPanels } from '../src/web/report/sqnr-chart.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { launchChromium, requireChromium } from './helpers/chromium.js';
import { REPO } from './helpers/cli.js';

/*
 * The demo's HTML report opened in a real browser (Debian's chromium, headless, driven by
 * playwright-core): no console or page error, no network request, every chart drawn (its canvas
 * holds many coloured pixels), the layer selector redraws, and a full-page screenshot lands in
 * test-output/report.png for a person to look at.
 */

const OUT = join(REPO, 'test-output');

describe('HTML report in headless Chromium', () => {
  let context: BrowserContext | undefined;
  let profile = '';
  let result: DemoResult;
  let file = '';
  const errors: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    requireChromium();
    result = await runDemo({ models: ['cnn', 'lm'], warmRuns: 1, timedRuns: 3 });
    mkdirSync(OUT, { recursive: true });
    file = join(OUT, 'report.html');
    writeFileSync(file, renderReport(demoReportData(result), loadReportAssets()));
    profile = mkdtempSync(join(tmpdir(), 'qk-chromium-'));
    context = await launchChromium(profile);
    // Self-contained means no request but the file itself.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      requests.push(url);
      return route.abort();
    });
  });

  afterAll(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('renders every chart without console errors or network, and saves a screenshot', async () => {
    const ctx = context as BrowserContext;
    const page = await ctx.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector('body[data-qk-ready]');

    const sqnrPanelCount = (m: DemoResult['models'][number]) => sqnrPanels(m.rows.slice(1)).length;
    const expectedCharts = result.models.reduce(
      (n, m) => n + 1 + sqnrPanelCount(m) + (m.layers.length > 0 ? 1 : 0) + m.calibration.length,
      0,
    );
    const ready = await page.getAttribute('body', 'data-qk-ready');
    expect(Number(ready)).toBe(expectedCharts);

    // Per canvas: coloured pixels (data series, grid levels; axes and gridlines are grey) and how
    // many finite data points its Chart instance holds.
    const canvases = await page.evaluate(() => {
      const charts = (
        window as unknown as {
          qkCharts: {
            canvas: HTMLCanvasElement;
            chartArea: { left: number; top: number; right: number; bottom: number };
            data: { datasets: { data: unknown[] }[] };
          }[];
        }
      ).qkCharts;
      return charts.map((c) => {
        const cv = c.canvas;
        // One read-back per canvas (a second one makes Chromium warn on the console).
        const px = cv.getContext('2d')?.getImageData(0, 0, cv.width, cv.height).data;
        // The plot area in device pixels (legend and title lie outside it).
        const k = cv.width / cv.clientWidth;
        const area = {
          left: c.chartArea.left * k,
          right: c.chartArea.right * k,
          top: c.chartArea.top * k,
          bottom: c.chartArea.bottom * k,
        };
        let coloured = 0;
        let drawn = 0;
        let areaGrey = 0;
        let areaColoured = 0;
        if (px) {
          for (let i = 0; i < px.length; i += 4) {
            const r = px[i] ?? 0,
              g = px[i + 1] ?? 0,
              b = px[i + 2] ?? 0,
              a = px[i + 3] ?? 0;
            if (a > 0) drawn++;
            const isColoured = a > 60 && Math.max(r, g, b) - Math.min(r, g, b) > 60;
            if (isColoured) coloured++;
            const x = (i / 4) % cv.width,
              y = Math.floor(i / 4 / cv.width);
            if (x < area.left + 2 || x > area.right - 2 || y < area.top + 2 || y > area.bottom - 2 || a < 40) continue;
            if (isColoured) areaColoured++;
            else if (Math.max(r, g, b) - Math.min(r, g, b) <= 60 && Math.max(r, g, b) < 235) areaGrey++;
          }
        }
        const points = c.data.datasets.reduce(
          (n, d) => n + d.data.filter((v) => v !== null && v !== undefined).length,
          0,
        );
        const firstSeries = (c.data.datasets[0]?.data ?? []).filter(
          (v) => v !== null && (v as { y?: number | null }).y !== null,
        ).length;
        return {
          id: cv.id,
          width: cv.width,
          height: cv.height,
          drawn,
          coloured,
          points,
          areaGrey,
          areaColoured,
          firstSeries,
          datasets: c.data.datasets.length,
        };
      });
    });
    expect(canvases).toHaveLength(expectedCharts);
    for (const c of canvases) {
      expect(c.width * c.height, `${c.id} has a size`).toBeGreaterThan(100_000);
      expect(c.points, `${c.id} has data`).toBeGreaterThan(0);
      expect(c.coloured, `${c.id} draws coloured data`).toBeGreaterThan(300);
      expect(c.drawn / (c.width * c.height), `${c.id} is not blank`).toBeGreaterThan(0.02);
    }

    // Calibration: one chart per plotted tensor (both models have some). Inside the plot area
    // (legend and title excluded) the grey histogram is filled and each method's range is drawn
    // as coloured vertical lines, so the area holds grey and coloured pixels.
    const calibPlots = result.models.reduce((n, m) => n + m.calibration.length, 0);
    expect(calibPlots).toBeGreaterThanOrEqual(4);
    const calib = canvases.filter((c) => c.id.startsWith('calib-'));
    expect(calib).toHaveLength(calibPlots);
    for (const c of calib) {
      expect(c.firstSeries, `${c.id} histogram bins`).toBeGreaterThan(5);
      expect(c.datasets - 1, `${c.id} methods in the legend`).toBe(4);
      expect(c.areaGrey, `${c.id} histogram area`).toBeGreaterThan(2000);
      expect(c.areaColoured, `${c.id} threshold lines`).toBeGreaterThan(200);
    }

    // Scatter labels: none covers another label or a point, and (nearly) every scheme is named on
    // the chart (points at one spot share a label; one with no free place is left to the tooltip).
    const labels = await page.evaluate(
      () =>
        (
          window as unknown as {
            qkLabels: Record<
              string,
              {
                placed: { x: number; y: number; w: number; h: number; lines: string[] }[];
                hidden: string[];
                markers: { x: number; y: number; w: number; h: number }[];
              }
            >;
          }
        ).qkLabels,
    );
    const overlap = (a: { x: number; y: number; w: number; h: number }, b: typeof a) =>
      a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    for (const [m, model] of result.models.entries()) {
      const l = labels[`scatter-${m}`];
      expect(l, `scatter-${m} labels`).toBeDefined();
      const placed = l?.placed ?? [];
      for (const [i, a] of placed.entries()) {
        for (const b of placed.slice(i + 1))
          expect(overlap(a, b), `${a.lines.join(',')} vs ${b.lines.join(',')}`).toBe(false);
        for (const mk of l?.markers ?? []) expect(overlap(a, mk), `${a.lines.join(',')} covers a point`).toBe(false);
      }
      const named = placed.flatMap((p) => p.lines);
      expect(new Set(named).size, `labels on ${model.name}'s scatter`).toBe(named.length);
      expect(named.length, `${model.name}: schemes named on the chart`).toBeGreaterThanOrEqual(
        Math.floor(0.9 * model.rows.length),
      );
    }

    // Per-layer SQNR: every series of a model (all its panels) has its own colour/point/dash,
    // every row with per-layer numbers is drawn, and the x axis names the node that reads each
    // weight, as the ONNX file itself says (not the initializer name).
    const sqnr = await page.evaluate(() =>
      (
        window as unknown as {
          qkCharts: {
            canvas: HTMLCanvasElement;
            data: {
              labels: string[];
              datasets: { label: string; borderColor: string; pointStyle: string; borderDash: number[] }[];
            };
          }[];
        }
      ).qkCharts
        .filter((c) => c.canvas.id.startsWith('sqnr-'))
        .map((c) => ({
          id: c.canvas.id,
          labels: c.data.labels,
          sets: c.data.datasets.map((d) => ({
            label: d.label,
            style: `${d.borderColor}|${d.pointStyle}|${d.borderDash.join(',')}`,
          })),
        })),
    );
    for (const [m, model] of result.models.entries()) {
      const charts = sqnr.filter((c) => c.id.startsWith(`sqnr-${m}-`));
      const sets = charts.flatMap((c) => c.sets);
      expect(sets.map((d) => d.label).sort()).toEqual(
        model.rows
          .slice(1)
          .filter((r) => Object.keys(r.layerSqnrDb).length > 0)
          .map((r) => r.scheme)
          .sort(),
      );
      expect(new Set(sets.map((d) => d.style)).size, `${model.name}: distinct series styles`).toBe(sets.length);
    }
    const lmIndex = result.models.findIndex((m) => m.name === 'lm');
    const lm = result.models[lmIndex];
    if (lm) {
      const proto = decodeModel(readFileSync(join(REPO, 'models', 'lm.onnx')), 'lm.onnx');
      const readers = (w: string) => (proto.graph?.node ?? []).filter((n) => n.input.includes(w)).map((n) => n.name);
      const expected = lm.layers.map((l) => readers(l.name).join(' + '));
      expect(expected).toContain('/blocks.0/attn/q/MatMul');
      for (const c of sqnr.filter((x) => x.id.startsWith(`sqnr-${lmIndex}-`))) expect(c.labels).toEqual(expected);
    }
    expect(await page.innerText('main')).toContain('[1] not measured for +sq rows');

    // The tables list every row the demo measured.
    const text = await page.innerText('main');
    for (const m of result.models) for (const r of m.rows) expect(text).toContain(r.scheme);

    // Choosing another layer redraws the histogram with that layer's name in the title.
    const layers = result.models[0]?.layers ?? [];
    if (layers.length > 1) {
      await page.selectOption('#layer-0', '1');
      const title = await page.evaluate(() => {
        const charts = (
          window as unknown as {
            qkCharts: { canvas: HTMLCanvasElement; options: { plugins: { title: { text: string } } } }[];
          }
        ).qkCharts;
        return charts.find((c) => c.canvas.id === 'weights-0')?.options.plugins.title.text;
      });
      expect(title).toContain(layers[1]?.name);
      await page.selectOption('#layer-0', '0');
    }

    await page.screenshot({ path: join(OUT, 'report.png'), fullPage: true });
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
  });

  it('a quantize --report (no evaluation data) renders its SQNR and weight charts without errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-qreport-'));
    const input = join(REPO, 'models', 'cnn.onnx');
    const output = join(dir, 'cnn-q4.onnx');
    const r = await quantizeFile(input, output, { scheme: 'q4', blockSize: 32 });
    const html = renderReport(
      quantizeReportData(input, output, r.report, r.inputFileBytes, r.outputFileBytes),
      loadReportAssets(),
    );
    writeFileSync(join(dir, 'q.html'), html);
    const page = await (context as BrowserContext).newPage();
    const pageErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(pathToFileURL(join(dir, 'q.html')).href);
    await page.waitForSelector('body[data-qk-ready]');
    expect(await page.getAttribute('body', 'data-qk-ready')).toBe('2'); // no scatter: quality not measured; one SQNR panel
    const text = await page.innerText('table');
    expect(text).toContain('q4 b32');
    expect(text).not.toContain('NaN');
    expect(pageErrors).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});
