import { OptionError, QuantkitError } from '../../errors.js';
import { dtypeInfo, storageBytes, type DType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import { elementCount } from '../../tensor/tensor.js';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  create,
  type ModelProto,
  type TensorProto,
} from './proto.js';
import { toBinary } from '@bufbuild/protobuf';
import { tensorFromProto, tensorToProto } from './tensor.js';

/*
 * ONNX writer that streams. A model is a small skeleton (nodes, inputs, opsets) plus initializers
 * that may be far larger than memory's comfort, so the layout of both output files is planned from
 * names, dtypes and dims alone; then the bytes are produced one tensor at a time (load, encode,
 * yield, drop) by two generators the Node layer writes to disk (node/model-writer.ts).
 *
 * Self-contained output: protobuf needs each embedded message's length before its bytes, so every
 * initializer is emitted as its TensorProto without raw_data, followed by the raw_data field
 * written by hand (field order inside a message is free in protobuf) — its size is known from
 * dims × dtype before the tensor is loaded, so the graph's length is known up front too.
 *
 * External output (onnx/docs/ExternalData.md): tensors of at least `threshold` bytes go to one data
 * file named by `location`, with offset/length keys. Offsets are aligned as ONNX Runtime's own
 * writer does when asked to (ModelSavingOptions: align_offset, align_threshold = 1 MiB,
 * allocation_granularity = 64 KiB, so the loader can mmap big tensors on Linux and Windows); the
 * smaller ones are aligned to 16 bytes, so any element type can be viewed in place.
 */

/** protobuf's hard limit for one serialized message. */
export const PROTOBUF_MAX_BYTES = 2 ** 31 - 1;
/** onnx.external_data_helper's default: tensors smaller than this stay in the .onnx. */
export const DEFAULT_EXTERNAL_THRESHOLD = 1024;
export const LARGE_TENSOR_ALIGN_THRESHOLD = 1 << 20;
export const LARGE_TENSOR_ALIGNMENT = 1 << 16;
export const SMALL_TENSOR_ALIGNMENT = 16;

/** One initializer to write; its bytes are loaded only when its turn comes. */
export interface TensorToWrite {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  /**
   * The TensorProto to copy name/doc_string/metadata_props (and, for inline typed-field tensors,
   * the data itself) from. External-data keys in it are dropped; raw_data is never read from it
   * directly (rawBytes() is).
   */
  readonly template?: TensorProto;
  /** The raw_data layout bytes (little-endian, sub-byte packed). Not called for string tensors. */
  rawBytes(): Uint8Array;
}

export interface OnnxWriteOptions {
  /**
   * 'auto' (default): one self-contained file unless it would pass protobuf's 2 GiB limit;
   * true: tensors of `threshold` bytes or more go to the data file; false: one file or an error.
   */
  readonly externalData?: boolean | 'auto';
  /** Bytes at or above which a tensor goes external (default 1024, as onnx does). */
  readonly threshold?: number;
  /** The data file's location relative to the model, e.g. 'model.onnx.data'. */
  readonly dataLocation: string;
}

export interface PlannedTensor {
  readonly name: string;
  readonly bytes: number;
  /** undefined: stored inside the .onnx. */
  readonly offset: number | undefined;
}

export interface OnnxWritePlan {
  /** Whether a data file is written at all. */
  readonly external: boolean;
  readonly dataLocation: string | undefined;
  /** Size of the data file (0 when not external). */
  readonly dataSize: number;
  readonly tensors: readonly PlannedTensor[];
  /** The .onnx bytes, in order; tensors are loaded one at a time while iterating. */
  modelChunks(): Generator<Uint8Array>;
  /** The data file bytes, in order (nothing when not external). */
  dataChunks(): Generator<Uint8Array>;
}

// ---------------------------------------------------------------------------------------------
// TensorToWrite sources

/** raw_data bytes of a TensorProto, whatever field holds them; external ones through `external`. */
export function protoRawBytes(p: TensorProto, external?: (p: TensorProto) => Uint8Array): Uint8Array {
  if (p.dataLocation === TensorProto_DataLocation.EXTERNAL) {
    if (!external) return tensorToProto(tensorFromProto(p)).rawData; // raises the unresolved-data error
    return external(p);
  }
  if (p.rawData.length > 0) return p.rawData;
  return tensorToProto(tensorFromProto(p)).rawData;
}

