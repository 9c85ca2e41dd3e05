// ORT latency of one MatMulNBits node by its form (bits, zero points none / uint8 / float,
// accuracy_level 0 / 4) at one row of A and at 1,024 rows, interleaved in one run (median of
// `runs`; 2 intra-op threads). On a shared machine only the ratios mean anything.
//   npx tsx scripts/measure/nbits-one-node.ts [K] [N] [runs]
import * as ort from 'onnxruntime-node';
import { makeModel } from '../../src/io/onnx/build.js';
import { encodeModel } from '../../src/io/onnx/proto.js';
import { mulberry32 } from '../../src/quant/prng.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const [K = 512, N = 2048, runs = 200] = process.argv.slice(2).map(Number);
const BS = 32;
const kBlocks = Math.ceil(K / BS);
const r = mulberry32(1);

function model(bits: number, zp: 'none' | 'uint8' | 'float', level: number): Uint8Array {
  const blob = (BS * bits) / 8;
  const init: Record<string, Tensor> = {
    b: {
      dtype: 'uint8',
      dims: [N, kBlocks, blob],
      data: Uint8Array.from({ length: N * kBlocks * blob }, () => r() * 256),
    },
    s: {
      dtype: 'float32',
      dims: [N * kBlocks],
      data: Float32Array.from({ length: N * kBlocks }, () => 0.01 + r() * 0.03),
    },
  };
  const zpBytes = N * Math.ceil((kBlocks * bits) / 8);
  if (zp === 'uint8')
    init.z = { dtype: 'uint8', dims: [zpBytes], data: Uint8Array.from({ length: zpBytes }, () => r() * 256) };
  if (zp === 'float')
    init.z = {
      dtype: 'float32',
      dims: [N * kBlocks],
      data: Float32Array.from({ length: N * kBlocks }, () => r() * ((1 << bits) - 1)),
    };
  return encodeModel(
    makeModel({
      nodes: [
        {
          opType: 'MatMulNBits',
          domain: 'com.microsoft',
          inputs: ['a', 'b', 's', ...(zp === 'none' ? [] : ['z'])],
          outputs: ['y'],
          attributes: { K, N, bits, block_size: BS, accuracy_level: level },
        },
      ],
      inputs: [{ name: 'a', dtype: 'float32', dims: ['M', K] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: ['M', N] }],
      initializers: init,
      opsets: { '': 21, 'com.microsoft': 1 },
      irVersion: 10,
    }),
  );
}

const forms: [string, Uint8Array][] = [];
for (const bits of [4, 2])
  for (const zp of ['none', 'uint8', 'float'] as const)
    for (const level of [0, 4]) forms.push([`bits ${bits}, zp ${zp}, level ${level}`, model(bits, zp, level)]);
const opts = { intraOpNumThreads: 2, interOpNumThreads: 1 };
const sessions = await Promise.all(forms.map(([, m]) => ort.InferenceSession.create(m, opts)));
for (const M of [1, 1024]) {
  const a = new ort.Tensor(
    'float32',
    Float32Array.from({ length: M * K }, () => r() * 2 - 1),
    [M, K],
  );
  const times = forms.map(() => [] as number[]);
  for (const s of sessions) await s.run({ a });
  for (let i = 0; i < (M === 1 ? runs : Math.ceil(runs / 10)); i++)
    for (const [j, s] of sessions.entries()) {
      const t0 = performance.now();
      await s.run({ a });
      times[j]!.push(performance.now() - t0);
    }
  const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)] as number;
  const base = median(times[0]!);
  console.log(`M = ${M}, K = ${K}, N = ${N}, block ${BS}`);
  for (const [j, [name]] of forms.entries())
    console.log(
      `| ${name} | ${(median(times[j]!) * 1000).toFixed(0)} µs | ${(median(times[j]!) / base).toFixed(2)}× |`,
    );
}
