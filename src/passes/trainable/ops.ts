import { QuantkitError } from '../../errors.js';
import { attributesOf, nodeLabel } from '../../graph/attributes.js';
import type { GraphNode } from '../../graph/model.js';
import { dtypeFromOnnx } from '../../tensor/dtype.js';
import { tf } from '../../train/tf.js';

/*
 * ONNX operators as TensorFlow.js functions, with ONNX's semantics (NCHW layouts, explicit pads,
 * numpy broadcasting, opset-13+ input forms with the older attribute forms read too). Every op is
 * made of tfjs ops that have gradients, so the engine differentiates the whole graph. Integer
 * tensors (ids, shapes, indices) are int32: tfjs has no int64; shape chains stay exact below 2^31.
 */

export type Value = tf.Tensor;
/** Inputs by slot; undefined for an omitted optional input (''). */
export type OpFn = (node: GraphNode, inputs: (Value | undefined)[]) => Value[];

function need(node: GraphNode, inputs: (Value | undefined)[], slot: number): Value {
  const v = inputs[slot];
  if (!v)
    throw new QuantkitError(
      'QK_TRAIN_UNSUPPORTED_OP',
      `${nodeLabel(node)}: input ${slot} is missing`,
      'the model is not valid ONNX for this op',
    );
  return v;
}

function unsupported(node: GraphNode, what: string): QuantkitError {
  return new QuantkitError(
    'QK_TRAIN_UNSUPPORTED_OP',
    `${nodeLabel(node)}: ${what} is not supported by the training graph`,
    'export the model without it, or keep to the ops listed in the README (training section)',
  );
}

/** Integer values of a small host-side tensor (shapes, axes, starts ...). */
function ints(v: Value): number[] {
  return Array.from(v.dataSync(), Number);
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Axes from the input at `slot` (opset 13/18 forms) or the `axes` attribute (older forms). */
function axesOf(node: GraphNode, inputs: (Value | undefined)[], slot: number): number[] | undefined {
  const v = inputs[slot];
  if (v) return ints(v);
  return attributesOf(node).ints('axes');
}

function toNhwc(x: Value): Value {
  return tf.transpose(x, [0, 2, 3, 1]);
}

function toNchw(x: Value): Value {
  return tf.transpose(x, [0, 3, 1, 2]);
}

/** Conv/pool window attributes for 2-D spatial inputs (a 1-D op is run as H = 1). */
function window(node: GraphNode, kernel: readonly number[]) {
  const a = attributesOf(node);
  const autoPad = a.string('auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') throw unsupported(node, `auto_pad ${autoPad}`);
  const k = kernel.length;
  const pads = a.ints('pads') ?? new Array<number>(2 * k).fill(0);
  const strides = a.ints('strides') ?? new Array<number>(k).fill(1);
  const dilations = a.ints('dilations') ?? new Array<number>(k).fill(1);
  if (k === 1)
    return {
      pads: [0, pads[0] as number, 0, pads[1] as number],
      strides: [1, strides[0] as number] as [number, number],
      dilations: [1, dilations[0] as number] as [number, number],
      kernel: [1, kernel[0] as number] as [number, number],
    };
  if (k !== 2) throw unsupported(node, `a ${k}-D window`);
  return {
    pads,
    strides: strides as [number, number],
    dilations: dilations as [number, number],
    kernel: kernel as [number, number],
  };
}

/** Pads an NHWC tensor by ONNX pads [top, left, bottom, right] with `value`. */
function padNhwc(x: Value, pads: readonly number[], value = 0): Value {
  const [t, l, b, r] = pads as [number, number, number, number];
  if (t === 0 && l === 0 && b === 0 && r === 0) return x;
  return tf.pad(
    x,
    [
      [0, 0],
      [t, b],
      [l, r],
      [0, 0],
    ],
    value,
  );
}

function spatial2d(x: Value): { x: Value; oneD: boolean } {
  if (x.rank === 4) return { x, oneD: false };
  if (x.rank === 3) return { x: tf.expandDims(x, 2), oneD: true };
  throw new QuantkitError(
    'QK_TRAIN_UNSUPPORTED_OP',
    `input of rank ${x.rank}`,
    'Conv and pools take 1-D or 2-D inputs',
  );
}

/**
 * A 2-D convolution as im2col + matMul over tfjs ops (x NHWC, already padded; filter
 * [kh, kw, in, out]): the kh·kw shifted windows side by side on the channel axis, then one matMul.
 * tfjs's own conv2d gradient (its CPU Conv2DBackpropFilter kernel) took 95 % of a training step on
 * the digits CNN; the gradients of slice, concat and matMul are the same math, much faster.
 */
function convIm2col(x: Value, filter: Value, strides: [number, number], dilations: [number, number]): Value {
  const [n, hp, wp, c] = x.shape as [number, number, number, number];
  const [kh, kw, , out] = filter.shape as [number, number, number, number];
  const [sh, sw] = strides;
  const [dh, dw] = dilations;
  const ho = Math.floor((hp - (kh - 1) * dh - 1) / sh) + 1;
  const wo = Math.floor((wp - (kw - 1) * dw - 1) / sw) + 1;
  const cols: Value[] = [];
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++) {
      const begin = [0, i * dh, j * dw, 0];
      cols.push(
        sh === 1 && sw === 1
          ? tf.slice(x, begin, [n, ho, wo, c])
          : tf.stridedSlice(x, begin, [n, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1, c], [1, sh, sw, 1]),
      );
    }
  const patches = cols.length === 1 ? (cols[0] as Value) : tf.concat(cols, 3);
  const y = tf.matMul(
    tf.reshape(patches, [n * ho * wo, kh * kw * c]) as tf.Tensor2D,
    tf.reshape(filter, [kh * kw * c, out]) as tf.Tensor2D,
  );
  return tf.reshape(y, [n, ho, wo, out]);
}

