import { QuantkitError } from '../../errors.js';
import { NF4_TABLE, FP4_BNB_TABLE } from '../../quant/codebook.js';
import type { Tensor } from '../../tensor/tensor.js';
import { elementCount, makeTensor } from '../../tensor/tensor.js';
import { matmulBnb4, matmulNBits, matmulNBitsFloatZero, matmulNBitsInt8 } from '../kernels.js';
import type { OpContext, OpImpl } from '../op.js';
import { badShape, expectDType, requireInput } from '../op.js';
import { encodeFloat, toFloat64 } from '../values.js';

/**
 * com.microsoft contrib ops that multiply by a block-quantized weight (ONNX Runtime
 * docs/ContribOperators.md): the ops check the attributes and shapes and hand the weight to the
 * kernels (kernels.ts), which compute what ONNX Runtime's CPU kernels compute at accuracy level
 * 0 — each weight dequantized to fp32, fp32((code − zero point) · scale) or fp32(table[code] ·
 * absmax), then multiplied — and, for MatMulNBits with accuracy_level 4, what ORT's x86-64 CPU
 * kernel computes there: A quantized to int8 per block and integer dot products
 * (kernels/nbits-int8.ref.ts; levels 1–3 are level 0 on that CPU). A bias is added after the
 * product.
 */

function requiredInt(ctx: OpContext, name: string): number {
  const v = ctx.attrs.int(name);
  if (v === undefined || v < 0)
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `${ctx.where}: attribute '${name}' is missing or negative`,
      `set ${name} as the contrib op spec requires`,
    );
  return v;
}

/** A [..., K] as fp32 rows (fp16 A widens exactly); the output keeps A's leading dims and ends in N. */
function rowsOf(a: Tensor, K: number, ctx: OpContext): { x: Float32Array; M: number; outLead: number[] } {
  expectDType(a, ['float32', 'float16'], 'A', ctx);
  if (a.dims.length === 0 || a.dims[a.dims.length - 1] !== K)
    throw badShape(ctx, `A [${a.dims.join(', ')}] must end in K = ${K}`);
  const x = a.dtype === 'float32' ? (a.data as Float32Array) : Float32Array.from(toFloat64(a));
  return { x, M: elementCount(a.dims) / K, outLead: a.dims.slice(0, -1) };
}

/** y (fp32) + bias [N], in float64 and rounded once to A's type, as the output tensor. */
function output(a: Tensor, outLead: number[], y: Float32Array, bias: Tensor | undefined, N: number, ctx: OpContext) {
  const v = Float64Array.from(y);
  if (bias) {
    const b = toFloat64(bias);
    if (b.length !== N) throw badShape(ctx, `bias must have N = ${N} elements, got [${bias.dims.join(', ')}]`);
    for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) + (b[i % N] as number);
  }
  return makeTensor(a.dtype, [...outLead, N], encodeFloat(a.dtype, v));
}

const float32 = (t: Tensor) => (t.dtype === 'float32' ? (t.data as Float32Array) : Float32Array.from(toFloat64(t)));

/**
 * MatMulNBits: Y = A × Wᵀ, W [N, K] stored as B uint8 [N, k_blocks, block_size·bits/8] (codes of
 * a block packed along K, lowest bits first), scales [N, k_blocks], zero_points uint8
 * [N, ⌈k_blocks·bits/8⌉] packed the same way (absent: 2^(bits−1)), optional bias [N]. bits 2, 4
 * or 8; zero points may instead be floats in A's type, unpacked [N, k_blocks] (floatZeroProduct);
 * g_idx as ORT's CPU kernel runs it (withGIdx).
 */
