import { QuantkitError } from '../../errors.js';
import { encodeBfloat16, decodeBfloat16 } from '../../formats/bfloat16.js';
import { decodeFloat8, encodeFloat8, float8Max } from '../../formats/float8.js';
import { affineParams, nonFiniteError } from '../../quant/affine.js';
import { blockShapeFor, makeLayout } from '../../quant/layout.js';
import { blockRanges } from '../../quant/range.js';
import { sqnrDb } from '../../quant/metrics.js';
import { onnxDataType } from '../../tensor/dtype.js';
import { makeTensor } from '../../tensor/tensor.js';
import { addInitializer, intAttr, node, rewireInputs } from './graph-edit.js';
import { ensureOpset } from './opset.js';
import type { HandlerContext, WeightHandler, WeightSite } from './types.js';

/**
 * Storage schemes: the weight is stored narrow and turned back into fp32 by one node in front
 * of its (unchanged) consumers, so every op type works:
 *   int8   s8 per output channel, symmetric [-127, 127], DequantizeLinear(axis) — the same
 *          weights ONNX Runtime's quantizer writes for per-channel symmetric int8
 *          (reduce_range off): scale = max|w| / 127, zero point 0, round half to even.
 *          Opset 13 (per-axis DequantizeLinear).
 *   fp8    float8 e4m3fn / e5m2 with a per-channel scale = max|w| / max(format), saturating
 *          cast, DequantizeLinear(axis); opset 19.
 *   bf16   bfloat16 (round to nearest even) + Cast to float; opset 13.
 * A weight shared by several nodes is converted once; the one dequantized value feeds them all.
 */

/** The output-channel axis of a site's weight (per-channel scales run along it). */
export function outputChannelAxis(site: WeightSite): number {
  const rank = site.weight.dims.length;
  switch (site.node.opType) {
    case 'MatMul': return rank - 1;
    case 'Gemm': return intAttr(site.node, 'transB', 0) === 1 ? 0 : 1;
    case 'Conv': return 0;
    default: return 0; // Gather: one scale per embedding row
  }
}

export function rejectStorage(site: WeightSite): string | undefined {
  const rank = site.weight.dims.length;
  if (site.node.opType === 'Gather' && intAttr(site.node, 'axis', 0) !== 0) return 'Gather along an axis other than 0';
  if (rank < 2) return `weight of rank ${rank} (per-channel needs ≥ 2)`;
  return undefined;
}

const FLT_MIN = 2 ** -126;
/** 1.5 · 2^52: (v + ROUNDER) − ROUNDER rounds v to an integer, ties to even (see quant/affine.ts). */
const ROUNDER = 6755399441055744;

function loadFloat32(site: WeightSite): Float32Array {
  const t = site.weight.load();
  if (!(t.data instanceof Float32Array)) throw new QuantkitError('QK_WEIGHT_NOT_FLOAT32', `weight '${site.weight.name}' is ${t.dtype}, not float32`, 'weight-only quantization reads fp32 weights');
  return t.data;
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
  let q = (v + ROUNDER) - ROUNDER;
  const t = v - q;
  if (t > 0.49999 || t < -0.49999) {
    v = Math.fround(x / s);
    v = v < -127 ? -127 : v > 127 ? 127 : v;
    q = (v + ROUNDER) - ROUNDER;
  }
  codes[i] = q;
  return Math.fround(q * s);
}

/** round_half_even(clamp(fround(x / s), ±127)): the definition, for elements near a tie. */
function exactCode(x: number, s: number): number {
  let v = Math.fround(x / s);
  v = v < -127 ? -127 : v > 127 ? 127 : v;
  return (v + ROUNDER) - ROUNDER;
}

const SUMS2 = new Float64Array(2);

