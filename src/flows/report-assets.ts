import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { QuantkitError } from '../errors.js';

/**
 * Chart.js's UMD build (a dependency), read from node_modules at render time and inlined into the
 * report so the HTML file needs no network. Its package exports map hides dist/chart.umd.min.js,
 * so the path is found from the package's main entry (dist/chart.cjs) next to it.
 */
export function loadReportAssets(): { chartJs: string } {
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = require.resolve('chart.js');
  } catch {
    throw new QuantkitError(
      'QK_REPORT_ASSET_MISSING',
      'the chart.js package is not installed',
      'run npm ci (chart.js is a dependency of quantkit)',
    );
  }
  const file = join(dirname(main), 'chart.umd.min.js');
  try {
    return { chartJs: readFileSync(file, 'utf8') };
  } catch {
    throw new QuantkitError('QK_REPORT_ASSET_MISSING', `${file} cannot be read`, 'reinstall chart.js (npm ci)');
  }
}
