// Activation patching: run the corrupted prompts with one site at a time restored from the clean
// run, and measure how much of the clean behaviour returns. Sweeps are batched (many sites per
// forward, one batch row per site x example) and start at the patched layer from the corrupted
// run's cached residual; a site at position p changes nothing before p, so position sweeps compute
// only that causal cone (positions p.. from the patched layer on, attending to the corrupted run's
// keys and values of positions < p). `mode: "sequential"` runs one full forward per site instead,
// for checking and benchmarking (both give the same numbers).
import { blockHook, type BlockHookLocal } from '../engine/hook-address.ts';
import { z } from 'zod';
import type { KvCache } from '../engine/model.ts';
import { expandTo, numel, takeAxis, type Tensor } from '../engine/tensor.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import type { ToolLimits } from './limits.ts';
import { answerList, meanMetric, metricAnswers, metricOnRun, MetricName, NEGLIGIBLE_EFFECT, normalisedEffect } from './metrics.ts';
import { runAndRecord, tileExamples } from './runs.ts';
import { ExperimentId, grid, Grid, PairRunIds } from './output.ts';
import type { EncodedPrompt } from './session.ts';
import { checkLayers, parseComponent, resolvePositions, SITE_HOOK, siteList } from './sites.ts';

export const PatchSite = z.enum(['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out', 'head', 'expert', 'neuron']);

export const patchInput = z.strictObject({
  clean: z.array(z.string().min(1)).min(1).describe('prompts where the behaviour happens, e.g. ["When Mary and John went to the store , John gave a drink to"]'),
  corrupted: z.array(z.string().min(1)).min(1).describe('token-aligned prompts where it does not (same token count as each clean prompt)'),
  target: answerList.describe('the answer token on the clean prompts (one word, or one per example)'),
  distractor: answerList.optional().describe('the competing token for logit_diff (one word, or one per example)'),
  metric: MetricName.default('logit_diff'),
  site: PatchSite.describe('resid_*/attn_out/mlp_out: by layer x position; head: per-head z (all positions unless perPosition); expert: per-expert output; neuron: listed neurons'),
  layers: siteList(z.number().int(), 'layer').optional().describe('layers to sweep (default all)'),
  positions: z.union([z.literal('all'), siteList(z.number().int(), 'position')]).default('all').describe('positions for resid/attn_out/mlp_out sites and per-position head sweeps; negative counts from the end'),
  heads: siteList(z.number().int(), 'head').optional(),
  perPosition: z.boolean().default(false).describe('head site: patch each head at each position separately'),
  experts: siteList(z.number().int(), 'expert').optional(),
  neurons: siteList(z.string(), 'neuron').optional().describe('neuron site: e.g. ["L1.E2.N7"]'),
  mode: z.enum(['batched', 'sequential']).default('batched'),
  maxBatch: z.number().int().min(1).max(4096).default(64).describe('rows per forward in batched mode'),
});
export type PatchInput = z.infer<typeof patchInput>;

export interface PatchVariant {
  label: string;
  layer: number;
  position: number | null;
  component: number | null;
  neuron: number | null;
  /** Mask over the hook's dims without batch (broadcastable). */
  mask: Tensor;
}

export const patchOutput = z.object({
  experimentId: ExperimentId,
  metric: z.string(),
  clean: z.number().describe('mean metric on the clean prompts'),
  corrupted: z.number().describe('mean metric on the corrupted prompts'),
  site: z.string(),
  hook: z.string().describe('the patched hook, with L for the layer'),
  grid: Grid.describe('normalised effects (patched - corrupted) / (clean - corrupted): 1 = the site restores the clean metric, 0 = no effect'),
  top: z.array(z.object({ site: z.string(), effect: z.number(), value: z.number().describe('the metric with this site patched') }))
    .describe('the sites with the largest |effect| (at most 10; sites without an effect, |effect| <= 1e-6, are not listed)'),
  runIds: PairRunIds,
  forwards: z.number().int(),
});
export type PatchResult = z.infer<typeof patchOutput>;


/** Same-length pairs, and (for position sweeps) one length for all. */
export function alignPairs(clean: EncodedPrompt[], corrupted: EncodedPrompt[], samePositions: boolean): number {
  if (clean.length !== corrupted.length) throw new ToolError(`${clean.length} clean prompts but ${corrupted.length} corrupted; give one corrupted prompt per clean prompt`);
  clean.forEach((c, i) => {
    if (c.ids.length !== corrupted[i].ids.length) {
      throw new ToolError(`clean[${i}] has ${c.ids.length} tokens but corrupted[${i}] has ${corrupted[i].ids.length}; patching needs token-aligned pairs`);
    }
  });
  const T = clean[0].ids.length;
  if (samePositions && clean.some((c) => c.ids.length !== T)) {
    throw new ToolError(`position sweeps need every prompt to have the same token count (found ${[...new Set(clean.map((c) => c.ids.length))].join(', ')}); use prompts from one template or patch heads/experts over all positions`);
  }
  return T;
}


