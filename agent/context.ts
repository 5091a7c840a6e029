// Keeping a conversation under the model's context budget (llm/context-budget.ts), so a long
// unattended investigation never grows past what the model can read. In order, until the request
// fits:
//   1. older tool results become one-line digests that keep the tool, the status and every
//      experiment and run id (the full data stays in the store, reachable with SQL);
//   2. the oldest turns are folded into a running research log (one user message at the start of
//      the history), which keeps what was asked, what was called and every id; when the log itself
//      grows past a quarter of the budget its oldest entries are merged into one line;
//   3. the newest messages (the results the model has not read yet) are clipped evenly.
// The history is plain ChatMessage JSON, so a resumed investigation is fitted the same way.
import { isContextLengthError, requestChars, type ContextBudget } from './llm/context-budget.ts';
import type { ChatMessage, ChatModel, Completion, CompletionRequest, ToolSpec } from './llm/types.ts';
import { idsIn } from './mcp-result.ts';
import { clip } from './tool-exec.ts';

export const LOG_MARK = '(NeuroScope research log:';
const DIGEST_MARK = '[compacted result of ';

export interface FitReport {
  /** Tool results replaced by digests. */
  compacted: number;
  /** Messages folded into the research log. */
  folded: number;
  /** Newest messages clipped to share the room left. */
  clipped: number;
  /** The request's estimated size after fitting. */
  tokens: number;
}

export class ContextTooSmallError extends Error {
  override readonly name = 'ContextTooSmallError';
}

const oneLine = (t: string, n: number): string => {
  const s = t.replace(/\s+/g, ' ').trim();
  return s.length <= n ? s : `${s.slice(0, n)}…`;
};

function idsPhrase(ids: { experimentIds: string[]; runIds: string[] }): string {
  return [ids.experimentIds.length ? `experiments ${ids.experimentIds.join(' ')}` : '', ids.runIds.length ? `runs ${ids.runIds.join(' ')}` : ''].filter(Boolean).join('; ');
}

/** Arguments of a call longer than this are shortened once the call is old (or huge and new). */
const MAX_ARGS_CHARS = 400;

/** Long tool-call arguments as a short JSON object (still valid JSON, as servers expect), or null when short. */
function compactArgs(m: ChatMessage): ChatMessage | null {
  if (m.role !== 'assistant' || !m.tool_calls?.some((c) => c.function.arguments.length > MAX_ARGS_CHARS)) return null;
  return {
    ...m,
    tool_calls: m.tool_calls.map((c) => (c.function.arguments.length <= MAX_ARGS_CHARS ? c : {
      ...c, function: { ...c.function, arguments: JSON.stringify({ compacted: `${c.function.arguments.slice(0, 200)}…`, chars: c.function.arguments.length }) },
    })),
  };
}

const isLog = (m: ChatMessage | undefined): boolean => m?.role === 'user' && m.content.startsWith(LOG_MARK);

/** A tool result in one line: the tool, ok or error, its size, every id it names, and how it starts. */
export function digestToolResult(tool: string, content: string): string {
  if (content.startsWith(DIGEST_MARK)) return content;
  const ids = idsPhrase(idsIn(content));
  const status = content.startsWith('Error:') ? 'error' : 'ok';
  return `${DIGEST_MARK}${tool || 'a tool'} (${status}, ${content.length} chars), to stay within the context budget${ids ? `; ${ids}` : ''}; it began: ${oneLine(content, 160)} — the full data is in the store (query_activations)]`;
}

function toolNames(history: ChatMessage[]): Map<string, string> {
  const names = new Map<string, string>();
  for (const m of history) if (m.role === 'assistant') for (const c of m.tool_calls ?? []) names.set(c.id, c.function.name);
  return names;
}

/** The end (exclusive) of the turn starting at i: a user message alone, or an assistant message with its tool results. */
function turnEnd(h: ChatMessage[], i: number): number {
  let j = i + 1;
  if (h[i].role === 'assistant') while (j < h.length && h[j].role === 'tool') j++;
  return j;
}

