import { readFileSync } from 'node:fs';
import { QuantkitError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { readNpy } from '../io/npy/npy.js';
import { decodeTensorProto } from '../io/onnx/proto.js';
import { tensorFromProto } from '../io/onnx/tensor.js';

/** `--input [name=]file` as given on the command line. */
export interface InputBinding {
  readonly name: string | undefined;
  readonly path: string;
}

export function parseInputBinding(arg: string): InputBinding {
  // A bare path may itself contain '=' only if it also has a name prefix; names are identifiers.
  const eq = arg.indexOf('=');
  if (eq > 0 && !arg.slice(0, eq).includes('/')) return { name: arg.slice(0, eq), path: arg.slice(eq + 1) };
  return { name: undefined, path: arg };
}

function readBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown';
    if (code === 'EISDIR')
      throw new QuantkitError('QK_FILE_IS_DIRECTORY', `${path} is a directory, not a file`, 'give the file inside it');
    throw new QuantkitError(
      'QK_FILE_UNREADABLE',
      `cannot read '${path}' (${code})`,
      'check the path and its permissions',
    );
  }
}

/** Loads a tensor from `.npy` or an ONNX TensorProto `.pb`, chosen by extension. */
export function readTensorFile(path: string): Tensor {
  const bytes = readBytes(path);
  if (path.endsWith('.npy')) return readNpy(bytes, path);
  if (path.endsWith('.pb')) return tensorFromProto(decodeTensorProto(bytes, path), path);
  throw new QuantkitError(
    'QK_INPUT_FORMAT',
    `'${path}' is neither .npy nor .pb`,
    'give inputs as NumPy .npy or ONNX TensorProto .pb files',
  );
}

export function readModelBytes(path: string): Uint8Array {
  return readBytes(path);
}
