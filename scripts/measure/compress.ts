// The compress pipeline with fine-tuning on a shipped model: size and quality per stage.
// `npx tsx scripts/measure/compress.ts cnn|lm <prune> <kmeansBits> <epochs> [adam|adam8bit] [maxSteps] [centroidLr]`
// (prune 0: no pruning stage). Training data: models/train/; evaluation: the models' test/eval sets.
import { readFileSync } from 'node:fs';
import { compressModel, type StageQuality } from '../../src/flows/compress.js';
import { compressTrainer } from '../../src/flows/compress-train.js';
import { classifierAccuracy, lmPerplexity } from '../../src/flows/evaluate-node.js';
import { readNpy } from '../../src/io/npy/npy.js';

const root = new URL('../../', import.meta.url).pathname;
const npy = (p: string) => readNpy(readFileSync(root + p));
const [which = 'cnn', prune = '0.8', bits = '4', epochs = '3', optimizer = 'adam', maxSteps, centroidLr] =
  process.argv.slice(2);
const cnn = which === 'cnn';
const evaluate = cnn
  ? async (b: Uint8Array): Promise<StageQuality> => ({
      metric: 'accuracy',
      value: (await classifierAccuracy(b, npy('models/cnn-test-x.npy'), npy('models/cnn-test-y.npy'))).accuracy,
    })
  : async (b: Uint8Array): Promise<StageQuality> => ({
      metric: 'perplexity',
      value: (await lmPerplexity(b, npy('models/lm-eval.npy'))).perplexity,
    });
const trainer = compressTrainer({
  task: cnn ? 'classify' : 'lm',
  data: cnn
    ? { x: npy('models/train/digits-train-x.npy'), labels: npy('models/train/digits-train-y.npy') }
    : { x: npy('models/train/lm-train.npy') },
  epochs: Number(epochs),
  lr: cnn ? 1e-3 : 3e-4,
  centroidLr: centroidLr !== undefined ? Number(centroidLr) : cnn ? 1e-3 : 3e-4,
  optimizer: optimizer as 'adam' | 'adam8bit',
  maxSteps: maxSteps === undefined || maxSteps === '-' ? undefined : Number(maxSteps),
});
const t0 = performance.now();
const r = await compressModel(readFileSync(root + (cnn ? 'models/cnn.onnx' : 'models/lm.onnx')), {
  prune: Number(prune),
  kmeansBits: Number(bits),
  evaluate,
  trainer,
});
console.log(
  `${which} prune ${prune} kmeans ${bits} epochs ${epochs} ${optimizer}: ${((performance.now() - t0) / 1000).toFixed(0)} s (shared machine)`,
);
console.log('| stage | weight bytes | ratio | file bytes | quality | note |');
console.log('|---|---|---|---|---|---|');
for (const s of r.stages)
  console.log(
    `| ${s.stage} | ${s.bytes} | ${s.ratio.toFixed(2)}× | ${s.fileBytes} | ${s.quality ? (s.quality.metric === 'accuracy' ? `${(100 * s.quality.value).toFixed(2)} %` : s.quality.value.toFixed(4)) : '-'} | ${s.note} |`,
  );
