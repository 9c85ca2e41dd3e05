// Child process for large-model.bench.ts: runs one job on a big model and reports its own peak
// RSS, so the parent's memory (which generated the model) does not count.
import { readFileSync } from 'node:fs';
import { convertFile } from '../src/flows/convert.js';
import { inspectModel } from '../src/flows/inspect.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { openOnnxFile } from '../src/node/model-file.js';

function peakRssBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

const [job, input, output, flag] = process.argv.slice(2);
if (job === 'convert' && input && output) {
  // As the CLI: the written model is loaded and run in ONNX Runtime unless --no-verify.
  const r = await convertFile(input, output, { externalData: true, force: true, verify: flag !== '--no-verify' });
  process.stdout.write(`${JSON.stringify({ job, tensors: r.tensors, peakRss: peakRssBytes() })}\n`);
} else if (job === 'inspect' && input) {
  const file = openOnnxFile(input);
  const report = inspectModel(modelFromProto(file.proto, { external: file.external, label: input }));
  file.close();
  process.stdout.write(`${JSON.stringify({ job, parameterBytes: report.parameterBytes, peakRss: peakRssBytes() })}\n`);
} else {
  process.stderr.write('usage: large-model.child.ts convert <in> <out> [--no-verify] | inspect <in>\n');
  process.exit(2);
}
