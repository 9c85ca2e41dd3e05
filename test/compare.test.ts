import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { registerCompare } from '../src/cli/commands/compare.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { compareModels } from '../src/flows/compare.js';
import { nodeRuntime } from '../src/node/ort-runtime.js';
import { classifierAccuracy } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { sqnrDb } from '../src/quant/metrics.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const fp32 = readFileSync('models/cnn.onnx');
const x = readNpy(readFileSync('models/cnn-test-x.npy'));
const y = readNpy(readFileSync('models/cnn-test-y.npy'));
const calib = readNpy(readFileSync('models/cnn-calib-x.npy'));

async function staticCnn(): Promise<Uint8Array> {
  const m = modelFromProto(decodeModel(fp32));
  await quantizeStatic(m, new Map([['input', calib]]), { method: { kind: 'minmax' } });
  return encodeModel(modelToProto(m));
}

describe('quantkit compare', () => {
  it('a model against itself: exact, full agreement, same accuracy as evaluate', async () => {
    const r = await compareModels(
      fp32,
      fp32,
      { inputs: new Map([['input', x]]), labels: y, batchSize: 100 },
      nodeRuntime,
    );
    const o = r.outputs[0];
    expect(o?.sqnrDb).toBe(Infinity);
    expect(o?.cosine).toBeCloseTo(1, 12);
    expect(o?.maxAbsError).toBe(0);
    expect(o?.top1Agreement).toBe(1);
    expect(o?.accuracyA).toBeCloseTo((await classifierAccuracy(fp32, x, y)).accuracy, 12);
  });

  it('fp32 vs int8-static: metrics agree with an independent whole-set computation; --per-layer finds every Q/DQ', async () => {
    const q = await staticCnn();
    const r = await compareModels(
      fp32,
      q,
      {
        inputs: new Map([['input', x]]),
        labels: y,
        perLayer: true,
        batchSize: 64,
      },
      nodeRuntime,
    );
    const ref = await classifierAccuracy(fp32, x, y);
    const qa = await classifierAccuracy(q, x, y, ref.logits);
    const o = r.outputs[0];
    expect(o?.meanAbsDiff).toBeCloseTo(qa.meanAbsLogitDiff as number, 6);
    expect(o?.sqnrDb).toBeCloseTo(sqnrDb(ref.logits, qa.logits), 4);
    expect(o?.accuracyB).toBeCloseTo(qa.accuracy, 12);
    expect(o?.top1Agreement).toBeGreaterThan(0.99);
    const layers = r.layers ?? [];
    expect(layers.map((l) => l.tensor).sort()).toEqual([
      '/Flatten_output_0',
      '/MaxPool_output_0',
      '/Relu_1_output_0',
      '/Relu_2_output_0',
      '/Relu_output_0',
      'input',
    ]);
    // The input's SQNR is that of u8 quantization over its calibrated range [0, 1]: recompute it.
    const xs = x.data as Float32Array;
    const fq = xs.map((v) => Math.round(v * 255) / 255);
    expect(layers.find((l) => l.tensor === 'input')?.sqnrDb).toBeCloseTo(sqnrDb(xs, Float32Array.from(fq)), 1);
    for (const l of layers) expect(l.sqnrDb).toBeGreaterThan(20);
  });

  it('the CLI prints JSON with --json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-compare-'));
    writeFileSync(join(dir, 'q.onnx'), await staticCnn());
    const program = new Command().exitOverride();
    registerCompare(program);
    const writes: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      writes.push(String(s));
      return true;
    });
    try {
      await program.parseAsync([
        'node',
        'quantkit',
        'compare',
        'models/cnn.onnx',
        join(dir, 'q.onnx'),
        '--input',
        'models/cnn-test-x.npy',
        '--labels',
        'models/cnn-test-y.npy',
        '--json',
      ]);
    } finally {
      spy.mockRestore();
      rmSync(dir, { recursive: true, force: true });
    }
    const report = JSON.parse(writes.join('')) as { samples: number; outputs: { name: string; accuracyA: number }[] };
    expect(report.samples).toBe(497);
    expect(report.outputs[0]?.name).toBe('logits');
    expect(report.outputs[0]?.accuracyA).toBeCloseTo(0.99598, 4);
  });
});
