import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { isQuantkitError } from '../src/errors.js';
import { classifierAccuracy, lmPerplexity } from '../src/flows/evaluate-node.js';
import { qat } from '../src/flows/qat.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { makeModel } from '../src/io/onnx/build.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { quantizeWeightBits } from '../src/passes/activation/qdq.js';
import { buildTrainable, writeBack } from '../src/passes/trainable/build.js';
import { makeTensor, type Tensor } from '../src/tensor/tensor.js';
import { makeDataset } from '../src/train/data.js';
import { trainLoop } from '../src/train/loop.js';
import { crossEntropy } from '../src/train/losses.js';
import { tf, useBackend } from '../src/train/tf.js';
import { runCli } from './helpers/cli.js';
import { tfjsWasmFolder } from '../src/node/tfjs-wasm.js';

/*
 * Training on the shipped models, kept to a few steps: the trainable graph against ONNX Runtime,
 * fp32 write-back, and QAT's exported QDQ model against the engine's fake-quantized one. The full
 * runs and the README's numbers come from scripts/measure/qat.ts.
 */

function rows(t: Tensor, n: number): Tensor {
  const per = t.data.length / (t.dims[0] as number);
  return makeTensor(t.dtype, [n, ...t.dims.slice(1)], t.data.slice(0, n * per) as Tensor['data']);
}

const cnnBytes = readFileSync('models/cnn.onnx');
const lmBytes = readFileSync('models/lm.onnx');
const testX = readNpy(readFileSync('models/cnn-test-x.npy'));
const someX = rows(testX, 64);
const testY = readNpy(readFileSync('models/cnn-test-y.npy'));
const trainX = readNpy(readFileSync('models/train/digits-train-x.npy'));
const trainY = readNpy(readFileSync('models/train/digits-train-y.npy'));
const lmEval = readNpy(readFileSync('models/lm-eval.npy'));

/** max |a − b| relative to max |b|. */
function relativeError(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
    m = Math.max(m, Math.abs(b[i] as number));
  }
  return d / m;
}

async function ortRun(bytes: Uint8Array, name: string, t: ort.Tensor): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ [name]: t });
  return out[s.outputNames[0] as string]?.data as Float32Array;
}

const wasmPaths = tfjsWasmFolder();

// The WebAssembly backend: 5–10× the CPU backend's speed here (scripts/measure/qat.ts).
beforeAll(async () => {
  await useBackend('wasm', { wasmPaths });
});

