/**
 * One-operator ONNX models (bytes) for holding our kernels to ONNX Runtime's operators: in the
 * kernel tests (same results) and in `quantkit bench` (same work, side by side). Weights are
 * initializers, so ONNX Runtime may prepack them as it would in a real model.
 */
import type { Bnb4GemvWeights, NBitsGemvWeights } from '../kernels/index.js';
import { makeModel } from '../io/onnx/build.js';
import { encodeModel } from '../io/onnx/proto.js';
import { makeTensor } from '../tensor/tensor.js';

/** QuantizeLinear of x [outer, C, inner] per channel (axis 1; C = 1: per tensor), input 'x', output 'y'. */
export function quantizeLinearModel(
  dims: readonly [number, number, number],
  scale: Float32Array,
  zeroPoint: Int8Array | Uint8Array,
): Uint8Array {
  const dtype = zeroPoint instanceof Int8Array ? 'int8' : 'uint8';
  const perTensor = scale.length === 1;
  return encodeModel(
    makeModel({
      nodes: [
        {
          opType: 'QuantizeLinear',
          inputs: ['x', 'scale', 'zp'],
          outputs: ['y'],
          ...(perTensor ? {} : { attributes: { axis: 1 } }),
        },
      ],
      inputs: [{ name: 'x', dtype: 'float32', dims: [...dims] }],
      outputs: [{ name: 'y', dtype, dims: [...dims] }],
      initializers: {
        scale: makeTensor('float32', perTensor ? [] : [scale.length], scale),
        zp: makeTensor(dtype, perTensor ? [] : [zeroPoint.length], zeroPoint),
      },
      opsets: { '': 21 },
    }),
  );
}

/** MatMulInteger(a [M, K] of `aType`, B [K, N] initializer, zero points as given), output 'y' int32. */
export function matMulIntegerModel(
  aType: 'int8' | 'uint8',
  b: Int8Array | Uint8Array,
  k: number,
  n: number,
  aZero?: number,
  bZero?: number,
): Uint8Array {
  const bType = b instanceof Int8Array ? 'int8' : 'uint8';
  const zeros = aZero !== undefined || bZero !== undefined;
  const zeroData = (t: 'int8' | 'uint8', v: number) => (t === 'int8' ? Int8Array.of(v) : Uint8Array.of(v));
  return encodeModel(
    makeModel({
      nodes: [{ opType: 'MatMulInteger', inputs: zeros ? ['a', 'b', 'az', 'bz'] : ['a', 'b'], outputs: ['y'] }],
      inputs: [{ name: 'a', dtype: aType, dims: ['M', k] }],
      outputs: [{ name: 'y', dtype: 'int32', dims: ['M', n] }],
      initializers: {
        b: makeTensor(bType, [k, n], b),
        ...(zeros
          ? {
              az: makeTensor(aType, [], zeroData(aType, aZero ?? 0)),
              bz: makeTensor(bType, [], zeroData(bType, bZero ?? 0)),
            }
          : {}),
      },
      opsets: { '': 17 },
    }),
  );
}

/** MatMul(a [M, K] float32, B [K, N] initializer). */
export function matMulF32Model(b: Float32Array, k: number, n: number): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
      inputs: [{ name: 'a', dtype: 'float32', dims: ['M', k] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: ['M', n] }],
      initializers: { b: makeTensor('float32', [k, n], b) },
      opsets: { '': 17 },
    }),
  );
}

/** com.microsoft MatMulNBits (bits 4) of a [M, K] float32 with the weight `w`. */
export function matMulNBitsModel(w: NBitsGemvWeights, accuracyLevel: 0 | 4): Uint8Array {
  const { K, N, blockSize } = w;
  const kBlocks = Math.ceil(K / blockSize);
  return encodeModel(
    makeModel({
      nodes: [
        {
          opType: 'MatMulNBits',
          domain: 'com.microsoft',
          inputs: w.zeroPoints ? ['a', 'b', 'scales', 'zp'] : ['a', 'b', 'scales'],
          outputs: ['y'],
          attributes: { K, N, bits: 4, block_size: blockSize, accuracy_level: accuracyLevel },
        },
      ],
      inputs: [{ name: 'a', dtype: 'float32', dims: ['M', K] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: ['M', N] }],
      initializers: {
        b: makeTensor('uint8', [N, kBlocks, blockSize / 2], w.packed),
        scales: makeTensor('float32', [N * kBlocks], w.scales),
        ...(w.zeroPoints ? { zp: makeTensor('uint8', [w.zeroPoints.length], w.zeroPoints) } : {}),
      },
      opsets: { '': 17, 'com.microsoft': 1 },
    }),
  );
}

/** com.microsoft MatMulBnb4 of a [M, K] float32 with the weight `w` (quantType 1 NF4, 0 FP4). */
export function matMulBnb4Model(w: Bnb4GemvWeights, quantType: 0 | 1): Uint8Array {
  const { K, N, blockSize } = w;
  return encodeModel(
    makeModel({
      nodes: [
        {
          opType: 'MatMulBnb4',
          domain: 'com.microsoft',
          inputs: ['a', 'b', 'absmax'],
          outputs: ['y'],
          attributes: { K, N, block_size: blockSize, quant_type: quantType },
        },
      ],
      inputs: [{ name: 'a', dtype: 'float32', dims: ['M', K] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: ['M', N] }],
      initializers: {
        b: makeTensor('uint8', [w.packed.length], w.packed),
        absmax: makeTensor('float32', [w.absmax.length], w.absmax),
      },
      opsets: { '': 17, 'com.microsoft': 1 },
    }),
  );
}

/**
 * ConvInteger(x uint8 [N, C, H, W] input 'x', w initializer [M, C, kh, kw], zero points as
 * given), pads symmetric, stride 1; output 'y' int32.
 */
export function convIntegerModel(
  xDims: readonly number[],
  w: Uint8Array,
  wDims: readonly number[],
  pad: number,
  xZero: number,
  wZero: number,
): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: [
        {
          opType: 'ConvInteger',
          inputs: ['x', 'w', 'xz', 'wz'],
          outputs: ['y'],
          attributes: { pads: [pad, pad, pad, pad] },
        },
      ],
      inputs: [{ name: 'x', dtype: 'uint8', dims: [...xDims] }],
      outputs: [{ name: 'y', dtype: 'int32', dims: [xDims[0] as number, wDims[0] as number, 'H', 'W'] }],
      initializers: {
        w: makeTensor('uint8', [...wDims], w),
        xz: makeTensor('uint8', [], Uint8Array.of(xZero)),
        wz: makeTensor('uint8', [], Uint8Array.of(wZero)),
      },
      opsets: { '': 17 },
    }),
  );
}
