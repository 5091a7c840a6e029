// Edge attribution patching (EAP, Syed et al. 2023) and EAP-IG (Hanna et al. 2024): score every edge
// sender -> receiver (tools/edge-graph.ts) as (sender_clean - sender_corrupted) . d metric / d (the
// residual stream as the receiver reads it), at the corrupted run (EAP) or averaged over points
// between the corrupted and clean embeddings (EAP-IG). Then prune: keep the top edges by |score|,
// run the clean prompts with every other edge carrying its corrupted value, and measure how much of
// the behaviour is kept (the faithfulness curve), which picks the circuit.
import { z } from 'zod';
import { gradients } from '../engine/backward/gradient.ts';
import type { Intervention } from '../engine/intervention.ts';
import { engineMetric } from './attribution-patch.ts';
import { checkCancelled, defineTool, type ToolContext } from './define.ts';
import {
  edgeLabel, feeds, graphNodes, receiverGradient, receiverGradientHooks, receiverLabel, runWithEdges, senderHooks, senderLabel, senderOutput,
} from './edge-graph.ts';
import { answerList, meanMetric, metricAnswers, metricOnRun, MetricName, normalisedEffect } from './metrics.ts';
import { alignPairs } from './patch.ts';
import { ExperimentId } from './output.ts';
import { runAndRecord } from './runs.ts';

export const edgeAttributionInput = z.strictObject({
  clean: z.array(z.string().min(1)).min(1).describe('prompts where the behaviour happens'),
  corrupted: z.array(z.string().min(1)).min(1).describe('token-aligned prompts where it does not'),
  target: answerList.describe('the answer token on the clean prompts'),
  distractor: answerList.optional().describe('the competing token for logit_diff'),
  metric: MetricName.default('logit_diff'),
  method: z.enum(['EAP', 'EAP-IG']).default('EAP-IG').describe('EAP: gradient at the corrupted run; EAP-IG: averaged over `steps` points between corrupted and clean embeddings (more faithful where attention saturates)'),
  steps: z.number().int().min(1).max(64).default(5).describe('EAP-IG path points'),
  threshold: z.number().min(0).max(1).default(0.8).describe('the circuit is the smallest top-edge set on the curve keeping at least this share of the behaviour'),
  maxEdges: z.number().int().min(1).max(100_000).default(256).describe('largest top-edge set verified on the faithfulness curve (1, 2, 4, ... up to this, then bisection to the smallest set reaching the threshold)'),
  top: z.number().int().min(1).max(1000).default(20).describe('edges listed in the answer (all are stored)'),
});

const edgeScore = z.object({ edge: z.string(), sender: z.string(), receiver: z.string(), score: z.number() });
export const edgeAttributionOutput = z.object({
  experimentId: ExperimentId,
  method: z.string(),
  metric: z.string(),
  clean: z.number(),
  corrupted: z.number(),
  edges: z.number().int().describe('edges in the graph'),
  top: z.array(edgeScore),
  curve: z.array(z.object({ edges: z.number().int(), faithfulness: z.number().describe('(metric with only these edges clean - corrupted) / (clean - corrupted), by actual patching') })),
  circuit: z.object({ edges: z.array(z.string()), faithfulness: z.number() }),
  passes: z.object({ forwards: z.number(), backwards: z.number().int() }),
});
export type EdgeAttributionResult = z.input<typeof edgeAttributionOutput>;