const conv: OpFn = (node, inputs) => {
  const w0 = need(node, inputs, 1);
  const { x: x4, oneD } = spatial2d(need(node, inputs, 0));
  const w = oneD ? tf.expandDims(w0, 2) : w0;
  const [, inPerGroup, kh, kw] = w.shape as [number, number, number, number];
  const group = attributesOf(node).int('group', 1);
  const win = window(node, oneD ? [kw] : [kh, kw]);
  const x = padNhwc(toNhwc(x4), win.pads);
  const filter = tf.transpose(w, [2, 3, 1, 0]); // [kh, kw, in/group, out]
  let y: Value;
  if (group === 1) {
    y = convIm2col(x, filter, win.strides, win.dilations);
  } else {
    if ((x.shape[3] as number) !== group * inPerGroup)
      throw unsupported(node, 'a group count that does not divide the channels');
    const xs = tf.split(x, group, 3);
    const fs = tf.split(filter, group, 3);
    y = tf.concat(
      xs.map((xg, i) => convIm2col(xg, fs[i] as Value, win.strides, win.dilations)),
      3,
    );
  }
  const b = inputs[2];
  if (b) y = tf.add(y, b);
  let out = toNchw(y);
  if (oneD) out = tf.squeeze(out, [2]);
  return [out];
};

function pool(kind: 'max' | 'avg'): OpFn {
  return (node, inputs) => {
    const a = attributesOf(node);
    if (a.int('ceil_mode', 0) !== 0) throw unsupported(node, 'ceil_mode 1');
    if (a.int('storage_order', 0) !== 0) throw unsupported(node, 'storage_order 1');
    const kernel = a.ints('kernel_shape');
    if (!kernel) throw unsupported(node, 'a pool without kernel_shape');
    const { x: x4, oneD } = spatial2d(need(node, inputs, 0));
    const win = window(node, kernel);
    if (win.dilations.some((d) => d !== 1)) throw unsupported(node, 'dilated pooling');
    const padded = win.pads.some((p) => p !== 0);
    if (kind === 'avg' && padded && a.int('count_include_pad', 0) === 0)
      throw unsupported(node, 'AveragePool with pads and count_include_pad 0');
    const x = padNhwc(toNhwc(x4), win.pads, kind === 'max' ? -Infinity : 0) as tf.Tensor4D;
    const y =
      kind === 'max'
        ? tf.maxPool(x, win.kernel, win.strides, 'valid')
        : tf.avgPool(x, win.kernel, win.strides, 'valid');
    let out = toNchw(y);
    if (oneD) out = tf.squeeze(out, [2]);
    return [out];
  };
}

