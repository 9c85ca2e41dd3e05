import { QuantkitError } from '../../errors.js';
import { NF4_TABLE, FP4_BNB_TABLE } from '../../quant/codebook.js';
import type { Tensor } from '../../tensor/tensor.js';
import { elementCount, makeTensor } from '../../tensor/tensor.js';
import { matmulByColumns } from '../kernels.js';
import type { OpContext, OpImpl } from '../op.js';
import { badShape, expectDType, requireInput } from '../op.js';
import { encodeFloat, toFloat64 } from '../values.js';

/**
 * com.microsoft contrib ops that multiply by a block-quantized weight (ONNX Runtime
 * docs/ContribOperators.md). Both dequantize each weight to fp32 as ONNX Runtime's CPU kernels do
 * at accuracy level 0 — fp32((code − zero point) · scale), fp32(table[code] · absmax) — and
 * multiply; accuracy_level > 0 lets a runtime quantize A too, which the reference does not.
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

/** A [..., K] as M rows; the output keeps A's leading dims and ends in N. */
function rowsOf(a: Tensor, K: number, ctx: OpContext): { values: Float64Array; M: number; outLead: number[] } {
  expectDType(a, ['float32', 'float16'], 'A', ctx);
  if (a.dims.length === 0 || a.dims[a.dims.length - 1] !== K)
    throw badShape(ctx, `A [${a.dims.join(', ')}] must end in K = ${K}`);
  return { values: toFloat64(a), M: elementCount(a.dims) / K, outLead: a.dims.slice(0, -1) };
}

function addBias(y: Float64Array, bias: Tensor | undefined, N: number, ctx: OpContext): void {
  if (!bias) return;
  const b = toFloat64(bias);
  if (b.length !== N) throw badShape(ctx, `bias must have N = ${N} elements, got [${bias.dims.join(', ')}]`);
  for (let i = 0; i < y.length; i++) y[i] = (y[i] as number) + (b[i % N] as number);
}

/** The `bits`-wide code at position j of a run of codes packed from `base`, lowest bits first. */
function codeAt(bytes: Uint8Array, base: number, j: number, bits: number): number {
  const bit = j * bits;
  return ((bytes[base + (bit >> 3)] as number) >> (bit & 7)) & ((1 << bits) - 1);
}

/**
 * MatMulNBits: Y = A × Wᵀ, W [N, K] stored as B uint8 [N, k_blocks, block_size·bits/8] (codes of
 * a block packed along K, lowest bits first), scales [N, k_blocks], zero_points uint8
 * [N, ⌈k_blocks·bits/8⌉] packed the same way (absent: 2^(bits−1)), optional bias [N]. bits 2, 4
 * or 8. Float zero points and g_idx are not run.
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
  if (inputs[4])
    throw new QuantkitError(
      'QK_UNSUPPORTED_OP',
      `${ctx.where}: MatMulNBits with g_idx is not run by the reference interpreter`,
      'reorder the weight rows instead of passing g_idx',
    );
  expectDType(b, ['uint8'], 'B', ctx);
  const kBlocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  if (b.data.length !== N * kBlocks * blob)
    throw badShape(ctx, `B [${b.dims.join(', ')}] must hold N·k_blocks·blob = ${N}·${kBlocks}·${blob} bytes`);
  const s = toFloat64(scales);
  if (s.length !== N * kBlocks) throw badShape(ctx, `scales must have N·k_blocks = ${N * kBlocks} elements`);
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  let zp: Uint8Array | undefined;
  if (zeroPoints) {
    if (zeroPoints.dtype !== 'uint8')
      throw new QuantkitError(
        'QK_UNSUPPORTED_OP',
        `${ctx.where}: MatMulNBits with ${zeroPoints.dtype} zero points is not run by the reference interpreter`,
        'store zero points packed as uint8',
      );
    if (zeroPoints.data.length !== N * zpRow)
      throw badShape(ctx, `zero_points must hold N·⌈k_blocks·bits/8⌉ = ${N * zpRow} bytes`);
    zp = zeroPoints.data as Uint8Array;
  }
  const packed = b.data as Uint8Array;
  const mid = 1 << (bits - 1);
  const { values, M, outLead } = rowsOf(a, K, ctx);
  const y = matmulByColumns(values, M, K, N, (n, col) => {
    for (let blk = 0; blk < kBlocks; blk++) {
      const p = n * kBlocks + blk;
      const z = zp ? codeAt(zp, n * zpRow, blk, bits) : mid;
      const scale = s[p] as number;
      const end = Math.min(bs, K - blk * bs);
      for (let j = 0; j < end; j++) col[blk * bs + j] = Math.fround((codeAt(packed, p * blob, j, bits) - z) * scale);
    }
  });
  addBias(y, inputs[5], N, ctx);
  return [makeTensor(a.dtype, [...outLead, N], encodeFloat(a.dtype, y))];
};

/**
 * MatMulBnb4: Y = A × Wᵀ, W [N, K] flattened row-major into blocks of block_size, two codes a
 * byte with the FIRST in the HIGH nibble (bitsandbytes' order); value = table[code] · absmax of
 * the block; quant_type 0 = bitsandbytes FP4, 1 = NF4.
 */
export const MatMulBnb4: OpImpl = (inputs, ctx) => {
  const a = requireInput(inputs, 0, 'A', ctx);
  const b = requireInput(inputs, 1, 'B', ctx);
  const absmaxT = requireInput(inputs, 2, 'absmax', ctx);
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
  const table = quantType === 1 ? NF4_TABLE : FP4_BNB_TABLE;
  expectDType(b, ['uint8'], 'B', ctx);
  if (b.data.length !== Math.ceil((N * K) / 2))
    throw badShape(ctx, `B must hold ⌈N·K/2⌉ = ${Math.ceil((N * K) / 2)} bytes`);
  const absmax = toFloat64(absmaxT);
  if (absmax.length !== Math.ceil((N * K) / bs))
    throw badShape(ctx, `absmax must have ⌈N·K/block_size⌉ = ${Math.ceil((N * K) / bs)} elements`);
  const packed = b.data as Uint8Array;
  const { values, M, outLead } = rowsOf(a, K, ctx);
  const y = matmulByColumns(values, M, K, N, (n, col) => {
    for (let k = 0; k < K; k++) {
      const i = n * K + k;
      const byte = packed[i >> 1] as number;
      const code = i & 1 ? byte & 0x0f : byte >> 4;
      col[k] = Math.fround((table[code] as number) * (absmax[Math.floor(i / bs)] as number));
    }
  });
  return [makeTensor(a.dtype, [...outLead, N], encodeFloat(a.dtype, y))];
};
