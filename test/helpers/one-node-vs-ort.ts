import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';
import { makeModel, type NodeSpec } from '../../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../../src/io/onnx/proto.js';
import { runModel } from '../../src/interp/run.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/**
 * Runs a one-node model (output 'y' of type `out`) in ONNX Runtime and in the interpreter on the
 * same feeds and expects the same dims and the same values, element for element.
 */
export async function expectInterpEqualsOrt(
  node: NodeSpec,
  feeds: Record<string, Tensor>,
  opts: { out: Tensor['dtype']; opsets: Record<string, number>; initializers?: Record<string, Tensor> },
): Promise<void> {
  const bytes = encodeModel(
    makeModel({
      nodes: [node],
      inputs: Object.entries(feeds).map(([name, t]) => ({ name, dtype: t.dtype, dims: [...t.dims] })),
      outputs: [{ name: 'y', dtype: opts.out }],
      initializers: opts.initializers ?? {},
      opsets: opts.opsets,
      irVersion: 10,
    }),
  );
  const session = await ort.InferenceSession.create(bytes);
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(feeds))
    ortFeeds[k] = new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, [...t.dims]);
  const y = (await session.run(ortFeeds)).y!;
  await session.release();
  const got = runModel(decodeModel(bytes), new Map(Object.entries(feeds))).get('y')!;
  expect(got.dims).toEqual(y.dims);
  expect(Array.from(got.data as ArrayLike<number | bigint>)).toEqual(Array.from(y.data as ArrayLike<number | bigint>));
}
