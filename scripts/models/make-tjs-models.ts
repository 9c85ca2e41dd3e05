// Writes test/fixtures/transformersjs/: tiny-bert/ whole, and char-lm/ without onnx/model.onnx
// (1.7 MB, rebuilt from models/lm.onnx by the tests and by this script with --with-lm-onnx).
// Deterministic: two runs write identical bytes. Run from the repository root:
// `npx tsx scripts/models/make-tjs-models.ts [--with-lm-onnx]`.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTjsModel } from './tjs-models.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const OUT = join(ROOT, 'test', 'fixtures', 'transformersjs');
const withLm = process.argv.includes('--with-lm-onnx');

writeTjsModel('tiny-bert', ROOT, join(OUT, 'tiny-bert'));
writeTjsModel('char-lm', ROOT, join(OUT, 'char-lm'), withLm ? [] : ['onnx/model.onnx']);
console.log(`wrote ${OUT}`);
