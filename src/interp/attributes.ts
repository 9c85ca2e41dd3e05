import { QuantkitError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * A node's attributes as plain values (ints may arrive as number or bigint, strings as string or
 * UTF-8 bytes), read through typed accessors that name the node and attribute when a value has
 * the wrong kind. Ops see only this, never protobuf messages.
 */
export class NodeAttributes {
  constructor(
    private readonly values: ReadonlyMap<string, unknown>,
    /** How errors name the node, e.g. `node 'conv1' (#3, Conv)`. */
    readonly where: string,
  ) {}

  has(name: string): boolean {
    return this.values.has(name);
  }

  int(name: string, fallback: number): number {
    const v = this.values.get(name);
    return v === undefined ? fallback : this.asInt(name, v);
  }

  /** An int attribute that has no default: undefined when absent. */
  optionalInt(name: string): number | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : this.asInt(name, v);
  }

  float(name: string, fallback: number): number {
    const v = this.values.get(name);
    if (v === undefined) return fallback;
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    throw this.wrongKind(name, 'a float');
  }

  ints(name: string): number[] | undefined {
    const v = this.values.get(name);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) && !ArrayBuffer.isView(v)) throw this.wrongKind(name, 'a list of ints');
    const list = Array.from(v as ArrayLike<unknown>);
    return list.map((x) => this.asInt(name, x));
  }

  string(name: string, fallback: string): string {
    const v = this.values.get(name);
    if (v === undefined) return fallback;
    if (typeof v === 'string') return v;
    if (v instanceof Uint8Array) return new TextDecoder().decode(v);
    throw this.wrongKind(name, 'a string');
  }

  tensor(name: string): Tensor | undefined {
    const v = this.values.get(name);
    if (v === undefined) return undefined;
    if (typeof v === 'object' && v !== null && 'dtype' in v && 'dims' in v && 'data' in v) return v as Tensor;
    throw this.wrongKind(name, 'a tensor');
  }

  private asInt(name: string, v: unknown): number {
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw this.wrongKind(name, 'an integer');
    return n;
  }

  private wrongKind(name: string, kind: string): QuantkitError {
    return new QuantkitError('QK_BAD_ATTRIBUTE', `${this.where}: attribute '${name}' should be ${kind}`, 'fix the attribute in the model (see the ONNX operator spec)');
  }
}
