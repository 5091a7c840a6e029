// Neuron selectivity across prompt domains (math, code, prose...): for every MoE neuron (layer,
// expert, neuron of mlp.hook_post) its mean activation over each domain's tokens (a token whose
// router did not choose the expert counts as activation 0) and its firing rate (share of the
// domain's tokens where it is above a threshold). Then
//   selectivity = (m1 - m2) / (|m1| + eps)   m1 >= m2 the two largest domain means: 1 = one domain only
//   cross       = min over the chosen domains of m_d / M, M the largest domain mean of any scanned
//                 neuron (default chosen domains: the neuron's own two strongest, so cross = m2 / M):
//                 high for neurons that respond strongly to several unrelated domains.
// Returns the top single-domain neurons per domain and the top cross-domain neurons.
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import { checkCancelled, defineTool, ToolError } from './define.ts';
import { ExperimentId, RunIds } from './output.ts';
import { runAndRecord } from './runs.ts';
import { checkLayers, siteList } from './sites.ts';

export const selectivityInput = z.strictObject({
  domains: z.record(z.string().min(1), z.array(z.string().min(1)).min(1)).describe('prompt sets by domain, e.g. {"math": ["3 + 4 = 7"], "code": ["def f ( x ) :"], "prose": ["the cat sat"]} (at least two domains)'),
  layers: siteList(z.number().int(), 'layer').optional().describe('layers to scan (default all)'),
  experts: siteList(z.number().int(), 'expert').optional().describe('experts to scan in each layer (default all)'),
  top: z.number().int().min(1).max(200).default(5).describe('single-domain neurons returned per domain'),
  topCross: z.number().int().min(0).max(200).default(10).describe('cross-domain neurons returned'),
  crossDomains: z.array(z.string().min(1)).min(2).optional().describe('domains a cross-domain neuron must respond to (default: its own two strongest domains)'),
  fireThreshold: z.number().min(0).default(0).describe('a neuron fires on a token when its activation is above this (>= 0; unrouted tokens never fire)'),
  minActivation: z.number().min(0).max(1).default(0.05).describe('only neurons whose largest domain mean is at least this fraction of the largest domain mean of any scanned neuron are ranked (filters near-silent neurons)'),
  skipFirst: z.boolean().default(false).describe('ignore position 0 of every prompt (e.g. a start token shared by all domains)'),
  sharedTokens: z.enum(['warn', 'exclude', 'refuse']).default('warn').describe('tokens that occur in more than one domain (digits in both math and code prompts) make a neuron look domain-selective when it responds to the token: "warn" measures them and says so, "exclude" leaves them out of every mean, "refuse" stops'),
  batchSize: z.number().int().min(1).max(256).default(16).describe('prompts per forward pass (reduced automatically for large models)'),
});
export type SelectivityInput = z.infer<typeof selectivityInput>;

const NeuronReport = z.object({
  neuron: z.string().describe('L<layer>.E<expert>.N<neuron>'),
  layer: z.number().int(),
  expert: z.number().int(),
  index: z.number().int(),
  domain: z.string().describe('the domain with the largest mean'),
  means: z.record(z.string(), z.number()).describe('mean activation per domain (unrouted tokens count 0)'),
  firing: z.record(z.string(), z.number()).describe('share of each domain\'s tokens on which it fires'),
  selectivity: z.number().describe('(top mean - second mean) / |top mean|'),
  cross: z.number().describe('smallest normalised mean over the cross domains'),
});
export type NeuronReport = z.infer<typeof NeuronReport>;

export const selectivityOutput = z.object({
  experimentId: ExperimentId,
  runIds: RunIds,
  domains: z.array(z.object({ domain: z.string(), prompts: z.number().int(), tokens: z.number().int() })),
  neurons: z.number().int().describe('neurons scanned'),
  perDomain: z.record(z.string(), z.array(NeuronReport)).describe('the most selective neurons of each domain'),
  crossDomain: z.array(NeuronReport).describe('neurons that respond across domains'),
  shared: z.object({
    tokens: z.array(z.object({ token: z.string(), domains: z.array(z.string()) })).describe('tokens that occur in more than one domain (at most 50 listed)'),
    count: z.number().int().describe('distinct shared tokens'),
    share: z.record(z.string(), z.number()).describe('per domain: the share of its measured tokens that are shared with another domain'),
    excluded: z.boolean().describe('whether shared tokens were left out of the means (sharedTokens: "exclude")'),
  }),
  warning: z.string().optional().describe('why a selectivity may reflect tokens rather than domains'),
});
export type SelectivityResult = z.infer<typeof selectivityOutput>;

const EPS = 1e-6;

