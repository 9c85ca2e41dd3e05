import { QuantkitError } from '../errors.js';
import type { Model } from '../graph/model.js';
import { memoryInitializer } from '../graph/model.js';
import { makeTensor, type Tensor } from '../tensor/tensor.js';
import { intAttr } from './weight-only/graph-edit.js';
import { findWeightSites } from './weight-only/index.js';
import type { WeightSite } from './weight-only/types.js';

/*
 * LoRA (Hu et al. 2021) on a model's MatMul/Gemm weights: y = x·W + scale · (x·Aᵀ)·Bᵀ with
 * A [r, in], B [out, r] and scale = α / r, the layout and names PEFT uses
 * (`base_model.model.<module>.lora_A.weight`), so adapters move between quantkit and PEFT.
 *
 * Targets: the transformer's projections are the square weights ([d, d]: q, k, v, o), the MLP
 * the others; the last weight site (the output head) and embedding tables are never targets.
 * A module's name is its node's path ("/blocks.0/attn/q/MatMul" → "blocks.0.attn.q"), or the
 * weight's name without ".weight".
 */

export interface LoraTarget {
  readonly weight: string;
  readonly module: string;
  /** W as the node reads it: [in, out] (MatMul, Gemm) or [out, in] (Gemm transB). */
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly transposed: boolean;
}

export interface LoraAdapter {
  /** [r, in]. */
  readonly A: Float32Array;
  /** [out, r]. */
  readonly B: Float32Array;
}

export function moduleName(site: WeightSite): string {
  const path = site.node.name.split('/').filter(Boolean);
  if (path.length >= 2) return path.slice(0, -1).join('.');
  return site.weight.name.replace(/\.weight$/, '');
}

/** The weights LoRA adapts: projections, and the MLP when asked. */
export function loraTargets(model: Model, options: { readonly mlp?: boolean | undefined } = {}): LoraTarget[] {
  const sites = findWeightSites(model).filter(
    (s) => (s.node.opType === 'MatMul' || s.node.opType === 'Gemm') && s.weight.dims.length === 2,
  );
  const head = sites[sites.length - 1];
  const seen = new Set<string>();
  const out: LoraTarget[] = [];
  for (const s of sites) {
    if (s === head || seen.has(s.weight.name)) continue;
    seen.add(s.weight.name);
    const [d0, d1] = s.weight.dims as [number, number];
    if (d0 !== d1 && !options.mlp) continue;
    const transposed = s.node.opType === 'Gemm' && intAttr(s.node, 'transB', 0) === 1;
    out.push({
      weight: s.weight.name,
      module: moduleName(s),
      inFeatures: transposed ? d1 : d0,
      outFeatures: transposed ? d0 : d1,
      transposed,
    });
  }
  return out;
}

export const peftKey = (module: string, part: 'A' | 'B') => `base_model.model.${module}.lora_${part}.weight`;

/** The adapters as PEFT-named tensors (for safetensors). */
export function adapterTensors(
  targets: readonly LoraTarget[],
  adapters: ReadonlyMap<string, LoraAdapter>,
  rank: number,
): Tensor[] {
  return targets.flatMap((t) => {
    const a = adapters.get(t.weight);
    if (!a) return [];
    return [
      makeTensor('float32', [rank, t.inFeatures], a.A, peftKey(t.module, 'A')),
      makeTensor('float32', [t.outFeatures, rank], a.B, peftKey(t.module, 'B')),
    ];
  });
}

/** W ← W + scale · (B·A)ᵀ (or B·A for transB), in place, for every adapted target. */
export function mergeLora(
  model: Model,
  targets: readonly LoraTarget[],
  adapters: ReadonlyMap<string, LoraAdapter>,
  rank: number,
  scale: number,
): number {
  let merged = 0;
  for (const t of targets) {
    const a = adapters.get(t.weight);
    if (!a) continue;
    const I = t.inFeatures;
    const O = t.outFeatures;
    if (a.A.length !== rank * I || a.B.length !== O * rank)
      throw new QuantkitError(
        'QK_BAD_SHAPE',
        `LoRA adapter of '${t.module}': A has ${a.A.length} values and B ${a.B.length}, rank ${rank} needs ${rank * I} and ${O * rank}`,
        'give adapters of the model they were trained on, with their rank',
      );
    const init = model.graph.initializers.get(t.weight);
    if (!init) throw new Error(`LoRA target '${t.weight}' is not an initializer`);
    const w = Float32Array.from(init.load().data as Float32Array);
    for (let o = 0; o < O; o++) {
      for (let i = 0; i < I; i++) {
        let d = 0;
        for (let j = 0; j < rank; j++) d += (a.B[o * rank + j] as number) * (a.A[j * I + i] as number);
        const at = t.transposed ? o * I + i : i * O + o;
        w[at] = (w[at] as number) + scale * d;
      }
    }
    model.graph.initializers.set(t.weight, memoryInitializer(t.weight, makeTensor('float32', [...init.dims], w)));
    merged++;
  }
  return merged;
}
