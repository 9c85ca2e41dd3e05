import { QuantkitError } from '../errors.js';
import type { AffineParams, IntCodes } from './affine.js';
import { affineParams, allocCodes, dequantizeAffine, intRange, nonFiniteError, quantizeAffine } from './affine.js';
import { dequantizeBlockwise, quantizeBlockwise } from './blockwise.js';
import type { Codebook } from './codebook.js';
import {
  FP4_BNB_TABLE,
  FP4_E2M1_TABLE,
  NF4_TABLE,
  fp4BnbCodebook,
  fp4E2M1Codebook,
  makeCodebook,
  nearestCode,
  nf4Codebook,
} from './codebook.js';
import type { DoubleQuantized } from './double-quant.js';
import { doubleDequantize, doubleQuantize } from './double-quant.js';
import { DYNAMIC_TREE_BLOCK, dynamicTreeCodebook } from './dynamic-tree.js';
import { castTo16, decode16 } from './float-cast.js';
import { dequantizeFloat8Scaled, quantizeFloat8Scaled } from './float8-scaled.js';
import { kmeans1d } from './kmeans.js';
import { blockShapeFor, makeLayout } from './layout.js';
import type { Codes } from './pack.js';
import { packCodes, unpackCodes } from './pack.js';
import { approxQuantiles, exactQuantiles } from './quantile.js';
import { blockRanges } from './range.js';
import type { QuantFormat, QuantSpec } from './spec.js';

/**
 * A quantized tensor: one integer code per element, and what turns codes back into values.
 *   affine:   x ≈ (code − zeroPoints[b]) · scales[b]
 *   codebook: x ≈ codebook[g·k + code] · scales[b]   (g = codebook group, b = scale block)
 *   float:    x ≈ decode(code) · scales[b]
 */
export interface Quantized {
  readonly codes: Codes;
  readonly scales: Float32Array;
  readonly zeroPoints?: Int32Array;
  readonly codebook?: Float32Array;
  /** QLoRA double quantization of the scales; `scales` then holds their dequantized values. */
  readonly doubleQuant?: DoubleQuantized;
  readonly shape: readonly number[];
  /** Shape of `scales` (affine and float8: from the block shape; codebook formats: [blocks]). */
  readonly scaleShape: readonly number[];
  /** Code width in bits, as pack() stores it. */
  readonly bits: number;
  readonly signed: boolean;
  readonly spec: QuantSpec;
}

interface Handler {
  quantize(data: Float32Array, shape: readonly number[], spec: QuantSpec): Quantized;
  dequantize(q: Quantized): Float32Array;
}

const INT_FORMATS: Record<string, { bits: number; signed: boolean }> = {
  int8: { bits: 8, signed: true },
  uint8: { bits: 8, signed: false },
  int4: { bits: 4, signed: true },
  uint4: { bits: 4, signed: false },
  int2: { bits: 2, signed: true },
};

function affineOf(q: Quantized): AffineParams {
  const { qmin, qmax } = intRange(q.bits, q.signed, q.spec.narrowRange ?? true);
  return { scale: q.scales, zeroPoint: q.zeroPoints, qmin, qmax };
}

function layoutOf(shape: readonly number[], spec: QuantSpec) {
  return makeLayout(shape, blockShapeFor(shape, { axis: spec.axis, blockSize: spec.blockSize }));
}

