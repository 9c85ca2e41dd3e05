import { makeTensor } from '../../tensor/tensor.js';
import type { OpImpl } from '../op.js';
import { expectDType, requireInput } from '../op.js';
import { roundHalfEven } from '../../formats/rounding.js';
import { clamp } from '../quant-params.js';

/**
 * ONNX DynamicQuantizeLinear (opset 11), uint8 only, computed in float32 as the spec's reference:
 *   scale = fp32(fp32(max(0, max x) − min(0, min x)) / 255)
 *   zero_point = clip(round(0 − min(0, min x) / scale), 0, 255)
 *   y = clip(round(x / scale) + zero_point, 0, 255)            round = half to even
 * An all-zero input gives scale 0; its zero point is then 0 and y is the zero point (not NaN).
 */
export const DynamicQuantizeLinear: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'x', ctx);
  expectDType(x, ['float32'], 'x', ctx);
  const xs = x.data as Float32Array;
  let lo = 0;
  let hi = 0;
  for (const v of xs) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  // Both steps in float32, as the spec's reference and ONNX Runtime compute them: max − min is
  // rounded before the division (rounding once instead moves the scale by an ulp now and then).
  const scale = Math.fround(Math.fround(hi - lo) / 255);
  const zp = scale === 0 ? 0 : clamp(roundHalfEven(Math.fround((0 - lo) / scale)), 0, 255);
  const y = new Uint8Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    y[i] = scale === 0 ? zp : clamp(roundHalfEven(Math.fround((xs[i] as number) / scale)) + zp, 0, 255);
  }
  return [
    makeTensor('uint8', x.dims, y),
    makeTensor('float32', [], Float32Array.of(scale)),
    makeTensor('uint8', [], Uint8Array.of(zp)),
  ];
};
