/**
 * Pair-safe s8 codes: per channel, the two largest positive codes sum to at most PAIR_LIMIT and so
 * do the two largest negative magnitudes. A kernel that multiplies u8 values (≤ 255) by these codes
 * and adds two adjacent products in int16 (x86's `vpmaddubsw`, used by ONNX Runtime's u8×s8 GEMM
 * on CPUs without VNNI) then never saturates, whatever the order or packing of the reduction axis:
 * any pair is at most 255 · 128 = 32640 ≤ 32767 in either direction (a pair of mixed signs is at
 * most 255 · 127 in magnitude).
 */
export const PAIR_LIMIT = 128;

/** The s8 weight forms quantizeWeightPerChannel (int8-quant.ts) writes; which CPU needs which: passes/activation/weight-form.ts. */
export const WEIGHT_FORMS = ['pair-safe', 'seven-bit', 'full'] as const;
export type WeightForm = (typeof WEIGHT_FORMS)[number];
export const DEFAULT_WEIGHT_FORM: WeightForm = 'pair-safe';

/** Channel c's elements: those at `i` with floor(i / inner) % channels === c (axis-major layout). */
export interface ChannelLayout {
  readonly channels: number;
  readonly inner: number;
}

export function channelLayout(dims: readonly number[], axis: number): ChannelLayout {
  let inner = 1;
  for (let d = axis + 1; d < dims.length; d++) inner *= dims[d] as number;
  return { channels: dims[axis] ?? 1, inner };
}

/** Per channel: the sum of the two largest positive values and of the two largest negative magnitudes, whichever is larger. */
export function topPairSums(values: ArrayLike<number>, layout: ChannelLayout): Float64Array {
  const { channels, inner } = layout;
  const p1 = new Float64Array(channels);
  const p2 = new Float64Array(channels);
  const n1 = new Float64Array(channels);
  const n2 = new Float64Array(channels);
  for (let i = 0; i < values.length; i++) {
    const c = Math.floor(i / inner) % channels;
    const v = values[i] as number;
    if (v > 0) {
      if (v > (p1[c] as number)) {
        p2[c] = p1[c] as number;
        p1[c] = v;
      } else if (v > (p2[c] as number)) p2[c] = v;
    } else if (v < 0) {
      const m = -v;
      if (m > (n1[c] as number)) {
        n2[c] = n1[c] as number;
        n1[c] = m;
      } else if (m > (n2[c] as number)) n2[c] = m;
    }
  }
  const out = new Float64Array(channels);
  for (let c = 0; c < channels; c++)
    out[c] = Math.max((p1[c] as number) + (p2[c] as number), (n1[c] as number) + (n2[c] as number));
  return out;
}

/**
 * Raises each channel's scale (never lowers it) so that the top-two sums of the scaled values are
 * within PAIR_LIMIT: scale = max(scale, topPairSum / PAIR_LIMIT), in float32. Rounding can still
 * push a sum to PAIR_LIMIT + 1; callers verify the codes with `topPairSums` and call `nudge`.
 * Returns how many channels were raised.
 */
export function raiseToPairSafe(scales: Float32Array, values: Float32Array, layout: ChannelLayout): number {
  const sums = topPairSums(values, layout);
  let raised = 0;
  for (let c = 0; c < scales.length; c++) {
    const need = Math.fround((sums[c] as number) / PAIR_LIMIT);
    if (need > (scales[c] as number)) {
      scales[c] = need;
      raised++;
    }
  }
  return raised;
}

/** Channels whose codes break the pair limit (after rounding). */
export function pairViolations(codes: ArrayLike<number>, layout: ChannelLayout): number[] {
  const sums = topPairSums(codes, layout);
  const bad: number[] = [];
  for (let c = 0; c < sums.length; c++) if ((sums[c] as number) > PAIR_LIMIT) bad.push(c);
  return bad;
}
