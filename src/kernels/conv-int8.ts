import { QuantkitError } from '../errors.js';
import { convInt8Geometry, unravel, type ConvInt8Geometry, type ConvInt8Problem } from './conv-int8.ref.js';
import type { Int8Codes } from './gemm-int8.ref.js';
import { gemmInt8Prepacked, packGemmInt8B, type GemmInt8B, type KernelOptions } from './index.js';

/*
 * The integer convolution as im2col and the int8 GEMM (index.ts), zero points folded the GEMM's
 * way: per image and group, A = the patches [out positions, window·C/group] with x's one zero
 * point (padding holds that zero point, so it adds 0), B = the group's weights [window·C/group,
 * M/group] with one zero point per output channel. The patches are cut from x transposed to
 * channels-last, so a window row of one pixel's channels (and, with one group, a run of adjacent
 * pixels) is one contiguous copy; K then runs over (window, channel), which changes no sum:
 * int32 addition modulo 2^32 does not depend on the order. Equal bit for bit to convInt8Ref.
 */

/** w as the GEMM's B, one per group, prepared once for a weight used again (a model's). */
export interface ConvInt8Weights {
  readonly wDims: readonly number[];
  readonly group: number;
  readonly w: Int8Codes;
  readonly wZero: number | ArrayLike<number>;
  /** @internal */
  readonly b: readonly GemmInt8B[];
  /** @internal the window offsets of the last input geometry seen (a model's layer sees one) */
  offsets?: { readonly key: string; readonly table: Int32Array } | undefined;
}

/** Prepares w [M, C/group, k1..kn] and its zero point(s) for convInt8 (w itself must not change after). */
export function prepareConvInt8Weights(
  w: Int8Codes,
  wDims: readonly number[],
  wZero: number | ArrayLike<number>,
  group = 1,
): ConvInt8Weights {
  const outChannels = wDims[0] as number;
  const cPerGroup = wDims[1] as number;
  const kSize = wDims.slice(2).reduce((a, d) => a * d, 1);
  const mPerGroup = outChannels / group;
  const kc = cPerGroup * kSize;
  if (wDims.length < 3 || !Number.isInteger(group) || group < 1 || outChannels % group || w.length !== outChannels * kc)
    throw new QuantkitError(
      'QK_BAD_SHAPE',
      `int8 conv: w holds ${w.length} codes for [${wDims.join(', ')}] in ${group} groups`,
      'pass w as [M, C/group, k1..kn] row-major with M a multiple of group',
    );
  const b: GemmInt8B[] = [];
  for (let g = 0; g < group; g++) {
    const bg = w instanceof Uint8Array ? new Uint8Array(kc * mPerGroup) : new Int8Array(kc * mPerGroup);
    for (let mg = 0; mg < mPerGroup; mg++) {
      const base = (g * mPerGroup + mg) * kc;
      for (let cg = 0; cg < cPerGroup; cg++)
        for (let kp = 0; kp < kSize; kp++)
          bg[(kp * cPerGroup + cg) * mPerGroup + mg] = w[base + cg * kSize + kp] as number;
    }
    const zero = typeof wZero === 'number' ? wZero : Array.from(wZero).slice(g * mPerGroup, (g + 1) * mPerGroup);
    b.push(packGemmInt8B(bg, zero, kc, mPerGroup));
  }
  return { wDims: wDims.slice(), group, w, wZero: typeof wZero === 'number' ? wZero : Array.from(wZero), b };
}

/** Whether `weights` were prepared from this problem's w (the same array), zero points and group. */
export function preparedFor(weights: ConvInt8Weights, p: ConvInt8Problem): boolean {
  const a = weights.wZero;
  const b = p.wZero;
  const sameZero =
    typeof a === 'number' || typeof b === 'number'
      ? a === b
      : a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);
  return (
    weights.w === p.w &&
    weights.group === (p.group ?? 1) &&
    sameZero &&
    weights.wDims.length === p.wDims.length &&
    weights.wDims.every((d, i) => d === p.wDims[i])
  );
}

/**
 * ONNX ConvInteger: y [N, M, out spatial...] int32 = Σ (x − xZero)(w − wZero[m]) over each
 * group's channels and window (conv-int8.ref.ts states the problem). `weights` from
 * prepareConvInt8Weights for this w skips preparing it again.
 */
