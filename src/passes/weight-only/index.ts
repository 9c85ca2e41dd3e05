import { equalizeNormScales } from '../activation/smoothquant.js';
import { OptionError } from '../../errors.js';
import type { Initializer, Model } from '../../graph/model.js';
import { topologicalOrder, uniqueName, usedNames } from '../../graph/topology.js';
import { checkKMeansBits } from '../../quant/kmeans-weights.js';
import { storageBytes } from '../../tensor/dtype.js';
import { bnb4Handler } from './bnb4-handler.js';
import { bf16Handler, float8Handler, int8Handler } from './dq-storage.js';
import { convertToFloat16 } from './fp16.js';
import { blockGatherPart, int8RowsGatherPart, withGatherPart } from './gather-handler.js';
import { isRead } from './graph-edit.js';
import { kmeansHandler } from './kmeans-handler.js';
import { nbitsHandler } from './nbits-handler.js';
import { STORE_MIN_ELEMENTS, storeOtherTensors } from './other-tensors.js';
import { checkBlockSize, schemeByName, type WeightOnlyScheme } from './scheme.js';
import type {
  HandlerContext,
  LayerReport,
  WeightHandler,
  WeightOnlyOptions,
  WeightOnlyReport,
  WeightSite,
} from './types.js';

export type { LayerReport, WeightOnlyOptions, WeightOnlyReport } from './types.js';
export { SCHEMES, SCHEME_NAMES, BLOCK_SIZES, type SchemeName } from './scheme.js';

/*
 * Weight-only post-training quantization: every node that reads a weight initializer in its
 * weight slot (MatMul B, Gemm B, Conv W, Gather data) is a site; sites are grouped by weight so a
 * tied weight is quantized once; the scheme's handler rewrites each group, loading one weight at
 * a time.
 *
 * Differences from ONNX Runtime's own quantizer (onnxruntime.quantization, 1.30), by design:
 *  - int8: identical weights for per-channel symmetric int8 with reduce_range off (scale =
 *    max|w|/127 in float32, zero point 0, round half to even) — except that a channel whose
 *    max|w|/127 underflows below FLT_MIN (subnormal-only channels) gets scale FLT_MIN instead of
 *    a subnormal one, and ORT's quantize_dynamic refuses weights held in Constant nodes (ours
 *    lifts them to initializers first). ORT writes an explicit int8 zero-point tensor of zeros; we
 *    omit it (the ONNX default is 0), saving C bytes per weight.
 *  - q4 (MatMul4BitsQuantizer, RTN): with --rtn the codes and scales are bit-identical (MLAS
 *    BlockwiseQuantizer: scale = m / -8 with m the value of largest magnitude, code =
 *    roundf(w · (1/scale) + 8) clamped to [0, 15]) except for an all-zero block, where ORT stores
 *    scale 0 and we store 1 (codes are 8 either way, so the weights are equal). Without --rtn the
 *    scale of each block is searched for the least squared error (quant/nbits-quant.ts), so codes and
 *    scales differ by design; the search's first candidate is ORT's scale, so no block is worse.
 *  - q4-asym: ORT's range2scalezp over [min(lo,0), max(hi,0)]; same search as above.
 *  - MatMulBnb4 has no ORT Python quantizer path for fp32 models; ours follows bitsandbytes.
 */

const HANDLERS: Record<
  Exclude<WeightOnlyScheme['kind'], 'fp16'>,
  (s: WeightOnlyScheme, o: WeightOnlyOptions) => WeightHandler
