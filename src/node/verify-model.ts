import { unlink } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import type { Tensor } from '../tensor/tensor.js';

/*
 * The check after every model write: the file is loaded by onnxruntime-node from its path (so
 * external data is found next to it, as a user's session would find it, and models over 2 GB load
 * as they would in deployment) and run once, on real inputs when the caller has some (the first
 * calibration samples), else on zeros of the declared shapes with every symbolic dimension 1.
 * A written model ONNX Runtime refuses is a quantkit bug: the file and its data file are deleted
 * and the failure is reported with ONNX Runtime's own message (ModelVerificationError, exit 2).
 */

/** Element types onnxruntime-node hands across the JS boundary (bfloat16, float8 and 4-bit are not). */
const READABLE = new Set<string>([
  'float32',
  'float64',
  'float16',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
  'bool',
  'string',
]);

export interface VerifyRequest {
  readonly modelPath: string;
  /** Its external data file, deleted with it when the check fails. */
  readonly dataPath?: string | undefined;
  /** What wrote the model, for the message, options marked (errors.ts OptionError): "quantize `scheme` int8-dynamic". */
  readonly step: string;
  /** Real inputs by graph input name (first axis = batch); the others get synthetic zeros. */
  readonly samples?: ReadonlyMap<string, Tensor> | undefined;
}

export interface FeedSummary {
  readonly name: string;
  readonly dtype: string;
  readonly dims: readonly number[];
  readonly source: 'sample' | 'synthetic';
}

export type Verification =
  | {
      readonly status: 'verified';
      readonly runtime: string;
      readonly feeds: readonly FeedSummary[];
      /** Outputs fetched after the run (every output of a type JS can hold). */
      readonly outputs: readonly string[];
      /** Outputs left unfetched: their element type cannot cross into JavaScript. */
      readonly unreadOutputs: readonly string[];
    }
  | { readonly status: 'skipped'; readonly reason: string };

/** ONNX Runtime refused a model quantkit wrote: an internal error (exit 2), not the user's. */
export class ModelVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelVerificationError';
  }
}

export const RUNTIME = `onnxruntime-node ${ort.env.versions.node ?? ort.env.versions.common}`;

type InputMeta = ort.InferenceSession.ValueMetadata;

/** Zeros of the declared shape (symbolic or unknown dims → 1): valid ids, masks and floats alike. */
function syntheticFeed(meta: InputMeta & { isTensor: true }): ort.Tensor {
  const dims = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
  const n = dims.reduce((a, b) => a * b, 1);
  switch (meta.type) {
    case 'string':
      return new ort.Tensor(
        'string',
        Array.from({ length: n }, () => ''),
        dims,
      );
    case 'int64':
      return new ort.Tensor('int64', new BigInt64Array(n), dims);
    case 'uint64':
      return new ort.Tensor('uint64', new BigUint64Array(n), dims);
    case 'float32':
      return new ort.Tensor('float32', new Float32Array(n), dims);
    case 'float64':
      return new ort.Tensor('float64', new Float64Array(n), dims);
    case 'int32':
      return new ort.Tensor('int32', new Int32Array(n), dims);
    case 'uint32':
      return new ort.Tensor('uint32', new Uint32Array(n), dims);
    case 'int16':
      return new ort.Tensor('int16', new Int16Array(n), dims);
    case 'uint16':
      return new ort.Tensor('uint16', new Uint16Array(n), dims);
    case 'float16':
      return new ort.Tensor('float16', new Uint16Array(n), dims);
    case 'int8':
      return new ort.Tensor('int8', new Int8Array(n), dims);
    case 'uint8':
      return new ort.Tensor('uint8', new Uint8Array(n), dims);
    case 'bool':
      return new ort.Tensor('bool', new Uint8Array(n), dims);
    default:
      throw new Error(`no synthetic input of type ${meta.type}`);
  }
}

function sampleFeed(t: Tensor): ort.Tensor {
  return new ort.Tensor(t.dtype as ort.Tensor.Type, t.data as ort.Tensor.DataType, [...t.dims]);
}

