import { QuantkitError } from '../../errors.js';
import { nodeLabel } from '../../graph/attributes.js';
import type { Graph, GraphNode, Initializer, Model } from '../../graph/model.js';
import { memoryInitializer } from '../../graph/model.js';
import { topologicalOrder } from '../../graph/topology.js';
import { makeTensor, type Tensor } from '../../tensor/tensor.js';
import { tf } from '../../train/tf.js';
import { MASK_CONSTANT } from '../activation/plan.js';
import { int64ToInt32, OPS, type Value } from './ops.js';

/*
 * An ONNX model (the IR) as a trainable TensorFlow.js graph: the float initializers it trains
 * become tf.Variables, the rest constants; `forward` runs the nodes in topological order over
 * tf.Tensors, so tfjs's autodiff differentiates it. `writeBack` puts the trained values into
 * the IR's initializers (the same graph, fp32), from where any writer or quantizer takes them.
 */

/** What a node reads in place of a value: the hook the fake quantizers use (passes/qat). */
export interface ForwardHooks {
  read?(node: GraphNode, slot: number, name: string, value: Value): Value;
}

export interface TrainableGraph {
  readonly model: Model;
  /** The trained initializers, by name. */
  readonly variables: ReadonlyMap<string, tf.Variable>;
  /** Runs the graph on `feeds` (by input name); returns every graph output by name. */
  forward(feeds: Readonly<Record<string, Value>>, hooks?: ForwardHooks): Map<string, Value>;
  dispose(): void;
}

export interface BuildOptions {
  /** Which float initializers train (default: defaultTrainable). */
  readonly trainable?: ((init: Initializer, graph: Graph) => boolean) | undefined;
}

/** Ops the training graph does not run, listed once each with their nodes; [] when all are supported. */
export function unsupportedNodes(graph: Graph): GraphNode[] {
  return graph.nodes.filter((n) => n.domain !== '' || !Object.hasOwn(OPS, n.opType));
}

function checkOps(graph: Graph, label: string): void {
  const bad = unsupportedNodes(graph);
  if (bad.length === 0) return;
  const ops = [...new Set(bad.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType)))];
  const listed = bad.slice(0, 8).map(nodeLabel).join(', ');
  throw new QuantkitError(
    'QK_TRAIN_UNSUPPORTED_OP',
    `${label}: the training graph does not support ${ops.join(', ')} (${listed}${bad.length > 8 ? `, and ${bad.length - 8} more` : ''})`,
    `supported ops: ${Object.keys(OPS).join(', ')}`,
  );
}

/** BatchNormalization's running statistics (inputs 3 and 4) never train. */
function statisticNames(graph: Graph): Set<string> {
  const s = new Set<string>();
  for (const n of graph.nodes)
    if (n.opType === 'BatchNormalization') for (const i of n.inputs.slice(3, 5)) if (i) s.add(i);
  return s;
}

/**
 * Float initializers with more than one element train, except BatchNormalization statistics and
 * mask-like constants (|c| ≥ MASK_CONSTANT: the additive causal mask); scalars (1/√d, √2, 0.5 …)
 * are constants of the architecture.
 */
export function defaultTrainable(init: Initializer, graph: Graph, stats = statisticNames(graph)): boolean {
  if (init.dtype !== 'float32' || init.dims.reduce((p, d) => p * d, 1) <= 1 || stats.has(init.name)) return false;
  const data = init.load().data as Float32Array;
  for (let i = 0; i < data.length; i++) if (Math.abs(data[i] as number) >= MASK_CONSTANT) return false;
  return true;
}

/** An IR tensor as a tfjs tensor: floats as float32, integers as int32, bool as bool. */
export function toTf(t: Tensor, where: string): Value {
  const shape = [...t.dims];
  switch (t.dtype) {
    case 'float32':
      return tf.tensor(t.data as Float32Array, shape, 'float32');
    case 'float64':
      return tf.tensor(Float32Array.from(t.data as Float64Array), shape, 'float32');
    case 'int64':
      return tf.tensor(int64ToInt32(t.data as BigInt64Array), shape, 'int32');
    case 'int32':
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
      return tf.tensor(Int32Array.from(t.data as ArrayLike<number>), shape, 'int32');
    case 'bool':
      return tf.tensor(Uint8Array.from(t.data as Uint8Array), shape, 'bool');
    default:
      throw new QuantkitError(
        'QK_UNSUPPORTED_DTYPE',
        `${where} is ${t.dtype}, which the training graph does not read`,
        'convert the model to fp32 first',
      );
  }
}

export function buildTrainable(model: Model, opts: BuildOptions = {}, label = '<model>'): TrainableGraph {
  const g = model.graph;
  checkOps(g, label);
  const order = topologicalOrder(g);
  const stats = statisticNames(g);
  const isTrainable = opts.trainable ?? ((init: Initializer, graph: Graph) => defaultTrainable(init, graph, stats));
  const variables = new Map<string, tf.Variable>();
  const constants = new Map<string, Value>();
  for (const init of g.initializers.values()) {
    const value = toTf(init.load(), `initializer '${init.name}'`);
    if (isTrainable(init, g)) {
      variables.set(init.name, tf.variable(value, true, `qk/${variables.size}/${init.name}`));
      value.dispose();
    } else {
      constants.set(init.name, value);
    }
  }
  const outputs = g.outputs.map((o) => o.name);

  function forward(feeds: Readonly<Record<string, Value>>, hooks: ForwardHooks = {}): Map<string, Value> {
    const values = new Map<string, Value>();
    for (const i of g.inputs) {
      const v = feeds[i.name];
      if (!v)
        throw new QuantkitError('QK_TRAIN_DATA', `${label}: no data for input '${i.name}'`, 'give one array per input');
      values.set(i.name, v);
    }
    const read = (name: string): Value | undefined => values.get(name) ?? variables.get(name) ?? constants.get(name);
    for (const node of order) {
      const inputs = node.inputs.map((name, slot) => {
        if (name === '') return undefined;
        const v = read(name);
        if (!v)
          throw new QuantkitError(
            'QK_TRAIN_UNSUPPORTED_OP',
            `${nodeLabel(node)} reads '${name}', which nothing produces`,
            'the model is not a valid ONNX graph',
          );
        return hooks.read ? hooks.read(node, slot, name, v) : v;
      });
      const results = (OPS[node.opType] as (typeof OPS)[string])(node, inputs);
      node.outputs.forEach((o, i) => {
        const r = results[i];
        if (o !== '' && r) values.set(o, r);
      });
    }
    return new Map(outputs.map((o) => [o, read(o) as Value]));
  }

  return {
    model,
    variables,
    forward,
    dispose() {
      for (const v of variables.values()) v.dispose();
      for (const c of constants.values()) c.dispose();
    },
  };
}

/** Writes every trained variable back into the IR as an fp32 initializer of the same name. */
export function writeBack(graph: TrainableGraph): void {
  const inits = graph.model.graph.initializers;
  for (const [name, v] of graph.variables) {
    const data = Float32Array.from(v.dataSync() as Float32Array);
    inits.set(name, memoryInitializer(name, makeTensor('float32', v.shape, data)));
  }
}
