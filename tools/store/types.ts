// Input and record shapes of the activation store. Inputs use camelCase; records mirror the SQL
// columns in camelCase so tools never see DuckDB value classes.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ModelInput {
  /** Defaults to a generated "mdl_..." id. Re-adding an existing id updates name/path/config. */
  modelId?: string;
  name: string;
  path?: string | null;
  config?: unknown;
}

export interface ModelRecord {
  modelId: string;
  name: string;
  path: string | null;
  config: Json;
  createdAt: string;
}

export interface RunInput {
  runId?: string;
  modelId: string;
  prompt: string;
  tokenIds: readonly number[];
  tokens: readonly string[];
  meta?: unknown;
}

export interface RunRecord {
  runId: string;
  modelId: string;
  prompt: string;
  tokenIds: number[];
  tokens: string[];
  createdAt: string;
  meta: Json;
}

export interface ActivationInput {
  runId: string;
  /** Full hook name, e.g. "blocks.3.hook_resid_post". */
  hook: string;
  /** Defaults to the block index parsed from the hook name (null for non-block hooks). */
  layer?: number | null;
  position: number;
  /** Head or expert index; null/omitted when the hook has none. */
  component?: number | null;
  vec: Float32Array | readonly number[];
}

export interface ActivationRecord {
  runId: string;
  hook: string;
  layer: number | null;
  position: number;
  component: number | null;
  vec: Float32Array;
  norm: number;
}

export interface ActivationFilter {
  runId?: string | readonly string[];
  hook?: string | readonly string[];
  layer?: number | readonly number[];
  position?: number | readonly number[];
  /** A number, a list, or null for rows without a component. Omitted = any. */
  component?: number | readonly number[] | null;
  /** Cap on rows returned (default 100000). */
  limit?: number;
}

export interface ExperimentInput {
  experimentId?: string;
  kind: string;
  modelId?: string | null;
  params?: unknown;
  metric?: string | null;
  cleanValue?: number | null;
  corruptedValue?: number | null;
  summary?: unknown;
}

export interface ExperimentRecord {
  experimentId: string;
  kind: string;
  modelId: string | null;
  params: Json;
  metric: string | null;
  cleanValue: number | null;
  corruptedValue: number | null;
  summary: Json;
  createdAt: string;
}

export interface ResultInput {
  /** Optional when passed to addExperiment (filled with the new id). */
  experimentId?: string;
  site: string;
  hook?: string | null;
  layer?: number | null;
  position?: number | null;
  component?: number | null;
  neuron?: number | null;
  value: number | null;
  /** Defaults to (value - corrupted) / (clean - corrupted) from the experiment, or null when undefined. */
  effect?: number | null;
  extra?: unknown;
}

export interface ResultRecord {
  experimentId: string;
  site: string;
  hook: string | null;
  layer: number | null;
  position: number | null;
  component: number | null;
  neuron: number | null;
  value: number | null;
  effect: number | null;
  extra: Json;
}

export interface VectorInput {
  name: string;
  kind: string;
  modelId?: string | null;
  hook?: string | null;
  /** Defaults to the block index parsed from hook. */
  layer?: number | null;
  vec: Float32Array | readonly number[];
  meta?: unknown;
}

export interface VectorRecord {
  name: string;
  kind: string;
  modelId: string | null;
  hook: string | null;
  layer: number | null;
  vec: Float32Array;
  meta: Json;
  createdAt: string;
}

export interface FindingInput {
  findingId?: string;
  title: string;
  path?: string | null;
  body: string;
  experimentIds?: readonly string[];
  runIds?: readonly string[];
}

export interface FindingRecord {
  findingId: string;
  title: string;
  path: string | null;
  body: string;
  experimentIds: string[];
  runIds: string[];
  createdAt: string;
}

export interface QueryOptions {
  /** Rows returned at most (default 200, capped at 10000). */
  maxRows?: number;
  /** Wall-clock limit; the query is interrupted after it, reading the rows included (default 10000). */
  timeoutMs?: number;
  /** Byte budget of the rows returned, estimated as JSON (default 4 MB, capped at 64 MB). */
  maxBytes?: number;
}

export interface QueryResult {
  columns: { name: string; type: string }[];
  /** Row-major values aligned with columns, JSON-safe. */
  rows: Json[][];
  /** True when a limit cut the result (maxRows rows, or the maxBytes budget); `cut` names it. */
  truncated: boolean;
  /** The limit that cut the result: which, its value and a sentence saying so; null when complete. */
  cut: { limit: 'maxRows' | 'maxBytes'; value: number; message: string } | null;
  /** Number of rows returned (rows.length). */
  rowCount: number;
  /** Estimated JSON bytes of the rows returned. */
  bytes: number;
}

/** A sparse dictionary's row in the saes table (its weights are the SAELens files in `path`). */
export interface SaeInput {
  saeId?: string;
  modelId?: string | null;
  hook: string;
  hookOut?: string | null;
  architecture: string;
  dIn: number;
  dSae: number;
  k?: number | null;
  path: string;
  metrics?: unknown;
}

export interface SaeRecord {
  saeId: string;
  modelId: string | null;
  hook: string;
  hookOut: string | null;
  architecture: string;
  dIn: number;
  dSae: number;
  k: number | null;
  path: string;
  metrics: Json;
  createdAt: string;
}

/** One active latent at one position of one run. */
export interface SaeLatentInput {
  runId: string;
  saeId: string;
  position: number;
  latent: number;
  value: number;
}