const affineHandler: Handler = {
  quantize(data, shape, spec) {
    const fmt = INT_FORMATS[spec.format] as { bits: number; signed: boolean };
    const bits = spec.bits ?? fmt.bits;
    const symmetric = spec.symmetric ?? fmt.signed;
    const narrow = symmetric && fmt.signed && (spec.narrowRange ?? true);
    const range = intRange(bits, fmt.signed, narrow);
    const layout = layoutOf(shape, spec);
    const method = spec.range ?? { kind: symmetric ? 'absmax' : 'minmax' };
    const r = blockRanges(data, layout, method, { ...range, symmetric }, spec.nonFinite, spec.name);
    const params = affineParams(r.lo, r.hi, { ...range, symmetric, scaleDtype: spec.scaleDtype });
    const codes = quantizeAffine(data, layout, params, allocCodes(bits, fmt.signed, data.length), spec);
    const base = {
      codes,
      scales: params.scale,
      shape: [...shape],
      scaleShape: layout.paramShape,
      bits,
      signed: fmt.signed,
      spec: { ...spec, narrowRange: narrow },
    };
    return params.zeroPoint ? { ...base, zeroPoints: params.zeroPoint } : base;
  },
  dequantize(q) {
    return dequantizeAffine(q.codes as IntCodes, layoutOf(q.shape, q.spec), affineOf(q));
  },
};

/** Codebook formats over bitsandbytes' flat blocks: the table, and its largest magnitude. */
function blockCodebook(format: QuantFormat): { cb: Codebook; tableMax: number; block: number } {
  switch (format) {
    case 'nf4':
      return { cb: nf4Codebook(), tableMax: 1, block: 64 };
    case 'fp4':
      return { cb: fp4E2M1Codebook(), tableMax: 6, block: 32 };
    case 'fp4-bnb':
      return { cb: fp4BnbCodebook(), tableMax: 1, block: 64 };
    default:
      return { cb: dynamicTreeCodebook(true), tableMax: 1, block: DYNAMIC_TREE_BLOCK };
  }
}

const blockwiseHandler: Handler = {
  quantize(data, shape, spec) {
    const { cb, tableMax, block } = blockCodebook(spec.format);
    const q = quantizeBlockwise(data, cb, {
      blockSize: spec.blockSize ?? block,
      scaleDtype: spec.scaleDtype,
      nonFinite: spec.nonFinite,
      name: spec.name,
      tableMax,
    });
    const bits = spec.format === 'dynamic-tree8' ? 8 : 4;
    const base = {
      codes: q.codes,
      codebook: cb.values,
      shape: [...shape],
      scaleShape: [q.absmax.length],
      bits,
      signed: false,
      spec: { ...spec, blockSize: q.blockSize },
    };
    if (!spec.doubleQuant) return { ...base, scales: q.absmax };
    const dq = doubleQuantize(q.absmax);
    return { ...base, scales: doubleDequantize(dq), doubleQuant: dq };
  },
  dequantize(q) {
    return dequantizeBlockwise(
      { codes: q.codes as Uint8Array, absmax: q.scales, blockSize: q.spec.blockSize as number },
      q.codebook as Float32Array,
    );
  },
};

/** k-means / quantile: one learned codebook per group of `blockSize` elements (default: whole tensor). */
const learnedHandler: Handler = {
  quantize(data, shape, spec) {
    const bits = spec.bits ?? 4;
    if (!Number.isInteger(bits) || bits < 1 || bits > 8) {
      throw new QuantkitError(
        'QK_BAD_BITS',
        `${spec.format} codebooks need 1 to 8 bits, got ${bits}`,
        'use bits 1…8 (k = 2^bits codes)',
      );
    }
    const k = 2 ** bits;
    for (let i = 0; i < data.length; i++) {
      const x = data[i] as number;
      if (x - x !== 0 && spec.nonFinite !== 'clamp') throw nonFiniteError(i, x, spec.name);
    }
    const n = data.length;
    const group = spec.blockSize ?? Math.max(1, n);
    const groups = Math.max(1, Math.ceil(n / group));
    const codebook = new Float32Array(groups * k);
    const codes = new Uint8Array(n);
    for (let g = 0; g < groups; g++) {
      const all = data.subarray(g * group, Math.min(n, (g + 1) * group));
      const part = spec.nonFinite === 'clamp' ? all.filter((x) => Number.isFinite(x)) : all;
      const table =
        spec.format === 'kmeans'
          ? kmeans1d(part, { k, seed: spec.seed })
          : spec.quantileMethod === 'approx'
            ? approxQuantiles(part, k)
            : exactQuantiles(part, k);
      codebook.set(table, g * k);
      const cb = makeCodebook(table);
      const max = table[k - 1] as number;
      const min = table[0] as number;
      for (let i = 0; i < all.length; i++) {
        const x = all[i] as number;
        // Non-finite values only get here under 'clamp': ±Inf to the extreme codes, NaN to 0's.
        const v = x !== x ? 0 : x === Infinity ? max : x === -Infinity ? min : x;
        codes[g * group + i] = nearestCode(cb, v);
      }
    }
    return {
      codes,
      codebook,
      scales: new Float32Array(groups).fill(1),
      shape: [...shape],
      scaleShape: [groups],
      bits,
      signed: false,
      spec: { ...spec, blockSize: group, bits },
    };
  },
  dequantize(q) {
    const k = 2 ** q.bits;
    const group = q.spec.blockSize as number;
    const cb = q.codebook as Float32Array;
    const out = new Float32Array(q.codes.length);
    for (let i = 0; i < out.length; i++) {
      const g = Math.floor(i / group);
      out[i] = (cb[g * k + (q.codes[i] as number)] as number) * (q.scales[g] as number);
    }
    return out;
  },
};

