// The low-bit comparison on every LM: RTN, the scale search, HQQ, GPTQ, AWQ and AWQ+GPTQ at q4
// (block 32 and 128), nf4, 3- and 2-bit; MatMulNBits accuracy_level 4; mixed precision at 3.5 /
// 4.25 / 5 bits per weight. Columns: true bits per linear weight (codes, scales and zero points
// of the quantized MatMul/Gemm weights over their parameter count), perplexity change against
// fp32 on the held-out windows, quantize time, and ORT latency of one batch (16 × 64 tokens)
// relative to fp32 measured in the same run.
//
//   npx tsx scripts/measure/low-bit-table.ts [lm | lm-gemm-tied | lm-constants | lm-big ...]
//   (env: ROWS=<label prefixes, comma-separated>, NO_MIXED=1, FULL=1 all rows on lm-big,
//   AWQ_OBJECTIVE=block)
//
// Environment: ROWS=prefix,… (only those single-scheme rows; ROWS=none for none), NO_MIXED=1, and for
// the mixed rows MIXED_AWQ=0 (no AWQ-scaled base), MIXED_CANDIDATES=q4:128+gptq,…, MIXED_ROUNDS=n
// (refinement rounds, default 1), MIXED_CROSSFIT=1 (score on the other half of the calibration
// windows), CALIB=n (n calibration windows of the LM's training text for every row, made by
// scripts/models/make_calib_windows.py --windows n), EVAL=n (n held-out evaluation windows, made by
// make_calib_windows.py --eval n; the standard errors then shrink by √(n/64)), MIXED_GUARD=1 (the
// held-out guard against single schemes), MIXED_REFIT=0 (each plan written, and fitted in the guard,
// assembled from the candidates' runs instead of refitted by one GPTQ pass over it), MIXED_PLAN_ROWS=1
// (a row for the plan too where the guard writes a single scheme), MIXED_LOSS=task (the candidates,
// plans and guard scored by the rise of the next-token cross-entropy instead of the KL); TAG=-x names the JSON and the kept
// mixed models. README's lm-big mixed rows:
//   MIXED_ROUNDS=0 MIXED_CANDIDATES=q2-asym:64+gptq,q4:128+gptq,q4:128+clip+gptq,q4:64+gptq,q4:32+gptq,q8-block:128,fp32
//
// lm-big (4 layers, d = 256) is made on first use by scripts/models/make_models.py --lm-size big
// into .cache/models/ (git-ignored; ~9 MB, a few minutes to an hour of training on a busy
// 2-core machine) and reused afterwards.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { quantizeModelBytesAwq } from '../../src/flows/awq-node.js';
import { lmPerplexity, openSession, perplexityDifference } from '../../src/flows/evaluate-node.js';
import { quantizeModelBytesGptq } from '../../src/flows/gptq.js';
import {
  averageSensitivity,
  splitCalibration,
  type ScoringFold,
  AWQ_CANDIDATES,
  DEFAULT_CANDIDATES,
  measureSensitivity,
  writtenModelBytes,
  parseCandidate,
  prepareMixed,
  refinePlan,
  guardCandidates,
  trueLinearBits,
  type GuardEntry,
} from '../../src/flows/mixed.js';
import { guardPlan, nodeMixedHooks, singleFormModel, singleForms } from '../../src/flows/mixed-file.js';
import { quantizeModelBytes } from '../../src/flows/quantize.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { nodeRuntime } from '../../src/node/ort-runtime.js';
import type { SchemeName, WeightOnlyOptions } from '../../src/passes/weight-only/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const root = new URL('../../', import.meta.url).pathname;
const npy = (p: string) => readNpy(readFileSync(root + p));

