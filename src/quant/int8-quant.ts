import { ROUNDER } from '../formats/rounding.js';
import { affineParams, nonFiniteError, quantizeAffine } from './affine.js';
import { blockShapeFor, makeLayout } from './layout.js';
import { channelLayout, DEFAULT_WEIGHT_FORM, pairViolations, raiseToPairSafe, type WeightForm } from './pair-safe.js';
import { blockRanges } from './range.js';

/*
 * Per-channel symmetric int8 weights, narrow range [−127, 127] (as ONNX Runtime's quantizer writes
 * them: no −128, so u8×s8 products never need the extra code), scale = max|w| / 127:
 * quantizeWeightPerChannel in its plain form (the activation schemes' weights), quantizeInt8Channels
 * fused and faster (the int8 weight-only scheme, passes/weight-only/dq-storage.ts, and its worker
 * threads), tested equal to quantizeAffine with these parameters.
 */

/**
 * s8 symmetric per-channel weights along `axis` from quant/'s general pieces (absmax ranges,
 * affineParams, quantizeAffine), narrow range, in one of the WEIGHT_FORMS (passes/activation/
 * weight-form.ts says which runs exactly on which CPU):
 *   'full'       scale = max|w| / 127, codes [-127, 127]
 *   'pair-safe'  scale raised where needed so the two largest positive codes of a channel sum to
 *                ≤ 128, and the two largest negative magnitudes too (pair-safe.ts): no pair of
 *                u8 × s8 products can saturate int16
 *   'seven-bit'  scale = max|w| / 64, codes [-64, 64] (ONNX Runtime's reduce_range)
 * `reducedChannels`: channels whose scale is coarser than the full-range one.
 */
export function quantizeWeightPerChannel(
  data: Float32Array,
  dims: readonly number[],
  axis: number,
  name: string,
  form: WeightForm = DEFAULT_WEIGHT_FORM,
): { codes: Int8Array; scales: Float32Array; reducedChannels: number } {
  const layout = makeLayout(dims, blockShapeFor(dims, { axis }));
  const q =
    form === 'seven-bit' ? { qmin: -64, qmax: 64, symmetric: true } : { qmin: -127, qmax: 127, symmetric: true };
  const r = blockRanges(data, layout, { kind: 'absmax' }, q, 'error', name);
  const params = affineParams(r.lo, r.hi, q);
  const quantize = () => quantizeAffine(data, layout, params, new Int8Array(data.length), { name }) as Int8Array;
  if (form !== 'pair-safe')
    return { codes: quantize(), scales: params.scale, reducedChannels: form === 'seven-bit' ? params.scale.length : 0 };
  const channels = channelLayout(dims, axis);
  const fullScales = Float32Array.from(params.scale);
  raiseToPairSafe(params.scale, data, channels);
  let codes = quantize();
  // Rounding can lift a top-two sum to 129; a slightly coarser scale fixes it (one step suffices
  // in practice; the loop is bounded by the scale growing past what any sum needs).
  for (let bad = pairViolations(codes, channels); bad.length > 0; bad = pairViolations(codes, channels)) {
    for (const c of bad) params.scale[c] = Math.fround((params.scale[c] as number) * (1 + 2 ** -10));
    codes = quantize();
  }
  let reducedChannels = 0;
  for (let c = 0; c < fullScales.length; c++)
    if ((params.scale[c] as number) > (fullScales[c] as number)) reducedChannels++;
  return { codes, scales: params.scale, reducedChannels };
}

/**
 * s8 symmetric weights with one scale for the whole tensor (ONNX Runtime's dynamic quantizer
 * without `per_channel`, as transformers.js's conversion script ran it for decoder LMs), full
 * range or seven-bit (`reduce_range`).
 */
