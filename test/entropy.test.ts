import { describe, expect, it } from 'vitest';
import { entropyHistogram, entropyThreshold } from '../src/calib/entropy.js';
import { TensorCalibrator } from '../src/calib/method.js';
import { normal, studentT } from '../src/quant/testdata.test-util.js';

/*
 * An independent, deliberately plain implementation of the TensorRT entropy calibration
 * (Migacz, GTC 2017, slide "Calibration: the algorithm"), written from the pseudo-code with
 * ordinary arrays and no code shared with src/calib. Conventions it must share with ours, because
 * the slides leave them open: the last level takes the remainder bins, expansion is over bins
 * where P is non-zero, zero bins are smoothed with 1e-4 counts, the threshold is the upper edge,
 * and exact zeros (a Relu's spike) are left out of the histogram.
 */
function trtHistogram(data: Float32Array, bins: number): { hist: number[]; width: number } {
  let max = 0;
  for (const v of data) max = Math.max(max, Math.abs(v));
  const width = max / bins;
  const hist: number[] = new Array<number>(bins).fill(0);
  for (const v of data) {
    const b = Math.min(bins - 1, Math.floor(Math.abs(v) / width));
    hist[b] = (hist[b] ?? 0) + 1;
  }
  return { hist, width };
}

function smoothed(d: number[]): number[] {
  const zeros = d.filter((x) => x === 0).length;
  const eps1 = (1e-4 * zeros) / (d.length - zeros);
  return d.map((x) => (x === 0 ? 1e-4 : x - eps1));
}

function klDivergence(p: number[], q: number[]): number {
  const sp = p.reduce((a, b) => a + b, 0);
  const sq = q.reduce((a, b) => a + b, 0);
  let d = 0;
  p.forEach((pk, k) => {
    if (pk > 0) d += (pk / sp) * Math.log(pk / sp / ((q[k] as number) / sq));
  });
  return d;
}

function trtThreshold(hist: number[], width: number): number {
  const divergence: number[] = [];
  for (let i = 128; i <= hist.length; i++) {
    const reference = hist.slice(0, i);
    const outliers = hist.slice(i).reduce((a, b) => a + b, 0);
    reference[i - 1] = (reference[i - 1] as number) + outliers;
    const sliced = hist.slice(0, i);
    const perLevel = Math.floor(i / 128);
    const candidate: number[] = new Array<number>(i).fill(0);
    for (let level = 0; level < 128; level++) {
      const start = level * perLevel;
      const stop = level === 127 ? i : start + perLevel;
      const mass = sliced.slice(start, stop).reduce((a, b) => a + b, 0);
      const nonZero = reference.slice(start, stop).filter((x) => x !== 0).length;
      for (let k = start; k < stop; k++) candidate[k] = reference[k] !== 0 && nonZero > 0 ? mass / nonZero : 0;
    }
    divergence.push(klDivergence(smoothed(reference), smoothed(candidate)));
  }
  const m = divergence.indexOf(Math.min(...divergence));
  return (m + 128) * width;
}

describe('entropy calibration (TensorRT procedure)', () => {
  it('matches an independent TensorRT computation and clips a heavy tail that min-max keeps', () => {
    // |Student-t(3)|: the heavy-tailed magnitude of a real activation (e.g. attention outputs).
    const x = studentT(60_000, 3, 11).map(Math.abs);
    const ref = trtHistogram(x, 2048);
    const expected = trtThreshold(ref.hist, ref.width);

    // Ours, streamed in 6 batches through the two-pass calibrator.
    const cal = new TensorCalibrator('t', { kind: 'entropy' }, { qmin: 0, qmax: 255, symmetric: false });
    for (let b = 0; b < 6; b++) cal.observeFirst(x.subarray(b * 10_000, (b + 1) * 10_000));
    cal.startSecond();
    for (let b = 0; b < 6; b++) cal.observeSecond(x.subarray(b * 10_000, (b + 1) * 10_000));
    expect(Array.from(cal.histogram()?.counts ?? [])).toEqual(ref.hist);
    const ours = entropyThreshold(cal.histogram() as NonNullable<ReturnType<typeof cal.histogram>>);
    expect(ours.threshold).toBeCloseTo(expected, 9);

    const minmax = cal.minmax.range().hi;
    const entropy = cal.range().hi;
    // Measurably different: entropy clips the tail well below the maximum.
    expect(entropy).toBeLessThan(0.5 * minmax);
    expect(entropy).toBeCloseTo(expected, 9);
    console.log(
      `heavy tail |t3|: min-max hi ${minmax.toFixed(3)}, entropy threshold ${entropy.toFixed(3)} (independent TensorRT: ${expected.toFixed(3)})`,
    );
  });

  it('a Relu-like tensor (60 % exact zeros + heavy tail): zeros are left out, as in the independent computation', () => {
    const t = studentT(30_000, 3, 21);
    const x = t.map((v, i) => (i % 5 < 3 ? 0 : Math.abs(v)));
    const ref = trtHistogram(
      x.filter((v) => v !== 0),
      2048,
    );
    const expected = trtThreshold(ref.hist, ref.width);
    const cal = new TensorCalibrator('relu', { kind: 'entropy' }, { qmin: 0, qmax: 255, symmetric: false });
    cal.observeFirst(x);
    cal.startSecond();
    cal.observeSecond(x);
    expect(cal.histogram()?.zeros).toBe(18_000);
    expect(cal.range().hi).toBeCloseTo(expected, 9);
    expect(cal.range().hi).toBeLessThan(0.5 * cal.minmax.range().hi);
  });

  it('keeps (nearly) the full range when there is no tail: a uniform distribution', () => {
    const u = normal(20_000, 5).map((v) => Math.abs(v) % 1);
    const h = entropyHistogram(1, false);
    h.observe(u);
    const r = entropyThreshold(h);
    expect(r.threshold).toBeGreaterThan(0.9 * h.hi);
  });

  it('signed tensors get a symmetric window whose threshold also clips a heavy tail', () => {
    const x = studentT(40_000, 2, 3);
    const cal = new TensorCalibrator('s', { kind: 'entropy' }, { qmin: 0, qmax: 255, symmetric: false });
    cal.observeFirst(x);
    cal.startSecond();
    cal.observeSecond(x);
    expect(cal.histogram()?.kind).toBe('signed');
    const mm = cal.minmax.range();
    const r = cal.range();
    expect(r.lo).toBeGreaterThan(mm.lo);
    expect(r.hi).toBeLessThan(mm.hi);
    expect(r.hi).toBeCloseTo(-r.lo, 6);
  });
});
