import { rmSync } from 'node:fs';
import { constants } from 'node:os';

/*
 * The temp files and folders this process created and must not leave behind if it dies: an
 * atomic writer's file before its rename, the demo's scratch folder. Creators track a path right
 * after creating it and release it once it is renamed or removed; whatever is still tracked when
 * the process exits (normally, or on SIGINT/SIGTERM/SIGHUP once the CLI installed the handlers)
 * is removed. Only tracked paths are ever touched, so nothing this process did not make goes.
 */

const tracked = new Set<string>();
let exitHookInstalled = false;

/**
 * Marks `path` (a file or folder this process has just created) for removal if the process ends
 * before `untrackTemp(path)`. Untrack it once it is renamed into place or removed by its owner.
 */
export function trackTemp(path: string): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // 'exit' listeners must be synchronous, hence rmSync; this also covers process.exit() paths.
    process.once('exit', removeTrackedTemps);
  }
  tracked.add(path);
}

/** `path` is no longer this process's to remove (renamed into place, or already removed). */
export function untrackTemp(path: string): void {
  tracked.delete(path);
}

/** The paths tracked now (for tests and diagnostics). */
export function trackedTemps(): readonly string[] {
  return [...tracked];
}

/** Removes every tracked path now, synchronously (signal and exit handlers cannot wait for promises); best effort. */
export function removeTrackedTemps(): void {
  for (const path of tracked) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // Dying anyway: one path we cannot remove must not keep the others.
    }
    tracked.delete(path);
  }
}

/** Signals a terminal or a supervisor sends to stop a job. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * For the CLI: on SIGINT, SIGTERM or SIGHUP remove the tracked paths, then exit with the shell's
 * code for death by that signal, 128 + its number (130 for Ctrl-C). Not installed by the library:
 * an application that embeds quantkit owns its own signal handling (and can call
 * removeTrackedTemps from it).
 */
export function cleanUpOnSignals(): void {
  for (const signal of STOP_SIGNALS) {
    process.once(signal, () => {
      removeTrackedTemps();
      process.exit(128 + constants.signals[signal]);
    });
  }
}
