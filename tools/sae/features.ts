// Feature tools over an attached dictionary's latents: feature_dashboard (what one latent responds
// to and what it does), feature_search (latents active on given text, or selective for classes),
// feature_intervention (ablate or steer latents and measure the behaviour).
import { z } from 'zod';
import { saeHooksAt } from '../../engine/hook-address.ts';
import type { SparseDictionary } from '../../engine/sae/dictionary.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from '../define.ts';
import { answerList, meanMetric, metricAnswers, metricOnRun, MetricName } from '../metrics.ts';
import { RunIds } from '../output.ts';
import { runAndRecord } from '../runs.ts';
import { corpusRows, type TokenRow } from './corpus.ts';
import { attachDictionary, loadDictionary } from './registry.ts';

/** The attached dictionary with this id (attaching it from the store first when it is not). */
async function dictionaryFor(ctx: ToolContext, saeId: string): Promise<{ site: string; dict: SparseDictionary }> {
  const a = ctx.session.model.attachedSaes.find((x) => x.saeId === saeId);
  if (a) return { site: a.site, dict: a.runner.dict };
  const { dict } = await loadDictionary(ctx, saeId);
  if (dict.hookOut) throw new ToolError(`dictionary "${saeId}" is a transcoder; feature tools read SAE latents`);
  await attachDictionary(ctx, saeId, dict);
  return { site: dict.hook, dict };
}

function checkLatents(saeId: string, dict: SparseDictionary, latents: number[]): void {
  for (const j of latents) if (j >= dict.dSae) throw new ToolError(`latent ${j} is out of range; dictionary "${saeId}" has latents 0..${dict.dSae - 1}`);
}

/** Latent activations [tokens, dSae] of every real position of every row, in row order. */
async function latentsOf(ctx: ToolContext, site: string, dSae: number, rows: TokenRow[], batchSize = 32): Promise<Float32Array> {
  const hook = saeHooksAt(site).hook_sae_acts;
  const tokens = rows.reduce((n, r) => n + r.ids.length, 0);
  if (tokens * dSae * 4 > 2 ** 31) throw new ToolError(`${tokens} tokens x ${dSae} latents is too much to hold at once; give fewer prompts`);
  const out = new Float32Array(tokens * dSae);
  let at = 0;
  for (let start = 0; start < rows.length; start += batchSize) {
    checkCancelled(ctx, 'reading latents');
    const batch = rows.slice(start, start + batchSize);
    const r = await ctx.session.model.run(batch.map((b) => b.ids), { capture: [hook], logits: 'none', signal: ctx.signal });
    const t = r.cache.get(hook)!;
    const T = t.dims[1];
    batch.forEach((row, b) => {
      out.set(t.data.subarray(b * T * dSae, (b * T + row.ids.length) * dSae), at * dSae);
      at += row.ids.length;
    });
    ctx.onProgress?.({ done: Math.min(start + batchSize, rows.length), total: rows.length, message: 'reading latents' });
  }
  return out;
}

const corpusChoice = {
  prompts: z.array(z.string().min(1)).min(1).max(4096).optional().describe('read these prompts (default: the built-in corpus)'),
  runIds: z.array(z.string().min(1)).min(1).max(4096).optional().describe('or the tokens of these stored runs'),
};

const tokenScore = z.object({ token: z.string(), value: z.number() });

export const featureDashboardInput = z.strictObject({
  saeId: z.string().min(1),
  latent: z.number().int().min(0),
  ...corpusChoice,
  top: z.number().int().min(1).max(100).default(10).describe('contexts, tokens and neighbours listed'),
  window: z.number().int().min(0).max(32).default(4).describe('tokens of context shown before the active token'),
});

