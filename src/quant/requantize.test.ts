import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QuantkitError } from '../errors.js';
import { mulberry32 } from './prng.js';
import {
  INT32_MAX,
  INT32_MIN,
  multiplyByQuantizedMultiplier,
  quantizeMultiplier,
  requantize,
  roundingDivideByPOT,
  saturatingRoundingDoublingHighMul,
} from './requantize.js';

// Independent truth: exact rational arithmetic in BigInt, written from what the operations mean
// (round a/2^k to nearest with a stated tie rule), not from gemmlowp's bit tricks.
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

/** a·b / 2^31 rounded to nearest, ties toward +∞ (what the nudge + truncation amounts to). */
function srdhmTruth(a: number, b: number): number {
  if (a === INT32_MIN && b === INT32_MIN) return INT32_MAX;
  return Number(floorDiv(BigInt(a) * BigInt(b) + (1n << 30n), 1n << 31n));
}

/** x / 2^e rounded to nearest, ties away from zero. */
function rdbpotTruth(x: number, e: number): number {
  if (e === 0) return x;
  const mag = BigInt(Math.abs(x));
  const r = floorDiv(mag + (1n << BigInt(e - 1)), 1n << BigInt(e));
  return Number(x < 0 ? -r : r);
}

function mbqmTruth(x: number, m0: number, shift: number): number {
  const left = shift < 0 ? -shift : 0;
  const shifted = Number(BigInt.asIntN(32, BigInt(x) << BigInt(left)));
  return rdbpotTruth(srdhmTruth(shifted, m0), shift > 0 ? shift : 0);
}

function roundHalfAwayNumber(v: number): number {
  return Math.sign(v) * Math.round(Math.abs(v));
}

const int32 = fc.integer({ min: INT32_MIN, max: INT32_MAX });
const EDGES = [
  INT32_MIN,
  INT32_MIN + 1,
  -(2 ** 30) - 1,
  -(2 ** 30),
  -(2 ** 30) + 1,
  -3,
  -2,
  -1,
  0,
  1,
  2,
  3,
  2 ** 30 - 1,
  2 ** 30,
  2 ** 30 + 1,
  INT32_MAX - 1,
  INT32_MAX,
];

