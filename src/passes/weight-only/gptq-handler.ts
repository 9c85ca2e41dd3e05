import { QuantkitError } from '../../errors.js';
import { ROUNDER } from '../../formats/rounding.js';
import type { Model } from '../../graph/model.js';
import { quantizeNBitsMatrixAuto } from '../../kernels/nbits-dispatch.js';
import { bnb4Table, quantizeBnb4, type Bnb4Type, type Bnb4Weights } from '../../quant/bnb4-quant.js';
import { nearestCode, fp4BnbCodebook, nf4Codebook } from '../../quant/codebook.js';
import {
  gptqQuantize,
  type GptqOptions,
  type GptqResult,
  type GroupParams,
  type GroupQuantizer,
} from '../../quant/gptq.js';
import { codeRange, nbitsWeightsFrom, type NBitsOptions, type NBitsWeights } from '../../quant/nbits-quant.js';
import { NonFiniteWeight } from '../../quant/non-finite-weight.js';
import { spqrQuantize, type SpqrWeights } from '../../quant/spqr.js';
import {
  superBlockGroupQuantizer,
  superBlockWeightsFrom,
  type SuperBlockOptions,
  type SuperBlockWeights,
} from '../../quant/superblock.js';
import { DEFAULT_SPQR_OUTLIERS } from './spqr-handler.js';
import { findWeightSites, userSkipReason } from './index.js';
import { linearShape, rejectLinear, type LinearShape, type LinearView } from './linear-site.js';
import { bnb4Key, nbitsKey, viewIdOf, type Bnb4Key, type NBitsKey } from './result-key.js';
import { checkBlockSize, nbitsOptionsFor, schemeByName, type WeightOnlyScheme } from './scheme.js';
import type { WeightOnlyOptions, WeightSite } from './types.js';

/*
 * GPTQ (quant/gptq.ts) for the block-quantized weight-only schemes: the formats' group
 * quantizers, the layers it applies to, and its results in the exact form the nbits / bnb4
 * handlers store (NBitsWeights, Bnb4Weights), handed to the pass through
 * WeightOnlyOptions.precomputed. Each group's scale is chosen by the format's own data-free
 * search (quant/nbits-quant.ts / bnb4-quant.ts) on the group's values as GPTQ has updated them, so
 * GPTQ changes the rounding, never the format.
 */

/** Schemes GPTQ applies to: the block-quantized ones (MatMulNBits, MatMulBnb4). */
export type GptqScheme = Extract<WeightOnlyScheme, { kind: 'nbits' } | { kind: 'bnb4' }>;

export function gptqScheme(options: WeightOnlyOptions): GptqScheme {
  const s = schemeByName(options.scheme);
  if (s.kind !== 'nbits' && s.kind !== 'bnb4') {
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `\`calib\` with weight-only scheme '${options.scheme}': calibration data drives GPTQ, which is for the block-quantized schemes`,
      'use `scheme` q4, q4-asym, q8-block, nf4 or fp4 with `calib`, or drop `calib`',
    );
  }
  if (options.outliers && !(s.kind === 'nbits' && 'spqr' in s)) {
    throw new QuantkitError(
      'QK_BAD_OPTION',
      '`outliers` with `calib`: GPTQ rounds every row, the outlier split takes rows out',
      'drop one of `outliers` and `calib`',
    );
  }
  if (options.hqq) {
    throw new QuantkitError(
      'QK_BAD_OPTION',
      '`hqq` with `calib`: HQQ is data-free, and GPTQ chooses its own rounding from the calibration data',
      'drop one of `hqq` and `calib`',
    );
  }
  if (s.kind === 'bnb4' && options.doubleQuant) {
    throw new QuantkitError(
      'QK_BAD_OPTION',
      '`doubleQuant` with `calib`: GPTQ chooses codes against the fp32 constants, which double quantization would change afterwards',
      'drop one of `doubleQuant` and `calib`',
    );
  }
  return s;
}