/** One log entry for a folded turn. */
function logEntry(turn: ChatMessage[], names: Map<string, string>): string {
  const first = turn[0];
  if (first.role === 'user') return `- user: ${oneLine(first.content, 400)}`;
  if (first.role === 'tool') return `- ${oneLine(digestToolResult(names.get(first.tool_call_id) ?? 'tool', first.content), 300)}`;
  const parts: string[] = [];
  if (first.role === 'assistant' && first.content) parts.push(`model: ${oneLine(first.content, 300)}`);
  const counts = new Map<string, { ok: number; error: number }>();
  for (const m of turn) {
    if (m.role !== 'tool') continue;
    const name = names.get(m.tool_call_id) ?? 'tool';
    const c = counts.get(name) ?? { ok: 0, error: 0 };
    if (m.content.startsWith('Error:') || m.content.startsWith(`${DIGEST_MARK}${name} (error`)) c.error++;
    else c.ok++;
    counts.set(name, c);
  }
  if (counts.size) parts.push(`called ${[...counts].map(([n, c]) => `${n} ×${c.ok + c.error}${c.error ? ` (${c.error} failed)` : ''}`).join(', ')}`);
  const ids = idsPhrase(idsIn(turn.filter((m) => m.role === 'tool').map((m) => (m as { content: string }).content).join('\n')));
  if (ids) parts.push(ids);
  return `- ${parts.join('; ') || 'model: (empty reply)'}`;
}

/** Merges the oldest entries into one line (tool counts and every id) until the log is under maxChars. */
function condenseLog(entries: string[], maxChars: number): string[] {
  const size = (es: string[]) => es.reduce((n, e) => n + e.length + 1, 0);
  if (size(entries) <= maxChars) return entries;
  const keep: string[] = [];
  let room = Math.floor(maxChars / 2);
  for (let i = entries.length - 1; i >= 0 && entries[i].length + 1 <= room; i--) {
    keep.unshift(entries[i]);
    room -= entries[i].length + 1;
  }
  const older = entries.slice(0, entries.length - keep.length);
  let turns = 0;
  const tools = new Map<string, number>();
  for (const e of older) {
    const merged = /^- earlier: (\d+) turns/.exec(e);
    turns += merged ? Number(merged[1]) : 1;
    for (const m of e.matchAll(/([A-Za-z_][\w-]*) ×(\d+)/g)) tools.set(m[1], (tools.get(m[1]) ?? 0) + Number(m[2]));
  }
  const ids = idsIn(older.join('\n'));
  let idText = idsPhrase(ids);
  const idRoom = Math.max(200, Math.floor(maxChars / 2) - 200);
  if (idText.length > idRoom) {
    // Even the ids do not fit: keep the newest, experiments before runs, and say how to list the rest.
    const newest = (xs: string[], room: number) => {
      const out: string[] = [];
      for (let i = xs.length - 1, n = 0; i >= 0 && (n += xs[i].length + 1) <= room; i--) out.unshift(xs[i]);
      return out;
    };
    const exps = newest(ids.experimentIds, idRoom);
    const runs = newest(ids.runIds, idRoom - exps.join(' ').length);
    const dropped = ids.experimentIds.length + ids.runIds.length - exps.length - runs.length;
    idText = `${idsPhrase({ experimentIds: exps, runIds: runs })}; ${dropped} older ids are in the store (SELECT experiment_id, kind FROM experiments; SELECT run_id, prompt FROM runs)`;
  }
  const line = `- earlier: ${turns} turns; called ${[...tools].map(([t, k]) => `${t} ×${k}`).join(', ') || 'no tools'}${idText ? `; ${idText}` : ''}`;
  return [line, ...keep];
}

function logMessage(entries: string[], budget: ContextBudget): ChatMessage {
  return {
    role: 'user',
    content: `${LOG_MARK} earlier turns of this conversation, folded to keep requests within the ${budget.describe()}. Every experiment and run id is kept; their full results are in the store, read them with query_activations.)\n${entries.join('\n')}`,
  };
}