export function convInt8(p: ConvInt8Problem, weights?: ConvInt8Weights, options: KernelOptions = {}): Int32Array {
  const geo = convInt8Geometry(p);
  const prepared =
    weights && preparedFor(weights, p) ? weights : prepareConvInt8Weights(p.w, p.wDims, p.wZero, geo.group);
  const { batch, inChannels: C, outChannels, group, outSpatial } = geo;
  const cPerGroup = C / group;
  const mPerGroup = outChannels / group;
  const kSize = geo.kernel.reduce((a, d) => a * d, 1);
  const inSize = geo.inSpatial.reduce((a, d) => a * d, 1);
  const outSize = outSpatial.reduce((a, d) => a * d, 1);
  const kc = kSize * cPerGroup;
  const y = new Int32Array(batch * outChannels * outSize);
  if (y.length === 0 || kc === 0) return y;
  const make = (n: number) => (p.x instanceof Uint8Array ? new Uint8Array(n) : new Int8Array(n));
  const xt = make(inSize * C);
  const patches = make(outSize * kc);
  const key = [geo.inSpatial, geo.strides, geo.dilations, geo.padsBegin, geo.outSpatial].join(';');
  if (prepared.offsets?.key !== key) prepared.offsets = { key, table: windowOffsets(geo, kSize, outSize) };
  const offsets = prepared.offsets.table;
  for (let n = 0; n < batch; n++) {
    // x[n] channels-last: [pixel][C].
    const xn = p.x.subarray(n * C * inSize, (n + 1) * C * inSize);
    for (let c = 0; c < C; c++) for (let s = 0, i = c * inSize; s < inSize; s++, i++) xt[s * C + c] = xn[i] as number;
    for (let g = 0; g < group; g++) {
      cutPatches(xt, C, g * cPerGroup, cPerGroup, offsets, kSize, outSize, p.xZero, patches);
      const c = gemmInt8Prepacked(patches, p.xZero, prepared.b[g] as GemmInt8B, outSize, options);
      for (let mg = 0; mg < mPerGroup; mg++) {
        const yBase = (n * outChannels + g * mPerGroup + mg) * outSize;
        for (let q = 0, i = mg; q < outSize; q++, i += mPerGroup) y[yBase + q] = c[i] as number;
      }
    }
  }
  return y;
}

/** For each (out position, window position), the input pixel it reads, or −1 in the padding. */
function windowOffsets(geo: ConvInt8Geometry, kSize: number, outSize: number): Int32Array {
  const { inSpatial, kernel, strides, dilations, padsBegin, outSpatial } = geo;
  const nSpatial = inSpatial.length;
  const out = new Int32Array(outSize * kSize);
  const o = new Int32Array(nSpatial);
  const k = new Int32Array(nSpatial);
  for (let q = 0; q < outSize; q++) {
    unravel(q, outSpatial, o);
    for (let kp = 0; kp < kSize; kp++) {
      unravel(kp, kernel, k);
      let off = 0;
      for (let ax = 0; ax < nSpatial && off >= 0; ax++) {
        const pos =
          (o[ax] as number) * (strides[ax] as number) +
          (k[ax] as number) * (dilations[ax] as number) -
          (padsBegin[ax] as number);
        const size = inSpatial[ax] as number;
        off = pos < 0 || pos >= size ? -1 : off * size + pos;
      }
      out[q * kSize + kp] = off;
    }
  }
  return out;
}

/**
 * The patches of one group: row q = the window of out position q, each window position's
 * cPerGroup channels in turn. Window positions that read adjacent pixels are copied as one run
 * when the group spans all channels (then their channels are adjacent in xt too).
 */
function cutPatches(
  xt: Int8Codes,
  C: number,
  c0: number,
  cPerGroup: number,
  offsets: Int32Array,
  kSize: number,
  outSize: number,
  xZero: number,
  patches: Int8Codes,
): void {
  const whole = cPerGroup === C;
  const kc = kSize * cPerGroup;
  for (let q = 0; q < outSize; q++) {
    const row = q * kc;
    const offRow = q * kSize;
    for (let kp = 0; kp < kSize;) {
      const off = offsets[offRow + kp] as number;
      let end = kp + 1;
      if (off < 0) {
        while (end < kSize && (offsets[offRow + end] as number) < 0) end++;
        patches.fill(xZero, row + kp * cPerGroup, row + end * cPerGroup);
      } else if (whole) {
        while (end < kSize && (offsets[offRow + end] as number) === off + (end - kp)) end++;
        patches.set(xt.subarray(off * C, (off + end - kp) * C), row + kp * cPerGroup);
      } else if (cPerGroup >= 16) {
        patches.set(xt.subarray(off * C + c0, off * C + c0 + cPerGroup), row + kp * cPerGroup);
      } else {
        for (let cg = 0, d = row + kp * cPerGroup, s = off * C + c0; cg < cPerGroup; cg++)
          patches[d + cg] = xt[s + cg] as number;
      }
      kp = end;
    }
  }
}