export const gptqBlockSize = (s: GptqScheme, options: WeightOnlyOptions) =>
  checkBlockSize(options.blockSize ?? s.defaultBlockSize);

export const nbitsOptionsOf = (
  s: Extract<GptqScheme, { kind: 'nbits' }>,
  blockSize: number,
  options: WeightOnlyOptions,
): NBitsOptions => nbitsOptionsFor(s, blockSize, options.rtn ?? false);

const f = Math.fround;

/** MatMulNBits groups: the data-free search picks (scale, zero point); codes round half to even. */
export function nbitsGroupQuantizer(o: NBitsOptions): GroupQuantizer {
  const { lo, hi } = codeRange(o);
  return {
    blockSize: o.blockSize,
    encodeBlockScale(values: Float32Array, out: GroupParams) {
      const w = quantizeNBitsMatrixAuto(values, values.length, 1, true, 1, o);
      out.scale = w.scales[0] as number;
      out.zero = w.zp[0] as number;
    },
    quantizeValue(v, s, z) {
      const q = v / s + ROUNDER - ROUNDER + z;
      return q < lo ? lo : q > hi ? hi : q;
    },
    // MatMulNBits: (code − zero point) · scale in float32.
    dequantize: (c, s, z) => f((c - z) * s),
  };
}

/** MatMulBnb4 groups: the data-free search picks the constant; codes are the nearest table entry. */
export function bnb4GroupQuantizer(type: Bnb4Type, blockSize: number, rtn: boolean): GroupQuantizer {
  const cb = type === 'nf4' ? nf4Codebook() : fp4BnbCodebook();
  const table = bnb4Table(type);
  const zeroCode = nearestCode(cb, 0);
  return {
    blockSize,
    encodeBlockScale(values: Float32Array, out: GroupParams) {
      out.scale = quantizeBnb4(values, { type, blockSize, rtn }).absmax[0] as number;
      out.zero = 0;
    },
    // bitsandbytes multiplies by the float32 reciprocal (quant/bnb4-quant.ts encodeBlock).
    quantizeValue: (v, s) => (s === 0 ? zeroCode : nearestCode(cb, f(f(v) * f(1 / s)))),
    dequantize: (c, s) => f((table[c] as number) * s),
  };
}

/** alpha · W as [K, N] row-major (GPTQ's layout), from a site's view. */
export function weightKN(view: LinearView): Float32Array {
  const { K, N, data, transposed, alpha } = view;
  if (!transposed && alpha === 1) return data;
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) out[k * N + n] = alpha * (data[transposed ? n * K + k : k * N + n] as number);
  }
  return out;
}

/** The dequantized weight back in the stored layout (÷ alpha): what the fp32 model would hold. */
export function storedLayout(deq: Float32Array, view: LinearShape): Float32Array {
  const { K, N, transposed, alpha } = view;
  if (!transposed && alpha === 1) return deq;
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) out[transposed ? n * K + k : k * N + n] = (deq[k * N + n] as number) / alpha;
  }
  return out;
}

function checkFinite(w: Float32Array, weight: string): void {
  for (let i = 0; i < w.length; i++) {
    const v = w[i] as number;
    if (!Number.isFinite(v))
      throw new QuantkitError(
        'QK_NONFINITE_WEIGHTS',
        `weight '${weight}' has a non-finite value (${v})`,
        'fix the weights, or `exclude` this tensor',
      );
  }
}

function signalNoise(w: Float32Array, r: GptqResult): { signalSq: number; noiseSq: number } {
  let signalSq = 0;
  let noiseSq = 0;
  for (let i = 0; i < w.length; i++) {
    const v = w[i] as number;
    signalSq += v * v;
    noiseSq += (v - (r.dequantized[i] as number)) ** 2;
  }
  return { signalSq, noiseSq };
}

