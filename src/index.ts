/**
 * quantkit's library API. Browser-safe: nothing reachable from here uses Node APIs, so a bundler
 * can ship it to a web page (files, ONNX Runtime sessions and the CLI live elsewhere).
 */
export * from './quant/index.js';
export {
  encodeFloat16,
  decodeFloat16,
  encodeBfloat16,
  decodeBfloat16,
  encodeFloat8,
  decodeFloat8,
  FLOAT8_KINDS,
  encodeE8m0,
  decodeE8m0,
  encodeFloat4e2m1,
  decodeFloat4e2m1,
  encodeNumbers,
  decodeToFloat32,
  decodeToFloat64,
  packSubByte,
  unpackSubByte,
  saturateToInt,
  castToInt,
  type Float8Kind,
  type E8m0RoundMode,
  type EncodeOptions,
} from './formats/index.js';
export type { DType } from './tensor/dtype.js';
export { ALL_DTYPES, dtypeInfo } from './tensor/dtype.js';
export type { Tensor, TensorData } from './tensor/tensor.js';
export { makeTensor } from './tensor/tensor.js';
export { QuantkitError, isQuantkitError } from './errors.js';
export { decodeModel, encodeModel, decodeTensorProto, encodeTensorProto } from './io/onnx/proto.js';
export { tensorFromProto, tensorToProto } from './io/onnx/tensor.js';
export { readNpy, writeNpy } from './io/npy/npy.js';
export { runModel } from './interp/run.js';
export { adam32, adam8bit, ADAM8BIT_BLOCK } from './train/adam8bit.js';
export type { AdamConfig, Adam8bitConfig, Optimizer } from './train/adam8bit.js';
// Quantization-aware training on TensorFlow.js (browser-safe): qat(modelBytes, data, options) → { bytes, history }.
export { qat, type QatOptions, type QatResult, type QatHistory } from './flows/qat.js';
