// What the built-in protocols share: a recorder that calls tools through MCP (counting them against
// the budget and keeping every experiment id, run id and SQL query for the finding), result parsing,
// and the Markdown pieces of a finding.
import { parseStepResult, type StepArgs, type StepResult, type StepTool, type ToolPort } from '../../tools/suite/port.ts';
import type { SuitePrompts } from '../../tools/suite/prompts.ts';
import { queryActivationsTool } from '../../tools/store-tools.ts';
import { McpToolError, type McpToolbox } from '../mcp.ts';
import type { ToolHandlers } from '../tool-exec.ts';

export type Phenomenon = 'ioi' | 'induction' | 'successor' | 'sentiment' | 'entanglement';

export interface ProtocolEnv {
  toolbox: McpToolbox;
  prompts: SuitePrompts;
  /** model_info summary line. */
  modelLine: string;
  signal?: AbortSignal;
  /** Tool calls this protocol may make. */
  budget: number;
  /** Deadline (ms since epoch), or Infinity. */
  deadline: number;
  step: (message: string) => void;
  handlers?: ToolHandlers;
}

export interface ExperimentRecord {
  step: string;
  tool: string;
  args: Record<string, unknown>;
  experimentId: string | null;
  runIds: string[];
  /** One line: the numbers this step produced. */
  summary: string;
}

export interface ProtocolReport {
  phenomenon: Phenomenon;
  title: string;
  question: string;
  hypothesis: string;
  method: string;
  /** Markdown results sections. */
  body: string;
  conclusion: string;
  caveats: string[];
  /** Machine-readable conclusions (e.g. nameMovers) for callers and tests. */
  found: Record<string, unknown>;
  experiments: ExperimentRecord[];
  sql: string[];
  /** Set when the budget or time ran out before the protocol finished. */
  stoppedEarly?: string;
}

export class BudgetSpent extends Error {}

export type SqlScalar = string | number | null;

let callSeq = 0;

export class Recorder {
  readonly experiments: ExperimentRecord[] = [];
  readonly sql: string[] = [];
  calls = 0;

  constructor(private readonly env: ProtocolEnv) {}

  private check(): void {
    if (this.env.signal?.aborted) throw this.env.signal.reason ?? new DOMException('aborted', 'AbortError');
    if (this.calls >= this.env.budget) throw new BudgetSpent(`the tool-call budget (${this.env.budget}) is spent`);
    if (Date.now() > this.env.deadline) throw new BudgetSpent('the time budget is spent');
  }

  /** Calls a tool through MCP; returns its structured result (throws McpToolError with the server's message). */
  async call(tool: string, args: Record<string, unknown>): Promise<{ data: Record<string, unknown>; text: string; experimentId: string | null; runIds: string[] }> {
    this.check();
    this.calls++;
    const id = `protocol_${++callSeq}`;
    const h = this.env.handlers;
    h?.onToolStart?.({ id, name: tool, args });
    const r = await this.env.toolbox.callParsed(tool, args, {
      signal: this.env.signal,
      onProgress: h?.onProgress ? (p) => h.onProgress!({ ...p, id, name: tool }) : undefined,
    }).catch((e) => {
      if (e instanceof McpToolError) h?.onToolEnd?.({ id, name: tool, args, ok: false, text: e.message, ms: 0, experimentIds: [], runIds: [] });
      throw e;
    });
    h?.onToolEnd?.({ id, name: tool, args, ok: true, text: r.text, ms: r.outcome.ms, experimentIds: r.outcome.experimentIds, runIds: r.outcome.runIds, structured: r.data });
    const data = r.data;
    const runIds = flatRunIds(data.runIds);
    return { data, text: r.text, experimentId: typeof data.experimentId === 'string' ? data.experimentId : null, runIds: runIds.length ? runIds : r.outcome.runIds };
  }

  /** A tool call that is one experiment of the finding; its structured result typed (and checked) by the tool's output schema. */
  async experiment<N extends StepTool>(step: string, tool: N, args: StepArgs<N>, summarise: (data: StepResult<N>) => string = () => '') {
    this.env.step(step);
    const r = await this.call(tool, args as Record<string, unknown>);
    const data = parseStepResult(tool, r.data);
    this.experiments.push({ step, tool, args: args as Record<string, unknown>, experimentId: r.experimentId, runIds: r.runIds, summary: summarise(data) });
    return { data, text: r.text, experimentId: r.experimentId, runIds: r.runIds };
  }

  /** The port the shared experiment steps (tools/suite/steps.ts) call tools through: each call is an experiment of the finding. */
  port(): ToolPort {
    return { call: async (step, tool, args) => (await this.experiment(step, tool, args, (d) => stepSummary(d as Record<string, unknown>))).data };
  }

