// Block quantization of one 4096×4096 fp32 MatMul weight (the weight-only bench's layer): the
// WebAssembly SIMD kernel against the JS kernel it reproduces byte for byte, both measured here.
import { fileURLToPath } from 'node:url';
import { quantizeNBitsMatrixAuto } from '../src/kernels/nbits-dispatch.js';
import { nbitsWasmAvailable } from '../src/kernels/nbits-wasm.js';
import { quantizeNBitsMatrix, type NBitsOptions } from '../src/quant/nbits-quant.js';
import { fillWeights } from '../test/helpers/matmul-stack.js';

const SIDE = 4096;
const RUNS = 5;

/** Layer 0 of the MatMul stack the other weight benches quantize: ≈ N(0, 1/SIDE). */
function weight(): Float32Array {
  const w = new Float32Array(SIDE * SIDE);
  fillWeights(w, 0, SIDE, 'normal');
  return w;
}

/** Best of RUNS wall times in ms. */
function best(f: () => void): number {
  let b = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    f();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

export async function run(): Promise<{ name: string; ratio: number; detail: string }[]> {
  if (!nbitsWasmAvailable())
    return [{ name: 'nbits kernel: WebAssembly / JS', ratio: NaN, detail: 'skipped: no WebAssembly SIMD' }];
  const w = weight();
  const mb = (SIDE * SIDE * 4) / 1e6;
  const rows: { name: string; ratio: number; detail: string }[] = [];
  for (const [name, o] of [
    ['q4', { bits: 4, blockSize: 32, symmetric: true }],
    ['q8-block', { bits: 8, blockSize: 32, symmetric: true }],
    ['q4 block 128', { bits: 4, blockSize: 128, symmetric: true }],
  ] as const) {
    const opts: NBitsOptions = o;
    const js = best(() => quantizeNBitsMatrix(w, SIDE, SIDE, false, 1, opts));
    const wasm = best(() => quantizeNBitsMatrixAuto(w, SIDE, SIDE, false, 1, opts));
    rows.push({
      name: `nbits kernel ${name} 4096² weight: JS time / WebAssembly time`,
      ratio: js / wasm,
      detail: `WebAssembly SIMD ${wasm.toFixed(0)} ms (${((mb / wasm) * 1000).toFixed(0)} MB/s), JS ${js.toFixed(0)} ms (${((mb / js) * 1000).toFixed(0)} MB/s), best of ${RUNS}, one thread`,
    });
  }
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const row of await run()) console.log(`${row.name}: ${row.ratio.toFixed(2)} (${row.detail})`);
}
