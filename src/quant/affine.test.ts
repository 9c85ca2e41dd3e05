import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import type { AttributeProto, TensorProto } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QuantkitError } from '../errors.js';
import { affineParams, allocCodes, dequantizeAffine, intRange, paramsFromRange, quantizeAffine } from './affine.js';
import { blockShapeFor, makeLayout } from './layout.js';
import { blockMinMax, blockRanges } from './range.js';
import { roundHalfAway, roundHalfEven } from '../formats/rounding.js';
import { dequantize, quantize } from './quantize.js';

// One-node ONNX models run in ONNX Runtime: the independent truth for the Q/DQ math.
function valueInfo(name: string, elemType: number) {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, { value: { case: 'tensorType', value: { elemType } } }),
  });
}

interface OneNode {
  op: string;
  inputs: { name: string; elemType: number }[];
  initializers?: TensorProto[];
  outputs: { name: string; elemType: number }[];
  attributes?: AttributeProto[];
  opset?: number;
}

function oneNodeModel(m: OneNode): Uint8Array {
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

function floatInit(name: string, dims: number[], values: Float32Array): TensorProto {
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: 1, floatData: Array.from(values) });
}

function int8Init(name: string, dims: number[], values: Int8Array): TensorProto {
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: 3, int32Data: Array.from(values) });
}

function intAttr(name: string, i: number): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(i) });
}

export async function runModel(
  model: Uint8Array,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

function normal(n: number, seed: number, sigma = 1): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sigma * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

describe('rounding', () => {
  it('half-even and half-away on the hand-worked ties', () => {
    const xs = [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 2.4999999999999996, 1.0000001];
    expect(xs.map(roundHalfEven)).toEqual([-4, -2, -2, -0, 0, 2, 2, 4, 2, 1]);
    expect(xs.map(roundHalfAway)).toEqual([-4, -3, -2, -1, 1, 2, 3, 4, 2, 1]);
  });
  it('half-even agrees with a definition by floor on random halves and non-halves', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e6, max: 1e6 }), fc.constantFrom(0, 0.25, 0.5, 0.75), (i, frac) => {
        const x = i + frac;
        const fl = Math.floor(x);
        const d = x - fl;
        const want = d < 0.5 ? fl : d > 0.5 ? fl + 1 : fl % 2 === 0 ? fl : fl + 1;
        expect(roundHalfEven(x) === want).toBe(true); // −0 and 0 both fine
      }),
    );
  });
});

describe('affine parameters (ONNX Runtime convention)', () => {
  it('asymmetric uint8 includes zero and follows scale=(rmax-rmin)/255, zp=round(-rmin/scale)', () => {
    // Hand-worked: rmin=-1, rmax=2: scale = 3/255, zp = round(85) = 85.
    const p = paramsFromRange(-1, 2, { qmin: 0, qmax: 255, symmetric: false });
    expect(p.scale).toBe(Math.fround(Math.fround(3) / 255));
    expect(p.zeroPoint).toBe(85);
    // Positive-only range still includes 0: zp = 0.
    expect(paramsFromRange(0.5, 4, { qmin: 0, qmax: 255, symmetric: false }).zeroPoint).toBe(0);
  });
  it('symmetric int8 uses the narrow range: scale = absmax/127, zp = 0', () => {
    const r = intRange(8, true, true);
    expect(r).toEqual({ qmin: -127, qmax: 127 });
    const p = paramsFromRange(-3, 1, { ...r, symmetric: true });
    expect(p.scale).toBe(Math.fround(3 / 127));
    expect(p.zeroPoint).toBe(0);
  });
  it('all-zero blocks get scale 1 (as ORT) and stay exactly zero; tiny ranges never give a zero scale', () => {
    for (const symmetric of [true, false]) {
      const q = quantize(new Float32Array(8), { format: 'int8', symmetric });
      expect(Array.from(q.scales)).toEqual([1]);
      expect(Array.from(dequantize(q))).toEqual(new Array(8).fill(0));
    }
    const tiny = paramsFromRange(0, 1e-45, { qmin: -128, qmax: 127, symmetric: false });
    expect(tiny.scale).toBeGreaterThan(0);
    expect(Number.isFinite(1 / Math.fround(tiny.scale))).toBe(true);
    const fp16 = paramsFromRange(-1e-9, 1e-9, { qmin: -127, qmax: 127, symmetric: true, scaleDtype: 'float16' });
    expect(fp16.scale).toBe(2 ** -24);
  });
  it('constant tensors reconstruct exactly at the top of the range', () => {
    const q = quantize(new Float32Array(5).fill(0.3), { format: 'uint8' });
    expect(q.zeroPoints?.[0]).toBe(0);
    expect(Array.from(dequantize(q)).every((v) => Math.abs(v - 0.3) < 1e-7)).toBe(true);
  });
  it('scales are rounded to fp16 / bf16 when asked, and codes use the rounded scale', () => {
    const data = normal(256, 5);
    for (const scaleDtype of ['float16', 'bfloat16'] as const) {
      const q = quantize(data, { format: 'int8', scaleDtype, shape: [4, 64], axis: 0 });
      const back = dequantize(q);
      for (let i = 0; i < 256; i++) {
        const s = q.scales[Math.floor(i / 64)] as number;
        expect(Math.abs((back[i] as number) - (data[i] as number))).toBeLessThanOrEqual(
          s * 0.5 + 1e-6 + Math.abs(data[i] as number) * 2 ** -7,
        );
      }
    }
  });
});