describe('ONNX → trainable TensorFlow.js graph', () => {
  it('digits CNN: forward equals ONNX Runtime within 1e-4 relative', async () => {
    const g = buildTrainable(modelFromProto(decodeModel(cnnBytes)));
    const x = someX.data as Float32Array;
    const ours = tf.tidy(() =>
      g
        .forward({ input: tf.tensor(x, [...someX.dims]) })
        .get('logits')
        ?.dataSync(),
    );
    const ref = await ortRun(cnnBytes, 'input', new ort.Tensor('float32', x, [...someX.dims]));
    expect(relativeError(ours as Float32Array, ref)).toBeLessThan(1e-4);
    g.dispose();
  });

  it('char LM: forward equals ONNX Runtime within 1e-4 relative (shape chains, attention, Erf GELU)', async () => {
    const g = buildTrainable(modelFromProto(decodeModel(lmBytes)));
    const [, len] = lmEval.dims as [number, number];
    const ids = new BigInt64Array(4 * 40);
    for (let i = 0; i < 4; i++) ids.set((lmEval.data as BigInt64Array).subarray(i * len, i * len + 40), i * 40);
    const ours = tf.tidy(() =>
      g
        .forward({ input_ids: tf.tensor(Int32Array.from(ids, Number), [4, 40], 'int32') })
        .get('logits')
        ?.dataSync(),
    );
    const ref = await ortRun(lmBytes, 'input_ids', new ort.Tensor('int64', ids, [4, 40]));
    expect(relativeError(ours as Float32Array, ref)).toBeLessThan(1e-4);
    g.dispose();
  });

  it('grouped-conv CNN: forward equals ONNX Runtime (grouped Conv, Pad, AveragePool, GlobalAveragePool, GELU)', async () => {
    const bytes = readFileSync('models/train/gcnn.onnx');
    const g = buildTrainable(modelFromProto(decodeModel(bytes)));
    const x = someX.data as Float32Array;
    const ours = tf.tidy(() =>
      g
        .forward({ input: tf.tensor(x, [...someX.dims]) })
        .get('logits')
        ?.dataSync(),
    );
    const ref = await ortRun(bytes, 'input', new ort.Tensor('float32', x, [...someX.dims]));
    expect(relativeError(ours as Float32Array, ref)).toBeLessThan(1e-4);
    g.dispose();
  });

  it('decomposed LayerNormalization (ReduceMean, Sub, Pow, Add, Sqrt, Div) equals ONNX Runtime', async () => {
    const f = (dims: number[], v: number[]) => makeTensor('float32', dims, Float32Array.from(v));
    const proto = makeModel({
      nodes: [
        { opType: 'ReduceMean', inputs: ['x'], outputs: ['m'], attributes: { axes: [-1] } },
        { opType: 'Sub', inputs: ['x', 'm'], outputs: ['d'] },
        { opType: 'Pow', inputs: ['d', 'two'], outputs: ['d2'] },
        { opType: 'ReduceMean', inputs: ['d2'], outputs: ['v'], attributes: { axes: [-1] } },
        { opType: 'Add', inputs: ['v', 'eps'], outputs: ['ve'] },
        { opType: 'Sqrt', inputs: ['ve'], outputs: ['sd'] },
        { opType: 'Div', inputs: ['d', 'sd'], outputs: ['n'] },
        { opType: 'Mul', inputs: ['n', 'gamma'], outputs: ['g'] },
        { opType: 'Add', inputs: ['g', 'beta'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dtype: 'float32', dims: [2, 3, 4] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [2, 3, 4] }],
      initializers: {
        two: f([], [2]),
        eps: f([], [1e-5]),
        gamma: f([4], [1, 0.5, -2, 3]),
        beta: f([4], [0, 0.1, 0.2, -0.3]),
      },
      opsets: { '': 13 },
      irVersion: 8,
    });
    const bytes = encodeModel(proto);
    const x = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.7) * (1 + i / 8));
    const g = buildTrainable(modelFromProto(decodeModel(bytes)));
    expect([...g.variables.keys()].sort()).toEqual(['beta', 'gamma']);
    const ours = tf.tidy(() =>
      g
        .forward({ x: tf.tensor(x, [2, 3, 4]) })
        .get('y')
        ?.dataSync(),
    );
    const ref = await ortRun(bytes, 'x', new ort.Tensor('float32', x, [2, 3, 4]));
    expect(relativeError(ours as Float32Array, ref)).toBeLessThan(1e-4);
    g.dispose();
  });

  it('an op outside the set is QK_TRAIN_UNSUPPORTED_OP naming the op and its node', () => {
    const proto = makeModel({
      nodes: [
        { opType: 'Relu', inputs: ['x'], outputs: ['r'], name: 'ok' },
        { opType: 'Hardmax', inputs: ['r'], outputs: ['y'], name: 'the_hardmax' },
      ],
      inputs: [{ name: 'x', dtype: 'float32', dims: [2, 3] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [2, 3] }],
    });
    let err: unknown;
    try {
      buildTrainable(modelFromProto(decodeModel(encodeModel(proto))), {}, 'tiny.onnx');
    } catch (e) {
      err = e;
    }
    expect(isQuantkitError(err) && err.code).toBe('QK_TRAIN_UNSUPPORTED_OP');
    expect((err as Error).message).toMatch(/Hardmax.*'the_hardmax'/);
  });

  it('fp32 write-back: trained weights land in the ONNX graph, and ORT runs them as the engine does', async () => {
    const model = modelFromProto(decodeModel(cnnBytes));
    const g = buildTrainable(model);
    const before = Float32Array.from(model.graph.initializers.get('fc2.weight')?.load().data as Float32Array);
    const data = makeDataset('classify', 'input', { x: rows(trainX, 64), labels: rows(trainY, 64) });
    const optimizer = tf.train.adam(1e-2);
    trainLoop(
      { variables: () => [...g.variables.values()], forward: (x) => g.forward(x).get('logits') as tf.Tensor },
      data,
      { epochs: 1, batchSize: 32, seed: 1, optimizer, loss: crossEntropy },
    );
    writeBack(g);
    const after = model.graph.initializers.get('fc2.weight')?.load().data as Float32Array;
    expect(after).not.toEqual(before);
    const x = someX.data as Float32Array;
    const ours = tf.tidy(() =>
      g
        .forward({ input: tf.tensor(x, [...someX.dims]) })
        .get('logits')
        ?.dataSync(),
    );
    const bytes = encodeModel(modelToProto(model));
    const ref = await ortRun(bytes, 'input', new ort.Tensor('float32', x, [...someX.dims]));
    expect(relativeError(ours as Float32Array, ref)).toBeLessThan(1e-4);
    g.dispose();
  });
});

