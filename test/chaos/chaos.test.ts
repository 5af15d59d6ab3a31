/**
 * The chaos test's short form (CI): 4 worker processes, 600 runs of mixed shapes, a worker
 * SIGKILLed and replaced every 0.7–1.5 s, PostgreSQL restarted once. `npm run chaos` runs the
 * long form (2,000 runs). It runs alone (scripts/test.mjs runs it after the other suites),
 * since restarting PostgreSQL would disturb suites running beside it.
 */
import { describe, expect, it } from 'vitest';
import { chaos } from './chaos.js';

describe('cluster chaos', () => {
  it('completes every run with every result recorded once while workers are killed and PostgreSQL restarts', async () => {
    const r = await chaos({
      runs: 600, workers: 4, killEvery: [700, 1500], restartPostgres: true,
      adminUrl: process.env.BATON_TEST_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      timeoutMs: 240_000, log: (l) => console.log(`chaos: ${l}`),
    });
    console.log(`chaos: ${JSON.stringify({ ...r, notCompleted: r.notCompleted.slice(0, 5), wrongOutputs: r.wrongOutputs.slice(0, 5) })}`);
    expect(r.notCompleted).toEqual([]);
    expect(r.completed).toBe(600);
    expect(r.wrongOutputs).toEqual([]);
    expect(r.duplicateResults).toEqual([]);
    expect(r.timersFiredTwice).toEqual([]);
    expect(r.postgresRestarted).toBe(true);
    expect(r.kills).toBeGreaterThanOrEqual(3);
  }, 300_000);
});