export const featureDashboardOutput = z.object({
  saeId: z.string(),
  hook: z.string(),
  latent: z.number().int(),
  corpus: z.string(),
  tokens: z.number().int(),
  activeTokens: z.number().int().describe('tokens on which the latent is non-zero'),
  density: z.number().describe('activeTokens / tokens'),
  maxActivation: z.number(),
  topContexts: z.array(z.object({ source: z.string(), runId: z.string().nullable(), position: z.number().int(), token: z.string(), context: z.string(), activation: z.number() })),
  histogram: z.array(z.object({ from: z.number(), to: z.number(), count: z.number().int() })).describe('non-zero activations in 10 equal bins up to the maximum'),
  promotes: z.array(tokenScore).describe('tokens whose logit the decoder row raises most (through the final norm gain and unembedding)'),
  suppresses: z.array(tokenScore),
  nearest: z.array(z.object({ latent: z.number().int(), cosine: z.number() })).describe('latents with the most similar decoder rows'),
  vector: z.string().describe('its decoder row, stored as a named vector (usable by steer and ablate\'s project)'),
});

export const featureDashboardTool = defineTool({
  name: 'feature_dashboard',
  description: 'One latent of a dictionary: its top-activating contexts over the built-in corpus (or given prompts / stored runs), an activation histogram, the tokens its decoder row promotes and suppresses (logit effects), and its nearest latents by decoder cosine.',
  limits: { prompts: ['prompts'] },
  input: featureDashboardInput,
  output: featureDashboardOutput,
  async run(input, ctx): Promise<z.infer<typeof featureDashboardOutput>> {
    const { site, dict } = await dictionaryFor(ctx, input.saeId);
    const S = dict.dSae;
    const j = input.latent;
    checkLatents(input.saeId, dict, [j]);
    const { rows, source } = await corpusRows(ctx, input);
    const acts = await latentsOf(ctx, site, S, rows);
    const tok = ctx.session.tokenizer;
    const hits: { row: number; pos: number; a: number }[] = [];
    let at = 0;
    rows.forEach((r, row) => {
      for (let p = 0; p < r.ids.length; p++, at++) {
        const a = acts[at * S + j];
        if (a !== 0) hits.push({ row, pos: p, a });
      }
    });
    const max = hits.reduce((m, h) => Math.max(m, h.a), 0);
    const histogram = Array.from({ length: 10 }, (_, b) => ({ from: (b * max) / 10, to: ((b + 1) * max) / 10, count: 0 }));
    for (const h of hits) histogram[Math.min(9, Math.floor((h.a / max) * 10))].count++;
    const topContexts = hits.sort((a, b) => b.a - a.a).slice(0, input.top).map((h) => {
      const r = rows[h.row];
      const ctxIds = r.ids.slice(Math.max(0, h.pos - input.window), h.pos);
      return {
        source: r.source, runId: r.runId ?? null, position: h.pos, token: tok.tokenString(r.ids[h.pos]),
        context: `${tok.decode(ctxIds)}[[${tok.tokenString(r.ids[h.pos])}]]`, activation: h.a,
      };
    });
    // Logit effects: lm_head . (final norm gain * decoder row).
    const { hiddenSize: H, vocabSize: V } = ctx.session.config;
    const gain = ctx.session.model.checkpoint.finalNorm();
    const lm = ctx.session.model.checkpoint.lmHead();
    const row = dict.wDec.subarray(j * H, (j + 1) * H);
    const effect = Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let h = 0; h < H; h++) s += lm[v * H + h] * gain[h] * row[h];
      return s;
    });
    const order = [...effect.keys()].sort((a, b) => effect[b] - effect[a]);
    const asScore = (v: number) => ({ token: tok.tokenString(v), value: effect[v] });
    const norms = Array.from({ length: S }, (_, i) => Math.hypot(...dict.wDec.subarray(i * H, (i + 1) * H)));
    const nearest = Array.from({ length: S }, (_, i) => {
      let d = 0;
      for (let h = 0; h < H; h++) d += dict.wDec[i * H + h] * row[h];
      return { latent: i, cosine: d / (norms[i] * norms[j] || 1) };
    }).filter((x) => x.latent !== j).sort((a, b) => b.cosine - a.cosine).slice(0, input.top);
    const vector = `${input.saeId}_latent${j}`;
    await ctx.store.putVector({ name: vector, kind: 'sae_latent', modelId: ctx.session.modelId, hook: site, vec: Float32Array.from(row), meta: { saeId: input.saeId, latent: j, source: 'decoder row' } });
    return {
      vector,
      saeId: input.saeId, hook: site, latent: j, corpus: source, tokens: at, activeTokens: hits.length, density: hits.length / Math.max(1, at),
      maxActivation: max, topContexts, histogram,
      promotes: order.slice(0, input.top).map(asScore), suppresses: order.slice(-input.top).reverse().map(asScore), nearest,
    };
  },
});

