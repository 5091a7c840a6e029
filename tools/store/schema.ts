// The activation store's schema as data. One source drives CREATE TABLE, COMMENT ON (so the SQL
// tool's `duckdb_columns()` shows the same descriptions), describe() and the open-time check that
// an existing file matches what this code expects.

export interface ColumnSpec {
  name: string;
  /** DuckDB type as written in CREATE TABLE (and as reported by duckdb_columns().data_type). */
  type: string;
  description: string;
  primaryKey?: boolean;
  notNull?: boolean;
  /** SQL default expression. */
  default?: string;
}

export interface TableSpec {
  name: string;
  description: string;
  columns: readonly ColumnSpec[];
}

const createdAt: ColumnSpec = {
  name: 'created_at',
  type: 'TIMESTAMP WITH TIME ZONE',
  description: 'When the row was written (UTC instant).',
  notNull: true,
  default: 'current_timestamp',
};

export const TABLES = [
  {
    name: 'models',
    description: 'Models the store has seen; runs, experiments and vectors refer to them by model_id.',
    columns: [
      { name: 'model_id', type: 'VARCHAR', primaryKey: true, description: 'Stable model id, e.g. "gpt-oss-20b" or a generated "mdl_..." id.' },
      { name: 'name', type: 'VARCHAR', notNull: true, description: 'Human-readable model name.' },
      { name: 'path', type: 'VARCHAR', description: 'Where the weights were loaded from (directory or file), if any.' },
      { name: 'config', type: 'JSON', description: 'Model configuration (layers, heads, experts, dims...) as JSON.' },
      createdAt,
    ],
  },
  {
    name: 'runs',
    description: 'One forward pass over one prompt; activations are keyed by run_id.',
    columns: [
      { name: 'run_id', type: 'VARCHAR', primaryKey: true, description: 'Run id, "run_..." unless given.' },
      { name: 'model_id', type: 'VARCHAR', notNull: true, description: 'models.model_id of the model that was run.' },
      { name: 'prompt', type: 'VARCHAR', notNull: true, description: 'The prompt text as given.' },
      { name: 'token_ids', type: 'INTEGER[]', notNull: true, description: 'Token ids fed to the model, in order (position i = token_ids[i+1] in 1-based SQL indexing).' },
      { name: 'tokens', type: 'VARCHAR[]', notNull: true, description: 'Decoded string of each token, aligned with token_ids.' },
      createdAt,
      { name: 'meta', type: 'JSON', description: 'Free-form run metadata (sampling settings, interventions applied, source tool...).' },
    ],
  },
  {
    name: 'activations',
    description:
      'Captured activation vectors, one row per (run, hook, position, component). Bulk-written through the DuckDB appender.',
    columns: [
      { name: 'run_id', type: 'VARCHAR', notNull: true, description: 'runs.run_id the activation was captured in.' },
      { name: 'hook', type: 'VARCHAR', notNull: true, description: 'Full hook name, e.g. "blocks.3.hook_resid_post" or "hook_embed".' },
      { name: 'layer', type: 'INTEGER', description: 'Block index parsed from the hook name; NULL for non-block hooks (hook_embed, hook_logits...).' },
      { name: 'position', type: 'INTEGER', notNull: true, description: 'Token position (0-based) in the run.' },
      { name: 'component', type: 'INTEGER', description: 'Head index (attention hooks) or expert index (MoE hooks); NULL when the hook has no such axis. Per-expert hooks (mlp.hook_pre, mlp.hook_post, [B, T, E, ...]) store only the tokens routed to the expert: a missing (position, expert) row means the expert was not chosen there (activation 0).' },
      { name: 'vec', type: 'FLOAT[]', notNull: true, description: 'The activation vector (float32) at this site. SQL lists are 1-based: dimension d (0-based, as tools and papers count) is vec[d + 1], e.g. dimension 92 is vec[93]; vec[1:8] is dimensions 0..7.' },
      { name: 'norm', type: 'FLOAT', notNull: true, description: 'L2 norm of vec, computed at write time.' },
    ],
  },
  {
    name: 'experiments',
    description: 'One experiment (patching sweep, ablation, steering, probe fit...); its per-site rows live in results.',
    columns: [
      { name: 'experiment_id', type: 'VARCHAR', primaryKey: true, description: 'Experiment id, "exp_..." unless given.' },
      { name: 'kind', type: 'VARCHAR', notNull: true, description: 'Experiment kind, e.g. "activation_patching", "ablation", "steering", "probe".' },
      { name: 'model_id', type: 'VARCHAR', description: 'models.model_id the experiment ran on.' },
      { name: 'params', type: 'JSON', description: 'Inputs of the experiment (prompts, run ids, hooks, positions, settings) as JSON.' },
      { name: 'metric', type: 'VARCHAR', description: 'Metric measured, e.g. "logit_diff", "target_prob", "kl", "loss".' },
      { name: 'clean_value', type: 'DOUBLE', description: 'Metric on the clean run (baseline for normalised effects).' },
      { name: 'corrupted_value', type: 'DOUBLE', description: 'Metric on the corrupted run (zero point for normalised effects).' },
      { name: 'summary', type: 'JSON', description: 'Headline outcome (top sites, fit accuracy...) as JSON.' },
      createdAt,
    ],
  },
  {
    name: 'results',
    description: 'Per-site experiment results, one row per patched/ablated/probed site.',
    columns: [
      { name: 'experiment_id', type: 'VARCHAR', notNull: true, description: 'experiments.experiment_id the row belongs to.' },
      { name: 'site', type: 'VARCHAR', notNull: true, description: 'Readable site label, e.g. "L3.H5" or "resid_pre L2 P4".' },
      { name: 'hook', type: 'VARCHAR', description: 'Full hook name intervened on, if the site is a hook.' },
      { name: 'layer', type: 'INTEGER', description: 'Block index of the site; NULL when not block-scoped.' },
      { name: 'position', type: 'INTEGER', description: 'Token position of the site; NULL when all positions.' },
      { name: 'component', type: 'INTEGER', description: 'Head or expert index of the site; NULL when none.' },
      { name: 'neuron', type: 'INTEGER', description: 'Neuron / dimension index of the site; NULL when none.' },
      { name: 'value', type: 'DOUBLE', description: 'Raw metric measured with this site intervened on.' },
      {
        name: 'effect',
        type: 'DOUBLE',
        description:
          'Normalised effect (value - corrupted_value) / (clean_value - corrupted_value): 1 = fully restores clean, 0 = no effect. Computed from the experiment when not given.',
      },
      { name: 'extra', type: 'JSON', description: 'Anything else about the site (per-token metrics, notes) as JSON.' },
    ],
  },
  {
    name: 'vectors',
    description: 'Named direction vectors (steering vectors, probe weights, PCA components, queries); upserted by name.',
    columns: [
      { name: 'name', type: 'VARCHAR', primaryKey: true, description: 'Unique vector name; writing the same name replaces the vector.' },
      { name: 'kind', type: 'VARCHAR', notNull: true, description: 'steering | probe | pca | query | other free-form kind.' },
      { name: 'model_id', type: 'VARCHAR', description: 'models.model_id the vector lives in.' },
      { name: 'hook', type: 'VARCHAR', description: 'Hook whose space the vector lives in, e.g. "blocks.12.hook_resid_post".' },
      { name: 'layer', type: 'INTEGER', description: 'Block index of the hook; NULL for non-block hooks.' },
      { name: 'vec', type: 'FLOAT[]', notNull: true, description: 'The vector (float32).' },
      { name: 'meta', type: 'JSON', description: 'How it was made (source runs, fit metrics, scale...) as JSON.' },
      createdAt,
    ],
  },
  {
    name: 'findings',
    description: 'Written-up findings, with the experiments and runs that support them.',
    columns: [
      { name: 'finding_id', type: 'VARCHAR', primaryKey: true, description: 'Finding id, "fnd_..." unless given.' },
      { name: 'title', type: 'VARCHAR', notNull: true, description: 'One-line title.' },
      { name: 'path', type: 'VARCHAR', description: 'Markdown file the finding is written to, if any.' },
      { name: 'body', type: 'VARCHAR', notNull: true, description: 'The finding text (markdown).' },
      { name: 'experiment_ids', type: 'VARCHAR[]', notNull: true, description: 'experiments.experiment_id values supporting the finding.' },
      { name: 'run_ids', type: 'VARCHAR[]', notNull: true, description: 'runs.run_id values supporting the finding.' },
      createdAt,
    ],
  },
  // Sparse dictionaries (SAEs, transcoders) and their latents, stored sparsely.
  {
    name: 'saes',
    description: 'Sparse dictionaries (SAEs and transcoders) trained or loaded here; the SAELens files live in path.',
    columns: [
      { name: 'sae_id', type: 'VARCHAR', primaryKey: true, description: 'Dictionary id, "sae_..." unless given; also the folder name under <data>/saes/.' },
      { name: 'model_id', type: 'VARCHAR', description: 'models.model_id whose activations it was trained on or is used with.' },
      { name: 'hook', type: 'VARCHAR', notNull: true, description: 'Hook it reads, e.g. "blocks.2.hook_resid_post"; its latents are the hook <hook>.sae.hook_sae_acts.' },
      { name: 'hook_out', type: 'VARCHAR', description: 'Transcoders: the hook whose value the decoder predicts; NULL for an SAE.' },
      { name: 'architecture', type: 'VARCHAR', notNull: true, description: 'relu | jumprelu | topk.' },
      { name: 'd_in', type: 'INTEGER', notNull: true, description: 'Input width.' },
      { name: 'd_sae', type: 'INTEGER', notNull: true, description: 'Number of latents.' },
      { name: 'k', type: 'INTEGER', description: 'Latents kept per token (topk); NULL otherwise.' },
      { name: 'path', type: 'VARCHAR', notNull: true, description: 'Folder holding cfg.json and sae_weights.safetensors (SAELens layout).' },
      { name: 'metrics', type: 'JSON', description: 'Training settings and evaluation (explained variance, MSE, L0, dead latents, delta CE) as JSON.' },
      createdAt,
    ],
  },
  {
    name: 'sae_latents',
    description: 'Latent activations of a dictionary, one row per active (non-zero) latent per run and position.',
    columns: [
      { name: 'run_id', type: 'VARCHAR', notNull: true, description: 'runs.run_id the latents were captured in.' },
      { name: 'sae_id', type: 'VARCHAR', notNull: true, description: 'saes.sae_id of the dictionary.' },
      { name: 'position', type: 'INTEGER', notNull: true, description: 'Token position (0-based) in the run.' },
      { name: 'latent', type: 'INTEGER', notNull: true, description: 'Latent index (row of W_dec).' },
      { name: 'value', type: 'FLOAT', notNull: true, description: 'The latent activation (> 0 for relu/topk/jumprelu).' },
    ],
  },
] as const satisfies readonly TableSpec[];

