import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { enableBnb4SearchWasm } from '../src/kernels/bnb4-search.js';

/*
 * Whole files: nf4 / fp4 written with the WebAssembly constant search (kernels/bnb4-search.ts)
 * must be byte for byte the files the JS search writes, on the shipped LM — data-free (fp4
 * searches, nf4 stores absmax) and with --double-quant. (GPTQ calls the same search one block at
 * a time: single blocks are among kernels/bnb4-search.test.ts's cases.)
 */

const at = (p: string) => new URL(`../${p}`, import.meta.url).pathname;

function bothWays<T>(run: () => T): { wasm: T; js: T } {
  const wasm = run();
  enableBnb4SearchWasm(false);
  try {
    return { wasm, js: run() };
  } finally {
    enableBnb4SearchWasm(true);
  }
}

describe('nf4 / fp4 files: WebAssembly search = JS search, byte for byte', () => {
  afterEach(() => enableBnb4SearchWasm(true));
  const bytes = readFileSync(at('models/lm.onnx'));

  for (const options of [
    { scheme: 'fp4' },
    { scheme: 'nf4' },
    { scheme: 'fp4', doubleQuant: true, blockSize: 32 },
  ] as const) {
    it(`models/lm.onnx ${JSON.stringify(options)}`, () => {
      const { wasm, js } = bothWays(() => quantizeModelBytes(bytes, options));
      expect(Buffer.from(wasm.bytes).equals(Buffer.from(js.bytes))).toBe(true);
      expect(wasm.report).toEqual(js.report);
    });
  }
});