export const edgeAttributionTool = defineTool({
  name: 'edge_attribution',
  description: 'Circuit discovery at edge level (EAP / EAP-IG): scores every edge between components (embeddings, heads via their q/k/v inputs, MoE layers, logits), keeps the top edges, and verifies them by actually patching every other edge to its corrupted value: returns the faithfulness curve (share of the behaviour kept vs number of edges) and the smallest circuit reaching the threshold.',
  limits: { prompts: ['clean', 'corrupted'] },
  input: edgeAttributionInput,
  output: edgeAttributionOutput,
  async run(input, ctx: ToolContext): Promise<EdgeAttributionResult> {
    const model = ctx.session.model;
    const cfg = ctx.session.config;
    const L = cfg.numLayers;
    const clean = ctx.session.encodeAll(input.clean, 'clean');
    const corrupted = ctx.session.encodeAll(input.corrupted, 'corrupted');
    alignPairs(clean, corrupted, false);
    const N = clean.length;
    const ans = metricAnswers(ctx, input, N);
    const V = cfg.vocabSize;
    const cleanIds = clean.map((c) => c.ids);
    const corruptedIds = corrupted.map((c) => c.ids);

    const sHooks = senderHooks(L);
    const cleanRun = await runAndRecord(ctx, clean, { capture: sHooks }, { role: 'clean' });
    const corrRun = await runAndRecord(ctx, corrupted, { capture: sHooks }, { role: 'corrupted' });
    const { spec, value: cleanValue } = metricOnRun(input.metric, ans, cleanRun.result.logits!.data, V, N);
    const corruptedValue = meanMetric(spec, corrRun.result.logits!.data, V, N);
    let forwards = 2;

    const { senders, receivers } = graphNodes(cfg);
    const delta = new Map<string, Float32Array>();
    const corruptedOut = new Map<string, Float32Array>();
    for (const s of senders) {
      const c = senderOutput(s, cleanRun.result.cache, cfg.numHeads);
      const k = senderOutput(s, corrRun.result.cache, cfg.numHeads);
      corruptedOut.set(senderLabel(s), k);
      delta.set(senderLabel(s), c.map((x, i) => x - k[i]));
    }
    const edges = receivers.flatMap((r) => senders.filter((s) => feeds(s, r, L)).map((s) => ({ s, r, label: edgeLabel(s, r), score: 0 })));
    const byReceiver = new Map(receivers.map((r) => [receiverLabel(r), edges.filter((e) => e.r === r)]));

    // Scores: one forward + backward per path point.
    const points = input.method === 'EAP' ? [null] : Array.from({ length: input.steps }, (_, k) => (k + 0.5) / input.steps);
    const metric = engineMetric(spec);
    const hooks = receiverGradientHooks(L);
    const cleanEmbed = cleanRun.result.cache.get('hook_embed')!;
    const corrEmbed = corrRun.result.cache.get('hook_embed')!;
    for (const [i, alpha] of points.entries()) {
      checkCancelled(ctx, 'edge_attribution');
      const interventions: Intervention[] = alpha === null ? [] : [{
        hook: 'hook_embed', mask: { data: new Float32Array([1]), dims: [1] },
        value: { data: corrEmbed.data.map((c, j) => c + alpha * (cleanEmbed.data[j] - c)), dims: corrEmbed.dims },
      }];
      const g = await gradients(model, corruptedIds, { metric, grads: hooks.grads, capture: hooks.capture, interventions, signal: ctx.signal });
      forwards++;
      for (const r of receivers) {
        const G = receiverGradient(model, r, g.grads, g.cache, g.lengths);
        for (const e of byReceiver.get(receiverLabel(r))!) {
          const d = delta.get(senderLabel(e.s))!;
          let s = 0;
          for (let j = 0; j < G.length; j++) s += d[j] * G[j];
          e.score += s / (N * points.length);
        }
      }
      ctx.onProgress?.({ done: i + 1, total: points.length, message: `edge scores: gradient ${i + 1}/${points.length}` });
    }

    // Faithfulness curve by actual edge patching of the top edges: doubling until the threshold is
    // reached (or maxEdges), then bisection for the smallest top-edge set that reaches it.
    const ranked = [...edges].sort((a, b) => Math.abs(b.score) - Math.abs(a.score));
    const limit = Math.min(input.maxEdges, edges.length);
    const tried = new Map<number, number>();
    const faithfulness = async (n: number): Promise<number> => {
      checkCancelled(ctx, 'edge_attribution');
      const kept = new Set(ranked.slice(0, n).map((e) => e.label));
      const logits = await runWithEdges(model, cleanIds, corruptedOut, kept, ctx.signal);
      forwards += 2;
      const f = normalisedEffect(meanMetric(spec, logits.data, V, N), cleanValue, corruptedValue);
      tried.set(n, f);
      ctx.onProgress?.({ done: tried.size, total: tried.size + 1, message: `top ${n} edges keep ${(100 * f).toFixed(1)}% of the behaviour` });
      return f;
    };
    let lo = 0;
    let hi = 0;
    for (let n = 1; ; n = Math.min(2 * n, limit)) {
      if ((await faithfulness(n)) >= input.threshold) {
        hi = n;
        break;
      }
      lo = n;
      if (n === limit) break;
    }
    while (hi && hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await faithfulness(mid)) >= input.threshold) hi = mid;
      else lo = mid;
    }
    const curve = [...tried].sort((a, b) => a[0] - b[0]).map(([n, f]) => ({ edges: n, faithfulness: f }));
    const chosen = hi ? { edges: hi, faithfulness: tried.get(hi)! } : curve[curve.length - 1];
    const circuit = { edges: ranked.slice(0, chosen.edges).map((e) => e.label), faithfulness: chosen.faithfulness };
    const passes = { forwards, backwards: points.length };

    const experimentId = await ctx.store.addExperiment({
      kind: 'edge_attribution', modelId: ctx.session.modelId,
      params: { ...input, runIds: { clean: cleanRun.runIds, corrupted: corrRun.runIds } },
      metric: input.metric, cleanValue, corruptedValue,
      summary: { method: input.method, edges: edges.length, curve, circuit, ...passes },
    });
    const denom = cleanValue - corruptedValue;
    await ctx.store.addResults(ranked.map((e) => ({
      experimentId, site: e.label, hook: receiverLabel(e.r), layer: 'layer' in e.r ? e.r.layer : L,
      component: e.s.kind === 'head' ? e.s.head : null, value: e.score, effect: Math.abs(denom) < 1e-12 ? 0 : e.score / denom,
    })));
    return {
      experimentId, method: input.method, metric: input.metric, clean: cleanValue, corrupted: corruptedValue, edges: edges.length,
      top: ranked.slice(0, input.top).map((e) => ({ edge: e.label, sender: senderLabel(e.s), receiver: receiverLabel(e.r), score: e.score })),
      curve, circuit, passes,
    };
  },
});
