import type { Tensor } from '../tensor/tensor.js';
import { decodeToFloat64 } from '../formats/convert.js';

/** `name dtype[dims] min/mean/max` on one line, for run/compare output. */
export function summarizeTensor(name: string, t: Tensor): string {
  const head = `${name} ${t.dtype}[${t.dims.join(',')}]`;
  if (t.dtype === 'string') return head;
  const values =
    t.data instanceof BigInt64Array || t.data instanceof BigUint64Array
      ? Float64Array.from(t.data as ArrayLike<bigint>, Number)
      : decodeToFloat64(t.dtype, t.data);
  if (values.length === 0) return `${head} (empty)`;
  let min = Infinity,
    max = -Infinity,
    sum = 0,
    nan = 0;
  for (const v of values) {
    if (Number.isNaN(v)) {
      nan++;
      continue;
    }
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  const n = values.length - nan;
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(6));
  return `${head} min ${fmt(min)} mean ${fmt(n ? sum / n : NaN)} max ${fmt(max)}${nan ? ` NaN ${nan}` : ''}`;
}
