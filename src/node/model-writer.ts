import { basename, dirname, join, resolve } from 'node:path';
import type { OnnxWritePlan } from '../io/onnx/write.js';
import { checkOutput, publish, removeTemp, syncFolder, writeTemp } from './files.js';

/*
 * Writes an ONNX model (and its external data file) planned by io/onnx/write.ts. Both files go to
 * temp files in the target folder first, are fsynced, and only then renamed into place, data file
 * first: a failure at any point before the renames leaves whatever was there untouched, and the
 * new .onnx never appears before the data it points at. Existing outputs are replaced only with
 * `force`; an output that is one of the inputs (same path, or the same file through a link) is
 * refused even with `force`, so inputs are never modified.
 */

export type DataFileNaming = 'onnx.data' | 'onnx_data';

/**
 * The data file name for a model file: 'model.onnx' → 'model.onnx.data' (onnx's default) or
 * 'model.onnx_data' (what transformers.js and Optimum look for).
 */
export function dataFileName(modelPath: string, naming: DataFileNaming = 'onnx.data'): string {
  const base = basename(modelPath);
  if (naming === 'onnx.data') return `${base}.data`;
  return base.endsWith('.onnx') ? `${base}_data` : `${base}.onnx_data`;
}

export interface ModelWriteOptions {
  readonly force: boolean;
  /** Every file the job reads (model and its data files); none may be overwritten. */
  readonly inputs: readonly string[];
}

export interface WrittenModel {
  readonly modelPath: string;
  readonly dataPath: string | undefined;
  readonly dataBytes: number;
}

/**
 * Writes `plan` to `modelPath` (+ its data file, named by plan.dataLocation, in the same folder).
 */
export async function writeOnnxModel(
  modelPath: string,
  plan: OnnxWritePlan,
  opts: ModelWriteOptions,
): Promise<WrittenModel> {
  const target = resolve(modelPath);
  const dataTarget = plan.external && plan.dataLocation ? join(dirname(target), plan.dataLocation) : undefined;
  checkOutput(target, opts);
  if (dataTarget) checkOutput(dataTarget, opts);
  const temps: string[] = [];
  try {
    const dataTmp = dataTarget ? await writeTemp(dataTarget, plan.dataChunks()) : undefined;
    if (dataTmp) temps.push(dataTmp);
    const modelTmp = await writeTemp(target, plan.modelChunks());
    temps.push(modelTmp);
    if (dataTmp && dataTarget) {
      await publish(dataTmp, dataTarget, opts.force);
      temps.shift();
    }
    await publish(modelTmp, target, opts.force);
    temps.pop();
  } finally {
    for (const t of temps) await removeTemp(t);
  }
  await syncFolder(dirname(target));
  return { modelPath: target, dataPath: dataTarget, dataBytes: plan.dataSize };
}
