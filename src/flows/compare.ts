import { OptionError, QuantkitError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { decodeModel } from '../io/onnx/proto.js';
import { DQ_SUFFIX } from '../passes/activation/qdq.js';
import type { Tensor } from '../tensor/tensor.js';
import { augmentedModelBytes, checkInputNames, createSession, feedBatches, type CalibrationData } from './calibrate.js';
import type { OnnxRuntime, RuntimeSession, RuntimeTensor } from './runtime.js';
import { checkInputArrays } from './input-check.js';

/**
 * `quantkit compare a.onnx b.onnx`: both models run in ONNX Runtime over the same inputs, batch
 * by batch; every metric is accumulated on the fly (float64 sums), so no output is held whole.
 *   per output: SQNR (dB) of b against a, cosine similarity, max |error|, mean |diff|, top-1
 *   agreement over the last axis, and each model's accuracy when labels are given
 *   --per-layer: for a static QDQ model b, the SQNR of every quantized activation (the output of
 *   its DequantizeLinear, named <tensor>_DequantizeLinear_Output as ONNX Runtime's quantizer also
 *   names it) against the same tensor in a: which layer broke.
 */

export interface CompareOptions {
  readonly inputs: CalibrationData;
  /** Class ids, one per row of the outputs' last axis (e.g. [n] for [n, classes] logits). */
  readonly labels?: Tensor | undefined;
  readonly perLayer?: boolean | undefined;
  readonly batchSize?: number | undefined;
}

export interface OutputComparison {
  name: string;
  sqnrDb: number;
  cosine: number;
  maxAbsError: number;
  meanAbsDiff: number;
  /** Fraction of rows (last axis) whose argmax agrees; null for outputs without a class axis. */
  top1Agreement: number | null;
  accuracyA: number | null;
  accuracyB: number | null;
}

export interface LayerComparison {
  tensor: string;
  quantized: string;
  sqnrDb: number;
  cosine: number;
}

export interface CompareReport {
  samples: number;
  outputs: OutputComparison[];
  layers: LayerComparison[] | null;
}

/** Streaming error statistics of b against a reference a. */
class DiffStats {
  sig = 0;
  noise = 0;
  dot = 0;
  aa = 0;
  bb = 0;
  max = 0;
  absSum = 0;
  count = 0;
  rows = 0;
  agree = 0;
  correctA = 0;
  correctB = 0;
  labelled = 0;

  add(a: Float32Array, b: Float32Array, classes: number, labels: BigInt64Array | undefined, labelOffset: number): void {
    for (let i = 0; i < a.length; i++) {
      const x = a[i] as number;
      const y = b[i] as number;
      const d = x - y;
      this.sig += x * x;
      this.noise += d * d;
      this.dot += x * y;
      this.aa += x * x;
      this.bb += y * y;
      const ad = Math.abs(d);
      if (ad > this.max || ad !== ad) this.max = ad;
      this.absSum += ad;
    }
    this.count += a.length;
    if (classes < 2) return;
    const rows = a.length / classes;
    for (let r = 0; r < rows; r++) {
      const ia = argmax(a, r * classes, classes);
      const ib = argmax(b, r * classes, classes);
      if (ia === ib) this.agree++;
      if (labels) {
        const l = Number(labels[labelOffset + r]);
        if (ia === l) this.correctA++;
        if (ib === l) this.correctB++;
        this.labelled++;
      }
    }
    this.rows += rows;
  }
}

function argmax(d: Float32Array, off: number, n: number): number {
  let best = 0;
  for (let c = 1; c < n; c++) if ((d[off + c] as number) > (d[off + best] as number)) best = c;
  return best;
}

function sqnr(s: DiffStats): number {
  return s.noise === 0 ? Infinity : 10 * Math.log10(s.sig / s.noise);
}

function cosine(s: DiffStats): number {
  if (s.aa === 0 && s.bb === 0) return 1;
  if (s.aa === 0 || s.bb === 0) return 0;
  return s.dot / Math.sqrt(s.aa * s.bb);
}

/** Pairs (tensor in a, its DequantizeLinear output in b) for --per-layer. */
export function quantizedTwins(a: Model, b: Model): { tensor: string; quantized: string }[] {
  const inA = new Set<string>(a.graph.inputs.map((v) => v.name));
  for (const n of a.graph.nodes) for (const o of n.outputs) if (o) inA.add(o);
  const pairs: { tensor: string; quantized: string }[] = [];
  for (const n of b.graph.nodes) {
    if (n.opType !== 'DequantizeLinear') continue;
    const out = n.outputs[0] ?? '';
    if (!out.endsWith(DQ_SUFFIX)) continue;
    const tensor = out.slice(0, -DQ_SUFFIX.length);
    if (inA.has(tensor) && !b.graph.initializers.has(n.inputs[0] ?? '')) pairs.push({ tensor, quantized: out });
  }
  return pairs;
}

function floatOut(
  out: Record<string, RuntimeTensor>,
  name: string,
  which: string,
): { data: Float32Array; dims: readonly number[] } {
  const t = out[name];
  if (!t || !(t.data instanceof Float32Array)) {
    throw new QuantkitError(
      'QK_COMPARE_OUTPUT',
      `output '${name}' of model ${which} is missing or not float32`,
      'compare models whose outputs are float tensors',
    );
  }
  return { data: t.data, dims: t.dims };
}

/** ONNX Runtime's failure on the user's arrays, as a user error naming what the model takes. */
async function runOrExplain(
  session: RuntimeSession,
  feeds: Record<string, RuntimeTensor>,
  outputs: string[],
  which: string,
  model: Model,
): Promise<Record<string, RuntimeTensor>> {
  try {
    return await session.run(feeds, outputs);
  } catch (e) {
    const given = Object.entries(feeds)
      .map(([n, t]) => `${n} ${t.type}[${t.dims.join(', ')}]`)
      .join(', ');
    const wants = model.graph.inputs
      .map((v) => `${v.name} ${v.dtype ?? '?'}[${(v.dims ?? []).map((d) => d ?? '?').join(', ')}]`)
      .join(', ');
    const first = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
    throw new OptionError(
      'QK_ORT_RUN_FAILED',
      `ONNX Runtime cannot run model ${which} on the \`inputs\` arrays (${given}): ${first}`,
      `the model takes ${wants}`,
      ['inputs'],
    );
  }
}

/** Labels: one class id in [0, classes) per row of the output's last axis. */
function checkLabels(labels: BigInt64Array, output: string, classes: number, rows: number): void {
  if (labels.length !== rows) {
    throw new QuantkitError(
      'QK_COMPARE_LABELS',
      `${labels.length} labels for ${rows} rows of output '${output}' (its last axis, ${classes} classes, is the class axis)`,
      `give ${rows} labels, one per row`,
    );
  }
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i] as bigint;
    if (l < 0n || l >= BigInt(classes))
      throw new QuantkitError(
        'QK_COMPARE_LABELS',
        `label ${l} at index ${i} is not a class of output '${output}' (0…${classes - 1})`,
        "give class ids of the model's outputs",
      );
  }
}

