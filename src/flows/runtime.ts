/*
 * The part of ONNX Runtime the in-memory flows use (calibration, evaluation), as an interface the
 * caller passes in: onnxruntime-node on Node (node/ort-runtime.ts), onnxruntime-web in a browser.
 * Importing the runtime package here would tie every in-memory flow to one of the two.
 */

/** Element types the flows feed. */
export type RuntimeFeedType = 'float32' | 'int64' | 'int32';

export interface RuntimeTensor {
  readonly type: string;
  readonly dims: readonly number[];
  /** A typed array for numeric outputs (checked with instanceof before use). */
  readonly data: unknown;
  dispose(): void;
}

export interface RuntimeSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, RuntimeTensor>): Promise<Record<string, RuntimeTensor>>;
  run(feeds: Record<string, RuntimeTensor>, fetches: readonly string[]): Promise<Record<string, RuntimeTensor>>;
  release(): Promise<void>;
}

export interface RuntimeSessionOptions {
  readonly graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  readonly intraOpNumThreads?: number;
  readonly interOpNumThreads?: number;
  /** 3: the runtime's own error lines stay off stderr; its failures come back as exceptions. */
  readonly logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
}

export interface OnnxRuntime {
  createSession(model: Uint8Array, options: RuntimeSessionOptions): Promise<RuntimeSession>;
  tensor(type: 'float32', data: Float32Array, dims: readonly number[]): RuntimeTensor;
  tensor(type: 'int64', data: BigInt64Array, dims: readonly number[]): RuntimeTensor;
  tensor(type: 'int32', data: Int32Array, dims: readonly number[]): RuntimeTensor;
}
