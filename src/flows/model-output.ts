import { sourceProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import type { ModelProto, TensorProto } from '../io/onnx/proto.js';
import {
  planOnnxWrite,
  tensorFromProtoToWrite,
  tensorToWrite,
  type OnnxWritePlan,
  type TensorToWrite,
} from '../io/onnx/write.js';
import { dtypeInfo, storageBytes } from '../tensor/dtype.js';
import { elementCount, type Tensor } from '../tensor/tensor.js';

/*
 * How a quantized model becomes output bytes, shared by the file-to-file CLI path
 * (quantize-file.ts) and the browser (web/api.ts) so both write the very same bytes: the
 * initializers to write and the choice between one file and a data file beside it.
 */

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
export const DEFAULT_EXTERNAL_OUTPUT_BYTES = 2 ** 30;

/** The IR model as a ModelProto skeleton without initializers (for planOnnxWrite). */
export function skeletonOf(model: Model): ModelProto {
  return modelToProto({ ...model, graph: { ...model.graph, initializers: new Map() } });
}

/** Initializers to write: unchanged ones copied from the input; new ones as raw views, no re-encoding. */
export function quantizedTensorsToWrite(model: Model, external: (p: TensorProto) => Uint8Array): TensorToWrite[] {
  return [...model.graph.initializers.values()].map((init): TensorToWrite => {
    const source = sourceProto(init);
    if (source) return tensorFromProtoToWrite(source, init.dtype, external);
    const { bits, kind } = dtypeInfo(init.dtype);
    if (!LITTLE_ENDIAN_HOST || bits < 8 || kind === 'string' || kind === 'bool')
      return tensorToWrite(init.name, init.dtype, init.dims, () => init.load());
    return {
      name: init.name,
      dtype: init.dtype,
      dims: init.dims,
      // Byte-wide and wider element types: the typed array's bytes ARE raw_data (little-endian).
      rawBytes: () => {
        const d = init.load().data as Exclude<Tensor['data'], string[]>;
        return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      },
    };
  });
}

export interface QuantizedOutputOptions {
  /** The input had external data: the output gets a data file too. */
  readonly hadExternal: boolean;
  /** Output weights (bytes) from which a data file is written anyway (default 1 GiB). */
  readonly externalThreshold?: number | undefined;
  /** The data file's name, relative to the model. */
  readonly dataLocation: string;
}

/** The write plan of a quantized model: one file, or with a data file (see QuantizeFileOptions). */
export function planQuantizedOutput(
  model: Model,
  external: (p: TensorProto) => Uint8Array,
  o: QuantizedOutputOptions,
): OnnxWritePlan {
  const tensors = quantizedTensorsToWrite(model, external);
  const bytesOut = tensors.reduce((sum, t) => sum + storageBytes(t.dtype, elementCount(t.dims)), 0);
  const externalData = o.hadExternal || bytesOut >= (o.externalThreshold ?? DEFAULT_EXTERNAL_OUTPUT_BYTES);
  return planOnnxWrite(skeletonOf(model), tensors, {
    externalData: externalData ? true : 'auto',
    dataLocation: o.dataLocation,
  });
}
