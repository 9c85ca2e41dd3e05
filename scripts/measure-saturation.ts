/*
 * The measurement behind the default weight form (src/passes/activation/weight-form.ts):
 * int8-static (each range method) and int8-dynamic on the shipped CNN and LM and the variant LMs,
 * with each weight form, evaluated in ONNX Runtime.
 *
 *   npx tsx scripts/measure-saturation.ts generate /tmp/sat        # writes the models + index.json
 *   npx tsx scripts/measure-saturation.ts evaluate /tmp/sat        # ORT on this CPU
 *   qemu-x86_64 -cpu Haswell $(which node) --import tsx scripts/measure-saturation.ts evaluate /tmp/sat
 *                                                                 # ORT on its AVX2 (no VNNI) path
 *   npx tsx scripts/measure-saturation.ts interp /tmp/sat [n]      # reference interpreter, native
 *                                                                 # and --emulate avx2-u8s8 (CNNs only)
 *   npx tsx scripts/measure-saturation.ts dots /tmp/sat            # LMs: saturated dot products per
 *                                                                 # integer op, on ORT's activation codes
 * Not part of the test suite: qemu's AVX2 emulation is a measurement aid; the tests use the
 * interpreter's emulation (src/interp/emulate.ts), which needs no particular CPU.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { classifierAccuracy, lmPerplexity } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { removeDeadNodes } from '../src/graph/topology.js';
import { runModel } from '../src/interp/run.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { quantizeDynamic } from '../src/passes/activation/dynamic.js';
import { WEIGHT_FORMS, type WeightForm } from '../src/passes/activation/weight-form.js';
import { foldBatchNorm } from '../src/passes/fold-batchnorm.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { saturatedDots } from '../test/helpers/saturation.js';

const root = new URL('..', import.meta.url).pathname;
const npy = (p: string): Tensor => readNpy(readFileSync(join(root, p)));
const METHODS = ['minmax', 'percentile', 'entropy', 'mse'];

interface Entry {
  file: string;
  model: string;
  kind: 'cnn' | 'lm';
  scheme: string;
  form: WeightForm | 'fp32';
  reduced?: string;
}
const MODELS = [
  { model: 'cnn', kind: 'cnn', path: 'models/cnn.onnx', calib: 'models/cnn-calib-x.npy' },
  { model: 'lm', kind: 'lm', path: 'models/lm.onnx', calib: 'models/lm-calib.npy', evalSet: 'models/lm-eval.npy' },
  {
    model: 'lm-gemm-tied',
    kind: 'lm',
    path: 'test/fixtures/variants/lm-gemm-tied.onnx',
    calib: 'test/fixtures/variants/lm-gemm-tied-calib.npy',
    evalSet: 'test/fixtures/variants/lm-gemm-tied-eval.npy',
  },
  {
    model: 'lm-constants',
    kind: 'lm',
    path: 'test/fixtures/variants/lm-constants.onnx',
    calib: 'models/lm-calib.npy',
    evalSet: 'models/lm-eval.npy',
  },
] as const;

async function generate(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const index: Entry[] = [];
  for (const m of MODELS) {
    const source = readFileSync(join(root, m.path));
    writeFileSync(join(dir, `${m.model}-fp32.onnx`), source);
    index.push({ file: `${m.model}-fp32.onnx`, model: m.model, kind: m.kind, scheme: 'fp32', form: 'fp32' });
    const calib = new Map([[m.kind === 'cnn' ? 'input' : 'input_ids', npy(m.calib)]]);
    const schemes: { scheme: string; activations?: 'int8'; perToken?: boolean; method?: string }[] =
      m.kind === 'cnn'
        ? [
            ...METHODS.map((method) => ({ scheme: `int8-static ${method}`, method })),
            { scheme: 'int8-static minmax s8-act', method: 'minmax', activations: 'int8' as const },
          ]
        : [
            { scheme: 'int8-dynamic' },
            { scheme: 'int8-dynamic per-token', perToken: true },
            { scheme: 'int8-static minmax', method: 'minmax' },
          ];
    for (const s of schemes) {
      for (const form of WEIGHT_FORMS) {
        const model = modelFromProto(decodeModel(source, m.path), { label: m.path });
        let reduced: string;
        if (s.method) {
          const r = await quantizeStatic(model, calib, {
            method: parseCalibMethod(s.method),
            weightForm: form,
            activationType: s.activations,
          });
          reduced = `${r.report.weights.reducedChannels}/${r.report.weights.channels}`;
        } else {
          foldBatchNorm(model);
          const r = quantizeDynamic(model, { weightForm: form, perToken: s.perToken });
          removeDeadNodes(model.graph);
          reduced = `${r.weights.reducedChannels}/${r.weights.channels}`;
        }
        const file = `${m.model}-${s.scheme.replace(/ /g, '_')}-${form}.onnx`;
        writeFileSync(join(dir, file), encodeModel(modelToProto(model)));
        index.push({ file, model: m.model, kind: m.kind, scheme: s.scheme, form, reduced });
      }
    }
  }
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index, null, 1));
}

async function evaluate(dir: string): Promise<void> {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Entry[];
  const x = npy('models/cnn-test-x.npy');
  const y = npy('models/cnn-test-y.npy');
  const refs = new Map<string, Float32Array>();
  for (const e of index) {
    const bytes = readFileSync(join(dir, e.file));
    if (e.kind === 'cnn') {
      const r = await classifierAccuracy(bytes, x, y, refs.get(e.model));
      if (e.form === 'fp32') refs.set(e.model, r.logits);
      console.log(
        `${e.model}\t${e.scheme}\t${e.form}\t${e.reduced ?? ''}\tacc ${(r.accuracy * 100).toFixed(2)} %\tmean|Δlogit| ${(r.meanAbsLogitDiff ?? 0).toFixed(4)}`,
      );
    } else {
      const m = MODELS.find((k) => k.model === e.model);
      const r = await lmPerplexity(bytes, npy(m && 'evalSet' in m ? m.evalSet : ''));
      console.log(`${e.model}\t${e.scheme}\t${e.form}\t${e.reduced ?? ''}\tppl ${r.perplexity.toFixed(4)}`);
    }
  }
}

/** The CNNs in the reference interpreter, native and emulating AVX2's u8×s8 arithmetic. */
function interp(dir: string, count: number): void {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Entry[];
  const xAll = npy('models/cnn-test-x.npy');
  const yAll = npy('models/cnn-test-y.npy');
  const n = Math.min(count, xAll.dims[0] as number);
  const per = xAll.data.length / (xAll.dims[0] as number);
  const x: Tensor = {
    dtype: 'float32',
    dims: [n, ...xAll.dims.slice(1)],
    data: (xAll.data as Float32Array).slice(0, n * per),
  };
  const logits = (file: string, emulate: boolean): Float32Array => {
    const model = decodeModel(readFileSync(join(dir, file)), file);
    const out = runModel(model, new Map([['input', x]]), emulate ? { emulate: 'avx2-u8s8' } : {});
    return [...out.values()][0]?.data as Float32Array;
  };
  const ref = logits('cnn-fp32.onnx', false);
  for (const e of index.filter((k) => k.kind === 'cnn' && k.form !== 'fp32')) {
    for (const emulate of [false, true]) {
      const l = logits(e.file, emulate);
      let ok = 0;
      let d = 0;
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let c = 1; c < 10; c++) if ((l[i * 10 + c] as number) > (l[i * 10 + best] as number)) best = c;
        if (BigInt(best) === (yAll.data as BigInt64Array)[i]) ok++;
        for (let c = 0; c < 10; c++) d += Math.abs((l[i * 10 + c] as number) - (ref[i * 10 + c] as number));
      }
      console.log(
        `${e.model}\t${e.scheme}\t${e.form}\t${emulate ? 'avx2-u8s8' : 'native'}\tacc ${((100 * ok) / n).toFixed(2)} %\tmean|Δlogit| ${(d / (n * 10)).toFixed(4)}`,
      );
    }
  }
}

