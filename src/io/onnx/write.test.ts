import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { makeModel } from './build.js';
import {
  decodeModel,
  encodeModel,
  equals,
  ModelProtoSchema,
  TensorProto_DataLocation,
  type TensorProto,
} from './proto.js';
import { tensorFromProto } from './tensor.js';
import { parseExternalDataRef, readExternalTensorBytes } from './external.js';
import { bytesSource } from '../source.js';
import {
  chooseIrVersion,
  encodeOnnxInline,
  LARGE_TENSOR_ALIGNMENT,
  planOnnxWrite,
  SMALL_TENSOR_ALIGNMENT,
  tensorFromProtoToWrite,
  tensorToWrite,
  type TensorToWrite,
} from './write.js';
import type { Tensor } from '../../tensor/tensor.js';
import { dtypeFromOnnx } from '../../tensor/dtype.js';

function concat(chunks: Iterable<Uint8Array>): Uint8Array {
  const list = [...chunks];
  const out = new Uint8Array(list.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of list) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function f32(dims: number[], seed = 1): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.37 + seed) * 3;
  return { dtype: 'float32', dims, data };
}

function sample() {
  return makeModel({
    nodes: [
      { opType: 'MatMul', inputs: ['x', 'w'], outputs: ['h'] },
      { opType: 'Add', inputs: ['h', 'b'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dtype: 'float32', dims: ['batch', 64] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: ['batch', 300] }],
    initializers: {
      w: f32([64, 300]),
      b: f32([300], 2),
      tiny: f32([3], 3),
      q: { dtype: 'int4', dims: [5], data: Int8Array.of(-8, -1, 0, 3, 7) },
    },
  });
}

const toWrite = (m: ReturnType<typeof sample>): TensorToWrite[] =>
  (m.graph?.initializer ?? []).map((p) => tensorFromProtoToWrite(p, dtypeFromOnnx(p.dataType)));

describe('planOnnxWrite, self-contained', () => {
  it('streams a model that decodes to the same ModelProto as encodeModel', () => {
    const m = sample();
    const bytes = encodeOnnxInline(m, toWrite(m));
    // Field order differs (raw_data written last), the message does not.
    expect(equals(ModelProtoSchema, decodeModel(bytes), decodeModel(encodeModel(m)))).toBe(true);
  });

  it('keeps typed-field tensors (float_data) as they are', () => {
    const m = sample();
    const p = m.graph!.initializer[1] as TensorProto;
    p.floatData = Array.from(tensorFromProto(p).data as Float32Array);
    p.rawData = new Uint8Array(0);
    const back = decodeModel(encodeOnnxInline(m, toWrite(m)));
    expect(back.graph!.initializer[1]!.floatData).toEqual(p.floatData);
    expect(back.graph!.initializer[1]!.rawData.length).toBe(0);
  });

  it('computed tensors are loaded only while their bytes are written, once each', () => {
    const m = sample();
    let loads = 0;
    const t = tensorToWrite('extra', 'float32', [4, 4], () => {
      loads++;
      return f32([4, 4]);
    });
    const plan = planOnnxWrite(m, [...toWrite(m), t], { dataLocation: 'x.data' });
    expect(loads).toBe(0);
    const back = decodeModel(concat(plan.modelChunks()));
    expect(loads).toBe(1);
    expect(tensorFromProto(back.graph!.initializer[4]!).data).toEqual(f32([4, 4]).data);
  });

  it('a tensor whose bytes disagree with its dims is a named error', () => {
    const m = sample();
    const bad: TensorToWrite = { name: 'bad', dtype: 'float32', dims: [8], rawBytes: () => new Uint8Array(31) };
    expect(() => encodeOnnxInline(m, [bad])).toThrow(/QK_TENSOR_DATA_LENGTH|needs 32/);
  });

  it('property: any float32 tensor set round-trips bit-exactly inline', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 3 })), { maxLength: 6 }),
        (shapes) => {
          const inits: Record<string, Tensor> = {};
          shapes.forEach(([n, k], i) => {
            inits[`t${i}`] = f32([n, k], i);
          });
          const m = makeModel({ nodes: [], inputs: [], outputs: [], initializers: inits });
          const back = decodeModel(encodeOnnxInline(m, toWrite(m)));
          return back.graph!.initializer.every((p, i) => {
            const want = inits[`t${i}`]!;
            return (
              p.name === `t${i}` &&
              Buffer.compare(Buffer.from(p.rawData), Buffer.from((want.data as Float32Array).buffer)) === 0
            );
          });
        },
      ),
      { numRuns: 50, seed: 7 },
    );
  });
});

