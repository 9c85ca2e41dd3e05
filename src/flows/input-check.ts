import { OptionError } from '../errors.js';
import { axisBounds, idBounds } from '../graph/input-bounds.js';
import type { Dim, Model, ValueInfo } from '../graph/model.js';
import { elementCount, type Tensor } from '../tensor/tensor.js';

/*
 * User arrays (calib, inputs) checked against the model before anything runs, so a wrong file
 * is a one-line user error naming the input, what the model expects and what was given — not
 * ONNX Runtime's message from a node deep inside the graph. Checked: dtype, rank, fixed dims,
 * the sample count shared by every input, a fixed batch axis against the batch size fed, the
 * longest sequence a positional table allows and token ids against the embedding's rows
 * (graph/input-bounds.ts).
 */

export interface InputCheckOptions {
  /** The option the arrays came from, for messages: 'calib' or 'inputs'. */
  readonly option: string;
  /** Samples per run, and the option that sets it (a fixed batch axis must match it). */
  readonly batchSize?: number | undefined;
  readonly batchOption?: string | undefined;
}

/** An option named in a message, marked for each front end to spell (errors.ts OptionError). */
const marked = (option: string) => `\`${option}\``;

const dimsText = (dims: readonly Dim[]) => `[${dims.map((d) => d ?? '?').join(', ')}]`;
const declared = (v: ValueInfo) => `${v.dtype ?? '?'}${v.dims ? dimsText(v.dims) : '[?]'}`;
const given = (t: Tensor) => `${t.dtype}${dimsText(t.dims)}`;

/** numpy's name for a dtype, for the way out. */
const NUMPY: Partial<Record<string, string>> = {
  float32: 'float32',
  float16: 'float16',
  float64: 'float64',
  int64: 'int64',
  int32: 'int32',
  uint8: 'uint8',
  int8: 'int8',
  bool: 'bool_',
};

export function checkInputArrays(model: Model, data: ReadonlyMap<string, Tensor>, o: InputCheckOptions): void {
  const inputs = model.graph.inputs;
  const named = marked(o.option);
  const options = [o.option];
  if (data.size === 0) {
    throw new OptionError(
      'QK_INPUT_MISSING',
      `no input arrays given (${named})`,
      `pass ${named} [name=]x.npy for ${inputs.map((v) => `'${v.name}' ${declared(v)}`).join(', ')}`,
      options,
    );
  }
  let samples: { name: string; n: number } | undefined;
  for (const [name, t] of data) {
    const v = inputs.find((i) => i.name === name);
    if (!v)
      throw new OptionError(
        'QK_UNKNOWN_INPUT',
        `the model has no input named '${name}' (${named})`,
        `its inputs are: ${inputs.map((i) => i.name).join(', ')}`,
        options,
      );
    const what = `${named} for '${name}' is ${given(t)}`;
    if (v.dtype !== undefined && t.dtype !== v.dtype) {
      throw new OptionError(
        'QK_INPUT_DTYPE',
        `${what}, but the model's input is ${declared(v)}`,
        `save the array as ${v.dtype}${NUMPY[v.dtype] ? ` (numpy: x.astype(np.${NUMPY[v.dtype] as string}))` : ''}`,
        options,
      );
    }
    const batched = o.batchSize !== undefined;
    if (batched && t.dims.length === 0)
      throw new OptionError(
        'QK_INPUT_RANK',
        `${what}, a scalar`,
        `give an array whose first axis is the sample axis, shaped like ${declared(v)}`,
        options,
      );
    if (v.dims && t.dims.length !== v.dims.length) {
      throw new OptionError(
        'QK_INPUT_RANK',
        `${what} (rank ${t.dims.length}), but the model's input is ${declared(v)} (rank ${v.dims.length})`,
        `give a rank-${v.dims.length} array, first axis = samples`,
        options,
      );
    }
    for (const [axis, want] of (v.dims ?? []).entries()) {
      if (!v.dims) break;
      const have = t.dims[axis] as number;
      if (typeof want !== 'number' || want <= 0 || have === want) continue;
      if (axis > 0 || !batched)
        throw new OptionError(
          'QK_INPUT_SHAPE',
          `${what}, but the model's input is ${declared(v)}: axis ${axis} must be ${want}`,
          `give arrays shaped ${dimsText(batched ? ['N', ...v.dims.slice(1)] : v.dims)}`,
          options,
        );
    }
    const batchAxis = v.dims?.[0];
    if (typeof batchAxis === 'number' && batchAxis > 0 && o.batchSize !== undefined && o.batchSize !== batchAxis) {
      const setting = o.batchOption ? `${marked(o.batchOption)} ${batchAxis}` : `batches of ${batchAxis}`;
      throw new OptionError(
        'QK_INPUT_BATCH',
        `the model's input '${name}' is ${declared(v)}: it takes exactly ${batchAxis} sample(s) per run, not ${o.batchSize}`,
        `pass ${setting}`,
        o.batchOption ? [o.batchOption] : [],
      );
    }
    if (batched && typeof batchAxis === 'number' && batchAxis > 0 && (t.dims[0] as number) % batchAxis !== 0) {
      throw new OptionError(
        'QK_INPUT_BATCH',
        `${what}, but the model runs ${batchAxis} sample(s) at a time and ${t.dims[0] as number} is not a multiple`,
        `give a multiple of ${batchAxis} samples`,
        options,
      );
    }
    const n = t.dims[0] as number;
    if (!batched) continue;
    if (samples && samples.n !== n)
      throw new OptionError(
        'QK_INPUT_SAMPLES',
        `${named} arrays hold ${samples.n} samples ('${samples.name}') and ${n} ('${name}')`,
        'give every input the same number of samples (first axis)',
        options,
      );
    samples ??= { name, n };
  }
  for (const b of axisBounds(model.graph)) {
    const t = data.get(b.input);
    const have = t?.dims[b.axis];
    if (!t || have === undefined || have <= b.max) continue;
    const v = inputs.find((i) => i.name === b.input) as ValueInfo;
    const want = dimsText((v.dims ?? t.dims).map((d, i) => (i === b.axis ? `≤${b.max}` : i === 0 ? 'N' : d)));
    const windows = t.dtype === 'int64' && t.dims.length === 2 && b.axis === 1 && have === b.max + 1;
    const hint = windows
      ? `this looks like evaluation windows (${b.max} ids + the next-token targets): give the first ${b.max} columns, x[:, :${b.max}]`
      : `cut axis ${b.axis} to at most ${b.max}`;
    throw new OptionError(
      'QK_INPUT_TOO_LONG',
      `${named} for '${b.input}' is ${given(t)}, but the model takes ${want}: its table '${b.table}' covers ${b.max} positions on axis ${b.axis}`,
      hint,
      options,
    );
  }
  for (const b of idBounds(model.graph)) {
    const t = data.get(b.input);
    if (!t) continue;
    const ids = t.data as BigInt64Array | Int32Array;
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]);
      if (id >= 0 && id < b.rows) continue;
      throw new OptionError(
        'QK_INPUT_ID_RANGE',
        `${named} for '${b.input}' holds id ${id} at flat index ${i}, but the model's table '${b.table}' has ${b.rows} rows`,
        `ids must lie in 0…${b.rows - 1}; was the data made with this model's vocabulary?`,
        options,
      );
    }
  }
}

