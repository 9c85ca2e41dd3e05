import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { parseCalibMethod } from '../calib/method.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { readNpy } from '../io/npy/npy.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import type { GraphNode, Model } from '../graph/model.js';
import { consumers } from '../graph/topology.js';
import { FAST_MIN_CONV_REDUCTION } from '../passes/activation/plan.js';
import { dropUnreadInitializers } from '../passes/activation/qdq.js';
import { GraphEditor } from '../passes/activation/graph-util.js';
import type { WeightOnlyOptions } from '../passes/weight-only/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { quantizeDynamicModel } from './calibrate.js';
import { quantizeStatic } from './calibrate-node.js';
import { quantizeModelBytes } from './quantize.js';

/*
 * ONNX Runtime latency of the models our quantizer writes, as ratios to their fp32 originals
 * measured side by side in one process: runs of the two sessions interleaved (so drift and other
 * load hit both alike), medians compared. One intra-op thread: the ratio is of kernels, not of
 * how cores are shared. `quantkit bench` and scripts/measure/model-latency.ts print these.
 */

export interface LatencyOptions {
  /** Timed runs of each session (after `warmup` untimed ones). */
  readonly rounds?: number | undefined;
  readonly warmup?: number | undefined;
  /** ORT intra-op threads (default 1). */
  readonly threads?: number | undefined;
}

export interface LatencyRatio {
  readonly baselineMs: number;
  readonly candidateMs: number;
  /** candidate / baseline: below 1 the candidate is faster. */
  readonly ratio: number;
  /**
   * The same from process CPU time per run (medians): time the process spends descheduled counts
   * on neither side. On a loaded machine a long run is descheduled more often than a short one,
   * which skews wall-clock ratios of long runs towards the faster side.
   */
  readonly cpuRatio: number;
  readonly rounds: number;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function ortFeeds(feeds: ReadonlyMap<string, Tensor>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of feeds) out[name] = new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, [...t.dims]);
  return out;
}

/** Median latency of `candidate` over `baseline` on the same feeds, runs interleaved. */
export async function ortLatencyRatio(
  baseline: Uint8Array,
  candidate: Uint8Array,
  feeds: ReadonlyMap<string, Tensor>,
  o: LatencyOptions = {},
): Promise<LatencyRatio> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: o.threads ?? 1,
    interOpNumThreads: 1,
  };
  const a = await ort.InferenceSession.create(baseline, options);
  const b = await ort.InferenceSession.create(candidate, options);
  try {
    const f = ortFeeds(feeds);
    for (let i = 0; i < (o.warmup ?? 10); i++) {
      await a.run(f);
      await b.run(f);
    }
    const rounds = o.rounds ?? 200;
    const ta: number[] = [];
    const tb: number[] = [];
    const ca: number[] = [];
    const cb: number[] = [];
    for (let i = 0; i < rounds; i++) {
      let c = cpuMs();
      let t = performance.now();
      await a.run(f);
      ta.push(performance.now() - t);
      ca.push(cpuMs() - c);
      c = cpuMs();
      t = performance.now();
      await b.run(f);
      tb.push(performance.now() - t);
      cb.push(cpuMs() - c);
    }
    const baselineMs = median(ta);
    const candidateMs = median(tb);
    return { baselineMs, candidateMs, ratio: candidateMs / baselineMs, cpuRatio: median(cb) / median(ca), rounds };
  } finally {
    await a.release();
    await b.release();
  }
}

export interface ModelLatencyRow extends LatencyRatio {
  /** e.g. 'cnn int8-static'. */
  readonly model: string;
  /** What the feed is, e.g. 'batch 32', 'batch 1 × 64 tokens'. */
  readonly input: string;
  /** The ratio the goal sets for this row, if any (≤). */
  readonly goal?: number | undefined;
  /**
   * A lower bound, not a model we write: the fp32 graph with its weight products made copies
   * (`projectionsAsCopies`) or a one-node graph (`oneNodeModel`), i.e. what no quantized form of
   * the same graph can run under.
   */
  readonly bound?: boolean | undefined;
}

interface Case {
  readonly model: string;
  readonly fp32: Uint8Array;
  readonly make: () => Promise<Uint8Array> | Uint8Array;
  readonly inputs: readonly { label: string; feeds: Map<string, Tensor>; rounds: number; goal?: number | undefined }[];
  readonly bound?: boolean | undefined;
}

const MODELS = new URL('../../models/', import.meta.url);

