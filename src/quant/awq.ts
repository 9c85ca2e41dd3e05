/**
 * AWQ, activation-aware weight quantization (Lin et al. 2024, "AWQ: Activation-aware Weight
 * Quantization for LLM Compression and Acceleration", §3.2 and the reference auto_scale /
 * auto_clip): the few input channels that carry large activations matter most, so before
 * quantizing scale them up in the weight and down in the activation, which fp32 leaves exact:
 *   X·W = (X / s) · (diag(s) · W)
 * Per group of linear layers reading one input X (q/k/v after a norm, fc1 after a norm, o after v,
 * fc2 after fc1's activation), s = mean|X_k|^α over the grid α ∈ {0, 1/n, …, (n−1)/n}, normalised
 * by √(max s · min s), and the α whose quantized group output is closest to the fp32 one is kept:
 *   err(α) = Σ_layers ‖X·W − (X/s)·Q(diag(s)·W)‖²
 * α = 0 is s = 1 (no scaling), so AWQ never scores worse than the plain quantizer. Then a clipping
 * search per quantization block: max|w| shrunk by 0 … 50 % in 5 % steps, each block (one output
 * column, `blockSize` inputs) keeping the shrink of least output error.
 *
 * Output errors come from H = XᵀX (the calibration tokens' Gram matrix, as GPTQ collects it):
 * ‖X·D‖² = Σₙ dₙᵀ H dₙ for D = W − Ŵ, so every token counts and no activation is kept. A block's
 * own share of the output, X[:, block] · d_block, needs only H's diagonal block.
 */

/** Quantize-then-dequantize of a whole weight W [K, N] row-major, as the scheme stores it. */
export type FakeQuant = (w: Float32Array, K: number, N: number) => Float32Array;
/** The same for one block (one output column, ≤ blockSize consecutive inputs). */
export type FakeQuantBlock = (values: Float32Array) => Float32Array;

export interface AwqScaleResult {
  /** The chosen α, and s per input channel (all 1 when α = 0 won). */
  readonly alpha: number;
  readonly s: Float32Array;
  /** Group output error at α = 0 and at the chosen α. */
  readonly errorPlain: number;
  readonly error: number;
}

/** ‖X·(W − Ŵ)‖² = Σₙ dₙᵀ H dₙ with W, Ŵ [K, N] and H [K, K] symmetric. */
export function gramOutputError(h: Float64Array, w: Float32Array, wq: Float32Array, K: number, N: number): number {
  const d = new Float64Array(K * N);
  for (let i = 0; i < d.length; i++) d[i] = (w[i] as number) - (wq[i] as number);
  // Σ_{i,j} H[i,j] · (D·Dᵀ)[i,j], both symmetric: the diagonal once, each pair i < j twice. Four
  // rows j at a time share the loads of row i.
  let total = 0;
  for (let i = 0; i < K; i++) {
    const ri = i * N;
    const hi = i * K;
    let diag = 0;
    for (let n = 0; n < N; n++) diag += (d[ri + n] as number) ** 2;
    let off = 0;
    let j = i + 1;
    for (; j + 3 < K; j += 4) {
      const r0 = j * N;
      const r1 = r0 + N;
      const r2 = r1 + N;
      const r3 = r2 + N;
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      for (let n = 0; n < N; n++) {
        const a = d[ri + n] as number;
        s0 += a * (d[r0 + n] as number);
        s1 += a * (d[r1 + n] as number);
        s2 += a * (d[r2 + n] as number);
        s3 += a * (d[r3 + n] as number);
      }
      off +=
        (h[hi + j] as number) * s0 +
        (h[hi + j + 1] as number) * s1 +
        (h[hi + j + 2] as number) * s2 +
        (h[hi + j + 3] as number) * s3;
    }
    for (; j < K; j++) {
      const rj = j * N;
      let s = 0;
      for (let n = 0; n < N; n++) s += (d[ri + n] as number) * (d[rj + n] as number);
      off += (h[hi + j] as number) * s;
    }
    total += (h[hi + i] as number) * diag + 2 * off;
  }
  return total;
}

/** s = m^α, normalised by √(max s · min s) (AWQ's auto_scale); m ≤ 0 channels are floored at 1e-4. */
export function awqScales(meanAbs: Float64Array, alpha: number): Float32Array {
  const K = meanAbs.length;
  const s = new Float64Array(K);
  let hi = 0;
  let lo = Infinity;
  for (let k = 0; k < K; k++) {
    const v = Math.max((meanAbs[k] as number) ** alpha, 1e-4);
    s[k] = v;
    hi = Math.max(hi, v);
    lo = Math.min(lo, v);
  }
  const norm = Math.sqrt(hi * lo);
  return Float32Array.from(s, (v) => v / norm);
}

/** Ŵ of a scaled weight: diag(1/s) · Q(diag(s) · W). */
export function scaledFakeQuant(w: Float32Array, K: number, N: number, s: Float32Array, fq: FakeQuant): Float32Array {
  const ws = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    const sk = s[k] as number;
    for (let n = 0; n < N; n++) ws[k * N + n] = (w[k * N + n] as number) * sk;
  }
  const q = fq(ws, K, N);
  for (let k = 0; k < K; k++) {
    const sk = s[k] as number;
    for (let n = 0; n < N; n++) q[k * N + n] = (q[k * N + n] as number) / sk;
  }
  return q;
}

