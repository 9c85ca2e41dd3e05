import { computeSharedWasmBase64 } from './compute-shared-wasm.generated.js';
import {
  Arena,
  type ComputeContext,
  type ComputeExports,
  type KernelCall,
  type KernelName,
  type ParallelCalls,
} from './compute-wasm.js';

/*
 * The kernels on several threads: compute.wat built with its memory shared (compute-shared), one
 * instance on the calling thread and one in each worker, all on the same memory. A job is a list
 * of parts, each a list of kernel calls written into that memory; the caller publishes it, wakes
 * the workers (Atomics.notify) and takes parts itself; whoever is free takes the next part, so a
 * thread slowed by another process leaves its share to the rest. Calls are synchronous: the caller
 * waits (Atomics.wait, or a spin on a browser's main thread) until every part is done. Workers
 * are started once, on first use, and kept (unref'd in Node, so they never hold a process open).
 * A part's results do not depend on the thread that runs it, so any thread count gives the same
 * bits.
 *
 * Workers come from a factory: Node's (node/kernel-workers.ts, worker_threads) is installed by the
 * CLI or by useNodeKernelWorkers(); in a browser the global Worker is used when the page is
 * cross-origin isolated (SharedArrayBuffer). Without either, every call runs on the caller alone.
 */

/** What the pool needs of a worker: Node's worker_threads.Worker and the browser's Worker both fit. */
export interface KernelWorker {
  postMessage(message: unknown): void;
  terminate(): unknown;
  unref?(): void;
}

/** Starts workers running a classic script given as source text, and says how many cores there are. */
export interface KernelWorkerHost {
  start(source: string): KernelWorker;
  readonly cores: number;
}

let host: KernelWorkerHost | undefined;

/** Installs the way to start workers (Node: node/kernel-workers.ts); undefined restores the default. */
export function setKernelWorkerHost(h: KernelWorkerHost | undefined): void {
  host = h;
}

/** The browser's Worker from a Blob URL, where the page may share memory with it. */
function browserHost(): KernelWorkerHost | undefined {
  const g = globalThis as {
    Worker?: new (url: string) => KernelWorker;
    crossOriginIsolated?: boolean;
    navigator?: { hardwareConcurrency?: number };
  };
  const W = g.Worker;
  if (typeof W !== 'function' || g.crossOriginIsolated === false || typeof Blob === 'undefined') return undefined;
  return {
    start: (source) => new W(URL.createObjectURL(new Blob([source], { type: 'text/javascript' }))),
    cores: g.navigator?.hardwareConcurrency ?? 1,
  };
}

function currentHost(): KernelWorkerHost | undefined {
  return host ?? browserHost();
}

/** Cores of the machine as the worker host knows them (1 where threads cannot start). */
export function kernelThreadsAvailable(): number {
  return Math.max(1, currentHost()?.cores ?? 1);
}

// The control words, an Int32Array at CTL in the shared memory.
const CTL = 256;
const GEN = 0; // job counter: workers sleep on it
const CLAIM = 1; // (gen & 0xff) << 24 | parts << 12 | next part
const DONE = 2; // parts finished in this job
const TABLE = 3; // byte offset of the job's call table (float64)
const QUIT = 4;
const SEATS = 5; // workers still allowed to join this job
const FAILED = 6; // set by a worker whose kernel call threw (a trap: a bug, as it would be on one thread)
const READY = 8; // one word per worker: 1 once it has its instance
const MAX_WORKERS = 56;
const CTL_INTS = READY + MAX_WORKERS;
const MAX_PARTS = 0xfff;
/** How long a worker watches for the next job, and the caller for its workers' last parts, before sleeping. */
const WORKER_SPIN_MS = 0.1;
const CALLER_SPIN_MS = 0.5;

/** The kernels callable in a job, by index. */
const NAMES: readonly KernelName[] = [
  'quantizeRun',
  'quantizeColumns',
  'gemmS8Wide',
  'gemvNBits',
  'gemvNBitsSym',
  'gemvBnb4',
];
const INDEX = new Map(NAMES.map((n, i) => [n, i]));

/*
 * A worker's whole program (a classic script, so Node can eval it and a browser load it from a
 * Blob). Table of a job: for part p its calls are the float64 slots [T[p], T[p+1]), each call
 * [kernel index, argument count, result, arguments...].
 */
