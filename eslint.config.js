// Layer directions: a layer may import only the layers listed below it in LAYERS.
// Enforced with ESLint's own no-restricted-imports so a wrong import fails `npm run lint`.
import tseslint from 'typescript-eslint';

const LAYERS = {
  formats: ['tensor'],
  tensor: ['formats'],
  // Quantizers as plain functions over arrays: the references, independent of their fast twins.
  quant: ['formats', 'tensor'],
  // Fast twins of quant/'s references (WebAssembly, ...) and the dispatch between twin and reference.
  kernels: ['quant', 'formats', 'tensor'],
  calib: ['quant', 'kernels', 'formats', 'tensor'],
  train: ['calib', 'quant', 'kernels', 'formats', 'tensor'],
  io: ['formats', 'tensor'],
  // Node adapters (files as ByteSources, atomic writes, ONNX Runtime sessions) for the CLI and flows.
  node: ['io', 'formats', 'tensor'],
  // The IR: io/ (ONNX protos) only through the boundary files in ONNX_BOUNDARY below.
  graph: ['formats', 'tensor'],
  // The interpreter and the passes work on the IR and never see ONNX protos.
  interp: ['graph', 'kernels', 'quant', 'formats', 'tensor'],
  passes: ['graph', 'interp', 'calib', 'train', 'quant', 'kernels', 'formats', 'tensor'],
  flows: ['node', 'passes', 'graph', 'interp', 'io', 'calib', 'train', 'quant', 'kernels', 'formats', 'tensor'],
  web: ['flows', 'passes', 'graph', 'interp', 'io', 'calib', 'train', 'quant', 'kernels', 'formats', 'tensor'],
  cli: [
    'web',
    'node',
    'flows',
    'passes',
    'graph',
    'interp',
    'io',
    'calib',
    'train',
    'quant',
    'kernels',
    'formats',
    'tensor',
  ],
};
const ALL = Object.keys(LAYERS);
// Modules that touch Node APIs may live only where files are allowed: the CLI (and tests/benches).
const NODE_ONLY = ['node:*', 'fs', 'path', 'os', 'child_process', 'onnxruntime-node'];

/*
 * The graph <-> ONNX boundary: the only graph/ files that read or write ONNX protos (io/onnx).
 * The IR itself (model.ts) holds an unchanged initializer's proto as an opaque SourceTensor.
 */
const ONNX_BOUNDARY = ['src/graph/from-onnx.ts', 'src/graph/to-onnx.ts'];
const TESTS = ['src/**/*.test.ts', 'src/**/*.bench.ts'];

/*
 * flows/ is browser-safe except these modules, the Node side of its jobs (files, worker threads,
 * onnxruntime-node bound in): the in-memory jobs (quantize.ts, calibrate.ts, evaluate.ts ...) take
 * the runtime as an argument and reach no Node API, so the web page can bundle them.
 */
const NODE_FLOWS = [
  'accuracy-level-node',
  'activation-file',
  'bench-node',
  'calibrate-node',
  'compress-file',
  'convert',
  'demo',
  'demo-models',
  'evaluate-node',
  'gptq',
  'model-latency-node',
  'awq-node',
  'mixed-file',
  'quantize-file',
  'quantize-pool',
  'quantize-report',
  'quantize-worker',
  'report-assets',
  'transformersjs-file',
  'verify-output',
].map((m) => `src/flows/${m}.ts`);

function layerPattern(layer, other) {
  return {
    group: [`**/${other}/**`, `../${other}/*`, `../../${other}/*`],
    message: `layer '${layer}' must not import '${other}' (LAYERS in eslint.config.js: imports point down only)`,
  };
}

/** The import rule for files of `layer`, which may also import the layers in `extra`. */
function restrict(layer, files, ignores, extra = [], browserSafe = false) {
  const forbidden = ALL.filter(
    (other) =>
      other !== layer &&
      (browserSafe ? other === 'node' || !LAYERS[layer].includes(other) : !LAYERS[layer].includes(other)) &&
      !extra.includes(other),
  );
  const nodeAllowed = !browserSafe && (layer === 'cli' || layer === 'flows' || layer === 'node');
  return {
    files,
    ignores,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...forbidden.map((other) => layerPattern(layer, other)),
            ...(nodeAllowed
              ? []
              : [
                  {
                    group: NODE_ONLY,
                    message: browserSafe
                      ? `this flows/ module must stay browser-safe (it is not in NODE_FLOWS in eslint.config.js): no Node APIs, node/ or onnxruntime-node; take the runtime as an argument`
                      : `layer '${layer}' must stay browser-safe: no Node APIs outside cli/, flows/ and node/`,
                  },
                ]),
          ],
        },
      ],
    },
  };
}

const layerRules = [
  ...ALL.map((layer) =>
    restrict(
      layer,
      [`src/${layer}/**/*.ts`],
      [...TESTS, ...(layer === 'graph' ? ONNX_BOUNDARY : []), ...(layer === 'flows' ? NODE_FLOWS : [])],
      [],
      layer === 'flows',
    ),
  ),
  restrict('flows', NODE_FLOWS, TESTS),
  restrict('graph', ONNX_BOUNDARY, TESTS, ['io']),
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'models/**', 'scripts/**/*.py'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  ...layerRules,
);