/**
 * The grid search of one group: `weights` read the same input (Gram `h`, per-channel mean|x|
 * `meanAbs`, K channels). `grid` points (default 20: α = 0, 0.05, …, 0.95).
 */
export function awqSearchScale(
  h: Float64Array,
  meanAbs: Float64Array,
  weights: readonly { readonly w: Float32Array; readonly N: number }[],
  fq: FakeQuant,
  grid = 20,
): AwqScaleResult {
  const K = meanAbs.length;
  let best: AwqScaleResult | undefined;
  let errorPlain = NaN;
  for (let i = 0; i < grid; i++) {
    const alpha = i / grid;
    const s = awqScales(meanAbs, alpha);
    let err = 0;
    for (const { w, N } of weights) err += gramOutputError(h, w, scaledFakeQuant(w, K, N, s, fq), K, N);
    if (i === 0) errorPlain = err;
    if (!best || err < best.error) best = { alpha, s, errorPlain, error: err };
  }
  if (!best) throw new RangeError('awqSearchScale: grid must be ≥ 1');
  return { ...best, errorPlain };
}

/**
 * The same grid search scored by `score` (given each layer's Ŵ [K, N] for a candidate s), e.g.
 * the output error of the block the group feeds rather than of the group's own outputs.
 */
export async function awqSearchScaleBy(
  meanAbs: Float64Array,
  weights: readonly { readonly w: Float32Array; readonly N: number }[],
  fq: FakeQuant,
  score: (wq: Float32Array[]) => number | Promise<number>,
  grid = 20,
): Promise<AwqScaleResult> {
  const K = meanAbs.length;
  let best: AwqScaleResult | undefined;
  let errorPlain = NaN;
  for (let i = 0; i < grid; i++) {
    const alpha = i / grid;
    const s = awqScales(meanAbs, alpha);
    const err = await score(weights.map(({ w, N }) => scaledFakeQuant(w, K, N, s, fq)));
    if (i === 0) errorPlain = err;
    if (!best || err < best.error) best = { alpha, s, errorPlain, error: err };
  }
  if (!best) throw new RangeError('awqSearchScaleBy: grid must be ≥ 1');
  return { ...best, errorPlain };
}

export interface AwqClipResult {
  /** W with each block clamped to ±(1 − shrink)·max|w| of the block. */
  readonly clipped: Float32Array;
  /** Blocks that kept a shrink > 0, of all blocks. */
  readonly clippedBlocks: number;
  readonly blocks: number;
  readonly errorBefore: number;
  readonly errorAfter: number;
}

/**
 * Clipping search per block of W [K, N] (AWQ's auto_clip): shrink max|w| by 0, 5, …, `maxShrink`
 * (default 50 %), quantize the clamped block, keep the shrink whose block output error
 * d_bᵀ·H_bb·d_b is least (shrink 0 is a candidate, so no block gets worse).
 */
export function awqClip(
  h: Float64Array,
  w: Float32Array,
  K: number,
  N: number,
  blockSize: number,
  fqBlock: FakeQuantBlock,
  maxShrink = 0.5,
  step = 0.05,
): AwqClipResult {
  const clipped = Float32Array.from(w);
  const kBlocks = Math.ceil(K / blockSize);
  const vals = new Float32Array(blockSize);
  const trial = new Float32Array(blockSize);
  const d = new Float64Array(blockSize);
  const steps = Math.round(maxShrink / step);
  let clippedBlocks = 0;
  let errorBefore = 0;
  let errorAfter = 0;
  for (let b = 0; b < kBlocks; b++) {
    const k0 = b * blockSize;
    const len = Math.min(blockSize, K - k0);
    const v = vals.subarray(0, len);
    const t = trial.subarray(0, len);
    for (let n = 0; n < N; n++) {
      let m = 0;
      for (let i = 0; i < len; i++) {
        v[i] = w[(k0 + i) * N + n] as number;
        m = Math.max(m, Math.abs(v[i] as number));
      }
      if (m === 0) continue;
      let bestErr = Infinity;
      let bestShrink = 0;
      for (let j = 0; j <= steps; j++) {
        const lim = Math.fround(m * (1 - j * step));
        for (let i = 0; i < len; i++) {
          const x = v[i] as number;
          t[i] = x > lim ? lim : x < -lim ? -lim : x;
        }
        const q = fqBlock(t);
        // The block's output error against the unclipped weights.
        for (let i = 0; i < len; i++) d[i] = (v[i] as number) - (q[i] as number);
        let e = 0;
        for (let i = 0; i < len; i++) {
          const hi = (k0 + i) * K + k0;
          let s = 0;
          for (let l = 0; l < len; l++) s += (h[hi + l] as number) * (d[l] as number);
          e += (d[i] as number) * s;
        }
        if (j === 0) errorBefore += e;
        if (e < bestErr) {
          bestErr = e;
          bestShrink = j;
        }
      }
      errorAfter += bestErr;
      if (bestShrink > 0) {
        clippedBlocks++;
        const lim = Math.fround(m * (1 - bestShrink * step));
        for (let i = 0; i < len; i++) {
          const x = v[i] as number;
          clipped[(k0 + i) * N + n] = x > lim ? lim : x < -lim ? -lim : x;
        }
      }
    }
  }
  return { clipped, clippedBlocks, blocks: kBlocks * N, errorBefore, errorAfter };
}
