import { toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { makeAttribute } from '../io/onnx/attribute.js';
import { makeModel, makeNode, type NodeSpec } from '../io/onnx/build.js';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AT,
  GraphProtoSchema,
  NodeProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  create,
  type ModelProto,
} from '../io/onnx/proto.js';
import { tensorToProto } from '../io/onnx/tensor.js';
import { makeTensor } from '../tensor/tensor.js';
import {
  attrsFrom,
  findAttr,
  floatAttr,
  floatsAttr,
  int64sAttr,
  intAttr,
  intsAttr,
  makeAttr,
  removeAttr,
  setAttr,
  stringAttr,
  tensorAttr,
} from './attributes.js';
import { modelFromProto } from './from-onnx.js';
import { memoryInitializer, type GraphNode } from './model.js';
import { modelToProto } from './to-onnx.js';

function oneNode(attributes: NonNullable<NodeSpec['attributes']>, opType = 'Conv'): ModelProto {
  return makeModel({
    inputs: [{ name: 'x', dtype: 'float32' }],
    outputs: [{ name: 'y', dtype: 'float32' }],
    nodes: [{ opType, inputs: ['x'], outputs: ['y'], name: 'n1', attributes }],
  });
}

const nodeOf = (p: ModelProto): GraphNode => modelFromProto(p).graph.nodes[0] as GraphNode;

function thrown(f: () => unknown): { code?: string; message?: string } {
  try {
    f();
  } catch (e) {
    return e as { code?: string; message?: string };
  }
  return {};
}

describe('typed attribute getters', () => {
  const n = nodeOf(
    oneNode({
      group: 2,
      pads: [1, 0, 1, 0],
      auto_pad: 'SAME_UPPER',
      alpha: 0.5,
      scales: [1.5, 2.5],
      value: makeTensor('float32', [2], Float32Array.of(3, 4)),
      big: [9223372036854775807n, 1n],
    }),
  );

  it('reads each kind as written, and the fallback (or undefined) when absent', () => {
    expect(intAttr(n, 'group', 1)).toBe(2);
    expect(intAttr(n, 'axis', 7)).toBe(7);
    expect(intAttr(n, 'axis')).toBeUndefined();
    expect(intsAttr(n, 'pads')).toEqual([1, 0, 1, 0]);
    expect(stringAttr(n, 'auto_pad', 'NOTSET')).toBe('SAME_UPPER');
    expect(floatAttr(n, 'alpha', 1)).toBe(0.5);
    expect(floatsAttr(n, 'scales')).toEqual([1.5, 2.5]);
    expect(Array.from(tensorAttr(n, 'value')?.data as Float32Array)).toEqual([3, 4]);
    // int64 beyond 2^53 (Slice's "to the end") stays exact as a bigint.
    expect(int64sAttr(n, 'big')).toEqual([9223372036854775807n, 1n]);
  });

  it('a float reader takes an int (1 and 1.0 are one JS number)', () => {
    expect(floatAttr(n, 'group', 1)).toBe(2);
  });

  it('the wrong kind is QK_BAD_ATTRIBUTE naming node, attribute, wanted kind and what was found', () => {
    expect(thrown(() => intAttr(n, 'alpha', 0))).toMatchObject({
      code: 'QK_BAD_ATTRIBUTE',
      message: "node 'n1' (Conv): attribute 'alpha' should be an int, found a float (0.5)",
    });
    expect(thrown(() => intsAttr(n, 'auto_pad'))).toMatchObject({
      code: 'QK_BAD_ATTRIBUTE',
      message: expect.stringContaining('should be a list of ints, found a string ("SAME_UPPER")'),
    });
    expect(thrown(() => intsAttr(n, 'big'))).toMatchObject({
      code: 'QK_BAD_ATTRIBUTE',
      message: expect.stringContaining("attribute 'big' should be a list of ints"),
    });
    expect(thrown(() => stringAttr(n, 'value'))).toMatchObject({
      code: 'QK_BAD_ATTRIBUTE',
      message: expect.stringContaining('found a tensor (float32 [2])'),
    });
  });
});

