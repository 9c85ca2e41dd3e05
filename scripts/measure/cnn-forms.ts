// Graph forms of the int8-static digits CNN tried for ONNX Runtime latency, against fp32 in one
// interleaved run (README "Speed of the models we write", the CNN rows of the forms not taken).
// `npx tsx scripts/measure/cnn-forms.ts` prints the latency ratios at batch 1 and 32;
// `--profile` prints instead ORT's per-node times (session profiling, medians of 500 runs) at
// batch 32 for fp32 and the `--min-conv-reduction 16` form. Every form's logits are checked
// equal to the form it rewrites on the test images first.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parseCalibMethod } from '../../src/calib/method.js';
import { quantizeStatic } from '../../src/flows/calibrate-node.js';
import { ortLatencyRatio } from '../../src/flows/model-latency-node.js';
import { modelFromProto } from '../../src/graph/from-onnx.js';
import { modelToProto } from '../../src/graph/to-onnx.js';
import { makeNode } from '../../src/io/onnx/build.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../../src/io/onnx/proto.js';
import { tensorFromProto, tensorToProto } from '../../src/io/onnx/tensor.js';
import { makeTensor, type Tensor } from '../../src/tensor/tensor.js';

type ModelProto = ReturnType<typeof decodeModel>;
const root = new URL('../../', import.meta.url);
const read = (f: string) => readFileSync(new URL(`models/${f}`, root));
const fp32 = read('cnn.onnx');
const images = readNpy(read('cnn-test-x.npy'));
const calib = readNpy(read('cnn-calib-x.npy'));

async function int8(minConvReduction?: number): Promise<Uint8Array> {
  const m = modelFromProto(decodeModel(fp32));
  await quantizeStatic(m, new Map([['input', calib]]), { method: parseCalibMethod('minmax'), minConvReduction });
  return encodeModel(modelToProto(m));
}

function addInit(m: ModelProto, name: string, t: Tensor): void {
  const p = tensorToProto(t);
  p.name = name;
  m.graph!.initializer.push(p);
}

/** The first conv's DequantizeLinear on the quantized input gets `nodes` (from its input to `out`) before it. */
function beforeConv1Input(m: ModelProto, make: (input: string) => ReturnType<typeof makeNode>[], out: string): void {
  const g = m.graph!;
  const conv = g.node.find((n) => n.opType === 'Conv')!;
  const dq = g.node.find((n) => n.output[0] === conv.input[0])!;
  g.node.splice(g.node.indexOf(dq), 0, ...make(dq.input[0]!));
  dq.input[0] = out;
}

/** conv1 (one input channel) as a depthwise conv (group 16) on the input replicated 16× in NHWC. */
function depthwiseConv1(bytes: Uint8Array): Uint8Array {
  const m = decodeModel(bytes);
  addInit(m, 'dw_nhwc_shape', makeTensor('int64', [4], BigInt64Array.of(-1n, 8n, 8n, 1n)));
  addInit(m, 'dw_expand_shape', makeTensor('int64', [4], BigInt64Array.of(1n, 1n, 1n, 16n)));
  beforeConv1Input(
    m,
    (x) => [
      makeNode({ opType: 'Reshape', inputs: [x, 'dw_nhwc_shape'], outputs: ['dw_nhwc'] }),
      makeNode({ opType: 'Expand', inputs: ['dw_nhwc', 'dw_expand_shape'], outputs: ['dw_rep'] }),
      makeNode({ opType: 'Transpose', inputs: ['dw_rep'], outputs: ['dw_nchw'], attributes: { perm: [0, 3, 1, 2] } }),
    ],
    'dw_nchw',
  );
  m.graph!.node.find((n) => n.opType === 'Conv')!.attribute.find((a) => a.name === 'group')!.i = 16n;
  return encodeModel(m);
}

/** conv1's quantized input padded to 4 channels (the zero point; zero weights) in NHWC. */
function paddedConv1(bytes: Uint8Array): Uint8Array {
  const m = decodeModel(bytes);
  const g = m.graph!;
  const conv = g.node.find((n) => n.opType === 'Conv')!;
  const zp = g.node.find((n) => n.output[0] === conv.input[0])!.input[2]!;
  addInit(m, 'pc_nhwc_shape', makeTensor('int64', [4], BigInt64Array.of(-1n, 8n, 8n, 1n)));
  addInit(m, 'pc_pads', makeTensor('int64', [8], BigInt64Array.of(0n, 0n, 0n, 0n, 0n, 0n, 0n, 3n)));
  beforeConv1Input(
    m,
    (x) => [
      makeNode({ opType: 'Reshape', inputs: [x, 'pc_nhwc_shape'], outputs: ['pc_nhwc'] }),
      makeNode({ opType: 'Pad', inputs: ['pc_nhwc', 'pc_pads', zp], outputs: ['pc_pad'] }),
      makeNode({ opType: 'Transpose', inputs: ['pc_pad'], outputs: ['pc_nchw'], attributes: { perm: [0, 3, 1, 2] } }),
    ],
    'pc_nchw',
  );
  const wName = g.node.find((n) => n.output[0] === conv.input[1])!.input[0]!;
  const w = g.initializer.find((t) => t.name === wName)!;
  const src = tensorFromProto(w).data as Int8Array;
  const out = new Int8Array(16 * 4 * 9);
  for (let o = 0; o < 16; o++) for (let k = 0; k < 9; k++) out[o * 36 + k] = src[o * 9 + k] as number;
  const p = tensorToProto(makeTensor('int8', [16, 4, 3, 3], out));
  p.name = wName;
  g.initializer[g.initializer.indexOf(w)] = p;
  return encodeModel(m);
}

