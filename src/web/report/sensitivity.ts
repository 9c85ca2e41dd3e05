import { objectiveName, type SensitivityResult } from '../../flows/mixed.js';
import { escapeHtml, scriptSafeCode, scriptSafeJson, type ReportAssets } from './render.js';
import { REPORT_CSS } from './style.js';

/*
 * The HTML report of `quantkit sensitivity`: per linear weight, the output KL with only that
 * weight quantized, one bar per candidate on a log axis (the layers to keep wide stand out), and
 * the table of bits and KL behind it. Self-contained like the quantize report (Chart.js inlined).
 */

/** The page script: one grouped bar chart from the embedded data. */
const SCRIPT = `
const d = JSON.parse(document.getElementById('qk-sensitivity-data').textContent);
const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
new Chart(document.getElementById('sensitivity-chart'), {
  type: 'bar',
  data: {
    labels: d.nodes,
    datasets: d.series.map((s, i) => ({ label: s.label, data: s.kl, backgroundColor: colors[i % colors.length] })),
  },
  options: {
    animation: false,
    maintainAspectRatio: false,
    scales: {
      y: { type: 'logarithmic', title: { display: true, text: d.axis } },
      x: { ticks: { autoSkip: false, maxRotation: 60 } },
    },
  },
});
`;

/**
 * The plotted series: every candidate but fp32 (whose cost is 0, off a log axis), per weight; a
 * task cost ≤ 0 (the loss fell) is left off the log axis too.
 */
export function sensitivitySeries(r: SensitivityResult): {
  axis: string;
  nodes: string[];
  series: { label: string; kl: (number | null)[] }[];
} {
  const labels = (r.weights[0]?.costs ?? []).map((c) => c.label).filter((l) => l !== 'fp32');
  return {
    axis:
      r.loss === 'task'
        ? 'cross-entropy with only this weight quantized − fp32, nats'
        : 'KL(fp32 ‖ only this weight quantized), nats',
    nodes: r.weights.map((w) => w.node || w.weight),
    series: labels.map((label) => ({
      label,
      kl: r.weights.map((w) => {
        const kl = w.costs.find((c) => c.label === label)?.kl;
        return kl !== undefined && kl > 0 ? kl : null;
      }),
    })),
  };
}

/** The sensitivity table's header and rows (bits per weight and KL per candidate), for text and HTML. */
export function sensitivityTableCells(
  r: SensitivityResult,
  labels: readonly string[],
): { head: string[]; rows: string[][] } {
  const name = objectiveName(r.loss);
  const head = ['weight', 'node', 'params', ...labels.flatMap((l) => [`${l} bits`, `${l} ${name}`])];
  const rows = r.weights.map((w) => [
    w.weight,
    w.node,
    String(w.params),
    ...w.costs.flatMap((c) => [((c.bytes * 8) / w.params).toFixed(2), c.kl.toExponential(2)]),
  ]);
  return { head, rows };
}

export function renderSensitivityReport(model: string, r: SensitivityResult, assets: ReportAssets): string {
  const labels = (r.weights[0]?.costs ?? []).map((c) => c.label);
  const { head, rows } = sensitivityTableCells(r, labels);
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const trs = rows
    .map((row) => `<tr>${row.map((c, i) => `<td${i >= 2 ? ' class="num"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sensitivity: ${escapeHtml(model)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<header><h1>Sensitivity: ${escapeHtml(model)}</h1><p>Each linear weight quantized alone to each candidate; ${r.loss === 'task' ? `the rise of the task loss (cross-entropy against the labels) over the fp32 model's, mean over ${r.positions} labelled calibration positions` : `KL of the output distributions from the fp32 model's, mean over ${r.positions} calibration positions`}.</p></header>
<main>
<section>
<div class="chart tall"><canvas id="sensitivity-chart"></canvas></div>
<table><thead><tr>${th}</tr></thead><tbody>
${trs}
</tbody></table>
</section>
</main>
<footer>Made by quantkit. Charts by Chart.js (MIT), inlined.</footer>
<script type="application/json" id="qk-sensitivity-data">${scriptSafeJson(sensitivitySeries(r))}</script>
<script>${scriptSafeCode(assets.chartJs, 'chart.js')}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
