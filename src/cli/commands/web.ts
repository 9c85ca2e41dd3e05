import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { serveWeb } from '../../node/web-server.js';

export function registerWeb(program: Command): void {
  program
    .command('web')
    .description('serve the quantkit web page on 127.0.0.1: quantize, compare and download models in the browser')
    .option('--port <n>', 'port to listen on (default: any free port)')
    .option('--dir <folder>', "serve this built page folder instead of the package's dist/web")
    .action(async (opts: { port?: string; dir?: string }) => {
      const port = opts.port === undefined ? 0 : Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new QuantkitError('QK_BAD_OPTION', `--port '${opts.port}' is not a port number`, 'e.g. --port 8080');
      const web = await serveWeb({ port, root: opts.dir });
      process.stdout.write(`quantkit web: ${web.url} (serving ${web.root}; Ctrl+C stops)\n`);
      // Runs until interrupted; Ctrl+C ends the process.
      await new Promise<void>((done) => {
        const stop = () => void web.close().then(done);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
