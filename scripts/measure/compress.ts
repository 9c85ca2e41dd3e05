// The compress pipeline with fine-tuning on a shipped model: size and quality per stage.
// `npx tsx scripts/measure/compress.ts cnn|lm <prune> <kmeansBits> <epochs> [kmeansEpochs] [seeds] [lr] [centroidLr] [maxSteps]`
// (prune 0: no pruning stage; seeds e.g. 1,2,3). Training data: models/train/ (10 % of it held out
// for sensitivity and keep-best); the quality column: the models' test/eval sets, never trained on.
// Runs on tfjs's wasm backend. Each run prints the stage table; the quantized row's note gives the
// test quality of the untuned codebooks, so tuned vs untuned reads off every run.
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
const evaluate = cnn
  ? async (b: Uint8Array): Promise<StageQuality> => ({
      metric: 'accuracy',
      value: (await classifierAccuracy(b, npy('models/cnn-test-x.npy'), npy('models/cnn-test-y.npy'))).accuracy,
    })
  : async (b: Uint8Array): Promise<StageQuality> => ({
      metric: 'perplexity',
      value: (await lmPerplexity(b, npy('models/lm-eval.npy'))).perplexity,
    });
const quality = (q: StageQuality | undefined) =>
  q ? (q.metric === 'accuracy' ? `${(100 * q.value).toFixed(2)} %` : q.value.toFixed(4)) : '-';
for (const seed of seeds.split(',').map(Number)) {
  const trainer = compressTrainer({
    task: cnn ? 'classify' : 'lm',
    data: cnn
      ? { x: npy('models/train/digits-train-x.npy'), labels: npy('models/train/digits-train-y.npy') }
      : { x: npy('models/train/lm-train.npy') },
    epochs: Number(epochs),
    kmeansEpochs: Number(kmeansEpochs),
    lr: Number(lr ?? (cnn ? 1e-3 : 1e-3)),
    centroidLr: Number(centroidLr ?? (cnn ? 1e-3 : 3e-4)),
    seed,
    backend: 'wasm',
    wasmPaths,
    maxSteps: maxSteps === undefined || maxSteps === '-' ? undefined : Number(maxSteps),
  });
  const t0 = performance.now();
  const r = await compressModel(readFileSync(root + (cnn ? 'models/cnn.onnx' : 'models/lm.onnx')), {
    prune: Number(prune),
    kmeansBits: Number(bits),
    kmeansInit: (process.env.KMEANS_INIT ?? 'linear') as 'linear' | 'kmeans++',
    seed,
    evaluate,
    trainer,
  });
  console.log(
    `\n${which} prune ${prune} kmeans ${bits} epochs ${epochs}+${kmeansEpochs} seed ${seed}: ${((performance.now() - t0) / 1000).toFixed(0)} s (wasm, shared machine)`,
  );
  console.log('| stage | weight bytes | ratio | file bytes | quality | note |');
  console.log('|---|---|---|---|---|---|');
  for (const s of r.stages)
    console.log(
      `| ${s.stage} | ${s.bytes} | ${s.ratio.toFixed(2)}× | ${s.fileBytes} | ${quality(s.quality)} | ${s.note} |`,
    );
}
