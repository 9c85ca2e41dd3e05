/**
 * Multiple-choice knapsack: pick one option per item so that Σ bytes ≤ budget and Σ cost is least
 * (mixed precision: an item is a weight, an option a scheme, cost its measured loss increase).
 * Dynamic programming over the budget cut into `resolution` units; each option's bytes are rounded
 * UP to whole units, so the answer always fits the real budget (it may miss the true optimum by
 * at most one unit per item of slack). Costs are assumed additive over items.
 */

export interface KnapsackOption {
  readonly bytes: number;
  readonly cost: number;
}

/** The chosen option index per item, or undefined when even the smallest options do not fit. */
export function chooseUnderBudget(
  items: readonly (readonly KnapsackOption[])[],
  budget: number,
  resolution = 4096,
): number[] | undefined {
  const units = Math.max(1, resolution);
  const unit = budget / units;
  if (!(budget > 0)) return undefined;
  const width = units + 1;
  // best[b]: least cost of the items so far within b units; pick[i·width + b]: the option taken.
  let best = new Float64Array(width).fill(0);
  const pick = new Int16Array(items.length * width).fill(-1);
  for (const [i, options] of items.entries()) {
    const next = new Float64Array(width).fill(Infinity);
    for (const [j, o] of options.entries()) {
      const w = Math.ceil(o.bytes / unit - 1e-9);
      if (w > units) continue;
      for (let b = w; b < width; b++) {
        const c = (best[b - w] as number) + o.cost;
        if (c < (next[b] as number)) {
          next[b] = c;
          pick[i * width + b] = j;
        }
      }
    }
    best = next;
  }
  if (!Number.isFinite(best[units] as number)) return undefined;
  const choice = new Array<number>(items.length);
  let b = units;
  for (let i = items.length - 1; i >= 0; i--) {
    const j = pick[i * width + b] as number;
    choice[i] = j;
    b -= Math.ceil(((items[i] as readonly KnapsackOption[])[j] as KnapsackOption).bytes / unit - 1e-9);
  }
  return choice;
}