/** GPTQ result → MatMulNBits' B / scales / zero points (layout in quant/nbits-quant.ts). */
export function nbitsWeightsFromGptq(r: GptqResult, w: Float32Array, o: NBitsOptions): NBitsWeights {
  const { K, N, kBlocks } = r;
  const bs = o.blockSize;
  const bits = o.bits;
  const blob = (bs * bits) / 8;
  const per = 8 / bits;
  const packed = new Uint8Array(N * kBlocks * blob);
  const zp = Uint8Array.from(r.zeros);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const p = n * kBlocks + b;
      const z = zp[p] as number;
      for (let i = 0; i < bs; i++) {
        const k = b * bs + i;
        // Padding past K holds the zero point (dequantizes to exactly 0), as the data-free path.
        const c = k < K ? (r.codes[n * K + k] as number) : z;
        const byte = p * blob + Math.floor(i / per);
        packed[byte] = (packed[byte] as number) | (c << ((i % per) * bits));
      }
    }
  }
  let zeroPoints: Uint8Array | undefined;
  if (!o.symmetric) {
    const zpBytes = Math.ceil((kBlocks * bits) / 8);
    zeroPoints = new Uint8Array(N * zpBytes);
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < kBlocks; b++) {
        const byte = n * zpBytes + Math.floor(b / per);
        zeroPoints[byte] = (zeroPoints[byte] as number) | ((zp[n * kBlocks + b] as number) << ((b % per) * bits));
      }
    }
  }
  return nbitsWeightsFrom({ K, N, kBlocks, packed, scales: r.scales, zeroPoints, zp, ...signalNoise(w, r) }, bs, bits);
}

/** GPTQ result → MatMulBnb4's B / absmax: codes of the flattened [N, K], first in the high nibble. */
export function bnb4WeightsFromGptq(r: GptqResult): Bnb4Weights {
  const codes = r.codes;
  const packed = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] as number;
    packed[i >> 1] = (packed[i >> 1] as number) | ((i & 1) === 0 ? c << 4 : c);
  }
  return { packed, absmax: r.scales, codes, doubleQuantBytes: undefined };
}

/** One weight (one view of it) GPTQ quantizes: its sites and the activations they read. */
export interface GptqLayer {
  readonly weight: string;
  readonly shape: LinearShape;
  readonly sites: readonly WeightSite[];
  /** The inputs (X) of the sites; a tied weight's Hessian is the sum over them. */
  readonly activations: readonly string[];
  /** The key the handler looks the result up by. */
  readonly key: NBitsKey | Bnb4Key;
}

export interface GptqPlan {
  readonly scheme: GptqScheme;
  readonly blockSize: number;
  /** In execution order of the first site. */
  readonly layers: GptqLayer[];
  /** Why some weights are left to the data-free quantizer. */
  readonly notes: string[];
}

/** The layers GPTQ would quantize for `options`: the eligible MatMul/Gemm sites the pass rewrites. */
export function planGptq(model: Model, options: WeightOnlyOptions): GptqPlan {
  const scheme = gptqScheme(options);
  const blockSize = gptqBlockSize(scheme, options);
  const sites = findWeightSites(model);
  const skipReason = userSkipReason(sites, options);
  const byKey = new Map<string, { weight: string; shape: LinearShape; sites: WeightSite[] }>();
  const notes: string[] = [];
  for (const s of sites) {
    if (skipReason(s)) continue;
    if (rejectLinear(s, model.graph)) continue;
    const shape = linearShape(s);
    if (scheme.kind === 'bnb4' && shape.K % blockSize !== 0) {
      // MatMulBnb4 blocks run over the flattened [N, K]: a block crossing two output columns
      // has no single column for GPTQ to update.
      notes.push(`${s.weight.name}: K = ${shape.K} is not a multiple of block ${blockSize}, data-free rounding kept`);
      continue;
    }
    const viewId = viewIdOf(shape.id);
    const entry = byKey.get(viewId);
    if (entry) entry.sites.push(s);
    else byKey.set(viewId, { weight: s.weight.name, shape, sites: [s] });
  }
  const layers: GptqLayer[] = [...byKey.values()].map(({ weight, shape, sites: ss }) => ({
    weight,
    shape,
    sites: ss,
    activations: [...new Set(ss.map((s) => s.node.inputs[0] as string))],
    key:
      scheme.kind === 'nbits'
        ? nbitsKey(shape.id, nbitsOptionsOf(scheme, blockSize, options))
        : bnb4Key(shape.id, scheme.type, blockSize, options.rtn ?? false),
  }));
  return { scheme, blockSize, layers, notes };
}

