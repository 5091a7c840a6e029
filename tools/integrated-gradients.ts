// Integrated gradients over one hook: attribution = (x - x') * mean over the path of d metric / d a,
// with a = x' + alpha (x - x') written into the hook (alpha at `steps` midpoints), x the hook's value
// on the prompts and x' the baseline (the corrupted prompts' value, or zero). Completeness says the
// attributions sum to metric(x) - metric(x'); the tool measures both ends and reports the gap.
import { z } from 'zod';
import { gradients } from '../engine/backward/gradient.ts';
import { resolveHook, type HookAxis } from '../engine/hooks.ts';
import type { Intervention } from '../engine/intervention.ts';
import type { Tensor } from '../engine/tensor.ts';
import { engineMetric } from './attribution-patch.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { answerList, meanMetric, metricAnswers, metricOnRun, MetricName } from './metrics.ts';
import { alignPairs } from './patch.ts';
import { ExperimentId } from './output.ts';
import { runAndRecord } from './runs.ts';

export const integratedGradientsInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1).describe('prompts whose hook value is attributed'),
  baseline: z.union([z.literal('zero'), z.array(z.string().min(1)).min(1)]).default('zero')
    .describe('"zero", or token-aligned corrupted prompts (one per prompt) whose hook value is the baseline'),
  hook: z.string().describe('one hook, e.g. blocks.1.hook_resid_pre or blocks.2.attn.hook_z'),
  target: answerList.optional().describe('the answer token (one word, or one per prompt)'),
  distractor: answerList.optional().describe('the competing token for logit_diff'),
  metric: MetricName.default('logit_diff'),
  steps: z.number().int().min(1).max(256).default(16).describe('points on the path (midpoint rule); more steps, smaller completeness gap'),
});

const cell = z.object({ label: z.string(), attribution: z.number() });
export const integratedGradientsOutput = z.object({
  experimentId: ExperimentId,
  hook: z.string(),
  metric: z.string(),
  steps: z.number().int(),
  /** Mean over prompts, summed over the hook's last axis: one cell per position (x head / expert ...). */
  cells: z.array(cell).describe('attribution summed over the last axis, one per position (and head / expert where the hook has them), mean over prompts'),
  top: z.array(cell),
  completeness: z.object({
    input: z.number().describe('metric with the hook at its value on the prompts'),
    baseline: z.number().describe('metric with the hook at the baseline'),
    sum: z.number().describe('sum of all attributions'),
    relativeGap: z.number().describe('|sum - (input - baseline)| / |input - baseline|'),
  }),
  passes: z.object({ forwards: z.number().int(), backwards: z.number().int() }),
});
export type IntegratedGradientsResult = z.input<typeof integratedGradientsOutput>;

/** Axis label prefixes by symbolic dim (the batch and the last axis are summed away). */
const AXIS_LABEL: Partial<Record<HookAxis, string>> = { pos: 'P', out_pos: 'P', key_pos: 'K', head: 'H', kv_head: 'KV', expert: 'E', top_k: 'slot' };

