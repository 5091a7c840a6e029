// Retries with exponential backoff for rate limits (429), timeouts (408), conflicts (409), server
// errors (5xx) and dropped connections. A Retry-After (or retry-after-ms) header is honoured up to
// the cap; quota exhaustion ("insufficient_quota") is not a rate limit and is not retried.
import { isAbortError, StreamIdleError, type RetryEvent } from './types.ts';

export interface RetryOptions {
  maxRetries: number;
  baseMs: number;
  maxMs: number;
  signal?: AbortSignal;
  onRetry?: (e: RetryEvent) => void;
  /** Whether a retry is still safe (e.g. nothing was streamed to the user yet). */
  canRetry?: () => boolean;
}

function statusOf(e: unknown): number | undefined {
  const r = e as { status?: unknown; response?: { status?: unknown } };
  if (typeof r?.status === 'number') return r.status;
  if (typeof r?.response?.status === 'number') return r.response.status;
  return undefined;
}

function header(e: unknown, name: string): string | undefined {
  const h = (e as { headers?: unknown })?.headers as { get?: (n: string) => string | null } | Record<string, string> | undefined;
  if (!h) return undefined;
  if (typeof (h as { get?: unknown }).get === 'function') return (h as { get: (n: string) => string | null }).get(name) ?? undefined;
  const rec = h as Record<string, string>;
  return rec[name] ?? rec[name.toLowerCase()];
}

function codeOf(e: unknown): string | undefined {
  const r = e as { code?: unknown; error?: { code?: unknown } };
  if (typeof r?.code === 'string') return r.code;
  if (typeof r?.error?.code === 'string') return r.error.code;
  return undefined;
}

export function classify(e: unknown, signal?: AbortSignal): { retry: boolean; status?: number; reason: string } {
  if (isAbortError(e, signal)) return { retry: false, reason: 'aborted' };
  const status = statusOf(e);
  const msg = (e as Error)?.message ?? String(e);
  if (status === 429) {
    if (codeOf(e) === 'insufficient_quota' || /insufficient[_ ]quota|exceeded your current quota/i.test(msg)) return { retry: false, status, reason: 'quota exhausted' };
    return { retry: true, status, reason: 'rate limited (429)' };
  }
  if (status === 408 || status === 409) return { retry: true, status, reason: `HTTP ${status}` };
  if (status !== undefined && status >= 500) return { retry: true, status, reason: `server error (${status})` };
  if (e instanceof StreamIdleError) return { retry: true, reason: `stalled stream (nothing for ${(e.idleMs / 1000).toFixed(1)} s)` };
  if (status === undefined) {
    // openai v6 throws APIConnectionError ("Connection error.") and APIConnectionTimeoutError
    // ("Request timed out."), whose name is plain "Error"; undici reports resets as "terminated".
    const name = `${(e as { name?: string })?.name ?? ''} ${(e as object)?.constructor?.name ?? ''}`;
    const cause = String((e as { cause?: { code?: unknown; message?: unknown } })?.cause?.code ?? (e as { cause?: { message?: unknown } })?.cause?.message ?? '');
    if (/APIConnectionTimeoutError|TimeoutError/.test(name) || /^Request timed out/i.test(msg)) return { retry: true, reason: `timed out waiting for the response (${msg.slice(0, 80)})` };
    if (/APIConnectionError/.test(name) || /^Connection error|ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|socket hang up|fetch failed|terminated|other side closed/i.test(`${msg} ${cause}`)) {
      return { retry: true, reason: `connection error (${[msg, cause].filter(Boolean).join(': ').slice(0, 120)})` };
    }
  }
  return { retry: false, status, reason: msg };
}

/** Delay before retry `attempt` (1-based): the server's Retry-After if given, else base * 2^(attempt-1) with jitter. */
export function retryDelayMs(e: unknown, attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ms = Number(header(e, 'retry-after-ms'));
  if (Number.isFinite(ms) && ms >= 0 && header(e, 'retry-after-ms') !== undefined) return Math.min(ms, maxMs);
  const ra = header(e, 'retry-after');
  if (ra !== undefined) {
    const s = Number(ra);
    if (Number.isFinite(s) && s >= 0) return Math.min(s * 1000, maxMs);
    const date = Date.parse(ra);
    if (Number.isFinite(date)) return Math.min(Math.max(0, date - Date.now()), maxMs);
  }
  const exp = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return Math.round(exp * (0.5 + 0.5 * random()));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason ?? new DOMException('aborted', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Retries ran out (or a retry was no longer safe) on an error that is otherwise worth retrying. */
export class RetriesExhaustedError extends Error {
  override readonly name = 'RetriesExhaustedError';
  constructor(readonly reason: string, readonly attempts: number, readonly status: number | undefined, override readonly cause: unknown, why: string) {
    super(`${reason}; ${why}`);
  }
}

export async function withRetries<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      const c = classify(e, o.signal);
      if (!c.retry) throw e;
      if (attempt > o.maxRetries) throw new RetriesExhaustedError(c.reason, attempt, c.status, e, `gave up after ${attempt} attempt${attempt === 1 ? '' : 's'} (NEUROSCOPE_LLM_RETRIES=${o.maxRetries})`);
      if (o.canRetry && !o.canRetry()) throw new RetriesExhaustedError(c.reason, attempt, c.status, e, 'not retried: part of the reply had already been shown');
      const delayMs = retryDelayMs(e, attempt, o.baseMs, o.maxMs);
      o.onRetry?.({ attempt, maxRetries: o.maxRetries, delayMs, status: c.status, reason: c.reason });
      await sleep(delayMs, o.signal);
    }
  }
}
