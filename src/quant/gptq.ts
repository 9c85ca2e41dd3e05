/**
 * GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
 * Pre-trained Transformers", Algorithm 1): block-wise weight quantization that uses the layer's
 * input statistics H = XᵀX (X: calibration inputs, one row per token) to spread each rounding
 * error onto the input rows not quantized yet, so the layer OUTPUT error ‖X(W − Ŵ)‖² is what is
 * minimised, not the weight error.
 *
 * Layout: W is [K, N] row-major (a MatMul B: K inputs, N outputs), so the unit GPTQ quantizes at
 * a time — one input row k across all N outputs — is contiguous, and each update is a row axpy.
 * Groups ("blocks") of `blockSize` consecutive k per output column n share one scale / zero point,
 * the layout of ONNX Runtime's MatMulNBits and (for K a multiple of the block) MatMulBnb4.
 *
 * Steps (paper §4, "Step 1–3"):
 *  - dead inputs (H[k,k] = 0: the input is always 0) get H[k,k] = 1, so they neither receive nor
 *    spread error; dampening adds `damp` · mean(diag H) to the diagonal (numerical stability).
 *  - U = the upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU). Quantizing row i with error e = (w − q)
 *    and updating every later row j by −(e / U[i,i]) · U[i,j] is the OBS update restricted to the
 *    rows still free; Cholesky makes it a fixed sequence of rows of U.
 *  - lazy batches: the updates of a batch of rows to the rows after the batch are deferred and
 *    applied at the batch's end. Every W[j, n] still receives the same subtractions in the same
 *    order as in the row-by-row reference, so the two are bit-identical (tested); the batch only
 *    keeps its errors in cache while the trailing rows stream by once per batch instead of once
 *    per row.
 *  - a group's scale is chosen when its first row is reached, from the group's values as updated
 *    by then (the reference implementation's `find_params` per group). With act-order (rows
 *    quantized in order of decreasing H[k,k]) a group's rows are no longer consecutive in time, so
 *    its scale is chosen up front from the original weights ("static groups", as AutoGPTQ does),
 *    which keeps the file layout intact.
 * Everything runs in float64; only the chosen parameters and dequantized values are float32.
 */

/** Parameters of one group (one block of one output column), written by the quantizer. */
export interface GroupParams {
  scale: number;
  zero: number;
}

/** How one group is quantized: the format's scale choice, rounding and dequantization. */
export interface GroupQuantizer {
  readonly blockSize: number;
  /** Chooses the group's parameters from its values (one column, length ≤ blockSize). */
  encodeBlockScale(values: Float32Array, out: GroupParams): void;
  /** The code of v (the nearest representable value, as the format rounds). */
  quantizeValue(v: number, scale: number, zero: number): number;
  /** The value a code stands for, as the runtime dequantizes it. */
  dequantize(code: number, scale: number, zero: number): number;
  /**
   * Instead of encodeBlockScale: chooses group (block b, output n) with `current(k)` reading any
   * row k's working value of column n as GPTQ has updated it so far — for formats whose groups
   * share a second-level constant fixed from rows not reached yet (k-quant super-blocks).
   */
  chooseGroup?(b: number, n: number, values: Float32Array, current: (k: number) => number, out: GroupParams): void;
}

export interface GptqOptions {
  /** Dampening, a fraction of the mean diagonal of H (default 0.01). */
  readonly damp?: number;
  /** Quantize rows in order of decreasing H[k,k] (static groups; default false). */
  readonly actOrder?: boolean;
  /** Rows per lazy batch, rounded up to a multiple of blockSize (default 128). */
  readonly batch?: number;
}

export interface GptqResult {
  readonly K: number;
  readonly N: number;
  readonly kBlocks: number;
  /** Codes [N, K] (output-major: column n of W is codes[n·K .. n·K + K)). */
  readonly codes: Uint8Array;
  /** Group parameters [N, kBlocks]. */
  readonly scales: Float32Array;
  readonly zeros: Float32Array;
  /** The dequantized weight Ŵ, [K, N] row-major like the input. */
  readonly dequantized: Float32Array;
  /** The dampening actually used (raised tenfold while H + damp·I is not numerically positive definite). */
  readonly dampUsed: number;
}

export class NotPositiveDefinite extends Error {
  constructor(readonly pivot: number) {
    super(`matrix is not positive definite (pivot ${pivot})`);
  }
}

/**
 * In-place lower Cholesky factor of the symmetric positive definite a [n, n] (lower triangle read;
 * the strict upper triangle is zeroed).
 */
