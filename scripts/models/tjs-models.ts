// The two transformers.js model folders quantkit's `transformersjs` command is tested on, built
// deterministically in TypeScript (no Python needed):
//
//  - char-lm: the shipped character LM (models/lm.onnx, its trained weights unchanged) rebuilt as
//    a transformers.js decoder with a key/value cache: inputs input_ids, attention_mask,
//    position_ids and past_key_values.{i}.key/value, outputs logits and present.{i}.key/value.
//    transformers.js feeds only the newest token after the first step, so without a cache the
//    model would see one character at a time (models/modeling_utils.js,
//    _update_model_kwargs_for_generation); the cache is what makes generation correct.
//  - tiny-bert: a BERT-like encoder (post-LayerNorm, 2 layers, d 64, 4 heads, MLP 256, the LM's
//    77-character vocabulary) with seeded random weights of unit gain (normal, std 1/sqrt(fan-in)),
//    so every layer moves the output. It is not trained: it tests that quantized files load and
//    run in transformers.js and how far their embeddings move, not a downstream accuracy.
//
// Both use the char-level tokenizer of models/lm-vocab.json (a BPE without merges: one token per
// character, unknown characters to id 0).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeModel, type NodeSpec, type ValueSpec } from '../../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../../src/io/onnx/proto.js';
import { tensorFromProto } from '../../src/io/onnx/tensor.js';
import { mulberry32 } from '../../src/quant/prng.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const FLOAT = 1;
const MASK_NEG = -1e4;

class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: Record<string, Tensor> = {};
  private count = 0;

  op(opType: string, inputs: readonly string[], attributes: NodeSpec['attributes'] = {}, output?: string): string {
    const out = output ?? `/${opType}_${this.count}`;
    this.nodes.push({ opType, inputs, outputs: [out], name: `${opType}_${this.count++}`, attributes });
    return out;
  }

  init(name: string, t: Tensor): string {
    this.initializers[name] = t;
    return name;
  }

  f32(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.init(name, { dtype: 'float32', dims, data: Float32Array.from(values) });
  }

  i64(name: string, values: readonly number[]): string {
    return this.init(name, {
      dtype: 'int64',
      dims: [values.length],
      data: BigInt64Array.from(values.map((v) => BigInt(v))),
    });
  }
}

interface AttentionWeights {
  readonly q: [string, string];
  readonly k: [string, string];
  readonly v: [string, string];
  readonly o: [string, string];
}

function linear(g: GraphBuilder, x: string, [w, b]: [string, string]): string {
  return g.op('Add', [g.op('MatMul', [x, w]), b]);
}

/** [b, s, heads·dh] → [b, heads, s, dh]. */
function splitHeads(g: GraphBuilder, x: string, heads: number, dh: number): string {
  const shape = `heads_shape_${heads}_${dh}`;
  if (!g.initializers[shape]) g.i64(shape, [0, 0, heads, dh]);
  return g.op('Transpose', [g.op('Reshape', [x, shape])], { perm: [0, 2, 1, 3] });
}

function mergeHeads(g: GraphBuilder, x: string, d: number): string {
  const shape = `merge_shape_${d}`;
  if (!g.initializers[shape]) g.i64(shape, [0, 0, d]);
  return g.op('Reshape', [g.op('Transpose', [x], { perm: [0, 2, 1, 3] }), shape]);
}

function gelu(g: GraphBuilder, x: string): string {
  if (!g.initializers['gelu_sqrt2']) {
    g.f32('gelu_sqrt2', [Math.SQRT2], []);
    g.f32('gelu_one', [1], []);
    g.f32('gelu_half', [0.5], []);
  }
  const erf = g.op('Erf', [g.op('Div', [x, 'gelu_sqrt2'])]);
  return g.op('Mul', [g.op('Mul', [x, g.op('Add', [erf, 'gelu_one'])]), 'gelu_half']);
}

/** Scaled dot-product attention over [b, h, ·, dh] heads, `bias` added to the scores. */
function attend(g: GraphBuilder, q: string, k: string, v: string, bias: readonly string[], dh: number): string {
  const scale = `attn_scale_${dh}`;
  if (!g.initializers[scale]) g.f32(scale, [1 / Math.sqrt(dh)], []);
  let scores = g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]), scale]);
  for (const b of bias) scores = g.op('Add', [scores, b]);
  return g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v]);
}