describe('layouts: per-tensor, per-axis, per-block along any axis with tails', () => {
  it('parameter shapes and block membership', () => {
    expect(makeLayout([4, 6], blockShapeFor([4, 6], {})).paramShape).toEqual([1, 1]);
    expect(makeLayout([4, 6], blockShapeFor([4, 6], { axis: 0 })).paramShape).toEqual([4, 1]);
    expect(makeLayout([4, 6], blockShapeFor([4, 6], { axis: -1 })).paramShape).toEqual([1, 6]);
    expect(makeLayout([4, 6], blockShapeFor([4, 6], { axis: 1, blockSize: 4 })).paramShape).toEqual([4, 2]);
    expect(makeLayout([5, 3], blockShapeFor([5, 3], { axis: 0, blockSize: 2 })).paramShape).toEqual([3, 3]);
    expect(makeLayout([2, 3, 4], [1, 2, 4]).paramShape).toEqual([2, 2, 1]);
  });
  it('blocked min/max along axis 0 with a tail matches a brute-force reference', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 2 }),
        fc.integer(),
        (a, b, c, bs, axis, seed) => {
          const shape = [a, b, c];
          const data = normal(a * b * c, seed);
          const layout = makeLayout(shape, blockShapeFor(shape, { axis, blockSize: bs }));
          const { hi } = blockMinMax(data, layout);
          const want = new Float32Array(layout.numBlocks).fill(-Infinity);
          const ps = layout.paramShape;
          for (let i = 0; i < a; i++)
            for (let j = 0; j < b; j++)
              for (let k = 0; k < c; k++) {
                const idx = [i, j, k];
                idx[axis] = Math.floor((idx[axis] as number) / bs);
                const p =
                  ((idx[0] as number) * (ps[1] as number) + (idx[1] as number)) * (ps[2] as number) +
                  (idx[2] as number);
                want[p] = Math.max(want[p] as number, data[(i * b + j) * c + k] as number);
              }
          expect(Array.from(hi)).toEqual(Array.from(want));
        },
      ),
    );
  });
});

