import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { applyPlan, parseCandidate } from '../src/flows/mixed.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { memoryInitializer } from '../src/graph/model.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { runModel } from '../src/interp/run.js';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import type { WeightOnlyOptions } from '../src/passes/weight-only/index.js';
import { zeroPointCorrection } from '../src/passes/weight-only/nbits-handler.js';
import { makeTensor } from '../src/tensor/tensor.js';
import { randn } from './helpers/random.js';

/*
 * 4-bit float zero points (HQQ, q4-k) written apart: MatMulNBits without zero points (ORT's
 * default 8) plus (X · R) · C with C = s · (8 − z), against the inline form (float zero points as
 * MatMulNBits' fourth input) in ONNX Runtime. The two are equal in real arithmetic and differ by
 * float rounding only: ORT dequantizes the inline form as fp32(q·s) + fp32(−s·z) per weight and the
 * split form as s·(q − 8) plus a per-block sum, so the bound is a few fp32 ulps of the terms summed
 * (|A| · |W| ≤ K · max|a| · max|w|), far below the quantization error itself.
 */

const K = 70; // not a multiple of 32: the last block is short
const N = 12;

function model(w: Float32Array, gemm: boolean): Uint8Array {
  const bias = makeTensor('float32', [N], randn(N, 5));
  return encodeModel(
    makeModel({
      nodes: [
        gemm
          ? { opType: 'Gemm', inputs: ['A', 'W', 'C'], outputs: ['Y'], name: 'gemm', attributes: { transB: 1 } }
          : { opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'], name: 'mm' },
      ],
      inputs: [{ name: 'A', dtype: 'float32', dims: gemm ? ['M', K] : ['B', 'M', K] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: gemm ? ['M', N] : ['B', 'M', N] }],
      initializers: gemm ? { W: makeTensor('float32', [N, K], w), C: bias } : { W: makeTensor('float32', [K, N], w) },
      opsets: { '': 17 },
    }),
  );
}

async function ortRun(bytes: Uint8Array, a: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ A: new ort.Tensor('float32', a, dims) });
  await s.release();
  return out.Y!.data as Float32Array;
}

/** The split model with C zeroed: MatMulNBits at zero point 8 alone. */
function withoutCorrection(bytes: Uint8Array): Uint8Array {
  const m = modelFromProto(decodeModel(bytes));
  for (const [name, init] of [...m.graph.initializers])
    if (name.includes('zero_correction')) {
      const t = init.load();
      m.graph.initializers.set(
        name,
        memoryInitializer(name, makeTensor('float32', t.dims, new Float32Array(t.data.length))),
      );
    }
  return encodeModel(modelToProto(m));
}

const maxAbs = (x: ArrayLike<number>) => Array.from(x).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);

const FORMS: [string, Omit<WeightOnlyOptions, 'floatZeroPoints'>][] = [
  ['q4 --hqq g32', { scheme: 'q4', hqq: true, blockSize: 32 }],
  ['q4-asym --hqq g16', { scheme: 'q4-asym', hqq: true, blockSize: 16 }],
  ['q4-k g32', { scheme: 'q4-k', blockSize: 32 }],
];

