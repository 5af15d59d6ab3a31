/**
 * What the audit trail costs on PostgreSQL (issue 8).
 * 1. End-to-end: N three-step runs of no-op functions through one engine (concurrency 32),
 *    runs/s, with every event hash-chained in its statement and run ends marked for anchoring.
 * 2. The anchoring sweep: anchors per second when it anchors pending run ends in batches of 500
 *    (one lock on the anchor head and one commit per batch).
 * Anchoring each run end in its own transaction was measured first and dropped: the head's row
 * lock is held through the COMMIT's fsync, so run ends were capped at about one per commit
 * latency (~400/s here) and end-to-end throughput fell by about a third.
 * Usage: npx tsx bench/audit-anchor.ts [runs=1000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { Baton } from '../src/index.js';
import { PostgresStore } from '../src/store/postgres/postgres-store.js';
import { createTestDatabase } from '../test/helpers/stores.js';

const runs = Number(process.argv[2] ?? 1000);
const root = resolve(import.meta.dirname, '..');

const db = await createTestDatabase('baton_anchor_bench');
const dir = mkdtempSync(join(tmpdir(), 'baton-anchor-'));
try {
  const { noop } = (await import(new URL('./cluster/functions.mjs', import.meta.url).href)) as { noop: (i: unknown) => Promise<unknown> };
  const baton = await Baton.open({ store: await PostgresStore.open(db.url, { poolSize: 10 }), dir, functions: { noop }, concurrency: 32 });
  const v = await baton.registerFile(join(root, 'bench/cluster/three.yaml'));
  // Warm-up, then the timed batch.
  await Promise.all(Array.from({ length: 50 }, async (_, i) => baton.wait(await baton.start(v, { i }))));
  let t0 = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < runs; i++) ids.push(await baton.start(v, { i }));
  await Promise.all(ids.map((id) => baton.wait(id)));
  const e2e = runs / ((performance.now() - t0) / 1000);
  const anchors = await baton.store.auditAnchors();
  await baton.close();

  // Anchoring in batches: what the sweep costs per run end (one lock and one commit per batch).
  const pending = await PostgresStore.open(db.url, { poolSize: 2 });
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query('UPDATE runs SET anchor_pending = TRUE');
  await c.end();
  t0 = performance.now();
  let n = 0;
  for (let k; (k = await pending.anchorPending(500)) > 0;) n += k;
  const anchorRate = n / ((performance.now() - t0) / 1000);
  await pending.close();
  process.stdout.write(`${JSON.stringify({ runs, endToEndRunsPerSec: Math.round(e2e), anchorsWritten: anchors.length, batchedAnchorsPerSec: Math.round(anchorRate) })}\n`);
} finally {
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
}
