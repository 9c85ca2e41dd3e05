import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFloat4e2m1, encodeFloat4e2m1 } from '../formats/float4.js';
import { dequantizeBlockwise, quantizeBlockwise } from './blockwise.js';
import {
  FP4_BNB_TABLE,
  FP4_E2M1_TABLE,
  NF4_TABLE,
  fp4BnbCodebook,
  fp4E2M1Codebook,
  makeCodebook,
  nearestCode,
  nearestCodeReference,
  nf4Codebook,
} from './codebook.js';
import { kmeans1d } from './kmeans.js';
import { dequantize, pack, quantize } from './quantize.js';

function bruteNearest(table: Float32Array, x: number): number {
  let best = 0;
  for (let c = 1; c < table.length; c++) {
    if (Math.abs((table[c] as number) - x) < Math.abs((table[best] as number) - x)) best = c;
  }
  return best;
}

describe('NF4', () => {
  it('the table: 16 sorted float32 constants in [-1, 1] with index 7 exactly zero', () => {
    expect(NF4_TABLE.length).toBe(16);
    expect(NF4_TABLE[0]).toBe(-1);
    expect(NF4_TABLE[7]).toBe(0);
    expect(NF4_TABLE[15]).toBe(1);
    for (let i = 1; i < 16; i++) expect(NF4_TABLE[i] as number).toBeGreaterThan(NF4_TABLE[i - 1] as number);
  });
  it("the seed's worked example: [-5, 3, 16, 8] → codes [4, 9, 15, 12] → [-4.551062, 2.574883, 16, 7.051357]", () => {
    const q = quantize(Float32Array.of(-5, 3, 16, 8), { format: 'nf4' });
    expect(Array.from(q.codes)).toEqual([4, 9, 15, 12]);
    expect(Array.from(q.scales)).toEqual([16]);
    const back = dequantize(q);
    const want = [-4.551062, 2.574883, 16, 7.051357];
    for (let i = 0; i < 4; i++) expect(Math.abs((back[i] as number) - (want[i] as number))).toBeLessThan(1e-5);
    // ONNX order: first code in the low nibble; bitsandbytes: in the high nibble.
    expect(Array.from(pack(q))).toEqual([0x94, 0xcf]);
    expect(Array.from(pack(q, 'high-first'))).toEqual([0x49, 0xfc]);
  });
  it('every code round-trips: the table value scaled by any absmax encodes back to its code', () => {
    for (let c = 0; c < 16; c++) {
      const data = Float32Array.of((NF4_TABLE[c] as number) * 2.5, 2.5);
      expect(quantize(data, { format: 'nf4' }).codes[0]).toBe(c);
    }
  });
  it('codes are the nearest table entries (property, against brute force)', () => {
    fc.assert(
      fc.property(fc.float32Array({ minLength: 1, maxLength: 200, noNaN: true, noDefaultInfinity: true }), (data) => {
        const q = quantizeBlockwise(data, nf4Codebook(), { blockSize: 64 });
        for (let i = 0; i < data.length; i++) {
          const a = q.absmax[Math.floor(i / 64)] as number;
          if (a === 0) {
            expect(q.codes[i]).toBe(7);
            continue;
          }
          const x = Math.fround((data[i] as number) * Math.fround(1 / a));
          const got = NF4_TABLE[q.codes[i] as number] as number;
          const best = NF4_TABLE[bruteNearest(NF4_TABLE, x)] as number;
          expect(Math.abs(got - x)).toBe(Math.abs(best - x));
        }
      }),
    );
  });
  it('block tails: 130 values in blocks of 64 give 3 constants', () => {
    const data = Float32Array.from({ length: 130 }, (_, i) => Math.sin(i));
    const q = quantize(data, { format: 'nf4' });
    expect(q.scales.length).toBe(3);
    expect(q.scales[2]).toBe(Math.fround(Math.max(Math.abs(Math.sin(128)), Math.abs(Math.sin(129)))));
  });
});