function matmul(a: Value, b: Value): Value {
  if (a.rank >= 2 && b.rank === 2) {
    const k = a.shape[a.rank - 1] as number;
    const lead = a.shape.slice(0, -1);
    const y = tf.matMul(tf.reshape(a, [-1, k]) as tf.Tensor2D, b as tf.Tensor2D);
    return tf.reshape(y, [...lead, b.shape[1] as number]);
  }
  return tf.matMul(a, b);
}

const gemm: OpFn = (node, inputs) => {
  const a = attributesOf(node);
  let y = tf.matMul(
    need(node, inputs, 0) as tf.Tensor2D,
    need(node, inputs, 1) as tf.Tensor2D,
    a.int('transA', 0) === 1,
    a.int('transB', 0) === 1,
  ) as Value;
  const alpha = a.float('alpha', 1);
  if (alpha !== 1) y = tf.mul(y, alpha);
  const c = inputs[2];
  if (c) {
    const beta = a.float('beta', 1);
    y = tf.add(y, beta === 1 ? c : tf.mul(c, beta));
  }
  return [y];
};

/** Binary arithmetic with both sides in one dtype (shape chains mix int32 constants and shapes). */
function binary(f: (a: Value, b: Value) => Value): OpFn {
  return (node, inputs) => {
    let a = need(node, inputs, 0);
    let b = need(node, inputs, 1);
    if (a.dtype !== b.dtype) {
      a = tf.cast(a, 'float32');
      b = tf.cast(b, 'float32');
    }
    return [f(a, b)];
  };
}

function unary(f: (x: Value) => Value): OpFn {
  return (node, inputs) => [f(need(node, inputs, 0))];
}

const SQRT1_2 = Math.SQRT1_2;

const gelu: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  if (attributesOf(node).string('approximate', 'none') === 'tanh') {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return [tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1))];
  }
  return [tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, SQRT1_2)), 1))];
};

function softmaxLike(f: (x: Value) => Value): OpFn {
  return (node, inputs) => {
    const x = need(node, inputs, 0);
    const axis = normAxis(attributesOf(node).int('axis', -1), x.rank);
    if (axis === x.rank - 1) return [f(x)];
    const perm = [...Array(x.rank).keys()];
    perm[axis] = x.rank - 1;
    perm[x.rank - 1] = axis;
    return [tf.transpose(f(tf.transpose(x, perm)), perm)];
  };
}

const layerNorm: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const a = attributesOf(node);
  const axis = normAxis(a.int('axis', -1), x.rank);
  const axes = [...Array(x.rank - axis).keys()].map((i) => i + axis);
  const { mean, variance } = tf.moments(x, axes, true);
  let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, a.float('epsilon', 1e-5))));
  y = tf.mul(y, need(node, inputs, 1));
  const b = inputs[2];
  return [b ? tf.add(y, b) : y];
};

/** Inference-mode BatchNormalization (running statistics are constants of the graph). */
const batchNorm: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const a = attributesOf(node);
  if (a.int('training_mode', 0) !== 0) throw unsupported(node, 'training_mode 1');
  const shape = [1, -1, ...new Array<number>(Math.max(0, x.rank - 2)).fill(1)];
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((s) => tf.reshape(need(node, inputs, s), shape)) as [
    Value,
    Value,
    Value,
    Value,
  ];
  const inv = tf.rsqrt(tf.add(variance, a.float('epsilon', 1e-5)));
  return [tf.add(tf.mul(tf.mul(tf.sub(x, mean), inv), scale), bias)];
};

const flatten: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const axis = normAxis(attributesOf(node).int('axis', 1), x.rank);
  const outer = x.shape.slice(0, axis).reduce((p, d) => p * d, 1);
  return [tf.reshape(x, [outer, -1])];
};

const reshape: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const allowZero = attributesOf(node).int('allowzero', 0) === 1;
  const shape = ints(need(node, inputs, 1)).map((d, i) => (d === 0 && !allowZero ? (x.shape[i] as number) : d));
  return [tf.reshape(x, shape)];
};

