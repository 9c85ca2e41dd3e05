import { QuantkitError } from '../errors.js';
import type { BlockLayout } from './layout.js';
import { forEachRun } from './layout.js';
import { ROUNDER, roundHalfAway, type Rounding } from '../formats/rounding.js';
import type { ScaleDtype } from './scale-dtype.js';
import { storeScale } from './scale-dtype.js';

/** One integer code per element, in the tensor storage class for its width (src/tensor/tensor.ts). */
export type IntCodes = Int8Array | Uint8Array | Int16Array | Uint16Array;

/** What to do with NaN/±Inf inputs: fail naming the element, or clamp (±Inf saturate, NaN → zero). */
export type NonFinite = 'error' | 'clamp';

export interface IntRange {
  readonly qmin: number;
  readonly qmax: number;
}

/**
 * Integer range for `bits` (2–8 or 16). Signed narrow range drops the most negative code, so
 * symmetric quantization is exactly symmetric: int8 → [-127, 127].
 */
export function intRange(bits: number, signed: boolean, narrow = false): IntRange {
  if (!((Number.isInteger(bits) && bits >= 2 && bits <= 8) || bits === 16)) {
    throw new QuantkitError(
      'QK_BAD_BITS',
      `affine quantization to ${bits} bits is not supported`,
      'use 2 to 8 bits, or 16',
    );
  }
  if (!signed) return { qmin: 0, qmax: 2 ** bits - 1 };
  const half = 2 ** (bits - 1);
  return { qmin: narrow ? -(half - 1) : -half, qmax: half - 1 };
}

export function allocCodes(bits: number, signed: boolean, count: number): IntCodes {
  if (bits <= 8) return signed ? new Int8Array(count) : new Uint8Array(count);
  return signed ? new Int16Array(count) : new Uint16Array(count);
}

export interface AffineParams {
  /** One scale per block, row-major over the layout's paramShape (already rounded to scaleDtype). */
  readonly scale: Float32Array;
  /** One zero point per block; undefined means all zero (symmetric signed). */
  readonly zeroPoint: Int32Array | undefined;
  readonly qmin: number;
  readonly qmax: number;
}

export interface ParamOptions extends IntRange {
  readonly symmetric: boolean;
  readonly scaleDtype?: ScaleDtype | undefined;
}

const f = Math.fround;
const FLT_MIN = 2 ** -126;
/**
 * Scale and zero point from a real range, in float32 arithmetic exactly as ONNX Runtime does it
 * (DynamicQuantizeLinear, and the quantization tool's compute_scale_zp):
 *   rmin = min(0, lo), rmax = max(0, hi)   (0 must be exactly representable)
 *   symmetric: rmin = -absmax, rmax = absmax
 *   scale = (rmax - rmin) / (qmax - qmin);  zp = round_half_even(clamp(qmin - rmin / scale))
 * An empty range (all zeros) gets scale 1, as ORT does; any other scale is floored at FLT_MIN so
 * 1/scale is finite. Symmetric zero points are fixed (0 signed, the mid code unsigned) rather
 * than computed, so float error cannot move them.
 */
