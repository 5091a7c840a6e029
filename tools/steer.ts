// Steering: add coefficient x vector to the residual stream at one token, a window of tokens or
// every token, at one or more layers, and measure the metric and the generated text against the
// unsteered run. The vector is a stored one or the contrast of two prompt sets at the layer.
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import { generate } from '../engine/generate.ts';
import type { Intervention } from '../engine/intervention.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { answerList, meanMetric, metricAnswers, metricOnRun, MetricName } from './metrics.ts';
import { runAndRecord } from './runs.ts';
import { ExperimentId, grid, Grid, RunIds } from './output.ts';
import type { EncodedPrompt } from './session.ts';
import { checkLayers, SITE_HOOK, siteList } from './sites.ts';
import { loadDirection, RawVector, StoredVector } from './vectors.ts';

export const PositionMode = z.enum(['last', 'window', 'all']);

export const steerInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1),
  target: answerList.optional(),
  distractor: answerList.optional(),
  metric: MetricName.default('logit_diff'),
  vector: z.union([
    StoredVector,
    z.strictObject({ positive: z.array(z.string().min(1)).min(1), negative: z.array(z.string().min(1)).min(1) }).describe('contrast: mean activation of positive minus negative prompts'),
    RawVector,
  ]).describe('{"name": stored vector} | {"positive": [...], "negative": [...]} | {"values": [...]}'),
  layer: z.number().int().describe('layer whose residual stream is read (contrast) and steered'),
  layers: siteList(z.number().int(), 'layer').optional().describe('steer at these layers instead (default [layer])'),
  hook: z.enum(['resid_pre', 'resid_mid', 'resid_post']).default('resid_post'),
  contrastPositions: z.enum(['mean', 'last']).default('mean').describe('contrast vector from the mean over all tokens or from the last token'),
  coefficients: z.array(z.number()).min(1).max(64).default([0, 1, 2, 4, 8]),
  modes: z.array(PositionMode).min(1).default(['last', 'window', 'all']).describe('last: one token (the last); window: the last `window` tokens; all: every token (during generation, new tokens too)'),
  window: z.number().int().min(1).default(3),
  generateTokens: z.number().int().min(0).max(64).default(6).describe('greedy tokens generated with and without steering (0 = none)'),
  saveAs: z.string().min(1).optional().describe('store the contrast (or raw) vector under this name'),
});

export const steerOutput = z.object({
  experimentId: ExperimentId,
  vector: z.string().describe('the stored vector steered along (a contrast vector is stored under this name)'),
  layers: z.array(z.number().int()),
  metric: MetricName,
  base: z.number().describe('mean metric without steering'),
  rows: z.array(z.object({ mode: PositionMode, coefficient: z.number(), metric: z.number(), shift: z.number().describe('metric - base') })),
  grid: Grid.describe('shift of the metric by mode (rows) and coefficient (columns)'),
  generations: z.array(z.object({
    prompt: z.string(),
    unsteered: z.string(),
    steered: z.record(z.string(), z.string()).describe('by "<mode> x<coefficient>" (the largest coefficient)'),
  })),
  runIds: RunIds,
});
export type SteerRow = z.infer<typeof steerOutput>['rows'][number];

async function steeringVector(ctx: ToolContext, input: z.infer<typeof steerInput>, hook: string): Promise<{ vec: Float32Array; name: string }> {
  const H = ctx.session.config.hiddenSize;
  if (!('positive' in input.vector)) {
    return loadDirection(ctx, input.vector, { kind: 'steering', hook, layer: input.layer, saveAs: input.saveAs, source: 'raw values given to steer' });
  }
  const mean = async (prompts: EncodedPrompt[], role: string) => {
    const r = await runAndRecord(ctx, prompts, { capture: [hook], logits: 'none' }, { role });
    const act = r.result.cache.get(hook)!;
    const T = act.dims[1];
    const sum = new Float64Array(H);
    let count = 0;
    prompts.forEach((p, b) => {
      const ts = input.contrastPositions === 'last' ? [p.ids.length - 1] : [...Array(p.ids.length).keys()];
      for (const t of ts) {
        for (let i = 0; i < H; i++) sum[i] += act.data[(b * T + t) * H + i];
        count++;
      }
    });
    return sum.map((s) => s / count);
  };
  const pos = await mean(ctx.session.encodeAll(input.vector.positive, 'positive'), 'steer contrast +');
  const neg = await mean(ctx.session.encodeAll(input.vector.negative, 'negative'), 'steer contrast -');
  const vec = Float32Array.from(pos, (p, i) => p - neg[i]);
  const name = input.saveAs ?? `steer_${hook}_${Date.now().toString(36)}`;
  await ctx.store.putVector({ name, kind: 'steering', modelId: ctx.session.modelId, hook, layer: input.layer, vec, meta: { positive: input.vector.positive, negative: input.vector.negative, positions: input.contrastPositions } });
  return { vec, name };
}

/** Which prompt positions a mode steers, for a prompt of `len` tokens. */
function modePositions(mode: z.infer<typeof PositionMode>, len: number, window: number): number[] {
  if (mode === 'last') return [len - 1];
  if (mode === 'window') return [...Array(Math.min(window, len)).keys()].map((i) => len - 1 - i);
  return [...Array(len).keys()];
}

