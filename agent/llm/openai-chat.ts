// The default backend: the openai SDK's chat completions, streamed. Tool-call deltas are put back
// together by index (a name is sent once by convention; servers that repeat it in every delta are
// tolerated); reasoning deltas from local servers (vLLM's reasoning_content, Ollama's
// reasoning) are passed on; usage comes from the last chunk (stream_options.include_usage). The SDK's
// own retries are off: ours (retry.ts) report each wait to the UI and never repeat a reply that
// already streamed text. A server that refuses an optional parameter (reasoning_effort,
// stream_options, max_completion_tokens) gets the request again without it. A stream that sends
// nothing for idleTimeoutMs is abandoned (request-signal.ts).
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { apiKeyOf, endpointOf, supportsReasoningEffort, type LlmConfig } from './config.ts';
import { ContextBudget } from './context-budget.ts';
import { RetriesExhaustedError, withRetries } from './retry.ts';
import { withRequestSignal } from './request-signal.ts';
import { LlmError, type ChatModel, type Completion, type CompletionRequest, type ToolCallRecord } from './types.ts';
import { fromOpenAIUsage, priceFor, UsageMeter, type TokenUsage } from './usage.ts';

const OPTIONAL_PARAMS = ['reasoning_effort', 'stream_options', 'max_completion_tokens', 'parallel_tool_calls'] as const;

export const newCallId = (): string => `call_${randomBytes(9).toString('base64url')}`;

/** Unique, non-empty tool call ids (some local servers send none, or repeat them). */
export function normaliseToolCalls(calls: { id?: string | null; name?: string | null; arguments?: string | null }[], warnings: string[]): ToolCallRecord[] {
  const seen = new Set<string>();
  return calls.map((c) => {
    let id = c.id?.trim() || '';
    if (!id || seen.has(id)) {
      const fresh = newCallId();
      warnings.push(id ? `the model repeated tool call id ${id}; renamed ${fresh}` : `a tool call came without an id; named it ${fresh}`);
      id = fresh;
    }
    seen.add(id);
    return { id, type: 'function' as const, function: { name: (c.name ?? '').trim(), arguments: c.arguments ?? '' } };
  });
}

/**
 * A tool name from another delta: by the OpenAI convention the name comes once, but some servers
 * repeat the whole name in every delta (kept once) or resend it growing (the longer one is kept);
 * anything else is a name sent in pieces, which are joined.
 */
export function mergeName(sofar: string | undefined, piece: string): string {
  if (!sofar) return piece;
  if (piece === sofar) return sofar;
  if (piece.startsWith(sofar)) return piece;
  return sofar + piece;
}

function refusedParam(e: unknown, body: Record<string, unknown>): (typeof OPTIONAL_PARAMS)[number] | null {
  const status = (e as { status?: number })?.status;
  if (status !== 400 && status !== 422) return null;
  const msg = `${(e as Error)?.message ?? ''} ${JSON.stringify((e as { error?: unknown })?.error ?? '')}`;
  for (const p of OPTIONAL_PARAMS) if (p in body && msg.includes(p)) return p;
  return null;
}

export class OpenAIChatModel implements ChatModel {
  readonly backend = 'openai' as const;
  readonly usage: UsageMeter;
  readonly context: ContextBudget;
  readonly client: OpenAI;
  private readonly dropped = new Set<string>();

  constructor(readonly config: LlmConfig, opts: { fetch?: typeof fetch } = {}) {
    this.client = new OpenAI({
      apiKey: apiKeyOf(config),
      baseURL: config.baseURL,
      maxRetries: 0,
      timeout: config.timeoutMs,
      defaultHeaders: config.headers,
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
    });
    this.usage = new UsageMeter(config.model, config.price ?? priceFor(config.model));
    this.context = new ContextBudget(config.contextTokens, config.maxOutputTokens);
  }

  get model(): string {
    return this.config.model;
  }

  get endpoint(): string {
    return endpointOf(this.config);
  }

