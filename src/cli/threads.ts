import { QuantkitError } from '../errors.js';
import { kernelThreadsAvailable, setKernelWorkerHost } from '../kernels/index.js';
import { nodeKernelWorkerHost } from '../node/kernel-workers.js';

/** Lets the kernels start worker threads in this process (none start until more than one is asked for). */
export function enableKernelWorkers(): void {
  setKernelWorkerHost(nodeKernelWorkerHost());
}

/** --threads N: a whole number ≥ 1, or 'all' (the machine's cores). */
export function parseThreadsFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = text === 'all' ? kernelThreadsAvailable() : Number(text);
  if (!Number.isInteger(n) || n < 1)
    throw new QuantkitError(
      'QK_BAD_FLAG',
      `--threads '${text}' is not a thread count`,
      "give a whole number ≥ 1, or 'all' for every core",
    );
  return n;
}
