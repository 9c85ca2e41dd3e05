import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isQuantkitError } from '../../errors.js';
import { makeTensor } from '../../tensor/tensor.js';
import { attributeValue } from './attribute.js';
import { makeModel } from './build.js';
import { decodeModel, encodeModel } from './proto.js';
import { mulberry32 as prng } from '../../quant/prng.js';
import { tensorFromProto } from './tensor.js';

const ITERATIONS = Number(process.env.QK_FUZZ_ITERATIONS ?? 400);

/** A model with initializers of packed, narrow-float and wide types and attributes of several kinds. */
function builtModel(): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: [
        {
          opType: 'DequantizeLinear',
          inputs: ['w', 's', 'z'],
          outputs: ['wf'],
          attributes: { axis: 0, block_size: 0 },
        },
        {
          opType: 'Gemm',
          inputs: ['x', 'wf', 'b'],
          outputs: ['y'],
          attributes: {
            alpha: 0.5,
            transB: 1,
            names: ['a', 'b'],
            t: makeTensor('float16', [2], new Uint16Array([0x3c00, 0xc000])),
          },
        },
      ],
      inputs: [{ name: 'x', dtype: 'float32', dims: ['batch', 3] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: ['batch', 2] }],
      initializers: {
        w: makeTensor('int4', [2, 3], new Int8Array([-8, 7, 1, 0, -1, 3])),
        s: makeTensor('float32', [], new Float32Array([0.25])),
        z: makeTensor('int4', [], new Int8Array([1])),
        b: makeTensor('float16', [2], new Uint16Array([0x3c00, 0x4000])),
        e: makeTensor('float8e4m3fn', [3], new Uint8Array([0x38, 0x7f, 0x80])),
        i: makeTensor('int64', [2], new BigInt64Array([-1n, 5n])),
        str: makeTensor('string', [1], ['q']),
      },
    }),
  );
}

const MODELS: Record<string, Uint8Array> = {
  'conformance test_qlinearconv': new Uint8Array(
    readFileSync('/work/shared/onnx-node-tests/test_qlinearconv/model.onnx'),
  ),
  'built model with initializers': builtModel(),
};

describe('fuzz: seeded mutations of ONNX models', () => {
  it.each(Object.keys(MODELS))(
    `${ITERATIONS} mutations of %s: every failure, through tensor and attribute decoding, is a QuantkitError`,
    (name) => {
      const original = MODELS[name] as Uint8Array;
      const rand = prng(20240601);
      let rejected = 0;
      for (let k = 0; k < ITERATIONS; k++) {
        const bytes = new Uint8Array(original);
        const edits = 1 + Math.floor(rand() * 4);
        for (let j = 0; j < edits; j++) {
          const at = Math.floor(rand() * bytes.length);
          if (rand() < 0.5) bytes[at] = (bytes[at] as number) ^ (1 << Math.floor(rand() * 8));
          else bytes[at] = Math.floor(rand() * 256);
        }
        try {
          const m = decodeModel(bytes, 'fuzz.onnx');
          for (const init of m.graph?.initializer ?? []) tensorFromProto(init);
          for (const node of m.graph?.node ?? []) for (const a of node.attribute) attributeValue(a);
        } catch (e) {
          if (!isQuantkitError(e)) throw new Error(`mutation ${k} raised a raw ${String(e)}`);
          rejected++;
        }
      }
      expect(rejected).toBeGreaterThan(0);
    },
  );
});
