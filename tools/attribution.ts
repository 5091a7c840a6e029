// Direct logit attribution: split the logit difference at one position into what each component
// writes straight into the final residual stream. The final residual is a sum of parts: the token
// embedding, per layer each head's write (z_h through its slice of o_proj), the o_proj bias, each
// chosen expert's routing-weighted output without its bias, and the routing-weighted expert biases.
// With the final RMSNorm's scale frozen at its actual value at that position, the logit difference
// is linear in the residual: part . (finalNorm ⊙ (U[target] - U[distractor]) / rms(final resid)),
// so the parts sum exactly to the logit difference (up to float32 rounding of the forward pass).
// Neurons split their expert's part further (post activation x routing weight x down_proj column).
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import { checkCancelled, defineTool, ToolError } from './define.ts';
import { answerList, answers } from './metrics.ts';
import { ExperimentId, RunIds } from './output.ts';
import { runAndRecord } from './runs.ts';

export const dlaInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1).max(512),
  target: answerList.describe('the answer token (one word, or one per prompt)'),
  distractor: answerList.optional().describe('the competing token (one word, or one per prompt); without it the direction is the target\'s unembedding alone (attributing the target logit)'),
  position: z.number().int().default(-1).describe('the position whose logits are attributed (negative counts from the end; default -1, the last token)'),
  neurons: z.boolean().default(false).describe('also attribute each neuron of the chosen experts (mlp.hook_post x routing weight x down_proj column)'),
  top: z.number().int().min(1).max(200).default(15).describe('how many top contributors to return (all are stored)'),
  storeNeurons: z.number().int().min(0).max(10000).default(100).describe('how many neurons (by |mean contribution|) to store as rows'),
  batch: z.number().int().min(1).max(64).default(8).describe('prompts per forward pass'),
});

type Kind = 'embed' | 'head' | 'attn_bias' | 'expert' | 'expert_bias' | 'neuron';

interface Part {
  site: string;
  kind: Kind;
  hook: string;
  layer: number | null;
  component: number | null;
  neuron: number | null;
  /** Contribution per prompt (0 where the part is absent, e.g. an expert not chosen). */
  perPrompt: Float64Array;
  /** Prompts in which the part is present (experts/neurons: chosen). */
  activeIn: number;
}

const Contribution = z.object({
  site: z.string(), kind: z.enum(['embed', 'head', 'attn_bias', 'expert', 'expert_bias', 'neuron']),
  mean: z.number().describe('mean contribution to the attributed logit (difference) over prompts'),
  share: z.number().describe('mean / actual'),
  activeIn: z.number().int().optional().describe('experts and neurons: prompts in which they were chosen'),
});

export const dlaOutput = z.object({
  experimentId: ExperimentId,
  metric: z.enum(['logit_diff', 'logit']),
  prompts: z.number().int(),
  positions: z.array(z.number().int()),
  actual: z.number().describe('the mean logit difference (or logit) of the forward pass'),
  sumOfParts: z.number(),
  maxRelError: z.number().describe('largest |sum of parts - actual| / |actual| over prompts'),
  perPrompt: z.array(z.object({ actual: z.number(), sumOfParts: z.number(), finalRms: z.number() })).nullable().describe('for at most 32 prompts'),
  top: z.array(Contribution).describe('largest |mean| first; parts with mean 0 are not listed'),
  positive: z.array(Contribution),
  negative: z.array(Contribution),
  byLayer: z.array(z.object({ layer: z.number().int(), heads: z.number(), attnBias: z.number(), experts: z.number(), expertBias: z.number() })),
  topNeurons: z.array(Contribution).nullable(),
  runIds: RunIds,
});

