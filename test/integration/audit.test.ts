/**
 * The audit trail on every store: hash-chained events and the anchor chain verified from the
 * rows as stored; a row edited, deleted or an anchor altered directly in the database (raw SQL,
 * outside Baton) is caught and named.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { verifyStore } from '../../src/audit/verify.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

const FLOW = `
name: audited
steps:
  - { id: a, kind: transform, expression: "{ 'n': input.n + 1 }" }
  - { id: b, kind: transform, needs: [a], expression: "{ 'n': steps.a.output.n * 2, 'note': input.note }" }
`;

describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-audit-');

  /** Runs raw SQL on the test's database, as someone with database access (not Baton) would. */
  async function raw(b: Baton, sql: string, params: unknown[] = []): Promise<void> {
    if (b.store.kind === 'sqlite') {
      const db = new Database(join(suite.dir, 'baton.db'));
      try {
        db.prepare(sql.replace(/\$\d+/g, '?')).run(...params);
      } finally {
        db.close();
      }
      return;
    }
    const url = (b.store as unknown as { config: { connectionString: string } }).config.connectionString;
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql, params);
    } finally {
      await c.end();
    }
  }

  async function twoRuns(b: Baton): Promise<[string, string]> {
    await b.register(FLOW);
    const r1 = await b.run('audited', { n: 1, note: 'first' });
    const r2 = await b.run('audited', { n: 2, note: 'second' });
    expect(r1.status).toBe('completed');
    expect(r2.status).toBe('completed');
    // PostgreSQL anchors run ends in batches (a worker's sweep, or before verifying): do it now.
    await b.store.anchorPending?.();
    return [r1.id, r2.id];
  }

  it('chains every event and anchors every ended run; an untouched store verifies', async () => {
    const b = await suite.baton();
    const [r1, r2] = await twoRuns(b);
    const rows = await b.store.auditEvents(r1);
    expect(rows.length).toBeGreaterThan(3);
    expect(rows.every((r) => typeof r.hash === 'string' && r.hash.length === 64)).toBe(true);
    const anchors = await b.store.auditAnchors();
    expect(anchors.map((a) => a.runId)).toEqual([r1, r2]);
    expect(anchors[0].runFinalHash).toBe(rows.at(-1)!.hash);
    const report = await verifyStore(b.store);
    expect(report).toMatchObject({ ok: true, runs: 2, anchors: 2, problems: [] });
    expect(report.events).toBeGreaterThan(6);
    expect((await verifyStore(b.store, r2)).ok).toBe(true);
  });

  it('anchors a run that ended in this process within about a second, without a sweep or a verify', async () => {
    // The workers' sweep comes every lease/3 (100 s here): this must not wait for it. The wait
    // allows for a slow machine (the anchoring itself is due about a second after the end).
    const b = await suite.baton({ leaseMs: 300_000 });
    await b.register(FLOW);
    const r = await b.run('audited', { n: 1, note: 'soon' });
    expect(r.status).toBe('completed');
    await until(async () => (await b.store.auditAnchors()).some((a) => a.runId === r.id), 'the run end to be anchored', 15_000);
  });

  it('catches an event whose data was edited in the database, naming its seq', async () => {
    const b = await suite.baton();
    const [r1] = await twoRuns(b);
    const rows = await b.store.auditEvents(r1);
    const target = rows.find((r) => r.dataText?.includes('first'))!;
    expect(target).toBeDefined();
    await raw(b, 'UPDATE events SET data = $1 WHERE run_id = $2 AND seq = $3', [target.dataText!.replace('first', 'forged'), r1, target.seq]);
    const report = await verifyStore(b.store);
    expect(report.ok).toBe(false);
    expect(report.problem).toMatchObject({ kind: 'altered_event', runId: r1, seq: target.seq, found: target.hash });
    expect((await verifyStore(b.store, r1)).problem).toMatchObject({ kind: 'altered_event', seq: target.seq });
  });

  it('catches a deleted event (a gap) and a deleted tail (the anchor no longer matches)', async () => {
    const b = await suite.baton();
    const [r1, r2] = await twoRuns(b);
    await raw(b, 'DELETE FROM events WHERE run_id = $1 AND seq = 2', [r1]);
    expect((await verifyStore(b.store)).problem).toMatchObject({ kind: 'missing_event', runId: r1, seq: 2 });
    const last = (await b.store.auditEvents(r2)).at(-1)!;
    await raw(b, 'DELETE FROM events WHERE run_id = $1 AND seq = $2', [r2, last.seq]);
    const report = await verifyStore(b.store, r2);
    expect(report.problem).toMatchObject({ kind: 'missing_event', runId: r2, seq: last.seq });
  });

  it('catches an altered anchor and a run deleted whole', async () => {
    const b = await suite.baton();
    const [r1, r2] = await twoRuns(b);
    await raw(b, `UPDATE audit_anchors SET run_final_hash = $1 WHERE run_id = $2`, ['0'.repeat(64), r1]);
    const report = await verifyStore(b.store);
    expect(report.ok).toBe(false);
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'altered_anchor', seq: 1, runId: r1 }));
    await raw(b, `DELETE FROM events WHERE run_id = $1`, [r2]);
    await raw(b, `DELETE FROM steps WHERE run_id = $1`, [r2]);
    await raw(b, `DELETE FROM runs WHERE id = $1`, [r2]);
    expect((await verifyStore(b.store)).problems).toContainEqual(expect.objectContaining({ kind: 'missing_run', runId: r2 }));
  });
});
