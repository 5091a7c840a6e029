// Experiment 1: causal tracing of IOI and induction with activation and path patching.
import { attentionTool } from '../../attention.ts';
import { circuitTool } from '../../circuit.ts';
import { callTool } from '../../define.ts';
import { pathPatchTool } from '../../path-patch.ts';
import { patchTool, type PatchResult } from '../../patch.ts';
import { byLength, ioiPatchingSet } from '../../prompt-sets.ts';
import { gridTable, num, table } from '../markdown.ts';
import { heatmap, lines, renderSvg } from '../plots.ts';
import { inductionPatchingSet } from '../prompts.ts';
import type { Experiment, ExperimentReport, Plot } from '../types.ts';

/** Heads whose effect is a real share of the strongest one (redundant carriers each hold a part). */
export function carriers(r: PatchResult, share = 0.25, floor = 0.1): string[] {
  const all = r.grid.rows.labels.flatMap((row, i) => r.grid.cols.labels.map((col, j) => ({ site: `${row}.${col}`, e: r.grid.values[i][j] ?? Number.NaN })));
  const top = Math.max(...all.map((x) => x.e));
  return all.filter((x) => x.e >= Math.max(floor, share * top)).sort((a, b) => b.e - a.e).map((x) => x.site);
}

const resultsSql = (id: string, order = 'abs(effect) DESC') => `SELECT site, layer, position, component, value, effect FROM results WHERE experiment_id = '${id}' ORDER BY ${order};`;

