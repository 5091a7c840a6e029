// Request limits, in one place. Every face (MCP server, agent, CLI) refuses requests beyond these
// with a message that names the limit, so a language model can shrink its request and retry.
import { ToolError } from './errors.ts';

export const LIMITS = {
  /** Bytes of JSON arguments of one tool call (and of one HTTP request body). */
  maxRequestBytes: 1_000_000,
  /** Characters of any single string argument. */
  maxStringChars: 100_000,
  /** Prompts in one call (over every prompt list of the call: prompts, clean, corrupted, reference...). */
  maxPromptsPerCall: 512,
  /** Tokens in one call, summed over every prompt of the call. */
  maxTokensPerCall: 32_768,
  /** Work of one sweep: layers x positions x batch (prompts), see sweepCells. */
  maxSweepCells: 500_000,
  /** New tokens one generate call may produce. */
  maxNewTokens: 512,
  /** Rows the SQL tool returns at most (default 100). */
  maxSqlRows: 2_000,
  defaultSqlRows: 100,
  /** Time a SQL query may run, in milliseconds (default 10 s). */
  maxSqlTimeoutMs: 30_000,
  defaultSqlTimeoutMs: 10_000,
  /** Bytes (estimated as JSON) of one SQL result; rows past it are cut (default 4 MB). */
  maxSqlResultBytes: 16_000_000,
  defaultSqlResultBytes: 4_000_000,
  /** Bytes of one Markdown finding (write_finding's markdown is exempt from maxStringChars; this,
   *  inside maxRequestBytes of JSON, is its limit). */
  maxFindingBytes: 500_000,
  /** Cells of a grid shown inline in a tool result; larger grids are cut (full data stays in the store). */
  maxTableCells: 5_000,
} as const;

export type LimitName = keyof typeof LIMITS;

export class LimitError extends ToolError {
  constructor(readonly limit: string, message: string, value: number = LIMITS[limit as LimitName]) {
    super(`${message} (limit ${limit} = ${value}${limit in LIMITS ? ', set in tools/limits.ts' : ", declared in the tool's limits"})`);
    this.name = 'LimitError';
  }
}

/**
 * The sizes a tool declares (next to its schemas, in its definition), checked on the parsed
 * arguments before any work. Paths name arguments: `prompts`, `vector.positive`, `examples.*.prompt`
 * (`*`: every element of a list or value of a record).
 */
export interface ToolLimits {
  /** Where the prompt text fed to the model is: counted against maxPromptsPerCall and maxTokensPerCall. */
  prompts?: readonly string[];
  /** A smaller prompt cap for this tool. */
  maxPrompts?: number;
  /**
   * The sweep a call runs, layers x positions x batch <= maxSweepCells: the batch (prompt paths; the
   * largest counts), the layers (a list, one layer, or hook names/patterns; absent = every layer) and
   * the positions (a list; absent or "all" = the longest prompt).
   */
  sweep?: { batch: readonly string[]; layers?: readonly string[]; hooks?: string; positions?: string };
  /** Site lists and the most entries each may have in one call, e.g. { components: 512 }. */
  sites?: Readonly<Record<string, number>>;
}

/** The values at `path` of parsed arguments (lists are flattened at the end of the path). */
export function valuesAt(args: unknown, path: string): unknown[] {
  let here: unknown[] = [args];
  for (const key of path.split('.')) {
    here = here.flatMap((v) => {
      if (v === null || typeof v !== 'object') return [];
      if (key === '*') return Array.isArray(v) ? v : Object.values(v);
      const next = (v as Record<string, unknown>)[key];
      return next === undefined ? [] : [next];
    });
  }
  return here.flatMap((v) => (Array.isArray(v) ? v : [v]));
}

const strings = (args: unknown, paths: readonly string[]): string[] => paths.flatMap((p) => valuesAt(args, p)).filter((v): v is string => typeof v === 'string');

/** Layers named by hooks: their count, or null when a pattern has * in the layer (every layer). */
function hookLayers(hooks: unknown[]): number | null {
  const layers = new Set<number>();
  for (const h of hooks) {
    if (typeof h !== 'string' || !h.startsWith('blocks.')) continue;
    const layer = h.split('.')[1];
    if (layer.includes('*')) return null;
    layers.add(Number(layer));
  }
  return Math.max(1, layers.size);
}

