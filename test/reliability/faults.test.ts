/**
 * Fault injection (docs/reliability.md): what Baton does when what it depends on breaks.
 *
 * - Provider faults, over real sockets from the fake vendor (500, 503, 429, timeout, a slow
 *   answer past the service's timeout, garbage JSON, an HTML error page, a stream cut in half):
 *   the run completes through its fallback service, or, when every service fails, fails with a
 *   clear recorded error; what was recorded before stays intact. Both stores.
 * - Database connection loss on PostgreSQL: every backend connection of the database is
 *   terminated (pg_terminate_backend from an admin connection; the server keeps running)
 *   again and again while runs execute; every run still completes, each step recorded once.
 * - Disk full on SQLite: the store lives on a small tmpfs that a filler file fills; new work
 *   is refused with BATON_STORE_FULL, the database stays consistent (PRAGMA integrity_check),
 *   earlier runs are intact, and once space is freed new runs work. Needs `mount` (root); skipped
 *   with the reason otherwise.
 * - Clock jumps: the wall clock (Date.now, which durable timers, retry due times and leases
 *   read) moves an hour forward or back while timers are armed: a timer fires once, never
 *   lost; a forward jump makes it due at once (early by at most the jump), a backward jump
 *   delays it by the jump. Schedules (their own injectable clock) fire once per slot.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, writeSync, closeSync, rmSync, existsSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Baton, type BatonOptions } from '../../src/index.js';
import { BatonError } from '../../src/errors.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { FakeVendor, type Fault } from '../../src/testing/fake-vendor.js';
import { STORE_KINDS, createTestDatabase, engineSuite, type TestDatabase } from '../helpers/stores.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** step key → number of step.succeeded events: each must be exactly 1. */
async function successesPerStep(b: Baton, runId: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const e of await b.getEvents(runId)) if (e.type === 'step.succeeded' && e.stepKey) out[e.stepKey] = (out[e.stepKey] ?? 0) + 1;
  return out;
}

let vendor: FakeVendor;
beforeAll(async () => {
  vendor = await new FakeVendor().start();
  process.env.BATON_TEST_FAULTS_KEY = 'test-key';
});
afterAll(async () => {
  await vendor.close();
});

const PIPELINE = `
name: faulty
steps:
  - { id: prep, kind: transform, expression: '{ "text": "ticket " & $string(input.n) }' }
  - { id: ask, kind: model, service: primary, fallback: [backup], prompt: "Answer {{ steps.prep.output.text }}", stream: STREAM }
`;

