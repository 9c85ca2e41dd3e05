import type { DType } from '../../tensor/dtype.js';

/**
 * Element type names of the safetensors format (upstream `safetensors::tensor::Dtype`, the
 * reference implementation is the spec) mapped to quantkit dtypes. `F8_E4M3` is the OCP/ONNX
 * "fn" variant (no infinities), as torch.float8_e4m3fn is saved; `F4` is MX FP4 = E2M1, stored
 * two per byte. safetensors has no int4/int2 (quantizers pack those into U8 themselves).
 */
const TO_DTYPE: ReadonlyMap<string, DType> = new Map<string, DType>([
  ['BOOL', 'bool'],
  ['U8', 'uint8'],
  ['I8', 'int8'],
  ['U16', 'uint16'],
  ['I16', 'int16'],
  ['U32', 'uint32'],
  ['I32', 'int32'],
  ['U64', 'uint64'],
  ['I64', 'int64'],
  ['F16', 'float16'],
  ['BF16', 'bfloat16'],
  ['F32', 'float32'],
  ['F64', 'float64'],
  ['F8_E4M3', 'float8e4m3fn'],
  ['F8_E5M2', 'float8e5m2'],
  ['F8_E4M3FNUZ', 'float8e4m3fnuz'],
  ['F8_E5M2FNUZ', 'float8e5m2fnuz'],
  ['F8_E8M0', 'float8e8m0'],
  ['F4', 'float4e2m1'],
]);

const FROM_DTYPE: ReadonlyMap<DType, string> = new Map([...TO_DTYPE].map(([k, v]) => [v, k]));

/** Names the format defines that quantkit has no storage type for (MX FP6 and complex64). */
const KNOWN_UNSUPPORTED: ReadonlySet<string> = new Set(['F6_E2M3', 'F6_E3M2', 'C64']);

export const SAFETENSORS_DTYPE_NAMES: readonly string[] = [...TO_DTYPE.keys()];

export function dtypeFromSafetensors(name: string): DType | undefined {
  return TO_DTYPE.get(name);
}

export function safetensorsDTypeName(dtype: DType): string | undefined {
  return FROM_DTYPE.get(dtype);
}

export function isKnownUnsupportedSafetensorsDType(name: string): boolean {
  return KNOWN_UNSUPPORTED.has(name);
}
