import { parentPort } from 'node:worker_threads';
import { fileSource } from '../node/files.js';
import { runWeightJob, type WeightJob } from '../passes/weight-only/jobs.js';

/*
 * Worker thread of quantize-pool.ts: reads one weight's bytes straight from its data file (the
 * path the main thread resolved and checked), quantizes it with the handler's own kernel and
 * posts the result's buffers back as transferables (moved, not copied).
 */

export interface WorkerRequest { readonly job: WeightJob; readonly path: string }
export type WorkerReply = { readonly key: string; readonly ok: true; readonly result: ReturnType<typeof runWeightJob>['result'] } | { readonly key: string; readonly ok: false };

const port = parentPort;
if (port) {
  port.on('message', ({ job, path }: WorkerRequest) => {
    let reply: WorkerReply = { key: job.key, ok: false };
    let transfer: ArrayBuffer[] = [];
    try {
      const src = fileSource(path);
      let bytes: Uint8Array;
      try {
        bytes = src.read(job.offset, job.bytes);
      } finally {
        src.close();
      }
      // A fresh read starts at byteOffset 0: a Float32Array view, no copy (little-endian host).
      const r = runWeightJob(job, new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
      reply = { key: job.key, ok: true, result: r.result };
      transfer = r.transfer;
    } catch {
      // Not used: the pass computes this weight itself and raises its named error.
    }
    port.postMessage(reply, transfer);
  });
}