/**
 * The history (messages after `prefix`: system prompt, instructions) fitted under the budget along
 * with the prefix and the tool specs. Returns the same array when it already fits. Throws
 * ContextTooSmallError when even the prefix and the tools leave no room.
 */
export function fitHistory(budget: ContextBudget, prefix: ChatMessage[], history: ChatMessage[], tools?: ToolSpec[]): { history: ChatMessage[]; report: FitReport } {
  const limit = budget.inputChars;
  const report: FitReport = { compacted: 0, folded: 0, clipped: 0, tokens: budget.estimateTokens([...prefix, ...history], tools) };
  if (requestChars([...prefix, ...history], tools) <= limit) return { history, report };
  const fixed = requestChars(prefix, tools);
  if (fixed + 2000 > limit) {
    throw new ContextTooSmallError(`the ${budget.describe()} is too small: the system prompt, instructions and tool descriptions alone take about ${Math.ceil(fixed / budget.charsPerToken)} tokens; raise --context-tokens (NEUROSCOPE_LLM_CONTEXT_TOKENS)`);
  }
  const h = history.slice();
  const names = toolNames(h);
  const size = () => requestChars([...prefix, ...h], tools);
  let cur = size();
  let lastA = h.map((m) => m.role).lastIndexOf('assistant');

  // 1. Older tool results -> digests, and older long arguments shortened, oldest first.
  for (let i = 0; i < lastA && cur > limit; i++) {
    const m = h[i];
    const shorter = compactArgs(m);
    if (shorter) {
      cur += JSON.stringify(shorter).length - JSON.stringify(m).length;
      h[i] = shorter;
      report.compacted++;
    }
    if (m.role !== 'tool' || m.content.startsWith(DIGEST_MARK)) continue;
    const digest = digestToolResult(names.get(m.tool_call_id) ?? 'tool', m.content);
    cur += JSON.stringify(digest).length - JSON.stringify(m.content).length;
    h[i] = { ...m, content: digest };
    report.compacted++;
  }

  // 2. The oldest turns -> the research log.
  if (cur > limit) {
    let entries = isLog(h[0]) ? (h[0].content as string).split('\n').slice(1) : [];
    let start = isLog(h[0]) ? 1 : 0;
    while (cur > limit && start < lastA) {
      const end = turnEnd(h, start);
      if (end > lastA) break;
      entries.push(logEntry(h.slice(start, end), names));
      h.splice(start, end - start);
      report.folded += end - start;
      lastA -= end - start;
      entries = condenseLog(entries, Math.floor(limit / 4));
      if (start === 0) {
        h.unshift(logMessage(entries, budget));
        start = 1;
        lastA++;
      } else h[0] = logMessage(entries, budget);
      cur = size();
    }
  }

  // 3. The newest messages (after the last assistant message) share what room is left; the last
  // call's own long arguments are shortened first.
  const shorter = lastA >= 0 && cur > limit ? compactArgs(h[lastA]) : null;
  if (shorter) {
    h[lastA] = shorter;
    report.compacted++;
    cur = size();
  }
  // Clipping notes and the ids they keep make the size after a pass inexact, so passes repeat from the
  // new overshoot, down to a harder floor when many results share little room (e.g. 30 results
  // beside a long tool list), until the request fits or nothing shrinks.
  for (const floor of [200, 60, 60, 60]) {
    if (cur <= limit) break;
    const before = cur;
    const latest = h.map((m, i) => ({ m, i })).filter(({ m, i }) => i > lastA && (m.role === 'tool' || (m.role === 'user' && !isLog(m))));
    const total = latest.reduce((n, { m }) => n + (m.content as string).length, 0);
    const room = total - (cur - limit) - 300 * latest.length;
    const each = Math.max(floor, Math.floor(room / Math.max(1, latest.length)));
    for (const { m, i } of latest) {
      const text = m.content as string;
      if (text.length <= each) continue;
      h[i] = { ...m, content: clip(text, each, 'to fit the context budget') } as ChatMessage;
      report.clipped++;
    }
    cur = size();
    if (cur >= before) break;
  }
  // 4. Still over (the newest results are at their floor): the research log gives up the rest.
  if (cur > limit && isLog(h[0])) {
    const entries = (h[0].content as string).split('\n').slice(1);
    const logChars = entries.reduce((n, e) => n + e.length + 1, 0);
    h[0] = logMessage(condenseLog(entries, Math.max(400, logChars - (cur - limit) - 200)), budget);
    cur = size();
  }
  report.tokens = Math.ceil(cur / budget.charsPerToken);
  if (cur > limit) {
    throw new ContextTooSmallError(`the conversation cannot be fitted into the ${budget.describe()} (about ${report.tokens} tokens after compacting); raise --context-tokens (NEUROSCOPE_LLM_CONTEXT_TOKENS)`);
  }
  return { history: h, report };
}

