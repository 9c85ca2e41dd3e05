/**
 * Quantization-aware training against post-training quantization, on the digits CNN, the char LM
 * and the grouped-conv digits CNN (models/train/gcnn.onnx, run with the CNN's settings, never
 * tuned on): fp32, int8/int4/int3-static PTQ (minmax calibration), and QAT (ste/pact/lsq at 8, 4
 * and 3 bits), every model scored in ONNX Runtime and QAT's also by the engine's fake-quantized
 * graph; then the training speed of each TensorFlow.js backend, side by side.
 *
 *   npx tsx scripts/measure/qat.ts [--only cnn|gcnn|lm] [--json out.json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseCalibMethod } from '../../src/calib/method.js';
import { quantizeStatic } from '../../src/flows/calibrate-node.js';
import { classifierAccuracy, lmPerplexity } from '../../src/flows/evaluate-node.js';
import { qat, type QatOptions } from '../../src/flows/qat.js';
import { modelFromProto } from '../../src/graph/from-onnx.js';
import { modelToProto } from '../../src/graph/to-onnx.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../../src/io/onnx/proto.js';
import type { WeightBits } from '../../src/passes/activation/qdq.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { buildTrainable, writeBack } from '../../src/passes/trainable/build.js';
import { makeDataset } from '../../src/train/data.js';
import { trainLoop } from '../../src/train/loop.js';
import { LOSSES } from '../../src/train/losses.js';
import type { QatMethod } from '../../src/train/quantizers.js';
import { tf, useBackend } from '../../src/train/tf.js';
import { tfjsWasmFolder } from '../../src/node/tfjs-wasm.js';

const wasmPaths = tfjsWasmFolder();
const npy = (p: string) => readNpy(readFileSync(p), p);

interface Subject {
  readonly name: string;
  readonly file: string;
  readonly task: 'classify' | 'lm';
  readonly train: { x: Tensor; labels?: Tensor };
  readonly test: { x: Tensor; labels?: Tensor };
  readonly calib: Tensor;
  readonly settings: Partial<QatOptions>;
  /** Added for `--method lsq` runs. */
  readonly lsqSettings?: Partial<QatOptions>;
  readonly runs: readonly [QatMethod, WeightBits][];
}

const digits = {
  train: { x: npy('models/train/digits-train-x.npy'), labels: npy('models/train/digits-train-y.npy') },
  test: { x: npy('models/cnn-test-x.npy'), labels: npy('models/cnn-test-y.npy') },
  calib: npy('models/cnn-calib-x.npy'),
};
const cnnSettings = { epochs: 3, lr: 2e-4, batchSize: 32 };
const cnnRuns: [QatMethod, WeightBits][] = [
  ['ste', 8],
  ['ste', 4],
  ['pact', 4],
  ['lsq', 4],
  ['ste', 3],
  ['lsq', 3],
];

const SUBJECTS: Subject[] = [
  { name: 'cnn', file: 'models/cnn.onnx', task: 'classify', ...digits, settings: cnnSettings, runs: cnnRuns },
  { name: 'gcnn', file: 'models/train/gcnn.onnx', task: 'classify', ...digits, settings: cnnSettings, runs: cnnRuns },
  {
    name: 'lm',
    file: 'models/lm.onnx',
    task: 'lm',
    train: { x: npy('models/train/lm-train.npy') },
    test: { x: npy('models/lm-eval.npy') },
    calib: npy('models/lm-calib.npy'),
    settings: { epochs: 1, lr: 1e-4, batchSize: 16, calibrationBatches: 2 },
    // The steps at the weights' rate and from the PTQ grid lose to plain QAT here (3.5760 vs 3.5582).
    lsqSettings: { quantLrScale: 0.1, lsqInit: 'mse' },
    runs: [
      ['ste', 8],
      ['ste', 4],
      ['pact', 4],
      ['lsq', 4],
    ],
  },
];

/** Accuracy (classify) or perplexity (lm) in ONNX Runtime. */
async function score(s: Subject, bytes: Uint8Array): Promise<number> {
  return s.task === 'lm'
    ? (await lmPerplexity(bytes, s.test.x)).perplexity
    : (await classifierAccuracy(bytes, s.test.x, s.test.labels as Tensor)).accuracy;
}

