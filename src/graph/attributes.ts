import { QuantkitError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/*
 * Node attributes as typed plain values: the one way passes, shape inference and the interpreter
 * read and write them. ONNX AttributeProtos stay behind the graph ↔ ONNX boundary
 * (graph/from-onnx.ts, graph/to-onnx.ts); an attribute read from a file and left unchanged is
 * written back from its original bytes, and kinds modelled nowhere here (graphs, sparse tensors,
 * type protos, or a value that does not decode) travel as 'opaque' so they still round-trip.
 */

/** int64 values are numbers when a double holds them exactly, else bigints (never rounded). */
export type AttributeValue =
  | { readonly kind: 'int'; readonly value: number | bigint }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'tensor'; readonly value: Tensor }
  | { readonly kind: 'ints'; readonly value: readonly (number | bigint)[] }
  | { readonly kind: 'floats'; readonly value: readonly number[] }
  | { readonly kind: 'strings'; readonly value: readonly string[] }
  | { readonly kind: 'tensors'; readonly value: readonly Tensor[] }
  /** Only from-onnx makes these; `found` says what it holds, for error messages ("a graph"). */
  | { readonly kind: 'opaque'; readonly found: string };

/** Immutable: a pass replaces an attribute (makeAttr, setAttr), never edits one in place. */
export type Attribute = { readonly name: string } & AttributeValue;
export type AttributeKind = Exclude<AttributeValue['kind'], 'opaque'>;

/** What makeAttr accepts; `kind` settles what a JS value cannot say (1 as int or float, []). */
export type AttributeInput =
  number | bigint | string | Tensor | readonly number[] | readonly bigint[] | readonly string[] | readonly Tensor[];

/** Anything that carries attributes; name and opType (or outputs) name it in errors. */
export interface AttributeOwner {
  readonly name: string;
  readonly opType: string;
  readonly outputs: readonly string[];
  attributes: Attribute[];
}

const BAD_ATTRIBUTE_HINT = 'fix the attribute in the model (see the ONNX operator spec)';

export function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && 'dtype' in v && 'dims' in v && 'data' in v;
}

const isSafeIntLike = (v: unknown): v is number | bigint =>
  typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v));
const int64 = (v: number | bigint): number | bigint =>
  typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;

function inferKind(name: string, value: AttributeInput): AttributeKind {
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  if (typeof value === 'bigint') return 'int';
  if (typeof value === 'string') return 'string';
  if (isTensor(value)) return 'tensor';
  const list = value as readonly unknown[];
  if (list.length === 0 || list.every((v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))))
    return 'ints';
  if (list.every((v) => typeof v === 'number')) return 'floats';
  if (list.every((v) => typeof v === 'string')) return 'strings';
  if (list.every(isTensor)) return 'tensors';
  throw new QuantkitError(
    'QK_BAD_ATTRIBUTE',
    `attribute '${name}' mixes value kinds in one list`,
    'give a list of numbers, strings or tensors, or pass the kind explicitly',
  );
}

/**
 * A new attribute. Integers default to 'int' and other numbers to 'float'; pass `kind` when a
 * whole number must be a float or a list is empty.
 */
export function makeAttr(name: string, value: AttributeInput, kind: AttributeKind = inferKind(name, value)): Attribute {
  const misfit = () =>
    new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `attribute '${name}' value does not fit kind '${kind}'`,
      'pass a value of the kind named',
    );
  const list = Array.isArray(value) ? (value as readonly unknown[]) : undefined;
  switch (kind) {
    case 'int':
      if (!isSafeIntLike(value)) throw misfit();
      return { name, kind, value: int64(value) };
    case 'float':
      if (typeof value !== 'number') throw misfit();
      return { name, kind, value };
    case 'string':
      if (typeof value !== 'string') throw misfit();
      return { name, kind, value };
    case 'tensor':
      if (!isTensor(value)) throw misfit();
      return { name, kind, value };
    case 'ints':
      if (!list?.every(isSafeIntLike)) throw misfit();
      return { name, kind, value: list.map(int64) };
    case 'floats':
      if (!list?.every((v) => typeof v === 'number')) throw misfit();
      return { name, kind, value: [...list] };
    case 'strings':
      if (!list?.every((v) => typeof v === 'string')) throw misfit();
      return { name, kind, value: [...list] };
    case 'tensors':
      if (!list?.every(isTensor)) throw misfit();
      return { name, kind, value: [...list] };
  }
}

/** Attributes from a plain object, each kind inferred (see makeAttr). */
export function attrsFrom(values: Readonly<Record<string, AttributeInput>>): Attribute[] {
  return Object.entries(values).map(([k, v]) => makeAttr(k, v));
}

/** How errors name a node: `node 'conv1' (Conv)`. */
export function nodeLabel(node: Pick<AttributeOwner, 'name' | 'opType' | 'outputs'>): string {
  return `node '${node.name || node.outputs[0] || '?'}' (${node.opType})`;
}

function describe(a: Attribute): string {
  switch (a.kind) {
    case 'int':
    case 'float':
      return `${a.kind === 'int' ? 'an int' : 'a float'} (${String(a.value)})`;
    case 'string':
      return `a string (${JSON.stringify(a.value)})`;
    case 'tensor':
      return `a tensor (${a.value.dtype} [${a.value.dims.join(', ')}])`;
    case 'opaque':
      return a.found;
    default:
      return `a list of ${a.kind}`;
  }
}

/**
 * Typed reads of one node's attributes. Each getter returns the fallback (or undefined) when the
 * attribute is absent, and throws QK_BAD_ATTRIBUTE naming the node, the attribute, the kind it
 * wanted and what it found when the attribute has another kind. A float reader takes an int
 * too: 1 and 1.0 are one JS number, so a float given as a plain value may have become an int.
 */
