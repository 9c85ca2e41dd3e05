import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers/cli.js';

/*
 * `import … from 'quantkit'` in a browser bundle: esbuild (platform browser) resolves the package
 * through its "browser" export condition and must reach no Node built-in and no `node:` module.
 * The condition names a built file (dist/…js); the bundle is made from its source twin (src/…ts)
 * so the check needs no build.
 */

const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  exports: Record<string, { browser?: { default: string } }>;
};

/** 'quantkit' → the browser condition's file, as its TypeScript source. */
const quantkitPackage: Plugin = {
  name: 'quantkit-browser-export',
  setup(b) {
    b.onResolve({ filter: /^quantkit$/ }, () => {
      const built = pkg.exports['.']?.browser?.default ?? '';
      return { path: join(REPO, built.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')) };
    });
  },
};

const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/**
 * True when the importer's own package maps `name` to false in its package.json "browser" field
 * (TensorFlow.js and seedrandom do for their guarded Node-only requires): bundlers then resolve it
 * to an empty module, which is no polyfill. Our own sources get no such pass.
 */
function emptiedByImporterPackage(importer: string, name: string): boolean {
  const m = /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(importer);
  if (!m?.[1]) return false;
  const browser = (JSON.parse(readFileSync(join(m[1], 'package.json'), 'utf8')) as { browser?: unknown }).browser;
  return typeof browser === 'object' && browser !== null && (browser as Record<string, unknown>)[name] === false;
}

describe('browser bundle of the library', () => {
  it("'quantkit' under the browser condition bundles with no Node built-in or node: import", async () => {
    const nodeImports: string[] = [];
    const r = await build({
      stdin: {
        contents: `import { quantizeModelBytes, inspectModelBytes, compareModelBytes, ortWebRuntime } from 'quantkit';
          globalThis.qk = { quantizeModelBytes, inspectModelBytes, compareModelBytes, ortWebRuntime };`,
        resolveDir: REPO,
        loader: 'ts',
      },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
      plugins: [
        quantkitPackage,
        {
          // Record (and keep out) every Node module reached, so the failure names them all.
          name: 'node-imports',
          setup(b) {
            b.onResolve({ filter: /.*/ }, (a) => {
              if (!NODE_BUILTINS.has(a.path) && !a.path.startsWith('node:')) return undefined;
              if (emptiedByImporterPackage(a.importer, a.path)) return undefined;
              nodeImports.push(`${a.path} (from ${a.importer.replace(REPO, '')})`);
              return { path: a.path, external: true };
            });
          },
        },
      ],
    });
    expect(pkg.exports['.']?.browser?.default).toBe('./dist/browser.js');
    expect(nodeImports).toEqual([]);
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.some((f) => f.includes('src/web/api.ts'))).toBe(true);
    expect(inputs.filter((f) => f.includes('onnxruntime') || /src\/(node|cli)\//.test(f))).toEqual([]);
    expect(r.outputFiles[0]?.text.length).toBeGreaterThan(100_000);
  });
});
