import * as ort from 'onnxruntime-node';

/**
 * onnxruntime-node as the runtime the in-memory flows take (flows/runtime.ts's OnnxRuntime,
 * matched by shape: node/ sits below flows/ and does not import it).
 */
export const nodeRuntime = {
  createSession: (model: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> =>
    ort.InferenceSession.create(model, options),
  tensor: (
    type: 'float32' | 'int64' | 'int32',
    data: Float32Array | BigInt64Array | Int32Array,
    dims: readonly number[],
  ): ort.Tensor => new ort.Tensor(type, data, dims),
};
