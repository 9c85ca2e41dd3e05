import type { Tensor } from '../tensor/tensor.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import * as evaluate from './evaluate.js';
import type { ClassifierResult, PerplexityResult } from './evaluate.js';
import type { RuntimeSession } from './runtime.js';

/* evaluate.ts on onnxruntime-node, with the runtime bound: the Node side's (and the tests') API. */

export {
  perplexityDifference,
  windowsNll,
  type ClassifierResult,
  type PerplexityDifference,
  type PerplexityResult,
} from './evaluate.js';

export function openSession(model: Uint8Array): Promise<RuntimeSession> {
  return evaluate.openSession(nodeRuntime, model);
}

export function lmPerplexity(
  model: Uint8Array | RuntimeSession,
  windows: Tensor,
  batch?: number,
): Promise<PerplexityResult> {
  return evaluate.lmPerplexity(nodeRuntime, model, windows, batch);
}

export function classifierAccuracy(
  model: Uint8Array | RuntimeSession,
  x: Tensor,
  labels: Tensor,
  reference?: Float32Array,
): Promise<ClassifierResult> {
  return evaluate.classifierAccuracy(nodeRuntime, model, x, labels, reference);
}
