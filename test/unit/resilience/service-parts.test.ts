/** The building blocks of per-service resilience and pricing, on their own. */
import { describe, expect, it } from 'vitest';
import { CircuitState } from 'cockatiel';
import { WindowBreaker } from '../../../src/resilience/breaker.js';
import { LatencyTracker, hedgeDelay } from '../../../src/resilience/hedge.js';
import { Semaphore, TokenBucket } from '../../../src/resilience/limits.js';
import { callCost, maxCallCost } from '../../../src/services/pricing.js';
import { parseJsonAnswer } from '../../../src/services/structured.js';

describe('window breaker', () => {
  it('opens after N failures inside the window, forgetting older ones', () => {
    let now = 0;
    const b = new WindowBreaker(3, 1000, () => now);
    expect(b.failure(CircuitState.Closed)).toBe(false);
    now = 500;
    expect(b.failure(CircuitState.Closed)).toBe(false);
    now = 1200; // the first failure has left the window
    expect(b.failure(CircuitState.Closed)).toBe(false);
    expect(b.recent()).toBe(2);
    now = 1300;
    expect(b.failure(CircuitState.Closed)).toBe(true);
    // A failed half-open probe re-opens at once; a good one resets the count.
    expect(b.failure(CircuitState.HalfOpen)).toBe(true);
    b.failure(CircuitState.Closed);
    b.success(CircuitState.HalfOpen);
    expect(b.recent()).toBe(0);
  });
});

describe('hedge delay', () => {
  it('is the chosen percentile of recent successful latencies once there are enough samples', () => {
    const t = new LatencyTracker(100);
    for (let i = 1; i <= 100; i++) t.record(i);
    expect(t.percentile(50)).toBe(50);
    expect(t.percentile(95)).toBe(95);
    expect(hedgeDelay({ percentile: 95, minSamples: 20 }, t)).toBe(95);
    expect(hedgeDelay({ percentile: 95, minSamples: 200 }, t)).toBeUndefined();
    expect(hedgeDelay({ afterMs: 250, minSamples: 20 }, new LatencyTracker())).toBe(250);
    // The ring keeps the newest samples only.
    for (let i = 0; i < 100; i++) t.record(1000);
    expect(t.percentile(50)).toBe(1000);
  });
});

describe('limits', () => {
  it('a token bucket makes a caller wait for tokens it does not have, in order', async () => {
    let now = 0;
    const bucket = new TokenBucket(60, () => now); // one token a second, a minute's burst
    await bucket.take(60);
    expect(bucket.waitTime(1)).toBe(1000);
    now = 30_000;
    expect(bucket.waitTime(30)).toBe(0);
    bucket.adjust(-30);
    expect(bucket.waitTime(1)).toBe(1000);
  });

  it('a semaphore passes its slot to the next in line and drops a waiter whose signal aborts', async () => {
    const s = new Semaphore(1);
    const first = await s.acquire();
    const ac = new AbortController();
    const gaveUp = s.acquire(ac.signal);
    const next = s.acquire();
    expect(s.queued).toBe(2);
    ac.abort(new Error('timeout'));
    await expect(gaveUp).rejects.toThrow('timeout');
    first();
    const release = await next;
    expect(s.inFlight).toBe(1);
    release();
    expect(s.inFlight).toBe(0);
  });
});

describe('pricing', () => {
  it('bills input, output and cached input at their own prices plus a per-call price', () => {
    const price = { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3, perCall: 0.001 };
    expect(callCost({ inputTokens: 1000, outputTokens: 200, cachedInputTokens: 5000 }, price)).toBe(0.0085);
    // The worst case a budget reserves: estimated input (chars/4) and the whole output allowance.
    expect(maxCallCost({ operation: 'chat', messages: [{ role: 'user', content: 'x'.repeat(396) }] }, price, 1000)).toBe(0.0163);
  });
});

describe('JSON answers', () => {
  it('takes JSON out of prose and code fences and repairs what can be repaired mechanically', () => {
    expect(parseJsonAnswer('{"a":1}')).toEqual({ ok: true, value: { a: 1 }, repaired: false });
    expect(parseJsonAnswer('Here you go:\n```json\n{"a": 1, "b": [1, 2,],}\n```')).toMatchObject({ ok: true, value: { a: 1, b: [1, 2] }, repaired: true });
    expect(parseJsonAnswer("{'a': 'single quotes'}")).toMatchObject({ ok: true, value: { a: 'single quotes' } });
    expect(parseJsonAnswer('I cannot help with that.')).toEqual({ ok: false, problem: 'the answer contains no JSON object or array' });
  });
});
