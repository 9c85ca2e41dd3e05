// Layer directions: a layer may import only the layers listed below it in LAYERS.
// Enforced with ESLint's own no-restricted-imports so a wrong import fails `npm run lint`.
import tseslint from 'typescript-eslint';

const LAYERS = {
  formats: ['tensor'],
  tensor: ['formats'],
  kernels: ['formats', 'tensor'],
  quant: ['kernels', 'formats', 'tensor'],
  calib: ['quant', 'kernels', 'formats', 'tensor'],
  train: ['calib', 'quant', 'kernels', 'formats', 'tensor'],
  io: ['formats', 'tensor'],
  // Node adapters (files as ByteSources, atomic writes, ONNX Runtime sessions) for the CLI and flows.
  node: ['io', 'formats', 'tensor'],
  graph: ['io', 'formats', 'tensor'],
  interp: ['graph', 'io', 'kernels', 'quant', 'formats', 'tensor'],
  passes: ['graph', 'interp', 'io', 'calib', 'train', 'quant', 'kernels', 'formats', 'tensor'],
  flows: ['node', 'passes', 'graph', 'interp', 'io', 'calib', 'train', 'quant', 'kernels', 'formats', 'tensor'],
  web: ['flows', 'passes', 'graph', 'interp', 'io', 'calib', 'train', 'quant', 'kernels', 'formats', 'tensor'],
  cli: ['web', 'node', 'flows', 'passes', 'graph', 'interp', 'io', 'calib', 'train', 'quant', 'kernels', 'formats', 'tensor'],
};
const ALL = Object.keys(LAYERS);
// Modules that touch Node APIs may live only where files are allowed: the CLI (and tests/benches).
const NODE_ONLY = ['node:*', 'fs', 'path', 'os', 'child_process', 'onnxruntime-node'];

const layerRules = ALL.map((layer) => {
  const forbidden = ALL.filter((other) => other !== layer && !LAYERS[layer].includes(other));
  const nodeAllowed = layer === 'cli' || layer === 'flows' || layer === 'node';
  return {
    files: [`src/${layer}/**/*.ts`],
    ignores: ['src/**/*.test.ts', 'src/**/*.bench.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          ...forbidden.map((other) => ({
            group: [`**/${other}/**`, `../${other}/*`, `../../${other}/*`],
            message: `layer '${layer}' must not import '${other}' (LAYERS in eslint.config.js: imports point down only)`,
          })),
          ...(nodeAllowed ? [] : [{ group: NODE_ONLY, message: `layer '${layer}' must stay browser-safe: no Node APIs outside cli/, flows/ and node/` }]),
        ],
      }],
    },
  };
});

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
