// Public surface of the number formats: bit-exact encode/decode of every ONNX element format.
export { encodeFloat16, decodeFloat16, float16Table } from './float16.js';
export { encodeBfloat16, decodeBfloat16 } from './bfloat16.js';
export { encodeFloat8, decodeFloat8, float8Table, float8Max, FLOAT8_KINDS, type Float8Kind } from './float8.js';
export { encodeE8m0, decodeE8m0, E8M0_MAX, E8M0_MIN, E8M0_NAN, type E8m0RoundMode } from './float8e8m0.js';
export { encodeFloat4e2m1, decodeFloat4e2m1, float4e2m1Table } from './float4.js';
export { saturateToInt, castToInt, intRange, isIntDType, INT_DTYPES, type IntDType } from './integer.js';
export { roundHalfEven, roundHalfAway, ROUNDER, type Rounding } from './rounding.js';
export { encodeNumbers, decodeToFloat64, decodeToFloat32, type EncodeOptions } from './convert.js';
export { packSubByte, unpackSubByte } from './pack.js';
