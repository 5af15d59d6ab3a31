/**
 * Retry decisions: exponential backoff with jitter. Whether an error is retried is read from
 * its `retryable` field (set by the error table or by the code that threw), never its text.
 */
import type { RetryPolicyDoc } from '../spec/types.js';
import { parseDuration } from '../util/duration.js';

export interface RetryPolicy {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
  /** 0..1: the share of each delay that is randomised. */
  jitter: number;
}

export const NO_RETRY: RetryPolicy = { maxAttempts: 1, initialDelayMs: 200, maxDelayMs: 30_000, multiplier: 2, jitter: 0.2 };

export function retryPolicy(doc: RetryPolicyDoc | undefined, base: RetryPolicy = NO_RETRY): RetryPolicy {
  if (!doc) return base;
  return {
    maxAttempts: doc.max_attempts ?? base.maxAttempts,
    initialDelayMs: doc.initial_delay !== undefined ? parseDuration(doc.initial_delay, 'retry.initial_delay') : base.initialDelayMs,
    maxDelayMs: doc.max_delay !== undefined ? parseDuration(doc.max_delay, 'retry.max_delay') : base.maxDelayMs,
    multiplier: doc.multiplier ?? base.multiplier,
    jitter: doc.jitter ?? base.jitter,
  };
}

/** Delay before attempt `attempt + 1`, after `attempt` (1-based) failed. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const raw = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** (attempt - 1));
  const jittered = raw * (1 - policy.jitter) + raw * policy.jitter * random();
  return Math.max(0, Math.round(jittered));
}

export function shouldRetry(policy: RetryPolicy, attempt: number, retryable: boolean): boolean {
  return retryable && attempt < policy.maxAttempts;
}
