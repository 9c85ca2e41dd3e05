import { paramsFromRange } from '../quant/affine.js';
import { fakeQuantLsq, fakeQuantSte, maxScale } from './fake-quant.js';
import { tf } from './tf.js';

/*
 * The quantizers QAT puts in the forward pass, one per weight and one per activation range
 * source, graph-free (passes/qat wires them to nodes). `--method`:
 *   ste   weights: per-channel symmetric, scale max|w|/qmax each step; activations: per-tensor
 *         asymmetric uint8 from EMA-observed ranges; both through the straight-through estimator
 *   pact  activations clipped to a learned α per range source (Choi et al. 2018), [0, α] for
 *         non-negative sources and [−α, α] for signed ones, L2 on α; weights as ste
 *   lsq   learned steps (Esser et al. 2020): per channel for weights, per tensor for activations
 *         (zero point fixed at its observed value), gradients scaled by 1/√(N·Qp); weight steps
 *         start at the PTQ grid or the MSE-optimal clip, and flows/qat can train the steps at a
 *         rate of their own
 */

export type QatMethod = 'ste' | 'pact' | 'lsq';
export const QAT_METHODS: readonly QatMethod[] = ['ste', 'pact', 'lsq'];

/**
 * observe: record activation ranges, run in float (calibration before training);
 * train: fake quantization, activation ranges still tracked; eval: fake quantization, frozen.
 */
export type QuantMode = 'observe' | 'train' | 'eval';

/** The stored form of one quantized weight: integer codes and one scale per channel. */
export interface WeightCodes {
  readonly codes: Int8Array;
  readonly scales: Float32Array;
}

export interface WeightQuantizer {
  readonly variables: tf.Variable[];
  apply(w: tf.Tensor): tf.Tensor;
  /** The codes and scales `apply` rounds `w` to (what the exported model stores). */
  codes(w: tf.Tensor): WeightCodes;
}

export interface WeightSpec {
  readonly dims: readonly number[];
  /** The per-channel axis (Conv 0, MatMul's last, Gemm by transB). */
  readonly axis: number;
  /** Largest code: symmetric narrow range [−qmax, qmax] (127 for 8 bits, 7 for 4, 3 for 3). */
  readonly qmax: number;
}

function exportCodes(w: tf.Tensor, scaleOf: () => tf.Tensor, qmax: number): WeightCodes {
  const [codes, scale] = tf.tidy(() => {
    const s = scaleOf();
    return [tf.clipByValue(tf.round(tf.div(w, s)), -qmax, qmax), s];
  });
  const out = { codes: Int8Array.from(codes.dataSync()), scales: Float32Array.from(scale.dataSync()) };
  tf.dispose([codes, scale]);
  return out;
}

export function steWeightQuantizer(spec: WeightSpec): WeightQuantizer {
  const grid = (w: tf.Tensor) => ({
    scale: maxScale(w, spec.axis, spec.qmax),
    zeroPoint: 0,
    qmin: -spec.qmax,
    qmax: spec.qmax,
  });
  return {
    variables: [],
    apply: (w) => fakeQuantSte(w, grid(w)),
    codes: (w) => exportCodes(w, () => maxScale(w, spec.axis, spec.qmax), spec.qmax),
  };
}

/**
 * Where LSQ's weight steps start, per channel: `max` max|w|/qmax (the PTQ grid), `mse` the clip of
 * max|w| that minimises the channel's squared rounding error (searched over 0.3 … 1 × max|w|),
 * `mean` 2·mean|w|/√qmax (Esser et al. 2020).
 */
export type LsqInit = 'max' | 'mse' | 'mean';
export const LSQ_INITS: readonly LsqInit[] = ['max', 'mse', 'mean'];

