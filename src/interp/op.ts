import { QuantkitError } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { AttributeReader, attrsFrom, type AttributeInput } from '../graph/attributes.js';
import type { Emulation } from './emulate.js';
import type { Requantization } from './requant.js';

/** What an op implementation gets besides its inputs. */
export interface OpContext {
  /** The node's attributes, typed (graph/attributes.ts): ops never see protobuf messages. */
  readonly attrs: AttributeReader;
  /** Opset version of the node's domain in the model (ops whose semantics changed check it). */
  readonly opset: number;
  /** How errors name the node, e.g. `node 'q1' (#2, QuantizeLinear)`. */
  readonly where: string;
  /** A CPU kernel's integer arithmetic to reproduce (emulate.ts); undefined = exact ONNX semantics. */
  readonly emulate?: Emulation | undefined;
  /** How QLinear ops requantize (requant.ts); undefined = 'float32', ONNX Runtime's CPU arithmetic. */
  readonly requantize?: Requantization | undefined;
  /** Threads the compute kernels may use (kernels/index.ts KernelOptions); undefined = their default. */
  readonly threads?: number | undefined;
}

/**
 * One operator: inputs in node order (undefined where an optional input is absent or named ''),
 * outputs in node order. Implementations never mutate their inputs.
 */
export type OpImpl = (inputs: readonly (Tensor | undefined)[], ctx: OpContext) => Tensor[];

/** Context for calling an op directly (tests, constant folding): attributes from a plain object. */
export function opContext(attrs: Readonly<Record<string, AttributeInput>> = {}, opset = 25, where = 'node'): OpContext {
  return { attrs: new AttributeReader(attrsFrom(attrs), where), opset, where };
}

export function requireInput(
  inputs: readonly (Tensor | undefined)[],
  index: number,
  name: string,
  ctx: OpContext,
): Tensor {
  const t = inputs[index];
  if (!t)
    throw new QuantkitError(
      'QK_MISSING_INPUT',
      `${ctx.where}: required input #${index} '${name}' is missing`,
      'connect the input in the model',
    );
  return t;
}

export function expectDType(t: Tensor, allowed: readonly DType[], name: string, ctx: OpContext): void {
  if (!allowed.includes(t.dtype)) {
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: input '${name}' has type ${t.dtype}`,
      `this op accepts ${allowed.join(', ')}`,
    );
  }
}

export function badShape(ctx: OpContext, message: string): QuantkitError {
  return new QuantkitError(
    'QK_BAD_SHAPE',
    `${ctx.where}: ${message}`,
    'check the input shapes against the ONNX operator spec',
  );
}