export const MatMulNBits: OpImpl = (inputs, ctx) => {
  const a = requireInput(inputs, 0, 'A', ctx);
  const b = requireInput(inputs, 1, 'B', ctx);
  const scales = requireInput(inputs, 2, 'scales', ctx);
  const zeroPoints = inputs[3];
  const K = requiredInt(ctx, 'K');
  const N = requiredInt(ctx, 'N');
  const bits = ctx.attrs.int('bits', 4);
  const bs = requiredInt(ctx, 'block_size');
  if (bits !== 2 && bits !== 4 && bits !== 8)
    throw new QuantkitError('QK_BAD_ATTRIBUTE', `${ctx.where}: bits = ${bits}`, 'MatMulNBits runs bits 2, 4 or 8');
  expectDType(b, ['uint8'], 'B', ctx);
  const kBlocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  if (b.data.length !== N * kBlocks * blob)
    throw badShape(ctx, `B [${b.dims.join(', ')}] must hold N·k_blocks·blob = ${N}·${kBlocks}·${blob} bytes`);
  if (scales.data.length !== N * kBlocks) throw badShape(ctx, `scales must have N·k_blocks = ${N * kBlocks} elements`);
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  if (inputs[4]) return [withGIdx(a, b, scales, zeroPoints, inputs[4], { K, N, bits, bs, kBlocks }, inputs[5], ctx)];
  if (zeroPoints && zeroPoints.dtype !== 'uint8')
    return [floatZeroProduct(a, b, scales, zeroPoints, { K, N, bits, bs, kBlocks }, inputs[5], ctx)];
  if (zeroPoints) {
    if (zeroPoints.data.length !== N * zpRow)
      throw badShape(ctx, `zero_points must hold N·⌈k_blocks·bits/8⌉ = ${N * zpRow} bytes`);
  }
  const { x, M, outLead } = rowsOf(a, K, ctx);
  // ORT: accuracy_level 4 asks for int8 compute where its CPU kernel has one.
  const product = ctx.attrs.int('accuracy_level', 0) === 4 ? matmulNBitsInt8 : matmulNBits;
  const y = product(
    x,
    M,
    {
      K,
      N,
      bits,
      blockSize: bs,
      packed: b.data as Uint8Array,
      scales: float32(scales),
      zeroPoints: zeroPoints?.data as Uint8Array | undefined,
    },
    ctx.threads,
  );
  return [output(a, outLead, y, inputs[5], N, ctx)];
};

/**
 * MatMulBnb4: Y = A × Wᵀ, W [N, K] flattened row-major into blocks of block_size, two codes a
 * byte with the FIRST in the HIGH nibble (bitsandbytes' order); value = table[code] · absmax of
 * the block; quant_type 0 = bitsandbytes FP4, 1 = NF4.
 */
export const MatMulBnb4: OpImpl = (inputs, ctx) => {
  const a = requireInput(inputs, 0, 'A', ctx);
  const b = requireInput(inputs, 1, 'B', ctx);
  const absmax = requireInput(inputs, 2, 'absmax', ctx);
  const K = requiredInt(ctx, 'K');
  const N = requiredInt(ctx, 'N');
  const bs = requiredInt(ctx, 'block_size');
  const quantType = requiredInt(ctx, 'quant_type');
  if (quantType > 1)
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `${ctx.where}: quant_type = ${quantType}`,
      'MatMulBnb4 takes 0 (FP4) or 1 (NF4)',
    );
  expectDType(b, ['uint8'], 'B', ctx);
  if (b.data.length !== Math.ceil((N * K) / 2))
    throw badShape(ctx, `B must hold ⌈N·K/2⌉ = ${Math.ceil((N * K) / 2)} bytes`);
  if (absmax.data.length !== Math.ceil((N * K) / bs))
    throw badShape(ctx, `absmax must have ⌈N·K/block_size⌉ = ${Math.ceil((N * K) / bs)} elements`);
  const { x, M, outLead } = rowsOf(a, K, ctx);
  const y = matmulBnb4(
    x,
    M,
    {
      K,
      N,
      blockSize: bs,
      packed: b.data as Uint8Array,
      absmax: float32(absmax),
      table: quantType === 1 ? NF4_TABLE : FP4_BNB_TABLE,
    },
    ctx.threads,
  );
  return [output(a, outLead, y, undefined, N, ctx)];
};

/**
 * MatMulNBits with float zero points (HQQ, the super-block schemes) in A's type: computed as
 * ONNX Runtime's CPU kernel does, dequantized to fp32 then multiplied, at every accuracy_level
 * (kernels.ts matmulNBitsFloatZero says why); float16 scales and zero points widen exactly to
 * fp32 first. ORT's dequantizer reads 2- and 4-bit codes only, so 8-bit is refused as ORT
 * refuses it.
 */
