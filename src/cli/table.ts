/** Left-aligned text columns, right-aligned where a column is numeric; for terminal reports. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  // A column is numeric (right-aligned) when every cell is a number or a placeholder for none.
  const isNumber = (cell: string) => /^[-+]?[\d.,]+\s*[%×xA-Za-z]*$/.test(cell);
  const isPlaceholder = (cell: string) => cell === '' || cell === '-' || cell === '—' || cell === 'inf';
  const numeric = header.map(
    (_, c) =>
      rows.some((r) => isNumber(r[c] ?? '')) && rows.every((r) => isNumber(r[c] ?? '') || isPlaceholder(r[c] ?? '')),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (numeric[c] ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
