// Ablation: replace components' activations by zero, their mean over a reference prompt set, or
// their value on another (resampled) prompt, and measure the metric before and after. Heads act on
// attn.hook_z, neurons on mlp.hook_post, experts on their output (mlp.hook_expert_out) or by being
// forbidden in routing, positions on the residual stream entering a layer (L2.P5): the site -> hook
// map of tools/sites.ts. Directional ablation (`project`) removes a direction instead: at each
// chosen hook x' = x - (x.u)u for the unit vector u (zero), or sets x.u to its mean over the
// reference prompts (mean).
import { z } from 'zod';
import { resolveHook } from '../engine/hooks.ts';
import type { Intervention, RoutingIntervention } from '../engine/intervention.ts';
import { numel, type Tensor } from '../engine/tensor.ts';
import { Rng } from '../engine/rng.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { answerList, describeChange, meanMetric, METRIC_DIRECTION, metricAnswers, metricOnRun, MetricName, relativeDrop } from './metrics.ts';
import { ExperimentId, RunIds } from './output.ts';
import { runAndRecord } from './runs.ts';
import type { EncodedPrompt } from './session.ts';
import { parseSite, resolveHooks, resolvePositions, siteHook, siteList, type SiteAddress } from './sites.ts';
import { loadDirection, VectorRef } from './vectors.ts';

export const ablateInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1).describe('prompts on which the behaviour is measured'),
  target: answerList.optional().describe('answer token(s) for logit_diff / prob / logprob'),
  distractor: answerList.optional(),
  metric: MetricName.default('logit_diff'),
  components: siteList(z.string(), 'component').optional().describe('e.g. ["L3.H5", "L1.E2", "L1.E2.N7", "L2.P4" (residual entering layer 2 at position 4)]'),
  project: z.strictObject({
    vector: VectorRef,
    hooks: siteList(z.string().min(1), 'hook').optional().describe('residual-width hooks (names or patterns, e.g. ["blocks.*.hook_resid_post"]); default: the hook the stored vector was taken at'),
    positions: z.union([z.literal('all'), siteList(z.number().int(), 'position')]).default('all').describe('negative counts from the end'),
    saveAs: z.string().min(1).optional().describe('name to store raw values under'),
  }).optional().describe('directional ablation instead of components: project a stored or raw direction out of the residual stream'),
  method: z.enum(['zero', 'mean', 'resample']).default('zero'),
  reference: z.array(z.string().min(1)).optional().describe('prompts for mean/resample values (default: the prompts themselves)'),
  expertMode: z.enum(['output', 'routing']).default('output').describe('experts: remove the output, or forbid the expert in routing (its tokens go to the next choice)'),
  each: z.boolean().default(true).describe('also ablate each component alone'),
  seed: z.number().int().default(0).describe('resample: which reference prompt each prompt takes its values from'),
});

export const ablateOutput = z.object({
  experimentId: ExperimentId,
  metric: MetricName,
  method: z.enum(['zero', 'mean', 'resample']),
  direction: z.string().describe('which way the metric moves with the behaviour'),
  before: z.number().describe('mean metric without ablation'),
  after: z.number().describe('mean metric with every listed component ablated together'),
  change: z.number().describe('after - before'),
  relativeDrop: z.number().nullable().describe('(before - after) / before for logit_diff and prob with before > 0 (1 = all of it removed; above 1 = reversed); null for kl, loss and logprob (read before -> after)'),
  summary: z.string().describe('before -> after in words, with the direction'),
  each: z.array(z.object({
    component: z.string(),
    after: z.number(),
    change: z.number(),
    relativeDrop: z.number().nullable(),
  })).describe('each component ablated alone (when each is true and there are several)'),
  projected: z.object({ vector: z.string(), hooks: z.array(z.string()), norm: z.number().describe('norm of the vector as given (it is projected as a unit vector)') })
    .nullable().describe('directional ablation: the vector and hooks (null for components)'),
  runIds: RunIds,
});

type Target = SiteAddress;
const hookOf = (t: Target): string => siteHook(t.kind, t.layer);

