// Activation patching: run the corrupted prompts with one site at a time restored from the clean
// run, and measure how much of the clean behaviour returns. Sweeps are batched (many sites per
// forward, one batch row per site x example) and start at the patched layer from the corrupted
// run's cached residual; `mode: "sequential"` runs one full forward per site instead, for checking
// and benchmarking (both give the same numbers).
import { z } from 'zod';
import { numel, type Tensor } from '../engine/tensor.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { answerList, meanMetric, metricAnswers, metricOnRun, MetricName, NEGLIGIBLE_EFFECT, normalisedEffect } from './metrics.ts';
import { runAndRecord, tileExamples } from './runs.ts';
import { ExperimentId, grid, Grid, PairRunIds } from './output.ts';
import type { EncodedPrompt } from './session.ts';
import { checkLayers, resolvePositions } from './sites.ts';

export const PatchSite = z.enum(['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out', 'head', 'expert', 'neuron']);

export const patchInput = z.object({
  clean: z.array(z.string().min(1)).min(1).describe('prompts where the behaviour happens, e.g. ["When Mary and John went to the store , John gave a drink to"]'),
  corrupted: z.array(z.string().min(1)).min(1).describe('token-aligned prompts where it does not (same token count as each clean prompt)'),
  target: answerList.describe('the answer token on the clean prompts (one word, or one per example)'),
  distractor: answerList.optional().describe('the competing token for logit_diff (one word, or one per example)'),
  metric: MetricName.default('logit_diff'),
  site: PatchSite.describe('resid_*/attn_out/mlp_out: by layer x position; head: per-head z (all positions unless perPosition); expert: per-expert output; neuron: listed neurons'),
  layers: z.array(z.number().int()).optional().describe('layers to sweep (default all)'),
  positions: z.union([z.literal('all'), z.array(z.number().int())]).default('all').describe('positions for resid/attn_out/mlp_out sites and per-position head sweeps; negative counts from the end'),
  heads: z.array(z.number().int()).optional(),
  perPosition: z.boolean().default(false).describe('head site: patch each head at each position separately'),
  experts: z.array(z.number().int()).optional(),
  neurons: z.array(z.string()).optional().describe('neuron site: e.g. ["L1.E2.N7"]'),
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

const HOOK_OF: Record<z.infer<typeof PatchSite>, string> = {
  resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post',
  attn_out: 'hook_attn_out', mlp_out: 'hook_mlp_out', head: 'attn.hook_z', expert: 'mlp.hook_expert_out', neuron: 'mlp.hook_post',
};

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
        const m = /^L(\d+)\.E(\d+)\.N(\d+)$/.exec(n);
        if (!m) throw new ToolError(`"${n}" is not a neuron; write L<layer>.E<expert>.N<neuron>`);
        const [layer, e, i] = [Number(m[1]), Number(m[2]), Number(m[3])];
        checkLayers([layer], cfg);
        if (e >= cfg.numExperts) throw new ToolError(`${n}: expert ${e} is out of range; valid: 0..${cfg.numExperts - 1}`);
        if (i >= cfg.intermediateSize) throw new ToolError(`${n}: neuron ${i} is out of range; valid: 0..${cfg.intermediateSize - 1}`);
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

export const patchTool = defineTool({
  name: 'patch_activations',
  description: 'Activation patching: restore one site at a time from the clean run into the corrupted run and measure the normalised effect (patched - corrupted) / (clean - corrupted) on the metric. Returns a grid (e.g. layer x position or layer x head) and the top sites; every site is stored as a row of the results table.',
  input: patchInput,
  output: patchOutput,
  async run(input, ctx): Promise<PatchResult> {
    const cfg = ctx.session.config;
    const clean = ctx.session.encodeAll(input.clean, 'clean');
    const corrupted = ctx.session.encodeAll(input.corrupted, 'corrupted');
    const positional = ['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out'].includes(input.site) || (input.site === 'head' && input.perPosition);
    const T = alignPairs(clean, corrupted, positional);
    const N = clean.length;
    const ans = metricAnswers(ctx, input, N);
    const vs = variants(input, ctx, T);
    const hookLocal = HOOK_OF[input.site];
    const layers = [...new Set(vs.map((v) => v.layer))].sort((a, b) => a - b);
    const V = cfg.vocabSize;

    // Clean run: the activations to restore. Corrupted run: the baseline and, per layer, the residual to start from.
    const cleanRun = await runAndRecord(ctx, clean, { capture: layers.map((l) => `blocks.${l}.${hookLocal}`) }, { role: 'clean' });
    const corrRun = await runAndRecord(ctx, corrupted, { capture: layers.map((l) => `blocks.${l}.hook_resid_pre`) }, { role: 'corrupted' });
    const { spec, value: cleanValue } = metricOnRun(input.metric, ans, cleanRun.result.logits!.data, V, N);
    const corruptedValue = meanMetric(spec, corrRun.result.logits!.data, V, N);

    const values = new Array<number>(vs.length);
    let forwards = 0;
    const corruptedIds = corrupted.map((c) => c.ids);
    const hookAt = (layer: number) => `blocks.${layer}.${hookLocal}`;
    // Batched: variants in layer order, maxBatch rows per forward; each row joins at its own layer
    // from the corrupted run's residual, so a chunk passes every layer's weights once.
    // Sequential: one full forward (from layer 0) per variant.
    const order = vs.map((v, i) => ({ v, i })).sort((a, b) => a.v.layer - b.v.layer);
    const perChunk = input.mode === 'batched' ? Math.max(1, Math.floor(input.maxBatch / N)) : 1;
    for (let c = 0; c < order.length; c += perChunk) {
      checkCancelled(ctx, 'patch_activations');
      const chunk = order.slice(c, c + perChunk);
      const rows = chunk.flatMap(() => [...Array(N).keys()]);
      const interventions = [...new Set(chunk.map((x) => x.v.layer))].map((layer) => ({
        hook: hookAt(layer),
        mask: stackMasks(chunk.map((x) => (x.v.layer === layer ? x.v.mask : zeroMask(x.v.mask))), N),
        value: tileExamples(cleanRun.result.cache.get(hookAt(layer))!, rows),
      }));
      const r = await ctx.session.model.run(rows.map((ex) => corruptedIds[ex]), {
        signal: ctx.signal, interventions,
        ...(input.mode === 'batched' ? {
          startLayer: chunk.flatMap((x) => rows.slice(0, N).map(() => x.v.layer)),
          startResid: startResids(chunk.map((x) => x.v.layer), N, (layer) => corrRun.result.cache.get(`blocks.${layer}.hook_resid_pre`)!),
        } : {}),
      });
      forwards++;
      chunk.forEach((x, j) => {
        values[x.i] = meanMetric(spec, r.logits!.data, V, N, j * N);
      });
      ctx.onProgress?.({ done: Math.min(c + perChunk, order.length), total: vs.length, message: `patched ${Math.min(c + perChunk, order.length)}/${vs.length} sites` });
    }

    const effects = values.map((v) => normalisedEffect(v, cleanValue, corruptedValue));
    const effectGrid = toGrid(input, vs, effects);
    const experimentId = await ctx.store.addExperiment({
      kind: 'activation_patching', modelId: ctx.session.modelId,
      params: { ...input, runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds } },
      metric: input.metric, cleanValue, corruptedValue,
      summary: { site: input.site, sites: vs.length, forwards },
    });
    await ctx.store.addResults(vs.map((v, i) => ({
      experimentId, site: v.label, hook: `blocks.${v.layer}.${hookLocal}`, layer: v.layer, position: v.position,
      component: v.component, neuron: v.neuron, value: values[i], effect: effects[i],
    })));
    const top = vs.map((v, i) => ({ site: v.label, effect: effects[i], value: values[i] }))
      .filter((x) => Math.abs(x.effect) > NEGLIGIBLE_EFFECT).sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect)).slice(0, 10);
    return {
      experimentId, metric: input.metric, clean: cleanValue, corrupted: corruptedValue, site: input.site, hook: `blocks.L.${hookLocal}`,
      grid: effectGrid, top, runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds }, forwards,
    };
  },
});

const zeroMask = (m: Tensor): Tensor => ({ data: new Float32Array(m.data.length), dims: m.dims });

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

function toGrid(input: PatchInput, vs: PatchVariant[], effects: number[]): Grid {
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