export function choleskyLower(a: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j] as number;
    for (let p = 0; p < j; p++) d -= (a[rj + p] as number) ** 2;
    if (!(d > 0)) throw new NotPositiveDefinite(j);
    const ljj = Math.sqrt(d);
    a[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j] as number;
      for (let p = 0; p < j; p++) s -= (a[ri + p] as number) * (a[rj + p] as number);
      a[ri + j] = s / ljj;
    }
    for (let i = 0; i < j; i++) a[i * n + j] = 0;
  }
}

/**
 * Upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) for symmetric positive definite h [n, n], with one
 * factorization and one triangular inverse: with J the order reversal and JHJ = L·Lᵀ,
 * H⁻¹ = J·L⁻ᵀ·L⁻¹·J = (J·L⁻¹·J)ᵀ(J·L⁻¹·J), and J·L⁻¹·J is upper triangular with a positive
 * diagonal — so it is U (the factor is unique). Same result as torch's
 * cholesky(cholesky_inverse(cholesky(H)), upper=True), at a third of the work.
 */
export function inverseCholeskyUpper(h: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) l[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)] as number;
  choleskyLower(l, n);
  // M = L⁻¹ (lower), row by row: row i of L·M = I gives M[i] = (eᵢ − Σ_{p<i} L[i][p]·M[p]) / L[i][i],
  // axpys over contiguous rows.
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let p = 0; p < i; p++) {
      const lip = l[ri + p] as number;
      if (lip === 0) continue;
      const rp = p * n;
      for (let c = 0; c <= p; c++) m[ri + c] = (m[ri + c] as number) - lip * (m[rp + c] as number);
    }
    const inv = 1 / (l[ri + i] as number);
    for (let c = 0; c < i; c++) m[ri + c] = (m[ri + c] as number) * inv;
    m[ri + i] = inv;
  }
  // U = J·M·J.
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) u[i * n + j] = m[(n - 1 - i) * n + (n - 1 - j)] as number;
  return u;
}

/**
 * Adds XᵀX to the upper triangle of h [K, K] (x: `rows` rows of K, row-major). Four rows at a time:
 * each h element is loaded and stored once per four rows, the loop's real cost.
 */
export function accumulateGram(h: Float64Array, x: Float32Array, rows: number, K: number): void {
  let r = 0;
  for (; r + 3 < rows; r += 4) {
    const o0 = r * K,
      o1 = o0 + K,
      o2 = o1 + K,
      o3 = o2 + K;
    for (let i = 0; i < K; i++) {
      const a0 = x[o0 + i] as number,
        a1 = x[o1 + i] as number,
        a2 = x[o2 + i] as number,
        a3 = x[o3 + i] as number;
      const hi = i * K;
      for (let j = i; j < K; j++) {
        h[hi + j] =
          (h[hi + j] as number) +
          a0 * (x[o0 + j] as number) +
          a1 * (x[o1 + j] as number) +
          a2 * (x[o2 + j] as number) +
          a3 * (x[o3 + j] as number);
      }
    }
  }
  for (; r < rows; r++) {
    const off = r * K;
    for (let i = 0; i < K; i++) {
      const xi = x[off + i] as number;
      const hi = i * K;
      for (let j = i; j < K; j++) h[hi + j] = (h[hi + j] as number) + xi * (x[off + j] as number);
    }
  }
}

/** Copies the upper triangle of h onto the lower one (after accumulateGram). */
export function symmetrize(h: Float64Array, K: number): void {
  for (let i = 0; i < K; i++) for (let j = i + 1; j < K; j++) h[j * K + i] = h[i * K + j] as number;
}

export interface Prepared {
  /** Working weights [K, N] in quantization order (row i holds original row perm[i]). */
  readonly w: Float64Array;
  readonly u: Float64Array;
  /** perm[i]: the original row quantized i-th (identity without act-order). */
  readonly perm: Int32Array;
  readonly dampUsed: number;
}

/** The working copy and H⁻¹'s upper Cholesky factor every GPTQ variant starts from (SpQR: quant/spqr.ts). */
export function gptqPrepare(w: Float32Array, K: number, N: number, hessian: Float64Array, o: GptqOptions): Prepared {
  return prepare(w, K, N, hessian, o);
}

