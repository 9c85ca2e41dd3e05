import { describe, expect, it } from 'vitest';
import { create, TensorProto_DataLocation, TensorProtoSchema, type TensorProto } from './proto.js';
import { tensorFromProto } from './tensor.js';

/* External data read into a buffer of its own becomes the tensor's storage; shared bytes are copied. */

function externalProto(dataType: number, dims: number[]): TensorProto {
  return create(TensorProtoSchema, {
    name: 'w',
    dataType,
    dims: dims.map(BigInt),
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [{ key: 'location', value: 'w.bin' }],
  });
}

describe('tensorFromProto with external data', () => {
  const values = Float32Array.of(1.5, -2, 3.25, 0);
  it('a fresh buffer (offset 0, whole ArrayBuffer) is viewed, not copied', () => {
    const raw = new Uint8Array(values.slice().buffer);
    const t = tensorFromProto(externalProto(1, [2, 2]), undefined, { external: () => raw });
    expect(t.data).toBeInstanceOf(Float32Array);
    expect((t.data as Float32Array).buffer).toBe(raw.buffer);
    expect(Array.from(t.data as Float32Array)).toEqual(Array.from(values));
  });
  it('bytes inside a larger buffer are copied (the buffer may be shared)', () => {
    const big = new Uint8Array(8 + 16);
    big.set(new Uint8Array(values.buffer), 8);
    const raw = big.subarray(8);
    const t = tensorFromProto(externalProto(1, [4]), undefined, { external: () => raw });
    expect((t.data as Float32Array).buffer).not.toBe(big.buffer);
    expect(Array.from(t.data as Float32Array)).toEqual(Array.from(values));
    const u = tensorFromProto(externalProto(1, [2]), undefined, {
      external: () => new Uint8Array(values.buffer, 0, 8),
    });
    expect((u.data as Float32Array).buffer).not.toBe(values.buffer); // a prefix of a bigger buffer
  });
  it('int8 and int64 fresh buffers are viewed too, with the right element type', () => {
    const i8 = new Uint8Array([255, 1, 128]);
    const t = tensorFromProto(externalProto(3, [3]), undefined, { external: () => i8 });
    expect(t.data).toBeInstanceOf(Int8Array);
    expect(Array.from(t.data as Int8Array)).toEqual([-1, 1, -128]);
    const i64 = new Uint8Array(BigInt64Array.of(-5n, 7n).buffer);
    const u = tensorFromProto(externalProto(7, [2]), undefined, { external: () => i64 });
    expect(u.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(u.data as BigInt64Array)).toEqual([-5n, 7n]);
  });
});
