/**
 * Independent references for the format tests: values computed straight from the spec's field
 * formulas with plain arithmetic, and round-to-nearest-even by brute-force search over them.
 * Nothing here calls the code under test.
 */

/** (−1)^S · 2^(E − bias) · (1 + M/2^m) for E ≠ 0, (−1)^S · 2^(1 − bias) · M/2^m for E = 0. */
export function fieldValue(sign: number, exp: number, man: number, manBits: number, bias: number): number {
  const frac = man / Math.pow(2, manBits);
  const v = exp === 0 ? Math.pow(2, 1 - bias) * frac : Math.pow(2, exp - bias) * (1 + frac);
  return sign ? -v : v;
}

/** Values of magnitude codes 0..count−1 (all finite, increasing) of an IEEE-style layout. */
export function magnitudeValues(count: number, manBits: number, bias: number): Float64Array {
  const out = new Float64Array(count);
  for (let c = 0; c < count; c++) out[c] = fieldValue(0, c >> manBits, c & ((1 << manBits) - 1), manBits, bias);
  return out;
}

/**
 * Magnitude code nearest to a ≥ 0 among `mags` (increasing; index = code), ties to the even code.
 * `beyond` is the value the next code would have if the format went on; returns mags.length when
 * `a` rounds past the largest code (overflow).
 */
export function nearestEvenCode(a: number, mags: Float64Array, beyond: number): number {
  let lo = 0;
  let hi = mags.length; // find the first index with value ≥ a (mags.length if none)
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((mags[mid] as number) < a) lo = mid + 1;
    else hi = mid;
  }
  if (lo < mags.length && mags[lo] === a) return lo;
  if (lo === 0) return 0;
  const below = mags[lo - 1] as number;
  const above = lo < mags.length ? (mags[lo] as number) : beyond;
  const dBelow = a - below;
  const dAbove = above - a;
  if (dBelow < dAbove) return lo - 1;
  if (dAbove < dBelow) return lo;
  return (lo - 1) % 2 === 0 ? lo - 1 : lo;
}

/** Exact midpoint of two doubles whose sum does not overflow (halving is exact). */
export function midpoint(a: number, b: number): number {
  return (a + b) / 2;
}

/** The next double above / below a finite x (for "just above / just below a midpoint"). */
const f = new Float64Array(1);
const u = new BigUint64Array(f.buffer);
export function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  f[0] = x;
  u[0] = x > 0 ? (u[0] as bigint) + 1n : (u[0] as bigint) - 1n;
  return f[0] as number;
}
export function nextDown(x: number): number {
  return -nextUp(-x);
}