/** Per-channel step minimising Σ (fq(w) − w)² over clips of max|w| (ties: the larger clip). */
export function mseStep(w: tf.Tensor, axis: number, qmax: number, candidates = 36): tf.Tensor {
  return tf.tidy(() => {
    const others = [...Array(w.rank).keys()].filter((a) => a !== axis);
    const full = maxScale(w, axis, qmax);
    let best = full;
    let bestErr = tf.sum(tf.square(tf.sub(fqRound(w, full, qmax), w)), others, true);
    for (let k = 1; k < candidates; k++) {
      const s = tf.mul(full, 1 - (0.7 * k) / (candidates - 1));
      const err = tf.sum(tf.square(tf.sub(fqRound(w, s, qmax), w)), others, true);
      const better = tf.less(err, bestErr);
      best = tf.where(better, s, best);
      bestErr = tf.where(better, err, bestErr);
    }
    return best;
  });
}

function fqRound(w: tf.Tensor, s: tf.Tensor, qmax: number): tf.Tensor {
  return tf.mul(tf.clipByValue(tf.round(tf.div(w, s)), -qmax, qmax), s);
}

function meanStep(w: tf.Tensor, axis: number, qmax: number): tf.Tensor {
  return tf.tidy(() => {
    const others = [...Array(w.rank).keys()].filter((a) => a !== axis);
    const m = tf.mean(tf.abs(w), others, true);
    return tf.where(tf.equal(m, 0), tf.onesLike(m), tf.div(tf.mul(m, 2), Math.sqrt(qmax)));
  });
}

/** LSQ weights, one learned step per channel, started as `init` says (default: the PTQ grid). */
export function lsqWeightQuantizer(
  spec: WeightSpec,
  initial: tf.Tensor,
  name: string,
  init: LsqInit = 'max',
): WeightQuantizer {
  const perChannel = spec.dims.reduce((p, d) => p * d, 1) / (spec.dims[spec.axis] as number);
  const start =
    init === 'mse'
      ? mseStep(initial, spec.axis, spec.qmax)
      : init === 'mean'
        ? meanStep(initial, spec.axis, spec.qmax)
        : tf.tidy(() => maxScale(initial, spec.axis, spec.qmax));
  const step = tf.variable(start, true, `qk/lsq-step/${name}`);
  start.dispose();
  const gradScale = 1 / Math.sqrt(perChannel * spec.qmax);
  const positive = () => tf.maximum(step, 1e-12);
  return {
    variables: [step],
    apply: (w) => fakeQuantLsq(w, step, 0, -spec.qmax, spec.qmax, gradScale),
    codes: (w) => exportCodes(w, positive, spec.qmax),
  };
}

export interface ActivationParams {
  readonly scale: number;
  readonly zeroPoint: number;
  /** The real range the parameters were made from. */
  readonly lo: number;
  readonly hi: number;
}

export interface ActivationQuantizer {
  /** Trained parameters; empty until observation ends for PACT and LSQ. */
  readonly variables: tf.Variable[];
  apply(x: tf.Tensor, mode: QuantMode): tf.Tensor;
  /** Ends calibration: creates the learned parameters from the observed range. */
  endObservation(): void;
  /** The uint8 parameters the exported QuantizeLinear/DequantizeLinear use. */
  params(): ActivationParams;
  /** Regularization added to the loss (PACT's L2 on α). */
  penalty?(): tf.Scalar;
}

const U8 = { qmin: 0, qmax: 255, symmetric: false } as const;

/** Exponential moving average of per-batch min and max (the first batch sets it). */
export class EmaRange {
  lo = 0;
  hi = 0;
  seen = 0;
  constructor(readonly momentum: number) {}

  observe(x: tf.Tensor): void {
    const [lo, hi] = tf.tidy(() => tf.stack([tf.min(x), tf.max(x)]).dataSync()) as unknown as [number, number];
    if (this.seen === 0) {
      this.lo = lo;
      this.hi = hi;
    } else {
      this.lo = this.momentum * this.lo + (1 - this.momentum) * lo;
      this.hi = this.momentum * this.hi + (1 - this.momentum) * hi;
    }
    this.seen++;
  }
}

function u8Params(lo: number, hi: number): ActivationParams {
  return { ...paramsFromRange(lo, hi, U8), lo, hi };
}

function u8Grid(p: ActivationParams) {
  return { scale: p.scale, zeroPoint: p.zeroPoint, qmin: 0, qmax: 255 };
}

