import { describe, expect, it } from 'vitest';
import { isQuantkitError } from '../../errors.js';
import { bytesSource, type ByteSource } from '../source.js';
import { readSafetensorsHeader, readSafetensorsTensor } from './read.js';

const enc = new TextEncoder();

/** A file from a header string and data bytes; `claimed` overrides the 8-byte length field. */
function file(header: string, data: ArrayLike<number> = [], claimed?: bigint): Uint8Array {
  const json = enc.encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, claimed ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function patch(bytes: Uint8Array, at: number, values: number[]): Uint8Array {
  const out = bytes.slice();
  out.set(values, at);
  return out;
}

function codeOf(bytes: Uint8Array | ByteSource, readTensors = false): string {
  const src = bytes instanceof Uint8Array ? bytesSource(bytes, 'bad.safetensors') : bytes;
  try {
    const h = readSafetensorsHeader(src);
    if (readTensors) for (const t of h.tensors) readSafetensorsTensor(src, t);
  } catch (e) {
    if (isQuantkitError(e)) {
      expect(e.message).toContain('bad.safetensors');
      return e.code;
    }
    throw e;
  }
  return 'ok';
}

describe('readSafetensorsHeader on hand-made files', () => {
  it('reads the upstream doc example: I32 [2,2] after a 60-byte header', () => {
    // The example in the safetensors crate docs: "<\0\0\0\0\0\0\0{...}" then 16 data bytes.
    const header = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}';
    const bytes = file(header, [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]);
    expect(bytes[0]).toBe(0x3c); // '<' = 60, as in the doc example
    const src = bytesSource(bytes);
    const h = readSafetensorsHeader(src);
    expect(h.tensors).toEqual([{ name: 'test', dtype: 'int32', dims: [2, 2], offset: 68, length: 16 }]);
    expect(h.metadata).toEqual({});
    const t = readSafetensorsTensor(src, h.tensors[0]!);
    expect(t.dtype).toBe('int32');
    expect([...(t.data as Int32Array)]).toEqual([1, -2, 3, 0x7fffffff]);
  });

  it('reads metadata, every byte layout trick (padding spaces, offsets out of name order), and empty and scalar tensors', () => {
    const header =
      '{"b":{"dtype":"F16","shape":[],"data_offsets":[4,6]},"__metadata__":{"format":"pt","__proto__":"x"},' +
      '"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[6,6]}}   ';
    // bf16 1.0 = 0x3f80, bf16 -2.0 = 0xc000, fp16 1.0 = 0x3c00 (IEEE 754 binary16)
    const src = bytesSource(file(header, [0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3c]));
    const h = readSafetensorsHeader(src);
    expect(h.tensors.map((t) => t.name)).toEqual(['a', 'b', 'e']); // file order
    expect(h.metadata.format).toBe('pt');
    expect(Object.getOwnPropertyDescriptor(h.metadata, '__proto__')?.value).toBe('x');
    expect([...(readSafetensorsTensor(src, h.tensors[0]!).data as Uint16Array)]).toEqual([0x3f80, 0xc000]);
    const scalar = readSafetensorsTensor(src, h.tensors[1]!);
    expect(scalar.dims).toEqual([]);
    expect([...(scalar.data as Uint16Array)]).toEqual([0x3c00]);
    expect(readSafetensorsTensor(src, h.tensors[2]!).data.length).toBe(0);
  });

  it('unpacks F4 two per byte, first element in the low nibble', () => {
    const src = bytesSource(file('{"q":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}', [0x21, 0xf7]));
    const t = readSafetensorsTensor(src, readSafetensorsHeader(src).tensors[0]!);
    expect(t.dtype).toBe('float4e2m1');
    expect([...(t.data as Uint8Array)]).toEqual([1, 2, 7, 15]);
  });

  it('maps the F8 names to the ONNX fp8 types', () => {
    const header =
      '{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[1,2]},' +
      '"c":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[2,3]},"d":{"dtype":"F8_E4M3FNUZ","shape":[1],"data_offsets":[3,4]},"e":{"dtype":"F8_E5M2FNUZ","shape":[1],"data_offsets":[4,5]}}';
    const h = readSafetensorsHeader(bytesSource(file(header, [1, 2, 3, 4, 5])));
    expect(h.tensors.map((t) => t.dtype)).toEqual([
      'float8e4m3fn',
      'float8e5m2',
      'float8e8m0',
      'float8e4m3fnuz',
      'float8e5m2fnuz',
    ]);
  });
});

const ONE = (dtype: string, shape: string, offsets: string) =>
  `{"t":{"dtype":${dtype},"shape":${shape},"data_offsets":${offsets}}}`;

