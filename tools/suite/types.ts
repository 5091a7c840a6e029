// What each standard experiment produces: a Markdown report with plots, ids and SQL, a machine-
// readable conclusion, and (on gpt-oss-tiny) a score against the manifest's ground truth.
import type { TopLevelSpec } from 'vega-lite';
import type { ToolContext } from '../define.ts';
import type { SuitePrompts } from './prompts.ts';

export interface Plot {
  file: string;
  title: string;
  /** The Vega-Lite spec the SVG was rendered from (written beside it as <name>.vl.json). */
  spec: TopLevelSpec;
  svg: string;
}

export interface ScoreLine {
  claim: string;
  found: string;
  planted: string;
  ok: boolean;
}

export interface ExperimentReport {
  slug: string;
  title: string;
  question: string;
  method: string;
  parameters: Record<string, unknown>;
  /** Markdown body: results tables and plot references (plots are written beside the report). */
  body: string;
  plots: Plot[];
  conclusion: string;
  /** Structured conclusion, read by scoring and the scale experiment. */
  found: Record<string, unknown>;
  experimentIds: string[];
  runIds: string[];
  /** Queries that return the report's numbers, each scoped to this run's experiment or run ids. */
  reproduce: Reproduce[];
  score?: ScoreLine[];
}

/**
 * One query behind a report's numbers. `expect` holds, per result column, the values the report
 * prints, in the query's row order: a test runs every query on a store holding several suite runs
 * and compares.
 */
export interface Reproduce {
  /** What the query reproduces ("the head patching grid"). */
  what: string;
  sql: string;
  /** The DuckDB file it runs on when not the suite's own store (the compared model keeps its own). */
  store?: string;
  expect: Record<string, (number | string)[]>;
}

export interface SuiteEnv {
  ctx: ToolContext;
  prompts: SuitePrompts;
  modelName: string;
  /** Opens the model to compare sizes with (circuit growth); throws NotRunnable when there is none. */
  openOther?: () => Promise<{ ctx: ToolContext; prompts: SuitePrompts; modelName: string; modelDir?: string; close: () => Promise<void> }>;
  step: (message: string) => void;
}

export interface Experiment {
  id: number;
  slug: string;
  title: string;
  run: (env: SuiteEnv) => Promise<ExperimentReport>;
}
