import type { DType } from '../tensor/dtype.js';
import type { GraphNode, Model, ValueInfo } from '../graph/model.js';
import { producers, topologicalOrder } from '../graph/topology.js';
import { encodeModel } from '../io/onnx/proto.js';
import { modelToProto } from '../graph/to-onnx.js';
import { inferElemTypes } from '../passes/weight-only/elem-types.js';
import { createSession, runModelBatches, type CalibrationData } from './calibrate.js';
import type { OnnxRuntime, RuntimeSession, RuntimeTensor } from './runtime.js';

/*
 * AWQ's block objective (the reference auto_scale's `module2inspect`): a group of linear layers
 * reading one input X is scored on the output of the block it feeds (q/k/v → the attention output
 * after its projection; fc1 → the MLP output), not on its own outputs, so that what the block does
 * with them (softmax of q·kᵀ, GELU, the next projection) weighs the error.
 *
 * The block is the sub-graph from X to the residual Add that closes it: the first Add whose one
 * input comes from X and whose other input is an ancestor of X (the residual stream the norm
 * read). Its other inputs (constants, or tensors from elsewhere in the graph, captured on the
 * calibration data) are fed as they were; the group's weights become graph inputs so that one
 * ONNX Runtime session scores every candidate. Groups whose block is only their own layers (and
 * bias Adds) — v → o, fc2, the head — keep the per-layer objective, which is the same.
 */

export interface AwqBlock {
  /** The group's input and the block's output. */
  readonly input: string;
  readonly output: string;
  /** The block's nodes in graph order. */
  readonly nodes: GraphNode[];
  /** Tensors the block reads from the rest of the graph (captured per calibration batch). */
  readonly external: string[];
  /** The group's weight initializers (fed per candidate). */
  readonly weights: string[];
}

/** The block `layers` (reading `input`) feed, or undefined when it is only those layers. */
export function findAwqBlock(model: Model, input: string, layers: readonly GraphNode[]): AwqBlock | undefined {
  const g = model.graph;
  const order = topologicalOrder(g);
  const prod = producers(g);
  const fromX = new Set([input]);
  for (const n of order) if (n.inputs.some((i) => fromX.has(i))) for (const o of n.outputs) fromX.add(o);
  const ancestors = new Set<string>();
  const stack = [input];
  while (stack.length) {
    const t = stack.pop() as string;
    const p = prod.get(t);
    if (!p) continue;
    for (const i of p.inputs)
      if (i && !ancestors.has(i)) {
        ancestors.add(i);
        stack.push(i);
      }
  }
  let output: string | undefined;
  for (const n of order) {
    if (n.opType !== 'Add' || n.domain !== '' || n.inputs.length !== 2) continue;
    const [a, b] = n.inputs as [string, string];
    const residual = (r: string) => ancestors.has(r) && !g.initializers.has(r);
    if (fromX.has(a) && residual(b)) output = a;
    else if (fromX.has(b) && residual(a)) output = b;
    if (output) break;
  }
  if (!output) return undefined;
  // The block: nodes downstream of X that the output depends on.
  const inBlock = new Set<GraphNode>();
  const need = [output];
  const seen = new Set<string>();
  while (need.length) {
    const t = need.pop() as string;
    if (seen.has(t) || t === input) continue;
    seen.add(t);
    const p = prod.get(t);
    if (!p || !p.outputs.some((o) => fromX.has(o))) continue;
    inBlock.add(p);
    for (const i of p.inputs) if (i) need.push(i);
  }
  if (layers.some((l) => !inBlock.has(l))) return undefined;
  const only = [...inBlock].every(
    (n) => layers.includes(n) || (n.opType === 'Add' && n.inputs.some((i) => g.initializers.has(i))),
  );
  if (only) return undefined;
  // Inputs from outside: constant sub-graphs join the block, the rest is captured.
  const external = new Set<string>();
  const graphInputs = new Set(g.inputs.map((v) => v.name));
  const constant = (t: string, path: Set<GraphNode>): boolean => {
    if (g.initializers.has(t)) return true;
    if (graphInputs.has(t)) return false;
    const p = prod.get(t);
    if (!p) return false;
    if (path.has(p)) return true;
    path.add(p);
    return p.inputs.every((i) => !i || constant(i, path));
  };
  const produced = () => new Set([...inBlock].flatMap((n) => n.outputs));
  for (let changed = true; changed;) {
    changed = false;
    const made = produced();
    for (const n of [...inBlock])
      for (const i of n.inputs) {
        if (!i || i === input || made.has(i) || g.initializers.has(i) || external.has(i)) continue;
        const path = new Set<GraphNode>();
        if (constant(i, path)) {
          for (const p of path) inBlock.add(p);
          changed = true;
        } else external.add(i);
      }
  }
  const nodes = order.filter((n) => inBlock.has(n));
  return { input, output, nodes, external: [...external], weights: layers.map((l) => l.inputs[1] as string) };
}

/** The block's calibration feeds: X and its outside inputs, one record per calibration batch. */
export type BlockFeeds = {
  name: string;
  type: 'float32' | 'int64' | 'int32';
  data: ArrayLike<unknown>;
  dims: number[];
}[][];

