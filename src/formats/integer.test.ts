import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INT_DTYPES, castToInt, intRange, isIntDType, saturateToInt } from './integer.js';
import { roundHalfAway, roundHalfEven } from './rounding.js';

/** Reference rounding by exact BigInt-free reasoning on halves: x = n + 1/2 exactly ↔ 2x is an odd integer. */
function refHalfEven(x: number): number {
  const f = Math.floor(x);
  if (x - f !== 0.5) return x - f < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

describe('integer ranges', () => {
  it('every dtype spans [-2^(b-1), 2^(b-1)-1] or [0, 2^b-1]', () => {
    const want: Record<string, [number, number]> = {
      int2: [-2, 1],
      uint2: [0, 3],
      int4: [-8, 7],
      uint4: [0, 15],
      int8: [-128, 127],
      uint8: [0, 255],
      int16: [-32768, 32767],
      uint16: [0, 65535],
      int32: [-2147483648, 2147483647],
      uint32: [0, 4294967295],
    };
    for (const d of INT_DTYPES) expect([intRange(d).min, intRange(d).max]).toEqual(want[d]);
    expect(isIntDType('int4')).toBe(true);
    expect(isIntDType('int64')).toBe(false);
  });
});

describe('roundHalfEven / roundHalfAway', () => {
  it('hand-worked ties and non-ties', () => {
    // `+ 0`: the sign of a zero result does not matter to integer users.
    expect([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5].map((x) => roundHalfEven(x) + 0)).toEqual([-2, -2, 0, 0, 2, 2, 4]);
    expect([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5].map((x) => roundHalfAway(x) + 0)).toEqual([-3, -2, -1, 1, 2, 3]);
    expect(roundHalfEven(0.49999999999999994)).toBe(0);
    expect(roundHalfEven(2 ** 52 + 1)).toBe(2 ** 52 + 1);
    expect(roundHalfEven(4503599627370495.5)).toBe(4503599627370496);
    expect(roundHalfEven(Infinity)).toBe(Infinity);
    expect(roundHalfEven(NaN)).toBeNaN();
  });

  it('agrees with the reference on random doubles and on exact halves', () => {
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), (x) => roundHalfEven(x) === refHalfEven(x)),
      { numRuns: 20000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: -1e9, max: 1e9 }), (n) => roundHalfEven(n + 0.5) === (n % 2 === 0 ? n : n + 1)),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: -1e9, max: 1e9 }), (n) => roundHalfAway(n + 0.5) === (n >= 0 ? n + 1 : n)),
      { numRuns: 5000 },
    );
  });
});

describe('saturateToInt (QuantizeLinear: round half to even, then saturate)', () => {
  it('clamps to the range, rounds ties to even, NaN → 0, ±Inf → ends', () => {
    expect(saturateToInt(7.5, 'int4')).toBe(7);
    expect(saturateToInt(6.5, 'int4')).toBe(6);
    expect(saturateToInt(-8.5, 'int4')).toBe(-8);
    expect(saturateToInt(-7.5, 'int4')).toBe(-8);
    expect(saturateToInt(300, 'uint8')).toBe(255);
    expect(saturateToInt(-0.5, 'uint8')).toBe(0);
    expect(saturateToInt(-0.6, 'uint8')).toBe(0);
    expect(saturateToInt(127.5, 'int8')).toBe(127);
    expect(saturateToInt(1.5, 'int2')).toBe(1);
    expect(saturateToInt(NaN, 'int8')).toBe(0);
    expect(saturateToInt(Infinity, 'int32')).toBe(2147483647);
    expect(saturateToInt(-Infinity, 'uint32')).toBe(0);
  });

  it('for every dtype: result in range, equal to the rounded value when that is in range, monotone', () => {
    for (const d of INT_DTYPES) {
      const { min, max } = intRange(d);
      const span = Math.max(4, (max - min) * 1.5);
      fc.assert(
        fc.property(
          fc.double({ min: -span, max: span, noNaN: true }),
          fc.double({ min: -span, max: span, noNaN: true }),
          (a, b) => {
            const qa = saturateToInt(a, d);
            const r = refHalfEven(a);
            if (qa < min || qa > max) return false;
            if (r >= min && r <= max && qa !== r) return false;
            return a <= b ? qa <= saturateToInt(b, d) : qa >= saturateToInt(b, d);
          },
        ),
        { numRuns: 2000 },
      );
    }
  });
});

