import type { InspectReport } from '../../flows/inspect.js';
import type { QuantizeBytesOptions, QuantizeReport } from '../api.js';
import type { ModelComparison } from '../measure.js';

/*
 * Messages between the page (client.ts) and its Web Worker (worker.ts). Files travel as Blobs
 * (passed by reference, read by the worker slice by slice); results come back as Blobs too.
 */

/** A model as Blobs: the .onnx and its external data files by name. */
export interface ModelBlobs {
  readonly model: Blob;
  readonly name: string;
  readonly external: Readonly<Record<string, Blob>>;
}

/** Options without the progress callback (functions do not cross to a worker). */
export type WorkerQuantizeOptions = Omit<QuantizeBytesOptions, 'progress' | 'calib'> & {
  /** int8-static: .npy calibration inputs for the first model input. */
  readonly calib?: Blob | undefined;
};

export type WorkerRequest =
  | { readonly id: number; readonly kind: 'inspect'; readonly input: ModelBlobs }
  | {
      readonly id: number;
      readonly kind: 'quantize';
      readonly input: ModelBlobs;
      readonly options: WorkerQuantizeOptions;
    }
  | {
      readonly id: number;
      readonly kind: 'compare';
      readonly original: ModelBlobs;
      readonly quantized: ModelBlobs;
      /** .npy inputs for the first model input; random inputs of the declared shapes when absent. */
      readonly inputs?: Blob | undefined;
    };

export interface QuantizeResult {
  readonly model: Blob;
  readonly data: Blob | undefined;
  readonly dataLocation: string | undefined;
  readonly report: QuantizeReport;
  /** Time spent in the worker, ms. */
  readonly ms: number;
}

export type WorkerResponse =
  | {
      readonly id: number;
      readonly kind: 'progress';
      readonly done: number;
      readonly total: number;
      readonly step: string;
    }
  | { readonly id: number; readonly kind: 'inspect'; readonly report: InspectReport; readonly external: string[] }
  | { readonly id: number; readonly kind: 'quantize'; readonly result: QuantizeResult }
  | { readonly id: number; readonly kind: 'compare'; readonly result: ModelComparison }
  | {
      readonly id: number;
      readonly kind: 'error';
      readonly code: string | undefined;
      readonly message: string;
      readonly hint: string | undefined;
    };
