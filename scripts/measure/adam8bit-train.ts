// 8-bit vs 32-bit Adam state fine-tuning the shipped models on the TensorFlow.js engine, same seeds
// and batches: final training loss and optimizer-state bytes.
// `npx tsx scripts/measure/adam8bit-train.ts [cnnSteps] [lmSteps]`
import { readFileSync } from 'node:fs';
import { modelFromProto } from '../../src/graph/from-onnx.js';
import { decodeModel } from '../../src/io/onnx/proto.js';
import { foldBatchNorm } from '../../src/passes/fold-batchnorm.js';
import { buildTrainable } from '../../src/passes/trainable/build.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { makeDataset, type ExampleData } from '../../src/train/data.js';
import { trainLoop } from '../../src/train/loop.js';
import { LOSSES, type TaskKind } from '../../src/train/losses.js';
import { BlockwiseAdam } from '../../src/train/tf-adam8bit.js';
import type { tf } from '../../src/train/tf.js';
import { useBackend } from '../../src/train/tf.js';

const root = new URL('../../', import.meta.url).pathname;
const npy = (p: string) => readNpy(readFileSync(root + p));
const [cnnSteps, lmSteps] = [Number(process.argv[2] ?? 80), Number(process.argv[3] ?? 40)];

function run(file: string, task: TaskKind, data: ExampleData, bits: 8 | 32, steps: number, lr: number) {
  const model = modelFromProto(decodeModel(readFileSync(root + file), file), { label: file });
  foldBatchNorm(model);
  const graph = buildTrainable(model, {}, file);
  const opt = new BlockwiseAdam({ lr }, bits);
  const dataset = makeDataset(task, model.graph.inputs[0]?.name ?? '', data);
  const h = trainLoop(
    {
      variables: () => [...graph.variables.values()],
      forward: (x) => graph.forward(x).values().next().value as tf.Tensor,
    },
    dataset,
    { epochs: 1000, batchSize: 32, seed: 7, optimizer: opt, loss: LOSSES[task], maxSteps: steps },
  );
  const bytes = opt.stateBytes();
  const params = [...graph.variables.values()].reduce((s, v) => s + v.size, 0);
  opt.dispose();
  graph.dispose();
  // The mean of the last 10 steps' losses: one batch's loss is noisy.
  const tail = h.stepLoss.slice(-10);
  return { loss: tail.reduce((a, b) => a + b, 0) / tail.length, bytes, params };
}

await useBackend('cpu');
for (const [name, file, task, data, steps, lr] of [
  [
    'digits CNN',
    'models/cnn.onnx',
    'classify',
    { x: npy('models/train/digits-train-x.npy'), labels: npy('models/train/digits-train-y.npy') },
    cnnSteps,
    1e-3,
  ],
  ['char LM', 'models/lm.onnx', 'lm', { x: npy('models/train/lm-train.npy') }, lmSteps, 3e-4],
] as const) {
  const a = run(file, task, data, 32, steps, lr);
  const b = run(file, task, data, 8, steps, lr);
  console.log(
    `${name}, ${steps} steps: mean loss of the last 10 steps fp32-state ${a.loss.toFixed(5)}, 8-bit ${b.loss.toFixed(5)} (${((b.loss / a.loss - 1) * 100).toFixed(2)} %); state ${a.bytes} → ${b.bytes} bytes (${(b.bytes / a.bytes).toFixed(4)}×) for ${a.params} trained parameters`,
  );
}