export const ablateTool = defineTool({
  name: 'ablate',
  description: 'Ablate heads, neurons, experts or residual positions (zero, mean over reference prompts, or resample from another prompt), or remove a direction (project: a stored vector such as a probe, PCA or steering direction, or raw values) from the residual stream at chosen hooks and positions; reports the metric before and after, together and for each component alone.',
  readsText: true,
  limits: { prompts: ['prompts', 'reference'], sites: { components: 512 } },
  input: ablateInput,
  output: ablateOutput,
  async run(input, ctx) {
    const cfg = ctx.session.config;
    const prompts = ctx.session.encodeAll(input.prompts);
    const N = prompts.length;
    const ans = metricAnswers(ctx, input, N);
    if ((input.components === undefined) === (input.project === undefined)) throw new ToolError('give exactly one of components (heads, experts, neurons, positions) or project (a direction to remove)');
    if (input.project) return ablateDirection(ctx, input as AblateInput & { project: object }, prompts, ans);
    const components = input.components!;
    const comps = components.map((s) => parseSite(s, cfg));
    const T = Math.max(...prompts.map((p) => p.ids.length));
    for (const c of comps) {
      if (c.kind === 'position') {
        for (const p of prompts) {
          const q = c.position < 0 ? p.ids.length + c.position : c.position;
          if (q < 0 || q >= p.ids.length) throw new ToolError(`L${c.layer}.P${c.position}: position is beyond a prompt of ${p.ids.length} tokens`);
        }
      }
    }

    const before = await runAndRecord(ctx, prompts, {}, { role: 'ablate before' });
    const V = cfg.vocabSize;
    const { spec, value: beforeValue } = metricOnRun(input.metric, ans, before.result.logits!.data, V, N);

    // Values to put in place: zero, or per-hook tensors from the reference set.
    const hooks = [...new Set(comps.filter((c) => !(c.kind === 'expert' && input.expertMode === 'routing')).map(hookOf))];
    let refValues = new Map<string, Tensor>();
    if (input.method !== 'zero' && hooks.length > 0) {
      const reference = input.reference ? ctx.session.encodeAll(input.reference, 'reference') : prompts;
      refValues = await referenceValues(ctx, reference, prompts, hooks, input.method, input.seed);
    }

    const build = (chosen: Target[], rows: number): { interventions: Intervention[]; routing: RoutingIntervention[] } => {
      const interventions: Intervention[] = [];
      const routing: RoutingIntervention[] = [];
      for (const hook of hooks) {
        const here = chosen.filter((c) => !(c.kind === 'expert' && input.expertMode === 'routing') && hookOf(c) === hook);
        if (here.length === 0) continue;
        const dims = ctx.session.model.hookDims(resolveHook(hook, cfg.numLayers), 1, T, 1).slice(1);
        const mask = new Float32Array(numel(dims));
        for (const c of here) markMask(mask, dims, c, prompts);
        const value = input.method === 'zero' ? { data: new Float32Array([0]), dims: [1] } : tileRows(refValues.get(hook)!, rows);
        interventions.push({ hook, mask: { data: mask, dims }, value });
      }
      for (const c of chosen) if (c.kind === 'expert' && input.expertMode === 'routing') routing.push({ layer: c.layer, forbid: [c.expert] });
      return { interventions, routing };
    };

    const runWith = async (chosen: Target[]) => {
      checkCancelled(ctx, 'ablate');
      const { interventions, routing } = build(chosen, N);
      const r = await ctx.session.model.run(prompts.map((p) => p.ids), { signal: ctx.signal, interventions, routing });
      return meanMetric(spec, r.logits!.data, V, N);
    };
    const afterValue = await runWith(comps);
    const each: z.infer<typeof ablateOutput>['each'] = [];
    if (input.each && comps.length > 1) {
      for (const [i, c] of comps.entries()) {
        const v = await runWith([c]);
        each.push({ component: components[i], after: v, change: v - beforeValue, relativeDrop: relativeDrop(input.metric, beforeValue, v) });
        ctx.onProgress?.({ done: i + 1, total: comps.length, message: `ablated ${components[i]}` });
      }
    }
    const experimentId = await ctx.store.addExperiment({
      kind: 'ablation', modelId: ctx.session.modelId, params: { ...input, runIds: before.runIds },
      metric: input.metric, cleanValue: beforeValue, corruptedValue: afterValue,
      summary: { method: input.method, components },
    });
    const rows = [{ component: components.join('+'), after: afterValue, c: comps.length === 1 ? comps[0] : null }, ...each.map((e, i) => ({ ...e, c: comps[i] }))];
    await ctx.store.addResults(rows.map((r) => ({
      experimentId, site: r.component, hook: r.c ? hookOf(r.c) : null, layer: r.c?.layer ?? null,
      position: r.c?.kind === 'position' ? r.c.position : null,
      component: r.c?.kind === 'head' ? r.c.head : r.c && (r.c.kind === 'expert' || r.c.kind === 'neuron') ? r.c.expert : null,
      neuron: r.c?.kind === 'neuron' ? r.c.neuron : null,
      value: r.after, effect: relativeDrop(input.metric, beforeValue, r.after),
    })));
    return {
      experimentId, metric: input.metric, method: input.method, direction: METRIC_DIRECTION[input.metric].direction,
      before: beforeValue, after: afterValue, change: afterValue - beforeValue,
      relativeDrop: relativeDrop(input.metric, beforeValue, afterValue), summary: describeChange(input.metric, beforeValue, afterValue),
      each, projected: null, runIds: before.runIds,
    };
  },
});

