/**
 * Exact helpers on IEEE-754 doubles shared by the narrow-format encoders. Everything here is
 * integer math on the double's fields or multiplication by powers of two, so nothing rounds.
 */

const scratchF64 = new Float64Array(1);
const scratchU32 = new Uint32Array(scratchF64.buffer);
// Index of the high (sign/exponent) word: every platform Node and browsers run on is little-endian,
// but asking costs nothing.
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * floor(log2(a)) for a finite a > 0, read from the exponent field. Subnormal doubles
 * (a < 2^-1022) answer -1023: below every format quantkit encodes, so the caller's rounding
 * sends them to zero or to the format's smallest value anyway.
 */
export function exponentOf(a: number): number {
  scratchF64[0] = a;
  return (((scratchU32[HI] as number) >>> 20) & 0x7ff) - 1023;
}

// 2^k for k in [-1100, 1100], built by exact doubling/halving (2^-1074 is the smallest subnormal;
// below it the entry is 0, which no caller reaches).
const POW2_OFFSET = 1100;
const POW2 = new Float64Array(2 * POW2_OFFSET + 1);
POW2[POW2_OFFSET] = 1;
for (let k = 1; k <= POW2_OFFSET; k++) {
  POW2[POW2_OFFSET + k] = (POW2[POW2_OFFSET + k - 1] as number) * 2;
  POW2[POW2_OFFSET - k] = (POW2[POW2_OFFSET - k + 1] as number) / 2;
}

/** Exactly 2^k (k an integer in [-1074, 1023]). */
export function pow2(k: number): number {
  return POW2[POW2_OFFSET + k] as number;
}

/**
 * Round half to even for any double (IEEE roundTiesToEven). Math.round rounds halves toward
 * +Infinity; `r - x` is exact (Sterbenz: r and x are within 1/2 of each other), so an exact tie
 * is detected and moved to the even neighbour.
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