/** A patching request's encoded pairs, answer ids and sites (shared with attribution_patch). */
export function patchSetup(input: PatchInput, ctx: ToolContext) {
  const clean = ctx.session.encodeAll(input.clean, 'clean');
  const corrupted = ctx.session.encodeAll(input.corrupted, 'corrupted');
  const positional = ['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out'].includes(input.site) || (input.site === 'head' && input.perPosition);
  const T = alignPairs(clean, corrupted, positional);
  return { clean, corrupted, N: clean.length, ans: metricAnswers(ctx, input, clean.length), vs: variants(input, ctx, T), T, positional };
}

function variants(input: PatchInput, ctx: ToolContext, T: number): PatchVariant[] {
  const cfg = ctx.session.config;
  const layers = input.layers ?? [...Array(cfg.numLayers).keys()];
  checkLayers(layers, cfg);
  const out: PatchVariant[] = [];
  const oneHot = (dims: number[], index: number): Tensor => {
    const data = new Float32Array(numel(dims));
    data[index] = 1;
    return { data, dims };
  };
  switch (input.site) {
    case 'head': {
      const heads = input.heads ?? [...Array(cfg.numHeads).keys()];
      for (const h of heads) if (!Number.isInteger(h) || h < 0 || h >= cfg.numHeads) throw new ToolError(`head ${h} is out of range; valid: 0..${cfg.numHeads - 1}`);
      const positions = input.perPosition ? resolvePositions(input.positions, T) : [null];
      for (const layer of layers) {
        for (const h of heads) {
          for (const p of positions) {
            const mask = p === null ? oneHot([1, cfg.numHeads, 1], h) : oneHot([T, cfg.numHeads, 1], p * cfg.numHeads + h);
            out.push({ label: p === null ? `L${layer}.H${h}` : `L${layer}.H${h} P${p}`, layer, position: p, component: h, neuron: null, mask });
          }
        }
      }
      return out;
    }
    case 'expert': {
      const experts = input.experts ?? [...Array(cfg.numExperts).keys()];
      for (const e of experts) if (!Number.isInteger(e) || e < 0 || e >= cfg.numExperts) throw new ToolError(`expert ${e} is out of range; valid: 0..${cfg.numExperts - 1}`);
      for (const layer of layers) for (const e of experts) out.push({ label: `L${layer}.E${e}`, layer, position: null, component: e, neuron: null, mask: oneHot([1, cfg.numExperts, 1], e) });
      return out;
    }
    case 'neuron': {
      if (!input.neurons?.length) throw new ToolError('the neuron site needs neurons, e.g. ["L1.E2.N7"]');
      for (const n of input.neurons) {
        const { layer, expert: e, neuron: i } = parseComponent(n, cfg, 'neuron');
        out.push({ label: n, layer, position: null, component: e, neuron: i, mask: oneHot([1, cfg.numExperts, cfg.intermediateSize], e * cfg.intermediateSize + i) });
      }
      return out;
    }
    default: {
      const positions = resolvePositions(input.positions, T);
      for (const layer of layers) for (const p of positions) out.push({ label: `L${layer} P${p}`, layer, position: p, component: null, neuron: null, mask: oneHot([T, 1], p) });
      return out;
    }
  }
}

/** Patching's sizes: its prompt pairs, and the sweep over layers x positions of the clean batch. */
export const PATCH_LIMITS: ToolLimits = { prompts: ['clean', 'corrupted'], sweep: { batch: ['clean'], layers: ['layers'], positions: 'positions' } };

