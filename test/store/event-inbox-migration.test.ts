/**
 * The migration that scopes event ids to the namespace an event was sent to (SQLite builds the
 * inbox table anew; PostgreSQL drops a constraint): a store of the schema before it, holding
 * buffered and consumed events, keeps them, and each id is still recognised in its own
 * namespace while another namespace's event of the same id is delivered.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PG_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { STORE_KINDS, createTestDatabase, type StoreKind, type TestDatabase } from '../helpers/stores.js';

/** How many migrations of each store came before the one under test. */
const BEFORE: Record<StoreKind, number> = { sqlite: 16, postgres: 14 };
const KEY = 'event:paid:o1';

/** The rows an older Baton left: an event buffered for team-a, one consumed by a default-namespace wait, one for every namespace. */
const ROWS: Array<[string, string, string, number, number, number | null, string | null, string | null]> = [
  [KEY, 'buffered-a', '{"n":1}', Date.now() - 1000, Date.now() + 3_600_000, null, null, 'team-a'],
  [KEY, 'consumed', '{"n":2}', Date.now() - 900, Date.now() + 3_600_000, Date.now() - 800, 'r1/a', 'default'],
  [KEY, 'anywhere', '{"n":3}', Date.now() - 700, Date.now() + 3_600_000, null, null, null],
];
const INSERT = 'INSERT INTO event_inbox (wait_key, event_id, payload, arrived_at, expires_at, consumed_at, consumed_by, namespace) VALUES ';

describe.each(STORE_KINDS)('the event id migration on %s', (kind) => {
  let cleanup: () => Promise<void> = async () => undefined;
  afterEach(async () => {
    await cleanup();
    cleanup = async () => undefined;
  });

  /** A store of the schema before the migration, with ROWS, opened (and so migrated) by this Baton. */
  async function olderStore(): Promise<Store> {
    if (kind === 'sqlite') {
      const dir = mkdtempSync(join(tmpdir(), 'baton-inbox-mig-'));
      const file = join(dir, 'baton.db');
      const db = new Database(file);
      db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
      for (const m of SQLITE_MIGRATIONS.slice(0, BEFORE.sqlite)) db.exec(m);
      db.prepare(`INSERT INTO meta VALUES ('schema_version', ?)`).run(String(BEFORE.sqlite));
      for (const r of ROWS) db.prepare(`${INSERT}(?, ?, ?, ?, ?, ?, ?, ?)`).run(...r);
      db.close();
      const store = new SqliteStore(file);
      cleanup = async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      };
      return store;
    }
    const db: TestDatabase = await createTestDatabase();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query('CREATE TABLE baton_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
      for (const m of PG_MIGRATIONS.slice(0, BEFORE.postgres)) await c.query(m);
      await c.query(`INSERT INTO baton_meta VALUES ('schema_version', $1)`, [String(BEFORE.postgres)]);
      for (const r of ROWS) await c.query(`${INSERT}($1, $2, $3, $4, $5, $6, $7, $8)`, r);
    } finally {
      await c.end();
    }
    const { PostgresStore } = await import('../../src/store/postgres/postgres-store.js');
    const store = await PostgresStore.open(db.url, { poolSize: 2 });
    expect(store.migrated).toEqual({ from: BEFORE.postgres, to: PG_MIGRATIONS.length });
    cleanup = async () => {
      await store.close();
      await db.drop();
    };
    return store;
  }

  it('keeps the buffered and consumed events; each id counts in its own namespace only', async () => {
    const store = await olderStore();
    const deliver = (eventId: string, namespace?: string) => store.deliverEvent({
      waitKey: KEY, namespace, eventId, payload: {}, at: Date.now(), expiresAt: Date.now() + 3_600_000, state: (st) => st.state, events: [],
    });
    expect(await deliver('buffered-a', 'team-a')).toEqual({ buffered: false, duplicate: true });
    expect(await deliver('consumed', 'default')).toEqual({ buffered: false, duplicate: true });
    expect(await deliver('anywhere')).toEqual({ buffered: false, duplicate: true });
    expect(await deliver('buffered-a', 'team-b')).toEqual({ buffered: true, duplicate: false });
    expect(await deliver('anywhere', 'team-b')).toEqual({ buffered: true, duplicate: false });
    // The buffered event still waits for a team-a wait with a lookback: it takes it.
    await store.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    await store.admitRun({
      id: 'r2', versionId: 'wf@1', workflow: 'wf', inputJson: '{}', createdAt: Date.now(), namespace: 'team-a', events: [],
      steps: [{ key: 'a', stepId: 'a', status: 'scheduled', pendingDeps: 0, owner: 'w1' }],
    });
    const armed = await store.commit({
      fence: { runId: 'r2', key: 'a', owner: 'w1', attempt: 1 },
      update: { status: 'waiting', waitKey: KEY, owner: null, state: {} },
      events: [],
      inbox: { since: Date.now() - 60_000, namespace: 'team-a', resume: (payload) => ({ state: { payload }, events: [] }) },
    });
    expect(armed).toMatchObject({ ok: true, consumed: true });
    expect(await store.getStep('r2', 'a')).toMatchObject({ state: { payload: { n: 1 } } });
  });
});
