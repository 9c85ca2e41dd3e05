import { QuantkitError } from '../../errors.js';
import type { InspectReport } from '../../flows/inspect.js';
import type { ModelComparison } from '../measure.js';
import type { ModelBlobs, QuantizeResult, WorkerQuantizeOptions, WorkerRequest, WorkerResponse } from './protocol.js';

/*
 * The page's API (window.quantkit): each job runs in the Web Worker; cancel() ends the worker
 * (and the job with it) and the next job starts a fresh one. The page's buttons call these same
 * functions.
 */

/** A model as the user gives it: bytes, or the picked files (the .onnx and its data files). */
export type ModelArg =
  Uint8Array | Blob | { readonly model: Blob; readonly name?: string; readonly external?: Record<string, Blob> };

export type Progress = (done: number, total: number, step: string) => void;

interface Pending {
  resolve(r: WorkerResponse): void;
  reject(e: unknown): void;
  progress: Progress | undefined;
}

/** A request without its id (Omit over each member of the union, not the union as a whole). */
type Request = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

export class WorkerError extends Error {
  constructor(
    readonly code: string | undefined,
    message: string,
    readonly hint: string | undefined,
  ) {
    super(message);
    this.name = 'QuantkitError';
  }
}

function blobsOf(m: ModelArg, fallbackName = 'model.onnx'): ModelBlobs {
  if (m instanceof Uint8Array)
    return { model: new Blob([m as Uint8Array<ArrayBuffer>]), name: fallbackName, external: {} };
  if (m instanceof Blob) return { model: m, name: m instanceof File ? m.name : fallbackName, external: {} };
  return {
    model: m.model,
    name: m.name ?? (m.model instanceof File ? m.model.name : fallbackName),
    external: m.external ?? {},
  };
}

export class QuantkitClient {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly workerUrl: URL) {}

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.workerUrl, { type: 'module' });
    w.onmessage = (e: MessageEvent<WorkerResponse>) => {
      const res = e.data;
      const p = this.pending.get(res.id);
      if (!p) return;
      if (res.kind === 'progress') {
        p.progress?.(res.done, res.total, res.step);
        return;
      }
      this.pending.delete(res.id);
      if (res.kind === 'error') p.reject(new WorkerError(res.code, res.message, res.hint));
      else p.resolve(res);
    };
    w.onerror = (e) => {
      e.preventDefault();
      for (const p of this.pending.values()) p.reject(new Error(`the worker failed: ${e.message}`));
      this.pending.clear();
      this.worker = undefined;
    };
    this.worker = w;
    return w;
  }

  private request(req: Request, progress?: Progress): Promise<WorkerResponse> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, progress });
      this.ensureWorker().postMessage({ ...req, id });
    });
  }

  /** Ends the running job (its promise rejects with QK_CANCELLED). */
  cancel(): void {
    this.worker?.terminate();
    this.worker = undefined;
    for (const p of this.pending.values())
      p.reject(new QuantkitError('QK_CANCELLED', 'cancelled', 'start the job again when ready'));
    this.pending.clear();
  }

  get busy(): boolean {
    return this.pending.size > 0;
  }

  async inspect(model: ModelArg): Promise<{ report: InspectReport; external: string[] }> {
    const r = await this.request({ kind: 'inspect', input: blobsOf(model) });
    if (r.kind !== 'inspect') throw new Error(`unexpected reply ${r.kind}`);
    return { report: r.report, external: r.external };
  }

  /** Quantizes in the worker; the output comes back as Blobs (the .onnx, and its data file if any). */
  async quantize(model: ModelArg, options: WorkerQuantizeOptions, progress?: Progress): Promise<QuantizeResult> {
    const r = await this.request({ kind: 'quantize', input: blobsOf(model), options }, progress);
    if (r.kind !== 'quantize') throw new Error(`unexpected reply ${r.kind}`);
    return r.result;
  }

  /** `quantize` with bytes out: `{ bytes, report }` (and `data` when the output has a data file). */
  async quantizeModelBytes(
    model: ModelArg,
    options: WorkerQuantizeOptions,
    progress?: Progress,
  ): Promise<{ bytes: Uint8Array; data: Uint8Array | undefined; report: QuantizeResult['report'] }> {
    const r = await this.quantize(model, options, progress);
    return {
      bytes: new Uint8Array(await r.model.arrayBuffer()),
      data: r.data ? new Uint8Array(await r.data.arrayBuffer()) : undefined,
      report: r.report,
    };
  }

  /** Both models in onnxruntime-web: on `inputs` (.npy for the first input) or random inputs. */
  async compare(original: ModelArg, quantized: ModelArg, inputs?: Blob | Uint8Array): Promise<ModelComparison> {
    const r = await this.request({
      kind: 'compare',
      original: blobsOf(original),
      quantized: blobsOf(quantized),
      inputs: inputs instanceof Uint8Array ? new Blob([inputs as Uint8Array<ArrayBuffer>]) : inputs,
    });
    if (r.kind !== 'compare') throw new Error(`unexpected reply ${r.kind}`);
    return r.result;
  }
}
