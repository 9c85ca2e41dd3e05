import { QuantkitError } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { makeTensor } from '../../tensor/tensor.js';
import type { OpContext, OpImpl } from '../op.js';
import { requireInput } from '../op.js';
import { encodeFloat, isFloat, toFloat64 } from '../values.js';
import { roundHalfEven } from '../../formats/rounding.js';

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * erf(x) to float64 accuracy: erf(x) = 2/√π · e^(−x²) · Σ_n (2x²)^n · x / (1·3·…·(2n+1)), a
 * series of positive terms (no cancellation, unlike the Taylor series of erf itself) that
 * converges for every x. Beyond |x| = 6, 1 − erf(x) < 3e-17 and erf is ±1 in float64.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  const t = 2 * a * a;
  let term = a;
  let sum = a;
  for (let n = 1; term > sum * 1e-17; n++) {
    term *= t / (2 * n + 1);
    sum += term;
  }
  const r = TWO_OVER_SQRT_PI * Math.exp(-a * a) * sum;
  return x < 0 ? -r : r;
}

/** Applies `f` to every element in float64 and rounds once to the input's float type. */
function floatUnary(name: string, f: (x: number) => number): OpImpl {
  return (inputs, ctx) => {
    const x = requireInput(inputs, 0, 'X', ctx);
    const v = floatValues(x, name, ctx);
    const y = new Float64Array(v.length);
    for (let i = 0; i < y.length; i++) y[i] = f(v[i] as number);
    return [makeTensor(x.dtype, x.dims, encodeFloat(x.dtype, y))];
  };
}

function floatValues(x: Tensor, name: string, ctx: OpContext): Float64Array {
  if (!isFloat(x.dtype))
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: ${name} on ${x.dtype} is not supported`,
      `${name} takes a float input`,
    );
  return toFloat64(x);
}

export const Erf = floatUnary('Erf', erf);
export const Sqrt = floatUnary('Sqrt', Math.sqrt);
export const Exp = floatUnary('Exp', Math.exp);
export const Tanh = floatUnary('Tanh', Math.tanh);
export const Sigmoid = floatUnary('Sigmoid', (x) => 1 / (1 + Math.exp(-x)));

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * Gelu (ONNX opset 20; com.microsoft Gelu is the exact form): 0.5·x·(1 + erf(x/√2)), or with
 * approximate = 'tanh' 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 */
export const Gelu: OpImpl = (inputs, ctx) => {
  const approximate = ctx.attrs.string('approximate', 'none');
  if (approximate !== 'none' && approximate !== 'tanh')
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `${ctx.where}: approximate '${approximate}' is not 'none' or 'tanh'`,
      'use one of the values the ONNX Gelu spec lists',
    );
  const f =
    approximate === 'tanh'
      ? (x: number) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
      : (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
  return floatUnary('Gelu', f)(inputs, ctx);
};

/** Neg: −x for float and signed integer types (integers wrap as two's complement does). */
export const Neg: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'X', ctx);
  if (isFloat(x.dtype)) return floatUnary('Neg', (v) => -v)(inputs, ctx);
  if (x.dtype === 'int64')
    return [
      makeTensor(
        x.dtype,
        x.dims,
        (x.data as BigInt64Array).map((v) => BigInt.asIntN(64, -v)),
      ),
    ];
  if (x.dtype === 'int32' || x.dtype === 'int16' || x.dtype === 'int8')
    return [
      makeTensor(
        x.dtype,
        x.dims,
        (x.data as Int32Array | Int16Array | Int8Array).map((v) => -v),
      ),
    ];
  throw new QuantkitError(
    'QK_BAD_INPUT_TYPE',
    `${ctx.where}: Neg on ${x.dtype} is not supported`,
    'use a float or signed integer input',
  );
};

/** Identity: the input itself (tensors are never mutated, so no copy is needed). */
export const Identity: OpImpl = (inputs, ctx) => [requireInput(inputs, 0, 'input', ctx)];

/** Abs on float types (exact). */
export const Abs = floatUnary('Abs', Math.abs);

/** Round: to the nearest integer, halves to even (ONNX Round, opset 11; exact in every float type). */
export const Round = floatUnary('Round', (x) => (Number.isFinite(x) ? roundHalfEven(x) : x));