export type TableName = (typeof TABLES)[number]['name'];

export const TABLE_NAMES: readonly TableName[] = TABLES.map((t) => t.name);

export function isTableName(name: string): name is TableName {
  return (TABLE_NAMES as readonly string[]).includes(name);
}

export function tableSpec(name: TableName): TableSpec {
  return TABLES.find((t) => t.name === name)!;
}

export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export function createTableSql(t: TableSpec): string {
  const cols = t.columns.map((c) => {
    let def = `${c.name} ${c.type}`;
    if (c.primaryKey) def += ' PRIMARY KEY';
    else if (c.notNull) def += ' NOT NULL';
    if (c.default) def += ` DEFAULT ${c.default}`;
    return def;
  });
  return `CREATE TABLE IF NOT EXISTS ${t.name} (\n  ${cols.join(',\n  ')}\n)`;
}

export function commentSql(t: TableSpec): string[] {
  return [
    `COMMENT ON TABLE ${t.name} IS ${sqlString(t.description)}`,
    ...t.columns.map((c) => `COMMENT ON COLUMN ${t.name}.${c.name} IS ${sqlString(c.description)}`),
  ];
}

export interface ColumnDoc {
  column: string;
  type: string;
  description: string;
}

export interface TableDoc {
  table: TableName;
  description: string;
  columns: ColumnDoc[];
}

export function describeSchema(): TableDoc[] {
  return TABLES.map((t) => ({
    table: t.name,
    description: t.description,
    columns: t.columns.map((c) => ({ column: c.name, type: c.type, description: c.description })),
  }));
}