function ensureBigLm(): void {
  if (existsSync(`${root}.cache/models/lm-big.onnx`)) return;
  mkdirSync(`${root}.cache/models`, { recursive: true });
  execFileSync(
    '/usr/bin/python3',
    ['scripts/models/make_models.py', '--only', 'lm', '--lm-size', 'big', '--out', '.cache/models'],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
}

const LMS: Record<string, { file: string; eval: string; calib: string; quick?: boolean }> = {
  lm: { file: 'models/lm.onnx', eval: 'models/lm-eval.npy', calib: 'models/lm-calib.npy' },
  'lm-gemm-tied': {
    file: 'test/fixtures/variants/lm-gemm-tied.onnx',
    eval: 'test/fixtures/variants/lm-gemm-tied-eval.npy',
    calib: 'test/fixtures/variants/lm-gemm-tied-calib.npy',
  },
  'lm-constants': {
    file: 'test/fixtures/variants/lm-constants.onnx',
    eval: 'models/lm-eval.npy',
    calib: 'models/lm-calib.npy',
  },
  'lm-big': {
    file: '.cache/models/lm-big.onnx',
    eval: '.cache/models/lm-big-eval.npy',
    calib: '.cache/models/lm-big-calib.npy',
    quick: true,
  },
};

type Method = 'rtn' | 'search' | 'hqq' | 'gptq' | 'awq' | 'awq+gptq' | 'acc4' | 'spqr 0.5%';
interface Row {
  readonly label: string;
  readonly scheme: SchemeName;
  readonly blockSize: number;
  readonly method: Method;
}

const METHODS_FULL: Method[] = ['rtn', 'search', 'hqq', 'gptq', 'awq', 'awq+gptq'];
function rowsFor(quick: boolean): Row[] {
  const rows: Row[] = [];
  const add = (scheme: SchemeName, blockSize: number, methods: Method[]) => {
    for (const method of methods) rows.push({ label: `${scheme} g${blockSize} ${method}`, scheme, blockSize, method });
  };
  if (quick) {
    // The bigger LM: the rows that decide the comparison, within an hour on a busy 2-core machine.
    // Cheapest and most telling first (a run cut short still has them).
    add('q4', 128, ['rtn', 'search', 'hqq', 'gptq']);
    add('q4', 32, ['search', 'acc4']);
    add('q4-k', 32, ['search']);
    add('q3-asym', 32, ['search', 'gptq']);
    add('q2-asym', 32, ['search', 'gptq']);
    add('q3-asym', 16, ['spqr 0.5%']);
    add('q4', 128, ['awq', 'awq+gptq']);
    add('q3-spqr', 16, ['search', 'gptq']);
    add('q3-spqr', 32, ['search', 'gptq']);
    add('q3-asym', 128, ['search', 'gptq']);
    add('q4-k', 32, ['gptq']);
    return rows;
  }
  add('q4', 32, [...METHODS_FULL, 'acc4']);
  add('q4', 128, METHODS_FULL);
  add('q4-k', 32, ['search', 'awq']);
  add('nf4', 64, ['search', 'gptq', 'awq', 'awq+gptq']);
  add('q3-asym', 32, ['rtn', 'search', 'hqq', 'gptq', 'awq', 'awq+gptq']);
  add('q3-asym', 16, ['spqr 0.5%']);
  add('q2-asym', 32, ['rtn', 'search', 'hqq', 'gptq', 'awq', 'awq+gptq']);
  // SpQR (q3-spqr: data-free, then in GPTQ order), q3-asym near its size, q4-k with GPTQ.
  add('q3-spqr', 16, ['search', 'gptq']);
  add('q3-spqr', 32, ['search', 'gptq']);
  add('q3-asym', 128, ['search', 'gptq']);
  add('q4-k', 32, ['gptq']);
  return rows;
}

const bitsPerWeight = trueLinearBits;

async function latencyMs(bytes: Uint8Array, windows: Tensor, runs = 5): Promise<number> {
  const session = await openSession(bytes);
  const [count, len] = windows.dims as [number, number];
  const b = Math.min(16, count);
  const T = len - 1;
  const ids = windows.data as BigInt64Array;
  const input = new BigInt64Array(b * T);
  for (let i = 0; i < b; i++) input.set(ids.subarray(i * len, i * len + T), i * T);
  const feeds = { [session.inputNames[0] as string]: nodeRuntime.tensor('int64', input, [b, T]) };
  await session.run(feeds);
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  await session.release();
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)] as number;
}

