// How many tokens a request may take. The model's context window holds the request and the reply,
// so requests are kept under the window minus an output reserve. Tokens are estimated from the
// request's JSON size at a conservative 3 characters per token; the estimate is tightened from the
// server's own prompt_tokens when a reply reports them, and after a context-length refusal.
import type { ChatMessage, ToolSpec } from './types.ts';

export const DEFAULT_CHARS_PER_TOKEN = 3;

/** The body's other fields (model, stream, options, the keys around messages and tools), over-estimated. */
const ENVELOPE_CHARS = 400;

/** The request as the server sees it (messages, tool specs and the body around them), in characters of JSON. */
export function requestChars(messages: ChatMessage[], tools?: ToolSpec[]): number {
  const t = tools?.length ? JSON.stringify(tools.map((x) => ({ type: 'function', function: { name: x.name, description: x.description, parameters: x.parameters } }))).length : 0;
  return JSON.stringify(messages).length + t + ENVELOPE_CHARS;
}

/** True when the server refused a request for being longer than the model's context. */
export function isContextLengthError(e: unknown): boolean {
  const r = e as { status?: number; message?: string; code?: unknown; error?: { code?: unknown } };
  const text = `${r?.message ?? ''} ${String(r?.code ?? '')} ${String(r?.error?.code ?? '')}`;
  return (r?.status === 400 || r?.status === 413 || r?.status === undefined) && /context_length_exceeded|maximum context length|context window|too many tokens|prompt is too long/i.test(text);
}

export class ContextBudget {
  charsPerToken = DEFAULT_CHARS_PER_TOKEN;

  /**
   * @param contextTokens the model's window (input + output)
   * @param reserveTokens kept free for the reply: max output tokens when set, else min(16k, window / 8)
   */
  constructor(readonly contextTokens: number, readonly reserveTokens = Math.min(16_384, Math.floor(contextTokens / 8))) {
    if (reserveTokens >= contextTokens) throw new Error(`the output reserve (${reserveTokens} tokens) leaves no room in a ${contextTokens}-token context; lower NEUROSCOPE_MAX_OUTPUT_TOKENS or raise --context-tokens`);
  }

  /** Tokens a request may take. */
  get inputTokens(): number {
    return this.contextTokens - this.reserveTokens;
  }

  /** The same limit in characters of request JSON, at the current estimate. */
  get inputChars(): number {
    return Math.floor(this.inputTokens * this.charsPerToken);
  }

  estimateTokens(messages: ChatMessage[], tools?: ToolSpec[]): number {
    return Math.ceil(requestChars(messages, tools) / this.charsPerToken);
  }

  /** Learns from the server's count: a denser text than assumed lowers characters per token. */
  observe(chars: number, promptTokens: number | undefined): void {
    if (!promptTokens || promptTokens <= 0) return;
    const seen = chars / promptTokens;
    if (seen < this.charsPerToken) this.charsPerToken = Math.max(1, seen * 0.95);
  }

  /** After a context-length refusal: assume a fifth more tokens per character from now on. */
  tighten(): void {
    this.charsPerToken = Math.max(1, this.charsPerToken * 0.8);
  }

  describe(): string {
    return `${this.contextTokens.toLocaleString('en-US')}-token context (requests kept under ${this.inputTokens.toLocaleString('en-US')} tokens)`;
  }
}
