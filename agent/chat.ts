// Chat mode: a conversation with tool use. The terminal UI (agent/ui/) drives a ChatSession:
//
//   const session = await ChatSession.create({ toolbox, llm });
//   const turn = await session.send('Which heads carry IOI?', { onToken, onToolStart, onToolEnd, onProgress, onRetry, signal });
//   session.messages; session.usage; session.toMarkdown();
//
// Without an LLM the session still calls tools directly (session.callTool, for slash commands).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAbortError, type ChatMessage, type ChatModel, type RetryEvent, type ToolCallRecord } from './llm/types.ts';
import { formatUsage, type UsageSnapshot } from './llm/usage.ts';
import type { McpToolbox, ToolOutcome, ToolProgressEvent } from './mcp.ts';
import { clip, executeToolCalls, type ExecutedCall, type ToolHandlers } from './tool-exec.ts';

export const PROMPTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'prompts');

export function loadPromptFile(name: string, vars: Record<string, string> = {}): string {
  const text = readFileSync(join(PROMPTS_DIR, name), 'utf8');
  return text.replace(/\{\{\s*([a-zA-Z_]+)\s*\}\}/g, (m, k: string) => vars[k] ?? m);
}

/** One line about the loaded model from model_info's result (or why it is unknown). */
export async function modelSummary(toolbox: McpToolbox): Promise<{ line: string; dir?: string; modelId?: string }> {
  const r = await toolbox.call('model_info', {});
  if (!r.ok) return { line: `unknown (model_info failed: ${r.text.slice(0, 200)})` };
  const d = r.structured as Record<string, any> | null;
  if (!d) return { line: r.text.slice(0, 200) };
  const a = (d.architecture ?? {}) as Record<string, unknown>;
  const parts = ['layers', 'hidden', 'heads', 'kvHeads', 'experts', 'topK', 'vocab'].filter((k) => a[k] !== undefined).map((k) => `${k} ${a[k]}`);
  const builtIn = d.builtIn ? ` (built-in ${d.builtIn.model} seed ${d.builtIn.seed}, with planted circuits)` : '';
  return { line: `${d.modelId ?? 'model'}${builtIn}: ${parts.join(', ')}`, dir: typeof d.dir === 'string' ? d.dir : undefined, modelId: d.modelId };
}

export interface SendHandlers extends ToolHandlers {
  onToken?: (delta: string) => void;
  onReasoning?: (delta: string) => void;
  onRetry?: (e: RetryEvent) => void;
  /** Each message appended to the conversation (assistant replies, tool results). */
  onMessage?: (m: ChatMessage) => void;
  signal?: AbortSignal;
}

export interface TurnResult {
  /** The assistant's final text of this turn. */
  text: string;
  toolCalls: ExecutedCall[];
  aborted: boolean;
  /** LLM requests made in this turn. */
  rounds: number;
  warnings: string[];
  usage: UsageSnapshot | null;
}

export interface ChatSessionOptions {
  toolbox: McpToolbox;
  llm?: ChatModel | null;
  /** Default: prompts/system.md with the loaded model filled in. */
  systemPrompt?: string;
  /** LLM requests per turn before the model must answer without tools. */
  maxToolRounds?: number;
  maxResultChars?: number;
}

export class NoLlmError extends Error {
  constructor() {
    super('no LLM is configured: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (a local OpenAI-compatible server such as vLLM or Ollama); tools can still be called directly');
  }
}

export class ChatSession {
  readonly messages: ChatMessage[] = [];
  readonly toolbox: McpToolbox;
  readonly llm: ChatModel | null;
  private readonly maxToolRounds: number;
  private readonly maxResultChars: number;
  private running = false;

  constructor(opts: ChatSessionOptions & { systemPrompt: string }) {
    this.toolbox = opts.toolbox;
    this.llm = opts.llm ?? null;
    this.maxToolRounds = opts.maxToolRounds ?? 24;
    this.maxResultChars = opts.maxResultChars ?? 24_000;
    this.messages.push({ role: 'system', content: opts.systemPrompt });
  }

  static async create(opts: ChatSessionOptions): Promise<ChatSession> {
    const systemPrompt = opts.systemPrompt ?? loadPromptFile('system.md', { model: (await modelSummary(opts.toolbox)).line });
    return new ChatSession({ ...opts, systemPrompt });
  }

  get usage(): UsageSnapshot | null {
    return this.llm?.usage.snapshot() ?? null;
  }

  get busy(): boolean {
    return this.running;
  }

