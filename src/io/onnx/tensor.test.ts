import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isQuantkitError } from '../../errors.js';
import { ALL_DTYPES, dtypeInfo, onnxDataType, type DType } from '../../tensor/dtype.js';
import { makeTensor, type Tensor, type TensorData } from '../../tensor/tensor.js';
import {
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_SegmentSchema,
  TensorProto_DataLocation,
  create,
  decodeTensorProto,
  encodeTensorProto,
  type TensorProto,
} from './proto.js';
import { tensorFromProto, tensorToProto } from './tensor.js';

const ROOT = '/work/shared/onnx-node-tests';
const CASES = readdirSync(ROOT)
  .filter((c) => c.startsWith('test_'))
  .sort();
const PB_FILES = CASES.flatMap((c) => {
  const dir = join(ROOT, c, 'test_data_set_0');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.pb'))
    .sort()
    .map((f) => join(dir, f));
});

function plain(t: Tensor): { dtype: DType; dims: number[]; data: unknown[] } {
  return { dtype: t.dtype, dims: [...t.dims], data: Array.from(t.data as ArrayLike<unknown>) };
}

/** Bit-level equality: NaN payloads and -0 must survive, so compare the storage bytes. */
function expectSameTensor(a: Tensor, b: Tensor): void {
  expect(a.dtype).toBe(b.dtype);
  expect([...a.dims]).toEqual([...b.dims]);
  if (Array.isArray(a.data)) {
    expect(a.data).toEqual(b.data);
    return;
  }
  const bytes = (d: TensorData) => {
    const v = d as Exclude<TensorData, string[]>;
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  };
  expect(a.data.constructor).toBe(b.data.constructor);
  expect(bytes(a.data)).toEqual(bytes(b.data));
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isQuantkitError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

describe('conformance .pb files', () => {
  it(`finds the conformance test data (${PB_FILES.length} files)`, () => {
    expect(PB_FILES.length).toBeGreaterThan(300);
  });

  it('every file decodes and re-encodes, in raw_data and in typed fields, to identical data', () => {
    const seen = new Set<DType>();
    for (const path of PB_FILES) {
      const proto = decodeTensorProto(readFileSync(path), path);
      const t = tensorFromProto(proto, path);
      seen.add(t.dtype);
      for (const useRawData of [true, false]) {
        const again = tensorFromProto(decodeTensorProto(encodeTensorProto(tensorToProto(t, { useRawData }))));
        expectSameTensor(again, t);
      }
      // A file already in raw form re-encodes to the very same raw bytes.
      if (proto.rawData.length > 0) expect(Array.from(tensorToProto(t).rawData)).toEqual(Array.from(proto.rawData));
    }
    // 19 dtypes appear in the conformance data (no int64/uint32/uint64/bool/string there).
    expect(seen.size).toBeGreaterThanOrEqual(19);
  });

  // DequantizeLinear y = (x - zero_point) * scale (operators-quantization spec): the expected
  // outputs written by the ONNX reference pin down how x and zero_point are unpacked, including
  // the sign extension and nibble/crumb order of the files stored packed in int32_data.
  const integerDequant = [
    'test_dequantizelinear',
    'test_dequantizelinear_int16',
    'test_dequantizelinear_uint16',
    'test_dequantizelinear_int4',
    'test_dequantizelinear_uint4',
    'test_dequantizelinear_int2',
    'test_dequantizelinear_uint2',
  ];
  it.each(integerDequant)('%s: decoded x, scale and zero point reproduce the expected output', (name) => {
    const load = (f: string) =>
      tensorFromProto(decodeTensorProto(readFileSync(join(ROOT, name, 'test_data_set_0', f))));
    const [x, scale, zp, y] = [load('input_0.pb'), load('input_1.pb'), load('input_2.pb'), load('output_0.pb')];
    const s = scale.data[0] as number;
    const z = zp.data[0] as number;
    expect(Array.from(x.data as ArrayLike<number>, (v) => (v - z) * s)).toEqual(Array.from(y.data as Float32Array));
  });
});

/**
 * Hand-worked encodings of every dtype: the raw_data bytes (little-endian, sub-byte packed with
 * the first element in the low bits) and the typed-field entries as onnx.proto documents them.
 */
interface Case {
  dtype: DType;
  dims: number[];
  data: TensorData;
  raw?: number[];
  typed: Partial<
    Pick<TensorProto, 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data' | 'stringData'>
  >;
}

const CASES_BY_HAND: Case[] = [
  {
    dtype: 'float32',
    dims: [2],
    data: new Float32Array([1, -2]),
    raw: [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0],
    typed: { floatData: [1, -2] },
  },
  {
    dtype: 'float64',
    dims: [1],
    data: new Float64Array([1.5]),
    raw: [0, 0, 0, 0, 0, 0, 0xf8, 0x3f],
    typed: { doubleData: [1.5] },
  },
  // float16 1.0 = 0x3c00, -2.0 = 0xc000; int32_data holds the unsigned bit pattern.
  {
    dtype: 'float16',
    dims: [2],
    data: new Uint16Array([0x3c00, 0xc000]),
    raw: [0x00, 0x3c, 0x00, 0xc0],
    typed: { int32Data: [0x3c00, 0xc000] },
  },
  { dtype: 'bfloat16', dims: [1], data: new Uint16Array([0x3f80]), raw: [0x80, 0x3f], typed: { int32Data: [0x3f80] } },
  // e4m3fn: 1.0 = 0x38, NaN = 0x7f; e5m2: 1.0 = 0x3c; fnuz: 1.0 = 0x40 (bias 8); e8m0 127 = 2^0.
  {
    dtype: 'float8e4m3fn',
    dims: [2],
    data: new Uint8Array([0x38, 0x7f]),
    raw: [0x38, 0x7f],
    typed: { int32Data: [0x38, 0x7f] },
  },
  { dtype: 'float8e4m3fnuz', dims: [1], data: new Uint8Array([0x40]), raw: [0x40], typed: { int32Data: [0x40] } },
  { dtype: 'float8e5m2', dims: [1], data: new Uint8Array([0x3c]), raw: [0x3c], typed: { int32Data: [0x3c] } },
  { dtype: 'float8e5m2fnuz', dims: [1], data: new Uint8Array([0x40]), raw: [0x40], typed: { int32Data: [0x40] } },
  { dtype: 'float8e8m0', dims: [1], data: new Uint8Array([127]), raw: [127], typed: { int32Data: [127] } },
  // float4e2m1 codes 1.0 = 0x2, -6.0 = 0xf, 0.5 = 0x1 -> bytes 0xf2, 0x01.
  {
    dtype: 'float4e2m1',
    dims: [3],
    data: new Uint8Array([0x2, 0xf, 0x1]),
    raw: [0xf2, 0x01],
    typed: { int32Data: [0xf2, 0x01] },
  },
  // int4 [-8, 7, 1]: nibbles 0x8, 0x7, 0x1 -> 0x78, 0x01.
  { dtype: 'int4', dims: [3], data: new Int8Array([-8, 7, 1]), raw: [0x78, 0x01], typed: { int32Data: [0x78, 0x01] } },
  {
    dtype: 'uint4',
    dims: [2, 2],
    data: new Uint8Array([15, 0, 3, 12]),
    raw: [0x0f, 0xc3],
    typed: { int32Data: [0x0f, 0xc3] },
  },
  // int2 [-2, -1, 0, 1]: crumbs 2, 3, 0, 1 -> 2 | 3<<2 | 0<<4 | 1<<6 = 0x4e.
  { dtype: 'int2', dims: [4], data: new Int8Array([-2, -1, 0, 1]), raw: [0x4e], typed: { int32Data: [0x4e] } },
  // uint2 [3, 0, 1, 2, 1]: 3 | 1<<4 | 2<<6 = 0x93, then 0x01.
  {
    dtype: 'uint2',
    dims: [5],
    data: new Uint8Array([3, 0, 1, 2, 1]),
    raw: [0x93, 0x01],
    typed: { int32Data: [0x93, 0x01] },
  },
  {
    dtype: 'int8',
    dims: [3],
    data: new Int8Array([-128, 127, -1]),
    raw: [0x80, 0x7f, 0xff],
    typed: { int32Data: [-128, 127, -1] },
  },
  { dtype: 'uint8', dims: [2], data: new Uint8Array([0, 255]), raw: [0, 255], typed: { int32Data: [0, 255] } },
  {
    dtype: 'int16',
    dims: [2],
    data: new Int16Array([-2, 256]),
    raw: [0xfe, 0xff, 0x00, 0x01],
    typed: { int32Data: [-2, 256] },
  },
  { dtype: 'uint16', dims: [1], data: new Uint16Array([65535]), raw: [0xff, 0xff], typed: { int32Data: [65535] } },
  {
    dtype: 'int32',
    dims: [2],
    data: new Int32Array([-1, 0x01020304]),
    raw: [0xff, 0xff, 0xff, 0xff, 4, 3, 2, 1],
    typed: { int32Data: [-1, 0x01020304] },
  },
  {
    dtype: 'uint32',
    dims: [1],
    data: new Uint32Array([0xffffffff]),
    raw: [0xff, 0xff, 0xff, 0xff],
    typed: { uint64Data: [0xffffffffn] },
  },
  {
    dtype: 'int64',
    dims: [1],
    data: new BigInt64Array([-2n]),
    raw: [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    typed: { int64Data: [-2n] },
  },
  {
    dtype: 'uint64',
    dims: [1],
    data: new BigUint64Array([2n ** 64n - 1n]),
    raw: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    typed: { uint64Data: [2n ** 64n - 1n] },
  },
  { dtype: 'bool', dims: [3], data: new Uint8Array([1, 0, 1]), raw: [1, 0, 1], typed: { int32Data: [1, 0, 1] } },
  {
    dtype: 'string',
    dims: [2],
    data: ['héllo', ''],
    typed: { stringData: [new Uint8Array([0x68, 0xc3, 0xa9, 0x6c, 0x6c, 0x6f]), new Uint8Array()] },
  },
];

function protoOf(c: Case, form: 'raw' | 'typed'): TensorProto {
  const p = create(TensorProtoSchema, {
    dims: c.dims.map(BigInt),
    dataType: onnxDataType(c.dtype),
    name: `t_${c.dtype}`,
  });
  if (form === 'raw') p.rawData = new Uint8Array(c.raw ?? []);
  else Object.assign(p, c.typed);
  return p;
}

describe('hand-worked encodings of every dtype', () => {
  it('cover every dtype in the table', () => {
    expect(new Set(CASES_BY_HAND.map((c) => c.dtype))).toEqual(new Set(ALL_DTYPES));
  });

  it.each(CASES_BY_HAND)('$dtype: raw_data and typed-field forms decode to the same tensor, and encode back', (c) => {
    const expected = makeTensor(c.dtype, c.dims, c.data, `t_${c.dtype}`);
    const fromTyped = tensorFromProto(protoOf(c, 'typed'));
    expectSameTensor(fromTyped, expected);
    expect(fromTyped.name).toBe(`t_${c.dtype}`);
    const typed = tensorToProto(expected, { useRawData: false });
    for (const [field, values] of Object.entries(c.typed)) expect(typed[field as keyof typeof c.typed]).toEqual(values);
    expect(typed.rawData.length).toBe(0);
    if (c.raw) {
      expectSameTensor(tensorFromProto(protoOf(c, 'raw')), expected);
      expect(Array.from(tensorToProto(expected).rawData)).toEqual(c.raw);
    } else {
      // Strings never use raw_data (onnx.proto), even when asked to.
      expect(tensorToProto(expected).stringData).toEqual(c.typed.stringData);
    }
  });

  it('accepts int8 in int32_data written as its unsigned byte (0xff = -1) and float16 written signed', () => {
    const i8 = create(TensorProtoSchema, { dims: [2n], dataType: onnxDataType('int8'), int32Data: [0xff, 0x80] });
    expect(plain(tensorFromProto(i8)).data).toEqual([-1, -128]);
    const f16 = create(TensorProtoSchema, { dims: [1n], dataType: onnxDataType('float16'), int32Data: [-16384] });
    expect(plain(tensorFromProto(f16)).data).toEqual([0xc000]);
  });

  it('reads any non-zero bool byte as true', () => {
    const p = create(TensorProtoSchema, {
      dims: [3n],
      dataType: onnxDataType('bool'),
      rawData: new Uint8Array([0, 2, 255]),
    });
    expect(plain(tensorFromProto(p)).data).toEqual([0, 1, 1]);
  });
});

/** Arbitrary storage for a dtype: every bit pattern of narrow types, edge values of wide ones. */
function arbitraryData(dtype: DType, count: number): fc.Arbitrary<TensorData> {
  const { bits, kind } = dtypeInfo(dtype);
  const ints = (min: number, max: number) => fc.array(fc.integer({ min, max }), { minLength: count, maxLength: count });
  switch (dtype) {
    case 'float32':
      return fc.float32Array({ minLength: count, maxLength: count });
    case 'float64':
      return fc.float64Array({ minLength: count, maxLength: count });
    case 'int64':
      return fc
        .array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { minLength: count, maxLength: count })
        .map((a) => BigInt64Array.from(a));
    case 'uint64':
      return fc
        .array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { minLength: count, maxLength: count })
        .map((a) => BigUint64Array.from(a));
    case 'string':
      return fc.array(fc.string({ unit: 'grapheme' }), { minLength: count, maxLength: count });
    case 'bool':
      return ints(0, 1).map((a) => Uint8Array.from(a));
    case 'int32':
      return fc.int32Array({ minLength: count, maxLength: count });
    case 'uint32':
      return fc.uint32Array({ minLength: count, maxLength: count });
    default: {
      const lo = kind === 'int' ? -(2 ** (bits - 1)) : 0;
      const hi = kind === 'int' ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      return ints(lo, hi).map((a) => {
        const out = makeTensor(dtype, [count]).data as Int8Array;
        out.set(a);
        return out;
      });
    }
  }
}

