import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { quantizeModel } from '../src/flows/quantize.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { memoryInitializer, type Model } from '../src/graph/model.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { readNpy } from '../src/io/npy/npy.js';
import { foldBatchNorm } from '../src/passes/fold-batchnorm.js';
import { findWeightSites } from '../src/passes/weight-only/index.js';
import { outputChannelAxis } from '../src/passes/weight-only/dq-storage.js';
import { dequantizeKMeansWeights, quantizeKMeansWeights } from '../src/quant/kmeans-weights.js';
import { makeTensor, type Tensor } from '../src/tensor/tensor.js';
import { randn } from './helpers/random.js';

/*
 * The kmeans scheme's graph (Cast, Gather/GatherElements over the codebook, BitShift unpacking) in
 * stock onnxruntime-node, against the quantizer's own dequantized weights.
 */

async function runOrt(bytes: Uint8Array, feeds: Record<string, Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const input: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds))
    input[name] = new ort.Tensor(t.dtype === 'int64' ? 'int64' : 'float32', t.data as Float32Array, [...t.dims]);
  const out = await s.run(input);
  return out[s.outputNames[0] as string]!.data as Float32Array;
}

describe('kmeans weights in ONNX Runtime', () => {
  // 7 · 5 = 35 weights: no slot width fills its last byte, so the Slice is exercised too.
  const K = 7;
  const N = 5;
  const w = randn(K * N, 11);
  const eye = new Float32Array(K * K);
  for (let i = 0; i < K; i++) eye[i * K + i] = 1;
  for (const op of ['MatMul', 'Gemm'] as const) {
    for (const perChannel of [false, true]) {
      it(`${op}${perChannel ? ' per channel' : ''}: the identity times the rebuilt weight is the dequantized weight, bits 1…8`, async () => {
        // Gemm with transB reads W as [N, K] and takes per-channel codebooks along axis 0.
        const dims = op === 'MatMul' ? [K, N] : [N, K];
        for (let bits = 1; bits <= 8; bits++) {
          const model = modelFromProto(
            makeModel({
              nodes: [
                op === 'MatMul'
                  ? { opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'], name: 'mm' }
                  : { opType: 'Gemm', inputs: ['A', 'W'], outputs: ['Y'], name: 'mm', attributes: { transB: 1 } },
              ],
              inputs: [{ name: 'A', dtype: 'float32', dims: [K, K] }],
              outputs: [{ name: 'Y', dtype: 'float32', dims: [K, N] }],
              initializers: { W: makeTensor('float32', dims, w) },
              opsets: { '': 13 },
            }),
          );
          const r = quantizeModel(model, { scheme: 'kmeans', bits, perChannel, seed: 3 });
          const y = await runOrt(encodeModel(modelToProto(r.model)), { A: makeTensor('float32', [K, K], eye) });
          const q = quantizeKMeansWeights(w, dims, {
            bits,
            axis: perChannel ? (op === 'MatMul' ? 1 : 0) : undefined,
            seed: 3,
          });
          const ref = dequantizeKMeansWeights(q);
          const expected =
            op === 'MatMul'
              ? ref
              : Float32Array.from({ length: K * N }, (_, i) => ref[(i % N) * K + Math.floor(i / N)] as number);
          expect(Array.from(y), `bits ${bits}`).toEqual(Array.from(expected));
          const layer = r.report.layers[0];
          const slot = bits <= 1 ? 1 : bits <= 2 ? 2 : bits <= 4 ? 4 : 8;
          const codebook = 4 * 2 ** bits * (perChannel ? N : 1);
          expect(layer?.bytesAfter).toBeGreaterThanOrEqual(Math.ceil((35 * slot) / 8) + codebook);
          expect(layer?.note).toContain(`${Math.ceil((35 * slot) / 8)} index + ${codebook} codebook`);
        }
      });
    }
  }

  it('a result made ahead (a fine-tuned codebook) is written as given', async () => {
    const model = modelFromProto(
      makeModel({
        nodes: [{ opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'], name: 'mm' }],
        inputs: [{ name: 'A', dtype: 'float32', dims: [K, K] }],
        outputs: [{ name: 'Y', dtype: 'float32', dims: [K, N] }],
        initializers: { W: makeTensor('float32', [K, N], w) },
        opsets: { '': 13 },
      }),
    );
    const q = quantizeKMeansWeights(w, [K, N], { bits: 2 });
    const tuned = { ...q, codebooks: Float32Array.from(q.codebooks, (c, i) => c + 0.25 * i) };
    const r = quantizeModel(model, { scheme: 'kmeans', bits: 2, kmeansWeights: new Map([['W', tuned]]) });
    const y = await runOrt(encodeModel(modelToProto(r.model)), { A: makeTensor('float32', [K, K], eye) });
    expect(Array.from(y)).toEqual(Array.from(dequantizeKMeansWeights(tuned)));
  });

  /** The model with every weight the scheme touches replaced by its dequantized k-means value. */
  function dequantizedReference(bytes: Uint8Array, bits: number, perChannel: boolean): Uint8Array {
    const model: Model = modelFromProto(decodeModel(bytes, 'ref'), { label: 'ref' });
    foldBatchNorm(model);
    const seen = new Set<string>();
    for (const site of findWeightSites(model)) {
      const init = site.weight;
      if (seen.has(init.name) || init.dims.length < 2) continue;
      seen.add(init.name);
      const data = init.load().data as Float32Array;
      const q = quantizeKMeansWeights(data, init.dims, {
        bits,
        axis: perChannel ? outputChannelAxis(site) : undefined,
        seed: 1,
      });
      model.graph.initializers.set(
        init.name,
        memoryInitializer(init.name, makeTensor('float32', [...init.dims], dequantizeKMeansWeights(q))),
      );
    }
    return encodeModel(modelToProto(model));
  }

  function lmIds(windows: Tensor, count: number): Tensor {
    const len = windows.dims[1] as number;
    const ids = windows.data as BigInt64Array;
    const out = new BigInt64Array(count * (len - 1));
    for (let i = 0; i < count; i++) out.set(ids.subarray(i * len, i * len + len - 1), i * (len - 1));
    return makeTensor('int64', [count, len - 1], out);
  }
  function firstSamples(x: Tensor, count: number): Tensor {
    const per = x.dims.slice(1).reduce((a, b) => a * b, 1);
    return makeTensor('float32', [count, ...x.dims.slice(1)], (x.data as Float32Array).slice(0, count * per));
  }

  const file = (n: string) => new URL(`../models/${n}`, import.meta.url).pathname;
  for (const [name, input, bits, perChannel] of [
    ['cnn.onnx', 'cnn-test-x.npy', 4, true],
    ['lm.onnx', 'lm-eval.npy', 3, false],
  ] as const) {
    it(`${name} kmeans ${bits}-bit${perChannel ? ' per channel' : ''}: ORT output equals the dequantized-weight model's`, async () => {
      const bytes = readFileSync(file(name));
      const all = readNpy(readFileSync(file(input)));
      // LM: the first 4 eval windows without their last id (the model reads [:, :T]); CNN: 64 images.
      const x = name === 'lm.onnx' ? lmIds(all, 4) : firstSamples(all, 64);
      const model = modelFromProto(decodeModel(bytes, name), { label: name });
      const r = quantizeModel(model, { scheme: 'kmeans', bits, perChannel });
      const inputName = r.model.graph.inputs[0]?.name as string;
      const got = await runOrt(encodeModel(modelToProto(r.model)), { [inputName]: x });
      const want = await runOrt(dequantizedReference(bytes, bits, perChannel), { [inputName]: x });
      expect(Array.from(got)).toEqual(Array.from(want));
    });
  }

  it('weights of one slot width share one set of unpacking constants, unnamed nodes; a model tensor of that name stays its own', async () => {
    // Y = A · W1 · W2 + kmeans_shl4: the model already holds a (float) tensor under the name the
    // shared shift constant would take.
    const w1 = randn(K * K, 12);
    const w2 = randn(K * N, 13);
    const model = modelFromProto(
      makeModel({
        nodes: [
          { opType: 'MatMul', inputs: ['A', 'W1'], outputs: ['H'], name: 'mm1' },
          { opType: 'MatMul', inputs: ['H', 'W2'], outputs: ['P'], name: 'mm2' },
          { opType: 'Add', inputs: ['P', 'kmeans_shl4'], outputs: ['Y'], name: 'add' },
        ],
        inputs: [{ name: 'A', dtype: 'float32', dims: [K, K] }],
        outputs: [{ name: 'Y', dtype: 'float32', dims: [K, N] }],
        initializers: {
          W1: makeTensor('float32', [K, K], w1),
          W2: makeTensor('float32', [K, N], w2),
          kmeans_shl4: makeTensor('float32', [1], Float32Array.of(0.5)),
        },
        opsets: { '': 13 },
      }),
    );
    const r = quantizeModel(model, { scheme: 'kmeans', bits: 4, seed: 3 });
    const g = r.model.graph;
    const shifts = g.nodes.filter((n) => n.opType === 'BitShift');
    expect(shifts).toHaveLength(4);
    expect(g.nodes.filter((n) => n.name === '').map((n) => n.opType)).toEqual(
      expect.arrayContaining(['BitShift', 'Reshape', 'Cast', 'Gather']),
    );
    const shiftInputs = new Set(shifts.map((n) => n.inputs[1]));
    expect(shiftInputs.size).toBe(2);
    expect(shiftInputs.has('kmeans_shl4')).toBe(false);
    expect(Array.from(g.initializers.get('kmeans_shl4')?.load().data as Float32Array)).toEqual([0.5]);
    const y = await runOrt(encodeModel(modelToProto(r.model)), { A: makeTensor('float32', [K, K], eye) });
    const d1 = dequantizeKMeansWeights(quantizeKMeansWeights(w1, [K, K], { bits: 4, seed: 3, name: 'W1' }));
    const d2 = dequantizeKMeansWeights(quantizeKMeansWeights(w2, [K, N], { bits: 4, seed: 3, name: 'W2' }));
    for (let i = 0; i < K; i++)
      for (let j = 0; j < N; j++) {
        let sum = 0;
        for (let k = 0; k < K; k++) sum += (d1[i * K + k] as number) * (d2[k * N + j] as number);
        expect(y[i * N + j]).toBeCloseTo(sum + 0.5, 4);
      }
  });
});
