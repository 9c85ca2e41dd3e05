import type { ValueInfo } from '../graph/model.js';
import { verifyWrittenModel, type Verification } from '../node/verify-model.js';
import type { Tensor } from '../tensor/tensor.js';

/*
 * The flows' side of the after-write check (node/verify-model.ts): which inputs to run the written
 * model on, and the switch that turns it off. Calibration data, when the job had some, gives the
 * real inputs: the first samples, as many as a fixed batch dimension asks for, else one.
 */

export interface VerifyOption {
  /** Load and run the written model in ONNX Runtime before reporting success (default true). */
  readonly verify?: boolean | undefined;
}

export const VERIFY_SKIPPED: Verification = { status: 'skipped', reason: 'skipped (`verify: false`)' };

/** The leading `count` samples of a tensor whose first axis is the sample axis (a view). */
function leadingSamples(t: Tensor, count: number): Tensor {
  const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
  const data = t.data;
  const head = Array.isArray(data)
    ? data.slice(0, count * per)
    : (data as Exclude<Tensor['data'], string[]>).subarray(0, count * per);
  return { dtype: t.dtype, dims: [count, ...t.dims.slice(1)], data: head } as Tensor;
}

/**
 * The first samples of each calibration input, by name. An input whose fixed batch dimension asks
 * for more samples than there are is left out (it gets synthetic zeros).
 */
export function firstSamples(
  data: ReadonlyMap<string, Tensor> | undefined,
  inputs: readonly ValueInfo[],
): Map<string, Tensor> {
  const samples = new Map<string, Tensor>();
  for (const [name, t] of data ?? []) {
    const batch = inputs.find((v) => v.name === name)?.dims?.[0];
    const count = typeof batch === 'number' && batch > 0 ? batch : 1;
    if ((t.dims[0] ?? 0) >= count) samples.set(name, leadingSamples(t, count));
  }
  return samples;
}

export interface WrittenFiles {
  readonly modelPath: string;
  readonly dataPath?: string | undefined;
}

/** Runs the check unless turned off; rejects (ModelVerificationError) after deleting a model ORT refuses. */
export async function verifyOutput(
  written: WrittenFiles,
  step: string,
  o: VerifyOption & { samples?: ReadonlyMap<string, Tensor> | undefined },
): Promise<Verification> {
  if (o.verify === false) return VERIFY_SKIPPED;
  return verifyWrittenModel({ modelPath: written.modelPath, dataPath: written.dataPath, step, samples: o.samples });
}