/** Codes of rows of C channels (n elements); Σx² and Σ(x − dequantized)² into SUMS2. */
function int8Rows(data: Float32Array, scale: Float32Array, rcp: Float64Array, codes: Int8Array, n: number, C: number, name: string): void {
  let sig = 0;
  let noise = 0;
  for (let i = 0, c = 0; i < n; i++) {
    const x = data[i] as number;
    const sc = scale[c] as number;
    if (x - x !== 0) throw nonFiniteError(i, x, name);
    let v = x * (rcp[c] as number);
    v = v < -127 ? -127 : v > 127 ? 127 : v;
    let q = (v + ROUNDER) - ROUNDER;
    const t = v - q;
    if (t > 0.49999 || t < -0.49999) q = exactCode(x, sc);
    codes[i] = q;
    const d = x - Math.fround(q * sc);
    sig += x * x;
    noise += d * d;
    c = c + 1 === C ? 0 : c + 1;
  }
  SUMS2[0] = sig;
  SUMS2[1] = noise;
}

/** Per-channel symmetric int8 weights and the SQNR of what DequantizeLinear gives back. */
export interface Int8Weights {
  readonly codes: Int8Array;
  readonly scale: Float32Array;
  readonly sqnrDb: number;
}

/** Key of an int8 result computed ahead (e.g. by a worker thread) for `weight` along `axis`. */
export const int8Key = (weight: string, axis: number) => `${weight}|int8|${axis}`;

/**
 * max|w| per channel (its own pass: the scales must be known before any code), then one fused
 * pass that rounds and sums the SQNR. Codes equal quantizeAffine's with these parameters
 * (tested): v = fround(x / s) clamped to ±127, rounded half to even, as ONNX Runtime's quantizer
 * computes them — through a multiply by 1/s where that provably gives the same integer.
 */
