import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import {
  averageSensitivity,
  guardCandidates,
  pickGuarded,
  trueLinearBits,
  splitCalibration,
  meanKl,
  parseCandidate,
  planMixed,
  planMixedForLoss,
  planModel,
  prepareMixed,
  type Candidate,
  type SensitivityResult,
} from '../src/flows/mixed.js';
import { nodeMixedHooks, quantizeMixedFile, singleForms } from '../src/flows/mixed-file.js';
import { quantizeModelBytesGptq } from '../src/flows/gptq.js';
import { readNpy } from '../src/io/npy/npy.js';
import { nodeRuntime } from '../src/node/ort-runtime.js';
import { openSession } from '../src/flows/evaluate-node.js';
import { makeTensor, type Tensor } from '../src/tensor/tensor.js';
import { chooseUnderBudget, type KnapsackOption } from '../src/quant/knapsack.js';
import { runCli } from './helpers/cli.js';

/*
 * Mixed precision: the knapsack against brute force, the KL against a hand-worked value, and the
 * two commands on the Gemm/tied LM variant.
 */

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

describe('multiple-choice knapsack (quant/knapsack.ts)', () => {
  it('matches brute force on random instances (within the rounding of one unit per item)', () => {
    const u = lcg(3);
    for (let t = 0; t < 40; t++) {
      const items: KnapsackOption[][] = Array.from({ length: 4 }, () =>
        Array.from({ length: 3 }, () => ({ bytes: 10 + Math.floor(u() * 90), cost: u() })),
      );
      const budget = 150 + Math.floor(u() * 200);
      let best = Infinity;
      for (let c = 0; c < 81; c++) {
        const pick = [c % 3, Math.floor(c / 3) % 3, Math.floor(c / 9) % 3, Math.floor(c / 27) % 3];
        const bytes = pick.reduce((s, j, i) => s + items[i]![j]!.bytes, 0);
        if (bytes <= budget)
          best = Math.min(
            best,
            pick.reduce((s, j, i) => s + items[i]![j]!.cost, 0),
          );
      }
      // Exact when one unit is one byte.
      const got = chooseUnderBudget(items, budget, budget);
      if (best === Infinity) expect(got).toBeUndefined();
      else {
        expect(got).toBeDefined();
        expect(got!.reduce((s, j, i) => s + items[i]![j]!.bytes, 0)).toBeLessThanOrEqual(budget);
        expect(got!.reduce((s, j, i) => s + items[i]![j]!.cost, 0)).toBeCloseTo(best, 12);
      }
    }
  });
});

describe('KL of output distributions (flows/mixed.ts meanKl)', () => {
  it('hand-worked: logits [0, ln 3] vs [0, 0] → KL(¼,¾ ‖ ½,½) = ¼ ln ½ + ¾ ln(3/2)', () => {
    const ref = Float32Array.from([0, Math.log(3)]);
    const q = Float32Array.from([0, 0]);
    expect(meanKl(ref, q, 2)).toBeCloseTo(0.25 * Math.log(0.5) + 0.75 * Math.log(1.5), 6);
    expect(meanKl(ref, ref, 2)).toBe(0);
  });
});

describe('candidates (parseCandidate)', () => {
  it('reads scheme, block and the +clip/+gptq flags in any order; refuses an unknown flag', () => {
    expect(parseCandidate('q4:128+gptq')).toMatchObject({
      label: 'q4:128+gptq',
      scheme: 'q4',
      blockSize: 128,
      gptq: true,
    });
    expect(parseCandidate('q4:128+gptq+clip')).toMatchObject({ label: 'q4:128+clip+gptq', gptq: true, clip: true });
    expect(parseCandidate('q8-block:128')).toMatchObject({ gptq: false, clip: false });
    expect(parseCandidate('fp32')).toEqual({ label: 'fp32', scheme: 'fp32' });
    expect(() => parseCandidate('q4:128+awq')).toThrow(/scheme\[:block\]\[\+clip\]\[\+gptq\]/);
  });
});

