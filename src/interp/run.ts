import { QuantkitError } from '../errors.js';
import { AttributeReader } from '../graph/attributes.js';
import { modelFromProto } from '../graph/from-onnx.js';
import type { GraphNode, Model } from '../graph/model.js';
import { topologicalOrder } from '../graph/topology.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Emulation } from './emulate.js';
import type { Requantization } from './requant.js';
import { type FusedSite, fusedSites, withFusedSaturation } from './qdq-emulation.js';
import { dqMatMulSites, runDqMatMul, type DqMatMulSite } from './dq-matmul.js';
import type { OpContext } from './op.js';
import type { OpRegistry } from './registry.js';
import { defaultRegistry } from './registry.js';

export interface RunOptions {
  registry?: OpRegistry;
  /**
   * Reproduce a CPU kernel's integer arithmetic (emulate.ts) in the integer ops and in the QDQ
   * patterns ONNX Runtime fuses into integer kernels (qdq-emulation.ts). Default: exact ONNX semantics.
   */
  emulate?: Emulation | undefined;
  /** How QLinearMatMul / QLinearConv requantize (requant.ts); default 'float32', as ONNX Runtime. */
  requantize?: Requantization | undefined;
  /**
   * Threads for the integer and 4-bit kernels (MatMulInteger, ConvInteger, QLinear*, MatMulNBits,
   * MatMulBnb4); the same outputs for any count. Default: kernels/' default (1, or QK_THREADS).
   */
  threads?: number | undefined;
  /**
   * The accuracy_level of the MatMulNBits ONNX Runtime makes of a DequantizeLinear(4/8-bit) → MatMul
   * (its session option session.qdq_matmulnbits_accuracy_level), which the interpreter computes
   * alike (dq-matmul.ts): 4, ORT's default, quantizes A to int8 per block; 0 multiplies in float.
   */
  qdqAccuracyLevel?: 0 | 4 | undefined;
  /**
   * Values that replace what the interpreter computes for these node outputs, e.g. another
   * runtime's quantized codes, so that a comparison downstream of a rounding boundary is not
   * thrown off by an input that sat on a tie (each runtime rounds its own float to a code).
   */
  pinned?: ReadonlyMap<string, Tensor> | undefined;
  /** Called with every node output as computed (before `pinned` replaces it). */
  onValue?: ((name: string, computed: Tensor) => void) | undefined;
}

/** A decoded ONNX ModelProto (io/onnx/proto.ts decodeModel), named through the graph boundary that reads it. */
type ModelProto = Parameters<typeof modelFromProto>[0];

/**
 * Runs an ONNX model on `inputs` (graph input name → tensor) with the pure-TypeScript reference
 * ops and returns the graph outputs by name. An input that has an initializer (listed as a graph
 * input: ONNX's overridable default) may be overridden by `inputs`; other names are ignored.
 */
export function runModel(model: ModelProto, inputs: Map<string, Tensor>, opts: RunOptions = {}): Map<string, Tensor> {
  const declared = new Set(model.graph?.input.map((v) => v.name));
  return runGraph(modelFromProto(model), new Map([...inputs].filter(([name]) => declared.has(name))), opts);
}

/**
 * Runs the IR `model` on `inputs` and returns the graph outputs by name. Initializers (and the
 * Constant nodes graph/from-onnx lifted to initializers) are values; a tensor in `inputs` named
 * like an initializer overrides it. Nodes run in graph/topology's order.
 */
