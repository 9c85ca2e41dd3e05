/**
 * Random-access bytes, so readers can pull one tensor at a time from files far larger than
 * memory (or from a browser Blob) without the io layer touching Node APIs itself.
 * Node's file-backed implementation lives with the CLI; `bytesSource` wraps memory.
 */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes at `offset`; callers check bounds against `size` first. */
  read(offset: number, length: number): Uint8Array;
  /** A short name for error messages (a file path, or '<memory>'). */
  readonly label: string;
}

export function bytesSource(bytes: Uint8Array, label = '<memory>'): ByteSource {
  return {
    size: bytes.length,
    label,
    read: (offset, length) => bytes.subarray(offset, offset + length),
  };
}