describe('cross-fitting helpers', () => {
  it('splitCalibration cuts every input into contiguous runs of samples that concatenate back', () => {
    const ids = makeTensor('int64', [5, 2], BigInt64Array.from([0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n]));
    const mask = makeTensor('float32', [5, 2], Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const [a, b] = splitCalibration(
      new Map([
        ['ids', ids],
        ['mask', mask],
      ]),
      2,
    ) as [Map<string, Tensor>, Map<string, Tensor>];
    expect(a.get('ids')!.dims).toEqual([2, 2]);
    expect(b.get('mask')!.dims).toEqual([3, 2]);
    expect([...(a.get('ids')!.data as BigInt64Array), ...(b.get('ids')!.data as BigInt64Array)]).toEqual([...ids.data]);
    expect([...(b.get('mask')!.data as Float32Array)]).toEqual([4, 5, 6, 7, 8, 9]);
  });

  it('averageSensitivity: the mean KL per weight and candidate, bytes kept', () => {
    const r = (kl: number): SensitivityResult => ({
      positions: 10,
      weights: [{ weight: 'w', node: 'n', params: 8, costs: [{ label: 'q4', bytes: 4, kl }] }],
    });
    const m = averageSensitivity([r(1), r(3)]);
    expect(m.weights[0]!.costs[0]).toEqual({ label: 'q4', bytes: 4, kl: 2 });
    expect(m.positions).toBe(20);
  });
});

describe('planning under a loss limit (planMixedForLoss)', () => {
  const cands: Candidate[] = [
    { label: 'q2', scheme: 'q2-asym' },
    { label: 'q4', scheme: 'q4' },
    { label: 'fp32', scheme: 'fp32' },
  ];
  const u = lcg(9);
  const s: SensitivityResult = {
    positions: 1,
    weights: Array.from({ length: 6 }, (_, i) => {
      const p = 1000 * (1 + i);
      return {
        weight: `w${i}`,
        node: `n${i}`,
        params: p,
        costs: [
          { label: 'q2', bytes: p / 4, kl: 0.01 + 0.02 * u() },
          { label: 'q4', bytes: p / 2, kl: 0.001 * u() },
          { label: 'fp32', bytes: 4 * p, kl: 0 },
        ],
      };
    }),
  };
  it('the smallest plan within the limit: within it, and no smaller budget plan is', () => {
    for (const limit of [0.005, 0.02, 0.06]) {
      const plan = planMixedForLoss(s, cands, limit);
      expect(plan.predictedKl).toBeLessThanOrEqual(limit);
      // 1 % fewer bytes cannot meet the limit.
      let smaller;
      try {
        smaller = planMixed(s, cands, plan.bytes * 0.99);
      } catch {
        smaller = undefined;
      }
      if (smaller) expect(smaller.predictedKl).toBeGreaterThan(limit);
    }
  });
});

describe('quantkit sensitivity / quantize --target-bits (lm-gemm-tied)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-mixed-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const path = (p: string) => new URL(p, import.meta.url).pathname;
  const model = path('fixtures/variants/lm-gemm-tied.onnx');
  const calib = path('fixtures/variants/lm-gemm-tied-calib.npy');

  it('sensitivity prints each weight with bits and KL per candidate; quantize --target-bits 4.5 fits and reports the choices', () => {
    const html = join(dir, 'sensitivity.html');
    const s = runCli([
      'sensitivity',
      model,
      '--calib',
      calib,
      '--schemes',
      'q2-asym:64,q4:128,fp32',
      '--json',
      '--report',
      html,
    ]);
    expect(s.stderr).toBe('');
    expect(s.code).toBe(0);
    // The report's chart data: one series per candidate but fp32, one bar per weight.
    const page = readFileSync(html, 'utf8');
    const data = JSON.parse(/id="qk-sensitivity-data">([^<]*)</.exec(page)![1]!) as {
      nodes: string[];
      series: { label: string; kl: number[] }[];
    };
    expect(data.series.map((x) => x.label)).toEqual(['q2-asym:64', 'q4:128']);
    expect(page).toContain('<canvas id="sensitivity-chart">');
    const r = JSON.parse(s.stdout) as {
      weights: { weight: string; params: number; costs: { label: string; bytes: number; kl: number }[] }[];
    };
    expect(r.weights.length).toBeGreaterThan(5);
    expect(data.nodes.length).toBe(r.weights.length);
    expect(data.series[0]!.kl).toEqual(r.weights.map((w) => w.costs[0]!.kl));
    for (const w of r.weights) {
      const [q2, q4, fp] = w.costs;
      expect(fp!.kl).toBe(0);
      expect(q2!.bytes).toBeLessThan(q4!.bytes);
      expect(q2!.kl).toBeGreaterThan(q4!.kl); // fewer levels, more loss
    }
    const out = join(dir, 'mixed.onnx');
    const q = runCli([
      'quantize',
      model,
      '-o',
      out,
      '--target-bits',
      '3.5',
      '--calib',
      calib,
      '--schemes',
      'q2-asym:64,q4:128,fp32',
      '--json',
    ]);
    expect(q.stderr).toBe('');
    expect(q.code).toBe(0);
    const m = JSON.parse(q.stdout) as { layers: { weight: string; scheme: string; bytes: number }[]; notes: string[] };
    const schemes = new Set(m.layers.map((l) => l.scheme));
    expect(schemes.has('q2-asym:64') && schemes.has('q4:128')).toBe(true); // 3.5 bits needs both
    // No GPTQ candidate, so no single scheme to weigh: the guard scores the plan alone and keeps it.
    expect(m.notes.some((n) => n.startsWith('held-out guard') && n.endsWith('→ the mixed plan'))).toBe(true);
    const params = r.weights.reduce((a, w) => a + w.params, 0);
    expect((m.layers.reduce((a, l) => a + l.bytes, 0) * 8) / params).toBeLessThanOrEqual(3.5);
  });

  it('a GPTQ candidate for every weight writes the model the GPTQ flow writes (the form measured is the form written)', async () => {
    const bytes = readFileSync(model);
    const data = new Map([['input_ids', readNpy(readFileSync(calib))]]);
    const c = parseCandidate('q4:64+gptq');
    const setup = await prepareMixed(bytes, [c], {}, nodeMixedHooks(data));
    const gptq = await quantizeModelBytesGptq(bytes, { scheme: 'q4', blockSize: 64 }, data);
    const linear = gptq.report.layers.filter((l) => l.form.includes('gptq')).map((l) => l.weight);
    expect(linear.length).toBeGreaterThan(5);
    const mixed = planModel(setup, new Map(linear.map((w) => [w, c])));
    expect(mixed.layers.every((l) => l.form.includes('gptq'))).toBe(true);
    const run = async (b: Uint8Array) => {
      const session = await openSession(b);
      const ids = data.get('input_ids')!;
      const x = nodeRuntime.tensor('int64', (ids.data as BigInt64Array).subarray(0, 4 * 64), [4, 64]);
      const out = await session.run({ [session.inputNames[0]!]: x });
      await session.release();
      return out[session.outputNames[0]!]!.data as Float32Array;
    };
    const [a, b] = [await run(mixed.bytes), await run(gptq.bytes)];
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    expect(diff).toBeLessThan(1e-4);
  });

  it('the guard weighs the plan against each single GPTQ scheme that fits on held-out samples; what it writes is within the budget', async () => {
    const out = join(dir, 'guarded.onnx');
    const r = await quantizeMixedFile(model, out, {
      calib: [calib],
      schemes: ['q2-asym:64+gptq', 'q4:64+gptq'],
      targetBits: 4.5,
      refineRounds: 0,
    });
    const note = r.notes.find((n) => n.startsWith('held-out guard'));
    expect(note).toContain('all q4:64+gptq');
    expect(note).toContain('all q2-asym:64+gptq');
    const written = /written: (.*)$/.exec(note!)?.[1];
    expect(r.plan.source).toBe(written === undefined ? r.plan.source : `guard: ${written}`);
    if (written === undefined) expect(note).toMatch(/→ the mixed plan$/);
    expect(trueLinearBits(r.layers)).toBeLessThanOrEqual(4.5);
    expect(readFileSync(out).length).toBe(r.outputFileBytes);
    // 16 calibration windows: the note says each half had 8 and asks for more.
    expect(r.notes.find((n) => n.startsWith('the guard scored each half on'))).toMatch(/on 8 samples.*128 or more/);
  });

  it('quantize without --scheme or a target is a user error naming both ways', () => {
    const q = runCli(['quantize', model, '-o', join(dir, 'x.onnx')]);
    expect(q.code).toBe(1);
    expect(q.stderr).toContain('--target-bits');
  });
});

