// Running the tool calls a model asked for, through MCP, one at a time. A malformed call (no name,
// an unknown tool, arguments that are not a JSON object) runs nothing and is answered with an error
// the model can act on; so are tool errors. Every call gets exactly one tool message back, also when
// the budget is spent or the user cancels, so the conversation stays valid for the next request.
import type { ChatMessage, ToolCallRecord } from './llm/types.ts';
import type { McpToolbox, ToolProgressEvent } from './mcp.ts';

export interface ToolStartEvent {
  id: string;
  name: string;
  args: Record<string, unknown>;
}

export interface ToolEndEvent extends ToolStartEvent {
  ok: boolean;
  text: string;
  /** The typed result (null for errors and calls that did not run). */
  structured?: Record<string, unknown> | null;
  ms: number;
  experimentIds: string[];
  runIds: string[];
}

export interface ToolHandlers {
  onToolStart?: (e: ToolStartEvent) => void;
  onToolEnd?: (e: ToolEndEvent) => void;
  onProgress?: (e: ToolProgressEvent & { id: string; name: string }) => void;
}

export interface ExecutedCall {
  id: string;
  name: string;
  rawArguments: string;
  /** Parsed arguments (null when they were not a JSON object). */
  args: Record<string, unknown> | null;
  /** Whether the tool ran (false for malformed, unknown, over-budget and cancelled calls). */
  ran: boolean;
  ok: boolean;
  text: string;
  /** The typed result (null when the call did not run or failed). */
  structured: Record<string, unknown> | null;
  ms: number;
  experimentIds: string[];
  runIds: string[];
}

export interface ExecuteOptions extends ToolHandlers {
  signal?: AbortSignal;
  /** Calls that may still run (budget); the rest are answered "not run". Default: no limit. */
  remaining?: number;
  /** Characters of a result the model gets (the store keeps everything). */
  maxResultChars?: number;
  /** Tools this caller may not use, with the reason. */
  refuse?: (name: string) => string | null;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length];
}

export function closestName(name: string, names: string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const n of names) {
    const dist = editDistance(name.toLowerCase(), n.toLowerCase());
    if (dist < bestD) {
      bestD = dist;
      best = n;
    }
  }
  return best && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

/** Arguments text -> object, or an error message for the model. Empty text means no arguments. */
export function parseArguments(text: string): { args: Record<string, unknown> } | { error: string } {
  if (text.trim() === '') return { args: {} };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const shown = text.length > 300 ? `${text.slice(0, 300)}…` : text;
    return { error: `the arguments are not valid JSON (${(e as Error).message}): ${shown}` };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { error: `the arguments must be a JSON object, got ${Array.isArray(v) ? 'an array' : typeof v}` };
  return { args: v as Record<string, unknown> };
}

export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}\n… (${text.length - max} more characters cut; the full result is in the store: query it with query_activations)`;
}

export async function executeToolCalls(calls: ToolCallRecord[], toolbox: McpToolbox, o: ExecuteOptions = {}): Promise<{ messages: ChatMessage[]; executed: ExecutedCall[]; aborted: boolean }> {
  const messages: ChatMessage[] = [];
  const executed: ExecutedCall[] = [];
  let remaining = o.remaining ?? Infinity;
  let aborted = false;
  const max = o.maxResultChars ?? 24_000;
  for (const call of calls) {
    const name = call.function.name;
    const raw = call.function.arguments;
    const base = { id: call.id, name, rawArguments: raw, ms: 0, structured: null, experimentIds: [] as string[], runIds: [] as string[] };
    const answer = (text: string) => messages.push({ role: 'tool', tool_call_id: call.id, content: text });
    const notRun = (why: string, args: Record<string, unknown> | null = null) => {
      executed.push({ ...base, args, ran: false, ok: false, text: why });
      answer(`Error: ${why}`);
    };
    if (aborted || o.signal?.aborted) {
      aborted = true;
      notRun('cancelled by the user before it ran');
      continue;
    }
    if (!name) {
      notRun('this tool call has no function name. Nothing was run; call one of the listed tools by name.');
      continue;
    }
    if (!toolbox.has(name)) {
      const near = closestName(name, toolbox.names());
      notRun(`there is no tool "${name}". Nothing was run.${near ? ` Did you mean "${near}"?` : ''} The tools are: ${toolbox.names().join(', ')}.`);
      continue;
    }
    const parsed = parseArguments(raw);
    if ('error' in parsed) {
      notRun(`${parsed.error}. Nothing was run; call ${name} again with a JSON object of arguments.`);
      continue;
    }
    const refusal = o.refuse?.(name);
    if (refusal) {
      notRun(refusal, parsed.args);
      continue;
    }
    if (remaining <= 0) {
      notRun('not run: the tool-call budget is spent. Answer with what has been measured so far.', parsed.args);
      continue;
    }
    remaining--;
    o.onToolStart?.({ id: call.id, name, args: parsed.args });
    let outcome;
    try {
      outcome = await toolbox.call(name, parsed.args, {
        signal: o.signal,
        onProgress: o.onProgress ? (p) => o.onProgress!({ ...p, id: call.id, name }) : undefined,
      });
    } catch (e) {
      if (!o.signal?.aborted) throw e;
      aborted = true;
      const text = `${name} was cancelled by the user while it ran`;
      executed.push({ ...base, args: parsed.args, ran: true, ok: false, text });
      o.onToolEnd?.({ id: call.id, name, args: parsed.args, ok: false, text, ms: 0, experimentIds: [], runIds: [] });
      answer(`Error: ${text}`);
      continue;
    }
    executed.push({ ...base, args: parsed.args, ran: true, ...outcome });
    o.onToolEnd?.({ id: call.id, name, args: parsed.args, ...outcome });
    answer(outcome.ok ? clip(outcome.text, max) : `Error: ${outcome.text}`);
  }
  return { messages, executed, aborted };
}
