import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Tensor } from '../../src/tensor/tensor.js';
import { REPO } from './cli.js';

/**
 * ONNX Runtime as it runs on an x86 CPU with AVX2 but no VNNI, on any x86 host: node runs under
 * qemu-user with `-cpu Haswell`, so ORT's CPU dispatch picks its AVX2 integer kernels (the ones
 * whose u8×s8 pair sums saturate to int16). qemu-user is Debian's package `qemu-user`; .ci/run
 * installs it. This is the independent truth the interpreter's `avx2-u8s8` emulation is held to.
 */
export const QEMU = '/usr/bin/qemu-x86_64';

export function qemuAvailable(): boolean {
  return process.arch === 'x64' && existsSync(QEMU);
}

/** The child: loads the model, runs the feeds, prints the float/int outputs as JSON. */
const CHILD = `
const { createRequire } = require('node:module');
const ort = createRequire(process.argv[1] + '/package.json')('onnxruntime-node');
let text = '';
process.stdin.on('data', (c) => { text += c; });
process.stdin.on('end', async () => {
  const { model, feeds } = JSON.parse(text);
  const typed = { float32: Float32Array, uint8: Uint8Array, int8: Int8Array, int32: Int32Array, int64: BigInt64Array };
  const session = await ort.InferenceSession.create(Buffer.from(model, 'base64'), { graphOptimizationLevel: 'all' });
  const ortFeeds = {};
  for (const [name, f] of Object.entries(feeds)) {
    const bytes = Buffer.from(f.data, 'base64');
    const T = typed[f.dtype];
    const data = new T(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    ortFeeds[name] = new ort.Tensor(f.dtype, data, f.dims);
  }
  const out = await session.run(ortFeeds);
  const result = {};
  for (const n of session.outputNames) {
    const t = out[n];
    result[n] = { dtype: t.type, dims: t.dims, data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64') };
  }
  process.stdout.write(JSON.stringify(result));
});
`;

const TYPED: Record<string, (b: ArrayBuffer) => Tensor['data']> = {
  float32: (b) => new Float32Array(b),
  int32: (b) => new Int32Array(b),
  uint8: (b) => new Uint8Array(b),
  int8: (b) => new Int8Array(b),
};

/** Runs `model` in ORT on an emulated AVX2-only CPU; outputs by name. */
export function runOrtAvx2(model: Uint8Array, feeds: Record<string, Tensor>): Record<string, Tensor> {
  const encoded: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(feeds)) {
    const d = t.data as ArrayBufferView;
    encoded[name] = {
      dtype: t.dtype,
      dims: t.dims,
      data: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64'),
    };
  }
  const r = spawnSync(QEMU, ['-cpu', 'Haswell', process.execPath, '-e', CHILD, REPO], {
    input: JSON.stringify({ model: Buffer.from(model).toString('base64'), feeds: encoded }),
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: 300_000,
  });
  if (r.status !== 0)
    throw new Error(
      `ORT under qemu failed (${r.status}): ${r.stderr
        .split('\n')
        .filter((l) => !l.includes('TCG doesn'))
        .join('\n')}`,
    );
  const parsed = JSON.parse(r.stdout) as Record<string, { dtype: string; dims: number[]; data: string }>;
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(parsed)) {
    const bytes = Buffer.from(t.data, 'base64');
    const make = TYPED[t.dtype];
    if (!make) throw new Error(`output '${name}' of type ${t.dtype}`);
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    out[name] = { dtype: t.dtype as Tensor['dtype'], dims: t.dims, data: make(copy) } as Tensor;
  }
  return out;
}
