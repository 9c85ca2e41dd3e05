// Test helper: one-node ONNX models run in ONNX Runtime (the independent truth for Q/DQ math).
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema, AttributeProto_AttributeType, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema,
  TensorProtoSchema, TypeProtoSchema, ValueInfoProtoSchema,
} from 'onnx-buf';
import type { AttributeProto, TensorProto } from 'onnx-buf';
import * as ort from 'onnxruntime-node';

function valueInfo(name: string, elemType: number) {
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: { elemType } } }) });
}

export interface OneNode {
  op: string;
  inputs: { name: string; elemType: number }[];
  initializers?: TensorProto[];
  outputs: { name: string; elemType: number }[];
  attributes?: AttributeProto[];
  opset?: number;
}

export function oneNodeModel(m: OneNode): Uint8Array {
  const node = create(NodeProtoSchema, {
    opType: m.op,
    input: [...m.inputs.map((i) => i.name), ...(m.initializers ?? []).map((t) => t.name)],
    output: m.outputs.map((o) => o.name),
    attribute: m.attributes ?? [],
  });
  const graph = create(GraphProtoSchema, {
    name: 'g',
    node: [node],
    input: m.inputs.map((i) => valueInfo(i.name, i.elemType)),
    output: m.outputs.map((o) => valueInfo(o.name, o.elemType)),
    initializer: m.initializers ?? [],
  });
  const model = create(ModelProtoSchema, {
    irVersion: 10n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(m.opset ?? 21) })],
    graph,
  });
  return toBinary(ModelProtoSchema, model);
}

export function floatInit(name: string, dims: number[], values: Float32Array): TensorProto {
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: 1, floatData: Array.from(values) });
}

export function int8Init(name: string, dims: number[], values: Int8Array): TensorProto {
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: 3, int32Data: Array.from(values) });
}

export function intAttr(name: string, i: number): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(i) });
}

export async function runModel(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

export { ort };
