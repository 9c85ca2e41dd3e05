import type { Model } from '../graph/model.js';
import { memoryInitializer } from '../graph/model.js';
import { consumers, uniqueName, usedNames } from '../graph/topology.js';
import { decodeFloat16, encodeFloat16 } from '../formats/float16.js';
import type { KMeansWeights } from '../quant/kmeans-weights.js';
import { makeTensor } from '../tensor/tensor.js';
import { defaultTrainable } from './trainable/build.js';
import { isRead, rewireInputs } from './weight-only/graph-edit.js';
import { findWeightSites } from './weight-only/index.js';
import { emitKMeansWeight } from './weight-only/kmeans-handler.js';
import { EXACT_READERS, STORE_MIN_ELEMENTS } from './weight-only/other-tensors.js';
import type { KMeansLayout } from './weight-only/types.js';

/*
 * The float tensors Deep Compression shares besides the weights of MatMul, Gemm, Conv and Gather:
 * every trainable table a model reads some other way (a learned position table read by Slice, a
 * tied embedding read by Transpose ...) is a weight in the paper's sense and takes a k-means
 * codebook like the others (decompressed, the same BitShift / Gather prologue hands its readers
 * the fp32 tensor). Left out: tensors under STORE_MIN_ELEMENTS (biases, norms: rounded to binary16
 * instead, below), mask-like constants (|c| ≥ MASK_CONSTANT, which training does not move either;
 * the container stores them exactly), and tensors a comparison, arg-max or Cast reads, which turn
 * values into decisions.
 */

/** Trainable float tables of rank ≥ 2 outside the weight sites, in initializer order. */
export function sharedTables(model: Model, options: { readonly exclude?: readonly string[] | undefined }): string[] {
  const g = model.graph;
  const sited = new Set(findWeightSites(model).map((s) => s.weight.name));
  const readers = consumers(g);
  const exclude = options.exclude ?? [];
  const out: string[] = [];
  for (const [name, init] of g.initializers) {
    const rs = readers.get(name) ?? [];
    if (sited.has(name) || rs.length === 0 || init.dims.length < 2) continue;
    if (init.dims.reduce((a, b) => a * b, 1) < STORE_MIN_ELEMENTS || !defaultTrainable(init, g)) continue;
    if (rs.some((n) => EXACT_READERS.has(n.opType))) continue;
    if (exclude.some((e) => e === name || rs.some((n) => n.opType === e || n.name === e))) continue;
    out.push(name);
  }
  return out;
}

/**
 * Replaces each table of `tables` by its k-means prologue (kmeans-handler.ts's subgraph), its
 * readers rewired; returns the layouts the container codes. The model's opset must be ≥ 11.
 */
export function emitKMeansTables(model: Model, tables: ReadonlyMap<string, KMeansWeights>): KMeansLayout[] {
  const g = model.graph;
  const taken = usedNames(g);
  const ctx = { graph: g, name: (base: string) => uniqueName(g, base, taken), prologue: [] as Model['graph']['nodes'] };
  const readers = consumers(g);
  const layouts: KMeansLayout[] = [];
  for (const [name, w] of tables) {
    const r = emitKMeansWeight(name, w, ctx);
    rewireInputs(readers.get(name) ?? [], name, r.out);
    layouts.push(r.layout);
  }
  g.nodes = [...ctx.prologue, ...g.nodes];
  for (const name of tables.keys()) if (!isRead(g, name)) g.initializers.delete(name);
  return layouts;
}

/**
 * Rounds every other trainable float tensor (biases, norm scales and shifts: what neither pruning
 * nor k-means takes, under STORE_MIN_ELEMENTS elements) to its nearest binary16 value, so that the
 * container stores it in two bytes exactly; `skip` names tensors to keep (the codebooks). Returns the tensors rounded and their
 * largest relative change.
 */
export function roundVectorsToFloat16(
  model: Model,
  skip: ReadonlySet<string>,
): { readonly names: string[]; readonly maxRelative: number } {
  const g = model.graph;
  const names: string[] = [];
  let maxRelative = 0;
  for (const [name, init] of [...g.initializers]) {
    const count = init.dims.reduce((a, b) => a * b, 1);
    if (skip.has(name) || count >= STORE_MIN_ELEMENTS || !defaultTrainable(init, g)) continue;
    const data = init.load().data as Float32Array;
    const rounded = data.map((x) => decodeFloat16(encodeFloat16(x)));
    for (let i = 0; i < data.length; i++) {
      const x = data[i] as number;
      if (x !== 0) maxRelative = Math.max(maxRelative, Math.abs((rounded[i] as number) - x) / Math.abs(x));
    }
    g.initializers.set(name, memoryInitializer(name, makeTensor('float32', [...init.dims], rounded)));
    names.push(name);
  }
  return { names, maxRelative };
}
