import { mulberry32 } from '../quant/prng.js';
import { QuantkitError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { decodeModel } from '../io/onnx/proto.js';
import { makeTensor, type Tensor } from '../tensor/tensor.js';
import { createSession, feedBatches, type CalibrationData } from '../flows/calibrate.js';
import { compareModels, type OutputComparison } from '../flows/compare.js';
import type { OnnxRuntime } from '../flows/runtime.js';

/*
 * The page's comparison of a model with its quantized version: both run in the runtime given
 * (onnxruntime-web there) on the calibration inputs or on random inputs of the declared shapes;
 * the metrics are flows/compare.ts's, plus each model's median latency on one sample.
 */

/** Sizes for dims the model leaves open: the batch axis, and every other one. */
const OPEN_BATCH = 8;
const OPEN_DIM = 16;

/** For integer inputs (token ids): the row count of the table a Gather reads with them, else 2. */
function idBound(model: Model, input: string): number {
  for (const n of model.graph.nodes) {
    if (n.opType !== 'Gather' || n.inputs[1] !== input) continue;
    const rows = model.graph.initializers.get(n.inputs[0] ?? '')?.dims[0];
    if (rows !== undefined && rows > 0) return rows;
  }
  return 2;
}

/**
 * Inputs of the declared shapes (open axes: `samples` on the first, 16 elsewhere): uniform in
 * [-1, 1) for floats, valid row ids for integer inputs that index a table.
 */
export function randomInputs(model: Model, samples = OPEN_BATCH, seed = 1): CalibrationData {
  const next = mulberry32(seed);
  const data: CalibrationData = new Map();
  for (const v of model.graph.inputs) {
    if (v.dims === undefined)
      throw new QuantkitError(
        'QK_INPUT_RANK',
        `input '${v.name}' has no declared shape, so no random input can be made for it`,
        'give calibration inputs (.npy) instead',
      );
    const dims = v.dims.map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? samples : OPEN_DIM));
    let t: Tensor;
    if (v.dtype === 'int64' || v.dtype === 'int32') {
      const bound = idBound(model, v.name);
      t = makeTensor(v.dtype, dims);
      const d = t.data as BigInt64Array | Int32Array;
      for (let i = 0; i < d.length; i++) {
        const k = Math.floor(next() * bound);
        if (d instanceof BigInt64Array) d[i] = BigInt(k);
        else d[i] = k;
      }
    } else if (v.dtype === 'float32' || v.dtype === undefined) {
      t = makeTensor('float32', dims);
      const d = t.data as Float32Array;
      for (let i = 0; i < d.length; i++) d[i] = next() * 2 - 1;
    } else {
      throw new QuantkitError(
        'QK_INPUT_DTYPE',
        `input '${v.name}' is ${v.dtype}; random inputs are made for float32, int64 and int32 only`,
        'give calibration inputs (.npy) instead',
      );
    }
    data.set(v.name, t);
  }
  return data;
}

export interface ModelComparison {
  readonly samples: number;
  readonly inputs: 'given' | 'random';
  readonly outputs: OutputComparison[];
  /** Median wall time of a run on one sample (ms), after one warm-up run. */
  readonly latencyMs: { readonly original: number; readonly quantized: number };
}

export interface CompareBytesOptions {
  /** The inputs to run; random ones of the declared shapes when absent. */
  readonly inputs?: CalibrationData | undefined;
  readonly batchSize?: number | undefined;
  readonly timedRuns?: number | undefined;
}

/** Latency as a user of the model sees it: one sample (the first) per run. */
async function medianRunMs(runtime: OnnxRuntime, bytes: Uint8Array, data: CalibrationData, runs: number) {
  const session = await createSession(runtime, bytes);
  try {
    const first = feedBatches(runtime, data, 1).next();
    if (first.done) return NaN;
    const feeds = first.value.feeds;
    await session.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const out = await session.run(feeds);
      times.push(performance.now() - t0);
      for (const t of Object.values(out)) t.dispose();
    }
    times.sort((x, y) => x - y);
    return times[Math.floor(times.length / 2)] as number;
  } finally {
    await session.release();
  }
}

/** Original vs quantized: SQNR, cosine, top-1 agreement per output, and each model's latency. */
export async function compareModelBytes(
  runtime: OnnxRuntime,
  original: Uint8Array,
  quantized: Uint8Array,
  o: CompareBytesOptions = {},
): Promise<ModelComparison> {
  const inputs = o.inputs ?? randomInputs(modelFromProto(decodeModel(original, 'original'), { label: 'original' }));
  const batch = o.batchSize ?? 32;
  const report = await compareModels(original, quantized, { inputs, batchSize: batch }, runtime);
  const runs = o.timedRuns ?? 5;
  return {
    samples: report.samples,
    inputs: o.inputs ? 'given' : 'random',
    outputs: report.outputs,
    latencyMs: {
      original: await medianRunMs(runtime, original, inputs, runs),
      quantized: await medianRunMs(runtime, quantized, inputs, runs),
    },
  };
}