const transpose: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const perm = attributesOf(node).ints('perm') ?? [...Array(x.rank).keys()].reverse();
  return [tf.transpose(x, perm)];
};

const gather: OpFn = (node, inputs) => {
  const data = need(node, inputs, 0);
  let indices = need(node, inputs, 1);
  const axis = normAxis(attributesOf(node).int('axis', 0), data.rank);
  const dim = data.shape[axis] as number;
  // ONNX allows negative indices (counted from the end); tfjs does not.
  indices = tf.where(tf.less(indices, tf.scalar(0, 'int32')), tf.add(indices, tf.scalar(dim, 'int32')), indices);
  if (indices.rank === 0) return [tf.squeeze(tf.gather(data, tf.reshape(indices, [1]), axis), [axis])];
  if (axis === 0 && data.dtype === 'float32' && data.rank === 2 && dim <= EMBEDDING_ONE_HOT_MAX) {
    // An embedding lookup as one-hot · table: the same values (one product by 1, the rest by 0),
    // and a matMul gradient, where tf.gather's needs UnsortedSegmentSum, which the WebAssembly
    // backend lacks.
    const rows = tf.matMul(tf.oneHot(tf.reshape(indices, [-1]), dim) as tf.Tensor2D, data as tf.Tensor2D);
    return [tf.reshape(rows, [...indices.shape, data.shape[1] as number])];
  }
  return [tf.gather(data, indices, axis)];
};

/** Largest table looked up as one-hot · table (beyond it the one-hot rows cost more than they save). */
const EMBEDDING_ONE_HOT_MAX = 4096;

const unsqueeze: OpFn = (node, inputs) => {
  let x = need(node, inputs, 0);
  const axes = axesOf(node, inputs, 1);
  if (!axes) throw unsupported(node, 'Unsqueeze without axes');
  const rank = x.rank + axes.length;
  for (const ax of axes.map((a) => normAxis(a, rank)).sort((p, q) => p - q)) x = tf.expandDims(x, ax);
  return [x];
};

const squeeze: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const axes = axesOf(node, inputs, 1);
  return [
    axes
      ? tf.squeeze(
          x,
          axes.map((a) => normAxis(a, x.rank)),
        )
      : tf.squeeze(x),
  ];
};

const concat: OpFn = (node, inputs) => {
  const xs = inputs.filter((v): v is Value => v !== undefined);
  const first = xs[0];
  if (!first) throw unsupported(node, 'Concat of nothing');
  const dtype = xs.every((v) => v.dtype === first.dtype) ? first.dtype : 'float32';
  const axis = normAxis(attributesOf(node).int('axis', 0), first.rank);
  return [
    tf.concat(
      xs.map((v) => (v.dtype === dtype ? v : tf.cast(v, dtype))),
      axis,
    ),
  ];
};

const INT32_MAX = 2147483647;

const slice: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const a = attributesOf(node);
  const starts = inputs[1] ? ints(inputs[1]) : a.ints('starts');
  const ends = inputs[2] ? ints(inputs[2]) : a.ints('ends');
  if (!starts || !ends) throw unsupported(node, 'Slice without starts/ends');
  const axes = (inputs[3] ? ints(inputs[3]) : a.ints('axes')) ?? starts.map((_, i) => i);
  const steps = inputs[4] ? ints(inputs[4]) : starts.map(() => 1);
  const begin = x.shape.map(() => 0);
  const end = [...x.shape] as number[];
  const stride = x.shape.map(() => 1);
  for (let i = 0; i < axes.length; i++) {
    const ax = normAxis(axes[i] as number, x.rank);
    const dim = x.shape[ax] as number;
    const step = steps[i] as number;
    if (step <= 0) throw unsupported(node, 'a Slice with a negative step');
    const clampIdx = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
    begin[ax] = clampIdx(starts[i] as number);
    end[ax] = clampIdx(ends[i] as number);
    stride[ax] = step;
  }
  if (stride.every((s) => s === 1))
    return [
      tf.slice(
        x,
        begin,
        end.map((e, i) => Math.max(0, e - (begin[i] as number))),
      ),
    ];
  return [tf.stridedSlice(x, begin, end, stride)];
};

