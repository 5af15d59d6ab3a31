/**
 * An emit step's event is recorded with its commit: a process killed (SIGKILL) right after that
 * commit, before dispatching, loses nothing — the next process dispatches it, once.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';

const child = resolve(import.meta.dirname, 'fixtures/emit-child.ts');
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'baton-emit-crash-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const run = (env: Record<string, string> = {}) => spawnSync(process.execPath, ['--import', 'tsx', child, dir], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
const query = <T>(sql: string): T[] => {
  const db = new Database(join(dir, 'baton.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
};

it('an event recorded by a commit survives a crash before dispatch and starts one run', () => {
  const crashed = run({ BATON_CRASH_AT: 'after-commit', BATON_CRASH_RATE: '1' });
  expect(crashed.signal).toBe('SIGKILL');
  // The emit's commit landed (step succeeded, event in the outbox), nothing was dispatched.
  expect(query<{ status: string }>(`SELECT status FROM steps WHERE run_id = 'p1' AND key = 'announce'`)).toEqual([{ status: 'succeeded' }]);
  expect(query<{ id: string; dispatched_at: number | null }>('SELECT id, dispatched_at FROM event_outbox')).toEqual([{ id: 'p1/announce', dispatched_at: null }]);
  expect(query(`SELECT id FROM runs WHERE workflow = 'consumer'`)).toEqual([]);

  const resumed = run();
  expect(resumed.status, resumed.stderr).toBe(0);
  const runs = JSON.parse(resumed.stdout.trim().split('\n').pop()!) as Array<{ id: string; status: string }>;
  expect(runs).toHaveLength(1);
  expect(runs[0].status).toBe('completed');
  expect(query<{ n: number }>('SELECT COUNT(*) AS n FROM event_outbox WHERE dispatched_at IS NULL')).toEqual([{ n: 0 }]);

  // Another process later: nothing more.
  const again = run();
  expect(again.status, again.stderr).toBe(0);
  expect(JSON.parse(again.stdout.trim().split('\n').pop()!)).toEqual(runs);
});
