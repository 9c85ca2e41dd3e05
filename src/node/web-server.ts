import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QuantkitError } from '../errors.js';

/*
 * `quantkit web`: the built page (dist/web) served on 127.0.0.1 with Node's http module. Files
 * only from inside the folder; the page is cross-origin isolated (COOP/COEP), which lets ONNX
 * Runtime Web use threads. Nothing else: no upload endpoint, the page does its work itself.
 */

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** dist/web of the installed package (found from this module, in dist/ or src/). */
export function defaultWebRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'dist', 'web');
}

export interface WebServer {
  readonly url: string;
  readonly root: string;
  readonly server: Server;
  close(): Promise<void>;
}

export async function serveWeb(
  opts: { root?: string | undefined; port?: number; host?: string } = {},
): Promise<WebServer> {
  const root = resolve(opts.root ?? defaultWebRoot());
  if (!existsSync(join(root, 'index.html')))
    throw new QuantkitError(
      'QK_FILE_NOT_FOUND',
      `the web page is not built: ${join(root, 'index.html')} is missing`,
      'run npm run build:web (npm run build does it too)',
    );
  const realRoot = realpathSync(root);
  const server = createServer((req, res) => {
    let path = '/';
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      path = '\0'; // malformed escapes: answered as not found
    }
    const file = resolve(realRoot, `.${path.endsWith('/') ? `${path}index.html` : path}`);
    const read = req.method === 'GET' || req.method === 'HEAD';
    let body: Buffer | undefined;
    if ((file === realRoot || file.startsWith(realRoot + sep)) && read && !path.includes('\0')) {
      try {
        if (statSync(file).isFile() && realpathSync(file).startsWith(realRoot + sep)) body = readFileSync(file);
      } catch {
        body = undefined;
      }
    }
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-cache',
    };
    if (!body) {
      res.writeHead(read ? 404 : 405, { ...headers, 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, {
      ...headers,
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': body.length,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(
        e.code === 'EADDRINUSE'
          ? new QuantkitError('QK_BAD_OPTION', `port ${opts.port} on ${host} is in use`, 'pick another with `port`')
          : e,
      ),
    );
    server.listen(opts.port ?? 0, host, () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/`,
    root,
    server,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
