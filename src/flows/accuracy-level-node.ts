import * as ort from 'onnxruntime-node';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { readOnnxFileInlined } from '../node/model-file.js';
import type { Tensor } from '../tensor/tensor.js';

/*
 * What MatMulNBits' accuracy_level costs on the model just written: its outputs in ONNX Runtime
 * against the same model with the attribute removed (level 0, fp32 compute), on the inputs the
 * after-write check used (the first calibration sample, else zeros of the declared shapes).
 */

export interface AccuracyLevelCost {
  /** max |y_level − y_0| / max |y_0| over every float output. */
  readonly relativeError: number;
  readonly input: 'sample' | 'zeros';
}

function zeros(meta: ort.InferenceSession.ValueMetadata): ort.Tensor | undefined {
  if (!meta.isTensor) return undefined;
  const dims = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
  const n = dims.reduce((a, b) => a * b, 1);
  if (meta.type === 'float32') return new ort.Tensor('float32', new Float32Array(n), dims);
  if (meta.type === 'int64') return new ort.Tensor('int64', new BigInt64Array(n), dims);
  if (meta.type === 'int32') return new ort.Tensor('int32', new Int32Array(n), dims);
  return undefined;
}

/** undefined when the model has no MatMulNBits with accuracy_level > 0, or an input it cannot feed. */
export async function accuracyLevelCost(
  modelPath: string,
  samples?: ReadonlyMap<string, Tensor>,
): Promise<AccuracyLevelCost | undefined> {
  const written = readOnnxFileInlined(modelPath);
  const proto = decodeModel(written, modelPath);
  let changed = false;
  for (const n of proto.graph?.node ?? []) {
    if (n.opType !== 'MatMulNBits') continue;
    const kept = n.attribute.filter((a) => a.name !== 'accuracy_level' || a.i === 0n);
    changed ||= kept.length !== n.attribute.length;
    n.attribute = kept;
  }
  if (!changed) return undefined;
  const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };
  const level = await ort.InferenceSession.create(written, options);
  const level0 = await ort.InferenceSession.create(encodeModel(proto), options);
  try {
    const feeds: Record<string, ort.Tensor> = {};
    let fromSample = false;
    for (const meta of level.inputMetadata) {
      const sample = samples?.get(meta.name);
      const feed = sample
        ? new ort.Tensor(sample.dtype as 'float32', sample.data as Float32Array, [...sample.dims])
        : zeros(meta);
      if (!feed) return undefined;
      fromSample ||= sample !== undefined;
      feeds[meta.name] = feed;
    }
    const a = await level.run(feeds);
    const b = await level0.run(feeds);
    let worst = 0;
    let scale = 0;
    for (const name of level.outputNames) {
      const x = a[name];
      const y = b[name];
      if (!x || !y || x.type !== 'float32') continue;
      const xs = x.data as Float32Array;
      const ys = y.data as Float32Array;
      for (let i = 0; i < ys.length; i++) {
        scale = Math.max(scale, Math.abs(ys[i] as number));
        worst = Math.max(worst, Math.abs((xs[i] as number) - (ys[i] as number)));
      }
    }
    return { relativeError: scale === 0 ? worst : worst / scale, input: fromSample ? 'sample' : 'zeros' };
  } finally {
    await level.release();
    await level0.release();
  }
}