export const causalTracing: Experiment = {
  id: 1,
  slug: 'causal-tracing',
  title: 'Causal tracing of IOI and induction',
  async run(env): Promise<ExperimentReport> {
    const { ctx, prompts } = env;
    const plots: Plot[] = [];
    const plot = async (file: string, title: string, spec: Parameters<typeof renderSvg>[0]) => {
      plots.push({ file, title, svg: await renderSvg(spec) });
      return `![${title}](${file})`;
    };
    const ioi = byLength(prompts.ioi)[0].slice(0, 8);

    env.step('IOI: residual stream patching (layer x position)');
    const abc = ioiPatchingSet(ioi, 'abc');
    const resid = await callTool(patchTool, { ...abc, site: 'resid_pre' }, ctx);
    // Label positions with the model's tokens (BPE splits "store," into two), not the prompt's words.
    const tokens = ctx.session.encode(ioi[0].prompt).tokens.map((t) => t.trim());
    const residCols = resid.grid.cols.labels.map((c) => `${c} ${tokens[Number(c.slice(1))]}`);

    env.step('IOI: head patching, indirect object swapped');
    const swap = ioiPatchingSet(ioi, 'io_swap');
    const headsSwap = await callTool(patchTool, { ...swap, site: 'head' }, ctx);
    const nameMovers = carriers(headsSwap);

    env.step('IOI: head patching, subject duplicate removed (ABC)');
    const headsAbc = await callTool(patchTool, { ...abc, site: 'head' }, ctx);

    env.step('IOI: path patching into the name movers\' queries');
    // A path needs earlier heads: receivers in layer 0 have none.
    const receivers = nameMovers.filter((h) => !h.startsWith('L0.'));
    const path = receivers.length ? await callTool(pathPatchTool, { ...abc, receivers, receiverInput: 'q' }, ctx) : null;
    const sInhibition = path?.top[0]?.sender ?? null;

    env.step('Induction: head patching');
    const ind = prompts.induction.slice(0, 8);
    const indSet = inductionPatchingSet(ind);
    const indHeads = await callTool(patchTool, { ...indSet, site: 'head' }, ctx);
    const inductionCircuit = carriers(indHeads, 0.3);

    env.step('Candidate head roles from attention patterns');
    const attn = await callTool(attentionTool, { prompts: [...ind.map((e) => e.prompt), ...ioi.slice(0, 4).map((e) => e.prompt)], maxPatternHeads: 0, head: inductionCircuit[0] }, ctx);
    const roleTop = (role: string) => attn.roles.find((r) => r.role === role)!;
    const strong = (role: string, min = 0.5) => roleTop(role).top.filter((t) => t.score >= min).map((t) => t.head);
    const previousToken = strong('previous_token');
    const inductionRole = roleTop('induction').top[0];

    env.step('The IOI circuit by patching-based pruning (80% recovery)');
    const circuit = await callTool(circuitTool, { ...ioiPatchingSet(ioi.slice(0, 2), 'names'), threshold: 0.8 }, ctx);

    const body = [
      '### IOI',
      `${ioi.length} prompts of one template length, e.g. "${ioi[0].prompt}" -> **${ioi[0].target}** (not ${ioi[0].distractor}). Metric: logit(IO) - logit(S) at the last token.`,
      '',
      table(['run', 'mean logit difference'], [
        ['clean', resid.clean], ['corrupted: S2 replaced by a fresh name (ABC)', resid.corrupted], ['corrupted: IO replaced by a fresh name', headsSwap.corrupted],
      ]),
      '',
      '#### Residual stream patching (ABC corruption)',
      'Effect of restoring `blocks.L.hook_resid_pre` at one position from the clean run (1 = clean behaviour back).',
      '',
      await plot('ioi-resid.svg', 'IOI: residual patching (layer x position)', heatmap('IOI residual patching', resid.grid.rows.labels, residCols, resid.grid.values)),
      '',
      gridTable(resid.grid.rows.labels, residCols, resid.grid.values, 'layer'),
      '',
      '#### Head patching',
      'Each head\'s `attn.hook_z` restored at every position. With the indirect object swapped only heads that copy the answer differ; with the subject duplicate removed (ABC) the heads that detect and signal the duplicate matter too.',
      '',
      await plot('ioi-heads-io-swap.svg', 'IOI heads, IO swapped', heatmap('IOI head patching (IO swapped)', headsSwap.grid.rows.labels, headsSwap.grid.cols.labels, headsSwap.grid.values)),
      await plot('ioi-heads-abc.svg', 'IOI heads, ABC', heatmap('IOI head patching (ABC)', headsAbc.grid.rows.labels, headsAbc.grid.cols.labels, headsAbc.grid.values)),
      '',
      table(['head', 'effect (IO swapped)', 'head', 'effect (ABC)'], headsSwap.top.slice(0, 6).map((t, i) => [t.site, t.effect, headsAbc.top[i]?.site ?? null, headsAbc.top[i]?.effect ?? null])),
      '',
      `Name-mover candidates (effect at least a quarter of the strongest head's): **${nameMovers.join(', ')}**.`,
      '',
      '#### Path patching into the name movers',
      ...(path ? [
        `Senders: every head before layer ${Math.min(...receivers.map((h) => Number(h.split('.')[0].slice(1))))}; receivers: ${receivers.join(', ')} (query input); all other heads frozen.`,
        '',
        await plot('ioi-path.svg', 'IOI path patching', heatmap('Path patching -> name mover queries', path.grid.rows.labels, path.grid.cols.labels, path.grid.values)),
        '',
        table(['sender', 'effect through the name movers\' queries'], path.top.slice(0, 6).map((t) => [t.sender, t.effect])),
      ] : ['No name-mover candidate lies beyond layer 0, so there are no earlier heads to send to it; path patching was skipped.']),
      '',
      '### Induction',
      `${ind.length} repeated random sequences, e.g. "${ind[0].prompt}" -> **${ind[0].target}**; corrupted: the first half reversed, so every token is followed by a different one than in the repeat. Metric: logit(next) - logit(previous).`,
      '',
      table(['run', 'mean logit difference'], [['clean', indHeads.clean], ['corrupted', indHeads.corrupted]]),
      '',
      await plot('induction-heads.svg', 'Induction heads', heatmap('Induction head patching', indHeads.grid.rows.labels, indHeads.grid.cols.labels, indHeads.grid.values)),
      '',
      table(['head', 'effect'], indHeads.top.slice(0, 5).map((t) => [t.site, t.effect])),
      '',
      '### Candidate head roles from attention patterns',
      `Role scores in [0, 1] over ${ind.length} induction and 4 IOI prompts (mean attention to the previous token, to the token after an earlier copy, to earlier copies, to the first token), with the mean over all heads as the baseline.`,
      '',
      table(['role', 'baseline', 'top heads (score)'], attn.roles.map((r) => [r.role, r.baseline, r.top.slice(0, 4).map((t) => `${t.head} (${num(t.score, 2)})`).join(', ')])),
      '',
      `Previous-token heads (score >= 0.5): **${previousToken.join(', ') || 'none'}**; strongest induction score: **${inductionRole.head}** (${num(inductionRole.score, 2)}).`,
      '',
      '### The circuit found',
      `Greedy patching-based pruning over ${circuit.candidates} heads and experts on IOI (both names replaced in the corrupted run): everything outside the set is patched from the corrupted run; the smallest set keeping ${circuit.threshold * 100}% of the clean logit difference.`,
      '',
      await plot('ioi-circuit-curve.svg', 'Recovered share vs circuit size', lines('IOI circuit: recovered share vs size', circuit.curve.map((p) => ({ x: p.size, y: p.share, series: 'IOI' })), 'components kept (most important first)', 'share of clean logit difference')),
      '',
      `Circuit (${circuit.size} components, ${num(circuit.share * 100, 1)}% recovered): **${circuit.circuit.join(', ')}**.`,
    ].join('\n');

    return {
      slug: this.slug, title: this.title,
      question: 'Which components carry indirect-object identification and induction, and through which paths?',
      method: 'Activation patching (denoising: clean activations restored into corrupted runs, effect normalised to (patched - corrupted) / (clean - corrupted)) over the residual stream by layer x position and over attention heads; path patching (freeze-and-patch) from every earlier head into the name movers\' queries; head-role scores from attention patterns; patching-based circuit pruning (ACDC-style) to 80% recovery.',
      parameters: { ioiExamples: ioi.length, inductionExamples: ind.length, metric: 'logit_diff', corruptions: ['abc', 'io_swap', 'first half reversed'] },
      body, plots,
      conclusion: `IOI is carried by name mover head(s) ${nameMovers.join(', ')} (head patching with the indirect object swapped, effects ${nameMovers.map((h) => num(headsSwap.top.find((t) => t.site === h)?.effect ?? NaN, 2)).join(', ')}); the signal that tells them which name to avoid ${path ? `reaches their queries mainly from ${sInhibition} (path patching effect ${num(path.top[0]?.effect, 2)}, next ${num(path.top[1]?.effect, 2)})` : 'could not be traced by path patching (no candidate beyond layer 0)'}. Induction runs through ${inductionCircuit.join(', ')}${previousToken.length ? `, fed by previous-token head(s) ${previousToken.join(', ')} (attention role scores)` : '; no head stands out as a previous-token head in the attention role scores'}. Pruning finds a ${circuit.size}-component IOI circuit (${circuit.circuit.join(', ')}) that keeps ${num(circuit.share * 100, 0)}% of the logit difference.`,
      found: { nameMovers, sInhibition, inductionHeads: inductionCircuit, previousToken, inductionByPattern: inductionRole.head, circuit: circuit.circuit },
      experimentIds: [resid.experimentId, headsSwap.experimentId, headsAbc.experimentId, ...(path ? [path.experimentId] : []), indHeads.experimentId, attn.experimentId, circuit.experimentId],
      runIds: [...resid.runIds.clean, ...resid.runIds.corrupted],
      sql: [resultsSql(resid.experimentId, 'layer, position'), resultsSql(headsSwap.experimentId), ...(path ? [resultsSql(path.experimentId)] : []), resultsSql(indHeads.experimentId), resultsSql(attn.experimentId, 'site'), resultsSql(circuit.experimentId, 'value')],
    };
  },
};