describe('affine quantize / dequantize properties', () => {
  const formats = [
    { format: 'int8' as const, symmetric: true },
    { format: 'int8' as const, symmetric: false },
    { format: 'uint8' as const, symmetric: false },
    { format: 'int4' as const, symmetric: true },
    { format: 'uint4' as const, symmetric: false },
    { format: 'int2' as const, symmetric: false },
    { format: 'int8' as const, symmetric: false, bits: 16 },
  ];
  it('|x − deq(q(x))| ≤ scale/2 for every in-range value, every format and granularity', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...formats),
        fc.float32Array({ minLength: 1, maxLength: 64, noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
        fc.constantFrom(undefined, 4, 16),
        fc.constantFrom<'half-even' | 'half-away'>('half-even', 'half-away'),
        (f, data, blockSize, rounding) => {
          const q = quantize(data, { ...f, blockSize, rounding });
          const back = dequantize(q);
          const bs = blockSize ?? data.length;
          for (let i = 0; i < data.length; i++) {
            const s = q.scales[Math.floor(i / bs)] as number;
            // float32 evaluation of x/s + zp and (q−zp)·s adds a few ulps of |x| and of the code
            // (up to 2^bits steps when the zero point is far from 0) on top of s/2.
            const tol = s / 2 + (Math.abs(data[i] as number) + s * 2 ** (f.bits ?? 8)) * 2 ** -22 + 1e-30;
            expect(Math.abs((back[i] as number) - (data[i] as number))).toBeLessThanOrEqual(tol);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
  it('quantize is monotone: x ≤ y ⇒ q(x) ≤ q(y) under fixed parameters', () => {
    fc.assert(
      fc.property(
        fc.float32Array({ minLength: 2, maxLength: 64, noNaN: true, noDefaultInfinity: true }),
        fc.constantFrom(...formats),
        (data, f) => {
          const sorted = Float32Array.from(data).sort();
          const q = quantize(sorted, f);
          for (let i = 1; i < sorted.length; i++)
            expect(q.codes[i] as number).toBeGreaterThanOrEqual(q.codes[i - 1] as number);
        },
      ),
    );
  });
  it('codes saturate outside the chosen range (percentile clipping)', () => {
    const data = Float32Array.from({ length: 1001 }, (_, i) => i - 500);
    data[1000] = 1e6;
    const layout = makeLayout([1001], [1001]);
    const q = { qmin: -127, qmax: 127, symmetric: true };
    const r = blockRanges(data, layout, { kind: 'percentile', percentile: 99 }, q);
    const params = affineParams(r.lo, r.hi, q);
    const codes = quantizeAffine(data, layout, params, allocCodes(8, true, 1001));
    expect(codes[1000]).toBe(127);
    expect(codes[0]).toBe(-127);
    expect(r.hi[0]).toBeLessThan(1000);
  });
  it('MSE-optimal clipping beats min-max on heavy-tailed data at 4 bits', () => {
    const data = normal(4096, 11);
    data[7] = 40; // one outlier
    const layout = makeLayout([4096], [4096]);
    const q = { ...intRange(4, true, true), symmetric: true };
    const err = (kind: 'absmax' | 'mse') => {
      const r = blockRanges(data, layout, { kind }, q);
      const p = affineParams(r.lo, r.hi, q);
      const back = dequantizeAffine(quantizeAffine(data, layout, p, allocCodes(4, true, 4096)), layout, p);
      let e = 0;
      for (let i = 0; i < 4096; i++) e += ((back[i] as number) - (data[i] as number)) ** 2;
      return e;
    };
    expect(err('mse')).toBeLessThan(err('absmax') * 0.5);
  });
  it('NaN/Inf are a named error naming the index, or clamp on request', () => {
    const data = Float32Array.of(1, -2, Number.NaN, 3);
    try {
      quantize(data, { format: 'int8', name: 'w' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(QuantkitError);
      expect((e as QuantkitError).code).toBe('QK_NONFINITE_WEIGHTS');
      expect((e as QuantkitError).message).toContain('index 2');
      expect((e as QuantkitError).message).toContain("'w'".slice(1, 2));
    }
    const inf = Float32Array.of(1, Infinity, -Infinity, Number.NaN, -2);
    for (const format of ['int8', 'uint8', 'nf4', 'kmeans', 'float8e4m3fn', 'float16'] as const) {
      expect(() => quantize(inf, { format })).toThrow(/non-finite/);
    }
    const q = quantize(inf, { format: 'int8', nonFinite: 'clamp' });
    expect(Array.from(q.codes)).toEqual([64, 127, -127, 0, -127]);
  });
});

describe('ONNX Runtime is the truth', () => {
  it('uint8 asymmetric per-tensor: scale, zero point and codes identical to DynamicQuantizeLinear', async () => {
    const cases = [
      normal(5000, 1),
      normal(5000, 2, 0.01).map((v) => v + 0.02),
      Float32Array.of(-0.5, 0.25, 1.75, 3),
      Float32Array.from({ length: 300 }, (_, i) => (i - 100) / 37),
    ];
    const model = oneNodeModel({
      op: 'DynamicQuantizeLinear',
      inputs: [{ name: 'x', elemType: 1 }],
      outputs: [
        { name: 'y', elemType: 2 },
        { name: 'y_scale', elemType: 1 },
        { name: 'y_zero_point', elemType: 2 },
      ],
      opset: 11,
    });
    for (const data of cases) {
      const out = await runModel(model, { x: new ort.Tensor('float32', data, [data.length]) });
      const q = quantize(data, { format: 'uint8', symmetric: false });
      expect(q.scales[0]).toBe((out.y_scale as ort.Tensor).data[0]);
      expect(q.zeroPoints?.[0]).toBe((out.y_zero_point as ort.Tensor).data[0]);
      expect(Array.from(q.codes)).toEqual(Array.from((out.y as ort.Tensor).data as Uint8Array));
    }
  });
  it('int8 symmetric per-channel: codes identical to QuantizeLinear(axis=0) with our scales; DequantizeLinear values identical', async () => {
    const rows = 16;
    const cols = 40;
    const data = normal(rows * cols, 9);
    for (let i = 0; i < cols; i++) data[3 * cols + i] = (i - 20) * 0.5; // exact ties at half steps
    const q = quantize(data, { format: 'int8', shape: [rows, cols], axis: 0 });
    expect(q.zeroPoints).toBeUndefined();
    const qModel = oneNodeModel({
      op: 'QuantizeLinear',
      inputs: [{ name: 'x', elemType: 1 }],
      initializers: [floatInit('s', [rows], q.scales), int8Init('z', [rows], new Int8Array(rows))],
      outputs: [{ name: 'y', elemType: 3 }],
      attributes: [intAttr('axis', 0)],
    });
    const out = await runModel(qModel, { x: new ort.Tensor('float32', data, [rows, cols]) });
    expect(Array.from(q.codes)).toEqual(Array.from((out.y as ort.Tensor).data as Int8Array));
    const dqModel = oneNodeModel({
      op: 'DequantizeLinear',
      inputs: [{ name: 'q', elemType: 3 }],
      initializers: [floatInit('s', [rows], q.scales)],
      outputs: [{ name: 'y', elemType: 1 }],
      attributes: [intAttr('axis', 0)],
    });
    const dq = await runModel(dqModel, { q: new ort.Tensor('int8', q.codes as Int8Array, [rows, cols]) });
    expect(Array.from(dequantize(q))).toEqual(Array.from((dq.y as ort.Tensor).data as Float32Array));
  });
  it('int8 blocked along axis 1 (block 16, with a tail): codes identical to QuantizeLinear(block_size)', async () => {
    const rows = 3;
    const cols = 40;
    const data = normal(rows * cols, 21);
    const q = quantize(data, { format: 'int8', shape: [rows, cols], axis: 1, blockSize: 16 });
    expect(q.scaleShape).toEqual([3, 3]);
    const model = oneNodeModel({
      op: 'QuantizeLinear',
      inputs: [{ name: 'x', elemType: 1 }],
      initializers: [floatInit('s', [3, 3], q.scales), int8Init('z', [3, 3], new Int8Array(9))],
      outputs: [{ name: 'y', elemType: 3 }],
      attributes: [intAttr('axis', 1), intAttr('block_size', 16)],
    });
    const out = await runModel(model, { x: new ort.Tensor('float32', data, [rows, cols]) });
    expect(Array.from(q.codes)).toEqual(Array.from((out.y as ort.Tensor).data as Int8Array));
  });
});
