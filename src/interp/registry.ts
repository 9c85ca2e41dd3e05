import type { OpImpl } from './op.js';
import { Cast, CastLike } from './ops/cast.js';
import { ConvInteger } from './ops/conv-integer.js';
import { DequantizeLinear } from './ops/dequantize-linear.js';
import { DynamicQuantizeLinear } from './ops/dynamic-quantize-linear.js';
import { Add, Mul, Relu } from './ops/elementwise.js';
import { Conv, Gemm, MatMul } from './ops/linear.js';
import { MatMulInteger } from './ops/matmul-integer.js';
import { QLinearConv } from './ops/qlinear-conv.js';
import { QLinearMatMul } from './ops/qlinear-matmul.js';
import { QuantizeLinear } from './ops/quantize-linear.js';
import { BatchNormalization, MaxPool } from './ops/pool-norm.js';
import { Flatten, Reshape, Transpose } from './ops/shape.js';

/** The default ONNX domain is spelled '' in NodeProto; 'ai.onnx' names it too. */
function domainKey(domain: string): string {
  return domain === 'ai.onnx' ? '' : domain;
}

function key(domain: string, opType: string): string {
  return `${domainKey(domain)}::${opType}`;
}

const DEFAULT_OPS: Record<string, OpImpl> = {
  Add,
  BatchNormalization,
  Cast,
  CastLike,
  Conv,
  ConvInteger,
  DequantizeLinear,
  DynamicQuantizeLinear,
  Flatten,
  Gemm,
  MatMul,
  MatMulInteger,
  MaxPool,
  Mul,
  QLinearConv,
  QLinearMatMul,
  QuantizeLinear,
  Relu,
  Reshape,
  Transpose,
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
  return r;
}
