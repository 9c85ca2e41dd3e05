import { Presets, SingleBar } from 'cli-progress';

/**
 * A progress bar for steps counted in items (weights quantized): on stderr when it is a terminal
 * (or `force`, --progress), and only once the work has run for `after` ms, so the many runs that
 * finish in a moment print nothing. The step's name is shown beside the bar.
 */
export function stepProgressBar(force = false, after = 1000): { progress: ((done: number, total: number, step: string) => void) | undefined; stop: () => void } {
  if (!force && !process.stderr.isTTY) return { progress: undefined, stop: () => {} };
  const bar = new SingleBar({ format: '{step} [{bar}] {value}/{total}', stream: process.stderr, noTTYOutput: force, notTTYSchedule: 500 }, Presets.shades_classic);
  const t0 = performance.now();
  let started = false;
  let lastStep = '';
  return {
    progress: (done, total, step) => {
      if (!started) {
        if (!force && performance.now() - t0 < after) return;
        bar.start(total, done, { step });
        started = true;
        lastStep = step;
        return;
      }
      if (step !== lastStep) { bar.setTotal(total); lastStep = step; }
      bar.update(done, { step });
    },
    stop: () => { if (started) bar.stop(); },
  };
}
