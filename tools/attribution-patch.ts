// Attribution patching (AtP, Nanda 2023): estimate every site's activation-patching effect from one
// clean forward and one forward + backward on the corrupted prompts: effect(site) ~
// (a_clean - a_corrupted) . d metric / d a at the corrupted run, normalised as patching is. Same
// arguments and the same grid as patch_activations, so the two can be compared cell by cell.
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import { gradients } from '../engine/backward/gradient.ts';
import type { LogitMetric } from '../engine/backward/metric.ts';
import { broadcastStrides, type Tensor } from '../engine/tensor.ts';
import { defineTool, ToolError, type ToolContext } from './define.ts';
import { meanMetric, metricOnRun, normalisedEffect, type MetricSpec } from './metrics.ts';
import { PATCH_LIMITS, patchInput, patchSetup, storeSites, toGrid, type PatchInput } from './patch.ts';
import { ExperimentId, Grid, PairRunIds } from './output.ts';
import { runAndRecord } from './runs.ts';
import { checkQkFixSite, firstReader, qkFixCorrections, qkFixHooks } from './attribution-qk-fix.ts';
import { SITE_HOOK } from './sites.ts';

export const attributionPatchInput = z.strictObject({
  ...patchInput.omit({ mode: true, maxBatch: true }).shape,
  igSteps: z.number().int().min(0).max(64).default(0).describe('0: plain AtP (gradient at the corrupted run). n > 0: average the gradient over n points between the corrupted and clean token embeddings (the EAP-IG path), which tracks saturated attention better at n forward+backward passes'),
  qkFix: z.boolean().default(false).describe('AtP* QK fix: exact change of later heads\' attention patterns through their q/k instead of the linear one (for saturated attention; no extra engine pass). Not with igSteps or site neuron'),
});
export type AttributionPatchInput = z.infer<typeof attributionPatchInput>;

export const attributionPatchOutput = z.object({
  experimentId: ExperimentId,
  metric: z.string(),
  clean: z.number().describe('metric on the clean prompts'),
  corrupted: z.number().describe('metric on the corrupted prompts'),
  site: z.string(),
  hook: z.string(),
  grid: Grid.describe('estimated normalised effects, laid out as patch_activations lays out its grid'),
  top: z.array(z.object({ site: z.string(), effect: z.number(), value: z.number().describe('estimated metric with this site patched') })),
  runIds: PairRunIds,
  passes: z.object({ forwards: z.number().int(), backwards: z.number().int() }).describe('engine passes used: AtP needs 2 forwards and 1 backward whatever the number of sites'),
});
export type AttributionPatchResult = z.input<typeof attributionPatchOutput>;

/** The tools' metric as the engine's per-row metric (kl against the clean run's logits). */
export function engineMetric(spec: MetricSpec): LogitMetric {
  return { name: spec.name, target: spec.targets, distractor: spec.distractors, clean: spec.cleanLogits };
}

/**
 * Per element of a hook without its batch dim: the mean over examples of (clean - corrupted) * grad.
 * A site's estimated change of the mean metric is this summed under its mask.
 */
export function attributionDensity(clean: Tensor, corrupted: Tensor, grad: Tensor): Float64Array {
  const N = grad.dims[0];
  const per = grad.data.length / N;
  const out = new Float64Array(per);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < per; i++) out[i] += ((clean.data[n * per + i] - corrupted.data[n * per + i]) * grad.data[n * per + i]) / N;
  }
  return out;
}

/**
 * Gradients averaged over `steps` midpoints alpha = (k + 1/2) / steps of the straight path from the
 * corrupted to the clean token embeddings (the embedding is replaced by the interpolation).
 */
export async function pathGradients(
  ctx: ToolContext, ids: number[][], cleanEmbed: Tensor, corruptedEmbed: Tensor,
  opts: { metric: LogitMetric; grads: string[] }, steps: number,
): Promise<Map<string, Tensor>> {
  const sum = new Map<string, Tensor>();
  for (let k = 0; k < steps; k++) {
    const alpha = (k + 0.5) / steps;
    const value = corruptedEmbed.data.map((c, i) => c + alpha * (cleanEmbed.data[i] - c));
    const r = await gradients(ctx.session.model, ids, {
      ...opts, signal: ctx.signal,
      interventions: [{ hook: 'hook_embed', mask: { data: new Float32Array([1]), dims: [1] }, value: { data: value, dims: corruptedEmbed.dims } }],
    });
    for (const [h, t] of r.grads) {
      const acc = sum.get(h) ?? { data: new Float32Array(t.data.length), dims: t.dims };
      for (let i = 0; i < t.data.length; i++) acc.data[i] += t.data[i] / steps;
      sum.set(h, acc);
    }
    ctx.onProgress?.({ done: k + 1, total: steps, message: `path gradient ${k + 1}/${steps}` });
  }
  return sum;
}

/**
 * `density` (over the hook's dims without batch) summed onto a mask's broadcast shape: entry j is
 * the sum over every element the mask's entry j covers. A site's estimate is then its mask dotted
 * with this (computed once per mask shape instead of once per site).
 */
