import { DynamicQuantizeMatMul } from './ops/dynamic-quantize-matmul.js';
import { Max, ReduceMax } from './ops/reduce.js';
import { BitShift, GatherElements, ScatterND } from './ops/scatter-gather.js';
import type { OpImpl } from './op.js';
import { Cast, CastLike } from './ops/cast.js';
import { ConvInteger } from './ops/conv-integer.js';
import { DequantizeLinear } from './ops/dequantize-linear.js';
import { DynamicQuantizeLinear } from './ops/dynamic-quantize-linear.js';
import { Add, Div, Mul, Relu, Sub } from './ops/elementwise.js';
import { Concat, Expand, Gather, Slice, Where } from './ops/indexing.js';
import { Conv, Gemm, MatMul } from './ops/linear.js';
import { MatMulInteger } from './ops/matmul-integer.js';
import { QLinearConv } from './ops/qlinear-conv.js';
import { QLinearMatMul } from './ops/qlinear-matmul.js';
import { QuantizeLinear } from './ops/quantize-linear.js';
import { BatchNormalization, MaxPool } from './ops/pool-norm.js';
import { GatherBlockQuantized } from './ops/gather-block-quantized.js';
import { MatMulBnb4, MatMulNBits } from './ops/matmul-nbits.js';
import { LayerNormalization, Softmax } from './ops/normalize.js';
import { Flatten, Reshape, Shape, Squeeze, Transpose, Unsqueeze } from './ops/shape.js';
import { Abs, Erf, Exp, Gelu, Identity, Neg, Round, Sigmoid, Sqrt, Tanh } from './ops/unary.js';

/** The default ONNX domain is spelled '' in NodeProto; 'ai.onnx' names it too. */
function domainKey(domain: string): string {
  return domain === 'ai.onnx' ? '' : domain;
}

function key(domain: string, opType: string): string {
  return `${domainKey(domain)}::${opType}`;
}

const DEFAULT_OPS: Record<string, OpImpl> = {
  Abs,
  Add,
  BatchNormalization,
  BitShift,
  Cast,
  CastLike,
  Concat,
  Conv,
  ConvInteger,
  DequantizeLinear,
  Div,
  DynamicQuantizeLinear,
  Erf,
  Exp,
  Expand,
  Flatten,
  Gather,
  GatherElements,
  Gelu,
  Gemm,
  Identity,
  LayerNormalization,
  MatMul,
  MatMulInteger,
  Max,
  MaxPool,
  Mul,
  Neg,
  QLinearConv,
  QLinearMatMul,
  QuantizeLinear,
  ReduceMax,
  Relu,
  Reshape,
  Round,
  ScatterND,
  Shape,
  Sigmoid,
  Slice,
  Softmax,
  Sqrt,
  Squeeze,
  Sub,
  Tanh,
  Transpose,
  Unsqueeze,
  Where,
};

/** ONNX Runtime's contrib ops that our weight-only schemes write. */
const MICROSOFT_OPS: Record<string, OpImpl> = {
  DynamicQuantizeMatMul,
  GatherBlockQuantized,
  MatMulBnb4,
  MatMulNBits,
};

/** opType (+ domain) → implementation. `Constant` is handled by the executor itself. */
export class OpRegistry {
  private readonly ops = new Map<string, OpImpl>();

  register(opType: string, impl: OpImpl, domain = ''): this {
    this.ops.set(key(domain, opType), impl);
    return this;
  }

  get(opType: string, domain = ''): OpImpl | undefined {
    return this.ops.get(key(domain, opType));
  }

  /** Supported ops as `OpType` (default domain) or `domain::OpType`, sorted, for error hints. */
  names(): string[] {
    return [...this.ops.keys()].map((k) => (k.startsWith('::') ? k.slice(2) : k)).sort();
  }
}

export function defaultRegistry(): OpRegistry {
  const r = new OpRegistry();
  for (const [name, impl] of Object.entries(DEFAULT_OPS)) r.register(name, impl);
  for (const [name, impl] of Object.entries(MICROSOFT_OPS)) r.register(name, impl, 'com.microsoft');
  return r;
}