  private body(req: CompletionRequest): Record<string, unknown> {
    const c = this.config;
    const body: Record<string, unknown> = {
      model: c.model,
      messages: req.messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    if (req.tools?.length) {
      body.tools = req.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
    }
    if (c.reasoningEffort && supportsReasoningEffort(c.model)) body.reasoning_effort = c.reasoningEffort;
    if (c.maxOutputTokens) body.max_completion_tokens = c.maxOutputTokens;
    for (const p of this.dropped) delete body[p];
    return body;
  }

  async complete(req: CompletionRequest): Promise<Completion> {
    const warnings: string[] = [];
    let streamed = false;
    const result = await withRetries(async () => {
      for (;;) {
        const body = this.body(req);
        try {
          return await this.once(body, req, () => (streamed = true));
        } catch (e) {
          const p = refusedParam(e, body);
          if (!p || streamed) throw e;
          this.dropped.add(p);
          warnings.push(`the server refused "${p}"; sending requests without it`);
        }
      }
    }, {
      maxRetries: this.config.maxRetries, baseMs: this.config.retryBaseMs, maxMs: this.config.retryMaxMs, signal: req.signal,
      canRetry: () => !streamed || !!req.restartable,
      onRetry: (e) => {
        this.usage.recordRetry();
        req.onRetry?.(e);
      },
    }).catch((e) => {
      throw wrapError(e, this);
    });
    this.usage.record(result.usage);
    return { ...result, toolCalls: normaliseToolCalls(result.rawCalls, warnings), warnings, model: result.model || this.model };
  }

  private once(body: Record<string, unknown>, req: CompletionRequest, markStreamed: () => void) {
    return withRequestSignal(req.signal, this.config.idleTimeoutMs, async (signal, alive) => {
      const stream = (await this.client.chat.completions.create(body as unknown as OpenAI.Chat.ChatCompletionCreateParamsStreaming, { signal })) as AsyncIterable<OpenAI.Chat.ChatCompletionChunk>;
      alive();
      return this.read(stream, req, markStreamed, alive);
    });
  }

  private async read(stream: AsyncIterable<OpenAI.Chat.ChatCompletionChunk>, req: CompletionRequest, markStreamed: () => void, alive: () => void) {
    let content = '';
    let reasoning = '';
    let finishReason: string | null = null;
    let usage: TokenUsage | null = null;
    let model = '';
    const calls: { id?: string; name?: string; arguments?: string }[] = [];
    for await (const chunk of stream) {
      alive();
      if (chunk.model) model = chunk.model;
      if (chunk.usage) usage = fromOpenAIUsage(chunk.usage);
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const delta = (choice.delta ?? {}) as Record<string, any>;
      if (typeof delta.content === 'string' && delta.content) {
        content += delta.content;
        markStreamed();
        req.onToken?.(delta.content);
      }
      const r = delta.reasoning_content ?? delta.reasoning;
      if (typeof r === 'string' && r) {
        reasoning += r;
        req.onReasoning?.(r);
      }
      if (Array.isArray(delta.tool_calls)) {
        for (const [k, tc] of delta.tool_calls.entries()) {
          // Servers that send whole calls leave out the index: each is a new call.
          const i = typeof tc.index === 'number' ? tc.index : calls.length + k;
          const slot = (calls[i] ??= {});
          if (tc.id) slot.id = tc.id;
          if (tc.function?.name) slot.name = mergeName(slot.name, tc.function.name);
          if (typeof tc.function?.arguments === 'string') slot.arguments = (slot.arguments ?? '') + tc.function.arguments;
          else if (tc.function?.arguments && typeof tc.function.arguments === 'object') slot.arguments = JSON.stringify(tc.function.arguments);
        }
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
    return { content, reasoning, finishReason, usage, model, rawCalls: calls.filter(Boolean) };
  }
}

export function wrapError(e: unknown, m: Pick<ChatModel, 'model' | 'endpoint'>): Error {
  if ((e as { name?: string })?.name === 'APIUserAbortError' || (e as { name?: string })?.name === 'AbortError') return e as Error;
  if (e instanceof LlmError) return e;
  if (e instanceof RetriesExhaustedError) {
    const cause = e.cause as Error | undefined;
    const detail = cause?.message && !e.reason.includes(cause.message) ? ` (last error: ${cause.message})` : '';
    return new LlmError(`LLM request to ${m.endpoint} (model ${m.model}) failed: ${e.message}${detail}`, e.status, true);
  }
  const status = (e as { status?: number })?.status;
  const msg = (e as Error)?.message ?? String(e);
  let hint = '';
  if (status === 401) hint = ' (check OPENAI_API_KEY)';
  else if (status === 404) hint = ` (is "${m.model}" a model this endpoint serves? set --llm-model or NEUROSCOPE_MODEL)`;
  else if (status === undefined) hint = ` (is the endpoint ${m.endpoint} reachable? set OPENAI_BASE_URL)`;
  return new LlmError(`LLM request to ${m.endpoint} (model ${m.model}) failed: ${msg}${hint}`, status);
}
