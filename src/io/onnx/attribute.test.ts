import { describe, expect, it } from 'vitest';
import { isQuantkitError } from '../../errors.js';
import { makeTensor, type Tensor } from '../../tensor/tensor.js';
import { attributeValue, makeAttribute, type AttributeInput, type AttributeKind } from './attribute.js';
import { makeModel } from './build.js';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AT,
  create,
  decodeModel,
  encodeModel,
  type AttributeProto,
} from './proto.js';

/** Through the wire: put the attribute on a node, encode the model, decode it, read the attribute back. */
function throughWire(a: AttributeProto): AttributeProto {
  const bytes = encodeModel(
    makeModel({
      nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'], attributes: { [a.name]: a } }],
      inputs: [],
      outputs: [],
    }),
  );
  const back = decodeModel(bytes).graph?.node[0]?.attribute[0];
  if (!back) throw new Error('attribute lost');
  return back;
}

describe('makeAttribute / attributeValue', () => {
  const cases: [string, AttributeInput, AttributeKind | undefined, AT, unknown][] = [
    ['axis', 1, undefined, AT.INT, 1],
    ['neg', -3n, undefined, AT.INT, -3],
    ['alpha', 0.5, undefined, AT.FLOAT, 0.5],
    ['one_as_float', 1, 'float', AT.FLOAT, 1],
    ['mode', 'constant', undefined, AT.STRING, 'constant'],
    ['pads', [0, 1, -2], undefined, AT.INTS, [0, 1, -2]],
    ['scales', [0.5, 2.25], undefined, AT.FLOATS, [0.5, 2.25]],
    ['empty_floats', [], 'floats', AT.FLOATS, []],
    ['names', ['a', 'β'], undefined, AT.STRINGS, ['a', 'β']],
  ];
  it.each(cases)('%s', (name, value, kind, type, expected) => {
    const a = throughWire(kind ? makeAttribute(name, value, kind) : makeAttribute(name, value));
    expect(a.name).toBe(name);
    expect(a.type).toBe(type);
    expect(attributeValue(a)).toEqual(expected);
  });

  it('an int64 beyond 2^53 stays a bigint, never rounded', () => {
    const big = 2n ** 62n + 1n;
    expect(attributeValue(throughWire(makeAttribute('big', big)))).toBe(big);
    expect(attributeValue(throughWire(makeAttribute('bigs', [1n, big])))).toEqual([1, big]);
  });

  it('tensor and tensor-list attributes', () => {
    const t = makeTensor('int4', [3], new Int8Array([-8, 7, 1]));
    const v = attributeValue(throughWire(makeAttribute('value', t))) as Tensor;
    expect(v.dtype).toBe('int4');
    expect(Array.from(v.data as Int8Array)).toEqual([-8, 7, 1]);
    const list = attributeValue(
      throughWire(makeAttribute('ts', [t, makeTensor('float32', [1], new Float32Array([2]))])),
    ) as Tensor[];
    expect(list.map((x) => x.dtype)).toEqual(['int4', 'float32']);
  });

  it('a graph attribute', () => {
    const g = makeModel({
      nodes: [{ opType: 'Identity', inputs: ['a'], outputs: ['b'] }],
      inputs: [],
      outputs: [],
      graphName: 'body',
    }).graph;
    if (!g) throw new Error('no graph');
    const back = attributeValue(throughWire(makeAttribute('body', g))) as typeof g;
    expect(back.name).toBe('body');
    expect(back.node[0]?.opType).toBe('Identity');
  });

  it('wrong value for an explicit kind, an undefined type, a declared tensor with no tensor: QK_ONNX_BAD_ATTRIBUTE', () => {
    const codes = [
      () => makeAttribute('x', 'text', 'ints'),
      () => makeAttribute('x', 1.5, 'int'),
      () => makeAttribute('x', [1, 'a'] as unknown as string[]),
      () => attributeValue(create(AttributeProtoSchema, { name: 'old' })),
      () => attributeValue(create(AttributeProtoSchema, { name: 't', type: AT.TENSOR })),
      () => attributeValue(create(AttributeProtoSchema, { name: 's', type: AT.STRING, s: new Uint8Array([0xff]) })),
    ].map((f) => {
      try {
        f();
      } catch (e) {
        return isQuantkitError(e) ? e.code : String(e);
      }
      return 'no error';
    });
    expect(codes).toEqual(new Array(6).fill('QK_ONNX_BAD_ATTRIBUTE'));
  });
});
