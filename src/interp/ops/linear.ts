import { makeTensor } from '../../tensor/tensor.js';
import { broadcastDims, broadcastIndex } from '../broadcast.js';
import { convolve, planConv } from '../conv-plan.js';
import { matmulF64 } from '../matmul-kernel.js';
import { planMatMul } from '../matmul-shape.js';
import type { OpImpl } from '../op.js';
import { badShape, requireInput } from '../op.js';
import { encodeFloat, floatInput } from '../values.js';

/**
 * MatMul (numpy.matmul shapes) on float types. Sums are accumulated in float64 and rounded once
 * to the output type, so results can differ from ONNX Runtime (which accumulates in fp32) in
 * the last bits; integer-valued data is exact.
 */
export const MatMul: OpImpl = (inputs, ctx) => {
  const a = requireInput(inputs, 0, 'A', ctx);
  const b = requireInput(inputs, 1, 'B', ctx);
  const plan = planMatMul(a.dims, b.dims, ctx);
  const y = matmulF64(floatInput(a, 'A', ctx), floatInput(b, 'B', ctx), plan);
  return [makeTensor(a.dtype, plan.outDims, encodeFloat(a.dtype, y))];
};

/** Gemm: Y = alpha · A' × B' + beta · C, A' = transA ? Aᵀ : A (2-D), C broadcast to [M, N]. */
export const Gemm: OpImpl = (inputs, ctx) => {
  const a = requireInput(inputs, 0, 'A', ctx);
  const b = requireInput(inputs, 1, 'B', ctx);
  const c = inputs[2];
  if (a.dims.length !== 2 || b.dims.length !== 2) throw badShape(ctx, 'Gemm takes 2-D A and B');
  const alpha = ctx.attrs.float('alpha', 1);
  const beta = ctx.attrs.float('beta', 1);
  const transA = ctx.attrs.int('transA', 0) !== 0;
  const transB = ctx.attrs.int('transB', 0) !== 0;
  const [a0, a1] = a.dims as [number, number];
  const [b0, b1] = b.dims as [number, number];
  const M = transA ? a1 : a0;
  const K = transA ? a0 : a1;
  const N = transB ? b0 : b1;
  if ((transB ? b1 : b0) !== K)
    throw badShape(
      ctx,
      `inner dimensions differ: A [${a.dims.join(', ')}]${transA ? 'ᵀ' : ''} × B [${b.dims.join(', ')}]${transB ? 'ᵀ' : ''}`,
    );
  const va = floatInput(a, 'A', ctx);
  const vb = floatInput(b, 'B', ctx);
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        acc += (va[transA ? k * a1 + m : m * a1 + k] as number) * (vb[transB ? n * b1 + k : k * b1 + n] as number);
      }
      y[m * N + n] = alpha * acc;
    }
  }
  if (c && beta !== 0) {
    const dims = broadcastDims([c.dims, [M, N]], ctx);
    if (dims.length !== 2 || dims[0] !== M || dims[1] !== N)
      throw badShape(ctx, `C [${c.dims.join(', ')}] does not broadcast to [${M}, ${N}]`);
    const vc = floatInput(c, 'C', ctx);
    const ic = broadcastIndex(c.dims, [M, N]);
    for (let i = 0; i < y.length; i++) y[i] = (y[i] as number) + beta * (vc[ic[i] as number] as number);
  }
  return [makeTensor(a.dtype, [M, N], encodeFloat(a.dtype, y))];
};

/** Conv (1-D, 2-D, N-D): pads/auto_pad/strides/dilations/group, optional bias B of length M. */
export const Conv: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'X', ctx);
  const w = requireInput(inputs, 1, 'W', ctx);
  const bias = inputs[2];
  const plan = planConv(x.dims, w.dims, ctx);
  const y = convolve(floatInput(x, 'X', ctx), floatInput(w, 'W', ctx), plan);
  if (bias) {
    const vb = floatInput(bias, 'B', ctx);
    if (vb.length !== plan.outChannels)
      throw badShape(ctx, `bias must have ${plan.outChannels} elements, got ${vb.length}`);
    const perChannel = y.length / (plan.batch * plan.outChannels);
    for (let i = 0; i < y.length; i++)
      y[i] = (y[i] as number) + (vb[Math.floor(i / perChannel) % plan.outChannels] as number);
  }
  return [makeTensor(x.dtype, plan.outDims, encodeFloat(x.dtype, y))];
};
