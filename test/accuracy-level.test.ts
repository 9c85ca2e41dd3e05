import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lmPerplexity } from '../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { quantizeFile } from '../src/flows/quantize-file.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { readNpy } from '../src/io/npy/npy.js';

describe('q4 accuracyLevel (MatMulNBits accuracy_level)', () => {
  const bytes = readFileSync('models/lm.onnx');
  it('writes accuracy_level 4 on every MatMulNBits, says so, and ORT runs it within 0.5 % perplexity of level 0', async () => {
    const level4 = quantizeModelBytes(bytes, { scheme: 'q4', accuracyLevel: 4 });
    const level0 = quantizeModelBytes(bytes, { scheme: 'q4' });
    const nodes = decodeModel(level4.bytes).graph!.node.filter((n) => n.opType === 'MatMulNBits');
    expect(nodes.length).toBe(13);
    for (const n of nodes) expect(n.attribute.find((a) => a.name === 'accuracy_level')?.i).toBe(4n);
    expect(
      decodeModel(level0.bytes).graph!.node.some((n) => n.attribute.some((a) => a.name === 'accuracy_level')),
    ).toBe(false);
    expect(level4.report.notes.join(' ')).toContain('`accuracyLevel` > 0');
    const windows = readNpy(readFileSync('models/lm-eval.npy'));
    const p4 = (await lmPerplexity(level4.bytes, windows)).perplexity;
    const p0 = (await lmPerplexity(level0.bytes, windows)).perplexity;
    expect(Math.abs(p4 / p0 - 1)).toBeLessThan(0.005);
  });
  it('the file flow measures the cost in ORT against level 0 and reports it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-al-'));
    try {
      const r = await quantizeFile('models/lm.onnx', join(dir, 'q4.onnx'), { scheme: 'q4', accuracyLevel: 4 });
      const note = r.report.notes.find((n) => n.includes('measured in ONNX Runtime'));
      expect(note).toMatch(/`accuracyLevel` 4 measured .* zero input: outputs within \d\.\de-\d+ of level 0's/);
      // Level 4 is approximate: the measured difference is not zero (so the measurement can fail).
      expect(Number(/within (\S+) of/.exec(note ?? '')?.[1])).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('is refused where no MatMulNBits is written', () => {
    for (const o of [{ scheme: 'nf4' as const }, { scheme: 'q4' as const, format: 'qdq' as const }])
      expect(() => quantizeModelBytes(bytes, { ...o, accuracyLevel: 4 })).toThrow(
        expect.objectContaining({ code: 'QK_BAD_OPTION' }),
      );
  });
});
