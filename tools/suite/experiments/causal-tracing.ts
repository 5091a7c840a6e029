// Experiment 1: causal tracing of IOI and induction with activation and path patching.
import type { PatchResult } from '../../patch.ts';
import { ioiPatchingSet } from '../../prompt-sets.ts';
import { gridTable, num, table } from '../markdown.ts';
import { heatmap, lines, makePlot } from '../plots.ts';
import type { TaskExample } from '../../prompt-sets.ts';
import { inProcessPort } from '../port.ts';
import { agreementSection } from '../agreement.ts';
import { inductionHeads, ioiAbcHeads, ioiCircuit, ioiExamples, ioiNameMovers, ioiSInhibition } from '../steps.ts';
import type { Experiment, ExperimentReport, Plot, Reproduce } from '../types.ts';

/** IOI prompts sharing one template: the same token count and the names at the same positions. */
export interface IoiTemplate {
  examples: TaskExample[];
  tokens: string[];
  roles: Map<number, string>;
}

/** Groups IOI prompts by where their names sit (IO, S1, S2) and how long they are (END). */
export function ioiTemplates(examples: TaskExample[], tokenize: (prompt: string) => string[]): IoiTemplate[] {
  const groups = new Map<string, IoiTemplate>();
  for (const e of examples) {
    const tokens = tokenize(e.prompt);
    const io = tokens.indexOf(e.target);
    const s1 = tokens.indexOf(e.distractor);
    const s2 = tokens.lastIndexOf(e.distractor);
    const roles = new Map<number, string>([[io, 'IO'], [s1, 'S1'], [s2, 'S2'], [tokens.length - 1, 'END']].filter(([p]) => (p as number) >= 0) as [number, string][]);
    const key = `${tokens.length}:${[...roles].map(([p, r]) => `${r}${p}`).join(',')}`;
    const g = groups.get(key) ?? { examples: [], tokens, roles };
    g.examples.push(e);
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.examples.length - a.examples.length);
}

/** "P3 Mary (IO)": position, the token in the template's first prompt, and its role when it has one. */
export const positionLabel = (t: IoiTemplate, p: number): string => `P${p} ${t.tokens[p]}${t.roles.has(p) ? ` (${t.roles.get(p)})` : ''}`;

/** The grid's cells in row-major order, as the store lists them ordered by layer, then position or head. */
const cells = (g: PatchResult['grid']) => g.values.flat().filter((v): v is number => v !== null && Number.isFinite(v));

/** A patching grid's effects, reproduced from its results rows. */
const gridQuery = (what: string, id: string, g: PatchResult['grid'], by: 'position' | 'component'): Reproduce => ({
  what, sql: `SELECT site, effect FROM results WHERE experiment_id = '${id}' ORDER BY layer, ${by};`, expect: { effect: cells(g) },
});

