// Request limits, in one place. Every face (MCP server, agent, CLI) refuses requests beyond these
// with a message that names the limit, so a language model can shrink its request and retry.
import { ToolError } from './define.ts';

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
  constructor(readonly limit: LimitName, message: string) {
    super(`${message} (limit ${limit} = ${LIMITS[limit]}, set in tools/limits.ts)`);
    this.name = 'LimitError';
  }
}

/** Top-level argument keys whose text has its own, larger limit (write_finding's markdown: maxFindingBytes). */
const OWN_LIMIT_KEYS = new Set(['markdown']);

/** Argument keys whose strings are prompts fed to the model (at any depth of the arguments). */
const PROMPT_KEYS = new Set([
  'prompt', 'prompts', 'clean', 'corrupted', 'reference', 'positive', 'negative',
  'text', 'texts', 'examples', 'dataset', 'queries', 'query_prompts', 'contrast', 'math', 'code', 'prose', 'domains',
]);

/** Every prompt string in args: strings under a prompt key, at any depth. */
export function promptStrings(args: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown, inPrompt: boolean, depth: number): void => {
    if (depth > 8) return;
    if (typeof v === 'string') {
      if (inPrompt) out.push(v);
    } else if (Array.isArray(v)) {
      for (const x of v) walk(x, inPrompt, depth + 1);
    } else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) walk(x, inPrompt || PROMPT_KEYS.has(k), depth + 1);
    }
  };
  walk(args, false, 0);
  return out;
}

/** The largest prompt list of the call (the batch a sweep runs). */
function batchSize(args: Record<string, unknown>): number {
  let n = 0;
  for (const k of ['prompts', 'clean', 'corrupted', 'texts', 'examples', 'dataset']) {
    const v = args[k];
    if (Array.isArray(v)) n = Math.max(n, v.length);
  }
  if (n === 0 && typeof args.prompt === 'string') n = 1;
  return n;
}

/** Layers a call touches: an explicit list, one layer, the layers named in hook patterns, or all. */
function layerCount(args: Record<string, unknown>, numLayers: number): number {
  if (Array.isArray(args.layers)) return args.layers.length;
  if (typeof args.layer === 'number') return 1;
  if (Array.isArray(args.hooks)) {
    const layers = new Set<number>();
    for (const h of args.hooks) {
      if (typeof h !== 'string') continue;
      const m = /^blocks\.(\d+|\*)\./.exec(h);
      if (!m) continue;
      if (m[1] === '*') return numLayers;
      layers.add(Number(m[1]));
    }
    return Math.max(1, layers.size);
  }
  return numLayers;
}

/**
 * Refuses oversized requests before any work is done: argument size, string length, prompt count,
 * total tokens, and sweep size (layers x positions x batch). `countTokens` tokenises one prompt.
 */
export function checkRequestLimits(
  tool: string,
  args: unknown,
  model: { numLayers: number; countTokens: (text: string) => number },
): void {
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
  if (!args || typeof args !== 'object' || Array.isArray(args)) return; // the schema reports the shape
  const prompts = promptStrings(args);
  if (prompts.length > LIMITS.maxPromptsPerCall) {
    throw new LimitError('maxPromptsPerCall', `${tool}: this call has ${prompts.length} prompts; split it into smaller calls`);
  }
  let tokens = 0;
  let longestPrompt = 0;
  for (const p of prompts) {
    let n: number;
    try {
      n = model.countTokens(p);
    } catch {
      n = 0; // the tool itself reports untokenisable prompts
    }
    tokens += n;
    longestPrompt = Math.max(longestPrompt, n);
    if (tokens > LIMITS.maxTokensPerCall) break;
  }
  if (tokens > LIMITS.maxTokensPerCall) {
    throw new LimitError('maxTokensPerCall', `${tool}: the prompts of this call have more than ${LIMITS.maxTokensPerCall} tokens in total; use fewer or shorter prompts`);
  }
  const a = args as Record<string, unknown>;
  const batch = batchSize(a);
  if (batch > 0) {
    const layers = layerCount(a, model.numLayers);
    const positions = Array.isArray(a.positions) ? a.positions.length : longestPrompt;
    const cells = layers * Math.max(1, positions) * batch;
    if (cells > LIMITS.maxSweepCells) {
      throw new LimitError('maxSweepCells', `${tool}: layers x positions x batch = ${layers} x ${positions} x ${batch} = ${cells}; narrow the layers or positions, or use fewer prompts`);
    }
  }
  if (typeof a.maxNewTokens === 'number' && a.maxNewTokens > LIMITS.maxNewTokens) {
    throw new LimitError('maxNewTokens', `${tool}: maxNewTokens ${a.maxNewTokens} is too many`);
  }
}
