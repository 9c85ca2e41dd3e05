import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { QuantkitError } from '../src/errors.js';
import { classifierAccuracy, lmPerplexity } from '../src/flows/evaluate-node.js';
import {
  costAgainst,
  parseCandidate,
  planMixed,
  planMixedForLoss,
  planModel,
  prepareMixed,
  splitObjective,
  type Candidate,
  type SensitivityResult,
} from '../src/flows/mixed.js';
import { meanCrossEntropy, NO_LABEL, nextTokenTargets, taskTargets } from '../src/flows/task-loss.js';
import { encodeModel } from '../src/io/onnx/proto.js';
import { makeModel } from '../src/io/onnx/build.js';
import { readNpy, writeNpy } from '../src/io/npy/npy.js';
import { chooseUnderBudget } from '../src/quant/knapsack.js';
import { makeTensor } from '../src/tensor/tensor.js';
import { formatSensitivity } from '../src/cli/commands/sensitivity.js';
import { runCli } from './helpers/cli.js';

/*
 * The task-loss objective of sensitivity and mixed precision: the cross-entropy rise and the
 * next-token alignment against hand-worked values, negative costs in the planners, the costs of
 * `sensitivity --loss task` against perplexity and cross-entropy measured apart on the shipped CNN
 * and LM, and every user error through the CLI.
 */

const thrown = (f: () => unknown): QuantkitError => {
  try {
    f();
  } catch (e) {
    return e as QuantkitError;
  }
  throw new Error('did not throw');
};

describe('task loss (flows/task-loss.ts)', () => {
  it('hand-worked: logits [ln 3, 0] and [0, ln 3] against class 0, fp32 [0, 0]: rise = ½ ln(16/3) − ln 2 = ln(2/√3)', () => {
    const ref = new Float32Array([0, 0, 0, 0, 5, -5]);
    const q = new Float32Array([Math.log(3), 0, 0, Math.log(3), -5, 5]);
    // The third row has no label: it counts for neither model.
    const targets = new Int32Array([0, 0, NO_LABEL]);
    expect(meanCrossEntropy(ref, 2, targets)).toBeCloseTo(Math.LN2, 12);
    expect(meanCrossEntropy(q, 2, targets)).toBeCloseTo((Math.log(4 / 3) + Math.log(4)) / 2, 6);
    const task = { targets, crossEntropy: meanCrossEntropy(ref, 2, targets) };
    expect(costAgainst({ data: ref, classes: 2, task }, q)).toBeCloseTo(Math.log(2 / Math.sqrt(3)), 6);
    // Quantization can lower the loss: scored the other way round, the cost is negative.
    const back = { targets, crossEntropy: meanCrossEntropy(q, 2, targets) };
    expect(costAgainst({ data: q, classes: 2, task: back }, ref)).toBeCloseTo(-Math.log(2 / Math.sqrt(3)), 6);
  });

  it('next-token labels of two windows: position t predicts id t + 1, the last position none', () => {
    const ids = BigInt64Array.from([5n, 6n, 7n, 8n, 9n, 1n]);
    expect([...nextTokenTargets(ids, 2, 3)]).toEqual([6, 7, NO_LABEL, 9, 1, NO_LABEL]);
    const data = new Map([['input_ids', makeTensor('int64', [2, 3], ids)]]);
    expect([...taskTargets(data, [3, 10])]).toEqual([6, 7, NO_LABEL, 9, 1, NO_LABEL]);
    // The same convention as the evaluation windows (evaluate.ts windowsNll): with logits one-hot on
    // the labels, the loss of every labelled row is the same.
    const vocab = 10;
    const logits = new Float32Array(6 * vocab);
    for (const [r, t] of [6, 7, 0, 9, 1, 0].entries()) logits[r * vocab + t] = 50;
    expect(meanCrossEntropy(logits, vocab, nextTokenTargets(ids, 2, 3))).toBeLessThan(1e-12);
    expect(thrown(() => taskTargets(data, [3, 9])).code).toBe('QK_LABELS_RANGE'); // id 9 ≥ vocabulary 9
  });

  it('classifier labels: counted against the samples, each a class of the output; split as the samples are', () => {
    const data = new Map([['x', makeTensor('float32', [4, 2], new Float32Array(8))]]);
    const labels = makeTensor('int64', [4], BigInt64Array.from([0n, 2n, 1n, 2n]));
    expect([...taskTargets(data, [3], labels)]).toEqual([0, 2, 1, 2]);
    expect(thrown(() => taskTargets(data, [2], labels)).code).toBe('QK_LABELS_RANGE');
    const minus = makeTensor('int64', [4], BigInt64Array.from([0n, -1n, 1n, 2n]));
    expect(thrown(() => taskTargets(data, [3], minus)).code).toBe('QK_LABELS_RANGE');
    const three = makeTensor('int64', [3], BigInt64Array.from([0n, 1n, 2n]));
    expect(thrown(() => taskTargets(data, [3], three)).code).toBe('QK_LABELS_COUNT');
    expect(thrown(() => taskTargets(data, [3])).code).toBe('QK_TASK_LOSS_MODEL'); // a classifier needs labels
    expect(thrown(() => taskTargets(data, [2, 3])).code).toBe('QK_TASK_LOSS_MODEL'); // float in, [n, 2, 3] out
    const [a, b] = splitObjective({ loss: 'task', labels }, 2);
    expect([...(a!.labels!.data as BigInt64Array)]).toEqual([0n, 2n]);
    expect([...(b!.labels!.data as BigInt64Array)]).toEqual([1n, 2n]);
  });
});