export function quantizeWeightPerTensor(
  data: Float32Array,
  dims: readonly number[],
  name: string,
  form: 'full' | 'seven-bit',
): { codes: Int8Array; scale: number } {
  const layout = makeLayout(dims, blockShapeFor(dims, {}));
  const q =
    form === 'seven-bit' ? { qmin: -64, qmax: 64, symmetric: true } : { qmin: -127, qmax: 127, symmetric: true };
  const r = blockRanges(data, layout, { kind: 'absmax' }, q, 'error', name);
  const params = affineParams(r.lo, r.hi, q);
  const codes = quantizeAffine(data, layout, params, new Int8Array(data.length), { name }) as Int8Array;
  return { codes, scale: params.scale[0] as number };
}

/**
 * u8 asymmetric per-channel weights along `axis` (ONNX Runtime's dynamic quantizer with QUInt8
 * weights): range [min(0, w), max(0, w)] per channel over all 256 codes, a zero point per channel.
 * u8 × u8 integer kernels widen both sides to int16 before multiplying, so no CPU saturates them.
 */
export function quantizeWeightPerChannelU8(
  data: Float32Array,
  dims: readonly number[],
  axis: number,
  name: string,
): { codes: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array } {
  const layout = makeLayout(dims, blockShapeFor(dims, { axis }));
  const q = { qmin: 0, qmax: 255, symmetric: false };
  const r = blockRanges(data, layout, { kind: 'minmax' }, q, 'error', name);
  const params = affineParams(r.lo, r.hi, q);
  const codes = quantizeAffine(data, layout, params, new Uint8Array(data.length), { name }) as Uint8Array;
  const zeroPoints = Uint8Array.from(params.zeroPoint ?? new Int32Array(params.scale.length));
  return { codes, scales: params.scale, zeroPoints };
}

/** Dims around `axis`: [outer, channels, inner] (row-major: element (o, c, i) at (o·C + c)·inner + i). */
function aroundAxis(dims: readonly number[], axis: number): [number, number, number] {
  let outer = 1;
  let inner = 1;
  for (let k = 0; k < axis; k++) outer *= dims[k] as number;
  for (let k = axis + 1; k < dims.length; k++) inner *= dims[k] as number;
  return [outer, dims[axis] as number, inner];
}

/** max|x| per column of rows of C (n elements), into am (a loop of its own: V8 optimises it whole). */
function rowsAbsMax(data: Float32Array, am: Float32Array, n: number, C: number): void {
  for (let i = 0, c = 0; i < n; i++) {
    am[c] = Math.max(am[c] as number, Math.abs(data[i] as number));
    c = c + 1 === C ? 0 : c + 1;
  }
}

/** max|x| per channel of `axis`, one sequential pass whatever the axis. */
function channelAbsMax(data: Float32Array, [outer, C, inner]: [number, number, number]): Float32Array {
  const am = new Float32Array(C);
  if (inner === 1) {
    rowsAbsMax(data, am, outer * C, C);
    return am;
  }
  for (let o = 0, i = 0; o < outer; o++) {
    for (let c = 0; c < C; c++) {
      let a = am[c] as number;
      for (let e = 0; e < inner; e++, i++) a = Math.max(a, Math.abs(data[i] as number));
      am[c] = a;
    }
  }
  return am;
}

/**
 * Stores the int8 code of x (scale s, r = 1/s) at codes[i]; returns what DequantizeLinear makes
 * of it. x · r is within a few 2^-53 (relative) of x / s, and fround(x / s) within 2^-24 · 127 <
 * 1e-5 of it, so both round to the same integer unless x / s lies that close to a half-integer;
 * only then is the exact fround(x / s) computed (~1 element in 10^5).
 */
function int8Code(x: number, s: number, r: number, codes: Int8Array, i: number, name: string): number {
  if (x - x !== 0) throw nonFiniteError(i, x, name); // NaN or ±Inf: x − x is NaN for both
  let v = x * r;
  v = v < -127 ? -127 : v > 127 ? 127 : v;
  let q = v + ROUNDER - ROUNDER;
  const t = v - q;
  if (t > 0.49999 || t < -0.49999) {
    v = Math.fround(x / s);
    v = v < -127 ? -127 : v > 127 ? 127 : v;
    q = v + ROUNDER - ROUNDER;
  }
  codes[i] = q;
  return Math.fround(q * s);
}

