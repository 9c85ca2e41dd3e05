import { dtypeFromOnnx, type DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { hasAttr, intAttr, intsAttr, stringAttr } from './attributes.js';
import type { Dim, Graph, GraphNode, ValueInfo } from './model.js';
import { topologicalOrder } from './topology.js';

/*
 * Shape and dtype inference for the ops quantization cares about, following each operator's
 * shape rules in the ONNX operator docs. Symbolic dims (dim_param names such as 'batch') flow
 * through unchanged; what cannot be known is null (a dim) or undefined (the rank). Ops not listed
 * leave their outputs unknown: inference is a help for passes, never a gate.
 */

interface Known {
  dtype: DType | undefined;
  dims: Dim[] | undefined;
}

type Rule = (node: GraphNode, ins: Known[], ctx: Ctx) => Known[];

interface Ctx {
  /** Small constant inputs (shape, axes), read from initializers. */
  constant(name: string): Tensor | undefined;
  opset: number;
}

const UNKNOWN: Known = { dtype: undefined, dims: undefined };

function intsOf(t: Tensor | undefined): number[] | undefined {
  if (!t || (t.dtype !== 'int64' && t.dtype !== 'int32')) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

/** numpy broadcasting of two dims (ONNX Broadcasting.md, multidirectional). */
function broadcastDim(a: Dim, b: Dim): Dim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (a === b) return a;
  if (typeof a === 'number' && b !== null) return a; // a valid model has b == a here
  if (typeof b === 'number' && a !== null) return b;
  return null;
}

export function broadcastShapes(shapes: (Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => s === undefined)) return undefined;
  const list = shapes as Dim[][];
  const rank = Math.max(0, ...list.map((s) => s.length));
  const out: Dim[] = [];
  for (let k = 0; k < rank; k++) {
    let d: Dim = 1;
    for (const s of list) {
      const i = s.length - rank + k;
      if (i >= 0) d = broadcastDim(d, s[i] as Dim);
    }
    out.push(d);
  }
  return out;
}

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

function product(dims: Dim[]): Dim {
  if (dims.length === 1) return dims[0] as Dim; // a lone symbolic dim keeps its name
  let p = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return null;
    p *= d;
  }
  return p;
}

const sameAsFirst: Rule = (_n, ins) => [ins[0] ?? UNKNOWN];

const elementwise: Rule = (_n, ins) => [{ dtype: ins[0]?.dtype, dims: broadcastShapes(ins.map((i) => i.dims)) }];

const comparison: Rule = (n, ins, c) => [{ ...(elementwise(n, ins, c)[0] as Known), dtype: 'bool' }];

const matmul: Rule = (_n, [a, b]) => {
  const da = a?.dims;
  const db = b?.dims;
  if (!da || !db || da.length === 0 || db.length === 0) return [{ dtype: a?.dtype, dims: undefined }];
  // ONNX MatMul = numpy.matmul: 1-D operands gain a dim that is dropped again afterwards.
  const A = da.length === 1 ? [1, da[0] as Dim] : da;
  const B = db.length === 1 ? [db[0] as Dim, 1] : db;
  const batch = broadcastShapes([A.slice(0, -2), B.slice(0, -2)]) as Dim[];
  const out = [...batch];
  if (da.length > 1) out.push(A[A.length - 2] as Dim);
  if (db.length > 1) out.push(B[B.length - 1] as Dim);
  return [{ dtype: a?.dtype, dims: out }];
};

const gemm: Rule = (n, [a, b]) => {
  if (!a?.dims || !b?.dims || a.dims.length !== 2 || b.dims.length !== 2) return [{ dtype: a?.dtype, dims: undefined }];
  const m = intAttr(n, 'transA', 0) ? a.dims[1] : a.dims[0];
  const nn = intAttr(n, 'transB', 0) ? b.dims[0] : b.dims[1];
  return [{ dtype: a.dtype, dims: [m as Dim, nn as Dim] }];
};

/** Conv output size per spatial axis (Conv op docs; auto_pad SAME_* gives ceil(in / stride)). */
const conv: Rule = (n, [x, w]) => {
  if (!x?.dims || !w?.dims || x.dims.length < 3) return [{ dtype: x?.dtype, dims: undefined }];
  const spatial = x.dims.length - 2;
  const kernel = intsAttr(n, 'kernel_shape') ?? w.dims.slice(2);
  const strides = intsAttr(n, 'strides') ?? new Array<number>(spatial).fill(1);
  const dil = intsAttr(n, 'dilations') ?? new Array<number>(spatial).fill(1);
  const pads = intsAttr(n, 'pads') ?? new Array<number>(2 * spatial).fill(0);
  const autoPad = stringAttr(n, 'auto_pad');
  const out: Dim[] = [x.dims[0] as Dim, w.dims[0] as Dim];
  for (let i = 0; i < spatial; i++) {
    const d = x.dims[2 + i];
    const k = kernel[i];
    const s = strides[i] ?? 1;
    if (typeof d !== 'number' || typeof k !== 'number') {
      out.push(null);
      continue;
    }
    const eff = (dil[i] ?? 1) * (k - 1) + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out.push(Math.ceil(d / s));
    else if (autoPad === 'VALID') out.push(Math.floor((d - eff) / s) + 1);
    else out.push(Math.floor((d + (pads[i] ?? 0) + (pads[i + spatial] ?? 0) - eff) / s) + 1);
  }
  return [{ dtype: x.dtype, dims: out }];
};