function edited(bytes: Uint8Array, edit: (m: Model) => void): Uint8Array {
  const m = modelFromProto(decodeModel(bytes));
  edit(m);
  return encodeModel(modelToProto(m));
}

/**
 * The model with every MatMul by a constant 2-D weight [K, N] replaced by a copy of its input cut
 * or repeated to N columns (Slice; Concat of copies first when N > K), and the Add of a constant
 * bias [N] that alone reads it dropped (the fused forms take the bias in: MatMulNBits,
 * DynamicQuantizeMatMul): the same graph and shapes, with weight products that cost a memory copy.
 * Its latency bounds from below what quantizing those products can reach, whatever the form; the
 * outputs are meaningless.
 */
export function projectionsAsCopies(bytes: Uint8Array): Uint8Array {
  return edited(bytes, (m) => {
    const g = m.graph;
    const ed = new GraphEditor(g);
    const i64 = (base: string, v: number) => ed.constant(base, 'int64', [1], BigInt64Array.of(BigInt(v)));
    const readers = consumers(g);
    const dropped = new Set<GraphNode>();
    const biasAdd = (y: string | undefined, N: number): GraphNode | undefined => {
      const r = readers.get(y ?? '') ?? [];
      const add = r[0];
      if (r.length !== 1 || !add || add.opType !== 'Add' || add.domain !== '') return undefined;
      if (g.outputs.some((o) => o.name === y)) return undefined;
      const bias = g.initializers.get(add.inputs.find((i) => i !== y) ?? '');
      return bias && bias.dims.length === 1 && bias.dims[0] === N ? add : undefined;
    };
    const nodes = [...g.nodes];
    g.nodes = [];
    for (const n of nodes) {
      if (dropped.has(n)) continue;
      const w = n.domain === '' && n.opType === 'MatMul' ? g.initializers.get(n.inputs[1] ?? '') : undefined;
      const x = n.inputs[0];
      if (!w || w.dims.length !== 2 || x === undefined) {
        g.nodes.push(n);
        continue;
      }
      const [K, N] = w.dims as [number, number];
      let wide = x;
      if (N > K) {
        wide = ed.name(`${n.name}_repeated`);
        ed.node('Concat', Array<string>(Math.ceil(N / K)).fill(x), [wide], { axis: -1 });
      }
      const add = biasAdd(n.outputs[0], N);
      if (add) {
        dropped.add(add);
        n.outputs = [...add.outputs];
      }
      n.opType = 'Slice';
      n.attributes = [];
      n.inputs = [wide, i64(`${n.name}_starts`, 0), i64(`${n.name}_ends`, N), i64(`${n.name}_axes`, -1)];
      g.nodes.push(n);
    }
    dropUnreadInitializers(m);
  });
}

/** A model of one Flatten node on `bytes`' first input: what any onnxruntime-node run costs at least. */
export function oneNodeModel(bytes: Uint8Array): Uint8Array {
  return edited(bytes, (m) => {
    const g = m.graph;
    const input = g.inputs[0];
    if (!input) throw new Error('oneNodeModel: the model has no input');
    const out = `${input.name}_flat`;
    g.nodes = [
      { name: 'flatten', opType: 'Flatten', domain: '', inputs: [input.name], outputs: [out], attributes: [] },
    ];
    g.inputs = [input];
    g.outputs = [{ name: out, dtype: input.dtype, dims: undefined }];
    g.initializers = new Map();
    g.valueInfo = new Map();
  });
}

/** The 4-layer d = 256 LM (scripts/models/make_models.py --lm-size big), when the caller has it. */
export interface BigLm {
  readonly model: Uint8Array;
  /** int64 [count, ≥ 64] token windows to feed (its calibration windows). */
  readonly windows: Tensor;
}

function lmFeeds(windows: Tensor) {
  const stride = windows.dims[1] as number;
  return (n: number, t: number) => {
    const ids = new BigInt64Array(n * t);
    for (let b = 0; b < n; b++)
      for (let k = 0; k < t; k++) ids[b * t + k] = (windows.data as BigInt64Array)[b * stride + k] as bigint;
    return new Map<string, Tensor>([['input_ids', { dtype: 'int64', dims: [n, t], data: ids }]]);
  };
}

