import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The installed tfjs-backend-wasm's .wasm files (Node reads them from disk by this prefix). */
export function tfjsWasmFolder(): string {
  const pkg = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return `${join(dirname(pkg), 'dist')}/`;
}