type AblateInput = z.output<typeof ablateInput>;

/** Directional ablation: one forward per hook (in forward order) to read x there with the earlier projections applied, then the run with all of them. */
async function ablateDirection(ctx: ToolContext, input: AblateInput & { project: NonNullable<AblateInput['project']> }, prompts: EncodedPrompt[], ans: ReturnType<typeof metricAnswers>): Promise<z.input<typeof ablateOutput>> {
  const cfg = ctx.session.config;
  const N = prompts.length;
  const V = cfg.vocabSize;
  const H = cfg.hiddenSize;
  const p = input.project;
  if (input.method === 'resample') throw new ToolError('directional ablation takes method "zero" (remove the direction) or "mean" (set it to its mean over the reference prompts), not "resample"');
  const stored = 'name' in p.vector ? await ctx.store.getVector(p.vector.name) : null;
  const hookNames = p.hooks ?? (stored?.hook ? [stored.hook] : null);
  if (!hookNames) throw new ToolError('project.hooks is needed for raw values (or a stored vector without a hook), e.g. ["blocks.1.hook_resid_post"]');
  const hooks = resolveHooks(hookNames, cfg.numLayers);
  for (const h of hooks) {
    if (h.spec.axes.join() !== 'batch,pos,d_model' || !h.spec.writable) {
      throw new ToolError(`project.hooks: ${h.name} (${h.spec.shape}) is not a residual-width hook; give hooks of shape [B, T, H], e.g. blocks.L.hook_resid_post`);
    }
  }
  const dir = await loadDirection(ctx, p.vector, { kind: 'ablation', hook: hooks[0].name, layer: hooks[0].layer, saveAs: p.saveAs, source: 'raw values given to ablate' });
  let norm = 0;
  for (const x of dir.vec) norm += x * x;
  norm = Math.sqrt(norm);
  if (norm === 0) throw new ToolError(`vector "${dir.name}" is all zeros: it has no direction`);
  const u = Float64Array.from(dir.vec, (x) => x / norm);
  const positions = prompts.map((q) => resolvePositions(p.positions, q.ids.length));

  const before = await runAndRecord(ctx, prompts, {}, { role: 'ablate before' });
  const { spec, value: beforeValue } = metricOnRun(input.metric, ans, before.result.logits!.data, V, N);
  // mean: the direction's mean coordinate at each hook over the reference prompts' real positions.
  const targets = new Map<string, number>();
  if (input.method === 'mean') {
    const reference = input.reference ? ctx.session.encodeAll(input.reference, 'reference') : prompts;
    const ref = await runAndRecord(ctx, reference, { capture: hooks.map((h) => h.name), logits: 'none' }, { role: 'ablate mean reference' });
    for (const h of hooks) {
      const x = ref.result.cache.get(h.name)!;
      const T = x.dims[1];
      let sum = 0;
      let count = 0;
      reference.forEach((r, b) => {
        for (let t = 0; t < r.ids.length; t++, count++) for (let i = 0; i < H; i++) sum += x.data[(b * T + t) * H + i] * u[i];
      });
      targets.set(h.name, sum / count);
    }
  }
  const ids = prompts.map((q) => q.ids);
  const interventions: Intervention[] = [];
  for (const [k, h] of hooks.entries()) {
    checkCancelled(ctx, 'ablate');
    const r = await ctx.session.model.run(ids, { signal: ctx.signal, interventions, capture: [h.name], logits: 'none' });
    const x = r.cache.get(h.name)!;
    const T = x.dims[1];
    const add = new Float32Array(x.data.length);
    const target = targets.get(h.name) ?? 0;
    positions.forEach((ts, b) => {
      for (const t of ts) {
        const o = (b * T + t) * H;
        let c = 0;
        for (let i = 0; i < H; i++) c += x.data[o + i] * u[i];
        for (let i = 0; i < H; i++) add[o + i] = (target - c) * u[i];
      }
    });
    interventions.push({ hook: h.name, add: { data: add, dims: x.dims } });
    ctx.onProgress?.({ done: k + 1, total: hooks.length + 1, message: `projected ${dir.name} out at ${h.name}` });
  }
  const r = await ctx.session.model.run(ids, { signal: ctx.signal, interventions });
  const afterValue = meanMetric(spec, r.logits!.data, V, N);
  const site = `project ${dir.name}`;
  const experimentId = await ctx.store.addExperiment({
    kind: 'ablation', modelId: ctx.session.modelId, params: { ...input, project: { ...p, vector: { name: dir.name } }, runIds: before.runIds },
    metric: input.metric, cleanValue: beforeValue, corruptedValue: afterValue,
    summary: { method: input.method, project: dir.name, hooks: hooks.map((h) => h.name) },
  });
  await ctx.store.addResults([{
    experimentId, site, hook: hooks.map((h) => h.name).join(','), layer: hooks[0].layer, position: null, component: null, neuron: null,
    value: afterValue, effect: relativeDrop(input.metric, beforeValue, afterValue),
  }]);
  return {
    experimentId, metric: input.metric, method: input.method, direction: METRIC_DIRECTION[input.metric].direction,
    before: beforeValue, after: afterValue, change: afterValue - beforeValue,
    relativeDrop: relativeDrop(input.metric, beforeValue, afterValue), summary: describeChange(input.metric, beforeValue, afterValue),
    each: [], projected: { vector: dir.name, hooks: hooks.map((h) => h.name), norm }, runIds: before.runIds,
  };
}