const float16Handler: Handler = {
  quantize(data, shape, spec) {
    const format = spec.format as 'float16' | 'bfloat16';
    return {
      codes: castTo16(data, format, spec.nonFinite, spec.name),
      scales: Float32Array.of(1),
      shape: [...shape],
      scaleShape: [],
      bits: 16,
      signed: false,
      spec,
    };
  },
  dequantize(q) {
    return decode16(q.codes as Uint16Array, q.spec.format as 'float16' | 'bfloat16');
  },
};

const float8Handler: Handler = {
  quantize(data, shape, spec) {
    const layout = layoutOf(shape, spec);
    const kind = spec.format as 'float8e4m3fn' | 'float8e5m2';
    const { codes, scales } = quantizeFloat8Scaled(data, layout, kind, spec);
    return { codes, scales, shape: [...shape], scaleShape: layout.paramShape, bits: 8, signed: false, spec };
  },
  dequantize(q) {
    return dequantizeFloat8Scaled(
      q.codes as Uint8Array,
      layoutOf(q.shape, q.spec),
      q.scales,
      q.spec.format as 'float8e4m3fn' | 'float8e5m2',
    );
  },
};

/** Format → handler (adding a format adds one entry). */
const HANDLERS: Record<QuantFormat, Handler> = {
  int8: affineHandler,
  uint8: affineHandler,
  int4: affineHandler,
  uint4: affineHandler,
  int2: affineHandler,
  nf4: blockwiseHandler,
  fp4: blockwiseHandler,
  'fp4-bnb': blockwiseHandler,
  'dynamic-tree8': blockwiseHandler,
  kmeans: learnedHandler,
  quantile: learnedHandler,
  float16: float16Handler,
  bfloat16: float16Handler,
  float8e4m3fn: float8Handler,
  float8e5m2: float8Handler,
};

/**
 * The `quantkit quantize` scheme names that mean one library format (q4 is int4 in blocks of 32
 * along the last axis, symmetric). int8, nf4 and fp4 are not aliases: the library's names mean
 * per-tensor int8, and fp4 is the E2M1 grid (the CLI's fp4 is bitsandbytes' fp4-bnb).
 */
const SCHEME_ALIASES: Record<string, (s: QuantSpec) => QuantSpec> = {
  q4: (s) => ({ ...s, format: 'int4', blockSize: s.blockSize ?? 32 }),
  'q4-asym': (s) => ({ ...s, format: 'uint4', blockSize: s.blockSize ?? 32 }),
  'q8-block': (s) => ({ ...s, format: 'int8', blockSize: s.blockSize ?? 32 }),
  fp16: (s) => ({ ...s, format: 'float16' }),
  bf16: (s) => ({ ...s, format: 'bfloat16' }),
  fp8: (s) => ({ ...s, format: 'float8e4m3fn' }),
  'fp8-e5m2': (s) => ({ ...s, format: 'float8e5m2' }),
};

