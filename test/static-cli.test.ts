import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { classifierAccuracy, lmPerplexity } from '../src/flows/evaluate-node.js';
import { readNpy } from '../src/io/npy/npy.js';
import { captureStdout, runQuantize } from './helpers/in-process-cli.js';

describe('quantkit quantize --scheme int8-static | int8-dynamic', () => {
  let dir: string;
  let out: string[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-act-'));
    out = captureStdout();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it('int8-static --method entropy on the CNN: a model ORT runs at fp32 accuracy, JSON report', async () => {
    const target = join(dir, 'cnn-static.onnx');
    await runQuantize(
      'models/cnn.onnx',
      '-o',
      target,
      '--scheme',
      'int8-static',
      '--calib',
      'input=models/cnn-calib-x.npy',
      '--method',
      'entropy',
      '--calib-batch',
      '50',
      '--json',
    );
    const report = JSON.parse(out.join('')) as {
      scheme: string;
      method: string;
      samples: number;
      quantizedNodes: unknown[];
    };
    expect(report).toMatchObject({ scheme: 'int8-static', method: 'entropy', samples: 128 });
    expect(report.quantizedNodes.length).toBe(4);
    const acc = await classifierAccuracy(
      readFileSync(target),
      readNpy(readFileSync('models/cnn-test-x.npy')),
      readNpy(readFileSync('models/cnn-test-y.npy')),
    );
    expect(acc.accuracy).toBeGreaterThanOrEqual(0.99598 - 0.005);
  });

  it('int8-dynamic on the LM, text report; a bad --method and a missing --calib are user errors', async () => {
    const target = join(dir, 'lm-dyn.onnx');
    await runQuantize('models/lm.onnx', '-o', target, '--scheme', 'int8-dynamic');
    expect(out.join('')).toMatch(/int8-dynamic \(integer\)/);
    const ppl = await lmPerplexity(readFileSync(target), readNpy(readFileSync('models/lm-eval.npy')));
    expect(ppl.perplexity).toBeLessThan(3.4949 * 1.01);
    await expect(
      runQuantize(
        'models/cnn.onnx',
        '-o',
        join(dir, 'x.onnx'),
        '--scheme',
        'int8-static',
        '--calib',
        'models/cnn-calib-x.npy',
        '--method',
        'kl',
      ),
    ).rejects.toMatchObject({ code: 'QK_BAD_METHOD' });
    await expect(
      runQuantize('models/cnn.onnx', '-o', join(dir, 'y.onnx'), '--scheme', 'int8-static'),
    ).rejects.toMatchObject({ code: 'QK_CALIB_MISSING' });
  });
});
