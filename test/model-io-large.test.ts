import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateLargeModel, runChild } from '../bench/large-model.bench.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { readFileSync } from 'node:fs';

// The smaller sibling of bench/large-model.bench.ts (which does > 2 GB): ~600 MB of fp32 weights
// in 16 MiB tensors. Streaming means peak RSS is the runtime plus a few tensors, not the model.

const root = mkdtempSync(join(tmpdir(), 'qk-large-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('streaming convert and inspect', () => {
  it('~600 MB of weights: convert (external → external) and inspect peak RSS stay well under the weight size', async () => {
    const { path, weightBytes } = await generateLargeModel(root, 600e6, 2048);
    expect(weightBytes).toBeGreaterThan(600e6);
    expect(statSync(join(root, 'model.onnx')).size).toBeLessThan(1e5); // weights are external
    const out = join(root, 'moved');
    mkdirSync(out);
    // --no-verify: this measures the streaming write; the check after it is ONNX Runtime holding
    // the model (bench/large-model.bench.ts measures that separately).
    const conv = runChild(['convert', path, join(out, 'model.onnx'), '--no-verify']);
    expect(statSync(join(out, 'model.onnx.data')).size).toBe(statSync(join(root, 'model.onnx.data')).size);
    expect(decodeModel(readFileSync(join(out, 'model.onnx'))).graph!.initializer).toHaveLength(
      weightBytes / (2048 * 2048 * 4),
    );
    const insp = runChild(['inspect', path]);
    console.log(
      `peak RSS: convert ${(conv.peakRss / 1e6).toFixed(0)} MB, inspect ${(insp.peakRss / 1e6).toFixed(0)} MB for ${(weightBytes / 1e6).toFixed(0)} MB of weights`,
    );
    expect(conv.peakRss).toBeLessThan(0.4 * weightBytes);
    expect(insp.peakRss).toBeLessThan(0.4 * weightBytes);
  });
});
