import { describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import { makeTensor } from '../tensor/tensor.js';
import { runModel } from './run.js';

const x = makeTensor('float32', [2, 2], Float32Array.of(1, -2, 3, -4));

describe('runModel', () => {
  it('runs nodes given out of order, with initializers and Constant nodes as values', () => {
    const model = makeModel({
      inputs: [{ name: 'x', dtype: 'float32', dims: [2, 2] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [4] }],
      initializers: { shape: makeTensor('int64', [1], BigInt64Array.of(-1n)) },
      nodes: [
        { opType: 'Reshape', inputs: ['r', 'shape'], outputs: ['y'], name: 'reshape' },
        { opType: 'Relu', inputs: ['s'], outputs: ['r'], name: 'relu' },
        { opType: 'Add', inputs: ['x', 'c'], outputs: ['s'], name: 'add' },
        {
          opType: 'Constant',
          inputs: [],
          outputs: ['c'],
          name: 'const',
          attributes: { value: makeTensor('float32', [], Float32Array.of(1)) },
        },
      ],
    });
    const y = runModel(model, new Map([['x', x]])).get('y');
    // relu(x + 1) flattened, worked by hand: [2, -1, 4, -3] → [2, 0, 4, 0]
    expect(y?.dims).toEqual([4]);
    expect(Array.from(y?.data as Float32Array)).toEqual([2, 0, 4, 0]);
  });

  it('names the node and lists supported ops for an unknown op', () => {
    const model = makeModel({
      inputs: [{ name: 'x', dtype: 'float32' }],
      outputs: [{ name: 'y', dtype: 'float32' }],
      nodes: [{ opType: 'Hardmax', inputs: ['x'], outputs: ['y'], name: 'sm' }],
    });
    expect(() => runModel(model, new Map([['x', x]]))).toThrow(
      expect.objectContaining({
        code: 'QK_UNSUPPORTED_OP',
        message: "node 'sm' (#0) uses op 'Hardmax' which the reference interpreter does not run",
        hint: expect.stringContaining('QuantizeLinear'),
      }),
    );
  });

  it('refuses a missing graph input with QK_MISSING_INPUT', () => {
    const model = makeModel({
      inputs: [{ name: 'x', dtype: 'float32' }],
      outputs: [{ name: 'y', dtype: 'float32' }],
      nodes: [{ opType: 'Relu', inputs: ['x'], outputs: ['y'] }],
    });
    expect(() => runModel(model, new Map())).toThrow(expect.objectContaining({ code: 'QK_MISSING_INPUT' }));
  });
});