describe('every way a safetensors file can be wrong has its own error', () => {
  const cases: [string, Uint8Array][] = [
    ['QK_SAFETENSORS_FILE_TOO_SHORT', new Uint8Array(7)],
    ['QK_SAFETENSORS_FILE_TOO_SHORT', new Uint8Array(0)],
    ['QK_SAFETENSORS_HEADER_TOO_LARGE', file('{}', [], 100_000_001n)],
    ['QK_SAFETENSORS_HEADER_TOO_LARGE', file('{}', [], 0xffffffffffffffffn)],
    ['QK_SAFETENSORS_HEADER_OUT_OF_BOUNDS', file('{}', [], 3n)],
    // Header '{"abc":1}' with its key bytes replaced: a lone 0xFF, then an encoded lone surrogate (ED A0 80).
    ['QK_SAFETENSORS_HEADER_NOT_UTF8', patch(file('{"abc":1}'), 10, [0xff])],
    ['QK_SAFETENSORS_HEADER_NOT_UTF8', patch(file('{"abc":1}'), 10, [0xed, 0xa0, 0x80])],
    ['QK_SAFETENSORS_HEADER_NOT_JSON', file('{"t":')],
    ['QK_SAFETENSORS_HEADER_NOT_JSON', file('')],
    ['QK_SAFETENSORS_HEADER_NOT_JSON', file('{}\0\0\0\0\0\0')],
    ['QK_SAFETENSORS_HEADER_NOT_JSON', file('['.repeat(5000))],
    ['QK_SAFETENSORS_HEADER_NOT_OBJECT', file('[]')],
    ['QK_SAFETENSORS_HEADER_NOT_OBJECT', file('"x"')],
    [
      'QK_SAFETENSORS_DUPLICATE_NAME',
      file(
        '{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}',
        [1, 2],
      ),
    ],
    ['QK_SAFETENSORS_BAD_TENSOR_ENTRY', file('{"t":[1]}')],
    ['QK_SAFETENSORS_BAD_TENSOR_ENTRY', file('{"t":{"shape":[1],"data_offsets":[0,1]}}', [1])],
    [
      'QK_SAFETENSORS_BAD_TENSOR_ENTRY',
      file('{"t":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [1]),
    ],
    ['QK_SAFETENSORS_BAD_TENSOR_ENTRY', file('{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":0}}', [1])],
    ['QK_SAFETENSORS_BAD_TENSOR_ENTRY', file(ONE('8', '[1]', '[0,1]'), [1])],
    ['QK_SAFETENSORS_UNKNOWN_DTYPE', file(ONE('"F128"', '[1]', '[0,1]'), [1])],
    ['QK_SAFETENSORS_UNKNOWN_DTYPE', file(ONE('"f32"', '[1]', '[0,4]'), [1, 2, 3, 4])],
    ['QK_SAFETENSORS_UNSUPPORTED_DTYPE', file(ONE('"F6_E2M3"', '[4]', '[0,3]'), [1, 2, 3])],
    ['QK_SAFETENSORS_BAD_SHAPE', file(ONE('"U8"', '[-1]', '[0,0]'))],
    ['QK_SAFETENSORS_BAD_SHAPE', file(ONE('"U8"', '[1.5]', '[0,1]'), [1])],
    ['QK_SAFETENSORS_BAD_SHAPE', file(ONE('"U8"', '[1.0]', '[0,1]'), [1])],
    ['QK_SAFETENSORS_BAD_SHAPE', file(ONE('"U8"', '["1"]', '[0,1]'), [1])],
    ['QK_SAFETENSORS_BAD_SHAPE', file(ONE('"U8"', '1', '[0,1]'), [1])],
    ['QK_SAFETENSORS_BAD_SHAPE', file(ONE('"U8"', '[18446744073709551616]', '[0,1]'), [1])],
    ['QK_SAFETENSORS_SHAPE_OVERFLOW', file(ONE('"F32"', '[4294967296,4294967296]', '[0,4]'), [1, 2, 3, 4])],
    ['QK_SAFETENSORS_SHAPE_OVERFLOW', file(ONE('"F64"', '[9007199254740991]', '[0,8]'), [1, 2, 3, 4, 5, 6, 7, 8])],
    ['QK_SAFETENSORS_MISALIGNED', file(ONE('"F4"', '[3]', '[0,2]'), [1, 2])],
    ['QK_SAFETENSORS_BAD_OFFSETS', file(ONE('"U8"', '[1]', '[0]'), [1])],
    ['QK_SAFETENSORS_BAD_OFFSETS', file(ONE('"U8"', '[1]', '[0,1,2]'), [1])],
    ['QK_SAFETENSORS_BAD_OFFSETS', file(ONE('"U8"', '[1]', '[-1,0]'), [1])],
    ['QK_SAFETENSORS_BAD_OFFSETS', file(ONE('"U8"', '[1]', '[0,1e0]'), [1])],
    ['QK_SAFETENSORS_BAD_OFFSETS', file(ONE('"U8"', '[0]', '[1,0]'), [1])],
    ['QK_SAFETENSORS_BAD_OFFSETS', file('{"t":{"dtype":"U8","shape":[1]}}', [1])],
    ['QK_SAFETENSORS_LENGTH_MISMATCH', file(ONE('"F32"', '[2]', '[0,4]'), [1, 2, 3, 4])],
    ['QK_SAFETENSORS_LENGTH_MISMATCH', file(ONE('"F4"', '[4]', '[0,4]'), [1, 2, 3, 4])],
    ['QK_SAFETENSORS_OFFSET_OUT_OF_BOUNDS', file(ONE('"U8"', '[4]', '[0,4]'), [1, 2])],
    ['QK_SAFETENSORS_OFFSET_OUT_OF_BOUNDS', file(ONE('"U8"', '[1]', '[9007199254740990,9007199254740991]'), [1])],
    [
      'QK_SAFETENSORS_OVERLAP',
      file(
        '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}',
        [1, 2, 3],
      ),
    ],
    [
      'QK_SAFETENSORS_OVERLAP',
      file(
        '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}',
        [1, 2],
      ),
    ],
    [
      'QK_SAFETENSORS_OVERLAP',
      file(
        '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}',
        [1, 2],
      ),
    ],
    ['QK_SAFETENSORS_HOLE', file(ONE('"U8"', '[1]', '[1,2]'), [1, 2])],
    [
      'QK_SAFETENSORS_HOLE',
      file(
        '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}',
        [1, 2, 3],
      ),
    ],
    ['QK_SAFETENSORS_TRAILING_BYTES', file(ONE('"U8"', '[1]', '[0,1]'), [1, 2])],
    ['QK_SAFETENSORS_TRAILING_BYTES', file('{}', [1])],
    ['QK_SAFETENSORS_BAD_METADATA', file('{"__metadata__":{"n":1}}')],
    ['QK_SAFETENSORS_BAD_METADATA', file('{"__metadata__":{"n":{"x":"y"}}}')],
    ['QK_SAFETENSORS_BAD_METADATA', file('{"__metadata__":["a"]}')],
    ['QK_SAFETENSORS_BAD_METADATA', file('{"__metadata__":null}')],
    ['QK_SAFETENSORS_BAD_METADATA', file('{"__metadata__":{"k":"a","k":"b"}}')],
    ['QK_SAFETENSORS_BAD_BOOL', file(ONE('"BOOL"', '[2]', '[0,2]'), [1, 2])],
  ];
  it.each(cases)('%s', (code, bytes) => {
    expect(codeOf(bytes, true)).toBe(code);
  });

  it('refuses an oversized header before reading or allocating it', () => {
    const reads: number[] = [];
    const huge: ByteSource = {
      size: 2 ** 40,
      label: 'bad.safetensors',
      read(offset, length) {
        reads.push(length);
        const b = new Uint8Array(length);
        if (offset === 0) new DataView(b.buffer).setBigUint64(0, 200_000_000n, true);
        return b;
      },
    };
    expect(codeOf(huge)).toBe('QK_SAFETENSORS_HEADER_TOO_LARGE');
    expect(reads).toEqual([8]);
  });

  it('accepts a header of exactly 100 MB claimed length only if the file has it', () => {
    expect(codeOf(file('{}', [], 100_000_000n))).toBe('QK_SAFETENSORS_HEADER_OUT_OF_BOUNDS');
  });

  it('readSafetensorsTensor re-checks a hand-made entry against the source', () => {
    const src = bytesSource(file(ONE('"U8"', '[2]', '[0,2]'), [1, 2]), 'bad.safetensors');
    const entry = readSafetensorsHeader(src).tensors[0]!;
    const bad = (e: typeof entry) => {
      try {
        readSafetensorsTensor(src, e);
        return 'ok';
      } catch (x) {
        return isQuantkitError(x) ? x.code : 'other';
      }
    };
    expect(bad({ ...entry, offset: entry.offset + 1 })).toBe('QK_SAFETENSORS_OFFSET_OUT_OF_BOUNDS');
    expect(bad({ ...entry, dims: [3] })).toBe('QK_SAFETENSORS_LENGTH_MISMATCH');
    expect(bad(entry)).toBe('ok');
  });
});
