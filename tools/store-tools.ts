// The activation store, read by language models: read-only SQL with bounded rows and time, and the
// schema with a description of every column.
import { z } from 'zod';
import { defineTool, ToolError } from './define.ts';
import { LIMITS } from './limits.ts';
import { SqlToolError, ALLOWED_STATEMENTS, type ActivationStore } from './store/index.ts';
import { renderTable } from './tables.ts';

const EXAMPLE_QUERIES = [
  "SELECT site, layer, position, round(effect, 3) AS effect FROM results WHERE experiment_id = 'exp_...' ORDER BY abs(effect) DESC LIMIT 10",
  "SELECT hook, count(*) AS n, avg(norm) AS mean_norm FROM activations WHERE run_id = 'run_...' GROUP BY hook ORDER BY hook",
  "SELECT a.position, array_cosine_similarity(a.vec, b.vec) AS cos FROM activations a JOIN activations b USING (hook, position) WHERE a.run_id = 'run_A' AND b.run_id = 'run_B' AND hook = 'blocks.2.hook_resid_post'",
  'SELECT experiment_id, kind, metric, clean_value, corrupted_value, created_at FROM experiments ORDER BY created_at DESC LIMIT 20',
];

export const queryActivationsTool = defineTool({
  name: 'query_activations',
  storeReadOnly: true,
  description:
    'Run one read-only SQL query (DuckDB dialect) over the activation store: tables models, runs, activations (FLOAT[] vectors per run x hook x position x head/expert), ' +
    'experiments, results (one row per patched/ablated site with its effect), vectors, findings. ' +
    `Writes are refused. Returns the columns and at most maxRows rows (default ${LIMITS.defaultSqlRows}, max ${LIMITS.maxSqlRows}) and at most maxBytes bytes (default ${LIMITS.defaultSqlResultBytes}), cut with truncated and a note naming the limit, and stops after timeoutMs (reading the rows included). ` +
    'Compute on vectors in SQL rather than reading them whole (vec[1:8], len(vec), list_dot_product, array_cosine_similarity); SQL lists are 1-based, so dimension d (0-based) is vec[d + 1]. ' +
    'Per-expert hooks (mlp.hook_pre/hook_post) store only routed tokens: no row for a (position, expert) the router did not choose. Call describe_store for columns. ' +
    `Example: {"sql": "${EXAMPLE_QUERIES[0].replace(/"/g, '\\"')}"}`,
  input: z.object({
    sql: z.string().min(1).max(20_000).describe('one read-only statement: SELECT / WITH / FROM / VALUES / DESCRIBE / SHOW / SUMMARIZE / EXPLAIN'),
    maxRows: z.number().int().min(1).max(LIMITS.maxSqlRows).default(LIMITS.defaultSqlRows).describe('rows returned at most'),
    timeoutMs: z.number().int().min(100).max(LIMITS.maxSqlTimeoutMs).default(LIMITS.defaultSqlTimeoutMs).describe('the query is interrupted after this many milliseconds (reading the rows included)'),
    maxBytes: z.number().int().min(1000).max(LIMITS.maxSqlResultBytes).default(LIMITS.defaultSqlResultBytes).describe('byte budget of the rows returned (estimated as JSON); rows past it are cut'),
  }).strict().meta({ examples: EXAMPLE_QUERIES.map((sql) => ({ sql })) }),
  output: z.object({
    columns: z.array(z.object({ name: z.string(), type: z.string() })),
    rows: z.array(z.array(z.unknown())).describe('each row\'s values in column order (JSON: integers beyond 2^53 as strings, JSON columns parsed)'),
    rowCount: z.number().int().describe('rows returned'),
    truncated: z.boolean().describe('a limit cut the result: more than maxRows rows, or more than maxBytes bytes'),
    cutBy: z.enum(['maxRows', 'maxBytes']).optional().describe('the limit that cut the result'),
    note: z.string().optional().describe('what was cut and how to get the rest'),
  }),
  async run(input, ctx) {
    let r;
    try {
      r = await ctx.store.query(input.sql, { maxRows: input.maxRows, timeoutMs: input.timeoutMs, maxBytes: input.maxBytes });
    } catch (e) {
      if (e instanceof SqlToolError) {
        const hint = e.code === 'refused' ? ` ${ALLOWED_STATEMENTS} The store is read-only through this tool.`
          : e.code === 'timeout' ? ' Narrow the query (WHERE, LIMIT) or raise timeoutMs.' : ' Call describe_store for table and column names.';
        const covered = e.code === 'refused' ? e.message.includes(ALLOWED_STATEMENTS) : e.code === 'timeout' && e.message.includes('timeoutMs');
        throw new ToolError(`SQL ${e.code}: ${e.message}${covered ? (e.code === 'refused' ? ' The store is read-only through this tool.' : '') : hint}`);
      }
      throw e;
    }
    return {
      columns: r.columns,
      rows: r.rows,
      rowCount: r.rowCount,
      truncated: r.truncated,
      ...(r.cut ? { cutBy: r.cut.limit, note: r.cut.limit === 'maxRows'
        ? `more than ${input.maxRows} rows (maxRows); only the first ${input.maxRows} were returned (raise maxRows up to ${LIMITS.maxSqlRows}, or aggregate)`
        : `${r.cut.message} (raise maxBytes up to ${LIMITS.maxSqlResultBytes})` } : {}),
    };
  },
});

export const describeStoreTool = defineTool({
  name: 'describe_store',
  storeReadOnly: true,
  description:
    'Describe the activation store: every table and column with its type and meaning, current row counts, example queries for query_activations, ' +
    'and what happened to the store file itself (created, migrated, a write-ahead log set aside after a crash). Example: {}',
  input: z.object({}).strict().meta({ examples: [{}] }),
  output: z.object({
    markdown: z.string().describe('every table and column with its meaning, row counts and example queries'),
    events: z.array(z.object({ at: z.string(), kind: z.enum(['wal_set_aside', 'created', 'migrated']), detail: z.string() }))
      .describe('what happened to the store file itself, newest first: created, migrated, a write-ahead log set aside after a crash'),
  }),
  async run(_input, ctx) {
    return { markdown: await storeSchemaMarkdown(ctx.store), events: await ctx.store.events() };
  },
});

/** The schema with row counts and example queries, as Markdown (also the neuroscope://schema resource). */
export async function storeSchemaMarkdown(store: Pick<ActivationStore, 'describe' | 'tableCounts' | 'events'>): Promise<string> {
  const counts = await store.tableCounts();
  const events = await store.events();
  const parts = ['# Activation store schema', '', 'DuckDB; query it read-only with query_activations.', ''];
  for (const t of store.describe()) {
    parts.push(`## ${t.table} (${counts[t.table] ?? 0} rows)`, '', t.description, '');
    parts.push(renderTable(['column', 'type', 'description'], t.columns.map((c) => [c.column, c.type, c.description]), { format: 'markdown', maxCellChars: 400 }).text, '');
  }
  parts.push('## Example queries', '', ...EXAMPLE_QUERIES.map((q) => `- \`${q}\``));
  if (events.length) {
    parts.push('', '## Store events', '', 'What happened to the store file itself, newest first (also in the store_events table).', '');
    parts.push(renderTable(['at', 'kind', 'detail'], events.map((e) => [e.at, e.kind, e.detail]), { format: 'markdown', maxCellChars: 600 }).text);
  }
  return parts.join('\n');
}

export const STORE_TOOLS = [queryActivationsTool, describeStoreTool];
