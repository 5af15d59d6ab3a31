/**
 * Per-service rate and concurrency limits on this worker: a token bucket per rate (requests
 * per minute, tokens per minute) and a FIFO semaphore for calls in flight. A call waits for
 * its turn rather than failing — the wait counts against the step's time limit, and an abort
 * (timeout, cancellation, a hedge won elsewhere) takes it out of the queue.
 * Cluster-wide limits (shared by every worker) are the PostgreSQL store's job.
 */

/** Refills continuously at `perMinute / 60_000` per ms, up to `perMinute` (one minute's burst). */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly perMinute: number, private readonly now: () => number = Date.now) {
    this.tokens = perMinute;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.perMinute, this.tokens + ((t - this.last) * this.perMinute) / 60_000);
    this.last = t;
  }

  /** Milliseconds until `n` tokens are available (0: now). */
  waitTime(n = 1): number {
    this.refill();
    const need = Math.min(n, this.perMinute) - this.tokens;
    return need <= 0 ? 0 : Math.ceil((need * 60_000) / this.perMinute);
  }

  /** Takes `n` tokens, waiting in line (FIFO) for them. A request larger than the bucket takes it all. */
  take(n: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(async () => {
      for (;;) {
        const wait = this.waitTime(n);
        if (wait === 0) break;
        await sleep(wait, signal);
      }
      this.tokens -= Math.min(n, this.perMinute);
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Gives back tokens taken on an estimate that turned out too high (or takes more, if negative). */
  adjust(delta: number): void {
    this.refill();
    this.tokens = Math.min(this.perMinute, this.tokens + delta);
  }
}

export class Semaphore {
  private active = 0;
  private readonly waiting: Array<{ resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal; onAbort?: () => void }> = [];

  constructor(private readonly limit: number) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.active < this.limit) {
      this.active++;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const entry: (typeof this.waiting)[number] = { resolve, reject, signal };
      if (signal) {
        entry.onAbort = () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.waiting.push(entry);
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) {
        // The slot passes straight to the next in line: `active` stays the same.
        if (next.onAbort) next.signal!.removeEventListener('abort', next.onAbort);
        next.resolve();
      } else this.active--;
    };
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
