import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pairSaturationError } from '../../interp/emulate.js';
import { quantizeWeightPerChannel } from '../../quant/int8-quant.js';
import { channelLayout, topPairSums } from '../../quant/pair-safe.js';

describe('pair-safe s8 weights', () => {
  it('top-two sums per channel, by sign', () => {
    // dims [2, 3], axis 0: channel 0 = [5, 3, -4], channel 1 = [-1, -6, 2].
    expect(Array.from(topPairSums(Float32Array.of(5, 3, -4, -1, -6, 2), channelLayout([2, 3], 0)))).toEqual([8, 7]);
  });

  it('hand-worked: [1, 1] needs scale 2/128 (codes 64, 64); [1, 0.005, -0.5, -0.3] keeps max|w|/127', () => {
    const a = quantizeWeightPerChannel(Float32Array.of(1, 1), [1, 2], 0, 'w');
    expect(Array.from(a.codes)).toEqual([64, 64]);
    expect(a.scales[0]).toBe(Math.fround(2 / 128));
    expect(a.reducedChannels).toBe(1);
    const b = quantizeWeightPerChannel(Float32Array.of(1, 0.005, -0.5, -0.3), [1, 4], 0, 'w');
    expect(b.scales[0]).toBe(Math.fround(1 / 127));
    expect(b.reducedChannels).toBe(0);
    const full = quantizeWeightPerChannel(Float32Array.of(1, 1), [1, 2], 0, 'w', 'full');
    expect(Array.from(full.codes)).toEqual([127, 127]);
  });

  it('no pair of u8 × code products saturates, in any order of the channel (property, brute force)', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -4, max: 4, noNaN: true }), { minLength: 2, maxLength: 24 }), (w) => {
        const { codes } = quantizeWeightPerChannel(Float32Array.from(w), [1, w.length], 0, 'w');
        const a = Float64Array.of(255, 255);
        for (let i = 0; i < codes.length; i++) {
          for (let j = i + 1; j < codes.length; j++) {
            if (pairSaturationError(a, 0, 1, Float64Array.of(codes[i] as number, codes[j] as number), 0, 1, 2) !== 0)
              return false;
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it('full range does saturate on the same kind of channel (the property above can fail)', () => {
    const { codes } = quantizeWeightPerChannel(Float32Array.of(1, 0.9), [1, 2], 0, 'w', 'full');
    expect(pairSaturationError(Float64Array.of(255, 255), 0, 1, Float64Array.from(codes), 0, 1, 2)).toBeLessThan(0);
  });

  it('seven-bit codes stay in [-64, 64]', () => {
    const { codes } = quantizeWeightPerChannel(Float32Array.of(1, -1, 0.3), [1, 3], 0, 'w', 'seven-bit');
    expect(Array.from(codes)).toEqual([64, -64, 19]);
  });
});