export class AttributeReader {
  constructor(
    private readonly list: readonly Attribute[],
    /** How errors name the node, e.g. `node 'conv1' (#3, Conv)`. */
    readonly where: string,
  ) {}

  has(name: string): boolean {
    return this.list.some((a) => a.name === name);
  }

  get(name: string): Attribute | undefined {
    return this.list.find((a) => a.name === name);
  }

  int(name: string): number | undefined;
  int(name: string, fallback: number): number;
  int(name: string, fallback?: number): number | undefined {
    const a = this.get(name);
    if (!a) return fallback;
    if (a.kind !== 'int' || typeof a.value !== 'number') throw this.wrongKind(a, 'an int');
    return a.value;
  }

  float(name: string): number | undefined;
  float(name: string, fallback: number): number;
  float(name: string, fallback?: number): number | undefined {
    const a = this.get(name);
    if (!a) return fallback;
    if (a.kind === 'float') return a.value;
    if (a.kind === 'int') return Number(a.value);
    throw this.wrongKind(a, 'a float');
  }

  string(name: string): string | undefined;
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined {
    const a = this.get(name);
    if (!a) return fallback;
    if (a.kind !== 'string') throw this.wrongKind(a, 'a string');
    return a.value;
  }

  tensor(name: string): Tensor | undefined {
    const a = this.get(name);
    if (!a) return undefined;
    if (a.kind !== 'tensor') throw this.wrongKind(a, 'a tensor');
    return a.value;
  }

  /** A list of ints that doubles hold exactly (axes, pads, perm ...). */
  ints(name: string): number[] | undefined {
    const a = this.get(name);
    if (!a) return undefined;
    if (a.kind !== 'ints' || a.value.some((v) => typeof v !== 'number')) throw this.wrongKind(a, 'a list of ints');
    return a.value as number[];
  }

  /** A list of int64s, exact whatever their size (Slice ends of INT64_MAX ...). */
  int64s(name: string): bigint[] | undefined {
    const a = this.get(name);
    if (!a) return undefined;
    if (a.kind !== 'ints') throw this.wrongKind(a, 'a list of ints');
    return a.value.map((v) => BigInt(v));
  }

  floats(name: string): number[] | undefined {
    const a = this.get(name);
    if (!a) return undefined;
    if (a.kind === 'floats') return [...a.value];
    if (a.kind === 'ints') return a.value.map(Number);
    throw this.wrongKind(a, 'a list of floats');
  }

  strings(name: string): string[] | undefined {
    const a = this.get(name);
    if (!a) return undefined;
    if (a.kind !== 'strings') throw this.wrongKind(a, 'a list of strings');
    return [...a.value];
  }

  private wrongKind(a: Attribute, wanted: string): QuantkitError {
    const found = a.kind === 'int' && typeof a.value === 'bigint' ? `an int beyond ±2^53 (${a.value})` : describe(a);
    return new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `${this.where}: attribute '${a.name}' should be ${wanted}, found ${found}`,
      BAD_ATTRIBUTE_HINT,
    );
  }
}

export function attributesOf(node: AttributeOwner): AttributeReader {
  return new AttributeReader(node.attributes, nodeLabel(node));
}

export function hasAttr(node: AttributeOwner, name: string): boolean {
  return node.attributes.some((a) => a.name === name);
}

export function findAttr(node: AttributeOwner, name: string): Attribute | undefined {
  return node.attributes.find((a) => a.name === name);
}

export function intAttr(node: AttributeOwner, name: string): number | undefined;
export function intAttr(node: AttributeOwner, name: string, fallback: number): number;
export function intAttr(node: AttributeOwner, name: string, fallback?: number): number | undefined {
  return fallback === undefined ? attributesOf(node).int(name) : attributesOf(node).int(name, fallback);
}

export function floatAttr(node: AttributeOwner, name: string): number | undefined;
export function floatAttr(node: AttributeOwner, name: string, fallback: number): number;
export function floatAttr(node: AttributeOwner, name: string, fallback?: number): number | undefined {
  return fallback === undefined ? attributesOf(node).float(name) : attributesOf(node).float(name, fallback);
}

export function stringAttr(node: AttributeOwner, name: string): string | undefined;
export function stringAttr(node: AttributeOwner, name: string, fallback: string): string;
export function stringAttr(node: AttributeOwner, name: string, fallback?: string): string | undefined {
  return fallback === undefined ? attributesOf(node).string(name) : attributesOf(node).string(name, fallback);
}

export const intsAttr = (node: AttributeOwner, name: string): number[] | undefined => attributesOf(node).ints(name);
export const int64sAttr = (node: AttributeOwner, name: string): bigint[] | undefined => attributesOf(node).int64s(name);
export const floatsAttr = (node: AttributeOwner, name: string): number[] | undefined => attributesOf(node).floats(name);
export const tensorAttr = (node: AttributeOwner, name: string): Tensor | undefined => attributesOf(node).tensor(name);

/** Sets an attribute: replaces the one of the same name where it stands, else appends. */
export function setAttr(node: AttributeOwner, attr: Attribute): void {
  const k = node.attributes.findIndex((a) => a.name === attr.name);
  if (k < 0) node.attributes.push(attr);
  else node.attributes[k] = attr;
}

/** Removes the named attribute and returns it (undefined when absent). */
export function removeAttr(node: AttributeOwner, name: string): Attribute | undefined {
  const a = findAttr(node, name);
  if (a) node.attributes = node.attributes.filter((x) => x !== a);
  return a;
}
