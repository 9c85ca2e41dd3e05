import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerDemo } from '../src/cli/commands/demo.js';
import * as ort from 'onnxruntime-node';
import { augmentedModelBytes } from '../src/flows/calibrate-node.js';
import {
  combinedSqnrDb,
  DEMO_CALIB_METHODS,
  demoVariants,
  runDemo,
  variantsForModel,
  type DemoModelResult,
  type DemoRow,
} from '../src/flows/demo.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { classifierAccuracy, lmPerplexity } from '../src/flows/evaluate-node.js';
import { quantizeModelBytesGptq } from '../src/flows/gptq.js';
import { readNpy } from '../src/io/npy/npy.js';
import { SCHEME_NAMES } from '../src/passes/weight-only/index.js';
import { REPO } from './helpers/cli.js';

/*
 * The demo's numbers are measured, not typed: the orderings quantization must show, the fp32 row
 * equal to a direct evaluation (and to what PyTorch measured when the models were made,
 * models/metrics.json), and a quantized file re-evaluated from disk equal to its row.
 */

const MODELS = join(REPO, 'models');
const metrics = JSON.parse(readFileSync(join(MODELS, 'metrics.json'), 'utf8')) as {
  lm?: { eval_perplexity: number; eval_bits_per_char: number };
  cnn: { test_accuracy: number };
};

function row(m: DemoModelResult, label: string): DemoRow {
  const r = m.rows.find((x) => x.scheme === label);
  if (!r) throw new Error(`no row '${label}' in ${m.rows.map((x) => x.scheme).join(', ')}`);
  return r;
}

describe('demoVariants', () => {
  it('enumerates the scheme table: every scheme appears, block-wise ones at 32/64/128, q4 also as RTN, 4-bit ones with GPTQ', () => {
    const v = demoVariants();
    for (const s of SCHEME_NAMES) expect(v.some((x) => x.scheme === s)).toBe(true);
    expect(v.filter((x) => x.scheme === 'q4').map((x) => x.label)).toEqual([
      'q4 b32',
      'q4 b64',
      'q4 b128',
      'q4-rtn b64',
      'q4 b32 +gptq',
    ]);
    // GPTQ at each scheme's default block size (scheme.ts), for symmetric q4, nf4 and fp4.
    expect(v.filter((x) => x.kind === 'gptq').map((x) => x.label)).toEqual([
      'q4 b32 +gptq',
      'nf4 b64 +gptq',
      'fp4 b64 +gptq',
    ]);
    expect(new Set(v.map((x) => x.label)).size).toBe(v.length);
  });

  it('activation schemes: int8-dynamic once, int8-static per range method without and with SmoothQuant', () => {
    const v = demoVariants();
    expect(v.filter((x) => x.scheme === 'int8-dynamic').map((x) => x.label)).toEqual(['int8-dynamic']);
    expect(v.filter((x) => x.scheme === 'int8-static').map((x) => x.label)).toEqual([
      'int8-static minmax',
      'int8-static percentile',
      'int8-static entropy',
      'int8-static mse',
      'int8-static+sq minmax',
      'int8-static+sq percentile',
      'int8-static+sq entropy',
      'int8-static+sq mse',
    ]);
    // A model without MatMul activations (the CNN) runs every row but the SmoothQuant ones.
    expect(variantsForModel(v, false)).toHaveLength(v.length - DEMO_CALIB_METHODS.length);
    expect(variantsForModel(v, true)).toHaveLength(v.length);
  });

  it('filters by scheme or label, and names an unknown one', () => {
    expect(demoVariants(['int8', 'nf4 b64']).map((x) => x.label)).toEqual(['int8', 'nf4 b64']);
    expect(() => demoVariants(['int3'])).toThrow(/unknown scheme 'int3'/);
  });
});

describe('combinedSqnrDb', () => {
  it('adds noise energies: 20 dB on signal 1 and exact on signal 1 → noise 0.01 of 2 → 23.01 dB', () => {
    expect(
      combinedSqnrDb([
        { signal: 1, sqnrDb: 20 },
        { signal: 1, sqnrDb: Infinity },
      ]),
    ).toBeCloseTo(10 * Math.log10(200), 12);
    expect(combinedSqnrDb([{ signal: 1, sqnrDb: null }])).toBeNull();
    expect(combinedSqnrDb([{ signal: 3, sqnrDb: Infinity }])).toBe(Infinity);
  });
});

