// The compress pipeline with fine-tuning on a shipped model: size and quality per stage.
// `npx tsx scripts/measure/compress.ts cnn|lm <prune> <kmeansBits> <epochs> [kmeansEpochs] [seeds] [lr] [centroidLr] [maxSteps]`
// (prune 0: no pruning stage; seeds e.g. 1,2,3). Training data: models/train/ (10 % of it held out
// for sensitivity and keep-best); the quality column: the models' test/eval sets, never trained on.
// Runs on tfjs's wasm backend (BATCH=n sets the batch size, default 32; KMEANS_INIT=kmeans++ the seeding, DISTILL=0 trains on the labels instead of the fp32 model's outputs;
// TABLES=0 keeps tables such as the LM's position table fp32, FP16=0 biases and norms float32). Each run prints the stage table; the quantized row's note gives the
// test quality of the untuned codebooks, so tuned vs untuned reads off every run.
// LM_TRAIN=path trains the LM on other windows of its training text than models/train/lm-train.npy's 512, e.g.
// `/usr/bin/python3 scripts/models/make_train_data.py --lm-windows 8192 --lm-out .cache/lm-train-8192.npy` then
// `LM_TRAIN=.cache/lm-train-8192.npy BATCH=16 npx tsx scripts/measure/compress.ts lm 0.6 3 1 1 1` (README's LM rows).
// Progress goes to stderr every 50 steps.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readFileSync } from 'node:fs';
import { compressModel, type StageQuality } from '../../src/flows/compress.js';
import { compressTrainer } from '../../src/flows/compress-train.js';
import { classifierAccuracy, lmPerplexity } from '../../src/flows/evaluate-node.js';
import { readNpy } from '../../src/io/npy/npy.js';

const root = new URL('../../', import.meta.url).pathname;
const npy = (p: string) => readNpy(readFileSync(root + p));
const [
  which = 'cnn',
  prune = '0.8',
  bits = '4',
  epochs = '3',
  kmeansEpochs = epochs,
  seeds = '1',
  lr,
  centroidLr,
  maxSteps,
] = process.argv.slice(2);
const cnn = which === 'cnn';
const wasmPaths = `${join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist')}/`;
// Test cross-entropy of each evaluation (fp32, pruned, k-means before and after fine-tuning), in
// order: a finer comparison than the accuracy of 497 images, where one image is 0.2 points.
const testNll: number[] = [];
const evaluate = cnn
  ? async (b: Uint8Array): Promise<StageQuality> => {
      const y = npy('models/cnn-test-y.npy');
      const r = await classifierAccuracy(b, npy('models/cnn-test-x.npy'), y);
      let nll = 0;
      const labels = y.data as BigInt64Array;
      for (let i = 0; i < labels.length; i++) {
        const row = r.logits.subarray(i * r.classes, (i + 1) * r.classes);
        const max = Math.max(...row);
        const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
        nll += Math.log(sum) + max - (row[Number(labels[i])] as number);
      }
      testNll.push(nll / labels.length);
      return { metric: 'accuracy', value: r.accuracy };
    }
  : async (b: Uint8Array): Promise<StageQuality> => ({
      metric: 'perplexity',
      value: (await lmPerplexity(b, npy('models/lm-eval.npy'))).perplexity,
    });
const quality = (q: StageQuality | undefined) =>
  q ? (q.metric === 'accuracy' ? `${(100 * q.value).toFixed(2)} %` : q.value.toFixed(4)) : '-';
let t0 = performance.now();
for (const seed of seeds.split(',').map(Number)) {
  const trainer = compressTrainer({
    task: cnn ? 'classify' : 'lm',
    data: cnn
      ? { x: npy('models/train/digits-train-x.npy'), labels: npy('models/train/digits-train-y.npy') }
      : { x: npy(process.env.LM_TRAIN ?? 'models/train/lm-train.npy') },
    epochs: Number(epochs),
    kmeansEpochs: Number(kmeansEpochs),
    lr: lr === undefined || lr === '-' ? undefined : Number(lr),
    centroidLr: centroidLr === undefined || centroidLr === '-' ? undefined : Number(centroidLr),
    seed,
    batchSize: Number(process.env.BATCH ?? 32),
    distill: process.env.DISTILL !== '0',
    backend: 'wasm',
    wasmPaths,
    maxSteps: maxSteps === undefined || maxSteps === '-' ? undefined : Number(maxSteps),
    // Progress on stderr every 50 steps, to watch a long run's log.
    onStep: (stage, s) => {
      if (s.step % 50 === 0 || s.step === s.steps)
        console.error(
          `${stage} step ${s.step}/${s.steps} loss ${s.epochLoss.toFixed(4)} ${((performance.now() - t0) / 1000).toFixed(0)} s`,
        );
    },
  });
  testNll.length = 0;
  t0 = performance.now();
  const r = await compressModel(readFileSync(root + (cnn ? 'models/cnn.onnx' : 'models/lm.onnx')), {
    prune: Number(prune),
    kmeansBits: Number(bits),
    kmeansInit: (process.env.KMEANS_INIT ?? 'linear') as 'linear' | 'kmeans++',
    tables: process.env.TABLES !== '0',
    float16Vectors: process.env.FP16 !== '0',
    seed,
    evaluate,
    trainer,
  });
  console.log(
    `\n${which} prune ${prune} kmeans ${bits} epochs ${epochs}+${kmeansEpochs} seed ${seed}: ${((performance.now() - t0) / 1000).toFixed(0)} s (wasm, shared machine)`,
  );
  console.log('| stage | weight bytes | ratio | file bytes | file ratio | quality | note |');
  console.log('|---|---|---|---|---|---|---|');
  for (const s of r.stages)
    console.log(
      `| ${s.stage} | ${s.bytes} | ${s.ratio.toFixed(2)}× | ${s.fileBytes} | ${s.fileRatio.toFixed(2)}× | ${quality(s.quality)} | ${s.note} |`,
    );
  if (cnn) console.log(`test cross-entropy per evaluation: ${testNll.map((v) => v.toFixed(4)).join(' → ')}`);
}