describe.each(STORE_KINDS)('provider faults on %s', (k) => {
  const suite = engineSuite(k, 'baton-faults-');
  const services = (): BatonOptions['services'] => ({
    primary: { provider: 'openai', model: 'gpt-faulty', endpoint: `${vendor.url}/v1`, retry: { max_attempts: 2, initial_delay: '10ms' }, timeout: '400ms' },
    backup: { provider: 'anthropic', model: 'claude-ok', endpoint: `${vendor.url}/v1`, credential: 'env:BATON_TEST_FAULTS_KEY', timeout: '5s' },
  });
  afterEach(() => {
    vendor.reset();
  });

  const cases: Array<{ name: string; fault?: Fault; slowMs?: number; stream?: boolean; code: RegExp }> = [
    { name: '500', fault: '500', code: /BATON_MODEL_HTTP/ },
    { name: '503', fault: '503', code: /BATON_MODEL_HTTP/ },
    { name: '429 with Retry-After', fault: { kind: '429', retryAfterSec: 0 }, code: /BATON_MODEL_RATE_LIMITED/ },
    { name: 'timeout (no answer)', fault: 'timeout', code: /BATON_MODEL_TIMEOUT/ },
    { name: 'slow answer past the timeout', slowMs: 1500, code: /BATON_MODEL_TIMEOUT/ },
    { name: 'garbage JSON', fault: 'malformed', code: /BATON_MODEL_BAD_RESPONSE/ },
    { name: 'HTML error page', fault: { kind: 'html', status: 502 }, code: /BATON_MODEL_(HTTP|BAD_RESPONSE)/ },
    { name: 'stream cut mid-answer', fault: 'stream-cut', stream: true, code: /BATON_MODEL_(STREAM_BROKEN|BAD_RESPONSE|NETWORK)/ },
  ];

  it.each(cases)('primary answers $name on every call: the run completes through the fallback, and the failures are recorded', async (c) => {
    if (c.fault) vendor.fault('gpt-faulty', c.fault);
    if (c.slowMs) vendor.model('gpt-faulty', { latencyMs: c.slowMs });
    vendor.model('claude-ok', { reply: (r) => `backup says: ${r.prompt}` });
    const b = await suite.baton({ services: services() });
    const v = await b.register(PIPELINE.replace('STREAM', String(c.stream ?? false)));
    const r = await b.run(v, { n: 7 });
    expect(r.status).toBe('completed');
    expect(r.output).toBe('backup says: Answer ticket 7');
    const calls = await b.store.getModelCalls(r.id);
    expect(calls.map((x) => `${x.service}:${x.outcome}`)).toEqual(['primary:error', 'primary:error', 'backup:ok']);
    expect(JSON.stringify(calls[0])).toMatch(c.code);
    expect(await successesPerStep(b, r.id)).toEqual({ prep: 1, ask: 1 });
  });

  it('a transient fault (one 503, one 429) and a slow answer within the timeout: the primary retries and answers, the fallback is never called', async () => {
    vendor.model('gpt-faulty', { reply: (r) => `primary says: ${r.prompt}` });
    const b = await suite.baton({ services: services() });
    const v = await b.register(PIPELINE.replace('STREAM', 'false'));
    vendor.fault('gpt-faulty', '503', 1);
    const one = await b.run(v, { n: 1 });
    vendor.fault('gpt-faulty', { kind: '429', retryAfterSec: 0 }, 1);
    const two = await b.run(v, { n: 2 });
    vendor.model('gpt-faulty', { latencyMs: 150 });
    const three = await b.run(v, { n: 3 });
    for (const [r, outcomes] of [[one, ['primary:error', 'primary:ok']], [two, ['primary:error', 'primary:ok']], [three, ['primary:ok']]] as const) {
      expect(r.status).toBe('completed');
      expect(r.output).toMatch(/^primary says: Answer ticket \d$/);
      expect((await b.store.getModelCalls(r.id)).map((x) => `${x.service}:${x.outcome}`)).toEqual(outcomes);
    }
    expect(vendor.calls('claude-ok')).toBe(0);
  });

  it('every service failing: the run fails with a clear recorded error, and the step recorded before it is intact', async () => {
    vendor.fault('gpt-faulty', '503');
    vendor.fault('claude-ok', 'malformed');
    const b = await suite.baton({ services: services() });
    const v = await b.register(PIPELINE.replace('STREAM', 'false'));
    const r = await b.run(v, { n: 3 });
    expect(r.status).toBe('failed');
    expect(r.error).toMatchObject({ code: 'BATON_ALL_SERVICES_FAILED' });
    expect(r.error!.message).toMatch(/primary: .*503.*backup: .*not a valid/s);
    const steps = await b.getSteps(r.id);
    expect(steps.find((s) => s.key === 'prep')).toMatchObject({ status: 'succeeded', output: { text: 'ticket 3' } });
    expect(steps.find((s) => s.key === 'ask')).toMatchObject({ status: 'failed' });
    // The history still verifies: nothing recorded was rewritten by the failure.
    const types = (await b.getEvents(r.id)).map((e) => e.type);
    expect(types).toContain('step.failed');
    expect(types.at(-1)).toBe('run.failed');
    // After the vendor heals, a new run of the same workflow completes on the primary.
    vendor.heal();
    const again = await b.run(v, { n: 4 });
    expect(again.status).toBe('completed');
  });
});

