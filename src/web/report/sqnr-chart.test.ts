import { describe, expect, it } from 'vitest';
import type { SchemeRow } from '../../flows/report-data.js';
import { weightOnlySeries } from '../../flows/report-series.js';
import { SCHEME_NAMES } from '../../passes/weight-only/index.js';
import { FAMILY_COLOURS, layerLabel, sqnrPanels, type SqnrPanel } from './sqnr-chart.js';

function row(scheme: string, series?: SchemeRow['series']): SchemeRow {
  return {
    scheme,
    ...(series ? { series } : {}),
    bytes: 1,
    ratio: 1,
    quality: NaN,
    qualityChange: NaN,
    weightSqnrDb: 20,
    layerSqnrDb: { w: 20 },
    latencyRatio: null,
  };
}

const styleKey = (s: SqnrPanel['series'][number]) => `${s.style.color}|${s.style.pointStyle}|${s.style.dash.join(',')}`;

describe('sqnrPanels', () => {
  it('every weight-only scheme at every block size, rtn and +gptq: 4-bit and wider panels, no two series alike', () => {
    // More rows than the demo has (which had 26 series in 14 colours): every scheme × 5 variants.
    const rows = SCHEME_NAMES.flatMap((s) => [
      row(`${s} b32`, weightOnlySeries(s, { blockSize: 32 })),
      row(`${s} b64`, weightOnlySeries(s, { blockSize: 64 })),
      row(`${s} b128`, weightOnlySeries(s, { blockSize: 128 })),
      row(`${s}-rtn b64`, weightOnlySeries(s, { blockSize: 64, rtn: true })),
      row(`${s} b64 +gptq`, weightOnlySeries(s, { blockSize: 64, gptq: true })),
    ]);
    const panels = sqnrPanels(rows);
    expect(panels.map((p) => p.title)).toEqual(['2- and 4-bit formats', '8- and 16-bit formats']);
    const all = panels.flatMap((p) => p.series);
    expect(all.map((s) => s.scheme).sort()).toEqual(rows.map((r) => r.scheme).sort());
    expect(new Set(all.map(styleKey)).size).toBe(all.length);
    const fourBit = new Set(panels[0]?.series.map((s) => s.scheme.split(' ')[0]));
    // q3 / q3-asym / q4-k are stored in 4 bits; q2 / q2-asym in 2; kmeans at its default 4-bit indices.
    const low = ['fp4', 'kmeans', 'nf4', 'q2', 'q2-asym', 'q3', 'q3-asym', 'q3-spqr', 'q4', 'q4-asym', 'q4-k'];
    expect([...fourBit].sort()).toEqual(low.flatMap((f) => [f, `${f}-rtn`]).sort());
    // One colour per family inside a panel; a family's variants share it and differ in point and dash.
    for (const p of panels) {
      const q4 = p.series.filter((s) => s.scheme.startsWith('q4 ') || s.scheme.startsWith('q4-rtn'));
      if (q4.length === 0) continue;
      expect(new Set(q4.map((s) => s.style.color)).size).toBe(1);
      expect(new Set(q4.map((s) => s.style.pointStyle)).size).toBe(q4.length);
      expect(new Set(q4.map((s) => s.style.dash.join(','))).size).toBe(Math.min(q4.length, 4));
    }
  });

  it('more families than colours still gives unique styles', () => {
    const rows = Array.from({ length: FAMILY_COLOURS.length * 3 }, (_, i) =>
      row(`f${i}`, { family: `f${i}`, variant: '', bits: 8 }),
    );
    const series = sqnrPanels(rows).flatMap((p) => p.series);
    expect(series).toHaveLength(rows.length);
    expect(new Set(series.map(styleKey)).size).toBe(rows.length);
  });

  it('rows without per-layer numbers (fp32, activation schemes) get no series; a row without a series key is its own family', () => {
    const panels = sqnrPanels([{ ...row('int8-dynamic'), layerSqnrDb: {} }, row('custom')]);
    expect(panels).toEqual([
      {
        title: '8-bit formats',
        series: [{ scheme: 'custom', style: { color: FAMILY_COLOURS[0], pointStyle: 'circle', dash: [] } }],
      },
    ]);
  });
});

describe('layerLabel', () => {
  it('names a layer by the nodes that read its weight, else by the weight', () => {
    expect(layerLabel({ name: 'onnx::MatMul_265', readers: ['/blocks.0/attn/q/MatMul'] })).toBe(
      '/blocks.0/attn/q/MatMul',
    );
    expect(layerLabel({ name: 'tok.weight', readers: ['/tok/Gather', '/head/MatMul'] })).toBe(
      '/tok/Gather + /head/MatMul',
    );
    expect(layerLabel({ name: 'w', readers: [] })).toBe('w');
  });
});