/** attention_mask [b, t] (1 keep, 0 padding) → additive [b, 1, 1, t]. */
function paddingBias(g: GraphBuilder): string {
  g.f32('pad_one', [1], []);
  g.f32('pad_neg', [MASK_NEG], []);
  g.i64('pad_axes', [1, 2]);
  const keep = g.op('Cast', ['attention_mask'], { to: FLOAT });
  return g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', ['pad_one', keep]), 'pad_neg']), 'pad_axes']);
}

// ---------------------------------------------------------------- char LM with a KV cache

const LM = { layers: 2, heads: 4, d: 128, context: 64 } as const;

/** models/lm.onnx's MatMul weights in graph order: q, k, v, o, fc1, fc2 per block, then the head. */
function lmWeights(lmOnnx: Uint8Array): Map<string, Tensor> {
  const proto = decodeModel(lmOnnx, 'models/lm.onnx');
  const graph = proto.graph;
  if (!graph) throw new Error('models/lm.onnx has no graph');
  const byName = new Map(graph.initializer.map((p) => [p.name, tensorFromProto(p, p.name)] as const));
  const out = new Map<string, Tensor>();
  for (const [name, t] of byName) if (!name.startsWith('onnx::MatMul')) out.set(name, t);
  const matmulWeights = graph.node.filter((n) => n.opType === 'MatMul' && n.input[1]?.startsWith('onnx::MatMul'));
  const roles = ['q', 'k', 'v', 'o', 'fc1', 'fc2'];
  if (matmulWeights.length !== LM.layers * roles.length + 1) throw new Error('unexpected models/lm.onnx layout');
  matmulWeights.forEach((n, i) => {
    const name = i === matmulWeights.length - 1 ? 'head.weight' : `blocks.${Math.floor(i / 6)}.${roles[i % 6]}.weight`;
    out.set(name, byName.get(n.input[1] as string) as Tensor);
  });
  return out;
}

export function charLmWithCache(lmOnnx: Uint8Array): Uint8Array {
  const w = lmWeights(lmOnnx);
  const g = new GraphBuilder();
  const { layers, heads, d } = LM;
  const dh = d / heads;
  const get = (name: string): string => {
    const t = w.get(name);
    if (!t) throw new Error(`models/lm.onnx lacks ${name}`);
    if (!g.initializers[name]) g.init(name, t);
    return name;
  };
  const rename = (from: string, to: string): string => {
    g.init(to, w.get(from) as Tensor);
    return to;
  };
  const lin = (i: number, role: string): [string, string] => {
    const prefix = role === 'fc1' || role === 'fc2' ? `blocks.${i}` : `blocks.${i}.attn`;
    return [rename(`blocks.${i}.${role}.weight`, `${prefix}.${role}.weight`), get(`${prefix}.${role}.bias`)];
  };

  let x = g.op('Add', [g.op('Gather', [get('tok.weight'), 'input_ids']), g.op('Gather', [get('pos'), 'position_ids'])]);
  // Causal bias for the new queries (absolute positions past … t−1) against all t keys: rows
  // past … t−1, columns 0 … t−1 of the 64×64 table the LM was trained with.
  const pad = paddingBias(g);
  g.i64('zero1', [0]);
  g.i64('mask_axes', [0, 1]);
  const s = g.op('Shape', ['input_ids'], { start: 1, end: 2 });
  let causal = '';

  for (let i = 0; i < layers; i++) {
    const ln = (name: string, v: string) =>
      g.op('LayerNormalization', [v, get(`blocks.${i}.${name}.weight`), get(`blocks.${i}.${name}.bias`)], {
        axis: -1,
        epsilon: 1e-5,
      });
    const h = ln('ln1', x);
    const aw: AttentionWeights = { q: lin(i, 'q'), k: lin(i, 'k'), v: lin(i, 'v'), o: lin(i, 'o') };
    const q = splitHeads(g, linear(g, h, aw.q), heads, dh);
    const kNew = splitHeads(g, linear(g, h, aw.k), heads, dh);
    const vNew = splitHeads(g, linear(g, h, aw.v), heads, dh);
    const k = g.op('Concat', [`past_key_values.${i}.key`, kNew], { axis: 2 }, `present.${i}.key`);
    const v = g.op('Concat', [`past_key_values.${i}.value`, vNew], { axis: 2 }, `present.${i}.value`);
    if (i === 0) {
      const t = g.op('Shape', [k], { start: 2, end: 3 });
      const past = g.op('Sub', [t, s]);
      causal = g.op('Slice', [
        get('blocks.0.attn.mask'),
        g.op('Concat', [past, 'zero1'], { axis: 0 }),
        g.op('Concat', [t, t], { axis: 0 }),
        'mask_axes',
      ]);
    }
    const ctx = mergeHeads(g, attend(g, q, k, v, [causal, pad], dh), d);
    x = g.op('Add', [x, linear(g, ctx, aw.o)]);
    const f = gelu(g, linear(g, ln('ln2', x), lin(i, 'fc1')));
    x = g.op('Add', [x, linear(g, f, lin(i, 'fc2'))]);
  }
  const hf = g.op('LayerNormalization', [x, get('ln_f.weight'), get('ln_f.bias')], { axis: -1, epsilon: 1e-5 });
  g.op('Add', [g.op('MatMul', [hf, get('head.weight')]), get('head.bias')], {}, 'logits');

  const vocab = (w.get('tok.weight') as Tensor).dims[0] as number;
  const kv = (dir: 'past_key_values' | 'present', len: string): ValueSpec[] =>
    Array.from({ length: layers }, (_, i) =>
      ['key', 'value'].map((kind) => ({
        name: `${dir}.${i}.${kind}`,
        dtype: 'float32' as const,
        dims: ['batch_size', heads, len, dh],
      })),
    ).flat();
  return encodeModel(
    makeModel({
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: [
        { name: 'input_ids', dtype: 'int64', dims: ['batch_size', 'sequence_length'] },
        { name: 'attention_mask', dtype: 'int64', dims: ['batch_size', 'total_sequence_length'] },
        { name: 'position_ids', dtype: 'int64', dims: ['batch_size', 'sequence_length'] },
        ...kv('past_key_values', 'past_sequence_length'),
      ],
      outputs: [
        { name: 'logits', dtype: 'float32', dims: ['batch_size', 'sequence_length', vocab] },
        ...kv('present', 'total_sequence_length'),
      ],
      opsets: { '': 17 },
      irVersion: 8,
      graphName: 'char_lm',
    }),
  );
}

