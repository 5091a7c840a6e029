// Attention patterns and head roles. Runs prompts with attn.hook_pattern and attn.hook_sink
// captured, returns the patterns of chosen heads on one prompt (with the sink mass each query gives
// away), scores every head for the classic roles from its patterns over all prompts, ranks candidate
// roles per head against the mean over heads (heads that give their attention to the sink are
// "inactive" and get no other role), and renders one head's pattern as a small labelled
// matrix (numbers plus a text heatmap) for an agent or a terminal.
//
// Role scores (each in [0, 1], a mean over the queries where the role is defined, pooled over prompts):
//   previous_token   attention from t to t-1                                   (queries t >= 1)
//   induction        attention from t to the tokens right AFTER earlier copies
//                    of token t (position j+1 where ids[j] = ids[t], j+1 < t)   (queries with such j)
//   duplicate_token  attention from t to earlier copies of token t            (queries with a copy)
//   attends_to_first attention from t to position 0                            (queries t >= 1)
//   sink             probability given to the attention sink                   (all queries)
// Patterns here are gpt-oss patterns: each row sums to 1 - sink mass.
import { blockHook } from '../engine/hook-address.ts';
import { z } from 'zod';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { ExperimentId, grid, Grid, RunIds } from './output.ts';
import { runAndRecord } from './runs.ts';
import type { EncodedPrompt } from './session.ts';
import { checkLayers, parseComponent, siteList } from './sites.ts';

export const HEAD_ROLES = ['previous_token', 'induction', 'duplicate_token', 'attends_to_first', 'sink'] as const;
export type HeadRole = (typeof HEAD_ROLES)[number];

export const attentionInput = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1).max(256).describe('prompts to read patterns from; include a repeated random sequence (e.g. "a b c d a b c d") to score induction heads and repeated words for duplicate-token heads'),
  layers: siteList(z.number().int(), 'layer').optional().describe('layers to look at (default all)'),
  heads: z.union([siteList(z.number().int(), 'head'), siteList(z.string(), 'head')]).optional()
    .describe('head indices within each of layers (default all), or a list of heads such as ["L3.H4", "L4.H5"] (then leave layers out)'),
  patternPrompt: z.number().int().min(0).default(0).describe('index into prompts of the prompt whose full patterns (and matrix) are returned'),
  maxPatternHeads: z.number().int().min(0).max(256).default(8).describe('return full per-head patterns only when at most this many heads are selected (narrow layers/heads to see them; 0 = never)'),
  head: z.string().optional().describe('one head, e.g. "L2.H1", to return as a compact labelled matrix with a text heatmap'),
  matrixTokens: z.number().int().min(2).max(64).default(24).describe('the matrix shows at most this many positions (the last ones of the prompt)'),
  query: z.number().int().optional().describe('a query position (negative counts from the end; -1 = the last token): for every prompt (up to 64) and every selected head (up to maxPatternHeads), the keys it attends to most from there, e.g. where a name mover looks from the answer position'),
  queryKeys: z.number().int().min(1).max(64).default(3).describe('keys listed per head with query (up to 64: every key of a short prompt)'),
  minScore: z.number().min(0).max(1).default(0.3).describe('a role is a candidate for a head when its score is at least this and above the mean over heads'),
  top: z.number().int().min(1).max(100).default(5).describe('heads listed per role, candidates listed, and (with more heads selected) the heads whose scores are returned'),
  batchSize: z.number().int().min(1).max(256).default(16).describe('prompts per forward pass'),
});
export type AttentionInput = z.infer<typeof attentionInput>;

const RoleScores = z.object(Object.fromEntries(HEAD_ROLES.map((r) => [r, z.number().nullable()])) as Record<HeadRole, z.ZodNullable<z.ZodNumber>>)
  .describe('score per role in [0, 1]; null where the prompts give the role no query (e.g. induction without repeats)');

const HeadScores = z.object({ head: z.string(), layer: z.number().int(), index: z.number().int(), scores: RoleScores });
export type HeadScores = z.infer<typeof HeadScores>;

