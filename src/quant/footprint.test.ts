import { describe, expect, it } from 'vitest';
import { footprint } from './footprint.js';

describe('footprint', () => {
  it("13e9 parameters, weight-only: the seed's 52 / 26 / 26 / 13 / 13 / 6.5 / 6.5 GB", () => {
    const r = footprint({ params: 13e9 });
    const gb = Object.fromEntries(r.rows.map((row) => [row.format, row.weightBytes / 1e9]));
    expect(gb).toEqual({ fp32: 52, fp16: 26, bf16: 26, fp8: 13, int8: 13, int4: 6.5, nf4: 6.5 });
  });
  it('13e9 NF4 block 64 constants: fp32 absmax 0.8125 GB (4.5 bits), double-quantized 4.127 bits', () => {
    const plain = footprint({ params: 13e9 }, { formats: ['nf4'] }).rows[0];
    expect(plain?.constantBytes).toBe((13e9 / 64) * 4);
    expect(plain?.bitsPerParam).toBe(4.5);
    const dq = footprint({ params: 13e9 }, { formats: ['nf4'], doubleQuant: true }).rows[0];
    expect(dq?.constantBytes).toBe(13e9 / 64 + Math.ceil(13e9 / 64 / 256) * 4 + 4);
    expect(dq?.bitsPerParam.toFixed(3)).toBe('4.127');
    const int4 = footprint(
      { params: 13e9 },
      { formats: ['int4'], groupSize: 128, scaleDtype: 'float16', zeroPoint: true },
    ).rows[0];
    expect(int4?.constantBytes).toBe((13e9 / 128) * 2 + 13e9 / 128 / 2);
  });
  it('per tensor: blocks per tensor with tails, non-float tensors kept as they are, biggest first', () => {
    const r = footprint(
      {
        tensors: [
          { name: 'w1', dims: [100, 10], dtype: 'float32' },
          { name: 'b1', dims: [10], dtype: 'float32' },
          { name: 'idx', dims: [8], dtype: 'int64' },
        ],
      },
      { formats: ['int4', 'fp16'], groupSize: 64 },
    );
    expect(r.params).toBe(1010);
    const int4 = r.rows[0];
    expect(int4?.weightBytes).toBe(500 + 5);
    expect(int4?.constantBytes).toBe((16 + 1) * 4);
    expect(int4?.otherBytes).toBe(64);
    expect(r.rows[1]?.totalBytes).toBe(2020 + 64);
    expect(r.biggest.map((t) => t.name)).toEqual(['w1', 'idx', 'b1']);
  });
  it('a bad parameter count is a named error', () => {
    expect(() => footprint({ params: -1 })).toThrow(/not a non-negative integer/);
  });
  it('kmeans: indices in their stored slot (3 bits take 4) plus a float32 codebook of 2^bits per tensor', () => {
    const tensors = [
      { name: 'w1', dims: [100, 10], dtype: 'float32' as const },
      { name: 'w2', dims: [7], dtype: 'float32' as const },
    ];
    const r3 = footprint({ tensors }, { formats: ['kmeans'], kmeansBits: 3 }).rows[0];
    expect(r3?.weightBytes).toBe(500 + 4);
    expect(r3?.constantBytes).toBe(2 * 8 * 4);
    const r2 = footprint({ tensors }, { formats: ['kmeans'], kmeansBits: 2 }).rows[0];
    expect(r2?.weightBytes).toBe(250 + 2);
    expect(() => footprint({ tensors }, { formats: ['kmeans'], kmeansBits: 9 })).toThrow(/1 to 8 bits/);
  });
});
