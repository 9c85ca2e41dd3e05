import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers/cli.js';

// The library entry must bundle for a browser: follow its imports and reject any Node module.
function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)) {
      const spec = m[1] as string;
      if (spec.startsWith('.')) stack.push(join(file, '..', spec.replace(/\.js$/, '.ts')));
      else seen.add(`pkg:${spec}`);
    }
  }
  return seen;
}

const NODE_ONLY = ['fs', 'path', 'os', 'child_process', 'worker_threads', 'onnxruntime-node'];

/** The Node built-ins, Node-only packages and node/ or cli/ modules `entry` reaches. */
function nodeReach(entry: string): string[] {
  const modules = [...reachable(join(REPO, entry))];
  return modules.filter((m) =>
    m.startsWith('pkg:')
      ? m.startsWith('pkg:node:') || NODE_ONLY.includes(m.slice(4))
      : m.includes('/src/node/') || m.includes('/src/cli/'),
  );
}

describe('browser-safe flows', () => {
  // The in-memory jobs the web page will run: ONNX Runtime comes in as an argument (flows/runtime.ts).
  for (const entry of [
    'src/flows/quantize.ts',
    'src/flows/calibrate.ts',
    'src/flows/evaluate.ts',
    'src/flows/scheme-handlers.ts',
    'src/flows/activation-quantize.ts',
    'src/flows/model-output.ts',
    'src/flows/compare.ts',
    'src/flows/compress.ts',
    'src/flows/compress-train.ts',
    'src/web/api.ts',
  ]) {
    it(`${entry} reaches no Node built-in, onnxruntime-node, node/ or cli/ module`, () => {
      expect(nodeReach(entry)).toEqual([]);
      expect(reachable(join(REPO, entry)).size).toBeGreaterThan(3); // the walk went past the entry
    });
  }

  it('the walk finds Node imports where they are: the file-to-file twins', () => {
    expect(nodeReach('src/flows/quantize-file.ts')).toEqual(
      expect.arrayContaining(['pkg:node:fs', expect.stringMatching(/\/src\/node\/model-file\.ts$/)]),
    );
    expect(nodeReach('src/flows/evaluate-node.ts')).toEqual(expect.arrayContaining(['pkg:onnxruntime-node']));
  });
});

describe('library entry', () => {
  it('reaches no Node built-in and no Node-only package', () => {
    const modules = [...reachable(join(REPO, 'src/index.ts'))];
    const packages = modules.filter((m) => m.startsWith('pkg:')).map((m) => m.slice(4));
    expect(
      packages.filter(
        (p) => p.startsWith('node:') || ['fs', 'path', 'os', 'child_process', 'onnxruntime-node'].includes(p),
      ),
    ).toEqual([]);
    // flows/qat.ts is the one flow the entry exports (training runs in the page; it takes no runtime).
    const entryFlows = ['/src/flows/qat.ts'];
    expect(
      modules.some(
        (m) =>
          m.includes('/cli/') ||
          m.includes('/node/') ||
          (m.includes('/flows/') && !entryFlows.some((f) => m.endsWith(f))),
      ),
    ).toBe(false);
    expect(modules.length).toBeGreaterThan(20);
  });

  it('quantizes through the public API', async () => {
    const qk = await import('../src/index.js');
    const q = qk.quantize(Float32Array.of(-5, 3, 16, 8), { format: 'nf4', blockSize: 64 });
    expect([...q.codes]).toEqual([4, 9, 15, 12]);
  });
});
