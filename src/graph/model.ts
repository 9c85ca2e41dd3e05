import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Attribute } from './attributes.js';

/**
 * The in-memory model IR that passes rewrite. Attributes are typed plain values (graph/attributes.ts;
 * one read from a file and left unchanged is written back byte for byte); initializers are loaded
 * on demand, so a pass that visits one weight at a time never holds the whole model in memory.
 */
export interface GraphNode {
  name: string;
  opType: string;
  /** '' is the default ONNX domain ('ai.onnx'); 'com.microsoft' for ONNX Runtime contrib ops. */
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Attribute[];
}

/** A dimension: a size, a symbolic name (dim_param), or unknown. */
export type Dim = number | string | null;

export interface ValueInfo {
  name: string;
  dtype: DType | undefined;
  /** undefined: rank unknown. */
  dims: Dim[] | undefined;
}

declare const sourceTensorBrand: unique symbol;
/** An initializer's record in the file it was read from (a TensorProto behind from-onnx.ts). */
export interface SourceTensor {
  readonly [sourceTensorBrand]: true;
}

export interface Initializer {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  /** Decodes the values (from the proto, external data, or memory). */
  load(): Tensor;
  /**
   * The file's own record of the tensor while it is unchanged, so writing it back keeps its exact
   * bytes (and its external-data reference); undefined for tensors a pass created. Opaque here:
   * only the graph <-> ONNX boundary reads it (from-onnx.ts sourceProto).
   */
  readonly source: SourceTensor | undefined;
  /**
   * Where an unchanged tensor stored as ONNX external data keeps its bytes (a worker can read
   * them itself); undefined when the bytes are in the model or a pass made the tensor. Parsed on
   * call: throws QuantkitError when the reference is malformed.
   */
  readonly externalData?: () => ExternalBytes | undefined;
}

export interface ExternalBytes {
  /** File path relative to the model's folder, '/'-separated, checked to stay inside it. */
  readonly location: string;
  readonly offset: number;
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
