/**
 * Cron schedules on each store: rows kept in step by registration, fires started once with
 * several engines on one store, missed-fire policies after downtime (an injected clock moves
 * time, so nothing here waits for a real minute), pause/resume/trigger, failing inputs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Baton, type BatonOptions } from '../../src/index.js';
import { derivedRunId } from '../../src/engine/triggers.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const child = resolve(import.meta.dirname, 'fixtures/sched-child.ts');

/** An engine in a separate process on the SQLite store in `dir`; resolves once it runs. */
function otherProcess(dir: string): Promise<{ stop(): Promise<void> }> {
  return new Promise((res, rej) => {
    const p: ChildProcess = spawn(process.execPath, ['--import', 'tsx', child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => rej(new Error(`child exited ${code}: ${err}`)));
    p.stdout!.on('data', (d: Buffer) => {
      if (!d.toString().includes('ready')) return;
      res({ stop: () => new Promise<void>((done) => (p.exitCode !== null ? done() : (p.once('exit', () => done()), p.kill('SIGTERM')))) });
    });
  });
}
const iso = (ms: number) => new Date(ms).toISOString();

describe.each(STORE_KINDS)('schedules on %s', (k) => {
  const suite = engineSuite(k, 'baton-sched-');
  const baton = (opts: BatonOptions = {}): Promise<Baton> => suite.baton(opts);

  /** A clock the test moves; the schedulers read it. */
  /**
   * A clock the test moves, and scheduler options using it. The engine's own scheduler loop
   * also reads this clock; it is kept asleep (an hour between looks), so that the fires the
   * test expects are started by its own `tick()`, whose count it asserts, and not by the loop
   * happening to wake just after the clock moved (it did, on a busy machine).
   */
  function fakeClock(start: string) {
    const c = { t: Date.parse(start), now: () => c.t, set: (s: string) => (c.t = Date.parse(s)) };
    return Object.assign(c, { schedules: { now: c.now, maxSleepMs: 3_600_000 } });
  }

  const flow = (name: string, trigger: string) => `
name: ${name}
triggers:
${trigger}
steps:
  - { id: echo, kind: transform, expression: "input" }
`;

  async function runsOf(b: Baton, workflow: string) {
    return (await b.listRuns({ workflow, limit: 1000 })).sort((x, y) => String((x.input as { scheduled_at?: string })?.scheduled_at).localeCompare(String((y.input as { scheduled_at?: string })?.scheduled_at)));
  }

  async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  it('fires an every-second schedule and its runs complete, with deterministic run ids', async () => {
    const b = await baton();
    await b.register(flow('tick', '  - schedule: { cron: "* * * * * *" }'));
    const runs = await until('two completed runs', async () => {
      const rs = (await runsOf(b, 'tick')).filter((r) => r.status === 'completed');
      return rs.length >= 2 && rs;
    });
    for (const r of runs) {
      const at = (r.input as { scheduled_at: string }).scheduled_at;
      expect(at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
      expect(r.id).toMatch(/^sched_[0-9a-f]{12}_\d{8}T\d{6}000Z$/);
      expect(r.namespace).toBe('default');
      expect((await b.getRun(r.id)).output).toEqual({ scheduled_at: at });
    }
    const [row] = await b.schedules.list();
    expect(row).toMatchObject({ id: 'tick~schedule:0', workflow: 'tick', triggerId: 'schedule:0', cron: '* * * * * *', timezone: 'UTC', missed: 'once', paused: false });
    expect(row.lastRunId).toMatch(/^sched_/);
    expect(row.nextFireAt).toBeGreaterThan(row.lastFiredAt!);
  });

  it('starts each fire once with two engines on the same store', async () => {
    const b1 = await baton({ schedules: { maxSleepMs: 100 } });
    // Two processes on SQLite (one process's synchronous SQLite calls never interleave); two
    // engines, each with its own connection pool, on PostgreSQL.
    const b2 = k === 'sqlite' ? await otherProcess(suite.dir) : await baton({ schedules: { maxSleepMs: 100 } });
    // A random run id per start: a fire started twice would show as two runs.
    await b1.register(flow('dup', '  - schedule: { cron: "* * * * * *" }\n    run_id: \'"r" & $string($floor($random() * 1e12))\''));
    await until('four fires', async () => (await runsOf(b1, 'dup')).length >= 4);
    await b1.close();
    await ('stop' in b2 ? b2.stop() : b2.close());
    const check = await baton({ worker: false, schedules: false });
    const fires = (await runsOf(check, 'dup')).map((r) => (r.input as { scheduled_at: string }).scheduled_at);
    expect(fires.length).toBeGreaterThanOrEqual(4);
    expect(new Set(fires).size).toBe(fires.length);
    // No fire skipped between the first and the last.
    const ms = fires.map((f) => Date.parse(f));
    expect(ms.at(-1)! - ms[0]).toBe((fires.length - 1) * 1000);
  });

  it('follows the missed-fire policy after downtime: skip none, once the latest, all up to max_catch_up', async () => {
    const clock = fakeClock('2026-03-01T10:00:00.500Z');
    const sched = clock.schedules;
    const b1 = await baton({ schedules: sched });
    await b1.register(flow('skipper', '  - schedule: { cron: "0 * * * * *", missed: skip }'));
    await b1.register(flow('oncer', '  - schedule: { cron: "0 * * * * *" }'));
    await b1.register(flow('aller', '  - schedule: { cron: "0 * * * * *", missed: all, max_catch_up: 3 }'));
    expect((await b1.schedules.list()).map((s) => iso(s.nextFireAt!))).toEqual(Array(3).fill('2026-03-01T10:01:00.000Z'));
    await b1.close();

    // An hour later, nothing having run: about sixty fires missed.
    clock.set('2026-03-01T11:00:30.000Z');
    const b2 = await baton({ schedules: sched });
    await b2.schedules.tick();
    const at = async (wf: string) => (await runsOf(b2, wf)).map((r) => (r.input as { scheduled_at: string }).scheduled_at);
    expect(await at('skipper')).toEqual([]);
    expect(await at('oncer')).toEqual(['2026-03-01T11:00:00.000Z']);
    expect(await at('aller')).toEqual(['2026-03-01T10:58:00.000Z', '2026-03-01T10:59:00.000Z', '2026-03-01T11:00:00.000Z']);
    for (const s of await b2.schedules.list()) expect(iso(s.nextFireAt!)).toBe('2026-03-01T11:01:00.000Z');

    // A fire a few seconds late is not missed: every policy starts it.
    clock.set('2026-03-01T11:01:05.000Z');
    await b2.schedules.tick();
    for (const wf of ['skipper', 'oncer', 'aller']) expect((await at(wf)).at(-1)).toBe('2026-03-01T11:01:00.000Z');
    expect((await runsOf(b2, 'aller')).length).toBe(4);
    // Ticking again at the same instant starts nothing more.
    expect(await b2.schedules.tick()).toBe(0);
  });

  it('keeps schedule rows in step with the latest version: new cron recomputed, same cron kept, removed trigger gone', async () => {
    const clock = fakeClock('2026-03-01T10:00:00.000Z');
    const b = await baton({ schedules: clock.schedules });
    const v1 = await b.register(flow('nightly', '  - schedule: { cron: "0 2 * * *", timezone: Europe/Paris }\n  - schedule: { cron: "0 12 * * *" }'));
    let rows = await b.schedules.list();
    expect(rows.map((r) => [r.id, iso(r.nextFireAt!)])).toEqual([
      ['nightly~schedule:0', '2026-03-02T01:00:00.000Z'],
      ['nightly~schedule:1', '2026-03-01T12:00:00.000Z'],
    ]);
    expect(rows[0].versionId).toBe(v1.versionId);
    await b.schedules.pause('nightly~schedule:1');

    clock.set('2026-03-01T10:30:00.000Z');
    const v2 = await b.register(flow('nightly', '  - schedule: { cron: "30 2 * * *", timezone: Europe/Paris }\n  - schedule: { cron: "0 12 * * *", missed: skip }'));
    rows = await b.schedules.list();
    expect(rows.map((r) => [r.id, iso(r.nextFireAt!), r.versionId, r.paused, r.missed])).toEqual([
      ['nightly~schedule:0', '2026-03-02T01:30:00.000Z', v2.versionId, false, 'once'],
      ['nightly~schedule:1', '2026-03-01T12:00:00.000Z', v2.versionId, true, 'skip'],
    ]);

    // Re-registering the older document changes nothing: v2 is still the latest.
    await b.register(flow('nightly', '  - schedule: { cron: "0 2 * * *", timezone: Europe/Paris }\n  - schedule: { cron: "0 12 * * *" }'));
    expect((await b.schedules.list()).map((r) => r.versionId)).toEqual([v2.versionId, v2.versionId]);

    await b.register(flow('nightly', '  - schedule: { cron: "30 2 * * *", timezone: Europe/Paris }'));
    expect((await b.schedules.list()).map((r) => r.id)).toEqual(['nightly~schedule:0']);
    await b.register('name: nightly\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n');
    expect(await b.schedules.list()).toEqual([]);
  });

  it('pauses, resumes (no catch-up of paused fires) and triggers once on demand', async () => {
    const clock = fakeClock('2026-03-01T10:00:00.500Z');
    const b = await baton({ schedules: clock.schedules });
    await b.register(flow('pz', '  - schedule: { cron: "0 * * * * *", missed: all }'));
    const paused = await b.schedules.pause('pz~schedule:0');
    expect(paused.paused).toBe(true);
    clock.set('2026-03-01T10:05:10.000Z');
    expect(await b.schedules.tick()).toBe(0);
    expect(await runsOf(b, 'pz')).toEqual([]);

    const resumed = await b.schedules.resume('pz~schedule:0');
    expect(resumed.paused).toBe(false);
    expect(iso(resumed.nextFireAt!)).toBe('2026-03-01T10:06:00.000Z');
    expect(await b.schedules.tick()).toBe(0);
    clock.set('2026-03-01T10:06:01.000Z');
    expect(await b.schedules.tick()).toBe(1);

    const runId = await b.schedules.trigger('pz~schedule:0');
    expect((await b.wait(runId, { timeoutMs: 10_000 })).status).toBe('completed');
    expect((await b.getRun(runId)).input).toEqual({ scheduled_at: '2026-03-01T10:06:01.000Z' });
    expect((await b.schedules.get('pz~schedule:0')).lastRunId).toBe(runId);
    expect((await runsOf(b, 'pz')).length).toBe(2);

    for (const op of ['pause', 'resume', 'trigger', 'get'] as const) {
      await expect(b.schedules[op]('nope~schedule:0')).rejects.toMatchObject({ code: 'BATON_SCHEDULE_NOT_FOUND', status: 404 });
    }
  });

  it('records a failing input on the row and keeps firing the other schedules', async () => {
    const clock = fakeClock('2026-03-01T10:00:00.500Z');
    const b = await baton({ schedules: clock.schedules });
    await b.register(flow('bad', '  - schedule: { cron: "0 * * * * *" }\n    input: \'$error("no input today")\''));
    await b.register(flow('good', '  - schedule: { cron: "0 * * * * *" }\n    input: \'{ "day": $substring(fire_time, 0, 10), "t": trigger.id }\''));
    clock.set('2026-03-01T10:01:00.200Z');
    expect(await b.schedules.tick()).toBe(1);
    const bad = await b.schedules.get('bad~schedule:0');
    expect(bad.lastError).toMatchObject({ code: 'BATON_EXPR_EVAL' });
    expect(bad.lastError!.message).toMatch(/no input today/);
    expect(bad.lastError!.message).toMatch(/triggers\[0\]\.input of bad/);
    expect(iso(bad.nextFireAt!)).toBe('2026-03-01T10:02:00.000Z');
    expect(bad.lastRunId).toBeUndefined();
    const [good] = await runsOf(b, 'good');
    expect(good.input).toEqual({ day: '2026-03-01', t: 'schedule:0' });
    expect((await b.schedules.get('good~schedule:0')).lastError).toBeUndefined();
  });

  it('takes the run id from the trigger\'s run_id expression: fires giving the same id start one run', async () => {
    const clock = fakeClock('2026-03-01T10:00:00.500Z');
    const b = await baton({ schedules: clock.schedules });
    await b.register(flow('daily', '  - schedule: { cron: "0 * * * * *" }\n    run_id: \'"daily-" & $substring(trigger.scheduled_at, 0, 10)\''));
    for (const t of ['2026-03-01T10:01:00.100Z', '2026-03-01T10:02:00.100Z', '2026-03-02T00:00:00.100Z']) {
      clock.set(t);
      await b.schedules.tick();
    }
    const id = (v: string) => derivedRunId('sched', 'daily', 'schedule:0', v);
    expect((await runsOf(b, 'daily')).map((r) => [r.id, (r.input as { scheduled_at: string }).scheduled_at])).toEqual([
      [id('daily-2026-03-01'), '2026-03-01T10:01:00.000Z'],
      [id('daily-2026-03-02'), '2026-03-02T00:00:00.000Z'],
    ]);
    expect((await b.schedules.get('daily~schedule:0')).lastRunId).toBe(id('daily-2026-03-02'));
  });

  it('derives run ids per workflow and trigger: two schedules whose run_id gives the same value both run', async () => {
    const clock = fakeClock('2026-03-01T10:00:00.500Z');
    const b = await baton({ schedules: clock.schedules });
    await b.register(flow('rid_a', '  - schedule: { cron: "0 * * * * *" }\n    run_id: scheduled_at'));
    await b.register(flow('rid_b', '  - schedule: { cron: "0 * * * * *" }\n    run_id: scheduled_at'));
    clock.set('2026-03-01T10:01:00.100Z');
    await b.schedules.tick();
    // Both fired: the second no longer answers with the first's run.
    expect([(await runsOf(b, 'rid_a')).length, (await runsOf(b, 'rid_b')).length]).toEqual([1, 1]);
    const [a] = await runsOf(b, 'rid_a');
    const [bb] = await runsOf(b, 'rid_b');
    expect(a?.id).toBe(derivedRunId('sched', 'rid_a', 'schedule:0', '2026-03-01T10:01:00.000Z'));
    expect(bb?.id).toBe(derivedRunId('sched', 'rid_b', 'schedule:0', '2026-03-01T10:01:00.000Z'));
    expect((await b.schedules.get('rid_b~schedule:0')).lastRunId).toBe(bb.id);
  });

  it('starts a namespaced workflow\'s scheduled runs in its namespace', async () => {
    const clock = fakeClock('2026-03-01T10:00:00.500Z');
    const b = await baton({ schedules: clock.schedules });
    await b.register(flow('report', '  - schedule: { cron: "0 * * * * *" }'), undefined, { namespace: 'team-a' });
    const [row] = await b.schedules.list({ namespaces: ['team-a'] });
    expect(row).toMatchObject({ id: 'team-a~report~schedule:0', workflow: 'team-a/report', namespace: 'team-a' });
    expect(await b.schedules.list({ namespaces: ['team-b'] })).toEqual([]);
    clock.set('2026-03-01T10:01:00.000Z');
    await b.schedules.tick();
    const [run] = await runsOf(b, 'team-a/report');
    expect(run.namespace).toBe('team-a');
  });
});