export interface ActivationSpec {
  /** A range fixed by the producing op (Softmax [0, 1]): not observed, not learned. */
  readonly fixed?: { lo: number; hi: number } | undefined;
  /** EMA momentum of the observed ranges. */
  readonly momentum: number;
  readonly name: string;
}

export function steActivationQuantizer(spec: ActivationSpec): ActivationQuantizer {
  const ema = new EmaRange(spec.momentum);
  const params = () => (spec.fixed ? u8Params(spec.fixed.lo, spec.fixed.hi) : u8Params(ema.lo, ema.hi));
  return {
    variables: [],
    apply(x, mode) {
      if (!spec.fixed && mode !== 'eval') ema.observe(x);
      return mode === 'observe' ? x : fakeQuantSte(x, u8Grid(params()));
    },
    endObservation() {},
    params,
  };
}

/** PACT: α starts at the observed range's magnitude; the clip's gradient trains it. */
export function pactActivationQuantizer(spec: ActivationSpec & { readonly decay: number }): ActivationQuantizer {
  if (spec.fixed) return steActivationQuantizer(spec);
  const ema = new EmaRange(spec.momentum);
  let alpha: tf.Variable | undefined;
  let signed = false;
  const variables: tf.Variable[] = [];
  const alphaValue = () => Math.max((alpha as tf.Variable).dataSync()[0] as number, 1e-6);
  const params = () => {
    const a = alphaValue();
    return u8Params(signed ? -a : 0, a);
  };
  return {
    variables,
    apply(x, mode) {
      if (mode === 'observe' || !alpha) {
        ema.observe(x);
        return x;
      }
      // min(x, α) as x − relu(x − α) (and max(c, −α) as c + relu(−α − c)): the same values, and
      // broadcast-reducing Sub/Add gradients; tfjs's Minimum/Maximum gradients do not reduce a
      // broadcast operand, and broadcasting α to x's shape first made the LM's backward pass crawl
      // on the WebAssembly backend (minutes per step).
      let c = tf.sub(x, tf.relu(tf.sub(x, alpha)));
      c = signed ? tf.add(c, tf.relu(tf.sub(tf.neg(alpha), c))) : tf.relu(c);
      return fakeQuantSte(c, u8Grid(params()));
    },
    endObservation() {
      if (alpha) return;
      signed = ema.lo < 0 && -ema.lo > 1e-3 * Math.abs(ema.hi);
      alpha = tf.variable(tf.scalar(Math.max(ema.hi, signed ? -ema.lo : 0, 1e-3)), true, `qk/pact/${spec.name}`);
      variables.push(alpha);
    },
    params,
    penalty: () => (alpha ? tf.mul(tf.square(alpha), spec.decay) : tf.scalar(0)),
  };
}

/** LSQ activations: the step starts at the observed range's uint8 scale; its zero point stays. */
export function lsqActivationQuantizer(spec: ActivationSpec): ActivationQuantizer {
  if (spec.fixed) return steActivationQuantizer(spec);
  const ema = new EmaRange(spec.momentum);
  let step: tf.Variable | undefined;
  let zeroPoint = 0;
  const variables: tf.Variable[] = [];
  const params = (): ActivationParams => {
    const s = Math.fround(Math.max((step as tf.Variable).dataSync()[0] as number, 1e-12));
    return { scale: s, zeroPoint, lo: (0 - zeroPoint) * s, hi: (255 - zeroPoint) * s };
  };
  return {
    variables,
    apply(x, mode) {
      if (mode === 'observe' || !step) {
        ema.observe(x);
        return x;
      }
      const features = x.size / (x.shape[0] ?? 1);
      const gradScale = 1 / Math.sqrt(features * Math.max(255 - zeroPoint, 1));
      return fakeQuantLsq(x, step, zeroPoint, 0, 255, gradScale);
    },
    endObservation() {
      if (step) return;
      const p = u8Params(ema.lo, ema.hi);
      zeroPoint = p.zeroPoint;
      step = tf.variable(tf.scalar(p.scale), true, `qk/lsq-act/${spec.name}`);
      variables.push(step);
    },
    params,
  };
}
