import { OptionError, QuantkitError } from '../errors.js';
import type { GraphNode, Model } from '../graph/model.js';
import { memoryInitializer } from '../graph/model.js';
import { mulberry32 } from '../quant/prng.js';
import { makeTensor } from '../tensor/tensor.js';
import { dequantizeFrozenNf4, freezeNf4, frozenNf4Bytes, NF4_BASE_BLOCK, type FrozenNf4 } from '../train/nf4-base.js';
import { tf } from '../train/tf.js';
import { loraTargets, type LoraAdapter, type LoraTarget } from './lora.js';
import { buildTrainable, type TrainableGraph } from './trainable/build.js';
import { intAttr } from './weight-only/graph-edit.js';

/*
 * A model with LoRA adapters on its projections, as a trainable graph. Each target node
 * y = x·W becomes y = x·W + scale · (drop(x)·Aᵀ)·Bᵀ in the IR (two MatMuls, a Mul and an Add),
 * so the trainable-graph builder runs and differentiates it; only Aᵀ and Bᵀ train. The frozen W
 * leaves the initializers and becomes a graph input fed on every forward: with the 'nf4' base
 * from the NF4 codes and double-quantized constants held here (dequantized per forward and
 * dropped with the step's tensors), with 'fp32' from a constant tensor.
 */

export type LoraBase = 'nf4' | 'fp32';
export const LORA_BASES: readonly LoraBase[] = ['nf4', 'fp32'];

export interface LoraGraphOptions {
  readonly rank: number;
  readonly alpha: number;
  /** Dropout rate on the adapters' input while training (0 … < 1). */
  readonly dropout: number;
  /** Adapt the MLP too (the non-square weights). */
  readonly mlp?: boolean | undefined;
  readonly base: LoraBase;
  /** NF4 block size (default 64, QLoRA's). */
  readonly blockSize?: number | undefined;
  /** Seeds A's initialization and the dropout masks. */
  readonly seed: number;
  readonly label?: string | undefined;
}

export interface BaseBytes {
  /** Bytes the adapted base weights hold in memory during training. */
  readonly held: number;
  /** The same weights in fp32. */
  readonly fp32: number;
  /** Elements of the adapted weights. */
  readonly elements: number;
}

export interface LoraGraph {
  readonly targets: readonly LoraTarget[];
  /** 'train' applies the adapter dropout; 'eval' does not. */
  mode: 'train' | 'eval';
  /** The model's first output. */
  forward(inputs: Readonly<Record<string, tf.Tensor>>): tf.Tensor;
  variables(): tf.Variable[];
  /** The trained adapters in PEFT's layout (A [r, in], B [out, r]), by target weight. */
  adapters(): Map<string, LoraAdapter>;
  /** The base weight of a target as the forward pass computes with it, in the node's layout. */
  baseWeight(weight: string): Float32Array;
  readonly baseBytes: BaseBytes;
  dispose(): void;
}

interface Frozen {
  readonly target: LoraTarget;
  readonly dims: readonly number[];
  readonly nf4?: FrozenNf4 | undefined;
  readonly fp32?: tf.Tensor | undefined;
}

const A_SUFFIX = '.lora_A.T';
const B_SUFFIX = '.lora_B.T';
const SCALE = 'lora.scale';

/** [rows, cols] row-major → [cols, rows]. */
export function transpose2d(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c] as number;
  return out;
}

/** PEFT's A init, kaiming_uniform_(a=√5): U(−1/√in, 1/√in). */
function initA(rank: number, inFeatures: number, random: () => number): Float32Array {
  const bound = 1 / Math.sqrt(inFeatures);
  return Float32Array.from({ length: rank * inFeatures }, () => (2 * random() - 1) * bound);
}

function consumers(model: Model, weight: string): GraphNode[] {
  return model.graph.nodes.filter((n) => n.inputs.includes(weight));
}

function addBranch(model: Model, node: GraphNode, t: LoraTarget, label: string): string {
  if (node.opType === 'Gemm' && intAttr(node, 'transA', 0) === 1)
    throw new QuantkitError(
      'QK_LORA_NO_TARGETS',
      `${label}: Gemm '${node.name}' reads its input transposed (transA), which the adapters do not take`,
      'export the model with transA 0 (the weight transposed with transB instead)',
    );
  const y = node.outputs[0] as string;
  const x = node.inputs[0] as string;
  const base = `${y}/lora.base`;
  node.outputs[0] = base;
  const at = model.graph.nodes.indexOf(node);
  const p = `${node.name || t.module}/lora`;
  model.graph.nodes.splice(
    at + 1,
    0,
    {
      name: `${p}_A`,
      opType: 'MatMul',
      domain: '',
      inputs: [x, t.module + A_SUFFIX],
      outputs: [`${y}/lora.a`],
      attributes: [],
    },
    {
      name: `${p}_B`,
      opType: 'MatMul',
      domain: '',
      inputs: [`${y}/lora.a`, t.module + B_SUFFIX],
      outputs: [`${y}/lora.b`],
      attributes: [],
    },
    {
      name: `${p}_scale`,
      opType: 'Mul',
      domain: '',
      inputs: [`${y}/lora.b`, SCALE],
      outputs: [`${y}/lora.s`],
      attributes: [],
    },
    { name: `${p}_add`, opType: 'Add', domain: '', inputs: [base, `${y}/lora.s`], outputs: [y], attributes: [] },
  );
  return `${p}_A`;
}