export function runGraph(model: Model, inputs: Map<string, Tensor>, opts: RunOptions = {}): Map<string, Tensor> {
  const graph = model.graph;
  const registry = opts.registry ?? defaultRegistry();
  const values = new Map<string, Tensor>();
  for (const [name, init] of graph.initializers) values.set(name, init.load());
  for (const [name, t] of inputs) if (values.has(name)) values.set(name, t);
  for (const input of graph.inputs) {
    const given = inputs.get(input.name);
    if (!given) {
      throw new QuantkitError(
        'QK_MISSING_INPUT',
        `graph input '${input.name}' has no value`,
        `pass a tensor for '${input.name}' (inputs given: ${[...inputs.keys()].join(', ') || 'none'})`,
      );
    }
    values.set(input.name, given);
  }
  const index = new Map(graph.nodes.map((n, i) => [n, i]));
  const fused = opts.emulate ? fusedSites(graph) : new Map<GraphNode, FusedSite>();
  const dqMatMuls = dqMatMulSites(graph);
  for (const node of topologicalOrder(graph)) {
    const i = index.get(node) as number;
    const where = `node '${node.name || node.outputs[0] || '?'}' (#${i}, ${node.opType})`;
    const attrs = new AttributeReader(node.attributes, where);
    const ctx: OpContext = {
      attrs,
      opset: model.opsets.get(node.domain) ?? 0,
      where,
      emulate: opts.emulate,
      requantize: opts.requantize,
      threads: opts.threads,
    };
    const dqSite = dqMatMuls.get(node);
    const viaKernel = dqSite ? dqMatMul(node, dqSite, values, ctx, opts.qdqAccuracyLevel ?? 4) : undefined;
    const outputs =
      node.opType === 'Constant' && node.domain === ''
        ? [constantValue(attrs, where)]
        : viaKernel
          ? [viaKernel]
          : runNode(node, i, ctx, values, registry);
    const site = fused.get(node);
    if (site && opts.emulate && outputs[0]) {
      outputs[0] = withFusedSaturation(node, site, outputs[0], values, opts.emulate, { attrs, opset: 0, where });
    }
    node.outputs.forEach((name, k) => {
      const t = outputs[k];
      if (name === '' || !t) return;
      opts.onValue?.(name, t);
      values.set(name, opts.pinned?.get(name) ?? t);
    });
  }
  const result = new Map<string, Tensor>();
  for (const out of graph.outputs) {
    const t = values.get(out.name);
    if (!t)
      throw new QuantkitError(
        'QK_MISSING_OUTPUT',
        `graph output '${out.name}' was not produced by any node`,
        'check the model: every graph output must be a node output, initializer or input',
      );
    result.set(out.name, t);
  }
  return result;
}

/** A DequantizeLinear(4-bit) → MatMul site (dq-matmul.ts) on the MatMulNBits kernel. */
function dqMatMul(
  node: GraphNode,
  { dq, blockSize }: DqMatMulSite,
  values: Map<string, Tensor>,
  ctx: OpContext,
  accuracyLevel: 0 | 4,
): Tensor | undefined {
  const get = (name: string | undefined) => {
    const t = name ? values.get(name) : undefined;
    if (!t)
      throw new QuantkitError('QK_MISSING_INPUT', `${ctx.where}: input '${name}' has no value`, 'check the model');
    return t;
  };
  const zp = dq.inputs[2] ? get(dq.inputs[2]) : undefined;
  return runDqMatMul(get(node.inputs[0]), get(dq.inputs[0]), get(dq.inputs[1]), zp, blockSize, ctx, accuracyLevel);
}

function runNode(
  node: GraphNode,
  index: number,
  ctx: OpContext,
  values: Map<string, Tensor>,
  registry: OpRegistry,
): Tensor[] {
  const impl = registry.get(node.opType, node.domain);
  if (!impl) {
    throw new QuantkitError(
      'QK_UNSUPPORTED_OP',
      `node '${node.name}' (#${index}) uses op '${node.domain ? `${node.domain}::` : ''}${node.opType}' which the reference interpreter does not run`,
      `supported ops: ${registry.names().join(', ')}`,
    );
  }
  const args = node.inputs.map((name, k) => {
    if (name === '') return undefined; // an omitted optional input
    const t = values.get(name);
    if (!t)
      throw new QuantkitError(
        'QK_MISSING_INPUT',
        `${ctx.where}: input #${k} '${name}' has no value`,
        'it is not a graph input, initializer or earlier node output',
      );
    return t;
  });
  return impl(args, ctx);
}

/**
 * A Constant that graph/from-onnx left as a node (it lifts the single-valued ones to initializers):
 * the `value` tensor, or value_float/value_int/value_floats/value_ints as 0-D/1-D tensors.
 */
function constantValue(attrs: AttributeReader, where: string): Tensor {
  const t = attrs.tensor('value');
  if (t) return t;
  if (attrs.has('value_float'))
    return { dtype: 'float32', dims: [], data: Float32Array.of(attrs.float('value_float', 0)) };
  if (attrs.has('value_int'))
    return { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(attrs.int('value_int', 0))) };
  const floats = attrs.floats('value_floats');
  if (floats) return { dtype: 'float32', dims: [floats.length], data: Float32Array.from(floats) };
  const ints = attrs.int64s('value_ints');
  if (ints) return { dtype: 'int64', dims: [ints.length], data: BigInt64Array.from(ints) };
  throw new QuantkitError(
    'QK_UNSUPPORTED_OP',
    `${where}: Constant without a value, value_float(s) or value_int(s) attribute`,
    'the reference interpreter supports tensor, float and int constants',
  );
}