export function paramsFromRange(lo: number, hi: number, o: ParamOptions): { scale: number; zeroPoint: number } {
  let rmin = lo < 0 ? f(lo) : 0;
  let rmax = hi > 0 ? f(hi) : 0;
  if (o.symmetric) {
    const a = Math.max(-rmin, rmax);
    rmin = -a;
    rmax = a;
  }
  const span = f(rmax - rmin);
  let scale = span === 0 ? 1 : Math.max(f(span / (o.qmax - o.qmin)), FLT_MIN);
  scale = storeScale(scale, o.scaleDtype ?? 'float32');
  let zeroPoint: number;
  if (o.symmetric) {
    zeroPoint = o.qmin < 0 ? 0 : Math.ceil((o.qmin + o.qmax) / 2);
  } else {
    const z0 = f(o.qmin - f(rmin / scale));
    const zc = z0 < o.qmin ? o.qmin : z0 > o.qmax ? o.qmax : z0;
    const r = Math.round(zc);
    zeroPoint = r - zc === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  return { scale, zeroPoint };
}

/** Parameters for every block from per-block ranges (see range.ts for the choosers). */
export function affineParams(lo: Float32Array, hi: Float32Array, o: ParamOptions): AffineParams {
  const n = lo.length;
  const scale = new Float32Array(n);
  const zp = new Int32Array(n);
  let anyZp = false;
  for (let b = 0; b < n; b++) {
    const p = paramsFromRange(lo[b] as number, hi[b] as number, o);
    scale[b] = p.scale;
    zp[b] = p.zeroPoint;
    if (p.zeroPoint !== 0) anyZp = true;
  }
  return { scale, zeroPoint: o.symmetric && !anyZp ? undefined : zp, qmin: o.qmin, qmax: o.qmax };
}

export function nonFiniteError(index: number, value: number, what = 'tensor'): QuantkitError {
  return new QuantkitError(
    'QK_NONFINITE_WEIGHTS',
    `${what} has a non-finite value (${value}) at flat index ${index}`,
    "fix the weights, or pass nonFinite: 'clamp' to saturate ±Inf and map NaN to zero",
  );
}

export interface QuantizeAffineOptions {
  readonly rounding?: Rounding | undefined;
  readonly nonFinite?: NonFinite | undefined;
  /** Name for error messages. */
  readonly name?: string | undefined;
}

/**
 * q = saturate(round(x / scale) + zp), the ONNX QuantizeLinear formula. x / scale is rounded to
 * float32 before rounding to an integer, as ORT's MLAS kernel computes it, so ties and codes
 * match ONNX Runtime bit for bit. The value is clamped to [qmin - zp, qmax - zp] before rounding
 * (as MLAS does), which is the same as saturating after.
 */
export function quantizeAffine(
  data: Float32Array,
  layout: BlockLayout,
  params: AffineParams,
  codes: IntCodes,
  opts: QuantizeAffineOptions = {},
): IntCodes {
  const { scale, zeroPoint, qmin, qmax } = params;
  const halfEven = (opts.rounding ?? 'half-even') === 'half-even';
  const clampNonFinite = opts.nonFinite === 'clamp';
  const what = opts.name ?? 'tensor';
  // The runs of forEachRun, inlined: a callback per run deoptimises this hot loop in V8.
  const { rows, rowLen, colBlock, rowBase } = layout;
  if (colBlock === 1 && rowLen > 1) {
    // Per-column parameters (e.g. per output channel of a [K, N] MatMul weight): one parameter
    // per element along the row, so walk the row once instead of in runs of one.
    for (let row = 0; row < rows; row++) {
      const rowStart = row * rowLen;
      const b0 = rowBase[row] as number;
      for (let j = 0; j < rowLen; j++) {
        const i = rowStart + j;
        const x = data[i] as number;
        const s = scale[b0 + j] as number;
        const z = zeroPoint ? (zeroPoint[b0 + j] as number) : 0;
        const lo = qmin - z;
        const hi = qmax - z;
        let v: number;
        if (x - x !== 0) {
          if (!clampNonFinite) throw nonFiniteError(i, x, what);
          v = x !== x ? 0 : x > 0 ? hi : lo;
        } else {
          v = f(x / s);
          v = v < lo ? lo : v > hi ? hi : v;
        }
        codes[i] = (halfEven ? v + ROUNDER - ROUNDER : roundHalfAway(v)) + z;
      }
    }
    return codes;
  }
  for (let row = 0; row < rows; row++) {
    const rowStart = row * rowLen;
    for (let j = 0, b = rowBase[row] as number; j < rowLen; j += colBlock, b++) {
      const start = rowStart + j;
      const end = rowStart + Math.min(j + colBlock, rowLen);
      const s = scale[b] as number;
      const z = zeroPoint ? (zeroPoint[b] as number) : 0;
      const lo = qmin - z;
      const hi = qmax - z;
      for (let i = start; i < end; i++) {
        const x = data[i] as number;
        let v: number;
        if (x - x !== 0) {
          // NaN or ±Inf (x - x is NaN for both): one branch in the hot loop covers the check.
          if (!clampNonFinite) throw nonFiniteError(i, x, what);
          v = x !== x ? 0 : x > 0 ? hi : lo;
        } else {
          v = f(x / s);
          v = v < lo ? lo : v > hi ? hi : v;
        }
        codes[i] = (halfEven ? v + ROUNDER - ROUNDER : roundHalfAway(v)) + z;
      }
    }
  }
  return codes;
}

/** x = (q - zp) * scale, in float32 (ONNX DequantizeLinear). */
export function dequantizeAffine(
  codes: IntCodes,
  layout: BlockLayout,
  params: AffineParams,
  out = new Float32Array(layout.count),
): Float32Array {
  const { scale, zeroPoint } = params;
  forEachRun(layout, (start, end, b) => {
    const s = scale[b] as number;
    const z = zeroPoint ? (zeroPoint[b] as number) : 0;
    for (let i = start; i < end; i++) out[i] = ((codes[i] as number) - z) * s;
  });
  return out;
}
