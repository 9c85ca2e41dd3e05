import { QuantkitError } from '../../errors.js';
import type { Graph, GraphNode } from '../../graph/model.js';
import { makeTensor } from '../../tensor/tensor.js';
import { addInitializer, floatAttr, intAttr, node } from './graph-edit.js';
import type { ViewId } from './result-key.js';
import type { HandlerContext, WeightSite } from './types.js';

/**
 * MatMul / Gemm sites seen as y = x · W with W of shape [K, N] — the form MatMulNBits and
 * MatMulBnb4 compute. Gemm's alpha is folded into W, beta·C becomes an Add after the new op.
 */

export interface LinearView {
  readonly K: number;
  readonly N: number;
  /** Fills out[0..K) with output column n of alpha · W. */
  readonly column: (n: number, out: Float32Array) => void;
  /** Identifies equal views of one tensor (tied weights quantized once; result-key.ts viewIdOf). */
  readonly id: ViewId;
  /** The stored weight: [K, N], or [N, K] when `transposed` (Gemm transB); W = alpha · data. */
  readonly data: Float32Array;
  readonly transposed: boolean;
  readonly alpha: number;
}

export function rejectLinear(site: WeightSite, graph: Graph): string | undefined {
  const { node: n, weight } = site;
  if (n.opType === 'Gather') return 'embedding table kept in fp32 (pass `quantizeEmbeddings` to quantize it too)';
  if (n.opType !== 'MatMul' && n.opType !== 'Gemm')
    return `ONNX Runtime's block-quantized ops replace MatMul/Gemm only, not ${n.opType}`;
  if (site.slot !== 1) return 'the weight is the left operand';
  if (weight.dims.length !== 2) return `weight of rank ${weight.dims.length} (needs a 2-D matrix)`;
  if (n.opType === 'Gemm') {
    if (intAttr(n, 'transA', 0) !== 0) return 'Gemm with transA=1';
    const c = n.inputs[2];
    if (c && floatAttr(n, 'beta', 1) !== 1 && !graph.initializers.has(c)) return 'Gemm with beta ≠ 1 on a computed C';
  }
  return undefined;
}

export type LinearShape = Pick<LinearView, 'K' | 'N' | 'id' | 'transposed' | 'alpha'>;

/** K, N, layout and id of a site's view, without loading the weight. */
export function linearShape(site: WeightSite): LinearShape {
  const [d0, d1] = site.weight.dims as [number, number];
  const transB = site.node.opType === 'Gemm' && intAttr(site.node, 'transB', 0) === 1;
  const alpha = site.node.opType === 'Gemm' ? floatAttr(site.node, 'alpha', 1) : 1;
  return {
    K: transB ? d1 : d0,
    N: transB ? d0 : d1,
    id: { weight: site.weight.name, transposed: transB, alpha },
    transposed: transB,
    alpha,
  };
}

/** The site's weight as stored, which weight-only quantization needs in fp32. */
export function siteWeightFloat32(site: WeightSite): Float32Array {
  const t = site.weight.load();
  if (!(t.data instanceof Float32Array))
    throw new QuantkitError(
      'QK_WEIGHT_NOT_FLOAT32',
      `weight '${site.weight.name}' is ${t.dtype}, not float32`,
      'weight-only quantization reads fp32 weights',
    );
  return t.data;
}

export function linearView(site: WeightSite): LinearView {
  const { K, N, id, transposed: transB, alpha } = linearShape(site);
  const data = siteWeightFloat32(site);
  const column = transB
    ? (n: number, out: Float32Array) => {
        for (let k = 0; k < K; k++) out[k] = alpha * (data[n * K + k] as number);
      }
    : (n: number, out: Float32Array) => {
        for (let k = 0; k < K; k++) out[k] = alpha * (data[k * N + n] as number);
      };
  return { K, N, column, id, data, transposed: transB, alpha };
}

/** The whole alpha·W as [N, K] row-major (W transposed), for SQNR and row-flattened formats. */
export function transposedWeight(view: LinearView): Float32Array {
  const wt = new Float32Array(view.N * view.K);
  const col = new Float32Array(view.K);
  for (let n = 0; n < view.N; n++) {
    view.column(n, col);
    wt.set(col, n * view.K);
  }
  return wt;
}

/**
 * Turns the site's node into `opType` (domain com.microsoft) reading [A, ...weightInputs]. A
 * Gemm's C is added back afterwards (scaled by beta into a new initializer when beta ≠ 1).
 */
export function replaceLinear(
  site: WeightSite,
  ctx: HandlerContext,
  opType: string,
  weightInputs: string[],
  attributes: Record<string, number>,
): void {
  const n: GraphNode = site.node;
  const a = n.inputs[0] as string;
  const out = n.outputs[0] as string;
  const c = n.opType === 'Gemm' ? n.inputs[2] : undefined;
  const beta = n.opType === 'Gemm' ? floatAttr(n, 'beta', 1) : 1;
  const replacement = node(
    opType,
    [a, ...weightInputs],
    [out],
    n.name || ctx.name(opType),
    attributes,
    'com.microsoft',
  );
  n.opType = replacement.opType;
  n.domain = replacement.domain;
  n.attributes = replacement.attributes;
  n.inputs = replacement.inputs;
  if (!c) return;
  const mid = ctx.name(`${out}_before_bias`);
  n.outputs = [mid];
  let bias = c;
  if (beta !== 1) {
    const ct = ctx.graph.initializers.get(c)?.load();
    if (!ct || !(ct.data instanceof Float32Array))
      throw new QuantkitError(
        'QK_GEMM_BIAS',
        `Gemm '${n.name}' has beta ≠ 1 and a C that is not an fp32 initializer`,
        'exclude this node',
      );
    const scaled = Float32Array.from(ct.data, (v) => beta * v);
    bias = addInitializer(ctx.graph, ctx.name(`${c}_times_beta`), makeTensor('float32', ct.dims, scaled));
  }
  const add = node('Add', [mid, bias], [out], ctx.name(`${n.name || opType}_bias`));
  const idx = ctx.graph.nodes.indexOf(n);
  ctx.graph.nodes.splice(idx + 1, 0, add);
}
