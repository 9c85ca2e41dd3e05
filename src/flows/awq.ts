import { OptionError } from '../errors.js';
import { memoryInitializer, type GraphNode, type Model } from '../graph/model.js';
import { consumers, producers, topologicalOrder } from '../graph/topology.js';
import { quantizeNBitsMatrixAuto } from '../kernels/nbits-dispatch.js';
import { GraphEditor, loadFloat32 } from '../passes/activation/graph-util.js';
import {
  affineTail,
  equalizeNormScales,
  findSmoothSites,
  foldIntoTail,
  type SmoothSite,
} from '../passes/activation/smoothquant.js';
import { dataFreeBnb4Options } from '../passes/weight-only/bnb4-handler.js';
import { storedLayout, weightKN } from '../passes/weight-only/gptq-handler.js';
import { findWeightSites, userSkipReason } from '../passes/weight-only/index.js';
import { linearShape, linearView, rejectLinear } from '../passes/weight-only/linear-site.js';
import { checkBlockSize, nbitsOptionsFor, schemeByName, type WeightOnlyScheme } from '../passes/weight-only/scheme.js';
import type { WeightOnlyOptions, WeightSite } from '../passes/weight-only/types.js';
import {
  awqClip,
  awqSearchScale,
  awqSearchScaleBy,
  type AwqScaleResult,
  type FakeQuant,
  type FakeQuantBlock,
} from '../quant/awq.js';
import { dequantizeBnb4, quantizeBnb4 } from '../quant/bnb4-quant.js';
import { dequantizeHqq, hqqQuantize } from '../quant/hqq.js';
import { quantizeSuperBlocks } from '../quant/superblock.js';
import { dequantizeNBits } from '../quant/nbits-quant.js';
import { makeTensor } from '../tensor/tensor.js';
import { BlockScorer, captureBlockFeeds, findAwqBlock, type AwqBlock } from './awq-block.js';
import { augmentedModelBytes, runModelBatches, type CalibrationData } from './calibrate.js';
import { collectHessians } from './hessian.js';
import type { OnnxRuntime } from './runtime.js';

/*
 * AWQ on a model (quant/awq.ts holds the math): groups of MatMul/Gemm layers sharing one input are
 * found as SmoothQuant finds them (passes/activation/smoothquant.ts findSmoothSites); XᵀX and
 * Σ|x| per input channel are collected in ONNX Runtime on the calibration data; each group's s is
 * searched and applied, W ← diag(s)·W, with 1/s folded into what produces the input:
 *   - a LayerNormalization's γ/β, or the Mul(γ)[→Add(β)] tail of a decomposed norm;
 *   - the previous linear layer's output columns (and bias) when the input reaches it through
 *     Reshape / Transpose / the V side of P·V only (v → o in attention), checked by running the
 *     scaled fp32 model against the original in ONNX Runtime (a channel mix-up would show);
 *   - otherwise a Mul by 1/s in front of the group (AWQ's ScaledActivation for GELU MLPs: GELU
 *     does not commute with a scale, so fc1's rows cannot take it).
 * Then every weight's clipping search, against the Gram matrix of its (scaled) input. The model is
 * rewritten in place, still fp32: the ordinary pass (or GPTQ) quantizes it next, with the norm
 * equalization it would do already done here (`equalizeNorms` false).
 */

export interface AwqOptions {
  /** α grid points (default 20: 0, 0.05, …, 0.95). */
  readonly grid?: number | undefined;
  /** Largest clipping shrink (default 0.5); 0 turns the clipping search off. */
  readonly maxShrink?: number | undefined;
  readonly calibBatch?: number | undefined;
  /**
   * What scores a candidate s: 'linear' (default) the group's own outputs from the Gram matrix;
   * 'block' the output of the block the group feeds (the attention after q/k/v, the MLP after
   * fc1, as the reference auto_scale does; flows/awq-block.ts; groups that feed nothing else keep
   * 'linear', which is then the same). On our LMs 'block' was better in 10 of 24 held-out
   * perplexity rows and worse in 14 (README "Low-bit weights"), so it is not the default.
   */
  readonly objective?: 'block' | 'linear' | undefined;
}

export interface AwqGroupReport {
  readonly activation: string;
  readonly layers: string[];
  /** What took 1/s: a norm, a previous layer, an inserted Mul, or nothing (α = 0). */
  readonly foldedInto: string;
  readonly alpha: number;
  /** What the errors measure: the block output, or the group's own outputs. */
  readonly objective: 'block' | 'linear';
  /** Output error (of the block, or ‖XW − XŴ‖² of the group) without scaling and with the chosen s (before clipping). */
  readonly errorPlain: number;
  readonly error: number;
}

