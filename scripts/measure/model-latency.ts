// ONNX Runtime latency of the shipped models' quantized forms as ratios to fp32, measured side by
// side in one run (src/flows/model-latency-node.ts). `npx tsx scripts/measure/model-latency.ts
// [--quick] [--json]`; README "Speed of the models we write" holds runs' numbers. The 4-layer
// d = 256 LM is measured too when .cache/models/lm-big.onnx exists (scripts/models/make_models.py
// --lm-size big --out .cache/models, or scripts/measure/low-bit-table.ts lm-big, makes it).
// `--perplexity` prints instead the eval-window perplexity of the q4 forms the table and README
// compare (accuracy level 0 / 4, blocks of 32 / 128) and of int8-dynamic, on each LM.
import { existsSync, readFileSync } from 'node:fs';
import { quantizeDynamicModel } from '../../src/flows/calibrate.js';
import { lmPerplexity } from '../../src/flows/evaluate-node.js';
import { measureShippedModelLatency } from '../../src/flows/model-latency-node.js';
import { quantizeModelBytes } from '../../src/flows/quantize.js';
import { modelFromProto } from '../../src/graph/from-onnx.js';
import { modelToProto } from '../../src/graph/to-onnx.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../../src/io/onnx/proto.js';

const args = process.argv.slice(2);
const root = new URL('../../', import.meta.url);
const big = new URL('.cache/models/lm-big.onnx', root);
const bigLm = existsSync(big)
  ? { model: readFileSync(big), windows: readNpy(readFileSync(new URL('.cache/models/lm-big-calib.npy', root))) }
  : undefined;
if (args.includes('--perplexity')) {
  const lms = [
    { name: 'lm', dir: new URL('models/', root), prefix: 'lm' },
    ...(bigLm ? [{ name: 'lm-big', dir: new URL('.cache/models/', root), prefix: 'lm-big' }] : []),
  ];
  for (const { name, dir, prefix } of lms) {
    const fp32 = readFileSync(new URL(`${prefix}.onnx`, dir));
    const windows = readNpy(readFileSync(new URL(`${prefix}-eval.npy`, dir)));
    const dynamic = modelFromProto(decodeModel(fp32));
    quantizeDynamicModel(dynamic, {});
    const forms: [string, Uint8Array][] = [
      ['fp32', fp32],
      ['int8-dynamic', encodeModel(modelToProto(dynamic))],
    ];
    for (const blockSize of [32, 128])
      for (const accuracyLevel of [0, 4] as const)
        forms.push([
          `q4 block ${blockSize}, accuracy level ${accuracyLevel}`,
          quantizeModelBytes(fp32, { scheme: 'q4', blockSize, accuracyLevel }).bytes,
        ]);
    for (const [form, bytes] of forms)
      console.log(`${name} ${form}: perplexity ${(await lmPerplexity(bytes, windows)).perplexity.toFixed(4)}`);
  }
  process.exit(0);
}
const rows = await measureShippedModelLatency({ quick: args.includes('--quick'), bigLm });
if (args.includes('--json')) {
  process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
} else {
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(
    `${pad('model', 42)}${pad('input', 22)}${pad('ratio', 8)}${pad('cpu', 8)}${pad('goal', 7)}quantized / fp32 ms`,
  );
  for (const r of rows)
    console.log(
      `${pad(r.model, 42)}${pad(r.input, 22)}${pad(`${r.ratio.toFixed(2)}×`, 8)}${pad(`${r.cpuRatio.toFixed(2)}×`, 8)}${pad(r.bound ? 'bound' : r.goal ? `≤ ${r.goal}` : '', 7)}${r.candidateMs.toFixed(3)} / ${r.baselineMs.toFixed(3)} (median of ${r.rounds})`,
    );
  if (!bigLm) console.log('(lm-big not measured: .cache/models/lm-big.onnx is missing)');
}
