import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { link, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { QuantkitError } from '../errors.js';
import type { OnnxWritePlan } from '../io/onnx/write.js';

/*
 * Writes an ONNX model (and its external data file) planned by io/onnx/write.ts. Both files go to
 * temp files in the target folder first, are fsynced, and only then renamed into place, data file
 * first: a failure at any point before the renames leaves whatever was there untouched, and the
 * new .onnx never appears before the data it points at. Existing outputs are replaced only with
 * `force`; an output that is one of the inputs (same path, or the same file through a link) is
 * refused even with `force`, so inputs are never modified.
 */

export type DataFileNaming = 'onnx.data' | 'onnx_data';

/**
 * The data file name for a model file: 'model.onnx' → 'model.onnx.data' (onnx's default) or
 * 'model.onnx_data' (what transformers.js and Optimum look for).
 */
export function dataFileName(modelPath: string, naming: DataFileNaming = 'onnx.data'): string {
  const base = basename(modelPath);
  if (naming === 'onnx.data') return `${base}.data`;
  return base.endsWith('.onnx') ? `${base}_data` : `${base}.onnx_data`;
}

export interface ModelWriteOptions {
  readonly force: boolean;
  /** Every file the job reads (model and its data files); none may be overwritten. */
  readonly inputs: readonly string[];
}

function errno(e: unknown): string {
  return (e as NodeJS.ErrnoException | undefined)?.code ?? String(e);
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function checkTarget(target: string, opts: ModelWriteOptions): void {
  if (!statOrUndefined(dirname(target))?.isDirectory()) {
    throw new QuantkitError('QK_OUTPUT_DIR_MISSING', `the folder of ${target} does not exist`, 'create the folder first');
  }
  const existing = statOrUndefined(target);
  for (const input of opts.inputs) {
    const inStat = statOrUndefined(input);
    if (resolve(input) === target || (existing && inStat && existing.dev === inStat.dev && existing.ino === inStat.ino)) {
      throw new QuantkitError('QK_OUTPUT_IS_INPUT', `the output ${target} is the input ${input}`, 'write the result to a different file or folder; inputs are never modified');
    }
  }
  if (existing?.isDirectory()) throw new QuantkitError('QK_OUTPUT_IS_DIRECTORY', `the output ${target} is a folder`, 'name a file inside it');
  if (existing && !opts.force) throw new QuantkitError('QK_OUTPUT_EXISTS', `${target} already exists`, 'pass --force to replace it');
}

function writeFailed(path: string, e: unknown): QuantkitError {
  if (e instanceof QuantkitError) return e;
  return new QuantkitError('QK_OUTPUT_WRITE_FAILED', `cannot write ${path} (${errno(e)})`, 'check the folder is writable and the disk has space');
}

/** Streams `chunks` into a fresh temp file beside `target`; returns the temp path. */
async function writeTemp(target: string, chunks: Iterable<Uint8Array>): Promise<string> {
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'wx');
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.length - done);
        done += bytesWritten;
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    return tmp;
  } catch (e) {
    if (handle) await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw writeFailed(target, e);
  }
}

async function publish(tmp: string, target: string, force: boolean): Promise<void> {
  if (force) {
    await rename(tmp, target).catch((e: unknown) => { throw writeFailed(target, e); });
    return;
  }
  // link() fails if the name appeared meanwhile, so a file created during the write is not lost.
  try {
    await link(tmp, target);
  } catch (e) {
    if (errno(e) === 'EEXIST' || statOrUndefined(target)) throw new QuantkitError('QK_OUTPUT_EXISTS', `${target} already exists`, 'pass --force to replace it');
    await rename(tmp, target).catch((e2: unknown) => { throw writeFailed(target, e2); });
    return;
  }
  await unlink(tmp).catch(() => undefined);
}

export interface WrittenModel {
  readonly modelPath: string;
  readonly dataPath: string | undefined;
  readonly dataBytes: number;
}

/**
 * Writes `plan` to `modelPath` (+ its data file, named by plan.dataLocation, in the same folder).
 */
export async function writeOnnxModel(modelPath: string, plan: OnnxWritePlan, opts: ModelWriteOptions): Promise<WrittenModel> {
  const target = resolve(modelPath);
  const dataTarget = plan.external && plan.dataLocation ? join(dirname(target), plan.dataLocation) : undefined;
  checkTarget(target, opts);
  if (dataTarget) checkTarget(dataTarget, opts);
  const temps: string[] = [];
  try {
    const dataTmp = dataTarget ? await writeTemp(dataTarget, plan.dataChunks()) : undefined;
    if (dataTmp) temps.push(dataTmp);
    const modelTmp = await writeTemp(target, plan.modelChunks());
    temps.push(modelTmp);
    if (dataTmp && dataTarget) {
      await publish(dataTmp, dataTarget, opts.force);
      temps.shift();
    }
    await publish(modelTmp, target, opts.force);
    temps.pop();
  } finally {
    for (const t of temps) await unlink(t).catch(() => undefined);
  }
  await syncFolder(dirname(target));
  return { modelPath: target, dataPath: dataTarget, dataBytes: plan.dataSize };
}

async function syncFolder(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await open(dir, 'r');
    await h.sync();
  } catch {
    // Not every platform can fsync a folder; the files themselves are synced.
  } finally {
    await h?.close().catch(() => undefined);
  }
}
