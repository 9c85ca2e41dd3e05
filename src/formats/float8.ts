import { magnitudeCodeValue, roundToMagnitudeCode, signBit } from './minifloat.js';

/**
 * The four ONNX float8 formats (ONNX float8 spec page; Cast operator tables). Codes are bytes:
 *   float8e4m3fn    bias 7,  max 448,   NaN S.1111.111, no Inf, ±0
 *   float8e4m3fnuz  bias 8,  max 240,   NaN 0x80 only, no Inf, one zero
 *   float8e5m2      bias 15, max 57344, Inf S.11111.00, NaN S.11111.{01,10,11}, ±0
 *   float8e5m2fnuz  bias 16, max 57344, NaN 0x80 only, no Inf, one zero
 *
 * Encoding rounds the exact double to nearest, ties to even ("[x]" in the spec tables), then:
 *   saturate = true:  ±Inf and rounded values beyond ±max become ±max, for all four kinds.
 *   saturate = false: out of range becomes NaN (e4m3fn keeps the sign, the fnuz kinds have one
 *                     NaN) or ±Inf for e5m2; ±Inf likewise.
 * Where the float8 page's saturate table says ±Inf → NaN for the fnuz kinds, we follow the Cast
 * operator's table (±Inf → ±FLT_MAX): ONNX's test_cast_FLOAT_to_FLOAT8E4M3FNUZ/E5M2FNUZ data and
 * ONNX Runtime agree with the operator page.
 */
export type Float8Kind = 'float8e4m3fn' | 'float8e4m3fnuz' | 'float8e5m2' | 'float8e5m2fnuz';

export const FLOAT8_KINDS: readonly Float8Kind[] = ['float8e4m3fn', 'float8e4m3fnuz', 'float8e5m2', 'float8e5m2fnuz'];

interface Float8Layout {
  readonly manBits: number;
  readonly bias: number;
  /** Largest finite magnitude code. */
  readonly maxMag: number;
  /** fnuz: no −0; 0x80 is the only NaN. */
  readonly uz: boolean;
  /** Magnitude code written for NaN (or overflow without saturation) when the sign is kept. */
  readonly nanMag: number;
  /** Magnitude code of Inf, or −1 if the format has none. */
  readonly infMag: number;
}

const LAYOUTS: Record<Float8Kind, Float8Layout> = {
  float8e4m3fn: { manBits: 3, bias: 7, maxMag: 0x7e, uz: false, nanMag: 0x7f, infMag: -1 },
  float8e4m3fnuz: { manBits: 3, bias: 8, maxMag: 0x7f, uz: true, nanMag: 0, infMag: -1 },
  // 0x7e: the quiet NaN (top mantissa bit set) that ONNX's conformance data uses for e5m2.
  float8e5m2: { manBits: 2, bias: 15, maxMag: 0x7b, uz: false, nanMag: 0x7e, infMag: 0x7c },
  float8e5m2fnuz: { manBits: 2, bias: 16, maxMag: 0x7f, uz: true, nanMag: 0, infMag: -1 },
};

const UZ_NAN = 0x80;

/** Code for a value out of range (or ±Inf) with the given sign bit, per the saturate mode. */
function outOfRange(l: Float8Layout, sign: number, saturate: boolean): number {
  if (saturate) return sign | l.maxMag;
  if (l.uz) return UZ_NAN;
  return sign | (l.infMag >= 0 ? l.infMag : l.nanMag);
}

export function encodeFloat8(x: number, kind: Float8Kind, saturate = true): number {
  const l = LAYOUTS[kind];
  const sign = signBit(x) << 7;
  if (x !== x) return l.uz ? UZ_NAN : sign | l.nanMag;
  const a = Math.abs(x);
  if (a === Infinity) return outOfRange(l, sign, saturate);
  const mag = roundToMagnitudeCode(a, l.manBits, l.bias);
  if (mag > l.maxMag) return outOfRange(l, sign, saturate);
  // fnuz has a single zero: −0 and negative values that round to zero encode as +0.
  if (mag === 0 && l.uz) return 0;
  return sign | mag;
}

function decodeByLayout(code: number, l: Float8Layout): number {
  // 0x80 has the sign bit set, so it decodes to a negative NaN, as ml_dtypes does and as ONNX's
  // test_cast_FLOAT8E4M3FNUZ_to_FLOAT16 expects (0x80 → 0xFE00). Negation flips a NaN's sign bit
  // and typed arrays keep it, so the table below carries it through to the float16 encoder.
  if (l.uz && code === UZ_NAN) return -NaN;
  const mag = code & 0x7f;
  let v: number;
  if (l.infMag >= 0 && mag === l.infMag) v = Infinity;
  else if (mag > l.maxMag)
    v = NaN; // e4m3fn S.1111.111, e5m2 S.11111.{01,10,11}
  else v = magnitudeCodeValue(mag, l.manBits, l.bias);
  return code & 0x80 ? -v : v;
}

const tables = new Map<Float8Kind, Float64Array>();
/** The 256 decoded values of a kind, built once: decoding a tensor is one lookup per element. */
export function float8Table(kind: Float8Kind): Float64Array {
  let t = tables.get(kind);
  if (!t) {
    t = new Float64Array(256);
    for (let c = 0; c < 256; c++) t[c] = decodeByLayout(c, LAYOUTS[kind]);
    tables.set(kind, t);
  }
  return t;
}

export function decodeFloat8(code: number, kind: Float8Kind): number {
  return float8Table(kind)[code & 0xff] as number;
}

/** Largest finite value of a kind (448, 240, 57344, 57344). */
export function float8Max(kind: Float8Kind): number {
  const l = LAYOUTS[kind];
  return magnitudeCodeValue(l.maxMag, l.manBits, l.bias);
}