describe('saturatingRoundingDoublingHighMul', () => {
  it('hand-worked: 3·2^30/2^31 = 1.5 → 2, −1.5 → −1 (ties toward +∞), 1000·0.75 = 750', () => {
    // ab = 3·2^30, nudge 2^30: (4·2^30)/2^31 = 2.
    expect(saturatingRoundingDoublingHighMul(3, 2 ** 30)).toBe(2);
    // ab = −3·2^30, nudge 1 − 2^30: (−2^32 + 1)/2^31 = −1.99… truncated toward zero = −1.
    expect(saturatingRoundingDoublingHighMul(-3, 2 ** 30)).toBe(-1);
    // 0.75 in Q31 is 1610612736: 1000·1610612736/2^31 = 750 exactly.
    expect(saturatingRoundingDoublingHighMul(1000, 1610612736)).toBe(750);
  });

  it('saturates only INT32_MIN·INT32_MIN', () => {
    expect(saturatingRoundingDoublingHighMul(INT32_MIN, INT32_MIN)).toBe(INT32_MAX);
    // (2^31 − 1)·2^31 / 2^31 = 2^31 − 1: the largest product that does not saturate.
    expect(saturatingRoundingDoublingHighMul(INT32_MIN, INT32_MIN + 1)).toBe(INT32_MAX);
    expect(saturatingRoundingDoublingHighMul(INT32_MIN, INT32_MAX)).toBe(INT32_MIN + 1);
  });

  it('equals exact rounding on every pair of edge values', () => {
    for (const a of EDGES) {
      for (const b of EDGES) expect(saturatingRoundingDoublingHighMul(a, b), `${a}·${b}`).toBe(srdhmTruth(a, b));
    }
  });

  it('equals exact rounding on exact .5 ties of both signs', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 19), max: 2 ** 19 - 1 }), fc.integer({ min: 0, max: 10 }), (k, s) => {
        // a·b = (2k+1)·2^30 exactly: an odd number of halves in Q31.
        const a = (2 * k + 1) * 2 ** s;
        const b = 2 ** (30 - s);
        const got = saturatingRoundingDoublingHighMul(a, b);
        expect(got).toBe(srdhmTruth(a, b));
        expect(got).toBe(k + 1); // (2k+1)/2 = k + 0.5 → k + 1 for either sign of k
      }),
    );
  });

  it('equals exact rounding on random int32 pairs', () => {
    fc.assert(
      fc.property(int32, int32, (a, b) => {
        expect(saturatingRoundingDoublingHighMul(a, b)).toBe(srdhmTruth(a, b));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('roundingDivideByPOT', () => {
  it('hand-worked: 3/2 → 2, −3/2 → −2 (ties away from zero), 7/4 → 2, −5/4 → −1', () => {
    // −3: mask 1, remainder −3 & 1 = 1, threshold 0 + 1 = 1, −3 >> 1 = −2, 1 > 1 is false → −2.
    expect(roundingDivideByPOT(3, 1)).toBe(2);
    expect(roundingDivideByPOT(-3, 1)).toBe(-2);
    expect(roundingDivideByPOT(7, 2)).toBe(2);
    expect(roundingDivideByPOT(-5, 2)).toBe(-1);
  });

  it('exponents 0 and 31 on the edges', () => {
    for (const x of EDGES) expect(roundingDivideByPOT(x, 0)).toBe(x);
    expect(roundingDivideByPOT(INT32_MIN, 31)).toBe(-1);
    expect(roundingDivideByPOT(INT32_MAX, 31)).toBe(1);
    expect(roundingDivideByPOT(2 ** 30, 31)).toBe(1); // exactly 0.5 → away from zero
    expect(roundingDivideByPOT(-(2 ** 30), 31)).toBe(-1);
    expect(roundingDivideByPOT(2 ** 30 - 1, 31)).toBe(0);
    expect(roundingDivideByPOT(-(2 ** 30) + 1, 31)).toBe(0);
  });

  it('equals exact rounding on every edge value and exponent', () => {
    for (const x of EDGES) {
      for (let e = 0; e <= 31; e++) expect(roundingDivideByPOT(x, e), `${x} / 2^${e}`).toBe(rdbpotTruth(x, e));
    }
  });

  it('equals exact rounding on exact ties of both signs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 31 }), fc.integer({ min: -(2 ** 20), max: 2 ** 20 }), (e, k) => {
        const x = (2 * k + 1) * 2 ** (e - 1);
        fc.pre(x >= INT32_MIN && x <= INT32_MAX);
        expect(roundingDivideByPOT(x, e)).toBe(rdbpotTruth(x, e));
        expect(roundingDivideByPOT(x, e)).toBe(k >= 0 ? k + 1 : k);
      }),
    );
  });

  it('equals exact rounding on random inputs', () => {
    fc.assert(
      fc.property(int32, fc.integer({ min: 0, max: 31 }), (x, e) => {
        expect(roundingDivideByPOT(x, e)).toBe(rdbpotTruth(x, e));
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects exponents outside [0, 31]', () => {
    expect(() => roundingDivideByPOT(1, 32)).toThrow(RangeError);
    expect(() => roundingDivideByPOT(1, -1)).toThrow(RangeError);
  });
});

describe('quantizeMultiplier', () => {
  it('hand-worked values', () => {
    // 0.75 = 0.75·2^0: m0 = 0.75·2^31 = 1610612736, shift 0.
    expect(quantizeMultiplier(0.75)).toEqual({ m0: 1610612736, shift: 0 });
    // 0.25 = 0.5·2^−1: m0 = 2^30, shift 1.
    expect(quantizeMultiplier(0.25)).toEqual({ m0: 2 ** 30, shift: 1 });
    // 3 = 0.75·2^2: a left shift of 2.
    expect(quantizeMultiplier(3)).toEqual({ m0: 1610612736, shift: -2 });
    // 1 − 2^−53: q·2^31 = 2^31 − 2^−22 rounds to 2^31, halved to 2^30 with the exponent bumped:
    // m0·2^(−31+1) = 1.
    expect(quantizeMultiplier(1 - 2 ** -53)).toEqual({ m0: 2 ** 30, shift: -1 });
    // 2^−32 = 0.5·2^−31: the smallest power of two a right shift of 31 reaches.
    expect(quantizeMultiplier(2 ** -32)).toEqual({ m0: 2 ** 30, shift: 31 });
    expect(quantizeMultiplier(2 ** -33)).toEqual({ m0: 0, shift: 0 });
    expect(quantizeMultiplier(Number.MIN_VALUE)).toEqual({ m0: 0, shift: 0 });
    expect(quantizeMultiplier(0)).toEqual({ m0: 0, shift: 0 });
  });

  it('m0 in [2^30, 2^31) and |m0·2^(−31−shift) − M| ≤ 2^(−31−shift)/2 on random multipliers', () => {
    fc.assert(
      fc.property(fc.double({ min: 2 ** -32, max: 2 ** 30, noNaN: true }), (m) => {
        const { m0, shift } = quantizeMultiplier(m);
        expect(m0).toBeGreaterThanOrEqual(2 ** 30);
        expect(m0).toBeLessThan(2 ** 31);
        // Scaling by a power of two is exact, so this compares m0 with M·2^(31+shift) exactly.
        expect(Math.abs(m0 - m * 2 ** (31 + shift))).toBeLessThanOrEqual(0.5);
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects negative, non-finite and too-large multipliers', () => {
    for (const bad of [-1, Number.NaN, Infinity, 2 ** 31]) {
      expect(() => quantizeMultiplier(bad)).toThrow(QuantkitError);
    }
  });
});

describe('multiplyByQuantizedMultiplier', () => {
  it('hand-worked: 6·0.25 = 1.5 → 2 and −6·0.25 → −2', () => {
    // m0 = 2^30, shift 1: SRDHM(−6, 2^30) = −3 exactly, then −3/2 ties away from zero → −2.
    expect(multiplyByQuantizedMultiplier(6, 2 ** 30, 1)).toBe(2);
    expect(multiplyByQuantizedMultiplier(-6, 2 ** 30, 1)).toBe(-2);
    // 100·3 via m0 = 0.75·2^31, left shift 2: SRDHM(400, 1610612736) = 300.
    expect(multiplyByQuantizedMultiplier(100, 1610612736, -2)).toBe(300);
  });

  it('equals the exact composition on random inputs and shifts', () => {
    fc.assert(
      fc.property(
        int32,
        fc.integer({ min: 2 ** 30, max: INT32_MAX }),
        fc.integer({ min: -8, max: 31 }),
        (x, m0, shift) => {
          expect(multiplyByQuantizedMultiplier(x, m0, shift)).toBe(mbqmTruth(x, m0, shift));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('is within one code of float requantization round(acc·M) on random accumulators', () => {
    const rand = mulberry32(13);
    let maxDiff = 0;
    for (let i = 0; i < 20000; i++) {
      const m = 2 ** (-24 * rand()) * (0.5 + 0.5 * rand()); // about 2^−25 … 1
      const acc = Math.floor((rand() * 2 - 1) * 2 ** 31) | 0;
      const { m0, shift } = quantizeMultiplier(m);
      const diff = Math.abs(multiplyByQuantizedMultiplier(acc, m0, shift) - roundHalfAwayNumber(acc * m));
      maxDiff = Math.max(maxDiff, diff);
    }
    expect(maxDiff).toBeLessThanOrEqual(1);
  });
});

describe('requantize', () => {
  it('adds the zero point and clamps, element by element', () => {
    const { m0, shift } = quantizeMultiplier(0.25);
    const acc = Int32Array.from([0, 6, -6, 1000, -1000, INT32_MAX, INT32_MIN]);
    const out = requantize(acc, m0, shift, 10, 0, 255, new Uint8Array(acc.length));
    // 0 → 10; 1.5 → 2 → 12; −1.5 → −2 → 8; 250 → 260 → 255; −250 → −240 → 0; saturate both ends.
    expect(Array.from(out)).toEqual([10, 12, 8, 255, 0, 255, 0]);
    const signed = requantize(acc, m0, shift, -1, -128, 127, new Int8Array(acc.length));
    expect(Array.from(signed)).toEqual(
      Array.from(acc, (a) => Math.min(127, Math.max(-128, mbqmTruth(a, m0, shift) - 1))),
    );
  });

  it('rejects an output of the wrong length', () => {
    expect(() => requantize(new Int32Array(3), 2 ** 30, 0, 0, 0, 255, new Uint8Array(2))).toThrow(QuantkitError);
  });
});
