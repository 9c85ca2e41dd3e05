/**
 * Running-statistics observers: they keep a few numbers per tensor, never the activations, so
 * memory is bounded for any number of calibration samples.
 */

export interface Range {
  readonly lo: number;
  readonly hi: number;
}

/** The observed extremes over every batch (ONNX Runtime's MinMax calibrator). */
export class MinMaxObserver {
  lo = Infinity;
  hi = -Infinity;
  /** Values seen; NaN/±Inf are skipped (they would make every range useless) and counted. */
  count = 0;
  nonFinite = 0;

  observe(x: Float32Array): void {
    let mn = this.lo;
    let mx = this.hi;
    let bad = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i] as number;
      if (v - v !== 0) {
        bad++;
        continue;
      }
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    this.lo = mn;
    this.hi = mx;
    this.count += x.length - bad;
    this.nonFinite += bad;
  }

  /** [0, 0] before any finite value was seen. */
  range(): Range {
    return this.count === 0 ? { lo: 0, hi: 0 } : { lo: this.lo, hi: this.hi };
  }

  absMax(): number {
    return this.count === 0 ? 0 : Math.max(-this.lo, this.hi);
  }
}

/**
 * Moving-average min-max: each batch's extremes are blended in with weight `averagingConstant`
 * (PyTorch's MovingAverageMinMaxObserver and ORT's `moving_average` option both use 0.01). The
 * first batch sets the range. Less sensitive to one outlier batch than plain min-max.
 */
export class MovingAverageMinMaxObserver {
  private lo = 0;
  private hi = 0;
  private seen = false;
  private readonly batch = new MinMaxObserver();

  constructor(readonly averagingConstant = 0.01) {}

  observe(x: Float32Array): void {
    const b = this.batch;
    b.lo = Infinity;
    b.hi = -Infinity;
    b.count = 0;
    b.observe(x);
    if (b.count === 0) return;
    if (!this.seen) {
      this.lo = b.lo;
      this.hi = b.hi;
      this.seen = true;
      return;
    }
    const c = this.averagingConstant;
    this.lo += c * (b.lo - this.lo);
    this.hi += c * (b.hi - this.hi);
  }

  range(): Range {
    return { lo: this.lo, hi: this.hi };
  }
}

/**
 * Per-channel max |x| over the last axis (the reduction axis K of a MatMul's activation input),
 * the statistic SmoothQuant needs. Memory: one float per channel.
 */
export class ChannelAbsMaxObserver {
  absMax: Float32Array | undefined;

  observe(x: Float32Array, channels: number): void {
    if (channels <= 0 || x.length % channels !== 0) return;
    const m = (this.absMax ??= new Float32Array(channels));
    if (m.length !== channels) return;
    for (let i = 0; i < x.length; i += channels) {
      for (let c = 0; c < channels; c++) {
        const v = Math.abs(x[i + c] as number);
        if (v > (m[c] as number)) m[c] = v;
      }
    }
  }
}