export const featureSearchInput = z.strictObject({
  saeId: z.string().min(1),
  text: z.array(z.string().min(1)).min(1).max(256).optional().describe('latents most active on these texts (mean over their tokens)'),
  classes: z.record(z.string(), z.array(z.string().min(1)).min(1)).optional().describe('or: latents selective for each class of prompts, e.g. {"math": [...], "code": [...], "prose": [...]}'),
  top: z.number().int().min(1).max(200).default(10),
});

const latentScore = z.object({ latent: z.number().int(), mean: z.number(), density: z.number(), selectivity: z.number().nullable() });

export const featureSearchOutput = z.object({
  saeId: z.string(),
  hook: z.string(),
  mode: z.enum(['text', 'classes']),
  results: z.array(z.object({ group: z.string(), latents: z.array(latentScore) })).describe('per class (or "text"): the top latents by mean activation (text) or by selectivity (classes)'),
});

export const featureSearchTool = defineTool({
  name: 'feature_search',
  description: 'Find latents of a dictionary: the ones most active on given text, or the ones selective for given classes of prompts (mean activation in the class minus the highest mean in any other class, the SAE counterpart of neuron_selectivity).',
  limits: { prompts: ['text', 'classes.*'] },
  input: featureSearchInput,
  output: featureSearchOutput,
  async run(input, ctx): Promise<z.infer<typeof featureSearchOutput>> {
    if (Boolean(input.text) === Boolean(input.classes)) throw new ToolError('give text (latents active on it) or classes (latents selective for each), one of the two');
    const { site, dict } = await dictionaryFor(ctx, input.saeId);
    const S = dict.dSae;
    const groups = input.text ? { text: input.text } : input.classes!;
    if (Object.keys(groups).length === 0) throw new ToolError('classes: give at least one class of prompts');
    const stats = new Map<string, { mean: Float64Array; density: Float64Array }>();
    for (const [name, prompts] of Object.entries(groups)) {
      const { rows } = await corpusRows(ctx, { prompts });
      const acts = await latentsOf(ctx, site, S, rows);
      const n = acts.length / S;
      const mean = new Float64Array(S);
      const density = new Float64Array(S);
      for (let t = 0; t < n; t++) {
        for (let i = 0; i < S; i++) {
          const a = acts[t * S + i];
          mean[i] += a / n;
          if (a !== 0) density[i] += 1 / n;
        }
      }
      stats.set(name, { mean, density });
    }
    const results = [...stats].map(([name, s]) => {
      const others = [...stats].filter(([n]) => n !== name);
      const selectivity = (i: number) => (others.length ? s.mean[i] - Math.max(...others.map(([, o]) => o.mean[i])) : null);
      const score = (i: number) => (input.classes && others.length ? selectivity(i)! : s.mean[i]);
      const latents = [...Array(S).keys()].sort((a, b) => score(b) - score(a)).slice(0, input.top)
        .map((i) => ({ latent: i, mean: s.mean[i], density: s.density[i], selectivity: selectivity(i) }));
      return { group: name, latents };
    });
    return { saeId: input.saeId, hook: site, mode: input.text ? 'text' : 'classes', results };
  },
});

export const featureInterventionInput = z.strictObject({
  saeId: z.string().min(1),
  prompts: z.array(z.string().min(1)).min(1).max(256),
  latents: z.array(z.number().int().min(0)).min(1).max(256),
  action: z.enum(['ablate', 'steer']).describe('ablate: set the latents to 0; steer: add coefficient to them'),
  coefficient: z.number().default(4).describe('steer: value added to each latent'),
  positions: z.enum(['all', 'last']).default('all'),
  metric: MetricName.default('logit_diff'),
  target: answerList.optional(),
  distractor: answerList.optional(),
  each: z.boolean().default(true).describe('also intervene on each latent alone'),
});