export const causalTracing: Experiment = {
  id: 1,
  slug: 'causal-tracing',
  title: 'Causal tracing of IOI and induction',
  async run(env): Promise<ExperimentReport> {
    const { ctx, prompts } = env;
    const plots: Plot[] = [];
    const plot = async (file: string, title: string, spec: Parameters<typeof makePlot>[2]) => {
      plots.push(await makePlot(file, title, spec));
      return `![${title}](${file})`;
    };
    const layerByHead = { rowTitle: 'layer', colTitle: 'head', valueTitle: 'effect' };
    const port = inProcessPort(ctx, env.step);
    const ioi = ioiExamples(prompts.ioi);

    env.step('IOI: residual stream patching (layer x position), one template at a time');
    // Names sit at different positions in different templates, so a position column only means one
    // thing within a template: each template is patched on its own and its columns carry the roles.
    const templates = ioiTemplates(ioi, (p) => ctx.session.encode(p).tokens.map((t) => t.trim()));
    const residByTemplate: { t: IoiTemplate; r: PatchResult; cols: string[] }[] = [];
    for (const [k, t] of templates.entries()) {
      const r = await port.call(`IOI: residual stream patching, template ${k + 1}`, 'patch_activations', { ...ioiPatchingSet(t.examples, 'abc'), site: 'resid_pre' });
      residByTemplate.push({ t, r, cols: r.grid.cols.labels.map((c) => positionLabel(t, Number(c.slice(1)))) });
    }

    const { swap, nameMovers } = await ioiNameMovers(port, ioi);
    const headsSwap = swap.patch;
    const abcHeads = await ioiAbcHeads(port, ioi);
    const headsAbc = abcHeads.patch;
    const { receivers, path, sInhibition } = await ioiSInhibition(port, ioi, nameMovers);

    const ind = prompts.induction.slice(0, 8);
    const induction = await inductionHeads(port, ind);
    const indHeads = induction.heads.patch;
    const inductionCircuit = induction.circuit;

    const attn = await port.call('Candidate head roles from attention patterns', 'attention_patterns', { prompts: [...ind.map((e) => e.prompt), ...ioi.slice(0, 4).map((e) => e.prompt)], maxPatternHeads: 0, head: inductionCircuit[0] });
    const roleTop = (role: string) => attn.roles.find((r) => r.role === role)!;
    const strong = (role: string, min = 0.5) => roleTop(role).top.filter((t) => t.score >= min).map((t) => t.head);
    const previousToken = strong('previous_token');
    const inductionRole = roleTop('induction').top[0];

    const cfg = ctx.session.config;
    const { result: circuit, prompts: circuitPrompts } = await ioiCircuit(port, ioi, cfg.numLayers * cfg.numHeads);
    const attributed = [
      { what: 'IOI, indirect object swapped', r: swap }, { what: 'IOI, ABC', r: abcHeads }, { what: 'induction', r: induction.heads },
    ];

    const body = [
      '### IOI',
      `${ioi.length} prompts of one template length, e.g. "${ioi[0].prompt}" -> **${ioi[0].target}** (not ${ioi[0].distractor}). Metric: logit(IO) - logit(S) at the last token.`,
      '',
      table(['run', 'mean logit difference'], [
        ['clean', headsAbc.clean], ['corrupted: S2 replaced by a fresh name (ABC)', headsAbc.corrupted], ['corrupted: IO replaced by a fresh name', headsSwap.corrupted],
      ]),
      '',
      '#### Residual stream patching (ABC corruption)',
      `Effect of restoring \`blocks.L.hook_resid_pre\` at one position from the clean run (1 = clean behaviour back), for each template on its own (${templates.length} template${templates.length === 1 ? '' : 's'}): a column is one token position, named by its token in the template's first prompt and by its role (IO: the indirect object, S1/S2: the subject's first and second mention, END: the last token).`,
      '',
      ...(await Promise.all(residByTemplate.map(async ({ t, r, cols }, k) => [
        `Template ${k + 1}: ${t.examples.length} prompt${t.examples.length === 1 ? '' : 's'}, e.g. "${t.examples[0].prompt}".`,
        '',
        await plot(`ioi-resid${k ? `-${k + 1}` : ''}.svg`, `IOI: residual patching, template ${k + 1}`, heatmap(`IOI residual patching, template ${k + 1}`, r.grid.rows.labels, cols, r.grid.values, { rowTitle: 'layer', colTitle: 'position (token, role)', valueTitle: 'effect' })),
        '',
        gridTable(r.grid.rows.labels, cols, r.grid.values, 'layer'),
        '',
      ].join('\n')))),
      '#### Head patching',
      'Each head\'s `attn.hook_z` restored at every position. With the indirect object swapped only heads that copy the answer differ; with the subject duplicate removed (ABC) the heads that detect and signal the duplicate matter too.',
      '',
      await plot('ioi-heads-io-swap.svg', 'IOI heads, IO swapped', heatmap('IOI head patching (IO swapped)', headsSwap.grid.rows.labels, headsSwap.grid.cols.labels, headsSwap.grid.values, layerByHead)),
      await plot('ioi-heads-abc.svg', 'IOI heads, ABC', heatmap('IOI head patching (ABC)', headsAbc.grid.rows.labels, headsAbc.grid.cols.labels, headsAbc.grid.values, layerByHead)),
      '',
      table(['head', 'effect (IO swapped)', 'head', 'effect (ABC)'], headsSwap.top.slice(0, 6).map((t, i) => [t.site, t.effect, headsAbc.top[i]?.site ?? null, headsAbc.top[i]?.effect ?? null])),
      '',
      `Name-mover candidates (effect at least a quarter of the strongest head's): **${nameMovers.join(', ')}**.`,
      '',
      '#### Attribution patching first, confirmed by activation patching',
      agreementSection(attributed),
      '',
      '#### Path patching into the name movers',
      ...(path ? [
        `Senders: every head before layer ${Math.min(...receivers.map((h) => Number(h.split('.')[0].slice(1))))}; receivers: ${receivers.join(', ')} (query input); all other heads frozen.`,
        '',
        await plot('ioi-path.svg', 'IOI path patching', heatmap('Path patching -> name mover queries', path.grid.rows.labels, path.grid.cols.labels, path.grid.values, { rowTitle: 'sender layer', colTitle: 'sender head', valueTitle: 'effect' })),
        '',
        table(['sender', 'effect through the name movers\' queries'], path.top.slice(0, 6).map((t) => [t.sender, t.effect])),
      ] : ['No name-mover candidate lies beyond layer 0, so there are no earlier heads to send to it; path patching was skipped.']),
      '',
      '### Induction',
      `${ind.length} repeated random sequences, e.g. "${ind[0].prompt}" -> **${ind[0].target}**; corrupted: the first half reversed, so every token is followed by a different one than in the repeat. Metric: logit(next) - logit(previous).`,
      '',
      table(['run', 'mean logit difference'], [['clean', indHeads.clean], ['corrupted', indHeads.corrupted]]),
      '',
      await plot('induction-heads.svg', 'Induction heads', heatmap('Induction head patching', indHeads.grid.rows.labels, indHeads.grid.cols.labels, indHeads.grid.values, layerByHead)),
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
      `Greedy patching-based pruning over ${circuit.candidates} heads on ${circuitPrompts} IOI prompts (both names replaced in the corrupted run, so heads acting before the second subject mention count too): everything outside the set is patched from the corrupted run; the smallest set keeping ${circuit.threshold * 100}% of the clean logit difference.`,
      '',
      await plot('ioi-circuit-curve.svg', 'Recovered share vs circuit size', lines('IOI circuit: recovered share vs size', circuit.curve.map((p) => ({ x: p.size, y: p.share, series: 'IOI' })), 'components kept (most important first)', 'share of clean logit difference')),
      '',
      `Circuit (${circuit.size} components, ${num(circuit.share * 100, 1)}% recovered): **${circuit.circuit.join(', ')}**.`,
    ].join('\n');

    return {
      slug: this.slug, title: this.title,
      question: 'Which components carry indirect-object identification and induction, and through which paths?',
      method: 'Attribution patching (AtP: one forward and one backward estimate every head\'s patching effect) first, then activation patching (denoising: clean activations restored into corrupted runs, effect normalised to (patched - corrupted) / (clean - corrupted)) over the residual stream by layer x position and over attention heads; path patching (freeze-and-patch) from every earlier head into the name movers\' queries; head-role scores from attention patterns; patching-based circuit pruning (ACDC-style) to 80% recovery.',
      parameters: { ioiExamples: ioi.length, inductionExamples: ind.length, circuitPrompts, metric: 'logit_diff', corruptions: ['abc', 'io_swap', 'first half reversed', 'names (circuit)'] },
      body, plots,
      conclusion: `IOI is carried by name mover head(s) ${nameMovers.join(', ')} (head patching with the indirect object swapped, effects ${nameMovers.map((h) => num(headsSwap.top.find((t) => t.site === h)?.effect ?? NaN, 2)).join(', ')}); the signal that tells them which name to avoid ${path ? `reaches their queries mainly from ${sInhibition} (path patching effect ${num(path.top[0]?.effect, 2)}, next ${num(path.top[1]?.effect, 2)})` : 'could not be traced by path patching (no candidate beyond layer 0)'}. Induction runs through ${inductionCircuit.join(', ')}${previousToken.length ? `, fed by previous-token head(s) ${previousToken.join(', ')} (attention role scores)` : '; no head stands out as a previous-token head in the attention role scores'}. Pruning finds a ${circuit.size}-component IOI circuit (${circuit.circuit.join(', ')}) that keeps ${num(circuit.share * 100, 0)}% of the logit difference.`,
      found: { nameMovers, sInhibition, inductionHeads: inductionCircuit, previousToken, inductionByPattern: inductionRole.head, circuit: circuit.circuit, atpAgreement: Object.fromEntries(attributed.map(({ what, r }) => [what, { pearson: r.agreement.pearson, topOverlap: r.agreement.topOverlap, k: r.agreement.k }])) },
      experimentIds: [...residByTemplate.map((x) => x.r.experimentId), ...attributed.map((a) => a.r.atp.experimentId), headsSwap.experimentId, headsAbc.experimentId, ...(path ? [path.experimentId] : []), indHeads.experimentId, attn.experimentId, circuit.experimentId],
      runIds: [...headsAbc.runIds.clean, ...headsAbc.runIds.corrupted],
      reproduce: [
        { what: 'The clean and corrupted logit differences', sql: `SELECT experiment_id, clean_value, corrupted_value FROM experiments WHERE experiment_id IN ('${headsAbc.experimentId}', '${headsSwap.experimentId}') ORDER BY experiment_id = '${headsSwap.experimentId}';`, expect: { clean_value: [headsAbc.clean, headsSwap.clean], corrupted_value: [headsAbc.corrupted, headsSwap.corrupted] } },
        ...residByTemplate.map(({ r }, k) => gridQuery(`Residual patching, template ${k + 1}`, r.experimentId, r.grid, 'position')),
        gridQuery('Head patching, IO swapped', headsSwap.experimentId, headsSwap.grid, 'component'),
        gridQuery('Head patching, ABC', headsAbc.experimentId, headsAbc.grid, 'component'),
        ...(path ? [gridQuery('Path patching into the name movers', path.experimentId, path.grid, 'component')] : []),
        gridQuery('Induction head patching', indHeads.experimentId, indHeads.grid, 'component'),
        ...attn.roles.map((r) => ({ what: `Attention role "${r.role}": the top heads`, sql: `SELECT site, value AS score FROM results WHERE experiment_id = '${attn.experimentId}' AND (extra->>'role') = '${r.role}' ORDER BY value DESC LIMIT 4;`, expect: { score: r.top.slice(0, 4).map((t) => t.score) } })),
        { what: 'The circuit: recovered share by size', sql: `SELECT site, effect AS share FROM results WHERE experiment_id = '${circuit.experimentId}' ORDER BY (extra->>'size')::INTEGER;`, expect: { share: circuit.curve.map((p) => p.share) } },
      ],
    };
  },
};
