import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeDynamicModel, type StaticQuantOptions } from '../src/flows/calibrate.js';
import { quantizeModelBytesAwq } from '../src/flows/awq-node.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { runModel } from '../src/interp/run.js';
import { makeValueInfo } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { readNpy } from '../src/io/npy/npy.js';
import type { DynamicOptions } from '../src/passes/activation/dynamic.js';
import type { WeightOnlyOptions } from '../src/passes/weight-only/index.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { REPO } from './helpers/cli.js';

/*
 * `quantkit run` on every quantized form our quantizer writes for the shipped models, against
 * onnxruntime-node on a few inputs: float outputs within 1e-5 of the output's largest magnitude.
 * ORT computes the float ops between the quantizers (LayerNorm, Softmax, GELU) in fp32 where the
 * interpreter works in float64, so a value on a rounding tie may become a different code in each,
 * and a dynamic range's max may differ by an ulp and move its scale. Where activations are
 * quantized the comparison therefore reads ORT's values at the quantizers (as extra graph
 * outputs, chosen so ORT's fusions stay as they were) and pins the interpreter to them:
 *   int8/int4/int3-static  the codes of every QuantizeLinear (ORT fuses the QDQ into integer kernels, so
 *                the float before it does not exist there); the interpreter's own codes may differ
 *                by one step, in at most 1 of 10^4;
 *   int8-dynamic the float input of every DynamicQuantizeLinear, DynamicQuantizeMatMul (contrib
 *                form) or per-token row scale (the interpreter's own within 1e-5); from the same
 *                floats, the codes and the integer matmuls must then agree.
 * A DequantizeLinear(int4, or int8 per channel) → MatMul runs as ORT's default session makes it,
 * MatMulNBits at accuracy level 4 (A quantized to int8 per block), in both. The forms cover every
 * scheme and every option that changes the graph (hqq and q4-k's float zero points, outliers,
 * k-means codebooks, AWQ's folded scales, accuracy levels); mixed precision only combines them. Weights are pair-safe (the default target), so ORT's AVX2
 * and VNNI kernels agree.
 */

const read = (f: string) => readFileSync(join(REPO, 'models', f));
const REL = 1e-5;

type Maker = (bytes: Uint8Array) => Promise<Uint8Array> | Uint8Array;

const weightOnly =
  (o: WeightOnlyOptions): Maker =>
  (bytes) =>
    quantizeModelBytes(bytes, o).bytes;
const dynamicWith =
  (o: DynamicOptions): Maker =>
  (bytes) => {
    const m = modelFromProto(decodeModel(bytes));
    quantizeDynamicModel(m, o);
    return encodeModel(modelToProto(m));
  };
const dynamic = dynamicWith({});
const statics =
  (input: string, calib: Tensor, o: Partial<StaticQuantOptions> = {}): Maker =>
  async (bytes) => {
    const m = modelFromProto(decodeModel(bytes));
    await quantizeStatic(m, new Map([[input, calib]]), { method: parseCalibMethod('minmax'), ...o });
    return encodeModel(modelToProto(m));
  };

type Pin = 'none' | 'codes' | 'dynamic-inputs';

/** Where int8-dynamic's forms quantize an activation: the op, or per-token's |x| → row max → scale. */
const DYNAMIC_QUANTIZERS = new Set(['DynamicQuantizeLinear', 'DynamicQuantizeMatMul', 'Abs']);

/** `bytes` with the values to pin (see above) also graph outputs; their names. */
function expose(bytes: Uint8Array, pin: Pin): { bytes: Uint8Array; names: string[] } {
  const m = decodeModel(bytes);
  const g = m.graph!;
  const inits = new Map(g.initializer.map((t) => [t.name, t.dataType]));
  const graphInputs = new Set(g.input.map((v) => v.name)); // fed, not computed: nothing to pin
  const names: string[] = [];
  for (const n of g.node) {
    if (pin === 'codes' && n.opType === 'QuantizeLinear') {
      names.push(n.output[0] as string);
      const dtype = inits.get(n.input[2] ?? '') === 3 ? 'int8' : 'uint8';
      g.output.push(makeValueInfo({ name: n.output[0] as string, dtype }));
    }
    const input = n.input[0] as string;
    if (
      pin === 'dynamic-inputs' &&
      DYNAMIC_QUANTIZERS.has(n.opType) &&
      !names.includes(input) &&
      !graphInputs.has(input)
    ) {
      names.push(n.input[0] as string);
      g.output.push(makeValueInfo({ name: n.input[0] as string, dtype: 'float32' }));
    }
  }
  return { bytes: encodeModel(m), names };
}

