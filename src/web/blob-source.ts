import type { ByteSource } from '../io/source.js';

/*
 * A File or Blob as a ByteSource, read slice by slice as the readers ask (one tensor at a time),
 * never whole: FileReaderSync, which only Web Workers have, keeps ByteSource synchronous.
 */

interface FileReaderSyncLike {
  readAsArrayBuffer(blob: Blob): ArrayBuffer;
}

export function canReadBlobsSync(): boolean {
  return typeof (globalThis as { FileReaderSync?: unknown }).FileReaderSync === 'function';
}

export function blobSource(blob: Blob, label = blob instanceof File ? blob.name : '<blob>'): ByteSource {
  const Reader = (globalThis as unknown as { FileReaderSync?: new () => FileReaderSyncLike }).FileReaderSync;
  if (!Reader) throw new Error('blobSource needs FileReaderSync: call it inside a Web Worker');
  const reader = new Reader();
  return {
    size: blob.size,
    label,
    read: (offset, length) => new Uint8Array(reader.readAsArrayBuffer(blob.slice(offset, offset + length))),
  };
}