/** Rewrites `model` (in place) with adapters on its targets and builds its trainable graph. */
export function prepareLora(model: Model, o: LoraGraphOptions): LoraGraph {
  const label = o.label ?? '<model>';
  const targets = loraTargets(model, { mlp: o.mlp });
  if (targets.length === 0)
    throw new OptionError(
      'QK_LORA_NO_TARGETS',
      `${label} has no MatMul/Gemm weight LoRA adapts (the projections are its square 2-D weight initializers${o.mlp ? ', the MLP the others' : ''}; the last one, the output head, is never adapted)`,
      o.mlp ? 'give a model with linear layers' : 'pass `mlp` to adapt the non-square weights too',
      ['mlp'],
    );
  const random = mulberry32(o.seed);
  const blockSize = o.blockSize ?? NF4_BASE_BLOCK;
  const frozen: Frozen[] = [];
  const adapterNames = new Set<string>();
  const dropoutNodes = new Set<string>();
  const g = model.graph;
  g.initializers.set(SCALE, memoryInitializer(SCALE, makeTensor('float32', [], Float32Array.of(o.alpha / o.rank))));
  let trainable: TrainableGraph;
  try {
    for (const t of targets) {
      const init = g.initializers.get(t.weight);
      if (!init) throw new Error(`LoRA target '${t.weight}' is not an initializer`);
      const users = consumers(model, t.weight);
      if (users.some((n) => n.inputs.indexOf(t.weight) !== 1))
        throw new QuantkitError(
          'QK_LORA_NO_TARGETS',
          `${label}: weight '${t.weight}' is read by a node other than as a MatMul/Gemm weight`,
          'give a model whose adapted weights feed only their linear layers',
        );
      const w = init.load().data as Float32Array;
      const dims = [...init.dims];
      if (o.base === 'nf4') {
        // PyTorch's Linear layout [out, in], the one QLoRA quantizes block by block.
        const wt = t.transposed ? w : transpose2d(w, t.inFeatures, t.outFeatures);
        frozen.push({ target: t, dims, nf4: freezeNf4(wt, t.outFeatures, t.inFeatures, blockSize) });
      } else {
        frozen.push({ target: t, dims, fp32: tf.tensor(Float32Array.from(w), dims, 'float32') });
      }
      g.initializers.delete(t.weight);
      g.inputs.push({ name: t.weight, dtype: 'float32', dims });
      const A = initA(o.rank, t.inFeatures, random);
      g.initializers.set(
        t.module + A_SUFFIX,
        memoryInitializer(
          t.module + A_SUFFIX,
          makeTensor('float32', [t.inFeatures, o.rank], transpose2d(A, o.rank, t.inFeatures)),
        ),
      );
      g.initializers.set(
        t.module + B_SUFFIX,
        memoryInitializer(
          t.module + B_SUFFIX,
          makeTensor('float32', [o.rank, t.outFeatures], new Float32Array(o.rank * t.outFeatures)),
        ),
      );
      adapterNames.add(t.module + A_SUFFIX).add(t.module + B_SUFFIX);
      for (const n of users) dropoutNodes.add(addBranch(model, n, t, label));
    }
    trainable = buildTrainable(model, { trainable: (init) => adapterNames.has(init.name) }, label);
  } catch (e) {
    for (const f of frozen) f.fp32?.dispose();
    throw e;
  }
  const dropRandom = mulberry32(o.seed ^ 0x5bd1e995);
  const output = g.outputs[0]?.name ?? '';

  const baseTensor = (f: Frozen): tf.Tensor => {
    if (f.fp32) return f.fp32;
    const t = f.target;
    const wt = tf.tensor2d(dequantizeFrozenNf4(f.nf4 as FrozenNf4), [t.outFeatures, t.inFeatures]);
    return t.transposed ? wt : tf.transpose(wt);
  };

  const held = frozen.reduce((s, f) => s + (f.nf4 ? frozenNf4Bytes(f.nf4) : 4 * (f.fp32 as tf.Tensor).size), 0);
  const elements = targets.reduce((s, t) => s + t.inFeatures * t.outFeatures, 0);

  const graph: LoraGraph = {
    targets,
    mode: 'train',
    forward(inputs) {
      const feeds: Record<string, tf.Tensor> = { ...inputs };
      for (const f of frozen) feeds[f.target.weight] = baseTensor(f);
      const outs = trainable.forward(feeds, {
        read: (node, slot, _name, v) =>
          graph.mode === 'train' && o.dropout > 0 && slot === 0 && dropoutNodes.has(node.name)
            ? tf.dropout(v, o.dropout, undefined, Math.floor(dropRandom() * 2 ** 31))
            : v,
      });
      return outs.get(output) as tf.Tensor;
    },
    variables: () => [...trainable.variables.values()],
    adapters() {
      const out = new Map<string, LoraAdapter>();
      for (const t of targets) {
        const at = trainable.variables.get(t.module + A_SUFFIX)?.dataSync() as Float32Array;
        const bt = trainable.variables.get(t.module + B_SUFFIX)?.dataSync() as Float32Array;
        out.set(t.weight, {
          A: transpose2d(at, t.inFeatures, o.rank),
          B: transpose2d(bt, o.rank, t.outFeatures),
        });
      }
      return out;
    },
    baseWeight(weight) {
      const f = frozen.find((x) => x.target.weight === weight);
      if (!f) throw new Error(`'${weight}' is not a LoRA target`);
      if (f.fp32) return Float32Array.from(f.fp32.dataSync() as Float32Array);
      const t = f.target;
      const wt = dequantizeFrozenNf4(f.nf4 as FrozenNf4);
      return t.transposed ? wt : transpose2d(wt, t.outFeatures, t.inFeatures);
    },
    baseBytes: { held, fp32: 4 * elements, elements },
    dispose() {
      trainable.dispose();
      for (const f of frozen) f.fp32?.dispose();
    },
  };
  return graph;
}