describe('attributes across the graph <-> ONNX boundary', () => {
  /** Attributes the IR does not model, or that do not decode: each must come back byte for byte. */
  function oddNode() {
    const body = create(GraphProtoSchema, {
      name: 'then',
      node: [makeNode({ opType: 'Identity', inputs: ['x'], outputs: ['t'] })],
    });
    const graphAttr = create(AttributeProtoSchema, { name: 'then_branch', type: AT.GRAPH, g: body });
    const documented = create(AttributeProtoSchema, { name: 'axis', type: AT.INT, i: 3n, docString: 'kept' });
    const badUtf8 = create(AttributeProtoSchema, { name: 'mode', type: AT.STRING, s: Uint8Array.of(0xff, 0xfe) });
    const untyped = create(AttributeProtoSchema, { name: 'legacy', i: 5n }); // type UNDEFINED (pre-IR-2)
    const tensor = makeAttribute('value', makeTensor('int8', [3], Int8Array.of(-1, 0, 1)));
    return makeNode({
      opType: 'If',
      inputs: ['c'],
      outputs: ['y'],
      name: 'odd',
      attributes: { then_branch: graphAttr, axis: documented, mode: badUtf8, legacy: untyped, value: tensor },
    });
  }

  it('an unchanged node is written back byte for byte, opaque kinds and undecodable values included', () => {
    const proto = makeModel({
      inputs: [{ name: 'c', dtype: 'bool' }],
      outputs: [{ name: 'y', dtype: 'float32' }],
      nodes: [oddNode()],
    });
    const before = toBinary(NodeProtoSchema, proto.graph!.node[0]!);
    const model = modelFromProto(proto);
    const after = toBinary(NodeProtoSchema, modelToProto(model).graph!.node[0]!);
    expect(after).toEqual(before);
    // ... and reading what the IR could not decode is a named error, not a crash.
    const n = model.graph.nodes[0] as GraphNode;
    expect(thrown(() => stringAttr(n, 'mode'))).toMatchObject({
      code: 'QK_BAD_ATTRIBUTE',
      message: expect.stringContaining('found a value that does not decode'),
    });
    expect(thrown(() => intAttr(n, 'then_branch'))).toMatchObject({
      code: 'QK_BAD_ATTRIBUTE',
      message: expect.stringContaining('found a graph'),
    });
    expect(intAttr(n, 'axis')).toBe(3);
  });

  it('attributes a pass makes encode exactly as io/onnx makeAttribute does (the tested ONNX encoder)', () => {
    const t = makeTensor('float32', [2], Float32Array.of(0.25, -1));
    const values = { i: 7, neg: -3, f: 0.7, s: 'floor', t, is: [0, -1, 2], fs: [0.5, 1.25], ss: ['a', 'b'] } as const;
    const model = modelFromProto(oneNode({}, 'Custom'));
    (model.graph.nodes[0] as GraphNode).attributes = [
      ...attrsFrom(values),
      makeAttr('one', 1, 'float'),
      makeAttr('empty', [], 'floats'),
    ];
    const written = modelToProto(model).graph!.node[0]!;
    const want = [
      ...Object.entries(values).map(([k, v]) => makeAttribute(k, v)),
      makeAttribute('one', 1, 'float'),
      makeAttribute('empty', [], 'floats'),
    ];
    expect(written.attribute.map((a) => toBinary(AttributeProtoSchema, a))).toEqual(
      want.map((a) => toBinary(AttributeProtoSchema, a)),
    );
  });

  it('an edited attribute is written from its new value, not from the proto it was read from', () => {
    const model = modelFromProto(oneNode({ axis: 1, keep: 4 }));
    const n = model.graph.nodes[0] as GraphNode;
    setAttr(n, makeAttr('axis', 2));
    setAttr(n, makeAttr('extra', 'x'));
    expect(removeAttr(n, 'keep')?.name).toBe('keep');
    expect(findAttr(n, 'keep')).toBeUndefined();
    const out = modelToProto(model).graph!.node[0]!.attribute;
    expect(out.map((a) => [a.name, a.type])).toEqual([
      ['axis', AT.INT],
      ['extra', AT.STRING],
    ]);
    expect(out[0]!.i).toBe(2n);
  });
});

describe('Initializer.externalData', () => {
  it('gives the location and offset of an unchanged external tensor, undefined for in-model and pass-made ones', () => {
    const external = create(TensorProtoSchema, {
      name: 'w',
      dims: [2n],
      dataType: 1,
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: './data/w.bin' },
        { key: 'offset', value: '4096' },
      ],
    });
    const outside = create(TensorProtoSchema, {
      name: 'v',
      dims: [2n],
      dataType: 1,
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [{ key: 'location', value: '../w.bin' }],
    });
    const inModel = tensorToProto(makeTensor('float32', [2], Float32Array.of(1, 2)));
    inModel.name = 'b';
    const proto = oneNode({});
    proto.graph!.initializer.push(external, outside, inModel);
    const inits = modelFromProto(proto).graph.initializers;
    expect(inits.get('w')?.externalData?.()).toEqual({ location: 'data/w.bin', offset: 4096 });
    expect(inits.get('b')?.externalData?.()).toBeUndefined();
    expect(memoryInitializer('m', makeTensor('float32', [1], Float32Array.of(1))).externalData?.()).toBeUndefined();
    expect(thrown(() => inits.get('v')?.externalData?.())).toMatchObject({
      code: 'QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR',
    });
  });
});
