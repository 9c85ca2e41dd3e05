import type * as OrtWeb from 'onnxruntime-web';
import type { OnnxRuntime, RuntimeSession, RuntimeSessionOptions, RuntimeTensor } from '../flows/runtime.js';

/*
 * onnxruntime-web as the runtime the in-memory flows take (flows/runtime.ts). The module is passed
 * in rather than imported, so the library entry does not pull ONNX Runtime's WebAssembly into
 * every bundle: `ortWebRuntime(await import('onnxruntime-web'))`.
 */

type OrtModule = Pick<typeof OrtWeb, 'InferenceSession' | 'Tensor'>;

export function ortWebRuntime(ort: OrtModule): OnnxRuntime {
  return {
    createSession: async (model: Uint8Array, options: RuntimeSessionOptions): Promise<RuntimeSession> => {
      const session = await ort.InferenceSession.create(model, { ...options, executionProviders: ['wasm'] });
      return session as unknown as RuntimeSession;
    },
    tensor: ((
      type: 'float32' | 'int64' | 'int32',
      data: Float32Array | BigInt64Array | Int32Array,
      dims: readonly number[],
    ) => new ort.Tensor(type, data, dims) as unknown as RuntimeTensor) as OnnxRuntime['tensor'],
  };
}
