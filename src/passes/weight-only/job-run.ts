import { quantizeBnb4Fast } from '../../kernels/bnb4-search.js';
import { quantizeNBitsMatrixAuto } from '../../kernels/nbits-dispatch.js';
import { bnb4Table, type Bnb4Options, type Bnb4Weights } from '../../quant/bnb4-quant.js';
import { quantizeInt8Channels } from '../../quant/int8-quant.js';
import type { NBitsParts } from '../../quant/nbits-quant.js';
import type { Bnb4Parts, WeightJob, WeightJobResult } from './jobs.js';

// The kernel half of jobs.ts: all a worker thread loads (no graph, no protobuf).

/** Runs one job on the weight's fp32 values; the result's buffers are the ones to transfer. */
export function runWeightJob(job: WeightJob, data: Float32Array): { result: WeightJobResult; transfer: ArrayBuffer[] } {
  if (job.kind === 'int8') {
    const weights = quantizeInt8Channels(data, job.dims, job.axis, job.weight);
    return {
      result: { kind: 'int8', key: job.key, weights },
      transfer: [weights.codes.buffer as ArrayBuffer, weights.scale.buffer as ArrayBuffer],
    };
  }
  if (job.kind === 'bnb4') {
    const wt = bnb4Layout(data, job.K, job.N, job.transposed, job.alpha, job.start, job.end);
    const w = quantizeBnb4Fast(wt, job.o);
    const { packed, absmax, doubleQuantBytes, signalSq, noiseSq } = w;
    const bnb4Of = { kind: 'bnb4', key: job.key, part: job.part, of: job.parts, elements: job.K * job.N } as const;
    if (job.parts > 1) {
      const blockSums = bnb4BlockSums(wt, w, job.o);
      return {
        result: { ...bnb4Of, parts: { packed, absmax, doubleQuantBytes, blockSums } },
        transfer: [packed.buffer, absmax.buffer, blockSums.buffer] as ArrayBuffer[],
      };
    }
    const parts: Bnb4Parts = {
      packed,
      absmax,
      doubleQuantBytes,
      ...(signalSq === undefined ? {} : { signalSq }),
      ...(noiseSq === undefined ? {} : { noiseSq }),
    };
    return { result: { ...bnb4Of, parts }, transfer: [parts.packed.buffer, parts.absmax.buffer] as ArrayBuffer[] };
  }
  const w = quantizeNBitsMatrixAuto(data, job.K, job.N, job.transposed, job.alpha, job.o);
  const parts: NBitsParts = {
    K: w.K,
    N: w.N,
    kBlocks: w.kBlocks,
    packed: w.packed,
    scales: w.scales,
    zeroPoints: w.zeroPoints,
    zp: w.zp,
    signalSq: w.signalSq,
    noiseSq: w.noiseSq,
  };
  const transfer = [parts.packed.buffer, parts.scales.buffer, parts.zp.buffer] as ArrayBuffer[];
  if (parts.zeroPoints) transfer.push(parts.zeroPoints.buffer as ArrayBuffer);
  return { result: { kind: 'nbits', key: job.key, parts }, transfer };
}

/**
 * Elements [start, end) of alpha·W as [N, K] row-major, the layout bnb4 quantizes
 * (linear-site.ts transposedWeight, value for value); W is B [K, N], or [N, K] when `transposed`
 * (Gemm transB). Tiled, so that neither side is walked with a stride across the whole matrix.
 */
export function bnb4Layout(
  data: Float32Array,
  K: number,
  N: number,
  transposed: boolean,
  alpha: number,
  start = 0,
  end = N * K,
): Float32Array {
  if (transposed) {
    if (alpha === 1) return data.subarray(start, end);
    const scaled = new Float32Array(end - start);
    for (let i = start; i < end; i++) scaled[i - start] = alpha * (data[i] as number);
    return scaled;
  }
  // Whole rows [nStart, nEnd), then the range within them.
  const nStart = Math.floor(start / K);
  const nEnd = Math.ceil(end / K);
  const wt = new Float32Array((nEnd - nStart) * K);
  const T = 64;
  for (let k0 = 0; k0 < K; k0 += T) {
    const k1 = Math.min(K, k0 + T);
    for (let n0 = nStart; n0 < nEnd; n0 += T) {
      const n1 = Math.min(nEnd, n0 + T);
      for (let k = k0; k < k1; k++) {
        const src = k * N;
        for (let n = n0, at = (n0 - nStart) * K + k; n < n1; n++, at += K) wt[at] = alpha * (data[src + n] as number);
      }
    }
  }
  return wt.subarray(start - nStart * K, end - nStart * K);
}

/** Each block's Σx² and Σ(x − x̂)², interleaved, summed as bnb4-quant.ts encodeBlock sums them. */
function bnb4BlockSums(wt: Float32Array, w: Bnb4Weights, o: Bnb4Options): Float64Array {
  const table = bnb4Table(o.type);
  const nb = w.absmax.length;
  const out = new Float64Array(2 * nb);
  for (let b = 0; b < nb; b++) {
    const s = w.absmax[b] as number;
    let sig = 0;
    let noise = 0;
    for (let i = b * o.blockSize, end = Math.min(wt.length, i + o.blockSize); i < end; i++) {
      const v = wt[i] as number;
      const d = v - Math.fround((table[w.codes[i] as number] as number) * s);
      sig += v * v;
      noise += d * d;
    }
    out[2 * b] = sig;
    out[2 * b + 1] = noise;
  }
  return out;
}

/** One bnb4 result from its parts (in order): bytes and constants end to end, sums in block order. */
export function joinBnb4Parts(parts: readonly Bnb4Parts[]): Bnb4Parts {
  if (parts.length === 1 && !parts[0]?.blockSums) return parts[0] as Bnb4Parts;
  const packed = new Uint8Array(parts.reduce((s, p) => s + p.packed.length, 0));
  const absmax = new Float32Array(parts.reduce((s, p) => s + p.absmax.length, 0));
  let signalSq = 0;
  let noiseSq = 0;
  let at = 0;
  let bt = 0;
  for (const p of parts) {
    packed.set(p.packed, at);
    absmax.set(p.absmax, bt);
    at += p.packed.length;
    bt += p.absmax.length;
    const sums = p.blockSums ?? Float64Array.of(p.signalSq ?? NaN, p.noiseSq ?? NaN);
    for (let b = 0; b < sums.length; b += 2) {
      signalSq += sums[b] as number;
      noiseSq += sums[b + 1] as number;
    }
  }
  return { packed, absmax, doubleQuantBytes: undefined, signalSq, noiseSq };
}

/** The handler's bnb4 result from a worker's parts, its codes (one per element) unpacked on first use. */
export function bnb4WeightsFrom(parts: Bnb4Parts, elements: number): Bnb4Weights {
  let codes: Uint8Array | undefined;
  const { packed, absmax, doubleQuantBytes, signalSq, noiseSq } = parts;
  return {
    packed,
    absmax,
    doubleQuantBytes,
    ...(signalSq === undefined ? {} : { signalSq }),
    ...(noiseSq === undefined ? {} : { noiseSq }),
    get codes(): Uint8Array {
      if (!codes) {
        // Two codes a byte, the first in the high nibble (bnb4-quant.ts).
        codes = new Uint8Array(elements);
        for (let i = 0; i < elements; i++)
          codes[i] = (i & 1) === 0 ? (packed[i >> 1] as number) >> 4 : (packed[i >> 1] as number) & 15;
      }
      return codes;
    },
  };
}
