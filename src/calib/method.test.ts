import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { percentileRange, mseRange } from '../quant/range.js';
import { normal, studentT } from '../quant/testdata.test-util.js';
import { MinMaxObserver, MovingAverageMinMaxObserver, ChannelAbsMaxObserver } from './minmax.js';
import { parseCalibMethod, TensorCalibrator, type CalibMethod } from './method.js';

const U8 = { qmin: 0, qmax: 255, symmetric: false };

function calibrate(x: Float32Array, method: CalibMethod, batches = 4) {
  const c = new TensorCalibrator('t', method, U8);
  const n = Math.ceil(x.length / batches);
  for (let b = 0; b < batches; b++) c.observeFirst(x.subarray(b * n, (b + 1) * n));
  c.startSecond();
  for (let b = 0; b < batches; b++) c.observeSecond(x.subarray(b * n, (b + 1) * n));
  return c;
}

describe('calibration observers', () => {
  it('streamed min-max equals the extremes of all data, for any batching', () => {
    fc.assert(
      fc.property(
        fc.float32Array({ noNaN: true, noDefaultInfinity: true, minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 7 }),
        (x, k) => {
          const o = new MinMaxObserver();
          for (let i = 0; i < x.length; i += k) o.observe(x.subarray(i, i + k));
          // ±0 are one value to a range (x + 0 turns −0 into +0): which zero wins depends on order.
          const r = o.range();
          expect({ lo: r.lo + 0, hi: r.hi + 0 }).toEqual({ lo: Math.min(...x) + 0, hi: Math.max(...x) + 0 });
        },
      ),
    );
  });

  it('moving average: first batch sets the range, then blends with 0.01', () => {
    const o = new MovingAverageMinMaxObserver(0.01);
    o.observe(Float32Array.of(-1, 1));
    o.observe(Float32Array.of(-101, 201));
    expect(o.range().lo).toBeCloseTo(-2, 12);
    expect(o.range().hi).toBeCloseTo(3, 12);
  });

  it('channel absmax keeps the last-axis maximum of |x|', () => {
    const o = new ChannelAbsMaxObserver();
    o.observe(Float32Array.of(1, -5, 3, -2, 4, -7), 3);
    expect(Array.from(o.absMax ?? [])).toEqual([2, 5, 7]);
  });

  it('histogram percentile splits the data at p % to within one bin (cf. quant/range.ts percentileRange)', () => {
    const x = studentT(30_000, 3, 2);
    const c = calibrate(x, { kind: 'percentile', percentile: 99.9 });
    const width = c.histogram()?.width ?? 0;
    const { lo, hi } = c.range();
    const below = (t: number) => x.filter((v) => v < t).length;
    // The exact percentile lies between order statistics; ours must split the mass the same way
    // up to one bin either side (values inside a bin are taken as evenly spread).
    expect(below(hi - width)).toBeLessThanOrEqual(0.999 * x.length);
    expect(below(hi + width)).toBeGreaterThanOrEqual(0.999 * x.length);
    expect(below(lo - width)).toBeLessThanOrEqual(0.001 * x.length);
    expect(below(lo + width)).toBeGreaterThanOrEqual(0.001 * x.length);
    const exact = percentileRange(x, 99.9, false);
    expect(Math.sign(hi - exact.hi) === 0 || Math.abs(hi - exact.hi) < 0.1 * hi).toBe(true);
  });

  it('histogram MSE search lands near the exact search over all values (quant/range.ts)', () => {
    const x = studentT(20_000, 4, 9);
    const c = calibrate(x, { kind: 'mse' });
    const exact = mseRange(x, U8);
    const mm = c.minmax.range();
    // Same grid of ratios: the two searches may differ by a grid step or two of the range.
    expect(Math.abs(c.range().hi - exact.hi)).toBeLessThan(0.05 * mm.hi);
    expect(c.range().hi).toBeLessThan(mm.hi);
  });

  it('non-negative tensors use the |x| histogram and keep lo at 0', () => {
    const x = normal(10_000, 4).map(Math.abs);
    for (const m of [
      { kind: 'percentile', percentile: 99.99 },
      { kind: 'entropy' },
      { kind: 'mse' },
    ] as CalibMethod[]) {
      const c = calibrate(x, m);
      expect(c.histogram()?.kind).toBe('abs');
      expect(c.range().lo).toBeGreaterThanOrEqual(0);
    }
  });

  it('parses --method values and rejects bad ones', () => {
    expect(parseCalibMethod('percentile')).toEqual({ kind: 'percentile', percentile: 99.99 });
    expect(parseCalibMethod('percentile:99.9')).toEqual({ kind: 'percentile', percentile: 99.9 });
    expect(parseCalibMethod('entropy').kind).toBe('entropy');
    expect(() => parseCalibMethod('percentile:120')).toThrow(/QK_BAD_METHOD|out of range/);
    expect(() => parseCalibMethod('kl')).toThrow(/unknown calibration method/);
  });
});