const AttentionMatrix = z.object({
  head: z.string(),
  prompt: z.number().int(),
  offset: z.number().int().describe('position of the first query/key shown (the matrix shows positions offset..T-1)'),
  tokens: z.array(z.string()),
  grid: Grid.describe('attention of each query (rows) to each key (columns); null above the diagonal'),
  sink: z.array(z.number()).describe('sink mass of each query shown'),
  heatmap: z.array(z.string()).describe('one line per query: token label then one shade per key (" .:-=+*#%@" from 0 to 1)'),
});
export type AttentionMatrix = z.infer<typeof AttentionMatrix>;

const QueryRow = z.object({
  prompt: z.number().int(),
  position: z.number().int(),
  token: z.string(),
  heads: z.array(z.object({ head: z.string(), sink: z.number(), top: z.array(z.object({ position: z.number().int(), token: z.string(), weight: z.number() })) })),
});
export type QueryRow = z.infer<typeof QueryRow>;

export const attentionOutput = z.object({
  experimentId: ExperimentId,
  runIds: RunIds,
  heads: z.number().int().describe('heads scored'),
  roles: z.array(z.object({
    role: z.enum(HEAD_ROLES), baseline: z.number().nullable().describe('mean score over the selected heads'),
    queries: z.number().int().describe('queries that defined the role'), top: z.array(z.object({ head: z.string(), score: z.number() })),
  })).describe('per role: the baseline and the top heads'),
  candidates: z.array(z.object({
    head: z.string(), roles: z.array(z.object({ role: z.enum(HEAD_ROLES), score: z.number(), baseline: z.number() })),
  })).describe('heads with at least one candidate role other than sink (at most top), best excess over the baseline first'),
  inactive: z.array(z.string()).describe('heads that give at least 90% of their attention to the sink on average and reach 0.1 in no other role: their other role scores are null'),
  scores: z.array(HeadScores).describe('role scores of every selected head when at most top are selected; else of the heads named in roles and candidates'),
  scoresOmitted: z.string().optional().describe('how to read the scores not listed (SQL)'),
  patterns: z.object({
    prompt: z.number().int(), tokens: z.array(z.string()),
    heads: z.array(z.object({ head: z.string(), pattern: z.array(z.array(z.number())).describe('row t: attention of query t to keys 0..t'), sink: z.array(z.number()) })),
  }).optional().describe('full patterns on prompts[patternPrompt]'),
  patternsOmitted: z.string().optional(),
  matrix: AttentionMatrix.optional(),
  queryRows: z.array(QueryRow).optional().describe('with query: per prompt, where each selected head attends from that position'),
  queryRowsOmitted: z.string().optional(),
});
export type AttentionResult = z.infer<typeof attentionOutput>;

const MAX_QUERY_PROMPTS = 64;
const SINK = HEAD_ROLES.indexOf('sink');
/** A head is inactive when its mean sink mass is at least INACTIVE_SINK and no other role score reaches INACTIVE_ROLE. */
const INACTIVE_SINK = 0.9;
const INACTIVE_ROLE = 0.1;

/**
 * The heads to score: layers x heads (indices), or a list of addresses like "L3.H4". Addresses are
 * parsed by parseComponent (tools/sites.ts), the one parser of component addresses.
 */
function selectHeads(input: AttentionInput, cfg: ToolContext['session']['config']): { layer: number; head: number }[] {
  const given = input.heads;
  if (given && typeof given[0] === 'string') {
    if (input.layers !== undefined) throw new ToolError(`give heads as addresses (["L3.H4", ...]) or layers with head indices, not both; got layers ${JSON.stringify(input.layers)} and heads ${JSON.stringify(given.slice(0, 4))}`);
    return (given as string[]).map((text) => {
      const c = parseComponent(text, cfg, 'head');
      return { layer: c.layer, head: c.head };
    });
  }
  const layers = input.layers ?? [...Array(cfg.numLayers).keys()];
  checkLayers(layers, cfg);
  const heads = (given as number[] | undefined) ?? [...Array(cfg.numHeads).keys()];
  for (const h of heads) if (!Number.isInteger(h) || h < 0 || h >= cfg.numHeads) throw new ToolError(`head ${h} is out of range; valid: 0..${cfg.numHeads - 1}`);
  return [...new Set(layers)].sort((a, b) => a - b).flatMap((layer) => [...new Set(heads)].sort((a, b) => a - b).map((head) => ({ layer, head })));
}

