/**
 * quant/: the quantization core. Browser-safe (no Node APIs); knows nothing of ONNX.
 */
export type { QuantFormat, QuantSpec } from './spec.js';
export type { Quantized } from './quantize.js';
export { quantize, dequantize, pack, unpack } from './quantize.js';
export { NF4_TABLE, FP4_E2M1_TABLE, FP4_BNB_TABLE, makeCodebook, nearestCode } from './codebook.js';
export type { Codebook, TieBreak } from './codebook.js';
export { mse, maxAbsError, sqnrDb, cosineSimilarity } from './metrics.js';
export { footprint, FOOTPRINT_FORMATS } from './footprint.js';
export type { FootprintFormat, FootprintOptions, FootprintReport, FootprintRow, FootprintTensor } from './footprint.js';
export type { Rounding } from '../formats/rounding.js';
export { roundHalfEven, roundHalfAway } from '../formats/rounding.js';
export type { AffineParams, IntCodes, IntRange, NonFinite } from './affine.js';
export { intRange, paramsFromRange, affineParams, quantizeAffine, dequantizeAffine, allocCodes } from './affine.js';
export type { BlockLayout, Granularity } from './layout.js';
export { makeLayout, blockShapeFor } from './layout.js';
export type { RangeMethod, BlockRanges } from './range.js';
export { blockMinMax, blockRanges, percentileRange, mseRange, sortedQuantile } from './range.js';
export type { BlockwiseCodes, BlockwiseOptions } from './blockwise.js';
export { quantizeBlockwise, dequantizeBlockwise } from './blockwise.js';
export { createDynamicMap, quantizeDynamicTree8, dequantizeDynamicTree8 } from './dynamic-tree.js';
export type { DoubleQuantized } from './double-quant.js';
export { doubleQuantize, doubleDequantize, bitsPerParameter } from './double-quant.js';
export { exactQuantiles, approxQuantiles } from './quantile.js';
export { kmeans1d } from './kmeans.js';
export type { NibbleOrder } from './pack.js';
export { packCodes, unpackCodes } from './pack.js';
export type { ScaleDtype } from './scale-dtype.js';
export type { KMeansWeightOptions, KMeansWeights } from './kmeans-weights.js';
export { quantizeKMeansWeights, dequantizeKMeansWeights, packIndices, unpackIndices } from './kmeans-weights.js';
export type { CanonicalCode } from './huffman.js';
export { codeLengths, canonicalCode, huffmanEncode, huffmanDecode, symbolCounts } from './huffman.js';
export type { SparseEntries } from './sparse-gaps.js';
export { encodeSparse, decodeSparse, bestGapBits } from './sparse-gaps.js';
export { magnitudeMask, applyMask, zeroFraction } from './prune.js';