export function quantizeInt8Channels(data: Float32Array, dims: readonly number[], axis: number, name: string): Int8Weights {
  const shape3 = aroundAxis(dims, axis);
  const [outer, C, inner] = shape3;
  const am = channelAbsMax(data, shape3);
  // Symmetric absmax range per channel: [−max|w|, max|w|] (a NaN/Inf weight fails below, named).
  const params = affineParams(am.map((a) => -a), am, { qmin: -127, qmax: 127, symmetric: true });
  const scale = params.scale;
  const rcp = Float64Array.from(scale, (v) => 1 / v);
  const codes = new Int8Array(data.length);
  // One element: x → code (written) and its squared reconstruction error (returned); inlined by
  // V8 into both loops below.
  let sig = 0;
  let noise = 0;
  if (inner === 1) {
    // [outer, C]: the MatMul / Gemm case, channels along the row — one flat loop.
    int8Rows(data, scale, rcp, codes, outer * C, C, name);
    sig = SUMS2[0] as number;
    noise = SUMS2[1] as number;
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

function int8Apply(weight: string, sites: readonly WeightSite[], ctx: HandlerContext) {
  const first = sites[0] as WeightSite;
  const dims = [...first.weight.dims];
  const axis = outputChannelAxis(first);
  const { codes, scale, sqnrDb: sqnr } = ctx.options.precomputed?.int8.get(int8Key(weight, axis)) ?? quantizeInt8Channels(loadFloat32(first), dims, axis, weight);
  const params = { scale };
  const qName = addInitializer(ctx.graph, ctx.name(`${weight}_quantized`), makeTensor('int8', dims, codes));
  const sName = addInitializer(ctx.graph, ctx.name(`${weight}_scale`), makeTensor('float32', [params.scale.length], params.scale));
  const out = ctx.name(`${weight}_dequantized`);
  ctx.prologue.push(node('DequantizeLinear', [qName, sName], [out], ctx.name(`${weight}_DequantizeLinear`), { axis }));
  rewireInputs(sites.map((s) => s.node), weight, out);
  return { scheme: 'int8', form: `DequantizeLinear(axis=${axis})`, sqnrDb: sqnr, note: '', addedBytes: codes.length + 4 * params.scale.length };
}

function float8Apply(kind: 'float8e4m3fn' | 'float8e5m2') {
  return (weight: string, sites: readonly WeightSite[], ctx: HandlerContext) => {
    const first = sites[0] as WeightSite;
    const dims = [...first.weight.dims];
    const data = loadFloat32(first);
    const axis = outputChannelAxis(first);
    const layout = makeLayout(dims, blockShapeFor(dims, { axis }));
    const r = blockRanges(data, layout, { kind: 'absmax' }, { qmin: -1, qmax: 1, symmetric: true }, 'error', weight);
    const fmax = float8Max(kind);
    const scale = new Float32Array(layout.numBlocks);
    for (let b = 0; b < scale.length; b++) {
      const a = r.hi[b] as number;
      // Zero channel → scale 1 (codes 0); tiny channels: never a subnormal scale.
      scale[b] = a === 0 ? 1 : Math.max(Math.fround(a / fmax), FLT_MIN);
    }
    const codes = new Uint8Array(data.length);
    const back = new Float32Array(data.length);
    const table = new Float32Array(256);
    for (let c = 0; c < 256; c++) table[c] = decodeFloat8(c, kind);
    // Per-axis parameter index of each element, walked with the layout's row structure.
    const { rows, rowLen, colBlock, rowBase } = layout;
    for (let row = 0; row < rows; row++) {
      for (let j = 0; j < rowLen; j++) {
        const i = row * rowLen + j;
        const s = scale[(rowBase[row] as number) + Math.floor(j / colBlock)] as number;
        const c = encodeFloat8(Math.fround((data[i] as number) / s), kind, true);
        codes[i] = c;
        back[i] = Math.fround((table[c] as number) * s);
      }
    }
    const qName = addInitializer(ctx.graph, ctx.name(`${weight}_${kind}`), makeTensor(kind, dims, codes));
    const sName = addInitializer(ctx.graph, ctx.name(`${weight}_scale`), makeTensor('float32', [scale.length], scale));
    const out = ctx.name(`${weight}_dequantized`);
    ctx.prologue.push(node('DequantizeLinear', [qName, sName], [out], ctx.name(`${weight}_DequantizeLinear`), { axis }));
    rewireInputs(sites.map((s) => s.node), weight, out);
    return { scheme: kind === 'float8e4m3fn' ? 'fp8' : 'fp8-e5m2', form: `DequantizeLinear(${kind}, axis=${axis})`, sqnrDb: sqnrDb(data, back), note: '', addedBytes: codes.length + 4 * scale.length };
  };
}

function bf16Apply(weight: string, sites: readonly WeightSite[], ctx: HandlerContext) {
  const first = sites[0] as WeightSite;
  const dims = [...first.weight.dims];
  const data = loadFloat32(first);
  const bits = new Uint16Array(data.length);
  const back = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const b = encodeBfloat16(data[i] as number);
    bits[i] = b;
    back[i] = decodeBfloat16(b);
  }
  const qName = addInitializer(ctx.graph, ctx.name(`${weight}_bf16`), makeTensor('bfloat16', dims, bits));
  const out = ctx.name(`${weight}_float`);
  ctx.prologue.push(node('Cast', [qName], [out], ctx.name(`${weight}_Cast`), { to: onnxDataType('float32') }));
  rewireInputs(sites.map((s) => s.node), weight, out);
  return { scheme: 'bf16', form: 'Cast(bfloat16→float)', sqnrDb: sqnrDb(data, back), note: '', addedBytes: 2 * bits.length };
}

function prepareOpset(target: number, what: string) {
  return (ctx: HandlerContext): string | undefined => {
    const r = ensureOpset(ctx.model, target);
    if (!r.ok) return `${what} needs opset ${target}, and raising opset ${ctx.model.opsets.get('') ?? 1} would change ${r.blockers.join(', ')}`;
    if (r.raisedFrom !== undefined) ctx.notes.push(`default opset raised from ${r.raisedFrom} to ${target} for ${what} (no node in the graph changes meaning)`);
    return undefined;
  };
}

export const int8Handler: WeightHandler = { reject: rejectStorage, prepare: prepareOpset(13, 'per-axis DequantizeLinear'), apply: int8Apply };
export const bf16Handler: WeightHandler = { reject: rejectStorage, prepare: prepareOpset(13, 'Cast from bfloat16'), apply: bf16Apply };
export function float8Handler(kind: 'float8e4m3fn' | 'float8e5m2'): WeightHandler {
  return { reject: rejectStorage, prepare: prepareOpset(19, 'float8 DequantizeLinear'), apply: float8Apply(kind) };
}