describe('quantization-aware training (a few steps)', () => {
  const opts = {
    task: 'classify',
    bits: 4,
    epochs: 1,
    maxSteps: 3,
    lr: 1e-3,
    seed: 7,
    backend: 'wasm',
    wasmPaths,
  } as const;
  const small = { x: rows(trainX, 128), labels: rows(trainY, 128) };

  it('CNN 4-bit: the same seed writes the same bytes, another seed other bytes; ORT accuracy = engine accuracy', async () => {
    const evaluate = { x: testX, labels: testY };
    const a = await qat(cnnBytes, small, { ...opts, evaluate });
    const b = await qat(cnnBytes, small, opts);
    const c = await qat(cnnBytes, small, { ...opts, seed: 8 });
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true);
    expect(Buffer.from(c.bytes).equals(Buffer.from(a.bytes))).toBe(false);
    // The exported form: int4 weights behind opset-21 DequantizeLinear, one scale per channel.
    const m = modelFromProto(decodeModel(a.bytes));
    expect(m.opsets.get('')).toBeGreaterThanOrEqual(21);
    const dqs = m.graph.nodes.filter(
      (n) => n.opType === 'DequantizeLinear' && m.graph.initializers.get(n.inputs[0] as string)?.dtype === 'int4',
    );
    expect(dqs.length).toBe(4);
    // Within 0.2 % (one test image of 497) of the engine's fake-quantized accuracy.
    const inOrt = await classifierAccuracy(a.bytes, testX, testY);
    expect(Math.abs(inOrt.accuracy - (a.history.engine?.accuracy ?? -1))).toBeLessThanOrEqual(0.002);
  });

  it('CNN 4-bit LSQ with the steps on an Adam of their own from the MSE start: deterministic, exported as the engine runs it', async () => {
    const lsq = { ...opts, method: 'lsq', quantLrScale: 0.1, lsqInit: 'mse' } as const;
    const evaluate = { x: testX, labels: testY };
    const a = await qat(cnnBytes, small, { ...lsq, evaluate });
    const b = await qat(cnnBytes, small, lsq);
    const plain = await qat(cnnBytes, small, { ...opts, method: 'lsq' });
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true);
    expect(Buffer.from(plain.bytes).equals(Buffer.from(a.bytes))).toBe(false);
    const inOrt = await classifierAccuracy(a.bytes, testX, testY);
    expect(Math.abs(inOrt.accuracy - (a.history.engine?.accuracy ?? -1))).toBeLessThanOrEqual(0.002);
  });

  it('CNN 3-bit: the loss on a fixed batch decreases', async () => {
    const fixed = { x: rows(trainX, 32), labels: rows(trainY, 32) };
    const r = await qat(cnnBytes, fixed, { ...opts, bits: 3, epochs: 6, maxSteps: 6, lr: 2e-3, calibrationBatches: 1 });
    const loss = r.history.stepLoss;
    expect(loss.length).toBe(6);
    expect(loss[loss.length - 1] as number).toBeLessThan(loss[0] as number);
  });

  it('LM 8-bit (PACT): two steps on next-token targets; ORT perplexity = the engine perplexity', async () => {
    const windows = readNpy(readFileSync('models/lm-calib.npy'));
    const evalWindows = rows(lmEval, 8);
    const r = await qat(
      lmBytes,
      { x: rows(windows, 8) },
      {
        task: 'lm',
        bits: 8,
        method: 'pact',
        epochs: 1,
        maxSteps: 2,
        batchSize: 4,
        calibrationBatches: 1,
        evaluate: { x: evalWindows },
        backend: 'wasm',
        wasmPaths,
      },
    );
    expect(r.history.steps).toBe(2);
    const inOrt = await lmPerplexity(r.bytes, evalWindows);
    const engine = Math.exp(r.history.engine?.crossEntropy ?? NaN);
    expect(Math.abs(inOrt.perplexity - engine) / engine).toBeLessThan(0.002);
  });
});