describe('4-bit float zero points as a per-block correction', () => {
  it('C = s · (8 − z), hand-worked, laid out [block, N]', () => {
    // N = 2, 2 blocks: scales [[1, 2], [0.5, 4]], zeros [[8, 7.5], [0, 9]].
    const c = zeroPointCorrection(Float32Array.of(1, 2, 0.5, 4), Float32Array.of(8, 7.5, 0, 9), 2, 2);
    expect(Array.from(c)).toEqual([0, 4, 1, -4]);
  });

  for (const [name, o] of FORMS)
    for (const gemm of [false, true])
      it(`${name}${gemm ? ' (Gemm transB, bias)' : ''}: graph form, ORT within fp32 rounding of the inline form, interpreter = ORT`, async () => {
        const w = randn(K * N, 11);
        w[7] = 4; // an outlier widening one block
        const m = model(w, gemm);
        const split = quantizeModelBytes(m, o);
        const inline = quantizeModelBytes(m, { ...o, floatZeroPoints: 'inline' });
        expect(split.report.layers[0]!.form).toMatch(/float zero points as a per-block correction\)/);
        expect(inline.report.layers[0]!.form).toMatch(/float zero points\)/);

        const g = modelFromProto(decodeModel(split.bytes)).graph;
        const nbits = g.nodes.find((n) => n.opType === 'MatMulNBits')!;
        expect(nbits.inputs.length).toBe(3); // no zero points: ORT's default 8
        expect(g.nodes.map((n) => n.opType).filter((t) => t !== 'Gather')).toEqual(
          gemm ? ['MatMulNBits', 'MatMul', 'MatMul', 'Add', 'Add'] : ['MatMulNBits', 'MatMul', 'MatMul', 'Add'],
        );
        expect(
          modelFromProto(decodeModel(inline.bytes)).graph.nodes.find((n) => n.opType === 'MatMulNBits')!.inputs.length,
        ).toBe(4);

        for (const dims of gemm
          ? [
              [1, K],
              [5, K],
            ]
          : [
              [1, 1, K],
              [2, 3, K],
            ]) {
          const a = randn(
            dims.reduce((p, d) => p * d, 1),
            12,
          );
          const want = await ortRun(inline.bytes, a, dims);
          const got = await ortRun(split.bytes, a, dims);
          // Terms summed are at most |a| · |w| each; a few ulps of their sum bound the rounding.
          const bound = 8 * 2 ** -24 * K * maxAbs(a) * maxAbs(w);
          expect(maxDiff(got, want)).toBeLessThanOrEqual(bound);
          expect(maxDiff(got, want)).toBeLessThanOrEqual(1e-5 * maxAbs(want));
          // The correction carries weight: without it the outputs miss by far more than the bound.
          expect(maxDiff(await ortRun(withoutCorrection(split.bytes), a, dims), want)).toBeGreaterThan(100 * bound);

          const interp = runModel(decodeModel(split.bytes), new Map([['A', makeTensor('float32', dims, a)]])).get('Y')!
            .data as Float32Array;
          expect(maxDiff(interp, got)).toBeLessThanOrEqual(1e-5 * maxAbs(got));
        }
      });

  it('mixed precision: the q4-k weights of a plan get the split form, the q4 ones stay plain', async () => {
    const stack = modelFromProto(
      decodeModel(
        encodeModel(
          makeModel({
            nodes: [
              { opType: 'MatMul', inputs: ['A', 'W1'], outputs: ['H'], name: 'mm1' },
              { opType: 'MatMul', inputs: ['H', 'W2'], outputs: ['Y'], name: 'mm2' },
            ],
            inputs: [{ name: 'A', dtype: 'float32', dims: ['M', K] }],
            outputs: [{ name: 'Y', dtype: 'float32', dims: ['M', K] }],
            initializers: {
              W1: makeTensor('float32', [K, K], randn(K * K, 1)),
              W2: makeTensor('float32', [K, K], randn(K * K, 2)),
            },
            opsets: { '': 17 },
          }),
        ),
      ),
    );
    const layers = applyPlan(
      stack,
      new Map([
        ['W1', parseCandidate('q4-k:32')],
        ['W2', parseCandidate('q4:32')],
      ]),
    );
    expect(layers.map((l) => l.form)).toEqual([
      expect.stringMatching(/per-block correction\) k-quant$/),
      expect.stringMatching(/^MatMulNBits\(bits=4, block=32\)$/),
    ]);
    const nbits = stack.graph.nodes.filter((n) => n.opType === 'MatMulNBits');
    expect(nbits.map((n) => n.inputs.length)).toEqual([3, 3]);
    expect(stack.graph.nodes.filter((n) => n.opType === 'MatMul')).toHaveLength(2); // X · R, then · C
    const a = randn(2 * K, 3);
    const y = await ortRun(encodeModel(modelToProto(stack)), a, [2, K]);
    expect(y.every(Number.isFinite)).toBe(true);
  });

  it('`floatZeroPoints` elsewhere, or an unknown form, is a user error', () => {
    const m = model(randn(K * N, 4), false);
    expect(() => quantizeModelBytes(m, { scheme: 'q4', floatZeroPoints: 'inline' })).toThrow(
      /forms with float zero points .*not 'q4' without `hqq`/,
    );
    expect(() => quantizeModelBytes(m, { scheme: 'q4-k', floatZeroPoints: 'both' as unknown as 'inline' })).toThrow(
      /'both' is not known/,
    );
  });

  it('2-bit HQQ keeps its float zero points inline (the default-zero-point 2-bit kernel is the slow one at one row)', () => {
    const m = model(randn(K * N, 3), false);
    const q = quantizeModelBytes(m, { scheme: 'q2', hqq: true, blockSize: 32 });
    expect(q.report.layers[0]!.form).toMatch(/float zero points\) hqq$/);
    expect(modelFromProto(decodeModel(q.bytes)).graph.nodes.map((n) => n.opType)).toEqual(['MatMulNBits']);
  });
});
