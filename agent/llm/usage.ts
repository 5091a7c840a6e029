// Token and cost accounting. Token counts come from the responses themselves (the `usage` the server
// reports; a streamed reply carries it in its last chunk when asked with stream_options). Cost comes
// from a small table of list prices; a model not in it, or a call the server reported no usage for,
// makes the cost "unknown" rather than a guess.

/** USD per million tokens: input, cached input, output (OpenAI list prices when this was written). */
export interface Price {
  input: number;
  cachedInput: number;
  output: number;
}

export const PRICES: Readonly<Record<string, Price>> = {
  'gpt-5': { input: 1.25, cachedInput: 0.125, output: 10 },
  'gpt-5-mini': { input: 0.25, cachedInput: 0.025, output: 2 },
  'gpt-5-nano': { input: 0.05, cachedInput: 0.005, output: 0.4 },
  'gpt-5-chat-latest': { input: 1.25, cachedInput: 0.125, output: 10 },
  'gpt-4.1': { input: 2, cachedInput: 0.5, output: 8 },
  'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, output: 1.6 },
  'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, output: 0.4 },
  'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10 },
  'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6 },
  o3: { input: 2, cachedInput: 0.5, output: 8 },
  'o4-mini': { input: 1.1, cachedInput: 0.275, output: 4.4 },
};

/** The table entry for a model name: provider prefixes ("openai/") and date suffixes ("-2025-08-07") are ignored. */
export function priceFor(model: string, table: Readonly<Record<string, Price>> = PRICES): Price | null {
  const base = model.trim().toLowerCase().replace(/^.*\//, '').replace(/-\d{4}-\d{2}-\d{2}$/, '');
  return table[base] ?? null;
}

/** "in,cachedIn,out" (USD per million tokens), e.g. from NEUROSCOPE_PRICE, for a model the table lacks. */
export function parsePrice(text: string): Price {
  const parts = text.split(',').map((s) => Number(s.trim()));
  if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x) || x < 0)) {
    throw new Error(`a price is "input,cachedInput,output" in USD per million tokens, e.g. "1.25,0.125,10"; got "${text}"`);
  }
  return { input: parts[0], cachedInput: parts[1], output: parts[2] };
}

export interface TokenUsage {
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
}

export interface UsageSnapshot extends TokenUsage {
  model: string;
  calls: number;
  /** Calls whose response carried no usage (some local servers): their tokens are not counted. */
  callsWithoutUsage: number;
  retries: number;
  /** USD, or "unknown" when the model has no price or some calls reported no usage. */
  cost: number | 'unknown';
  costNote?: string;
}

/** OpenAI `usage` object -> TokenUsage (missing details count as zero). */
export function fromOpenAIUsage(u: unknown): TokenUsage | null {
  if (!u || typeof u !== 'object') return null;
  const r = u as Record<string, any>;
  if (typeof r.prompt_tokens !== 'number' && typeof r.completion_tokens !== 'number') return null;
  return {
    inputTokens: r.prompt_tokens ?? 0,
    cachedInputTokens: r.prompt_tokens_details?.cached_tokens ?? 0,
    outputTokens: r.completion_tokens ?? 0,
    reasoningTokens: r.completion_tokens_details?.reasoning_tokens ?? 0,
  };
}

export function costOf(u: TokenUsage, p: Price): number {
  const cached = Math.min(u.cachedInputTokens, u.inputTokens);
  return ((u.inputTokens - cached) * p.input + cached * p.cachedInput + u.outputTokens * p.output) / 1e6;
}

export class UsageMeter {
  private total: TokenUsage = { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, reasoningTokens: 0 };
  private calls = 0;
  private missing = 0;
  private retries = 0;

  constructor(readonly model: string, private readonly price: Price | null = priceFor(model)) {}

  record(u: TokenUsage | null): void {
    this.calls++;
    if (!u) {
      this.missing++;
      return;
    }
    this.total.inputTokens += u.inputTokens;
    this.total.cachedInputTokens += u.cachedInputTokens;
    this.total.outputTokens += u.outputTokens;
    this.total.reasoningTokens += u.reasoningTokens;
  }

  recordRetry(): void {
    this.retries++;
  }

  /** Adds a saved snapshot (a resumed investigation carries on counting). */
  restore(s: Partial<UsageSnapshot>): void {
    this.total.inputTokens += s.inputTokens ?? 0;
    this.total.cachedInputTokens += s.cachedInputTokens ?? 0;
    this.total.outputTokens += s.outputTokens ?? 0;
    this.total.reasoningTokens += s.reasoningTokens ?? 0;
    this.calls += s.calls ?? 0;
    this.missing += s.callsWithoutUsage ?? 0;
    this.retries += s.retries ?? 0;
  }

  snapshot(): UsageSnapshot {
    let cost: number | 'unknown' = 'unknown';
    let costNote: string | undefined;
    if (!this.price) costNote = `no price known for model "${this.model}"`;
    else if (this.missing > 0) costNote = `${this.missing} call(s) reported no token usage`;
    else cost = costOf(this.total, this.price);
    return { model: this.model, ...this.total, calls: this.calls, callsWithoutUsage: this.missing, retries: this.retries, cost, ...(costNote ? { costNote } : {}) };
  }
}

/** "3 calls · 12,345 in (1,024 cached) / 678 out tokens · $0.0231" */
export function formatUsage(s: UsageSnapshot): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const cost = s.cost === 'unknown' ? `cost unknown${s.costNote ? ` (${s.costNote})` : ''}` : `$${s.cost < 0.01 ? s.cost.toFixed(4) : s.cost.toFixed(2)}`;
  const reasoning = s.reasoningTokens ? `, ${n(s.reasoningTokens)} reasoning` : '';
  const retries = s.retries ? ` · ${s.retries} retr${s.retries === 1 ? 'y' : 'ies'}` : '';
  return `${s.calls} call${s.calls === 1 ? '' : 's'} · ${n(s.inputTokens)} in (${n(s.cachedInputTokens)} cached) / ${n(s.outputTokens)} out tokens${reasoning} · ${cost}${retries}`;
}
