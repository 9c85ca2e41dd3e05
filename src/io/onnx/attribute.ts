import { QuantkitError } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AT,
  create,
  type AttributeProto,
  type GraphProto,
  type SparseTensorProto,
  type TypeProto,
} from './proto.js';
import { tensorFromProto, tensorToProto } from './tensor.js';

/**
 * AttributeProto as a plain JS value. int64 attributes become numbers when they fit in a double
 * exactly (axis, block_size, saturate ...); the rare one that does not stays a bigint, so no
 * value is ever silently rounded.
 */
export type AttributeValue =
  | number
  | bigint
  | string
  | Tensor
  | GraphProto
  | SparseTensorProto
  | TypeProto
  | number[]
  | (number | bigint)[]
  | string[]
  | Tensor[]
  | GraphProto[]
  | SparseTensorProto[]
  | TypeProto[];

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

function intValue(i: bigint): number | bigint {
  return i >= BigInt(Number.MIN_SAFE_INTEGER) && i <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(i) : i;
}

function text(bytes: Uint8Array, a: AttributeProto): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw new QuantkitError(
      'QK_ONNX_BAD_ATTRIBUTE',
      `attribute '${a.name}' holds a string that is not valid UTF-8`,
      'onnx.proto requires UTF-8 strings; the model is corrupt',
    );
  }
}

/** The value of an attribute, chosen by its `type` discriminator (IR >= 0.0.2 requires it). */
export function attributeValue(a: AttributeProto, where?: string): AttributeValue {
  const label = `${where ? `${where}: ` : ''}attribute '${a.name}'`;
  switch (a.type) {
    case AT.FLOAT:
      return a.f;
    case AT.INT:
      return intValue(a.i);
    case AT.STRING:
      return text(a.s, a);
    case AT.TENSOR:
      if (!a.t) throw missing(label, 't');
      return tensorFromProto(a.t, `${label} tensor`);
    case AT.GRAPH:
      if (!a.g) throw missing(label, 'g');
      return a.g;
    case AT.SPARSE_TENSOR:
      if (!a.sparseTensor) throw missing(label, 'sparse_tensor');
      return a.sparseTensor;
    case AT.TYPE_PROTO:
      if (!a.tp) throw missing(label, 'tp');
      return a.tp;
    case AT.FLOATS:
      return [...a.floats];
    case AT.INTS: {
      const values = a.ints.map(intValue);
      return values;
    }
    case AT.STRINGS:
      return a.strings.map((s) => text(s, a));
    case AT.TENSORS:
      return a.tensors.map((t, k) => tensorFromProto(t, `${label} tensor ${k}`));
    case AT.GRAPHS:
      return [...a.graphs];
    case AT.SPARSE_TENSORS:
      return [...a.sparseTensors];
    case AT.TYPE_PROTOS:
      return [...a.typeProtos];
    default:
      throw new QuantkitError(
        'QK_ONNX_BAD_ATTRIBUTE',
        `${label} has attribute type ${String(a.type)}, which is undefined or unknown`,
        'onnx.proto requires AttributeProto.type for IR 0.0.2 and later; re-export the model with a current exporter',
      );
  }
}

function missing(label: string, field: string): QuantkitError {
  return new QuantkitError(
    'QK_ONNX_BAD_ATTRIBUTE',
    `${label} declares its type but has no '${field}' field`,
    'the model is corrupt; re-export it',
  );
}

/** What makeAttribute accepts; `kind` settles the cases JS cannot tell apart (1 as int or float, []). */
export type AttributeInput =
  | number
  | bigint
  | string
  | Uint8Array
  | Tensor
  | GraphProto
  | readonly number[]
  | readonly bigint[]
  | readonly string[]
  | readonly Tensor[];
export type AttributeKind = 'float' | 'int' | 'string' | 'tensor' | 'graph' | 'floats' | 'ints' | 'strings' | 'tensors';

function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && 'dtype' in v && 'dims' in v && 'data' in v;
}

function isGraph(v: unknown): v is GraphProto {
  return typeof v === 'object' && v !== null && (v as { $typeName?: string }).$typeName === 'onnx.GraphProto';
}

function inferKind(value: AttributeInput): AttributeKind {
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  if (typeof value === 'bigint') return 'int';
  if (typeof value === 'string' || value instanceof Uint8Array) return 'string';
  if (isTensor(value)) return 'tensor';
  if (isGraph(value)) return 'graph';
  const list = value as readonly unknown[];
  if (list.length === 0) return 'ints';
  if (list.every((v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)))) return 'ints';
  if (list.every((v) => typeof v === 'number')) return 'floats';
  if (list.every((v) => typeof v === 'string')) return 'strings';
  if (list.every(isTensor)) return 'tensors';
  throw new QuantkitError(
    'QK_ONNX_BAD_ATTRIBUTE',
    'attribute list mixes value kinds',
    'give a list of numbers, strings or tensors, or pass the kind explicitly',
  );
}

function badInput(name: string, kind: AttributeKind): QuantkitError {
  return new QuantkitError(
    'QK_ONNX_BAD_ATTRIBUTE',
    `attribute '${name}' value does not fit kind '${kind}'`,
    'pass a value of the kind named',
  );
}

/**
 * Builds an AttributeProto. Integers default to INT, other numbers to FLOAT; pass `kind`
 * ('float', 'floats', ...) when a whole number must be a float or a list is empty.
 */
export function makeAttribute(
  name: string,
  value: AttributeInput,
  kind: AttributeKind = inferKind(value),
): AttributeProto {
  const a = create(AttributeProtoSchema, { name });
  const list = Array.isArray(value) ? (value as readonly unknown[]) : undefined;
  switch (kind) {
    case 'float':
      if (typeof value !== 'number') throw badInput(name, kind);
      a.type = AT.FLOAT;
      a.f = value;
      break;
    case 'int':
      if (typeof value !== 'number' && typeof value !== 'bigint') throw badInput(name, kind);
      if (typeof value === 'number' && !Number.isSafeInteger(value)) throw badInput(name, kind);
      a.type = AT.INT;
      a.i = BigInt(value);
      break;
    case 'string':
      if (typeof value === 'string') a.s = utf8Encoder.encode(value) as Uint8Array<ArrayBuffer>;
      else if (value instanceof Uint8Array) a.s = Uint8Array.from(value);
      else throw badInput(name, kind);
      a.type = AT.STRING;
      break;
    case 'tensor':
      if (!isTensor(value)) throw badInput(name, kind);
      a.type = AT.TENSOR;
      a.t = tensorToProto(value);
      break;
    case 'graph':
      if (!isGraph(value)) throw badInput(name, kind);
      a.type = AT.GRAPH;
      a.g = value;
      break;
    case 'floats':
      if (!list?.every((v) => typeof v === 'number')) throw badInput(name, kind);
      a.type = AT.FLOATS;
      a.floats = [...(list as number[])];
      break;
    case 'ints':
      if (!list?.every((v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v))))
        throw badInput(name, kind);
      a.type = AT.INTS;
      a.ints = (list as (number | bigint)[]).map((v) => BigInt(v));
      break;
    case 'strings':
      if (!list?.every((v) => typeof v === 'string')) throw badInput(name, kind);
      a.type = AT.STRINGS;
      a.strings = (list as string[]).map((s) => utf8Encoder.encode(s) as Uint8Array<ArrayBuffer>);
      break;
    case 'tensors':
      if (!list?.every(isTensor)) throw badInput(name, kind);
      a.type = AT.TENSORS;
      a.tensors = (list as Tensor[]).map((t) => tensorToProto(t));
      break;
  }
  return a;
}
