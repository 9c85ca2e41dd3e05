import { parentPort } from 'node:worker_threads';
import { closeSync, openSync, readSync } from 'node:fs';
import { runWeightJob } from '../passes/weight-only/job-run.js';
import type { WeightJob } from '../passes/weight-only/jobs.js';
import type { ResultKey } from '../passes/weight-only/result-key.js';

/*
 * Worker thread of quantize-pool.ts: reads one weight's bytes straight from its data file (the
 * path the main thread resolved through node/files.ts and checked), quantizes it with the handler's own kernel and
 * posts the result's buffers back as transferables (moved, not copied).
 */

export interface WorkerRequest {
  readonly job: WeightJob;
  readonly path: string;
}
export type WorkerReply =
  | { readonly key: ResultKey; readonly ok: true; readonly result: ReturnType<typeof runWeightJob>['result'] }
  | { readonly key: ResultKey; readonly ok: false };

/**
 * One input buffer per worker, reused from weight to weight (grown when a bigger one comes): a
 * fresh 64 MB buffer per weight would leave the dead ones to the GC, and peak RSS with them.
 * Only the results leave the worker.
 */
let input = new Float32Array(0);

/** The fp32 values at [offset, offset + bytes) of the file (little-endian host, checked by the pool). */
function readFloats(path: string, offset: number, bytes: number): Float32Array {
  if (input.byteLength < bytes) input = new Float32Array(bytes / 4);
  const view = new Uint8Array(input.buffer, 0, bytes);
  const fd = openSync(path, 'r');
  try {
    for (let done = 0; done < bytes;) {
      const n = readSync(fd, view, done, Math.min(bytes - done, 1 << 30), offset + done);
      if (n === 0) throw new Error(`${path} ended early`); // the pass reads it again and names it
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return input.subarray(0, bytes / 4);
}

const port = parentPort;
if (port) {
  port.on('message', ({ job, path }: WorkerRequest) => {
    let reply: WorkerReply = { key: job.key, ok: false };
    let transfer: ArrayBuffer[] = [];
    try {
      const r = runWeightJob(job, readFloats(path, job.offset, job.bytes));
      reply = { key: job.key, ok: true, result: r.result };
      transfer = r.transfer;
    } catch {
      // Not used: the pass computes this weight itself and raises its named error.
    }
    port.postMessage(reply, transfer);
  });
}