const gather: Rule = (n, [data, idx]) => {
  if (!data?.dims || !idx?.dims) return [{ dtype: data?.dtype, dims: undefined }];
  const axis = normAxis(intAttr(n, 'axis', 0), data.dims.length);
  return [{ dtype: data.dtype, dims: [...data.dims.slice(0, axis), ...idx.dims, ...data.dims.slice(axis + 1)] }];
};

const reshape: Rule = (n, [x], c) => {
  const shape = intsOf(c.constant(n.inputs[1] ?? ''));
  if (!shape) return [{ dtype: x?.dtype, dims: undefined }];
  const allowZero = intAttr(n, 'allowzero', 0) === 1;
  const out: Dim[] = shape.map((s, i) => (s === 0 && !allowZero ? (x?.dims?.[i] ?? null) : s === -1 ? null : s));
  const minus = shape.indexOf(-1);
  if (minus >= 0) {
    const total = x?.dims ? product(x.dims) : null;
    const rest = product(out.filter((_, i) => i !== minus));
    out[minus] = typeof total === 'number' && typeof rest === 'number' && rest > 0 ? total / rest : null;
  }
  return [{ dtype: x?.dtype, dims: out }];
};

const transpose: Rule = (n, [x]) => {
  if (!x?.dims) return [{ dtype: x?.dtype, dims: undefined }];
  const dims = x.dims;
  const perm = intsAttr(n, 'perm') ?? dims.map((_, i) => dims.length - 1 - i);
  return [{ dtype: x.dtype, dims: perm.map((p) => dims[p] ?? null) }];
};

const flatten: Rule = (n, [x]) => {
  if (!x?.dims) return [{ dtype: x?.dtype, dims: undefined }];
  const axis = normAxis(intAttr(n, 'axis', 1), x.dims.length);
  return [{ dtype: x.dtype, dims: [product(x.dims.slice(0, axis)), product(x.dims.slice(axis))] }];
};

const cast: Rule = (n, [x]) => {
  const to = intAttr(n, 'to');
  return [{ dtype: to !== undefined ? dtypeFromOnnx(to, `node '${n.name}' Cast.to`) : undefined, dims: x?.dims }];
};

/** QuantizeLinear: y has the zero point's type, else output_dtype, else uint8 (opset 21 docs). */
const quantizeLinear: Rule = (n, [x, , zp]) => {
  const outputDtype = intAttr(n, 'output_dtype', 0);
  const dtype = zp?.dtype ?? (outputDtype !== 0 ? dtypeFromOnnx(outputDtype) : 'uint8');
  return [{ dtype, dims: x?.dims }];
};

const dequantizeLinear: Rule = (_n, [x, scale]) => [{ dtype: scale?.dtype ?? 'float32', dims: x?.dims }];

const concat: Rule = (n, ins) => {
  const first = ins[0];
  if (!first?.dims || ins.some((i) => !i.dims)) return [{ dtype: first?.dtype, dims: undefined }];
  const axis = normAxis(intAttr(n, 'axis', 0), first.dims.length);
  const out = [...first.dims];
  let sum: Dim = 0;
  for (const i of ins) {
    const d = (i.dims as Dim[])[axis];
    sum = typeof sum === 'number' && typeof d === 'number' ? sum + d : null;
  }
  out[axis] = sum;
  return [{ dtype: first.dtype, dims: out }];
};

/** Axes of Squeeze/Unsqueeze: an input from opset 13, an attribute before. */
function axesOf(n: GraphNode, c: Ctx): number[] | undefined {
  return c.opset >= 13 ? intsOf(c.constant(n.inputs[1] ?? '')) : intsAttr(n, 'axes');
}

const unsqueeze: Rule = (n, [x], c) => {
  const axes = axesOf(n, c);
  if (!x?.dims || !axes) return [{ dtype: x?.dtype, dims: undefined }];
  const rank = x.dims.length + axes.length;
  const at = new Set(axes.map((a) => normAxis(a, rank)));
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : (x.dims[k++] ?? null));
  return [{ dtype: x.dtype, dims: out }];
};

