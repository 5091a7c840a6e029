// The agent's view of a language model: OpenAI chat-completions messages (plain JSON, so they can
// be checkpointed and exported as they are), tool specs, one streamed completion per call, and the
// events a UI shows while it runs.
import type { ContextBudget } from './context-budget.ts';
import type { UsageMeter, TokenUsage } from './usage.ts';

export interface ToolCallRecord {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ToolCallRecord[] }
  | { role: 'tool'; tool_call_id: string; content: string };

/** A tool as the model sees it (OpenAI function spec). */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

export type ReasoningEffort = 'minimal' | 'low' | 'medium' | 'high';

export interface RetryEvent {
  attempt: number;
  maxRetries: number;
  delayMs: number;
  status?: number;
  reason: string;
}

export interface CompletionRequest {
  messages: ChatMessage[];
  tools?: ToolSpec[];
  signal?: AbortSignal;
  onToken?: (delta: string) => void;
  /** Reasoning text, for servers that stream it (vLLM `reasoning_content`, Ollama `reasoning`). */
  onReasoning?: (delta: string) => void;
  onRetry?: (e: RetryEvent) => void;
  /**
   * The caller discards streamed tokens it was shown, so a reply that broke off after text had
   * streamed may be asked for again (the investigation loop); without it only replies that streamed
   * no text yet are retried (a chat must not show an answer twice).
   */
  restartable?: boolean;
}

export interface Completion {
  content: string;
  reasoning: string;
  /** Tool calls as the model sent them: ids are made unique, arguments are raw (possibly bad) JSON text. */
  toolCalls: ToolCallRecord[];
  /** "stop", "tool_calls", "length" (the reply hit the output limit: truncated), ... */
  finishReason: string | null;
  usage: TokenUsage | null;
  model: string;
  /** Notes on what the layer did (a parameter the server refused, ids it had to invent). */
  warnings: string[];
}

/** A chat model the agent can drive: the openai SDK backend or the LangChain one. */
export interface ChatModel {
  readonly model: string;
  /** Where requests go (for reports); "https://api.openai.com/v1" when not set. */
  readonly endpoint: string;
  readonly backend: 'openai' | 'langchain';
  readonly usage: UsageMeter;
  /** The token budget requests to this model are kept under. */
  readonly context: ContextBudget;
  complete(req: CompletionRequest): Promise<Completion>;
}

export class LlmError extends Error {
  constructor(message: string, readonly status?: number, readonly retryable = false) {
    super(message);
  }
}

/** A streamed reply that sent nothing for idleTimeoutMs (the SDK's timeout ends at the headers). */
export class StreamIdleError extends Error {
  override readonly name = 'StreamIdleError';
  constructor(readonly idleMs: number) {
    super(`the LLM stream sent nothing for ${(idleMs / 1000).toFixed(1)} s (NEUROSCOPE_LLM_IDLE_TIMEOUT_MS)`);
  }
}

/** True when the error (or its cause) is a user abort. */
export function isAbortError(e: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return true;
  const name = (e as { name?: string })?.name;
  return name === 'AbortError' || name === 'APIUserAbortError';
}
