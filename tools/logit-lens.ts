// Logit lens: read the residual stream after each layer through the model's own final RMSNorm and
// unembedding, to see when the answer appears. The lens vectors are sent through the engine's
// unembed graph (a run with startLayer = numLayers and the collected vectors as startResid, all
// positions unembedded), so the lens uses exactly the weights, eps and float32 arithmetic of the
// real forward pass: at the last layer it reproduces the model's logits bit for bit.
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import { checkCancelled, defineTool, ToolError } from './define.ts';
import { answerList, answers } from './metrics.ts';
import { ExperimentId, grid, Grid, RunIds } from './output.ts';
import { runAndRecord } from './runs.ts';
import { checkLayers, siteList } from './sites.ts';

export const logitLensInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1).max(256),
  position: z.number().int().default(-1).describe('the token position read in every prompt (negative counts from the end; default -1, the last token)'),
  layers: siteList(z.number().int(), 'layer').optional().describe('layers whose output (blocks.L.hook_resid_post) is read (default all)'),
  residMid: z.boolean().default(false).describe('also read blocks.L.hook_resid_mid (after attention, before the MoE) at each layer'),
  embed: z.boolean().default(false).describe('also read the token embedding (hook_embed) as layer "embed"'),
  target: answerList.optional().describe('a token whose rank, probability and logit are tracked per layer (one word, or one per prompt)'),
  topK: z.number().int().min(1).max(50).default(5).describe('top tokens listed per layer'),
  detailPrompts: z.number().int().min(0).max(256).default(8).describe('per-prompt detail (top tokens per layer) for at most this many prompts; aggregates cover all'),
});

interface LensPoint {
  top: { token: string; prob: number }[];
  target: { rank: number; prob: number; logit: number } | null;
  klToFinal: number;
  agreesWithFinal: boolean;
}

const TopTokens = z.array(z.object({ token: z.string(), prob: z.number() }));
const TargetStats = z.object({ rank: z.number().int(), prob: z.number(), logit: z.number() }).nullable();

export const logitLensOutput = z.object({
  experimentId: ExperimentId,
  positions: z.array(z.number().int()).describe('the position read in each prompt'),
  sites: z.array(z.string()),
  aggregate: z.array(z.object({
    site: z.string(), layer: z.number().int().nullable(), kind: z.enum(['embed', 'resid_mid', 'resid_post']),
    klToFinal: z.number().describe('mean KL(final || lens) over prompts'),
    top1AgreesWithFinal: z.number().describe('share of prompts whose lens top-1 is the final top-1'),
    targetProb: z.number().nullable(), targetRank: z.number().nullable(), targetLogit: z.number().nullable(),
    top1: z.string().describe('the most common lens top-1 token over prompts'),
    top1Share: z.number().describe('share of prompts whose lens top-1 is that token'),
  })).describe('one row per site, means over all prompts'),
  top1ByPrompt: z.object({
    prompts: z.array(z.string()).describe('prompt labels "i: last tokens"'),
    sites: z.array(z.object({ site: z.string(), top1: z.array(z.string()).describe('lens top-1 token of each prompt') })),
  }).describe('every prompt\'s own top-1 token at every site'),
  targetProb: Grid.nullable().describe('target probability by site (rows) and prompt (columns); null without target'),
  final: z.array(z.object({ prompt: z.number().int(), top: TopTokens, target: TargetStats })),
  prompts: z.array(z.object({
    prompt: z.string(), position: z.number().int(), token: z.string(),
    layers: z.array(z.object({ site: z.string(), top: TopTokens, target: TargetStats, klToFinal: z.number() })),
  })).describe('per-prompt detail for the first detailPrompts prompts'),
  runIds: RunIds,
});

/** Softmax stats of one logit row: top-k, the target's rank/prob/logit, log-probs for KL. */
function lensPoint(row: Float32Array, topK: number, target: number | null, tokenString: (id: number) => string, finalLogp: Float64Array | null, finalTop: number): LensPoint & { logp: Float64Array; argmax: number } {
  const V = row.length;
  let max = -Infinity, argmax = 0;
  for (let i = 0; i < V; i++) if (row[i] > max) { max = row[i]; argmax = i; }
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(row[i] - max);
  const lse = max + Math.log(s);
  const logp = new Float64Array(V);
  for (let i = 0; i < V; i++) logp[i] = row[i] - lse;
  // Partial selection of the top k (k is small).
  const top: number[] = [];
  for (let i = 0; i < V; i++) {
    if (top.length < topK) {
      top.push(i);
      top.sort((a, b) => row[b] - row[a]);
    } else if (row[i] > row[top[topK - 1]]) {
      top[topK - 1] = i;
      top.sort((a, b) => row[b] - row[a]);
    }
  }
  let tgt: LensPoint['target'] = null;
  if (target !== null) {
    let above = 0;
    for (let i = 0; i < V; i++) if (row[i] > row[target]) above++;
    tgt = { rank: above + 1, prob: Math.exp(logp[target]), logit: row[target] };
  }
  let kl = 0;
  if (finalLogp) for (let i = 0; i < V; i++) kl += Math.exp(finalLogp[i]) * (finalLogp[i] - logp[i]);
  return {
    top: top.map((i) => ({ token: tokenString(i), prob: Math.exp(logp[i]) })),
    target: tgt, klToFinal: Math.max(0, kl), agreesWithFinal: argmax === finalTop, logp, argmax,
  };
}

