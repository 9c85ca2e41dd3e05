import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fp4BnbCodebook, makeCodebook, nf4Codebook, type Codebook } from '../quant/codebook.js';
import { quantizeBnb4 } from '../quant/bnb4-quant.js';
import { chooseConstantReference, quantizeBnb4Reference } from '../quant/bnb4-reference.test-util.js';
import {
  bnb4SearchWasmAvailable,
  enableBnb4SearchWasm,
  encodeBnb4Blocks,
  floatAtOrBelow,
  searchBnb4Constants,
} from './bnb4-search.js';

/*
 * The WebAssembly search against the plain JS search of bnb4-reference.test-util.ts (binary search
 * over the codebook's float64 midpoints, per-element early exit, one block at a time): the chosen
 * constant of every block must be the same float32, and the codes at those constants the same
 * bytes with the same float64 error sums as the JS encoder's, on blocks built to make the edge
 * cases happen — exact ties between candidates, elements on a midpoint, ±0, subnormals (1/s
 * overflows), magnitudes whose squared errors overflow, short last blocks and groups of fewer
 * than four blocks.
 */

const RATIOS = Float32Array.from({ length: 31 }, (_, i) => 1 - i * 0.01);
const TYPES = [
  ['nf4', nf4Codebook()],
  ['fp4', fp4BnbCodebook()],
] as const;

function blockMaxima(w: Float32Array, blockSize: number): Float32Array {
  const out = new Float32Array(Math.ceil(w.length / blockSize));
  for (let i = 0; i < w.length; i++) {
    const b = Math.floor(i / blockSize);
    out[b] = Math.max(out[b] as number, Math.abs(w[i] as number));
  }
  return out;
}

/** The kernel's constants, failing the test if it declined. */
function kernelConstants(w: Float32Array, blockSize: number, cb: Codebook): Float32Array {
  const a = blockMaxima(w, blockSize);
  if (!searchBnb4Constants(w, blockSize, cb, RATIOS, a)) throw new Error('kernel declined');
  return a;
}

/** The JS quantizer's result with the kernel off (its sums; the reference has none). */
function jsQuantizer(w: Float32Array, blockSize: number, type: 'nf4' | 'fp4') {
  enableBnb4SearchWasm(false);
  try {
    return quantizeBnb4(w, { type, blockSize });
  } finally {
    enableBnb4SearchWasm(true);
  }
}

/** Constants, then codes, packed bytes and sums at those constants (encodeBnb4Blocks). */
function expectSame(w: Float32Array, blockSize: number, type: 'nf4' | 'fp4', cb: Codebook): void {
  const ref = quantizeBnb4Reference(w, { type, blockSize });
  const got = kernelConstants(w, blockSize, cb);
  // Bit patterns, so that −0 ≠ +0 and NaN would show.
  expect(new Int32Array(got.buffer)).toEqual(new Int32Array(ref.absmax.buffer));
  const codes = new Uint8Array(w.length);
  const packed = new Uint8Array(Math.ceil(w.length / 2));
  const sums = encodeBnb4Blocks(w, blockSize, cb, ref.absmax, codes, packed);
  expect(codes).toEqual(ref.codes);
  expect(packed).toEqual(ref.packed);
  const js = jsQuantizer(w, blockSize, type);
  expect(sums).toEqual([js.signalSq, js.noiseSq]);
}

function normal(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => u() + u() + u() + u() - 2);
}

