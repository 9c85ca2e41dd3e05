import { QuantkitError } from '../errors.js';
import type { Int8Codes } from './gemm-int8.ref.js';

/**
 * An N-D integer convolution as ONNX ConvInteger states it: x [N, C, D1..Dn] and w [M, C/group,
 * k1..kn] row-major 8-bit codes, one zero point for x and one per tensor or per output channel
 * (length M) for w; `pads` in ONNX's layout [begin1..beginn, end1..endn] (auto_pad resolved by
 * the caller); strides and dilations one per spatial axis (default 1).
 */
export interface ConvInt8Problem {
  readonly x: Int8Codes;
  readonly xDims: readonly number[];
  readonly xZero: number;
  readonly w: Int8Codes;
  readonly wDims: readonly number[];
  readonly wZero: number | ArrayLike<number>;
  readonly group?: number | undefined;
  readonly strides?: readonly number[] | undefined;
  readonly pads?: readonly number[] | undefined;
  readonly dilations?: readonly number[] | undefined;
}

/** The problem's sizes, checked: what both kernels iterate over. */
export interface ConvInt8Geometry {
  readonly batch: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly group: number;
  readonly inSpatial: readonly number[];
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  readonly padsBegin: readonly number[];
  readonly outSpatial: readonly number[];
  /** [N, M, out spatial...] */
  readonly outDims: readonly number[];
}

function bad(message: string, hint: string): QuantkitError {
  return new QuantkitError('QK_BAD_SHAPE', `int8 conv: ${message}`, hint);
}

/** Checks the problem (sizes, zero points) and derives its geometry; both kernels reject alike. */
export function convInt8Geometry(p: ConvInt8Problem): ConvInt8Geometry {
  const { xDims, wDims } = p;
  const rank = xDims.length;
  if (rank < 3 || wDims.length !== rank)
    throw bad(
      `x [${xDims.join(', ')}] and w [${wDims.join(', ')}] are not both [N, C, spatial...] of one rank ≥ 3`,
      'pass x as [N, C, D1..Dn] and w as [M, C/group, k1..kn]',
    );
  const nSpatial = rank - 2;
  const group = p.group ?? 1;
  const [batch, inChannels] = xDims as [number, number];
  const outChannels = wDims[0] as number;
  if (!Number.isInteger(group) || group < 1 || inChannels !== (wDims[1] as number) * group || outChannels % group)
    throw bad(
      `channels do not fit group = ${group}: x has ${inChannels}, w is [${wDims.join(', ')}]`,
      'w must be [M, C/group, ...] with M a multiple of group',
    );
  const ones = new Array<number>(nSpatial).fill(1);
  const strides = p.strides ?? ones;
  const dilations = p.dilations ?? ones;
  const pads = p.pads ?? new Array<number>(2 * nSpatial).fill(0);
  if (strides.length !== nSpatial || dilations.length !== nSpatial || pads.length !== 2 * nSpatial)
    throw bad(
      `strides [${strides.join(', ')}], dilations [${dilations.join(', ')}] or pads [${pads.join(', ')}] do not fit ${nSpatial} spatial axes`,
      'give one stride and dilation per spatial axis and pads as [begins..., ends...]',
    );
  if (
    [...strides, ...dilations].some((s) => !Number.isInteger(s) || s < 1) ||
    pads.some((q) => !Number.isInteger(q) || q < 0)
  )
    throw bad('strides and dilations must be whole numbers ≥ 1, pads ≥ 0', 'fix the attribute');
  const inSpatial = xDims.slice(2);
  const kernel = wDims.slice(2);
  const outSpatial = inSpatial.map((d, i) => {
    const span = ((kernel[i] as number) - 1) * (dilations[i] as number) + 1;
    return Math.floor((d + (pads[i] as number) + (pads[i + nSpatial] as number) - span) / (strides[i] as number)) + 1;
  });
  if (outSpatial.some((d) => d < 1) || kernel.some((d) => d < 1))
    throw bad(
      `the kernel [${kernel.join(', ')}] does not fit the padded input [${inSpatial.join(', ')}]`,
      'pad the input or use a smaller kernel',
    );
  const count = (dims: readonly number[]) => dims.reduce((a, d) => a * d, 1);
  if (
    [...xDims, ...wDims].some((d) => !Number.isInteger(d) || d < 0) ||
    p.x.length !== count(xDims) ||
    p.w.length !== count(wDims)
  )
    throw bad(
      `x holds ${p.x.length} codes for [${xDims.join(', ')}], w ${p.w.length} for [${wDims.join(', ')}]`,
      'pass row-major codes of the given shapes',
    );
  checkZero('x', p.xZero, p.x);
  const wz = p.wZero;
  if (typeof wz !== 'number' && wz.length !== outChannels)
    throw bad(
      `w has ${wz.length} zero points for ${outChannels} output channels`,
      'pass one per output channel, or a single number',
    );
  for (let m = 0; m < (typeof wz === 'number' ? 1 : outChannels); m++)
    checkZero('w', typeof wz === 'number' ? wz : (wz[m] as number), p.w);
  return {
    batch,
    inChannels,
    outChannels,
    group,
    inSpatial,
    kernel,
    strides,
    dilations,
    padsBegin: pads.slice(0, nSpatial),
    outSpatial,
    outDims: [batch, outChannels, ...outSpatial],
  };
}

