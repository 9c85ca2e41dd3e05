/** web/report: one self-contained HTML report (tables + Chart.js plots) from ReportData. Browser-safe. */
export { renderReport, escapeHtml } from './render.js';
export type { ReportAssets } from './render.js';
export { formatSize, formatQuality, formatChange, formatSqnr, formatRatio, schemeTable } from './format.js';
export { renderSensitivityReport, sensitivitySeries, sensitivityTableCells } from './sensitivity.js';
