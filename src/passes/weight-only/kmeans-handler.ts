import { siteWeightFloat32 } from './linear-site.js';
import type { AttributeInput } from '../../graph/attributes.js';
import type { Graph } from '../../graph/model.js';
import {
  axisLayout,
  dequantizeKMeansWeights,
  indexSlotBits,
  packIndices,
  quantizeKMeansWeights,
  type KMeansWeights,
} from '../../quant/kmeans-weights.js';
import { sqnrDb } from '../../quant/metrics.js';
import { onnxDataType } from '../../tensor/dtype.js';
import { makeTensor, type Tensor } from '../../tensor/tensor.js';
import { outputChannelAxis, rejectStorage } from './dq-storage.js';
import { addInitializer, node, rewireInputs } from './graph-edit.js';
import { ensureOpset } from './opset.js';
import type { HandlerContext, KMeansLayout, WeightHandler, WeightSite } from './types.js';

/*
 * k-means weight sharing (quant/kmeans-weights.ts) as a graph stock ONNX Runtime runs: ONNX has
 * no codebook dequantizer (DequantizeLinear is affine, Gather takes only int32/int64 indices, and
 * no com.microsoft op takes a general table), so the weight is rebuilt in front of its unchanged
 * consumers from
 *   indices  uint8, one per byte (5–8 bits), or packed 8/slot to a byte (slot = 1, 2 or 4 bits;
 *            3-bit indices take 4-bit slots), first index in the high bits, as [bytes, 1]
 *   unpack   BitShift LEFT by [0, slot, 2·slot, …] (broadcast to [bytes, 8/slot]; uint8 drops the
 *            bits shifted out), BitShift RIGHT by 8 − slot; flattened and the padding sliced
 *            off when the last byte has any
 *   Cast     to int64
 *   Gather   over the fp32 codebook [k] (one per tensor), or GatherElements over [C, k] / [k, C]
 *            (one per output channel: axis 0 for Conv and Gemm transB, the last axis for MatMul)
 *   Reshape  to the weight's shape
 * All of it reads initializers only, so ORT folds it to one fp32 tensor when the session loads:
 * the file is small, the running model as fast as fp32 (and as large in memory).
 */

function int64(values: readonly number[]): BigInt64Array {
  return BigInt64Array.from(values.map((v) => BigInt(v)));
}

/** The subgraph above for `w` (in `ctx.prologue`); returns its output and the bytes it stores. */
export function emitKMeansWeight(
  weight: string,
  w: KMeansWeights,
  ctx: Pick<HandlerContext, 'graph' | 'name' | 'prologue'>,
): { out: string; bytes: number; indexBytes: number; codebookBytes: number; slot: number; layout: KMeansLayout } {
  const g: Graph = ctx.graph;
  const n = w.codes.length;
  const dims = [...w.dims];
  const { outer, C, inner } = axisLayout(dims, w.axis);
  const perChannel = w.axis !== undefined && C > 1;
  if (perChannel && outer > 1 && inner > 1)
    throw new Error(`k-means per channel along inner axis ${w.axis} of '${weight}' is not written`);
  // The index tensor's shape: the weight's, or its 2-D view with the channel axis first or last.
  const idxShape = !perChannel ? dims : outer === 1 ? [C, inner] : [outer, C];
  let bytes = 0;
  const push = (
    opType: string,
    inputs: string[],
    attrs: Record<string, AttributeInput> = {},
    label = opType,
  ): string => {
    const out = ctx.name(`${weight}_kmeans_${label}`);
    // Unnamed (ONNX names are optional; messages name a node by its output): the names cost a
    // small compressed container (compress --huffman) about 100 deflated bytes on the digits CNN.
    ctx.prologue.push(node(opType, inputs, [out], '', attrs));
    return out;
  };
  const init = (label: string, t: ReturnType<typeof makeTensor>, bytesOf: number): string => {
    bytes += bytesOf;
    return addInitializer(g, ctx.name(`${weight}_kmeans_${label}`), t);
  };
  const shapeConst = (label: string, s: readonly number[]) =>
    init(label, makeTensor('int64', [s.length], int64(s)), 8 * s.length);
  // The unpacking constants depend on the slot width only: one copy serves every weight.
  const shared = (label: string, t: ReturnType<typeof makeTensor>, bytesOf: number): string => {
    const name = `kmeans_${label}`;
    // Only a tensor this pass made (held in memory, no source file) is taken as the same one; a
    // model's own tensor of that name has pushed ours to a suffixed name.
    for (const [have, init] of g.initializers)
      if ((have === name || have.startsWith(`${name}_`)) && init.source === undefined && sameTensor(init.load(), t))
        return have;
    bytes += bytesOf;
    return addInitializer(g, ctx.name(name), t);
  };

  const slot = indexSlotBits(w.bits);
  let idx: string;
  let idxInit: string;
  let indexBytes: number;
  if (slot === 8) {
    indexBytes = n;
    idx = init('indices', makeTensor('uint8', idxShape, Uint8Array.from(w.codes)), n);
    idxInit = idx;
  } else {
    const per = 8 / slot;
    const packed = packIndices(w.codes, slot);
    indexBytes = packed.length;
    const p = init('indices', makeTensor('uint8', [packed.length, 1], packed), packed.length);
    idxInit = p;
    const left = shared(
      `shl${slot}`,
      makeTensor(
        'uint8',
        [1, per],
        Uint8Array.from({ length: per }, (_, j) => j * slot),
      ),
      per,
    );
    const right = shared(`shr${slot}`, makeTensor('uint8', [], Uint8Array.of(8 - slot)), 1);
    const hi = push('BitShift', [p, left], { direction: 'LEFT' }, 'shl');
    const lo = push('BitShift', [hi, right], { direction: 'RIGHT' }, 'shr');
    // [bytes, 8/slot] reshapes straight to the index shape unless padding has to be sliced off.
    let flat = lo;
    if (packed.length * per !== n) {
      flat = push('Reshape', [lo, shared('flat', makeTensor('int64', [1], int64([-1])), 8)], {}, 'flat');
      flat = push('Slice', [flat, shapeConst('start', [0]), shapeConst('end', [n])], {}, 'slice');
    }
    idx = push('Reshape', [flat, shapeConst('index_shape', idxShape)], {}, 'index');
  }
  const long = push('Cast', [idx], { to: onnxDataType('int64') }, 'cast');
  let codebookBytes: number;
  let out: string;
  let cbInit: string;
  if (!perChannel) {
    codebookBytes = 4 * w.k;
    const cb = init('codebook', makeTensor('float32', [w.k], w.codebooks.slice(0, w.k)), codebookBytes);
    cbInit = cb;
    out = push('Gather', [cb, long], { axis: 0 }, 'gather');
  } else {
    codebookBytes = 4 * C * w.k;
    // Channel first: [C, k] as stored, indices [C, inner] along axis 1; channel last: [k, C], axis 0.
    const table = outer === 1 ? w.codebooks : transpose(w.codebooks, C, w.k);
    const cb = init('codebook', makeTensor('float32', outer === 1 ? [C, w.k] : [w.k, C], table), codebookBytes);
    cbInit = cb;
    out = push('GatherElements', [cb, long], { axis: outer === 1 ? 1 : 0 }, 'gather');
    if (idxShape.length !== dims.length || idxShape.some((d, i) => d !== dims[i]))
      out = push('Reshape', [out, shapeConst('shape', dims)], {}, 'weight');
  }
  const layout: KMeansLayout = {
    indices: idxInit,
    codebook: cbInit,
    count: n,
    bits: w.bits,
    slot,
    zeroCode: w.zeroCode,
  };
  return { out, bytes, indexBytes, codebookBytes, slot, layout };
}