describe('bnb4 constant search and encoding in WebAssembly = the JS quantizer, block for block', () => {
  it('runs here (WebAssembly SIMD is on by default since Node 16)', () => {
    expect(bnb4SearchWasmAvailable()).toBe(true);
  });

  for (const [type, cb] of TYPES) {
    for (const blockSize of [16, 32, 64, 128, 256]) {
      it(`${type} block ${blockSize}: normal weights with outliers, a short last block, 4k + 1 blocks`, () => {
        const n = blockSize * 9 - 5;
        const w = normal(n, blockSize + (type === 'nf4' ? 1 : 2));
        for (let i = 3; i < n; i += 37) w[i] = (w[i] as number) * 25;
        expectSame(w, blockSize, type, cb);
      });
    }

    it(`${type}: all-zero and −0 blocks keep +0; subnormal blocks (1/s overflows); huge blocks (errors overflow)`, () => {
      const bs = 64;
      const w = normal(bs * 8, 5);
      w.fill(0, 0, bs);
      w.fill(-0, bs, 2 * bs);
      for (let i = 2 * bs; i < 3 * bs; i++) w[i] = ((i % 5) - 2) * 2 ** -149; // smallest subnormals
      for (let i = 3 * bs; i < 4 * bs; i++) w[i] = (w[i] as number) * 2 ** -130;
      for (let i = 4 * bs; i < 5 * bs; i++) w[i] = (w[i] as number) * 1.5e38; // (x − x̂)² overflows to ∞
      w.fill(3.4028234663852886e38, 5 * bs, 5 * bs + 7); // ±FLT_MAX
      w.fill(-3.4028234663852886e38, 5 * bs + 7, 6 * bs);
      w[6 * bs] = 1; // one element, the rest zero
      w.fill(0, 6 * bs + 1, 7 * bs);
      expectSame(w, bs, type, cb);
      const got = kernelConstants(w, bs, cb);
      expect(Object.is(got[0], 0) && Object.is(got[1], 0)).toBe(true);
    });

    it(`${type}: elements exactly on midpoints and table values (ties between codes), both signs`, () => {
      // Power-of-two absmax: at ratio 1, x·(1/s) is exactly the chosen value.
      const mids = Array.from(cb.midpoints).filter((m) => Math.fround(m) === m);
      const vals = Array.from(cb.sortedValues);
      const w = new Float32Array(64 * 6);
      for (let i = 0; i < w.length; i++) {
        const pool = i % 2 === 0 ? mids : vals;
        w[i] = (pool[(i * 7) % pool.length] as number) * 2 ** ((i >> 6) - 2);
      }
      for (let b = 0; b < 6; b++) w[b * 64] = 2 ** (b - 2); // absmax = 2^(b−2)
      expectSame(w, 64, type, cb);
    });

    it(`${type}: random blocks over a few discrete values (candidates that tie exactly)`, () => {
      const level = fc.constantFrom(0, -0, 1, -1, 0.5, -0.5, 0.25, 1 / 3, -2 / 3, 0.75, 1 / 12, -1 / 192, 0.0625);
      fc.assert(
        fc.property(
          fc.array(level, { minLength: 1, maxLength: 16 * 7 }),
          fc.integer({ min: -130, max: 120 }),
          fc.constantFrom(16, 32),
          (levels, exp, bs) => {
            const w = Float32Array.from(levels, (v) => v * 2 ** exp);
            expectSame(w, bs, type, cb);
          },
        ),
        { numRuns: 300, seed: 11 },
      );
    });

    it(`${type}: random float32 bit patterns (finite) in blocks of 16`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 80 }),
          (xs) => {
            expectSame(Float32Array.from(xs), 16, type, cb);
          },
        ),
        { numRuns: 300, seed: 12 },
      );
    });
  }

  // fp4's search prepares, per element, the two thresholds its key can pass over the candidate
  // constants (absmax · 1.125 … 0.6875); a symmetric table with three thresholds closer than 2×
  // apart must fall back to the seven-compare pass, one spaced like fp4's must not need to.
  for (const [name, magnitudes] of [
    ['thresholds ≤ 1.2× apart (falls back)', [0.5, 0.6, 0.7, 0.8, 0.9, 1]],
    ['thresholds ≥ 2× apart', [0.125, 0.25, 0.5, 1]],
    ['fp4 scaled by 3', [1 / 64, 0.5, 0.75, 1, 1.5, 2, 3].map((v) => v / 3)],
  ] as const) {
    it(`a symmetric table, ${name}: the constants of the plain search`, () => {
      const values = Float32Array.from([0, ...magnitudes, ...magnitudes.map((v) => -v)]);
      const cb = makeCodebook(values);
      for (const blockSize of [16, 64]) {
        const w = normal(blockSize * 9 + 5, blockSize);
        for (let i = 0; i < w.length; i += 7) w[i] = (w[i] as number) * 4; // outliers
        const got = kernelConstants(w, blockSize, cb);
        const want = Float32Array.from({ length: got.length }, (_, b) =>
          chooseConstantReference(w, b * blockSize, Math.min((b + 1) * blockSize, w.length), cb, cb.values),
        );
        expect(new Int32Array(got.buffer)).toEqual(new Int32Array(want.buffer));
      }
    });
  }

  it('declines a table it cannot take: no 0 among the values, or more than 16 values', () => {
    const w = normal(64, 1);
    const a = blockMaxima(w, 64);
    expect(searchBnb4Constants(w, 64, { sortedValues: [-1, 1], midpoints: [0], sortedCodes: [0, 1] }, RATIOS, a)).toBe(
      false,
    );
    const many = Array.from({ length: 17 }, (_, i) => i - 8);
    expect(
      searchBnb4Constants(
        w,
        64,
        { sortedValues: many, midpoints: many.slice(1).map((v) => v - 0.5), sortedCodes: many.map((_, i) => i) },
        RATIOS,
        a,
      ),
    ).toBe(false);
    expect(a).toEqual(blockMaxima(w, 64));
  });
});

describe('floatAtOrBelow: the float32 threshold for a float64 midpoint', () => {
  const f32 = fc.float({ noNaN: true });
  it('for every float32 t and float64 m: t > m ⟺ t > floatAtOrBelow(m)', () => {
    fc.assert(
      fc.property(f32, fc.double({ noNaN: true, min: -3e38, max: 3e38 }), (t, m) => t > m === t > floatAtOrBelow(m)),
      { numRuns: 20000, seed: 3 },
    );
    // Next to the float32s themselves and their midpoints.
    fc.assert(
      fc.property(f32, f32, (t, u) => {
        const m = (u + Math.fround(u * (1 + 2 ** -23))) / 2;
        return t > m === t > floatAtOrBelow(m) && t > u === t > floatAtOrBelow(u);
      }),
      { numRuns: 20000, seed: 4 },
    );
  });
  it('is m itself when m is a float32, else the float32 just below', () => {
    expect(floatAtOrBelow(0.5)).toBe(0.5);
    expect(floatAtOrBelow(0)).toBe(0);
    expect(floatAtOrBelow(0.1)).toBe(Math.fround(0.1) <= 0.1 ? Math.fround(0.1) : Math.fround(0.1 - 2 ** -28));
    expect(floatAtOrBelow(-1e-50)).toBe(-(2 ** -149));
    expect(floatAtOrBelow(1e-50)).toBe(0);
  });
});
