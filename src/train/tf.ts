import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import './tfjs-gradients.generated.js';
import { QuantkitError } from '../errors.js';

/*
 * The training engine is TensorFlow.js core (browser-safe; its autodiff, optimizers and kernels),
 * on its plain-JavaScript CPU backend or its WebAssembly backend. tfjs-node is not used: its
 * install downloads a native library. Every module of train/ and of the graph builders takes tf
 * from here, so the gradient registrations (tfjs-gradients.generated.ts) are always loaded.
 */
export { tf };

export type TrainBackend = 'cpu' | 'wasm';
export const TRAIN_BACKENDS: readonly TrainBackend[] = ['cpu', 'wasm'];

export interface BackendOptions {
  /**
   * wasm: the folder (or URL prefix) holding tfjs-backend-wasm's .wasm files. In the browser it
   * defaults to the page's folder; in Node it must be given (the CLI passes the installed package's).
   */
  readonly wasmPaths?: string | undefined;
}

/** Selects (and initializes) the backend every later tf call runs on. */
export async function useBackend(name: TrainBackend, opts: BackendOptions = {}): Promise<void> {
  if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    if (opts.wasmPaths) wasm.setWasmPaths(opts.wasmPaths);
  }
  let ok = false;
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    throw new QuantkitError(
      'QK_TRAIN_BACKEND',
      `the TensorFlow.js ${name} backend did not start: ${(e as Error).message}`,
      name === 'wasm' ? 'give the folder of the tfjs-backend-wasm .wasm files, or use the cpu backend' : undefined,
    );
  }
  if (!ok)
    throw new QuantkitError(
      'QK_TRAIN_BACKEND',
      `the TensorFlow.js ${name} backend did not start`,
      'use the cpu backend',
    );
  await tf.ready();
  // The CPU backend's one-time console advice to install tfjs-node (which this project avoids on purpose).
  const backend = tf.backend() as unknown as { firstUse?: boolean };
  if (backend.firstUse) backend.firstUse = false;
}
