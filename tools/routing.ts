// Expert routing: which experts each token goes to, how the load spreads over experts per layer,
// which experts are chosen together, and where classes of tokens (numbers, names, code symbols...)
// are sent. Reads mlp.hook_expert_indices / mlp.hook_expert_weights; padded positions are skipped.
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { ExperimentId, grid, Grid, RunIds } from './output.ts';
import { runAndRecord } from './runs.ts';
import type { EncodedPrompt } from './session.ts';
import { checkLayers, siteList } from './sites.ts';
import type { ResultInput } from './store/index.ts';

export const routingInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1).max(1024).describe('prompts whose tokens are routed'),
  layers: siteList(z.number().int(), 'layer').optional().describe('layers to report (default all)'),
  classes: z.record(z.string().min(1), z.array(z.string().min(1)).min(1)).optional()
    .describe('word -> class map as {className: [words]}, e.g. {"numbers": ["1","2","3"], "names": ["Mary","John"]}; a token is in a class when it is one of the words (leading spaces ignored)'),
  labels: z.array(z.array(z.string().nullable())).optional()
    .describe('per-token class labels: one array per prompt with one entry per token (null = no class); takes precedence over classes where given'),
  perToken: z.boolean().default(true).describe('return each token\'s chosen experts and weights'),
  maxTokenRows: z.number().int().min(0).max(4096).default(64).describe('per-token routes returned for at most this many tokens (all are counted)'),
  topPairs: z.number().int().min(0).max(100).default(5).describe('most frequent expert pairs listed per layer'),
  batchSize: z.number().int().min(1).max(256).default(16).describe('prompts per forward pass'),
});
export type RoutingInput = z.infer<typeof routingInput>;

export const routingOutput = z.object({
  experimentId: ExperimentId,
  runIds: RunIds,
  layers: z.array(z.number().int()),
  experts: z.number().int(),
  k: z.number().int().describe('experts chosen per token'),
  tokens: z.number().int().describe('token positions routed (each takes k expert slots per layer)'),
  load: Grid.describe('share of the token x k slots each expert took, per layer (rows) and expert (columns); each row sums to 1'),
  weight: Grid.describe('share of routing weight each expert received, per layer and expert'),
  busiest: z.array(z.object({ layer: z.number().int(), expert: z.number().int(), load: z.number() })).describe('the three busiest experts per layer'),
  cooccurrence: z.array(z.object({
    layer: z.number().int(), experts: z.tuple([z.number().int(), z.number().int()]), count: z.number().int(),
    share: z.number().describe('count / tokens'), lift: z.number().describe('share / expected under independent choice'),
  })).describe('the most frequent expert pairs per layer (topPairs per layer)'),
  classes: z.array(z.object({
    class: z.string(),
    tokens: z.number().int(),
    dist: Grid.describe('the class\'s share of its token x k slots per layer and expert'),
    weight: Grid.describe('the class\'s share of routing weight per layer and expert'),
    top: z.array(z.object({
      layer: z.number().int(), expert: z.number().int().describe('the class\'s top expert by weight'), share: z.number(), weightShare: z.number(),
      lift: z.number().describe('weight share / the expert\'s weight share over all tokens'),
    })),
  })).optional(),
  unmatchedWords: z.array(z.string()).optional().describe('words of the class map that no prompt token matched'),
  routes: z.array(z.object({
    prompt: z.number().int(), position: z.number().int(), token: z.string(), class: z.string().optional(),
    experts: z.record(z.string(), z.array(z.tuple([z.number().int(), z.number()]))).describe('by layer "L<l>": [expert, weight] pairs'),
  })).optional(),
  routesOmitted: z.number().int().optional(),
});
export type RoutingResult = z.infer<typeof routingOutput>;


/** Class of each token of each prompt, from labels first, then the word map. */
function tokenClasses(ctx: ToolContext, input: RoutingInput, prompts: EncodedPrompt[]): { classOf: (string | null)[][]; names: string[]; unmatched: string[] } | null {
  if (!input.classes && !input.labels) return null;
  const byId = new Map<number, string>();
  const byText = new Map<string, string>();
  const names = new Set<string>();
  if (input.classes) {
    for (const [cls, words] of Object.entries(input.classes)) {
      names.add(cls);
      for (const w of words) {
        const prev = byText.get(w.trim());
        if (prev !== undefined && prev !== cls) throw new ToolError(`word "${w}" is in classes "${prev}" and "${cls}"; give each word one class`);
        byText.set(w.trim(), cls);
        for (const form of [w, ` ${w.trim()}`]) {
          const ids = ctx.session.tokenizer.encode(form);
          if (ids.length === 1) byId.set(ids[0], cls);
        }
      }
    }
  }
  if (input.labels && input.labels.length !== prompts.length) {
    throw new ToolError(`labels has ${input.labels.length} arrays for ${prompts.length} prompts; give one array of per-token labels per prompt`);
  }
  const seen = new Set<string>();
  const classOf = prompts.map((p, i) => {
    const lab = input.labels?.[i];
    if (lab && lab.length !== p.ids.length) {
      throw new ToolError(`labels[${i}] has ${lab.length} entries but prompt ${i} has ${p.ids.length} tokens (${p.tokens.map((t) => JSON.stringify(t)).join(' ')}); give one label (or null) per token`);
    }
    return p.ids.map((id, t) => {
      if (lab && lab[t] !== null) {
        names.add(lab[t]!);
        return lab[t];
      }
      const cls = byId.get(id) ?? byText.get(p.tokens[t].trim()) ?? null;
      if (cls !== null) seen.add(p.tokens[t].trim());
      return cls;
    });
  });
  const unmatched = input.classes ? Object.values(input.classes).flat().filter((w) => {
    if (seen.has(w.trim())) return false;
    const ids = [w, ` ${w.trim()}`].map((f) => ctx.session.tokenizer.encode(f)).filter((x) => x.length === 1).map((x) => x[0]);
    return !prompts.some((p) => p.ids.some((id) => ids.includes(id)));
  }) : [];
  return { classOf, names: [...names], unmatched };
}

