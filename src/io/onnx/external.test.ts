import { describe, expect, it } from 'vitest';
import { isQuantkitError } from '../../errors.js';
import { bytesSource, type ByteSource } from '../source.js';
import {
  parseExternalDataRef,
  readExternalTensorBytes,
  validateExternalLocation,
  type ExternalDataFiles,
} from './external.js';
import { create, TensorProto_DataLocation, TensorProtoSchema, type TensorProto } from './proto.js';

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return isQuantkitError(e) ? e.code : `not a QuantkitError: ${String(e)}`;
  }
  return 'ok';
}

function externalTensor(kv: Record<string, string>, dims: bigint[] = [2, 3].map(BigInt), dataType = 1): TensorProto {
  return create(TensorProtoSchema, {
    name: 'w',
    dims,
    dataType,
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: Object.entries(kv).map(([key, value]) => ({ key, value })),
  });
}

/** In-memory files that record what was opened and how much was read. */
function memFiles(files: Record<string, Uint8Array>): ExternalDataFiles & { opened: string[]; reads: number[] } {
  const opened: string[] = [];
  const reads: number[] = [];
  return {
    opened,
    reads,
    open(loc: string): ByteSource {
      opened.push(loc);
      const b = files[loc];
      if (!b) throw new Error(`no file ${loc}`);
      const s = bytesSource(b, loc);
      return {
        size: s.size,
        label: s.label,
        read: (o, n) => {
          reads.push(n);
          return s.read(o, n);
        },
      };
    },
  };
}

describe('validateExternalLocation', () => {
  it.each([
    ['weights.bin', 'weights.bin'],
    ['./data/w.bin', 'data/w.bin'],
    ['data//w.bin', 'data/w.bin'],
    ['data\\w.bin', 'data/w.bin'],
    ['a..b/..c', 'a..b/..c'],
  ])('accepts %j as %j', (loc, norm) => {
    expect(validateExternalLocation(loc, 'w')).toBe(norm);
  });

  it.each([
    '',
    '/etc/passwd',
    '\\Windows\\win.ini',
    'C:\\x.bin',
    'c:x.bin',
    '\\\\server\\share\\x',
    '//server/share/x',
    '\\\\?\\C:\\x',
    '../x.bin',
    'data/../../x',
    '..\\x.bin',
    'a\\..\\..\\x',
    'w.bin\0.txt',
    'w.bin:stream',
    '.',
    './',
    'data/..',
  ])('rejects %j naming the tensor and the location', (loc) => {
    try {
      validateExternalLocation(loc, 'layer.7.w');
      expect.unreachable();
    } catch (e) {
      expect(isQuantkitError(e) && e.code).toBe('QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR');
      expect((e as Error).message).toContain("'layer.7.w'");
      expect((e as Error).message).toContain(JSON.stringify(loc));
    }
  });
});

describe('readExternalTensorBytes', () => {
  const file = Uint8Array.from({ length: 64 }, (_, i) => i);

  it('reads dims x dtype bytes at the offset, with or without an explicit length', () => {
    const files = memFiles({ 'w.bin': file });
    expect([
      ...readExternalTensorBytes(externalTensor({ location: 'w.bin', offset: '8', length: '24' }), files),
    ]).toEqual([...file.subarray(8, 32)]);
    expect([...readExternalTensorBytes(externalTensor({ location: './w.bin' }), files)]).toEqual([
      ...file.subarray(0, 24),
    ]);
    // int4 [3]: two per byte, so 2 bytes (onnx.proto: packed, rounded up).
    expect([...readExternalTensorBytes(externalTensor({ location: 'w.bin', offset: '62' }, [3n], 22), files)]).toEqual([
      62, 63,
    ]);
    expect(files.opened).toEqual(['w.bin', 'w.bin', 'w.bin']);
  });

  it('parses the key/value pairs', () => {
    expect(
      parseExternalDataRef(externalTensor({ location: 'a/b.bin', offset: '0', length: '24', checksum: 'abc' })),
    ).toEqual({ location: 'a/b.bin', offset: 0, length: 24, checksum: 'abc' });
  });

  it.each([
    ['QK_EXTERNAL_DATA_OUT_OF_BOUNDS', { location: 'w.bin', offset: '48' }], // 48 + 24 > 64
    ['QK_EXTERNAL_DATA_OUT_OF_BOUNDS', { location: 'w.bin', offset: '65', length: '24' }],
    ['QK_EXTERNAL_DATA_OUT_OF_BOUNDS', { location: 'w.bin', offset: '-1' }],
    ['QK_EXTERNAL_DATA_OUT_OF_BOUNDS', { location: 'w.bin', offset: '1.5' }],
    ['QK_EXTERNAL_DATA_OUT_OF_BOUNDS', { location: 'w.bin', offset: '0x10' }],
    ['QK_EXTERNAL_DATA_OUT_OF_BOUNDS', { location: 'w.bin', offset: '' }],
    ['QK_EXTERNAL_DATA_OUT_OF_BOUNDS', { location: 'w.bin', offset: '99999999999999999999' }],
    ['QK_EXTERNAL_DATA_OUT_OF_BOUNDS', { location: 'w.bin', length: ' 24' }],
    ['QK_TENSOR_DATA_LENGTH', { location: 'w.bin', length: '23' }],
    ['QK_TENSOR_DATA_LENGTH', { location: 'w.bin', length: '1000000000000' }],
    ['QK_EXTERNAL_DATA_NO_LOCATION', { offset: '0' }],
    ['QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR', { location: '../w.bin' }],
  ])('%s for %j, before reading a byte', (code, kv) => {
    const files = memFiles({ 'w.bin': file });
    expect(codeOf(() => readExternalTensorBytes(externalTensor(kv), files))).toBe(code);
    expect(files.reads).toEqual([]);
  });

  it('size bomb: huge dims are refused before the file is opened, and never allocate', () => {
    const files = memFiles({ 'w.bin': file });
    const bomb = externalTensor({ location: 'w.bin' }, [1n << 20n, 1n << 20n]);
    expect(codeOf(() => readExternalTensorBytes(bomb, files))).toBe('QK_EXTERNAL_DATA_OUT_OF_BOUNDS');
    expect(files.reads).toEqual([]);
    const absurd = externalTensor({ location: 'w.bin' }, [1n << 40n, 1n << 40n]);
    expect(codeOf(() => readExternalTensorBytes(absurd, files))).toBe('QK_TENSOR_BAD_DIMS');
    expect(codeOf(() => readExternalTensorBytes(externalTensor({ location: 'w.bin' }, [-1n]), files))).toBe(
      'QK_TENSOR_BAD_DIMS',
    );
    expect(files.reads).toEqual([]);
  });

  it('refuses repeated keys, string tensors and tensors that are not external', () => {
    const files = memFiles({ 'w.bin': file });
    const dup = externalTensor({ location: 'w.bin' });
    dup.externalData.push({ ...dup.externalData[0]!, value: '../x' });
    expect(codeOf(() => readExternalTensorBytes(dup, files))).toBe('QK_EXTERNAL_DATA_BAD_KEY');
    expect(codeOf(() => readExternalTensorBytes(externalTensor({ location: 'w.bin' }, [1n], 8), files))).toBe(
      'QK_EXTERNAL_DATA_UNSUPPORTED_DTYPE',
    );
    const inline = externalTensor({ location: 'w.bin' });
    inline.dataLocation = TensorProto_DataLocation.DEFAULT;
    expect(codeOf(() => readExternalTensorBytes(inline, files))).toBe('QK_EXTERNAL_DATA_NOT_EXTERNAL');
    expect(files.opened).toEqual([]);
  });
});