> = {
  'dq-int8': () => int8Handler,
  nbits: (s, o) => {
    const n = s as Extract<WeightOnlyScheme, { kind: 'nbits' }>;
    const linear = nbitsHandler(n, o.format ?? 'native');
    // GatherBlockQuantized takes 4- and 8-bit codes: 2- and 3-bit schemes store tables as int8 rows.
    if (o.quantizeEmbeddings && (n.bits === 2 || 'codeBits' in n))
      return withGatherPart(linear, int8RowsGatherPart(`no ${n.bits === 2 ? 2 : 3}-bit Gather`));
    const bits = n.bits as 4 | 8;
    // Embeddings only when asked (they cost quality: lm.onnx q4 +1.45 % → +1.98 %), and only in
    // the native form: GatherBlockQuantized is a contrib op, which --format qdq promises to avoid.
    return o.quantizeEmbeddings && (o.format ?? 'native') === 'native'
      ? withGatherPart(linear, blockGatherPart(bits, n.symmetric), int8RowsGatherPart('tied embedding'))
      : linear;
  },
  bnb4: (s, o) => {
    const type = (s as Extract<WeightOnlyScheme, { kind: 'bnb4' }>).type;
    return o.quantizeEmbeddings
      ? withGatherPart(bnb4Handler(type), int8RowsGatherPart(`ONNX Runtime has no ${type} Gather`))
      : bnb4Handler(type);
  },
  'cast-store': () => bf16Handler,
  'dq-float8': (s) => float8Handler((s as Extract<WeightOnlyScheme, { kind: 'dq-float8' }>).dtype),
  kmeans: () => kmeansHandler,
};

/** Weight input slot of each op type whose weights the schemes quantize. */
const WEIGHT_SLOT: Record<string, number> = { MatMul: 1, Gemm: 1, Conv: 1, Gather: 0 };

export function initializerBytes(init: Initializer): number {
  let count = 1;
  for (const d of init.dims) count *= d;
  return storageBytes(init.dtype, count);
}

export function totalInitializerBytes(model: Model): number {
  let s = 0;
  for (const init of model.graph.initializers.values()) s += initializerBytes(init);
  return s;
}

/** Weight-reading sites in execution order. */
export function findWeightSites(model: Model): WeightSite[] {
  const g = model.graph;
  const sites: WeightSite[] = [];
  for (const n of topologicalOrder(g)) {
    if (n.domain !== '') continue;
    const slot = WEIGHT_SLOT[n.opType];
    if (slot === undefined) continue;
    const name = n.inputs[slot];
    const weight = name ? g.initializers.get(name) : undefined;
    if (!weight || weight.dtype !== 'float32') continue;
    // Only the slot WEIGHT_SLOT names counts: a MatMul with its initializer on the left (W · x,
    // rare but legal) is not a site and stays fp32.
    sites.push({ node: n, slot, weight });
  }
  return sites;
}

function matchesExclude(site: WeightSite, exclude: readonly string[]): string | undefined {
  for (const e of exclude) {
    if (e === site.node.opType || e === site.node.name || e === site.weight.name) return `excluded (\`exclude\` ${e})`;
  }
  return undefined;
}

/**
 * Why the user's flags keep a site in fp32 (--keep-first-last over `sites` in execution order,
 * then --exclude), or undefined: the one rule the pass, its worker jobs and GPTQ all follow.
 */
export function userSkipReason(
  sites: readonly WeightSite[],
  options: WeightOnlyOptions,
): (site: WeightSite) => string | undefined {
  const firstLast = new Set<WeightSite>(
    options.keepFirstLast && sites.length > 0 ? [sites[0] as WeightSite, sites[sites.length - 1] as WeightSite] : [],
  );
  const exclude = options.exclude ?? [];
  return (site) => (firstLast.has(site) ? 'kept fp32 (`keepFirstLast`)' : matchesExclude(site, exclude));
}

/** `floatZeroPoints` chooses how float zero points are written: only HQQ and q4-k write them. */
function checkFloatZeroPoints(options: WeightOnlyOptions, scheme: WeightOnlyScheme): void {
  if (options.floatZeroPoints !== 'split' && options.floatZeroPoints !== 'inline')
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`floatZeroPoints\` '${String(options.floatZeroPoints)}' is not known`,
      "use 'split' (the default) or 'inline'",
      ['floatZeroPoints'],
    );
  if (scheme.kind !== 'nbits' || !(options.hqq || 'superBlock' in scheme))
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`floatZeroPoints\` applies to the forms with float zero points (\`hqq\`, q4-k), not '${options.scheme}'${options.hqq ? '' : ' without `hqq`'}`,
      'drop `floatZeroPoints`, or add `hqq`',
      ['floatZeroPoints'],
    );
}

