import { quantizeBnb4, type Bnb4Weights } from './bnb4-quant.js';
import { quantizeInt8Channels } from './int8-quant.js';
import type { Bnb4Parts, WeightJob, WeightJobResult } from './jobs.js';
import { quantizeNBitsMatrix, type NBitsParts } from './nbits-quant.js';

// The kernel half of jobs.ts: all a worker thread loads (no graph, no protobuf).

/** Runs one job on the weight's fp32 values; the result's buffers are the ones to transfer. */
export function runWeightJob(job: WeightJob, data: Float32Array): { result: WeightJobResult; transfer: ArrayBuffer[] } {
  if (job.kind === 'int8') {
    const weights = quantizeInt8Channels(data, job.dims, job.axis, job.weight);
    return { result: { kind: 'int8', key: job.key, weights }, transfer: [weights.codes.buffer as ArrayBuffer, weights.scale.buffer as ArrayBuffer] };
  }
  if (job.kind === 'bnb4') {
    const w = quantizeBnb4(bnb4Layout(data, job.K, job.N, job.transposed, job.alpha), job.o);
    const { packed, absmax, doubleQuantBytes, signalSq, noiseSq } = w;
    const parts: Bnb4Parts = { packed, absmax, doubleQuantBytes, ...(signalSq === undefined ? {} : { signalSq }), ...(noiseSq === undefined ? {} : { noiseSq }) };
    return { result: { kind: 'bnb4', key: job.key, parts }, transfer: [parts.packed.buffer, parts.absmax.buffer] as ArrayBuffer[] };
  }
  const w = quantizeNBitsMatrix(data, job.K, job.N, job.transposed, job.alpha, job.o);
  const parts: NBitsParts = { K: w.K, N: w.N, kBlocks: w.kBlocks, packed: w.packed, scales: w.scales, zeroPoints: w.zeroPoints, zp: w.zp, signalSq: w.signalSq, noiseSq: w.noiseSq };
  const transfer = [parts.packed.buffer, parts.scales.buffer, parts.zp.buffer] as ArrayBuffer[];
  if (parts.zeroPoints) transfer.push(parts.zeroPoints.buffer as ArrayBuffer);
  return { result: { kind: 'nbits', key: job.key, parts }, transfer };
}

/**
 * alpha·W as [N, K] row-major, the layout bnb4 quantizes (linear-site.ts transposedWeight, value
 * for value); W is B [K, N], or [N, K] when `transposed` (Gemm transB). Tiled, so that neither
 * side is walked with a stride across the whole matrix.
 */
export function bnb4Layout(data: Float32Array, K: number, N: number, transposed: boolean, alpha: number): Float32Array {
  if (transposed && alpha === 1) return data;
  const wt = new Float32Array(N * K);
  if (transposed) {
    for (let i = 0; i < wt.length; i++) wt[i] = alpha * (data[i] as number);
    return wt;
  }
  const T = 64;
  for (let k0 = 0; k0 < K; k0 += T) {
    const k1 = Math.min(K, k0 + T);
    for (let n0 = 0; n0 < N; n0 += T) {
      const n1 = Math.min(N, n0 + T);
      for (let k = k0; k < k1; k++) for (let n = n0; n < n1; n++) wt[n * K + k] = alpha * (data[k * N + n] as number);
    }
  }
  return wt;
}

/** The handler's bnb4 result from a worker's parts, its codes (one per element) unpacked on first use. */
export function bnb4WeightsFrom(parts: Bnb4Parts, elements: number): Bnb4Weights {
  let codes: Uint8Array | undefined;
  const { packed, absmax, doubleQuantBytes, signalSq, noiseSq } = parts;
  return {
    packed, absmax, doubleQuantBytes,
    ...(signalSq === undefined ? {} : { signalSq }),
    ...(noiseSq === undefined ? {} : { noiseSq }),
    get codes(): Uint8Array {
      if (!codes) {
        // Two codes a byte, the first in the high nibble (bnb4-quant.ts).
        codes = new Uint8Array(elements);
        for (let i = 0; i < elements; i++) codes[i] = (i & 1) === 0 ? (packed[i >> 1] as number) >> 4 : (packed[i >> 1] as number) & 15;
      }
      return codes;
    },
  };
}
