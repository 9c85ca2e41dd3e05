import { describe, expect, it } from 'vitest';
import type { ReportData } from '../../flows/report-data.js';
import { escapeHtml, renderReport } from './render.js';
import { formatChange, formatQuality, formatSqnr, schemeTable } from './format.js';

const FAKE_CHART = 'window.Chart = function () {};\n//# sourceMappingURL=chart.umd.min.js.map\n';

function data(scheme = 'int8'): ReportData {
  return {
    title: 'T <b>',
    subtitle: 's',
    models: [
      {
        name: 'lm',
        description: 'd',
        quality: { name: 'perplexity', higherIsBetter: false, percent: false },
        rows: [
          {
            scheme: 'fp32',
            bytes: 2048,
            ratio: 1,
            quality: 3.25,
            qualityChange: 0,
            bitsPerChar: 1.7,
            weightSqnrDb: null,
            layerSqnrDb: {},
            latencyRatio: 1,
          },
          {
            scheme,
            bytes: 512,
            ratio: 4,
            quality: 3.5,
            qualityChange: 0.25 / 3.25,
            bitsPerChar: 1.8,
            weightSqnrDb: 40,
            layerSqnrDb: { w: 40 },
            latencyRatio: 1.5,
          },
        ],
        layers: [
          {
            name: 'w',
            readers: ['/fc/MatMul'],
            dims: [2, 2],
            histogram: { min: -1, max: 1, counts: [1, 3] },
            grids: [],
          },
        ],
        calibration: [],
      },
    ],
  };
}

function embedded(html: string): unknown {
  const m = /<script type="application\/json" id="qk-report-data">([\s\S]*?)<\/script>/.exec(html);
  if (!m) throw new Error('no data script');
  return JSON.parse(m[1] as string);
}

describe('renderReport', () => {
  it('embeds the data as JSON that parses back to the same values, plus the Pareto front', () => {
    const html = renderReport(data(), { chartJs: FAKE_CHART });
    const back = embedded(html) as { models: { rows: unknown[]; pareto: number[] }[] };
    expect(back.models[0]?.rows).toEqual(data().models[0]?.rows);
    expect(back.models[0]?.pareto).toEqual([1, 0]); // 512 B at 3.5, then 2048 B at 3.25
  });

  it("a scheme name holding '</script><script>alert(1)' stays data: one data script, escaped in tables", () => {
    const evil = '</script><script>alert(1)</script><!--';
    const html = renderReport(data(evil), { chartJs: FAKE_CHART });
    expect(html.match(/<script/g)).toHaveLength(3); // data, chart.js, page
    expect(html).not.toContain('<script>alert');
    expect((embedded(html) as { models: { rows: { scheme: string }[] }[] }).models[0]?.rows[1]?.scheme).toBe(evil);
    expect(html).toContain('<title>T &#60;b&#62;</title>');
  });

  it('inlines chart.js without its source-map comment, and refuses code that would end the script', () => {
    const html = renderReport(data(), { chartJs: FAKE_CHART });
    expect(html).toContain('window.Chart = function () {};');
    expect(html).not.toContain('sourceMappingURL');
    expect(() => renderReport(data(), { chartJs: 'x = "</script>"' })).toThrow(/cannot be inlined/);
  });

  it('has no network references (self-contained)', () => {
    const html = renderReport(data(), { chartJs: FAKE_CHART });
    expect(html).not.toMatch(/\b(src|href)=/);
  });

  it('is pure: same input, same bytes', () => {
    expect(renderReport(data(), { chartJs: FAKE_CHART })).toBe(renderReport(data(), { chartJs: FAKE_CHART }));
  });
});

describe('report formatting', () => {
  it('formats a hand-worked row', () => {
    const model = data().models[0];
    if (!model) throw new Error('no model');
    const t = schemeTable(model);
    expect(t.header).toEqual([
      'scheme',
      'size',
      'ratio',
      'perplexity',
      'bits/char',
      'change',
      'weight SQNR',
      'latency',
    ]);
    expect(t.rows[1]).toEqual(['int8', '512 B', '4.00×', '3.500', '1.800', '+7.69 %', '40.0 dB', '1.50×']);
    expect(t.rows[0]?.[5]).toBe('—');
    expect(formatQuality({ quality: { name: 'accuracy', higherIsBetter: true, percent: true } }, 0.995976)).toBe(
      '99.60 %',
    );
    expect(formatSqnr(Infinity)).toBe('exact');
    expect(formatChange({ ...model.rows[1]!, qualityChange: -0.00001 }, false)).toBe('0.00 %');
    expect(escapeHtml(`<a href="x">&'`)).toBe('&#60;a href=&#34;x&#34;&#62;&#38;&#39;');
  });
});

describe('report notes and layer names', () => {
  it('a row without weight SQNR for a stated reason shows "— [1]" and the reason under the table', () => {
    const d = data();
    const model = d.models[0]!;
    const rows = [
      ...model.rows,
      {
        ...model.rows[1]!,
        scheme: 'int8-static+sq mse',
        weightSqnrDb: null,
        weightSqnrNote: 'weights rescaled',
        layerSqnrDb: {},
      },
    ];
    const t = schemeTable({ ...model, rows });
    expect(t.rows[2]?.[6]).toBe('— [1]');
    expect(t.rows[0]?.[6]).toBe('—'); // fp32: nothing to explain
    expect(t.notes).toEqual(['[1] weights rescaled']);
    const html = renderReport({ ...d, models: [{ ...model, rows }] }, { chartJs: FAKE_CHART });
    expect(html).toContain('<p class="note">[1] weights rescaled</p>');
  });

  it('names layers by their reading nodes in the table, the selector and the embedded chart labels', () => {
    const html = renderReport(data(), { chartJs: FAKE_CHART });
    expect(html).toContain('<td>/fc/MatMul</td><td>w</td>');
    expect(html).toContain('<option value="0">/fc/MatMul (w) [2×2]</option>');
    expect((embedded(html) as { models: { layerLabels: string[] }[] }).models[0]?.layerLabels).toEqual(['/fc/MatMul']);
    expect(html).toContain('<canvas id="sqnr-0-0">');
  });
});
