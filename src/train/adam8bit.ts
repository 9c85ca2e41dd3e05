import { QuantkitError } from '../errors.js';
import { dequantizeBlockwise, quantizeBlockwise } from '../quant/blockwise.js';
import { dynamicTreeCodebook } from '../quant/dynamic-tree.js';

/*
 * Adam and AdamW over plain Float32Arrays, with the optimizer state in 32 bits (the reference) or
 * in 8 bits block-wise (Dettmers et al., "8-bit Optimizers via Block-wise Quantization", ICLR
 * 2022, as bitsandbytes implements it). Browser-safe: no tensors library, one parameter tensor
 * per slot, the caller hands in each step's gradients.
 *
 * 8-bit state, per bitsandbytes' reference update (backends/triton/kernels_optim.py,
 * optimizer_update_8bit_blockwise_pytorch):
 *   - each state tensor is cut into blocks of `blockSize` (the paper's 2048; bitsandbytes' CUDA
 *     kernels use 256) with one float32 absmax per block;
 *   - the first moment m uses the signed dynamic-tree map, the second v the unsigned one
 *     (quant/dynamic-tree.ts): code = the table entry nearest to x / absmax;
 *   - each step dequantizes m and v to float32, updates them and the parameter in float32, and
 *     quantizes them again with fresh absmax values.
 * The update itself (both states alike):
 *   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
 *   p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)
 * Weight decay: Adam adds wd·p to g (L2, torch.optim.Adam); AdamW multiplies p by 1 − lr·wd
 * before the step (decoupled, torch.optim.AdamW and bitsandbytes' 8-bit kernels).
 * Tensors under `min8bitSize` elements keep 32-bit state, as bitsandbytes' min_8bit_size (4096)
 * does: their state is small and their updates (biases, norms) sensitive.
 */

export interface AdamConfig {
  readonly lr: number;
  readonly beta1?: number | undefined;
  readonly beta2?: number | undefined;
  readonly eps?: number | undefined;
  readonly weightDecay?: number | undefined;
  /** AdamW: decoupled weight decay. */
  readonly decoupled?: boolean | undefined;
}

export interface Adam8bitConfig extends AdamConfig {
  /** Elements per quantization block of the state (default 2048). */
  readonly blockSize?: number | undefined;
  /** Tensors with fewer elements keep 32-bit state (default 4096, bitsandbytes' min_8bit_size). */
  readonly min8bitSize?: number | undefined;
  /** Slots kept in 32-bit state whatever their size (the stable-embedding recipe's embedding). */
  readonly keep32?: ReadonlySet<number> | undefined;
}

export const ADAM8BIT_BLOCK = 2048;
export const MIN_8BIT_SIZE = 4096;

/** One step over every slot: params[i] is updated in place from grads[i]. */
export interface Optimizer {
  /** One update; `lr` (a schedule's current rate) replaces the configured rate for this step. */
  step(params: readonly Float32Array[], grads: readonly Float32Array[], lr?: number): void;
  /** Bytes the optimizer state holds now (moments, block constants). */
  stateBytes(): number;
  readonly steps: number;
}

interface Hyper {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
}

function checkConfig(c: AdamConfig): Hyper {
  const r = {
    lr: c.lr,
    beta1: c.beta1 ?? 0.9,
    beta2: c.beta2 ?? 0.999,
    eps: c.eps ?? 1e-8,
    weightDecay: c.weightDecay ?? 0,
    decoupled: c.decoupled ?? false,
  };
  const bad = (what: string, v: number) =>
    new QuantkitError(
      'QK_BAD_OPTION',
      `Adam ${what} ${v} is out of range`,
      'lr > 0, 0 ≤ β < 1, ε > 0, weight decay ≥ 0',
    );
  if (!(r.lr > 0)) throw bad('lr', r.lr);
  if (!(r.beta1 >= 0 && r.beta1 < 1)) throw bad('beta1', r.beta1);
  if (!(r.beta2 >= 0 && r.beta2 < 1)) throw bad('beta2', r.beta2);
  if (!(r.eps > 0)) throw bad('eps', r.eps);
  if (!(r.weightDecay >= 0)) throw bad('weight decay', r.weightDecay);
  return r;
}

function checkShapes(sizes: readonly number[], params: readonly Float32Array[], grads: readonly Float32Array[]): void {
  if (params.length !== sizes.length || grads.length !== sizes.length)
    throw new QuantkitError(
      'QK_OPTIMIZER_STATE',
      `the optimizer holds ${sizes.length} tensors, the step gave ${params.length} parameters and ${grads.length} gradients`,
      'pass every parameter and its gradient, in the order the optimizer was made with',
    );
  sizes.forEach((n, i) => {
    if (params[i]?.length !== n || grads[i]?.length !== n)
      throw new QuantkitError(
        'QK_OPTIMIZER_STATE',
        `tensor ${i}: the optimizer holds ${n} elements, the step gave ${params[i]?.length} and ${grads[i]?.length}`,
        'keep each parameter the size it had when the optimizer was made',
      );
  });
}