export interface FiniteSamples {
  readonly data: Map<string, Tensor>;
  /** Samples left out because one of their float inputs holds NaN or ±Inf. */
  readonly dropped: number;
  readonly total: number;
}

/** Whether every element of sample `s` (of `per` elements) is finite. */
function finiteSample(d: Float32Array | Float64Array, s: number, per: number): boolean {
  for (let i = s * per; i < (s + 1) * per; i++) {
    const x = d[i] as number;
    if (x - x !== 0) return false;
  }
  return true;
}

/**
 * Calibration samples with a NaN or ±Inf in any float input are left out (an observer would skip
 * their values one by one anyway, and GPTQ's XᵀX cannot take them); when none is left the data is
 * refused. The caller says how many were dropped.
 */
export function finiteCalibrationSamples(data: ReadonlyMap<string, Tensor>, option = 'calib'): FiniteSamples {
  const first = data.values().next().value;
  const total = first?.dims[0] ?? 0;
  const keep = new Uint8Array(total).fill(1);
  for (const t of data.values()) {
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) continue;
    const per = elementCount(t.dims.slice(1));
    for (let s = 0; s < total; s++) if (keep[s] && !finiteSample(t.data, s, per)) keep[s] = 0;
  }
  const kept = keep.reduce((a, b) => a + b, 0);
  if (kept === total) return { data: new Map(data), dropped: 0, total };
  if (kept === 0) {
    throw new OptionError(
      'QK_CALIB_NON_FINITE',
      `every one of the ${total} ${marked(option)} samples holds NaN or ±Inf`,
      'calibration needs finite data; check how the arrays were made',
      [option],
    );
  }
  const out = new Map<string, Tensor>();
  for (const [name, t] of data) {
    const per = elementCount(t.dims.slice(1));
    const src = t.data as Exclude<Tensor['data'], string[]>;
    const dst = new (src.constructor as new (n: number) => typeof src)(kept * per);
    let at = 0;
    for (let s = 0; s < total; s++) {
      if (!keep[s]) continue;
      (dst as Float32Array).set((src as Float32Array).subarray(s * per, (s + 1) * per), at);
      at += per;
    }
    out.set(name, { dtype: t.dtype, dims: [kept, ...t.dims.slice(1)], data: dst });
  }
  return { data: out, dropped: total - kept, total };
}

/** The note a report carries when samples were dropped. */
export function droppedSamplesNote(r: FiniteSamples, option = 'calib'): string | undefined {
  return r.dropped > 0
    ? `${r.dropped} of ${r.total} ${marked(option)} samples hold NaN or ±Inf and were left out; calibrated on the other ${r.total - r.dropped}`
    : undefined;
}

/**
 * `calib` arrays made ready for a model: checked against its inputs (batches of `batchSize`,
 * default 16 as the calibration runs feed them), samples with NaN/±Inf left out, and the report's
 * note saying so.
 */
export function checkedCalibration(
  model: Model,
  data: ReadonlyMap<string, Tensor>,
  batchSize: number | undefined,
): { data: Map<string, Tensor>; notes: string[] } {
  checkInputArrays(model, data, { option: 'calib', batchSize: batchSize ?? 16, batchOption: 'calibBatch' });
  const finite = finiteCalibrationSamples(data);
  const note = droppedSamplesNote(finite);
  return { data: finite.data, notes: note ? [note] : [] };
}
