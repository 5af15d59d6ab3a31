/**
 * The service runtime's `CallLedger` on the store: every model call becomes an event in its
 * run's history and a row for cost reports (one transaction, group-committed with whatever
 * else is being written), budgets are reserved atomically in the run's row, and the response
 * cache lives in the store so that it survives restarts and is shared by every worker.
 */
import { BatonError } from '../errors.js';
import type { CallLedger, CallRecord } from '../services/runtime.js';
import { roundUsd } from '../services/pricing.js';
import type { Store } from '../store/store.js';

export class StoreLedger implements CallLedger {
  constructor(private readonly store: Store) {}

  async reserve(runId: string, amount: number): Promise<void> {
    const r = await this.store.reserveBudget(runId, amount);
    if (r.ok) return;
    throw new BatonError('BATON_BUDGET_EXCEEDED', {
      runId, budget: r.budget, spent: roundUsd(r.spent), reserved: roundUsd(r.reserved), estimate: roundUsd(amount),
    });
  }

  record(call: CallRecord, release: number): Promise<void> {
    return this.store.recordModelCall(call, release);
  }

  async cacheGet(key: string): Promise<unknown | undefined> {
    const v = await this.store.cacheGet(key, Date.now());
    return v === undefined ? undefined : (JSON.parse(v) as unknown);
  }

  async cachePut(key: string, value: unknown, ttlMs: number): Promise<void> {
    const now = Date.now();
    await this.store.cachePut(key, JSON.stringify(value ?? null), now, now + ttlMs);
  }
}
