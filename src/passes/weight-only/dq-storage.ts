import { QuantkitError } from '../../errors.js';
import { encodeBfloat16, decodeBfloat16 } from '../../formats/bfloat16.js';
import { decodeFloat8, encodeFloat8, float8Max } from '../../formats/float8.js';
import { blockShapeFor, makeLayout } from '../../quant/layout.js';
import { blockRanges } from '../../quant/range.js';
import { sqnrDb } from '../../quant/metrics.js';
import { onnxDataType } from '../../tensor/dtype.js';
import { makeTensor } from '../../tensor/tensor.js';
import { addInitializer, intAttr, node, rewireInputs } from './graph-edit.js';
import { ensureOpset } from './opset.js';
import { int8Key, quantizeInt8Channels } from './int8-quant.js';
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

function loadFloat32(site: WeightSite): Float32Array {
  const t = site.weight.load();
  if (!(t.data instanceof Float32Array)) throw new QuantkitError('QK_WEIGHT_NOT_FLOAT32', `weight '${site.weight.name}' is ${t.dtype}, not float32`, 'weight-only quantization reads fp32 weights');
  return t.data;
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
