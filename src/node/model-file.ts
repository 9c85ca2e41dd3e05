import { readFileSync, statSync } from 'node:fs';
import { OptionError, QuantkitError } from '../errors.js';
import { decodeModel, encodeModel, TensorProto_DataLocation } from '../io/onnx/proto.js';
import { readExternalTensorBytes } from '../io/onnx/external.js';
import { modelDirFiles } from './files.js';

// A protobuf message cannot exceed 2 GiB; bigger weights must live in external data files.
const PROTOBUF_LIMIT = 2 ** 31 - 1;

function fileSize(path: string): number {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown';
    throw new QuantkitError(
      'QK_FILE_UNREADABLE',
      `cannot read '${path}' (${code})`,
      'check the path and its permissions',
    );
  }
  if (st.isDirectory())
    throw new QuantkitError(
      'QK_FILE_IS_DIRECTORY',
      `${path} is a directory, not a model file`,
      'give the .onnx file inside it',
    );
  return st.size;
}

/**
 * Reads an ONNX file and prepares lazy access to its external data (resolved inside the model's
 * folder only). The returned `external` callback reads one tensor's bytes when a pass asks.
 */
export function openOnnxFile(path: string) {
  const size = fileSize(path);
  if (size > PROTOBUF_LIMIT) {
    throw new OptionError(
      'QK_ONNX_TOO_LARGE',
      `${path} is ${size} bytes, over protobuf's 2 GiB limit`,
      'store the weights as external data (quantkit convert `externalData`) and keep the .onnx small',
      ['externalData'],
    );
  }
  const proto = decodeModel(readFileSync(path), path);
  const files = modelDirFiles(path);
  return {
    proto,
    external: (p: Parameters<typeof readExternalTensorBytes>[0]) => readExternalTensorBytes(p, files),
    close: () => files.close(),
  };
}

/**
 * The model's bytes with every external tensor read in (from the model's own folder, like
 * openOnnxFile), for consumers that take one buffer: ONNX Runtime given bytes looks for external
 * data in the working directory, and the reference interpreter reads none. A self-contained file
 * comes back as read.
 */
export function readOnnxFileInlined(path: string): Uint8Array {
  const file = openOnnxFile(path);
  try {
    const initializers = file.proto.graph?.initializer ?? [];
    if (!initializers.some((p) => p.dataLocation === TensorProto_DataLocation.EXTERNAL)) return readFileSync(path);
    for (const p of initializers) {
      if (p.dataLocation !== TensorProto_DataLocation.EXTERNAL) continue;
      p.rawData = file.external(p) as Uint8Array<ArrayBuffer>;
      p.dataLocation = TensorProto_DataLocation.DEFAULT;
      p.externalData = [];
    }
    return encodeModel(file.proto);
  } finally {
    file.close();
  }
}