export interface AwqResult {
  readonly groups: AwqGroupReport[];
  /** Blocks whose max|w| the clipping search shrank, of all blocks searched. */
  readonly clippedBlocks: number;
  readonly blocks: number;
  readonly notes: string[];
}

type AwqScheme = Extract<WeightOnlyScheme, { kind: 'nbits' } | { kind: 'bnb4' }>;

export function awqScheme(options: WeightOnlyOptions): AwqScheme {
  const s = schemeByName(options.scheme);
  if (s.kind !== 'nbits' && s.kind !== 'bnb4')
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`awq\` with weight-only scheme '${options.scheme}': AWQ scales weights for the block-quantized schemes`,
      'use `scheme` q4, q4-asym, q3, q2, nf4 or fp4 with `awq`',
      ['awq', 'scheme'],
    );
  if (s.kind === 'nbits' && 'spqr' in s)
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`awq\` with '${options.scheme}': AWQ's search does not model SpQR's second-level scales and outliers`,
      'drop `awq` (`calib` alone runs SpQR in GPTQ order), or use `scheme` q3-asym with `awq`',
      ['awq', 'scheme'],
    );
  if (s.kind === 'bnb4' && options.doubleQuant)
    throw new OptionError('QK_BAD_OPTION', '`awq` with `doubleQuant`', 'drop one of them', ['awq', 'doubleQuant']);
  return s;
}

/** The scheme's own quantize-dequantize, of a whole weight and of one block (what AWQ searches against). */
function fakeQuantizers(
  scheme: AwqScheme,
  blockSize: number,
  options: WeightOnlyOptions,
): { fq: FakeQuant; fqBlock: FakeQuantBlock } {
  if (scheme.kind === 'nbits') {
    const o = nbitsOptionsFor(scheme, blockSize, options.rtn ?? false);
    if ('superBlock' in scheme) {
      const sb = (w: Float32Array, K: number, N: number) =>
        dequantizeHqq(
          quantizeSuperBlocks(
            K,
            N,
            (n, out) => {
              for (let k = 0; k < K; k++) out[k] = w[k * N + n] as number;
            },
            { bits: 4, codeBits: o.codeBits, blockSize, superBlock: scheme.superBlock ?? 256 },
          ),
          blockSize,
        );
      return { fq: sb, fqBlock: (v) => sb(v, v.length, 1) };
    }
    if (options.hqq) {
      const hq = (w: Float32Array, K: number, N: number) =>
        dequantizeHqq(
          hqqQuantize(
            K,
            N,
            (n, out) => {
              for (let k = 0; k < K; k++) out[k] = w[k * N + n] as number;
            },
            { bits: o.bits, codeBits: o.codeBits, blockSize },
          ),
          blockSize,
        );
      return { fq: hq, fqBlock: (v) => hq(v, v.length, 1) };
    }
    return {
      fq: (w, K, N) => dequantizeNBits(quantizeNBitsMatrixAuto(w, K, N, false, 1, o), blockSize),
      fqBlock: (v) => dequantizeNBits(quantizeNBitsMatrixAuto(v, v.length, 1, true, 1, o), blockSize),
    };
  }
  const bo = dataFreeBnb4Options(scheme.type, blockSize, options);
  const fq: FakeQuant = (w, K, N) => {
    const wt = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wt[n * K + k] = w[k * N + n] as number;
    const back = dequantizeBnb4(quantizeBnb4(wt, bo), scheme.type, blockSize);
    const out = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[k * N + n] = back[n * K + k] as number;
    return out;
  };
  return { fq, fqBlock: (v) => fq(v, v.length, 1) };
}

interface Group {
  readonly site: SmoothSite;
  readonly sites: WeightSite[];
}

/** Groups whose every layer the pass would quantize, with weights read by that group alone. */
function awqGroups(model: Model, options: WeightOnlyOptions): Group[] {
  const g = model.graph;
  const sites = findWeightSites(model);
  const skip = userSkipReason(sites, options);
  const byNode = new Map<GraphNode, WeightSite>();
  for (const s of sites) if (!skip(s) && !rejectLinear(s, g)) byNode.set(s.node, s);
  const cons = consumers(g);
  const taken = new Set<string>();
  const groups: Group[] = [];
  for (const site of findSmoothSites(model, { exclude: options.exclude })) {
    const ws = site.matmuls.map((m) => byNode.get(m));
    if (ws.some((w) => !w)) continue;
    const names = site.matmuls.map((m) => m.inputs[1] as string);
    if (new Set(names).size !== names.length || names.some((w) => taken.has(w))) continue;
    if (names.some((w) => (cons.get(w) ?? []).some((c) => !site.matmuls.includes(c)))) continue;
    for (const w of names) taken.add(w);
    groups.push({ site, sites: ws as WeightSite[] });
  }
  return groups;
}

