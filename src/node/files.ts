import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { link, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { OptionError, QuantkitError } from '../errors.js';
import type { ExternalDataFiles } from '../io/onnx/external.js';
import type { ByteSource } from '../io/source.js';
import { trackTemp, untrackTemp } from './temp-registry.js';

/*
 * Node adapters for files: ByteSources that read at offsets (never the whole file, fine past
 * 2 GiB), the model folder as the only place external data may come from, and atomic writes.
 */

export interface FileSource extends ByteSource {
  readonly path: string;
  close(): void;
}

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException | undefined)?.code ?? String(e);
}

// fs.read refuses lengths of 2 GiB and more in one call; bigger reads go in slices.
const MAX_READ_SLICE = 1 << 30;

/** Opens `path` for random-access reads; `close()` releases the descriptor. */
export function fileSource(path: string): FileSource {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT') throw new QuantkitError('QK_FILE_NOT_FOUND', `${path} does not exist`, 'check the path');
    throw new QuantkitError(
      'QK_FILE_UNREADABLE',
      `cannot open ${path} (${code})`,
      'check the path and its permissions',
    );
  }
  return sourceFromFd(fd, path);
}

function sourceFromFd(fd: number, path: string): FileSource {
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new QuantkitError(
      'QK_FILE_NOT_A_FILE',
      `${path} is not a regular file`,
      'pass a file, not a folder or device',
    );
  }
  const size = st.size;
  let open = true;
  return {
    path,
    label: path,
    size,
    read(offset: number, length: number): Uint8Array {
      if (!open) throw new Error(`read from closed file ${path}`);
      if (
        !Number.isSafeInteger(offset) ||
        !Number.isSafeInteger(length) ||
        offset < 0 ||
        length < 0 ||
        offset + length > size
      ) {
        throw new RangeError(`read(${offset}, ${length}) outside ${path} (${size} bytes)`);
      }
      // A fresh Uint8Array, not Buffer.allocUnsafe: small Buffers share a pool, and callers keep
      // these bytes (and their .buffer) as tensor storage.
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, Math.min(MAX_READ_SLICE, length - done), offset + done);
        if (n === 0) {
          throw new QuantkitError(
            'QK_FILE_TRUNCATED',
            `${path} ended at byte ${offset + done} while reading [${offset}, ${offset + length})`,
            'the file changed or shrank while being read; try again',
          );
        }
        done += n;
      }
      return out;
    },
    close(): void {
      if (open) {
        open = false;
        closeSync(fd);
      }
    },
  };
}

export interface ModelDirFiles extends ExternalDataFiles {
  /** The model folder, symlinks resolved. */
  readonly dir: string;
  open(relativeLocation: string): FileSource;
  /** Closes every file opened so far. */
  close(): void;
}

const OUTSIDE_HINT =
  'external data must live in the model folder or below it; move the file there and use a relative location';

/**
 * External data files for the model at `modelPath`: a location resolves inside the model's folder,
 * and after following every symlink it must still be inside it (a link to /etc/passwd or to a
 * sibling folder is refused). Files are opened once and cached until close().
 */