export const patchTool = defineTool({
  name: 'patch_activations',
  description: 'Activation patching: restore one site at a time from the clean run into the corrupted run and measure the normalised effect (patched - corrupted) / (clean - corrupted) on the metric. Returns a grid (e.g. layer x position or layer x head) and the top sites; every site is stored as a row of the results table.',
  readsText: true,
  limits: PATCH_LIMITS,
  input: patchInput,
  output: patchOutput,
  async run(input, ctx): Promise<PatchResult> {
    const cfg = ctx.session.config;
    const { clean, corrupted, N, ans, vs, T, positional } = patchSetup(input, ctx);
    const hookLocal = SITE_HOOK[input.site];
    const layers = [...new Set(vs.map((v) => v.layer))].sort((a, b) => a - b);
    const V = cfg.vocabSize;

    // Clean run: the activations to restore. Corrupted run: the baseline and, per layer, the residual to start from.
    const cleanRun = await runAndRecord(ctx, clean, { capture: layers.map((l) => blockHook(l, hookLocal)) }, { role: 'clean' });
    // Position sweeps reuse the corrupted run's keys and values before each patched position.
    const cone = input.mode === 'batched' && positional;
    const corrCapture = [...new Set([...layers.map((l) => blockHook(l, 'hook_resid_pre')), ...(cone ? layers.map((l) => blockHook(l, hookLocal)) : [])])];
    const corrRun = await runAndRecord(ctx, corrupted, { capture: corrCapture, returnKv: cone }, { role: 'corrupted' });
    const { spec, value: cleanValue } = metricOnRun(input.metric, ans, cleanRun.result.logits!.data, V, N);
    const corruptedValue = meanMetric(spec, corrRun.result.logits!.data, V, N);

    const values = new Array<number>(vs.length);
    let forwards = 0;
    const corruptedIds = corrupted.map((c) => c.ids);
    const hookAt = (layer: number) => blockHook(layer, hookLocal);
    // Batched: variants in layer order, maxBatch rows per forward; each row joins at its own layer
    // from the corrupted run's residual, so a chunk passes every layer's weights once. With the
    // cone, a chunk holds one position p and computes positions p.. only.
    // Sequential: one full forward (from layer 0) per variant.
    const from = (v: PatchVariant) => (cone ? v.position! : 0);
    // A patch that writes the values already there (clean = corrupted under its mask, e.g. before the
    // first differing token) leaves the corrupted run as it is: its value is the corrupted one exactly.
    const noOp = (v: PatchVariant) => {
      const c = cleanRun.result.cache.get(hookAt(v.layer))!;
      const k = corrRun.result.cache.get(hookAt(v.layer))!;
      const per = c.data.length / N;
      const mask = expandTo(v.mask, c.dims.slice(1)).data;
      for (let n = 0; n < N; n++) for (let j = 0; j < per; j++) if (mask[j] !== 0 && c.data[n * per + j] !== k.data[n * per + j]) return false;
      return true;
    };
    const todo = vs.map((v, i) => ({ v, i })).filter(({ v, i }) => {
      if (!cone || !noOp(v)) return true;
      values[i] = corruptedValue;
      return false;
    });
    const order = todo.sort((a, b) => from(a.v) - from(b.v) || a.v.layer - b.v.layer);
    const perChunk = input.mode === 'batched' ? Math.max(1, Math.floor(input.maxBatch / N)) : 1;
    const chunks: (typeof order)[] = [];
    for (let c = 0; c < order.length;) {
      const p = from(order[c].v);
      let end = c;
      while (end < order.length && end - c < perChunk && from(order[end].v) === p) end++;
      chunks.push(order.slice(c, end));
      c = end;
    }
    let done = 0;
    for (const chunk of chunks) {
      checkCancelled(ctx, 'patch_activations');
      const p = from(chunk[0].v);
      const rows = chunk.flatMap(() => [...Array(N).keys()]);
      // Positions p..T-1 of a tensor whose position axis is `axis`.
      const tail = (t: Tensor, axis: number) => (p === 0 ? t : takeAxis(t, axis, [...Array(T - p).keys()].map((i) => p + i)));
      const interventions = [...new Set(chunk.map((x) => x.v.layer))].map((layer) => ({
        hook: hookAt(layer),
        mask: stackMasks(chunk.map((x) => tail(x.v.layer === layer ? x.v.mask : zeroMask(x.v.mask), 0)), N),
        value: tileExamples(tail(cleanRun.result.cache.get(hookAt(layer))!, 1), rows),
      }));
      const r = await ctx.session.model.run(rows.map((ex) => corruptedIds[ex].slice(p)), {
        signal: ctx.signal, interventions,
        ...(input.mode === 'batched' ? {
          startLayer: chunk.flatMap((x) => rows.slice(0, N).map(() => x.v.layer)),
          startResid: startResids(chunk.map((x) => x.v.layer), N, (layer) => tail(corrRun.result.cache.get(blockHook(layer, 'hook_resid_pre'))!, 1)),
          ...(p > 0 ? { past: pastBefore(corrRun.result.kv!, p, rows) } : {}),
        } : {}),
      });
      forwards++;
      chunk.forEach((x, j) => {
        values[x.i] = meanMetric(spec, r.logits!.data, V, N, j * N);
      });
      done += chunk.length;
      ctx.onProgress?.({ done, total: order.length, message: `patched ${done}/${order.length} sites` });
    }

    const effects = values.map((v) => normalisedEffect(v, cleanValue, corruptedValue));
    const effectGrid = toGrid(input, vs, effects);
    const experimentId = await ctx.store.addExperiment({
      kind: 'activation_patching', modelId: ctx.session.modelId,
      params: { ...input, runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds } },
      metric: input.metric, cleanValue, corruptedValue,
      summary: { site: input.site, sites: vs.length, forwards },
    });
    const top = await storeSites(ctx, experimentId, vs, hookLocal, values, effects);
    return {
      experimentId, metric: input.metric, clean: cleanValue, corrupted: corruptedValue, site: input.site, hook: `blocks.L.${hookLocal}`,
      grid: effectGrid, top, runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds }, forwards,
    };
  },
});