const SHADES = ' .:-=+*#%@';
const shade = (x: number) => SHADES[Math.max(0, Math.min(SHADES.length - 1, Math.round(x * (SHADES.length - 1))))];

interface Acc { sum: number; n: number }

/** Accumulates the five role scores of one head on one prompt's pattern rows. */
function scoreHead(acc: Acc[], ids: number[], A: Float32Array, aOff: number, S: Float32Array, sOff: number, T: number): void {
  const L = ids.length;
  for (let t = 0; t < L; t++) {
    const row = aOff + t * T;
    acc[4].sum += S[sOff + t];
    acc[4].n++;
    if (t === 0) continue;
    acc[0].sum += A[row + t - 1];
    acc[0].n++;
    acc[3].sum += A[row];
    acc[3].n++;
    let dup = 0;
    let ind = 0;
    let hasDup = false;
    let hasInd = false;
    for (let j = 0; j < t; j++) {
      if (ids[j] !== ids[t]) continue;
      hasDup = true;
      dup += A[row + j];
      if (j + 1 < t) {
        hasInd = true;
        ind += A[row + j + 1];
      }
    }
    if (hasInd) {
      acc[1].sum += ind;
      acc[1].n++;
    }
    if (hasDup) {
      acc[2].sum += dup;
      acc[2].n++;
    }
  }
}

