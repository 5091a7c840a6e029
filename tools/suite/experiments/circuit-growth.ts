// Experiment 4: circuit growth with scale: the same IOI pipeline on two sizes of one architecture.
import type { ToolContext } from '../../define.ts';
import { callTool } from '../../define.ts';
import { circuitTool } from '../../circuit.ts';
import { patchTool } from '../../patch.ts';
import { byLength, ioiPatchingSet } from '../../prompt-sets.ts';
import { num, table } from '../markdown.ts';
import { lines, renderSvg } from '../plots.ts';
import type { SuitePrompts } from '../prompts.ts';
import type { Experiment, ExperimentReport } from '../types.ts';
import { carriers } from './causal-tracing.ts';

async function ioiPipeline(ctx: ToolContext, prompts: SuitePrompts) {
  const ioi = byLength(prompts.ioi)[0].slice(0, 8);
  const heads = await callTool(patchTool, { ...ioiPatchingSet(ioi, 'io_swap'), site: 'head' }, ctx);
  const circuit = await callTool(circuitTool, { ...ioiPatchingSet(ioi.slice(0, 2), 'names'), include: ['heads'], threshold: 0.8 }, ctx);
  const movers = carriers(heads);
  const cfg = ctx.session.config;
  return { heads, circuit, movers, layers: cfg.numLayers, headsTotal: cfg.numLayers * cfg.numHeads };
}

export const circuitGrowth: Experiment = {
  id: 4,
  slug: 'circuit-growth',
  title: 'Circuit growth with scale',
  async run(env): Promise<ExperimentReport> {
    env.step(`IOI pipeline on ${env.modelName}`);
    const small = await ioiPipeline(env.ctx, env.prompts);
    if (!env.openOther) throw new Error('circuit growth needs a second model: run the suite with --compare DIR (e.g. gpt-oss-120b) or on a built-in tiny model');
    const otherName = env.ctx.session.config.numLayers <= 4 ? 'tiny-m' : 'compare';
    env.step(`opening ${otherName}`);
    const other = await env.openOther(otherName);
    try {
      env.step(`IOI pipeline on ${other.modelName}`);
      const large = await ioiPipeline(other.ctx, other.prompts);
      const rows = [[env.modelName, small], [other.modelName, large]] as const;
      const svg = await renderSvg(lines('IOI: recovered share vs heads kept', rows.flatMap(([name, r]) => r.circuit.curve.map((p) => ({ x: p.size, y: p.share, series: name }))), 'heads kept (most important first)', 'share of clean logit difference'));
      const share = (r: typeof small) => r.movers.map((h) => `${h} ${num(r.heads.top.find((t) => t.site === h)?.effect ?? NaN, 2)}`).join(', ');
      const body = [
        table(['model', 'layers', 'heads', 'heads for 80% recovery', 'circuit', 'name movers (patching effect each)'], rows.map(([name, r]) => [name, r.layers, r.headsTotal, r.circuit.size, r.circuit.circuit.join(', '), share(r)])),
        '', '![share vs size](growth.svg)', '',
        `On the larger model no single name mover restores the answer: each carries part of it (${share(large)}), so the circuit needs the redundant copies together; the other roles (previous-token, duplicate-token, S-inhibition) are reused one head each.`,
      ].join('\n');
      return {
        slug: this.slug, title: this.title,
        question: 'Does the IOI circuit grow with model size: how many heads are needed for 80% recovery, and are roles reused or split across redundant heads?',
        method: 'The same IOI pipeline on both models: head patching with the indirect object swapped (name movers), then greedy patching-based pruning over all heads (both names replaced in the corrupted run) to the smallest set keeping 80% of the clean logit difference.',
        parameters: { models: [env.modelName, other.modelName], threshold: 0.8 },
        body, plots: [{ file: 'growth.svg', title: 'share vs size', svg }],
        conclusion: `${env.modelName} needs ${small.circuit.size} heads for 80% recovery with ${small.movers.length} name mover(s); ${other.modelName} needs ${large.circuit.size} heads, its answer spread over ${large.movers.length} redundant name movers (${share(large)}).`,
        found: { smallSize: small.circuit.size, largeSize: large.circuit.size, smallMovers: small.movers, largeMovers: large.movers },
        experimentIds: [small.heads.experimentId, small.circuit.experimentId, large.heads.experimentId, large.circuit.experimentId],
        runIds: [...small.heads.runIds.clean.slice(0, 3), ...large.heads.runIds.clean.slice(0, 3)],
        sql: [`SELECT extra->>'size' AS size, effect AS share, site FROM results WHERE experiment_id = '${small.circuit.experimentId}' ORDER BY value;`, `-- in the second model's store (${other.modelName}):\nSELECT extra->>'size' AS size, effect AS share, site FROM results WHERE experiment_id = '${large.circuit.experimentId}' ORDER BY value;`],
      };
    } finally {
      await other.close();
    }
  },
};
