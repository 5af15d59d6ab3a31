import { describe, expect, it } from 'vitest';
import { backoffDelay, retryPolicy, shouldRetry } from '../../../src/resilience/retry.js';

describe('retry policy', () => {
  it('grows exponentially up to the cap, with bounded jitter', () => {
    const p = retryPolicy({ max_attempts: 6, initial_delay: '100ms', max_delay: '1s', multiplier: 2, jitter: 0.5 });
    expect(backoffDelay(p, 1, () => 0)).toBe(50);
    expect(backoffDelay(p, 1, () => 1)).toBe(100);
    expect(backoffDelay(p, 3, () => 1)).toBe(400);
    expect(backoffDelay(p, 10, () => 1)).toBe(1000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(p, 2);
      expect(d).toBeGreaterThanOrEqual(100);
      expect(d).toBeLessThanOrEqual(200);
    }
  });

  it('retries only retryable errors and only while attempts remain', () => {
    const p = retryPolicy({ max_attempts: 3 });
    expect(shouldRetry(p, 1, true)).toBe(true);
    expect(shouldRetry(p, 3, true)).toBe(false);
    expect(shouldRetry(p, 1, false)).toBe(false);
  });
});
