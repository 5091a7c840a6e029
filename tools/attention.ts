// Attention patterns and head roles. Runs prompts with attn.hook_pattern and attn.hook_sink
// captured, returns the patterns of chosen heads on one prompt (with the sink mass each query gives
// away), scores every head for the classic roles from its patterns over all prompts, ranks candidate
// roles per head against the mean over heads, and renders one head's pattern as a small labelled
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
  heads: siteList(z.number().int(), 'head').optional().describe('head indices within each layer (default all)'),
  patternPrompt: z.number().int().min(0).default(0).describe('index into prompts of the prompt whose full patterns (and matrix) are returned'),
  maxPatternHeads: z.number().int().min(0).max(256).default(8).describe('return full per-head patterns only when at most this many heads are selected (narrow layers/heads to see them; 0 = never)'),
  head: z.string().optional().describe('one head, e.g. "L2.H1", to return as a compact labelled matrix with a text heatmap'),
  matrixTokens: z.number().int().min(2).max(64).default(24).describe('the matrix shows at most this many positions (the last ones of the prompt)'),
  query: z.number().int().optional().describe('a query position (negative counts from the end; -1 = the last token): for every prompt (up to 64) and every selected head (up to maxPatternHeads), the keys it attends to most from there, e.g. where a name mover looks from the answer position'),
  queryKeys: z.number().int().min(1).max(64).default(3).describe('keys listed per head with query (up to 64: every key of a short prompt)'),
  minScore: z.number().min(0).max(1).default(0.3).describe('a role is a candidate for a head when its score is at least this and above the mean over heads'),
  top: z.number().int().min(1).max(100).default(5).describe('heads listed per role'),
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
  })).describe('heads with at least one candidate role (at most 64), best excess over the baseline first'),
  scores: z.array(HeadScores).optional().describe('every selected head\'s role scores (when at most 128 heads are selected)'),
  scoresOmitted: z.string().optional(),
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
  description: 'Attention patterns and head roles: per-head patterns on one prompt (with the sink mass each query gives away), role scores for every head over all prompts (previous_token, induction, duplicate_token, attends_to_first, sink; each in [0, 1]), candidate roles per head ranked against the mean over heads, one head as a small labelled matrix with a text heatmap, and with query (e.g. -1) where each selected head looks from that position on every prompt. Stores one results row per head x role (experiment kind "attention_roles").',
  readsText: true,
  limits: { prompts: ['prompts'], sweep: { batch: ['prompts'], layers: ['layers'] } },
  input: attentionInput,
  output: attentionOutput,
  async run(input, ctx: ToolContext): Promise<AttentionResult> {
    const cfg = ctx.session.config;
    const prompts = ctx.session.encodeAll(input.prompts);
    const layers = input.layers ?? [...Array(cfg.numLayers).keys()];
    checkLayers(layers, cfg);
    if (layers.length === 0) throw new ToolError('layers is empty; give at least one layer (valid: 0..' + (cfg.numLayers - 1) + ')');
    const heads = input.heads ?? [...Array(cfg.numHeads).keys()];
    for (const h of heads) if (!Number.isInteger(h) || h < 0 || h >= cfg.numHeads) throw new ToolError(`head ${h} is out of range; valid: 0..${cfg.numHeads - 1}`);
    if (heads.length === 0) throw new ToolError(`heads is empty; give at least one head (valid: 0..${cfg.numHeads - 1})`);
    if (input.patternPrompt >= prompts.length) throw new ToolError(`patternPrompt ${input.patternPrompt} is out of range; valid: 0..${prompts.length - 1} (an index into prompts)`);
    let matrixHead: { layer: number; head: number } | null = null;
    if (input.head !== undefined) {
      const c = parseComponent(input.head, cfg);
      if (c.kind !== 'head') throw new ToolError(`head "${input.head}" is not an attention head; write L<layer>.H<head>, e.g. "L1.H0"`);
      matrixHead = { layer: c.layer, head: c.head };
    }
    const uniqLayers = [...new Set(layers)].sort((a, b) => a - b);
    const uniqHeads = [...new Set(heads)].sort((a, b) => a - b);
    const captureLayers = [...new Set([...uniqLayers, ...(matrixHead ? [matrixHead.layer] : [])])].sort((a, b) => a - b);
    const hooks = captureLayers.flatMap((l) => [blockHook(l, 'attn.hook_pattern'), blockHook(l, 'attn.hook_sink')]);

    const selected = uniqLayers.flatMap((layer) => uniqHeads.map((head) => ({ layer, head })));
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
            for (const h of uniqHeads) scoreHead(acc.get(`L${layer}.H${h}`)!, p.ids, A, aOff(h), S, sOff(h), T);
          }
          const L = p.ids.length;
          if (input.query !== undefined && showPatterns && uniqLayers.includes(layer) && n < MAX_QUERY_PROMPTS) {
            const q = input.query < 0 ? L + input.query : input.query;
            const row = queryRows.get(n) ?? { prompt: n, position: q, token: p.tokens[q], heads: [] };
            queryRows.set(n, row);
            for (const h of uniqHeads) {
              const weights = Array.from(A.subarray(aOff(h) + q * T, aOff(h) + q * T + q + 1));
              const top = weights.map((w, k) => ({ position: k, token: p.tokens[k], weight: w }))
                .sort((a, b) => b.weight - a.weight || a.position - b.position).slice(0, input.queryKeys);
              row.heads.push({ head: `L${layer}.H${h}`, sink: S[sOff(h) + q], top });
            }
          }
          if (n !== input.patternPrompt) return;
          if (showPatterns && uniqLayers.includes(layer)) {
            patterns ??= { prompt: n, tokens: p.tokens, heads: [] };
            for (const h of uniqHeads) {
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

    const scores: HeadScores[] = selected.map((s) => {
      const a = acc.get(`L${s.layer}.H${s.head}`)!;
      const entries = HEAD_ROLES.map((role, i) => [role, a[i].n ? a[i].sum / a[i].n : null] as const);
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
        if (score === null || baseline === null || baseline === undefined) return [];
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

    return {
      experimentId, runIds, heads: scores.length, roles, candidates: candidates.slice(0, 64),
      ...(scores.length <= 128 ? { scores } : { scoresOmitted: `${scores.length} heads: read every score with SQL: SELECT site, extra->>'role' AS role, value FROM results WHERE experiment_id = '${experimentId}'` }),
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
