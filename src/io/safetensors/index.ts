export { readSafetensorsHeader, readSafetensorsTensor, SAFETENSORS_MAX_HEADER_BYTES } from './read.js';
export type { SafetensorsEntry, SafetensorsHeader } from './read.js';
export { planSafetensors, safetensorsTensorBytes, safetensorsChunks, encodeSafetensors } from './write.js';
export type { SafetensorsPlan, SafetensorsPlanEntry } from './write.js';
export { dtypeFromSafetensors, safetensorsDTypeName, SAFETENSORS_DTYPE_NAMES } from './dtypes.js';
