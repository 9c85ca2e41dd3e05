import type { ModelReport, SchemeRow } from '../../flows/report-data.js';

/*
 * Number formatting shared by the terminal table (cli) and the HTML tables: one place decides how
 * a perplexity, an accuracy or a size reads.
 */

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

export function formatQuality(model: Pick<ModelReport, 'quality'>, q: number): string {
  if (Number.isNaN(q)) return '—';
  if (!Number.isFinite(q)) return String(q);
  return model.quality.percent ? `${(q * 100).toFixed(2)} %` : q.toFixed(3);
}

/** Relative change, signed, in percent; '—' for the baseline itself. */
export function formatChange(row: SchemeRow, isBaseline: boolean): string {
  if (isBaseline || Number.isNaN(row.qualityChange)) return '—';
  const pct = row.qualityChange * 100;
  const s = Math.abs(pct) < 0.005 ? '0.00' : pct.toFixed(2);
  return `${pct > 0 && s !== '0.00' ? '+' : ''}${s} %`;
}

export function formatSqnr(db: number | null): string {
  if (db === null) return '—';
  if (!Number.isFinite(db)) return 'exact';
  return `${db.toFixed(1)} dB`;
}

export function formatRatio(r: number | null, digits = 2): string {
  return r === null || !Number.isFinite(r) ? '—' : `${r.toFixed(digits)}×`;
}

/**
 * The column headers and text cells of a model's scheme table (fp32 first), and its footnotes: a
 * row whose weight SQNR is missing for a stated reason shows '— [n]', and notes[n − 1] says why.
 */
export function schemeTable(model: ModelReport): { header: string[]; rows: string[][]; notes: string[] } {
  const notes: string[] = [];
  const sqnrCell = (r: SchemeRow): string => {
    if (r.weightSqnrDb !== null || r.weightSqnrNote === undefined) return formatSqnr(r.weightSqnrDb);
    if (!notes.includes(r.weightSqnrNote)) notes.push(r.weightSqnrNote);
    return `— [${notes.indexOf(r.weightSqnrNote) + 1}]`;
  };
  const lm = model.rows.some((r) => r.bitsPerChar !== undefined);
  // quantize --report has no evaluation data: no quality columns then, nor latency.
  const measured = model.rows.some((r) => !Number.isNaN(r.quality));
  const timed = model.rows.some((r) => r.latencyRatio !== null);
  const header = [
    'scheme',
    'size',
    'ratio',
    ...(measured ? [model.quality.name] : []),
    ...(lm ? ['bits/char'] : []),
    ...(measured ? ['change'] : []),
    'weight SQNR',
    ...(timed ? ['latency'] : []),
  ];
  const rows = model.rows.map((r, i) => [
    r.scheme,
    formatSize(r.bytes),
    formatRatio(r.ratio),
    ...(measured ? [formatQuality(model, r.quality)] : []),
    ...(lm ? [r.bitsPerChar === undefined ? '—' : r.bitsPerChar.toFixed(3)] : []),
    ...(measured ? [formatChange(r, i === 0)] : []),
    sqnrCell(r),
    ...(timed ? [formatRatio(r.latencyRatio)] : []),
  ]);
  return { header, rows, notes: notes.map((n, i) => `[${i + 1}] ${n}`) };
}
