import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Float8Kind } from './float8.js';
import { FLOAT8_KINDS, decodeFloat8, encodeFloat8, float8Max, float8Table } from './float8.js';
import { fieldValue, magnitudeValues, midpoint, nearestEvenCode, nextDown, nextUp } from './reference.test-util.js';

/**
 * The float8.md tables, transcribed: field widths, bias, the largest finite magnitude code, the
 * smallest subnormal, and which codes are NaN / Inf. Everything below is derived from these,
 * not from the code under test.
 */
interface Table {
  readonly manBits: number;
  readonly bias: number;
  readonly maxMag: number;
  readonly max: number;
  readonly minSub: number;
  readonly isNaN: (c: number) => boolean;
  readonly isInf: (c: number) => boolean;
  readonly uz: boolean;
}
const SPEC: Record<Float8Kind, Table> = {
  // E4M3FN: NaN S.1111.111, no Inf, max S.1111.110 = 448, min 2^-9
  float8e4m3fn: {
    manBits: 3,
    bias: 7,
    maxMag: 0x7e,
    max: 448,
    minSub: 2 ** -9,
    isNaN: (c) => (c & 0x7f) === 0x7f,
    isInf: () => false,
    uz: false,
  },
  // E4M3FNUZ: NaN 1.0000.000 only, no Inf, max S.1111.111 = 240, min 2^-10
  float8e4m3fnuz: {
    manBits: 3,
    bias: 8,
    maxMag: 0x7f,
    max: 240,
    minSub: 2 ** -10,
    isNaN: (c) => c === 0x80,
    isInf: () => false,
    uz: true,
  },
  // E5M2: Inf S.11111.00, NaN S.11111.{01,10,11}, max 1.75 × 2^15 = 57344, min 2^-16
  float8e5m2: {
    manBits: 2,
    bias: 15,
    maxMag: 0x7b,
    max: 57344,
    minSub: 2 ** -16,
    isNaN: (c) => (c & 0x7c) === 0x7c && (c & 3) !== 0,
    isInf: (c) => (c & 0x7f) === 0x7c,
    uz: false,
  },
  // E5M2FNUZ: NaN 1.00000.00 only, no Inf, max S.11111.11 = 57344, min 2^-17
  float8e5m2fnuz: {
    manBits: 2,
    bias: 16,
    maxMag: 0x7f,
    max: 57344,
    minSub: 2 ** -17,
    isNaN: (c) => c === 0x80,
    isInf: () => false,
    uz: true,
  },
};

function specValue(c: number, t: Table): number {
  if (t.isNaN(c)) return NaN;
  const s = c >> 7;
  if (t.isInf(c)) return s ? -Infinity : Infinity;
  return fieldValue(s, (c & 0x7f) >> t.manBits, c & ((1 << t.manBits) - 1), t.manBits, t.bias);
}

/** What the code after the largest finite one would be worth if the binade went on. */
function beyond(t: Table): number {
  const c = t.maxMag + 1;
  return fieldValue(0, c >> t.manBits, c & ((1 << t.manBits) - 1), t.manBits, t.bias);
}

/** Reference encoder: brute-force nearest-even over the finite magnitudes + the Cast tables. */
function reference(x: number, kind: Float8Kind, saturate: boolean): number {
  const t = SPEC[kind];
  const mags = magnitudeValues(t.maxMag + 1, t.manBits, t.bias);
  if (Number.isNaN(x)) return kind === 'float8e5m2' ? 0x7e : t.uz ? 0x80 : 0x7f;
  const negative = x < 0 || Object.is(x, -0);
  const sign = negative ? 0x80 : 0;
  const a = Math.abs(x);
  const code = a === Infinity ? t.maxMag + 1 : nearestEvenCode(a, mags, beyond(t));
  if (code > t.maxMag) {
    // Cast tables: saturate → ±FLT_MAX; else E5M2 ±Inf, E4M3FN ±NaN, FNUZ the one NaN.
    if (saturate) return sign | t.maxMag;
    if (kind === 'float8e5m2') return sign | 0x7c;
    return t.uz ? 0x80 : sign | 0x7f;
  }
  if (code === 0 && t.uz) return 0;
  return sign | code;
}