async function ptq(s: Subject, bits: WeightBits): Promise<number> {
  const model = modelFromProto(decodeModel(readFileSync(s.file)));
  const input = model.graph.inputs[0]?.name as string;
  await quantizeStatic(model, new Map([[input, s.calib]]), { method: parseCalibMethod('minmax'), weightBits: bits });
  return score(s, encodeModel(modelToProto(model)));
}

/** The same schedule without quantization: what fine-tuning alone does (QAT's fair fp32 reference). */
async function fineTunedFloat(s: Subject): Promise<number> {
  await useBackend('wasm', { wasmPaths });
  const model = modelFromProto(decodeModel(readFileSync(s.file)));
  const g = buildTrainable(model);
  const input = model.graph.inputs[0]?.name as string;
  const output = model.graph.outputs[0]?.name as string;
  const optimizer = tf.train.adam(s.settings.lr ?? 1e-4);
  trainLoop(
    { variables: () => [...g.variables.values()], forward: (x) => g.forward(x).get(output) as tf.Tensor },
    makeDataset(s.task, input, s.train),
    { epochs: s.settings.epochs ?? 3, batchSize: s.settings.batchSize ?? 32, seed: 0, optimizer, loss: LOSSES[s.task] },
  );
  writeBack(g);
  g.dispose();
  return score(s, encodeModel(modelToProto(model)));
}

const fmt = (s: Subject, v: number) => (s.task === 'lm' ? v.toFixed(4) : `${(v * 100).toFixed(2)} %`);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
  const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
  // --float-only: just the fp32 rows (the fine-tuned reference), for a quick re-run.
  const floatOnly = args.includes('--float-only');
  const results: Record<string, unknown>[] = [];
  const row = (r: Record<string, unknown>) => {
    results.push(r);
    console.log(JSON.stringify(r));
  };
  for (const s of SUBJECTS.filter((x) => !only || x.name === only)) {
    const bytes = readFileSync(s.file);
    const fp32 = await score(s, bytes);
    row({ model: s.name, row: 'fp32', ort: fmt(s, fp32) });
    row({ model: s.name, row: 'fp32 fine-tuned, QAT schedule', ort: fmt(s, await fineTunedFloat(s)) });
    if (floatOnly) continue;
    for (const bits of [8, 4, 3] as const)
      row({ model: s.name, row: `int${bits}-static PTQ`, ort: fmt(s, await ptq(s, bits)) });
    for (const [method, bits] of s.runs) {
      const r = await qat(bytes, s.train, {
        task: s.task,
        bits,
        method,
        seed: 0,
        backend: 'wasm',
        wasmPaths,
        evaluate: s.test,
        ...s.settings,
        ...(method === 'lsq' ? s.lsqSettings : {}),
      });
      const engine = r.history.engine;
      const engineMetric = s.task === 'lm' ? Math.exp(engine?.crossEntropy ?? NaN) : (engine?.accuracy ?? NaN);
      row({
        model: s.name,
        row: `QAT ${method} ${bits}-bit`,
        ort: fmt(s, await score(s, r.bytes)),
        engine: fmt(s, engineMetric),
        steps: r.history.steps,
        seconds: Number(r.history.seconds.toFixed(1)),
      });
    }
  }
  // Training speed: the same CNN QAT job on each backend, one after the other in this process.
  if (!floatOnly && (!only || only === 'speed')) {
    for (const [name, file, task, train, batchSize] of [
      ['cnn', 'models/cnn.onnx', 'classify', digits.train, 32],
      ['lm', 'models/lm.onnx', 'lm', { x: npy('models/train/lm-train.npy') }, 16],
    ] as const) {
      for (const backend of ['wasm', 'cpu'] as const) {
        const steps = name === 'lm' ? 6 : 20;
        const r = await qat(readFileSync(file), train, {
          task,
          bits: 4,
          epochs: 1,
          maxSteps: steps,
          batchSize,
          backend,
          wasmPaths,
          calibrationBatches: 1,
        });
        const h = r.history;
        row({
          model: name,
          row: `speed ${backend}`,
          steps: h.steps,
          stepsPerSecond: Number((h.steps / h.seconds).toFixed(3)),
          examplesPerSecond: Number((h.examples / h.seconds).toFixed(1)),
        });
      }
    }
  }
  if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(results, null, 2)}\n`);
}

await main();
