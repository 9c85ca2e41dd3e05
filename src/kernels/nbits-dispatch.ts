import { nbitsWeightsFrom, quantizeNBitsMatrix, type NBitsOptions, type NBitsWeights } from '../quant/nbits-quant.js';
import { quantizeSymBlocksWasm } from './nbits-wasm.js';

/**
 * MatMulNBits block quantization by the fastest kernel that applies, the same bytes whichever runs
 * (nbits-wasm.test.ts): the symmetric search on a MatMul B — the default q4/q8-block case — has a
 * WebAssembly SIMD twin (nbits-wasm.ts); everything else, a host without WebAssembly SIMD, and a
 * weight with NaN/Inf (the JS kernel names the element) take the JS reference
 * (quant/nbits-quant.ts). The one place that choice is made: passes and workers call this.
 */
export function quantizeNBitsMatrixAuto(
  data: Float32Array,
  K: number,
  N: number,
  transposed: boolean,
  alpha: number,
  o: NBitsOptions,
): NBitsWeights {
  if (
    !transposed &&
    alpha === 1 &&
    o.symmetric &&
    !(o.rtn ?? false) &&
    (o.bits === 4 || o.bits === 8) &&
    (o.codeBits ?? o.bits) === o.bits
  ) {
    const w = quantizeSymBlocksWasm(data, K, N, o.bits, o.blockSize);
    if (w && 'packed' in w) {
      const kBlocks = Math.ceil(K / o.blockSize);
      const zp = new Uint8Array(N * kBlocks).fill(1 << (o.bits - 1));
      return nbitsWeightsFrom(
        {
          K,
          N,
          kBlocks,
          packed: w.packed,
          scales: w.scales,
          zeroPoints: undefined,
          zp,
          signalSq: w.signalSq,
          noiseSq: w.noiseSq,
        },
        o.blockSize,
        o.bits,
      );
    }
  }
  return quantizeNBitsMatrix(data, K, N, transposed, alpha, o);
}