  /**
   * Read-only SQL through query_activations; rows as records by column name (the protocols select
   * scalar columns, so each value is a string, a number or null). Kept for the finding when `cite`.
   */
  async query(sql: string, opts: { cite?: boolean; maxRows?: number } = {}): Promise<Record<string, SqlScalar>[]> {
    const r = queryActivationsTool.output.parse((await this.call('query_activations', { sql, maxRows: opts.maxRows ?? 2000 })).data);
    if (opts.cite ?? true) this.sql.push(sql);
    const scalar = (v: unknown): SqlScalar => (v === null || v === undefined ? null : typeof v === 'number' || typeof v === 'string' ? v : typeof v === 'bigint' || typeof v === 'boolean' ? Number(v) : JSON.stringify(v));
    return r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c.name, scalar(row[i])])));
  }

  /** The results rows of an experiment, largest effect first. */
  async results(experimentId: string, opts: { order?: string; cite?: boolean } = {}): Promise<{ site: string; layer: number | null; position: number | null; component: number | null; effect: number; value: number }[]> {
    const rows = await this.query(
      `SELECT site, layer, position, component, effect, value FROM results WHERE experiment_id = '${experimentId}' ORDER BY ${opts.order ?? 'effect DESC'}`,
      { cite: opts.cite },
    );
    const num = (v: unknown) => (v === undefined || v === null || v === '' ? null : Number(v));
    return rows.map((r) => ({ site: String(r.site), layer: num(r.layer), position: num(r.position), component: num(r.component), effect: Number(r.effect), value: Number(r.value) }));
  }
}

/** One line for the finding's experiment table from the fields a result has (clean/corrupted, circuit, ablation). */
function stepSummary(d: Record<string, unknown>): string {
  const n = (k: string) => num(Number(d[k]));
  if (typeof d.size === 'number' && typeof d.candidates === 'number') return `${d.size} of ${d.candidates} keep ${pct(Number(d.share))}`;
  if (typeof d.clean === 'number' && typeof d.corrupted === 'number') return `clean ${n('clean')}, corrupted ${n('corrupted')}`;
  if (typeof d.summary === 'string') return d.summary;
  return '';
}

function flatRunIds(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string' && x.startsWith('run_'));
  if (v && typeof v === 'object') return Object.values(v).flatMap(flatRunIds);
  return [];
}

export const num = (x: number | null | undefined, digits = 2): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : Math.abs(x) >= 1000 ? x.toFixed(0) : x.toFixed(digits);

export const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : '–');

export function mdTable(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cell = (v: string | number | null | undefined) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : num(v, 3)) : (v ?? '–')).toString().replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [`| ${headers.join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

/** `n` control components: the ones with the smallest |effect|, preferring the layers of `near`. */
export function controls(rows: { site: string; layer: number | null; effect: number }[], exclude: string[], n: number, nearLayers: number[] = []): string[] {
  const pool = rows.filter((r) => !exclude.includes(r.site));
  const score = (r: { layer: number | null; effect: number }) => Math.abs(r.effect) + (r.layer !== null && nearLayers.includes(r.layer) ? 0 : 1e-3);
  return pool.sort((a, b) => score(a) - score(b)).slice(0, n).map((r) => r.site);
}

export interface AblationOutcome {
  before: number;
  after: number;
  /** (before - after) / before; NaN where the metric has no relative drop (shown as –). */
  relativeDrop: number;
  experimentId: string | null;
}

/** Ablates components on the prompts and returns the metric before/after. */
export async function ablation(rec: Recorder, step: string, args: StepArgs<'ablate'>): Promise<AblationOutcome> {
  const r = await rec.experiment(step, 'ablate', { each: false, ...args }, (d) => `${(args.components ?? []).join(', ')}: ${num(d.before)} -> ${num(d.after)} (${pct(d.relativeDrop ?? Number.NaN)} drop)`);
  return { before: r.data.before, after: r.data.after, relativeDrop: r.data.relativeDrop ?? Number.NaN, experimentId: r.experimentId };
}

export interface RoleScores {
  /** The best heads for the role (at most `top`), best first; ties in layer/head order. */
  top: { head: string; score: number }[];
  /** Mean over every head scored. */
  baseline: number;
}

/** Per-role best heads and baseline of an attention_patterns experiment, from its results rows (one per head x role). */
export async function roleScores(rec: Recorder, experimentId: string, top = 6): Promise<Map<string, RoleScores>> {
  // Ranked in SQL so the rows read stay few however many heads the model has.
  const rows = await rec.query([
    `SELECT extra->>'role' AS role, site, value, avg(value) OVER (PARTITION BY extra->>'role') AS baseline`,
    `FROM results WHERE experiment_id = '${experimentId}' AND value IS NOT NULL`,
    `QUALIFY row_number() OVER (PARTITION BY extra->>'role' ORDER BY value DESC, layer, component) <= ${top}`,
    'ORDER BY role, value DESC, layer, component',
  ].join(' '));
  const out = new Map<string, RoleScores>();
  for (const r of rows) {
    const role = String(r.role);
    const s = out.get(role) ?? { top: [], baseline: Number(r.baseline) };
    s.top.push({ head: String(r.site), score: Number(r.value) });
    out.set(role, s);
  }
  return out;
}

/** Heads that clearly have a role: score at least `min` and above the mean over heads. */
export function strongHeads(s: RoleScores | undefined, min = 0.5): { head: string; score: number }[] {
  return s ? s.top.filter((t) => t.score >= min && t.score > s.baseline) : [];
}

export const topHeads = (s: RoleScores | undefined, n = 3): string => (s?.top ?? []).slice(0, n).map((t) => `${t.head} (${num(t.score)})`).join(', ') || '–';