/** round_half_even(clamp(fround(x / s), ±127)): the definition, for elements near a tie. */
function exactCode(x: number, s: number): number {
  let v = Math.fround(x / s);
  v = v < -127 ? -127 : v > 127 ? 127 : v;
  return v + ROUNDER - ROUNDER;
}

/** Codes of rows of C channels (n elements); Σx² and Σ(x − dequantized)² into sums[0..1]. */
function int8Rows(
  data: Float32Array,
  scale: Float32Array,
  rcp: Float64Array,
  codes: Int8Array,
  n: number,
  C: number,
  name: string,
  sums: Float64Array,
): void {
  let sig = 0;
  let noise = 0;
  for (let i = 0, c = 0; i < n; i++) {
    const x = data[i] as number;
    const sc = scale[c] as number;
    if (x - x !== 0) throw nonFiniteError(i, x, name);
    let v = x * (rcp[c] as number);
    v = v < -127 ? -127 : v > 127 ? 127 : v;
    let q = v + ROUNDER - ROUNDER;
    const t = v - q;
    if (t > 0.49999 || t < -0.49999) q = exactCode(x, sc);
    codes[i] = q;
    const d = x - Math.fround(q * sc);
    sig += x * x;
    noise += d * d;
    c = c + 1 === C ? 0 : c + 1;
  }
  sums[0] = sig;
  sums[1] = noise;
}

/** Per-channel symmetric int8 weights and the SQNR of what DequantizeLinear gives back. */
export interface Int8Weights {
  readonly codes: Int8Array;
  readonly scale: Float32Array;
  readonly sqnrDb: number;
}

/**
 * max|w| per channel (its own pass: the scales must be known before any code), then one fused
 * pass that rounds and sums the SQNR. Codes equal quantizeAffine's with these parameters
 * (tested): v = fround(x / s) clamped to ±127, rounded half to even, as ONNX Runtime's quantizer
 * computes them — through a multiply by 1/s where that provably gives the same integer.
 */
export function quantizeInt8Channels(
  data: Float32Array,
  dims: readonly number[],
  axis: number,
  name: string,
): Int8Weights {
  const shape3 = aroundAxis(dims, axis);
  const [outer, C, inner] = shape3;
  const am = channelAbsMax(data, shape3);
  // Symmetric absmax range per channel: [−max|w|, max|w|] (a NaN/Inf weight fails below, named).
  const params = affineParams(
    am.map((a) => -a),
    am,
    { qmin: -127, qmax: 127, symmetric: true },
  );
  const scale = params.scale;
  const rcp = Float64Array.from(scale, (v) => 1 / v);
  const codes = new Int8Array(data.length);
  // One element: x → code (written) and its squared reconstruction error (returned); inlined by
  // V8 into both loops below.
  let sig = 0;
  let noise = 0;
  if (inner === 1) {
    // [outer, C]: the MatMul / Gemm case, channels along the row — one flat loop.
    const sums = new Float64Array(2);
    int8Rows(data, scale, rcp, codes, outer * C, C, name, sums);
    sig = sums[0] as number;
    noise = sums[1] as number;
  } else {
    for (let o = 0, i = 0; o < outer; o++) {
      for (let c = 0; c < C; c++) {
        const s = scale[c] as number;
        const r = rcp[c] as number;
        for (let e = 0; e < inner; e++, i++) {
          const x = data[i] as number;
          const d = x - int8Code(x, s, r, codes, i, name);
          sig += x * x;
          noise += d * d;
        }
      }
    }
  }
  return { codes, scale, sqnrDb: noise === 0 ? Infinity : 10 * Math.log10(sig / noise) };
}
