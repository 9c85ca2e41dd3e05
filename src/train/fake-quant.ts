import { tf } from './tf.js';

/*
 * Fake quantization in the forward pass, with the gradients QAT trains through (tf.customGrad;
 * tfjs's autodiff does the rest). The grid is ONNX QuantizeLinear's, so what the engine simulates
 * is what ONNX Runtime computes from the exported model:
 *   q = clamp(round_half_even(x / s) + z, qmin, qmax),   y = (q − z) · s
 */

// tfjs types the function as taking (Tensor | GradSaveFunc)[]; it passes the inputs, then `save`.
type CustomGrad = Parameters<typeof tf.customGrad<tf.Tensor>>[0];

/** `s`, `z`: scalars, or tensors shaped to broadcast against x (one value per channel). */
export interface Grid {
  readonly scale: tf.Tensor | number;
  readonly zeroPoint: tf.Tensor | number;
  readonly qmin: number;
  readonly qmax: number;
}

function quantizeDequantize(x: tf.Tensor, g: Grid): { y: tf.Tensor; v: tf.Tensor } {
  const v = tf.div(x, g.scale);
  // round(x/s) + z, not round(x/s + z): the two differ at ties when z is odd, and ONNX rounds first.
  const q = tf.clipByValue(tf.add(tf.round(v), g.zeroPoint), g.qmin, g.qmax);
  return { y: tf.mul(tf.sub(q, g.zeroPoint), g.scale), v: tf.add(v, g.zeroPoint) };
}

/** 1 where qmin ≤ x/s + z ≤ qmax (the clip range, before rounding), else 0. */
function insideMask(v: tf.Tensor, g: Grid): tf.Tensor {
  return tf.cast(tf.logicalAnd(tf.greaterEqual(v, g.qmin), tf.lessEqual(v, g.qmax)), 'float32');
}

/**
 * The straight-through estimator (Bengio et al. 2013; as in Jacob et al. 2018): the forward pass
 * rounds and clips, the gradient passes unchanged inside the clip range and is zero outside.
 * The grid is a constant of the step (its scale comes from observed or max ranges).
 */
export function fakeQuantSte(x: tf.Tensor, g: Grid): tf.Tensor {
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    const { y, v } = quantizeDequantize(xi, g);
    save([v]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, insideMask(saved[0] as tf.Tensor, g)),
    };
  }) as CustomGrad);
  return f(x);
}

/**
 * LSQ (Esser et al., "Learned Step Size Quantization", ICLR 2020): the step s is trained. With
 * v = x/s and Qn = qmin − z, Qp = qmax − z (the grid relative to the zero point):
 *   ∂y/∂x = 1 for Qn ≤ v ≤ Qp, else 0
 *   ∂y/∂s = round(v) − v inside, Qn below, Qp above
 * and the step's gradient is scaled by `gradScale` = 1/√(N·Qp) (N: elements sharing the step) so
 * its updates are the size of the weights'. `z` is fixed (0 for symmetric weights).
 */
export function fakeQuantLsq(
  x: tf.Tensor,
  step: tf.Tensor,
  zeroPoint: number,
  qmin: number,
  qmax: number,
  gradScale: number,
): tf.Tensor {
  const lo = qmin - zeroPoint;
  const hi = qmax - zeroPoint;
  const f = tf.customGrad(((xi: tf.Tensor, s: tf.Tensor, save: tf.GradSaveFunc) => {
    const v = tf.div(xi, s);
    const r = tf.clipByValue(tf.round(v), lo, hi);
    save([v, s]);
    return {
      value: tf.mul(r, s),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sv, ss] = saved as [tf.Tensor, tf.Tensor];
        const below = tf.cast(tf.less(sv, lo), 'float32');
        const above = tf.cast(tf.greater(sv, hi), 'float32');
        const inside = tf.sub(1, tf.add(below, above));
        const dyds = tf.add(
          tf.mul(inside, tf.sub(tf.clipByValue(tf.round(sv), lo, hi), sv)),
          tf.add(tf.mul(below, lo), tf.mul(above, hi)),
        );
        const ds = sumTo(tf.mul(tf.mul(dy, dyds), gradScale), ss.shape);
        return [tf.mul(dy, inside), ds];
      },
    };
  }) as CustomGrad);
  return f(x, step);
}

/** Sums `t` over the axes broadcast against `shape` (a gradient back to a broadcast operand). */
export function sumTo(t: tf.Tensor, shape: readonly number[]): tf.Tensor {
  if (shape.length === 0) return tf.sum(t);
  const axes: number[] = [];
  const offset = t.rank - shape.length;
  for (let i = 0; i < t.rank; i++) if (i < offset || (shape[i - offset] === 1 && t.shape[i] !== 1)) axes.push(i);
  return tf.reshape(axes.length > 0 ? tf.sum(t, axes, true) : t, [...shape]);
}

/** The shape that puts one value per channel of `axis` against a tensor of `rank`. */
export function channelShape(rank: number, axis: number, channels: number): number[] {
  const s = new Array<number>(rank).fill(1);
  s[axis] = channels;
  return s;
}

/** Per-channel max|w| / qmax (1 for an all-zero channel), shaped to broadcast against w. */
export function maxScale(w: tf.Tensor, axis: number, qmax: number): tf.Tensor {
  const others = [...Array(w.rank).keys()].filter((a) => a !== axis);
  const m = tf.max(tf.abs(w), others, true);
  return tf.where(tf.equal(m, 0), tf.onesLike(m), tf.div(m, qmax));
}
