import { QuantkitError } from '../errors.js';
import { attributesOf, makeAttr, removeAttr } from '../graph/attributes.js';
import { memoryInitializer, type Graph, type GraphNode, type Model } from '../graph/model.js';
import { uniqueName, usedNames } from '../graph/topology.js';
import type { Tensor } from '../tensor/tensor.js';

/*
 * Brings an old export (opset 7-12) to opset 13, the first where DequantizeLinear is per-axis, or
 * any export to another target (11 for DynamicQuantizeLinear, 19 for float8, 21 for int4), by
 * rewriting the ops whose *signature* changed between the two (Changelog.md of the ONNX operators):
 *   Squeeze/Unsqueeze 13, ReduceSum 13, Split 13: axes/split attribute → int64 input
 *   ReduceMean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare 18: axes attribute → int64 input
 *   Softmax/LogSoftmax/Hardmax 13: before, the input was coerced to 2-D at `axis` and normalized
 *     over everything after it; kept as is when `axis` is the last axis, otherwise rewritten as
 *     Reshape(op(Flatten(x, axis), axis = -1), Shape(x)), the old definition spelled out
 *   Clip 11: min/max attributes → inputs;  Pad 11: pads/value attributes → inputs
 *   Slice 10: starts/ends/axes attributes → inputs;  Dropout 12: ratio attribute → input
 *   BatchNormalization: spatial/consumed_inputs dropped (removed at 9 and 6)
 *   Upsample (deprecated at 10) → Resize with asymmetric coordinates, nearest rounding down
 * Ops whose semantics changed without a mechanical rewrite are refused by name.
 */

export const UPGRADE_TARGET_OPSET = 13;
const REDUCE_18 = new Set([
  'ReduceMean',
  'ReduceMax',
  'ReduceMin',
  'ReduceProd',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceSumSquare',
]);
const SOFTMAX_13 = new Set(['Softmax', 'LogSoftmax', 'Hardmax']);
/** Ops whose incompatible revisions (opset-raise blockers) this pass rewrites. */
export const UPGRADABLE = new Set([
  'Squeeze',
  'Unsqueeze',
  'ReduceSum',
  'Split',
  'Clip',
  'Pad',
  'Slice',
  'Dropout',
  'BatchNormalization',
  'Upsample',
  ...REDUCE_18,
  ...SOFTMAX_13,
]);
const UNSUPPORTED = new Set([
  'Scatter',
  'Scan',
  'Loop',
  'If',
  'ImageScaler',
  'Crop',
  'Affine',
  'ParametricSoftplus',
  'ScaledTanh',
  'ThresholdedRelu_exp',
]);

/** Typed reads that also remove the attribute from the node (it becomes an input, or goes). */
function taker(node: GraphNode) {
  const read = attributesOf(node);
  const take = <T>(name: string, value: T): T => {
    removeAttr(node, name);
    return value;
  };
  return {
    int: (name: string) => take(name, read.int(name)),
    int64s: (name: string) => take(name, read.int64s(name)),
    float: (name: string) => take(name, read.float(name)),
    floats: (name: string) => take(name, read.floats(name)),
    string: (name: string) => take(name, read.string(name)),
    drop: (name: string) => void removeAttr(node, name),
  };
}

export interface UpgradeResult {
  from: number;
  to: number;
  rewritten: string[];
}