describe.runIf(STORE_KINDS.includes('postgres'))('database connection loss on PostgreSQL', () => {
  let db: TestDatabase;
  let admin: pg.Client;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase('baton_flt');
    admin = new pg.Client({ connectionString: process.env.BATON_TEST_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    dir = mkdtempSync(join(tmpdir(), 'baton-connloss-'));
  });
  afterAll(async () => {
    await admin.end();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('backends terminated again and again during runs: every run completes, each step recorded once', async () => {
    const executed = new Map<string, number>();
    const step = async (input: unknown) => {
      const x = input as { id: string; s: string };
      executed.set(`${x.id}:${x.s}`, (executed.get(`${x.id}:${x.s}`) ?? 0) + 1);
      await sleep(20);
      return x;
    };
    const b = await Baton.open({ dir, store: await PostgresStore.open(db.url, { poolSize: 4 }), pollIntervalMs: 20, functions: { step }, concurrency: 8 });
    try {
      const v = await b.register(`
name: steady
steps:
  - { id: a, kind: function, function: step, input: '{ "id": input.i, "s": "a" }' }
  - { id: b, kind: function, function: step, input: '{ "id": input.i, "s": "b", "prev": steps.a.output }' }
  - { id: c, kind: function, function: step, input: '{ "id": input.i, "s": "c", "prev": steps.b.output }' }
`);
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) ids.push(await b.start(v, { i }));
      const name = new URL(db.url).pathname.slice(1);
      // Terminate every backend of the database every 100 ms until the runs have ended; count
      // the rounds that hit live connections while work was still outstanding.
      let killed = 0;
      let roundsDuringWork = 0;
      let done = false;
      const killer = (async () => {
        const dbAdmin = new pg.Client({ connectionString: db.url });
        await dbAdmin.connect();
        try {
          while (!done) {
            const left = (await dbAdmin.query(`SELECT (SELECT COUNT(*) FROM runs WHERE status NOT IN ('completed', 'failed'))::int AS n`)).rows[0].n as number;
            if (left === 0) break;
            const r = await admin.query('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND pid <> $2', [name, (dbAdmin as unknown as { processID: number }).processID]);
            const n = r.rows.filter((x: { ok: boolean }) => x.ok).length;
            killed += n;
            if (n > 0) roundsDuringWork++;
            await sleep(100);
          }
        } finally {
          await dbAdmin.end();
        }
      })();
      const results = [];
      for (const id of ids) results.push(await b.wait(id, { timeoutMs: 90_000 }));
      done = true;
      await killer;
      expect(roundsDuringWork).toBeGreaterThanOrEqual(3);
      expect(killed).toBeGreaterThan(0);
      for (const r of results) {
        expect(r.status).toBe('completed');
        expect(await successesPerStep(b, r.id)).toEqual({ a: 1, b: 1, c: 1 });
      }
      // Execution is at least once (an attempt cut by a lost connection may run again);
      // results are recorded once, which the assertion above shows.
      expect(executed.size).toBe(180);
      const reruns = [...executed.values()].reduce((a, n) => a + n - 1, 0);
      console.log(`connection loss: ${killed} backends terminated in ${roundsDuringWork} rounds; ${reruns} of 180 step executions ran again`);
      const rows = await admin.query(`SELECT 1`);
      expect(rows.rowCount).toBe(1);
    } finally {
      await b.close();
    }
  }, 120_000);
});

/** Mounts a tmpfs of `size` at a new folder; undefined (and why) when this machine refuses. */
function mountTmpfs(size: string): { dir: string; unmount(): void } | { refused: string } {
  const dir = mkdtempSync(join(tmpdir(), 'baton-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { refused: (r.stderr || r.error?.message || `mount exited ${r.status}`).trim() };
  }
  return {
    dir,
    unmount() {
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes zeros into `file` until the disk says no. */
function fill(file: string): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

describe.runIf(STORE_KINDS.includes('sqlite'))('disk full on SQLite', () => {
  it('refuses new work with BATON_STORE_FULL, stays consistent, keeps earlier runs, and works again once space is freed', async (ctx) => {
    const m = mountTmpfs('8m');
    if ('refused' in m) {
      ctx.skip(`cannot mount a tmpfs here (${m.refused}); the disk-full test needs root`);
      return;
    }
    const filler = join(m.dir, 'filler');
    let b: Baton | undefined;
    try {
      b = await Baton.open({ dir: join(m.dir, 'store'), pollIntervalMs: 20 });
      const v = await b.register('name: keep\nsteps:\n  - { id: a, kind: transform, expression: "input" }\n');
      const before = [];
      for (let i = 0; i < 5; i++) before.push(await b.run(v, { i, pad: 'x'.repeat(1000) }));
      expect(before.every((r) => r.status === 'completed')).toBe(true);

      fill(filler);
      expect(statfsSync(m.dir).bavail).toBe(0);
      // New work until the store refuses: a clear, typed error, not a crash.
      let refused: unknown;
      for (let i = 0; i < 200 && !refused; i++) {
        try {
          const r = await b.run(v, { i: 100 + i, pad: 'y'.repeat(2000) }, { timeoutMs: 10_000 });
          if (r.status === 'failed') refused = r.error;
        } catch (e) {
          refused = e;
        }
      }
      expect(refused).toBeInstanceOf(BatonError);
      expect(refused).toMatchObject({ code: 'BATON_STORE_FULL', retryable: true });
      expect((refused as Error).message).toMatch(/out of disk space.*Free space/);

      // Through the gateway: an RFC 9457 problem with the code and status 507, over a real socket.
      const { createGateway } = await import('../../src/gateway/server.js');
      const app = await createGateway(b, { auth: 'off' });
      try {
        const url = await app.listen({ port: 0, host: '127.0.0.1' });
        let res: Response | undefined;
        for (let i = 0; i < 50; i++) {
          res = await fetch(`${url}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ workflow: 'keep', input: { pad: 'z'.repeat(4000), i } }) });
          if (res.status !== 202) break;
        }
        expect(res!.status).toBe(507);
        expect(res!.headers.get('content-type')).toMatch(/application\/problem\+json/);
        expect(await res!.json()).toMatchObject({ code: 'BATON_STORE_FULL', status: 507 });
      } finally {
        await app.close();
      }

      // Still readable, consistent, earlier runs intact.
      for (const r of before) {
        const again = await b.getRun(r.id);
        expect(again).toMatchObject({ status: 'completed', output: r.output });
      }
      await b.close();
      b = undefined;
      const file = join(m.dir, 'store', 'baton.db');
      expect(existsSync(file)).toBe(true);
      const raw = new Database(file, { readonly: true });
      try {
        expect(raw.prepare('PRAGMA integrity_check').pluck().get()).toBe('ok');
      } finally {
        raw.close();
      }

      // Free space: new runs work, on a store reopened like a restarted process.
      rmSync(filler);
      b = await Baton.open({ dir: join(m.dir, 'store'), pollIntervalMs: 20 });
      const after = await b.run('keep', { i: 999 });
      expect(after).toMatchObject({ status: 'completed', output: { i: 999 } });
      for (const r of before) expect((await b.getRun(r.id)).status).toBe('completed');
    } finally {
      await b?.close().catch(() => undefined);
      m.unmount();
    }
  }, 60_000);
});

describe.each(STORE_KINDS)('clock jumps on %s', (k) => {
  const suite = engineSuite(k, 'baton-clock-');
  /** Moves the wall clock every component reads (Date.now) by `offset` ms; timers (setTimeout) keep real time, as after an NTP step. */
  let offset = 0;
  const realNow = Date.now.bind(Date);
  const jump = (ms: number) => {
    offset += ms;
  };
  beforeAll(() => {
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
  });
  afterEach(() => {
    offset = 0;
  });
  afterAll(() => {
    vi.restoreAllMocks();
  });
  const HOUR = 3_600_000;

  const waitFlow = 'name: nap\nsteps:\n  - { id: nap, kind: wait, duration: 1h }\n  - { id: after, kind: transform, needs: [nap], expression: "\'woke\'" }\n';

  it('a forward jump past a durable timer fires it once (early by at most the jump)', async () => {
    const b = await suite.baton();
    const v = await b.register(waitFlow);
    const id = await b.start(v, {});
    await until('the timer armed', async () => (await b.getEvents(id)).some((e) => e.type === 'step.waiting'));
    await sleep(200);
    expect((await successesPerStep(b, id)).nap).toBeUndefined();
    jump(HOUR + 1000);
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r).toMatchObject({ status: 'completed', output: 'woke' });
    expect(await successesPerStep(b, id)).toEqual({ nap: 1, after: 1 });
  });

  it('a backward jump delays a timer by the jump, never loses it, and it fires once when the clock catches up', async () => {
    const b = await suite.baton();
    const v = await b.register(waitFlow.replace('1h', '2s'));
    const id = await b.start(v, {});
    await until('the timer armed', async () => (await b.getEvents(id)).some((e) => e.type === 'step.waiting'));
    jump(-HOUR);
    // Well past the timer's real 2 s, it has not fired: its due time is wall-clock time.
    await sleep(3000);
    expect((await successesPerStep(b, id)).nap).toBeUndefined();
    // A second engine (a restarted process) sees the same durable timer.
    const b2 = await suite.baton();
    jump(HOUR);
    const r = await b2.wait(id, { timeoutMs: 20_000 });
    expect(r).toMatchObject({ status: 'completed', output: 'woke' });
    expect(await successesPerStep(b2, id)).toEqual({ nap: 1, after: 1 });
  });

  it("a retry's due time moved by a forward jump: the retry runs once, early by at most the jump", async () => {
    let calls = 0;
    const flaky = async () => {
      calls++;
      if (calls === 1) throw new Error('first attempt fails');
      return 'ok';
    };
    const b = await suite.baton({ functions: { flaky } });
    const v = await b.register('name: retrying\nsteps:\n  - { id: f, kind: function, function: flaky, input: input, retry: { max_attempts: 3, initial_delay: 1h } }\n');
    const id = await b.start(v, {});
    await until('the first attempt failed', async () => calls === 1 && (await b.getEvents(id)).some((e) => e.type === 'step.failed' || e.type === 'step.retrying' || e.type === 'step.scheduled'));
    await sleep(300);
    expect(calls).toBe(1);
    jump(2 * HOUR);
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r).toMatchObject({ status: 'completed', output: 'ok' });
    expect(calls).toBe(2);
    expect(await successesPerStep(b, id)).toEqual({ f: 1 });
  });

  it('schedules: a forward jump of an hour fires a minutely schedule once (missed: once), a backward jump fires nothing again', async () => {
    const clock = { t: Date.parse('2026-03-01T10:00:00.500Z') };
    const b = await suite.baton({ schedules: { now: () => clock.t } });
    await b.register('name: minutely\ntriggers:\n  - schedule: { cron: "0 * * * * *", missed: once }\nsteps:\n  - { id: a, kind: transform, expression: "input" }\n');
    clock.t = Date.parse('2026-03-01T10:01:00.100Z');
    expect(await b.schedules.tick()).toBe(1);
    clock.t += HOUR;
    expect(await b.schedules.tick()).toBe(1);
    expect(await b.schedules.tick()).toBe(0);
    clock.t -= 2 * HOUR;
    expect(await b.schedules.tick()).toBe(0);
    const runs = await b.listRuns({ workflow: 'minutely', limit: 100 });
    expect(runs).toHaveLength(2);
    for (const r of runs) expect((await b.wait(r.id, { timeoutMs: 10_000 })).status).toBe('completed');
  });
});

describe.runIf(STORE_KINDS.includes('sqlite'))('disk full on SQLite, mid-run', () => {
  it('a run whose timer fires while the disk is full is not lost: it completes once space is freed', async (ctx) => {
    const m = mountTmpfs('8m');
    if ('refused' in m) {
      ctx.skip(`cannot mount a tmpfs here (${m.refused}); the disk-full test needs root`);
      return;
    }
    const errors: string[] = [];
    let b: Baton | undefined;
    try {
      b = await Baton.open({ dir: join(m.dir, 'store'), pollIntervalMs: 20, onInternalError: (e, where) => errors.push(`${String((e as BatonError).code ?? e)} at ${where.replace(/run_\w+/, 'run')}`) });
      const v = await b.register('name: later\nsteps:\n  - { id: nap, kind: wait, duration: 1500ms }\n  - { id: big, kind: transform, needs: [nap], expression: \'$join([1..2000].$string($), ",")\' }\n');
      const id = await b.start(v, {});
      await until('the timer armed', async () => (await b!.getEvents(id)).some((e) => e.type === 'step.waiting'));
      fill(join(m.dir, 'filler'));
      // The timer fires into a full disk: its commit is refused, the run stays where it was.
      await sleep(3000);
      const stuck = await b.getRun(id);
      expect(stuck.status).not.toBe('completed');
      rmSync(join(m.dir, 'filler'));
      // The same process (no restart) takes the step up again once the store accepts writes.
      const r = await b.wait(id, { timeoutMs: 30_000 });
      expect(r.status).toBe('completed');
      expect(await successesPerStep(b, id)).toEqual({ nap: 1, big: 1 });
      expect(errors.some((x) => x.startsWith('BATON_STORE_FULL'))).toBe(true);
      console.log(`disk full mid-run: internal errors while full: ${[...new Set(errors)].join(', ') || 'none'}`);
    } finally {
      await b?.close().catch(() => undefined);
      m.unmount();
    }
  }, 90_000);
});
