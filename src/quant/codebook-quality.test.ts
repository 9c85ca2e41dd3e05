import { describe, expect, it } from 'vitest';
import { bitsPerParameter, doubleDequantize, doubleQuantize } from './double-quant.js';
import { createDynamicMap, dequantizeDynamicTree8, quantizeDynamicTree8 } from './dynamic-tree.js';
import { kmeans1d } from './kmeans.js';
import { mse } from './metrics.js';
import { approxQuantiles, exactQuantiles } from './quantile.js';
import { dequantize, quantize } from './quantize.js';
import { normal, studentT } from './testdata.test-util.js';

describe('dynamic-tree map (bitsandbytes create_dynamic_map)', () => {
  it('signed: 256 sorted entries, 0 and 1 present, mirrored levels, no -1', () => {
    const m = createDynamicMap(true);
    expect(m.length).toBe(256);
    for (let i = 1; i < 256; i++) expect(m[i] as number).toBeGreaterThan(m[i - 1] as number);
    expect(m[255]).toBe(1);
    expect(Array.from(m).includes(0)).toBe(true);
    // Hand-worked: the top level is the midpoints of linspace(0.1, 1, 65); the largest is (b63 + 1)/2.
    const step = Math.fround(Math.fround(1 - Math.fround(0.1)) / 64);
    const b63 = Math.fround(1 - step);
    expect(m[254]).toBe(Math.fround(Math.fround(b63 + 1) / 2));
    expect(m[0]).toBe(-(m[254] as number));
    // The smallest magnitudes: 10^-6 · (0.1 + 1)/2 = 5.5e-7.
    expect(m[128]).toBeCloseTo(5.5e-7, 12);
    expect(m[126]).toBeCloseTo(-5.5e-7, 12);
  });
  it('unsigned: 256 non-negative sorted entries, 0 and 1 present, twice the fraction resolution', () => {
    const m = createDynamicMap(false);
    expect(m.length).toBe(256);
    expect(m[0]).toBe(0);
    expect(m[255]).toBe(1);
    for (let i = 1; i < 256; i++) expect(m[i] as number).toBeGreaterThan(m[i - 1] as number);
    // Lowest level has 2 items: midpoints of linspace(0.1, 1, 3) = 0.325, 0.775, times 1e-6.
    expect(m[1]).toBeCloseTo(0.325e-6, 12);
    expect(m[2]).toBeCloseTo(0.775e-6, 12);
  });
  it('block-wise 8-bit round trip: relative error within the map resolution', () => {
    const data = normal(10000, 3);
    const q = quantizeDynamicTree8(data, { blockSize: 2048 });
    expect(q.absmax.length).toBe(5);
    const back = dequantizeDynamicTree8(q);
    for (let i = 0; i < data.length; i++) {
      const a = q.absmax[Math.floor(i / 2048)] as number;
      // Top level spacing is 0.9/64 of absmax; nearest code is within half of that.
      expect(Math.abs((back[i] as number) - (data[i] as number))).toBeLessThanOrEqual(a * (0.9 / 128) + 1e-7);
    }
    expect(mse(data, back)).toBeLessThan(3e-4); // ≈ (0.9·absmax/64)²/12 for the top level
  });
});

describe('double quantization (QLoRA)', () => {
  it('bits per parameter: NF4 block 64 is 4.5 without and 4.127 with double quantization', () => {
    expect(bitsPerParameter({ codeBits: 4, blockSize: 64 })).toBe(4.5);
    expect(bitsPerParameter({ codeBits: 4, blockSize: 64, doubleQuant: true }).toFixed(3)).toBe('4.127');
  });
  it('the constants come back within 8-bit dynamic-map error of (absmax − mean)', () => {
    const data = normal(64 * 1000, 8);
    const plain = quantize(data, { format: 'nf4' });
    const dq = doubleQuantize(plain.scales);
    expect(dq.inner.codes.length).toBe(1000);
    expect(dq.inner.absmax.length).toBe(4);
    const back = doubleDequantize(dq);
    let mean = 0;
    for (const a of plain.scales) mean += a;
    mean /= plain.scales.length;
    expect(dq.offset).toBeCloseTo(mean, 5);
    for (let i = 0; i < 1000; i++) {
      const dev = dq.inner.absmax[Math.floor(i / 256)] as number;
      expect(Math.abs((back[i] as number) - (plain.scales[i] as number))).toBeLessThanOrEqual(dev * (0.9 / 128) + 1e-6);
    }
    const viaApi = quantize(data, { format: 'nf4', doubleQuant: true });
    expect(Array.from(viaApi.codes)).toEqual(Array.from(plain.codes));
    expect(viaApi.doubleQuant).toBeDefined();
    const e1 = mse(data, dequantize(plain));
    const e2 = mse(data, dequantize(viaApi));
    console.log(
      `[quant] NF4 block 64 on N(0,1): MSE ${e1.toExponential(4)} plain, ${e2.toExponential(4)} with double quantization`,
    );
    expect(e2).toBeLessThan(e1 * 1.05);
  });
});

