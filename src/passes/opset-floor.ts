import { OptionError } from '../errors.js';
import { hasAttr, intAttr } from '../graph/attributes.js';
import type { Graph, GraphNode, Model } from '../graph/model.js';
import { dtypeFromOnnx, type DType } from '../tensor/dtype.js';
import { ensureOpset, opsetRaiseBlockers } from './weight-only/opset.js';

/*
 * The one rule that keeps a rewritten model loadable: the default-domain opset a graph declares
 * must be at least the first opset that defines each of its nodes in the form it is written
 * (op type, attributes, element types). Passes write nodes in the model's current opset form and
 * may add ops that opset lacks (int8-dynamic's DynamicQuantizeLinear is 11, per-axis
 * DequantizeLinear 13, blocked DequantizeLinear 21); `settleOpset` then raises the declared
 * opset to what the graph needs, rewriting the existing nodes whose signature changed on the way
 * (passes/upgrade-opset.ts), or refuses by name when one cannot be rewritten.
 *
 * Versions from the ONNX operator change log (onnx/docs/Changelog.md).
 */

/** First ai.onnx opset of ops added after opset 7 (older ops are in every opset upgrades start at). */
const OP_SINCE: Readonly<Record<string, number>> = {
  Expand: 8,
  Where: 9,
  Erf: 9,
  Sign: 9,
  IsNaN: 9,
  NonZero: 9,
  Shrink: 9,
  Sinh: 9,
  Cosh: 9,
  Asinh: 9,
  Acosh: 9,
  Atanh: 9,
  OneHot: 9,
  EyeLike: 9,
  Compress: 9,
  MaxUnpool: 9,
  TfIdfVectorizer: 9,
  MeanVarianceNormalization: 9,
  ConstantOfShape: 9,
  QuantizeLinear: 10,
  DequantizeLinear: 10,
  MatMulInteger: 10,
  ConvInteger: 10,
  QLinearMatMul: 10,
  QLinearConv: 10,
  Mod: 10,
  IsInf: 10,
  ReverseSequence: 10,
  RoiAlign: 10,
  Resize: 10,
  ThresholdedRelu: 10,
  StringNormalizer: 10,
  DynamicQuantizeLinear: 11,
  Round: 11,
  Range: 11,
  GatherElements: 11,
  GatherND: 11,
  ScatterElements: 11,
  ScatterND: 11,
  CumSum: 11,
  Det: 11,
  BitShift: 11,
  Unique: 11,
  SequenceAt: 11,
  SequenceConstruct: 11,
  SequenceEmpty: 11,
  SequenceErase: 11,
  SequenceInsert: 11,
  SequenceLength: 11,
  SplitToSequence: 11,
  ConcatFromSequence: 11,
  Einsum: 12,
  Celu: 12,
  GreaterOrEqual: 12,
  LessOrEqual: 12,
  Trilu: 14,
  HardSwish: 14,
  CastLike: 15,
  Bernoulli: 15,
  GridSample: 16,
  LayerNormalization: 17,
  DFT: 17,
  STFT: 17,
  MelWeightMatrix: 17,
  BlackmanWindow: 17,
  HammingWindow: 17,
  HannWindow: 17,
  SequenceMap: 17,
  Mish: 18,
  GroupNormalization: 18,
  Col2Im: 18,
  CenterCropPad: 18,
  BitwiseAnd: 18,
  BitwiseOr: 18,
  BitwiseXor: 18,
  BitwiseNot: 18,
  DeformConv: 19,
  Gelu: 20,
  AffineGrid: 20,
  ImageDecoder: 20,
  RegexFullMatch: 20,
  StringConcat: 20,
  StringSplit: 20,
  RMSNormalization: 23,
  RotaryEmbedding: 23,
  Attention: 23,
};

/** First opset where Cast, QuantizeLinear and DequantizeLinear take each newer element type. */
const TYPE_SINCE: Partial<Record<DType, number>> = {
  bfloat16: 13,
  float8e4m3fn: 19,
  float8e4m3fnuz: 19,
  float8e5m2: 19,
  float8e5m2fnuz: 19,
  int4: 21,
  uint4: 21,
  float4e2m1: 23,
  float8e8m0: 24,
  int2: 25,
  uint2: 25,
};
/** Q/DQ took only (u)int8 and int32 (DequantizeLinear) until 21 added 16-bit integers. */
const QDQ_TYPE_SINCE: Partial<Record<DType, number>> = { ...TYPE_SINCE, int16: 21, uint16: 21 };

export interface OpsetNeed {
  readonly opset: number;
  /** What needs it, for notes: "DynamicQuantizeLinear", "per-axis DequantizeLinear", "Cast to bfloat16". */
  readonly what: string;
}

