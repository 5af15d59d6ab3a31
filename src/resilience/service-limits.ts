/**
 * A service's rate and concurrency limits, behind one interface with two homes:
 *
 * - `LocalLimits`: in this process (token buckets and a FIFO semaphore). Right for the
 *   embedded engine, where one process does all the calling.
 * - `SharedLimits`: in the store, so that every worker of a cluster draws from the same
 *   buckets and slots (`takeTokens`, `acquireSlot`). A waiting caller polls with a short,
 *   jittered back-off; a crashed holder's slot expires after its lease.
 *
 * Either way a call waits for its turn rather than failing; the wait counts against the step's
 * time limit, and an abort takes the caller out of line.
 */
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/store.js';
import { Semaphore, TokenBucket, sleep } from './limits.js';

export interface Limits {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  concurrency?: number;
}

export interface ServiceLimiter {
  /** Waits for a request, `tokens` tokens and a slot; returns the slot's release. */
  acquire(tokens: number, signal: AbortSignal): Promise<() => void>;
  /** Corrects the token estimate once the vendor reported what the call used. */
  settle(estimated: number, used: number): void;
}

export class LocalLimits implements ServiceLimiter {
  private readonly requests?: TokenBucket;
  private readonly tokens?: TokenBucket;
  private readonly slots?: Semaphore;

  constructor(l: Limits) {
    if (l.requestsPerMinute) this.requests = new TokenBucket(l.requestsPerMinute);
    if (l.tokensPerMinute) this.tokens = new TokenBucket(l.tokensPerMinute);
    if (l.concurrency) this.slots = new Semaphore(l.concurrency);
  }

  async acquire(tokens: number, signal: AbortSignal): Promise<() => void> {
    await this.requests?.take(1, signal);
    await this.tokens?.take(tokens, signal);
    return (await this.slots?.acquire(signal)) ?? (() => undefined);
  }

  settle(estimated: number, used: number): void {
    this.tokens?.adjust(estimated - used);
  }
}

export class SharedLimits implements ServiceLimiter {
  constructor(
    private readonly store: Pick<Store, 'takeTokens' | 'acquireSlot' | 'releaseSlot'>,
    private readonly name: string,
    private readonly limits: Limits,
    /** How long a slot is held if its holder never releases it (the service's timeout plus a margin). */
    private readonly leaseMs: number,
  ) {}

  async acquire(tokens: number, signal: AbortSignal): Promise<() => void> {
    const l = this.limits;
    if (l.requestsPerMinute) await this.take(`${this.name}:requests`, l.requestsPerMinute, 1, signal);
    if (l.tokensPerMinute) await this.take(`${this.name}:tokens`, l.tokensPerMinute, tokens, signal);
    if (!l.concurrency) return () => undefined;
    const holder = randomBytes(8).toString('hex');
    for (let delay = 5; ; delay = Math.min(200, delay * 2)) {
      const now = Date.now();
      if (await this.store.acquireSlot(`${this.name}:slots`, l.concurrency, holder, now, now + this.leaseMs)) break;
      await sleep(delay * (0.5 + Math.random()), signal);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // A release that fails is not worth failing the call over: the slot expires with its lease.
      this.store.releaseSlot(`${this.name}:slots`, holder).catch(() => undefined);
    };
  }

  settle(estimated: number, used: number): void {
    if (this.limits.tokensPerMinute && estimated !== used) {
      // Negative takes give back what the estimate over-reserved.
      this.store.takeTokens(`${this.name}:tokens`, this.limits.tokensPerMinute, used - estimated, Date.now()).catch(() => undefined);
    }
  }

  private async take(bucket: string, perMinute: number, n: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      const wait = await this.store.takeTokens(bucket, perMinute, n, Date.now());
      if (wait === 0) return;
      await sleep(Math.min(wait, 1000) * (0.9 + Math.random() * 0.2), signal);
    }
  }
}
