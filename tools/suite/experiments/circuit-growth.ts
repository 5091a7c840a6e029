// Experiment 4: circuit growth with scale: the same IOI pipeline on two sizes of one architecture.
import type { ToolContext } from '../../define.ts';
import { num, table } from '../markdown.ts';
import { lines, makePlot } from '../plots.ts';
import type { SuitePrompts } from '../prompts.ts';
import type { Experiment, ExperimentReport } from '../types.ts';
import { NotRunnable } from '../compare.ts';
import { inProcessPort } from '../port.ts';
import { ioiCircuit, ioiExamples, ioiNameMovers } from '../steps.ts';

async function ioiPipeline(ctx: ToolContext, prompts: SuitePrompts) {
  // The same steps as experiment 1 and the agent's IOI protocol.
  const port = inProcessPort(ctx);
  const ioi = ioiExamples(prompts.ioi);
  const { swap, nameMovers: movers } = await ioiNameMovers(port, ioi);
  const cfg = ctx.session.config;
  const { result: circuit } = await ioiCircuit(port, ioi, cfg.numLayers * cfg.numHeads);
  return { heads: swap.patch, circuit, movers, layers: cfg.numLayers, headsTotal: cfg.numLayers * cfg.numHeads };
}

type Pipeline = Awaited<ReturnType<typeof ioiPipeline>>;
const heads = (n: number) => `${n} head${n === 1 ? '' : 's'}`;
/** A head's patching effect from the full layer x head grid (rows "L<l>", columns "H<h>"). */
const effectOf = (r: Pipeline, h: string) => {
  const [layer, head] = h.split('.');
  const g = r.heads.grid;
  return g.values[g.rows.labels.indexOf(layer)]?.[g.cols.labels.indexOf(head)] ?? NaN;
};
const strongest = (r: Pipeline) => Math.max(...r.movers.map((h) => effectOf(r, h)));
/** Several name movers, none of which restores most of the answer alone. */
const spreadOut = (r: Pipeline) => r.movers.length > 1 && strongest(r) < 0.6;

export const circuitGrowth: Experiment = {
  id: 4,
  slug: 'circuit-growth',
  title: 'Circuit growth with scale',
  async run(env): Promise<ExperimentReport> {
    if (!env.openOther) throw new NotRunnable('circuit growth compares two sizes of one architecture and no second model was given (neuroscope suite --compare DIR)');
    env.step('opening the model to compare with');
    const other = await env.openOther();
    try {
      env.step(`IOI pipeline on ${env.modelName}`);
      const mine = await ioiPipeline(env.ctx, env.prompts);
      env.step(`IOI pipeline on ${other.modelName}`);
      const theirs = await ioiPipeline(other.ctx, other.prompts);
      // Smaller model first, whichever was given first.
      const [[smallName, small], [largeName, large]] = mine.headsTotal <= theirs.headsTotal
        ? [[env.modelName, mine], [other.modelName, theirs]] as const
        : [[other.modelName, theirs], [env.modelName, mine]] as const;
      const rows = [[smallName, small], [largeName, large]] as const;
      // The curve runs over every head (128 on tiny-m); the part that matters ends soon after the larger circuit.
      const shown = Math.min(Math.max(small.headsTotal, large.headsTotal), 2 * Math.max(small.circuit.size, large.circuit.size) + 2);
      const plot = await makePlot('growth.svg', 'share vs size', lines(`IOI: recovered share vs heads kept (first ${shown})`, rows.flatMap(([name, r]) => r.circuit.curve.filter((p) => p.size <= shown).map((p) => ({ x: p.size, y: p.share, series: name }))), 'heads kept (most important first)', 'share of clean logit difference'));
      const share = (r: Pipeline) => r.movers.map((h) => `${h} ${num(effectOf(r, h), 2)}`).join(', ');
      const body = [
        table(['model', 'layers', 'heads', 'heads for 80% recovery', 'circuit', 'name movers (patching effect each)'], rows.map(([name, r]) => [name, r.layers, r.headsTotal, r.circuit.size, r.circuit.circuit.join(', '), share(r)])),
        '', `![share vs size](growth.svg)`, `_The first ${shown + 1} points of each curve (sizes 0..${shown}); every point is a results row of the circuit experiments below._`, '',
        spreadOut(large) ? `On the larger model no single name mover restores the answer: each carries part of it (${share(large)}), so the circuit needs the redundant copies together.` : `On the larger model the strongest name mover alone restores ${num(strongest(large), 2)} of the answer (${share(large) || 'no head above the threshold'}).`,
      ].join('\n');
      return {
        slug: this.slug, title: this.title,
        question: 'Does the IOI circuit grow with model size: how many heads are needed for 80% recovery, and are roles reused or split across redundant heads?',
        method: 'The same IOI pipeline on both models: head patching with the indirect object swapped (name movers), then greedy patching-based pruning over all heads (both names replaced in the corrupted run) to the smallest set keeping 80% of the clean logit difference.',
        parameters: { models: [smallName, largeName], threshold: 0.8 },
        body, plots: [plot],
        conclusion: `${smallName} needs ${heads(small.circuit.size)} for 80% recovery with ${small.movers.length} name mover(s); ${largeName} needs ${heads(large.circuit.size)}${spreadOut(large) ? `, its answer spread over ${large.movers.length} redundant name movers (${share(large)})` : ` with ${large.movers.length} name mover(s) (${share(large) || 'none above the threshold'})`}.`,
        found: { smallSize: small.circuit.size, largeSize: large.circuit.size, smallMovers: small.movers, largeMovers: large.movers },
        experimentIds: [mine.heads.experimentId, mine.circuit.experimentId, theirs.heads.experimentId, theirs.circuit.experimentId],
        runIds: [...small.heads.runIds.clean.slice(0, 3), ...large.heads.runIds.clean.slice(0, 3)],
        reproduce: [mine, theirs].map((r, k) => ({
          what: `The circuit on ${k === 0 ? env.modelName : other.modelName}`,
          sql: `SELECT site FROM results WHERE experiment_id = '${r.circuit.experimentId}' AND (extra->>'inCircuit')::BOOLEAN ORDER BY (extra->>'size')::INTEGER;`,
          ...(k === 1 ? { store: other.ctx.store.file } : {}),
          expect: { site: r.circuit.circuit },
        })),
      };
    } finally {
      await other.close();
    }
  },
};
