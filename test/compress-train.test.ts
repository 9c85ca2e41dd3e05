import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
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

const wasmPaths = `${join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist')}/`;
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
  it('k-means 2-bit: fine-tuned codebooks beat the untuned ones; pruning to 0.6 by sensitivity lands on the total, zeros kept', async () => {
    const seen: string[] = [];
    const trainer = compressTrainer({
      task: 'classify',
      data,
      maxSteps: 12,
      lr: 1e-3,
      centroidLr: 2e-3,
      seed: 1,
      validation: 0.05,
      backend: 'wasm',
      wasmPaths,
      onStep: (stage, info) => seen.push(`${stage} ${info.step}/${info.steps} ${Number.isFinite(info.epochLoss)}`),
    });
    const r = await compressModel(readFileSync(file('cnn.onnx')), {
      prune: 0.6,
      kmeansBits: 2,
      evaluate,
      trainer,
      huffman: true,
    });
    const [, pruned, quantized] = r.stages;
    expect(pruned?.note).toMatch(/pruned on a schedule while training \(sensitivity: .*\); fine-tuned 12 steps/);
    // Each layer its own share, the layers together the requested fraction (one weight of rounding each).
    const zeros = r.pruned.reduce((s, p) => s + p.zeros, 0);
    const elements = r.pruned.reduce((s, p) => s + p.elements, 0);
    expect(Math.abs(zeros - 0.6 * elements)).toBeLessThanOrEqual(r.pruned.length);
    const share = new Map(r.pruned.map((p) => [p.weight, p.zeros / p.elements]));
    expect(share.get('fc1.weight')).toBeGreaterThan(share.get('conv1.weight_bnfolded') ?? 1);
    for (const p of r.pruned) expect(p.zeros).toBe(Math.round((trainer.sparsities.get(p.weight) ?? 0) * p.elements));
    const before = Number(/before fine-tuning accuracy ([\d.]+) %/.exec(quantized?.note ?? '')?.[1]) / 100;
    expect(quantized?.quality?.value).toBeGreaterThan(before);
    expect(quantized?.note).toMatch(/kept (epoch 1|the untuned codebooks) \(validation loss/);
    // Progress reports every step of both stages with its running loss (what the CLI's bars show).
    expect(seen[0]).toBe('prune 1/12 true');
    expect(seen.at(-1)).toBe('kmeans 12/12 true');
    expect(seen).toHaveLength(24);
    // The container still decodes to the written model (checked inside), which ORT ran above.
    expect(r.container).toBeDefined();
  }, 120_000);
});
