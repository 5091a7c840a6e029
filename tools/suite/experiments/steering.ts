// Experiment 3: multi-token steering with a contrast vector, one token vs a window vs every token.
import { num, table } from '../markdown.ts';
import { lines, makePlot } from '../plots.ts';
import { inProcessPort } from '../port.ts';
import { sentimentSteering, STEERING_MODES, STEERING_WINDOW } from '../steering-steps.ts';
import type { Experiment, ExperimentReport } from '../types.ts';

export const steering: Experiment = {
  id: 3,
  slug: 'multi-token-steering',
  title: 'Multi-token steering',
  async run(env): Promise<ExperimentReport> {
    const { ctx, prompts } = env;
    // The steps are shared with the agent's sentiment protocol (tools/suite/steering-steps.ts).
    const st = await sentimentSteering(inProcessPort(ctx, env.step), prompts, ctx.session.config.numLayers, { vectorPrefix: 'suite_sentiment_contrast' });
    const { perLayer, best, sweep, coefficients, top, at, flipped } = st;
    const neg = st.prompts;
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
      `Control: a contrast built the same way from shuffled labels (half of each class on each side) shifts the metric by ${num(st.controlShift, 2)} at coefficient ${top} on every token (experiment \`${st.control.experimentId}\`).`,
      '',
      '#### Generations (greedy), with and without steering',
      table(['prompt', 'unsteered', ...Object.keys(sweep.generations[0]?.steered ?? {})], sweep.generations.map((g) => [g.prompt, g.unsteered, ...Object.values(g.steered)])),
    ].join('\n');
    return {
      slug: this.slug, title: this.title,
      question: 'Does a sentiment contrast vector steer the model, and does adding it at every token move the answer more than at one token?',
      method: 'A contrast vector (positive minus negative contexts) added with a coefficient to the residual stream entering the chosen layer at the last token, the last 3 tokens, or every token; metric and greedy generations compared with the unsteered run.',
      parameters: { layer: best.layer, coefficients, window: STEERING_WINDOW, prompts: neg.length },
      body, plots: [plot],
      conclusion: `At layer ${best.layer}, coefficient ${top}: every-token steering shifts the logit difference by ${num(at('all', top).shift, 2)}, a 3-token window by ${num(at('window', top).shift, 2)}, the last token alone by ${num(at('last', top).shift, 2)}${flipped ? '; every-token steering flips the answer from negative to positive' : ''}.`,
      found: { layer: best.layer, shiftAll: st.shiftAll, shiftWindow: st.shiftWindow, shiftLast: st.shiftLast, controlShift: st.controlShift, flipped },
      experimentIds: [...perLayer.map((p) => p.experimentId), sweep.experimentId, st.control.experimentId],
      runIds: sweep.runIds,
      reproduce: [
        { what: 'Which layer: the shift at coefficient 1, every token', sql: `SELECT layer, effect AS shift FROM results WHERE experiment_id IN (${perLayer.map((p) => `'${p.experimentId}'`).join(', ')}) ORDER BY layer;`, expect: { shift: perLayer.map((p) => p.shift) } },
        { what: `The coefficient sweep at layer ${best.layer}`, sql: `SELECT site, value AS metric FROM results WHERE experiment_id = '${sweep.experimentId}' ORDER BY (extra->>'coefficient')::DOUBLE, list_position(['last', 'window', 'all'], (extra->>'mode'));`, expect: { metric: coefficients.flatMap((c) => STEERING_MODES.map((m) => at(m, c).metric)) } },
      ],
    };
  },
};
