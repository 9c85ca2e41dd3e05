import type { NodeSpec } from '../../src/io/onnx/build.js';

/**
 * LayerNorm(X) → MatMul Wq, MatMul Wk → Add → Relu → MatMul Wo: the attention-like block the AWQ
 * tests quantize (two groups: q/k folded into the norm, Wo scaled by a Mul). The last MatMul writes
 * `out` and is named `name`.
 */
export function lnQkReluNodes(out: string, name: string): NodeSpec[] {
  return [
    {
      opType: 'LayerNormalization',
      inputs: ['X', 'gamma', 'beta'],
      outputs: ['n'],
      name: 'ln',
      attributes: { axis: -1 },
    },
    { opType: 'MatMul', inputs: ['n', 'Wq'], outputs: ['q'], name: 'q' },
    { opType: 'MatMul', inputs: ['n', 'Wk'], outputs: ['k'], name: 'k' },
    { opType: 'Add', inputs: ['q', 'k'], outputs: ['s'], name: 'add' },
    { opType: 'Relu', inputs: ['s'], outputs: ['r'], name: 'relu' },
    { opType: 'MatMul', inputs: ['r', 'Wo'], outputs: [out], name },
  ];
}
