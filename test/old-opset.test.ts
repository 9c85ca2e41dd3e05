import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeActivationFile } from '../src/flows/activation-file.js';
import { quantizeFile } from '../src/flows/quantize-file.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { requiredOpset } from '../src/passes/opset-floor.js';
import { OLD_OPSET_FIXTURES } from '../scripts/models/make-old-opset.js';

/*
 * Models older than the forms the schemes write (test/fixtures/opset/, made by
 * scripts/models/make-old-opset.ts): opset 9 and 11, weights as initializers and in Constant
 * nodes. Every scheme's output must declare the opset its nodes need and load and run in
 * onnxruntime-node, with outputs next to the fp32 model's.
 */

const fixture = (file: string) => new URL(`fixtures/opset/${file}`, import.meta.url).pathname;
const calibPath = new URL('../models/cnn-calib-x.npy', import.meta.url).pathname;

interface Scheme {
  name: string;
  opset: number;
  tolerance: number;
  run: (input: string, output: string) => Promise<{ notes: readonly string[] }>;
}
const SCHEMES: Scheme[] = [
  // DynamicQuantizeLinear: 11.
  {
    name: 'int8-dynamic',
    opset: 11,
    tolerance: 0.01,
    run: async (i, o) => (await quantizeActivationFile(i, o, { scheme: 'int8-dynamic' })).report,
  },
  // Per-axis QuantizeLinear / DequantizeLinear: 13.
  {
    name: 'int8-static',
    opset: 13,
    tolerance: 0.01,
    run: async (i, o) => (await quantizeActivationFile(i, o, { scheme: 'int8-static', calib: [calibPath] })).report,
  },
  {
    name: 'int8 (weight-only, per-axis DequantizeLinear)',
    opset: 13,
    tolerance: 0.01,
    run: async (i, o) => (await quantizeFile(i, o, { scheme: 'int8' })).report,
  },
  // Blocked int4 DequantizeLinear: 21, crossing every signature change from 9 (Reduce* aside).
  {
    name: 'q4 --format qdq (blocked DequantizeLinear)',
    opset: 21,
    tolerance: 0.03,
    run: async (i, o) => (await quantizeFile(i, o, { scheme: 'q4', format: 'qdq' })).report,
  },
];

let dir: string;
let x: ort.Tensor;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'qk-old-opset-'));
  const calib = readNpy(readFileSync(calibPath));
  // The first 8 calibration digits. The fixtures' weights are random (untrained), so the outputs
  // are near-uniform probabilities; the tolerances are absolute.
  x = new ort.Tensor('float32', (calib.data as Float32Array).subarray(0, 8 * 64), [8, 1, 8, 8]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function probabilities(path: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path);
  try {
    return (await s.run({ x })).probs?.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('old-opset models: every scheme writes the opset its nodes need, and ONNX Runtime runs the result', () => {
  for (const f of OLD_OPSET_FIXTURES) {
    for (const scheme of SCHEMES) {
      it(`opset ${f.opset}, weights in ${f.placement}: ${scheme.name} declares opset ${Math.max(f.opset, scheme.opset)} and its probabilities stay within ${scheme.tolerance} of fp32`, async () => {
        const out = join(dir, `${f.file}-${scheme.name.split(' ')[0]}.onnx`);
        const report = await scheme.run(fixture(f.file), out);
        const model = modelFromProto(decodeModel(readFileSync(out)));
        const declared = model.opsets.get('') ?? 0;
        expect(declared).toBe(Math.max(f.opset, scheme.opset));
        expect(declared).toBeGreaterThanOrEqual(requiredOpset(model).opset);
        if (scheme.opset > f.opset)
          expect(report.notes.join('\n')).toMatch(new RegExp(`opset raised from ${f.opset} to ${scheme.opset}`));
        const want = await probabilities(fixture(f.file));
        const got = await probabilities(out);
        let worst = 0;
        for (let i = 0; i < want.length; i++)
          worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)));
        expect(worst).toBeLessThan(scheme.tolerance);
      });
    }
  }
});
