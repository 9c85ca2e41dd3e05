import * as ort from 'onnxruntime-web/wasm';
import { isQuantkitError } from '../../errors.js';
import { readNpy } from '../../io/npy/npy.js';
import type { ByteSource } from '../../io/source.js';
import { inlinedModelBytes, inspectModelBytes, openModel, quantizeModelSource, type ModelInput } from '../api.js';
import { blobSource } from '../blob-source.js';
import { compareModelBytes } from '../measure.js';
import { ortWebRuntime } from '../runtime.js';
import type { ModelBlobs, WorkerRequest, WorkerResponse } from './protocol.js';

/*
 * The page's Web Worker: every job that touches model bytes runs here, so the page stays
 * responsive. Files are read slice by slice (FileReaderSync); outputs are gathered into Blobs a
 * few chunks at a time, never as one ArrayBuffer.
 */

interface WorkerScope {
  postMessage(message: WorkerResponse): void;
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  readonly location: { readonly href: string };
  readonly crossOriginIsolated?: boolean;
}
const scope = self as unknown as WorkerScope;

// ONNX Runtime's WebAssembly files sit beside this script (scripts/build-web.mjs copies them).
ort.env.wasm.wasmPaths = new URL('./', scope.location.href).href;
// Threads need SharedArrayBuffer, which only a cross-origin-isolated page has.
ort.env.wasm.numThreads = scope.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
ort.env.logLevel = 'error';
const runtime = ortWebRuntime(ort);

function modelInput(m: ModelBlobs): ModelInput {
  const external: Record<string, ByteSource> = {};
  for (const [name, blob] of Object.entries(m.external)) external[name] = blobSource(blob, name);
  return { model: blobSource(m.model, m.name), external, label: m.name };
}

/** Chunks gathered into one Blob, folded every `FOLD_BYTES` so only that much is held in JS. */
const FOLD_BYTES = 32 * 2 ** 20;
function blobOf(chunks: Iterable<Uint8Array>, onBytes: (n: number) => void): Blob {
  const type = 'application/octet-stream';
  let blob = new Blob([], { type });
  let parts: BlobPart[] = [];
  let held = 0;
  for (const c of chunks) {
    parts.push(c as Uint8Array<ArrayBuffer>);
    held += c.length;
    onBytes(c.length);
    if (held >= FOLD_BYTES) {
      blob = new Blob([blob, ...parts], { type });
      parts = [];
      held = 0;
    }
  }
  return parts.length ? new Blob([blob, ...parts], { type }) : blob;
}

async function handle(req: WorkerRequest): Promise<WorkerResponse> {
  switch (req.kind) {
    case 'inspect': {
      const report = inspectModelBytes(modelInput(req.input));
      return { id: req.id, kind: 'inspect', report, external: report.externalDataFiles };
    }
    case 'quantize': {
      const t0 = performance.now();
      let last = 0;
      const post = (done: number, total: number, step: string) => {
        const now = performance.now();
        if (now - last < 50 && done < total) return;
        last = now;
        scope.postMessage({ id: req.id, kind: 'progress', done, total, step });
      };
      const { calib, ...options } = req.options;
      const q = await quantizeModelSource(
        modelInput(req.input),
        {
          ...options,
          calib: calib ? new Uint8Array(await calib.arrayBuffer()) : undefined,
          progress: post,
        },
        runtime,
      );
      // Writing re-reads the tensors kept as they were: a stage of its own on the bar (MiB).
      const total = Math.ceil(q.plan.tensors.reduce((n, t) => n + t.bytes, 0) / 2 ** 20);
      let written = 0;
      const onBytes = (n: number) => {
        written += n;
        post(Math.min(total, Math.floor(written / 2 ** 20)), total, 'writing the output (MiB)');
      };
      const model = blobOf(q.plan.modelChunks(), onBytes);
      const data = q.plan.external ? blobOf(q.plan.dataChunks(), onBytes) : undefined;
      return {
        id: req.id,
        kind: 'quantize',
        result: { model, data, dataLocation: q.plan.dataLocation, report: q.report, ms: performance.now() - t0 },
      };
    }
    case 'compare': {
      const original = inlinedModelBytes(modelInput(req.original));
      const quantized = inlinedModelBytes(modelInput(req.quantized));
      const inputs = req.inputs
        ? new Map([
            [
              openModel({ model: original }).model.graph.inputs[0]?.name ?? 'input',
              readNpy(new Uint8Array(await req.inputs.arrayBuffer()), 'inputs.npy'),
            ],
          ])
        : undefined;
      const result = await compareModelBytes(runtime, original, quantized, { inputs });
      return { id: req.id, kind: 'compare', result };
    }
  }
}

scope.onmessage = (e) => {
  const req = e.data;
  handle(req).then(
    (res) => scope.postMessage(res),
    (err: unknown) =>
      scope.postMessage({
        id: req.id,
        kind: 'error',
        code: isQuantkitError(err) ? err.code : undefined,
        message: err instanceof Error ? err.message : String(err),
        hint: isQuantkitError(err) ? err.hint : undefined,
      }),
  );
};
