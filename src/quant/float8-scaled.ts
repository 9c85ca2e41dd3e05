import type { Float8Kind } from '../formats/float8.js';
import { decodeFloat8, encodeFloat8, float8Max } from '../formats/float8.js';
import type { NonFinite } from './affine.js';
import { nonFiniteError } from './affine.js';
import type { BlockLayout } from './layout.js';
import { forEachRun } from './layout.js';
import { blockMinMax } from './range.js';
import type { ScaleDtype } from './scale-dtype.js';
import { storeScale } from './scale-dtype.js';

/**
 * Scaled fp8 (ONNX QuantizeLinear with a float8 output): per block, scale = absmax / max_finite
 * so the block's largest magnitude lands on the format's largest value (448 for E4M3FN, 57344 for
 * E5M2); code = saturate(cast(x / scale)), round to nearest even. An all-zero block gets scale 1.
 */
export function quantizeFloat8Scaled(
  data: Float32Array,
  layout: BlockLayout,
  kind: Float8Kind,
  opts: { scaleDtype?: ScaleDtype | undefined; nonFinite?: NonFinite | undefined; name?: string | undefined } = {},
): { codes: Uint8Array; scales: Float32Array } {
  const { lo, hi } = blockMinMax(data, layout, opts.nonFinite, opts.name);
  const max = float8Max(kind);
  const scales = new Float32Array(layout.numBlocks);
  for (let b = 0; b < layout.numBlocks; b++) {
    const a = Math.max(-(lo[b] as number), hi[b] as number);
    scales[b] = a === 0 ? 1 : storeScale(Math.max(Math.fround(a / max), 2 ** -126), opts.scaleDtype ?? 'float32');
  }
  const codes = new Uint8Array(layout.count);
  const clamp = opts.nonFinite === 'clamp';
  forEachRun(layout, (start, end, b) => {
    const s = scales[b] as number;
    for (let i = start; i < end; i++) {
      let x = data[i] as number;
      if (x - x !== 0) {
        if (!clamp) throw nonFiniteError(i, x, opts.name);
        x = x !== x ? 0 : x; // ±Inf saturates below
      }
      codes[i] = encodeFloat8(Math.fround(x / s), kind, true);
    }
  });
  return { codes, scales };
}

export function dequantizeFloat8Scaled(
  codes: Uint8Array,
  layout: BlockLayout,
  scales: Float32Array,
  kind: Float8Kind,
): Float32Array {
  const out = new Float32Array(layout.count);
  forEachRun(layout, (start, end, b) => {
    const s = scales[b] as number;
    for (let i = start; i < end; i++) out[i] = decodeFloat8(codes[i] as number, kind) * s;
  });
  return out;
}