describe('int4-static / int3-static (the PTQ baseline)', () => {
  it('per-channel 4-bit codes: scale max|w| / 7, codes round(w / s) in [−7, 7] (hand-worked)', () => {
    const w = Float32Array.of(0.7, -0.35, 0.1, 0, 0.06, -0.03);
    const { codes, scales } = quantizeWeightBits(w, [2, 3], 0, 'w', 4);
    expect(Array.from(scales)).toEqual([Math.fround(0.7 / 7), Math.fround(0.06 / 7)]);
    // −0.35 / 0.1 = −3.5 → −4 (half to even); 0.1 / 0.1 = 1; −0.03 / (0.06/7) = −3.5 → −4.
    expect(Array.from(codes)).toEqual([7, -4, 1, 0, 7, -4]);
    expect(Array.from(quantizeWeightBits(w, [2, 3], 0, 'w', 3).codes)).toEqual([3, -2, 0, 0, 3, -2]);
  });

  it('CNN int4-static: int4 weights per channel behind opset-21 DequantizeLinear, uint8 activations; ORT runs it', async () => {
    const model = modelFromProto(decodeModel(cnnBytes));
    const r = await quantizeStatic(model, new Map([['input', readNpy(readFileSync('models/cnn-calib-x.npy'))]]), {
      method: parseCalibMethod('minmax'),
      weightBits: 4,
    });
    expect(r.report.quantizedNodes.length).toBe(4);
    const bytes = encodeModel(modelToProto(model));
    const g = modelFromProto(decodeModel(bytes)).graph;
    const int4 = g.nodes.filter(
      (n) => n.opType === 'DequantizeLinear' && g.initializers.get(n.inputs[0] as string)?.dtype === 'int4',
    );
    expect(int4.length).toBe(4);
    expect(g.nodes.filter((n) => n.opType === 'QuantizeLinear').length).toBeGreaterThanOrEqual(3);
    // fp32 99.60 %; 4-bit PTQ loses a little (the README's table), but stays a working classifier.
    expect((await classifierAccuracy(bytes, testX, testY)).accuracy).toBeGreaterThan(0.95);
  });
});

describe('quantkit qat', () => {
  it('writes the QDQ model and prints the run; a classifier without labels is a user error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-qat-'));
    try {
      const out = join(dir, 'q.onnx');
      const ok = runCli([
        'qat',
        'models/cnn.onnx',
        '--train',
        'models/cnn-test-x.npy',
        '--labels',
        'models/cnn-test-y.npy',
        '--bits',
        '4',
        '--max-steps',
        '2',
        '--progress',
        '-o',
        out,
      ]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/2 steps, 64 examples .* on wasm/);
      expect(ok.stderr).toMatch(/training \[.*\] 2\/2 steps \| epoch 1 \| loss/);
      expect(decodeModel(readFileSync(out)).graph?.node.some((n) => n.opType === 'DequantizeLinear')).toBe(true);
      const bad = runCli(['qat', 'models/cnn.onnx', '--train', 'models/cnn-test-x.npy', '-o', join(dir, 'b.onnx')]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/QK_TRAIN_DATA.*--labels/);
      const args = ['qat', 'models/cnn.onnx', '--train', 'models/cnn-test-x.npy', '--labels', 'models/cnn-test-y.npy'];
      const init = runCli([...args, '--method', 'lsq', '--lsq-init', 'median', '-o', join(dir, 'c.onnx')]);
      expect(init.code).toBe(1);
      expect(init.stderr).toMatch(/--lsq-init 'median' is not one of max, mse, mean/);
      const scale = runCli([...args, '--method', 'lsq', '--quant-lr-scale', 'fast', '-o', join(dir, 'd.onnx')]);
      expect(scale.code).toBe(1);
      expect(scale.stderr).toMatch(/--quant-lr-scale 'fast' is not a number/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
