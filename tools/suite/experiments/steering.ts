// Experiment 3: multi-token steering with a contrast vector, one token vs a window vs every token.
import { callTool } from '../../define.ts';
import { steerTool } from '../../steer.ts';
import { num, table } from '../markdown.ts';
import { lines, makePlot } from '../plots.ts';
import type { Experiment, ExperimentReport } from '../types.ts';

export const steering: Experiment = {
  id: 3,
  slug: 'multi-token-steering',
  title: 'Multi-token steering',
  async run(env): Promise<ExperimentReport> {
    const { ctx, prompts } = env;
    const cfg = ctx.session.config;
    // Negative contexts, scored as logit(positive word) - logit(negative word): steering towards positive raises it.
    const neg = prompts.sentiment.filter((_, i) => i % 2 === 1).slice(0, 6);
    const base = { prompts: neg.map((e) => e.prompt), target: neg.map((e) => e.distractor), distractor: neg.map((e) => e.target), vector: { positive: prompts.contrast.positive, negative: prompts.contrast.negative }, hook: 'resid_pre' as const };

    env.step('choosing the layer: the contrast vector at each layer, every token, coefficient 1');
    const perLayer: { layer: number; shift: number; id: string }[] = [];
    for (let layer = 0; layer < cfg.numLayers; layer++) {
      const r = await callTool(steerTool, { ...base, layer, coefficients: [1], modes: ['all'], generateTokens: 0, saveAs: `suite_sentiment_contrast_L${layer}` }, ctx);
      perLayer.push({ layer, shift: r.rows[0].shift, id: r.experimentId });
    }
    const best = perLayer.reduce((a, b) => (b.shift > a.shift ? b : a));

    env.step(`coefficient sweep at layer ${best.layer}: last token vs window vs every token`);
    const coefficients = [0, 0.5, 1, 2, 4];
    const sweep = await callTool(steerTool, { ...base, vector: { name: `suite_sentiment_contrast_L${best.layer}` }, layer: best.layer, coefficients, modes: ['last', 'window', 'all'], window: 3, generateTokens: 4 }, ctx);
    const at = (mode: string, c: number) => sweep.rows.find((r) => r.mode === mode && r.coefficient === c)!;
    const top = coefficients[coefficients.length - 1];
    const flipped = sweep.base < 0 && at('all', top).metric > 0;
    const plot = await makePlot('steering.svg', 'steering curves', lines('Steering: logit(positive) - logit(negative)', sweep.rows.map((r) => ({ x: r.coefficient, y: r.metric, series: r.mode })), 'coefficient', 'logit difference'));

    const body = [
      `Contrast vector: mean \`blocks.L.hook_resid_pre\` over ${prompts.contrast.positive.length} positive minus ${prompts.contrast.negative.length} negative contexts (matched pairs). Steered prompts: ${neg.length} negative contexts, e.g. "${neg[0].prompt}"; metric logit(${neg[0].distractor}) - logit(${neg[0].target}) style (positive minus negative continuation).`,
      '',
      '#### Which layer',
      table(['layer', 'shift at coefficient 1, every token'], perLayer.map((p) => [p.layer, p.shift])),
      '',
      `#### Coefficient sweep at layer ${best.layer}`,
      `![steering curves](steering.svg)`,
      '',
      table(['coefficient', ...['last', 'window', 'all'].map((m) => `${m} token${m === 'all' ? 's' : ''}`)], coefficients.map((c) => [c, at('last', c).metric, at('window', c).metric, at('all', c).metric])),
      '',
      '#### Generations (greedy), with and without steering',
      table(['prompt', 'unsteered', ...Object.keys(sweep.generations[0]?.steered ?? {})], sweep.generations.map((g) => [g.prompt, g.unsteered, ...Object.values(g.steered)])),
    ].join('\n');
    return {
      slug: this.slug, title: this.title,
      question: 'Does a sentiment contrast vector steer the model, and does adding it at every token move the answer more than at one token?',
      method: 'A contrast vector (positive minus negative contexts) added with a coefficient to the residual stream entering the chosen layer at the last token, the last 3 tokens, or every token; metric and greedy generations compared with the unsteered run.',
      parameters: { layer: best.layer, coefficients, window: 3, prompts: neg.length },
      body, plots: [plot],
      conclusion: `At layer ${best.layer}, coefficient ${top}: every-token steering shifts the logit difference by ${num(at('all', top).shift, 2)}, a 3-token window by ${num(at('window', top).shift, 2)}, the last token alone by ${num(at('last', top).shift, 2)}${flipped ? '; every-token steering flips the answer from negative to positive' : ''}.`,
      found: { layer: best.layer, shiftAll: at('all', top).shift, shiftWindow: at('window', top).shift, shiftLast: at('last', top).shift, flipped },
      experimentIds: [...perLayer.map((p) => p.id), sweep.experimentId],
      runIds: sweep.runIds,
      reproduce: [
        { what: 'Which layer: the shift at coefficient 1, every token', sql: `SELECT layer, effect AS shift FROM results WHERE experiment_id IN (${perLayer.map((p) => `'${p.id}'`).join(', ')}) ORDER BY layer;`, expect: { shift: perLayer.map((p) => p.shift) } },
        { what: `The coefficient sweep at layer ${best.layer}`, sql: `SELECT site, value AS metric FROM results WHERE experiment_id = '${sweep.experimentId}' ORDER BY (extra->>'coefficient')::DOUBLE, list_position(['last', 'window', 'all'], (extra->>'mode'));`, expect: { metric: coefficients.flatMap((c) => ['last', 'window', 'all'].map((m) => at(m, c).metric)) } },
      ],
    };
  },
};