export async function compareModels(
  aBytes: Uint8Array,
  bBytes: Uint8Array,
  opts: CompareOptions,
  /** onnxruntime-node (node/ort-runtime.ts) or onnxruntime-web (web/runtime.ts). */
  runtime: OnnxRuntime,
): Promise<CompareReport> {
  const a = modelFromProto(decodeModel(aBytes, 'model a'), { label: 'model a' });
  const b = modelFromProto(decodeModel(bBytes, 'model b'), { label: 'model b' });
  const outputs = a.graph.outputs.map((v) => v.name);
  const bOutputs = new Set(b.graph.outputs.map((v) => v.name));
  const missing = outputs.filter((o) => !bOutputs.has(o));
  if (missing.length > 0) {
    throw new QuantkitError(
      'QK_COMPARE_OUTPUTS_DIFFER',
      `model b has no output${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')}`,
      'compare a model with its own quantized version (same output names)',
    );
  }
  checkInputArrays(a, opts.inputs, { option: 'inputs', batchSize: opts.batchSize ?? 32, batchOption: 'batchSize' });
  const labels =
    opts.labels?.data instanceof BigInt64Array
      ? opts.labels.data
      : opts.labels?.data instanceof Int32Array
        ? BigInt64Array.from(opts.labels.data, (v) => BigInt(v))
        : undefined;
  if (opts.labels && !labels)
    throw new QuantkitError(
      'QK_COMPARE_LABELS',
      `labels of type ${opts.labels.dtype} are not class ids`,
      'give int64 or int32 labels (.npy)',
    );
  const twins = opts.perLayer ? quantizedTwins(a, b) : [];
  const loadHint = (which: string) =>
    `model ${which} must be one ONNX Runtime loads as it is; compare runs the two files unchanged`;
  const open = (model: typeof a, bytes: Uint8Array, which: string, extra: string[]) =>
    createSession(runtime, extra.length ? augmentedModelBytes(model, extra) : bytes, loadHint(which));
  const sessionA = await open(
    a,
    aBytes,
    'a',
    twins.map((t) => t.tensor),
  );
  const sessionB = await open(
    b,
    bBytes,
    'b',
    twins.map((t) => t.quantized),
  );

  const stats = new Map(outputs.map((o) => [o, new DiffStats()]));
  const layerStats = new Map(twins.map((t) => [t.tensor, new DiffStats()]));
  // Both models run batch by batch in lockstep: only one batch of outputs is alive at a time.
  checkInputNames(sessionA, opts.inputs);
  checkInputNames(sessionB, opts.inputs);
  const labelRows = new Map<string, number>(outputs.map((o) => [o, 0]));
  try {
    for (const { feeds, done, total } of feedBatches(runtime, opts.inputs, opts.batchSize ?? 32)) {
      const outA = await runOrExplain(sessionA, feeds, [...outputs, ...twins.map((t) => t.tensor)], 'a', a);
      const outB = await runOrExplain(sessionB, feeds, [...outputs, ...twins.map((t) => t.quantized)], 'b', a);
      for (const o of outputs) {
        const ta = floatOut(outA, o, 'a');
        const tb = floatOut(outB, o, 'b');
        if (ta.data.length !== tb.data.length)
          throw new QuantkitError(
            'QK_COMPARE_SHAPES',
            `output '${o}' has ${ta.data.length} values in a and ${tb.data.length} in b`,
            'compare a model with its own quantized version',
          );
        const classes = ta.dims.length >= 2 ? (ta.dims[ta.dims.length - 1] as number) : 1;
        const row = labelRows.get(o) ?? 0;
        if (labels && row === 0 && classes >= 2)
          checkLabels(labels, o, classes, (ta.data.length / classes) * (total / done));
        (stats.get(o) as DiffStats).add(ta.data as Float32Array, tb.data as Float32Array, classes, labels, row);
        labelRows.set(o, row + (classes >= 2 ? ta.data.length / classes : 0));
      }
      for (const t of twins)
        (layerStats.get(t.tensor) as DiffStats).add(
          floatOut(outA, t.tensor, 'a').data as Float32Array,
          floatOut(outB, t.quantized, 'b').data as Float32Array,
          1,
          undefined,
          0,
        );
      for (const v of [...Object.values(outA), ...Object.values(outB)]) v.dispose();
    }
  } finally {
    await sessionA.release();
    await sessionB.release();
  }

  let samples = 0;
  for (const t of opts.inputs.values()) samples = t.dims[0] ?? 0;
  return {
    samples,
    outputs: outputs.map((name) => {
      const s = stats.get(name) as DiffStats;
      if (labels && s.rows > 0 && labels.length !== s.rows) {
        throw new QuantkitError(
          'QK_COMPARE_LABELS',
          `${labels.length} labels for ${s.rows} rows of output '${name}'`,
          'give one label per sample (per row of the last axis)',
        );
      }
      return {
        name,
        sqnrDb: sqnr(s),
        cosine: cosine(s),
        maxAbsError: s.max,
        meanAbsDiff: s.count ? s.absSum / s.count : 0,
        top1Agreement: s.rows ? s.agree / s.rows : null,
        accuracyA: labels && s.rows ? s.correctA / s.rows : null,
        accuracyB: labels && s.rows ? s.correctB / s.rows : null,
      };
    }),
    layers: opts.perLayer
      ? twins.map((t) => ({
          ...t,
          sqnrDb: sqnr(layerStats.get(t.tensor) as DiffStats),
          cosine: cosine(layerStats.get(t.tensor) as DiffStats),
        }))
      : null,
  };
}
