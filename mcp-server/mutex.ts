// One tool call at a time on the shared model: calls from every client queue here in arrival order.
// A call cancelled while it waits leaves the queue at once.

export class CancelledWhileQueued extends Error {}

export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  /** Calls waiting or running. */
  get pending(): number {
    return this.waiting;
  }

  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    // Later callers wait for everything before them, whether or not this call ever runs.
    this.tail = prev.then(() => mine);
    this.waiting++;
    try {
      await waitUnlessAborted(prev, signal);
      if (signal?.aborted) throw new CancelledWhileQueued('cancelled while waiting for an earlier call to finish');
      return await fn();
    } finally {
      this.waiting--;
      release();
    }
  }
}

function waitUnlessAborted(p: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (!signal) return p;
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    p.then(done, done);
  });
}