export function modelDirFiles(modelPath: string): ModelDirFiles {
  const given = dirname(resolve(modelPath));
  let dir: string;
  try {
    dir = realpathSync(given);
  } catch (e) {
    throw new QuantkitError(
      'QK_FILE_NOT_FOUND',
      `model folder ${given} cannot be resolved (${errnoOf(e)})`,
      'check the model path',
    );
  }
  const cache = new Map<string, FileSource>();
  return {
    dir,
    open(relativeLocation: string): FileSource {
      if (
        isAbsolute(relativeLocation) ||
        relativeLocation.split(/[/\\]/).includes('..') ||
        relativeLocation.includes('\0')
      ) {
        throw new QuantkitError(
          'QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR',
          `external data location ${JSON.stringify(relativeLocation)} leaves the model folder ${dir}`,
          OUTSIDE_HINT,
        );
      }
      let real: string;
      try {
        real = realpathSync(join(dir, relativeLocation));
      } catch (e) {
        throw new QuantkitError(
          'QK_EXTERNAL_DATA_NOT_FOUND',
          `external data file ${JSON.stringify(relativeLocation)} is missing from ${dir} (${errnoOf(e)})`,
          'keep the data file next to the .onnx file, as it was exported',
        );
      }
      if (!real.startsWith(dir.endsWith(sep) ? dir : dir + sep)) {
        throw new QuantkitError(
          'QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR',
          `external data location ${JSON.stringify(relativeLocation)} resolves to ${real}, outside the model folder ${dir} (through a symlink)`,
          OUTSIDE_HINT,
        );
      }
      const cached = cache.get(real);
      if (cached) return cached;
      let fd: number;
      try {
        // O_NOFOLLOW: `real` has no symlinks left, so one appearing now is a swap under our feet.
        fd = openSync(real, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
      } catch (e) {
        throw new QuantkitError(
          'QK_FILE_UNREADABLE',
          `cannot open external data ${real} (${errnoOf(e)})`,
          'check the file permissions',
        );
      }
      const src = sourceFromFd(fd, real);
      cache.set(real, src);
      return src;
    },
    close(): void {
      for (const s of cache.values()) s.close();
      cache.clear();
    },
  };
}

export interface WriteOptions {
  /** Replace an existing output. */
  readonly force: boolean;
  /** Files the job reads; the output may be none of them, even with force. */
  readonly inputs?: readonly string[];
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function writeFailed(path: string, e: unknown): QuantkitError {
  if (e instanceof QuantkitError) return e;
  return new QuantkitError(
    'QK_OUTPUT_WRITE_FAILED',
    `cannot write ${path} (${errnoOf(e)})`,
    'check the folder exists, is writable, and the disk has space',
  );
}

function outputExists(target: string): OptionError {
  return new OptionError('QK_OUTPUT_EXISTS', `${target} already exists`, 'pass `force` to replace it', ['force']);
}

/** Refuses a missing folder, an output that is an input (also through links), a folder, or an existing file without force. */
export function checkOutput(target: string, options: WriteOptions): void {
  const folder = statOrUndefined(dirname(target));
  if (!folder?.isDirectory()) {
    throw new QuantkitError(
      'QK_OUTPUT_DIR_MISSING',
      `the folder of ${target} does not exist`,
      'create the folder first',
    );
  }
  const existing = statOrUndefined(target); // follows symlinks: a link to an input is that input
  for (const input of options.inputs ?? []) {
    const inStat = statOrUndefined(input);
    const same =
      resolve(input) === target || (existing && inStat && existing.dev === inStat.dev && existing.ino === inStat.ino);
    if (same) {
      throw new QuantkitError(
        'QK_OUTPUT_IS_INPUT',
        `the output ${target} is the input ${input}`,
        'write the result to a different file; the input is never modified',
      );
    }
  }
  if (existing?.isDirectory())
    throw new QuantkitError('QK_OUTPUT_IS_DIRECTORY', `the output ${target} is a folder`, 'name a file inside it');
  if (existing && !options.force) throw outputExists(target);
}

/**
 * Writes `chunks` to `path` all-or-nothing: into a temp file in the same folder, fsynced, then
 * renamed over the target (so a crash leaves the old file or the new one, never half of one).
 * Without force an existing file is never replaced, even one created while we wrote (hard-link
 * instead of rename, which fails if the name is taken). The temp file is removed on any failure.
 */
export async function writeFileAtomic(
  path: string,
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  options: WriteOptions,
): Promise<void> {
  const target = resolve(path);
  checkOutput(target, options);
  const tmp = await writeTemp(target, chunks);
  try {
    await publish(tmp, target, options.force);
  } finally {
    await removeTemp(tmp);
  }
  await syncFolder(dirname(target));
}

/**
 * Streams `chunks` into a fresh, fsynced temp file beside `target` and returns its path; removes it
 * on failure. Until publish() or removeTemp() the file is tracked, so a signal or exit removes it.
 */
export async function writeTemp(
  target: string,
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): Promise<string> {
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  // Tracked before the open: the file exists as soon as the open runs on libuv's thread pool, and a
  // signal handled before the await resumes would otherwise leave it behind (the name is ours alone:
  // pid and random bytes, opened with 'wx').
  trackTemp(tmp);
  try {
    handle = await open(tmp, 'wx');
  } catch (e) {
    untrackTemp(tmp);
    throw writeFailed(target, e);
  }
  try {
    for await (const chunk of chunks) {
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
    await removeTemp(tmp);
    throw writeFailed(target, e);
  }
}

/** Deletes a temp file from writeTemp() that will not be published (a no-op once it was). */
export async function removeTemp(tmp: string): Promise<void> {
  await unlink(tmp).catch(() => undefined);
  untrackTemp(tmp);
}

/** Moves a finished temp file to `target`; without force, never over a file that exists by then. */
export async function publish(tmp: string, target: string, force: boolean): Promise<void> {
  if (force) {
    await rename(tmp, target).catch((e: unknown) => {
      throw writeFailed(target, e);
    });
    untrackTemp(tmp);
    return;
  }
  try {
    await link(tmp, target);
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'EEXIST') throw outputExists(target);
    // Filesystems without hard links: check again, then rename (a narrow race, the best there is).
    if (statOrUndefined(target)) throw outputExists(target);
    await rename(tmp, target).catch((e2: unknown) => {
      throw writeFailed(target, e2);
    });
    untrackTemp(tmp);
    return;
  }
  await removeTemp(tmp);
}

/** Makes the rename itself durable; best effort (not every platform can fsync a folder). */
export async function syncFolder(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await open(dir, 'r');
    await h.sync();
  } catch {
    // Windows and some filesystems refuse; the data itself is already synced.
  } finally {
    await h?.close().catch(() => undefined);
  }
}