function lmCases(name: string, lm: Uint8Array, windows: Tensor, big: boolean): Case[] {
  const batch = lmFeeds(windows);
  const inputs = (goal1: number | undefined, goalToken: number | undefined) => [
    { label: 'batch 1 × 64 tokens', feeds: batch(1, 64), rounds: big ? 100 : 300, goal: goal1 },
    { label: 'batch 1 × 1 token', feeds: batch(1, 1), rounds: 1000, goal: goalToken },
    { label: 'batch 32 × 64 tokens', feeds: batch(32, 64), rounds: big ? 10 : 30 },
  ];
  const weightOnly = (opts: WeightOnlyOptions) => () => quantizeModelBytes(lm, opts).bytes;
  const dynamic = (form: 'integer' | 'contrib') => () =>
    edited(lm, (m) => {
      quantizeDynamicModel(m, { form });
    });
  const cases: Case[] = [
    { model: `${name} q4`, fp32: lm, make: weightOnly({ scheme: 'q4' }), inputs: inputs(undefined, 0.6) },
    {
      model: `${name} q4, accuracy level 4`,
      fp32: lm,
      make: weightOnly({ scheme: 'q4', accuracyLevel: 4 }),
      inputs: inputs(undefined, 0.6),
    },
    { model: `${name} int8-dynamic`, fp32: lm, make: dynamic('integer'), inputs: inputs(0.6, undefined) },
  ];
  if (!big)
    cases.push({
      model: `${name} int8-dynamic, DynamicQuantizeMatMul`,
      fp32: lm,
      make: dynamic('contrib'),
      inputs: inputs(0.6, undefined),
    });
  cases.push({
    model: `${name}, weight products as copies`,
    fp32: lm,
    make: () => projectionsAsCopies(lm),
    inputs: inputs(undefined, undefined),
    bound: true,
  });
  return cases;
}

/**
 * The shipped models' quantized forms against fp32, at the batch sizes the goals name: the
 * int8-static CNN (default, and with `minConvReduction` keeping its 1-channel conv fp32) at batch
 * 1 and 32; the q4 LM (accuracy level 0 and 4) and the int8-dynamic LM (MatMulInteger form, and
 * DynamicQuantizeMatMul) at one sequence of 64 tokens, one token, and 32 sequences; the same for
 * `bigLm` when given. Bound rows beside them: a one-node model against the CNN, and each LM with
 * its weight products made copies. `quick` cuts the rounds by 4.
 */
export async function measureShippedModelLatency(
  o: LatencyOptions & { quick?: boolean | undefined; bigLm?: BigLm | undefined } = {},
): Promise<ModelLatencyRow[]> {
  const read = (f: string) => readFileSync(new URL(f, MODELS));
  const cnn = read('cnn.onnx');
  const images = readNpy(read('cnn-test-x.npy'));
  const cnnCalib = readNpy(read('cnn-calib-x.npy'));
  const cnnBatch = (n: number) =>
    new Map<string, Tensor>([
      ['input', { dtype: 'float32', dims: [n, 1, 8, 8], data: (images.data as Float32Array).slice(0, n * 64) }],
    ]);
  const staticCnn = (minConvReduction?: number) => async () => {
    const m = modelFromProto(decodeModel(cnn));
    await quantizeStatic(m, new Map([['input', cnnCalib]]), { method: parseCalibMethod('minmax'), minConvReduction });
    return encodeModel(modelToProto(m));
  };
  const cnnInputs = [
    { label: 'batch 1', feeds: cnnBatch(1), rounds: 1000, goal: 0.6 },
    { label: 'batch 32', feeds: cnnBatch(32), rounds: 300, goal: 0.6 },
  ];
  const cases: Case[] = [
    { model: 'cnn int8-static', fp32: cnn, make: staticCnn(), inputs: cnnInputs },
    {
      model: `cnn int8-static, minConvReduction ${FAST_MIN_CONV_REDUCTION}`,
      fp32: cnn,
      make: staticCnn(FAST_MIN_CONV_REDUCTION),
      inputs: cnnInputs,
    },
    { model: 'cnn, one node', fp32: cnn, make: () => oneNodeModel(cnn), inputs: cnnInputs, bound: true },
    ...lmCases('lm', read('lm.onnx'), readNpy(read('lm-calib.npy')), false),
    ...(o.bigLm ? lmCases('lm-big', o.bigLm.model, o.bigLm.windows, true) : []),
  ];
  const rows: ModelLatencyRow[] = [];
  for (const c of cases) {
    const candidate = await c.make();
    for (const input of c.inputs) {
      const rounds = Math.max(5, Math.round((o.rounds ?? input.rounds) / (o.quick ? 4 : 1)));
      const r = await ortLatencyRatio(c.fp32, candidate, input.feeds, { ...o, rounds });
      rows.push({ model: c.model, input: input.label, goal: c.bound ? undefined : input.goal, bound: c.bound, ...r });
    }
  }
  return rows;
}
