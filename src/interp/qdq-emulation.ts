import type { Graph, GraphNode } from '../graph/model.js';
import type { Tensor } from '../tensor/tensor.js';
import { makeTensor } from '../tensor/tensor.js';
import { planConv } from './conv-plan.js';
import type { Emulation } from './emulate.js';
import { kernelCodes, matmulSaturationError, pairSaturationError, saturates } from './emulate.js';
import { planMatMul } from './matmul-shape.js';
import type { OpContext } from './op.js';
import { convSaturationErrorOf } from './ops/conv-integer.js';
import { toFloat64 } from './values.js';

/**
 * QDQ graphs under emulation. ONNX Runtime does not run DequantizeLinear → Conv/MatMul/Gemm in
 * float: its QDQ fusion turns them into QLinearConv, QLinearMatMul / MatMulIntegerToFloat and
 * QGemm, integer kernels on the quantized codes, which saturate on CPUs without VNNI. The
 * interpreter runs the float op as written and then adds what the emulated kernel changes:
 *   y += s_x · s_w[channel] · alpha · Δ,   Δ = saturated − exact integer dot product (emulate.ts).
 * A site is a Conv, MatMul or Gemm (transA = 0) whose input 0 is DequantizeLinear of u8/s8 with
 * one scale and whose input 1 is DequantizeLinear of s8 (per-tensor or per output channel).
 * This is conservative: ORT leaves a Conv with no QuantizeLinear after it in float, which the
 * emulation still saturates.
 */
export interface FusedSite {
  readonly x: GraphNode;
  readonly w: GraphNode;
}

const FUSED_OPS = new Set(['Conv', 'MatMul', 'Gemm']);

export function fusedSites(graph: Graph): Map<GraphNode, FusedSite> {
  const producer = new Map<string, GraphNode>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o !== '') producer.set(o, n);
  const isDq = (n: GraphNode | undefined): n is GraphNode =>
    n !== undefined && n.opType === 'DequantizeLinear' && (n.domain === '' || n.domain === 'ai.onnx');
  const sites = new Map<GraphNode, FusedSite>();
  for (const n of graph.nodes) {
    if (!FUSED_OPS.has(n.opType) || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
    const x = producer.get(n.inputs[0] ?? '');
    const w = producer.get(n.inputs[1] ?? '');
    if (isDq(x) && isDq(w)) sites.set(n, { x, w });
  }
  return sites;
}

/** `y` (the float op's output) plus the emulated kernel's saturation, or `y` when none applies. */
export function withFusedSaturation(
  node: GraphNode,
  site: FusedSite,
  y: Tensor,
  values: ReadonlyMap<string, Tensor>,
  emulate: Emulation,
  ctx: OpContext,
): Tensor {
  const get = (name: string | undefined) => (name ? values.get(name) : undefined);
  const xq = get(site.x.inputs[0]);
  const xs = get(site.x.inputs[1]);
  const wq = get(site.w.inputs[0]);
  const ws = get(site.w.inputs[1]);
  if (
    y.dtype !== 'float32' ||
    !xq ||
    !xs ||
    !wq ||
    !ws ||
    xs.data.length !== 1 ||
    !saturates(emulate, xq.dtype, wq.dtype)
  )
    return y;
  const sx = toFloat64(xs)[0] as number;
  const sw = toFloat64(ws);
  let delta: Float64Array;
  let channelOf: (i: number) => number;
  let alpha = 1;
  if (node.opType === 'Conv') {
    const plan = planConv(xq.dims, wq.dims, ctx);
    delta = convSaturationErrorOf(xq, get(site.x.inputs[2]), wq, plan, 'hwc');
    const outSize = plan.outSpatial.reduce((p, d) => p * d, 1);
    channelOf = (i) => Math.floor(i / outSize) % plan.outChannels;
  } else if (node.opType === 'MatMul') {
    const plan = planMatMul(xq.dims, wq.dims, ctx);
    delta = matmulSaturationError(kernelCodes(xq), toFloat64(wq), plan);
    channelOf = (i) => i % plan.N;
  } else {
    if (ctx.attrs.int('transA', 0) !== 0 || xq.dims.length !== 2 || wq.dims.length !== 2) return y;
    alpha = ctx.attrs.float('alpha', 1);
    const transB = ctx.attrs.int('transB', 0) !== 0;
    const [M, K] = xq.dims as [number, number];
    const N = (transB ? wq.dims[0] : wq.dims[1]) as number;
    const a = kernelCodes(xq);
    const b = toFloat64(wq);
    delta = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++)
        delta[m * N + n] = transB
          ? pairSaturationError(a, m * K, 1, b, n * K, 1, K)
          : pairSaturationError(a, m * K, 1, b, n, N, K);
    }
    channelOf = (i) => i % N;
  }
  const base = toFloat64(y);
  const out = new Float32Array(base.length);
  for (let i = 0; i < out.length; i++) {
    const d = delta[i] as number;
    out[i] =
      d === 0
        ? (base[i] as number)
        : (base[i] as number) + alpha * sx * (sw[sw.length === 1 ? 0 : channelOf(i)] as number) * d;
  }
  return makeTensor('float32', y.dims, out);
}
