import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isQuantkitError } from '../../errors.js';
import { makeTensor, type Tensor } from '../../tensor/tensor.js';
import { readNpy, writeNpy } from './npy.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const fixture = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, name)));

function plain(t: Tensor): { dtype: string; dims: number[]; data: unknown[] } {
  return { dtype: t.dtype, dims: [...t.dims], data: Array.from(t.data as ArrayLike<unknown>) };
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

/** A version 1.0 file written byte by byte: magic, version, uint16 LE header length, header, data. */
function handMade(header: string, data: number[], version: [number, number] = [1, 0]): Uint8Array {
  const lengthBytes =
    version[0] === 1
      ? [header.length & 0xff, header.length >> 8]
      : [header.length & 0xff, (header.length >> 8) & 0xff, 0, 0];
  return Uint8Array.from([
    0x93,
    0x4e,
    0x55,
    0x4d,
    0x50,
    0x59,
    version[0],
    version[1],
    ...lengthBytes,
    ...Array.from(header, (c) => c.charCodeAt(0)),
    ...data,
  ]);
}

describe('readNpy on hand-made headers', () => {
  it('reads float32 little-endian, shape (2,)', () => {
    const t = readNpy(
      handMade("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]),
    );
    expect(plain(t)).toEqual({ dtype: 'float32', dims: [2], data: [1, -2] });
  });

  it('reads big-endian int16 and a header with double quotes and no trailing comma', () => {
    const t = readNpy(
      handMade('{"descr": ">i2", "shape": (1, 2), "fortran_order": False}\n', [0xff, 0xfe, 0x01, 0x00]),
    );
    expect(plain(t)).toEqual({ dtype: 'int16', dims: [1, 2], data: [-2, 256] });
  });

  it('reads a scalar (shape ()) and a version 2.0 header', () => {
    expect(plain(readNpy(handMade("{'descr': '|u1', 'fortran_order': False, 'shape': (), }\n", [200])))).toEqual({
      dtype: 'uint8',
      dims: [],
      data: [200],
    });
    expect(
      plain(readNpy(handMade("{'descr': '|i1', 'fortran_order': False, 'shape': (1,), }\n", [0xff], [2, 0]))),
    ).toEqual({ dtype: 'int8', dims: [1], data: [-1] });
  });

  it('malformed files raise QK_NPY_PARSE naming the file', () => {
    const good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
    const data = [0, 0, 0, 0, 0, 0, 0, 0];
    const cases: [string, Uint8Array][] = [
      ['bad magic', Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x58, 1, 0, 0, 0])],
      ['empty', new Uint8Array()],
      ['version 4.0', handMade(good, data, [4, 0])],
      ['header length past the end', handMade(good, data).subarray(0, 40)],
      ['data too short', handMade(good, data.slice(1))],
      ['data too long', handMade(good, [...data, 0])],
      ['not a dict', handMade('[1, 2, 3]\n', data)],
      ['unterminated string', handMade("{'descr: '<f4'\n", data)],
      ['missing shape', handMade("{'descr': '<f4', 'fortran_order': False}\n", data)],
      ['shape not ints', handMade("{'descr': '<f4', 'fortran_order': False, 'shape': (a,), }\n", data)],
      ['trailing text', handMade("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x\n", data)],
      ['python code', handMade("__import__('os').system('true')\n", data)],
    ];
    for (const [what, bytes] of cases) {
      let err: unknown;
      try {
        readNpy(bytes, 'x.npy');
      } catch (e) {
        err = e;
      }
      expect(isQuantkitError(err) && err.code, what).toBe('QK_NPY_PARSE');
      expect((err as Error).message, what).toMatch(/^x\.npy: not a valid \.npy file: /);
    }
  });

  it('Fortran order raises QK_NPY_FORTRAN_ORDER with a hint', () => {
    const bytes = handMade(
      "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n",
      new Array<number>(16).fill(0),
    );
    expect(codeOf(() => readNpy(bytes, 'f.npy'))).toBe('QK_NPY_FORTRAN_ORDER');
    try {
      readNpy(bytes, 'f.npy');
    } catch (e) {
      expect(isQuantkitError(e) && e.hint).toMatch(/ascontiguousarray/);
    }
  });
});

