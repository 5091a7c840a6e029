// Similarity search over stored activations, computed inside DuckDB: the query vector is written
// into the SQL as numeric literals (never as text from the caller), and filters are validated
// against the model's hook list and a strict id pattern before they are written in, so the query
// runs through the store's read-only, bounded SQL path.
import { z } from 'zod';
import { expandHooks, HookError } from '../engine/hooks.ts';
import { defineTool, ToolError, type ToolContext } from './define.ts';
import { ExperimentId } from './output.ts';

const RUN_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

export const similarityInput = z.object({
  query: z.union([
    z.object({ vector: z.array(z.number()).min(1).max(1_000_000) }).strict().describe('a raw vector'),
    z.object({ name: z.string().min(1) }).strict().describe('a stored named vector (vectors table: steering, probe, PCA...)'),
    z.object({
      runId: z.string().min(1), hook: z.string().min(1), position: z.number().int().min(0),
      component: z.number().int().min(0).nullable().optional().describe('head/expert index for per-head or per-expert hooks'),
    }).strict().describe('a stored activation row (run_id, hook, position[, component])'),
  ]).describe('what to search with: {vector: [...]}, {name: "my_vector"} or {runId, hook, position, component?}'),
  hooks: z.array(z.string().min(1)).optional().describe('only rows of these hooks (names or patterns, e.g. ["blocks.*.hook_resid_post"])'),
  sameHook: z.boolean().default(true).describe('when hooks is not given and the query has a hook (stored row, or named vector with a hook), search only that hook'),
  layers: z.array(z.number().int()).optional().describe('only rows of these layers'),
  runIds: z.array(z.string().min(1)).optional().describe('only rows of these runs'),
  components: z.array(z.number().int().min(0)).optional().describe('only rows of these heads/experts'),
  metric: z.enum(['cosine', 'dot']).default('cosine').describe('cosine similarity (default) or dot product'),
  k: z.number().int().min(1).max(1000).default(10).describe('how many nearest rows to return'),
  excludeSource: z.boolean().default(false).describe('for a stored-row query: leave the row itself out'),
  timeoutMs: z.number().int().min(100).max(600_000).default(60_000),
});
export type SimilarityInput = z.infer<typeof similarityInput>;

const SimilarityHit = z.object({
  rank: z.number().int(),
  similarity: z.number(),
  runId: z.string(),
  hook: z.string(),
  layer: z.number().int().nullable(),
  position: z.number().int(),
  component: z.number().int().nullable(),
  token: z.string().nullable(),
  context: z.array(z.string()).describe('up to 4 tokens before the position and the token itself'),
  prompt: z.string().describe('the run\'s prompt (first 160 characters)'),
});
export type SimilarityHit = z.infer<typeof SimilarityHit>;

export const similarityOutput = z.object({
  experimentId: ExperimentId,
  query: z.object({ source: z.enum(['vector', 'name', 'row']), dim: z.number().int(), hook: z.string().nullable(), label: z.string() }),
  metric: z.enum(['cosine', 'dot']),
  filters: z.object({
    hooks: z.array(z.string()).nullable(), layers: z.array(z.number().int()).nullable(),
    runIds: z.array(z.string()).nullable(), components: z.array(z.number().int()).nullable(),
  }),
  hits: z.array(SimilarityHit),
});
export type SimilarityResult = z.infer<typeof similarityOutput>;

/** A finite number as a SQL numeric literal. */
function num(x: number): string {
  if (!Number.isFinite(x)) throw new ToolError(`the query vector has a non-finite value (${x}); give finite numbers`);
  return String(x);
}

function listLiteral(xs: ArrayLike<number>): string {
  const parts = new Array<string>(xs.length);
  for (let i = 0; i < xs.length; i++) parts[i] = num(xs[i]);
  return `[${parts.join(',')}]::FLOAT[]`;
}

const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

async function resolveQuery(ctx: ToolContext, input: SimilarityInput): Promise<{ vec: ArrayLike<number>; hook: string | null; source: SimilarityResult['query']['source']; label: string; row?: { runId: string; hook: string; position: number; component: number | null } }> {
  const qy = input.query;
  if ('vector' in qy) return { vec: qy.vector, hook: null, source: 'vector', label: `vector[${qy.vector.length}]` };
  if ('name' in qy) {
    const v = await ctx.store.getVector(qy.name);
    if (!v) throw new ToolError(`no stored vector "${qy.name}"; list them with SQL: SELECT name, kind, hook, len(vec) FROM vectors`);
    return { vec: v.vec, hook: v.hook, source: 'name', label: qy.name };
  }
  if (!RUN_ID.test(qy.runId)) throw new ToolError(`runId "${qy.runId}" is not a run id (letters, digits, _ . : - only)`);
  const hook = checkedHooks([qy.hook], ctx)[0];
  const rows = await ctx.store.getActivations({ runId: qy.runId, hook, position: qy.position, ...(qy.component !== undefined ? { component: qy.component } : {}), limit: 2 });
  if (rows.length === 0) {
    throw new ToolError(`no stored activation for run ${qy.runId}, hook ${hook}, position ${qy.position}${qy.component !== undefined && qy.component !== null ? `, component ${qy.component}` : ''}; capture it first (capture_activations) or check with SQL: SELECT hook, position, component FROM activations WHERE run_id = '${qy.runId}'`);
  }
  if (rows.length > 1) throw new ToolError(`run ${qy.runId}, hook ${hook}, position ${qy.position} has one row per head/expert; give component`);
  const r = rows[0];
  return { vec: r.vec, hook, source: 'row', label: `${qy.runId} ${hook} P${qy.position}${r.component !== null ? ` C${r.component}` : ''}`, row: { runId: qy.runId, hook, position: qy.position, component: r.component } };
}