function dimsOfProto(p: TensorProto): number[] {
  return p.dims.map((d) => {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new QuantkitError(
        'QK_TENSOR_BAD_DIMS',
        `tensor '${p.name}' has dimension ${d}`,
        'tensor dims must be non-negative; the file is corrupt',
      );
    }
    return Number(d);
  });
}

/** A TensorProto as read from a file (inline or external), written back with the same bytes. */
export function tensorFromProtoToWrite(
  p: TensorProto,
  dtype: DType,
  external?: (p: TensorProto) => Uint8Array,
): TensorToWrite {
  return { name: p.name, dtype, dims: dimsOfProto(p), template: p, rawBytes: () => protoRawBytes(p, external) };
}

/** A tensor computed by a pass; `load` is called when the writer reaches it. */
export function tensorToWrite(name: string, dtype: DType, dims: readonly number[], load: () => Tensor): TensorToWrite {
  return { name, dtype, dims, rawBytes: () => tensorToProto(load()).rawData };
}

// ---------------------------------------------------------------------------------------------
// protobuf framing

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function varint(n: number): Uint8Array {
  const out = new Uint8Array(varintSize(n));
  let i = 0;
  while (n >= 128) {
    out[i++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[i] = n;
  return out;
}

/** Tag byte of a length-delimited field (wire type 2); all field numbers used here are < 16. */
const lengthDelimitedTag = (field: number) => Uint8Array.of((field << 3) | 2);
const MODEL_GRAPH = 7; // onnx.proto ModelProto.graph
const GRAPH_INITIALIZER = 5; // GraphProto.initializer
const TENSOR_RAW_DATA = 9; // TensorProto.raw_data

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** The proto without its data: raw_data and the external-data keys cleared. */
function headerProto(t: TensorToWrite, keepTyped: boolean): TensorProto {
  const src = t.template;
  const p = create(TensorProtoSchema, {
    name: t.name,
    dataType: dtypeInfo(t.dtype).onnx,
    dims: t.dims.map((d) => BigInt(d)),
  });
  if (src) {
    // proto2 presence: assigning '' would write an empty doc_string field the source never had.
    if (src.docString) p.docString = src.docString;
    if (src.metadataProps.length) p.metadataProps = src.metadataProps;
    if (keepTyped) {
      p.floatData = src.floatData;
      p.int32Data = src.int32Data;
      p.stringData = src.stringData;
      p.int64Data = src.int64Data;
      p.doubleData = src.doubleData;
      p.uint64Data = src.uint64Data;
    }
  }
  return p;
}

/** Inline tensors whose data sits in typed fields (float_data, string_data...) are copied as is. */
function usesTypedFields(t: TensorToWrite): boolean {
  const p = t.template;
  if (t.dtype === 'string') return true;
  return (
    !!p &&
    p.dataLocation !== TensorProto_DataLocation.EXTERNAL &&
    p.rawData.length === 0 &&
    p.floatData.length + p.int32Data.length + p.int64Data.length + p.doubleData.length + p.uint64Data.length > 0
  );
}

interface InlineTensor {
  readonly header: Uint8Array;
  /** Raw bytes to append as field 9; 0 with typed fields. */
  readonly raw: number;
  readonly size: number;
}

function inlineLayout(t: TensorToWrite, rawLength: number): InlineTensor {
  const typed = usesTypedFields(t);
  const header = toBinary(TensorProtoSchema, headerProto(t, typed));
  const raw = typed ? 0 : rawLength;
  // An empty raw_data field is still written, so a zero-element tensor reads as raw (length 0 = 0 elements).
  const size = header.length + (typed ? 0 : 1 + varintSize(raw) + raw);
  return { header, raw, size };
}

function checkedRaw(t: TensorToWrite, expected: number): Uint8Array {
  const bytes = t.rawBytes();
  if (bytes.length !== expected) {
    throw new QuantkitError(
      'QK_TENSOR_DATA_LENGTH',
      `tensor '${t.name}' (${t.dtype} [${t.dims.join(', ')}]) has ${bytes.length} bytes of data but needs ${expected}`,
      t.template
        ? // Copied from an input file: the file is at fault; built by a pass: quantkit is.
          'the dims and the stored data disagree: the file is truncated or corrupt; re-export it'
        : 'the tensor and its declared dims disagree; this is a bug in the pass that built it',
    );
  }
  return bytes;
}

function rawSize(t: TensorToWrite): number {
  if (t.dtype === 'string') return 0;
  const n = storageBytes(t.dtype, elementCount(t.dims));
  if (!Number.isSafeInteger(n))
    throw new QuantkitError(
      'QK_TENSOR_BAD_DIMS',
      `tensor '${t.name}' dims [${t.dims.join(', ')}] are too large to store`,
      'check the model',
    );
  return n;
}

// ---------------------------------------------------------------------------------------------
// IR version

/** Lowest IR version each ai.onnx opset needs (onnx/helper.py VERSION_TABLE). */
function irForOpset(opset: number): number {
  if (opset <= 8) return 3;
  if (opset <= 11) return opset - 5; // 9→4, 10→5, 11→6
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  if (opset === 23) return 11;
  if (opset === 24) return 12;
  return 13;
}

/** Lowest IR version that has each element type (onnx.proto Version enum comments). */
function irForDType(dtype: DType): number {
  switch (dtype) {
    case 'float8e4m3fn':
    case 'float8e4m3fnuz':
    case 'float8e5m2':
    case 'float8e5m2fnuz':
      return 9;
    case 'int4':
    case 'uint4':
      return 10;
    case 'float4e2m1':
      return 11;
    case 'float8e8m0':
      return 12;
    case 'int2':
    case 'uint2':
      return 13;
    default:
      return 3;
  }
}

/**
 * The IR version to write: what the model says, capped at 10 (which ONNX Runtime 1.16+ loads),
 * but never below what its ai.onnx opset or its initializer types need.
 */
export function chooseIrVersion(current: number, aiOnnxOpset: number | undefined, dtypes: Iterable<DType>): number {
  let need = aiOnnxOpset === undefined ? 3 : irForOpset(aiOnnxOpset);
  for (const d of dtypes) need = Math.max(need, irForDType(d));
  return Math.max(Math.min(current, 10), need);
}

// ---------------------------------------------------------------------------------------------
// the plan

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Plans the .onnx (and data file) for `skeleton` with `tensors` as its graph initializers (the
 * skeleton's own initializer list is ignored; it is not modified). Nothing is loaded here.
 */
export function planOnnxWrite(
  skeleton: ModelProto,
  tensors: readonly TensorToWrite[],
  opts: OnnxWriteOptions,
): OnnxWritePlan {
  if (!skeleton.graph)
    throw new QuantkitError('QK_MODEL_NO_GRAPH', 'the model to write has no graph', 'build the model with a graph');
  const threshold = opts.threshold ?? DEFAULT_EXTERNAL_THRESHOLD;
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `external-data threshold ${threshold} is not a non-negative integer`,
      'pass a byte count such as 1024',
    );
  }
  const seen = new Set<string>();
  for (const t of tensors) {
    if (!t.name)
      throw new QuantkitError(
        'QK_GRAPH_UNNAMED_TENSOR',
        'an initializer to write has no name',
        'name every initializer',
      );
    if (seen.has(t.name))
      throw new QuantkitError(
        'QK_GRAPH_DUPLICATE_NAME',
        `initializer '${t.name}' is written twice`,
        'initializer names must be unique',
      );
    seen.add(t.name);
  }
  const aiOnnx = skeleton.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  const irVersion = chooseIrVersion(
    Number(skeleton.irVersion),
    aiOnnx ? Number(aiOnnx.version) : undefined,
    tensors.map((t) => t.dtype),
  );
  const graphNoInit = create(GraphProtoSchema, { ...skeleton.graph, initializer: [] });
  const { graph: _graph, ...rest } = skeleton;
  const modelNoGraph = create(ModelProtoSchema, { ...rest, irVersion: BigInt(irVersion) });
  const graphHead = toBinary(GraphProtoSchema, graphNoInit);
  const modelHead = toBinary(ModelProtoSchema, modelNoGraph);
  const raws = tensors.map(rawSize);

  const inlineSize = (list: readonly { size: number }[]) => {
    const graphLen = graphHead.length + list.reduce((s, x) => s + 1 + varintSize(x.size) + x.size, 0);
    return { graphLen, total: modelHead.length + 1 + varintSize(graphLen) + graphLen };
  };
  // Sizes only: headers are small, so computing them for the decision is cheap.
  const allInline = tensors.map((t, i) => inlineLayout(t, raws[i] as number));
  let external = opts.externalData === true;
  if (opts.externalData !== true) {
    const fits = inlineSize(allInline).total <= PROTOBUF_MAX_BYTES;
    if (!fits && opts.externalData === false) {
      throw new OptionError(
        'QK_ONNX_TOO_LARGE',
        `the model needs ${inlineSize(allInline).total} bytes as one file, over protobuf's 2 GiB limit`,
        'write it with external data (`externalData`)',
        ['externalData'],
      );
    }
    external = !fits;
  }

  if (!external) {
    const { graphLen } = inlineSize(allInline);
    return {
      external: false,
      dataLocation: undefined,
      dataSize: 0,
      tensors: tensors.map((t, i) => ({ name: t.name, bytes: raws[i] as number, offset: undefined })),
      *modelChunks() {
        yield concat([modelHead, lengthDelimitedTag(MODEL_GRAPH), varint(graphLen), graphHead]);
        for (const [i, t] of tensors.entries()) {
          const lay = allInline[i] as InlineTensor;
          const framing = [lengthDelimitedTag(GRAPH_INITIALIZER), varint(lay.size), lay.header];
          if (usesTypedFields(t)) {
            yield concat(framing);
            continue;
          }
          yield concat([...framing, lengthDelimitedTag(TENSOR_RAW_DATA), varint(lay.raw)]);
          if (lay.raw > 0) yield checkedRaw(t, lay.raw);
        }
      },
      *dataChunks() {
        /* nothing: self-contained */
      },
    };
  }

  // External layout: offsets from sizes alone.
  const location = opts.dataLocation;
  const offsets: (number | undefined)[] = [];
  let cursor = 0;
  for (const [i, t] of tensors.entries()) {
    const n = raws[i] as number;
    if (t.dtype === 'string' || n < threshold || n === 0) {
      offsets.push(undefined);
      continue;
    }
    cursor = align(cursor, n > LARGE_TENSOR_ALIGN_THRESHOLD ? LARGE_TENSOR_ALIGNMENT : SMALL_TENSOR_ALIGNMENT);
    offsets.push(cursor);
    cursor += n;
  }
  const dataSize = cursor;
  const externalHeader = (t: TensorToWrite, offset: number, n: number) => {
    const p = headerProto(t, false);
    p.dataLocation = TensorProto_DataLocation.EXTERNAL;
    p.externalData = [
      create(StringStringEntryProtoSchema, { key: 'location', value: location }),
      create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
      create(StringStringEntryProtoSchema, { key: 'length', value: String(n) }),
    ];
    return toBinary(TensorProtoSchema, p);
  };
  const layouts = tensors.map((t, i) => {
    const off = offsets[i];
    if (off === undefined) return allInline[i] as InlineTensor;
    const header = externalHeader(t, off, raws[i] as number);
    return { header, raw: 0, size: header.length };
  });
  const { graphLen, total } = inlineSize(layouts);
  if (total > PROTOBUF_MAX_BYTES) {
    throw new OptionError(
      'QK_ONNX_TOO_LARGE',
      `even with external data the .onnx needs ${total} bytes, over protobuf's 2 GiB limit`,
      `lower \`threshold\` (now ${threshold}) so more tensors go external`,
      ['threshold'],
    );
  }
  return {
    external: true,
    dataLocation: location,
    dataSize,
    tensors: tensors.map((t, i) => ({ name: t.name, bytes: raws[i] as number, offset: offsets[i] })),
    *modelChunks() {
      yield concat([modelHead, lengthDelimitedTag(MODEL_GRAPH), varint(graphLen), graphHead]);
      for (const [i, t] of tensors.entries()) {
        const lay = layouts[i] as InlineTensor;
        const parts = [lengthDelimitedTag(GRAPH_INITIALIZER), varint(lay.size), lay.header];
        if (offsets[i] === undefined && !usesTypedFields(t)) {
          parts.push(lengthDelimitedTag(TENSOR_RAW_DATA), varint(lay.raw));
          if (lay.raw > 0) parts.push(checkedRaw(t, lay.raw));
        }
        yield concat(parts);
      }
    },
    *dataChunks() {
      let at = 0;
      for (const [i, t] of tensors.entries()) {
        const off = offsets[i];
        if (off === undefined) continue;
        if (off > at) yield new Uint8Array(off - at); // zero padding up to the aligned offset
        const n = raws[i] as number;
        yield checkedRaw(t, n);
        at = off + n;
      }
    },
  };
}

/** The whole self-contained model in memory (small models, tests). */
export function encodeOnnxInline(skeleton: ModelProto, tensors: readonly TensorToWrite[]): Uint8Array {
  const plan = planOnnxWrite(skeleton, tensors, { externalData: false, dataLocation: '' });
  return concat([...plan.modelChunks()]);
}
