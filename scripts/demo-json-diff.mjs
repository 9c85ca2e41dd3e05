// Compares two `quantkit demo --json` outputs value by value, ignoring latency, run time and temp file paths.
// node scripts/demo-json-diff.mjs before.json after.json
import { readFileSync } from 'node:fs';
const IGNORE = /^(latencyMs|latencyRatio|seconds|file)$/;
const [a, b] = process.argv.slice(2).map((f) => JSON.parse(readFileSync(f, 'utf8')));
const diffs = [];
let compared = 0;
function walk(x, y, path) {
  if (typeof x !== typeof y || Array.isArray(x) !== Array.isArray(y)) {
    diffs.push(`${path}: type ${typeof x} vs ${typeof y}`);
    return;
  }
  if (x && typeof x === 'object') {
    const keys = new Set([...Object.keys(x), ...Object.keys(y ?? {})]);
    for (const k of keys) {
      if (IGNORE.test(k)) continue;
      walk(x[k], y?.[k], `${path}.${k}`);
    }
    return;
  }
  compared++;
  if (!Object.is(x, y)) diffs.push(`${path}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`);
}
walk(a, b, '$');
console.log(`${compared} values compared, ${diffs.length} differ`);
for (const d of diffs.slice(0, 30)) console.log(d);
process.exit(diffs.length ? 1 : 0);
