import { OptionError, QuantkitError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { OnnxRuntime, RuntimeSession, RuntimeTensor } from './runtime.js';

/**
 * Quality of a model measured by running it in ONNX Runtime (the runtime passed in:
 * onnxruntime-node through evaluate-node.ts, onnxruntime-web in a browser): a language model's
 * mean next-token cross-entropy and perplexity over eval windows, and a classifier's accuracy
 * (and mean |logit difference| against a reference model).
 */

export async function openSession(runtime: OnnxRuntime, model: Uint8Array): Promise<RuntimeSession> {
  try {
    return await runtime.createSession(model, { graphOptimizationLevel: 'all', intraOpNumThreads: 2 });
  } catch (e) {
    throw new OptionError(
      'QK_ORT_LOAD_FAILED',
      `ONNX Runtime cannot load the model: ${e instanceof Error ? e.message : String(e)}`,
      'the rewritten graph uses an op or type this ONNX Runtime lacks; try another scheme or `exclude` the op',
      ['exclude'],
    );
  }
}

function ortTensor(runtime: OnnxRuntime, t: Tensor): RuntimeTensor {
  if (t.data instanceof BigInt64Array) return runtime.tensor('int64', t.data, [...t.dims]);
  if (t.data instanceof Float32Array) return runtime.tensor('float32', t.data, [...t.dims]);
  throw new QuantkitError(
    'QK_EVAL_INPUT_TYPE',
    `eval input of type ${t.dtype} is not supported`,
    'give int64 token ids or float32 inputs',
  );
}

export interface PerplexityResult {
  /** Mean cross-entropy in nats per predicted token. */
  readonly crossEntropy: number;
  readonly perplexity: number;
  readonly tokens: number;
  /** Summed NLL of each window: what a paired comparison of two models on the same windows needs. */
  readonly windowNll: Float64Array;
}

/**
 * windows: int64 [count, T + 1]; the model reads ids [:, :T] and its logits [b, T, vocab] at
 * position t are scored against id t + 1. Summed in float64 with a stable log-sum-exp.
 */
export async function lmPerplexity(
  runtime: OnnxRuntime,
  model: Uint8Array | RuntimeSession,
  windows: Tensor,
  batch = 16,
): Promise<PerplexityResult> {
  const session = model instanceof Uint8Array ? await openSession(runtime, model) : model;
  const [count, len] = windows.dims as [number, number];
  const ids = windows.data as BigInt64Array;
  const T = len - 1;
  const inName = session.inputNames[0] as string;
  const outName = session.outputNames[0] as string;
  let nll = 0;
  let tokens = 0;
  const windowNll = new Float64Array(count);
  for (let start = 0; start < count; start += batch) {
    const b = Math.min(batch, count - start);
    const input = new BigInt64Array(b * T);
    for (let i = 0; i < b; i++) input.set(ids.subarray((start + i) * len, (start + i) * len + T), i * T);
    const out = await session.run({ [inName]: runtime.tensor('int64', input, [b, T]) });
    const logits = out[outName] as RuntimeTensor;
    const scored = windowsNll(logits.data as Float32Array, logits.dims[2] as number, ids, len, start, b);
    nll += scored.nll;
    tokens += scored.tokens;
    windowNll.set(scored.perWindow, start);
  }
  const crossEntropy = nll / tokens;
  return { crossEntropy, perplexity: Math.exp(crossEntropy), tokens, windowNll };
}

/** −log softmax(row)[target] of the row of `classes` logits at `offset`, with a stable log-sum-exp. */
export function rowNll(logits: Float32Array, offset: number, classes: number, target: number): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, logits[offset + c] as number);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp((logits[offset + c] as number) - max);
  return Math.log(sum) + max - (logits[offset + target] as number);
}

/**
 * Negative log-likelihood of windows start … start + b − 1 given their logits [b, T, vocab]
 * (position t scored against id t + 1), in float64 with a stable log-sum-exp.
 */
export function windowsNll(
  data: Float32Array,
  vocab: number,
  ids: BigInt64Array,
  len: number,
  start: number,
  b: number,
): { nll: number; tokens: number; perWindow: Float64Array } {
  const T = len - 1;
  let nll = 0;
  const perWindow = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    let window = 0;
    for (let t = 0; t < T; t++) {
      const loss = rowNll(data, (i * T + t) * vocab, vocab, Number(ids[(start + i) * len + t + 1]));
      nll += loss;
      window += loss;
    }
    perWindow[i] = window;
  }
  return { nll, tokens: b * T, perWindow };
}

export interface ClassifierResult {
  readonly accuracy: number;
  readonly logits: Float32Array;
  readonly classes: number;
  /** Mean |logit − reference logit| when a reference is given. */
  readonly meanAbsLogitDiff: number | undefined;
}

/** x: float32 [n, ...]; labels: int64 [n]. */
export async function classifierAccuracy(
  runtime: OnnxRuntime,
  model: Uint8Array | RuntimeSession,
  x: Tensor,
  labels: Tensor,
  reference?: Float32Array,
): Promise<ClassifierResult> {
  const session = model instanceof Uint8Array ? await openSession(runtime, model) : model;
  const out = await session.run({ [session.inputNames[0] as string]: ortTensor(runtime, x) });
  const t = out[session.outputNames[0] as string] as RuntimeTensor;
  const logits = t.data as Float32Array;
  const n = x.dims[0] as number;
  const classes = logits.length / n;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++)
      if ((logits[i * classes + c] as number) > (logits[i * classes + best] as number)) best = c;
    if (BigInt(best) === BigInt((labels.data as BigInt64Array)[i] as bigint)) correct++;
  }
  let diff: number | undefined;
  if (reference) {
    let s = 0;
    for (let i = 0; i < logits.length; i++) s += Math.abs((logits[i] as number) - (reference[i] as number));
    diff = s / logits.length;
  }
  return { accuracy: correct / n, logits, classes, meanAbsLogitDiff: diff };
}

export interface PerplexityDifference {
  /** perplexity(a) / perplexity(b) − 1. */
  readonly change: number;
  /** Standard error of ln(perplexity(a) / perplexity(b)), windows taken as independent samples. */
  readonly standardError: number;
}

/**
 * a against b, evaluated on the same windows: the difference of their per-window NLLs is what varies
 * from window to window, so the paired standard error is far smaller than either model's own.
 * Tokens inside one window are not independent, which is why the window is the sample.
 */
export function perplexityDifference(a: PerplexityResult, b: PerplexityResult): PerplexityDifference {
  const n = a.windowNll.length;
  if (n !== b.windowNll.length || a.tokens !== b.tokens || n === 0)
    throw new Error('perplexityDifference: the two results are not on the same windows');
  let mean = 0;
  for (let i = 0; i < n; i++) mean += ((a.windowNll[i] as number) - (b.windowNll[i] as number)) / n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += ((a.windowNll[i] as number) - (b.windowNll[i] as number) - mean) ** 2;
  const perToken = n / a.tokens;
  const standardError = n > 1 ? (Math.sqrt(squares / (n - 1)) / Math.sqrt(n)) * perToken : NaN;
  return { change: Math.exp(mean * perToken) - 1, standardError };
}