function sameTensor(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) return false;
  const bytes = (t: Tensor) => {
    const d = t.data as Uint8Array;
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  };
  const x = bytes(a);
  const y = bytes(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c] as number;
  return t;
}

/** Default index width of the kmeans scheme. */
export const KMEANS_DEFAULT_BITS = 4;

function apply(weight: string, sites: readonly WeightSite[], ctx: HandlerContext) {
  const first = sites[0] as WeightSite;
  const dims = [...first.weight.dims];
  const data = siteWeightFloat32(first);
  const bits = ctx.options.bits ?? KMEANS_DEFAULT_BITS;
  const axis = ctx.options.perChannel ? outputChannelAxis(first) : undefined;
  const zeroCode = ctx.options.keepZeros ?? false;
  const given = ctx.options.kmeansWeights?.get(weight);
  if (given && (given.dims.length !== dims.length || given.dims.some((d, i) => d !== dims[i])))
    throw new Error(`k-means result for '${weight}' is [${given.dims.join(', ')}], the weight [${dims.join(', ')}]`);
  const w =
    given ?? quantizeKMeansWeights(data, dims, { bits, axis, seed: ctx.options.seed ?? 1, zeroCode, name: weight });
  const r = emitKMeansWeight(weight, w, ctx);
  rewireInputs(
    sites.map((s) => s.node),
    weight,
    r.out,
  );
  const slotNote = r.slot === 8 ? 'uint8 indices' : `indices packed ${8 / r.slot} to a byte (${r.slot}-bit slots)`;
  return {
    scheme: `kmeans${w.bits}`,
    form: `${w.axis === undefined ? 'Gather' : `GatherElements(axis=${w.axis})`}(k-means ${w.bits}-bit, ${w.axis === undefined ? 'per tensor' : 'per channel'})`,
    sqnrDb: sqnrDb(data, dequantizeKMeansWeights(w)),
    note: `${slotNote}: ${r.indexBytes} index + ${r.codebookBytes} codebook + ${r.bytes - r.indexBytes - r.codebookBytes} shape bytes`,
    addedBytes: r.bytes,
    kmeans: r.layout,
  };
}

export const kmeansHandler: WeightHandler = {
  reject: rejectStorage,
  prepare: (ctx) => {
    // BitShift and GatherElements are opset 11.
    const r = ensureOpset(ctx.model, 11);
    if (!r.ok)
      return `k-means unpacking needs opset 11, and raising opset ${ctx.model.opsets.get('') ?? 1} would change ${r.blockers.join(', ')}`;
    if (r.raisedFrom !== undefined) ctx.notes.push(`default opset raised from ${r.raisedFrom} to 11 for BitShift`);
    return undefined;
  },
  apply,
};
