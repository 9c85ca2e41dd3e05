import { QuantkitError } from '../errors.js';
import {
  SCHEMES as WEIGHT_ONLY_SCHEMES,
  type SchemeName as WeightOnlySchemeName,
} from '../passes/weight-only/scheme.js';

/*
 * Every scheme `quantize` takes, one row each: its family (which job runs it), the options only
 * some schemes read (so a front end can refuse one given to a scheme that would ignore it), and
 * its handler kind (SCHEME_HANDLERS in scheme-handlers.ts). The weight-only rows name their
 * parameters in passes/weight-only/scheme.ts, which the passes read; `satisfies` below makes
 * the compiler ask for a row here for each of them, and for a handler for each kind.
 */

/** Options in library terms (WeightOnlyOptions, StaticQuantOptions ...); cli/ maps them to flags. */
export type SchemeOption =
  | 'blockSize'
  | 'quantizeEmbeddings'
  | 'doubleQuant'
  | 'format'
  | 'rtn'
  | 'accuracyLevel'
  | 'actOrder'
  | 'report'
  | 'method'
  | 'smoothQuant'
  | 'activationType'
  | 'dynamicForm'
  | 'perToken'
  | 'target'
  | 'minConvReduction'
  | 'hqq'
  | 'awq'
  | 'outliers'
  | 'bits'
  | 'perChannel'
  | 'seed';

export type SchemeFamily = 'weight-only' | 'activation';

/** Options read by the schemes of one family only, in the order a front end checks them. */
export const WEIGHT_ONLY_OPTIONS = [
  'blockSize',
  'quantizeEmbeddings',
  'doubleQuant',
  'format',
  'rtn',
  'accuracyLevel',
  'actOrder',
  'report',
  'hqq',
  'awq',
  'outliers',
] as const satisfies readonly SchemeOption[];
export const ACTIVATION_OPTIONS = [
  'method',
  'smoothQuant',
  'activationType',
  'dynamicForm',
  'perToken',
  'target',
  'minConvReduction',
] as const satisfies readonly SchemeOption[];

/** What the kmeans scheme reads (codebooks are per tensor or per channel, never blocked). */
export const KMEANS_OPTIONS = ['bits', 'perChannel', 'seed'] as const satisfies readonly SchemeOption[];

/** How a scheme's rewrite runs (scheme-handlers.ts): the weight pass or the whole-graph fp16 conversion ... */
export type WeightOnlyHandlerKind = 'weights' | 'fp16';
/** ... or calibration-side rewrites, one per activation scheme. */
export type ActivationHandlerKind = 'int8-dynamic' | 'int8-static' | 'int4-static' | 'int3-static';

export type SchemeRow =
  | {
      readonly family: 'weight-only';
      readonly options: readonly SchemeOption[];
      readonly handler: WeightOnlyHandlerKind;
    }
  | {
      readonly family: 'activation';
      readonly options: readonly SchemeOption[];
      readonly handler: ActivationHandlerKind;
    };

const weightOnly = (handler: WeightOnlyHandlerKind = 'weights') =>
  ({ family: 'weight-only', options: WEIGHT_ONLY_OPTIONS, handler }) as const satisfies SchemeRow;
const activation = (handler: ActivationHandlerKind) =>
  ({ family: 'activation', options: ACTIVATION_OPTIONS, handler }) as const satisfies SchemeRow;

/** In the order help texts list them. */
export const SCHEME_TABLE = {
  int8: weightOnly(),
  q4: weightOnly(),
  'q4-asym': weightOnly(),
  'q8-block': weightOnly(),
  'q8-block-asym': weightOnly(),
  q3: weightOnly(),
  'q3-asym': weightOnly(),
  q2: weightOnly(),
  'q2-asym': weightOnly(),
  'q4-k': weightOnly(),
  'q3-spqr': weightOnly(),
  nf4: weightOnly(),
  fp4: weightOnly(),
  fp16: weightOnly('fp16'),
  bf16: weightOnly(),
  fp8: weightOnly(),
  'fp8-e5m2': weightOnly(),
  kmeans: { family: 'weight-only', options: KMEANS_OPTIONS, handler: 'weights' },
  'int8-dynamic': activation('int8-dynamic'),
  'int8-static': activation('int8-static'),
  'int4-static': activation('int4-static'),
  'int3-static': activation('int3-static'),
} as const satisfies Record<WeightOnlySchemeName | ActivationHandlerKind, SchemeRow>;

export type AnySchemeName = keyof typeof SCHEME_TABLE;
export type ActivationScheme = {
  [K in AnySchemeName]: (typeof SCHEME_TABLE)[K]['family'] extends 'activation' ? K : never;
}[AnySchemeName];
export const ALL_SCHEME_NAMES = Object.keys(SCHEME_TABLE) as AnySchemeName[];

export function isSchemeName(name: string): name is AnySchemeName {
  return Object.hasOwn(SCHEME_TABLE, name);
}

export const ACTIVATION_SCHEMES = ALL_SCHEME_NAMES.filter(
  (n): n is ActivationScheme => SCHEME_TABLE[n].family === 'activation',
);

export function isActivationScheme(name: string): name is ActivationScheme {
  return isSchemeName(name) && SCHEME_TABLE[name].family === 'activation';
}

export function isWeightOnlyScheme(name: string): name is WeightOnlySchemeName {
  return isSchemeName(name) && SCHEME_TABLE[name].family === 'weight-only' && Object.hasOwn(WEIGHT_ONLY_SCHEMES, name);
}

export function schemeRow(name: string): SchemeRow {
  if (!isSchemeName(name))
    throw new QuantkitError(
      'QK_UNKNOWN_SCHEME',
      `unknown scheme '${name}'`,
      `use one of ${ALL_SCHEME_NAMES.join(', ')}`,
    );
  return SCHEME_TABLE[name];
}

/** The schemes of a family, by name (for messages such as "it is for int8-dynamic and int8-static"). */
export function schemesOf(family: SchemeFamily): AnySchemeName[] {
  return ALL_SCHEME_NAMES.filter((n) => SCHEME_TABLE[n].family === family);
}
