/**
 * Races a step against its time limit. On expiry the step's AbortController is aborted (so
 * well-behaved code such as fetch stops) and BATON_STEP_TIMEOUT, a retryable error, is thrown.
 */
import { BatonError } from '../errors.js';

export async function withTimeout<T>(work: (signal: AbortSignal) => Promise<T>, timeoutMs: number | undefined, parent: AbortSignal, step: string): Promise<T> {
  if (!timeoutMs) return work(parent);
  const ac = new AbortController();
  const onParentAbort = () => ac.abort(parent.reason);
  parent.addEventListener('abort', onParentAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new BatonError('BATON_STEP_TIMEOUT', { step, timeoutMs });
      ac.abort(err);
      reject(err);
    }, timeoutMs);
  });
  try {
    return await Promise.race([work(ac.signal), expired]);
  } finally {
    clearTimeout(timer);
    parent.removeEventListener('abort', onParentAbort);
  }
}
