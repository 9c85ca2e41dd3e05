import type { Model } from '../graph/model.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import * as calibrate from './calibrate.js';
import type { CalibrationData, StaticQuantOptions, StaticQuantResult } from './calibrate.js';

/* calibrate.ts on onnxruntime-node, with the runtime bound: the Node side's (and the tests') API. */

export { augmentedModelBytes, type CalibrationData } from './calibrate.js';

export function quantizeStatic(
  model: Model,
  data: CalibrationData,
  opts: StaticQuantOptions,
): Promise<StaticQuantResult> {
  return calibrate.quantizeStatic(nodeRuntime, model, data, opts);
}
