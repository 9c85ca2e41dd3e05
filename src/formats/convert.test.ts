import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeTensorProto } from '../io/onnx/proto.js';
import { tensorFromProto } from '../io/onnx/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { ALL_DTYPES } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorData } from '../tensor/tensor.js';
import { allocData } from '../tensor/tensor.js';
import { decodeToFloat32, decodeToFloat64, encodeNumbers } from './convert.js';
import { decodeFloat16 } from './float16.js';
import { decodeFloat8 } from './float8.js';

const NUMERIC = ALL_DTYPES.filter((d) => d !== 'string');

function list(d: TensorData): unknown[] {
  return Array.from(d as ArrayLike<unknown>);
}

describe('encodeNumbers / decodeToFloat64', () => {
  it('returns the storage class tensor.ts prescribes for every numeric dtype', () => {
    for (const d of NUMERIC) {
      const data = encodeNumbers(d, [0, 1, 2]);
      expect(data.constructor, d).toBe(allocData(d, 0).constructor);
      expect(data.length).toBe(3);
    }
  });

  it('0 and 1 survive encode → decode in every numeric dtype (float8e8m0, which has no zero: 1 and 2)', () => {
    for (const d of NUMERIC) {
      const values = d === 'float8e8m0' ? [1, 2] : [0, 1];
      expect(Array.from(decodeToFloat64(d, encodeNumbers(d, values))), d).toEqual(values);
    }
  });

  it('decode → encode is the identity on storage for every code of every ≤ 8-bit float format', () => {
    for (const d of [
      'float8e4m3fn',
      'float8e4m3fnuz',
      'float8e5m2',
      'float8e5m2fnuz',
      'float8e8m0',
      'float4e2m1',
    ] as const) {
      const codes = Uint8Array.from({ length: d === 'float4e2m1' ? 16 : 256 }, (_, i) => i);
      const values = decodeToFloat64(d, codes);
      const again = encodeNumbers(d, values, { saturate: false }) as Uint8Array;
      for (let c = 0; c < codes.length; c++) {
        if (Number.isNaN(values[c])) expect(decodeToFloat64(d, again.subarray(c, c + 1))[0]).toBeNaN();
        else expect(again[c], `${d} code ${c}`).toBe(c);
      }
    }
  });

  it('decodeToFloat32 equals decodeToFloat64 for the narrow floats (all exact in binary32)', () => {
    const all16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const d of ['float16', 'bfloat16'] as const) {
      const a = decodeToFloat32(d, all16);
      const b = decodeToFloat64(d, all16);
      let bad = 0;
      for (let i = 0; i < 65536; i++) if (!(Object.is(a[i], b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i])))) bad++;
      expect(bad, d).toBe(0);
    }
  });

  it('integers: round half to even and saturate (QuantizeLinear); "cast" mode wraps like ONNX Cast', () => {
    expect(list(encodeNumbers('int4', [-9.5, -8.5, 2.5, 3.5, 7.5, 100, NaN]))).toEqual([-8, -8, 2, 4, 7, 7, 0]);
    expect(list(encodeNumbers('uint8', [-1, 254.5, 255.5, 1e9]))).toEqual([0, 254, 255, 255]);
    expect(list(encodeNumbers('int4', [-9, 8, 2.5], { integers: 'cast' }))).toEqual([7, -8, 2]);
    expect(list(encodeNumbers('int64', [2.5, -1e300, 1e300, NaN]))).toEqual([2n, -(2n ** 63n), 2n ** 63n - 1n, 0n]);
    expect(list(encodeNumbers('uint64', [-3, 2 ** 64, 3.5]))).toEqual([0n, 2n ** 64n - 1n, 4n]);
    expect(list(encodeNumbers('bool', [0, -0, 2, NaN, -1]))).toEqual([0, 0, 1, 1, 1]);
  });

  it('float32 targets round once, half to even, from the exact double', () => {
    const x = 1 + 2 ** -24 + 2 ** -50; // just above the float32 tie between 1 and 1 + 2^-23
    expect((encodeNumbers('float32', [1 + 2 ** -24]) as Float32Array)[0]).toBe(1); // the tie itself: even
    expect((encodeNumbers('float32', [x]) as Float32Array)[0]).toBe(1 + 2 ** -23);
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (v) =>
        Object.is((encodeNumbers('float32', [v]) as Float32Array)[0], Math.fround(v)),
      ),
      { numRuns: 5000 },
    );
  });

  it('passes saturate and roundMode through', () => {
    expect(list(encodeNumbers('float8e4m3fn', [1e6, -1e6]))).toEqual([0x7e, 0xfe]);
    expect(list(encodeNumbers('float8e4m3fn', [1e6, -1e6], { saturate: false }))).toEqual([0x7f, 0xff]);
    expect(list(encodeNumbers('float8e8m0', [1.4, 1.5, 3]))).toEqual([128, 128, 129]);
    expect(list(encodeNumbers('float8e8m0', [1.4, 1.5, 3], { roundMode: 'nearest' }))).toEqual([127, 128, 129]);
    expect(list(encodeNumbers('float8e8m0', [1.4, 1.5, 3], { roundMode: 'down' }))).toEqual([127, 127, 128]);
    expect(list(encodeNumbers('float8e8m0', [0], { saturate: false }))).toEqual([255]);
  });

  it('rejects string tensors with a QuantkitError', () => {
    expect(() => encodeNumbers('string', [1])).toThrow(/string/);
    expect(() => decodeToFloat64('string', ['a'])).toThrow(/string/);
  });
});