interface InputStats {
  readonly h: Float64Array;
  readonly meanAbs: Float64Array;
  readonly rows: number;
}

/** Each group's shared input: XᵀX and mean |x| per channel, in one run over the calibration data. */
async function collectInputStats(
  runtime: OnnxRuntime,
  model: Model,
  groups: readonly Group[],
  data: CalibrationData,
  batchSize: number | undefined,
): Promise<Map<string, InputStats>> {
  const activations = new Map(groups.map((gr) => [gr.site.activation, gr.site.channels]));
  const stats = await collectHessians(runtime, model, activations, data, { batchSize, meanAbs: true, method: 'AWQ' });
  return new Map(
    [...stats].map(([name, s]) => [name, { h: s.h, meanAbs: s.meanAbs ?? new Float64Array(0), rows: s.rows }]),
  );
}

/**
 * The linear layer whose output columns reach `x` channel for channel through Reshape,
 * Transpose and the V side of a MatMul (P·V), each value read once; its weight and bias to divide.
 */
function previousLinear(
  model: Model,
  x: string,
  K: number,
): { node: GraphNode; weight: string; bias: string | undefined } | undefined {
  const g = model.graph;
  const prod = producers(g);
  const cons = consumers(g);
  let v = x;
  for (let depth = 0; depth < 8; depth++) {
    const p = prod.get(v);
    if (!p || p.domain !== '') return undefined;
    const only = (name: string) => (cons.get(name) ?? []).length === 1 && !g.outputs.some((o) => o.name === name);
    if (v !== x && !only(v)) return undefined;
    if (p.opType === 'Reshape' || p.opType === 'Transpose') {
      v = p.inputs[0] as string;
      continue;
    }
    const perChannel = (name: string | undefined) => {
      const init = name ? g.initializers.get(name) : undefined;
      return !!init && init.dtype === 'float32' && init.dims.length === 1 && init.dims[0] === K && only(name as string);
    };
    if (p.opType === 'Add') {
      const [a, b] = p.inputs as [string, string];
      const bias = perChannel(a) ? a : perChannel(b) ? b : undefined;
      if (!bias) return undefined;
      const mm = prod.get(bias === a ? b : a);
      if (!mm || !only(bias === a ? b : a)) return undefined;
      const lin = linearOf(mm);
      return lin ? { ...lin, bias } : undefined;
    }
    if (p.opType === 'MatMul') {
      const lin = linearOf(p);
      if (lin) return { ...lin, bias: undefined };
      // P·V: V's columns reach the output columns unmixed.
      if (g.initializers.has(p.inputs[0] as string)) return undefined;
      v = p.inputs[1] as string;
      continue;
    }
    return undefined;
  }
  return undefined;

  function linearOf(n: GraphNode): { node: GraphNode; weight: string } | undefined {
    if (n.opType !== 'MatMul' || n.domain !== '') return undefined;
    const w = g.initializers.get(n.inputs[1] ?? '');
    if (!w || w.dtype !== 'float32' || w.dims.length !== 2 || w.dims[1] !== K) return undefined;
    if ((cons.get(w.name) ?? []).length !== 1) return undefined;
    return { node: n, weight: w.name };
  }
}

/** Divides columns (last axis) of an fp32 initializer by s. */
function divideColumns(model: Model, name: string, s: Float32Array): void {
  const init = model.graph.initializers.get(name);
  if (!init) return;
  const d = loadFloat32(init);
  const K = s.length;
  const out = new Float32Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = (d[i] as number) / (s[i % K] as number);
  model.graph.initializers.set(name, memoryInitializer(name, makeTensor('float32', init.dims, out)));
}

function insertScaleMul(model: Model, site: SmoothSite, s: Float32Array): string {
  const ed = new GraphEditor(model.graph);
  const inv = Float32Array.from(s, (v) => 1 / v);
  const c = ed.constant(`${site.activation}_awq_inv_scale`, 'float32', [s.length], inv);
  const out = ed.name(`${site.activation}_awq_scaled`);
  ed.node('Mul', [site.activation, c], [out]);
  for (const m of site.matmuls)
    for (let i = 0; i < m.inputs.length; i++) if (m.inputs[i] === site.activation) m.inputs[i] = out;
  return `Mul '${out}'`;
}