/** One run of `model` over the data capturing every block's X and outside inputs. */
export async function captureBlockFeeds(
  runtime: OnnxRuntime,
  model: Model,
  blocks: readonly AwqBlock[],
  data: CalibrationData,
  batchSize: number | undefined,
): Promise<Map<AwqBlock, BlockFeeds>> {
  const names = [...new Set(blocks.flatMap((b) => [b.input, ...b.external]))];
  const result = new Map<AwqBlock, BlockFeeds>(blocks.map((b) => [b, []]));
  if (names.length === 0) return result;
  // The extra outputs carry their element types (shape tensors are int64).
  const types = inferElemTypes(model.graph);
  const have = new Set(model.graph.outputs.map((v) => v.name));
  const outputs = [
    ...model.graph.outputs,
    ...names
      .filter((t) => !have.has(t))
      .map((name) => ({ name, dtype: types.get(name) ?? 'float32', dims: undefined })),
  ];
  const bytes = encodeModel(modelToProto({ ...model, graph: { ...model.graph, outputs } }));
  await runModelBatches(
    runtime,
    bytes,
    data,
    names,
    (out: Record<string, RuntimeTensor>) => {
      const copy = new Map<string, BlockFeeds[number][number]>();
      for (const n of names) {
        const t = out[n];
        const d = t?.data;
        if (!t) continue;
        const type =
          d instanceof Float32Array
            ? 'float32'
            : d instanceof BigInt64Array
              ? 'int64'
              : d instanceof Int32Array
                ? 'int32'
                : undefined;
        if (!type) continue;
        copy.set(n, { name: n, type, data: (d as Float32Array).slice(), dims: [...t.dims] });
      }
      for (const b of blocks) {
        const rec = [b.input, ...b.external].map((n) => copy.get(n));
        if (rec.every((r) => r)) result.get(b)?.push(rec as BlockFeeds[number]);
      }
    },
    { batchSize },
  );
  return result;
}

/** The block as a model: X, its outside inputs and the group's weights in, the block output out. */
export function blockModel(model: Model, block: AwqBlock, feeds: BlockFeeds): Model {
  const g = model.graph;
  const weights = new Set(block.weights);
  const used = new Set(block.nodes.flatMap((n) => n.inputs));
  const initializers = new Map([...g.initializers].filter(([k]) => used.has(k) && !weights.has(k)));
  const first = feeds[0] ?? [];
  const inputs: ValueInfo[] = first.map((f) => ({
    name: f.name,
    dtype: f.type as DType,
    dims: f.dims.map((_, i) => `d${f.name}_${i}`),
  }));
  for (const w of block.weights) {
    const init = g.initializers.get(w);
    inputs.push({ name: w, dtype: 'float32', dims: init ? [...init.dims] : undefined });
  }
  return {
    ...model,
    graph: {
      name: `${g.name}_awq_block`,
      nodes: block.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })),
      initializers,
      inputs,
      outputs: [{ name: block.output, dtype: 'float32', dims: undefined }],
      valueInfo: new Map(),
    },
  };
}

/**
 * Scores weight candidates on a block: Σ (Y − Y_ref)² over the calibration batches, Y_ref the
 * block output with the original weights. `close` releases the session.
 */
export class BlockScorer {
  private reference: Float32Array[] = [];
  private constructor(
    private readonly runtime: OnnxRuntime,
    private readonly session: RuntimeSession,
    private readonly block: AwqBlock,
    private readonly feeds: BlockFeeds,
    private readonly dims: readonly number[][],
  ) {}

  static async open(
    runtime: OnnxRuntime,
    model: Model,
    block: AwqBlock,
    feeds: BlockFeeds,
    original: readonly Float32Array[],
  ): Promise<BlockScorer> {
    const bytes = encodeModel(modelToProto(blockModel(model, block, feeds)));
    const session = await createSession(runtime, bytes);
    const dims = block.weights.map((w) => [...(model.graph.initializers.get(w)?.dims ?? [])]);
    const s = new BlockScorer(runtime, session, block, feeds, dims);
    s.reference = await s.outputs(original);
    return s;
  }

  private async outputs(weights: readonly Float32Array[]): Promise<Float32Array[]> {
    const outs: Float32Array[] = [];
    for (const rec of this.feeds) {
      const f: Record<string, RuntimeTensor> = {};
      for (const r of rec) f[r.name] = this.runtime.tensor(r.type as 'float32', r.data as Float32Array, r.dims);
      for (const [i, w] of this.block.weights.entries()) {
        const data = weights[i] as Float32Array;
        f[w] = this.runtime.tensor('float32', data, this.dims[i] as number[]);
      }
      const out = await this.session.run(f, [this.block.output]);
      const y = out[this.block.output];
      outs.push(Float32Array.from(y?.data as Float32Array));
      for (const t of Object.values(out)) t.dispose();
    }
    return outs;
  }

  /** Σ (Y − Y_ref)² with `weights` (stored layout, in `block.weights` order). */
  async score(weights: readonly Float32Array[]): Promise<number> {
    const outs = await this.outputs(weights);
    let e = 0;
    for (const [j, y] of outs.entries()) {
      const r = this.reference[j] as Float32Array;
      for (let i = 0; i < y.length; i++) e += ((y[i] as number) - (r[i] as number)) ** 2;
    }
    return e;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
