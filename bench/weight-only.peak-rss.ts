// Preloaded (--import) into a child process by weight-only.bench.ts: at exit, writes the
// process's peak RSS (VmHWM, or resourceUsage().maxRSS off Linux) in bytes to $QK_PEAK_RSS_FILE.
import { readFileSync, writeFileSync } from 'node:fs';

const out = process.env.QK_PEAK_RSS_FILE;
if (out) {
  process.on('exit', () => {
    let bytes = process.resourceUsage().maxRSS * 1024;
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
      if (m) bytes = Number(m[1]) * 1024;
    } catch {
      // not Linux: maxRSS above
    }
    writeFileSync(out, String(bytes));
  });
}
