// Path patching (freeze-and-patch, Wang et al. 2022): the effect of a sender head on chosen
// receivers through the direct path only. Run A: the base prompts with every head's output frozen
// at its base value except the sender's, which comes from the source run; the receivers' q/k/v
// inputs are recorded. Run B: the base prompts with only those receiver inputs replaced; the
// metric is read there. With receivers "resid_end", run A's own logits give the effect on the
// output through the residual stream. Default direction "denoise": base = corrupted, source =
// clean, effects normalised like activation patching (1 = fully restores the clean metric).
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import type { Intervention } from '../engine/intervention.ts';
import type { Tensor } from '../engine/tensor.ts';
import { checkCancelled, defineTool, ToolError } from './define.ts';
import { answerList, meanMetric, metricAnswers, metricOnRun, MetricName, NEGLIGIBLE_EFFECT, normalisedEffect } from './metrics.ts';
import { alignPairs } from './patch.ts';
import { ExperimentId, grid, Grid, PairRunIds } from './output.ts';
import { runAndRecord, tileExamples } from './runs.ts';
import { componentName, parseComponent, siteHook, siteList } from './sites.ts';

export const pathPatchInput = z.strictObject({
  clean: z.array(z.string().min(1)).min(1),
  corrupted: z.array(z.string().min(1)).min(1).describe('token-aligned with clean'),
  target: answerList,
  distractor: answerList.optional(),
  metric: MetricName.default('logit_diff'),
  senders: z.union([z.literal('all'), siteList(z.string(), 'sender')]).default('all').describe('sender heads, e.g. ["L1.H3"], or "all" heads in layers before the first receiver'),
  receivers: z.union([z.literal('resid_end'), siteList(z.string(), 'receiver')]).describe('receiver heads, e.g. ["L3.H5"], or "resid_end" (the logits)'),
  receiverInput: z.union([z.enum(['q', 'k', 'v', 'qkv']), siteList(z.enum(['q', 'k', 'v']), 'receiver input')]).default('q')
    .describe('which inputs of the receiver heads carry the path: "q", "k", "v", "qkv", or a subset such as ["k", "v"] (k and v are shared by a GQA group)'),
  direction: z.enum(['denoise', 'noise']).default('denoise').describe('denoise: base corrupted, source clean; noise: base clean, source corrupted'),
  maxBatch: z.number().int().min(1).max(4096).default(64),
});

export const pathPatchOutput = z.object({
  experimentId: ExperimentId,
  metric: MetricName,
  clean: z.number(),
  corrupted: z.number(),
  receivers: z.string().describe('the receiver heads and inputs (e.g. "L3.H1:kv"), or resid_end'),
  senders: z.number().int().describe('senders patched (two forward passes of the batch each)'),
  hint: z.string().optional().describe('how to make a large sweep cheaper'),
  grid: Grid.describe('normalised effect of each sender (layer x head) through the path only; null where a head was not a sender'),
  top: z.array(z.object({ sender: z.string(), effect: z.number(), value: z.number() })).describe('the senders with the largest |effect| (at most 10; |effect| <= 1e-6 not listed)'),
  runIds: PairRunIds,
});

interface Head { layer: number; head: number }

/** Senders from which an "all" sweep gets a hint to name them instead (gpt-oss-20b has 64 heads a layer). */
const LARGE_SWEEP = 16;
const QKV_HOOK = { q: 'attn.hook_q', k: 'attn.hook_k', v: 'attn.hook_v' } as const;