async function quantizeRow(bytes: Uint8Array, row: Row, calib: Map<string, Tensor>) {
  const o: WeightOnlyOptions = { scheme: row.scheme, blockSize: row.blockSize };
  switch (row.method) {
    case 'rtn':
      return quantizeModelBytes(bytes, { ...o, rtn: true });
    case 'search':
      return quantizeModelBytes(bytes, o);
    case 'hqq':
      return quantizeModelBytes(bytes, { ...o, hqq: true });
    case 'spqr 0.5%':
      return quantizeModelBytes(bytes, { ...o, outliers: 0.005 });
    case 'acc4':
      return quantizeModelBytes(bytes, { ...o, accuracyLevel: 4 });
    case 'gptq':
      return quantizeModelBytesGptq(bytes, o, calib);
    case 'awq':
      return quantizeModelBytesAwq(bytes, o, calib, { objective: awqObjective });
    case 'awq+gptq':
      return quantizeModelBytesAwq(bytes, o, calib, { gptq: true, objective: awqObjective });
  }
}

// AWQ_OBJECTIVE=block: AWQ's scale search scored on the output of the block each group feeds.
const awqObjective = process.env['AWQ_OBJECTIVE'] === 'block' ? 'block' : 'linear';
const names =
  process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['lm', 'lm-gemm-tied', 'lm-constants', 'lm-big'];
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)} %`;
for (const name of names) {
  const m = LMS[name];
  if (!m) throw new Error(`unknown LM ${name}`);
  if (name === 'lm-big') ensureBigLm();
  const bytes = readFileSync(root + m.file);
  // EVAL=n: n windows of the held-out text (make_calib_windows.py --eval n) instead of the committed
  // 64 (32 for lm-gemm-tied): the paired standard errors printed at the end say what that resolves.
  const evalCount = process.env['EVAL'];
  const windows = npy(
    evalCount ? `.cache/calib/${name === 'lm-gemm-tied' ? 'lm-gemm-tied' : 'lm'}-eval-${evalCount}.npy` : m.eval,
  );
  // CALIB=n: n windows of the LM's training text (scripts/models/make_calib_windows.py --windows n)
  // instead of the committed 32 (16 for lm-gemm-tied), for every row alike.
  const more = process.env['CALIB'];
  const calibPath = more
    ? `.cache/calib/${name === 'lm-gemm-tied' ? 'lm-gemm-tied' : 'lm'}-calib-${more}.npy`
    : m.calib;
  const calib = new Map([['input_ids', npy(calibPath)]]);
  const baseResult = await lmPerplexity(bytes, windows);
  const base = baseResult.perplexity;
  const baseMs = await latencyMs(bytes, windows);
  const out: {
    label: string;
    bits: number;
    ppl: number;
    change: number;
    standardError: number;
    seconds: number;
    latency: number;
    windowNll: number[];
  }[] = [];
  const record = async (label: string, q: Uint8Array, bits: number, seconds: number) => {
    const result = await lmPerplexity(q, windows);
    const ppl = result.perplexity;
    const latency = (await latencyMs(q, windows)) / (await latencyMs(bytes, windows));
    const { standardError } = perplexityDifference(result, baseResult);
    out.push({
      label,
      bits,
      ppl,
      change: ppl / base - 1,
      standardError,
      seconds,
      latency,
      windowNll: [...result.windowNll],
    });
    console.log(
      `| ${name} | ${label} | ${bits.toFixed(2)} | ${pct(ppl / base - 1)} | ${seconds.toFixed(1)} s | ${latency.toFixed(2)}× |`,
    );
  };
  console.log(
    `\n${name}: fp32 perplexity ${base.toFixed(4)} on ${baseResult.tokens} tokens (${windows.dims[0]} windows), batch latency ${baseMs.toFixed(1)} ms`,
  );
  console.log('| LM | method | bits/weight | perplexity | quantize time | latency vs fp32 |');
  console.log('|---|---|---|---|---|---|');
  const quantizedRows = async () => {
    const only = process.env['ROWS']?.split(',');
    for (const row of rowsFor((m.quick ?? false) && !process.env['FULL'])) {
      if (only && !only.some((o) => row.label.startsWith(o))) continue;
      const t0 = performance.now();
      const q = await quantizeRow(bytes, row, calib);
      const seconds = (performance.now() - t0) / 1000;
      await record(row.label, q.bytes, bitsPerWeight(q.report.layers), seconds);
    }
  };
  const mixedRows = async () => {
    // Mixed precision: GPTQ per candidate and one sensitivity measurement on the calibration
    // windows, then per budget the knapsack refined on the joint model (flows/mixed.ts refinePlan).
    // The reported perplexity is on the held-out windows, which nothing here has seen.
    const awq = process.env['MIXED_AWQ'] !== '0';
    const refit = process.env['MIXED_REFIT'] !== '0';
    const cands = (
      process.env['MIXED_CANDIDATES']?.split(',') ?? [...DEFAULT_CANDIDATES, ...(awq ? AWQ_CANDIDATES : [])]
    ).map(parseCandidate);
    const objective = { loss: process.env['MIXED_LOSS'] === 'task' ? 'task' : 'kl' } as const;
    const t0 = performance.now();
    const setup = await prepareMixed(bytes, cands, {}, nodeMixedHooks(calib, { awq }));
    // MIXED_CROSSFIT=1: GPTQ/AWQ fitted on each half of the calibration windows, scored on the other.
    const folds: ScoringFold[] = [];
    if (process.env['MIXED_CROSSFIT'] === '1') {
      const [a, b] = splitCalibration(calib, 2) as [Map<string, Tensor>, Map<string, Tensor>];
      folds.push({ setup: await prepareMixed(bytes, cands, {}, nodeMixedHooks(a, { awq })), data: b });
      folds.push({ setup: await prepareMixed(bytes, cands, {}, nodeMixedHooks(b, { awq })), data: a });
    }
    const s =
      folds.length > 0
        ? averageSensitivity([
            await measureSensitivity(
              nodeRuntime,
              bytes,
              folds[0]!.data,
              cands,
              { objective },
              undefined,
              folds[0]!.setup,
            ),
            await measureSensitivity(
              nodeRuntime,
              bytes,
              folds[1]!.data,
              cands,
              { objective },
              undefined,
              folds[1]!.setup,
            ),
          ])
        : await measureSensitivity(nodeRuntime, bytes, calib, cands, { objective }, undefined, setup);
    const sensSeconds = (performance.now() - t0) / 1000;
    console.log(
      `(mixed: GPTQ per candidate and sensitivity ${sensSeconds.toFixed(0)} s${awq ? ', AWQ-scaled base' : ''}${folds.length > 0 ? ', cross-fitted' : ''}, scored by ${objective.loss})`,
    );
    mkdirSync(`${root}.cache`, { recursive: true });
    writeFileSync(`${root}.cache/sensitivity-${name}.json`, JSON.stringify(s, null, 1));
    const params = s.weights.reduce((a, w) => a + w.params, 0);
    const guardCache = new Map<string, GuardEntry>();
    for (const target of [3.5, 4.25, 5]) {
      const t1 = performance.now();
      const plan = await refinePlan(nodeRuntime, bytes, calib, cands, setup, s, (target * params) / 8, {
        rounds: Number(process.env['MIXED_ROUNDS'] ?? 1),
        folds: folds.length > 0 ? folds : undefined,
        objective,
      });
      // MIXED_GUARD=1: the held-out guard of `quantize --target-bits` (flows/mixed-file.ts guardPlan).
      const guarded =
        process.env['MIXED_GUARD'] === '1'
          ? await guardPlan(
              bytes,
              calib,
              plan,
              singleForms(guardCandidates(s, cands, (target * params) / 8), awq),
              target,
              {
                awq,
                crossFitted: folds.length > 0,
                cache: guardCache,
                refit,
                objective,
              },
            )
          : undefined;
      if (guarded)
        console.log(
          `(guard at ${target}: ${guarded.entries.map((e) => `${e.label} ${e.bits.toFixed(2)} b ${e.heldOutKl.toExponential(3)}`).join('; ')})`,
        );
      const t2 = performance.now();
      const planned =
        guarded?.single && !process.env['MIXED_PLAN_ROWS'] ? undefined : await writtenModelBytes(setup, plan, refit);
      console.log(
        `(plan at ${target} ${refit ? 'refitted' : 'assembled'} in ${((performance.now() - t2) / 1000).toFixed(1)} s)`,
      );
      const mixed = guarded?.single
        ? await singleFormModel(bytes, guarded.single, calib)
        : (planned as NonNullable<typeof planned>);
      // Kept for scripts/measure/low-bit-latency.ts (EXTRA=…).
      writeFileSync(`${root}.cache/mixed-${name}-${target}${process.env['TAG'] ?? ''}.onnx`, mixed.bytes);
      const seconds = sensSeconds + (performance.now() - t1) / 1000;
      const counts = new Map<string, number>();
      for (const c of plan.choice.values()) counts.set(c.label, (counts.get(c.label) ?? 0) + 1);
      const bits = bitsPerWeight(mixed.layers);
      if (!(bits <= target)) throw new Error(`mixed ${target}: ${bits} true bits per weight, over the budget`);
      const planLabel = `${[...counts].map(([l, n]) => `${n}× ${l}`).join(', ')}; ${plan.source ?? ''}`;
      if (guarded?.single && planned)
        await record(
          `mixed ${target} plan, not written (${planLabel})`,
          planned.bytes,
          bitsPerWeight(planned.layers),
          seconds,
        );
      await record(
        guarded?.single ? `mixed ${target} (guard: ${guarded.single.label})` : `mixed ${target} (${planLabel})`,
        mixed.bytes,
        bits,
        seconds,
      );
    }
  };
  // The bigger LM measures its mixed models first: they are what its layer sensitivities are for.
  if (m.quick && !process.env['NO_MIXED']) await mixedRows();
  await quantizedRows();
  if (!m.quick && !process.env['NO_MIXED']) await mixedRows();
  const best = out.reduce((a, b) => (b.change < a.change ? b : a));
  const fastest = out.reduce((a, b) => (b.latency < a.latency ? b : a));
  console.log(`most accurate: ${best.label} (${pct(best.change)}, latency ${best.latency.toFixed(2)}× fp32)`);
  console.log(`fastest: ${fastest.label} (latency ${fastest.latency.toFixed(2)}× fp32, ${pct(fastest.change)})`);
  // Each mixed row against the best single-scheme row within its budget measured in this run,
  // paired on the same windows: the difference and its standard error.
  const asResult = (r: (typeof out)[number]) => ({
    crossEntropy: Math.log(r.ppl),
    perplexity: r.ppl,
    tokens: baseResult.tokens,
    windowNll: Float64Array.from(r.windowNll),
  });
  for (const mixed of out.filter((r) => r.label.startsWith('mixed'))) {
    const budget = Number(mixed.label.split(' ')[1]);
    const singles = out.filter((r) => !r.label.startsWith('mixed') && r.bits <= budget + 1e-9);
    if (singles.length === 0) continue;
    const rival = singles.reduce((a, b) => (b.change < a.change ? b : a));
    const d = perplexityDifference(asResult(mixed), asResult(rival));
    console.log(
      `${mixed.label.split(' (')[0]}: ${pct(mixed.change)} vs ${rival.label} ${pct(rival.change)} (${rival.bits.toFixed(2)} b): ` +
        `ratio ${pct(d.change)} ± ${(d.standardError * 100).toFixed(2)} % (one standard error, paired over windows)`,
    );
  }
  mkdirSync(`${root}.cache`, { recursive: true });
  writeFileSync(
    `${root}.cache/low-bit-${name}${process.env['TAG'] ?? ''}.json`,
    JSON.stringify({
      name,
      base,
      baseMs,
      evalWindows: windows.dims[0],
      baseWindowNll: [...baseResult.windowNll],
      rows: out,
    }),
  );
}
