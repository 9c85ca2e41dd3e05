/**
 * Rounding to an integer: the one implementation every layer uses. A named option, never
 * implicit: 'half-even' is the ONNX default (QuantizeLinear: "rounding to nearest ties to even"),
 * 'half-away' rounds ties away from zero (C's round, what some tools do).
 */
export type Rounding = 'half-even' | 'half-away';

/**
 * 1.5 · 2^52, for hot loops: in float64, (v + ROUNDER) − ROUNDER is v rounded to an integer,
 * ties to even (the IEEE 754 round-to-nearest-even of the addition), for |v| < 2^51. Exact, and
 * much cheaper than a call; callers clamp v to their code range first. A zero result is +0.
 */
export const ROUNDER = 6755399441055744;

/**
 * Round half to even (IEEE roundTiesToEven, NumPy rint) for any double; NaN and ±Inf pass
 * through, and a zero result keeps the sign of x (rint(−0.5) = −0). Math.round breaks ties
 * towards +Infinity, so a tie is seen as r − x = 0.5 (exact: r and x lie within 1 of each other)
 * and an odd r steps down: 2.5 → 3 → 2, −2.5 → −2 (already even), −3.5 → −3 → −4.
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Round half away from zero (C's round): 2.5 → 3, −2.5 → −3. */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}
