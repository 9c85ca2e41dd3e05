import type { Tensor } from '../tensor/tensor.js';
import { intAttr } from './attributes.js';
import type { Graph, GraphNode } from './model.js';
import { consumers, producers } from './topology.js';

/*
 * Bounds on a model's inputs that its declared shapes do not state but its tables imply:
 *   - a sequence axis no longer than a learned table sliced to it: Slice(table, 0, Shape(x)[k])
 *     (torch's `pos[:T]`) or Gather(table, Range(0, Shape(x)[k]))
 *   - integer ids read as Gather indices into a table: each id below the table's row count
 * ONNX Runtime fails on either with a message about broadcasting or indices deep in the graph;
 * found here, the input can be checked before anything runs. Only the exporter patterns above are
 * recognised (directly on a graph input's Shape); anything else yields no bound, never a wrong one.
 */

export interface AxisBound {
  readonly input: string;
  readonly axis: number;
  /** The longest the axis may be. */
  readonly max: number;
  /** The table that sets it. */
  readonly table: string;
}

export interface IdBound {
  readonly input: string;
  /** Ids must lie in [0, rows). */
  readonly rows: number;
  readonly table: string;
}

/** Ops that carry a value (or its elements) through unchanged, as far as these bounds care. */
const PASS_THROUGH = new Set(['Identity', 'Cast', 'Unsqueeze', 'Squeeze', 'Reshape', 'Flatten']);

function intsOf(t: Tensor | undefined): number[] | undefined {
  if (!t || (t.dtype !== 'int64' && t.dtype !== 'int32')) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

class Tracer {
  private readonly made: Map<string, GraphNode>;
  private readonly inputs: Set<string>;

  constructor(readonly graph: Graph) {
    this.made = producers(graph);
    this.inputs = new Set(graph.inputs.map((v) => v.name));
  }

  constant(name: string): number[] | undefined {
    const init = this.graph.initializers.get(name);
    return init && init.dims.length <= 1 ? intsOf(init.load()) : undefined;
  }

  /** The graph input axis whose length `value` (a scalar or one-element tensor) holds, if it is one. */
  dimSource(value: string): { input: string; axis: number } | undefined {
    const n = this.made.get(value);
    if (!n) return undefined;
    if (PASS_THROUGH.has(n.opType)) return this.dimSource(n.inputs[0] ?? '');
    if (n.opType === 'Concat' && n.inputs.length === 1) return this.dimSource(n.inputs[0] ?? '');
    if (n.opType !== 'Gather') return undefined;
    const shape = this.made.get(n.inputs[0] ?? '');
    const index = this.constant(n.inputs[1] ?? '');
    if (!shape || shape.opType !== 'Shape' || index?.length !== 1) return undefined;
    const x = shape.inputs[0] ?? '';
    if (!this.inputs.has(x)) return undefined;
    const start = intAttr(shape, 'start', 0); // Shape-15 may start past axis 0
    const rank = this.graph.inputs.find((v) => v.name === x)?.dims?.length;
    let axis = (index[0] as number) + (start < 0 && rank !== undefined ? start + rank : start);
    if (axis < 0 && rank !== undefined) axis += rank;
    return axis >= 0 ? { input: x, axis } : undefined;
  }

  table(name: string) {
    return this.graph.initializers.get(name);
  }
}

/** Slice(table, starts, ends=Shape(x)[k], axes): x's axis k is at most the table's length there minus the start. */
function sliceBound(t: Tracer, n: GraphNode): AxisBound[] {
  const table = t.table(n.inputs[0] ?? '');
  if (!table || n.inputs.length < 3) return [];
  const starts = t.constant(n.inputs[1] ?? '');
  const rank = table.dims.length;
  const axes = n.inputs[3] ? t.constant(n.inputs[3]) : starts?.map((_, i) => i);
  if (!starts || !axes || axes.length !== starts.length) return [];
  const ends = n.inputs[2] ?? '';
  // One sliced axis: `ends` is the length itself. Several: only a Concat of one-element parts.
  const endParts =
    starts.length === 1 ? [ends] : t.graph.nodes.find((p) => p.outputs[0] === ends && p.opType === 'Concat')?.inputs;
  if (!endParts || endParts.length !== starts.length) return [];
  const bounds: AxisBound[] = [];
  for (const [i, part] of endParts.entries()) {
    const src = t.dimSource(part);
    const start = starts[i] as number;
    const axis = (axes[i] as number) < 0 ? (axes[i] as number) + rank : (axes[i] as number);
    if (!src || start < 0 || axis < 0 || axis >= rank) continue;
    bounds.push({ ...src, max: (table.dims[axis] as number) - start, table: table.name });
  }
  return bounds;
}

/** Gather(table, Range(0, Shape(x)[k], 1)): x's axis k is at most the table's length on the gathered axis. */
function rangeGatherBound(t: Tracer, n: GraphNode, made: Map<string, GraphNode>): AxisBound[] {
  const table = t.table(n.inputs[0] ?? '');
  const range = made.get(n.inputs[1] ?? '');
  if (!table || range?.opType !== 'Range') return [];
  const start = t.constant(range.inputs[0] ?? '');
  const delta = t.constant(range.inputs[2] ?? '');
  const src = t.dimSource(range.inputs[1] ?? '');
  if (!src || start?.length !== 1 || delta?.[0] !== 1 || (start[0] as number) < 0) return [];
  let axis = intAttr(n, 'axis', 0);
  if (axis < 0) axis += table.dims.length;
  const rows = table.dims[axis];
  return rows === undefined ? [] : [{ ...src, max: rows - (start[0] as number), table: table.name }];
}

/** The tightest bound found on each (input, axis). */
export function axisBounds(graph: Graph): AxisBound[] {
  const t = new Tracer(graph);
  const made = producers(graph);
  const best = new Map<string, AxisBound>();
  for (const n of graph.nodes) {
    if (n.domain !== '') continue;
    const found = n.opType === 'Slice' ? sliceBound(t, n) : n.opType === 'Gather' ? rangeGatherBound(t, n, made) : [];
    for (const b of found) {
      const key = `${b.input}\u0000${b.axis}`;
      const seen = best.get(key);
      if (!seen || b.max < seen.max) best.set(key, b);
    }
  }
  return [...best.values()];
}

/** Integer graph inputs read (directly or through PASS_THROUGH ops) as the indices of a Gather on a table. */
export function idBounds(graph: Graph): IdBound[] {
  const readers = consumers(graph);
  const bounds: IdBound[] = [];
  for (const input of graph.inputs) {
    if (input.dtype !== 'int64' && input.dtype !== 'int32') continue;
    let rows: { rows: number; table: string } | undefined;
    const stack = [input.name];
    const seen = new Set<string>();
    while (stack.length > 0) {
      const v = stack.pop() as string;
      if (seen.has(v)) continue;
      seen.add(v);
      for (const n of readers.get(v) ?? []) {
        if (n.domain !== '') continue;
        if (PASS_THROUGH.has(n.opType) && n.inputs[0] === v && n.opType !== 'Cast') stack.push(...n.outputs);
        if (n.opType !== 'Gather' || n.inputs[1] !== v) continue;
        const table = graph.initializers.get(n.inputs[0] ?? '');
        if (!table) continue;
        let axis = intAttr(n, 'axis', 0);
        if (axis < 0) axis += table.dims.length;
        const r = table.dims[axis];
        if (r !== undefined && (!rows || r < rows.rows)) rows = { rows: r, table: table.name };
      }
    }
    if (rows) bounds.push({ input: input.name, ...rows });
  }
  return bounds;
}
