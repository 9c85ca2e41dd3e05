import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isQuantkitError } from '../../errors.js';
import { dtypeInfo, type DType } from '../../tensor/dtype.js';
import { allocData, elementCount, makeTensor, type Tensor } from '../../tensor/tensor.js';
import { bytesSource } from '../source.js';
import { dtypeFromSafetensors, SAFETENSORS_DTYPE_NAMES } from './dtypes.js';
import { readSafetensorsHeader, readSafetensorsTensor } from './read.js';
import { encodeSafetensors, planSafetensors, safetensorsChunks } from './write.js';

const dec = new TextDecoder();

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return isQuantkitError(e) ? e.code : `not a QuantkitError: ${String(e)}`;
  }
  return 'ok';
}

/** Random storage for a dtype, every value a legal element (bool 0/1, 4-bit codes 0..15). */
function randomTensor(dtype: DType, dims: number[], seed: number, name: string): Tensor {
  const data = allocData(dtype, elementCount(dims));
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const { bits } = dtypeInfo(dtype);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof BigInt64Array) data[i] = BigInt.asIntN(64, (BigInt(next()) << 32n) | BigInt(next()));
    else if (data instanceof BigUint64Array) data[i] = (BigInt(next()) << 32n) | BigInt(next());
    else if (data instanceof Float32Array || data instanceof Float64Array) data[i] = (next() / 2 ** 31 - 1) * 1e3;
    else if (!Array.isArray(data))
      (data as Uint8Array)[i] = dtype === 'bool' ? next() & 1 : bits === 4 ? next() & 15 : next();
  }
  return makeTensor(dtype, dims, data, name);
}

