/**
 * The soak test's short form (the long one is `npm run soak`, 10 minutes): a `baton serve
 * --no-worker` gateway and two `baton worker` processes on a fresh PostgreSQL database, driven
 * over loopback with asynchronous POST /runs at a steady rate for 45 s, with model steps whose
 * primary service answers 503s and garbage now and then. Every accepted run must complete,
 * exactly once, and no request may be refused. (Memory growth is reported but only judged by
 * the long form: 45 s cannot tell a leak from warm-up.)
 */
import { describe, expect, it } from 'vitest';
import { printSoak, soak } from '../../bench/soak.js';
import { STORE_KINDS } from '../helpers/stores.js';

describe.runIf(STORE_KINDS.includes('postgres'))('soak (short form)', () => {
  it('45 s of sustained POST /runs through a gateway and two PostgreSQL workers: every accepted run completes once', async () => {
    const r = await soak({ durationMs: 45_000, rate: 15, workers: 2, sampleSec: 5, drainMs: 60_000, faultRate: 0.1, quiet: true });
    console.log(printSoak(r));
    expect(r.problems).toEqual([]);
    expect(r.accepted).toBeGreaterThan(0);
    expect(r.accepted).toBe(r.sent);
    expect(r.completed).toBe(r.accepted);
    expect(r.unknownRuns).toBe(0);
    // The fault injection really happened and was survived.
    expect(r.modelCalls.faultsServed).toBeGreaterThan(0);
    expect(r.ok).toBe(true);
  }, 240_000);
});