describe('held-out guard (pickGuarded, guardCandidates)', () => {
  const entry = (label: string, bits: number, heldOutKl: number) => ({ label, bits, heldOutKl });

  it('returns the single scheme when it loses less on the held-out samples than the mixed plan', () => {
    const mixed = entry('mixed', 4.98, 0.012);
    const single = entry('all q4:32+gptq after AWQ for it', 5, 0.011);
    expect(pickGuarded([mixed, single, entry('all q2-asym:32+gptq', 3.06, 0.2)], 5)).toBe(single);
  });

  it('keeps the mixed plan on a tie and when the better single scheme is over the budget', () => {
    const mixed = entry('mixed', 4.24, 0.01);
    expect(pickGuarded([mixed, entry('all q4:128+gptq', 4.25, 0.01)], 4.25)).toBe(mixed);
    // 4.5 bits would win but does not fit 4.25: it is never written.
    expect(pickGuarded([mixed, entry('all q4:64+gptq', 4.5, 0.001)], 4.25)).toBe(mixed);
    expect(pickGuarded([entry('all q4:64+gptq', 4.5, 0.001)], 4.25)).toBeUndefined();
    expect(pickGuarded([entry('mixed', 4, NaN), entry('all q4:128+gptq', 4.25, 0.5)], 4.25)?.label).toBe(
      'all q4:128+gptq',
    );
  });

  it('weighs, per scheme, the GPTQ candidate of most bytes that fits for every weight', () => {
    const cands = [
      'q2-asym:64+gptq',
      'q2-asym:32+gptq',
      'q4:128+gptq',
      'q4:32+gptq',
      'q4:128+clip+gptq',
      'q8-block:128',
      'fp32',
    ].map(parseCandidate);
    // Two weights of 1024 parameters; bytes as bits per weight × 128.
    const bits: Record<string, number> = {
      'q2-asym:64+gptq': 2.5,
      'q2-asym:32+gptq': 3,
      'q4:128+gptq': 4.25,
      'q4:32+gptq': 5,
      'q4:128+clip+gptq': 4.25,
      'q8-block:128': 8.25,
      fp32: 32,
    };
    const s: SensitivityResult = {
      positions: 1,
      weights: ['a', 'b'].map((w) => ({
        weight: w,
        node: w,
        params: 1024,
        costs: cands.map((c) => ({ label: c.label, bytes: bits[c.label]! * 128, kl: 0 })),
      })),
    };
    const budget = (b: number) => (b * 2048) / 8;
    expect(guardCandidates(s, cands, budget(5)).map((c) => c.label)).toEqual(['q2-asym:32+gptq', 'q4:32+gptq']);
    expect(guardCandidates(s, cands, budget(4.25)).map((c) => c.label)).toEqual(['q2-asym:32+gptq', 'q4:128+gptq']);
    expect(guardCandidates(s, cands, budget(2.9)).map((c) => c.label)).toEqual(['q2-asym:64+gptq']);
    expect(guardCandidates(s, cands, budget(2))).toEqual([]);
  });

  it('singleForms: each candidate by GPTQ, and by AWQ+GPTQ only with awq and where AWQ takes the scheme', () => {
    const c = [parseCandidate('q4:32+gptq')];
    expect(singleForms(c, false).map((f) => f.awq)).toEqual([false]);
    expect(singleForms(c, true).map((f) => f.awq)).toEqual([false, true]);
    // AWQ's search does not model SpQR: GPTQ alone.
    expect(singleForms([parseCandidate('q3-spqr:32+gptq')], true).map((f) => f.awq)).toEqual([false]);
  });
});
