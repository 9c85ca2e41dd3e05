import { OptionError } from '../errors.js';
import type { Model } from '../graph/model.js';
import { consumers } from '../graph/topology.js';

/**
 * `--exclude` entries that match nothing in the model are refused: a typo would otherwise quantize
 * the very layer the user meant to keep. Weight-only schemes match an op type, a node name or a
 * weight name; int8-dynamic/int8-static match op types and node names only, so a weight name
 * there is refused with the nodes that read it.
 */
export function checkExcludes(model: Model, exclude: readonly string[] | undefined, matchesWeights: boolean): void {
  if (!exclude?.length) return;
  const g = model.graph;
  const opTypes = new Set(g.nodes.map((n) => n.opType));
  const nodeNames = new Set(g.nodes.map((n) => n.name).filter(Boolean));
  for (const e of exclude) {
    if (opTypes.has(e) || nodeNames.has(e)) continue;
    if (g.initializers.has(e)) {
      if (matchesWeights) continue;
      const readers = (consumers(g).get(e) ?? []).map((n) => n.name).filter(Boolean);
      throw new OptionError(
        'QK_EXCLUDE_NO_MATCH',
        `\`exclude\` ${e} names a weight; int8-dynamic and int8-static exclude op types and node names`,
        readers.length
          ? `exclude the node(s) reading it: ${readers.slice(0, 5).join(', ')}`
          : 'no node reads it; drop it',
        ['exclude'],
      );
    }
    const ops = [...opTypes].sort().join(', ');
    throw new OptionError(
      'QK_EXCLUDE_NO_MATCH',
      `\`exclude\` ${e} matches no op type, node name${matchesWeights ? ' or weight name' : ''} in the model`,
      `op types here: ${ops}; quantkit inspect lists the weights and the nodes reading them`,
      ['exclude'],
    );
  }
}