function checkedHooks(patterns: readonly string[], ctx: ToolContext): string[] {
  try {
    return expandHooks(patterns, ctx.session.config.numLayers).map((h) => h.name);
  } catch (err) {
    if (err instanceof HookError) throw new ToolError(err.message);
    throw err;
  }
}

export const similarityTool = defineTool({
  name: 'similarity_search',
  description: 'Nearest stored activation vectors (activations table) by cosine similarity (or dot product), computed in DuckDB, to a raw vector, a stored named vector, or a stored activation row; filter by hook, layer, run and head/expert. Returns the top k with the run\'s prompt, the token at that position and its context. Only rows of the same width as the query are compared.',
  input: similarityInput,
  output: similarityOutput,
  async run(input, ctx): Promise<SimilarityResult> {
    const query = await resolveQuery(ctx, input);
    const dim = query.vec.length;
    let norm = 0;
    for (let i = 0; i < dim; i++) norm += query.vec[i] * query.vec[i];
    if (input.metric === 'cosine' && !(norm > 0)) throw new ToolError('the query vector is all zeros; cosine similarity is undefined for it');
    const hooks = input.hooks ? checkedHooks(input.hooks, ctx) : input.sameHook && query.hook ? [query.hook] : null;
    if (input.layers) for (const l of input.layers) if (!Number.isInteger(l) || l < 0 || l >= ctx.session.config.numLayers) throw new ToolError(`layer ${l} is out of range; valid: 0..${ctx.session.config.numLayers - 1}`);
    for (const id of input.runIds ?? []) if (!RUN_ID.test(id)) throw new ToolError(`runId "${id}" is not a run id (letters, digits, _ . : - only)`);

    const where = [`len(a.vec) = ${dim}`, 'a.norm > 0'];
    if (hooks) where.push(`a.hook IN (${hooks.map(q).join(', ')})`);
    if (input.layers) where.push(`a.layer IN (${input.layers.map(num).join(', ')})`);
    if (input.runIds) where.push(`a.run_id IN (${input.runIds.map(q).join(', ')})`);
    if (input.components) where.push(`a.component IN (${input.components.map(num).join(', ')})`);
    if (input.excludeSource && query.row) {
      const r = query.row;
      where.push(`NOT (a.run_id = ${q(r.runId)} AND a.hook = ${q(r.hook)} AND a.position = ${num(r.position)} AND a.component IS NOT DISTINCT FROM ${r.component === null ? 'NULL' : num(r.component)})`);
    }
    const fn = input.metric === 'cosine' ? 'list_cosine_similarity' : 'list_dot_product';
    const sql = `WITH qv AS (SELECT ${listLiteral(query.vec)} AS v),
hits AS (
  SELECT a.run_id, a.hook, a.layer, a.position, a.component, ${fn}(a.vec, qv.v) AS sim
  FROM activations a, qv
  WHERE ${where.join(' AND ')}
  ORDER BY sim DESC, a.run_id, a.hook, a.position, a.component NULLS FIRST
  LIMIT ${num(input.k)}
)
SELECT h.sim, h.run_id, h.hook, h.layer, h.position, h.component,
  r.tokens[h.position + 1] AS token,
  list_slice(r.tokens, greatest(1, h.position - 3), h.position + 1) AS context,
  r.prompt
FROM hits h LEFT JOIN runs r ON r.run_id = h.run_id
ORDER BY h.sim DESC, h.run_id, h.hook, h.position, h.component NULLS FIRST`;
    const res = await ctx.store.query(sql, { maxRows: input.k, timeoutMs: input.timeoutMs });
    const hits: SimilarityHit[] = res.rows.map((row, i) => ({
      rank: i + 1,
      similarity: Number(row[0]),
      runId: String(row[1]),
      hook: String(row[2]),
      layer: row[3] === null ? null : Number(row[3]),
      position: Number(row[4]),
      component: row[5] === null ? null : Number(row[5]),
      token: row[6] === null ? null : String(row[6]),
      context: Array.isArray(row[7]) ? row[7].map(String) : [],
      prompt: row[8] === null ? '' : String(row[8]),
    }));
    const experimentId = await ctx.store.addExperiment({
      kind: 'similarity_search', modelId: ctx.session.modelId,
      params: { ...input, query: query.source === 'vector' ? { vector: `[${dim} values]` } : input.query },
      metric: input.metric,
      summary: { query: query.label, dim, hits: hits.length, best: hits[0] ? { runId: hits[0].runId, position: hits[0].position, similarity: hits[0].similarity } : null },
    });
    await ctx.store.addResults(hits.map((h) => ({
      experimentId, site: `${h.runId} P${h.position}${h.component !== null ? ` C${h.component}` : ''}`, hook: h.hook, layer: h.layer,
      position: h.position, component: h.component, value: h.similarity, effect: null, extra: { rank: h.rank, token: h.token },
    })));
    return {
      experimentId,
      query: { source: query.source, dim, hook: query.hook, label: query.label },
      metric: input.metric,
      filters: { hooks, layers: input.layers ?? null, runIds: input.runIds ?? null, components: input.components ?? null },
      hits: hits.map((h) => ({ ...h, prompt: h.prompt.length > 160 ? `${h.prompt.slice(0, 157)}...` : h.prompt })),
    };
  },
});