/** One results row per site; returns the (at most 10) sites with the largest non-negligible |effect|. */
export async function storeSites(ctx: ToolContext, experimentId: string, vs: PatchVariant[], hookLocal: BlockHookLocal, values: number[], effects: number[]): Promise<PatchResult['top']> {
  await ctx.store.addResults(vs.map((v, i) => ({
    experimentId, site: v.label, hook: blockHook(v.layer, hookLocal), layer: v.layer, position: v.position,
    component: v.component, neuron: v.neuron, value: values[i], effect: effects[i],
  })));
  return vs.map((v, i) => ({ site: v.label, effect: effects[i], value: values[i] }))
    .filter((x) => Math.abs(x.effect) > NEGLIGIBLE_EFFECT).sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect)).slice(0, 10);
}

const zeroMask = (m: Tensor): Tensor => ({ data: new Float32Array(m.data.length), dims: m.dims });

/** The corrupted run's keys and values of positions < p, one row per batch row (row r is example rows[r]). */
function pastBefore(kv: KvCache, p: number, rows: number[]): KvCache {
  const first = [...Array(p).keys()];
  const cut = (t: Tensor) => takeAxis(takeAxis(t, 2, first), 0, rows);
  return { length: p, layers: kv.layers.map((l) => ({ k: cut(l.k), v: cut(l.v) })) };
}

/** [variants * N, T, H]: for each variant, the N examples' residuals entering its layer. */
function startResids(layers: number[], N: number, residAt: (layer: number) => Tensor): Tensor {
  const first = residAt(layers[0]);
  const per = first.data.length / first.dims[0];
  const out = new Float32Array(layers.length * N * per);
  layers.forEach((layer, j) => out.set(residAt(layer).data.subarray(0, N * per), j * N * per));
  return { data: out, dims: [layers.length * N, ...first.dims.slice(1)] };
}

/** Per-variant masks (without batch) stacked into [variants * N, ...] (each repeated for the N examples). */
function stackMasks(masks: Tensor[], N: number): Tensor {
  const per = masks[0].data.length;
  const out = new Float32Array(masks.length * N * per);
  masks.forEach((m, j) => {
    for (let n = 0; n < N; n++) out.set(m.data, (j * N + n) * per);
  });
  return { data: out, dims: [masks.length * N, ...masks[0].dims] };
}

export function toGrid(input: PatchInput, vs: PatchVariant[], effects: number[]): Grid {
  const headByPos = input.site === 'head' && input.perPosition;
  const rowKey = (v: PatchVariant) => (headByPos ? `L${v.layer}.H${v.component}` : input.site === 'neuron' ? v.label : `L${v.layer}`);
  const colKey = (v: PatchVariant) =>
    input.site === 'head' ? (input.perPosition ? `P${v.position}` : `H${v.component}`)
      : input.site === 'expert' ? `E${v.component}` : input.site === 'neuron' ? 'effect' : `P${v.position}`;
  const rowName = headByPos ? 'head' : input.site === 'neuron' ? 'neuron' : 'layer';
  const colName = input.site === 'head' ? (input.perPosition ? 'position' : 'head') : input.site === 'expert' ? 'expert' : input.site === 'neuron' ? 'measure' : 'position';
  const rowLabels = [...new Set(vs.map(rowKey))];
  const colLabels = [...new Set(vs.map(colKey))];
  const values = rowLabels.map(() => new Array<number>(colLabels.length).fill(Number.NaN));
  vs.forEach((v, i) => {
    values[rowLabels.indexOf(rowKey(v))][colLabels.indexOf(colKey(v))] = effects[i];
  });
  return grid({ name: rowName, labels: rowLabels }, { name: colName, labels: colLabels }, values);
}
