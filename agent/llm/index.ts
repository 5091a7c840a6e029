// The LLM layer: configuration, the two backends (openai SDK, LangChain) and accounting.
import type { LlmConfig } from './config.ts';
import { LangChainChatModel } from './langchain-chat.ts';
import { OpenAIChatModel } from './openai-chat.ts';
import type { ChatModel } from './types.ts';

export * from './config.ts';
export * from './types.ts';
export * from './usage.ts';
export * from './context-budget.ts';
export { classify, retryDelayMs, withRetries, RetriesExhaustedError } from './retry.ts';
export { OpenAIChatModel } from './openai-chat.ts';
export { LangChainChatModel, toLangChainMessages } from './langchain-chat.ts';

export function createChatModel(config: LlmConfig, opts: { fetch?: typeof fetch } = {}): ChatModel {
  return config.backend === 'langchain' ? new LangChainChatModel(config, opts) : new OpenAIChatModel(config, opts);
}
