import type { Bnb4Type } from '../../quant/bnb4-quant.js';
import type { NBitsOptions } from '../../quant/nbits-quant.js';

/*
 * Typed keys of weight results computed ahead of the pass (worker threads, GPTQ) and looked up by
 * the handlers: which weight, seen how, quantized with which parameters. Keys are compared field
 * by field; idOf below is the one place one becomes a string (for a Map), and JSON keeps every
 * field apart whatever characters a weight's name holds. Nothing parses a key back: a handler
 * reads the fields it needs from its view.
 */

/** One way of reading a weight as W [K, N]: the initializer, Gemm's transB, and Gemm's alpha. */
export interface ViewId {
  readonly weight: string;
  readonly transposed: boolean;
  readonly alpha: number;
}

export interface NBitsKey {
  readonly kind: 'nbits';
  readonly view: ViewId;
  readonly options: NBitsOptions;
}

export interface Bnb4Key {
  readonly kind: 'bnb4';
  readonly view: ViewId;
  readonly type: Bnb4Type;
  readonly blockSize: number;
  readonly rtn: boolean;
}

export interface Int8Key {
  readonly kind: 'int8';
  readonly weight: string;
  readonly axis: number;
}

export type ResultKey = NBitsKey | Bnb4Key | Int8Key;

/** The nbits result (nbits-handler.ts, gather-handler.ts) for a view and options. */
export const nbitsKey = (view: ViewId, options: NBitsOptions): NBitsKey => ({ kind: 'nbits', view, options });

/** The nf4/fp4 result (bnb4-handler.ts) for a view and options. */
export const bnb4Key = (view: ViewId, type: Bnb4Type, blockSize: number, rtn: boolean): Bnb4Key => ({
  kind: 'bnb4',
  view,
  type,
  blockSize,
  rtn,
});

/** The int8 result (dq-storage.ts) for `weight` along `axis`. */
export const int8Key = (weight: string, axis: number): Int8Key => ({ kind: 'int8', weight, axis });

// Numbers as String() writes them (JSON would turn NaN and ±Infinity alike into null).
const viewFields = (v: ViewId) => [v.weight, v.transposed, String(v.alpha)];

/** A view as a string: equal strings ⇔ equal views (tied sites share one). */
export function viewIdOf(v: ViewId): string {
  return JSON.stringify(viewFields(v));
}

/** A key as a string: equal strings ⇔ equal keys. */
export function idOf(k: ResultKey): string {
  switch (k.kind) {
    case 'nbits': {
      const o = k.options;
      return JSON.stringify([
        k.kind,
        ...viewFields(k.view),
        o.bits,
        o.blockSize,
        o.symmetric,
        o.rtn ?? false,
        o.codeBits ?? o.bits,
      ]);
    }
    case 'bnb4':
      return JSON.stringify([k.kind, ...viewFields(k.view), k.type, k.blockSize, k.rtn]);
    case 'int8':
      return JSON.stringify([k.kind, k.weight, k.axis]);
  }
}

/** Results by typed key. */
export class ResultMap<K extends ResultKey, V> {
  private readonly byId = new Map<string, V>();

  get(key: K): V | undefined {
    return this.byId.get(idOf(key));
  }

  has(key: K): boolean {
    return this.byId.has(idOf(key));
  }

  set(key: K, value: V): this {
    this.byId.set(idOf(key), value);
    return this;
  }

  get size(): number {
    return this.byId.size;
  }
}

export type ReadonlyResultMap<K extends ResultKey, V> = Pick<ResultMap<K, V>, 'get' | 'has' | 'size'>;