const FORMATS_TEXT = `${Object.keys(HANDLERS).join(', ')} (or the CLI's ${Object.keys(SCHEME_ALIASES).join(', ')})`;

function handlerFor(format: string): Handler {
  const h = (HANDLERS as Record<string, Handler | undefined>)[format];
  if (!h)
    throw new QuantkitError(
      'QK_UNKNOWN_FORMAT',
      `unknown quantization format '${format}': use one of ${FORMATS_TEXT}`,
      `e.g. quantize(w, { format: 'nf4', blockSize: 64 })`,
    );
  return h;
}

/** The spec with a CLI scheme name resolved, and the fields every format reads checked. */
function checkedSpec<S extends QuantSpec>(spec: S | undefined): S {
  if (spec === null || typeof spec !== 'object') {
    throw new QuantkitError(
      'QK_QUANT_SPEC',
      `quantize(data, spec) needs a spec object naming a format: one of ${FORMATS_TEXT}`,
      "e.g. quantize(w, { format: 'nf4' })",
    );
  }
  const alias = SCHEME_ALIASES[spec.format as string];
  const s = (alias ? alias(spec) : spec) as S;
  handlerFor(s.format);
  if (s.blockSize !== undefined && !(Number.isInteger(s.blockSize) && s.blockSize >= 1)) {
    throw new QuantkitError(
      'QK_BAD_BLOCK_SIZE',
      `blockSize ${String(s.blockSize)} is not a positive integer`,
      "use e.g. 32, 64 or 128, or leave it out for the format's default",
    );
  }
  return s;
}

/**
 * Quantizes `data` (row-major, of `spec.shape`, default 1-D) to the format the spec names (a
 * library format, or one of the CLI's scheme names that means one: see SCHEME_ALIASES).
 */
export function quantize(
  data: Float32Array,
  options: QuantSpec & { shape?: readonly number[] | undefined },
): Quantized {
  if (!(data instanceof Float32Array))
    throw new QuantkitError(
      'QK_QUANT_DATA',
      'quantize(data, spec) needs data as a Float32Array',
      'e.g. Float32Array.from(values)',
    );
  const spec = checkedSpec(options);
  const shape = spec.shape ?? [data.length];
  let n = 1;
  for (const d of shape) n *= d;
  if (n !== data.length) {
    throw new QuantkitError(
      'QK_TENSOR_SIZE_MISMATCH',
      `${spec.name ?? 'tensor'} of shape [${shape.join(', ')}] needs ${n} elements but has ${data.length}`,
      'pass the shape of the data',
    );
  }
  const { shape: _drop, ...rest } = spec;
  return handlerFor(spec.format).quantize(data, shape, rest);
}

export function dequantize(q: Quantized): Float32Array {
  return handlerFor(q.spec.format).dequantize(q);
}

/**
 * The codes as bytes (the weight payload; scales, zero points and codebooks stay separate
 * arrays). 4-bit codes low nibble first as ONNX stores them; pass 'high-first' for bitsandbytes.
 */
export function pack(q: Quantized, order: 'low-first' | 'high-first' = 'low-first'): Uint8Array {
  return packCodes(q.codes, q.bits, order);
}

/** The codes back from pack(q) bytes (for round trips and readers). */
export function unpack(
  bytes: Uint8Array,
  q: Pick<Quantized, 'codes' | 'bits' | 'signed'>,
  order: 'low-first' | 'high-first' = 'low-first',
): Codes {
  return unpackCodes(bytes, q.codes.length, q.bits, q.signed, order);
}

export { NF4_TABLE, FP4_E2M1_TABLE, FP4_BNB_TABLE };
