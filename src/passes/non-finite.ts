import { OptionError } from '../errors.js';
import { memoryInitializer, type Initializer, type Model } from '../graph/model.js';
import { consumers } from '../graph/topology.js';

/*
 * NaN and ±Inf in a model's parameters, looked for before any scheme runs, so every scheme treats
 * them one way (an integer or codebook grid cannot hold them; fp16/bf16 can, which used to let a
 * NaN weight through with SQNR "inf"). What counts:
 *   NaN in any float initializer a node reads: it has no meaning as a parameter;
 *   ±Inf in a weight (MatMul/Gemm/Conv/ConvTranspose weight, Gather table). Elsewhere ±Inf is
 *   legitimate: attention masks hold -inf constants.
 * The user picks what happens (`--non-finite`): 'error' (default) refuses, naming the tensor;
 * 'clamp' maps NaN to 0 and ±Inf to the tensor's largest / smallest finite value; 'keep' leaves
 * the values as they are and the tensor (with the nodes reading it) out of quantization.
 */

export type NonFinitePolicy = 'error' | 'clamp' | 'keep';
export const NON_FINITE_POLICIES: readonly NonFinitePolicy[] = ['error', 'clamp', 'keep'];

/** Input slot of the weight for the ops weight quantization rewrites. */
const WEIGHT_SLOTS: Record<string, number> = { MatMul: 1, Gemm: 1, Conv: 1, ConvTranspose: 1, Gather: 0 };

/** Beyond this magnitude a float32 value's square overflows float32 (√3.4028235e38). */
export const FLOAT32_SQUARE_LIMIT = Math.sqrt(3.4028234663852886e38);

export interface NonFiniteTensor {
  readonly name: string;
  /** Flat index and value of the first offending element, and how many there are. */
  readonly index: number;
  readonly value: number;
  readonly count: number;
  /** Names of the nodes reading it. */
  readonly readers: string[];
}

export interface NonFiniteResult {
  readonly found: NonFiniteTensor[];
  readonly notes: string[];
  /** 'keep': weight and node names to add to the scheme's exclude list. */
  readonly exclude: string[];
}

function floatData(init: Initializer): Float32Array | undefined {
  if (init.dtype !== 'float32') return undefined;
  const d = init.load().data;
  return d instanceof Float32Array ? d : undefined;
}

/** Every float32 initializer read by a node that holds NaN anywhere, or ±Inf in a weight slot. */
export function findNonFiniteParameters(model: Model): NonFiniteTensor[] {
  const readers = consumers(model.graph);
  const found: NonFiniteTensor[] = [];
  for (const init of model.graph.initializers.values()) {
    const nodes = readers.get(init.name) ?? [];
    if (init.dtype !== 'float32' || nodes.length === 0) continue;
    const weight = nodes.some((n) => n.domain === '' && n.inputs[WEIGHT_SLOTS[n.opType] ?? -1] === init.name);
    const d = floatData(init) as Float32Array;
    let first = -1;
    let count = 0;
    for (let i = 0; i < d.length; i++) {
      const x = d[i] as number;
      if (x === x && (!weight || x - x === 0)) continue; // NaN fails x === x; ±Inf fails x − x === 0
      if (first < 0) first = i;
      count++;
    }
    if (first >= 0)
      found.push({
        name: init.name,
        index: first,
        value: d[first] as number,
        count,
        readers: nodes.map((n) => n.name),
      });
  }
  return found;
}

/** NaN → 0, ±Inf → the tensor's finite extremes (0 when it has none). */
function clamped(d: Float32Array): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of d)
    if (x - x === 0) {
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  if (lo > hi) lo = hi = 0;
  return d.map((x) => (x !== x ? 0 : x === Infinity ? hi : x === -Infinity ? lo : x));
}

export function nonFiniteError(t: NonFiniteTensor): OptionError {
  const more = t.count > 1 ? ` (${t.count} such values)` : '';
  return new OptionError(
    'QK_NONFINITE_WEIGHTS',
    `tensor '${t.name}' has a non-finite value (${t.value}) at flat index ${t.index}${more}`,
    "fix the model, or pass `nonFinite` clamp (NaN → 0, ±Inf → the tensor's finite extremes) or `nonFinite` keep (leave it unquantized)",
    ['nonFinite'],
  );
}

/** Applies the policy to the model (in place for 'clamp'); 'error' throws on the first tensor found. */
export function resolveNonFinite(model: Model, policy: NonFinitePolicy): NonFiniteResult {
  const found = findNonFiniteParameters(model);
  if (found.length === 0) return { found, notes: [], exclude: [] };
  if (policy === 'error') throw nonFiniteError(found[0] as NonFiniteTensor);
  const list = found.map((t) => `'${t.name}' (${t.count})`).join(', ');
  if (policy === 'keep') {
    return {
      found,
      notes: [`kept as they are and unquantized (\`nonFinite\` keep), holding NaN/±Inf: ${list}`],
      exclude: found.flatMap((t) => [t.name, ...t.readers]),
    };
  }
  for (const t of found) {
    const init = model.graph.initializers.get(t.name) as Initializer;
    const tensor = init.load();
    model.graph.initializers.set(
      t.name,
      memoryInitializer(t.name, { dtype: 'float32', dims: tensor.dims, data: clamped(tensor.data as Float32Array) }),
    );
  }
  return {
    found,
    notes: [`NaN → 0 and ±Inf → the tensor's finite extremes (\`nonFinite\` clamp) in ${list}`],
    exclude: [],
  };
}

/**
 * The first weight (in a weight slot) whose values cannot take part in a float32 sum of products:
 * non-finite, or so large its square overflows. Other tensors may hold ±Inf by design (masks).
 */
export function overflowingWeight(model: Model): { name: string; value: number } | undefined {
  const readers = consumers(model.graph);
  for (const init of model.graph.initializers.values()) {
    const weight = (readers.get(init.name) ?? []).some(
      (n) => n.domain === '' && n.inputs[WEIGHT_SLOTS[n.opType] ?? -1] === init.name,
    );
    const d = weight ? floatData(init) : undefined;
    if (!d) continue;
    for (const x of d) if (!(Math.abs(x) <= FLOAT32_SQUARE_LIMIT)) return { name: init.name, value: x };
  }
  return undefined;
}