/**
 * The update of one slot from float32 moments (read and written in place): the one formula both
 * optimizers run, the 8-bit one on its dequantized state.
 */
function adamUpdate(c: Hyper, t: number, p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array): void {
  const bc1 = 1 - c.beta1 ** t;
  const sqrtBc2 = Math.sqrt(1 - c.beta2 ** t);
  const stepSize = c.lr / bc1;
  const decay = c.decoupled ? 1 - c.lr * c.weightDecay : 1;
  const l2 = c.decoupled ? 0 : c.weightDecay;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] as number;
    const gi = (g[i] as number) + l2 * pi;
    const mi = Math.fround(c.beta1 * (m[i] as number) + (1 - c.beta1) * gi);
    const vi = Math.fround(c.beta2 * (v[i] as number) + (1 - c.beta2) * gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi * decay - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + c.eps);
  }
}

/** Adam / AdamW with float32 state: 8 bytes per parameter. */
export function adam32(sizes: readonly number[], config: AdamConfig): Optimizer {
  const c = checkConfig(config);
  const m = sizes.map((n) => new Float32Array(n));
  const v = sizes.map((n) => new Float32Array(n));
  return stepper(
    sizes,
    c,
    (h, t, i, p, g) => adamUpdate(h, t, p, g, m[i] as Float32Array, v[i] as Float32Array),
    () => sizes.reduce((s, n) => s + 8 * n, 0),
  );
}

/** One slot's 8-bit state: codes and per-block absmax of m (signed map) and v (unsigned map). */
interface State8 {
  m: { codes: Uint8Array; absmax: Float32Array; blockSize: number };
  v: { codes: Uint8Array; absmax: Float32Array; blockSize: number };
}

/** Adam / AdamW with 8-bit block-wise state (bitsandbytes' Adam8bit / AdamW8bit). */
export function adam8bit(sizes: readonly number[], config: Adam8bitConfig): Optimizer {
  const c = checkConfig(config);
  const blockSize = config.blockSize ?? ADAM8BIT_BLOCK;
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new QuantkitError('QK_BAD_BLOCK_SIZE', `8-bit Adam block size ${blockSize}`, 'use e.g. 2048');
  const min8 = config.min8bitSize ?? MIN_8BIT_SIZE;
  const signed = dynamicTreeCodebook(true);
  const unsigned = dynamicTreeCodebook(false);
  const eightBit = sizes.map((n, i) => n >= min8 && !config.keep32?.has(i));
  const empty = (n: number) => ({
    codes: new Uint8Array(n),
    absmax: new Float32Array(Math.ceil(n / blockSize)),
    blockSize,
  });
  // Zero state: absmax 0 dequantizes every code to 0.
  const state8: (State8 | undefined)[] = sizes.map((n, i) => (eightBit[i] ? { m: empty(n), v: empty(n) } : undefined));
  const m32 = sizes.map((n, i) => (eightBit[i] ? undefined : new Float32Array(n)));
  const v32 = sizes.map((n, i) => (eightBit[i] ? undefined : new Float32Array(n)));
  return stepper(
    sizes,
    c,
    (h, t, i, p, g) => {
      const s = state8[i];
      if (!s) {
        adamUpdate(h, t, p, g, m32[i] as Float32Array, v32[i] as Float32Array);
        return;
      }
      const m = dequantizeBlockwise(s.m, signed.values);
      const v = dequantizeBlockwise(s.v, unsigned.values);
      adamUpdate(h, t, p, g, m, v);
      s.m = quantizeBlockwise(m, signed, { blockSize });
      s.v = quantizeBlockwise(v, unsigned, { blockSize });
    },
    () =>
      sizes.reduce((sum, n, i) => {
        const s = state8[i];
        return sum + (s ? 2 * n + 4 * (s.m.absmax.length + s.v.absmax.length) : 8 * n);
      }, 0),
  );
}

/**
 * The Optimizer both Adams are: counts the steps, checks each step's tensors against `sizes`, and
 * hands every slot to `update` with the step's hyper-parameters (the schedule's lr, if given).
 */
function stepper(
  sizes: readonly number[],
  c: Hyper,
  update: (h: Hyper, t: number, i: number, p: Float32Array, g: Float32Array) => void,
  stateBytes: () => number,
): Optimizer {
  let t = 0;
  return {
    get steps() {
      return t;
    },
    step(params, grads, lr) {
      checkShapes(sizes, params, grads);
      t++;
      const h = lr === undefined ? c : { ...c, lr };
      sizes.forEach((_, i) => update(h, t, i, params[i] as Float32Array, grads[i] as Float32Array));
    },
    stateBytes,
  };
}
