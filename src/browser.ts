/**
 * quantkit's library entry for browsers (package.json's "browser" export condition): everything
 * src/index.ts exports, plus whole-model jobs on bytes or Blobs (web/api.ts) with ONNX Runtime
 * passed in (ortWebRuntime wraps onnxruntime-web). Nothing reachable from here uses Node APIs.
 */
export * from './index.js';
export {
  quantizeModelBytes,
  quantizeModelSource,
  inspectModelBytes,
  inlinedModelBytes,
  externalLocations,
  openModel,
  type ModelInput,
  type CalibInput,
  type QuantizeBytesOptions,
  type QuantizeReport,
  type QuantizedModel,
} from './web/api.js';
export { compareModelBytes, randomInputs, type ModelComparison, type CompareBytesOptions } from './web/measure.js';
export { ortWebRuntime } from './web/runtime.js';
export { blobSource, canReadBlobsSync } from './web/blob-source.js';
export { bytesSource, type ByteSource } from './io/source.js';
export { ALL_SCHEME_NAMES, SCHEME_TABLE, type AnySchemeName } from './flows/schemes.js';
export type { InspectReport } from './flows/inspect.js';
export type { OnnxRuntime } from './flows/runtime.js';
export type { CalibrationData } from './flows/calibrate.js';
export type { OutputComparison } from './flows/compare.js';
// LoRA / QLoRA on TensorFlow.js: lora(modelBytes, { x: windows }, options) → { adapter, merged?, history }.
export {
  lora,
  mergeAdapterFile,
  LORA_BASES,
  LORA_MERGE_SCHEMES,
  type LoraOptions,
  type LoraResult,
  type LoraHistory,
  type LoraBase,
  type LoraMergeScheme,
} from './flows/lora.js';
// Deep Compression in the page: compressModel(bytes, { trainer: compressTrainer(...), evaluate }) →
// stage table, k-means ONNX model and .qkc container; decompressModel reads a container back.
export {
  compressModel,
  type CompressOptions,
  type CompressResult,
  type StageRow,
  type StageQuality,
} from './flows/compress.js';
export {
  compressTrainer,
  type CompressTrainOptions,
  type OptimizerKind,
  type PruneAllocation,
} from './flows/compress-train.js';
export { decompressModel } from './flows/compressed-model.js';
