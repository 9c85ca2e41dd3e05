import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NF4_TABLE } from '../quant/codebook.js';
import {
  histogram,
  paretoFront,
  readersByTensor,
  rebinHistogram,
  thresholdSpread,
  weightGrids,
} from './report-data.js';

describe('histogram', () => {
  it('bins a hand-worked example, the maximum in the last bin', () => {
    const h = histogram(Float32Array.of(0, 0.1, 0.5, 0.99, 1), 4);
    expect(h).toEqual({ min: 0, max: 1, counts: [2, 0, 1, 2] });
  });

  it('counts every finite value exactly once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 50 }),
        (xs, bins) => {
          const h = histogram(Float32Array.from(xs), bins);
          expect(h.counts.reduce((a, b) => a + b, 0)).toBe(xs.length);
          expect(h.min).toBeLessThan(h.max);
        },
      ),
    );
  });

  it('gives a constant tensor a one-wide range around its value', () => {
    expect(histogram(Float32Array.of(2, 2, 2), 2)).toEqual({ min: 1.5, max: 2.5, counts: [0, 3] });
  });
});

describe('weightGrids', () => {
  it('int4 absmax: 16 levels from −absmax in steps of absmax/8; nf4: absmax × the NF4 table', () => {
    const [int8, int4, nf4] = weightGrids(Float32Array.of(0.1, -0.8, 0.3));
    expect(int8?.levels).toHaveLength(255);
    expect(int8?.levels[0]).toBe(-Math.fround(0.8));
    expect(int8?.levels[254]).toBe(Math.fround(0.8));
    expect(int8?.levels[128]).toBeCloseTo(Math.fround(0.8) / 127, 15);
    expect(int4?.levels).toEqual(Array.from({ length: 16 }, (_, i) => ((i - 8) * Math.fround(0.8)) / 8));
    expect(nf4?.levels).toEqual(Array.from(NF4_TABLE, (v) => v * Math.fround(0.8)));
  });

  it('has no grid for an all-zero tensor', () => {
    expect(weightGrids(new Float32Array(4))).toEqual([]);
  });
});

describe('paretoFront', () => {
  it('keeps the points no other point beats on size and quality (lower quality better)', () => {
    // sizes/perplexities: a(100, 3.0) b(50, 3.1) c(60, 3.5: beaten by b) d(25, 4.0) e(25, 4.5: beaten by d)
    const pts = [
      { size: 100, quality: 3.0 },
      { size: 50, quality: 3.1 },
      { size: 60, quality: 3.5 },
      { size: 25, quality: 4.0 },
      { size: 25, quality: 4.5 },
    ];
    expect(paretoFront(pts, false)).toEqual([3, 1, 0]);
  });

  it('accuracy (higher better): a bigger, less accurate model is off the front', () => {
    const pts = [
      { size: 100, quality: 0.99 },
      { size: 120, quality: 0.98 },
      { size: 30, quality: 0.99 },
    ];
    expect(paretoFront(pts, true)).toEqual([2]);
  });

  it('no front point is dominated, and every other point is', () => {
    const pt = fc.record({ size: fc.integer({ min: 1, max: 20 }), quality: fc.integer({ min: 0, max: 20 }) });
    fc.assert(
      fc.property(fc.array(pt, { minLength: 1, maxLength: 30 }), (pts) => {
        const front = new Set(paretoFront(pts, false));
        const dominates = (a: (typeof pts)[0], b: (typeof pts)[0]) =>
          a.size <= b.size && a.quality <= b.quality && (a.size < b.size || a.quality < b.quality);
        pts.forEach((p, i) => {
          const dominated = pts.some((q) => dominates(q, p));
          if (front.has(i)) expect(dominated).toBe(false);
          else
            expect(
              dominated || pts.some((q, j) => j !== i && front.has(j) && q.size === p.size && q.quality === p.quality),
            ).toBe(true);
        });
      }),
    );
  });
});

describe('rebinHistogram', () => {
  it('folds fine bins into display bins by their centres (hand-worked)', () => {
    // Fine bins of width 0.25 from −1: centres −0.875, −0.625, … 0.875; 2 display bins over [−1, 1].
    const h = rebinHistogram([1, 2, 3, 4, 5, 6, 7, 8], -1, 0.25, -1, 1, 2);
    expect(h).toEqual({ min: -1, max: 1, counts: [10, 26] });
  });

  it('crops to [min, max]: an |x| histogram of non-negative values over [0.5, 2]', () => {
    // Bins of width 0.5 from 0: the empty first bin vanishes, counts land where their centres are.
    expect(rebinHistogram([0, 3, 1, 2], 0, 0.5, 0.5, 2, 3)).toEqual({ min: 0.5, max: 2, counts: [3, 1, 2] });
  });

  it('keeps every count, whatever the bins (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(1000), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 40 }),
        (counts, bins) => {
          const h = rebinHistogram(counts, 0, 1, 0, counts.length, bins);
          expect(h.counts.reduce((a, b) => a + b, 0)).toBe(counts.reduce((a, b) => a + b, 0));
          expect(h.counts).toHaveLength(bins);
        },
      ),
    );
  });

  it('an empty range (a constant tensor) becomes one bin around the value', () => {
    expect(rebinHistogram([2, 5], 0, 0, 3, 3, 10)).toEqual({ min: 2.5, max: 3.5, counts: [7] });
  });
});

describe('thresholdSpread', () => {
  it('(spread of lows + spread of highs) / observed width, 0 for one method', () => {
    const t = [
      { method: 'minmax', lo: -1, hi: 3 },
      { method: 'entropy', lo: -0.5, hi: 2 },
      { method: 'mse', lo: -1, hi: 2.5 },
    ];
    expect(thresholdSpread(t, -1, 3)).toBeCloseTo((0.5 + 1) / 4, 15);
    expect(thresholdSpread(t.slice(0, 1), -1, 3)).toBe(0);
    expect(thresholdSpread(t, 2, 2)).toBe(0);
  });
});

describe('readersByTensor', () => {
  it('lists each tensor’s reading nodes once, in node order; an unnamed node by its op type', () => {
    const r = readersByTensor([
      { name: '/tok/Gather', opType: 'Gather', inputs: ['tok.weight', 'ids'] },
      { name: '', opType: 'Mul', inputs: ['h', 'h'] },
      { name: '/head/MatMul', opType: 'MatMul', inputs: ['h', 'tok.weight'] },
      { name: 'opt', opType: 'Clip', inputs: ['h', '', 'max'] },
    ]);
    expect(Object.fromEntries(r)).toEqual({
      'tok.weight': ['/tok/Gather', '/head/MatMul'],
      ids: ['/tok/Gather'],
      h: ['Mul', '/head/MatMul', 'opt'],
      max: ['opt'],
    });
  });
});