describe('encodeSafetensors', () => {
  it('writes the exact bytes worked out by hand', () => {
    const a = makeTensor('float32', [2], new Float32Array([1, -2]), 'a');
    const b = makeTensor('uint8', [3], new Uint8Array([7, 8, 9]), 'b');
    const bytes = encodeSafetensors([b, a], { format: 'pt' });
    const json =
      '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}';
    const padded = Math.ceil(json.length / 8) * 8;
    expect(json.length).toBe(138); // so 6 spaces pad it to 144
    expect(padded).toBe(144);
    expect([...bytes.subarray(0, 8)]).toEqual([144, 0, 0, 0, 0, 0, 0, 0]);
    expect(dec.decode(bytes.subarray(8, 8 + padded))).toBe(json + '      ');
    // f32 1.0 = 0x3f800000, -2.0 = 0xc0000000, little endian; then the three u8.
    expect([...bytes.subarray(152)]).toEqual([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 7, 8, 9]);
  });

  it('lays tensors out widest dtype first, then by name (the reference writer order), so each is aligned', () => {
    const ts = [
      makeTensor('uint8', [1], undefined, 'z'),
      makeTensor('float16', [1], undefined, 'b'),
      makeTensor('float64', [1], undefined, 'y'),
      makeTensor('float16', [1], undefined, 'a'),
      makeTensor('float4e2m1', [2], undefined, 'c'),
    ];
    const h = readSafetensorsHeader(bytesSource(encodeSafetensors(ts)));
    expect(h.tensors.map((t) => t.name)).toEqual(['y', 'a', 'b', 'z', 'c']);
    for (const t of h.tensors) expect(t.offset % Math.max(1, dtypeInfo(t.dtype).bits / 8)).toBe(0);
  });

  it('round-trips every dtype safetensors holds, bit for bit', () => {
    expect(SAFETENSORS_DTYPE_NAMES.length).toBe(19);
    const tensors = SAFETENSORS_DTYPE_NAMES.map((n, i) =>
      randomTensor(dtypeFromSafetensors(n)!, [3, 2, 2], i + 1, `t.${n}`),
    );
    tensors.push(
      makeTensor('float32', [0, 5], undefined, 'empty'),
      makeTensor('int64', [], new BigInt64Array([-5n]), 'scalar'),
    );
    const src = bytesSource(encodeSafetensors(tensors, { k: 'v', '': 'é😀' }));
    const h = readSafetensorsHeader(src);
    expect(h.metadata).toEqual({ k: 'v', '': 'é😀' });
    const byName = new Map(h.tensors.map((e) => [e.name, e]));
    for (const t of tensors) {
      const back = readSafetensorsTensor(src, byName.get(t.name!)!);
      expect(back.dtype).toBe(t.dtype);
      expect(back.dims).toEqual(t.dims);
      expect(back.data).toEqual(t.data);
    }
  });

  it('round-trips arbitrary names, metadata and shapes (property)', () => {
    const entry = fc.record({
      dtype: fc.constantFrom(...SAFETENSORS_DTYPE_NAMES.map((n) => dtypeFromSafetensors(n)!)),
      dims: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(
            fc.string({ unit: 'grapheme' }).filter((s) => s !== '__metadata__'),
            entry,
          ),
          { selector: ([n]) => n, maxLength: 6 },
        ),
        fc.dictionary(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' })),
        (list, metadata) => {
          const tensors = list.map(([name, e]) => {
            // F4 must fill whole bytes: make the last dim even.
            const dims = e.dtype === 'float4e2m1' ? [...e.dims, 2] : e.dims;
            return randomTensor(e.dtype, dims, e.seed, name);
          });
          const src = bytesSource(encodeSafetensors(tensors, metadata));
          const h = readSafetensorsHeader(src);
          expect(h.metadata).toEqual(metadata);
          expect(new Set(h.tensors.map((t) => t.name))).toEqual(new Set(tensors.map((t) => t.name)));
          for (const e of h.tensors) {
            const orig = tensors.find((t) => t.name === e.name)!;
            expect(readSafetensorsTensor(src, e).data).toEqual(orig.data);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it.each([
    ['QK_SAFETENSORS_UNNAMED_TENSOR', () => encodeSafetensors([makeTensor('uint8', [1])])],
    [
      'QK_SAFETENSORS_DUPLICATE_NAME',
      () => encodeSafetensors([makeTensor('uint8', [1], undefined, 'x'), makeTensor('int8', [1], undefined, 'x')]),
    ],
    ['QK_SAFETENSORS_BAD_NAME', () => encodeSafetensors([makeTensor('uint8', [1], undefined, '__metadata__')])],
    ['QK_SAFETENSORS_BAD_NAME', () => encodeSafetensors([makeTensor('uint8', [1], undefined, 'a\ud800')])],
    ['QK_SAFETENSORS_UNSUPPORTED_DTYPE', () => encodeSafetensors([makeTensor('int4', [2], undefined, 'q')])],
    ['QK_SAFETENSORS_MISALIGNED', () => encodeSafetensors([makeTensor('float4e2m1', [3], undefined, 'q')])],
    ['QK_SAFETENSORS_BAD_METADATA', () => encodeSafetensors([], { k: 1 as unknown as string })],
    ['QK_SAFETENSORS_BAD_BOOL', () => encodeSafetensors([makeTensor('bool', [1], new Uint8Array([2]), 'b')])],
    [
      'QK_TENSOR_STORAGE_MISMATCH',
      () => encodeSafetensors([{ dtype: 'float32', dims: [1], data: new Uint32Array(1), name: 'f' }]),
    ],
    [
      'QK_TENSOR_SIZE_MISMATCH',
      () => encodeSafetensors([{ dtype: 'float32', dims: [2], data: new Float32Array(1), name: 'f' }]),
    ],
    ['QK_SAFETENSORS_BAD_SHAPE', () => planSafetensors([{ name: 'n', dtype: 'uint8', dims: [-1] }])],
    [
      'QK_SAFETENSORS_SHAPE_OVERFLOW',
      () => planSafetensors([{ name: 'n', dtype: 'float64', dims: [2 ** 30, 2 ** 30] }]),
    ],
    ['QK_SAFETENSORS_HEADER_TOO_LARGE', () => planSafetensors([], { big: 'x'.repeat(100_000_000) })],
  ])('refuses to write %s', (code, f) => {
    expect(codeOf(f)).toBe(code);
  });
});

describe('planSafetensors (streaming write)', () => {
  it('header then one tensor at a time reads back equal, and matches encodeSafetensors byte for byte', () => {
    const tensors = [
      randomTensor('bfloat16', [4, 3], 1, 'w'),
      randomTensor('int64', [2], 2, 'ids'),
      randomTensor('float8e4m3fn', [5], 3, 'q'),
      randomTensor('bool', [3], 4, 'mask'),
    ];
    const entries = tensors.map((t) => ({ name: t.name!, dtype: t.dtype, dims: t.dims }));
    const plan = planSafetensors(entries, { step: '3' });
    // Simulate a file written sequentially: track the write position like a stream would.
    const file = new Uint8Array(plan.size);
    let pos = 0;
    let loads = 0;
    for (const chunk of safetensorsChunks(
      entries,
      (i) => {
        loads++;
        return tensors[i]!;
      },
      { step: '3' },
    )) {
      file.set(chunk, pos);
      pos += chunk.length;
    }
    expect(loads).toBe(tensors.length);
    expect(pos).toBe(plan.size);
    plan.order.forEach((i) => expect(plan.offsets[i]! + plan.lengths[i]!).toBeLessThanOrEqual(plan.size));
    expect(file).toEqual(encodeSafetensors(tensors, { step: '3' }));
    const src = bytesSource(file);
    const h = readSafetensorsHeader(src);
    expect(h.metadata).toEqual({ step: '3' });
    for (const e of h.tensors) {
      const i = entries.findIndex((x) => x.name === e.name);
      expect(e.offset).toBe(plan.offsets[i]);
      expect(readSafetensorsTensor(src, e).data).toEqual(tensors[i]!.data);
    }
  });

  it('refuses a tensor that does not match its planned entry', () => {
    const entries = [{ name: 'w', dtype: 'float32' as const, dims: [2] }];
    const wrong = makeTensor('float32', [3], undefined, 'w');
    expect(codeOf(() => [...safetensorsChunks(entries, () => wrong)])).toBe('QK_SAFETENSORS_PLAN_MISMATCH');
  });
});
