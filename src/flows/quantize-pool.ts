import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Model } from '../graph/model.js';
import type { ModelDirFiles } from '../node/files.js';
import { bnb4WeightsFrom, joinBnb4Parts } from '../passes/weight-only/job-run.js';
import { planWeightJobs, type Bnb4Parts } from '../passes/weight-only/jobs.js';
import { idOf, ResultMap, type Bnb4Key, type Int8Key, type NBitsKey } from '../passes/weight-only/result-key.js';
import type { PrecomputedWeights, WeightOnlyOptions } from '../passes/weight-only/types.js';
import type { Bnb4Weights } from '../quant/bnb4-quant.js';
import type { Int8Weights } from '../quant/int8-quant.js';
import { nbitsWeightsFrom, type NBitsWeights } from '../quant/nbits-quant.js';
import type { WorkerReply, WorkerRequest } from './quantize-worker.js';

/*
 * Weight quantization on all cores: the pass's jobs (passes/weight-only/jobs.ts) handed to worker
 * threads, one weight at a time each, in model order; results come back as moved buffers and are
 * handed to the pass, which then only rewires the graph. Small models stay on the main thread:
 * starting a worker (~30 ms and ~30 MB each) would cost more than it saves.
 */

/** Weights below this many fp32 bytes in all are quantized on the main thread. */
export const PARALLEL_FROM_BYTES = 64 * 2 ** 20;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface PoolOptions {
  /** Threads to use (default: the machine's available parallelism, at most 4). */
  readonly threads?: number | undefined;
  /** Total weight bytes from which workers are used (default PARALLEL_FROM_BYTES). */
  readonly fromBytes?: number | undefined;
}

/**
 * A worker running quantize-worker beside this module: the .js file when built; under tsx or
 * vitest (this module is .ts) a bootstrap that first registers tsx's loader in the worker —
 * `--import tsx` in a worker's execArgv does not reach its entry module.
 */
function startWorker(): Worker {
  const ts = import.meta.url.endsWith('.ts');
  const url = new URL(`./quantize-worker.${ts ? 'ts' : 'js'}`, import.meta.url);
  if (!ts) return new Worker(url);
  const tsxApi = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/package.json')
      .replace(/package\.json$/, 'dist/esm/api/index.mjs'),
  ).href;
  const boot = `const { register } = await import(${JSON.stringify(tsxApi)}); register(); await import(${JSON.stringify(url.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`));
}

/**
 * Runs the pass's jobs for `model` on worker threads; undefined when the model is small, the host
 * big-endian or there is one core. Each job's file is resolved through `files` (the model folder's
 * checks) and its byte range checked; anything odd is left to the pass.
 */
export async function precomputeWeights(
  model: Model,
  options: WeightOnlyOptions,
  files: ModelDirFiles,
  pool: PoolOptions = {},
): Promise<PrecomputedWeights | undefined> {
  if (!LITTLE_ENDIAN_HOST) return undefined;
  const threads = Math.max(1, Math.min(pool.threads ?? availableParallelism(), 4));
  const planned = planWeightJobs(model, options);
  const total = planned.reduce((s, j) => s + j.bytes, 0);
  if (threads < 2 || planned.length < 2 || total < (pool.fromBytes ?? PARALLEL_FROM_BYTES)) return undefined;
  const queue: WorkerRequest[] = [];
  for (const job of planned) {
    try {
      const src = files.open(job.location);
      if (job.offset + job.bytes > src.size) continue;
      queue.push({ job, path: src.path });
    } catch {
      // missing or refused file: the pass raises the error
    }
  }
  const nbits = new ResultMap<NBitsKey, NBitsWeights>();
  const int8 = new ResultMap<Int8Key, Int8Weights>();
  const bnb4 = new ResultMap<Bnb4Key, Bnb4Weights>();
  const bnb4Pending = new Map<string, Bnb4Parts[]>();
  const workers = Array.from({ length: Math.min(threads, queue.length) }, startWorker);
  const jobCount = queue.length;
  let finished = 0;
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolvePromise) => {
            const next = () => {
              const req = queue.shift();
              if (req) w.postMessage(req);
              else resolvePromise();
            };
            w.on('message', (reply: WorkerReply) => {
              options.progress?.(
                ++finished,
                jobCount,
                `quantizing weights on ${workers.length} threads (${options.scheme})`,
              );
              if (reply.ok) {
                const r = reply.result;
                if (r.kind === 'int8') int8.set(r.key, r.weights);
                else if (r.kind === 'bnb4') {
                  // A weight cut in parts is used once all its parts are back (else the pass does it).
                  const id = idOf(r.key);
                  const got = bnb4Pending.get(id) ?? [];
                  got[r.part] = r.parts;
                  bnb4Pending.set(id, got);
                  if (got.filter(Boolean).length === r.of)
                    bnb4.set(r.key, bnb4WeightsFrom(joinBnb4Parts(got), r.elements));
                } else nbits.set(r.key, nbitsWeightsFrom(r.parts, r.key.options.blockSize, r.key.options.bits));
              }
              next();
            });
            // A worker that dies leaves its weight (and, if all die, the rest) to the pass.
            w.on('error', () => resolvePromise());
            w.on('exit', () => resolvePromise());
            next();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return { nbits, int8, bnb4 };
}
