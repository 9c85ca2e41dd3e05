/**
 * Codebooks: a code is an index into a table of values. Encoding picks the nearest table entry.
 */

/**
 * NF4 (QLoRA, Dettmers et al. 2023), the 16 float32 constants as bitsandbytes' functional.py
 * lists them: quantiles of N(0, 1) normalised to [-1, 1], with an exact zero at index 7.
 */
export const NF4_TABLE: Float32Array = Float32Array.of(
  -1.0,
  -0.6961928009986877,
  -0.5250730514526367,
  -0.39491748809814453,
  -0.28444138169288635,
  -0.18477343022823334,
  -0.09105003625154495,
  0.0,
  0.07958029955625534,
  0.16093020141124725,
  0.24611230194568634,
  0.33791524171829224,
  0.44070982933044434,
  0.5626170039176941,
  0.7229568362236023,
  1.0,
);

/**
 * OCP MX FP4 E2M1 (the ONNX float4e2m1 type), by code: sign bit 3, exponent bits 2–1, mantissa
 * bit 0, bias 1, no Inf/NaN. Magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6; code 8 is -0.
 */
export const FP4_E2M1_TABLE: Float32Array = Float32Array.of(
  0,
  0.5,
  1,
  1.5,
  2,
  3,
  4,
  6,
  -0,
  -0.5,
  -1,
  -1.5,
  -2,
  -3,
  -4,
  -6,
);

/**
 * bitsandbytes' FP4 (get_4bit_type('fp4')), by code, normalised by its largest magnitude 12: the
 * unnormalised magnitudes for codes 0–7 are 0, 0.0625, 8, 12, 4, 6, 2, 3 — a different bit layout
 * from OCP E2M1 (code 1 is a tiny subnormal, code 3 the maximum), so the two are kept apart.
 * The values equal the constants in bitsandbytes' CUDA dDequantizeFP4Tree.
 */
export const FP4_BNB_TABLE: Float32Array = Float32Array.from(
  [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3],
  (v) => v / 12,
);

/** How ties between two table entries resolve. */
export type TieBreak = 'lower-value' | 'even-code';

/** A table prepared for nearest-value lookup: sorted distinct values, their codes, and midpoints. */
export interface Codebook {
  /** Value of each code (what dequantization reads). */
  readonly values: Float32Array;
  readonly sortedValues: Float64Array;
  readonly sortedCodes: Uint16Array;
  /** midpoints[i] lies between sortedValues[i] and sortedValues[i + 1]. */
  readonly midpoints: Float64Array;
  readonly tie: TieBreak;
  /**
   * Lookup acceleration: x falls in bucket floor((x − bucketOrigin) · bucketScale) (clamped), and
   * bucketStart[b] counts the midpoints whose own bucket is below b. Bucketing is monotone in x,
   * so every midpoint counted lies below x, and a short forward scan finishes the search with
   * the same answer as the binary search.
   */
  readonly bucketOrigin: number;
  readonly bucketScale: number;
  readonly bucketStart: Uint16Array;
}

function bucketOf(x: number, origin: number, scale: number, buckets: number): number {
  const b = Math.floor((x - origin) * scale);
  // NaN (∞ · 0 when the table has one midpoint) goes to bucket 0, whose start is always safe.
  return b >= buckets ? buckets - 1 : b > 0 ? b : 0;
}

/**
 * Prepares a table. Duplicate values (±0, or padding zeros) keep the smallest code, so a value
 * encodes to one canonical code. `tie` decides exact midpoints: 'lower-value' follows
 * bitsandbytes' strict `x > threshold` comparisons; 'even-code' is round-half-to-even for
 * float tables whose adjacent codes alternate in the mantissa bit (E2M1).
 */
export function makeCodebook(values: Float32Array, tie: TieBreak = 'lower-value'): Codebook {
  const order = Array.from(values.keys()).sort((a, b) => (values[a] as number) - (values[b] as number) || a - b);
  const sv: number[] = [];
  const sc: number[] = [];
  for (const c of order) {
    const v = values[c] as number;
    if (sv.length > 0 && sv[sv.length - 1] === v) continue; // ±0 compare equal; first (lowest code) wins
    sv.push(v);
    sc.push(c);
  }
  const midpoints = new Float64Array(Math.max(0, sv.length - 1));
  for (let i = 0; i + 1 < sv.length; i++) midpoints[i] = ((sv[i] as number) + (sv[i + 1] as number)) / 2;
  const buckets = Math.max(1, 16 * sv.length);
  const origin = midpoints.length > 0 ? (midpoints[0] as number) : 0;
  const span = midpoints.length > 1 ? (midpoints[midpoints.length - 1] as number) - origin : 0;
  const scale = span > 0 && Number.isFinite(buckets / span) ? buckets / span : 0;
  const bucketStart = new Uint16Array(buckets);
  for (const m of midpoints) {
    const b = bucketOf(m, origin, scale, buckets);
    if (b + 1 < buckets) bucketStart[b + 1] = (bucketStart[b + 1] as number) + 1;
  }
  for (let k = 1; k < buckets; k++) bucketStart[k] = (bucketStart[k] as number) + (bucketStart[k - 1] as number);
  return {
    values,
    sortedValues: Float64Array.from(sv),
    sortedCodes: Uint16Array.from(sc),
    midpoints,
    tie,
    bucketOrigin: origin,
    bucketScale: scale,
    bucketStart,
  };
}

/** The code whose value is nearest to x. NaN → the code of the smallest |value|. */
export function nearestCode(cb: Codebook, x: number): number {
  if (x !== x) return nearestCode(cb, 0);
  const m = cb.midpoints;
  const starts = cb.bucketStart;
  let lo = starts[bucketOf(x, cb.bucketOrigin, cb.bucketScale, starts.length)] as number;
  while (lo < m.length && x > (m[lo] as number)) lo++;
  if (cb.tie === 'even-code' && lo < m.length && x === m[lo]) {
    const a = cb.sortedCodes[lo] as number;
    const b = cb.sortedCodes[lo + 1] as number;
    return (a & 1) === 0 ? a : b;
  }
  return cb.sortedCodes[lo] as number;
}

/** The plain binary search over the midpoints: the reference the bucketed lookup must equal. */
export function nearestCodeReference(cb: Codebook, x: number): number {
  if (x !== x) return nearestCodeReference(cb, 0);
  const m = cb.midpoints;
  let lo = 0;
  let hi = m.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > (m[mid] as number)) lo = mid + 1;
    else hi = mid;
  }
  if (cb.tie === 'even-code' && lo < m.length && x === m[lo]) {
    const a = cb.sortedCodes[lo] as number;
    const b = cb.sortedCodes[lo + 1] as number;
    return (a & 1) === 0 ? a : b;
  }
  return cb.sortedCodes[lo] as number;
}

let nf4: Codebook | undefined;
let e2m1: Codebook | undefined;
let fp4bnb: Codebook | undefined;
export function nf4Codebook(): Codebook {
  return (nf4 ??= makeCodebook(NF4_TABLE));
}
export function fp4E2M1Codebook(): Codebook {
  return (e2m1 ??= makeCodebook(FP4_E2M1_TABLE, 'even-code'));
}
export function fp4BnbCodebook(): Codebook {
  return (fp4bnb ??= makeCodebook(FP4_BNB_TABLE));
}
