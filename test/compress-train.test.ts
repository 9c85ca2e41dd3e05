import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compressModel } from '../src/flows/compress.js';
import { compressTrainer } from '../src/flows/compress-train.js';
import { classifierAccuracy } from '../src/flows/evaluate-node.js';
import { readNpy } from '../src/io/npy/npy.js';

/*
 * Deep Compression's training stages on the TensorFlow.js engine, kept short (a few steps on the
 * digits CNN): pruning reaches its target exactly and the zeros survive training; fine-tuned
 * codebooks beat the untuned ones. scripts/measure/compress.ts runs the full-length version.
 */

const file = (n: string) => new URL(`../models/${n}`, import.meta.url).pathname;
const x = readNpy(readFileSync(file('cnn-test-x.npy')));
const y = readNpy(readFileSync(file('cnn-test-y.npy')));
const data = {
  x: readNpy(readFileSync(file('train/digits-train-x.npy'))),
  labels: readNpy(readFileSync(file('train/digits-train-y.npy'))),
};
const evaluate = async (b: Uint8Array) => ({
  metric: 'accuracy' as const,
  value: (await classifierAccuracy(b, x, y)).accuracy,
});

describe('compress with fine-tuning (digits CNN, short runs)', () => {
  it('k-means 2-bit: codebooks fine-tuned for 12 steps beat the untuned ones; pruning to 0.6 lands exactly, zeros kept', async () => {
    const trainer = compressTrainer({ task: 'classify', data, maxSteps: 12, lr: 1e-3, centroidLr: 2e-3, seed: 1 });
    const r = await compressModel(readFileSync(file('cnn.onnx')), {
      prune: 0.6,
      kmeansBits: 2,
      evaluate,
      trainer,
      huffman: true,
    });
    const [, pruned, quantized] = r.stages;
    expect(pruned?.note).toMatch(/pruned on a schedule while training; fine-tuned 12 steps/);
    for (const p of r.pruned) expect(p.zeros).toBe(Math.round(0.6 * p.elements));
    const before = Number(/before fine-tuning accuracy ([\d.]+) %/.exec(quantized?.note ?? '')?.[1]) / 100;
    expect(quantized?.quality?.value).toBeGreaterThan(before);
    // The container still decodes to the written model (checked inside), which ORT ran above.
    expect(r.container).toBeDefined();
  }, 120_000);
});