export const featureInterventionOutput = z.object({
  saeId: z.string(),
  hook: z.string(),
  action: z.enum(['ablate', 'steer']),
  metric: z.string(),
  before: z.number(),
  after: z.number().describe('with every listed latent intervened on'),
  each: z.array(z.object({ latent: z.number().int(), after: z.number(), change: z.number() })),
  topNext: z.array(z.object({ prompt: z.string(), before: z.string(), after: z.string() })).describe('greedy next token before and after, per prompt'),
  runIds: RunIds,
});

export const featureInterventionTool = defineTool({
  name: 'feature_intervention',
  description: 'Ablate (set to 0) or steer (add a coefficient to) latents of a dictionary at every token or the last one, with the reconstruction error kept, and report the metric (logit_diff, prob, loss, kl...) before and after, together and for each latent alone.',
  limits: { prompts: ['prompts'] },
  input: featureInterventionInput,
  output: featureInterventionOutput,
  async run(input, ctx): Promise<z.infer<typeof featureInterventionOutput>> {
    const { site, dict } = await dictionaryFor(ctx, input.saeId);
    const S = dict.dSae;
    checkLatents(input.saeId, dict, input.latents);
    const prompts = ctx.session.encodeAll(input.prompts);
    const N = prompts.length;
    const V = ctx.session.config.vocabSize;
    const T = Math.max(...prompts.map((p) => p.ids.length));
    const ans = metricAnswers(ctx, input, N);
    const before = await runAndRecord(ctx, prompts, {}, { role: 'feature_intervention before' });
    const { spec, value: beforeValue } = metricOnRun(input.metric, ans, before.result.logits!.data, V, N);
    const hook = saeHooksAt(site).hook_sae_acts;
    // Mask over [N, T, S]: the latents at the chosen positions.
    const intervention = (latents: number[]) => {
      const mask = new Float32Array(N * T * S);
      prompts.forEach((p, b) => {
        const ts = input.positions === 'last' ? [p.ids.length - 1] : [...Array(p.ids.length).keys()];
        for (const t of ts) for (const j of latents) mask[(b * T + t) * S + j] = 1;
      });
      const dims = [N, T, S];
      return input.action === 'ablate'
        ? { hook, mask: { data: mask, dims }, value: { data: Float32Array.of(0), dims: [1] } }
        : { hook, add: { data: mask.map((m) => m * input.coefficient), dims } };
    };
    const all = await runAndRecord(ctx, prompts, { interventions: [intervention(input.latents)] }, { role: 'feature_intervention after', saeId: input.saeId, latents: input.latents, action: input.action });
    const after = meanMetric(spec, all.result.logits!.data, V, N);
    const each = [];
    if (input.each && input.latents.length > 1) {
      for (const j of input.latents) {
        checkCancelled(ctx, 'feature_intervention');
        const r = await ctx.session.model.run(prompts.map((p) => p.ids), { interventions: [intervention([j])], signal: ctx.signal });
        const v = meanMetric(spec, r.logits!.data, V, N);
        each.push({ latent: j, after: v, change: v - beforeValue });
      }
    }
    const argmax = (l: Float32Array, b: number) => {
      let best = 0;
      for (let v = 1; v < V; v++) if (l[b * V + v] > l[b * V + best]) best = v;
      return ctx.session.tokenizer.tokenString(best);
    };
    return {
      saeId: input.saeId, hook: site, action: input.action, metric: input.metric, before: beforeValue, after, each,
      topNext: prompts.map((p, b) => ({ prompt: p.prompt, before: argmax(before.result.logits!.data, b), after: argmax(all.result.logits!.data, b) })),
      runIds: [...before.runIds, ...all.runIds],
    };
  },
});