async function removeOutputs(req: VerifyRequest): Promise<void> {
  for (const p of [req.modelPath, req.dataPath]) if (p) await unlink(p).catch(() => undefined);
}

function failure(req: VerifyRequest, stage: 'load' | 'run', e: unknown): ModelVerificationError {
  const message = (e instanceof Error ? e.message : String(e)).trim();
  const deleted = req.dataPath ? `${req.modelPath} and its data file were deleted` : `${req.modelPath} was deleted`;
  return new ModelVerificationError(
    `ONNX Runtime (${RUNTIME}) cannot ${stage} the model written by ${req.step}: ${message} — ${deleted}; \`verify: false\` keeps the file`,
  );
}

/**
 * Loads and runs the written model once. Resolves with what was checked; when ONNX Runtime fails,
 * deletes the model (and its data file) and rejects with ModelVerificationError.
 */
export async function verifyWrittenModel(req: VerifyRequest): Promise<Verification> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(req.modelPath, { graphOptimizationLevel: 'all' });
  } catch (e) {
    // The binding loaded the model but cannot describe an input or output of this element type
    // to JavaScript (bfloat16, float8): ONNX Runtime itself accepted the file.
    const unsupported = /^Unsupported data type: (\d+)/.exec(e instanceof Error ? e.message : '');
    if (unsupported)
      return {
        status: 'skipped',
        reason: `ONNX Runtime loaded it, but a graph input or output has ONNX element type ${unsupported[1]}, which onnxruntime-node cannot hand to JavaScript, so it was not run`,
      };
    await removeOutputs(req);
    throw failure(req, 'load', e);
  }
  let ran: Verification | { failed: unknown };
  try {
    const feeds: Record<string, ort.Tensor> = {};
    const summary: FeedSummary[] = [];
    for (const meta of session.inputMetadata) {
      if (!meta.isTensor || !READABLE.has(meta.type)) {
        return {
          status: 'skipped',
          reason: `loaded, not run: input '${meta.name}' ${meta.isTensor ? `is ${meta.type}, which` : 'is not a tensor, which'} onnxruntime-node cannot take from JavaScript`,
        };
      }
      const sample = req.samples?.get(meta.name);
      const feed = sample ? sampleFeed(sample) : syntheticFeed(meta);
      feeds[meta.name] = feed;
      summary.push({ name: meta.name, dtype: feed.type, dims: feed.dims, source: sample ? 'sample' : 'synthetic' });
    }
    const readable = session.outputMetadata.filter((m) => m.isTensor && READABLE.has(m.type)).map((m) => m.name);
    const unread = session.outputNames.filter((n) => !readable.includes(n));
    if (readable.length === 0) {
      return {
        status: 'skipped',
        reason: `loaded, not run: no output has an element type onnxruntime-node can hand to JavaScript (${unread.join(', ')})`,
      };
    }
    try {
      const out = await session.run(feeds, readable);
      for (const t of Object.values(out)) t.dispose();
      ran = { status: 'verified', runtime: RUNTIME, feeds: summary, outputs: readable, unreadOutputs: unread };
    } catch (e) {
      ran = { failed: e };
    }
  } finally {
    await session.release();
  }
  if ('failed' in ran) {
    await removeOutputs(req);
    throw failure(req, 'run', ran.failed);
  }
  return ran;
}

/** One line for the terminal report. */
export function describeVerification(v: Verification): string {
  if (v.status === 'skipped') return `not verified in ONNX Runtime: ${v.reason}`;
  const fromSamples = v.feeds.some((f) => f.source === 'sample');
  const on = fromSamples ? 'the first calibration samples' : 'zeros of the declared shapes';
  const feeds = v.feeds.map((f) => `${f.name} ${f.dtype}[${f.dims.join(',')}]`).join(', ');
  const unread = v.unreadOutputs.length > 0 ? `; not fetched (no JavaScript type): ${v.unreadOutputs.join(', ')}` : '';
  return `verified: ${v.runtime} loaded the model and ran it on ${on} (${feeds})${unread}`;
}