/** Sets mask entries for a component over [T, ...] dims (all positions unless it is a position). */
function markMask(mask: Float32Array, dims: number[], c: Target, prompts: EncodedPrompt[]): void {
  const [T, a, b] = dims;
  for (let t = 0; t < T; t++) {
    if (c.kind === 'position') {
      // Negative positions count from each prompt's end; prompts of one length share the index.
      const q = c.position < 0 ? prompts[0].ids.length + c.position : c.position;
      if (t !== q) continue;
      for (let i = 0; i < a; i++) mask[t * a + i] = 1;
    } else if (c.kind === 'head') {
      for (let i = 0; i < b; i++) mask[(t * a + c.head) * b + i] = 1;
    } else if (c.kind === 'expert') {
      for (let i = 0; i < b; i++) mask[(t * a + c.expert) * b + i] = 1;
    } else {
      mask[(t * a + c.expert) * b + c.neuron] = 1;
    }
  }
}

/** mean: one [1, 1, ...] tensor averaged over reference rows and real positions; resample: a reference row per prompt. */
async function referenceValues(ctx: ToolContext, reference: EncodedPrompt[], prompts: EncodedPrompt[], hooks: string[], method: 'mean' | 'resample', seed: number): Promise<Map<string, Tensor>> {
  const ref = await runAndRecord(ctx, reference, { capture: hooks, logits: 'none' }, { role: `ablate ${method} reference` });
  const out = new Map<string, Tensor>();
  const lengths = reference.map((r) => r.ids.length);
  const Tp = Math.max(...prompts.map((p) => p.ids.length));
  for (const hook of hooks) {
    const act = ref.result.cache.get(hook)!;
    const [R, Tr, ...rest] = act.dims;
    const per = numel(rest);
    if (method === 'mean') {
      const sum = new Float64Array(per);
      let count = 0;
      for (let r = 0; r < R; r++) {
        for (let t = 0; t < lengths[r]; t++) {
          const o = (r * Tr + t) * per;
          for (let i = 0; i < per; i++) sum[i] += act.data[o + i];
          count++;
        }
      }
      out.set(hook, { data: Float32Array.from(sum, (s) => s / count), dims: [1, 1, ...rest] });
    } else {
      const rng = new Rng(seed);
      const data = new Float32Array(prompts.length * Tp * per);
      prompts.forEach((p, n) => {
        const same = reference.map((r, i) => ({ r, i })).filter((x) => x.r.ids.length === p.ids.length && x.r.prompt !== p.prompt);
        if (same.length === 0) throw new ToolError(`resample ablation: no reference prompt has ${p.ids.length} tokens like "${p.prompt}" (and differs from it); give reference prompts of the same length`);
        const pick = same[rng.int(same.length)].i;
        for (let t = 0; t < p.ids.length; t++) data.set(act.data.subarray((pick * Tr + t) * per, (pick * Tr + t + 1) * per), (n * Tp + t) * per);
      });
      out.set(hook, { data, dims: [prompts.length, Tp, ...rest] });
    }
  }
  return out;
}

function tileRows(t: Tensor, rows: number): Tensor {
  if (t.dims[0] === 1 || t.dims[0] === rows) return t;
  throw new ToolError(`internal: reference values for ${t.dims[0]} rows cannot serve ${rows}`);
}
