import type { Tensor } from '../tensor/tensor.js';
import { elementCount } from '../tensor/tensor.js';
import { normalizeAxis, stridesOf } from './broadcast.js';
import type { OpContext } from './op.js';
import { badShape } from './op.js';

/**
 * For every element of x, the index of its scale (and zero point) under the three granularities
 * of ONNX QuantizeLinear/DequantizeLinear (opset 21+): per-tensor (one scale), per-axis (1-D scale
 * of length x.dims[axis]) and blocked (scale of x's rank, ceil(D_axis / block_size) along `axis`).
 */
export function scaleIndexMap(
  xDims: readonly number[],
  scale: Tensor,
  zeroPoint: Tensor | undefined,
  ctx: OpContext,
): Int32Array {
  const count = elementCount(xDims);
  const blockSize = ctx.attrs.int('block_size', 0);
  const sDims = scale.dims;
  if (zeroPoint && (zeroPoint.dims.length !== sDims.length || zeroPoint.dims.some((d, i) => d !== sDims[i]))) {
    // A [1] zero point beside a scalar scale (or the reverse) is common in the wild and harmless.
    if (!(elementCount(zeroPoint.dims) === 1 && elementCount(sDims) === 1)) {
      throw badShape(
        ctx,
        `zero point [${zeroPoint.dims.join(', ')}] and scale [${sDims.join(', ')}] must have the same shape`,
      );
    }
  }
  const map = new Int32Array(count);
  if (blockSize <= 0 && elementCount(sDims) === 1) return map; // per-tensor: every element reads scale 0
  if (xDims.length === 0) throw badShape(ctx, 'a scalar input takes a scalar scale');
  const axis = normalizeAxis(ctx.attrs.int('axis', 1), xDims.length, ctx);
  const axisLen = xDims[axis] as number;
  const inner = stridesOf(xDims)[axis] as number;
  if (blockSize <= 0) {
    if (sDims.length !== 1 || sDims[0] !== axisLen) {
      throw badShape(
        ctx,
        `per-axis scale must be 1-D of length ${axisLen} (x dims [${xDims.join(', ')}], axis ${axis}), got [${sDims.join(', ')}]`,
      );
    }
    for (let i = 0; i < count; i++) map[i] = Math.floor(i / inner) % axisLen;
    return map;
  }
  // Blocked: scale dims equal x dims except along axis, where there is one scale per block.
  const blocks = Math.ceil(axisLen / blockSize);
  const fits = sDims.length === xDims.length && sDims.every((d, i) => (i === axis ? d === blocks : d === xDims[i]));
  if (!fits) {
    throw badShape(
      ctx,
      `blocked scale must be [${xDims.map((d, i) => (i === axis ? blocks : d)).join(', ')}] for x [${xDims.join(', ')}], axis ${axis}, block_size ${blockSize}; got [${sDims.join(', ')}]`,
    );
  }
  const outer = count / (axisLen * inner);
  let n = 0;
  for (let o = 0; o < outer; o++) {
    for (let a = 0; a < axisLen; a++) {
      const base = (o * blocks + Math.floor(a / blockSize)) * inner;
      for (let j = 0; j < inner; j++) map[n++] = base + j;
    }
  }
  return map;
}

/** Saturation of a rounded value to a code range [lo, hi]. */
export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
