import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isQuantkitError } from '../src/errors.js';
import { makeAttribute } from '../src/io/onnx/attribute.js';
import { makeModel, makeNode } from '../src/io/onnx/build.js';
import {
  clone,
  create,
  decodeModel,
  encodeModel,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  type ModelProto,
  type TensorProto,
} from '../src/io/onnx/proto.js';
import { dtypeFromOnnx } from '../src/tensor/dtype.js';
import { planOnnxWrite, tensorFromProtoToWrite } from '../src/io/onnx/write.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { topologicalOrder } from '../src/graph/topology.js';
import { openOnnxFile } from '../src/node/model-file.js';

/*
 * The whole ONNX load path on hostile files: openOnnxFile → modelFromProto → load every
 * initializer → topologicalOrder. Seeded mutations of the .onnx bytes, of the data file, and of
 * the external_data keys, dims and graph structure; every failure must be a QuantkitError (a
 * RangeError from a huge allocation, a TypeError, a hang would all be crashes).
 * QK_FUZZ_ITERATIONS sets the count (npm run fuzz runs 200 000).
 */

const ITERATIONS = Number(process.env.QK_FUZZ_ITERATIONS ?? 3000);
// A single load of this ~20 KB model takes well under a millisecond; anything near this is a hang.
const HANG_MS = 2000;

