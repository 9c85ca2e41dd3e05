import { quantizeNBitsMatrixAuto } from '../../kernels/nbits-dispatch.js';
import { quantizeInt8Channels } from '../../quant/int8-quant.js';
import type { NBitsParts } from '../../quant/nbits-quant.js';
import type { WeightJob, WeightJobResult } from './jobs.js';

// The kernel half of jobs.ts: all a worker thread loads (no graph, no protobuf).

/** Runs one job on the weight's fp32 values; the result's buffers are the ones to transfer. */
export function runWeightJob(job: WeightJob, data: Float32Array): { result: WeightJobResult; transfer: ArrayBuffer[] } {
  if (job.kind === 'int8') {
    const weights = quantizeInt8Channels(data, job.dims, job.axis, job.weight);
    return { result: { kind: 'int8', key: job.key, weights }, transfer: [weights.codes.buffer as ArrayBuffer, weights.scale.buffer as ArrayBuffer] };
  }
  const w = quantizeNBitsMatrixAuto(data, job.K, job.N, job.transposed, job.alpha, job.o);
  const parts: NBitsParts = { K: w.K, N: w.N, kBlocks: w.kBlocks, packed: w.packed, scales: w.scales, zeroPoints: w.zeroPoints, zp: w.zp, signalSq: w.signalSq, noiseSq: w.noiseSq };
  const transfer = [parts.packed.buffer, parts.scales.buffer, parts.zp.buffer] as ArrayBuffer[];
  if (parts.zeroPoints) transfer.push(parts.zeroPoints.buffer as ArrayBuffer);
  return { result: { kind: 'nbits', key: job.key, parts }, transfer };
}