const WORKER_SOURCE = `'use strict';
const port = typeof require === 'function' ? require('node:worker_threads').parentPort : self;
function work(I, fns, memory, gen) {
  const g = gen & 0xff;
  for (;;) {
    const v = Atomics.load(I, ${CLAIM});
    if (v >>> 24 !== g) return;
    const total = (v >>> 12) & 0xfff;
    const next = v & 0xfff;
    if (next >= total) return;
    if (Atomics.compareExchange(I, ${CLAIM}, v, v + 1) !== v) continue;
    const T = new Float64Array(memory.buffer, I[${TABLE}]);
    try {
      for (let c = T[next]; c < T[next + 1]; ) {
        const n = T[c + 1];
        const r = fns[T[c]].apply(null, Array.from(T.subarray(c + 3, c + 3 + n)));
        T[c + 2] = r === undefined ? 0 : r;
        c += 3 + n;
      }
    } catch (e) {
      Atomics.store(I, ${FAILED}, 1);
    }
    if (Atomics.add(I, ${DONE}, 1) + 1 === total) Atomics.notify(I, ${DONE});
  }
}
function start(d) {
  const inst = new WebAssembly.Instance(d.module, { env: { memory: d.memory } });
  const fns = d.names.map((n) => inst.exports[n]);
  const I = new Int32Array(d.memory.buffer, ${CTL}, ${CTL_INTS});
  Atomics.store(I, ${READY} + d.index, 1);
  let gen = Atomics.load(I, ${GEN});
  for (;;) {
    if (Atomics.load(I, ${QUIT})) break;
    if (Atomics.sub(I, ${SEATS}, 1) > 0) work(I, fns, d.memory, gen);
    // Watch for the next job a moment before sleeping: calls in a row (a decoding loop) then
    // find the worker on its core instead of waiting for the scheduler to wake it.
    const until = performance.now() + ${WORKER_SPIN_MS};
    while (Atomics.load(I, ${GEN}) === gen && performance.now() < until);
    Atomics.wait(I, ${GEN}, gen);
    gen = Atomics.load(I, ${GEN});
  }
  if (typeof port.close === 'function') port.close();
  if (typeof close === 'function') close();
}
if (typeof port.once === 'function') port.once('message', start);
else port.onmessage = (e) => start(e.data);
`;

/** The shared memory, the caller's instance of the kernels on it, and the workers. */
class Pool {
  readonly memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  readonly module: WebAssembly.Module;
  readonly k: ComputeExports;
  readonly arena: Arena;
  readonly workers: KernelWorker[] = [];
  private readonly fns: ((...a: number[]) => number | undefined)[];
  private tableAt = 0;
  private tableBytes = 0;
  private canBlock = true;
  private readonly contexts = new Map<number, ComputeContext>();

  constructor(bytes: Uint8Array<ArrayBuffer>) {
    this.module = new WebAssembly.Module(bytes);
    this.k = new WebAssembly.Instance(this.module, { env: { memory: this.memory } })
      .exports as unknown as ComputeExports;
    this.arena = new Arena(this.memory, CTL + CTL_INTS * 4);
    this.fns = NAMES.map((n) => this.k[n] as (...a: number[]) => number | undefined);
  }

  private ctl(): Int32Array {
    return new Int32Array(this.memory.buffer, CTL, CTL_INTS);
  }

  /** Starts workers until there are `count` (within what the host and MAX_WORKERS allow). */
  grow(count: number): void {
    const h = currentHost();
    if (!h) return;
    const I = this.ctl();
    if (this.workers.length === 0) Atomics.store(I, QUIT, 0);
    while (this.workers.length < Math.min(count, MAX_WORKERS)) {
      const index = this.workers.length;
      let w: KernelWorker;
      try {
        w = h.start(WORKER_SOURCE);
      } catch {
        return; // no workers here: the caller runs every part
      }
      Atomics.store(I, READY + index, 0);
      w.postMessage({ module: this.module, memory: this.memory, index, names: NAMES });
      w.unref?.();
      this.workers.push(w);
    }
  }

  ready(): number {
    const I = this.ctl();
    let n = 0;
    for (let i = 0; i < this.workers.length; i++) n += Atomics.load(I, READY + i);
    return n;
  }

  context(threads: number): ComputeContext {
    let ctx = this.contexts.get(threads);
    if (!ctx) {
      const parallel: ParallelCalls = { threads, run: (parts) => this.run(parts, threads) };
      ctx = { k: this.k, arena: this.arena, parallel };
      this.contexts.set(threads, ctx);
    }
    return ctx;
  }

  run(parts: readonly (readonly KernelCall[])[], threads: number): number {
    let result = 0;
    for (let p0 = 0; p0 < parts.length; p0 += MAX_PARTS) result |= this.job(parts.slice(p0, p0 + MAX_PARTS), threads);
    return result;
  }