export const selectivityTool = defineTool({
  name: 'neuron_selectivity',
  description: 'Neuron selectivity across prompt domains: each MoE neuron\'s (mlp.hook_post) mean activation and firing rate per domain (tokens not routed to the expert count as 0), a selectivity score (m1 - m2)/|m1| for single-domain neurons and a cross-domain score (min over domains of the normalised mean) for neurons active across unrelated domains. Returns the top single-domain neurons per domain and the top cross-domain neurons. Tokens that occur in several domains (digits in math and code) are reported, with a warning; sharedTokens: "exclude" leaves them out, "refuse" stops. Stores a row per reported neuron (experiment kind "neuron_selectivity").',
  readsText: true,
  limits: { prompts: ['domains.*'], sweep: { batch: ['domains.*'], layers: ['layers'] } },
  input: selectivityInput,
  output: selectivityOutput,
  async run(input, ctx): Promise<SelectivityResult> {
    const cfg = ctx.session.config;
    const names = Object.keys(input.domains);
    if (names.length < 2) throw new ToolError(`give at least two domains to compare (got ${names.length}: ${names.join(', ') || 'none'})`);
    for (const d of input.crossDomains ?? []) if (!names.includes(d)) throw new ToolError(`crossDomains has "${d}", which is not one of the domains: ${names.join(', ')}`);
    const layers = [...new Set(input.layers ?? [...Array(cfg.numLayers).keys()])].sort((a, b) => a - b);
    checkLayers(layers, cfg);
    if (layers.length === 0) throw new ToolError(`layers is empty; give at least one layer (valid: 0..${cfg.numLayers - 1})`);
    const experts = [...new Set(input.experts ?? [...Array(cfg.numExperts).keys()])].sort((a, b) => a - b);
    for (const e of experts) if (!Number.isInteger(e) || e < 0 || e >= cfg.numExperts) throw new ToolError(`expert ${e} is out of range; valid: 0..${cfg.numExperts - 1}`);
    const E = cfg.numExperts;
    const I = cfg.intermediateSize;
    const D = names.length;
    const X = experts.length;
    const L = layers.length;
    // sums[((li * X + xi) * I + i) * D + d]
    const sums = new Float64Array(L * X * I * D);
    const fires = new Float64Array(L * X * I * D);
    const tokens = new Float64Array(D);
    const hooks = layers.map((l) => blockHook(l, 'mlp.hook_post'));
    const runIds: string[] = [];
    const all = names.flatMap((d, di) => ctx.session.encodeAll(input.domains[d], `domains.${d}`).map((p) => ({ p, di })));
    const maxT = Math.max(...all.map((x) => x.p.ids.length));
    // Tokens in more than one domain: a neuron that responds to a digit looks "math" when only the
    // math prompts contain digits, and looks selective for nothing real when several domains do.
    const first = input.skipFirst ? 1 : 0;
    const domainsOf = new Map<number, Set<number>>();
    for (const { p, di } of all) for (const id of p.ids.slice(first)) (domainsOf.get(id) ?? domainsOf.set(id, new Set()).get(id)!).add(di);
    const sharedIds = new Set([...domainsOf].filter(([, ds]) => ds.size > 1).map(([id]) => id));
    const tokenText = new Map(all.flatMap(({ p }) => p.ids.map((id, t) => [id, p.tokens[t]] as const)));
    const sharedList = [...sharedIds].map((id) => ({ token: tokenText.get(id)!, domains: [...domainsOf.get(id)!].sort((a, b) => a - b).map((d) => names[d]) }));
    if (sharedIds.size && input.sharedTokens === 'refuse') {
      throw new ToolError(`the domains share ${sharedIds.size} token(s): ${sharedList.slice(0, 12).map((x) => `"${x.token}" (${x.domains.join(', ')})`).join(', ')}${sharedIds.size > 12 ? ', …' : ''}; rewrite the prompts so that no token occurs in two domains, or pass sharedTokens: "exclude" (leave them out) or "warn"`);
    }
    const exclude = input.sharedTokens === 'exclude';
    const sharedCount = new Float64Array(D);
    const measuredCount = new Float64Array(D);
    for (const { p, di } of all) {
      for (const id of p.ids.slice(first)) {
        measuredCount[di]++;
        if (sharedIds.has(id)) sharedCount[di]++;
      }
    }
    // Keep each batch's captured hook_post under ~256 MB.
    const perPrompt = maxT * E * I * 4 * L;
    const batch = Math.max(1, Math.min(input.batchSize, Math.floor(256e6 / perPrompt)));

    for (let start = 0; start < all.length; start += batch) {
      checkCancelled(ctx, 'neuron_selectivity');
      const chunk = all.slice(start, start + batch);
      const r = await runAndRecord(ctx, chunk.map((c) => c.p), { capture: hooks, logits: 'none' }, { role: 'neuron_selectivity' });
      runIds.push(...r.runIds);
      const T = r.result.length;
      layers.forEach((layer, li) => {
        const post = r.result.cache.get(blockHook(layer, 'mlp.hook_post'))!.data;
        chunk.forEach(({ p, di }, b) => {
          for (let t = first; t < p.ids.length; t++) {
            if (exclude && sharedIds.has(p.ids[t])) continue;
            experts.forEach((e, xi) => {
              const o = ((b * T + t) * E + e) * I;
              const base = (li * X + xi) * I;
              for (let i = 0; i < I; i++) {
                const v = post[o + i];
                if (v === 0) continue;
                sums[(base + i) * D + di] += v;
                if (v > input.fireThreshold) fires[(base + i) * D + di]++;
              }
            });
          }
        });
      });
      // Tokens, once per prompt (not per layer).
      for (const { p, di } of chunk) tokens[di] += p.ids.slice(first).filter((id) => !(exclude && sharedIds.has(id))).length;
      ctx.onProgress?.({ done: Math.min(all.length, start + batch), total: all.length, message: 'prompts read' });
    }
    for (let d = 0; d < D; d++) if (tokens[d] === 0) throw new ToolError(`domain "${names[d]}" has no tokens to measure${input.skipFirst ? ' after skipping position 0' : ''}${exclude ? ' once the tokens it shares with other domains are left out' : ''}`);
    const cross = input.crossDomains?.map((d) => names.indexOf(d));
    // M: the largest domain mean of any scanned neuron (one scale for every layer, so near-silent
    // layers do not look strong after normalisation).
    let M = 0;
    for (let n = 0; n < L * X * I; n++) for (let d = 0; d < D; d++) M = Math.max(M, sums[n * D + d] / tokens[d]);
    const build = (li: number, xi: number, i: number): NeuronReport & { m1: number } => {
      const n = (li * X + xi) * I + i;
      const means = Array.from({ length: D }, (_, d) => sums[n * D + d] / tokens[d]);
      const order = [...means.keys()].sort((a, b) => means[b] - means[a]);
      const m1 = means[order[0]];
      const m2 = means[order[1]];
      const chosen = cross ?? order.slice(0, 2);
      return {
        neuron: `L${layers[li]}.E${experts[xi]}.N${i}`, layer: layers[li], expert: experts[xi], index: i,
        domain: names[order[0]],
        means: Object.fromEntries(names.map((d, k) => [d, means[k]])),
        firing: Object.fromEntries(names.map((d, k) => [d, fires[n * D + k] / tokens[k]])),
        selectivity: (m1 - m2) / (Math.abs(m1) + EPS),
        cross: M > 0 ? Math.min(...chosen.map((k) => means[k] / M)) : 0,
        m1,
      };
    };
    const candidates: (NeuronReport & { m1: number })[] = [];
    for (let li = 0; li < L; li++) {
      for (let xi = 0; xi < X; xi++) {
        for (let i = 0; i < I; i++) {
          const r = build(li, xi, i);
          if (M > 0 && r.m1 >= input.minActivation * M) candidates.push(r);
        }
      }
    }
    const perDomain: Record<string, NeuronReport[]> = {};
    for (const d of names) {
      perDomain[d] = candidates.filter((c) => c.domain === d)
        .sort((a, b) => b.selectivity - a.selectivity || b.m1 - a.m1).slice(0, input.top)
        .map(({ m1: _, ...rest }) => rest);
    }
    const crossDomain = candidates.filter((c) => c.cross > 0)
      .sort((a, b) => b.cross - a.cross || b.m1 - a.m1).slice(0, input.topCross)
      .map(({ m1: _, ...rest }) => rest);

    const experimentId = await ctx.store.addExperiment({
      kind: 'neuron_selectivity', modelId: ctx.session.modelId,
      params: { ...input, runIds },
      summary: {
        domains: names.map((d, k) => ({ domain: d, tokens: tokens[k] })),
        perDomain: Object.fromEntries(names.map((d) => [d, perDomain[d].slice(0, 3).map((n) => n.neuron)])),
        crossDomain: crossDomain.slice(0, 5).map((n) => n.neuron),
      },
    });
    const row = (n: NeuronReport, list: string, value: number) => ({
      experimentId, site: n.neuron, hook: blockHook(n.layer, 'mlp.hook_post'), layer: n.layer, component: n.expert, neuron: n.index,
      value, effect: null, extra: { list, domain: n.domain, means: n.means, firing: n.firing, selectivity: n.selectivity, cross: n.cross },
    });
    await ctx.store.addResults([
      ...names.flatMap((d) => perDomain[d].map((n) => row(n, `single:${d}`, n.selectivity))),
      ...crossDomain.map((n) => row(n, 'cross', n.cross)),
    ]);
    return {
      experimentId, runIds,
      domains: names.map((d, k) => ({ domain: d, prompts: input.domains[d].length, tokens: tokens[k] })),
      neurons: L * X * I,
      perDomain,
      crossDomain,
      shared: {
        tokens: sharedList.slice(0, 50), count: sharedIds.size, excluded: exclude,
        share: Object.fromEntries(names.map((d, k) => [d, measuredCount[k] ? sharedCount[k] / measuredCount[k] : 0])),
      },
      ...(sharedIds.size && !exclude ? {
        warning: `${sharedIds.size} token(s) occur in more than one domain (${sharedList.slice(0, 8).map((x) => `"${x.token}"`).join(', ')}${sharedIds.size > 8 ? ', …' : ''}; ${names.map((d, k) => `${d} ${Math.round(100 * sharedCount[k] / Math.max(1, measuredCount[k]))}%`).join(', ')} of tokens): a neuron that responds to such a token is counted for each domain it occurs in. Pass sharedTokens: "exclude" to measure domain-specific tokens only`,
      } : {}),
    };
  },
});
