import type { Tensor } from '../tensor/tensor.js';
import { elementCount } from '../tensor/tensor.js';
import type { Graph } from './model.js';

/*
 * Tied (shared) weights, which a quantizer must treat once, not once per use:
 *  - one initializer read by several node input slots (a tied embedding read by Gather and, via
 *    Transpose or directly, by the LM head's MatMul);
 *  - byte-identical initializers under different names (exporters that untie on export, e.g.
 *    torch.onnx copying a shared parameter per use). Candidates are grouped by dtype and dims,
 *    hashed one tensor at a time (never two full tensors held but to confirm a hash match), and
 *    confirmed byte by byte.
 */

export interface WeightUse {
  readonly node: string;
  readonly opType: string;
  /** Input slot of the node that reads it. */
  readonly slot: number;
}

export interface SharedWeight {
  readonly name: string;
  readonly uses: WeightUse[];
}

export interface DuplicateWeights {
  /** Names in graph order; the first is the one to keep. */
  readonly names: string[];
  readonly bytes: number;
}

export interface Ties {
  readonly shared: SharedWeight[];
  readonly duplicates: DuplicateWeights[];
}

function bytesOf(t: Tensor): Uint8Array | undefined {
  if (Array.isArray(t.data)) return undefined; // strings: not weights
  const d = t.data as ArrayBufferView;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** 64-bit FNV-1a as two 32-bit halves, over 4-byte words where possible: quick, not cryptographic. */
export function hashBytes(b: Uint8Array): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ b.length;
  const words = b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2) : undefined;
  let i = 0;
  if (words) {
    for (let k = 0; k < words.length; k++) {
      const w = words[k] as number;
      h1 = Math.imul(h1 ^ w, 0x01000193);
      h2 = Math.imul(h2 ^ ((w >>> 16) | (w << 16)), 0x5bd1e995);
    }
    i = words.length * 4;
  }
  for (; i < b.length; i++) {
    h1 = Math.imul(h1 ^ (b[i] as number), 0x01000193);
    h2 = Math.imul(h2 ^ (b[i] as number), 0x5bd1e995);
  }
  return `${(h1 >>> 0).toString(16)}:${(h2 >>> 0).toString(16)}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function findTies(graph: Graph): Ties {
  const uses = new Map<string, WeightUse[]>();
  for (const n of graph.nodes) {
    n.inputs.forEach((input, slot) => {
      if (!graph.initializers.has(input)) return;
      const list = uses.get(input) ?? [];
      list.push({ node: n.name, opType: n.opType, slot });
      uses.set(input, list);
    });
  }
  const shared = [...uses].filter(([, u]) => u.length > 1).map(([name, u]) => ({ name, uses: u }));

  const byShape = new Map<string, string[]>();
  for (const init of graph.initializers.values()) {
    if (init.dtype === 'string' || elementCount(init.dims) === 0) continue;
    const key = `${init.dtype}[${init.dims.join(',')}]`;
    byShape.set(key, [...(byShape.get(key) ?? []), init.name]);
  }
  const duplicates: DuplicateWeights[] = [];
  const load = (name: string) => bytesOf(graph.initializers.get(name)!.load()) ?? new Uint8Array(0);
  for (const names of byShape.values()) {
    if (names.length < 2) continue;
    const byHash = new Map<string, string[]>();
    for (const name of names) {
      const h = hashBytes(load(name));
      byHash.set(h, [...(byHash.get(h) ?? []), name]);
    }
    for (const group of byHash.values()) {
      // Split a hash group into classes of truly equal bytes.
      const classes: { first: Uint8Array; names: string[] }[] = [];
      for (const name of group) {
        if (group.length < 2) break;
        const b = load(name);
        const c = classes.find((k) => sameBytes(k.first, b));
        if (c) c.names.push(name);
        else classes.push({ first: b, names: [name] });
      }
      for (const c of classes) if (c.names.length > 1) duplicates.push({ names: c.names, bytes: c.first.length });
    }
  }
  return { shared, duplicates };
}