describe('planOnnxWrite, external data', () => {
  it('moves tensors ≥ threshold out with aligned offsets and exact bytes, keeps small ones inline', () => {
    const m = sample();
    const plan = planOnnxWrite(m, toWrite(m), { externalData: true, threshold: 1024, dataLocation: 'm.onnx.data' });
    const model = decodeModel(concat(plan.modelChunks()));
    const data = concat(plan.dataChunks());
    expect(data.length).toBe(plan.dataSize);
    const inits = model.graph!.initializer;
    const external = inits.filter((p) => p.dataLocation === TensorProto_DataLocation.EXTERNAL).map((p) => p.name);
    expect(external).toEqual(['w', 'b']); // 76800 and 1200 bytes; tiny (12) and q (3) stay
    for (const p of inits) {
      if (p.dataLocation !== TensorProto_DataLocation.EXTERNAL) continue;
      const ref = parseExternalDataRef(p);
      expect(ref.location).toBe('m.onnx.data');
      expect(ref.offset % SMALL_TENSOR_ALIGNMENT).toBe(0);
      const orig = sample().graph!.initializer.find((q) => q.name === p.name)!;
      expect(readExternalTensorBytes(p, { open: () => bytesSource(data) })).toEqual(orig.rawData);
    }
  });

  it('aligns tensors over 1 MiB to 64 KiB, as ONNX Runtime does for mmap', () => {
    const m = makeModel({ nodes: [], inputs: [], outputs: [], initializers: { a: f32([5]), big: f32([300_000]) } });
    const plan = planOnnxWrite(m, toWrite(m), { externalData: true, threshold: 0, dataLocation: 'd' });
    expect(plan.tensors.map((t) => t.offset)).toEqual([0, LARGE_TENSOR_ALIGNMENT]);
    const data = concat(plan.dataChunks());
    expect(data.length).toBe(LARGE_TENSOR_ALIGNMENT + 1_200_000);
    expect(data.subarray(20, LARGE_TENSOR_ALIGNMENT).every((b) => b === 0)).toBe(true);
  });

  it('the same input gives the same bytes', () => {
    const a = planOnnxWrite(sample(), toWrite(sample()), { externalData: true, dataLocation: 'd' });
    const b = planOnnxWrite(sample(), toWrite(sample()), { externalData: true, dataLocation: 'd' });
    expect(concat(a.modelChunks())).toEqual(concat(b.modelChunks()));
    expect(concat(a.dataChunks())).toEqual(concat(b.dataChunks()));
  });

  it("'auto' stays self-contained for small models", () => {
    const plan = planOnnxWrite(sample(), toWrite(sample()), { dataLocation: 'd' });
    expect(plan.external).toBe(false);
    expect(concat(plan.dataChunks()).length).toBe(0);
  });

  it("'auto' goes external past 2 GiB without loading anything to decide", () => {
    const huge: TensorToWrite = {
      name: 'huge',
      dtype: 'float32',
      dims: [600_000_000],
      rawBytes: () => {
        throw new Error('loaded');
      },
    };
    const plan = planOnnxWrite(sample(), [huge], { dataLocation: 'd' });
    expect(plan.external).toBe(true);
    expect(plan.dataSize).toBe(2_400_000_000);
    expect(() => planOnnxWrite(sample(), [huge], { externalData: false, dataLocation: 'd' })).toThrow(/2 GiB/);
  });
});

describe('chooseIrVersion', () => {
  it('caps at 10 unless the opset or a dtype needs more (onnx helper VERSION_TABLE)', () => {
    expect(chooseIrVersion(11, 21, ['float32'])).toBe(10);
    expect(chooseIrVersion(3, 9, ['float32'])).toBe(4);
    expect(chooseIrVersion(7, 13, ['float32'])).toBe(7);
    expect(chooseIrVersion(10, 21, ['float4e2m1'])).toBe(11);
    expect(chooseIrVersion(10, 23, ['float32'])).toBe(11);
    expect(chooseIrVersion(8, 17, ['int4'])).toBe(10);
  });
});
