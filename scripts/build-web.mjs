// Builds the web page (src/web/app) into dist/web/: the page and worker scripts bundled by
// esbuild for browsers, the HTML and CSS, and ONNX Runtime Web's WebAssembly files, so the
// folder works offline from any static host (and from `quantkit web`).
//   node scripts/build-web.mjs [outDir]     default dist/web
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const APP = join(ROOT, 'src/web/app');
// The runtime files the wasm build of onnxruntime-web loads beside the script that imports it.
const ORT_FILES = ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs'];

export async function buildWeb(outDir = join(ROOT, 'dist/web'), { minify = true } = {}) {
  const out = resolve(outDir);
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: { page: join(APP, 'page.ts'), worker: join(APP, 'worker.ts') },
    outdir: out,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'style.css']) copyFileSync(join(APP, f), join(out, f));
  const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
  for (const f of ORT_FILES) copyFileSync(join(ortDist, f), join(out, f));
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildWeb(process.argv[2]);
  console.log(`web page built into ${out}`);
}
