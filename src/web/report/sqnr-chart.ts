import type { LayerWeights, SchemeRow } from '../../flows/report-data.js';

/*
 * What the per-layer weight SQNR charts show: one panel per group of stored bits (4-bit formats
 * sit within a few dB of each other, far below 8- and 16-bit ones, so one shared axis would flatten
 * them), and in a panel one line per row, coloured by scheme family and marked (point shape and
 * dash) by variant, so no two series look alike however many rows there are.
 */

/** Chart.js point styles that stay distinguishable at 5 px. */
export const POINT_STYLES = [
  'circle',
  'triangle',
  'rect',
  'rectRot',
  'star',
  'crossRot',
  'cross',
  'rectRounded',
] as const;
export type PointStyle = (typeof POINT_STYLES)[number];
export const DASHES: readonly (readonly number[])[] = [[], [6, 3], [2, 2], [10, 3, 2, 3]];
/** Okabe–Ito's colour-blind-safe set (yellow left out: unreadable on white), then darker extras. */
export const FAMILY_COLOURS = [
  '#0072b2',
  '#d55e00',
  '#009e73',
  '#cc79a7',
  '#e69f00',
  '#56b4e9',
  '#8c564b',
  '#7b4173',
  '#637939',
  '#393b79',
] as const;

export interface SeriesStyle {
  readonly color: string;
  readonly pointStyle: PointStyle;
  readonly dash: readonly number[];
}

export interface SqnrSeries {
  /** The row's scheme label (the legend text and the key into the rows). */
  readonly scheme: string;
  readonly style: SeriesStyle;
}

export interface SqnrPanel {
  /** e.g. '4-bit formats', '8- and 16-bit formats'. */
  readonly title: string;
  readonly series: readonly SqnrSeries[];
}

/** How a layer is named on the axis: the nodes that read its weight, else the weight's own name. */
export function layerLabel(layer: Pick<LayerWeights, 'name' | 'readers'>): string {
  return layer.readers.length > 0 ? layer.readers.join(' + ') : layer.name;
}

function seriesOf(row: SchemeRow): { family: string; variant: string; bits: number } {
  return row.series ?? { family: row.scheme, variant: '', bits: 8 };
}

function bitsTitle(bits: readonly number[]): string {
  const b = [...bits].sort((x, y) => x - y);
  const head = b.slice(0, -1).map((x) => `${x}-`);
  return `${head.length > 0 ? `${head.join(', ')} and ` : ''}${b[b.length - 1]}-bit formats`;
}

/**
 * Splits the rows with per-layer numbers into panels (4 bits and less; more than 4) and gives each
 * series its style: families take colours in order of appearance (4-bit panel first), a family's
 * variants take (point style, dash) pairs in order; a pair already used with the same colour (more
 * families than colours) moves on to the next free one, so no two series of a model look alike.
 */
export function sqnrPanels(rows: readonly SchemeRow[]): SqnrPanel[] {
  const withLayers = rows.filter((r) => Object.keys(r.layerSqnrDb).length > 0);
  const groups = new Map<'low' | 'high', SchemeRow[]>();
  for (const r of withLayers) {
    const key = seriesOf(r).bits <= 4 ? 'low' : 'high';
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const panels: SqnrPanel[] = [];
  // Colours are per model, not per panel: one colour means one family on every panel.
  const families: string[] = [];
  const variantsSeen = new Map<string, number>();
  const used = new Set<string>();
  for (const key of ['low', 'high'] as const) {
    const group = groups.get(key);
    if (!group) continue;
    const series = group.map((r) => {
      const s = seriesOf(r);
      if (!families.includes(s.family)) families.push(s.family);
      const f = families.indexOf(s.family);
      const color = FAMILY_COLOURS[f % FAMILY_COLOURS.length] as string;
      let v = variantsSeen.get(s.family) ?? 0;
      // Styles are (colour, point, dash): step through point × dash pairs until this colour has a free one.
      const combos = POINT_STYLES.length * DASHES.length;
      let k = v;
      while (used.has(`${color}|${k % combos}`) && k < v + combos) k++;
      used.add(`${color}|${k % combos}`);
      variantsSeen.set(s.family, ++v);
      const pair = k % combos;
      // Both cues change from one variant to the next: point = pair mod 8, dash = (pair + ⌊pair/8⌋) mod 4,
      // which is one-to-one on the 32 pairs.
      const dash = DASHES[(pair + Math.floor(pair / POINT_STYLES.length)) % DASHES.length] ?? [];
      return {
        scheme: r.scheme,
        style: { color, pointStyle: POINT_STYLES[pair % POINT_STYLES.length] as PointStyle, dash },
      };
    });
    panels.push({ title: bitsTitle([...new Set(group.map((r) => seriesOf(r).bits))]), series });
  }
  return panels;
}