/** Each form's largest max |got − want| / max |want|, printed as a table when QK_SWEEP_TABLE is set. */
const deviations = new Map<string, number>();
let current = '';
afterAll(() => {
  if (!process.env.QK_SWEEP_TABLE) return;
  const rows = [...deviations].map(([form, d]) => `| ${form} | ${d.toExponential(1)} | ${REL.toExponential(0)} |`);
  process.stdout.write(['| model: form | max deviation | tolerance |', '|---|---|---|', ...rows, ''].join('\n'));
});

/** max |got − want| ≤ REL · max |want|. */
function expectClose(got: Tensor, want: Tensor): void {
  const g = got.data as Float32Array;
  const w = want.data as Float32Array;
  expect(g.length).toBe(w.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < w.length; i++) {
    scale = Math.max(scale, Math.abs(w[i] as number));
    worst = Math.max(worst, Math.abs((g[i] as number) - (w[i] as number)));
  }
  deviations.set(current, Math.max(deviations.get(current) ?? 0, worst / scale));
  expect(worst).toBeLessThanOrEqual(REL * scale);
}

async function ortRun(bytes: Uint8Array, feeds: Map<string, Tensor>): Promise<Map<string, Tensor>> {
  const session = await ort.InferenceSession.create(bytes);
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of feeds) ortFeeds[k] = new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, [...t.dims]);
  const out = await session.run(ortFeeds);
  await session.release();
  return new Map(
    session.outputNames.map((n) => {
      const t = out[n]!;
      return [n, { dtype: t.type as Tensor['dtype'], dims: t.dims as number[], data: t.data as Tensor['data'] }];
    }),
  );
}

async function compare(bytes: Uint8Array, feeds: Map<string, Tensor>, pin: Pin): Promise<void> {
  const exposed = expose(bytes, pin);
  const want = await ortRun(exposed.bytes, feeds);
  const pinned = new Map(exposed.names.map((c) => [c, want.get(c)!]));
  const computed = new Map<string, Tensor>();
  const got = runModel(decodeModel(bytes), feeds, { pinned, onValue: (n, t) => pinned.has(n) && computed.set(n, t) });
  let differ = 0;
  let total = 0;
  for (const [name, theirs] of pinned) {
    const ours = computed.get(name)!;
    if (pin === 'dynamic-inputs') {
      expectClose(ours, theirs);
      continue;
    }
    const a = ours.data as Uint8Array;
    const b = theirs.data as Uint8Array;
    total += b.length;
    for (let i = 0; i < b.length; i++) {
      if (a[i] === b[i]) continue;
      differ++;
      expect(Math.abs((a[i] as number) - (b[i] as number))).toBe(1);
    }
  }
  expect(differ).toBeLessThanOrEqual(total * 1e-4);
  for (const [name, t] of got) expectClose(t, want.get(name)!);
}

const pinFor = (scheme: string): Pin =>
  scheme.includes('-static') ? 'codes' : scheme.startsWith('int8-dynamic') ? 'dynamic-inputs' : 'none';

const cnnX = readNpy(read('cnn-test-x.npy'));
const cnnFeeds = new Map<string, Tensor>([
  ['input', { dtype: 'float32', dims: [8, 1, 8, 8], data: (cnnX.data as Float32Array).slice(0, 8 * 64) }],
]);
const windows = readNpy(read('lm-eval.npy'));
const T = 40;
const ids = new BigInt64Array(2 * T);
for (let b = 0; b < 2; b++)
  for (let t = 0; t < T; t++) ids[b * T + t] = (windows.data as BigInt64Array)[b * 65 + t] as bigint;
const lmFeeds = new Map<string, Tensor>([['input_ids', { dtype: 'int64', dims: [2, T], data: ids }]]);