  /** Tool names and descriptions (for /tools and completion in the UI). */
  get tools(): { name: string; description: string }[] {
    return this.toolbox.specs().map((t) => ({ name: t.name, description: t.description }));
  }

  private push(m: ChatMessage, h: SendHandlers): void {
    this.messages.push(m);
    h.onMessage?.(m);
  }

  /** One user turn: the model answers, calling tools as often as it needs (up to maxToolRounds requests). */
  async send(text: string, h: SendHandlers = {}): Promise<TurnResult> {
    if (!this.llm) throw new NoLlmError();
    if (this.running) throw new Error('a turn is already running; wait for it or cancel it');
    this.running = true;
    const llm = this.llm;
    const toolCalls: ExecutedCall[] = [];
    const warnings: string[] = [];
    let rounds = 0;
    try {
      this.push({ role: 'user', content: text }, h);
      const specs = this.toolbox.specs();
      for (;;) {
        const lastRound = rounds >= this.maxToolRounds;
        if (lastRound) {
          this.push({ role: 'user', content: `(NeuroScope: ${this.maxToolRounds} tool rounds used in this turn; answer now with what has been measured, without calling tools.)` }, h);
        }
        let partial = '';
        let completion;
        rounds++;
        try {
          completion = await llm.complete({
            messages: this.messages,
            tools: lastRound ? undefined : specs,
            signal: h.signal,
            onToken: (d) => {
              partial += d;
              h.onToken?.(d);
            },
            onReasoning: h.onReasoning,
            onRetry: h.onRetry,
          });
        } catch (e) {
          if (!isAbortError(e, h.signal)) throw e;
          if (partial) this.push({ role: 'assistant', content: `${partial} [interrupted]` }, h);
          return { text: partial, toolCalls, aborted: true, rounds, warnings, usage: this.usage };
        }
        warnings.push(...completion.warnings);
        const calls: ToolCallRecord[] = lastRound ? [] : completion.toolCalls;
        this.push({ role: 'assistant', content: completion.content || null, ...(calls.length ? { tool_calls: calls } : {}) }, h);
        if (calls.length === 0) return { text: completion.content, toolCalls, aborted: false, rounds, warnings, usage: this.usage };
        const exec = await executeToolCalls(calls, this.toolbox, { ...h, maxResultChars: this.maxResultChars });
        toolCalls.push(...exec.executed);
        for (const m of exec.messages) this.push(m, h);
        if (exec.aborted) return { text: completion.content, toolCalls, aborted: true, rounds, warnings, usage: this.usage };
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * Calls a tool directly (a slash command; works without an LLM). With `remember` (default) the
   * call and its result join the conversation as a note, so the model can discuss it later.
   */
  async callTool(name: string, args: Record<string, unknown>, opts: { signal?: AbortSignal; onProgress?: (p: ToolProgressEvent) => void; remember?: boolean } = {}): Promise<ToolOutcome> {
    const r = await this.toolbox.call(name, args, { signal: opts.signal, onProgress: opts.onProgress });
    if (opts.remember ?? true) {
      this.messages.push({ role: 'user', content: `(The user ran ${name} ${JSON.stringify(args)} directly. ${r.ok ? 'Result' : 'Error'}:)\n${clip(r.text, this.maxResultChars)}` });
    }
    return r;
  }

  /** Forget the conversation (the system prompt stays). */
  reset(): void {
    this.messages.splice(1);
  }

  /** The conversation as Markdown (tool calls with their arguments and results). */
  toMarkdown(opts: { title?: string; maxResultChars?: number } = {}): string {
    const max = opts.maxResultChars ?? 4000;
    const out = [`# ${opts.title ?? 'NeuroScope conversation'}`, ''];
    if (this.llm) out.push(`Model: \`${this.llm.model}\` at ${this.llm.endpoint} · ${formatUsage(this.llm.usage.snapshot())}`, '');
    const names = new Map<string, string>();
    for (const m of this.messages.slice(1)) {
      if (m.role === 'user') out.push('## User', '', m.content, '');
      else if (m.role === 'assistant') {
        if (m.content) out.push('## Assistant', '', m.content, '');
        for (const c of m.tool_calls ?? []) {
          names.set(c.id, c.function.name);
          out.push(`**Tool call** \`${c.function.name}\` (${c.id})`, '', '```json', c.function.arguments || '{}', '```', '');
        }
      } else if (m.role === 'tool') {
        out.push(`<details><summary>Result of ${names.get(m.tool_call_id) ?? 'tool'} (${m.tool_call_id})</summary>`, '', '```', clip(m.content, max), '```', '', '</details>', '');
      }
    }
    return out.join('\n');
  }
}
