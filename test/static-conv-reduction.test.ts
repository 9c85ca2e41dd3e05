import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { classifierAccuracy } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { FAST_MIN_CONV_REDUCTION } from '../src/passes/activation/plan.js';

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
});