export const routingTool = defineTool({
  name: 'expert_routing',
  description: 'Expert routing: per-token top-k experts and weights, expert load per layer (share of token slots; sums to 1), experts chosen together (co-occurrence), and, given a word -> class map or per-token labels, where each class of tokens is routed (distribution over experts per layer, top expert, lift over the overall load). Stores load, class and pair rows (experiment kind "expert_routing").',
  readsText: true,
  limits: { prompts: ['prompts'], sweep: { batch: ['prompts'], layers: ['layers'] } },
  input: routingInput,
  output: routingOutput,
  async run(input, ctx) {
    const cfg = ctx.session.config;
    const E = cfg.numExperts;
    const k = cfg.expertsPerToken;
    const prompts = ctx.session.encodeAll(input.prompts);
    const layers = [...new Set(input.layers ?? [...Array(cfg.numLayers).keys()])].sort((a, b) => a - b);
    checkLayers(layers, cfg);
    if (layers.length === 0) throw new ToolError(`layers is empty; give at least one layer (valid: 0..${cfg.numLayers - 1})`);
    const cls = tokenClasses(ctx, input, prompts);
    const classIndex = new Map((cls?.names ?? []).map((c, i) => [c, i]));
    const C = classIndex.size;

    const counts = layers.map(() => new Float64Array(E));
    const weights = layers.map(() => new Float64Array(E));
    const pairs = layers.map(() => new Float64Array(E * E));
    const classCounts = layers.map(() => new Float64Array(C * E));
    const classWeights = layers.map(() => new Float64Array(C * E));
    const classTokens = new Float64Array(C);
    let tokens = 0;
    const routes: NonNullable<RoutingResult['routes']> = [];
    let routesOmitted = 0;
    const runIds: string[] = [];
    const hooks = layers.flatMap((l) => [blockHook(l, 'mlp.hook_expert_indices'), blockHook(l, 'mlp.hook_expert_weights')]);

    for (let start = 0; start < prompts.length; start += input.batchSize) {
      checkCancelled(ctx, 'expert_routing');
      const chunk = prompts.slice(start, start + input.batchSize);
      const r = await runAndRecord(ctx, chunk, { capture: hooks, logits: 'none' }, { role: 'expert_routing' });
      runIds.push(...r.runIds);
      const T = r.result.length;
      const idx = layers.map((l) => r.result.cache.get(blockHook(l, 'mlp.hook_expert_indices'))!.data);
      const wts = layers.map((l) => r.result.cache.get(blockHook(l, 'mlp.hook_expert_weights'))!.data);
      chunk.forEach((p, b) => {
        const n = start + b;
        for (let t = 0; t < p.ids.length; t++) {
          tokens++;
          const c = cls?.classOf[n][t] ?? null;
          const ci = c === null ? -1 : classIndex.get(c)!;
          if (ci >= 0) classTokens[ci]++;
          const keep = input.perToken && routes.length < input.maxTokenRows;
          const experts: Record<string, [number, number][]> = {};
          layers.forEach((layer, li) => {
            const o = (b * T + t) * k;
            const chosen: [number, number][] = [];
            for (let j = 0; j < k; j++) {
              const e = Math.round(idx[li][o + j]);
              const w = wts[li][o + j];
              counts[li][e]++;
              weights[li][e] += w;
              if (ci >= 0) {
                classCounts[li][ci * E + e]++;
                classWeights[li][ci * E + e] += w;
              }
              for (const [f] of chosen) {
                pairs[li][Math.min(e, f) * E + Math.max(e, f)]++;
              }
              chosen.push([e, w]);
            }
            if (keep) experts[`L${layer}`] = chosen;
          });
          if (keep) routes.push({ prompt: n, position: t, token: p.tokens[t], ...(c !== null ? { class: c } : {}), experts });
          else if (input.perToken) routesOmitted++;
        }
      });
      ctx.onProgress?.({ done: Math.min(prompts.length, start + input.batchSize), total: prompts.length, message: 'prompts routed' });
    }

    const slots = tokens * k;
    const load = layers.map((layer, li) => {
      const l = Array.from(counts[li], (c) => c / slots);
      const w = Array.from(weights[li], (x) => x / tokens);
      const top = l.map((v, e) => ({ expert: e, load: v, w: w[e] })).sort((a, b) => b.load - a.load || b.w - a.w).slice(0, 3);
      return { layer, load: l, weight: w, top };
    });
    const cooccurrence = layers.map((layer, li) => {
      const list: { experts: [number, number]; count: number; share: number; lift: number }[] = [];
      for (let a = 0; a < E; a++) {
        for (let b = a + 1; b < E; b++) {
          const count = pairs[li][a * E + b];
          if (count === 0) continue;
          const share = count / tokens;
          // Under independent choice, a token picks a and b together with probability ~ (k load_a)(k load_b) (k-1)/k.
          const expected = k > 1 ? k * load[li].load[a] * k * load[li].load[b] * (k - 1) / k : 0;
          list.push({ experts: [a, b], count, share, lift: expected > 0 ? share / expected : 0 });
        }
      }
      return { layer, pairs: list.sort((x, y) => y.count - x.count || x.experts[0] - y.experts[0]) };
    });
    const classes = cls ? cls.names.map((name, ci) => ({
      class: name,
      tokens: classTokens[ci],
      layers: layers.map((layer, li) => {
        const n = classTokens[ci];
        const dist = Array.from(classCounts[li].subarray(ci * E, (ci + 1) * E), (c) => (n ? c / (n * k) : 0));
        const weight = Array.from(classWeights[li].subarray(ci * E, (ci + 1) * E), (w) => (n ? w / n : 0));
        let top = 0;
        for (let e = 1; e < E; e++) if (weight[e] > weight[top] || (weight[e] === weight[top] && dist[e] > dist[top])) top = e;
        const overall = load[li].weight[top];
        return { layer, top, share: dist[top], weightShare: weight[top], lift: overall > 0 ? weight[top] / overall : 0, dist, weight };
      }),
    })) : undefined;

    const layerAxis = { name: 'layer', labels: layers.map((l) => `L${l}`) };
    const expertAxis = { name: 'expert', labels: Array.from({ length: E }, (_, e) => `E${e}`) };
    const experimentId = await ctx.store.addExperiment({
      kind: 'expert_routing', modelId: ctx.session.modelId,
      params: { ...input, runIds },
      summary: { tokens, layers, top: load.map((l) => ({ layer: l.layer, top: l.top[0] })), classes: classes?.map((c) => ({ class: c.class, tokens: c.tokens, top: c.layers.map((l) => ({ layer: l.layer, expert: l.top, share: l.share })) })) ?? null },
    });
    const rows: ResultInput[] = [];
    const hookOf = (l: number) => blockHook(l, 'mlp.hook_expert_indices');
    load.forEach((l, li) => l.load.forEach((v, e) => rows.push({
      experimentId, site: `L${l.layer}.E${e}`, hook: hookOf(l.layer), layer: l.layer, component: e, value: v, effect: null,
      extra: { kind: 'load', count: counts[li][e], weight: l.weight[e] },
    })));
    classes?.forEach((c) => c.layers.forEach((l) => l.dist.forEach((v, e) => {
      if (v > 0) rows.push({ experimentId, site: `L${l.layer}.E${e}`, hook: hookOf(l.layer), layer: l.layer, component: e, value: v, effect: null, extra: { kind: 'class', class: c.class, tokens: c.tokens, weight: l.weight[e] } });
    })));
    cooccurrence.forEach((c) => c.pairs.forEach((p) => rows.push({
      experimentId, site: `L${c.layer}.E${p.experts[0]}+E${p.experts[1]}`, hook: hookOf(c.layer), layer: c.layer, component: p.experts[0], value: p.count, effect: null,
      extra: { kind: 'cooccurrence', experts: p.experts, share: p.share, lift: p.lift },
    })));
    await ctx.store.addResults(rows);

    return {
      experimentId, runIds, layers, experts: E, k, tokens,
      load: grid(layerAxis, expertAxis, load.map((l) => l.load)),
      weight: grid(layerAxis, expertAxis, load.map((l) => l.weight)),
      busiest: load.flatMap((l) => l.top.map((t) => ({ layer: l.layer, expert: t.expert, load: t.load }))),
      cooccurrence: cooccurrence.flatMap((c) => c.pairs.slice(0, input.topPairs).map((p) => ({ layer: c.layer, ...p }))),
      ...(classes ? {
        classes: classes.map((c) => ({
          class: c.class, tokens: c.tokens,
          dist: grid(layerAxis, expertAxis, c.layers.map((l) => l.dist)),
          weight: grid(layerAxis, expertAxis, c.layers.map((l) => l.weight)),
          top: c.layers.map((l) => ({ layer: l.layer, expert: l.top, share: l.share, weightShare: l.weightShare, lift: l.lift })),
        })),
      } : {}),
      ...(cls && cls.unmatched.length ? { unmatchedWords: cls.unmatched } : {}),
      ...(input.perToken ? { routes } : {}),
      ...(routesOmitted ? { routesOmitted } : {}),
    };
  },
});