const squeeze: Rule = (n, [x], c) => {
  if (!x?.dims) return [{ dtype: x?.dtype, dims: undefined }];
  const given = n.inputs.length > 1 || hasAttr(n, 'axes') ? axesOf(n, c) : undefined;
  if ((n.inputs.length > 1 || hasAttr(n, 'axes')) && !given) return [{ dtype: x.dtype, dims: undefined }];
  if (!given && x.dims.some((d) => typeof d !== 'number')) return [{ dtype: x.dtype, dims: undefined }];
  const rank = x.dims.length;
  const drop = new Set(given ? given.map((a) => normAxis(a, rank)) : x.dims.flatMap((d, i) => (d === 1 ? [i] : [])));
  return [{ dtype: x.dtype, dims: x.dims.filter((_, i) => !drop.has(i)) }];
};

const RULES: Record<string, Rule> = {
  MatMul: matmul,
  Gemm: gemm,
  Conv: conv,
  Gather: gather,
  Reshape: reshape,
  Transpose: transpose,
  Flatten: flatten,
  Cast: cast,
  QuantizeLinear: quantizeLinear,
  DequantizeLinear: dequantizeLinear,
  Concat: concat,
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Add: elementwise,
  Sub: elementwise,
  Mul: elementwise,
  Div: elementwise,
  Pow: elementwise,
  Max: elementwise,
  Min: elementwise,
  Sum: elementwise,
  Mean: elementwise,
  Where: (n, ins, c) => [{ ...(elementwise(n, ins, c)[0] as Known), dtype: ins[1]?.dtype }],
  Equal: comparison,
  Less: comparison,
  Greater: comparison,
  LessOrEqual: comparison,
  GreaterOrEqual: comparison,
  Relu: sameAsFirst,
  Sigmoid: sameAsFirst,
  Tanh: sameAsFirst,
  Gelu: sameAsFirst,
  Erf: sameAsFirst,
  Sqrt: sameAsFirst,
  Exp: sameAsFirst,
  Log: sameAsFirst,
  Neg: sameAsFirst,
  Abs: sameAsFirst,
  Identity: sameAsFirst,
  Softmax: sameAsFirst,
  LogSoftmax: sameAsFirst,
  LeakyRelu: sameAsFirst,
  HardSigmoid: sameAsFirst,
  HardSwish: sameAsFirst,
  Clip: sameAsFirst,
  Dropout: sameAsFirst,
  LayerNormalization: sameAsFirst,
  BatchNormalization: sameAsFirst,
  InstanceNormalization: sameAsFirst,
  Reciprocal: sameAsFirst,
  Floor: sameAsFirst,
  Ceil: sameAsFirst,
  Round: sameAsFirst,
  Sign: sameAsFirst,
};

/** Ops whose shapes this module infers (default ONNX domain). */
export const SHAPE_INFERRED_OPS: readonly string[] = Object.keys(RULES);

// Constant inputs larger than this are not shapes or axes; they are left unread.
const MAX_CONSTANT_ELEMENTS = 64;

/**
 * Infers dtype and dims of every node output it can and records them in graph.valueInfo (and in
 * graph.outputs where those were unknown). Known entries from the file are kept when inference
 * knows less. `opset` is the model's ai.onnx version (axes moved to inputs at 13).
 */
export function inferShapes(graph: Graph, opset: number): void {
  const known = new Map<string, Known>();
  for (const v of [...graph.inputs, ...graph.valueInfo.values(), ...graph.outputs])
    known.set(v.name, { dtype: v.dtype, dims: v.dims });
  for (const init of graph.initializers.values()) known.set(init.name, { dtype: init.dtype, dims: [...init.dims] });
  const ctx: Ctx = {
    opset,
    constant: (name) => {
      const init = graph.initializers.get(name);
      if (!init || init.dims.reduce((a, b) => a * b, 1) > MAX_CONSTANT_ELEMENTS) return undefined;
      return init.load();
    },
  };
  const outputs = new Map(graph.outputs.map((v) => [v.name, v]));
  for (const node of topologicalOrder(graph)) {
    const rule = node.domain === '' ? RULES[node.opType] : undefined;
    if (!rule) continue;
    const ins = node.inputs.map((i) => (i === '' ? UNKNOWN : (known.get(i) ?? UNKNOWN)));
    const results = rule(node, ins, ctx);
    node.outputs.forEach((name, k) => {
      const r = results[k];
      if (!name || !r) return;
      const before = known.get(name);
      const merged: Known = { dtype: r.dtype ?? before?.dtype, dims: r.dims ?? before?.dims };
      known.set(name, merged);
      const out = outputs.get(name);
      if (out) {
        out.dtype ??= merged.dtype;
        out.dims ??= merged.dims;
      } else {
        const v: ValueInfo = { name, dtype: merged.dtype, dims: merged.dims };
        graph.valueInfo.set(name, v);
      }
    });
  }
}