describe('readNpy on files NumPy wrote (fixtures/make_fixtures.py)', () => {
  it.each([
    ['f32_2x3.npy', 'float32', [2, 3], [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]],
    ['f64_be_3.npy', 'float64', [3], [1.5, -0, 1e300]],
    // float16 bit patterns: 1.0, -2.0, 65504 (max), +inf.
    ['f16_4.npy', 'float16', [4], [0x3c00, 0xc000, 0x7bff, 0x7c00]],
    ['i8_5.npy', 'int8', [5], [-128, -1, 0, 1, 127]],
    ['u8_3.npy', 'uint8', [3], [0, 128, 255]],
    ['i16_be_2x2.npy', 'int16', [2, 2], [-32768, -1, 1, 32767]],
    ['u16_2.npy', 'uint16', [2], [0, 65535]],
    ['i32_3.npy', 'int32', [3], [-(2 ** 31), 0, 2 ** 31 - 1]],
    ['i64_be_2.npy', 'int64', [2], [-(2n ** 63n), 2n ** 63n - 1n]],
    ['bool_2x2.npy', 'bool', [2, 2], [1, 0, 0, 1]],
    ['f32_scalar.npy', 'float32', [], [3.25]],
    ['f32_empty_0x3.npy', 'float32', [0, 3], []],
    ['i32_v2.npy', 'int32', [2], [7, -7]],
    ['i32_v3.npy', 'int32', [2], [7, -7]],
  ])('%s', (name, dtype, dims, data) => {
    expect(plain(readNpy(fixture(name), name))).toEqual({ dtype, dims, data });
  });

  it('Fortran-ordered and complex files are refused with their own codes', () => {
    expect(codeOf(() => readNpy(fixture('f32_fortran_2x3.npy')))).toBe('QK_NPY_FORTRAN_ORDER');
    expect(codeOf(() => readNpy(fixture('c64_2.npy')))).toBe('QK_NPY_UNSUPPORTED_DTYPE');
  });

  it('writeNpy output is byte-identical to np.save for the little-endian version 1.0 fixtures', () => {
    for (const name of [
      'f32_2x3.npy',
      'f16_4.npy',
      'i8_5.npy',
      'u8_3.npy',
      'u16_2.npy',
      'i32_3.npy',
      'bool_2x2.npy',
      'f32_scalar.npy',
      'f32_empty_0x3.npy',
    ]) {
      const bytes = fixture(name);
      expect(Array.from(writeNpy(readNpy(bytes))), name).toEqual(Array.from(bytes));
    }
  });
});

describe('writeNpy', () => {
  it('round-trips every .npy dtype (property)', () => {
    const cases = [
      ['float32', fc.float32Array({ minLength: 0, maxLength: 24 })],
      ['float64', fc.float64Array({ minLength: 0, maxLength: 24 })],
      ['int8', fc.int8Array({ minLength: 0, maxLength: 24 })],
      ['uint8', fc.uint8Array({ minLength: 0, maxLength: 24 })],
      ['int16', fc.int16Array({ minLength: 0, maxLength: 24 })],
      ['uint16', fc.uint16Array({ minLength: 0, maxLength: 24 })],
      ['float16', fc.uint16Array({ minLength: 0, maxLength: 24 })],
      ['int32', fc.int32Array({ minLength: 0, maxLength: 24 })],
      ['uint32', fc.uint32Array({ minLength: 0, maxLength: 24 })],
      ['int64', fc.bigInt64Array({ minLength: 0, maxLength: 24 })],
      ['uint64', fc.bigUint64Array({ minLength: 0, maxLength: 24 })],
    ] as const;
    for (const [dtype, arb] of cases) {
      fc.assert(
        fc.property(arb, (data) => {
          const t = makeTensor(dtype, [data.length], data);
          const back = readNpy(writeNpy(t));
          expect(back.dtype).toBe(dtype);
          expect(back.dims).toEqual([data.length]);
          // Compare bytes so NaN payloads and -0 must survive too.
          expect(new Uint8Array((back.data as Uint8Array).buffer)).toEqual(
            new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
          );
        }),
        { numRuns: 30 },
      );
    }
  });

  it('aligns the data to 64 bytes and ends the header with a newline', () => {
    // 40 dims make a header longer than one 64-byte block.
    const bytes = writeNpy(makeTensor('float32', [...new Array<number>(39).fill(1), 3]));
    const headerEnd = 10 + (bytes[8] as number) + 256 * (bytes[9] as number);
    expect(headerEnd % 64).toBe(0);
    expect(bytes[headerEnd - 1]).toBe(0x0a);
    expect(headerEnd).toBeGreaterThan(64);
    expect(bytes.length - headerEnd).toBe(12);
    expect(readNpy(bytes).dims).toHaveLength(40);
  });

  it('refuses dtypes NumPy has no .npy form for', () => {
    expect(codeOf(() => writeNpy(makeTensor('int4', [2])))).toBe('QK_NPY_UNSUPPORTED_DTYPE');
    expect(codeOf(() => writeNpy(makeTensor('bfloat16', [2])))).toBe('QK_NPY_UNSUPPORTED_DTYPE');
    expect(codeOf(() => writeNpy(makeTensor('string', [1])))).toBe('QK_NPY_UNSUPPORTED_DTYPE');
  });
});
