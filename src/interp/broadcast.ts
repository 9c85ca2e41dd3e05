import { elementCount } from '../tensor/tensor.js';
import type { OpContext } from './op.js';
import { badShape } from './op.js';

/** NumPy/ONNX multidirectional broadcasting: align from the right; each pair equal or one is 1. */
export function broadcastDims(shapes: readonly (readonly number[])[], ctx: OpContext): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i] as number;
      const cur = out[o] as number;
      if (d === cur || d === 1) continue;
      if (cur === 1) out[o] = d;
      else throw badShape(ctx, `shapes ${shapes.map((x) => `[${x.join(', ')}]`).join(' and ')} do not broadcast`);
    }
  }
  return out;
}

/**
 * For every element of `outDims` (row-major), the flat index of the element of a tensor of
 * `inDims` that broadcasting maps to it. One Int32Array per operand keeps the element loops plain.
 */
export function broadcastIndex(inDims: readonly number[], outDims: readonly number[]): Int32Array {
  const rank = outDims.length;
  const offset = rank - inDims.length;
  // Input strides aligned to the output rank; 0 on broadcast (size-1 or missing) axes.
  const strides = new Int32Array(rank);
  let s = 1;
  for (let i = inDims.length - 1; i >= 0; i--) {
    const d = inDims[i] as number;
    strides[i + offset] = d === 1 ? 0 : s;
    s *= d;
  }
  const count = elementCount(outDims);
  const map = new Int32Array(count);
  const idx = new Int32Array(rank);
  let flat = 0;
  for (let n = 0; n < count; n++) {
    map[n] = flat;
    // Odometer step over the output index, keeping the input offset in step.
    for (let ax = rank - 1; ax >= 0; ax--) {
      const i = (idx[ax] as number) + 1;
      if (i < (outDims[ax] as number)) {
        idx[ax] = i;
        flat += strides[ax] as number;
        break;
      }
      idx[ax] = 0;
      flat -= (i - 1) * (strides[ax] as number);
    }
  }
  return map;
}

/** Row-major strides of `dims`. */
export function stridesOf(dims: readonly number[]): number[] {
  const out = new Array<number>(dims.length);
  let s = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= dims[i] as number;
  }
  return out;
}

/** Normalizes a possibly negative axis against `rank` (ONNX: accepted range [-rank, rank-1]). */
export function normalizeAxis(axis: number, rank: number, ctx: OpContext, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw badShape(ctx, `${what} ${axis} is out of range for rank ${rank}`);
  return a;
}