export const logitLensTool = defineTool({
  name: 'logit_lens',
  description: 'Logit lens: at one position of each prompt (default the last), decode the residual stream after every layer (blocks.L.hook_resid_post; optionally resid_mid and the embedding) through the model\'s real final RMSNorm and unembedding. Returns per layer the top-k tokens with probabilities, the KL to the final distribution, agreement with the final top-1 and, for a target token, its rank, probability and logit; aggregated over prompts, with per-prompt detail for the first few. Stores an experiment with a row per layer (and per prompt x layer).',
  readsText: true,
  limits: { prompts: ['prompts'], sweep: { batch: ['prompts'], layers: ['layers'] } },
  input: logitLensInput,
  output: logitLensOutput,
  async run(input, ctx) {
    const cfg = ctx.session.config;
    const { numLayers: L, hiddenSize: H, vocabSize: V } = cfg;
    const prompts = ctx.session.encodeAll(input.prompts);
    const N = prompts.length;
    const layers = input.layers ?? [...Array(L).keys()];
    if (layers.length === 0) throw new ToolError('layers is empty; give at least one layer');
    checkLayers(layers, cfg);
    const sortedLayers = [...new Set(layers)].sort((a, b) => a - b);
    const positions = prompts.map((p, i) => {
      const q = input.position < 0 ? p.ids.length + input.position : input.position;
      if (q < 0 || q >= p.ids.length) throw new ToolError(`position ${input.position} is beyond prompt #${i} ("${p.prompt}", ${p.ids.length} tokens); valid: 0..${p.ids.length - 1} or -1..-${p.ids.length}`);
      return q;
    });
    const targets = answers(ctx, input.target, N, 'target');

    // Sites in forward order: embed, then per layer resid_mid (optional) and resid_post.
    const sites: { label: string; hook: string; layer: number | null; kind: 'embed' | 'resid_mid' | 'resid_post' }[] = [];
    if (input.embed) sites.push({ label: 'embed', hook: 'hook_embed', layer: null, kind: 'embed' });
    for (const l of sortedLayers) {
      if (input.residMid) sites.push({ label: `L${l}.resid_mid`, hook: blockHook(l, 'hook_resid_mid'), layer: l, kind: 'resid_mid' });
      sites.push({ label: `L${l}.resid_post`, hook: blockHook(l, 'hook_resid_post'), layer: l, kind: 'resid_post' });
    }
    const allLast = positions.every((q, i) => q === prompts[i].ids.length - 1);
    const { result, runIds } = await runAndRecord(ctx, prompts, {
      capture: [...new Set(sites.map((s) => s.hook))],
      logits: allLast ? 'last' : 'all',
      onProgress: (p) => ctx.onProgress?.({ done: p.done, total: p.total + 1, message: `forward ${p.stage} ${p.done}/${p.total}` }),
    }, { role: 'logit_lens' });
    const finalLogits = (b: number): Float32Array => {
      const P = result.logits!.dims[1];
      const at = P === 1 ? 0 : positions[b];
      return result.logits!.data.subarray((b * P + at) * V, (b * P + at + 1) * V);
    };

    // Gather every (prompt, site) vector and decode them in chunks through the unembed graph.
    const M = N * sites.length;
    const vecs = new Float32Array(M * H);
    prompts.forEach((_, b) => sites.forEach((s, k) => {
      const act = result.cache.get(s.hook)!;
      const T = act.dims[1];
      vecs.set(act.data.subarray((b * T + positions[b]) * H, (b * T + positions[b] + 1) * H), (b * sites.length + k) * H);
    }));
    const tokenString = (id: number) => ctx.session.tokenizer.tokenString(id);
    const finalStats = prompts.map((_, b) => lensPoint(finalLogits(b), input.topK, targets.length ? targets[b] : null, tokenString, null, -1));
    const points: LensPoint[][] = prompts.map(() => new Array<LensPoint>(sites.length));
    const chunk = Math.max(1, Math.min(256, ctx.session.model.maxTokens));
    for (let start = 0; start < M; start += chunk) {
      checkCancelled(ctx, 'logit_lens');
      const m = Math.min(chunk, M - start);
      const r = await ctx.session.model.run([new Array(m).fill(0)], {
        startLayer: L, startResid: { data: vecs.slice(start * H, (start + m) * H), dims: [1, m, H] }, logits: 'all', signal: ctx.signal,
      });
      for (let j = 0; j < m; j++) {
        const b = Math.floor((start + j) / sites.length), k = (start + j) % sites.length;
        const { logp: _l, argmax: _a, ...pt } = lensPoint(r.logits!.data.subarray(j * V, (j + 1) * V), input.topK, targets.length ? targets[b] : null, tokenString, finalStats[b].logp, finalStats[b].argmax);
        points[b][k] = pt;
      }
      ctx.onProgress?.({ done: Math.min(start + m, M), total: M, message: `decoded ${Math.min(start + m, M)}/${M} lens points` });
    }

    const mean = (f: (p: LensPoint) => number, k: number) => points.reduce((s, row) => s + f(row[k]), 0) / N;
    const hasTarget = targets.length > 0;
    const aggregate = sites.map((s, k) => ({
      site: s.label, layer: s.layer, kind: s.kind,
      klToFinal: mean((p) => p.klToFinal, k),
      top1AgreesWithFinal: mean((p) => (p.agreesWithFinal ? 1 : 0), k),
      targetProb: hasTarget ? (mean((p) => p.target!.prob, k)) : null,
      targetRank: hasTarget ? (mean((p) => p.target!.rank, k)) : null,
      targetLogit: hasTarget ? (mean((p) => p.target!.logit, k)) : null,
      // The most common top-1 token across prompts at this site, and how many prompts share it.
      ...mode(points.map((row) => row[k].top[0].token)),
    }));
    // Decoded, not joined: a word-level vocabulary's tokens carry no spaces of their own.
    const promptLabels = prompts.map((p, b) => `${b}: ${ctx.session.tokenizer.decode(p.ids.slice(Math.max(0, positions[b] - 2), positions[b] + 1)).trim()}`);
    const firstAgree = aggregate.find((a) => a.top1AgreesWithFinal >= 0.5 && a.kind !== 'embed');

    const experimentId = await ctx.store.addExperiment({
      kind: 'logit_lens', modelId: ctx.session.modelId,
      params: { ...input, runIds },
      metric: hasTarget ? 'target_prob' : 'kl_to_final',
      cleanValue: hasTarget ? finalStats.reduce((s, f) => s + f.target!.prob, 0) / N : 0, corruptedValue: null,
      summary: { sites: sites.map((s) => s.label), firstLayerAgreeingWithFinal: firstAgree?.site ?? null },
    }, [
      ...aggregate.map((a, k) => ({
        site: a.site, hook: sites[k].hook, layer: a.layer, value: hasTarget ? a.targetProb : a.klToFinal, effect: null,
        extra: { ...a, prompts: N },
      })),
      ...points.flatMap((row, b) => row.map((p, k) => ({
        site: `${sites[k].label}@${b}`, hook: sites[k].hook, layer: sites[k].layer, position: positions[b],
        value: p.target ? p.target.prob : p.klToFinal, effect: null,
        extra: { prompt: b, runId: runIds[b], top: p.top, target: p.target, klToFinal: p.klToFinal },
      }))),
    ]);

    return {
      experimentId, positions, sites: sites.map((s) => s.label), aggregate,
      top1ByPrompt: { prompts: promptLabels, sites: sites.map((s, k) => ({ site: s.label, top1: points.map((row) => row[k].top[0].token) })) },
      targetProb: hasTarget
        ? grid({ name: 'site', labels: sites.map((s) => s.label) }, { name: 'prompt', labels: promptLabels }, sites.map((_, k) => points.map((row) => row[k].target!.prob)))
        : null,
      final: prompts.map((_, b) => ({ prompt: b, top: finalStats[b].top, target: finalStats[b].target })),
      prompts: points.slice(0, input.detailPrompts).map((row, b) => ({
        prompt: prompts[b].prompt, position: positions[b], token: prompts[b].tokens[positions[b]],
        layers: row.map((p, k) => ({ site: sites[k].label, top: p.top, target: p.target, klToFinal: p.klToFinal })),
      })),
      runIds,
    };
  },
});

/** The most common item (first seen wins a tie) and its share. */
function mode(items: string[]): { top1: string; top1Share: number } {
  const counts = new Map<string, number>();
  for (const s of items) counts.set(s, (counts.get(s) ?? 0) + 1);
  const [top1, n] = [...counts].sort((a, b) => b[1] - a[1])[0];
  return { top1, top1Share: n / items.length };
}