  private job(parts: readonly (readonly KernelCall[])[], threads: number): number {
    const P = parts.length;
    let slots = P + 1;
    for (const part of parts) for (const call of part) slots += 2 + call.length;
    if (slots * 8 > this.tableBytes) {
      if (this.tableBytes) this.arena.release(this.tableAt, this.tableBytes);
      this.tableBytes = Math.max(slots * 8, 2 * this.tableBytes, 4096);
      this.tableAt = this.arena.alloc(this.tableBytes);
    }
    const T = new Float64Array(this.memory.buffer, this.tableAt, slots);
    let c = P + 1;
    parts.forEach((part, p) => {
      T[p] = c;
      for (const [name, ...args] of part) {
        T[c] = INDEX.get(name) as number;
        T[c + 1] = args.length;
        T[c + 2] = 0;
        T.set(args, c + 3);
        c += 3 + args.length;
      }
    });
    T[P] = c;
    const I = this.ctl();
    const helpers = Math.min(threads - 1, this.workers.length, P - 1);
    const gen = (Atomics.load(I, GEN) + 1) | 0;
    Atomics.store(I, TABLE, this.tableAt);
    Atomics.store(I, DONE, 0);
    Atomics.store(I, FAILED, 0);
    Atomics.store(I, CLAIM, ((gen & 0xff) << 24) | (P << 12));
    if (helpers > 0) {
      Atomics.store(I, SEATS, helpers);
      Atomics.store(I, GEN, gen);
      Atomics.notify(I, GEN);
    } else {
      Atomics.store(I, SEATS, 0);
      Atomics.store(I, GEN, gen);
    }
    this.work(I, T, gen);
    const until = performance.now() + CALLER_SPIN_MS;
    while (Atomics.load(I, DONE) < P && performance.now() < until);
    for (let d = Atomics.load(I, DONE); d < P; d = Atomics.load(I, DONE)) this.wait(I, d);
    if (Atomics.load(I, FAILED)) throw new Error('a kernel call failed on one of the kernel threads');
    let result = 0;
    for (let p = 0; p < P; p++)
      for (let q = T[p] as number; q < (T[p + 1] as number); q += 3 + (T[q + 1] as number))
        result |= T[q + 2] as number;
    return result;
  }

  /** The caller's share: the same claiming loop as a worker's. */
  private work(I: Int32Array, T: Float64Array, gen: number): void {
    const g = gen & 0xff;
    for (;;) {
      const v = Atomics.load(I, CLAIM);
      const total = (v >>> 12) & 0xfff;
      const next = v & 0xfff;
      if (v >>> 24 !== g || next >= total) return;
      if (Atomics.compareExchange(I, CLAIM, v, v + 1) !== v) continue;
      // A trap is a bug either way; recorded, so the job still completes and the caller reports it.
      try {
        for (let c = T[next] as number; c < (T[next + 1] as number);) {
          const n = T[c + 1] as number;
          const f = this.fns[T[c] as number] as (...a: number[]) => number | undefined;
          T[c + 2] = f(...T.subarray(c + 3, c + 3 + n)) ?? 0;
          c += 3 + n;
        }
      } catch {
        Atomics.store(I, FAILED, 1);
      }
      Atomics.add(I, DONE, 1);
    }
  }

  /** Waits for DONE to move from `d`: blocking where the thread may block, else spinning. */
  private wait(I: Int32Array, d: number): void {
    if (this.canBlock) {
      try {
        Atomics.wait(I, DONE, d, 20);
        return;
      } catch {
        this.canBlock = false; // a browser's main thread may not block
      }
    }
  }

  stop(): void {
    const I = this.ctl();
    Atomics.store(I, QUIT, 1);
    Atomics.add(I, GEN, 1);
    Atomics.notify(I, GEN);
    for (const w of this.workers.splice(0)) w.terminate();
  }
}

let pool: Pool | null | undefined;

function getPool(): Pool | null {
  if (pool !== undefined) return pool;
  pool = null;
  try {
    if (typeof SharedArrayBuffer === 'function' && typeof Atomics === 'object') {
      const bytes = decodeBase64(computeSharedWasmBase64);
      if (WebAssembly.validate(bytes)) pool = new Pool(bytes);
    }
  } catch {
    pool = null;
  }
  return pool;
}

/**
 * The context that runs the kernels on `threads` threads (the caller's included), starting
 * workers as needed; undefined where threads cannot run here (no worker host, no shared memory).
 * Workers that are still starting simply do not take parts yet.
 */
export function threadedContext(threads: number): ComputeContext | undefined {
  if (threads < 2 || !currentHost()) return undefined;
  const p = getPool();
  if (!p) return undefined;
  p.grow(threads - 1);
  return p.workers.length ? p.context(threads) : undefined;
}

/** Resolves once `threads` − 1 workers are up (or after `timeoutMs`): for benchmarks and tests. */
export async function kernelThreadsReady(threads: number, timeoutMs = 10000): Promise<number> {
  const ctx = threadedContext(threads);
  const p = getPool();
  if (!ctx || !p) return 1;
  const until = Date.now() + timeoutMs;
  while (p.ready() < Math.min(threads - 1, p.workers.length) && Date.now() < until)
    await new Promise((r) => setTimeout(r, 5));
  return 1 + p.ready();
}

/** Stops the workers (they are started again on next use); the shared memory and its weights stay. */
export function stopKernelThreads(): void {
  if (pool) pool.stop();
}

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