export const pathPatchTool = defineTool({
  name: 'path_patch',
  description: 'Path patching: the effect of each sender head on the receivers (their q, k or v inputs, or the final residual stream) through that path only, with all other heads frozen. Returns a normalised effect per sender (1 = restores the clean metric fully through this path). Each sender costs two forward passes of the batch: over all heads of a large model that is minutes, so name the senders (e.g. the top heads of patch_activations) when you can.',
  readsText: true,
  limits: { prompts: ['clean', 'corrupted'] },
  input: pathPatchInput,
  output: pathPatchOutput,
  async run(input, ctx) {
    const cfg = ctx.session.config;
    const { numHeads: nH, numKvHeads: nKV } = cfg;
    const clean = ctx.session.encodeAll(input.clean, 'clean');
    const corrupted = ctx.session.encodeAll(input.corrupted, 'corrupted');
    alignPairs(clean, corrupted, false);
    const N = clean.length;
    const ans = metricAnswers(ctx, input, N);
    const asHead = (s: string): Head => parseComponent(s, cfg, 'head');
    const receivers = input.receivers === 'resid_end' ? null : input.receivers.map(asHead);
    const firstReceiver = receivers ? Math.min(...receivers.map((r) => r.layer)) : cfg.numLayers;
    const senders: Head[] = input.senders === 'all'
      ? Array.from({ length: firstReceiver * nH }, (_, i) => ({ layer: Math.floor(i / nH), head: i % nH }))
      : input.senders.map(asHead);
    if (senders.length === 0) throw new ToolError('no senders: receivers in layer 0 have no earlier heads');
    for (const s of senders) {
      if (s.layer >= firstReceiver) throw new ToolError(`sender L${s.layer}.H${s.head} is not before the receivers (first receiver layer ${firstReceiver}); a path runs forward`);
    }
    const lastLayer = receivers ? Math.max(...receivers.map((r) => r.layer)) : cfg.numLayers - 1;
    const frozenLayers = [...Array(lastLayer + (receivers ? 0 : 1)).keys()];
    const given = typeof input.receiverInput === 'string' ? (input.receiverInput === 'qkv' ? ['q', 'k', 'v'] : [input.receiverInput]) : input.receiverInput;
    const inputs = (['q', 'k', 'v'] as const).filter((x) => given.includes(x));
    const receiverLayers = receivers ? [...new Set(receivers.map((r) => r.layer))] : [];
    const receiverInputs = receiverLayers.flatMap((layer) => inputs.map((x) => ({ layer, x, hook: blockHook(layer, QKV_HOOK[x]) })));
    const receiverHooks = receiverInputs.map((r) => r.hook);

    const [baseP, sourceP] = input.direction === 'denoise' ? [corrupted, clean] : [clean, corrupted];
    const zHooks = frozenLayers.map((l) => siteHook('head', l));
    const base = await runAndRecord(ctx, baseP, { capture: [...zHooks, ...receiverHooks] }, { role: `path_patch base (${input.direction})` });
    const source = await runAndRecord(ctx, sourceP, { capture: [...new Set(senders.map((s) => siteHook('head', s.layer)))] }, { role: `path_patch source (${input.direction})` });
    const [cleanRun, corrRun] = input.direction === 'denoise' ? [source, base] : [base, source];
    const V = cfg.vocabSize;
    const { spec, value: cleanValue } = metricOnRun(input.metric, ans, cleanRun.result.logits!.data, V, N);
    const corruptedValue = meanMetric(spec, corrRun.result.logits!.data, V, N);

    const values: number[] = [];
    ctx.onProgress?.({ done: 0, total: senders.length, message: `path patching ${senders.length} senders (2 forward passes of ${N} prompts each)` });
    const perChunk = Math.max(1, Math.floor(input.maxBatch / N));
    const baseIds = baseP.map((p) => p.ids);
    for (let c = 0; c < senders.length; c += perChunk) {
      checkCancelled(ctx, 'path_patch');
      const chunk = senders.slice(c, c + perChunk);
      const rows = chunk.flatMap(() => [...Array(N).keys()]);
      // Run A: freeze every head at its base value, except the sender (source value).
      const freeze: Intervention[] = frozenLayers.map((l) => {
        const value = tileExamples(base.result.cache.get(siteHook('head', l))!, rows);
        const [, T, , d] = value.dims;
        chunk.forEach((s, j) => {
          if (s.layer !== l) return;
          const src = source.result.cache.get(siteHook('head', l))!;
          for (let n = 0; n < N; n++) {
            for (let t = 0; t < T; t++) {
              const from = ((n * T + t) * nH + s.head) * d;
              value.data.set(src.data.subarray(from, from + d), (((j * N + n) * T + t) * nH + s.head) * d);
            }
          }
        });
        return { hook: siteHook('head', l), mask: { data: new Float32Array([1]), dims: [1] }, value };
      });
      const runA = await ctx.session.model.run(rows.map((ex) => baseIds[ex]), { signal: ctx.signal, interventions: freeze, capture: receiverHooks });
      if (!receivers) {
        chunk.forEach((_, j) => values.push(meanMetric(spec, runA.logits!.data, V, N, j * N)));
        continue;
      }
      // Run B: the base run with only the receivers' inputs taken from run A.
      const patches: Intervention[] = receiverInputs.map(({ layer, x, hook }) => {
        const kind = x === 'q' ? 'q' : 'kv';
        const width = kind === 'q' ? nH : nKV;
        const mask = new Float32Array(width);
        for (const r of receivers.filter((x) => x.layer === layer)) mask[kind === 'q' ? r.head : Math.floor(r.head / (nH / nKV))] = 1;
        return { hook, mask: { data: mask, dims: [1, 1, width, 1] }, value: runA.cache.get(hook)! as Tensor };
      });
      const runB = await ctx.session.model.run(rows.map((ex) => baseIds[ex]), { signal: ctx.signal, interventions: patches });
      chunk.forEach((_, j) => values.push(meanMetric(spec, runB.logits!.data, V, N, j * N)));
      ctx.onProgress?.({ done: Math.min(c + perChunk, senders.length), total: senders.length, message: 'path patching senders' });
    }

    const effects = values.map((v) => normalisedEffect(v, cleanValue, corruptedValue));
    const receiverLabel = receivers ? receivers.map((r) => componentName({ kind: 'head', ...r })).join(',') + `:${inputs.join('')}` : 'resid_end';
    const experimentId = await ctx.store.addExperiment({
      kind: 'path_patching', modelId: ctx.session.modelId,
      params: { ...input, runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds } },
      metric: input.metric, cleanValue, corruptedValue, summary: { receivers: receiverLabel, senders: senders.length },
    });
    await ctx.store.addResults(senders.map((s, i) => ({
      experimentId, site: `${componentName({ kind: 'head', ...s })} -> ${receiverLabel}`, hook: siteHook('head', s.layer),
      layer: s.layer, position: null, component: s.head, neuron: null, value: values[i], effect: effects[i],
    })));
    const senderLayers = [...new Set(senders.map((s) => s.layer))].sort((a, b) => a - b);
    const senderHeads = [...new Set(senders.map((s) => s.head))].sort((a, b) => a - b);
    const effectGrid = senderLayers.map((l) => senderHeads.map((h) => {
      const i = senders.findIndex((s) => s.layer === l && s.head === h);
      return i < 0 ? Number.NaN : effects[i];
    }));
    return {
      experimentId, metric: input.metric, clean: cleanValue, corrupted: corruptedValue, receivers: receiverLabel, senders: senders.length,
      ...(input.senders === 'all' && senders.length > LARGE_SWEEP ? {
        hint: `all ${senders.length} heads before layer ${firstReceiver} were senders (2 forward passes of the batch each); name the senders to narrow the sweep, e.g. the heads with the largest effects in patch_activations, or the heads of a few layers`,
      } : {}),
      grid: grid({ name: 'layer', labels: senderLayers.map((l) => `L${l}`) }, { name: 'head', labels: senderHeads.map((h) => `H${h}`) }, effectGrid),
      top: senders.map((s, i) => ({ sender: componentName({ kind: 'head', ...s }), effect: effects[i], value: values[i] }))
        .filter((x) => Math.abs(x.effect) > NEGLIGIBLE_EFFECT).sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect)).slice(0, 10),
      runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds },
    };
  },
});