export const integratedGradientsTool = defineTool({
  name: 'integrated_gradients',
  description: 'Integrated gradients over one hook: how much each position (and head/expert) of that activation contributes to the metric relative to a baseline (zero or corrupted prompts), with the completeness check (attributions sum to metric(input) - metric(baseline)) reported.',
  limits: { prompts: ['prompts', 'baseline'] },
  input: integratedGradientsInput,
  output: integratedGradientsOutput,
  async run(input, ctx: ToolContext): Promise<IntegratedGradientsResult> {
    const cfg = ctx.session.config;
    const hook = resolveHook(input.hook, cfg.numLayers);
    if (!hook.spec.writable) throw new ToolError(`integrated_gradients needs a hook it can write along the path; "${hook.name}" is read-only: ${hook.spec.readOnlyReason}`);
    const prompts = ctx.session.encodeAll(input.prompts, 'prompts');
    const N = prompts.length;
    const corrupted = input.baseline === 'zero' ? null : ctx.session.encodeAll(input.baseline, 'baseline');
    if (corrupted) alignPairs(prompts, corrupted, false);
    const ans = metricAnswers(ctx, input, N);
    const V = cfg.vocabSize;
    const ids = prompts.map((p) => p.ids);

    const run = await runAndRecord(ctx, prompts, { capture: [hook.name] }, { role: 'input' });
    const x = run.result.cache.get(hook.name)!;
    const { spec } = metricOnRun(input.metric, ans, run.result.logits!.data, V, N);
    let xb: Tensor = { data: new Float32Array(x.data.length), dims: x.dims };
    let forwards = 1;
    if (corrupted) {
      const b = await runAndRecord(ctx, corrupted, { capture: [hook.name] }, { role: 'baseline' });
      xb = b.result.cache.get(hook.name)!;
      forwards++;
    }
    const at = (alpha: number): Intervention => ({
      hook: hook.name, mask: { data: new Float32Array([1]), dims: [1] },
      value: { data: xb.data.map((b, i) => b + alpha * (x.data[i] - b)), dims: x.dims },
    });
    // Both ends through the same intervention, so completeness compares like with like.
    const ends = await ctx.session.model.run([...ids, ...ids], {
      signal: ctx.signal,
      interventions: [{ ...at(1), value: { data: concat(x.data, xb.data), dims: [2 * N, ...x.dims.slice(1)] } }],
    });
    forwards++;
    const inputValue = meanMetric(spec, ends.logits!.data, V, N);
    const baselineValue = meanMetric(spec, ends.logits!.data, V, N, N);

    const avg = new Float64Array(x.data.length);
    const metric = engineMetric(spec);
    for (let k = 0; k < input.steps; k++) {
      checkCancelled(ctx, 'integrated_gradients');
      const g = await gradients(ctx.session.model, ids, { metric, grads: [hook.name], interventions: [at((k + 0.5) / input.steps)], signal: ctx.signal });
      const gd = g.grads.get(hook.name)!.data;
      for (let i = 0; i < avg.length; i++) avg[i] += gd[i] / input.steps;
      forwards++;
      ctx.onProgress?.({ done: k + 1, total: input.steps, message: `path step ${k + 1}/${input.steps}` });
    }
    // Attribution per element, mean over prompts (the metric is the mean over prompts).
    const per = x.data.length / N;
    const last = x.dims[x.dims.length - 1];
    const cellsN = per / last;
    const sums = new Float64Array(cellsN);
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < per; i++) {
        const j = n * per + i;
        sums[Math.floor(i / last)] += ((x.data[j] - xb.data[j]) * avg[j]) / N;
      }
    }
    const axes = hook.spec.axes.slice(1, -1);
    const cellDims = x.dims.slice(1, -1);
    const label = (c: number) => {
      const parts: string[] = [];
      for (let a = cellDims.length - 1; a >= 0; a--) {
        parts.unshift(`${AXIS_LABEL[axes[a]] ?? axes[a]}${c % cellDims[a]}`);
        c = Math.floor(c / cellDims[a]);
      }
      return parts.join('.') || 'all';
    };
    const cells = Array.from(sums, (attribution, c) => ({ label: label(c), attribution }));
    const sum = cells.reduce((s, c) => s + c.attribution, 0);
    const diff = inputValue - baselineValue;
    const completeness = { input: inputValue, baseline: baselineValue, sum, relativeGap: Math.abs(sum - diff) / Math.max(Math.abs(diff), 1e-12) };
    const passes = { forwards, backwards: input.steps };

    const experimentId = await ctx.store.addExperiment({
      kind: 'integrated_gradients', modelId: ctx.session.modelId,
      params: { ...input, runIds: run.runIds }, metric: input.metric, cleanValue: inputValue, corruptedValue: baselineValue,
      summary: { hook: hook.name, steps: input.steps, completeness, ...passes },
    });
    const posAxis = axes.findIndex((a) => a === 'pos' || a === 'out_pos');
    await ctx.store.addResults(cells.map((c, i) => ({
      experimentId, site: c.label, hook: hook.name, layer: hook.layer,
      position: posAxis === 0 ? Math.floor(i / cellDims.slice(1).reduce((a, b) => a * b, 1)) : null,
      value: c.attribution, effect: Math.abs(diff) < 1e-12 ? 0 : c.attribution / diff,
    })));
    const top = [...cells].sort((a, b) => Math.abs(b.attribution) - Math.abs(a.attribution)).slice(0, 10);
    return { experimentId, hook: hook.name, metric: input.metric, steps: input.steps, cells, top, completeness, passes };
  },
});

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
