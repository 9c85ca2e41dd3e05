/**
 * Every failure a user can cause is a QuantkitError: a stable code, a message that names the
 * file/tensor/node at fault, and a hint that says the way out. The CLI prints
 * `error QK_CODE: message (hint)` and exits 1; anything else is an internal error (exit 2).
 */
/**
 * Every code a QuantkitError can carry: scripts and tests match on these, so a code is part of the
 * interface (add one here when a new failure needs it; never reuse one for another meaning).
 */
export type ErrorCode =
  | 'QK_BAD_ATTRIBUTE'
  | 'QK_BAD_AXIS'
  | 'QK_BAD_BITS'
  | 'QK_BAD_BLOCK_SHAPE'
  | 'QK_BAD_BLOCK_SIZE'
  | 'QK_BAD_FLAG'
  | 'QK_BAD_INPUT_TYPE'
  | 'QK_BAD_KMEANS_K'
  | 'QK_BAD_METHOD'
  | 'QK_BAD_OPTION'
  | 'QK_BAD_PACK'
  | 'QK_BAD_PARAM_COUNT'
  | 'QK_BAD_PERCENTILE'
  | 'QK_BAD_SHAPE'
  | 'QK_CALIB_EMPTY'
  | 'QK_CALIB_INPUT_TYPE'
  | 'QK_CALIB_MISMATCH'
  | 'QK_CALIB_MISSING'
  | 'QK_CALIB_NON_FINITE'
  | 'QK_CALIB_NOT_FLOAT'
  | 'QK_CALIB_NO_HISTOGRAM'
  | 'QK_CALIB_SCALAR'
  | 'QK_COMPARE_LABELS'
  | 'QK_COMPARE_OUTPUT'
  | 'QK_COMPARE_OUTPUTS_DIFFER'
  | 'QK_COMPARE_SHAPES'
  | 'QK_CONVERT_UNKNOWN_FORMAT'
  | 'QK_CONVERT_UNSUPPORTED'
  | 'QK_DEMO_BAD_DATA'
  | 'QK_DEMO_MODEL_MISSING'
  | 'QK_EVAL_INPUT_TYPE'
  | 'QK_EXCLUDE_NO_MATCH'
  | 'QK_EXTERNAL_DATA_BAD_KEY'
  | 'QK_EXTERNAL_DATA_NOT_EXTERNAL'
  | 'QK_EXTERNAL_DATA_NOT_FOUND'
  | 'QK_EXTERNAL_DATA_NO_LOCATION'
  | 'QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR'
  | 'QK_EXTERNAL_DATA_OUT_OF_BOUNDS'
  | 'QK_EXTERNAL_DATA_UNRESOLVED'
  | 'QK_EXTERNAL_DATA_UNSUPPORTED_DTYPE'
  | 'QK_FILE_IS_DIRECTORY'
  | 'QK_FILE_NOT_A_FILE'
  | 'QK_FILE_NOT_FOUND'
  | 'QK_FILE_TRUNCATED'
  | 'QK_FILE_UNREADABLE'
  | 'QK_GEMM_BIAS'
  | 'QK_GPTQ_SHAPE'
  | 'QK_GRAPH_CYCLE'
  | 'QK_GRAPH_DUPLICATE_NAME'
  | 'QK_GRAPH_UNDEFINED_VALUE'
  | 'QK_GRAPH_UNNAMED_TENSOR'
  | 'QK_INPUT_BATCH'
  | 'QK_INPUT_DTYPE'
  | 'QK_INPUT_FORMAT'
  | 'QK_INPUT_ID_RANGE'
  | 'QK_INPUT_MISSING'
  | 'QK_INPUT_RANK'
  | 'QK_INPUT_SAMPLES'
  | 'QK_INPUT_SHAPE'
  | 'QK_INPUT_TOO_LONG'
  | 'QK_LENGTH_MISMATCH'
  | 'QK_MISSING_INPUT'
  | 'QK_MISSING_OUTPUT'
  | 'QK_MODEL_NO_GRAPH'
  | 'QK_NONFINITE_WEIGHTS'
  | 'QK_NPY_FORTRAN_ORDER'
  | 'QK_NPY_PARSE'
  | 'QK_NPY_UNSUPPORTED_DTYPE'
  | 'QK_ONNX_BAD_ATTRIBUTE'
  | 'QK_ONNX_BAD_FIELD'
  | 'QK_ONNX_PARSE'
  | 'QK_ONNX_TOO_LARGE'
  | 'QK_OPSET_TOO_OLD'
  | 'QK_OPSET_UPGRADE_UNSUPPORTED'
  | 'QK_OPTION_NOT_FOR_SCHEME'
  | 'QK_ORT_LOAD_FAILED'
  | 'QK_ORT_RUN_FAILED'
  | 'QK_OUTPUT_DIR_MISSING'
  | 'QK_OUTPUT_EXISTS'
  | 'QK_OUTPUT_IS_DIRECTORY'
  | 'QK_OUTPUT_IS_INPUT'
  | 'QK_OUTPUT_NOT_PRODUCED'
  | 'QK_OUTPUT_WRITE_FAILED'
  | 'QK_PACKED_DATA_TOO_SHORT'
  | 'QK_QDQ_GEMM_ALPHA'
  | 'QK_QDQ_UNSUPPORTED'
  | 'QK_QUANT_DATA'
  | 'QK_QUANT_SPEC'
  | 'QK_REPORT_ASSET_MISSING'
  | 'QK_SAFETENSORS_BAD_BOOL'
  | 'QK_SAFETENSORS_BAD_METADATA'
  | 'QK_SAFETENSORS_BAD_NAME'
  | 'QK_SAFETENSORS_BAD_OFFSETS'
  | 'QK_SAFETENSORS_BAD_SHAPE'
  | 'QK_SAFETENSORS_BAD_TENSOR_ENTRY'
  | 'QK_SAFETENSORS_DUPLICATE_NAME'
  | 'QK_SAFETENSORS_FILE_TOO_SHORT'
  | 'QK_SAFETENSORS_HEADER_NOT_JSON'
  | 'QK_SAFETENSORS_HEADER_NOT_OBJECT'
  | 'QK_SAFETENSORS_HEADER_NOT_UTF8'
  | 'QK_SAFETENSORS_HEADER_OUT_OF_BOUNDS'
  | 'QK_SAFETENSORS_HEADER_TOO_LARGE'
  | 'QK_SAFETENSORS_HOLE'
  | 'QK_SAFETENSORS_LENGTH_MISMATCH'
  | 'QK_SAFETENSORS_MISALIGNED'
  | 'QK_SAFETENSORS_OFFSET_OUT_OF_BOUNDS'
  | 'QK_SAFETENSORS_OVERLAP'
  | 'QK_SAFETENSORS_PLAN_MISMATCH'
  | 'QK_SAFETENSORS_SHAPE_OVERFLOW'
  | 'QK_SAFETENSORS_TRAILING_BYTES'
  | 'QK_SAFETENSORS_UNKNOWN_DTYPE'
  | 'QK_SAFETENSORS_UNNAMED_TENSOR'
  | 'QK_SAFETENSORS_UNSUPPORTED_DTYPE'
  | 'QK_STRING_NOT_NUMERIC'
  | 'QK_TENSOR_BAD_DIMS'
  | 'QK_TENSOR_BAD_FIELD'
  | 'QK_TENSOR_BAD_VALUE'
  | 'QK_TENSOR_DATA_LENGTH'
  | 'QK_TENSOR_SIZE_MISMATCH'
  | 'QK_TENSOR_STORAGE_MISMATCH'
  | 'QK_TJS_BAD_CALIB'
  | 'QK_TJS_BAD_CONFIG'
  | 'QK_TJS_NOT_A_MODEL_FOLDER'
  | 'QK_TOO_MANY_INPUTS'
  | 'QK_TRAIN_BACKEND'
  | 'QK_TRAIN_DATA'
  | 'QK_TRAIN_UNSUPPORTED_OP'
  | 'QK_UNKNOWN_DTYPE'
  | 'QK_UNKNOWN_FORMAT'
  | 'QK_UNKNOWN_INPUT'
  | 'QK_UNKNOWN_MODEL'
  | 'QK_UNKNOWN_SCHEME'
  | 'QK_UNSUPPORTED_CAST'
  | 'QK_UNSUPPORTED_DTYPE'
  | 'QK_UNSUPPORTED_OP'
  | 'QK_UNSUPPORTED_QUANT_GRANULARITY'
  | 'QK_WEIGHT_NOT_FLOAT32'
  | 'QK_WEIGHT_OVERFLOW'
  | 'QK_GPTQ_NOT_IN_BROWSER'
  | 'QK_CANCELLED'
  | 'QK_COMPRESSED_CORRUPT'
  | 'QK_COMPRESSED_NOT_CONTAINER'
  | 'QK_COMPRESSED_VERSION'
  | 'QK_BAD_SPARSITY'
  | 'QK_OPTIMIZER_STATE'
  | 'QK_LORA_NO_TARGETS'
  | 'QK_LORA_ADAPTER'
  | 'QK_LABELS_COUNT'
  | 'QK_LABELS_RANGE'
  | 'QK_TASK_LOSS_MODEL';

export class QuantkitError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, hint?: string) {
    super(message);
    this.name = 'QuantkitError';
    this.code = code;
    this.hint = hint;
  }

  /** One line for a terminal: code, what went wrong, and what to do about it. */
  format(): string {
    return `error ${this.code}: ${this.message}${this.hint ? ` (${this.hint})` : ''}`;
  }
}

export function isQuantkitError(e: unknown): e is QuantkitError {
  return e instanceof QuantkitError;
}

/**
 * A failure whose message or hint names options, in library terms and marked in backticks
 * ("pass `force` to replace it"): `options` lists them, so each front end shows them in its own
 * spelling (the CLI's flags: cli/option-flags.ts). Report notes mark options the same way.
 */
export class OptionError extends QuantkitError {
  readonly options: readonly string[];

  constructor(code: ErrorCode, message: string, hint: string | undefined, options: readonly string[]) {
    super(code, message, hint);
    this.options = options;
  }
}
