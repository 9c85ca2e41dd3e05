import type { ActivationReport } from '../flows/calibrate.js';

/** The terminal text of an activation-scheme report. */
export function formatActivationReport(r: ActivationReport): string {
  const out: string[] = [];
  if (r.scheme !== 'int8-dynamic') {
    out.push(`${r.scheme} (${r.method}, ${r.samples} calibration samples)`);
    for (const n of r.quantizedNodes)
      out.push(
        `  quantized ${n.opType} ${n.node}${n.weight ? ` (weight ${n.weight}${n.bias ? ', int32 bias' : ''})` : ' (activation × activation)'}`,
      );
    for (const t of r.tensors)
      out.push(
        `  activation ${t.name}: [${t.lo.toPrecision(4)}, ${t.hi.toPrecision(4)}] scale ${t.scale.toPrecision(4)} zero point ${t.zeroPoint}${t.source !== t.name ? ` (scale of ${t.source})` : ''}`,
      );
    if (r.smoothQuant)
      for (const g of r.smoothQuant.groups)
        out.push(
          `  smoothquant α=${r.smoothQuant.alpha} ${g.activation}: max |x| ${g.maxAbsBefore.toPrecision(4)} → ${g.maxAbsAfter.toPrecision(4)}, 1/s folded into ${g.foldedInto}`,
        );
  } else {
    out.push(`int8-dynamic (${r.form})`);
    for (const n of r.quantizedNodes) out.push(`  quantized ${n.opType} ${n.node} (weight ${n.weight})`);
  }
  for (const s of r.skipped) out.push(`  kept fp32 ${s.opType} ${s.node}: ${s.reason}`);
  out.push(`weights: ${r.weights.reason}`);
  for (const n of r.notes) out.push(`note: ${n}`);
  return `${out.join('\n')}\n`;
}
