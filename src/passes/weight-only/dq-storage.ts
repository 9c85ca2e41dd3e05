import { siteWeightFloat32 } from './linear-site.js';
import { encodeBfloat16, decodeBfloat16 } from '../../formats/bfloat16.js';
import { decodeFloat8, encodeFloat8, float8Max } from '../../formats/float8.js';
import { blockShapeFor, makeLayout } from '../../quant/layout.js';
import { blockRanges } from '../../quant/range.js';
import { sqnrDb } from '../../quant/metrics.js';
import { onnxDataType } from '../../tensor/dtype.js';
import { makeTensor } from '../../tensor/tensor.js';
import { addInitializer, intAttr, node, rewireInputs } from './graph-edit.js';
import { ensureOpset } from './opset.js';
import { quantizeInt8Channels, type Int8Weights } from '../../quant/int8-quant.js';
import { int8Key } from './result-key.js';
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
    case 'MatMul':
      return rank - 1;
    case 'Gemm':
      return intAttr(site.node, 'transB', 0) === 1 ? 0 : 1;
    case 'Conv':
      return 0;
    default:
      return 0; // Gather: one scale per embedding row
  }
}

export function rejectStorage(site: WeightSite): string | undefined {
  const rank = site.weight.dims.length;
  if (site.node.opType === 'Gather' && intAttr(site.node, 'axis', 0) !== 0) return 'Gather along an axis other than 0';
  if (rank < 2) return `weight of rank ${rank} (per-channel needs ≥ 2)`;
  return undefined;
}

const FLT_MIN = 2 ** -126;

/** A float tensor stored narrow: the value that now stands for it (made by a prologue node) and the report's figures. */
export interface StoredTensor {
  readonly out: string;
  readonly scheme: string;
  readonly form: string;
  readonly sqnrDb: number;
  readonly addedBytes: number;
}

/**
 * Stores the fp32 tensor `weight` narrow with one scale per slice of `axis` (undefined: one
 * scale for the whole tensor) and puts the node that widens it back in the prologue. Readers are
 * the caller's to rewire.
 */
export type TensorStore = (
  weight: string,
  data: Float32Array,
  dims: readonly number[],
  axis: number | undefined,
  ctx: HandlerContext,
) => StoredTensor;

/** DequantizeLinear of (codes, scale) in the prologue; a per-tensor scale is a scalar, with no axis. */
function dequantizeNode(
  weight: string,
  q: string,
  scale: Float32Array,
  axis: number | undefined,
  ctx: HandlerContext,
): { out: string; scaleBytes: number } {
  const sName = addInitializer(
    ctx.graph,
    ctx.name(`${weight}_scale`),
    makeTensor('float32', axis === undefined ? [] : [scale.length], scale),
  );
  const out = ctx.name(`${weight}_dequantized`);
  ctx.prologue.push(
    node(
      'DequantizeLinear',
      [q, sName],
      [out],
      ctx.name(`${weight}_DequantizeLinear`),
      axis === undefined ? {} : { axis },
    ),
  );
  return { out, scaleBytes: 4 * scale.length };
}

function storeInt8With(
  weight: string,
  w: Int8Weights,
  dims: readonly number[],
  axis: number | undefined,
  ctx: HandlerContext,
): StoredTensor {
  const qName = addInitializer(ctx.graph, ctx.name(`${weight}_quantized`), makeTensor('int8', [...dims], w.codes));
  const d = dequantizeNode(weight, qName, w.scale, axis, ctx);
  return {
    out: d.out,
    scheme: 'int8',
    form: axis === undefined ? 'DequantizeLinear(per-tensor)' : `DequantizeLinear(axis=${axis})`,
    sqnrDb: w.sqnrDb,
    addedBytes: w.codes.length + d.scaleBytes,
  };
}

export const int8Store: TensorStore = (weight, data, dims, axis, ctx) =>
  // Per-tensor: the whole tensor as one channel.
  storeInt8With(
    weight,
    axis === undefined
      ? quantizeInt8Channels(data, [1, data.length], 0, weight)
      : quantizeInt8Channels(data, dims, axis, weight),
    dims,
    axis,
    ctx,
  );

