import type { GraphNode } from '../../graph/model.js';
import { consumers } from '../../graph/topology.js';
import { isRead, rewireInputs } from './graph-edit.js';
import type { TensorStore } from './dq-storage.js';
import type { HandlerContext, LayerReport } from './types.js';

/*
 * Float initializers outside the weight slots (a learned positional table read by Slice, an
 * additive attention mask, a weight the site rules reject): a storage scheme (bf16, fp8, int8) can
 * store them too, since its Cast / DequantizeLinear hands every reader the same fp32 tensor shape.
 *
 * Threshold: tensors of STORE_MIN_ELEMENTS elements or more are converted. Smaller ones — biases,
 * LayerNorm scales and shifts, per-channel constants — stay fp32: together they are ~1 % of a
 * model's bytes (models/lm.onnx: 27 tensors, 15 KB of 1.2 MB), each would cost a node run at
 * every inference for a few hundred bytes saved, and they add straight into the residual stream
 * or a normalisation, where a per-tensor rounding error is not averaged away as in a matmul.
 *
 * Granularity: rank ≥ 2 per slice of axis 0 (a row of a positional table or of a mask is one
 * position: its own scale, as embedding rows get), rank 1 per tensor. int8 and fp8 cannot store
 * ±Inf/NaN (masks often hold −Inf), so such tensors are kept; so are tensors read directly by a
 * comparison, an arg-max or a Cast, which turn the values into decisions or integers, where a
 * rounding error is not a small error.
 */

export const STORE_MIN_ELEMENTS = 1024;

/** Readers for which a stored value must equal the original (they branch on it, or make integers of it). */
export const EXACT_READERS = new Set([
  'Equal',
  'Less',
  'Greater',
  'LessOrEqual',
  'GreaterOrEqual',
  'Cast',
  'ArgMax',
  'ArgMin',
  'TopK',
]);

export interface OtherTensorsResult {
  readonly layers: LayerReport[];
  readonly notes: string[];
}

function elements(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function allFinite(d: Float32Array): boolean {
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i] as number)) return false;
  return true;
}

/**
 * Converts every fp32 initializer in `candidates` (names not already handled as weights) that is
 * read by some node, with `store`; rows for the report, converted or kept, and a note on the
 * small ones kept by the threshold. `excluded` names a user flag that keeps a tensor.
 */
export function storeOtherTensors(
  ctx: HandlerContext,
  store: TensorStore,
  candidates: readonly string[],
  excluded: (name: string, readers: readonly GraphNode[]) => string | undefined,
): OtherTensorsResult {
  const g = ctx.graph;
  const readers = consumers(g);
  const layers: LayerReport[] = [];
  const small: string[] = [];
  let smallBytes = 0;
  const floatOnly = ctx.options.scheme === 'bf16';
  for (const name of candidates) {
    const init = g.initializers.get(name);
    if (!init || init.dtype !== 'float32') continue;
    const rs = readers.get(name) ?? [];
    if (rs.length === 0) continue;
    const count = elements(init.dims);
    const bytes = 4 * count;
    if (count < STORE_MIN_ELEMENTS) {
      small.push(name);
      smallBytes += bytes;
      continue;
    }
    const base = {
      nodes: rs.map((n) => n.name),
      opTypes: rs.map((n) => n.opType),
      weight: name,
      dims: [...init.dims],
      bytesBefore: bytes,
    };
    const keep = (why: string) =>
      layers.push({ ...base, scheme: 'fp32', form: '', sqnrDb: null, bytesAfter: bytes, note: why });
    const user = excluded(name, rs);
    if (user) {
      keep(user);
      continue;
    }
    const exact = rs.find((n) => EXACT_READERS.has(n.opType));
    if (exact) {
      keep(`read by ${exact.opType} ${exact.name}, which needs the exact values`);
      continue;
    }
    const data = init.load().data as Float32Array;
    if (!floatOnly && !allFinite(data)) {
      keep(`holds ±Inf/NaN, which ${ctx.options.scheme} cannot store`);
      continue;
    }
    const axis = init.dims.length >= 2 ? 0 : undefined;
    const r = store(name, data, init.dims, axis, ctx);
    rewireInputs(rs, name, r.out);
    if (!isRead(g, name) && !ctx.prologue.some((n) => n.inputs.includes(name))) g.initializers.delete(name);
    layers.push({
      ...base,
      scheme: r.scheme,
      form: r.form,
      sqnrDb: r.sqnrDb,
      bytesAfter: r.addedBytes,
      note: `not a weight input (read by ${[...new Set(rs.map((n) => n.opType))].join(', ')})`,
    });
  }
  const notes: string[] = [];
  if (small.length > 0) {
    const shown = small.slice(0, 6).join(', ') + (small.length > 6 ? `, … ${small.length - 6} more` : '');
    notes.push(
      `kept fp32: ${small.length} float tensor${small.length === 1 ? '' : 's'} under ${STORE_MIN_ELEMENTS} elements (biases, norm scales; ${smallBytes} bytes): ${shown}`,
    );
  }
  return { layers, notes };
}