/**
 * The obvious loops: y[n, m, o] = Σ_{c in m's group, k in the window} (x[n, c, o·s + k·d − pad] −
 * xZero)(w[m, c, k] − wZero[m]), positions in the padding skipped, accumulated in int32 (wrapping
 * modulo 2^32 as an int32 accumulator does). Output [N, M, out spatial...] row-major.
 */
export function convInt8Ref(p: ConvInt8Problem): Int32Array {
  const g = convInt8Geometry(p);
  const { batch, inChannels, outChannels, group, inSpatial, kernel, strides, dilations, padsBegin, outSpatial } = g;
  const nSpatial = inSpatial.length;
  const cPerGroup = inChannels / group;
  const mPerGroup = outChannels / group;
  const count = (dims: readonly number[]) => dims.reduce((a, d) => a * d, 1);
  const inSize = count(inSpatial);
  const kSize = count(kernel);
  const outSize = count(outSpatial);
  const y = new Int32Array(batch * outChannels * outSize);
  const o = new Int32Array(nSpatial);
  const k = new Int32Array(nSpatial);
  for (let n = 0; n < batch; n++)
    for (let m = 0; m < outChannels; m++) {
      const zw = typeof p.wZero === 'number' ? p.wZero : (p.wZero[m] as number);
      const c0 = Math.floor(m / mPerGroup) * cPerGroup;
      for (let op = 0; op < outSize; op++) {
        unravel(op, outSpatial, o);
        let acc = 0;
        for (let cg = 0; cg < cPerGroup; cg++)
          for (let kp = 0; kp < kSize; kp++) {
            unravel(kp, kernel, k);
            let off = 0;
            let inside = true;
            for (let ax = 0; ax < nSpatial; ax++) {
              const pos =
                (o[ax] as number) * (strides[ax] as number) +
                (k[ax] as number) * (dilations[ax] as number) -
                (padsBegin[ax] as number);
              if (pos < 0 || pos >= (inSpatial[ax] as number)) inside = false;
              off = off * (inSpatial[ax] as number) + pos;
            }
            if (!inside) continue;
            const xv = (p.x[(n * inChannels + c0 + cg) * inSize + off] as number) - p.xZero;
            const wv = (p.w[(m * cPerGroup + cg) * kSize + kp] as number) - zw;
            acc = (acc + xv * wv) | 0;
          }
        y[(n * outChannels + m) * outSize + op] = acc;
      }
    }
  return y;
}

/** Row-major index `flat` of `dims` into per-axis indices. */
export function unravel(flat: number, dims: readonly number[], out: Int32Array): void {
  for (let ax = dims.length - 1; ax >= 0; ax--) {
    const d = dims[ax] as number;
    out[ax] = flat % d;
    flat = Math.floor(flat / d);
  }
}

function checkZero(which: string, z: number, codes: Int8Codes): void {
  const [lo, hi] = codes instanceof Uint8Array ? [0, 255] : [-128, 127];
  if (!Number.isInteger(z) || z < lo || z > hi)
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `int8 conv: zero point ${z} of ${which} is outside its type's range ${lo}…${hi}`,
      `give ${which} a zero point of the same type as its codes`,
    );
}