export function charLmConfig(vocab: number): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: vocab,
    n_positions: LM.context,
    n_embd: LM.d,
    n_head: LM.heads,
    n_layer: LM.layers,
    bos_token_id: 0,
    eos_token_id: 0,
    'transformers.js_config': { dtype: 'fp32' },
  };
}

// ---------------------------------------------------------------- tiny BERT-like encoder

const BERT = { layers: 2, heads: 4, d: 64, mlp: 256, positions: 64, seed: 17 } as const;

export function tinyBert(vocab: number): Uint8Array {
  const rand = mulberry32(BERT.seed);
  const normal = (): number => {
    // Box–Muller on the seeded uniform stream.
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
  const g = new GraphBuilder();
  const { layers, heads, d, mlp, positions } = BERT;
  const dh = d / heads;
  const randn = (name: string, dims: number[], std: number): string =>
    g.f32(
      name,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => normal() * std),
      dims,
    );
  const lin = (name: string, k: number, n: number): [string, string] => [
    randn(`${name}.weight`, [k, n], 1 / Math.sqrt(k)),
    randn(`${name}.bias`, [n], 0.02),
  ];
  const ln = (name: string, x: string) => {
    randn(`${name}.weight`, [d], 0.1);
    // LayerNorm gains near 1, as trained BERTs have them.
    const gamma = g.initializers[`${name}.weight`]?.data as Float32Array;
    for (let i = 0; i < gamma.length; i++) gamma[i] = 1 + (gamma[i] as number);
    randn(`${name}.bias`, [d], 0.02);
    return g.op('LayerNormalization', [x, `${name}.weight`, `${name}.bias`], { axis: -1, epsilon: 1e-12 });
  };

  const word = randn('embeddings.word_embeddings.weight', [vocab, d], 1);
  const pos = randn('embeddings.position_embeddings.weight', [positions, d], 0.5);
  const type = randn('embeddings.token_type_embeddings.weight', [2, d], 0.5);
  g.i64('zero1', [0]);
  g.i64('axis0', [0]);
  const s = g.op('Shape', ['input_ids'], { start: 1, end: 2 });
  const posRows = g.op('Slice', [pos, 'zero1', s, 'axis0']);
  const emb = g.op('Add', [
    g.op('Add', [g.op('Gather', [word, 'input_ids']), posRows]),
    g.op('Gather', [type, 'token_type_ids']),
  ]);
  let x = ln('embeddings.LayerNorm', emb);
  const pad = paddingBias(g);
  for (let i = 0; i < layers; i++) {
    const p = `encoder.layer.${i}`;
    const q = splitHeads(g, linear(g, x, lin(`${p}.attention.self.query`, d, d)), heads, dh);
    const k = splitHeads(g, linear(g, x, lin(`${p}.attention.self.key`, d, d)), heads, dh);
    const v = splitHeads(g, linear(g, x, lin(`${p}.attention.self.value`, d, d)), heads, dh);
    const ctx = mergeHeads(g, attend(g, q, k, v, [pad], dh), d);
    x = ln(`${p}.attention.output.LayerNorm`, g.op('Add', [x, linear(g, ctx, lin(`${p}.attention.output.dense`, d, d))]));
    const f = gelu(g, linear(g, x, lin(`${p}.intermediate.dense`, d, mlp)));
    x = ln(`${p}.output.LayerNorm`, g.op('Add', [x, linear(g, f, lin(`${p}.output.dense`, mlp, d))]));
  }
  g.op('Identity', [x], {}, 'last_hidden_state');
  return encodeModel(
    makeModel({
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: ['input_ids', 'attention_mask', 'token_type_ids'].map((name) => ({
        name,
        dtype: 'int64' as const,
        dims: ['batch_size', 'sequence_length'],
      })),
      outputs: [{ name: 'last_hidden_state', dtype: 'float32', dims: ['batch_size', 'sequence_length', d] }],
      opsets: { '': 17 },
      irVersion: 8,
      graphName: 'tiny_bert',
    }),
  );
}

