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

describe('library entry', () => {
  it('reaches no Node built-in and no Node-only package', () => {
    const modules = [...reachable(join(REPO, 'src/index.ts'))];
    const packages = modules.filter((m) => m.startsWith('pkg:')).map((m) => m.slice(4));
    expect(packages.filter((p) => p.startsWith('node:') || ['fs', 'path', 'os', 'child_process', 'onnxruntime-node'].includes(p))).toEqual([]);
    expect(modules.some((m) => m.includes('/cli/') || m.includes('/node/') || m.includes('/flows/'))).toBe(false);
    expect(modules.length).toBeGreaterThan(20);
  });

  it('quantizes through the public API', async () => {
    const qk = await import('../src/index.js');
    const q = qk.quantize(Float32Array.of(-5, 3, 16, 8), { format: 'nf4', blockSize: 64 });
    expect([...q.codes]).toEqual([4, 9, 15, 12]);
  });
});