export const dlaTool = defineTool({
  name: 'direct_logit_attribution',
  description: 'Direct logit attribution at one position (default the last): how much each head (attn.hook_result), each expert (mlp.hook_expert_out) and optionally each neuron writes directly along unembed(target) - unembed(distractor) (or unembed(target)), through the final RMSNorm with its scale frozen at the actual final residual. The embedding, o_proj biases and expert biases are their own rows, so the parts sum to the actual logit difference (reported with the check). Returns the top contributors (positive and negative), a per-layer summary, and stores an experiment with a row per component.',
  readsText: true,
  limits: { prompts: ['prompts'] },
  input: dlaInput,
  output: dlaOutput,
  async run(input, ctx) {
    const cfg = ctx.session.config;
    const { numLayers: L, hiddenSize: H, numHeads: nH, headDim: dh, numExperts: E, expertsPerToken: k, intermediateSize: I, vocabSize: V } = cfg;
    const ck = ctx.session.model.checkpoint;
    const prompts = ctx.session.encodeAll(input.prompts);
    const N = prompts.length;
    const targets = answers(ctx, input.target, N, 'target');
    const distractors = answers(ctx, input.distractor, N, 'distractor');
    targets.forEach((t, i) => {
      if (distractors.length && distractors[i] === t) throw new ToolError(`prompt #${i}: target and distractor are the same token; the logit difference would be 0`);
    });
    const positions = prompts.map((p, i) => {
      const q = input.position < 0 ? p.ids.length + input.position : input.position;
      if (q < 0 || q >= p.ids.length) throw new ToolError(`position ${input.position} is beyond prompt #${i} ("${p.prompt}", ${p.ids.length} tokens); valid: 0..${p.ids.length - 1} or -1..-${p.ids.length}`);
      return q;
    });

    // Weights read once: final norm, the unembedding rows needed, o_proj and expert biases per layer.
    const finalNorm = ck.finalNorm();
    const answerIds = [...new Set([...targets, ...distractors])];
    const U = ck.readRows('lm_head.weight', answerIds);
    const uRow = (id: number) => U.subarray(answerIds.indexOf(id) * H, (answerIds.indexOf(id) + 1) * H);
    const oW: Float32Array[] = [], oB: Float32Array[] = [], downB: Float32Array[] = [];
    for (let l = 0; l < L; l++) {
      oW.push(ck.readF32(`model.layers.${l}.self_attn.o_proj.weight`)); // [H, nH*dh]
      oB.push(ck.readF32(`model.layers.${l}.self_attn.o_proj.bias`));
      downB.push(ck.readF32(`model.layers.${l}.mlp.experts.down_proj_bias`)); // [E, H]
    }
    const downW = new Map<string, Float32Array>();
    const downOf = (l: number, e: number) => {
      const key = `${l}.${e}`;
      if (!downW.has(key)) downW.set(key, ck.expert(l, e).downW); // [H, I]
      return downW.get(key)!;
    };

    const parts = new Map<string, Part>();
    const part = (site: string, kind: Kind, hook: string, layer: number | null, component: number | null, neuron: number | null): Part => {
      let p = parts.get(site);
      if (!p) {
        p = { site, kind, hook, layer, component, neuron, perPrompt: new Float64Array(N), activeIn: 0 };
        parts.set(site, p);
      }
      return p;
    };
    // Rows in a stable order: embed, then per layer heads, attn bias, experts, expert bias.
    part('embed', 'embed', 'hook_embed', null, null, null);
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < nH; h++) part(`L${l}.H${h}`, 'head', blockHook(l, 'attn.hook_result'), l, h, null);
      part(`L${l}.attn_bias`, 'attn_bias', blockHook(l, 'hook_attn_out'), l, null, null);
      for (let e = 0; e < E; e++) part(`L${l}.E${e}`, 'expert', blockHook(l, 'mlp.hook_expert_out'), l, e, null);
      part(`L${l}.expert_bias`, 'expert_bias', blockHook(l, 'hook_mlp_out'), l, null, null);
    }

    const actual = new Float64Array(N);
    const rmsOf = new Float64Array(N);
    const capture = [
      'hook_embed', blockHook(L - 1, 'hook_resid_post'),
      'blocks.*.attn.hook_z', 'blocks.*.mlp.hook_expert_out', 'blocks.*.mlp.hook_expert_indices', 'blocks.*.mlp.hook_expert_weights',
      ...(input.neurons ? ['blocks.*.mlp.hook_post'] : []),
    ];
    const allLast = positions.every((q, i) => q === prompts[i].ids.length - 1);
    const runIds: string[] = [];
    for (let start = 0; start < N; start += input.batch) {
      checkCancelled(ctx, 'direct_logit_attribution');
      const chunk = prompts.slice(start, start + input.batch);
      const { result, runIds: ids } = await runAndRecord(ctx, chunk, { capture, logits: allLast ? 'last' : 'all' }, { role: 'direct_logit_attribution' });
      runIds.push(...ids);
      const T = result.length;
      const get = (name: string) => result.cache.get(name)!.data;
      chunk.forEach((_, b) => {
        const n = start + b;
        const p = positions[n];
        const tok = b * T + p;
        // Actual logit difference from the model's logits.
        const P = result.logits!.dims[1];
        const lo = (b * P + (P === 1 ? 0 : p)) * V;
        actual[n] = result.logits!.data[lo + targets[n]] - (distractors.length ? result.logits!.data[lo + distractors[n]] : 0);
        // g = finalNorm ⊙ (U[t] - U[d]) / rms(final residual): the frozen linear read-out.
        const xf = get(blockHook(L - 1, 'hook_resid_post')).subarray(tok * H, (tok + 1) * H);
        let ms = 0;
        for (let i = 0; i < H; i++) ms += xf[i] * xf[i];
        const rms = Math.sqrt(ms / H + cfg.rmsNormEps);
        rmsOf[n] = rms;
        const g = new Float64Array(H);
        const ut = uRow(targets[n]);
        const ud = distractors.length ? uRow(distractors[n]) : null;
        for (let i = 0; i < H; i++) g[i] = (finalNorm[i] * (ut[i] - (ud ? ud[i] : 0))) / rms;
        const along = (v: ArrayLike<number>, o = 0) => {
          let s = 0;
          for (let i = 0; i < H; i++) s += v[o + i] * g[i];
          return s;
        };
        const add = (site: string, v: number, active = true) => {
          const q = parts.get(site)!;
          q.perPrompt[n] += v;
          if (active) q.activeIn++;
        };
        add('embed', along(get('hook_embed'), tok * H));
        for (let l = 0; l < L; l++) {
          // Heads: z_h . (oW_h^T g), the same as attn.hook_result[h] . g.
          const z = get(blockHook(l, 'attn.hook_z'));
          const W = oW[l];
          const u = new Float64Array(nH * dh);
          for (let i = 0; i < H; i++) {
            const gi = g[i];
            const row = i * nH * dh;
            for (let j = 0; j < nH * dh; j++) u[j] += W[row + j] * gi;
          }
          for (let h = 0; h < nH; h++) {
            let s = 0;
            const zo = (tok * nH + h) * dh;
            for (let j = 0; j < dh; j++) s += z[zo + j] * u[h * dh + j];
            add(`L${l}.H${h}`, s);
          }
          add(`L${l}.attn_bias`, along(oB[l]));
          // Experts: the weighted output minus its weighted bias; the biases go to one row per layer.
          const out = get(blockHook(l, 'mlp.hook_expert_out'));
          const idx = get(blockHook(l, 'mlp.hook_expert_indices'));
          const wts = get(blockHook(l, 'mlp.hook_expert_weights'));
          let biasSum = 0;
          for (let j = 0; j < k; j++) {
            const e = idx[tok * k + j];
            const wt = wts[tok * k + j];
            const biasPart = wt * along(downB[l], e * H);
            biasSum += biasPart;
            add(`L${l}.E${e}`, along(out, (tok * E + e) * H) - biasPart);
            if (input.neurons) {
              const post = get(blockHook(l, 'mlp.hook_post'));
              const D = downOf(l, e);
              const v = new Float64Array(I);
              for (let i = 0; i < H; i++) {
                const gi = g[i];
                for (let m = 0; m < I; m++) v[m] += D[i * I + m] * gi;
              }
              for (let m = 0; m < I; m++) {
                const c = wt * post[(tok * E + e) * I + m] * v[m];
                const site = `L${l}.E${e}.N${m}`;
                part(site, 'neuron', blockHook(l, 'mlp.hook_post'), l, e, m);
                add(site, c);
              }
            }
          }
          add(`L${l}.expert_bias`, biasSum);
        }
      });
      ctx.onProgress?.({ done: Math.min(start + input.batch, N), total: N, message: `attributed ${Math.min(start + input.batch, N)}/${N} prompts` });
    }

    // The check: the parts (neurons excluded: they split their expert) sum to the logit difference.
    const summed = new Float64Array(N);
    for (const q of parts.values()) if (q.kind !== 'neuron') for (let n = 0; n < N; n++) summed[n] += q.perPrompt[n];
    const relError = Array.from(actual, (a, n) => Math.abs(summed[n] - a) / Math.max(Math.abs(a), 1e-6));
    const meanOf = (v: ArrayLike<number>) => Array.from(v).reduce((s, x) => s + x, 0) / v.length;
    const meanActual = meanOf(actual);
    const all = [...parts.values()].map((q) => ({ q, mean: meanOf(q.perPrompt) }));
    const entry = ({ q, mean }: { q: Part; mean: number }) => ({
      site: q.site, kind: q.kind, mean, share: meanActual === 0 ? 0 : mean / meanActual,
      ...(q.kind === 'expert' || q.kind === 'neuron' ? { activeIn: q.activeIn } : {}),
    });
    const main = all.filter((x) => x.q.kind !== 'neuron');
    const neurons = all.filter((x) => x.q.kind === 'neuron').sort((a, b) => Math.abs(b.mean) - Math.abs(a.mean));
    const positive = [...main].sort((a, b) => b.mean - a.mean).filter((x) => x.mean > 0).slice(0, input.top).map(entry);
    const negative = [...main].sort((a, b) => a.mean - b.mean).filter((x) => x.mean < 0).slice(0, input.top).map(entry);
    const byLayer = Array.from({ length: L }, (_, l) => {
      const sum = (kind: Kind) => main.filter((x) => x.q.layer === l && x.q.kind === kind).reduce((s, x) => s + x.mean, 0);
      return { layer: l, heads: sum('head'), attnBias: sum('attn_bias'), experts: sum('expert'), expertBias: sum('expert_bias') };
    });

    const metric = distractors.length ? ('logit_diff' as const) : ('logit' as const);
    const stored = [...main.filter((x) => x.q.kind !== 'expert' || x.q.activeIn > 0), ...neurons.slice(0, input.storeNeurons)];
    const experimentId = await ctx.store.addExperiment({
      kind: 'direct_logit_attribution', modelId: ctx.session.modelId,
      params: { ...input, positions, runIds },
      metric, cleanValue: meanActual, corruptedValue: null,
      summary: { sumOfParts: meanOf(summed), maxRelError: Math.max(...relError), byLayer },
    }, stored.map(({ q, mean }) => ({
      site: q.site, hook: q.hook, layer: q.layer, component: q.component, neuron: q.neuron,
      value: mean, effect: meanActual === 0 ? null : mean / meanActual,
      extra: { kind: q.kind, activeIn: q.activeIn, perPrompt: N <= 32 ? Array.from(q.perPrompt) : null },
    })));

    return {
      experimentId, metric, prompts: N, positions,
      actual: meanActual, sumOfParts: meanOf(summed), maxRelError: Math.max(...relError),
      perPrompt: N <= 32 ? Array.from(actual, (a, n) => ({ actual: a, sumOfParts: summed[n], finalRms: rmsOf[n] })) : null,
      top: main.filter((x) => x.mean !== 0).sort((a, b) => Math.abs(b.mean) - Math.abs(a.mean)).slice(0, input.top).map(entry),
      positive, negative, byLayer,
      topNeurons: input.neurons ? neurons.filter((x) => x.mean !== 0).slice(0, input.top).map(entry) : null,
      runIds,
    };
  },
});