const split: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const a = attributesOf(node);
  const axis = normAxis(a.int('axis', 0), x.rank);
  const sizes = inputs[1] ? ints(inputs[1]) : a.ints('split');
  return tf.split(x, sizes ?? a.int('num_outputs', node.outputs.length), axis);
};

const shape: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const a = attributesOf(node);
  const start = normAxis(a.int('start', 0), x.rank);
  const endAttr = a.int('end', x.rank);
  const end = endAttr < 0 ? endAttr + x.rank : Math.min(endAttr, x.rank);
  return [tf.tensor1d(x.shape.slice(start, end), 'int32')];
};

const cast: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  const to = dtypeFromOnnx(attributesOf(node).int('to', 1), nodeLabel(node));
  const dtype = to === 'bool' ? 'bool' : to.startsWith('float') || to.startsWith('bfloat') ? 'float32' : 'int32';
  return [x.dtype === dtype ? x : tf.cast(x, dtype)];
};

function reduce(f: (x: Value, axes: number[] | undefined, keep: boolean) => Value): OpFn {
  return (node, inputs) => {
    const x = need(node, inputs, 0);
    const keep = attributesOf(node).int('keepdims', 1) === 1;
    const axes = axesOf(node, inputs, 1)?.map((ax) => normAxis(ax, x.rank));
    return [f(x, axes && axes.length > 0 ? axes : undefined, keep)];
  };
}

const globalAveragePool: OpFn = (node, inputs) => {
  const x = need(node, inputs, 0);
  return [
    tf.mean(
      x,
      [...Array(x.rank - 2).keys()].map((i) => i + 2),
      true,
    ),
  ];
};

/** The supported op set (default ONNX domain), by op type. */
export const OPS: Readonly<Record<string, OpFn>> = {
  Conv: conv,
  BatchNormalization: batchNorm,
  Relu: unary((x) => tf.relu(x)),
  Gelu: gelu,
  Erf: unary((x) => tf.erf(x)),
  Sigmoid: unary((x) => tf.sigmoid(x)),
  Tanh: unary((x) => tf.tanh(x)),
  Sqrt: unary((x) => tf.sqrt(x)),
  Exp: unary((x) => tf.exp(x)),
  Neg: unary((x) => tf.neg(x)),
  Reciprocal: unary((x) => tf.reciprocal(x)),
  Identity: unary((x) => x),
  Dropout: unary((x) => x),
  Gemm: gemm,
  MatMul: (node, inputs) => [matmul(need(node, inputs, 0), need(node, inputs, 1))],
  Add: binary((a, b) => tf.add(a, b)),
  Sub: binary((a, b) => tf.sub(a, b)),
  Mul: binary((a, b) => tf.mul(a, b)),
  Div: binary((a, b) => (a.dtype === 'int32' ? tf.floorDiv(a, b) : tf.div(a, b))),
  Pow: binary((a, b) => tf.pow(a, b)),
  Flatten: flatten,
  Reshape: reshape,
  Transpose: transpose,
  MaxPool: pool('max'),
  AveragePool: pool('avg'),
  GlobalAveragePool: globalAveragePool,
  Gather: gather,
  LayerNormalization: layerNorm,
  Softmax: softmaxLike((x) => tf.softmax(x)),
  LogSoftmax: softmaxLike((x) => tf.logSoftmax(x)),
  Concat: concat,
  Split: split,
  Slice: slice,
  Shape: shape,
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Cast: cast,
  ReduceMean: reduce((x, axes, keep) => tf.mean(x, axes, keep)),
  ReduceSum: reduce((x, axes, keep) => tf.sum(x, axes, keep)),
};

/** Clamps int64 values (Slice ends of INT64_MAX ...) into int32, tfjs's widest integer. */
export function int64ToInt32(data: BigInt64Array): Int32Array {
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as bigint;
    out[i] = v > BigInt(INT32_MAX) ? INT32_MAX : v < -BigInt(INT32_MAX) - 1n ? -INT32_MAX - 1 : Number(v);
  }
  return out;
}