describe('negative costs in the planners', () => {
  it('the knapsack takes a negative cost as a gain: a smaller form that lowers the loss beats fp32', () => {
    const items = [
      [
        { bytes: 1, cost: -0.1 },
        { bytes: 4, cost: 0 },
      ],
      [
        { bytes: 1, cost: 0.2 },
        { bytes: 4, cost: 0 },
      ],
    ];
    expect(chooseUnderBudget(items, 8)).toEqual([0, 1]);
    expect(chooseUnderBudget(items, 6)).toEqual([0, 1]); // room for one fp32: b, whose q2 costs
    expect(chooseUnderBudget(items, 4)).toEqual([0, 0]);
  });

  const cands: Candidate[] = [
    { label: 'q2', scheme: 'q2-asym' },
    { label: 'fp32', scheme: 'fp32' },
  ];
  const s: SensitivityResult = {
    positions: 1,
    loss: 'task',
    weights: [
      {
        weight: 'a',
        node: 'a',
        params: 100,
        costs: [
          { label: 'q2', bytes: 25, kl: -0.05 },
          { label: 'fp32', bytes: 400, kl: 0 },
        ],
      },
      {
        weight: 'b',
        node: 'b',
        params: 100,
        costs: [
          { label: 'q2', bytes: 25, kl: 0.03 },
          { label: 'fp32', bytes: 400, kl: 0 },
        ],
      },
    ],
  };
  it('under a byte budget the fallen loss counts; under --max-loss-increase it does not pay for another rise', () => {
    expect(planMixed(s, cands, 50).predictedKl).toBeCloseTo(-0.02, 12);
    // Summed as measured, all q2 (−0.02) would pass a limit of 0.01; a fall counted as 0 leaves b's
    // 0.03 over it, so b stays fp32.
    const plan = planMixedForLoss(s, cands, 0.01);
    expect(plan.choice.get('a')?.label).toBe('q2');
    expect(plan.choice.get('b')?.label).toBe('fp32');
    expect(planMixedForLoss(s, cands, 0.05).bytes).toBe(50);
  });
});

interface SensitivityJson {
  loss: string;
  positions: number;
  weights: { weight: string; node: string; costs: { label: string; kl: number }[] }[];
}