export type GptqLayerWeights =
  | {
      readonly kind: 'spqr';
      readonly weights: SpqrWeights;
      readonly dequantized: Float32Array;
      readonly dampUsed: number;
    }
  | {
      readonly kind: 'superBlock';
      readonly weights: SuperBlockWeights;
      readonly dequantized: Float32Array;
      readonly dampUsed: number;
    }
  | {
      readonly kind: 'nbits';
      readonly weights: NBitsWeights;
      readonly dequantized: Float32Array;
      readonly dampUsed: number;
    }
  | {
      readonly kind: 'bnb4';
      readonly weights: Bnb4Weights;
      readonly dequantized: Float32Array;
      readonly dampUsed: number;
    };

/** GPTQ on one layer: `view` is the weight, `hessian` XᵀX [K, K] of its input(s). */
export function gptqLayer(
  plan: GptqPlan,
  layer: GptqLayer,
  view: LinearView,
  hessian: Float64Array,
  options: WeightOnlyOptions,
  g: GptqOptions = {},
): GptqLayerWeights {
  const w = weightKN(view);
  checkFinite(w, layer.weight);
  const { scheme, blockSize } = plan;
  try {
    if (scheme.kind === 'nbits' && 'spqr' in scheme) {
      const r = spqrQuantize(w, view.K, view.N, hessian, {
        blockSize,
        outliers: options.outliers ?? DEFAULT_SPQR_OUTLIERS,
        ...(g.damp === undefined ? {} : { damp: g.damp }),
      });
      return { kind: 'spqr', weights: r, dequantized: r.dequantized, dampUsed: r.dampUsed };
    }
    if (scheme.kind === 'nbits' && 'superBlock' in scheme) {
      const so: SuperBlockOptions = { bits: 4, blockSize, superBlock: scheme.superBlock };
      const r = gptqQuantize(w, view.K, view.N, hessian, superBlockGroupQuantizer(so, view.K, view.N), g);
      return {
        kind: 'superBlock',
        weights: superBlockWeightsFrom(r, w, so),
        dequantized: r.dequantized,
        dampUsed: r.dampUsed,
      };
    }
    if (scheme.kind === 'nbits') {
      const o = nbitsOptionsOf(scheme, blockSize, options);
      const r = gptqQuantize(w, view.K, view.N, hessian, nbitsGroupQuantizer(o), g);
      return {
        kind: 'nbits',
        weights: nbitsWeightsFromGptq(r, w, o),
        dequantized: r.dequantized,
        dampUsed: r.dampUsed,
      };
    }
    const r = gptqQuantize(
      w,
      view.K,
      view.N,
      hessian,
      bnb4GroupQuantizer(scheme.type, blockSize, options.rtn ?? false),
      g,
    );
    return { kind: 'bnb4', weights: bnb4WeightsFromGptq(r), dequantized: r.dequantized, dampUsed: r.dampUsed };
  } catch (e) {
    if (e instanceof NonFiniteWeight)
      throw new QuantkitError(
        'QK_NONFINITE_WEIGHTS',
        `weight '${layer.weight}' has a non-finite value (${e.value})`,
        'fix the weights, or `exclude` this tensor',
      );
    throw e;
  }
}
