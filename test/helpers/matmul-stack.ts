import { join } from 'node:path';
import { makeModel } from '../../src/io/onnx/build.js';
import { planOnnxWrite, type TensorToWrite } from '../../src/io/onnx/write.js';
import { writeOnnxModel } from '../../src/node/model-writer.js';

export interface MatMulStackOptions {
  readonly layers: number;
  readonly side: number;
  /**
   * 'normal': weights ≈ N(0, 1/side) (Irwin–Hall sum of 4 uniforms), so the stack keeps the
   * activations' scale; 'sparse': a cheap fill for I/O-only work (one non-zero per 1024).
   */
  readonly fill: 'normal' | 'sparse';
}

/** Layer `layer`'s [side, side] weights, the same numbers every run. */
export function fillWeights(w: Float32Array, layer: number, side: number, fill: MatMulStackOptions['fill']): void {
  if (fill === 'sparse') {
    for (let k = 0; k < w.length; k += 1024) w[k] = (layer + 1) * 1e-3;
    return;
  }
  let s = ((layer + 1) * 0x9e3779b1) >>> 0;
  const k = Math.sqrt(3) / side ** 0.5 / 2 ** 32;
  for (let i = 0; i < w.length; i++) {
    let u = 0;
    for (let j = 0; j < 4; j++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      u += s;
    }
    w[i] = (u - 2 * 2 ** 32) * k;
  }
}

/**
 * Writes dir/model.onnx + model.onnx.data: x [batch, side] → MatMul(w0) → … → MatMul(wN-1) → y,
 * streamed (one weight buffer alive at a time), for benchmarks and memory tests of big models.
 */
export async function writeMatMulStack(dir: string, o: MatMulStackOptions): Promise<string> {
  const names = Array.from({ length: o.layers }, (_, i) => `w${i}`);
  const skeleton = makeModel({
    nodes: names.map((w, i) => ({
      opType: 'MatMul',
      inputs: [i === 0 ? 'x' : `h${i - 1}`, w],
      outputs: [i === o.layers - 1 ? 'y' : `h${i}`],
      name: `mm${i}`,
    })),
    inputs: [{ name: 'x', dtype: 'float32', dims: ['batch', o.side] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: ['batch', o.side] }],
    opsets: { '': 17 },
  });
  const tensors: TensorToWrite[] = names.map((name, layer) => ({
    name,
    dtype: 'float32',
    dims: [o.side, o.side],
    rawBytes: () => {
      const w = new Float32Array(o.side * o.side);
      fillWeights(w, layer, o.side, o.fill);
      return new Uint8Array(w.buffer);
    },
  }));
  const path = join(dir, 'model.onnx');
  await writeOnnxModel(
    path,
    planOnnxWrite(skeleton, tensors, { externalData: true, dataLocation: 'model.onnx.data' }),
    { force: false, inputs: [] },
  );
  return path;
}
