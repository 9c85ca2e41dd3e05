#!/usr/bin/env node
import { cleanUpOnSignals } from '../node/temp-registry.js';
import { main } from './main.js';

// Ctrl-C or a kill mid-write removes the temp files this run created, then exits 130 / 143.
cleanUpOnSignals();
main(process.argv).then((code) => {
  process.exitCode = code;
});
