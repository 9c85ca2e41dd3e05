import { describe, expect, it } from 'vitest';
import { erf } from './unary.js';

describe('erf', () => {
  // Published values (Abramowitz & Stegun table 7.1; the large arguments from erfc's asymptotics).
  const table: [number, number][] = [
    [0, 0],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
  ];
  it('matches the tabulated values to float64 precision, odd in x', () => {
    for (const [x, want] of table) {
      expect(Math.abs(erf(x) - want)).toBeLessThanOrEqual(4.5e-16);
      expect(erf(-x) + erf(x)).toBe(0);
    }
  });
  it('saturates to ±1 and keeps NaN', () => {
    expect(erf(6)).toBe(1);
    expect(erf(-30)).toBe(-1);
    expect(erf(NaN)).toBeNaN();
  });
});
