import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../quant/prng.js';
import { isQuantkitError, type QuantkitError } from '../../errors.js';
import { attributeValue } from './attribute.js';
import {
  ModelProtoSchema,
  TensorProtoSchema,
  decodeModel,
  decodeTensorProto,
  encodeModel,
  encodeTensorProto,
  equals,
} from './proto.js';

const ROOT = '/work/shared/onnx-node-tests';
const CASES = readdirSync(ROOT)
  .filter((c) => c.startsWith('test_'))
  .sort();

function errorOf(f: () => unknown): QuantkitError | undefined {
  try {
    f();
  } catch (e) {
    if (isQuantkitError(e)) return e;
    throw e;
  }
  return undefined;
}

describe('conformance models', () => {
  it(`all ${CASES.length} model.onnx files decode and re-encode to a model that decodes equal`, () => {
    expect(CASES.length).toBe(102);
    for (const c of CASES) {
      const path = join(ROOT, c, 'model.onnx');
      const model = decodeModel(readFileSync(path), path);
      expect(model.graph?.node.length).toBeGreaterThan(0);
      const again = decodeModel(encodeModel(model), `${path} (re-encoded)`);
      expect(equals(ModelProtoSchema, again, model)).toBe(true);
      // Every attribute of every node reads as a plain value.
      for (const node of model.graph?.node ?? [])
        for (const a of node.attribute) attributeValue(a, `${c} ${node.opType}`);
    }
  });

  it('a conformance .pb re-encodes to a tensor proto that decodes equal', () => {
    const path = join(ROOT, 'test_dequantizelinear_int4', 'test_data_set_0', 'input_0.pb');
    const p = decodeTensorProto(readFileSync(path), path);
    expect(equals(TensorProtoSchema, decodeTensorProto(encodeTensorProto(p)), p)).toBe(true);
  });
});

describe('malformed bytes raise QK_ONNX_PARSE', () => {
  const modelPath = join(ROOT, 'test_qlinearconv', 'model.onnx');
  const model = new Uint8Array(readFileSync(modelPath));

  it('every truncation of a model', () => {
    for (let n = 0; n < model.length; n++) {
      const e = errorOf(() => decodeModel(model.subarray(0, n), 'cut.onnx'));
      expect(e?.code, `cut at ${n}`).toBe('QK_ONNX_PARSE');
      expect(e?.message).toMatch(/^cut\.onnx: not a valid ONNX model: /);
    }
  });

  it('random bytes, empty bytes, a text file', () => {
    const rand = prng(1);
    for (let k = 0; k < 50; k++) {
      const bytes = Uint8Array.from({ length: 1 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256));
      expect(errorOf(() => decodeModel(bytes, 'r.onnx'))?.code).toBe('QK_ONNX_PARSE');
    }
    expect(errorOf(() => decodeModel(new Uint8Array(), 'empty.onnx'))?.code).toBe('QK_ONNX_PARSE');
    expect(errorOf(() => decodeModel(new TextEncoder().encode('{"not": "onnx"}\n'), 'x.json'))?.code).toBe(
      'QK_ONNX_PARSE',
    );
    expect(errorOf(() => decodeTensorProto(new TextEncoder().encode('hello'), 'x.pb'))?.message).toMatch(
      /^x\.pb: not a valid ONNX tensor/,
    );
    expect(errorOf(() => decodeTensorProto(new Uint8Array([0x0a, 0xff]), 'y.pb'))?.code).toBe('QK_ONNX_PARSE');
  });

  it('wrong wire types: a string where ir_version (varint) belongs, a bad wire type 7', () => {
    expect(errorOf(() => decodeModel(new Uint8Array([0x0a, 0x01, 0x41]), 'w.onnx'))?.code).toBe('QK_ONNX_PARSE');
    expect(errorOf(() => decodeModel(new Uint8Array([0x0f, 0x00]), 'w.onnx'))?.code).toBe('QK_ONNX_PARSE');
  });
});