export function upgradeOpset(model: Model, target = UPGRADE_TARGET_OPSET): UpgradeResult {
  const from = model.opsets.get('') ?? target;
  if (from >= target) return { from, to: from, rewritten: [] };
  if (from < 7) {
    throw new QuantkitError(
      'QK_OPSET_UPGRADE_UNSUPPORTED',
      `the model uses ai.onnx opset ${from}; upgrades start at opset 7`,
      're-export the model with a newer exporter (opset 13 or later)',
    );
  }
  const g: Graph = model.graph;
  const taken = usedNames(g);
  const rewritten: string[] = [];
  const constant = (base: string, t: Tensor) => {
    const name = uniqueName(g, base, taken);
    g.initializers.set(name, memoryInitializer(name, t));
    return name;
  };
  const ints = (base: string, v: readonly (number | bigint)[]) =>
    constant(base, { dtype: 'int64', dims: [v.length], data: BigInt64Array.from(v, (x) => BigInt(x)) });
  const f32 = (base: string, v: number) => constant(base, { dtype: 'float32', dims: [], data: Float32Array.of(v) });
  const newNodes: GraphNode[] = [];
  // A rewrite applies when the raise crosses the version that changed the op: a raise from 9 to
  // 11 (int8-dynamic's DynamicQuantizeLinear) moves Clip's bounds to inputs but leaves Squeeze's
  // axes an attribute, as opset 11 still spells it.
  const crosses = (version: number) => from < version && target >= version;
  const rankOf = (name: string): number | undefined => {
    const v = g.valueInfo.get(name) ?? g.inputs.find((i) => i.name === name) ?? g.outputs.find((o) => o.name === name);
    return v?.dims?.length ?? g.initializers.get(name)?.dims.length;
  };
  for (const n of g.nodes) {
    const label = n.name || n.outputs[0] || '?';
    if (n.domain !== '') {
      newNodes.push(n);
      continue;
    }
    if (UNSUPPORTED.has(n.opType)) {
      throw new QuantkitError(
        'QK_OPSET_UPGRADE_UNSUPPORTED',
        `node '${label}' (${n.opType}) has no automatic upgrade from opset ${from} to ${target}`,
        're-export the model at opset 13 or later (torch.onnx.export(..., opset_version=17))',
      );
    }
    const signature = () => `${n.opType}(${n.inputs.join(',')})[${n.attributes.map((a) => a.name).join(',')}]`;
    const before = signature();
    const take = taker(n);
    switch (n.opType) {
      case 'Squeeze':
      case 'Unsqueeze':
      case 'ReduceSum': {
        if (!crosses(13)) break;
        const axes = take.int64s('axes');
        if (axes) n.inputs = [n.inputs[0] ?? '', ints(`${label}_axes`, axes)];
        break;
      }
      case 'ReduceMean':
      case 'ReduceMax':
      case 'ReduceMin':
      case 'ReduceProd':
      case 'ReduceL1':
      case 'ReduceL2':
      case 'ReduceLogSum':
      case 'ReduceLogSumExp':
      case 'ReduceSumSquare':
        if (crosses(18)) {
          const axes = take.int64s('axes');
          if (axes) n.inputs = [n.inputs[0] ?? '', ints(`${label}_axes`, axes)];
        }
        break;
      case 'Softmax':
      case 'LogSoftmax':
      case 'Hardmax': {
        if (!crosses(13)) break;
        const axis = take.int('axis') ?? 1;
        const rank = rankOf(n.inputs[0] ?? '');
        if (axis === -1 || (rank !== undefined && (axis === rank - 1 || axis + rank === rank - 1))) {
          n.attributes.push(makeAttr('axis', -1, 'int'));
          break;
        }
        const x = n.inputs[0] ?? '';
        const y = n.outputs[0] ?? '';
        const shape = uniqueName(g, `${label}_shape`, taken);
        const flat = uniqueName(g, `${label}_2d`, taken);
        const out2d = uniqueName(g, `${label}_2d_out`, taken);
        newNodes.push({
          name: uniqueName(g, `${label}_Shape`, taken),
          opType: 'Shape',
          domain: '',
          inputs: [x],
          outputs: [shape],
          attributes: [],
        });
        newNodes.push({
          name: uniqueName(g, `${label}_Flatten`, taken),
          opType: 'Flatten',
          domain: '',
          inputs: [x],
          outputs: [flat],
          attributes: [makeAttr('axis', axis, 'int')],
        });
        n.inputs = [flat];
        n.outputs = [out2d];
        n.attributes.push(makeAttr('axis', -1, 'int'));
        newNodes.push(n);
        newNodes.push({
          name: uniqueName(g, `${label}_Reshape`, taken),
          opType: 'Reshape',
          domain: '',
          inputs: [out2d, shape],
          outputs: [y],
          attributes: [],
        });
        rewritten.push(label);
        continue;
      }
      case 'Split': {
        if (!crosses(13)) break;
        const split = take.int64s('split');
        if (split) n.inputs = [n.inputs[0] ?? '', ints(`${label}_split`, split)];
        break;
      }
      case 'Clip':
        if (crosses(11)) {
          const min = take.float('min');
          const max = take.float('max');
          n.inputs = [
            n.inputs[0] ?? '',
            min === undefined ? '' : f32(`${label}_min`, min),
            max === undefined ? '' : f32(`${label}_max`, max),
          ];
          while (n.inputs[n.inputs.length - 1] === '') n.inputs.pop();
        }
        break;
      case 'Pad':
        if (crosses(11)) {
          const pads = take.int64s('pads') ?? take.int64s('paddings');
          const value = take.float('value');
          if (!pads)
            throw new QuantkitError(
              'QK_OPSET_UPGRADE_UNSUPPORTED',
              `node '${label}' (Pad) has no pads attribute`,
              'the model is malformed; re-export it',
            );
          n.inputs = [
            n.inputs[0] ?? '',
            ints(`${label}_pads`, pads),
            ...(value === undefined || value === 0 ? [] : [f32(`${label}_value`, value)]),
          ];
        }
        break;
      case 'Slice':
        if (crosses(10)) {
          const starts = take.int64s('starts');
          const ends = take.int64s('ends');
          const axes = take.int64s('axes');
          if (!starts || !ends)
            throw new QuantkitError(
              'QK_OPSET_UPGRADE_UNSUPPORTED',
              `node '${label}' (Slice) lacks its starts or ends attribute`,
              'the model is malformed; re-export it',
            );
          n.inputs = [
            n.inputs[0] ?? '',
            ints(`${label}_starts`, starts),
            ints(`${label}_ends`, ends),
            ...(axes ? [ints(`${label}_axes`, axes)] : []),
          ];
        }
        break;
      case 'Dropout': {
        // Inference only: the ratio does not change outputs, but it moved to an input at 12.
        take.drop('is_test');
        if (!crosses(12)) break;
        const ratio = take.float('ratio');
        if (ratio !== undefined) n.inputs = [n.inputs[0] ?? '', f32(`${label}_ratio`, ratio)];
        break;
      }
      case 'BatchNormalization':
        take.drop('spatial');
        take.drop('consumed_inputs');
        break;
      case 'Upsample': {
        if (!crosses(10)) break;
        const mode = take.string('mode') ?? 'nearest';
        const scalesAttr = take.floats('scales');
        const scales = scalesAttr
          ? constant(`${label}_scales`, {
              dtype: 'float32',
              dims: [scalesAttr.length],
              data: Float32Array.from(scalesAttr),
            })
          : (n.inputs[1] ?? '');
        // Upsample maps output i to input floor(i / scale): Resize's asymmetric + floor. Resize 10
        // is Upsample renamed (no roi input, no coordinate modes).
        n.opType = 'Resize';
        if (target < 11) {
          n.inputs = [n.inputs[0] ?? '', scales];
          n.attributes = [makeAttr('mode', mode === 'bilinear' ? 'linear' : mode)];
          break;
        }
        // roi is optional from 13 only; before, an empty tensor stands for none.
        const roi =
          target >= 13 ? '' : constant(`${label}_roi`, { dtype: 'float32', dims: [0], data: new Float32Array(0) });
        n.inputs = [n.inputs[0] ?? '', roi, scales];
        n.attributes = [
          makeAttr('mode', mode === 'bilinear' ? 'linear' : mode),
          makeAttr('coordinate_transformation_mode', 'asymmetric'),
          makeAttr('nearest_mode', 'floor'),
        ];
        break;
      }
      default:
        break;
    }
    if (signature() !== before) rewritten.push(label);
    newNodes.push(n);
  }
  g.nodes = newNodes;
  model.opsets.set('', target);
  return { from, to: target, rewritten };
}
