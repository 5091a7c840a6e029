// Experiment 2: feature localisation and ablation: probes and PCA across layers for token
// classes, the neurons that respond to numbers, and what zero / mean / resample ablation of them costs.
import { blockHook } from '../../../engine/hook-address.ts';
import { ablateTool } from '../../ablate.ts';
import { callTool } from '../../define.ts';
import { pcaTool } from '../../pca.ts';
import { probeTool } from '../../probe.ts';
import { byLength } from '../../prompt-sets.ts';
import { selectivityTool } from '../../selectivity.ts';
import { num, table } from '../markdown.ts';
import { lines, makePlot, scatter } from '../plots.ts';
import type { Experiment, ExperimentReport, Plot } from '../types.ts';

// Word classes whose members share features a task reads (names for IOI, numbers for counting, sentiment words).
const CLASSES = ['names', 'numbers', 'positive', 'negative'];

type Neuron = { neuron: string; layer: number; expert: number; index: number };
const CONTROL_LABEL = 'control: other neurons of the same experts, not among the number-selective';

/**
 * Matched controls: for each ablated neuron the next neuron of the same expert (so routed on exactly
 * the same tokens) that is not ablated itself. An expert whose every neuron is ablated has none.
 */
export function matchedControls(neurons: Neuron[], intermediateSize: number): string[] {
  const taken = new Set(neurons.map((n) => n.neuron));
  return neurons.flatMap((n) => {
    for (let k = 1; k < intermediateSize; k++) {
      const name = `L${n.layer}.E${n.expert}.N${(n.index + k) % intermediateSize}`;
      if (!taken.has(name)) {
        taken.add(name);
        return [name];
      }
    }
    return [];
  });
}

