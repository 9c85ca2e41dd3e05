// Checks the two shipped models (models/lm.onnx, models/cnn.onnx) with ONNX Runtime in Node:
// graph structure (opset, IR version, the nodes quantkit's passes rely on), fp32 metrics on the
// shipped eval sets, and agreement with the numbers make_models.py recorded in models/metrics.json.
// Run from the repository root: `npx tsx scripts/models/check-models.ts`. Exits 1 on any failure.
//
// Self-contained on purpose (its own minimal .npy reader): it checks the artifacts, not the library.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import type { ModelProto } from 'onnx-buf';
import * as ort from 'onnxruntime-node';

const MODELS = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'models');
const failures: string[] = [];

function check(ok: boolean, what: string): void {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

interface Npy { dtype: string; shape: number[]; data: Float32Array | BigInt64Array }

// NumPy .npy v1/v2/v3: magic, version, header length, a Python-dict header, raw C-order data.
function readNpy(file: string): Npy {
  const bytes = readFileSync(join(MODELS, file));
  const major = bytes[6];
  const headerLen = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = bytes.subarray(start, start + headerLen).toString('latin1');
  const dtype = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? '';
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '')
    .split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order not supported`);
  const body = bytes.subarray(start + headerLen);
  const copy = new Uint8Array(body).buffer; // aligned copy
  if (dtype === '<f4') return { dtype, shape, data: new Float32Array(copy) };
  if (dtype === '<i8') return { dtype, shape, data: new BigInt64Array(copy) };
  throw new Error(`${file}: dtype ${dtype} not expected`);
}

function loadProto(file: string): ModelProto {
  return fromBinary(ModelProtoSchema, readFileSync(join(MODELS, file)));
}

function describe(model: ModelProto, file: string): Map<string, number> {
  const g = model.graph;
  if (!g) throw new Error(`${file}: no graph`);
  const ops = new Map<string, number>();
  for (const n of g.node) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  let params = 0;
  for (const t of g.initializer) params += t.dims.reduce((a, d) => a * Number(d), 1);
  const opset = model.opsetImport.map((o) => `${o.domain || 'ai.onnx'}:${o.version}`).join(', ');
  console.log(`${file}: ${statSync(join(MODELS, file)).size} bytes, IR ${model.irVersion}, opset ${opset}, ` +
    `${params} initializer elements in ${g.initializer.length} tensors`);
  console.log(`  ops: ${[...ops].map(([k, v]) => `${k}×${v}`).join(' ')}`);
  check(model.irVersion <= 10n, `${file}: IR version ${model.irVersion} ≤ 10`);
  return ops;
}

function logSoftmaxNll(logits: Float32Array, offset: number, vocab: number, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) max = Math.max(max, logits[offset + i]!);
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[offset + i]! - max);
  return Math.log(sum) + max - logits[offset + target]!;
}

const metrics = JSON.parse(readFileSync(join(MODELS, 'metrics.json'), 'utf8')) as {
  lm: { eval_bits_per_char: number; vocab: number; parameters: number };
  cnn: { test_accuracy: number; parameters: number };
};

async function checkLm(): Promise<void> {
  const proto = loadProto('lm.onnx');
  const ops = describe(proto, 'lm.onnx');
  const g = proto.graph!;
  const inits = new Set(g.initializer.map((t) => t.name));
  const matmuls = g.node.filter((n) => n.opType === 'MatMul');
  const weightMatMuls = matmuls.filter((n) => inits.has(n.input[1] ?? ''));
  // 2 blocks × (q, k, v, o, fc1, fc2) + head = 13 projections, each MatMul(activation, initializer).
  check(weightMatMuls.length === 13, `lm: 13 MatMul with an initializer weight (found ${weightMatMuls.length})`);
  check((ops.get('Gather') ?? 0) >= 1, 'lm: token embedding is a Gather');
  check(ops.get('LayerNormalization') === 5, 'lm: 5 LayerNormalization nodes (2 per block + final)');
  check(ops.get('Softmax') === 2, 'lm: one Softmax per block');
  const params = g.initializer.reduce((a, t) => a + t.dims.reduce((b, d) => b * Number(d), 1), 0);
  // The causal-mask buffer (64×64) is an initializer too, but not a parameter.
  check(params === metrics.lm.parameters + 64 * 64, `lm: initializer elements = parameters + 64×64 mask`);
  check(statSync(join(MODELS, 'lm.onnx')).size <= 2 * 1024 * 1024, 'lm: ≤ 2 MB');

  const vocab = JSON.parse(readFileSync(join(MODELS, 'lm-vocab.json'), 'utf8')) as Record<string, string>;
  check(Object.keys(vocab).length === metrics.lm.vocab, `lm: vocab json has ${metrics.lm.vocab} entries`);
  const ev = readNpy('lm-eval.npy');
  const calib = readNpy('lm-calib.npy');
  check(ev.dtype === '<i8' && ev.shape.length === 2 && ev.shape[1] === 65, `lm-eval.npy int64 [N, 65] (${ev.shape})`);
  check(calib.dtype === '<i8' && calib.shape.join() === '32,64', `lm-calib.npy int64 [32, 64] (${calib.shape})`);

  const session = await ort.InferenceSession.create(join(MODELS, 'lm.onnx'));
  const n = ev.shape[0]!;
  const seq = 64;
  const windows = ev.data as BigInt64Array;
  const inputs = new BigInt64Array(n * seq);
  for (let i = 0; i < n; i++) inputs.set(windows.subarray(i * 65, i * 65 + seq), i * seq);
  const out = await session.run({ input_ids: new ort.Tensor('int64', inputs, [n, seq]) });
  const logits = out['logits']!;
  const v = logits.dims[2]!;
  check(logits.dims.join() === `${n},${seq},${metrics.lm.vocab}`, `lm: logits dims ${logits.dims}`);
  const data = logits.data as Float32Array;
  let nll = 0;
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < seq; t++) {
      nll += logSoftmaxNll(data, (i * seq + t) * v, v, Number(windows[i * 65 + t + 1]));
    }
  }
  const bpc = nll / (n * seq) / Math.LN2;
  console.log(`  ORT fp32: ${bpc.toFixed(4)} bits/char, perplexity ${(2 ** bpc).toFixed(4)} ` +
    `(python: ${metrics.lm.eval_bits_per_char.toFixed(4)})`);
  check(Math.abs(bpc - metrics.lm.eval_bits_per_char) < 1e-4, 'lm: ORT bits/char matches python within 1e-4');

  // Dynamic axes and causality: a shorter prefix on a different batch size gives the same logits
  // at every prefix position as the full 64-character run.
  const b = 3;
  const t = 17;
  const prefix = new BigInt64Array(b * t);
  for (let i = 0; i < b; i++) prefix.set(inputs.subarray(i * seq, i * seq + t), i * t);
  const short = (await session.run({ input_ids: new ort.Tensor('int64', prefix, [b, t]) }))['logits']!;
  const sd = short.data as Float32Array;
  let maxDiff = 0;
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < t * v; j++) maxDiff = Math.max(maxDiff, Math.abs(sd[i * t * v + j]! - data[i * seq * v + j]!));
  }
  check(short.dims.join() === `${b},${t},${v}` && maxDiff < 1e-4,
    `lm: [3,17] input runs, prefix logits equal the full run's (max |Δ| ${maxDiff.toExponential(2)})`);
}