function floatZeroProduct(
  a: Tensor,
  b: Tensor,
  scales: Tensor,
  zeroPoints: Tensor,
  s: { K: number; N: number; bits: number; bs: number; kBlocks: number },
  bias: Tensor | undefined,
  ctx: OpContext,
): Tensor {
  const { K, N, bits, bs, kBlocks } = s;
  if (zeroPoints.dtype !== a.dtype)
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: zero_points are ${zeroPoints.dtype} but A is ${a.dtype}`,
      "store float zero points in A's type, or packed as uint8",
    );
  if (bits === 8)
    throw new QuantkitError(
      'QK_UNSUPPORTED_OP',
      `${ctx.where}: MatMulNBits with 8-bit codes and float zero points is not run (ONNX Runtime's CPU kernel dequantizes float zero points for 2- and 4-bit codes only)`,
      'store 8-bit zero points as uint8 (q8-block-asym), or use 4-bit codes for float zero points',
    );
  if (zeroPoints.data.length !== N * kBlocks)
    throw badShape(
      ctx,
      `float zero_points must have N·k_blocks = ${N * kBlocks} elements, got [${zeroPoints.dims.join(', ')}]`,
    );
  const { x, M, outLead } = rowsOf(a, K, ctx);
  const y = matmulNBitsFloatZero(x, M, {
    K,
    N,
    bits: bits as 2 | 4,
    blockSize: bs,
    packed: b.data as Uint8Array,
    scales: float32(scales),
    zeros: float32(zeroPoints),
  });
  return output(a, outLead, y, bias, N, ctx);
}

/**
 * MatMulNBits with g_idx (int32 [K]: the block whose scale and zero point row k takes), as ONNX
 * Runtime 1.30's CPU kernel computes it: 4-bit codes only, dequantized as with float zero points
 * (fp32(fp32(code · scale) + fp32(−scale · zero))) with zero point 8 when absent, then multiplied
 * in fp32. That kernel reads uint8 zero points as 8 whatever they hold (measured), a result no
 * model means, so those are refused rather than reproduced.
 */
function withGIdx(
  a: Tensor,
  b: Tensor,
  scales: Tensor,
  zeroPoints: Tensor | undefined,
  gIdx: Tensor,
  s: { K: number; N: number; bits: number; bs: number; kBlocks: number },
  bias: Tensor | undefined,
  ctx: OpContext,
): Tensor {
  const { K, N, bits, bs, kBlocks } = s;
  if (bits !== 4)
    throw new QuantkitError(
      'QK_UNSUPPORTED_OP',
      `${ctx.where}: MatMulNBits with g_idx and ${bits}-bit codes is not run (ONNX Runtime's CPU kernel takes g_idx with 4-bit codes only)`,
      'reorder the weight rows instead of passing g_idx',
    );
  if (zeroPoints?.dtype === 'uint8')
    throw new QuantkitError(
      'QK_UNSUPPORTED_OP',
      `${ctx.where}: MatMulNBits with g_idx and uint8 zero points is not run: ONNX Runtime's CPU kernel ignores such zero points (it dequantizes with 8)`,
      "store the zero points as floats in A's type, or reorder the weight rows instead of passing g_idx",
    );
  expectDType(a, ['float32'], 'A', ctx);
  expectDType(gIdx, ['int32'], 'g_idx', ctx);
  if (gIdx.data.length !== K) throw badShape(ctx, `g_idx must have K = ${K} elements, got [${gIdx.dims.join(', ')}]`);
  const blocks = gIdx.data as Int32Array;
  for (const [k, g] of blocks.entries())
    if (g < 0 || g >= kBlocks) throw badShape(ctx, `g_idx[${k}] = ${g} is not a block in 0…${kBlocks - 1}`);
  if (zeroPoints) {
    expectDType(zeroPoints, ['float32'], 'zero_points', ctx);
    if (zeroPoints.data.length !== N * kBlocks)
      throw badShape(ctx, `float zero_points must have N·k_blocks = ${N * kBlocks} elements`);
  }
  const { x, M, outLead } = rowsOf(a, K, ctx);
  const y = matmulNBitsFloatZero(x, M, {
    K,
    N,
    bits: 4,
    blockSize: bs,
    packed: b.data as Uint8Array,
    scales: float32(scales),
    zeros: zeroPoints ? (zeroPoints.data as Float32Array) : new Float32Array(N * kBlocks).fill(8),
    gIdx: blocks,
  });
  return output(a, outLead, y, bias, N, ctx);
}