describe('quantkit demo on the shipped LM', () => {
  let lm: DemoModelResult;
  let out = '';

  beforeAll(async () => {
    if (!existsSync(join(MODELS, 'lm.onnx')))
      throw new Error('models/lm.onnx is missing: run scripts/models/make_models.py (see its header)');
    out = mkdtempSync(join(tmpdir(), 'qk-demo-'));
    const r = await runDemo({
      models: ['lm'],
      schemes: [
        'fp16',
        'int8',
        'q4',
        'nf4 b64',
        'nf4 b64 +gptq',
        'fp4 b64',
        'fp4 b64 +gptq',
        'int8-dynamic',
        'int8-static',
      ],
      outDir: out,
      warmRuns: 1,
      timedRuns: 3,
    });
    lm = r.models[0] as DemoModelResult;
  });

  afterAll(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('fp16 ≈ fp32: |Δ perplexity| < 0.1 %', () => {
    expect(Math.abs(row(lm, 'fp16').qualityChange)).toBeLessThan(0.001);
  });

  it('int8 has a lower perplexity and a higher weight SQNR than every q4 row', () => {
    const int8 = row(lm, 'int8');
    for (const r of lm.rows.filter((x) => x.scheme.startsWith('q4'))) {
      expect(int8.quality).toBeLessThan(r.quality);
      expect(int8.weightSqnrDb as number).toBeGreaterThan(r.weightSqnrDb as number);
    }
  });

  it('q4 block 32 beats q4 block 128 (perplexity and weight SQNR)', () => {
    expect(row(lm, 'q4 b32').quality).toBeLessThan(row(lm, 'q4 b128').quality);
    expect(row(lm, 'q4 b32').weightSqnrDb as number).toBeGreaterThan(row(lm, 'q4 b128').weightSqnrDb as number);
  });

  it('nf4 beats int4 absmax (symmetric round-to-nearest q4) at block size 64', () => {
    expect(row(lm, 'nf4 b64').quality).toBeLessThan(row(lm, 'q4-rtn b64').quality);
  });

  it("GPTQ rows: perplexity below the same scheme's data-free row and within budget (q4, nf4 ≤ +3 %, fp4 ≤ +6 %)", () => {
    const budgets = { 'q4 b32': 0.03, 'nf4 b64': 0.03, 'fp4 b64': 0.06 };
    for (const [dataFree, budget] of Object.entries(budgets)) {
      const g = row(lm, `${dataFree} +gptq`);
      expect(g.quality, dataFree).toBeLessThan(row(lm, dataFree).quality);
      expect(g.qualityChange, dataFree).toBeLessThanOrEqual(budget);
    }
  });

  it('a GPTQ row is calibrated on lm-calib.npy: its file is what quantizeModelBytesGptq makes from that set', async () => {
    const calib = new Map([['input_ids', readNpy(readFileSync(join(MODELS, 'lm-calib.npy')))]]);
    const direct = await quantizeModelBytesGptq(
      new Uint8Array(readFileSync(join(MODELS, 'lm.onnx'))),
      { scheme: 'q4', blockSize: 32 },
      calib,
    );
    expect(Buffer.from(readFileSync(row(lm, 'q4 b32 +gptq').file)).equals(Buffer.from(direct.bytes))).toBe(true);
  });

  it('int8-dynamic: perplexity within +1 % of fp32', () => {
    expect(row(lm, 'int8-dynamic').qualityChange).toBeLessThan(0.01);
  });

  it('int8-static: every method within +1 %, SmoothQuant rows within +0.5 %, and SmoothQuant helps min-max', () => {
    for (const m of DEMO_CALIB_METHODS) {
      expect(row(lm, `int8-static ${m}`).qualityChange, m).toBeLessThan(0.01);
      expect(row(lm, `int8-static+sq ${m}`).qualityChange, `${m} + SmoothQuant`).toBeLessThan(0.005);
    }
    expect(row(lm, 'int8-static+sq minmax').quality).toBeLessThan(row(lm, 'int8-static minmax').quality);
  });

  it("activation rows store pair-safe weights: one SQNR for all, between 7-bit (int8 − 6.02 dB) and the int8 row's full range", () => {
    const int8 = row(lm, 'int8').weightSqnrDb as number;
    const dyn = row(lm, 'int8-dynamic').weightSqnrDb as number;
    // Pair-safe scales lie between max|w|/127 and max|w|/64 (passes/activation/weight-form.ts).
    expect(dyn).toBeLessThan(int8);
    expect(dyn).toBeGreaterThan(int8 - 20 * Math.log10(127 / 64) - 0.1);
    for (const label of DEMO_CALIB_METHODS.map((m) => `int8-static ${m}`)) {
      expect(row(lm, label).weightSqnrDb as number, label).toBeCloseTo(dyn, 2);
    }
    // SmoothQuant rescales the weights first: no weight-format SQNR for those rows.
    expect(row(lm, 'int8-static+sq mse').weightSqnrDb).toBeNull();
  });

  it("calibration plots: the tensors whose ranges differ most, each method's range, min-max = what ORT sees on lm-calib.npy", async () => {
    expect(lm.calibration).toHaveLength(3);
    for (const c of lm.calibration) {
      expect(c.thresholds.map((t) => t.method)).toEqual(['minmax', 'percentile:99.99', 'entropy', 'mse']);
      const [mm, pct] = c.thresholds;
      // min-max is the observed range, which the histogram spans; percentile clips inside it.
      expect(mm?.lo).toBe(c.histogram.min);
      expect(mm?.hi).toBe(c.histogram.max);
      for (const t of c.thresholds) expect(t.hi - t.lo, t.method).toBeLessThanOrEqual((mm?.hi ?? 0) - (mm?.lo ?? 0));
      expect((pct?.hi ?? Infinity) - (pct?.lo ?? 0)).toBeLessThan((mm?.hi ?? 0) - (mm?.lo ?? 0));
    }
    // Independent truth: the first plotted tensor read straight from ONNX Runtime on the
    // calibration set has exactly that range and that many values; on the eval set it differs.
    const plot = lm.calibration[0] as DemoModelResult['calibration'][number];
    const model = modelFromProto(decodeModel(readFileSync(join(MODELS, 'lm.onnx'))));
    const session = await ort.InferenceSession.create(augmentedModelBytes(model, [plot.tensor]));
    const observe = async (ids: Tensor, context: number) => {
      const [n, width] = ids.dims as [number, number];
      const data = new BigInt64Array(n * context);
      for (let i = 0; i < n; i++)
        data.set((ids.data as BigInt64Array).subarray(i * width, i * width + context), i * context);
      const out = (await session.run({ input_ids: new ort.Tensor('int64', data, [n, context]) }, [plot.tensor]))[
        plot.tensor
      ]?.data as Float32Array;
      let lo = Infinity,
        hi = -Infinity;
      for (const v of out) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      return { lo, hi, count: out.length };
    };
    const calib = await observe(readNpy(readFileSync(join(MODELS, 'lm-calib.npy'))), 64);
    const evalSet = await observe(readNpy(readFileSync(join(MODELS, 'lm-eval.npy'))), 64);
    await session.release();
    expect(plot.thresholds[0]?.lo).toBe(calib.lo);
    expect(plot.thresholds[0]?.hi).toBe(calib.hi);
    expect(plot.histogram.counts.reduce((a, b) => a + b, 0)).toBe(calib.count);
    expect(evalSet.hi).not.toBe(calib.hi);
  });

  it('the fp32 row equals a direct evaluation and what PyTorch measured (metrics.json)', async () => {
    const windows = readNpy(readFileSync(join(MODELS, 'lm-eval.npy')));
    const direct = await lmPerplexity(new Uint8Array(readFileSync(join(MODELS, 'lm.onnx'))), windows);
    const fp32 = row(lm, 'fp32');
    expect(fp32.quality).toBeCloseTo(direct.perplexity, 4);
    expect(fp32.bitsPerChar as number).toBeCloseTo(direct.crossEntropy / Math.LN2, 5);
    expect(fp32.quality / (metrics.lm?.eval_perplexity ?? NaN)).toBeCloseTo(1, 3);
  });

  it('the numbers are measured: rows differ, and a written file re-evaluates to its row', async () => {
    expect(new Set(lm.rows.map((r) => r.quality)).size).toBe(lm.rows.length);
    expect(new Set(lm.rows.map((r) => r.bytes)).size).toBeGreaterThan(3);
    const q4 = row(lm, 'q4 b64');
    expect(readdirSync(out)).toContain('lm.q4-b64.onnx');
    const bytes = new Uint8Array(readFileSync(q4.file));
    expect(bytes.length).toBe(q4.bytes);
    const direct = await lmPerplexity(bytes, readNpy(readFileSync(join(MODELS, 'lm-eval.npy'))));
    expect(q4.quality).toBeCloseTo(direct.perplexity, 4);
    expect(row(lm, 'fp32').bytes).toBe(readFileSync(join(MODELS, 'lm.onnx')).length);
  });
});

describe('quantkit demo on the shipped CNN', () => {
  let cnn: DemoModelResult;
  let fp32Accuracy = NaN;
  let outDir: string | undefined = '';

  beforeAll(async () => {
    const r = await runDemo({ models: ['cnn'], warmRuns: 1, timedRuns: 3 });
    cnn = r.models[0] as DemoModelResult;
    outDir = r.outDir;
    const x = readNpy(readFileSync(join(MODELS, 'cnn-test-x.npy')));
    const y = readNpy(readFileSync(join(MODELS, 'cnn-test-y.npy')));
    fp32Accuracy = (await classifierAccuracy(new Uint8Array(readFileSync(join(MODELS, 'cnn.onnx'))), x, y)).accuracy;
  });

  it('every scheme of the table keeps accuracy within 1 point of fp32 (2-bit: 3), and fp32 matches a direct evaluation', () => {
    // No MatMul activations: SmoothQuant rows are left out.
    expect(cnn.rows).toHaveLength(variantsForModel(demoVariants(), false).length + 1);
    expect(row(cnn, 'fp32').quality).toBe(fp32Accuracy);
    expect(fp32Accuracy).toBeCloseTo(metrics.cnn.test_accuracy, 5);
    // 2-bit codes are the exception: within 3 points (q2 b32 measured 1.6 points down).
    for (const q of cnn.rows)
      expect(q.quality, q.scheme).toBeGreaterThan(fp32Accuracy - (q.scheme.startsWith('q2') ? 0.03 : 0.01));
    // GPTQ reaches the CNN's Gemm layers through the same path, on cnn-calib-x.npy.
    expect(cnn.rows.filter((r) => r.scheme.endsWith('+gptq')).map((r) => r.scheme)).toEqual([
      'q4 b32 +gptq',
      'nf4 b64 +gptq',
      'fp4 b64 +gptq',
    ]);
    for (const q of cnn.rows.slice(1)) expect(q.latencyRatio, q.scheme).toBeGreaterThan(0);
    expect(outDir).toBeUndefined();
  });

  it('digits CNN int8-static drops ≤ 0.5 % accuracy with every range method; int8-dynamic too', () => {
    for (const m of DEMO_CALIB_METHODS)
      expect(row(cnn, `int8-static ${m}`).quality, m).toBeGreaterThanOrEqual(fp32Accuracy - 0.005);
    expect(row(cnn, 'int8-dynamic').quality).toBeGreaterThanOrEqual(fp32Accuracy - 0.005);
    expect(cnn.rows.some((r) => r.scheme.startsWith('int8-static+sq'))).toBe(false);
  });

  it('calibration plots: Relu outputs (range starts at 0), methods disagreeing most first', () => {
    expect(cnn.calibration).toHaveLength(3);
    const spread = (c: DemoModelResult['calibration'][number]) => {
      const his = c.thresholds.map((t) => t.hi);
      return (Math.max(...his) - Math.min(...his)) / (c.histogram.max - c.histogram.min);
    };
    for (const c of cnn.calibration) {
      expect(c.tensor).toMatch(/Relu/);
      expect(c.thresholds.map((t) => t.lo)).toEqual([0, 0, 0, 0]);
    }
    const spreads = cnn.calibration.map(spread);
    expect([...spreads].sort((a, b) => b - a)).toEqual(spreads);
    // 128 calibration images: the plotted histograms count every value of the tensor over them.
    for (const c of cnn.calibration) expect(c.histogram.counts.reduce((a, b) => a + b, 0) % 128).toBe(0);
  });
});

describe('quantkit demo command', () => {
  it('prints the table for --model cnn --schemes int8,nf4 and writes the report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-demo-cli-'));
    const chunks: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(String(c));
      return true;
    });
    try {
      const program = new Command().exitOverride();
      registerDemo(program);
      await program.parseAsync([
        'node',
        'quantkit',
        'demo',
        '--model',
        'cnn',
        '--schemes',
        'int8,nf4',
        '--report',
        join(dir, 'r.html'),
      ]);
    } finally {
      spy.mockRestore();
    }
    const text = chunks.join('');
    expect(text).toMatch(/^scheme\s+size\s+ratio\s+accuracy\s+change\s+weight SQNR\s+latency$/m);
    expect(text).toMatch(/^fp32\s+152\.2 KiB\s+1\.00×\s+99\.60 %\s+—/m);
    expect(text).toMatch(/^nf4 b128\s/m);
    expect(text).toContain(`report written to ${join(dir, 'r.html')}`);
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    expect(html).toContain('<canvas id="scatter-0">');
    rmSync(dir, { recursive: true, force: true });
  });
});
