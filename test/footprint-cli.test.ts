import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

describe('quantkit footprint', () => {
  it('13e9 parameters: the weight-only table is 52 / 26 / 13 / 6.5 GB, NF4 with double quant 4.127 bits', () => {
    const r = runCli(['footprint', '--params', '13e9', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { rows: { format: string; weightBytes: number }[] };
    const gb = Object.fromEntries(report.rows.map((row) => [row.format, row.weightBytes / 1e9]));
    expect(gb).toMatchObject({ fp32: 52, fp16: 26, bf16: 26, fp8: 13, int8: 13, int4: 6.5, nf4: 6.5 });

    const dq = runCli(['footprint', '--params', '13e9', '--formats', 'nf4', '--double-quant']);
    expect(dq.code).toBe(0);
    expect(dq.stdout).toMatch(/nf4\s+6\.5 GB\s+6\.706 GB\s+4\.127/);
  });

  it('tables the biggest tensors of a model', () => {
    const r = runCli(['footprint', 'models/cnn.onnx', '--formats', 'fp32,int4']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/largest tensors/);
    expect(r.stdout).toMatch(/fc1\.weight/);
  });

  it('a wrong flag value is a one-line error', () => {
    const r = runCli(['footprint', '--params', 'lots']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/QK_BAD_FLAG/);
  });
});
