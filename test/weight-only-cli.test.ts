import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeModel } from '../src/io/onnx/build.js';
import { encodeModel } from '../src/io/onnx/proto.js';
import { makeTensor } from '../src/tensor/tensor.js';
import { captureStdout, runQuantize } from './helpers/in-process-cli.js';

describe('quantkit quantize', () => {
  let dir: string;
  let input: string;
  let out: string[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-wo-'));
    input = join(dir, 'mlp.onnx');
    const K = 64;
    const N = 48;
    writeFileSync(
      input,
      encodeModel(
        makeModel({
          nodes: [{ opType: 'MatMul', inputs: ['X', 'W'], outputs: ['Y'], name: 'fc' }],
          inputs: [{ name: 'X', dtype: 'float32', dims: [1, K] }],
          outputs: [{ name: 'Y', dtype: 'float32', dims: [1, N] }],
          initializers: {
            W: makeTensor(
              'float32',
              [K, N],
              Float32Array.from({ length: K * N }, (_, i) => Math.sin(i)),
            ),
          },
        }),
      ),
    );
    out = captureStdout();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a model ORT runs and prints a --json report with stable keys', async () => {
    const target = join(dir, 'q4.onnx');
    await runQuantize(input, '-o', target, '--scheme', 'q4', '--block-size', '16', '--json');
    const report = JSON.parse(out.join(''));
    expect(Object.keys(report)).toEqual([
      'input',
      'output',
      'inputFileBytes',
      'outputFileBytes',
      'verification',
      'scheme',
      'blockSize',
      'layers',
      'notes',
      'totals',
    ]);
    expect(report.verification).toMatchObject({
      status: 'verified',
      feeds: [{ name: 'X', source: 'synthetic' }],
      outputs: ['Y'],
    });
    expect(Object.keys(report.layers[0])).toEqual([
      'nodes',
      'opTypes',
      'weight',
      'dims',
      'bytesBefore',
      'scheme',
      'form',
      'sqnrDb',
      'bytesAfter',
      'note',
    ]);
    expect(report.layers[0]).toMatchObject({
      weight: 'W',
      scheme: 'q4',
      bytesBefore: 64 * 48 * 4,
      bytesAfter: 48 * 4 * 8 + 48 * 4 * 4,
    });
    expect(report.outputFileBytes).toBe(statSync(target).size);
    const s = await ort.InferenceSession.create(readFileSync(target));
    const y = await s.run({ X: new ort.Tensor('float32', new Float32Array(64).fill(0.5), [1, 64]) });
    expect((y.Y!.data as Float32Array).every(Number.isFinite)).toBe(true);
  });

  it('prints a table by default; an existing output is replaced only with --force; the input never', async () => {
    const target = join(dir, 'int8.onnx');
    await runQuantize(input, '-o', target, '--scheme', 'int8');
    expect(out.join('')).toMatch(/W\s+(\S+\s+)?MatMul\s+int8\s+DequantizeLinear\(axis=1\)/);
    await expect(runQuantize(input, '-o', target, '--scheme', 'int8')).rejects.toMatchObject({
      code: 'QK_OUTPUT_EXISTS',
    });
    await runQuantize(input, '-o', target, '--scheme', 'int8', '--force');
    const before = readFileSync(input);
    await expect(runQuantize(input, '-o', input, '--scheme', 'int8', '--force')).rejects.toMatchObject({
      code: 'QK_OUTPUT_IS_INPUT',
    });
    expect(readFileSync(input)).toEqual(before);
  });

  it('refuses an unknown scheme and a bad block size with named errors', async () => {
    await expect(runQuantize(input, '-o', join(dir, 'x.onnx'), '--scheme', 'int3')).rejects.toMatchObject({
      code: 'QK_UNKNOWN_SCHEME',
    });
    await expect(
      runQuantize(input, '-o', join(dir, 'x.onnx'), '--scheme', 'q4', '--block-size', '48'),
    ).rejects.toMatchObject({ code: 'QK_BAD_BLOCK_SIZE' });
  });
});
