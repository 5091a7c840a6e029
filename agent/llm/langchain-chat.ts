// The LangChain backend: @langchain/openai's ChatOpenAICompletions (chat completions, so local
// servers work) with the tools bound in OpenAI format, streamed with .stream(). Same messages, same
// retries (ours; LangChain's are off), same usage meter as the openai backend, so either can drive
// the chat and the hypothesis loop. Choose it with NEUROSCOPE_LLM_BACKEND=langchain.
import { AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage, type BaseMessage } from '@langchain/core/messages';
import { ChatOpenAICompletions } from '@langchain/openai';
import { apiKeyOf, endpointOf, supportsReasoningEffort, type LlmConfig } from './config.ts';
import { normaliseToolCalls, wrapError } from './openai-chat.ts';
import { ContextBudget } from './context-budget.ts';
import { withRequestSignal } from './request-signal.ts';
import { withRetries } from './retry.ts';
import type { ChatMessage, ChatModel, Completion, CompletionRequest } from './types.ts';
import { priceFor, UsageMeter, type TokenUsage } from './usage.ts';

function parseArgs(text: string): Record<string, unknown> | null {
  if (text.trim() === '') return {};
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

/** Our OpenAI-format messages as LangChain messages (bad tool-call JSON kept raw so the history stays true). */
export function toLangChainMessages(messages: ChatMessage[]): BaseMessage[] {
  return messages.map((m) => {
    switch (m.role) {
      case 'system':
        return new SystemMessage(m.content);
      case 'user':
        return new HumanMessage(m.content);
      case 'tool':
        return new ToolMessage({ tool_call_id: m.tool_call_id, content: m.content });
      case 'assistant': {
        const calls = m.tool_calls ?? [];
        const parsed = calls.map((c) => parseArgs(c.function.arguments));
        if (calls.length && parsed.every((p) => p !== null)) {
          return new AIMessage({ content: m.content ?? '', tool_calls: calls.map((c, i) => ({ id: c.id, name: c.function.name, args: parsed[i]!, type: 'tool_call' as const })) });
        }
        return new AIMessage({ content: m.content ?? '', additional_kwargs: calls.length ? { tool_calls: calls } : {} });
      }
    }
  });
}

export class LangChainChatModel implements ChatModel {
  readonly backend = 'langchain' as const;
  readonly usage: UsageMeter;
  readonly context: ContextBudget;
  readonly chat: ChatOpenAICompletions;

  constructor(readonly config: LlmConfig, opts: { fetch?: typeof fetch } = {}) {
    this.chat = new ChatOpenAICompletions({
      model: config.model,
      apiKey: apiKeyOf(config),
      configuration: { baseURL: config.baseURL, defaultHeaders: config.headers, ...(opts.fetch ? { fetch: opts.fetch } : {}) },
      maxRetries: 0,
      streamUsage: true,
      timeout: config.timeoutMs,
      ...(config.maxOutputTokens ? { maxTokens: config.maxOutputTokens } : {}),
      ...(config.reasoningEffort && supportsReasoningEffort(config.model) ? { reasoning: { effort: config.reasoningEffort } } : {}),
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

  async complete(req: CompletionRequest): Promise<Completion> {
    const runnable = req.tools?.length
      ? this.chat.bindTools(req.tools.map((t) => ({ type: 'function' as const, function: { name: t.name, description: t.description, parameters: t.parameters } })))
      : this.chat;
    const input = toLangChainMessages(req.messages);
    let streamed = false;
    const warnings: string[] = [];
    const msg = await withRetries(() => withRequestSignal(req.signal, this.config.idleTimeoutMs, async (signal, alive) => {
      let acc: AIMessageChunk | undefined;
      const stream = await runnable.stream(input, { signal });
      alive();
      for await (const chunk of stream) {
        alive();
        const text = typeof chunk.content === 'string' ? chunk.content : '';
        if (text) {
          streamed = true;
          req.onToken?.(text);
        }
        const r = chunk.additional_kwargs?.reasoning_content;
        if (typeof r === 'string' && r) req.onReasoning?.(r);
        acc = acc ? acc.concat(chunk) : chunk;
      }
      return acc ?? new AIMessageChunk({ content: '' });
    }), {
      maxRetries: this.config.maxRetries, baseMs: this.config.retryBaseMs, maxMs: this.config.retryMaxMs, signal: req.signal,
      canRetry: () => !streamed || !!req.restartable,
      onRetry: (e) => {
        this.usage.recordRetry();
        req.onRetry?.(e);
      },
    }).catch((e) => {
      throw wrapError(e, this);
    });
    const u = msg.usage_metadata;
    const usage: TokenUsage | null = u
      ? { inputTokens: u.input_tokens ?? 0, cachedInputTokens: u.input_token_details?.cache_read ?? 0, outputTokens: u.output_tokens ?? 0, reasoningTokens: u.output_token_details?.reasoning ?? 0 }
      : null;
    this.usage.record(usage);
    const chunks = (msg.tool_call_chunks ?? []).filter((c) => c.name || c.args || c.id);
    const reasoning = msg.additional_kwargs?.reasoning_content;
    return {
      content: typeof msg.content === 'string' ? msg.content : '',
      reasoning: typeof reasoning === 'string' ? reasoning : '',
      toolCalls: normaliseToolCalls(chunks.map((c) => ({ id: c.id, name: c.name, arguments: c.args })), warnings),
      finishReason: (msg.response_metadata?.finish_reason as string | undefined) ?? null,
      usage,
      model: (msg.response_metadata?.model_name as string | undefined) ?? this.model,
      warnings,
    };
  }
}
