import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Node's way to start the compute kernels' workers (kernels/threads.ts takes it through
 * setKernelWorkerHost): worker_threads running the given classic script, and the machine's cores.
 * The kernels' workers are plain scripts, so no loader (tsx) or file is involved.
 */
export function nodeKernelWorkerHost(): {
  start(source: string): Worker;
  readonly cores: number;
} {
  return {
    start: (source) => new Worker(source, { eval: true }),
    cores: availableParallelism(),
  };
}