function setWeight(site: WeightSite, model: Model, wKN: Float32Array): void {
  const shape = linearShape(site);
  const name = site.weight.name;
  const dims = [...site.weight.dims];
  const init = memoryInitializer(name, makeTensor('float32', dims, storedLayout(wKN, shape)));
  model.graph.initializers.set(name, init);
}

/** Output of the model on the first calibration batch (for the fold check). */
async function firstOutputs(runtime: OnnxRuntime, model: Model, data: CalibrationData): Promise<Float32Array[]> {
  const names = model.graph.outputs.map((o) => o.name);
  const outs: Float32Array[] = [];
  let first = true;
  await runModelBatches(
    runtime,
    augmentedModelBytes(model, []),
    data,
    names,
    (out) => {
      if (!first) return;
      first = false;
      for (const n of names) {
        const t = out[n];
        if (t && t.data instanceof Float32Array) outs.push(Float32Array.from(t.data));
      }
    },
    { batchSize: 4 },
  );
  return outs;
}

function relDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let d = 0;
  let m = 0;
  for (let j = 0; j < a.length; j++) {
    const x = a[j] as Float32Array;
    const y = b[j] as Float32Array;
    for (let i = 0; i < x.length; i++) {
      d = Math.max(d, Math.abs((x[i] as number) - (y[i] as number)));
      m = Math.max(m, Math.abs(x[i] as number));
    }
  }
  return m > 0 ? d / m : d;
}

function cloneModel(model: Model): Model {
  return {
    ...model,
    graph: {
      ...model.graph,
      nodes: model.graph.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })),
      initializers: new Map(model.graph.initializers),
    },
  };
}

/**
 * AWQ's scales (folded) and clipping, applied to `model` in place for the scheme of `options`.
 * The caller quantizes next with `equalizeNorms` false.
 */
export async function applyAwq(
  runtime: OnnxRuntime,
  model: Model,
  options: WeightOnlyOptions,
  data: CalibrationData,
  o: AwqOptions = {},
): Promise<AwqResult> {
  const scheme = awqScheme(options);
  const blockSize = checkBlockSize(options.blockSize ?? scheme.defaultBlockSize);
  const notes: string[] = [];
  if (options.equalizeNorms !== false) {
    const eq = equalizeNormScales(model, { exclude: options.exclude });
    if (eq.groups.length > 0)
      notes.push(`${eq.groups.length} normalization scale(s) folded into the weights they feed before AWQ`);
  }
  const { fq, fqBlock } = fakeQuantizers(scheme, blockSize, options);
  const original = cloneModel(model);
  const reference = await firstOutputs(runtime, model, data);
  const stats = await collectInputStats(runtime, model, awqGroups(model, options), data, o.calibBatch);
  const blockResults =
    o.objective === 'block'
      ? await blockSearches(runtime, model, options, data, stats, fq, o)
      : new Map<string, AwqScaleResult>();

  const run = (target: Model, chainFolds: boolean) => {
    const groups = awqGroups(target, options);
    const reports: AwqGroupReport[] = [];
    const scaled: { group: Group; s: Float32Array | undefined; h: Float64Array }[] = [];
    for (const gr of groups) {
      const st = stats.get(gr.site.activation);
      if (!st) continue;
      const K = gr.site.channels;
      const weights = gr.sites.map((s) => ({ w: weightKN(linearView(s)), N: linearShape(s).N }));
      const block = blockResults.get(gr.site.activation);
      const r = block ?? awqSearchScale(st.h, st.meanAbs, weights, fq, o.grid ?? 20);
      let foldedInto = '';
      if (r.alpha > 0) {
        const tail = affineTail(target, gr.site, producers(target.graph), consumers(target.graph));
        const prev = tail || !chainFolds ? undefined : previousLinear(target, gr.site.activation, K);
        if (tail) foldedInto = foldIntoTail(target, tail, r.s);
        else if (prev) {
          divideColumns(target, prev.weight, r.s);
          if (prev.bias) divideColumns(target, prev.bias, r.s);
          foldedInto = `'${prev.node.name}' output columns`;
        } else foldedInto = insertScaleMul(target, gr.site, r.s);
        for (const [i, s] of gr.sites.entries()) {
          const w = (weights[i] as { w: Float32Array }).w;
          const N = linearShape(s).N;
          const ws = new Float32Array(K * N);
          for (let k = 0; k < K; k++)
            for (let n = 0; n < N; n++) ws[k * N + n] = (w[k * N + n] as number) * (r.s[k] as number);
          setWeight(s, target, ws);
        }
      }
      scaled.push({ group: gr, s: r.alpha > 0 ? r.s : undefined, h: st.h });
      reports.push({
        activation: gr.site.activation,
        layers: gr.site.matmuls.map((m) => m.name),
        foldedInto,
        alpha: r.alpha,
        objective: block ? 'block' : 'linear',
        errorPlain: r.errorPlain,
        error: r.error,
      });
    }
    target.graph.nodes = topologicalOrder(target.graph);
    return { reports, scaled };
  };

  let work = cloneModel(original);
  let phase = run(work, true);
  if (phase.reports.some((r) => r.foldedInto.endsWith('output columns'))) {
    const check = relDiff(reference, await firstOutputs(runtime, work, data));
    if (check > 1e-3) {
      notes.push(`previous-layer folds changed the fp32 output (${check.toExponential(1)}): Mul nodes used instead`);
      work = cloneModel(original);
      phase = run(work, false);
    }
  }
  // Clipping, each weight against its scaled input's Gram matrix diag(1/s)·H·diag(1/s).
  let clippedBlocks = 0;
  let blocks = 0;
  if ((o.maxShrink ?? 0.5) > 0) {
    const byName = new Map(findWeightSites(work).map((s) => [s.node.name, s]));
    for (const { group, s, h } of phase.scaled) {
      const K = group.site.channels;
      const hs = s ? h.map((v, i) => v / ((s[Math.floor(i / K)] as number) * (s[i % K] as number))) : h;
      for (const m of group.site.matmuls) {
        const site = byName.get(m.name);
        if (!site) continue;
        const shape = linearShape(site);
        if (scheme.kind === 'bnb4' && shape.K % blockSize !== 0) continue;
        const w = weightKN(linearView(site));
        const c = awqClip(hs, w, K, shape.N, blockSize, fqBlock, o.maxShrink ?? 0.5);
        clippedBlocks += c.clippedBlocks;
        blocks += c.blocks;
        if (c.clippedBlocks > 0) setWeight(site, work, c.clipped);
      }
    }
  }
  // The work copy becomes the model.
  model.graph.nodes = work.graph.nodes;
  model.graph.initializers.clear();
  for (const [k, v] of work.graph.initializers) model.graph.initializers.set(k, v);
  const scaledGroups = phase.reports.filter((r) => r.alpha > 0).length;
  const onBlocks = phase.reports.filter((r) => r.objective === 'block').length;
  notes.push(
    `AWQ: ${scaledGroups} of ${phase.reports.length} input group(s) scaled (α ${phase.reports.map((r) => r.alpha.toFixed(2)).join(', ')}), ${clippedBlocks} of ${blocks} block(s) clipped, from ${[...stats.values()][0]?.rows ?? 0} calibration tokens${onBlocks > 0 ? `; ${onBlocks} group(s) scored on the block they feed` : ''}`,
  );
  return { groups: phase.reports, clippedBlocks, blocks, notes };
}