export const attentionTool = defineTool({
  name: 'attention_patterns',
  description: 'Attention patterns and head roles: per-head patterns on one prompt (with the sink mass each query gives away), role scores for every head over all prompts (previous_token, induction, duplicate_token, attends_to_first, sink; each in [0, 1]), candidate roles per head ranked against the mean over heads (sink is not a candidate role; heads giving at least 90% of their attention to the sink with no role score reaching 0.1 are listed as inactive, with null role scores), one head as a small labelled matrix with a text heatmap, and with query (e.g. -1) where each selected head looks from that position on every prompt. Select heads as layers x heads, or as a list: {"heads": ["L3.H4", "L4.H5"]}. top limits the heads listed per role and the candidates; every score is in the store (one results row per head x role, experiment kind "attention_roles").',
  readsText: true,
  limits: { prompts: ['prompts'], sweep: { batch: ['prompts'], layers: ['layers'] } },
  input: attentionInput,
  output: attentionOutput,
  async run(input, ctx: ToolContext): Promise<AttentionResult> {
    const cfg = ctx.session.config;
    const prompts = ctx.session.encodeAll(input.prompts);
    const selected = selectHeads(input, cfg);
    if (input.patternPrompt >= prompts.length) throw new ToolError(`patternPrompt ${input.patternPrompt} is out of range; valid: 0..${prompts.length - 1} (an index into prompts)`);
    let matrixHead: { layer: number; head: number } | null = null;
    if (input.head !== undefined) {
      const c = parseComponent(input.head, cfg);
      if (c.kind !== 'head') throw new ToolError(`head "${input.head}" is not an attention head; write L<layer>.H<head>, e.g. "L1.H0"`);
      matrixHead = { layer: c.layer, head: c.head };
    }
    const uniqLayers = [...new Set(selected.map((x) => x.layer))].sort((a, b) => a - b);
    /** The selected heads of a layer. */
    const headsOf = new Map(uniqLayers.map((l) => [l, selected.filter((x) => x.layer === l).map((x) => x.head)]));
    const captureLayers = [...new Set([...uniqLayers, ...(matrixHead ? [matrixHead.layer] : [])])].sort((a, b) => a - b);
    const hooks = captureLayers.flatMap((l) => [blockHook(l, 'attn.hook_pattern'), blockHook(l, 'attn.hook_sink')]);

    const acc = new Map<string, Acc[]>(selected.map((s) => [`L${s.layer}.H${s.head}`, HEAD_ROLES.map(() => ({ sum: 0, n: 0 }))]));
    const showPatterns = selected.length <= input.maxPatternHeads;
    const queryRows = new Map<number, QueryRow>();
    for (const p of prompts) {
      const q = input.query;
      if (q !== undefined && (q >= p.ids.length || q < -p.ids.length)) throw new ToolError(`query position ${q} is outside a prompt of ${p.ids.length} tokens; valid: ${-p.ids.length}..${p.ids.length - 1} (negative counts from the end)`);
    }
    let patterns: AttentionResult['patterns'];
    let matrix: AttentionMatrix | undefined;
    const runIds: string[] = [];
    const nH = cfg.numHeads;

    for (let start = 0; start < prompts.length; start += input.batchSize) {
      checkCancelled(ctx, 'attention_patterns');
      const chunk: EncodedPrompt[] = prompts.slice(start, start + input.batchSize);
      const r = await runAndRecord(ctx, chunk, { capture: hooks, logits: 'none' }, { role: 'attention_patterns' });
      runIds.push(...r.runIds);
      const T = r.result.length;
      for (const layer of captureLayers) {
        const A = r.result.cache.get(blockHook(layer, 'attn.hook_pattern'))!.data;
        const S = r.result.cache.get(blockHook(layer, 'attn.hook_sink'))!.data;
        chunk.forEach((p, b) => {
          const n = start + b;
          const aOff = (h: number) => (b * nH + h) * T * T;
          const sOff = (h: number) => (b * nH + h) * T;
          if (uniqLayers.includes(layer)) {
            for (const h of headsOf.get(layer)!) scoreHead(acc.get(`L${layer}.H${h}`)!, p.ids, A, aOff(h), S, sOff(h), T);
          }
          const L = p.ids.length;
          if (input.query !== undefined && showPatterns && uniqLayers.includes(layer) && n < MAX_QUERY_PROMPTS) {
            const q = input.query < 0 ? L + input.query : input.query;
            const row = queryRows.get(n) ?? { prompt: n, position: q, token: p.tokens[q], heads: [] };
            queryRows.set(n, row);
            for (const h of headsOf.get(layer)!) {
              const weights = Array.from(A.subarray(aOff(h) + q * T, aOff(h) + q * T + q + 1));
              const top = weights.map((w, k) => ({ position: k, token: p.tokens[k], weight: w }))
                .sort((a, b) => b.weight - a.weight || a.position - b.position).slice(0, input.queryKeys);
              row.heads.push({ head: `L${layer}.H${h}`, sink: S[sOff(h) + q], top });
            }
          }
          if (n !== input.patternPrompt) return;
          if (showPatterns && uniqLayers.includes(layer)) {
            patterns ??= { prompt: n, tokens: p.tokens, heads: [] };
            for (const h of headsOf.get(layer)!) {
              const pattern = Array.from({ length: L }, (_, t) => Array.from(A.subarray(aOff(h) + t * T, aOff(h) + t * T + t + 1), (x) => x));
              const sink = Array.from(S.subarray(sOff(h), sOff(h) + L));
              patterns.heads.push({ head: `L${layer}.H${h}`, pattern, sink });
            }
          }
          if (matrixHead && matrixHead.layer === layer) {
            const h = matrixHead.head;
            const offset = Math.max(0, L - input.matrixTokens);
            const qs = [...Array(L - offset).keys()].map((i) => i + offset);
            const values = qs.map((q) => qs.map((k) => (k <= q ? A[aOff(h) + q * T + k] : Number.NaN)));
            const sink = qs.map((q) => S[sOff(h) + q]);
            const tokens = p.tokens.slice(offset);
            const width = Math.min(12, Math.max(...tokens.map((t) => t.length)));
            const heatmap = qs.map((q, i) => `${tokens[i].slice(0, width).padStart(width)} |${qs.map((k) => (k <= q ? shade(A[aOff(h) + q * T + k]) : ' ')).join('')}| sink ${sink[i].toFixed(2)}`);
            const labels = tokens.map((t, i) => `${offset + i}:${t}`);
            matrix = { head: input.head!.trim(), prompt: n, offset, tokens, grid: grid({ name: 'query', labels }, { name: 'key', labels }, values), sink, heatmap };
          }
        });
      }
      ctx.onProgress?.({ done: Math.min(prompts.length, start + input.batchSize), total: prompts.length, message: 'prompts read' });
    }

    const inactiveHeads: string[] = [];
    const scores: HeadScores[] = selected.map((s) => {
      const a = acc.get(`L${s.layer}.H${s.head}`)!;
      // A head that gives (almost) all its attention to the sink has no other role: its tiny, nearly
      // equal scores would otherwise read like a weak version of every role.
      // A specialised head (e.g. duplicate-token: active only at the repeated name) also gives most of
      // its attention to the sink on average, so it stays active when any role reaches INACTIVE_ROLE.
      const raw = HEAD_ROLES.map((_, i) => (a[i].n ? a[i].sum / a[i].n : null));
      const sinkMass = raw[SINK] ?? 0;
      const inactive = sinkMass >= INACTIVE_SINK && raw.every((v, i) => i === SINK || v === null || v < INACTIVE_ROLE);
      if (inactive) inactiveHeads.push(`L${s.layer}.H${s.head}`);
      const entries = HEAD_ROLES.map((role, i) => [role, i === SINK || !inactive ? raw[i] : null] as const);
      return { head: `L${s.layer}.H${s.head}`, layer: s.layer, index: s.head, scores: Object.fromEntries(entries) as Record<HeadRole, number | null> };
    });
    const firstAcc = acc.get(scores[0].head)!;
    const roles = HEAD_ROLES.map((role, i) => {
      const vals = scores.map((s) => s.scores[role]).filter((v): v is number => v !== null);
      const baseline = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
      const top = scores.filter((s) => s.scores[role] !== null)
        .map((s) => ({ head: s.head, score: s.scores[role]! }))
        .sort((a, b) => b.score - a.score).slice(0, input.top);
      return { role, baseline, queries: firstAcc[i].n, top };
    });
    const baselineOf = new Map(roles.map((r) => [r.role, r.baseline]));
    const candidates = scores.map((s) => {
      const rs = HEAD_ROLES.flatMap((role) => {
        const score = s.scores[role];
        const baseline = baselineOf.get(role);
        if (role === 'sink' || score === null || baseline === null || baseline === undefined) return [];
        return score >= input.minScore && score > baseline ? [{ role, score, baseline }] : [];
      }).sort((a, b) => (b.score - b.baseline) - (a.score - a.baseline));
      return { head: s.head, roles: rs };
    }).filter((c) => c.roles.length > 0)
      .sort((a, b) => (b.roles[0].score - b.roles[0].baseline) - (a.roles[0].score - a.roles[0].baseline));

    const experimentId = await ctx.store.addExperiment({
      kind: 'attention_roles', modelId: ctx.session.modelId,
      params: { ...input, runIds },
      summary: { heads: scores.length, roles: roles.map((r) => ({ role: r.role, baseline: r.baseline, top: r.top.slice(0, 3) })) },
    });
    await ctx.store.addResults(scores.flatMap((s) => HEAD_ROLES.map((role) => ({
      experimentId, site: s.head, hook: blockHook(s.layer, 'attn.hook_pattern'), layer: s.layer, component: s.index,
      value: s.scores[role], effect: null, extra: { role, baseline: baselineOf.get(role) ?? null },
    }))));

    const shown = candidates.slice(0, input.top);
    const named = new Set([...roles.flatMap((r) => r.top.map((x) => x.head)), ...shown.map((c) => c.head)]);
    const listed = scores.length <= input.top ? scores : scores.filter((x) => named.has(x.head));
    return {
      experimentId, runIds, heads: scores.length, roles, candidates: shown,
      inactive: inactiveHeads,
      scores: listed,
      ...(listed.length < scores.length ? { scoresOmitted: `${listed.length} of ${scores.length} heads listed (those named in roles and candidates; top = ${input.top}); every score: SELECT site, extra->>'role' AS role, value FROM results WHERE experiment_id = '${experimentId}' ORDER BY site` } : {}),
      ...(patterns ? { patterns } : {}),
      ...(!showPatterns ? { patternsOmitted: `${selected.length} heads selected; full patterns are returned for at most maxPatternHeads = ${input.maxPatternHeads}: narrow layers/heads, or use head for one matrix` } : {}),
      ...(matrix ? { matrix } : {}),
      ...(input.query !== undefined && showPatterns ? { queryRows: [...queryRows.values()].sort((a, b) => a.prompt - b.prompt) } : {}),
      ...(input.query === undefined ? {} : !showPatterns
        ? { queryRowsOmitted: `${selected.length} heads selected; query rows are returned for at most maxPatternHeads = ${input.maxPatternHeads}: narrow layers/heads` }
        : prompts.length > MAX_QUERY_PROMPTS ? { queryRowsOmitted: `query rows cover the first ${MAX_QUERY_PROMPTS} of ${prompts.length} prompts` } : {}),
    };
  },
});