function dtypeOf(g: Graph, name: string): DType | undefined {
  if (name === '') return undefined;
  return (
    g.initializers.get(name)?.dtype ??
    g.valueInfo.get(name)?.dtype ??
    g.inputs.find((v) => v.name === name)?.dtype ??
    g.outputs.find((v) => v.name === name)?.dtype
  );
}

function dimsOf(g: Graph, name: string): readonly unknown[] | undefined {
  return g.initializers.get(name)?.dims ?? g.valueInfo.get(name)?.dims;
}

/** The first default-domain opset that defines `node` as written; undefined for other domains. */
export function nodeOpsetNeed(node: GraphNode, g: Graph): OpsetNeed | undefined {
  if (node.domain !== '') return undefined;
  const op = node.opType;
  let need: OpsetNeed = { opset: OP_SINCE[op] ?? 1, what: op };
  const atLeast = (opset: number, what: string) => {
    if (opset > need.opset) need = { opset, what };
  };
  const typed = (table: Partial<Record<DType, number>>, dtype: DType | undefined, what: (t: DType) => string) => {
    const v = dtype === undefined ? undefined : table[dtype];
    if (v !== undefined && dtype !== undefined) atLeast(v, what(dtype));
  };
  if (op === 'Cast') {
    const to = intAttr(node, 'to');
    if (to !== undefined)
      typed(TYPE_SINCE, dtypeFromOnnx(to, `node '${node.name}' (Cast) attribute 'to'`), (t) => `Cast to ${t}`);
    typed(TYPE_SINCE, dtypeOf(g, node.inputs[0] ?? ''), (t) => `Cast from ${t}`);
  }
  if (op === 'QuantizeLinear' || op === 'DequantizeLinear') {
    const scaleDims = dimsOf(g, node.inputs[1] ?? '');
    // Opset 10 takes a scalar scale only; a 1-D one is per-axis (13), a higher-rank one blocked (21).
    if (scaleDims && scaleDims.length === 1) atLeast(13, `per-axis ${op}`);
    if (hasAttr(node, 'block_size') || (scaleDims && scaleDims.length > 1)) atLeast(21, `blocked ${op}`);
    if (hasAttr(node, 'saturate')) atLeast(19, `${op} with saturate`);
    if (hasAttr(node, 'output_dtype')) atLeast(21, `${op} with output_dtype`);
    const codes = op === 'DequantizeLinear' ? node.inputs[0] : node.inputs[2];
    typed(QDQ_TYPE_SINCE, dtypeOf(g, codes ?? ''), (t) => `${t} ${op}`);
  }
  return need;
}

/** The highest opset any node of the graph needs, with what needs it. */
export function requiredOpset(model: Model): OpsetNeed {
  let need: OpsetNeed = { opset: 1, what: '' };
  for (const n of model.graph.nodes) {
    const v = nodeOpsetNeed(n, model.graph);
    if (v && v.opset > need.opset) need = v;
  }
  return need;
}

export interface OpsetRaise {
  readonly from: number;
  readonly to: number;
  /** The node form that needed `to`. */
  readonly what: string;
  /** Op types of the graph rewritten into their `to` form (an attribute turned input, ...). */
  readonly rewritten: readonly string[];
}

/**
 * Raises the model's default-domain opset to at least `need.opset`, rewriting the nodes whose
 * signature changed on the way; undefined when it already declares enough. Refuses
 * (QK_OPSET_TOO_OLD) when an existing node would change meaning and has no mechanical rewrite.
 */
export function raiseOpset(model: Model, need: OpsetNeed): OpsetRaise | undefined {
  const from = model.opsets.get('') ?? 1;
  if (need.opset <= from) return undefined;
  const rewritten = opsetRaiseBlockers(model, need.opset);
  const r = ensureOpset(model, need.opset);
  if (!r.ok) {
    throw new OptionError(
      'QK_OPSET_TOO_OLD',
      `${need.what} needs ai.onnx opset ${need.opset}; the model declares ${from}, and raising it would change the meaning of ${r.blockers.join(', ')}`,
      `re-export the model at opset ${need.opset} or newer, or \`exclude\` the layers that need it`,
      ['exclude'],
    );
  }
  return { from, to: need.opset, what: need.what, rewritten };
}

/** After a pass: raises the model to the opset its nodes need (requiredOpset). */
export function settleOpset(model: Model): OpsetRaise | undefined {
  return raiseOpset(model, requiredOpset(model));
}

/** The report's note for a raise. */
export function opsetRaiseNote(r: OpsetRaise): string {
  const how =
    r.rewritten.length > 0
      ? `; ${r.rewritten.join(', ')} rewritten into their opset-${r.to} form`
      : '; no node changes meaning';
  return `ai.onnx opset raised from ${r.from} to ${r.to} for ${r.what}${how}`;
}
