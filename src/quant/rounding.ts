/**
 * Rounding to an integer, as a named option (DESIGN: rounding is never implicit).
 * 'half-even' is the ONNX default (QuantizeLinear: "rounding to nearest ties to even");
 * 'half-away' rounds ties away from zero (C's roundf, numpy's legacy behaviour in some tools).
 */
export type Rounding = 'half-even' | 'half-away';

/**
 * Round half to even without allocation. Math.round rounds ties towards +Infinity, so a tie is
 * detected as `r - x === 0.5` (exact: r and x are within 1 of each other) and an odd r is moved
 * down by one: 2.5 → 3 → 2, -2.5 → -2 (already even), -3.5 → -3 → -4.
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Round half away from zero: 2.5 → 3, -2.5 → -3. */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

export function rounder(mode: Rounding): (x: number) => number {
  return mode === 'half-even' ? roundHalfEven : roundHalfAway;
}