const COMMON: [string, (calib: Tensor, input: string) => Maker][] = [
  ['int8-static', (calib, input) => statics(input, calib)],
  ['int8-dynamic', () => dynamic],
  ['int8-dynamic --per-token', () => dynamicWith({ perToken: true })],
  ['int8-dynamic --dynamic-form contrib (DynamicQuantizeMatMul)', () => dynamicWith({ form: 'contrib' })],
  [
    'int8-dynamic with ConvInteger and u8 weights (transformers.js recipe)',
    () => dynamicWith({ conv: true, weightType: 'uint8' }),
  ],
  ['q4', () => weightOnly({ scheme: 'q4' })],
  ['q4-asym', () => weightOnly({ scheme: 'q4-asym' })],
  ['q8-block', () => weightOnly({ scheme: 'q8-block' })],
  ['nf4', () => weightOnly({ scheme: 'nf4' })],
  ['fp4', () => weightOnly({ scheme: 'fp4' })],
  // Every other graph form quantize writes (schemes, and the options that change the graph).
  ['int4-static (int4 weights per channel)', (calib, input) => statics(input, calib, { weightBits: 4 })],
  ['int3-static', (calib, input) => statics(input, calib, { weightBits: 3 })],
  [
    'int8-static --activations s8 --smoothquant',
    (calib, input) => statics(input, calib, { activationType: 'int8', smoothQuant: 0.5 }),
  ],
  ['int8 (DequantizeLinear int8 per channel)', () => weightOnly({ scheme: 'int8' })],
  ['q8-block-asym', () => weightOnly({ scheme: 'q8-block-asym' })],
  ['q2', () => weightOnly({ scheme: 'q2' })],
  ['q2-asym', () => weightOnly({ scheme: 'q2-asym' })],
  ['q3', () => weightOnly({ scheme: 'q3' })],
  ['q3-asym', () => weightOnly({ scheme: 'q3-asym' })],
  ['q4-k (float zero points)', () => weightOnly({ scheme: 'q4-k' })],
  ['q4 --hqq (float zero points)', () => weightOnly({ scheme: 'q4', hqq: true })],
  [
    'q2 --hqq --accuracy-level 4 (float zero points: level 0 in ORT)',
    () => weightOnly({ scheme: 'q2', hqq: true, accuracyLevel: 4 }),
  ],
  ['q3-spqr --outliers (ScatterND)', () => weightOnly({ scheme: 'q3-spqr', outliers: 0.01 })],
  ['q4 --outliers', () => weightOnly({ scheme: 'q4', outliers: 0.01 })],
  ['q8-block --accuracy-level 4', () => weightOnly({ scheme: 'q8-block', accuracyLevel: 4 })],
  ['nf4 --double-quant', () => weightOnly({ scheme: 'nf4', doubleQuant: true })],
  ['bf16', () => weightOnly({ scheme: 'bf16' })],
  ['fp8', () => weightOnly({ scheme: 'fp8' })],
  ['fp8-e5m2', () => weightOnly({ scheme: 'fp8-e5m2' })],
  ['kmeans (BitShift, Gather)', () => weightOnly({ scheme: 'kmeans' })],
  ['kmeans --per-channel --bits 3 (GatherElements)', () => weightOnly({ scheme: 'kmeans', perChannel: true, bits: 3 })],
];
// AWQ's search on 2 of the 32 calibration windows: the graph form is what is tested, not the scales.
const lmCalib = (() => {
  const t = readNpy(read('lm-calib.npy'));
  const width = t.dims[1] as number;
  const head: Tensor = { dtype: 'int64', dims: [2, width], data: (t.data as BigInt64Array).slice(0, 2 * width) };
  return new Map([['input_ids', head]]);
})();
const LM_ONLY: [string, Maker][] = [
  ['q4 --format qdq (DequantizeLinear int4 → MatMul)', weightOnly({ scheme: 'q4', format: 'qdq' })],
  ['q4-asym --format qdq (DequantizeLinear uint4 → MatMul)', weightOnly({ scheme: 'q4-asym', format: 'qdq' })],
  ['q4 --accuracy-level 4 (MatMulNBits with int8 A)', weightOnly({ scheme: 'q4', accuracyLevel: 4 })],
  ['q4-asym --accuracy-level 4 (MatMulNBits with int8 A)', weightOnly({ scheme: 'q4-asym', accuracyLevel: 4 })],
  ['q4-asym --quantize-embeddings (GatherBlockQuantized)', weightOnly({ scheme: 'q4-asym', quantizeEmbeddings: true })],
  ['nf4 --quantize-embeddings (int8 rows)', weightOnly({ scheme: 'nf4', quantizeEmbeddings: true })],
  [
    'q4 --awq (scales folded into the norms)',
    async (bytes) => {
      // A coarse α grid keeps the search short; some groups must still fold a scale (α > 0).
      const r = await quantizeModelBytesAwq(bytes, { scheme: 'q4' }, lmCalib, { grid: 4, maxShrink: 0 });
      expect(r.awq.groups.some((g) => g.alpha > 0)).toBe(true);
      return r.bytes;
    },
  ],
];

describe('quantkit run gives ORT’s outputs on the quantized digits CNN', () => {
  const calib = readNpy(read('cnn-calib-x.npy'));
  for (const [name, make] of COMMON) {
    it(name, async () => {
      current = `CNN: ${name}`;
      await compare(await make(calib, 'input')(read('cnn.onnx')), cnnFeeds, pinFor(name));
    });
  }
});

describe('quantkit run gives ORT’s outputs on the quantized char LM', () => {
  const calib = readNpy(read('lm-calib.npy'));
  for (const [name, make] of [...COMMON.map(([n, m]) => [n, m(calib, 'input_ids')] as const), ...LM_ONLY]) {
    it(name, async () => {
      current = `LM: ${name}`;
      await compare(await make(read('lm.onnx')), lmFeeds, pinFor(name));
    });
  }
});