function prepare(w: Float32Array, K: number, N: number, hessian: Float64Array, o: GptqOptions): Prepared {
  if (w.length !== K * N) throw new RangeError(`weight has ${w.length} values, expected K·N = ${K * N}`);
  if (hessian.length !== K * K) throw new RangeError(`Hessian has ${hessian.length} values, expected K² = ${K * K}`);
  const h = Float64Array.from(hessian);
  for (let k = 0; k < K; k++) if (!((h[k * K + k] as number) > 0)) h[k * K + k] = 1; // dead input
  const perm = new Int32Array(K);
  for (let k = 0; k < K; k++) perm[k] = k;
  if (o.actOrder) perm.sort((a, b) => (h[b * K + b] as number) - (h[a * K + a] as number) || a - b);
  const hp = new Float64Array(K * K);
  for (let i = 0; i < K; i++)
    for (let j = 0; j < K; j++) hp[i * K + j] = h[(perm[i] as number) * K + (perm[j] as number)] as number;
  let mean = 0;
  for (let k = 0; k < K; k++) mean += hp[k * K + k] as number;
  mean /= Math.max(1, K);
  let damp = (o.damp ?? 0.01) * mean;
  let u: Float64Array | undefined;
  for (let attempt = 0; attempt < 6 && !u; attempt++) {
    const hd = Float64Array.from(hp);
    for (let k = 0; k < K; k++) hd[k * K + k] = (hd[k * K + k] as number) + damp;
    try {
      u = inverseCholeskyUpper(hd, K);
    } catch (e) {
      if (!(e instanceof NotPositiveDefinite)) throw e;
      damp = damp > 0 ? damp * 10 : mean * 1e-6;
    }
  }
  if (!u) throw new NotPositiveDefinite(-1);
  const wp = new Float64Array(K * N);
  for (let i = 0; i < K; i++) {
    const src = (perm[i] as number) * N;
    for (let n = 0; n < N; n++) wp[i * N + n] = w[src + n] as number;
  }
  return { w: wp, u, perm, dampUsed: mean > 0 ? damp / mean : 0 };
}

/** Quantizes and dequantizes rows; owns the outputs and the group parameters. */
class RowQuantizer {
  readonly kBlocks: number;
  readonly codes: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Float32Array;
  readonly dequantized: Float32Array;
  private readonly column: Float32Array;
  private readonly params: GroupParams = { scale: 1, zero: 0 };

  constructor(
    readonly K: number,
    readonly N: number,
    readonly q: GroupQuantizer,
  ) {
    this.kBlocks = Math.ceil(K / q.blockSize);
    this.codes = new Uint8Array(N * K);
    this.scales = new Float32Array(N * this.kBlocks);
    this.zeros = new Float32Array(N * this.kBlocks);
    this.dequantized = new Float32Array(K * N);
    this.column = new Float32Array(q.blockSize);
  }

  /** Chooses block b's parameters for every column from rows rowOf(k0) … of `w`. */
  chooseBlock(b: number, w: Float64Array, rowOf: (k: number) => number): void {
    const { K, N, q, kBlocks } = this;
    const k0 = b * q.blockSize;
    const len = Math.min(q.blockSize, K - k0);
    const values = this.column.subarray(0, len);
    for (let n = 0; n < N; n++) {
      for (let t = 0; t < len; t++) values[t] = w[rowOf(k0 + t) * N + n] as number;
      if (q.chooseGroup) q.chooseGroup(b, n, values, (k) => w[rowOf(k) * N + n] as number, this.params);
      else q.encodeBlockScale(values, this.params);
      this.scales[n * kBlocks + b] = this.params.scale;
      this.zeros[n * kBlocks + b] = this.params.zero;
    }
  }

  /**
   * Quantizes working row i (original row k) of w; writes (w − q) / d into err[errOff ..].
   */
  quantizeRow(w: Float64Array, i: number, k: number, d: number, err: Float64Array, errOff: number): void {
    const { K, N, q, kBlocks } = this;
    const b = Math.floor(k / q.blockSize);
    const rowOff = i * N;
    for (let n = 0; n < N; n++) {
      const p = n * kBlocks + b;
      const s = this.scales[p] as number;
      const z = this.zeros[p] as number;
      const v = w[rowOff + n] as number;
      const c = q.quantizeValue(v, s, z);
      const back = q.dequantize(c, s, z);
      this.codes[n * K + k] = c;
      this.dequantized[k * N + n] = back;
      err[errOff + n] = (v - back) / d;
    }
  }

  result(dampUsed: number): GptqResult {
    const { K, N, kBlocks, codes, scales, zeros, dequantized } = this;
    return { K, N, kBlocks, codes, scales, zeros, dequantized, dampUsed };
  }
}

/**
 * With act-order every group's parameters are chosen up front from the original rows, so the
 * stored layout stays group-by-K; `pos` maps an original row to its place in quantization order.
 */
