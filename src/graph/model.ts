import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { AttributeProto, TensorProto } from '../io/onnx/proto.js';

/**
 * The in-memory model IR that passes rewrite. Nodes keep their AttributeProtos untouched (so an
 * unknown attribute survives a round trip); initializers are loaded on demand, so a pass that
 * visits one weight at a time never holds the whole model in memory.
 */
export interface GraphNode {
  name: string;
  opType: string;
  /** '' is the default ONNX domain ('ai.onnx'); 'com.microsoft' for ONNX Runtime contrib ops. */
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: AttributeProto[];
}

/** A dimension: a size, a symbolic name (dim_param), or unknown. */
export type Dim = number | string | null;

export interface ValueInfo {
  name: string;
  dtype: DType | undefined;
  /** undefined: rank unknown. */
  dims: Dim[] | undefined;
}

export interface Initializer {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  /** Decodes the values (from the proto, external data, or memory). */
  load(): Tensor;
  /**
   * The TensorProto it was read from while it is unchanged, so writing it back keeps its exact
   * bytes (and its external-data reference); undefined for tensors a pass created.
   */
  readonly source: TensorProto | undefined;
}

export interface Graph {
  name: string;
  nodes: GraphNode[];
  initializers: Map<string, Initializer>;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  /** Intermediate value types known from the file or from inference. */
  valueInfo: Map<string, ValueInfo>;
}

export interface Model {
  irVersion: number;
  /** Operator set version by domain ('' = ai.onnx). */
  opsets: Map<string, number>;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  metadata: [string, string][];
  graph: Graph;
}

export function memoryInitializer(name: string, tensor: Tensor): Initializer {
  return { name, dtype: tensor.dtype, dims: tensor.dims, load: () => tensor, source: undefined };
}

/** The node's attribute of that name, if present. */
export function findAttribute(node: GraphNode, name: string): AttributeProto | undefined {
  return node.attributes.find((a) => a.name === name);
}
