import { paretoFront, type ModelReport, type ReportData } from '../../flows/report-data.js';
import { formatSqnr, schemeTable } from './format.js';
import { PAGE_SCRIPT } from './page-script.js';
import { layerLabel, sqnrPanels } from './sqnr-chart.js';
import { REPORT_CSS } from './style.js';

/** What the page needs besides the data; the caller reads Chart.js's UMD build (web/ has no file access). */
export interface ReportAssets {
  /** The text of chart.js/dist/chart.umd(.min).js, inlined so the file works offline. */
  readonly chartJs: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Text that may sit inside a <script> element: the HTML parser ends a script at `</script`
 * whatever JS thinks, and `<!--` can switch it into an escaped state (HTML §13.2.5.4), so every
 * `<` in the data becomes the JSON escape \u003c, which JSON.parse reads back unchanged.
 */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export function scriptSafeCode(code: string, what: string): string {
  // Source maps point at files the reader does not have; drop the comment.
  const stripped = code.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
  if (/<\/script|<!--/i.test(stripped)) throw new Error(`${what} contains '</script' or '<!--' and cannot be inlined`);
  return stripped;
}

function table(header: readonly string[], rows: readonly (readonly string[])[], numericFrom = 1): string {
  const th = header.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const trs = rows
    .map(
      (r) =>
        `<tr>${r.map((c, i) => `<td${i >= numericFrom ? ' class="num"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>`;
}

function layerTable(model: ModelReport): string {
  const quant = model.rows.slice(1).filter((r) => Object.keys(r.layerSqnrDb).length > 0);
  if (model.layers.length === 0 || quant.length === 0) return '';
  const header = ['layer (reading node)', 'weight', 'shape', ...quant.map((r) => r.scheme)];
  const rows = model.layers.map((l) => [
    layerLabel(l),
    l.name,
    l.dims.join('×'),
    ...quant.map((r) => formatSqnr(r.layerSqnrDb[l.name] ?? null)),
  ]);
  return `<details><summary>weight SQNR per layer (table)</summary>${table(header, rows, 3)}</details>`;
}

function calibrationSection(model: ModelReport, m: number): string {
  if (model.calibration.length === 0) return '';
  const plots = model.calibration.map((c, k) => {
    const rows = c.thresholds.map((t) => [t.method, t.lo.toPrecision(4), t.hi.toPrecision(4)]);
    return `<div class="chart"><canvas id="calib-${m}-${k}"></canvas></div>${table(['method', 'low', 'high'], rows)}`;
  });
  return `<h3>Calibration ranges</h3>
<p>Activation histograms from the calibration set, with the range each method chose; values outside it are clipped.</p>
${plots.join('\n')}`;
}

function modelSection(model: ModelReport, m: number): string {
  const t = schemeTable(model);
  const layers = model.layers
    .map(
      (l, i) =>
        `<option value="${i}">${escapeHtml(layerLabel(l))} (${escapeHtml(l.name)}) [${l.dims.join('×')}]</option>`,
    )
    .join('');
  const grids = (model.layers[0]?.grids ?? [])
    .map(
      (g, i) =>
        `<label><input type="checkbox" id="grid-${m}-${i}" checked> <span class="swatch s${i}"></span>${escapeHtml(g.label)}</label>`,
    )
    .join(' ');
  const weights =
    model.layers.length === 0
      ? ''
      : `<h3>Weights and quantization levels</h3>
<p>A histogram of one layer's weights; vertical lines are the levels each format can store, for the block that holds
the largest |w| (blocks with smaller weights scale the same grid down). NF4 puts its levels where the weights are dense;
int4 spaces them evenly.</p>
<div class="controls"><label>layer <select id="layer-${m}">${layers}</select></label> ${grids}</div>
<div class="chart"><canvas id="weights-${m}"></canvas></div>`;
  return `<section>
<h2>${escapeHtml(model.name)}</h2>
<p>${escapeHtml(model.description)}</p>
${table(t.header, t.rows)}
${t.notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}
${model.rows.some((r) => Number.isFinite(r.quality)) ? `<div class="chart ${model.rows.length > 36 ? 'taller' : 'tall'}"><canvas id="scatter-${m}"></canvas></div>` : ''}
${sqnrPanels(model.rows.slice(1))
  .map((_, p) => `<div class="chart tall"><canvas id="sqnr-${m}-${p}"></canvas></div>`)
  .join('\n')}
${layerTable(model)}
${weights}
${calibrationSection(model, m)}
</section>`;
}

/**
 * One self-contained HTML file (no network): the tables as HTML, the charts drawn by Chart.js from
 * the embedded JSON. Pure: same data and assets, same bytes.
 */
export function renderReport(data: ReportData, assets: ReportAssets): string {
  const embedded = {
    ...data,
    models: data.models.map((m) => ({
      ...m,
      pareto: paretoFront(
        m.rows.map((r) => ({ size: r.bytes, quality: r.quality })),
        m.quality.higherIsBetter,
      ),
      layerLabels: m.layers.map(layerLabel),
      sqnrPanels: sqnrPanels(m.rows.slice(1)),
    })),
  };
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<header><h1>${escapeHtml(data.title)}</h1><p>${escapeHtml(data.subtitle)}</p></header>
<main>
${data.models.map(modelSection).join('\n')}
</main>
<footer>Made by quantkit. Charts by Chart.js (MIT), inlined.</footer>
<script type="application/json" id="qk-report-data">${scriptSafeJson(embedded)}</script>
<script>${scriptSafeCode(assets.chartJs, 'chart.js')}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