export function reduceToMask(density: Float64Array, dims: number[], maskDims: number[]): Float64Array {
  const st = broadcastStrides(maskDims, dims);
  const out = new Float64Array(maskDims.reduce((a, b) => a * b, 1));
  const idx = new Array<number>(dims.length).fill(0);
  let j = 0;
  for (let i = 0; i < density.length; i++) {
    out[j] += density[i];
    for (let a = dims.length - 1; a >= 0; a--) {
      idx[a]++;
      j += st[a];
      if (idx[a] < dims[a]) break;
      j -= st[a] * dims[a];
      idx[a] = 0;
    }
  }
  return out;
}

export const attributionPatchTool = defineTool({
  name: 'attribution_patch',
  description: 'Attribution patching (AtP): the gradient estimate of patch_activations for every site at once, from 2 forwards and 1 backward instead of one forward per site. Same arguments and grid as patch_activations (sites resid_*, attn_out, mlp_out, head, expert, neuron; per position or not); estimate = (clean - corrupted) . gradient at the corrupted run, normalised as patching is. Linear, so it can miss saturated effects: confirm the top sites with patch_activations.',
  limits: PATCH_LIMITS,
  input: attributionPatchInput,
  output: attributionPatchOutput,
  async run(input, ctx: ToolContext): Promise<AttributionPatchResult> {
    const cfg = ctx.session.config;
    const asPatch: PatchInput = { ...input, mode: 'batched', maxBatch: 64 };
    const { clean, corrupted, N, ans, vs } = patchSetup(asPatch, ctx);
    const hookLocal = SITE_HOOK[input.site];
    const layers = [...new Set(vs.map((v) => v.layer))].sort((a, b) => a - b);
    const hooks = layers.map((l) => blockHook(l, hookLocal));
    const V = cfg.vocabSize;
    if (input.qkFix) {
      checkQkFixSite(input.site, hookLocal);
      if (input.igSteps > 0) throw new ToolError('qkFix and igSteps are two different corrections of plain AtP; give one of them');
    }
    const fix = input.qkFix ? qkFixHooks(Math.min(...layers.map((l) => firstReader(hookLocal, l))), cfg.numLayers) : { capture: [], grads: [] };

    const cleanRun = await runAndRecord(ctx, clean, { capture: [...hooks, 'hook_embed'] }, { role: 'clean' });
    const { spec, value: cleanValue } = metricOnRun(input.metric, ans, cleanRun.result.logits!.data, V, N);
    ctx.onProgress?.({ done: 1, total: 3, message: 'clean run done; corrupted forward + backward' });
    const metric = engineMetric(spec);
    const corruptedIds = corrupted.map((c) => c.ids);
    const g = await gradients(ctx.session.model, corruptedIds, { metric, grads: [...hooks, ...fix.grads], capture: [...hooks, 'hook_embed', ...fix.capture], signal: ctx.signal });
    const passes = { forwards: 2, backwards: 1 };
    if (input.igSteps > 0) {
      const path = await pathGradients(ctx, corruptedIds, cleanRun.result.cache.get('hook_embed')!, g.cache.get('hook_embed')!, { metric, grads: hooks }, input.igSteps);
      for (const h of hooks) g.grads.set(h, path.get(h)!);
      passes.forwards += input.igSteps;
      passes.backwards = input.igSteps;
    }
    const corruptedRunIds: string[] = [];
    for (const p of corrupted) corruptedRunIds.push(await ctx.store.addRun({ modelId: ctx.session.modelId, prompt: p.prompt, tokenIds: p.ids, tokens: p.tokens, meta: { role: 'corrupted' } }));
    const corruptedValue = meanMetric(spec, g.logits.data, V, N);

    const reduced = new Map<string, Float64Array>();
    const values = vs.map((v) => {
      const h = blockHook(v.layer, hookLocal);
      const key = `${h}|${v.mask.dims}`;
      if (!reduced.has(key)) {
        const density = attributionDensity(cleanRun.result.cache.get(h)!, g.cache.get(h)!, g.grads.get(h)!);
        reduced.set(key, reduceToMask(density, g.grads.get(h)!.dims.slice(1), v.mask.dims));
      }
      const r = reduced.get(key)!;
      let s = 0;
      for (let i = 0; i < r.length; i++) if (v.mask.data[i] !== 0) s += v.mask.data[i] * r[i];
      return corruptedValue + s;
    });
    if (input.qkFix) {
      const corrections = await qkFixCorrections({
        model: ctx.session.model, hookLocal, sites: vs, clean: cleanRun.result.cache, corrupted: g.cache, grads: g.grads, lengths: g.lengths, signal: ctx.signal,
      });
      corrections.forEach((c, i) => (values[i] += c));
    }
    const effects = values.map((v) => normalisedEffect(v, cleanValue, corruptedValue));
    ctx.onProgress?.({ done: 3, total: 3, message: `estimated ${vs.length} sites` });

    const runIds = { clean: cleanRun.runIds, corrupted: corruptedRunIds };
    const experimentId = await ctx.store.addExperiment({
      kind: 'attribution_patching', modelId: ctx.session.modelId,
      params: { ...input, runIds }, metric: input.metric, cleanValue, corruptedValue,
      summary: { site: input.site, sites: vs.length, ...passes },
    });
    const top = await storeSites(ctx, experimentId, vs, hookLocal, values, effects);
    return {
      experimentId, metric: input.metric, clean: cleanValue, corrupted: corruptedValue, site: input.site, hook: `blocks.L.${hookLocal}`,
      grid: toGrid(asPatch, vs, effects), top, runIds, passes,
    };
  },
});