async function checkCnn(): Promise<void> {
  const proto = loadProto('cnn.onnx');
  const ops = describe(proto, 'cnn.onnx');
  check(ops.get('BatchNormalization') === 2, 'cnn: 2 BatchNormalization nodes kept (not folded)');
  check(ops.get('Conv') === 2 && ops.get('Gemm') === 2 && ops.get('MaxPool') === 1, 'cnn: Conv×2, MaxPool, Gemm×2');
  const x = readNpy('cnn-test-x.npy');
  const y = readNpy('cnn-test-y.npy');
  const cx = readNpy('cnn-calib-x.npy');
  check(x.dtype === '<f4' && x.shape.join() === '497,1,8,8', `cnn-test-x.npy float32 [497,1,8,8]`);
  check(y.dtype === '<i8' && y.shape.join() === '497', `cnn-test-y.npy int64 [497]`);
  check(cx.dtype === '<f4' && cx.shape.join() === '128,1,8,8', `cnn-calib-x.npy float32 [128,1,8,8]`);
  const session = await ort.InferenceSession.create(join(MODELS, 'cnn.onnx'));
  const out = (await session.run({ input: new ort.Tensor('float32', x.data as Float32Array, x.shape) }))['logits']!;
  const logits = out.data as Float32Array;
  const labels = y.data as BigInt64Array;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let c = 1; c < 10; c++) if (logits[i * 10 + c]! > logits[i * 10 + best]!) best = c;
    if (BigInt(best) === labels[i]) correct++;
  }
  const acc = correct / labels.length;
  console.log(`  ORT fp32: test accuracy ${(acc * 100).toFixed(2)} % (${correct}/${labels.length}); ` +
    `python: ${(metrics.cnn.test_accuracy * 100).toFixed(2)} %`);
  // metrics.json rounds to 6 digits: compare counts of correct answers.
  check(Math.round(metrics.cnn.test_accuracy * labels.length) === correct, 'cnn: ORT accuracy equals python');
}

await checkCnn();
await checkLm();
if (failures.length > 0) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('all checks passed');
