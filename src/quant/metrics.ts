import { QuantkitError } from '../errors.js';

/** Error metrics between a reference tensor and its reconstruction; sums in float64. */

function check(a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) {
    throw new QuantkitError(
      'QK_LENGTH_MISMATCH',
      `cannot compare tensors of ${a.length} and ${b.length} elements`,
      'compare a tensor with its own reconstruction',
    );
  }
}

export function mse(ref: Float32Array, approx: Float32Array): number {
  check(ref, approx);
  let s = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = (ref[i] as number) - (approx[i] as number);
    s += d * d;
  }
  return ref.length === 0 ? 0 : s / ref.length;
}

export function maxAbsError(ref: Float32Array, approx: Float32Array): number {
  check(ref, approx);
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs((ref[i] as number) - (approx[i] as number));
    if (d > m || d !== d) m = d;
  }
  return m;
}

/** Signal-to-quantization-noise ratio, 10·log10(Σx² / Σ(x − y)²) in dB; Infinity when exact. */
export function sqnrDb(ref: Float32Array, approx: Float32Array): number {
  check(ref, approx);
  let sig = 0;
  let noise = 0;
  for (let i = 0; i < ref.length; i++) {
    const x = ref[i] as number;
    const d = x - (approx[i] as number);
    sig += x * x;
    noise += d * d;
  }
  if (noise === 0) return Infinity;
  return 10 * Math.log10(sig / noise);
}

/** Cosine of the angle between the two vectors; 1 when both are all-zero, 0 when only one is. */
export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  check(a, b);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  if (aa === 0 && bb === 0) return 1;
  if (aa === 0 || bb === 0) return 0;
  return ab / Math.sqrt(aa * bb);
}

/**
 * Both tensors seen as rows of `width` (the last axis: logits over a vocabulary, embedding
 * features): the mean over rows of each row's cosine (cosineSimilarity's rule for zero rows), and
 * the fraction of rows whose argmax (first maximum) agrees. An empty input gives 1 and 1.
 */
export function rowCosineAndTop1(a: Float32Array, b: Float32Array, width: number): { cosine: number; top1: number } {
  check(a, b);
  const rows = width > 0 ? Math.floor(a.length / width) : 0;
  if (rows === 0) return { cosine: 1, top1: 1 };
  let cos = 0;
  let agree = 0;
  for (let r = 0; r < rows; r++) {
    const ra = a.subarray(r * width, (r + 1) * width);
    const rb = b.subarray(r * width, (r + 1) * width);
    cos += cosineSimilarity(ra, rb);
    let ia = 0;
    let ib = 0;
    for (let j = 1; j < width; j++) {
      if ((ra[j] as number) > (ra[ia] as number)) ia = j;
      if ((rb[j] as number) > (rb[ib] as number)) ib = j;
    }
    if (ia === ib) agree++;
  }
  return { cosine: cos / rows, top1: agree / rows };
}
