import { dtypeInfo, storageBytes, type DType } from '../tensor/dtype.js';
import { elementCount } from '../tensor/tensor.js';
import { TensorProto_DataLocation } from '../io/onnx/proto.js';
import type { Dim, Model } from '../graph/model.js';
import { consumers } from '../graph/topology.js';
import { sourceProto } from '../graph/from-onnx.js';

export interface TensorSummary {
  name: string;
  dtype: DType;
  dims: number[];
  params: number;
  bytes: number;
  /** Where its bytes live: 'inline', or the external-data file location. */
  location: string;
}

export interface QuantizableVerdict {
  name: string;
  /** Names of the nodes that read it (exporters often give weights opaque names like onnx::MatMul_265). */
  readers: string[];
  quantizable: boolean;
  /** Which ops read it (e.g. 'MatMul B'), or why it is left alone. */
  reason: string;
}

export interface InspectReport {
  irVersion: number;
  producer: string;
  opsets: Record<string, number>;
  opCounts: Record<string, number>;
  inputs: { name: string; dtype: string; dims: Dim[] | null }[];
  outputs: { name: string; dtype: string; dims: Dim[] | null }[];
  /** Elements of the model's parameters: float tensors and quantized weights (PARAMETER_RULE). */
  parameters: number;
  parameterBytes: number;
  /** Initializers not counted as parameters (shape constants, indices) and their elements. */
  otherTensors: { tensors: number; elements: number };
  byDtype: Record<string, { tensors: number; params: number; bytes: number }>;
  externalDataFiles: string[];
  largest: TensorSummary[];
  quantizable: QuantizableVerdict[];
}

/** The weight input slot of each op that quantization rewrites, and the float types it takes. */
const WEIGHT_SLOTS: Record<string, number> = { MatMul: 1, Gemm: 1, Conv: 1, Gather: 0, ConvTranspose: 1 };

/**
 * The quantized data input of the ops that dequantize integer weights: an integer initializer read
 * there is a parameter; other integer initializers are shapes, axes or indices.
 */
const QUANTIZED_DATA_SLOTS: Record<string, number> = {
  DequantizeLinear: 0,
  MatMulNBits: 1,
  MatMulBnb4: 1,
  GatherBlockQuantized: 0,
  MatMulInteger: 1,
  ConvInteger: 1,
  QLinearMatMul: 3,
  QLinearConv: 3,
  DynamicQuantizeMatMul: 1,
};

export const PARAMETER_RULE =
  'float tensors, and integer tensors read as quantized weights; shape constants and indices not counted';

function isParameter(dtype: DType, name: string, readers: readonly { opType: string; inputs: string[] }[]): boolean {
  const kind = dtypeInfo(dtype).kind;
  if (kind === 'float') return true;
  return readers.some((r) => r.inputs[QUANTIZED_DATA_SLOTS[r.opType] ?? -1] === name);
}

function locationOf(model: Model, name: string): string {
  const init = model.graph.initializers.get(name);
  const src = init && sourceProto(init);
  if (src && src.dataLocation === TensorProto_DataLocation.EXTERNAL) {
    return src.externalData.find((e) => e.key === 'location')?.value ?? 'external';
  }
  return 'inline';
}

function verdict(
  name: string,
  dtype: DType,
  dims: readonly number[],
  readers: { name: string; opType: string; inputs: string[] }[],
): QuantizableVerdict {
  return { name, readers: readers.map((r) => r.name), ...quantizability(name, dtype, dims, readers) };
}

function quantizability(
  name: string,
  dtype: DType,
  dims: readonly number[],
  readers: { opType: string; inputs: string[] }[],
): { quantizable: boolean; reason: string } {
  if (dtype !== 'float32' && dtype !== 'float16' && dtype !== 'bfloat16')
    return { quantizable: false, reason: `already ${dtype}` };
  if (readers.length === 0) return { quantizable: false, reason: 'not read by any node' };
  const uses: string[] = [];
  for (const r of readers) {
    const slot = WEIGHT_SLOTS[r.opType];
    const at = r.inputs.indexOf(name);
    if (slot === undefined || at !== slot) {
      return { quantizable: false, reason: `read by ${r.opType} input ${at}, not a weight slot` };
    }
    uses.push(`${r.opType} ${r.opType === 'Gather' ? 'data' : 'weight'}`);
  }
  if (dims.length < 2) return { quantizable: false, reason: `rank ${dims.length}: biases and scalars stay in float` };
  return { quantizable: true, reason: [...new Set(uses)].join(', ') };
}

export function inspectModel(model: Model, largestCount = 10): InspectReport {
  const g = model.graph;
  const opCounts: Record<string, number> = {};
  for (const n of g.nodes) {
    const key = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    opCounts[key] = (opCounts[key] ?? 0) + 1;
  }
  const readers = consumers(g);
  const tensors: TensorSummary[] = [];
  const byDtype: InspectReport['byDtype'] = {};
  const externalFiles = new Set<string>();
  const quantizable: QuantizableVerdict[] = [];
  const params = { count: 0, bytes: 0 };
  const other = { tensors: 0, elements: 0 };
  for (const init of g.initializers.values()) {
    const count = elementCount(init.dims);
    const bytes = storageBytes(init.dtype, count);
    const location = locationOf(model, init.name);
    if (location !== 'inline') externalFiles.add(location);
    tensors.push({ name: init.name, dtype: init.dtype, dims: [...init.dims], params: count, bytes, location });
    const d = (byDtype[init.dtype] ??= { tensors: 0, params: 0, bytes: 0 });
    d.tensors++;
    d.params += count;
    d.bytes += bytes;
    quantizable.push(verdict(init.name, init.dtype, init.dims, readers.get(init.name) ?? []));
    if (isParameter(init.dtype, init.name, readers.get(init.name) ?? [])) {
      params.count += count;
      params.bytes += bytes;
    } else {
      other.tensors++;
      other.elements += count;
    }
  }
  const io = (v: { name: string; dtype: DType | undefined; dims: Dim[] | undefined }) => ({
    name: v.name,
    dtype: v.dtype ?? 'unknown',
    dims: v.dims ?? null,
  });
  return {
    irVersion: model.irVersion,
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    opsets: Object.fromEntries([...model.opsets].map(([d, v]) => [d || 'ai.onnx', v])),
    opCounts,
    inputs: g.inputs.map(io),
    outputs: g.outputs.map(io),
    parameters: params.count,
    parameterBytes: params.bytes,
    otherTensors: other,
    byDtype,
    externalDataFiles: [...externalFiles],
    largest: [...tensors].sort((a, b) => b.bytes - a.bytes).slice(0, largestCount),
    quantizable,
  };
}