/** HQQ stores float zero points in MatMulNBits, which ONNX Runtime runs for 2- and 4-bit codes. */
function checkHqq(options: WeightOnlyOptions, scheme: WeightOnlyScheme): void {
  if (scheme.kind !== 'nbits' || scheme.bits === 8)
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`hqq\` applies to the 2-, 3- and 4-bit MatMulNBits schemes, not '${options.scheme}'`,
      'use `scheme` q4, q4-asym, q3, q3-asym, q2 or q2-asym, or drop `hqq`',
      ['hqq', 'scheme'],
    );
  if (options.format === 'qdq')
    throw new OptionError(
      'QK_BAD_OPTION',
      '`hqq` writes fractional zero points, which DequantizeLinear cannot hold',
      'drop `format` qdq or `hqq`',
      ['hqq', 'format'],
    );
  if (options.rtn)
    throw new OptionError('QK_BAD_OPTION', '`hqq` and `rtn` choose the zero points two ways', 'drop one', [
      'hqq',
      'rtn',
    ]);
}

/** The scheme of `options` and its block size, refusing options that only other schemes read. */
function checkedScheme(options: WeightOnlyOptions): { scheme: WeightOnlyScheme; blockSize: number | null } {
  const scheme = schemeByName(options.scheme);
  const blockSize =
    scheme.kind === 'nbits' || scheme.kind === 'bnb4'
      ? checkBlockSize(options.blockSize ?? scheme.defaultBlockSize)
      : null;
  if (options.doubleQuant && scheme.kind !== 'bnb4') {
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`doubleQuant\` applies to nf4/fp4, not '${options.scheme}'`,
      'drop `doubleQuant` or use `scheme` nf4',
      ['doubleQuant', 'scheme'],
    );
  }
  if ((options.accuracyLevel ?? 0) !== 0 && (scheme.kind !== 'nbits' || options.format === 'qdq')) {
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`accuracyLevel\` is MatMulNBits's: it applies to the MatMulNBits schemes (q2, q3, q4, q8-block and their -asym forms) in the native form, not '${options.scheme}'${options.format === 'qdq' ? ' with `format` qdq' : ''}`,
      "drop `accuracyLevel` (a QDQ model takes ONNX Runtime's session option session.qdq_matmulnbits_accuracy_level instead)",
      ['accuracyLevel'],
    );
  }
  if (options.hqq) checkHqq(options, scheme);
  if (options.floatZeroPoints !== undefined) checkFloatZeroPoints(options, scheme);
  if (options.outliers !== undefined && options.outliers !== 0) {
    if (!(options.outliers > 0 && options.outliers < 1))
      throw new OptionError(
        'QK_BAD_OPTION',
        `\`outliers\` ${options.outliers} is not a fraction in (0, 1)`,
        'e.g. 0.005 (0.5 %)',
        ['outliers'],
      );
    if (scheme.kind !== 'nbits' || 'superBlock' in scheme || options.hqq || options.format === 'qdq')
      throw new OptionError(
        'QK_BAD_OPTION',
        `\`outliers\` applies to the MatMulNBits schemes in their plain form, not '${options.scheme}'${options.hqq ? ' with `hqq`' : ''}${options.format === 'qdq' ? ' with `format` qdq' : ''}`,
        'drop `outliers`, or use `scheme` q4, q4-asym, q3, q3-asym, q2 or q2-asym',
        ['outliers'],
      );
  }
  if (scheme.kind === 'nbits' && 'spqr' in scheme && (options.hqq || options.format === 'qdq' || options.rtn)) {
    const other = options.hqq ? 'hqq' : options.format === 'qdq' ? 'format' : 'rtn';
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`${other}\` with '${options.scheme}': SpQR chooses its own scales, zero points and outliers, written as MatMulNBits`,
      `drop \`${other}\``,
      [other],
    );
  }
  const kmeansOnly = {
    bits: '`bits`',
    perChannel: '`perChannel`',
    seed: '`seed`',
    keepZeros: 'keepZeros (compress)',
  } as const;
  for (const option of ['bits', 'perChannel', 'seed', 'keepZeros'] as const) {
    if (options[option] !== undefined && options[option] !== false && scheme.kind !== 'kmeans')
      throw new OptionError(
        'QK_BAD_OPTION',
        `${kmeansOnly[option]} applies to kmeans, not '${options.scheme}'`,
        'drop it or use `scheme` kmeans',
        [option, 'scheme'],
      );
  }
  if (scheme.kind === 'kmeans') checkKMeansBits(options.bits ?? 4);
  if (options.format === 'qdq' && scheme.kind !== 'nbits') {
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`format\` qdq applies to q4/q4-asym, not '${options.scheme}'`,
      'drop `format` qdq',
      ['format'],
    );
  }
  return { scheme, blockSize };
}