describe.each(FLOAT8_KINDS)('%s', (kind) => {
  const t = SPEC[kind];

  it('decodes all 256 codes to the value the spec formula gives from sign/exponent/mantissa', () => {
    for (let c = 0; c < 256; c++) {
      const want = specValue(c, t);
      const got = decodeFloat8(c, kind);
      if (Number.isNaN(want)) expect(got, `code ${c}`).toBeNaN();
      else expect(Object.is(got, want), `code ${c}: ${got} vs ${want}`).toBe(true);
      expect(Object.is(float8Table(kind)[c], got)).toBe(true);
    }
  });

  it('spec anchors: max, smallest subnormal, zeros, NaN count', () => {
    expect(float8Max(kind)).toBe(t.max);
    expect(decodeFloat8(t.maxMag, kind)).toBe(t.max);
    expect(decodeFloat8(0x80 | t.maxMag, kind)).toBe(-t.max);
    expect(decodeFloat8(1, kind)).toBe(t.minSub);
    expect(Object.is(decodeFloat8(0, kind), 0)).toBe(true);
    let nans = 0;
    for (let c = 0; c < 256; c++) if (Number.isNaN(decodeFloat8(c, kind))) nans++;
    expect(nans).toBe({ float8e4m3fn: 2, float8e4m3fnuz: 1, float8e5m2: 6, float8e5m2fnuz: 1 }[kind]);
    if (t.uz) expect(Object.is(decodeFloat8(0x80, kind), -0)).toBe(false);
    else expect(Object.is(decodeFloat8(0x80, kind), -0)).toBe(true);
  });

  it("a NaN code decodes to a NaN carrying the code's sign bit (0x80 in FNUZ is negative)", () => {
    const bits = new Uint32Array(new Float64Array(1).buffer);
    const f = new Float64Array(bits.buffer);
    for (let c = 0; c < 256; c++) {
      if (!t.isNaN(c)) continue;
      f[0] = decodeFloat8(c, kind);
      expect((bits[1] as number) >>> 31, `code ${c}`).toBe(c >> 7);
    }
  });

  it('decode then encode is the identity on every non-NaN code, both saturate modes', () => {
    for (let c = 0; c < 256; c++) {
      const v = decodeFloat8(c, kind);
      for (const saturate of [true, false]) {
        const back = encodeFloat8(v, kind, saturate);
        if (Number.isNaN(v)) expect(Number.isNaN(decodeFloat8(back, kind))).toBe(true);
        else if (t.isInf(c) && saturate)
          expect(back).toBe((c & 0x80) | t.maxMag); // Inf saturates
        else expect(back, `code ${c} saturate=${saturate}`).toBe(c);
      }
    }
  });

  it('every midpoint between adjacent codes rounds to the even code; a hair either side to the nearer', () => {
    for (let c = 0; c < t.maxMag; c++) {
      const lo = decodeFloat8(c, kind);
      const hi = decodeFloat8(c + 1, kind);
      const mid = midpoint(lo, hi);
      const even = c % 2 === 0 ? c : c + 1;
      expect(encodeFloat8(mid, kind), `mid ${mid}`).toBe(even);
      expect(encodeFloat8(nextDown(mid), kind)).toBe(c);
      expect(encodeFloat8(nextUp(mid), kind)).toBe(c + 1);
      // Negative side: FNUZ has no -0, so a negative tie to zero gives +0.
      expect(encodeFloat8(-mid, kind)).toBe(even === 0 && t.uz ? 0 : 0x80 | even);
    }
  });

  it('the overflow threshold is the midpoint above max: ties there go to even, past it out of range', () => {
    const top = midpoint(t.max, beyond(t));
    // max's mantissa is odd in E5M2/FNUZ kinds (1.11, 1.111) and even in E4M3FN (1.110).
    const tieStays = (t.maxMag & 1) === 0;
    expect(encodeFloat8(nextDown(top), kind, false)).toBe(t.maxMag);
    expect(encodeFloat8(top, kind, true)).toBe(t.maxMag);
    expect(encodeFloat8(nextUp(top), kind, true)).toBe(t.maxMag);
    const over = kind === 'float8e5m2' ? 0x7c : t.uz ? 0x80 : 0x7f;
    expect(encodeFloat8(top, kind, false)).toBe(tieStays ? t.maxMag : over);
    expect(encodeFloat8(nextUp(top), kind, false)).toBe(over);
    expect(encodeFloat8(-nextUp(top), kind, false)).toBe(t.uz ? 0x80 : 0x80 | over);
  });

  it('Cast table, saturate=1: 0, -0, NaN, ±Inf, beyond ±max', () => {
    expect(encodeFloat8(0, kind)).toBe(0);
    expect(encodeFloat8(-0, kind)).toBe(t.uz ? 0 : 0x80);
    expect(Number.isNaN(decodeFloat8(encodeFloat8(NaN, kind), kind))).toBe(true);
    expect(encodeFloat8(Infinity, kind)).toBe(t.maxMag);
    expect(encodeFloat8(-Infinity, kind)).toBe(0x80 | t.maxMag);
    expect(encodeFloat8(1e6, kind)).toBe(t.maxMag);
    expect(encodeFloat8(-1e300, kind)).toBe(0x80 | t.maxMag);
  });

  it('Cast table, saturate=0: ±Inf and beyond ±max → Inf (E5M2) or NaN', () => {
    const inf = encodeFloat8(Infinity, kind, false);
    const ninf = encodeFloat8(-Infinity, kind, false);
    const big = encodeFloat8(1e6, kind, false);
    const nbig = encodeFloat8(-1e6, kind, false);
    if (kind === 'float8e5m2') {
      expect([inf, ninf, big, nbig]).toEqual([0x7c, 0xfc, 0x7c, 0xfc]);
    } else if (t.uz) {
      expect([inf, ninf, big, nbig]).toEqual([0x80, 0x80, 0x80, 0x80]);
    } else {
      expect([inf, ninf, big, nbig]).toEqual([0x7f, 0xff, 0x7f, 0xff]); // -Inf → -NaN
    }
    expect(encodeFloat8(-0, kind, false)).toBe(t.uz ? 0 : 0x80);
  });

  it('matches the brute-force reference for random doubles and floats, both saturate modes', () => {
    const range = t.max * 1.2;
    for (const saturate of [true, false]) {
      const ok = (x: number) => encodeFloat8(x, kind, saturate) === reference(x, kind, saturate);
      fc.assert(fc.property(fc.double({ min: -range, max: range }), ok), { numRuns: 5000 });
      fc.assert(fc.property(fc.double({ min: -4 * t.minSub, max: 4 * t.minSub }), ok), { numRuns: 3000 });
      fc.assert(fc.property(fc.double(), ok), { numRuns: 3000 });
      fc.assert(fc.property(fc.float(), ok), { numRuns: 3000 });
    }
  });
});
