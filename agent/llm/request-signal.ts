// One AbortController per LLM request, linked to the caller's signal only while the request runs:
// the SDKs add an abort listener to the signal they are given and never remove it, so passing the
// caller's own signal leaks one listener per request (MaxListenersExceededWarning after ~10). The
// same controller ends a stream that goes idle: `alive()` is called for every chunk, and a gap of
// idleMs without one aborts the request with a StreamIdleError.
import { StreamIdleError } from './types.ts';

/** A signal that aborts with `parent`, linked until dispose() (one listener on the parent at a time). */
export function linkedSignal(parent: AbortSignal | undefined): { controller: AbortController; dispose: () => void } {
  const controller = new AbortController();
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onAbort();
  parent?.addEventListener('abort', onAbort, { once: true });
  return { controller, dispose: () => parent?.removeEventListener('abort', onAbort) };
}

export async function withRequestSignal<T>(parent: AbortSignal | undefined, idleMs: number, run: (signal: AbortSignal, alive: () => void) => Promise<T>): Promise<T> {
  const { controller: ac, dispose } = linkedSignal(parent);
  let idle: NodeJS.Timeout | undefined;
  let stalled = false;
  const alive = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      stalled = true;
      ac.abort(new StreamIdleError(idleMs));
    }, idleMs);
  };
  try {
    const value = await run(ac.signal, alive);
    // The openai SDK ends an aborted stream quietly, as if the reply were complete.
    if (stalled) throw new StreamIdleError(idleMs);
    if (ac.signal.aborted) throw parent?.reason ?? new DOMException('aborted', 'AbortError');
    return value;
  } catch (e) {
    if (stalled && !parent?.aborted) throw new StreamIdleError(idleMs);
    throw e;
  } finally {
    clearTimeout(idle);
    dispose();
  }
}
