import type { Model } from '../../graph/model.js';
import { UPGRADABLE, upgradeOpset } from '../upgrade-opset.js';

/**
 * Raising the default-domain opset changes the meaning of every node that had an incompatible
 * revision in between (an attribute turned into an input, a changed default). These are the
 * opset versions at which ops the weight-only schemes may meet changed incompatibly (ONNX
 * Operators.md change log); type-only extensions are left out since they break nothing.
 */
const BREAKING: Record<string, readonly number[]> = {
  Squeeze: [13],
  Unsqueeze: [13],
  Split: [13],
  ReduceSum: [13],
  Softmax: [13],
  LogSoftmax: [13],
  Hardmax: [13],
  ReduceMean: [18],
  ReduceMax: [18],
  ReduceMin: [18],
  ReduceProd: [18],
  ReduceL1: [18],
  ReduceL2: [18],
  ReduceLogSum: [18],
  ReduceLogSumExp: [18],
  ReduceSumSquare: [18],
  Clip: [11],
  Pad: [11],
  Resize: [11],
  Upsample: [9, 10],
  Slice: [10],
  TopK: [10],
  Dropout: [12],
  BatchNormalization: [9],
  Scatter: [11],
  GroupNormalization: [21],
};

/**
 * Node types whose meaning would change if the default opset were raised from its current value
 * to `target`; empty means raising is safe. Ops missing from the table had only compatible
 * revisions (new types, new attributes whose defaults keep the old behaviour).
 */
export function opsetRaiseBlockers(model: Model, target: number): string[] {
  const from = model.opsets.get('') ?? 1;
  if (from >= target) return [];
  const blockers = new Set<string>();
  for (const n of model.graph.nodes) {
    if (n.domain !== '') continue;
    const versions = BREAKING[n.opType];
    if (versions?.some((v) => v > from && v <= target)) blockers.add(n.opType);
  }
  return [...blockers].sort();
}

/**
 * Raises the default opset to at least `target` when that is safe or the changed ops can be
 * rewritten (passes/upgrade-opset.ts); returns what was done.
 */
export function ensureOpset(
  model: Model,
  target: number,
): { ok: true; raisedFrom?: number } | { ok: false; blockers: string[] } {
  const from = model.opsets.get('') ?? 1;
  if (from >= target) return { ok: true };
  const blockers = opsetRaiseBlockers(model, target);
  // Blockers with a mechanical rewrite (an attribute turned input, ...) are rewritten; the rest refuse.
  const stuck = blockers.filter((b) => !UPGRADABLE.has(b));
  if (stuck.length > 0) return { ok: false, blockers: stuck };
  if (blockers.length > 0) upgradeOpset(model, target);
  model.opsets.set('', target);
  // Opset 21 needs IR 10 (int4, blocked quantization); opset 19 IR 9 (float8).
  const ir = target >= 21 ? 10 : target >= 19 ? 9 : target >= 15 ? 8 : 7;
  if (model.irVersion < ir) model.irVersion = ir;
  return { ok: true, raisedFrom: from };
}
