import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { classifierAccuracy } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { FAST_MIN_CONV_REDUCTION } from '../src/passes/activation/plan.js';
import { runCli } from './helpers/cli.js';

describe('int8-static minConvReduction (the form ONNX Runtime runs faster)', () => {
  it('keeps the 1-channel 3×3 conv (reduction 9) fp32, quantizes the rest; ORT runs it within 0.5 % accuracy', async () => {
    const bytes = readFileSync('models/cnn.onnx');
    const model = modelFromProto(decodeModel(bytes));
    const { report } = await quantizeStatic(
      model,
      new Map([['input', readNpy(readFileSync('models/cnn-calib-x.npy'))]]),
      {
        method: parseCalibMethod('minmax'),
        minConvReduction: FAST_MIN_CONV_REDUCTION,
      },
    );
    expect(report.quantizedNodes.map((n) => n.node)).toEqual(['/conv2/Conv', '/fc1/Gemm', '/fc2/Gemm']);
    expect(report.skipped).toEqual([
      expect.objectContaining({ node: '/conv1/Conv', reason: expect.stringContaining('reduction of 9') }),
    ]);
    const x = readNpy(readFileSync('models/cnn-test-x.npy'));
    const y = readNpy(readFileSync('models/cnn-test-y.npy'));
    const fp32 = await classifierAccuracy(bytes, x, y);
    const q = await classifierAccuracy(encodeModel(modelToProto(model)), x, y);
    expect(q.accuracy).toBeGreaterThanOrEqual(fp32.accuracy - 0.005);
  });
  it('--min-conv-reduction on the CLI; a bad value is a user error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-mcr-'));
    try {
      const args = ['quantize', 'models/cnn.onnx', '-o', join(dir, 'q.onnx'), '--scheme', 'int8-static'];
      const calib = ['--calib', 'models/cnn-calib-x.npy', '--no-verify'];
      const ok = runCli([...args, ...calib, '--min-conv-reduction', '16']);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain('kept fp32 Conv /conv1/Conv: reduction of 9');
      const bad = runCli([...args, ...calib, '--min-conv-reduction', 'x', '--force']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('QK_BAD_OPTION');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
