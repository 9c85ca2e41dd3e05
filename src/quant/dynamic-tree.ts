import type { BlockwiseCodes, BlockwiseOptions } from './blockwise.js';
import { dequantizeBlockwise, quantizeBlockwise } from './blockwise.js';
import type { Codebook } from './codebook.js';
import { makeCodebook } from './codebook.js';

const f = Math.fround;

/**
 * torch.linspace(start, end, steps) in float32 as ATen's CPU kernel computes it: the first half
 * counts up from start, the second half down from end, so both ends are exact.
 */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f(start);
  const e = f(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < half ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1)));
  return out;
}

/**
 * The dynamic-tree map (Dettmers, "8-Bit Approximations for Parallelism in Deep Learning"), built
 * as bitsandbytes' create_dynamic_map builds it: for each decimal exponent 10^-6 … 10^0 (the run
 * of zeros after the sign is the exponent, the first 1 the indicator bit), the midpoints of a
 * linear fraction grid on [0.1, 1] whose resolution doubles with every exponent step; plus 0 and
 * 1. Signed: each level mirrored (no -1; the most negative is ≈ -0.99297); unsigned: one more
 * fraction bit per level instead of the sign. Float32 arithmetic throughout, as torch does it.
 * Sorted ascending, 2^totalBits entries.
 */
export function createDynamicMap(signed = true, maxExponentBits = 7, totalBits = 8): Float32Array {
  const data: number[] = [];
  const nonSignBits = totalBits - 1; // bitsandbytes uses total_bits - 1 for both variants
  const additional = 2 ** (nonSignBits - maxExponentBits) - 1;
  const push = (scale: number, means: Float32Array): void => {
    const p = f(scale);
    for (const m of means) data.push(f(p * m));
    if (signed) for (const m of means) data.push(f(-p * m));
  };
  const means = (items: number): Float32Array => {
    const b = linspaceF32(0.1, 1, items);
    const m = new Float32Array(items - 1);
    for (let k = 0; k + 1 < items; k++) m[k] = f(f((b[k] as number) + (b[k + 1] as number)) / 2);
    return m;
  };
  let last = 0;
  for (let i = 0; i < maxExponentBits; i++) {
    const items = signed
      ? 2 ** (i + nonSignBits - maxExponentBits) + 1
      : 2 ** (i + nonSignBits - maxExponentBits + 1) + 1;
    push(10 ** (-(maxExponentBits - 1) + i), means(items));
    last = i;
  }
  // The Python loop variable `i` leaks out of the loop: the extra items use the last exponent.
  if (additional > 0) push(10 ** (-(maxExponentBits - 1) + last), means(additional + 1));
  data.push(0, 1);
  while (data.length < 2 ** totalBits) data.push(0);
  data.sort((a, b) => a - b);
  return Float32Array.from(data);
}

let signedMap: Codebook | undefined;
let unsignedMap: Codebook | undefined;
/** The signed (default) and unsigned 8-bit dynamic-tree maps, prepared for lookup. */
export function dynamicTreeCodebook(signed = true): Codebook {
  if (signed) return (signedMap ??= makeCodebook(createDynamicMap(true)));
  return (unsignedMap ??= makeCodebook(createDynamicMap(false)));
}

/** bitsandbytes quantize_blockwise's default block size. */
export const DYNAMIC_TREE_BLOCK = 4096;

/** Block-wise 8-bit quantization with the dynamic-tree map (the 8-bit optimizers' state format). */
export function quantizeDynamicTree8(
  data: Float32Array,
  opts: BlockwiseOptions & { signed?: boolean } = {},
): BlockwiseCodes {
  return quantizeBlockwise(data, dynamicTreeCodebook(opts.signed ?? true), {
    ...opts,
    blockSize: opts.blockSize ?? DYNAMIC_TREE_BLOCK,
  });
}

export function dequantizeDynamicTree8(q: BlockwiseCodes, signed = true): Float32Array {
  return dequantizeBlockwise(q, dynamicTreeCodebook(signed).values);
}