function chooseStaticGroups(rq: RowQuantizer, W: Float64Array, perm: Int32Array, K: number): void {
  const pos = new Int32Array(K);
  for (let i = 0; i < K; i++) pos[perm[i] as number] = i;
  for (let b = 0; b < rq.kBlocks; b++) rq.chooseBlock(b, W, (k) => pos[k] as number);
}

/**
 * GPTQ with lazy batch updates. w: [K, N] row-major (alpha already folded in); hessian: XᵀX
 * [K, K] (any positive multiple: the scale cancels). Returns codes and group parameters in the
 * [N, K] / [N, kBlocks] order MatMulNBits and MatMulBnb4 store.
 */
export function gptqQuantize(
  w: Float32Array,
  K: number,
  N: number,
  hessian: Float64Array,
  quantizer: GroupQuantizer,
  opts: GptqOptions = {},
): GptqResult {
  const { w: W, u: U, perm, dampUsed } = prepare(w, K, N, hessian, opts);
  const rq = new RowQuantizer(K, N, quantizer);
  const bs = quantizer.blockSize;
  const actOrder = opts.actOrder ?? false;
  if (actOrder) chooseStaticGroups(rq, W, perm, K);
  // A batch is a whole number of groups, so a group chosen at its first row sees the same
  // (fully updated) values as in the reference.
  const B = Math.max(bs, Math.ceil((opts.batch ?? 128) / bs) * bs);
  const err = new Float64Array(B * N);
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(i1 + B, K);
    for (let i = i1; i < i2; i++) {
      const k = perm[i] as number;
      if (!actOrder && k % bs === 0) rq.chooseBlock(k / bs, W, (kk) => kk);
      const e = (i - i1) * N;
      rq.quantizeRow(W, i, k, U[i * K + i] as number, err, e);
      // Inside the batch: update the batch's later rows at once (they are quantized next).
      for (let j = i + 1; j < i2; j++) {
        const uij = U[i * K + j] as number;
        const rj = j * N;
        for (let n = 0; n < N; n++) W[rj + n] = (W[rj + n] as number) - (err[e + n] as number) * uij;
      }
    }
    // The deferred updates of every later row, each row once per batch.
    for (let j = i2; j < K; j++) {
      const rj = j * N;
      for (let i = i1; i < i2; i++) {
        const uij = U[i * K + j] as number;
        const e = (i - i1) * N;
        for (let n = 0; n < N; n++) W[rj + n] = (W[rj + n] as number) - (err[e + n] as number) * uij;
      }
    }
  }
  return rq.result(dampUsed);
}

/** The row-by-row algorithm as the paper states it (no lazy batches), to test the fast one against. */
export function gptqQuantizeReference(
  w: Float32Array,
  K: number,
  N: number,
  hessian: Float64Array,
  quantizer: GroupQuantizer,
  opts: GptqOptions = {},
): GptqResult {
  const { w: W, u: U, perm, dampUsed } = prepare(w, K, N, hessian, opts);
  const rq = new RowQuantizer(K, N, quantizer);
  const bs = quantizer.blockSize;
  const actOrder = opts.actOrder ?? false;
  if (actOrder) chooseStaticGroups(rq, W, perm, K);
  const err = new Float64Array(N);
  for (let i = 0; i < K; i++) {
    const k = perm[i] as number;
    if (!actOrder && k % bs === 0) rq.chooseBlock(k / bs, W, (kk) => kk);
    rq.quantizeRow(W, i, k, U[i * K + i] as number, err, 0);
    for (let j = i + 1; j < K; j++) {
      const uij = U[i * K + j] as number;
      for (let n = 0; n < N; n++) W[j * N + n] = (W[j * N + n] as number) - (err[n] as number) * uij;
    }
  }
  return rq.result(dampUsed);
}

/** ‖X(W − Ŵ)‖² from H = XᵀX (full symmetric), W and Ŵ [K, N]: Σ_n dₙᵀ H dₙ. */
export function outputError(hessian: Float64Array, w: Float32Array, wq: Float32Array, K: number, N: number): number {
  const d = new Float64Array(K);
  let total = 0;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) d[k] = (w[k * N + n] as number) - (wq[k * N + n] as number);
    for (let i = 0; i < K; i++) {
      const di = d[i] as number;
      if (di === 0) continue;
      let s = 0;
      for (let j = 0; j < K; j++) s += (hessian[i * K + j] as number) * (d[j] as number);
      total += di * s;
    }
  }
  return total;
}