/**
 * The scale search of every group that feeds a block beyond its own layers, scored on that
 * block's output (flows/awq-block.ts), on the original weights; keyed by the group's input.
 */
async function blockSearches(
  runtime: OnnxRuntime,
  model: Model,
  options: WeightOnlyOptions,
  data: CalibrationData,
  stats: ReadonlyMap<string, InputStats>,
  fq: FakeQuant,
  o: AwqOptions,
): Promise<Map<string, AwqScaleResult>> {
  const found: { group: Group; block: AwqBlock }[] = [];
  for (const gr of awqGroups(model, options)) {
    const block = findAwqBlock(model, gr.site.activation, gr.site.matmuls);
    if (block && stats.has(gr.site.activation)) found.push({ group: gr, block });
  }
  const results = new Map<string, AwqScaleResult>();
  if (found.length === 0) return results;
  const feeds = await captureBlockFeeds(
    runtime,
    model,
    found.map((f) => f.block),
    data,
    o.calibBatch,
  );
  for (const { group, block } of found) {
    const st = stats.get(group.site.activation) as InputStats;
    const shapes = group.sites.map((s) => linearShape(s));
    const weights = group.sites.map((s, i) => ({ w: weightKN(linearView(s)), N: (shapes[i] as { N: number }).N }));
    const scorer = await BlockScorer.open(
      runtime,
      model,
      block,
      feeds.get(block) ?? [],
      group.sites.map((s) => loadFloat32(s.weight)),
    );
    try {
      const r = await awqSearchScaleBy(
        st.meanAbs,
        weights,
        fq,
        (wq) => scorer.score(wq.map((w, i) => storedLayout(w, shapes[i] as ReturnType<typeof linearShape>))),
        o.grid ?? 20,
      );
      results.set(group.site.activation, r);
    } finally {
      await scorer.close();
    }
  }
  return results;
}
