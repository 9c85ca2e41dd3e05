import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

// The shape of `quantkit bench --quick --json` only: every figure is a timing ratio, so the
// test asserts that each is present and finite, never how large it is.
describe('quantkit bench --quick --json', () => {
  it('reports every comparison as a finite <ours>_vs_<theirs>_ratio, with rates and bit-exactness', () => {
    // Two kernel threads, asked for here, so the multi-thread rows run on any machine.
    const r = runCli(['bench', '--quick', '--json', '--threads', '2']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as {
      quick: boolean;
      kernels: string;
      figures: Record<string, number>;
      checks: Record<string, boolean>;
      rows: { key: string; ratio: number }[];
    };
    expect(report.quick).toBe(true);
    expect(report.kernels).toBe('wasm-simd');
    const ratios = Object.keys(report.figures).filter((k) => k.endsWith('_ratio'));
    for (const key of ratios) {
      expect(key).toMatch(/^[a-z0-9_]+_vs_[a-z0-9_]+_ratio$/);
      expect(Number.isFinite(report.figures[key]) && (report.figures[key] as number) > 0, key).toBe(true);
    }
    expect(ratios.sort()).toEqual(report.rows.map((row) => row.key).sort());
    for (const stem of [
      'quantize_per_channel_vs_ort_node_quantizelinear',
      'quantize_per_channel_vs_memcpy',
      'quantize_per_channel_in_kernel_memory_vs_memcpy',
      'quantize_per_channel_in_kernel_memory_vs_ort_node_quantizelinear',
      'gemm_int8_m1_k256_vs_ort_web_matmulinteger',
      'gemm_int8_m16_k256_s8s8_vs_ort_node_s8s8',
      'gemm_int8_m16_k256_vs_js_fp32_gemm',
      'gemv_q4_k512_vs_ort_node_matmulnbits_level0',
      'gemv_q4_k512_vs_ort_web_matmulnbits_level4',
      'gemv_nf4_k512_vs_ort_node_matmulbnb4',
      'cnn_int8_static_b1_vs_fp32',
      'lm_q4_b1_vs_fp32',
      'lm_int8_dynamic_b1_vs_fp32',
      'conv_int8_c16_14x14_vs_ort_web_convinteger',
      'conv_int8_c16_14x14_threads2_vs_ort_node_convinteger_threads2',
      'gemm_int8_m16_k256_threads2_vs_ours_1_thread',
      'gemv_q4_k512_threads2_vs_ort_node_matmulnbits_level0_threads2',
      'gemv_nf4_k512_threads2_cpu_vs_ours_1_thread_cpu',
      'quantize_per_channel_threads2_vs_ort_node_quantizelinear_threads2',
    ])
      expect(report.figures, stem).toHaveProperty(`${stem}_ratio`);
    expect(report.figures['gemm_int8_m16_k256_vs_ort_web_matmulinteger_ours_gop_per_s']).toBeGreaterThan(0);
    expect(report.figures['quantize_per_channel_vs_memcpy_ours_gb_per_s']).toBeGreaterThan(0);
    expect(Object.keys(report.checks)).toContain('conv_int8_c16_14x14_bit_exact_vs_ort_node');
    expect(Object.keys(report.checks)).toContain('quantize_per_channel_threads2_bit_exact_vs_1_thread');
    expect(Object.keys(report.checks)).toContain('quantize_per_channel_axis0_in_kernel_memory_bit_exact_vs_ort_node');
    expect(Object.values(report.checks).every((v) => v)).toBe(true);
  }, 60_000);

  it('names an unknown --only group and the way out', () => {
    const r = runCli(['bench', '--only', 'gemm,speed']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/QK_BAD_FLAG.*'speed'.*quantize,gemm,gemv,conv,models/);
  });
});
