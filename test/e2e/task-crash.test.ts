/**
 * A task is created in the same transaction as its step's suspension: a process killed (real
 * SIGKILL) just before that commit leaves no task, one killed just after leaves exactly one,
 * and the next process carries on from there; a worker then completes it and the run ends.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Baton } from '../../src/index.js';

const child = resolve(import.meta.dirname, 'fixtures/task-crash-child.ts');
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'baton-task-crash-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function runChild(crashAt: string | undefined, stayMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((done, fail) => {
    const env = { ...process.env, BATON_CRASH_AT: crashAt ?? '', BATON_CRASH_RATE: '1' };
    const p = spawn(process.execPath, ['--import', 'tsx', child, dir, String(stayMs)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', fail);
    p.on('exit', (code, signal) => done({ code, signal, out }));
  });
}

function rows<T>(sql: string): T[] {
  const db = new Database(join(dir, 'baton.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

describe('task creation under crashes (real SIGKILL)', () => {
  it('no task before the suspension commits, exactly one after, and the run completes', async () => {
    // 1. Killed right before the task step's suspension commits: nothing of it is recorded.
    const first = await runChild('before-commit', 30_000);
    expect(first.signal).toBe('SIGKILL');
    expect(rows('SELECT id FROM tasks')).toHaveLength(0);
    expect(rows<{ status: string }>(`SELECT status FROM steps WHERE run_id = 'task-crash' AND key = 'score'`)[0].status).toBe('running');

    // 2. The next process resumes the step, commits the suspension with its task, and dies right after.
    const second = await runChild('after-commit', 30_000);
    expect(second.signal).toBe('SIGKILL');
    const tasks = rows<{ id: string; status: string; step_attempt: number }>('SELECT id, status, step_attempt FROM tasks');
    expect(tasks).toHaveLength(1);
    expect(tasks[0].status).toBe('pending');
    const step = rows<{ status: string; wait_key: string }>(`SELECT status, wait_key FROM steps WHERE run_id = 'task-crash' AND key = 'score'`)[0];
    expect(step).toEqual({ status: 'waiting', wait_key: `task:${tasks[0].id}` });

    // 3. A process that does not crash: the task is still the only one, and a worker finishes it.
    const third = await runChild(undefined, 300);
    expect(third.code).toBe(0);
    expect(rows('SELECT id FROM tasks')).toHaveLength(1);
    const b = await Baton.open({ dir, pollIntervalMs: 20 });
    try {
      const t = (await b.tasks.poll({ types: ['score'], workerId: 'w', waitMs: 10_000 }))!;
      expect(t.id).toBe(tasks[0].id);
      expect(t.input).toEqual({ n: 1 });
      await b.tasks.complete(t.id, { workerId: 'w', leaseToken: t.leaseToken!, output: { ok: true } });
      const r = await b.wait('task-crash', { timeoutMs: 20_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual({ ok: true });
    } finally {
      await b.close();
    }
  });
});