/**
 * fp16: the whole graph converted (fp16.ts), not weight by weight, so it has no weight handler;
 * the scheme table (flows/schemes.ts) sends fp16 here and every other scheme to quantizeWeights.
 */
export function convertWeightsToFloat16(model: Model, options: WeightOnlyOptions): WeightOnlyReport {
  const { scheme } = checkedScheme(options);
  if (scheme.kind !== 'fp16') throw new Error(`convertWeightsToFloat16 takes fp16, not '${options.scheme}'`);
  const bytesBefore = totalInitializerBytes(model);
  const r = convertToFloat16(model, options.fp16BlockList);
  const bytesAfter = totalInitializerBytes(model);
  return {
    scheme: options.scheme,
    blockSize: null,
    layers: r.layers,
    notes: [...r.notes],
    totals: {
      bytesBefore,
      bytesAfter,
      ratio: bytesBefore === 0 ? 1 : bytesAfter / bytesBefore,
      quantizedLayers: r.layers.filter((l) => l.scheme !== 'fp32').length,
      skippedLayers: r.layers.filter((l) => l.scheme === 'fp32').length,
    },
  };
}

/** Rewrites `model` in place; returns the per-layer report. */
export function quantizeWeights(model: Model, options: WeightOnlyOptions): WeightOnlyReport {
  const { scheme, blockSize } = checkedScheme(options);
  if (scheme.kind === 'fp16') throw new Error('fp16 converts the whole graph: call convertWeightsToFloat16');
  const bytesBefore = totalInitializerBytes(model);
  const notes: string[] = [];

  // Integer and codebook grids have one scale per channel or block, so a channel whose norm scale
  // γ is large (an activation-outlier channel) with correspondingly small weights loses them to
  // the others' scale. Folding the norm's per-channel magnitude into the weights first (exact in
  // fp32; see equalizeNormScales) quantizes the weights the normalized input actually meets.
  if (
    options.equalizeNorms !== false &&
    (scheme.kind === 'dq-int8' || scheme.kind === 'nbits' || scheme.kind === 'bnb4')
  ) {
    const eq = equalizeNormScales(model, { exclude: options.exclude });
    if (eq.groups.length > 0)
      notes.push(
        `${eq.groups.length} normalization scale(s) folded into the weights they feed (${eq.groups.map((gr) => gr.foldedInto).join(', ')})`,
      );
  }

  const g = model.graph;
  const taken = usedNames(g);
  const handler = HANDLERS[scheme.kind](scheme, options);
  const ctx: HandlerContext = {
    model,
    graph: g,
    scheme,
    options,
    blockSize: blockSize ?? 0,
    name: (base) => uniqueName(g, base, taken),
    prologue: [],
    notes,
  };

  const sites = findWeightSites(model);
  const skipReason = userSkipReason(sites, options);
  const byWeight = new Map<string, WeightSite[]>();
  for (const s of sites) {
    const list = byWeight.get(s.weight.name);
    if (list) list.push(s);
    else byWeight.set(s.weight.name, [s]);
  }

  const globalReason = handler.prepare?.(ctx);
  const layers: LayerReport[] = [];
  // Float initializers no weight site reads (positional tables, masks ...): other-tensors.ts.
  const others = [...g.initializers.keys()].filter((name) => !byWeight.has(name));
  let done = 0;
  for (const [weight, group] of byWeight) {
    options.progress?.(done++, byWeight.size, `quantizing weights (${options.scheme})`);
    const init = group[0]?.weight as Initializer;
    const before = initializerBytes(init);
    const eligible: WeightSite[] = [];
    const reasons: string[] = [];
    for (const s of group) {
      const why = globalReason ?? skipReason(s) ?? handler.reject(s, ctx);
      if (why) reasons.push(`${s.node.name || s.node.opType}: ${why}`);
      else eligible.push(s);
    }
    const base = {
      nodes: group.map((s) => s.node.name),
      opTypes: group.map((s) => s.node.opType),
      weight,
      dims: [...init.dims],
      bytesBefore: before,
    };
    // A storage scheme stores a weight its site rules reject (rank 1, Gather along axis 1) as any
    // other float tensor, unless the user's flags keep it.
    if (eligible.length === 0 && handler.store && globalReason === undefined && !group.some((s) => skipReason(s))) {
      others.push(weight);
      continue;
    }
    if (eligible.length === 0) {
      layers.push({
        ...base,
        scheme: 'fp32',
        form: '',
        sqnrDb: null,
        bytesAfter: before,
        note: [...new Set(reasons.map((r) => r.replace(/^[^:]*: /, '')))].join('; '),
      });
      continue;
    }
    const r = handler.apply(weight, eligible, ctx);
    const keptOriginal = isRead(g, weight) || ctx.prologue.some((n) => n.inputs.includes(weight));
    if (!keptOriginal) g.initializers.delete(weight);
    const note = [r.note, reasons.length > 0 ? `fp32 copy kept for ${reasons.join('; ')}` : '']
      .filter(Boolean)
      .join('; ');
    const form = options.precomputed?.gptq?.has(weight) ? `${r.form} gptq` : r.form; // GPTQ results (gptq-handler.ts)
    layers.push({
      ...base,
      scheme: r.scheme,
      form,
      sqnrDb: r.sqnrDb,
      bytesAfter: r.addedBytes + (keptOriginal ? before : 0),
      ...(r.trueBytes === undefined ? {} : { trueBytes: r.trueBytes + (keptOriginal ? before : 0) }),
      note,
      ...(r.kmeans ? { kmeans: r.kmeans } : {}),
    });
  }
  options.progress?.(byWeight.size, byWeight.size, `quantizing weights (${options.scheme})`);
  if (handler.store && globalReason === undefined) {
    const r = storeOtherTensors(ctx, handler.store, others, (name, readers) => {
      const e = (options.exclude ?? []).find((x) => x === name || readers.some((n) => n.opType === x || n.name === x));
      return e === undefined ? undefined : `excluded (\`exclude\` ${e})`;
    });
    layers.push(...r.layers);
    notes.push(...r.notes);
  } else {
    const big = others.filter((name) => {
      const init = g.initializers.get(name);
      return init?.dtype === 'float32' && isRead(g, name) && init.dims.reduce((a, b) => a * b, 1) >= STORE_MIN_ELEMENTS;
    });
    if (big.length > 0)
      notes.push(
        `kept fp32: ${big.length} float tensor${big.length === 1 ? '' : 's'} outside weight inputs (${scheme.kind === 'nbits' || scheme.kind === 'bnb4' ? `${options.scheme} quantizes MatMul/Gemm weights` : 'the scheme could not be applied'}): ${big.join(', ')}`,
      );
  }
  g.nodes = [...ctx.prologue, ...g.nodes];

  const bytesAfter = totalInitializerBytes(model);
  const quantized = layers.filter((l) => l.scheme !== 'fp32').length;
  return {
    scheme: options.scheme,
    blockSize,
    layers,
    notes,
    totals: {
      bytesBefore,
      bytesAfter,
      ratio: bytesBefore === 0 ? 1 : bytesAfter / bytesBefore,
      quantizedLayers: quantized,
      skippedLayers: layers.length - quantized,
    },
  };
}