describe('FP4: OCP E2M1 and the bitsandbytes table are different formats', () => {
  it('E2M1 table equals the formats layer decoder for every code', () => {
    for (let c = 0; c < 16; c++) expect(Object.is(FP4_E2M1_TABLE[c], Math.fround(decodeFloat4e2m1(c)))).toBe(true);
  });
  it('nearest E2M1 code equals the formats encoder (round half to even) on every midpoint and random values', () => {
    const cb = fp4E2M1Codebook();
    const probes = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, -0.75, -2.5, -5, 7, -100, 0.1];
    for (let i = 0; i < 500; i++) probes.push((i - 250) / 37);
    for (const x of probes) {
      const ours = FP4_E2M1_TABLE[nearestCode(cb, x)] as number;
      expect(ours === decodeFloat4e2m1(encodeFloat4e2m1(x))).toBe(true); // ±0 compare equal
    }
  });
  it('bitsandbytes FP4 values (dDequantizeFP4Tree constants) by code', () => {
    const want = [0, 0.0625 / 12, 8 / 12, 1, 4 / 12, 0.5, 2 / 12, 0.25];
    for (let c = 0; c < 8; c++) {
      expect(FP4_BNB_TABLE[c]).toBe(Math.fround(want[c] as number));
      expect(FP4_BNB_TABLE[c + 8]).toBe(-Math.fround(want[c] as number));
    }
    expect(Array.from(FP4_BNB_TABLE)).not.toEqual(Array.from(FP4_E2M1_TABLE).map((v) => v / 6));
  });
  it("'fp4' stores MX-style scales absmax/6 and codes that are E2M1 codes; 'fp4-bnb' stores absmax", () => {
    const data = Float32Array.of(-12, 3, 1, 0.5);
    const a = quantize(data, { format: 'fp4' });
    expect(a.scales[0]).toBe(2);
    // -12/2 = -6 → 15; 3/2 = 1.5 → 3; 1/2 = 0.5 → 1; 0.5/2 = 0.25 is a tie between 0 and 0.5 → even code 0.
    expect(Array.from(a.codes)).toEqual([15, 3, 1, 0]);
    const b = quantize(data, { format: 'fp4-bnb' });
    expect(b.scales[0]).toBe(12);
    // /12: -1 → 11; 0.25 → 7; 0.0833 and 0.0417 are nearer 0.0625/12 (code 1) than 2/12 or 0.
    expect(Array.from(b.codes)).toEqual([11, 7, 1, 1]);
    expect(Array.from(dequantize(b))).toEqual([-12, 3, 0.0625, 0.0625]);
  });
  it('duplicate zeros encode to the +0 code', () => {
    expect(nearestCode(fp4BnbCodebook(), 0)).toBe(0);
    expect(nearestCode(fp4E2M1Codebook(), -0)).toBe(0);
    expect(nearestCode(makeCodebook(Float32Array.of(0, 0, 1)), 0.2)).toBe(0);
  });
});

describe('block-wise codebook quantization', () => {
  it('all-zero blocks store absmax 0 and decode to exact zeros', () => {
    const q = quantizeBlockwise(new Float32Array(100), nf4Codebook());
    expect(Array.from(q.absmax)).toEqual([0, 0]);
    expect(Array.from(dequantizeBlockwise(q, NF4_TABLE)).every((v) => v === 0)).toBe(true);
  });
});

describe('bucketed nearestCode', () => {
  it('equals the binary-search reference on every codebook, at midpoints, neighbours and random values', () => {
    const books = [
      nf4Codebook(),
      fp4E2M1Codebook(),
      fp4BnbCodebook(),
      makeCodebook(Float32Array.of(0.5)),
      makeCodebook(Float32Array.of(-1, 1)),
    ];
    const km = kmeans1d(
      Float32Array.from({ length: 2000 }, (_, i) => Math.sin(i) * Math.exp((i % 7) - 3)),
      { k: 256, seed: 3 },
    );
    books.push(makeCodebook(km));
    for (const cb of books) {
      const probes: number[] = [0, -0, NaN, Infinity, -Infinity, 1e-45, -1e-45, 1e30, -1e30];
      for (const m of cb.midpoints)
        probes.push(m, Math.fround(m), m + Math.abs(m) * 1e-15 + 1e-300, m - Math.abs(m) * 1e-15 - 1e-300);
      for (const v of cb.sortedValues) probes.push(v);
      for (const x of probes) expect(nearestCode(cb, x)).toBe(nearestCodeReference(cb, x));
      fc.assert(
        fc.property(
          fc.double({ min: -2, max: 2, noNaN: true }),
          (x) => nearestCode(cb, x) === nearestCodeReference(cb, x),
        ),
        { numRuns: 2000 },
      );
    }
  });
});