/**
 * Refuses a call whose parsed arguments exceed the tool's declared limits: prompt count, total
 * tokens, sweep size and site-list lengths, each error naming the limit.
 */
export function checkToolLimits(tool: string, limits: ToolLimits, args: unknown, model: { numLayers: number; countTokens: (text: string) => number }): void {
  for (const [path, max] of Object.entries(limits.sites ?? {})) {
    const n = valuesAt(args, path).length;
    if (n > max) throw new LimitError(`${tool}.${path}`, `${tool}: ${path} has ${n} entries; give at most ${max} in one call`, max);
  }
  const prompts = strings(args, limits.prompts ?? []);
  const maxPrompts = limits.maxPrompts ?? LIMITS.maxPromptsPerCall;
  if (prompts.length > maxPrompts) {
    throw new LimitError(limits.maxPrompts ? `${tool}.maxPrompts` : 'maxPromptsPerCall', `${tool}: this call has ${prompts.length} prompts; split it into smaller calls`, maxPrompts);
  }
  let tokens = 0;
  let longestPrompt = 0;
  for (const p of prompts) {
    let n: number;
    try {
      n = model.countTokens(p);
    } catch {
      n = 0; // the tool itself reports prompts it cannot encode
    }
    tokens += n;
    longestPrompt = Math.max(longestPrompt, n);
    if (tokens > LIMITS.maxTokensPerCall) {
      throw new LimitError('maxTokensPerCall', `${tool}: the prompts of this call have more than ${LIMITS.maxTokensPerCall} tokens in total; use fewer or shorter prompts`);
    }
  }
  const sweep = limits.sweep;
  if (!sweep) return;
  const batch = Math.max(0, ...sweep.batch.map((p) => valuesAt(args, p).length));
  const layerValues = (sweep.layers ?? []).map((p) => valuesAt(args, p)).find((v) => v.length > 0);
  const layers = layerValues?.length ?? (sweep.hooks ? hookLayers(valuesAt(args, sweep.hooks)) : null) ?? model.numLayers;
  const given = sweep.positions ? valuesAt(args, sweep.positions) : [];
  const positions = given.length && given[0] !== 'all' ? given.length : longestPrompt;
  const cells = layers * Math.max(1, positions) * batch;
  if (cells > LIMITS.maxSweepCells) {
    throw new LimitError('maxSweepCells', `${tool}: layers x positions x batch = ${layers} x ${positions} x ${batch} = ${cells}; narrow the layers or positions, or use fewer prompts`);
  }
}

/**
 * Refuses oversized requests before they are parsed, whatever the tool: bytes of JSON, nesting
 * and the length of any one string (write_finding's markdown has its own, larger limit).
 */
export function checkRequestSize(tool: string, args: unknown): void {
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(args ?? {}));
  } catch {
    throw new ToolError(`${tool}: arguments are not JSON-serialisable`);
  }
  if (bytes > LIMITS.maxRequestBytes) throw new LimitError('maxRequestBytes', `${tool}: the arguments are ${bytes} bytes of JSON`);
  let longest = 0;
  const walk = (v: unknown, depth: number): void => {
    if (depth > 32) throw new ToolError(`${tool}: arguments nest deeper than 32 levels`);
    if (typeof v === 'string') longest = Math.max(longest, v.length);
    else if (Array.isArray(v)) v.forEach((x) => walk(x, depth + 1));
    else if (v && typeof v === 'object') Object.entries(v).forEach(([k, x]) => depth === 0 && OWN_LIMIT_KEYS.has(k) ? undefined : walk(x, depth + 1));
  };
  walk(args, 0);
  if (longest > LIMITS.maxStringChars) throw new LimitError('maxStringChars', `${tool}: one string argument has ${longest} characters`);
}

/** Top-level argument keys whose text has its own, larger limit (write_finding's markdown: maxFindingBytes). */
const OWN_LIMIT_KEYS = new Set(['markdown']);