describe('castToInt (ONNX Cast float → integer)', () => {
  it('4/2-bit targets round half to even then wrap (int4.md; test_cast_FLOAT_to_INT4/UINT4/INT2/UINT2)', () => {
    // Conformance inputs -9..15 → int4 and uint4 outputs (low nibbles of the expected bytes).
    const xs = Array.from({ length: 25 }, (_, i) => i - 9);
    expect(xs.map((x) => castToInt(x, 'int4'))).toEqual([
      7, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1,
    ]);
    expect(xs.map((x) => castToInt(x, 'uint4'))).toEqual([
      7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ]);
    expect([-3, -2, -1, 0, 1, 2, 3].map((x) => castToInt(x, 'int2'))).toEqual([1, -2, -1, 0, 1, -2, -1]);
    expect([-3, -2, -1, 0, 1, 2, 3].map((x) => castToInt(x, 'uint2'))).toEqual([1, 2, 3, 0, 1, 2, 3]);
    // Ties to even per the spec (ONNX Runtime 1.30 rounds these away from zero: 3, -3, 1).
    expect([2.5, -2.5, 0.5, 3.5, 7.5].map((x) => castToInt(x, 'int4'))).toEqual([2, -2, 0, 4, -8]);
    expect(castToInt(NaN, 'int4')).toBe(0);
  });

  it('8/16/32-bit targets truncate toward zero, then keep the low bits; NaN/Inf/|x| ≥ 2^31 → INT32_MIN first', () => {
    expect([2.7, -2.7, 2.5, -0.5].map((x) => castToInt(x, 'int8'))).toEqual([2, -2, 2, 0]);
    expect(castToInt(200, 'int8')).toBe(-56); // the spec's own example (via int16)
    expect(castToInt(1e6, 'int8')).toBe(64); // measured: ONNX Runtime 1.30 gives 64
    expect(castToInt(-1, 'uint16')).toBe(65535);
    expect(castToInt(-1, 'uint32')).toBe(4294967295);
    expect(castToInt(2 ** 31, 'int32')).toBe(-(2 ** 31));
    expect(castToInt(2 ** 31 - 1, 'int32')).toBe(2 ** 31 - 1);
    expect(castToInt(-(2 ** 31) - 0.5, 'int32')).toBe(-(2 ** 31));
    expect(castToInt(2 ** 31 + 256, 'int16')).toBe(0); // INT32_MIN's low bits, not 256
    expect([NaN, Infinity, -Infinity].map((x) => castToInt(x, 'int8'))).toEqual([0, 0, 0]);
    expect([NaN, Infinity, -Infinity].map((x) => castToInt(x, 'int32'))).toEqual([-(2 ** 31), -(2 ** 31), -(2 ** 31)]);
  });

  it('in range, it equals trunc (≥ 8 bits) or round-half-even (≤ 4 bits) for every dtype', () => {
    for (const d of INT_DTYPES) {
      const { min, max } = intRange(d);
      const small = (d.endsWith('2') && !d.endsWith('32')) || d.endsWith('4');
      fc.assert(
        fc.property(fc.double({ min: min - 0.49, max: max + 0.49, noNaN: true }), (x) => {
          const want = small ? refHalfEven(x) : Math.trunc(x);
          if (want < min || want > max) return true;
          return castToInt(x, d) === want;
        }),
        { numRuns: 2000 },
      );
    }
  });
});