describe('round trip property', () => {
  it.each(ALL_DTYPES)('%s: tensorFromProto(decode(encode(tensorToProto(t)))) is t, raw and typed', (dtype) => {
    const arb = fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }).chain((dims) => {
      const count = dims.reduce((a, b) => a * b, 1);
      return arbitraryData(dtype, count).map((data) => makeTensor(dtype, dims, data));
    });
    fc.assert(
      fc.property(arb, fc.boolean(), (t, useRawData) => {
        const back = tensorFromProto(decodeTensorProto(encodeTensorProto(tensorToProto(t, { useRawData }))));
        expectSameTensor(back, t);
      }),
      { numRuns: 60 },
    );
  });
});

describe('validation', () => {
  const base = (over: Partial<TensorProto>): TensorProto =>
    Object.assign(create(TensorProtoSchema, { name: 'w', dims: [2n, 2n], dataType: 1 }), over);

  it('raw_data shorter or longer than the dims need: QK_TENSOR_DATA_LENGTH', () => {
    expect(codeOf(() => tensorFromProto(base({ rawData: new Uint8Array(15) })))).toBe('QK_TENSOR_DATA_LENGTH');
    expect(codeOf(() => tensorFromProto(base({ rawData: new Uint8Array(17) })))).toBe('QK_TENSOR_DATA_LENGTH');
    // int4 [3] packs into 2 bytes, not 3.
    expect(codeOf(() => tensorFromProto(base({ dims: [3n], dataType: 22, rawData: new Uint8Array(3) })))).toBe(
      'QK_TENSOR_DATA_LENGTH',
    );
    expect(codeOf(() => tensorFromProto(base({ floatData: [1, 2, 3] })))).toBe('QK_TENSOR_DATA_LENGTH');
    expect(codeOf(() => tensorFromProto(base({})))).toBe('QK_TENSOR_DATA_LENGTH');
  });

  it('names the tensor in the message', () => {
    expect(() => tensorFromProto(base({ rawData: new Uint8Array(3) }))).toThrow(
      /tensor 'w'.*3 bytes in raw_data but needs 16/,
    );
    expect(() => tensorFromProto(base({ rawData: new Uint8Array(3) }), 'model.onnx initializer w')).toThrow(
      /^model\.onnx initializer w/,
    );
  });

  it('negative or overflowing dims: QK_TENSOR_BAD_DIMS', () => {
    expect(codeOf(() => tensorFromProto(base({ dims: [-1n, 2n] })))).toBe('QK_TENSOR_BAD_DIMS');
    expect(codeOf(() => tensorFromProto(base({ dims: [2n ** 40n, 2n ** 40n] })))).toBe('QK_TENSOR_BAD_DIMS');
    expect(codeOf(() => tensorFromProto(base({ dims: [2n ** 62n] })))).toBe('QK_TENSOR_BAD_DIMS');
  });

  it('unknown data_type: QK_UNSUPPORTED_DTYPE (complex64 and 99 alike)', () => {
    expect(codeOf(() => tensorFromProto(base({ dataType: 14, rawData: new Uint8Array(32) })))).toBe(
      'QK_UNSUPPORTED_DTYPE',
    );
    expect(codeOf(() => tensorFromProto(base({ dataType: 99 })))).toBe('QK_UNSUPPORTED_DTYPE');
  });

  it('values in the wrong typed field, or out of the width of int32_data: QK_TENSOR_BAD_FIELD / QK_TENSOR_BAD_VALUE', () => {
    expect(codeOf(() => tensorFromProto(base({ int32Data: [1, 2, 3, 4] })))).toBe('QK_TENSOR_BAD_FIELD');
    expect(codeOf(() => tensorFromProto(base({ dataType: 3, int32Data: [1, 2, 3, 256] })))).toBe('QK_TENSOR_BAD_VALUE');
    expect(codeOf(() => tensorFromProto(base({ dataType: 22, dims: [2n], int32Data: [0x100] })))).toBe(
      'QK_TENSOR_BAD_VALUE',
    );
    expect(codeOf(() => tensorFromProto(base({ dataType: 12, dims: [1n], uint64Data: [2n ** 32n] })))).toBe(
      'QK_TENSOR_BAD_VALUE',
    );
    expect(codeOf(() => tensorFromProto(base({ dataType: 8, dims: [1n], rawData: new Uint8Array([65]) })))).toBe(
      'QK_TENSOR_BAD_FIELD',
    );
    expect(codeOf(() => tensorFromProto(base({ dataType: 8, dims: [1n], stringData: [new Uint8Array([0xff])] })))).toBe(
      'QK_TENSOR_BAD_VALUE',
    );
  });

  it('external data: refused without a resolver, read through one with it', () => {
    const p = base({
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [create(StringStringEntryProtoSchema, { key: 'location', value: 'weights.bin' })],
    });
    expect(codeOf(() => tensorFromProto(p))).toBe('QK_EXTERNAL_DATA_UNRESOLVED');
    expect(() => tensorFromProto(p)).toThrow(/'w'.*weights\.bin/);
    const raw = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
    const t = tensorFromProto(p, undefined, { external: (q) => (q.name === 'w' ? raw : new Uint8Array()) });
    expect(plain(t)).toEqual({ dtype: 'float32', dims: [2, 2], data: [1, 2, 3, 4] });
    expect(codeOf(() => tensorFromProto(p, undefined, { external: () => raw.subarray(4) }))).toBe(
      'QK_TENSOR_DATA_LENGTH',
    );
  });

  it('segmented tensors are refused: QK_TENSOR_BAD_FIELD', () => {
    const p = base({ rawData: new Uint8Array(16) });
    p.segment = create(TensorProto_SegmentSchema, { begin: 0n, end: 4n });
    expect(codeOf(() => tensorFromProto(p))).toBe('QK_TENSOR_BAD_FIELD');
  });

  it('zero-element tensors need no data', () => {
    expect(plain(tensorFromProto(base({ dims: [0n, 3n] })))).toEqual({ dtype: 'float32', dims: [0, 3], data: [] });
  });
});