export const featureLocalisation: Experiment = {
  id: 2,
  slug: 'feature-localisation',
  title: 'Feature localisation and ablation',
  async run(env): Promise<ExperimentReport> {
    const { ctx, prompts } = env;
    const cfg = ctx.session.config;
    const plots: Plot[] = [];
    const classes = CLASSES.filter((c) => (prompts.classes[c]?.length ?? 0) >= 4);
    // Each class word in a short carrier context from the prompt sets' own vocabulary; the probe reads its position.
    const examples = classes.flatMap((c) => prompts.classes[c].slice(0, 12).map((w) => ({ prompt: `the ${w}`, label: c })));

    env.step(`probes for ${classes.join(' / ')} at every layer`);
    const layers = [...Array(cfg.numLayers).keys()];
    const probe = await callTool(probeTool, { examples, hook: 'resid_post', layers, position: 'last', split: { folds: 4 }, controls: 2, name: 'suite_token_class' }, ctx);
    plots.push(await makePlot('probe-layers.svg', 'probe accuracy by layer', lines('Token-class probe by layer', probe.layers.flatMap((l) => [
      { x: l.layer ?? 0, y: l.heldOut, series: 'held-out accuracy' }, { x: l.layer ?? 0, y: l.shuffled, series: 'shuffled-label control' }, { x: l.layer ?? 0, y: l.baseline, series: 'majority baseline' },
    ]), 'layer', 'accuracy')));

    env.step('PCA of the class words at a middle layer');
    const mid = Math.floor(cfg.numLayers / 2);
    const pca = await callTool(pcaTool, { prompts: examples.map((e) => e.prompt), labels: examples.map((e) => e.label), hook: 'resid_post', layer: mid, position: 'last', components: 3, name: 'suite_token_class' }, ctx);
    plots.push(await makePlot('pca.svg', 'PCA', scatter(`PCA of ${blockHook(mid, 'hook_resid_post')}`, pca.projections.map((p) => ({ x: p.pcs[0], y: p.pcs[1], label: String(p.label) })), 'PC0', 'PC1')));

    env.step('neurons that respond to counting prompts (numbers) vs names and prose');
    const sel = await callTool(selectivityTool, { domains: { numbers: prompts.successor.map((e) => e.prompt), names: prompts.ioi.slice(0, 10).map((e) => e.prompt), prose: prompts.domains.prose ?? [] }, top: 64 }, ctx);
    // Every clearly number-selective neuron (active on counting prompts, silent elsewhere).
    const numberNeurons = sel.perDomain.numbers.filter((n) => n.selectivity > 0.5 && n.means.numbers > 0.05);
    const topNumber = numberNeurons.map((n) => n.neuron);

    env.step('ablating the top number neurons (zero, mean, resample) on the successor task, and matched control neurons of the same experts');
    // One token length, so resample ablation can draw each prompt's values from another prompt of the same shape.
    const succ = byLength(prompts.successor)[0].slice(0, 12);
    const task = { prompts: succ.map((e) => e.prompt), target: succ.map((e) => e.target), distractor: succ.map((e) => e.distractor), each: false };
    const damage: { method: string; components: string; before: number; after: number; drop: number | null; id: string }[] = [];
    for (const method of ['zero', 'mean', 'resample'] as const) {
      const r = await callTool(ablateTool, { ...task, components: topNumber, method, reference: succ.map((e) => e.prompt) }, ctx);
      damage.push({ method, components: 'top number neurons', before: r.before, after: r.after, drop: r.relativeDrop, id: r.experimentId });
    }
    const control = matchedControls(numberNeurons, cfg.intermediateSize);
    if (control.length === 0) throw new Error(`every neuron of the experts holding the ${numberNeurons.length} number-selective neurons is number-selective: no matched control neuron exists`);
    const ctl = await callTool(ablateTool, { ...task, components: control, method: 'zero' }, ctx);
    damage.push({ method: 'zero', components: CONTROL_LABEL, before: ctl.before, after: ctl.after, drop: ctl.relativeDrop, id: ctl.experimentId });

    const body = [
      `### Probes`,
      `${examples.length} two-word prompts ("the <word>") over ${classes.length} classes (${classes.join(', ')}); multinomial logistic probes on \`blocks.L.hook_resid_post\` at the class word, 4-fold cross-validation, against the majority baseline and a shuffled-label control.`,
      '', '![probe accuracy by layer](probe-layers.svg)', '',
      table(['layer', 'held-out accuracy', 'shuffled control', 'baseline'], probe.layers.map((l) => [l.layer, l.heldOut, l.shuffled, l.baseline])),
      '', `### PCA at layer ${mid}`, '![PCA](pca.svg)', '',
      table(['component', 'explained variance', 'class share (eta²)'], pca.components.map((c) => [c.name, c.explainedVarianceRatio, c.classEta2])),
      '', `### Neurons that respond to numbers (${numberNeurons.length} with selectivity > 0.5; first 12 shown)`,
      table(['neuron', 'mean on numbers', 'mean on names', 'mean on prose', 'selectivity'], numberNeurons.slice(0, 12).map((n) => [n.neuron, n.means.numbers, n.means.names, n.means.prose, n.selectivity])),
      '', '### Ablation damage on the successor task (logit(next number) - logit(last number))',
      table(['ablation', 'neurons', 'before', 'after', 'relative drop'], damage.map((d) => [d.method, d.components, d.before, d.after, d.drop])),
      '', `Control neurons (${control.length}; same experts as the ablated ones, so routed on the same tokens${control.length < topNumber.length ? `; fewer than ablated, as some experts have no neuron left that is not number-selective` : ''}): ${control.join(', ')}.`,
    ].join('\n');
    const zero = damage[0];
    // A relative drop only means something when there was a clear behaviour to drop.
    const relative = zero.before >= 0.5;
    const damageOf = (d: (typeof damage)[number]) => (relative && d.drop !== null ? `${num(d.drop * 100, 0)}%` : `${num(d.before, 2)} -> ${num(d.after, 2)}`);
    if (topNumber.length === 0) throw new Error('no number-selective neurons found');
    return {
      slug: this.slug, title: this.title,
      question: 'Where are token classes linearly readable, which neurons carry number information, and how much does removing them cost?',
      method: 'Linear probes (with shuffled-label controls) and PCA over layers on class words; neuron selectivity over counting, name and prose prompts; zero, mean and resample ablation of the most number-selective neurons against as many other neurons of the same experts (routed on the same tokens).',
      parameters: { classes, examples: examples.length, probeLayers: layers, pcaLayer: mid, ablated: topNumber, control },
      body, plots,
      conclusion: `Token classes (${classes.join(', ')}) ${probe.best.heldOut > probe.best.shuffled + 0.2 ? 'are linearly readable' : 'are not linearly readable above the shuffled-label control'}: held-out probe accuracy ${probe.layers.map((l) => num(l.heldOut, 2)).join(' / ')} over layers ${layers[0]}..${layers[layers.length - 1]} (best ${num(probe.best.heldOut, 2)} at layer ${probe.best.layer}; shuffled-label control ${num(probe.best.shuffled, 2)}). The most number-selective neurons are ${topNumber.slice(0, 4).join(', ')}…; zero-ablating the top ${topNumber.length} ${relative ? 'cuts the successor logit difference by' : 'moves the successor logit difference (near zero to begin with, so shown as before -> after)'} ${damageOf(zero)} (mean: ${damageOf(damage[1])}, resample: ${damageOf(damage[2])}), while the control neurons cost ${damageOf(damage[3])}.`,
      found: { bestProbe: probe.best.heldOut, shuffled: probe.best.shuffled, numberNeurons: topNumber, zeroDrop: zero.drop, controlDrop: ctl.relativeDrop },
      experimentIds: [probe.experimentId, pca.experimentId, sel.experimentId, ...damage.map((d) => d.id)],
      runIds: probe.runIds.slice(0, 6),
      reproduce: [
        { what: 'Probe accuracy by layer', sql: `SELECT layer, value AS held_out, (extra->>'shuffled')::DOUBLE AS shuffled, (extra->>'baseline')::DOUBLE AS baseline FROM results WHERE experiment_id = '${probe.experimentId}' ORDER BY layer;`, expect: { held_out: probe.layers.map((l) => l.heldOut), shuffled: probe.layers.map((l) => l.shuffled), baseline: probe.layers.map((l) => l.baseline) } },
        { what: 'PCA explained variance', sql: `SELECT site, value AS explained_variance FROM results WHERE experiment_id = '${pca.experimentId}' AND site LIKE 'PC%' ORDER BY component;`, expect: { explained_variance: pca.components.map((c) => c.explainedVarianceRatio) } },
        { what: 'Number-selective neurons (first 12)', sql: `SELECT site, value AS selectivity FROM results WHERE experiment_id = '${sel.experimentId}' AND (extra->>'list') = 'single:numbers' AND value > 0.5 AND (extra->'means'->>'numbers')::DOUBLE > 0.05 ORDER BY value DESC LIMIT 12;`, expect: { site: numberNeurons.slice(0, 12).map((n) => n.neuron), selectivity: numberNeurons.slice(0, 12).map((n) => n.selectivity) } },
        { what: 'Ablation damage (zero, mean, resample, control)', sql: `SELECT experiment_id, clean_value AS before, corrupted_value AS after FROM experiments WHERE experiment_id IN (${damage.map((d) => `'${d.id}'`).join(', ')}) ORDER BY list_position([${damage.map((d) => `'${d.id}'`).join(', ')}], experiment_id);`, expect: { before: damage.map((d) => d.before), after: damage.map((d) => d.after) } },
      ],
    };
  },
};