export const steerTool = defineTool({
  name: 'steer',
  description: 'Add a steering vector (stored, or the contrast of two prompt sets) to the residual stream at the last token, a window of tokens, or every token, over a sweep of coefficients; returns the metric per mode and coefficient and greedy generations with and without steering.',
  readsText: true,
  limits: { prompts: ['prompts', 'vector.positive', 'vector.negative'], sweep: { batch: ['prompts'], layers: ['layers', 'layer'] } },
  input: steerInput,
  output: steerOutput,
  async run(input, ctx) {
    const cfg = ctx.session.config;
    const H = cfg.hiddenSize;
    const layers = input.layers ?? [input.layer];
    checkLayers([input.layer, ...layers], cfg);
    const prompts = ctx.session.encodeAll(input.prompts);
    const N = prompts.length;
    const ans = metricAnswers(ctx, input, N);
    const hookLocal = SITE_HOOK[input.hook];
    const { vec, name } = await steeringVector(ctx, input, blockHook(input.layer, hookLocal));
    const base = await runAndRecord(ctx, prompts, {}, { role: 'steer base' });
    const V = cfg.vocabSize;
    const { spec, value: baseValue } = metricOnRun(input.metric, ans, base.result.logits!.data, V, N);
    const T = Math.max(...prompts.map((p) => p.ids.length));

    // One batch: rows = (mode, coefficient, prompt), each with its own add tensor.
    const combos = input.modes.flatMap((mode) => input.coefficients.map((coefficient) => ({ mode, coefficient })));
    const R = combos.length * N;
    const add = new Float32Array(R * T * H);
    combos.forEach((c, j) => prompts.forEach((p, n) => {
      for (const t of modePositions(c.mode, p.ids.length, input.window)) {
        const o = ((j * N + n) * T + t) * H;
        for (let i = 0; i < H; i++) add[o + i] = c.coefficient * vec[i];
      }
    }));
    checkCancelled(ctx, 'steer');
    const interventions: Intervention[] = layers.map((l) => ({ hook: blockHook(l, hookLocal), add: { data: add, dims: [R, T, H] } }));
    const r = await ctx.session.model.run(combos.flatMap(() => prompts.map((p) => p.ids)), { signal: ctx.signal, interventions });
    const rows: SteerRow[] = combos.map((c, j) => {
      const m = meanMetric(spec, r.logits!.data, V, N, j * N);
      return { mode: c.mode, coefficient: c.coefficient, metric: m, shift: m - baseValue };
    });

    // Generations side by side: unsteered, then each mode at the largest coefficient.
    const generations: { prompt: string; unsteered: string; steered: Record<string, string> }[] = [];
    if (input.generateTokens > 0) {
      const coef = input.coefficients.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a));
      const shown = prompts.slice(0, 3);
      const decode = (ids: number[]) => ctx.session.tokenizer.decode(ids);
      const plain = await generate(ctx.session.model, shown.map((p) => p.ids), { maxNewTokens: input.generateTokens, stopTokens: [], signal: ctx.signal });
      const steered: Record<string, string[]> = {};
      for (const mode of input.modes) {
        checkCancelled(ctx, 'steer');
        const g = await generate(ctx.session.model, shown.map((p) => p.ids), {
          maxNewTokens: input.generateTokens, stopTokens: [], signal: ctx.signal,
          interventions: (Tn) => {
            const a = new Float32Array(shown.length * Tn * H);
            shown.forEach((p, n) => {
              const ts = mode === 'all' ? [...Array(Tn).keys()] : modePositions(mode, p.ids.length, input.window);
              for (const t of ts) for (let i = 0; i < H; i++) a[(n * Tn + t) * H + i] = coef * vec[i];
            });
            return layers.map((l) => ({ hook: blockHook(l, hookLocal), add: { data: a, dims: [shown.length, Tn, H] } }));
          },
        });
        steered[`${mode} x${coef}`] = g.map((x) => decode(x.tokens));
      }
      shown.forEach((p, n) => generations.push({
        prompt: p.prompt, unsteered: decode(plain[n].tokens),
        steered: Object.fromEntries(Object.entries(steered).map(([k, v]) => [k, v[n]])),
      }));
    }

    const experimentId = await ctx.store.addExperiment({
      kind: 'steering', modelId: ctx.session.modelId, params: { ...input, vectorName: name, runIds: base.runIds },
      metric: input.metric, cleanValue: baseValue, corruptedValue: null, summary: { layers, modes: input.modes, generations },
    });
    await ctx.store.addResults(rows.map((row) => ({
      experimentId, site: `${row.mode} x${row.coefficient}`, hook: layers.map((l) => blockHook(l, hookLocal)).join(','), layer: layers[0],
      position: null, component: null, neuron: null, value: row.metric, effect: row.shift, extra: { mode: row.mode, coefficient: row.coefficient },
    })));
    const shifts = grid(
      { name: 'mode', labels: input.modes }, { name: 'coefficient', labels: input.coefficients.map((c) => `x${c}`) },
      input.modes.map((m) => input.coefficients.map((c) => rows.find((r) => r.mode === m && r.coefficient === c)!.shift)),
    );
    return { experimentId, vector: name, layers, metric: input.metric, base: baseValue, rows, grid: shifts, generations, runIds: base.runIds };
  },
});