function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const root = mkdtempSync(join(tmpdir(), 'qk-fuzz-'));
const dir = join(root, 'model');
const outside = join(root, 'outside');
mkdirSync(dir);
mkdirSync(outside);
writeFileSync(join(outside, 'secret.bin'), new Uint8Array(1 << 16).fill(7));
symlinkSync(join(outside, 'secret.bin'), join(dir, 'link_out'));
symlinkSync(outside, join(dir, 'dir_link'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function f32(n: number, seed: number): Float32Array {
  const r = prng(seed);
  return Float32Array.from({ length: n }, () => r() - 0.5);
}

/** A model with external data (w1, emb), inline biases, and weights in Constant nodes. */
function baseModel(): { proto: ModelProto; data: Uint8Array } {
  const m = makeModel({
    nodes: [
      makeNode({
        opType: 'Constant',
        inputs: [],
        outputs: ['w2'],
        name: 'c_w2',
        attributes: { value: makeAttribute('value', { dtype: 'float32', dims: [16, 8], data: f32(128, 3) }) },
      }),
      makeNode({
        opType: 'Constant',
        inputs: [],
        outputs: ['shape'],
        name: 'c_shape',
        attributes: { value_ints: [2, 8] },
      }),
      { opType: 'MatMul', inputs: ['x', 'w1'], outputs: ['h'], name: 'mm1' },
      { opType: 'Add', inputs: ['h', 'b1'], outputs: ['hb'], name: 'add1' },
      { opType: 'MatMul', inputs: ['hb', 'w2'], outputs: ['o'], name: 'mm2' },
      { opType: 'Reshape', inputs: ['o', 'shape'], outputs: ['y'], name: 'reshape' },
      { opType: 'Gather', inputs: ['emb', 'ids'], outputs: ['e'], name: 'gather' },
    ],
    inputs: [
      { name: 'x', dtype: 'float32', dims: [2, 32] },
      { name: 'ids', dtype: 'int64', dims: [3] },
    ],
    outputs: [
      { name: 'y', dtype: 'float32', dims: [2, 8] },
      { name: 'e', dtype: 'float32', dims: [3, 20] },
    ],
    initializers: {
      w1: { dtype: 'float32', dims: [32, 16], data: f32(512, 1) },
      b1: { dtype: 'float32', dims: [16], data: f32(16, 2) },
      emb: { dtype: 'float32', dims: [50, 20], data: f32(1000, 4) },
      q: { dtype: 'int4', dims: [7], data: Int8Array.of(1, -2, 3, -4, 5, -6, 7) },
    },
  });
  const plan = planOnnxWrite(
    m,
    m.graph!.initializer.map((p) => tensorFromProtoToWrite(p, dtypeFromOnnx(p.dataType))),
    { externalData: true, threshold: 256, dataLocation: 'model.onnx.data' },
  );
  const cat = (chunks: Iterable<Uint8Array>) => Buffer.concat([...chunks].map((c) => Buffer.from(c)));
  return { proto: decodeModel(cat(plan.modelChunks())), data: new Uint8Array(cat(plan.dataChunks())) };
}

const base = baseModel();
const baseBytes = encodeModel(base.proto);
const modelPath = join(dir, 'model.onnx');
const dataPath = join(dir, 'model.onnx.data');

/** The load path under test; returns how many initializers were loaded. */
function loadAll(path: string): number {
  const file = openOnnxFile(path);
  try {
    const model = modelFromProto(file.proto, { external: file.external, label: path });
    let n = 0;
    for (const init of model.graph.initializers.values()) {
      init.load();
      n++;
    }
    topologicalOrder(model.graph);
    return n;
  } finally {
    file.close();
  }
}

function load(proto: ModelProto, data: Uint8Array = base.data): unknown {
  writeFileSync(modelPath, encodeModel(proto));
  writeFileSync(dataPath, data);
  try {
    loadAll(modelPath);
    return undefined;
  } catch (e) {
    return e;
  }
}

const externals = (p: ModelProto) =>
  p.graph!.initializer.filter((t) => t.dataLocation === TensorProto_DataLocation.EXTERNAL);

function setKey(t: TensorProto, key: string, value: string): void {
  const e = t.externalData.find((kv) => kv.key === key);
  if (e) e.value = value;
  else t.externalData.push(create(StringStringEntryProtoSchema, { key, value }));
}

describe('ONNX load path on hostile files', () => {
  it('the unmutated model loads (w1, emb external; lifted Constants)', () => {
    writeFileSync(modelPath, baseBytes);
    writeFileSync(dataPath, base.data);
    expect(externals(base.proto).map((t) => t.name)).toEqual(['w1', 'emb']);
    expect(loadAll(modelPath)).toBe(6);
  });

  const named: [string, (p: ModelProto) => void, RegExp][] = [
    [
      "location '..'",
      (p) => setKey(externals(p)[0]!, 'location', '../outside/secret.bin'),
      /QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR/,
    ],
    [
      'absolute location',
      (p) => setKey(externals(p)[0]!, 'location', join(outside, 'secret.bin')),
      /QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR/,
    ],
    [
      'Windows drive',
      (p) => setKey(externals(p)[0]!, 'location', 'C:\\secret.bin'),
      /QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR/,
    ],
    [
      'symlink to a file outside',
      (p) => setKey(externals(p)[0]!, 'location', 'link_out'),
      /QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR/,
    ],
    [
      'symlinked folder outside',
      (p) => setKey(externals(p)[0]!, 'location', 'dir_link/secret.bin'),
      /QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR/,
    ],
    [
      'offset past the end',
      (p) => setKey(externals(p)[1]!, 'offset', String(1 << 20)),
      /QK_EXTERNAL_DATA_OUT_OF_BOUNDS/,
    ],
    ['offset not a number', (p) => setKey(externals(p)[1]!, 'offset', '-16'), /QK_EXTERNAL_DATA_OUT_OF_BOUNDS/],
    ['length lies', (p) => setKey(externals(p)[1]!, 'length', '99999999999'), /QK_TENSOR_DATA_LENGTH/],
    ['missing data file', (p) => setKey(externals(p)[0]!, 'location', 'nope.bin'), /QK_EXTERNAL_DATA_NOT_FOUND/],
    [
      'size bomb dims (external)',
      (p) => {
        externals(p)[0]!.dims = [1n << 20n, 1n << 20n];
        setKey(externals(p)[0]!, 'length', '');
        externals(p)[0]!.externalData.pop();
      },
      /QK_EXTERNAL_DATA_OUT_OF_BOUNDS|QK_TENSOR_BAD_DIMS/,
    ],
    [
      'size bomb dims (inline)',
      (p) => {
        p.graph!.initializer.find((t) => t.name === 'b1')!.dims = [1n << 40n, 1n << 20n];
      },
      /QK_TENSOR_BAD_DIMS|QK_TENSOR_DATA_LENGTH/,
    ],
    [
      'negative dim',
      (p) => {
        p.graph!.initializer.find((t) => t.name === 'b1')!.dims = [-16n];
      },
      /QK_TENSOR_BAD_DIMS/,
    ],
    [
      'raw_data length off by one',
      (p) => {
        p.graph!.initializer.find((t) => t.name === 'b1')!.dims = [17n];
      },
      /QK_TENSOR_DATA_LENGTH/,
    ],
    [
      'duplicate initializer',
      (p) => {
        p.graph!.initializer.push(clone(ModelProtoSchema, p).graph!.initializer[1]!);
      },
      /QK_GRAPH_DUPLICATE_NAME/,
    ],
    [
      'Constant output shadows an initializer',
      (p) => {
        p.graph!.node[0]!.output = ['b1'];
      },
      /QK_GRAPH_DUPLICATE_NAME/,
    ],
    [
      'cycle',
      (p) => {
        p.graph!.node.find((n) => n.name === 'mm1')!.input = ['y', 'w1'];
      },
      /QK_GRAPH_CYCLE/,
    ],
    [
      'missing value',
      (p) => {
        p.graph!.node.find((n) => n.name === 'add1')!.input = ['h', 'no_such'];
      },
      /QK_GRAPH_UNDEFINED_VALUE.*no_such/,
    ],
  ];
  for (const [what, mutate, code] of named) {
    it(`${what} is a named error`, () => {
      const p = clone(ModelProtoSchema, base.proto);
      mutate(p);
      const e = load(p);
      expect(isQuantkitError(e), String(e)).toBe(true);
      expect(`${(e as { code: string }).code}: ${(e as Error).message}`).toMatch(code);
    });
  }

  it(`${ITERATIONS} seeded mutations: only QuantkitErrors, no hangs`, () => {
    const rand = prng(20240607);
    const int = (n: number) => Math.floor(rand() * n);
    const hostileLocations = [
      '..',
      '../outside/secret.bin',
      '/etc/passwd',
      '\\\\server\\share\\x',
      'C:x',
      'link_out',
      'dir_link/secret.bin',
      'a/../../x',
      '',
      '.',
      'model.onnx',
      'model.onnx.data\0x',
      'nope',
      'dir_link',
      '..\\x',
    ];
    const hostileNumbers = [
      '0',
      '1',
      '-1',
      '4',
      '2147483648',
      '9007199254740993',
      '1e3',
      ' 12',
      '0x10',
      '',
      '18446744073709551616',
      String(base.data.length),
      String(base.data.length - 3),
    ];
    const structural: ((p: ModelProto) => void)[] = [
      (p) => {
        const t = externals(p)[int(2)];
        if (t) setKey(t, 'location', hostileLocations[int(hostileLocations.length)]!);
      },
      (p) => {
        const t = externals(p)[int(2)];
        if (t)
          setKey(t, ['offset', 'length', 'checksum', 'location'][int(4)]!, hostileNumbers[int(hostileNumbers.length)]!);
      },
      (p) => {
        const t = p.graph!.initializer[int(p.graph!.initializer.length)];
        if (t)
          t.dims = Array.from({ length: int(4) }, () => [0n, 1n, -1n, 1n << 31n, 1n << 62n, BigInt(int(100))][int(6)]!);
      },
      (p) => {
        const t = p.graph!.initializer[int(p.graph!.initializer.length)];
        if (t) t.dataType = int(30);
      },
      (p) => {
        const t = p.graph!.initializer[int(p.graph!.initializer.length)];
        if (t) t.dataLocation = int(3);
      },
      (p) => {
        const t = p.graph!.initializer[int(p.graph!.initializer.length)];
        if (t) t.name = ['', 'w1', 'x', 'h'][int(4)]!;
      },
      (p) => {
        const n = p.graph!.node[int(p.graph!.node.length)];
        if (n) n.input = n.input.map((v) => (rand() < 0.3 ? ['y', 'o', 'nope', '', 'w1'][int(5)]! : v));
      },
      (p) => {
        const n = p.graph!.node[int(p.graph!.node.length)];
        if (n) n.output = [['x', 'w1', 'h', '', 'y'][int(5)]!];
      },
      (p) => {
        const a = p.graph!.node[0]!.attribute[0];
        if (a?.t) a.t.dims = [BigInt(int(1 << 30)), 1n << BigInt(int(40))];
      },
      (p) => {
        const a = p.graph!.node[int(2)]!.attribute[0];
        if (a) a.type = int(16);
      },
      (p) => {
        p.graph!.node.reverse();
      },
      (p) => {
        p.irVersion = BigInt([0, -1, 1e6, 3][int(4)]!);
      },
    ];
    const counts = { ok: 0, named: 0 };
    const crashes: string[] = [];
    let slowest = 0;
    let lastData: Uint8Array | undefined;
    for (let i = 0; i < ITERATIONS; i++) {
      let bytes: Uint8Array = baseBytes;
      let data = base.data;
      const kind = int(4);
      let what = '';
      if (kind === 0) {
        // Bytes of the .onnx: flips, cuts, splices of random bytes.
        const b = Uint8Array.from(baseBytes);
        const edits = 1 + int(8);
        for (let k = 0; k < edits; k++) b[int(b.length)] = int(256);
        bytes = rand() < 0.3 ? b.subarray(0, int(b.length)) : b;
        what = `onnx bytes (${edits} edits)`;
      } else if (kind === 1) {
        // The data file: shortened, emptied or scribbled on.
        const cut = [0, int(base.data.length), base.data.length - 1, base.data.length][int(4)]!;
        data = Uint8Array.from(base.data.subarray(0, cut));
        for (let k = 0; k < 4; k++) if (data.length) data[int(data.length)] = int(256);
        what = `data file cut to ${cut}`;
      } else {
        const p = clone(ModelProtoSchema, base.proto);
        const steps = 1 + int(3);
        const picks: number[] = [];
        for (let k = 0; k < steps; k++) {
          const pick = int(structural.length);
          picks.push(pick);
          structural[pick]!(p);
        }
        bytes = encodeModel(p);
        what = `structural ${picks.join(',')}`;
      }
      writeFileSync(modelPath, bytes);
      if (data !== lastData) writeFileSync(dataPath, data);
      lastData = data;
      const t0 = performance.now();
      try {
        loadAll(modelPath);
        counts.ok++;
      } catch (e) {
        if (isQuantkitError(e)) counts.named++;
        else if (crashes.length < 10)
          crashes.push(`#${i} ${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        else crashes.push('');
      }
      slowest = Math.max(slowest, performance.now() - t0);
    }
    expect(crashes.filter(Boolean)).toEqual([]);
    expect(crashes.length).toBe(0);
    expect(slowest).toBeLessThan(HANG_MS);
    // Both outcomes occur, so the mutations reach past the parser.
    expect(counts.ok).toBeGreaterThan(ITERATIONS / 20);
    expect(counts.named).toBeGreaterThan(ITERATIONS / 4);
  });
});