/** The LMs: per integer op, the dot products the AVX2 kernel would saturate on ORT's own activation codes. */
async function dots(dir: string): Promise<void> {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Entry[];
  for (const e of index.filter((k) => k.kind === 'lm' && k.form !== 'fp32')) {
    const m = MODELS.find((k) => k.model === e.model);
    const w = npy(m && 'evalSet' in m ? m.evalSet : '');
    const [count, len] = w.dims as [number, number];
    const T = len - 1;
    const ids = new BigInt64Array(count * T);
    for (let i = 0; i < count; i++) ids.set((w.data as BigInt64Array).subarray(i * len, i * len + T), i * T);
    const model = modelFromProto(decodeModel(readFileSync(join(dir, e.file)), e.file), { label: e.file });
    const r = await saturatedDots(model, { input_ids: new ort.Tensor('int64', ids, [count, T]) });
    console.log(
      `${e.model}\t${e.scheme}\t${e.form}\tsaturated dot products ${r.saturated} of ${r.dots} (${((100 * r.saturated) / r.dots).toFixed(3)} %)`,
    );
  }
}

const [mode, dir = '/tmp/quantkit-saturation', count] = process.argv.slice(2);
if (mode === 'generate') await generate(dir);
else if (mode === 'evaluate') await evaluate(dir);
else if (mode === 'dots') await dots(dir);
else if (mode === 'interp') interp(dir, Number(count ?? 497));
else console.error('usage: measure-saturation.ts generate|evaluate|interp <dir> [count]');
