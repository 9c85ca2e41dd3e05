import { Presets, SingleBar } from 'cli-progress';

/*
 * Progress bars on stderr for the flows' progress callbacks: shown when stderr is a terminal, or
 * when forced (--progress).
 */

/** Calibration-style progress: samples per pass, over one or more passes. */
export function progressBar(
  label: string,
  force = false,
): { progress: ((done: number, total: number, pass: number, passes: number) => void) | undefined; stop: () => void } {
  if (!force && !process.stderr.isTTY) return { progress: undefined, stop: () => {} };
  const bar = new SingleBar(
    {
      format: `${label} pass {pass}/{passes} [{bar}] {value}/{total} samples`,
      stream: process.stderr,
      noTTYOutput: force,
      notTTYSchedule: 500,
    },
    Presets.shades_classic,
  );
  let started = false;
  let lastPass = 0;
  return {
    progress: (done, total, pass, passes) => {
      if (!started) {
        bar.start(total, 0, { pass, passes });
        started = true;
      }
      if (pass !== lastPass) {
        bar.setTotal(total);
        lastPass = pass;
      }
      bar.update(done, { pass, passes });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

/**
 * A progress bar for steps counted in items (weights quantized): on stderr when it is a terminal
 * (or `force`, --progress), and only once the work has run for `after` ms, so the many runs that
 * finish in a moment print nothing. The step's name is shown beside the bar.
 */
export function stepProgressBar(
  force = false,
  after = 1000,
): { progress: ((done: number, total: number, step: string) => void) | undefined; stop: () => void } {
  if (!force && !process.stderr.isTTY) return { progress: undefined, stop: () => {} };
  const bar = new SingleBar(
    { format: '{step} [{bar}] {value}/{total}', stream: process.stderr, noTTYOutput: force, notTTYSchedule: 500 },
    Presets.shades_classic,
  );
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
      if (step !== lastStep) {
        bar.setTotal(total);
        lastStep = step;
      }
      bar.update(done, { step });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

/** Training progress: steps with the running loss and accuracy of the epoch (quantkit qat). */
export function trainProgressBar(force = false): {
  progress:
    ((s: { step: number; steps: number; epoch: number; epochLoss: number; epochAccuracy: number }) => void) | undefined;
  stop: () => void;
} {
  if (!force && !process.stderr.isTTY) return { progress: undefined, stop: () => {} };
  const bar = new SingleBar(
    {
      format: 'training [{bar}] {value}/{total} steps | epoch {epoch} | loss {loss} | accuracy {accuracy}',
      stream: process.stderr,
      noTTYOutput: force,
      notTTYSchedule: 500,
    },
    Presets.shades_classic,
  );
  let started = false;
  return {
    progress: (s) => {
      const payload = {
        epoch: s.epoch + 1,
        loss: s.epochLoss.toFixed(4),
        accuracy: `${(s.epochAccuracy * 100).toFixed(2)} %`,
      };
      if (!started) {
        bar.start(s.steps, s.step, payload);
        started = true;
      } else bar.update(s.step, payload);
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
