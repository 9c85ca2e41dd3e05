// 8-bit block-wise Adam vs 32-bit Adam: optimizer-state bytes on the shipped models' parameter
// shapes, and the final loss of a seeded least-squares fit. `npx tsx scripts/measure/adam8bit.ts`
import { readFileSync } from 'node:fs';
import { modelFromProto } from '../../src/graph/from-onnx.js';
import { decodeModel } from '../../src/io/onnx/proto.js';
import { mulberry32 } from '../../src/quant/prng.js';
import { adam32, adam8bit, type Optimizer } from '../../src/train/adam8bit.js';

const root = new URL('../../', import.meta.url).pathname;
for (const name of ['cnn.onnx', 'lm.onnx']) {
  const model = modelFromProto(decodeModel(readFileSync(`${root}models/${name}`), name), { label: name });
  const sizes = [...model.graph.initializers.values()]
    .filter((t) => t.dtype === 'float32')
    .map((t) => t.dims.reduce((a, b) => a * b, 1));
  const b32 = adam32(sizes, { lr: 1e-3 }).stateBytes();
  const rows = [
    ['min8bitSize 4096 (bitsandbytes)', adam8bit(sizes, { lr: 1e-3 }).stateBytes()],
    ['every tensor 8-bit', adam8bit(sizes, { lr: 1e-3, min8bitSize: 0 }).stateBytes()],
  ] as const;
  const params = sizes.reduce((a, b) => a + b, 0);
  for (const [label, b8] of rows)
    console.log(`${name} (${params} params): fp32 Adam ${b32} B, 8-bit ${label} ${b8} B = ${(b8 / b32).toFixed(4)}×`);
}

function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => scale * (r() + r() + r() + r() - 2) * Math.sqrt(3));
}
const K = 64;
const N = 80;
const S = 512;
const X = randn(S * K, 11);
const Wt = randn(K * N, 12, 0.5);
const noise = randn(S * N, 13, 0.1);
const Y = new Float32Array(S * N);
for (let s = 0; s < S; s++)
  for (let j = 0; j < N; j++) {
    let acc = noise[s * N + j] as number;
    for (let k = 0; k < K; k++) acc += (X[s * K + k] as number) * (Wt[k * N + j] as number);
    Y[s * N + j] = acc;
  }
function lsq(W: Float32Array, rows: readonly number[]): { loss: number; grad: Float32Array } {
  const grad = new Float32Array(K * N);
  let loss = 0;
  for (const s of rows)
    for (let j = 0; j < N; j++) {
      let e = -(Y[s * N + j] as number);
      for (let k = 0; k < K; k++) e += (X[s * K + k] as number) * (W[k * N + j] as number);
      loss += (0.5 * e * e) / rows.length;
      for (let k = 0; k < K; k++)
        grad[k * N + j] = (grad[k * N + j] as number) + ((X[s * K + k] as number) * e) / rows.length;
    }
  return { loss, grad };
}
const all = Array.from({ length: S }, (_, i) => i);
for (const decoupled of [false, true]) {
  const fit = (opt: Optimizer) => {
    const W = new Float32Array(K * N);
    const r = mulberry32(5);
    for (let t = 0; t < 600; t++)
      opt.step(
        [W],
        [
          lsq(
            W,
            Array.from({ length: 32 }, () => Math.floor(r() * S)),
          ).grad,
        ],
      );
    return lsq(W, all).loss;
  };
  const cfg = { lr: 0.02, weightDecay: decoupled ? 1e-2 : 0, decoupled };
  const l32 = fit(adam32([K * N], cfg));
  const l8 = fit(adam8bit([K * N], cfg));
  console.log(
    `least squares ${K}×${N}, 600 steps, ${decoupled ? 'AdamW' : 'Adam'}: final loss fp32 ${l32.toFixed(5)}, 8-bit ${l8.toFixed(5)} (${((l8 / l32 - 1) * 100).toFixed(2)} %)`,
  );
}