const path = (p: string) => new URL(p, import.meta.url).pathname;
const q2 = parseCandidate('q2-asym:64');

/** The model the sensitivity flow measures for `weight` alone in `c`. */
async function singleWeightModel(bytes: Uint8Array, weight: string, c: Candidate): Promise<Uint8Array> {
  const setup = await prepareMixed(bytes, [c]);
  return planModel(setup, new Map([[weight, c]])).bytes;
}

describe('sensitivity --loss task on the shipped models', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-task-models-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('CNN on labelled test digits: the cost is the cross-entropy rise measured from the logits apart', async () => {
    const model = path('../models/cnn.onnx');
    const [xPath, yPath] = [path('../models/cnn-test-x.npy'), path('../models/cnn-test-y.npy')];
    const html = join(dir, 'cnn.html');
    const r = runCli([
      'sensitivity',
      model,
      '--report',
      html,
      '--calib',
      xPath,
      '--labels',
      yPath,
      '--loss',
      'task',
      '--schemes',
      'q2-asym:64,fp32',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as SensitivityJson;
    expect(s.loss).toBe('task');
    // The table, the plot and the HTML report name the objective.
    const text = formatSensitivity(s as unknown as SensitivityResult, ['q2-asym:64', 'fp32']);
    expect(text).toContain('q2-asym:64 Δloss');
    expect(text).not.toContain(' KL');
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<th>q2-asym:64 Δloss</th>');
    expect(page).toContain('cross-entropy with only this weight quantized − fp32, nats');
    const x = readNpy(readFileSync(xPath));
    const y = readNpy(readFileSync(yPath));
    expect(s.positions).toBe(x.dims[0]);
    // Independent truth: the logits of classifierAccuracy, −log softmax at the label, averaged.
    const crossEntropy = (logits: Float32Array, classes: number): number => {
      let sum = 0;
      const labels = y.data as BigInt64Array;
      for (let i = 0; i < labels.length; i++) {
        const row = logits.subarray(i * classes, (i + 1) * classes);
        const lse = Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
        sum += lse - (row[Number(labels[i])] as number);
      }
      return sum / labels.length;
    };
    const bytes = readFileSync(model);
    const base = await classifierAccuracy(bytes, x, y);
    const fp32 = crossEntropy(base.logits, base.classes);
    for (const w of s.weights) {
      const q = await classifierAccuracy(await singleWeightModel(bytes, w.weight, q2), x, y);
      const rise = crossEntropy(q.logits, q.classes) - fp32;
      expect(Math.abs(rise)).toBeGreaterThan(1e-4); // the check has something to compare
      expect(w.costs[0]!.kl).toBeCloseTo(rise, 5);
      expect(w.costs[1]).toMatchObject({ label: 'fp32', kl: 0 });
    }
  });

  it('quantize --target-bits --loss task on the CNN: plan, refinement and guard scored by the labelled loss', () => {
    const out = join(dir, 'mixed.onnx');
    const q = runCli([
      'quantize',
      path('../models/cnn.onnx'),
      '-o',
      out,
      '--target-bits',
      '4',
      '--calib',
      path('../models/cnn-test-x.npy'),
      '--labels',
      path('../models/cnn-test-y.npy'),
      '--loss',
      'task',
      '--schemes',
      'q2-asym:64,q4:128,fp32',
      '--json',
    ]);
    expect(q.stderr).toBe('');
    expect(q.code).toBe(0);
    const m = JSON.parse(q.stdout) as { notes: string[] };
    expect(m.notes.some((n) => n.startsWith('held-out guard') && /mixed [\d.]+ bits Δloss /.test(n))).toBe(true);
    expect(m.notes.some((n) => n.includes('joint Δloss'))).toBe(true);
  });

  it('LM on its calibration windows: the cost is the perplexity change of the next tokens measured apart', async () => {
    const model = path('../models/lm.onnx');
    const calib = path('../models/lm-calib.npy');
    const r = runCli([
      'sensitivity',
      model,
      '--calib',
      calib,
      '--loss',
      'task',
      '--schemes',
      'q2-asym:64,fp32',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as SensitivityJson;
    const windows = readNpy(readFileSync(calib));
    const [n, T] = windows.dims as [number, number];
    expect(s.positions).toBe(n * (T - 1));
    // lmPerplexity reads the first T − 1 ids of each window and scores them against ids 1 … T − 1:
    // by causality, the very positions and labels the calibration windows give.
    const bytes = readFileSync(model);
    const fp32 = (await lmPerplexity(bytes, windows)).crossEntropy;
    const sample = [s.weights[0]!, s.weights[s.weights.length - 1]!];
    for (const w of sample) {
      const q = (await lmPerplexity(await singleWeightModel(bytes, w.weight, q2), windows)).crossEntropy;
      expect(q - fp32).toBeGreaterThan(1e-3);
      expect(w.costs[0]!.kl).toBeCloseTo(q - fp32, 4);
    }
  });
});

describe('task-loss errors through the CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-task-loss-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cnn = path('../models/cnn.onnx');
  const testX = path('../models/cnn-test-x.npy');
  const testY = path('../models/cnn-test-y.npy');
  const args = ['--loss', 'task', '--schemes', 'q2-asym:64,fp32'];
  const fails = (argv: string[], code: string, ...hints: string[]) => {
    const r = runCli(argv);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(code);
    for (const h of hints) expect(r.stderr).toContain(h);
  };

  it('labels whose count is not the samples', () => {
    fails(
      ['sensitivity', cnn, '--calib', path('../models/cnn-calib-x.npy'), '--labels', testY, ...args],
      'QK_LABELS_COUNT',
      'one class id per calibration sample',
    );
  });

  it('a label outside the classes', () => {
    const y = readNpy(readFileSync(testY));
    const bad = BigInt64Array.from(y.data as BigInt64Array);
    bad[7] = 10n;
    const file = join(dir, 'bad-y.npy');
    writeFileSync(file, writeNpy(makeTensor('int64', [bad.length], bad)));
    fails(
      ['sensitivity', cnn, '--calib', testX, '--labels', file, ...args],
      'QK_LABELS_RANGE',
      'label of sample 7 is 10',
      '[0, classes)',
    );
  });

  it('--loss task on a classifier without labels, and on a model whose output is neither', () => {
    fails(['sensitivity', cnn, '--calib', testX, ...args], 'QK_TASK_LOSS_MODEL', '--labels y.npy');
    // x [n, 2, 4] → MatMul → [n, 2, 3]: float rows per sample, no classes, no tokens.
    const proto = makeModel({
      nodes: [{ opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'], name: 'mm' }],
      inputs: [{ name: 'x', dtype: 'float32', dims: ['n', 2, 4] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: ['n', 2, 3] }],
      initializers: {
        w: makeTensor(
          'float32',
          [4, 3],
          Float32Array.from({ length: 12 }, (_, i) => i / 12 - 0.5),
        ),
      },
      opsets: { '': 17 },
    });
    const model = join(dir, 'neither.onnx');
    writeFileSync(model, encodeModel(proto));
    const x = join(dir, 'x.npy');
    writeFileSync(
      x,
      writeNpy(
        makeTensor(
          'float32',
          [4, 2, 4],
          Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)),
        ),
      ),
    );
    fails(['sensitivity', model, '--calib', x, ...args], 'QK_TASK_LOSS_MODEL', 'output is [n, 2, 3]', 'use --loss kl');
  });

  it('--labels without --loss task, and --loss outside a mixed quantize', () => {
    fails(['sensitivity', cnn, '--calib', testX, '--labels', testY], 'QK_BAD_OPTION', 'add --loss task');
    fails(
      ['quantize', cnn, '-o', join(dir, 'q.onnx'), '--scheme', 'q4', '--loss', 'task'],
      'QK_BAD_OPTION',
      '--target-bits',
    );
  });
});