/** The pooled u8 activations flattened in NHWC order (a Transpose ORT cancels), fc1's columns permuted. */
function nhwcFlatten(bytes: Uint8Array): Uint8Array {
  const m = decodeModel(bytes);
  const g = m.graph!;
  const flatten = g.node.find((n) => n.opType === 'Flatten')!;
  const dq = g.node.find((n) => n.output[0] === flatten.input[0])!;
  g.node.splice(
    g.node.indexOf(dq),
    0,
    makeNode({ opType: 'Transpose', inputs: [dq.input[0]!], outputs: ['p_nhwc'], attributes: { perm: [0, 2, 3, 1] } }),
  );
  dq.input[0] = 'p_nhwc';
  const w = g.initializer.find((t) => t.name === 'fc1.weight_quantized')!;
  const src = tensorFromProto(w).data as Int8Array;
  const out = new Int8Array(src.length);
  // column c·16 + s (NCHW, 32 channels of 4 × 4) → s·32 + c (NHWC)
  for (let o = 0; o < 64; o++)
    for (let c = 0; c < 32; c++)
      for (let s = 0; s < 16; s++) out[o * 512 + s * 32 + c] = src[o * 512 + c * 16 + s] as number;
  const p = tensorToProto(makeTensor('int8', [64, 512], out));
  p.name = w.name;
  g.initializer[g.initializer.indexOf(w)] = p;
  return encodeModel(m);
}

const batch = (n: number) =>
  new Map<string, Tensor>([
    ['input', { dtype: 'float32', dims: [n, 1, 8, 8], data: (images.data as Float32Array).slice(0, n * 64) }],
  ]);

async function logits(bytes: Uint8Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const n = images.dims[0] as number;
  const out = await s.run({ input: new ort.Tensor('float32', images.data as Float32Array, [n, 1, 8, 8]) });
  await s.release();
  return out[s.outputNames[0]!]!.data as Float32Array;
}

async function profile(name: string, bytes: Uint8Array, n: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qk-prof-'));
  try {
    const s = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      enableProfiling: true,
      profileFilePrefix: join(dir, 'p'),
    });
    const feeds = { input: new ort.Tensor('float32', batch(n).get('input')!.data as Float32Array, [n, 1, 8, 8]) };
    for (let i = 0; i < 500; i++) await s.run(feeds);
    s.endProfiling();
    await s.release();
    const events = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]!), 'utf8')) as {
      cat: string;
      name: string;
      dur: number;
      args?: { op_name?: string };
    }[];
    const per = new Map<string, { op: string; t: number[] }>();
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const key = e.name.slice(0, -'_kernel_time'.length);
      const p = per.get(key) ?? { op: e.args?.op_name ?? '', t: [] };
      p.t.push(e.dur);
      per.set(key, p);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
    let total = 0;
    console.log(`${name}, batch ${n}, per node (µs, median):`);
    for (const [key, p] of per) {
      total += median(p.t);
      console.log(`  ${String(median(p.t)).padStart(5)}  ${p.op.padEnd(16)} ${key}`);
    }
    console.log(`  ${total} µs of node time`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const int8Default = await int8();
const fast = await int8(16);
if (process.argv.includes('--profile')) {
  await profile('fp32', fp32, 32);
  await profile('int8-static --min-conv-reduction 16', fast, 32);
} else {
  const forms: [string, Uint8Array, Uint8Array][] = [
    ['int8-static (default)', int8Default, int8Default],
    ['--min-conv-reduction 16', fast, fast],
    ['--min-conv-reduction 16, NHWC flatten', nhwcFlatten(fast), fast],
    ['conv1 depthwise on the input replicated 16x', depthwiseConv1(int8Default), int8Default],
    ['conv1 on the input padded to 4 channels in NHWC', paddedConv1(int8Default), int8Default],
  ];
  for (const [name, bytes, from] of forms) {
    const [a, b] = [await logits(bytes), await logits(from)];
    if (a.some((v, i) => v !== b[i])) throw new Error(`${name}: logits differ from the form it rewrites`);
  }
  for (const n of [1, 32])
    for (const [name, bytes] of forms) {
      const r = await ortLatencyRatio(fp32, bytes, batch(n), { rounds: n === 1 ? 2000 : 600 });
      console.log(
        `batch ${n} | ${name} | ${r.ratio.toFixed(2)}× (CPU ${r.cpuRatio.toFixed(2)}×) | fp32 ${(r.baselineMs * 1000).toFixed(1)} µs`,
      );
    }
}
