// Perplexity of the shipped LM with 4-bit float zero points written apart (the default: MatMulNBits
// at zero point 8 plus a per-block correction) and inline (`floatZeroPoints` 'inline'), and of
// q2-asym at accuracy_level 0 and 4, in ONNX Runtime on models/lm-eval.npy.
//   npx tsx scripts/measure/float-zero-points.ts [model.onnx eval.npy calib.npy]
import { readFileSync } from 'node:fs';
import { lmPerplexity } from '../../src/flows/evaluate-node.js';
import { quantizeModelBytesGptq } from '../../src/flows/gptq.js';
import { quantizeModelBytes } from '../../src/flows/quantize.js';
import { readNpy } from '../../src/io/npy/npy.js';

const root = new URL('../../', import.meta.url).pathname;
const [file = 'models/lm.onnx', evalF = 'models/lm-eval.npy', calibF = 'models/lm-calib.npy'] = process.argv.slice(2);
const bytes = readFileSync(root + file);
const windows = readNpy(readFileSync(root + evalF));
const calib = new Map([['input_ids', readNpy(readFileSync(root + calibF))]]);
const forms: [string, Uint8Array][] = [
  ['fp32', bytes],
  ['q4 g128 hqq (split)', quantizeModelBytes(bytes, { scheme: 'q4', blockSize: 128, hqq: true }).bytes],
  [
    'q4 g128 hqq (inline)',
    quantizeModelBytes(bytes, { scheme: 'q4', blockSize: 128, hqq: true, floatZeroPoints: 'inline' }).bytes,
  ],
  ['q4-k g32 gptq (split)', (await quantizeModelBytesGptq(bytes, { scheme: 'q4-k', blockSize: 32 }, calib)).bytes],
  [
    'q4-k g32 gptq (inline)',
    (await quantizeModelBytesGptq(bytes, { scheme: 'q4-k', blockSize: 32, floatZeroPoints: 'inline' }, calib)).bytes,
  ],
  ['q2-asym g32', quantizeModelBytes(bytes, { scheme: 'q2-asym' }).bytes],
  ['q2-asym g32 accuracy_level 4', quantizeModelBytes(bytes, { scheme: 'q2-asym', accuracyLevel: 4 }).bytes],
  ['q2 g32', quantizeModelBytes(bytes, { scheme: 'q2' }).bytes],
  ['q2 g32 accuracy_level 4', quantizeModelBytes(bytes, { scheme: 'q2', accuracyLevel: 4 }).bytes],
];
for (const [name, m] of forms) console.log(`| ${name} | ${(await lmPerplexity(m, windows)).perplexity.toFixed(4)} |`);
