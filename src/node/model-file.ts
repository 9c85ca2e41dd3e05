import { readFileSync, statSync } from 'node:fs';
import { QuantkitError } from '../errors.js';
import { decodeModel } from '../io/onnx/proto.js';
import { readExternalTensorBytes } from '../io/onnx/external.js';
import { modelDirFiles } from './files.js';

// A protobuf message cannot exceed 2 GiB; bigger weights must live in external data files.
const PROTOBUF_LIMIT = 2 ** 31 - 1;

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown';
    throw new QuantkitError('QK_FILE_UNREADABLE', `cannot read '${path}' (${code})`, 'check the path and its permissions');
  }
}

/**
 * Reads an ONNX file and prepares lazy access to its external data (resolved inside the model's
 * folder only). The returned `external` callback reads one tensor's bytes when a pass asks.
 */
export function openOnnxFile(path: string) {
  const size = fileSize(path);
  if (size > PROTOBUF_LIMIT) {
    throw new QuantkitError('QK_ONNX_TOO_LARGE', `${path} is ${size} bytes, over protobuf's 2 GiB limit`, 'store the weights as external data (quantkit convert --external-data) and keep the .onnx small');
  }
  const proto = decodeModel(readFileSync(path), path);
  const files = modelDirFiles(path);
  return {
    proto,
    external: (p: Parameters<typeof readExternalTensorBytes>[0]) => readExternalTensorBytes(p, files),
    close: () => files.close(),
  };
}
