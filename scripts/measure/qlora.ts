/**
 * QLoRA against LoRA on a text the char LM never saw (Genesis, KJV: models/kjv/, made by
 * scripts/lora/make_kjv_windows.py): the eval windows' perplexity of the fp32 base alone, of the
 * NF4 base alone, of LoRA over the fp32 base and of QLoRA over the NF4 base (same rank, α, seeds,
 * steps, data), each scored by the engine and, merged, by ONNX Runtime (fp32 merge, and the QLoRA
 * merge re-quantized to nf4 and q4); the bytes the adapted base weights hold; steps/s.
 *
 *   npx tsx scripts/measure/qlora.ts [--steps 48] [--rank 8] [--mlp] [--lr 1e-3] [--seed 0] [--json out.json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { lmPerplexity } from '../../src/flows/evaluate-node.js';
import { lora, mergeAdapterFile, type LoraBase, type LoraResult } from '../../src/flows/lora.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { tfjsWasmFolder } from '../../src/node/tfjs-wasm.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] as string) : fallback;
};
const steps = Number(flag('--steps', '48'));
const rank = Number(flag('--rank', '8'));
const lr = Number(flag('--lr', '1e-3'));
const mlp = args.includes('--mlp');
const seed = Number(flag('--seed', '0'));
const jsonOut = args.includes('--json') ? flag('--json', '') : undefined;

const wasmPaths = tfjsWasmFolder();
const npy = (p: string) => readNpy(readFileSync(p), p);
const modelBytes = readFileSync('models/lm.onnx');
const train = npy('models/kjv/genesis-train.npy');
const evalWindows = npy('models/kjv/genesis-eval.npy');

async function run(base: LoraBase): Promise<LoraResult> {
  return lora(
    modelBytes,
    { x: train },
    {
      base,
      rank,
      alpha: 2 * rank,
      mlp,
      lr,
      epochs: 100,
      maxSteps: steps,
      batchSize: 32,
      seed,
      backend: 'wasm',
      wasmPaths,
      evaluate: { x: evalWindows },
      merge: 'fp32',
      onStep: (s) => {
        if (s.step % 8 === 0 || s.step === s.steps)
          process.stderr.write(`${base} step ${s.step}/${s.steps} loss ${s.loss.toFixed(4)}\n`);
      },
      label: 'models/lm.onnx',
    },
  );
}

const ppl = (ce: number | undefined) => (ce === undefined ? NaN : Math.exp(ce));
const fmt = (x: number) => x.toFixed(4);

const baseOrt = await lmPerplexity(modelBytes, evalWindows);
const fp = await run('fp32');
const q = await run('nf4');
const fpOrt = await lmPerplexity(fp.merged!.bytes, evalWindows);
const qOrt = await lmPerplexity(q.merged!.bytes, evalWindows);
const qNf4 = await lmPerplexity(mergeAdapterFile(modelBytes, q.adapter, { scheme: 'nf4' }), evalWindows);
const qQ4 = await lmPerplexity(mergeAdapterFile(modelBytes, q.adapter, { scheme: 'q4' }), evalWindows);

const rows = [
  ['fp32 base, no adapter', fmt(ppl(fp.history.before?.crossEntropy)), fmt(baseOrt.perplexity)],
  ['NF4 base, no adapter', fmt(ppl(q.history.before?.crossEntropy)), '—'],
  [`LoRA r=${rank} over fp32`, fmt(ppl(fp.history.after?.crossEntropy)), `${fmt(fpOrt.perplexity)} (merged fp32)`],
  [`QLoRA r=${rank} over NF4`, fmt(ppl(q.history.after?.crossEntropy)), `${fmt(qOrt.perplexity)} (merged fp32)`],
  ['QLoRA merged, re-quantized nf4', '—', fmt(qNf4.perplexity)],
  ['QLoRA merged, re-quantized q4', '—', fmt(qQ4.perplexity)],
];
console.log(
  `eval: models/kjv/genesis-eval.npy (${baseOrt.tokens} predicted chars); ${steps} steps, batch 32, lr ${lr}, seed ${seed}, α ${2 * rank}, dropout 0.05, modules ${q.modules.length}${mlp ? ' (with MLP)' : ''}`,
);
console.log('| model | perplexity (engine) | perplexity (ORT) |\n|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
const ratio = ppl(q.history.after?.crossEntropy) / ppl(fp.history.after?.crossEntropy);
console.log(`QLoRA / LoRA perplexity: ${fmt(ratio)} (${((ratio - 1) * 100).toFixed(2)} %)`);
console.log(
  `adapted base weights held: NF4 ${q.baseBytes.held} B vs fp32 ${q.baseBytes.fp32} B = ${(q.baseBytes.held / q.baseBytes.fp32).toFixed(4)}× (${((8 * q.baseBytes.held) / q.baseBytes.elements).toFixed(3)} bits/weight); adapters ${q.parameters} parameters`,
);
console.log(
  `speed (wasm, shared machine): LoRA ${(fp.history.steps / fp.history.seconds).toFixed(3)} steps/s, QLoRA ${(q.history.steps / q.history.seconds).toFixed(3)} steps/s`,
);
if (jsonOut)
  writeFileSync(
    jsonOut,
    JSON.stringify(
      {
        steps,
        rank,
        lr,
        mlp,
        rows,
        ratio,
        baseBytes: q.baseBytes,
        fpSeconds: fp.history.seconds,
        qSeconds: q.history.seconds,
      },
      null,
      2,
    ),
  );
