/**
 * `baton worker` processes as an operator runs them. On PostgreSQL: a SIGTERM lets the attempt
 * in flight finish within the grace period and is recorded; past the grace period the step is
 * handed back and another worker runs it; a wrong connection string is a clear error. On the
 * embedded store: an idle worker stays up and runs what another process starts later.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Baton } from '../../src/index.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { STORE_KINDS, createTestDatabase, type TestDatabase } from '../helpers/stores.js';
import { bin, ensureBuilt } from '../helpers/cli.js';

let dir: string;
let db: TestDatabase | undefined;
const procs: ChildProcess[] = [];

beforeEach(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'baton-worker-'));
  // `slow` leaves a marker when it starts, so that the test signals a worker that is executing
  // the step (a step claimed but not started is handed back at once, which is right too). Run
  // again (handed back and taken by another worker) it returns at once.
  writeFileSync(join(dir, 'fns.mjs'), "import { existsSync, writeFileSync } from 'node:fs';\nexport async function slow(ms) { const again = existsSync(`started-${ms}`); writeFileSync(`started-${ms}`, ''); if (!again) await new Promise((r) => setTimeout(r, ms)); return ms; }\n");
  writeFileSync(join(dir, 'baton.config.yaml'), 'functions:\n  - ./fns.mjs\n');
  writeFileSync(join(dir, 'slow.yaml'), 'name: slow\nsteps:\n  - { id: nap, kind: function, function: slow, input: input.ms }\n');
  db = STORE_KINDS.includes('postgres') ? await createTestDatabase('baton_w') : undefined;
});
afterEach(async () => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function worker(grace: string, store = db!.url): { proc: ChildProcess; exited: Promise<number | null>; log: () => string } {
  let log = '';
  const proc = spawn(process.execPath, [bin, 'worker', '--db', store, '--config', join(dir, 'baton.config.yaml'), '--grace', grace], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  procs.push(proc);
  return { proc, exited: new Promise((r) => proc.on('exit', (code) => r(code))), log: () => log };
}

async function until(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.runIf(STORE_KINDS.includes('postgres'))('baton worker on PostgreSQL', () => {
  it('on SIGTERM finishes the attempt in flight within its grace period, records it, and exits 0', async () => {
    const client = await Baton.open({ store: await PostgresStore.open(db!.url), worker: false, dir, functions: { slow: async () => 0 } });
    try {
      const v = await client.registerFile(join(dir, 'slow.yaml'));
      const id = await client.start(v, { ms: 800 });
      const w = worker('10s');
      await until(async () => existsSync(join(dir, 'started-800')));
      w.proc.kill('SIGTERM');
      expect(await w.exited).toBe(0);
      expect(w.log()).toMatch(/SIGTERM, finishing what it holds/);
      const r = await client.getRun(id);
      expect(r.status).toBe('completed');
      expect(r.output).toBe(800);
    } finally {
      await client.close();
    }
  });

  it('on SIGTERM stops once its attempts in flight end, handing their next steps back at once', async () => {
    // The step after the one in flight was claimed by this worker as the first one committed:
    // the stop used to keep it (queued, never started) and wait out the whole grace period, and
    // the process could exit before giving the claims back (exit code 13).
    writeFileSync(join(dir, 'two.yaml'), 'name: two\nsteps:\n  - { id: nap, kind: function, function: slow, input: input.ms }\n  - { id: then, kind: function, function: slow, input: "input.ms + 1", needs: [nap] }\n');
    const client = await Baton.open({ store: await PostgresStore.open(db!.url), worker: false, dir, functions: { slow: async () => 0 } });
    try {
      const v = await client.registerFile(join(dir, 'two.yaml'));
      const id = await client.start(v, { ms: 800 });
      const w = worker('60s');
      await until(async () => existsSync(join(dir, 'started-800')));
      w.proc.kill('SIGTERM');
      const code = await Promise.race([w.exited, new Promise((r) => setTimeout(() => r('still running 20 s after SIGTERM'), 20_000))]);
      expect(code).toBe(0);
      expect(w.log()).toMatch(/stopped/);
      const steps = await client.getSteps(id);
      expect(steps.find((s) => s.key === 'nap')?.status).toBe('succeeded');
      const then = steps.find((s) => s.key === 'then')!;
      expect(then.owner).toBeUndefined();
      expect(then.status).toBe('scheduled');
      const second = worker('10s');
      expect((await client.wait(id, { timeoutMs: 15_000 })).status).toBe('completed');
      second.proc.kill('SIGTERM');
      await second.exited;
    } finally {
      await client.close();
    }
  }, 60_000);

  it('past its grace period hands the step back, and another worker runs it once', async () => {
    const client = await Baton.open({ store: await PostgresStore.open(db!.url), worker: false, dir, functions: { slow: async () => 0 } });
    try {
      const v = await client.registerFile(join(dir, 'slow.yaml'));
      // A minute's attempt against a grace of 200 ms: the worker leaves long before it could end.
      const id = await client.start(v, { ms: 60_000 });
      const first = worker('200ms');
      await until(async () => existsSync(join(dir, 'started-60000')));
      const t0 = Date.now();
      first.proc.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(10_000);
      const step = (await client.getSteps(id))[0];
      expect(step.owner).toBeUndefined();
      expect(step.status).toBe('scheduled');
      const second = worker('10s');
      const r = await client.wait(id, { timeoutMs: 15_000 });
      expect(r.status).toBe('completed');
      expect((await client.getEvents(id)).filter((e) => e.type === 'step.succeeded')).toHaveLength(1);
      second.proc.kill('SIGTERM');
      await second.exited;
    } finally {
      await client.close();
    }
  });

  it('refuses a wrong connection string with a message that says what to fix', () => {
    const bad = new URL(db!.url);
    bad.pathname = '/no_such_database_here';
    const r = spawnSync(process.execPath, [bin, 'worker', '--db', bad.toString()], { cwd: dir, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/error\[BATON_STORE_OPEN\].*no_such_database_here/s);
  });
});

describe('baton worker on the embedded store', () => {
  it('stays up while there is nothing to do, and runs a run another process starts later', async () => {
    const store = join(dir, 'store');
    const w = worker('5s', store);
    // Idle for a while: with nothing claimed, nothing but the worker itself keeps it running.
    await new Promise((r) => setTimeout(r, 1500));
    expect(w.proc.exitCode).toBeNull();
    const client = await Baton.open({ dir: store, worker: false, functions: { slow: async () => 0 } });
    try {
      const v = await client.registerFile(join(dir, 'slow.yaml'));
      const id = await client.start(v, { ms: 10 });
      const r = await client.wait(id, { timeoutMs: 15_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toBe(10);
    } finally {
      await client.close();
    }
    w.proc.kill('SIGTERM');
    expect(await w.exited).toBe(0);
  });
});