function int8Apply(weight: string, sites: readonly WeightSite[], ctx: HandlerContext) {
  const first = sites[0] as WeightSite;
  const dims = [...first.weight.dims];
  const axis = outputChannelAxis(first);
  const w =
    ctx.options.precomputed?.int8.get(int8Key(weight, axis)) ??
    quantizeInt8Channels(siteWeightFloat32(first), dims, axis, weight);
  const r = storeInt8With(weight, w, dims, axis, ctx);
  rewireInputs(
    sites.map((s) => s.node),
    weight,
    r.out,
  );
  return { scheme: r.scheme, form: r.form, sqnrDb: r.sqnrDb, note: '', addedBytes: r.addedBytes };
}

export function float8Store(kind: 'float8e4m3fn' | 'float8e5m2'): TensorStore {
  return (weight, data, dims, axis, ctx) => {
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
    const qName = addInitializer(ctx.graph, ctx.name(`${weight}_${kind}`), makeTensor(kind, [...dims], codes));
    const d = dequantizeNode(weight, qName, scale, axis, ctx);
    return {
      out: d.out,
      scheme: kind === 'float8e4m3fn' ? 'fp8' : 'fp8-e5m2',
      form: `DequantizeLinear(${kind}, ${axis === undefined ? 'per-tensor' : `axis=${axis}`})`,
      sqnrDb: sqnrDb(data, back),
      addedBytes: codes.length + d.scaleBytes,
    };
  };
}

export const bf16Store: TensorStore = (weight, data, dims, _axis, ctx) => {
  const bits = new Uint16Array(data.length);
  const back = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const b = encodeBfloat16(data[i] as number);
    bits[i] = b;
    back[i] = decodeBfloat16(b);
  }
  const qName = addInitializer(ctx.graph, ctx.name(`${weight}_bf16`), makeTensor('bfloat16', [...dims], bits));
  const out = ctx.name(`${weight}_float`);
  ctx.prologue.push(node('Cast', [qName], [out], ctx.name(`${weight}_Cast`), { to: onnxDataType('float32') }));
  return { out, scheme: 'bf16', form: 'Cast(bfloat16→float)', sqnrDb: sqnrDb(data, back), addedBytes: 2 * bits.length };
};

/** A site handler from a store: per output channel, the one narrow value feeding every site. */
function applyStore(store: TensorStore) {
  return (weight: string, sites: readonly WeightSite[], ctx: HandlerContext) => {
    const first = sites[0] as WeightSite;
    const r = store(weight, siteWeightFloat32(first), [...first.weight.dims], outputChannelAxis(first), ctx);
    rewireInputs(
      sites.map((s) => s.node),
      weight,
      r.out,
    );
    return { scheme: r.scheme, form: r.form, sqnrDb: r.sqnrDb, note: '', addedBytes: r.addedBytes };
  };
}

function prepareOpset(target: number, what: string) {
  return (ctx: HandlerContext): string | undefined => {
    const r = ensureOpset(ctx.model, target);
    if (!r.ok)
      return `${what} needs opset ${target}, and raising opset ${ctx.model.opsets.get('') ?? 1} would change ${r.blockers.join(', ')}`;
    if (r.raisedFrom !== undefined)
      ctx.notes.push(
        `default opset raised from ${r.raisedFrom} to ${target} for ${what} (no node in the graph changes meaning)`,
      );
    return undefined;
  };
}

/** ONNX Runtime widens int8 weights at every run (no DequantizeLinear → MatMul fusion for int8). */
function int8Prepare(ctx: HandlerContext): string | undefined {
  const r = prepareOpset(13, 'per-axis DequantizeLinear')(ctx);
  if (r === undefined)
    ctx.notes.push(
      'int8 weight-only is smaller, not faster: ONNX Runtime dequantizes the weights at every run (1.2–2.1× fp32 latency measured); q8-block or q4 (MatMulNBits) run fused',
    );
  return r;
}

export const int8Handler: WeightHandler = {
  reject: rejectStorage,
  prepare: int8Prepare,
  apply: int8Apply,
  store: int8Store,
};
export const bf16Handler: WeightHandler = {
  reject: rejectStorage,
  prepare: prepareOpset(13, 'Cast from bfloat16'),
  apply: applyStore(bf16Store),
  store: bf16Store,
};
export function float8Handler(kind: 'float8e4m3fn' | 'float8e5m2'): WeightHandler {
  const store = float8Store(kind);
  return {
    reject: rejectStorage,
    prepare: prepareOpset(19, 'float8 DequantizeLinear'),
    apply: applyStore(store),
    store,
  };
}
