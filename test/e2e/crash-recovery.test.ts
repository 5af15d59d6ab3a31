import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const child = resolve(import.meta.dirname, 'fixtures/crash-child.ts');
const RUNS = 300;
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'baton-crash-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  sawReady: boolean;
  pid: number;
}

/** Runs the child; kills it with SIGKILL `killAfterMs` after it is ready (if given). */
function runChild(count: number, opts: { killAfterMs?: number; env?: Record<string, string> } = {}): Promise<ChildRun> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, dir, String(count)], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let sawReady = false;
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      if (!sawReady && d.toString().includes('ready')) {
        sawReady = true;
        if (opts.killAfterMs !== undefined) setTimeout(() => p.kill('SIGKILL'), opts.killAfterMs);
      }
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', fail);
    p.on('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') fail(new Error(`child exited ${code}: ${err}`));
      else done({ code, signal, sawReady, pid: p.pid! });
    });
  });
}

function unfinishedRuns(): number {
  const db = new Database(join(dir, 'baton.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status NOT IN ('completed', 'failed', 'cancelled')`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('crash recovery (real SIGKILL)', () => {
  it('finishes every run with every step output recorded exactly once, however often the process dies', async () => {
    let landed = 0;
    const pids = new Set<number>();
    for (let k = 0; k < 12; k++) {
      // Half the kills come from outside at a random moment, half from inside at named points
      // (before/after executing, before/after committing) chosen at random.
      const inside = k % 2 === 1;
      const r = await runChild(RUNS, inside
        ? { env: { BATON_CRASH_AT: '*', BATON_CRASH_RATE: '0.02' }, killAfterMs: 3000 }
        : { killAfterMs: 20 + Math.floor(Math.random() * 300) });
      pids.add(r.pid);
      if (r.signal === 'SIGKILL' && r.sawReady && unfinishedRuns() > 0) landed++;
      if (r.code === 0) break; // everything finished between kills
    }
    const final = await runChild(RUNS);
    expect(final.code).toBe(0);
    // The kills must really have hit work in progress, or this test proves nothing.
    expect(landed).toBeGreaterThanOrEqual(4);
    expect(pids.size).toBeGreaterThan(4);

    const db = new Database(join(dir, 'baton.db'), { readonly: true });
    try {
      const runs = db.prepare('SELECT id, status, input, output FROM runs ORDER BY id').all() as Array<{ id: string; status: string; input: string; output: string }>;
      expect(runs.length).toBe(RUNS);
      for (const r of runs) {
        expect(r.status, r.id).toBe('completed');
        const n = JSON.parse(r.input).n as number;
        // c1 = c2 = n + 3; map items 2, 3, 4
        expect(JSON.parse(r.output), r.id).toBe(2 * n + 6 + 9);
      }
      // Recorded exactly once: one step.succeeded event per succeeded step instance.
      const dupes = db.prepare(`SELECT run_id, step_key, COUNT(*) AS n FROM events WHERE type = 'step.succeeded' GROUP BY run_id, step_key HAVING n <> 1`).all();
      expect(dupes).toEqual([]);
      const succeeded = (db.prepare(`SELECT COUNT(*) AS n FROM steps WHERE status = 'succeeded'`).get() as { n: number }).n;
      const events = (db.prepare(`SELECT COUNT(*) AS n FROM events WHERE type = 'step.succeeded'`).get() as { n: number }).n;
      expect(succeeded).toBe(RUNS * 11); // 8 steps + 3 map items
      expect(events).toBe(succeeded);
      const stuck = db.prepare(`SELECT run_id, key, status FROM steps WHERE status NOT IN ('succeeded', 'skipped', 'failed')`).all();
      expect(stuck).toEqual([]);
      // Every run's event history is gap-free and in order.
      const gaps = db.prepare(`SELECT run_id FROM events GROUP BY run_id HAVING MAX(seq) <> COUNT(*)`).all();
      expect(gaps).toEqual([]);
    } finally {
      db.close();
    }
    // Execution is at least once: some attempts ran more than once, and that is visible.
    // Every function ran under the key of its final attempt; repeats after a crash reuse the key.
    const effects = new Set(readFileSync(join(dir, 'effects.log'), 'utf8').trim().split('\n'));
    for (let i = 0; i < RUNS; i++) {
      for (const k of ['a:1', 'b:1', 'c1:1', 'c2:1', 'c2:2', 'm[0]:1', 'm[1]:1', 'm[2]:1']) expect(effects.has(`crash-${i}:${k}`), `crash-${i}:${k}`).toBe(true);
    }
  }, 180_000);

  it('lets a different process finish runs that a killed process started, without waiting for a lease', async () => {
    const first = await runChild(200, { killAfterMs: 60 });
    expect(first.signal).toBe('SIGKILL');
    const t0 = Date.now();
    const second = await runChild(0);
    expect(second.code).toBe(0);
    expect(second.pid).not.toBe(first.pid);
    // The dead worker's claims are released because its pid is gone, not after the 30 s lease.
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(unfinishedRuns()).toBe(0);
  }, 60_000);
});
