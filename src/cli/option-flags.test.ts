import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCalibMethod } from '../calib/method.js';
import { OptionError, QuantkitError } from '../errors.js';
import { writeFileAtomic } from '../node/files.js';
import { cliWording, formatCliError, inCliWords } from './option-flags.js';

const root = mkdtempSync(join(tmpdir(), 'qk-option-flags-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The error a call throws (the test fails when it throws none). */
async function thrown(f: () => unknown): Promise<QuantkitError> {
  try {
    await f();
  } catch (e) {
    if (e instanceof QuantkitError) return e;
    throw e;
  }
  throw new Error('expected a QuantkitError');
}

describe('cliWording', () => {
  it('prints each marked option as its flag, every mention', () => {
    expect(cliWording('pass `nonFinite` clamp or `nonFinite` keep')).toBe(
      'pass --non-finite clamp or --non-finite keep',
    );
    expect(cliWording('excluded (`exclude`); `keepFirstLast`, `calibBatch`')).toBe(
      'excluded (--exclude); --keep-first-last, --calib-batch',
    );
  });

  it('prints a setting with a flag of its own as that flag', () => {
    expect(cliWording('skipped (`verify: false`)')).toBe('skipped (--no-verify)');
  });

  it('leaves unmarked words, unknown marks and Object.prototype names as they are', () => {
    expect(cliWording("exclude the op 'force' (calib)")).toBe("exclude the op 'force' (calib)");
    expect(cliWording('`mm1` and `constructor` and `toString`')).toBe('`mm1` and `constructor` and `toString`');
  });
});

describe('formatCliError', () => {
  it('a library error whose text holds the option word elsewhere: only the marked mention becomes the flag', async () => {
    const dir = join(root, 'force');
    mkdirSync(dir);
    const path = join(dir, 'out.bin');
    writeFileSync(path, 'old');
    const e = await thrown(() => writeFileAtomic(path, [Uint8Array.of(1)], { force: false }));
    expect(formatCliError(e)).toBe(`error QK_OUTPUT_EXISTS: ${path} already exists (pass --force to replace it)`);
  });

  it('calib/method.ts: the method text the user gave follows the flag', async () => {
    const e = await thrown(() => parseCalibMethod('percentile:40'));
    expect(formatCliError(e)).toBe(
      "error QK_BAD_METHOD: --method percentile:40: percentile '40' is out of range (e.g. percentile:99.99 or moving-average:0.01)",
    );
  });

  it('a weight-only OptionError: each marked option as its flag', () => {
    const e = new OptionError(
      'QK_BAD_OPTION',
      "`doubleQuant` applies to nf4/fp4, not 'q4'",
      'drop `doubleQuant` or use `scheme` nf4',
      ['doubleQuant', 'scheme'],
    );
    expect(formatCliError(e)).toBe(
      "error QK_BAD_OPTION: --double-quant applies to nf4/fp4, not 'q4' (drop --double-quant or use --scheme nf4)",
    );
  });

  it('an error naming no option prints as format() does', () => {
    const e = new QuantkitError('QK_FILE_NOT_FOUND', 'x.onnx does not exist', 'check the path');
    expect(formatCliError(e)).toBe(e.format());
  });
});

describe('inCliWords', () => {
  it('rewords every string of a report, at any depth, and passes everything else through', () => {
    const data = Float32Array.of(1, 2);
    const when = new Date(0);
    const report = {
      notes: ['kept (`nonFinite` keep)'],
      skipped: [{ node: 'n', reason: 'excluded (`exclude`)' }],
      sqnr: NaN,
      data,
      when,
      none: null,
    };
    const shown = inCliWords(report);
    expect(shown).toEqual({
      notes: ['kept (--non-finite keep)'],
      skipped: [{ node: 'n', reason: 'excluded (--exclude)' }],
      sqnr: NaN,
      data,
      when,
      none: null,
    });
    expect(shown.data).toBe(data);
    expect(shown.when).toBe(when);
    expect(report.notes[0]).toBe('kept (`nonFinite` keep)'); // the library's report is left as it was
  });
});