/** One line for people about what fitting did, or null when nothing was changed. */
export function fitNote(r: FitReport, budget: ContextBudget): string | null {
  if (!r.compacted && !r.folded && !r.clipped) return null;
  const parts = [r.compacted ? `${r.compacted} older tool result(s) summarised` : '', r.folded ? `${r.folded} message(s) folded into the research log` : '', r.clipped ? `${r.clipped} new result(s) clipped` : ''].filter(Boolean);
  return `context: ${parts.join(', ')}; the request is now about ${r.tokens.toLocaleString('en-US')} of ${budget.inputTokens.toLocaleString('en-US')} tokens`;
}

/** Text that must fit in `maxChars`: long text is clipped with a note that keeps every id. */
export function fitText(text: string, maxChars: number): string {
  return clip(text, Math.max(200, maxChars), 'to fit the context budget');
}

/**
 * The system message and a one-off prompt (a step of the loop) whose one long part is cut so that
 * the request fits the budget. JSON escaping (newlines, quotes) and the clip note are counted by
 * measuring the request itself and cutting again when it is still over.
 */
export function fitPrompt(budget: ContextBudget, system: ChatMessage, render: (long: string) => string, long: string): ChatMessage[] {
  const limit = budget.inputChars;
  let room = limit - requestChars([system, { role: 'user', content: render('') }]) - 500;
  for (let i = 0; i < 5; i++) {
    const messages: ChatMessage[] = [system, { role: 'user', content: render(fitText(long, room)) }];
    const over = requestChars(messages) - limit;
    if (over <= 0) return messages;
    room -= over + 500;
  }
  throw new ContextTooSmallError(`the ${budget.describe()} is too small for the system prompt and this step's instructions; raise --context-tokens (NEUROSCOPE_LLM_CONTEXT_TOKENS)`);
}

/**
 * One completion with the history fitted under the model's budget first. `onHistory` gets the
 * fitted history (the caller keeps it: what was compacted stays compacted). A server that still
 * says the request is too long makes the estimate stricter and the history is fitted again (twice
 * at most).
 */
export async function completeWithin(
  llm: ChatModel, prefix: ChatMessage[], history: ChatMessage[], req: Omit<CompletionRequest, 'messages'>,
  on: { onHistory?: (h: ChatMessage[]) => void; onNote?: (note: string) => void } = {},
): Promise<{ completion: Completion; history: ChatMessage[] }> {
  for (let attempt = 0; ; attempt++) {
    const fitted = fitHistory(llm.context, prefix, history, req.tools);
    if (fitted.history !== history) {
      history = fitted.history;
      on.onHistory?.(history);
    }
    const note = fitNote(fitted.report, llm.context);
    if (note) on.onNote?.(note);
    const messages = [...prefix, ...history];
    try {
      const completion = await llm.complete({ ...req, messages });
      llm.context.observe(requestChars(messages, req.tools), completion.usage?.inputTokens);
      return { completion, history };
    } catch (e) {
      if (attempt >= 2 || !isContextLengthError(e)) throw e;
      llm.context.tighten();
      on.onNote?.(`the server found the request too long for the model's context; now assuming ${llm.context.charsPerToken.toFixed(2)} characters per token and compacting further`);
    }
  }
}