export function tinyBertConfig(vocab: number): Record<string, unknown> {
  return {
    architectures: ['BertModel'],
    model_type: 'bert',
    vocab_size: vocab,
    hidden_size: BERT.d,
    num_attention_heads: BERT.heads,
    num_hidden_layers: BERT.layers,
    intermediate_size: BERT.mlp,
    max_position_embeddings: BERT.positions,
    type_vocab_size: 2,
    hidden_act: 'gelu',
    layer_norm_eps: 1e-12,
  };
}

// ---------------------------------------------------------------- tokenizer

/** models/lm-vocab.json ({ id: char }) as a tokenizer.json: a merge-free BPE, one token per character. */
export function charTokenizer(vocabJson: string): Record<string, unknown> {
  const byId = JSON.parse(vocabJson) as Record<string, string>;
  const vocab: Record<string, number> = {};
  for (const [id, ch] of Object.entries(byId)) vocab[ch] = Number(id);
  const unk = byId['0'] as string;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: unk, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Fuse' },
    model: { type: 'BPE', dropout: null, unk_token: unk, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}

export function charTokenizerConfig(vocabJson: string): Record<string, unknown> {
  const unk = (JSON.parse(vocabJson) as Record<string, string>)['0'];
  return { tokenizer_class: 'PreTrainedTokenizer', unk_token: unk, model_max_length: LM.context };
}

export function readVocab(path: string): { json: string; size: number } {
  const json = readFileSync(path, 'utf8');
  return { json, size: Object.keys(JSON.parse(json) as object).length };
}

// ---------------------------------------------------------------- folders

export type TjsModelName = 'char-lm' | 'tiny-bert';

/** The files of a transformers.js model folder, by path relative to it. */
export function tjsModelFiles(name: TjsModelName, repoRoot: string): Map<string, Uint8Array | string> {
  const vocab = readVocab(join(repoRoot, 'models', 'lm-vocab.json'));
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  const files = new Map<string, Uint8Array | string>();
  files.set('tokenizer.json', json(charTokenizer(vocab.json)));
  files.set('tokenizer_config.json', json(charTokenizerConfig(vocab.json)));
  if (name === 'char-lm') {
    files.set('config.json', json(charLmConfig(vocab.size)));
    files.set('generation_config.json', json({ bos_token_id: 0, eos_token_id: 0, do_sample: false }));
    files.set('onnx/model.onnx', charLmWithCache(readFileSync(join(repoRoot, 'models', 'lm.onnx'))));
  } else {
    files.set('config.json', json(tinyBertConfig(vocab.size)));
    files.set('onnx/model.onnx', tinyBert(vocab.size));
  }
  return files;
}

export function writeTjsModel(name: TjsModelName, repoRoot: string, dir: string, skip: readonly string[] = []): void {
  for (const [rel, content] of tjsModelFiles(name, repoRoot)) {
    if (skip.includes(rel)) continue;
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
}
