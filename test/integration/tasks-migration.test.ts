/**
 * Tasks stored before `tasks.max_attempts` (SQLite migration 14, PostgreSQL 12) — by a Baton
 * of before, or by one still running during an upgrade — behave like tasks made now once the
 * store is migrated: they carry their step's retry.max_attempts (as the version compiles it),
 * so a last lease that runs out is not handed out again and its step fails then, with no
 * further poll, blaming the worker whose lease ran out. Before, such a task was handed out once
 * more (recorded as a hand-out to a worker that never worked on it), the step failed "in" that
 * poller, and without a poll it waited for ever.
 *
 * The old store is built from the real migration list at the level before the column, holding
 * the rows the current code wrote, less the columns that level lacks (test/helpers/older-store.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Baton } from '../../src/index.js';
import { taskIdOf } from '../../src/steps/task.js';
import { PG_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { levelOf, postgresAtLevel, sqliteAtLevel } from '../helpers/older-store.js';
import { STORE_KINDS, createTestDatabase, type StoreKind, type TestDatabase } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

// Two hand-outs at most, no step timeout: only the lease policy can end the step.
const POISON = `
name: poison
steps:
  - { id: t, kind: task, task_type: poison, retry: { max_attempts: 2 } }
`;
// Each way a task step's most attempts is decided (spec/compile.ts), and a map item's task.
const SHAPES: Record<string, string> = {
  'kind-default': `
name: kind-default
steps:
  - { id: t, kind: task, task_type: a }
`,
  'workflow-default': `
name: workflow-default
defaults: { retry: { max_attempts: 4 } }
steps:
  - { id: t, kind: task, task_type: b }
`,
  'retry-without-count': `
name: retry-without-count
steps:
  - { id: t, kind: task, task_type: c, retry: { initial_delay: 10ms } }
`,
  'workflow-retry-without-count': `
name: workflow-retry-without-count
defaults: { retry: { initial_delay: 10ms } }
steps:
  - { id: t, kind: task, task_type: d }
`,
  'step-over-default': `
name: step-over-default
defaults: { retry: { max_attempts: 4 } }
steps:
  - { id: t, kind: task, task_type: e, retry: { max_attempts: 6 } }
`,
  'map-item': `
name: map-item
steps:
  - id: each
    kind: map
    over: input.xs
    step: { kind: task, task_type: f, retry: { max_attempts: 5 } }
`,
};
const keyOf = (name: string) => (name === 'map-item' ? 'each[0]' : 't');

describe.each(STORE_KINDS)('tasks stored before max_attempts, on %s', (kind: StoreKind) => {
  const dirs: string[] = [];
  const dbs: TestDatabase[] = [];
  const open: Baton[] = [];
  afterEach(async () => {
    for (const b of open.splice(0)) await b.close();
    for (const d of dbs.splice(0)) await d.drop();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** A place for a store: a folder (SQLite) or a fresh database (PostgreSQL). */
  const place = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-task-migrate-'));
    dirs.push(dir);
    const db = kind === 'postgres' ? await createTestDatabase() : undefined;
    if (db) dbs.push(db);
    return { dir, db };
  };
  const openAt = async (p: { dir: string; db?: TestDatabase }) => {
    const { PostgresStore } = await import('../../src/store/postgres/postgres-store.js');
    const store = p.db ? await PostgresStore.open(p.db.url, { poolSize: 4 }) : undefined;
    const b = await Baton.open({ dir: p.dir, store, pollIntervalMs: 20 });
    open.push(b);
    return b;
  };

  it('a task of before the column is migrated to its step\'s most attempts and is handed out, expires and fails like a task made now', async () => {
    // The current code writes the runs, their waiting steps and tasks; w1 has taken the poison task once.
    const now = await place();
    const writer = await openAt(now);
    const oldPoison = await writer.start(await writer.register(POISON), {});
    const old: Record<string, string> = {};
    for (const [name, doc] of Object.entries(SHAPES)) old[name] = await writer.start(await writer.register(doc), { xs: [1] });
    const w1 = (await writer.tasks.poll({ types: ['poison'], workerId: 'w1', leaseMs: 100, waitMs: 10_000 }))!;
    expect(w1.attempts).toBe(1);
    for (const [name, run] of Object.entries(old)) await until(() => writer.store.getTask(taskIdOf(run, keyOf(name), 1)), `the ${name} task`);
    await writer.close();

    // The same store as a Baton before tasks.max_attempts left it, opened (migrated) by this one.
    const before = await place();
    const level = levelOf(kind === 'sqlite' ? SQLITE_MIGRATIONS : PG_MIGRATIONS, 'ADD COLUMN max_attempts') - 1;
    if (kind === 'sqlite') sqliteAtLevel(join(now.dir, 'baton.db'), join(before.dir, 'baton.db'), level);
    else await postgresAtLevel(now.db!.url, before.db!.url, level);
    const b = await openAt(before);

    // Each old task carries what the same step's task made now carries.
    for (const [name, run] of Object.entries(old)) {
      const made = await b.start(name, { xs: [1] });
      const fresh = await until(() => b.store.getTask(taskIdOf(made, keyOf(name), 1)), `a new ${name} task`);
      expect((await b.store.getTask(taskIdOf(run, keyOf(name), 1)))?.maxAttempts, name).toBe(fresh.maxAttempts);
    }
    expect((await b.store.getTask(w1.id))?.maxAttempts).toBe(2);

    /** w2 takes the task at its last hand-out and vanishes; nobody polls again. What happens. */
    const lastLease = async (run: string, taskId: string) => {
      const w2 = await until(() => b.tasks.poll({ types: ['poison'], workerId: 'w2', leaseMs: 100 }), 'the second hand-out');
      expect(w2.id).toBe(taskId);
      const failed = await until(async () => {
        const r = await b.getRun(run);
        return r.status === 'failed' && r;
      }, 'the run to fail with no further poll', 15_000);
      // A later poll gets nothing and is recorded as no hand-out.
      expect(await b.tasks.poll({ types: ['poison'], workerId: 'w3' })).toBeUndefined();
      const events = await b.getEvents(run);
      const task = await b.tasks.get(taskId);
      return {
        attempts: w2.attempts,
        error: failed.error?.message?.replace(taskId, '<task>'),
        leased: events.filter((e) => e.type === 'task.leased').map((e) => (e.data as { worker_id: string }).worker_id),
        failed: { ...(events.find((e) => e.type === 'task.failed')?.data as object), task_id: undefined },
        task: { status: task.status, attempts: task.attempts, leaseOwner: task.leaseOwner, maxAttempts: task.maxAttempts },
      };
    };
    const oldEnd = await lastLease(oldPoison, w1.id);
    expect(oldEnd.error).toContain("worker w2's lease expired at hand-out 2, the last of retry.max_attempts 2");
    expect(oldEnd.leased).toEqual(['w1', 'w2']);
    expect(oldEnd.failed).toMatchObject({ worker_id: 'w2', attempts: 2, final: true, error: { code: 'LEASE_EXPIRED' } });

    // A task made now, taken by w1 and then w2 the same way, ends the same way.
    const newPoison = await b.start('poison', {});
    const n1 = (await b.tasks.poll({ types: ['poison'], workerId: 'w1', leaseMs: 100, waitMs: 10_000 }))!;
    expect(n1.runId).toBe(newPoison);
    expect(await lastLease(newPoison, n1.id)).toEqual(oldEnd);
  }, 60_000);
});