// ONNX Cast conformance data read straight from the .pb files: what the format layer alone must
// reproduce (the end-to-end runner, through `quantkit run`, is test/conformance.test.ts).
const CASES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared', 'onnx-node-tests');

function load(name: string, file: string): Tensor {
  return tensorFromProto(decodeTensorProto(readFileSync(join(CASES, name, 'test_data_set_0', file)), file), file);
}

/** Storage equality, NaN codes of the same format counting as equal only when bit-identical. */
function sameStorage(a: ArrayLike<unknown>, b: ArrayLike<unknown>): string[] {
  const bad: string[] = [];
  for (let i = 0; i < b.length; i++) {
    const x = a[i];
    const y = b[i];
    if (!(Object.is(x, y) || (typeof x === 'number' && Number.isNaN(x) && Number.isNaN(y))))
      bad.push(`[${i}] ${String(x)} vs ${String(y)}`);
  }
  return bad;
}

describe('ONNX Cast conformance cases, format layer only', () => {
  const toNarrow: [string, DType, { saturate?: boolean; roundMode?: 'up' }][] = [];
  for (const from of ['FLOAT', 'FLOAT16']) {
    for (const [to, d] of [
      ['FLOAT8E4M3FN', 'float8e4m3fn'],
      ['FLOAT8E4M3FNUZ', 'float8e4m3fnuz'],
      ['FLOAT8E5M2', 'float8e5m2'],
      ['FLOAT8E5M2FNUZ', 'float8e5m2fnuz'],
    ] as const) {
      toNarrow.push([`test_cast_${from}_to_${to}`, d, {}]);
      toNarrow.push([`test_cast_no_saturate_${from}_to_${to}`, d, { saturate: false }]);
    }
    toNarrow.push([`test_cast_e8m0_${from}_to_FLOAT8E8M0`, 'float8e8m0', { saturate: true, roundMode: 'up' }]);
  }
  toNarrow.push(
    ['test_cast_FLOAT_to_FLOAT16', 'float16', {}],
    ['test_cast_DOUBLE_to_FLOAT16', 'float16', {}],
    ['test_cast_FLOAT_to_BFLOAT16', 'bfloat16', {}],
  );

  for (const [name, dtype, opts] of toNarrow) {
    it(`${name}: encode(input) is output_0 bit for bit`, () => {
      const input = load(name, 'input_0.pb');
      const want = load(name, 'output_0.pb');
      expect(want.dtype).toBe(dtype);
      expect(
        sameStorage(
          encodeNumbers(dtype, decodeToFloat64(input.dtype, input.data), opts) as Uint8Array,
          want.data as Uint8Array,
        ),
      ).toEqual([]);
    });
  }

  it('test_cast_*_to_FLOAT4E2M1: all but the NaN element, which ONNX\'s data (ml_dtypes) encodes as -0 against float4.md\'s "NaN → 6"', () => {
    for (const from of ['FLOAT', 'FLOAT16']) {
      const name = `test_cast_${from}_to_FLOAT4E2M1`;
      const input = decodeToFloat64(load(name, 'input_0.pb').dtype, load(name, 'input_0.pb').data);
      const want = load(name, 'output_0.pb').data as Uint8Array;
      const got = encodeNumbers('float4e2m1', input) as Uint8Array;
      for (let i = 0; i < input.length; i++) {
        if (Number.isNaN(input[i])) {
          expect(want[i]).toBe(0x8);
          expect(got[i]).toBe(0x7);
        } else {
          expect(got[i], `${name} [${i}] x=${input[i]}`).toBe(want[i]);
        }
      }
    }
  });

  it('test_cast_FLOAT8*_to_FLOAT16 and _to_FLOAT: decode then encode reproduces the outputs (NaN signs included)', () => {
    for (const kind of ['FLOAT8E4M3FN', 'FLOAT8E4M3FNUZ', 'FLOAT8E5M2', 'FLOAT8E5M2FNUZ', 'FLOAT4E2M1']) {
      for (const to of ['FLOAT16', 'FLOAT'] as const) {
        const name = `test_cast_${kind}_to_${to}`;
        const input = load(name, 'input_0.pb');
        const want = load(name, 'output_0.pb');
        const values = decodeToFloat64(input.dtype, input.data);
        const got = to === 'FLOAT16' ? encodeNumbers('float16', values) : encodeNumbers('float32', values);
        expect(sameStorage(got as ArrayLike<number>, want.data as ArrayLike<number>), name).toEqual([]);
      }
    }
    // Spot check of the independent fact behind the FNUZ cases: 0x80 → float16 0xFE00 (a negative NaN).
    expect(decodeFloat16(0xfe00)).toBeNaN();
    expect((encodeNumbers('float16', [decodeFloat8(0x80, 'float8e4m3fnuz')]) as Uint16Array)[0]).toBe(0xfe00);
  });
});
