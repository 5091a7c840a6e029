// Which language model the agent talks to: any OpenAI-compatible endpoint. OPENAI_API_KEY and
// OPENAI_BASE_URL as the openai SDK reads them; the model name from --llm-model, NEUROSCOPE_MODEL,
// or gpt-5. A local server (vLLM, Ollama, llama.cpp; gpt-oss-20b itself can be the agent) needs only
// OPENAI_BASE_URL. Neither set: no LLM, and the agent runs its built-in protocols instead.
import { parsePrice, type Price } from './usage.ts';
import type { ReasoningEffort } from './types.ts';

export const DEFAULT_MODEL = 'gpt-5';
export const REASONING_EFFORTS: readonly ReasoningEffort[] = ['minimal', 'low', 'medium', 'high'];

export interface LlmConfig {
  model: string;
  apiKey?: string;
  baseURL?: string;
  /** Sent only to models that take it (see supportsReasoningEffort). */
  reasoningEffort?: ReasoningEffort;
  /** 'openai': the openai SDK directly (default); 'langchain': @langchain/openai's ChatOpenAI. */
  backend: 'openai' | 'langchain';
  /** Retries on 429, 408, 409, 5xx and connection errors, with exponential backoff (Retry-After honoured). */
  maxRetries: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Per request, until the response headers arrive (the SDK's timeout). */
  timeoutMs: number;
  /** A streamed reply that sends nothing for this long is abandoned (and retried while that is safe). */
  idleTimeoutMs: number;
  /** The model's context window in tokens; requests are kept under it minus the output reserve (context-budget.ts). */
  contextTokens: number;
  /** Where contextTokens came from, for people ("NEUROSCOPE_LLM_CONTEXT_TOKENS", "known for gpt-oss", ...). */
  contextSource: string;
  maxOutputTokens?: number;
  /** Overrides the price table (USD per million tokens). */
  price?: Price;
  /** Extra headers for every request (e.g. OpenAI-Organization, or a gateway's). */
  headers?: Record<string, string>;
}

export interface LlmFlags {
  model?: string;
  baseURL?: string;
  reasoningEffort?: string;
  backend?: string;
  contextTokens?: string;
}

export function llmConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!(env.OPENAI_API_KEY?.trim() || env.OPENAI_BASE_URL?.trim());
}

/**
 * Context windows of models we know (tokens). gpt-5's window is 400k, of which at most 272k may be
 * input; gpt-oss-20b/120b have 131,072 (vLLM's default max_model_len). Anything else gets the
 * conservative UNKNOWN_CONTEXT_TOKENS unless set with --context-tokens / NEUROSCOPE_LLM_CONTEXT_TOKENS.
 */
export const KNOWN_CONTEXT_TOKENS: readonly [RegExp, number][] = [
  [/^gpt-5/, 272_000],
  [/^gpt-oss/, 131_072],
  [/^gpt-4\.1/, 1_000_000],
  [/^gpt-4o/, 128_000],
  [/^o[34]/, 200_000],
];
export const UNKNOWN_CONTEXT_TOKENS = 32_768;

/** The known context window for a model name (provider prefixes like "openai/" ignored; Ollama's "gpt-oss:20b" too), or null. */
export function knownContextTokens(model: string): number | null {
  const m = model.toLowerCase().replace(/^.*\//, '');
  return KNOWN_CONTEXT_TOKENS.find(([re]) => re.test(m))?.[1] ?? null;
}

function int(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${v}"`);
  return n;
}

/** The LLM settings from flags and the environment, or null when no LLM is configured. */
export function resolveLlmConfig(flags: LlmFlags = {}, env: NodeJS.ProcessEnv = process.env): LlmConfig | null {
  const apiKey = env.OPENAI_API_KEY?.trim() || undefined;
  const baseURL = flags.baseURL?.trim() || env.OPENAI_BASE_URL?.trim() || undefined;
  if (!apiKey && !baseURL) return null;
  const effort = (flags.reasoningEffort ?? env.NEUROSCOPE_REASONING_EFFORT)?.trim();
  if (effort && !REASONING_EFFORTS.includes(effort as ReasoningEffort)) {
    throw new Error(`reasoning effort must be one of ${REASONING_EFFORTS.join(', ')}; got "${effort}"`);
  }
  const model = flags.model?.trim() || env.NEUROSCOPE_MODEL?.trim() || DEFAULT_MODEL;
  const ctxText = (flags.contextTokens ?? env.NEUROSCOPE_LLM_CONTEXT_TOKENS)?.trim();
  const ctxName = flags.contextTokens !== undefined ? '--context-tokens' : 'NEUROSCOPE_LLM_CONTEXT_TOKENS';
  const ctxGiven = ctxText ? int(ctxText, ctxName, 0) : null;
  if (ctxGiven !== null && ctxGiven < 4096) throw new Error(`${ctxName} must be at least 4096 tokens (the tools and system prompt alone take thousands), got ${ctxGiven}`);
  const known = knownContextTokens(model);
  const backend = (flags.backend ?? env.NEUROSCOPE_LLM_BACKEND ?? 'openai').trim();
  if (backend !== 'openai' && backend !== 'langchain') throw new Error(`the LLM backend is "openai" or "langchain"; got "${backend}"`);
  return {
    model,
    apiKey,
    baseURL,
    reasoningEffort: (effort || undefined) as ReasoningEffort | undefined,
    backend,
    maxRetries: int(env.NEUROSCOPE_LLM_RETRIES, 'NEUROSCOPE_LLM_RETRIES', 6),
    retryBaseMs: 500,
    retryMaxMs: 30_000,
    timeoutMs: int(env.NEUROSCOPE_LLM_TIMEOUT_MS, 'NEUROSCOPE_LLM_TIMEOUT_MS', 600_000),
    idleTimeoutMs: int(env.NEUROSCOPE_LLM_IDLE_TIMEOUT_MS, 'NEUROSCOPE_LLM_IDLE_TIMEOUT_MS', 180_000),
    contextTokens: ctxGiven ?? known ?? UNKNOWN_CONTEXT_TOKENS,
    contextSource: ctxGiven !== null ? ctxName : known !== null ? `known for ${model}` : `default for a model not in the table; set --context-tokens or NEUROSCOPE_LLM_CONTEXT_TOKENS`,
    maxOutputTokens: env.NEUROSCOPE_MAX_OUTPUT_TOKENS ? int(env.NEUROSCOPE_MAX_OUTPUT_TOKENS, 'NEUROSCOPE_MAX_OUTPUT_TOKENS', 0) : undefined,
    price: env.NEUROSCOPE_PRICE ? parsePrice(env.NEUROSCOPE_PRICE) : undefined,
  };
}

/** Models known to take `reasoning_effort` (OpenAI reasoning models and gpt-oss on vLLM / Ollama). */
export function supportsReasoningEffort(model: string): boolean {
  const m = model.toLowerCase().replace(/^.*\//, '');
  return /^(gpt-5(?!-chat)|o\d|gpt-oss)/.test(m);
}

/** The endpoint as shown to people: the base URL, or OpenAI's. */
export const endpointOf = (c: Pick<LlmConfig, 'baseURL'>): string => c.baseURL ?? 'https://api.openai.com/v1';

/** A key is required by the SDK even where a local server ignores it. */
export const apiKeyOf = (c: Pick<LlmConfig, 'apiKey'>): string => c.apiKey ?? 'not-needed';