describe('quantile and k-means codebooks', () => {
  it('exact quantiles are the (i + 1/2)/k empirical quantiles (hand-worked)', () => {
    const data = Float32Array.from({ length: 101 }, (_, i) => i); // quantile(p) = 100p
    expect(Array.from(exactQuantiles(data, 4))).toEqual([12.5, 37.5, 62.5, 87.5]);
  });
  it('the approximate estimator is within one histogram bin of the exact quantiles', () => {
    const data = normal(200000, 4);
    const exact = exactQuantiles(data, 16);
    const approx = approxQuantiles(data, 16, 8192);
    let mn = Infinity;
    let mx = -Infinity;
    for (const x of data) {
      mn = Math.min(mn, x);
      mx = Math.max(mx, x);
    }
    for (let i = 0; i < 16; i++)
      expect(Math.abs((approx[i] as number) - (exact[i] as number))).toBeLessThanOrEqual((mx - mn) / 8192 + 1e-3);
  });
  it('k-means is seeded (same seed, same codebook) and finds the clusters of separated data', () => {
    const data = Float32Array.from({ length: 300 }, (_, i) => ([-5, 0, 7][i % 3] as number) + ((i * 7919) % 11) * 1e-3);
    const a = kmeans1d(data, { k: 3, seed: 42 });
    expect(Array.from(kmeans1d(data, { k: 3, seed: 42 }))).toEqual(Array.from(a));
    expect(Math.round(a[0] as number)).toBe(-5);
    expect(Math.round(a[1] as number)).toBe(0);
    expect(Math.round(a[2] as number)).toBe(7);
    expect(kmeans1d(Float32Array.of(1, 1, 1), { k: 4 }).every((v) => v === 1)).toBe(true);
    expect(() => kmeans1d(data, { k: 1 })).toThrow(/2 to 256/);
  });
  it('per-group codebooks: one table of k values per group', () => {
    const data = normal(1000, 5);
    const q = quantize(data, { format: 'kmeans', bits: 3, blockSize: 256, seed: 1 });
    expect(q.codebook?.length).toBe(4 * 8);
    expect(Math.max(...q.codes)).toBeLessThan(8);
    expect(mse(data, dequantize(q))).toBeLessThan(0.05);
  });

  const n = 1 << 16;
  const datasets = { 'N(0,1)': normal(n, 12), 'Student-t 3 dof': studentT(n, 3, 13) };
  for (const [label, data] of Object.entries(datasets)) {
    it(`k-means with 16 codes beats uniform int4 (per-tensor asymmetric, best for it) on ${label}`, () => {
      const km = mse(data, dequantize(quantize(data, { format: 'kmeans', bits: 4, seed: 7 })));
      const qt = mse(data, dequantize(quantize(data, { format: 'quantile', bits: 4 })));
      const u4 = mse(data, dequantize(quantize(data, { format: 'uint4', symmetric: false })));
      const i4 = mse(data, dequantize(quantize(data, { format: 'int4' })));
      console.log(
        `[quant] ${label}, n=${n}, per-tensor: MSE k-means16 ${km.toExponential(4)}, quantile16 ${qt.toExponential(4)}, uint4 asym ${u4.toExponential(4)}, int4 absmax ${i4.toExponential(4)}`,
      );
      expect(km).toBeLessThan(u4);
      expect(km).toBeLessThan(i4);
    });
  }
  it('NF4 beats int4 absmax on normal data at the same block size (64)', () => {
    const data = normal(n, 14);
    const nf4 = mse(data, dequantize(quantize(data, { format: 'nf4', blockSize: 64 })));
    const i4 = mse(data, dequantize(quantize(data, { format: 'int4', blockSize: 64 })));
    const i4full = mse(data, dequantize(quantize(data, { format: 'int4', blockSize: 64, narrowRange: false })));
    const fp4 = mse(data, dequantize(quantize(data, { format: 'fp4', blockSize: 64 })));
    console.log(
      `[quant] N(0,1), n=${n}, block 64: MSE NF4 ${nf4.toExponential(4)}, int4 absmax (±7) ${i4.toExponential(4)}, int4 full-range ${i4full.toExponential(4)}, FP4 E2M1 ${fp4.toExponential(4)}`,
    );
    expect(nf4).toBeLessThan(i4);
    expect(nf4).toBeLessThan(i4full);
  });
});
