/**
 * PostgresStore against a real PostgreSQL server: the shared conformance suite, then what only
 * a networked, multi-process store has to get right: concurrent claimers, NOTIFY wake-ups,
 * concurrent migrations, a database that is away or restarts under us, and a commit whose
 * acknowledgement was lost. Each test gets a fresh database `baton_t_<random>` created through
 * the admin connection (`BATON_TEST_PG_ADMIN`) and dropped afterwards. No mocks: failures are
 * produced by the server itself (pg_terminate_backend, held row locks, a dead port); the one
 * injected fault is the store's own `afterCommitHook`, which makes the server kill the
 * connection right after a COMMIT succeeded.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BatonError } from '../../src/errors.js';
import { PG_MIGRATIONS, migrate } from '../../src/store/postgres/migrations.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { NewRun, StepCommit } from '../../src/store/store.js';
import { storeConformance } from './conformance.js';
import { until } from '../helpers/wait.js';

const ADMIN = process.env.BATON_TEST_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function admin<T>(fn: (c: pg.Client) => Promise<T>, url = ADMIN): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function createDb(): Promise<{ name: string; url: string }> {
  const name = `baton_t_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(ADMIN);
  u.pathname = `/${name}`;
  return { name, url: u.toString() };
}

async function dropDb(name: string): Promise<void> {
  await admin(async (c) => {
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    await c.query(`DROP DATABASE IF EXISTS ${name}`);
  });
}

let conformanceDb: { name: string; url: string } | undefined;
storeConformance('postgres', {
  async open() {
    conformanceDb = await createDb();
    return PostgresStore.open(conformanceDb.url, { poolSize: 4 });
  },
  async cleanup() {
    if (conformanceDb) await dropDb(conformanceDb.name);
    conformanceDb = undefined;
  },
});

function oneStepRuns(n: number, prefix = 'r'): NewRun[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${String(i).padStart(4, '0')}`, versionId: 'wf@1', workflow: 'wf', inputJson: '{}', createdAt: Date.now(), events: [],
    steps: [{ key: 'only', stepId: 'only', status: 'scheduled' as const, pendingDeps: 0 }],
  }));
}

function joinRun(id: string, owner = 'w1'): NewRun {
  return {
    id, versionId: 'wf@1', workflow: 'wf', inputJson: '{}', createdAt: Date.now(), events: [{ type: 'run.created', at: Date.now() }],
    steps: [
      { key: 'a', stepId: 'a', status: 'scheduled', pendingDeps: 0, owner },
      { key: 'b', stepId: 'b', status: 'scheduled', pendingDeps: 0, owner },
      { key: 'join', stepId: 'join', status: 'pending', pendingDeps: 2 },
    ],
  };
}

function succeed(runId: string, key: string, owner: string, extra: Partial<StepCommit> = {}): StepCommit {
  return {
    fence: { runId, key, owner, attempt: 1 },
    update: { status: 'succeeded', outputJson: `"${key}"`, owner: null, finishedAt: Date.now() },
    events: [{ type: 'step.succeeded', stepKey: key, at: Date.now() }],
    decrement: key === 'join' ? [] : [{ key: 'join', live: true }],
    ...extra,
  };
}

async function expectBatonError(p: Promise<unknown>, code: string): Promise<BatonError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BatonError);
    expect((e as BatonError).code).toBe(code);
    return e as BatonError;
  }
  throw new Error(`expected ${code}, but it resolved`);
}

describe('postgres store specifics', () => {
  let db: { name: string; url: string };
  const opened: PostgresStore[] = [];
  const open = async (opts: Parameters<typeof PostgresStore.open>[1] = {}): Promise<PostgresStore> => {
    const s = await PostgresStore.open(db.url, { poolSize: 4, ...opts });
    opened.push(s);
    return s;
  };

  beforeEach(async () => {
    db = await createDb();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    await dropDb(db.name);
  });

  it('two stores claiming 500 steps at once never claim one twice and together claim all', async () => {
    const [s1, s2] = [await open(), await open()];
    await s1.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    for (const r of oneStepRuns(500)) await s1.admitRun(r);
    const claimAll = async (s: PostgresStore, w: string): Promise<string[]> => {
      const got: string[] = [];
      for (;;) {
        // Three claimers per store: six concurrent transactions competing for the same rows.
        const batches = await Promise.all([0, 1, 2].map(() => s.claimSteps(w, 7, Date.now())));
        const flat = batches.flat();
        if (flat.length === 0) return got;
        got.push(...flat.map((c) => c.runId));
      }
    };
    const [a, b] = await Promise.all([claimAll(s1, 'w1'), claimAll(s2, 'w2')]);
    const all = [...a, ...b];
    expect(new Set(all).size).toBe(all.length);
    expect(all).toHaveLength(500);
    // Both took part (neither blocked the other out).
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    const owners = await admin((c) => c.query(`SELECT owner, COUNT(*)::int AS n FROM steps GROUP BY owner ORDER BY owner`), db.url);
    expect(owners.rows).toEqual([{ owner: 'w1', n: a.length }, { owner: 'w2', n: b.length }]);
  });

  it('delivers a NOTIFY to listen() after an admitRun that leaves a step unclaimed (not after one that leaves none, nor after stop)', async () => {
    const [writer, worker] = [await open(), await open()];
    await writer.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    const seen: number[] = [];
    const stop = await worker.listen(() => seen.push(Date.now()));
    // A run whose steps are all claimed by their admitter wakes nobody.
    await writer.admitRun(joinRun('owned'));
    await new Promise((r) => setTimeout(r, 150));
    expect(seen).toEqual([]);
    await writer.admitRun(oneStepRuns(1, 'free')[0]);
    // listen() has no polling of its own: any call proves the notification arrived (how fast is
    // the benchmark's business, not a test's on a shared machine).
    await until(async () => seen.length > 0, 'the notification');
    await stop();
    seen.length = 0;
    await writer.admitRun(oneStepRuns(1, 'after')[0]);
    await new Promise((r) => setTimeout(r, 150));
    expect(seen).toEqual([]);
  });

  it('listen() re-LISTENs after its connection is killed', async () => {
    const [writer, worker] = [await open(), await open({ applicationName: 'baton-listener-test' })];
    await writer.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    let woke = 0;
    await worker.listen(() => woke++);
    await admin((c) => c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'baton-listener-test' AND query ILIKE 'LISTEN%'`));
    // Reconnected: it says so once (notifications may have been missed), then hears new ones.
    for (let i = 0; i < 200 && woke === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(woke).toBeGreaterThan(0);
    const before = woke;
    await writer.admitRun(oneStepRuns(1, 'x')[0]);
    for (let i = 0; i < 100 && woke === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(woke).toBeGreaterThan(before);
  });

  it('runs migrations once when 4 stores open at once', async () => {
    const stores = await Promise.all([0, 1, 2, 3].map(() => open()));
    expect(stores.map((s) => s.migrated.from).sort()).toEqual([0, PG_MIGRATIONS.length, PG_MIGRATIONS.length, PG_MIGRATIONS.length]);
    const meta = await admin((c) => c.query(`SELECT key, value FROM baton_meta ORDER BY key`), db.url);
    expect(meta.rows.map((r) => r.key)).toEqual([...PG_MIGRATIONS.map((_, i) => `migrated_${i + 1}`).sort(), 'schema_version']);
    expect(meta.rows.at(-1).value).toBe(String(PG_MIGRATIONS.length));
    // `baton migrate` on an up-to-date database changes nothing.
    expect(await migrate(db.url)).toEqual({ from: PG_MIGRATIONS.length, to: PG_MIGRATIONS.length });
  });

  it('refuses a database with a newer schema_version and leaves it untouched', async () => {
    await admin(async (c) => {
      await c.query('CREATE TABLE baton_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
      await c.query(`INSERT INTO baton_meta VALUES ('schema_version', '999')`);
    }, db.url);
    const e = await expectBatonError(PostgresStore.open(db.url), 'BATON_STORE_SCHEMA_NEWER');
    expect(e.details).toMatchObject({ found: 999, supported: PG_MIGRATIONS.length });
    const tables = await admin((c) => c.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`), db.url);
    expect(tables.rows.map((r) => r.tablename)).toEqual(['baton_meta']);
    const meta = await admin((c) => c.query('SELECT * FROM baton_meta'), db.url);
    expect(meta.rows).toEqual([{ key: 'schema_version', value: '999' }]);
  });

  it('fails at once with BATON_STORE_OPEN for an unknown database, an unknown user and a malformed URL', async () => {
    const u = new URL(db.url);
    u.pathname = '/baton_no_such_db';
    const t0 = Date.now();
    const noDb = await expectBatonError(PostgresStore.open(u.toString(), { retryForMs: 30_000 }), 'BATON_STORE_OPEN');
    expect(noDb.message).toMatch(/database "baton_no_such_db" does not exist.*create it/);
    const v = new URL(db.url);
    v.username = 'baton_no_such_user';
    v.password = 's3cret';
    const noUser = await expectBatonError(PostgresStore.open(v.toString(), { retryForMs: 30_000 }), 'BATON_STORE_OPEN');
    expect(noUser.message).toMatch(/baton_no_such_user.*check the user and password/);
    // The password never reaches a message.
    expect(noUser.message).not.toContain('s3cret');
    expect(noUser.message).toContain('***');
    expect(Date.now() - t0).toBeLessThan(5000);
    const bad = await expectBatonError(PostgresStore.open('postgres://user@:bad port/db'), 'BATON_STORE_OPEN');
    expect(bad.message).toMatch(/not a valid URL: expected postgres:\/\/user/);
    await expectBatonError(PostgresStore.open('mysql://x@localhost/db'), 'BATON_STORE_OPEN');
  });

  it('retries a database that is not there for retryForMs, then throws BATON_STORE_BUSY', async () => {
    // Nothing listens on port 1: every connection attempt is refused.
    const t0 = Date.now();
    const e = await expectBatonError(PostgresStore.open('postgres://postgres:pw@127.0.0.1:1/x', { retryForMs: 1500 }), 'BATON_STORE_BUSY');
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1400);
    expect(took).toBeLessThan(5000);
    expect(e.message).toContain('127.0.0.1:1');
    expect(e.message).toMatch(/ECONNREFUSED/);
    expect(e.message).not.toContain(':pw@');
  });

  it('retries transparently when its backend is terminated mid-transaction', async () => {
    const app = `baton-kill-${randomBytes(3).toString('hex')}`;
    const store = await open({ poolSize: 1, applicationName: app });
    await store.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    await store.admitRun(joinRun('k'));
    // Hold the run's row lock so that the commit is caught inside its transaction.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM runs WHERE id = 'k' FOR UPDATE`);
      const pending = store.commit(succeed('k', 'a', 'w1'));
      let killed = 0;
      for (let i = 0; i < 200 && killed === 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
        killed = (await admin((c) => c.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [app]))).rowCount ?? 0;
      }
      expect(killed).toBe(1);
      await holder.query('ROLLBACK');
      expect(await pending).toEqual({ ok: true, ready: [], runIdle: false });
    } finally {
      await holder.end();
    }
    expect((await store.getEvents('k')).map((e) => e.type)).toEqual(['run.created', 'step.succeeded']);
    // Idle pooled connections killed between calls are replaced too.
    await admin((c) => c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [app]));
    expect((await store.commit(succeed('k', 'b', 'w1'))).ready).toEqual(['join']);
    expect(await store.getStep('k', 'join')).toMatchObject({ status: 'scheduled', owner: 'w1', pendingDeps: 0 });
  });

  it('answers a commit whose acknowledgement was lost with what the first attempt did', async () => {
    const app = `baton-ack-${randomBytes(3).toString('hex')}`;
    let armed = false;
    let fired = 0;
    const store = await open({
      applicationName: app,
      // After COMMIT succeeded, the server kills the connection: the answer never arrives.
      afterCommitHook: async () => {
        if (!armed) return;
        armed = false;
        fired++;
        await admin((c) => c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [app]));
        throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      },
    });
    await store.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    await store.admitRun(joinRun('ack'));
    expect((await store.commit(succeed('ack', 'a', 'w1'))).ok).toBe(true);
    armed = true;
    // The commit that schedules and claims the join: it landed, its answer was lost, the retry
    // finds the fence gone and must still hand the join to this worker.
    expect(await store.commit(succeed('ack', 'b', 'w1'))).toEqual({ ok: true, ready: ['join'], runIdle: false });
    expect(fired).toBe(1);
    expect(await store.getStep('ack', 'join')).toMatchObject({ status: 'scheduled', owner: 'w1', pendingDeps: 0, liveDeps: 2 });
    expect((await store.getEvents('ack')).filter((e) => e.type === 'step.succeeded')).toHaveLength(2);
    // The last step's commit, with finishIfIdle, loses its answer too: the run is recorded
    // finished once and the retry says so.
    armed = true;
    const last = await store.commit({
      ...succeed('ack', 'join', 'w1'),
      finishIfIdle: { runId: 'ack', status: 'completed', outputJson: '"done"', events: [{ type: 'run.completed', at: Date.now() }] },
    });
    expect(fired).toBe(2);
    expect(last).toEqual({ ok: true, ready: [], runIdle: false, runFinished: true });
    expect((await store.getRun('ack'))!.status).toBe('completed');
    expect((await store.getEvents('ack')).map((e) => e.type)).toEqual(['run.created', 'step.succeeded', 'step.succeeded', 'step.succeeded', 'run.completed']);
    // Without a lost answer, a duplicate commit is still refused.
    expect((await store.commit(succeed('ack', 'a', 'w1'))).ok).toBe(false);
  });

  it('numbers events gap-free when commits of one run arrive from two stores at once', async () => {
    const [s1, s2] = [await open(), await open()];
    await s1.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    const n = 60;
    await s1.admitRun({
      id: 'seq', versionId: 'wf@1', workflow: 'wf', inputJson: '{}', createdAt: Date.now(), events: [{ type: 'run.created', at: Date.now() }],
      steps: Array.from({ length: n }, (_, i) => ({ key: `s${i}`, stepId: 's', status: 'scheduled' as const, pendingDeps: 0, owner: i % 2 ? 'w2' : 'w1' })),
    });
    const commits = Array.from({ length: n }, (_, i) => {
      const owner = i % 2 ? 'w2' : 'w1';
      return (i % 2 ? s2 : s1).commit({
        fence: { runId: 'seq', key: `s${i}`, owner, attempt: 1 },
        update: { status: 'succeeded', outputJson: '1', owner: null },
        events: [{ type: 'step.started', stepKey: `s${i}`, at: 1 }, { type: 'step.succeeded', stepKey: `s${i}`, at: 2 }],
      });
    });
    // Interleave plain appends as well.
    const appends = Array.from({ length: 10 }, (_, i) => (i % 2 ? s1 : s2).appendEvents('seq', [{ type: 'note', at: 3 }]));
    const results = await Promise.all(commits);
    await Promise.all(appends);
    expect(results.every((r) => r.ok)).toBe(true);
    // Exactly one commit saw the run idle (the last one, whichever store it came from).
    expect(results.filter((r) => r.runIdle)).toHaveLength(1);
    const events = await s1.getEvents('seq');
    expect(events.map((e) => e.id)).toEqual(Array.from({ length: 1 + 2 * n + 10 }, (_, i) => i + 1));
    // Each commit's two events are adjacent and in order.
    for (let i = 0; i < n; i++) {
      const at = events.findIndex((e) => e.stepKey === `s${i}`);
      expect([events[at].type, events[at + 1].type, events[at + 1].stepKey]).toEqual(['step.started', 'step.succeeded', `s${i}`]);
    }
  });

  it('records model calls, settles cost and serves the response cache', async () => {
    const store = await open();
    await store.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    await store.admitRun({ ...joinRun('m'), budget: 1 });
    const reserves = await Promise.all(Array.from({ length: 10 }, () => store.reserveBudget('m', 0.3)));
    expect(reserves.filter((r) => r.ok)).toHaveLength(3);
    expect(reserves.find((r) => !r.ok)).toMatchObject({ ok: false, budget: 1, spent: 0 });
    const call = {
      runId: 'm', workflow: 'wf', stepKey: 'a', attempt: 1, service: 'svc', provider: 'openai', model: 'gpt', operation: 'chat', outcome: 'ok' as const,
      inputTokens: 10, outputTokens: 5, cachedTokens: 0, cost: 0.1, latencyMs: 12.4, at: Date.now(),
    };
    await store.recordModelCall(call, 0.3);
    await store.recordModelCall({ ...call, outcome: 'error', cost: 0, version: 'v2' }, 0.3);
    const run = await store.getRun('m');
    expect(run!.cost).toBe(0.1);
    expect(await store.reserveBudget('m', 0)).toMatchObject({ ok: true, spent: 0.1, reserved: expect.closeTo(0.3, 9) });
    expect((await store.getEvents('m')).map((e) => [e.id, e.type])).toEqual([[1, 'run.created'], [2, 'model.call'], [3, 'model.call']]);
    expect((await store.getModelCalls('m')).map((c) => c.outcome)).toEqual(['ok', 'error']);
    expect(await store.costReport({ by: 'model' })).toEqual([
      { key: 'openai/gpt', calls: 1, failed: 0, cacheHits: 0, inputTokens: 10, outputTokens: 5, cachedTokens: 0, cost: 0.1, avgLatencyMs: 12 },
      { key: 'openai/gpt@v2', calls: 1, failed: 1, cacheHits: 0, inputTokens: 10, outputTokens: 5, cachedTokens: 0, cost: 0, avgLatencyMs: 0 },
    ]);
    await store.cachePut('k', '{"x":1}', 1000, 2000);
    expect(await store.cacheGet('k', 1500)).toBe('{"x":1}');
    expect(await store.cacheGet('k', 2500)).toBeUndefined();
  });

  it('applies the rarer parts of a commit: map items, routes, windows, child runs, wake-ups and failures', async () => {
    const store = await open();
    await store.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
    await store.admitRun({
      id: 'p', versionId: 'wf@1', workflow: 'wf', inputJson: '{}', createdAt: Date.now(), events: [],
      steps: [
        { key: 'map', stepId: 'map', status: 'scheduled', pendingDeps: 0, owner: 'w1' },
        { key: 'route', stepId: 'route', status: 'pending', pendingDeps: 1 },
        { key: 'child', stepId: 'child', status: 'scheduled', pendingDeps: 0, owner: 'w1' },
      ],
    });
    // The map step waits for 3 items; the first is started now, the others by the window.
    const items = [0, 1, 2].map((i) => ({ key: `map[${i}]`, stepId: 'map', index: i, parentKey: 'map', status: (i === 0 ? 'scheduled' : 'pending') as 'scheduled' | 'pending', pendingDeps: 0, owner: i === 0 ? 'w1' : undefined, state: { item: i } }));
    const r1 = await store.commit({ fence: { runId: 'p', key: 'map', owner: 'w1', attempt: 1 }, update: { status: 'waiting', owner: null, pendingDeps: 3 }, events: [], insert: items });
    expect(r1).toEqual({ ok: true, ready: ['map[0]'], runIdle: false });
    expect(await store.getStep('p', 'map[1]')).toMatchObject({ status: 'pending', index: 1, parentKey: 'map', state: { item: 1 } });
    const r2 = await store.commit({ fence: { runId: 'p', key: 'map[0]', owner: 'w1', attempt: 1 }, update: { status: 'succeeded', outputJson: '0', owner: null }, events: [], decrement: [{ key: 'map', live: true }], startNextChildOf: 'map' });
    expect(r2.ready).toEqual(['map[1]']);
    // map[1] fails: the still-pending children are cancelled and the map is woken with the news.
    const r3 = await store.commit({
      fence: { runId: 'p', key: 'map[1]', owner: 'w1', attempt: 1 }, update: { status: 'failed', error: { code: 'X', message: 'x' } as never, owner: null }, events: [],
      cancelChildrenOf: 'map', wake: { key: 'map', state: { failed: 1 }, events: [{ type: 'map.item_failed', at: 1 }] },
    });
    expect(r3.ok).toBe(true);
    expect(await store.getStep('p', 'map[2]')).toMatchObject({ status: 'cancelled' });
    expect(await store.getStep('p', 'map')).toMatchObject({ status: 'scheduled', state: { failed: 1 } });
    expect((await store.getStep('p', 'map'))!.owner).toBeUndefined();
    // The route is scheduled regardless of counts (an error route).
    const mapClaim = await store.claimSteps('w1', 10, Date.now());
    expect(mapClaim.map((c) => c.key)).toEqual(['map']);
    const r4 = await store.commit({ fence: { runId: 'p', key: 'map', owner: 'w1', attempt: 1 }, update: { status: 'failed', owner: null }, events: [], schedule: ['route'] });
    expect(r4.ready).toEqual(['route']);
    // A child run admitted with the parent's commit; its end wakes the parent step.
    const r5 = await store.commit({
      fence: { runId: 'p', key: 'child', owner: 'w1', attempt: 1 }, update: { status: 'waiting', owner: null, waitKey: 'child:c1' }, events: [],
      childRun: { ...oneStepRuns(1, 'c')[0], id: 'c1', parentRunId: 'p', parentStepKey: 'child', events: [{ type: 'run.created', at: 1 }] },
    });
    expect(r5.ok).toBe(true);
    expect((await store.getRun('c1'))!.parentRunId).toBe('p');
    expect(await store.finishRun({ runId: 'c1', status: 'completed', outputJson: '7', events: [], parent: { runId: 'p', key: 'child', state: { done: true }, events: [] } })).toBe(true);
    expect(await store.finishRun({ runId: 'c1', status: 'completed', outputJson: '7', events: [] })).toBe(false);
    expect(await store.getStep('p', 'child')).toMatchObject({ status: 'scheduled', state: { done: true } });
    // finishRun: the run fails and every active step is cancelled.
    const r6 = await store.commit({
      fence: { runId: 'p', key: 'route', owner: 'w1', attempt: 1 }, update: { status: 'failed', owner: null }, events: [],
      finishRun: { status: 'failed', error: { code: 'E', message: 'e' } as never, events: [{ type: 'run.failed', at: 1 }] },
    });
    expect(r6).toEqual({ ok: true, ready: [], runIdle: false });
    expect((await store.getRun('p'))!.status).toBe('failed');
    expect(await store.getStep('p', 'child')).toMatchObject({ status: 'cancelled' });
    expect(await store.idleRuns(10)).toEqual(['c1'].filter(() => false));
  });
});
