/**
 * The one suite every `Store` must pass: a commit is fenced on its claim (a stale worker writes
 * nothing), a join is scheduled exactly once, a step is claimed by one worker at a time, a dead
 * worker's claims come back, a paused run's steps stay unclaimed, signals wake only their
 * waiters, events nobody waits for are buffered and taken by an arming wait within its
 * lookback, emitted events are recorded with their commit, one failing write in a batch does
 * not undo the others, and a retry of an ended run applies in one transaction only if the run
 * is still as its plan saw it.
 *
 * Each store's test file (`sqlite.test.ts`, later `postgres.test.ts`) calls `storeConformance`
 * with a factory for a fresh, empty store; any case a store skips is named with its reason.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewRun, NewSchedule, StepCommit, Store } from '../../src/store/store.js';
import { verifyStore } from '../../src/audit/verify.js';

export interface StoreFactory {
  /** A fresh, empty store. */
  open(): Promise<Store>;
  /** Drops what `open` created. */
  cleanup(): Promise<void>;
}

/** a, b → join: a and b scheduled for worker w1, join waiting on 2. */
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

function succeed(runId: string, key: string, owner: string, attempt = 1): StepCommit {
  return {
    fence: { runId, key, owner, attempt },
    update: { status: 'succeeded', outputJson: `"${key}"`, owner: null, finishedAt: Date.now() },
    events: [{ type: 'step.succeeded', stepKey: key, at: Date.now() }],
    decrement: key === 'join' ? [] : [{ key: 'join', live: true }],
  };
}

export function storeConformance(name: string, factory: StoreFactory): void {
  let store: Store;

  beforeEach(async () => {
    store = await factory.open();
    await store.putVersion({ versionId: 'wf@1', name: 'wf', hash: '1', document: '{}' });
  });
  afterEach(async () => {
    await store.close();
    await factory.cleanup();
  });

  describe(`${name} store conformance`, () => {
    it('gives the latest version of every workflow, and a checked insert the same list', async () => {
      await store.putVersion({ versionId: 'wf@2', name: 'wf', hash: '2', document: '{}' });
      await store.putVersion({ versionId: 'team/other@1', name: 'team/other', hash: '1', document: '{}' });
      const latest = await store.latestVersions();
      expect(latest.map((v) => [v.versionId, v.seq])).toEqual([['team/other@1', 1], ['wf@2', 2]]);
      let seen: string[] = [];
      await store.putVersion({ versionId: 'wf@3', name: 'wf', hash: '3', document: '{}' }, (l) => (seen = l.map((v) => v.versionId)));
      expect(seen).toEqual(['team/other@1', 'wf@2']);
    });

    it('schedules a join exactly once, when its last input commits', async () => {
      await store.admitRun(joinRun('r1'));
      // Both inputs commit in the same group-commit batch.
      const [ra, rb] = await Promise.all([store.commit(succeed('r1', 'a', 'w1')), store.commit(succeed('r1', 'b', 'w1'))]);
      expect([...ra.ready, ...rb.ready]).toEqual(['join']);
      const join = await store.getStep('r1', 'join');
      expect(join).toMatchObject({ status: 'scheduled', owner: 'w1', pendingDeps: 0, liveDeps: 2 });
    });

    it('fences commits: a worker that lost its claim, or a stale attempt, writes nothing', async () => {
      await store.admitRun(joinRun('r2'));
      const stale = await store.commit(succeed('r2', 'a', 'w-other'));
      expect(stale).toEqual({ ok: false, ready: [], runIdle: false });
      const wrongAttempt = await store.commit(succeed('r2', 'a', 'w1', 2));
      expect(wrongAttempt.ok).toBe(false);
      expect(await store.getStep('r2', 'a')).toMatchObject({ status: 'scheduled', owner: 'w1' });
      expect((await store.getEvents('r2')).map((e) => e.type)).toEqual(['run.created']);
      // The real owner's commit lands once; a duplicate of it lands nowhere.
      expect((await store.commit(succeed('r2', 'a', 'w1'))).ok).toBe(true);
      expect((await store.commit(succeed('r2', 'a', 'w1'))).ok).toBe(false);
      expect((await store.getEvents('r2')).filter((e) => e.type === 'step.succeeded')).toHaveLength(1);
    });

    it('keeps which run a replay run replays (and nothing for other runs)', async () => {
      await store.admitRun(joinRun('orig'));
      await store.admitRun({ ...joinRun('replay_1'), replayOf: 'orig' });
      expect((await store.getRun('replay_1'))?.replayOf).toBe('orig');
      expect((await store.getRun('orig'))?.replayOf).toBeUndefined();
      const listed = await store.listRuns({ limit: 10 });
      expect(Object.fromEntries(listed.map((r) => [r.id, r.replayOf ?? null]))).toEqual({ orig: null, replay_1: 'orig' });
    });

    it('numbers each run\'s events 1, 2, 3… in order', async () => {
      await store.admitRun(joinRun('r3'));
      await store.commit(succeed('r3', 'a', 'w1'));
      await store.commit(succeed('r3', 'b', 'w1'));
      await store.appendEvents('r3', [{ type: 'note', at: Date.now() }]);
      expect((await store.getEvents('r3')).map((e) => e.id)).toEqual([1, 2, 3, 4]);
      expect((await store.getEvents('r3', 2)).map((e) => e.id)).toEqual([3, 4]);
    });

    it('lets one worker claim a free step, and gives a dead worker\'s claims back', async () => {
      const run = joinRun('r4');
      for (const s of run.steps) if (s.status === 'scheduled') s.owner = undefined;
      await store.admitRun(run);
      await store.registerWorker({ id: 'w1', pid: 999_999, host: 'h', startedAt: 0 }, 60_000);
      await store.registerWorker({ id: 'w2', pid: 999_998, host: 'h', startedAt: 0 }, 60_000);
      const first = await store.claimSteps('w1', 10, Date.now());
      const second = await store.claimSteps('w2', 10, Date.now());
      expect(first.map((c) => c.key).sort()).toEqual(['a', 'b']);
      expect(second).toEqual([]);
      // w1's process is gone: its claims are freed at once, without waiting for the lease.
      const freed = await store.releaseDeadWorkers(Date.now(), (w) => (w.id === 'w1' ? false : true));
      expect(freed).toBe(2);
      expect((await store.claimSteps('w2', 10, Date.now())).map((c) => c.key).sort()).toEqual(['a', 'b']);
      // A worker we cannot see (another host) loses its claims only when its lease expires.
      expect(await store.releaseDeadWorkers(Date.now(), () => undefined)).toBe(0);
      expect(await store.releaseDeadWorkers(Date.now() + 120_000, () => undefined)).toBe(2);
    });

    it('counts the shared queue for metrics (due, unclaimed, of active runs) and keeps a run\'s trace context', async () => {
      const t0 = Date.now();
      expect(await store.queueStats(t0)).toEqual({ ready: 0 });
      const run = { ...joinRun('rq'), trace: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01 ${'c'.repeat(16)}` };
      for (const st of run.steps) if (st.status === 'scheduled') {
        st.owner = undefined;
        st.dueAt = t0 - 5_000;
      }
      await store.admitRun(run);
      await store.admitRun(joinRun('rq2')); // claimed at admission: not waiting in the queue
      expect((await store.getRun('rq'))!.trace).toBe(run.trace);
      expect((await store.getRun('rq2'))!.trace).toBeUndefined();
      expect(await store.queueStats(t0)).toEqual({ ready: 2, oldestDueAt: t0 - 5_000 });
      await store.registerWorker({ id: 'w9', pid: process.pid, host: 'h', startedAt: 0 }, 60_000);
      await store.claimSteps('w9', 1, t0);
      expect((await store.queueStats(t0)).ready).toBe(1);
      await store.setRunStatus('rq', ['running'], 'paused', []);
      expect(await store.queueStats(t0)).toEqual({ ready: 0 });
    });

    it('keeps a paused run\'s new steps unclaimed', async () => {
      await store.admitRun(joinRun('r5'));
      await store.commit(succeed('r5', 'a', 'w1'));
      await store.setRunStatus('r5', ['running'], 'paused', []);
      const r = await store.commit(succeed('r5', 'b', 'w1'));
      expect(r.ready).toEqual([]);
      expect(await store.getStep('r5', 'join')).toMatchObject({ status: 'scheduled' });
      expect((await store.getStep('r5', 'join'))!.owner).toBeUndefined();
      expect(await store.claimSteps('w1', 10, Date.now())).toEqual([]);
      await store.setRunStatus('r5', ['paused'], 'running', []);
      expect((await store.claimSteps('w1', 10, Date.now())).map((c) => c.key)).toEqual(['join']);
    });

    it('wakes only steps waiting on the signalled key', async () => {
      await store.admitRun(joinRun('r6'));
      await store.commit({ fence: { runId: 'r6', key: 'a', owner: 'w1', attempt: 1 }, update: { status: 'waiting', waitKey: 'event:paid:o1', owner: null, state: { waitKey: 'event:paid:o1' } }, events: [] });
      expect(await store.signal('event:paid:o2', () => ({}), [])).toEqual([]);
      const woken = await store.signal('event:paid:o1', (st) => ({ ...(st.state as object), signal: { payload: 7 } }), [{ type: 'signal.received', at: Date.now() }]);
      expect(woken).toEqual([{ runId: 'r6', key: 'a' }]);
      expect(await store.getStep('r6', 'a')).toMatchObject({ status: 'scheduled', state: { waitKey: 'event:paid:o1', signal: { payload: 7 } } });
      expect(await store.signal('event:paid:o1', () => ({}), [])).toEqual([]);
    });

    it('buffers an event nobody waits for; an arming wait takes the oldest within its lookback, once', async () => {
      const key = 'event:paid:o9';
      const deliver = (payload: unknown, at: number, eventId?: string) => store.deliverEvent({
        waitKey: key, eventId, payload, at, expiresAt: at + 3_600_000, state: (st) => ({ ...(st.state as object), signal: { payload } }), events: [{ type: 'signal.received', at }],
      });
      const now = Date.now();
      expect(await deliver({ n: 'stale' }, now - 60_000)).toEqual({ buffered: true, duplicate: false });
      expect(await deliver({ n: 1 }, now - 2_000, 'e1')).toEqual({ buffered: true, duplicate: false });
      expect(await deliver({ n: 1 }, now - 1_500, 'e1')).toEqual({ buffered: false, duplicate: true });
      expect(await deliver({ n: 2 }, now - 1_000)).toEqual({ buffered: true, duplicate: false });
      await store.admitRun(joinRun('r9'));
      const arm = (stepKey: string, since: number): StepCommit => ({
        fence: { runId: 'r9', key: stepKey, owner: 'w1', attempt: 1 },
        update: { status: 'waiting', waitKey: key, owner: null, state: { waitKey: key } },
        events: [],
        inbox: { since, namespace: 'default', resume: (payload, at) => ({ state: { waitKey: key, signal: { payload, at } }, events: [{ type: 'signal.received', stepKey, at: Date.now() }] }) },
      });
      // Lookback 10 s: the stale event (60 s old) is out of reach; the oldest within is n: 1.
      const ra = await store.commit(arm('a', now - 10_000));
      expect(ra).toMatchObject({ ok: true, consumed: true, ready: ['a'] });
      expect(await store.getStep('r9', 'a')).toMatchObject({ status: 'scheduled', owner: 'w1', state: { signal: { payload: { n: 1 } } } });
      expect((await store.getStep('r9', 'a'))!.waitKey).toBeUndefined();
      const rb = await store.commit(arm('b', now - 10_000));
      expect(rb).toMatchObject({ ok: true, consumed: true });
      expect(await store.getStep('r9', 'b')).toMatchObject({ state: { signal: { payload: { n: 2 } } } });
      // Nothing left within reach: a third wait parks, and the next delivery wakes it (one waiter per event).
      await store.admitRun(joinRun('r10'));
      const rc = await store.commit({ ...arm('a', now - 10_000), fence: { runId: 'r10', key: 'a', owner: 'w1', attempt: 1 } });
      expect(rc.consumed).toBeFalsy();
      expect(await store.getStep('r10', 'a')).toMatchObject({ status: 'waiting', waitKey: key });
      expect(await deliver({ n: 3 }, Date.now())).toEqual({ woken: { runId: 'r10', key: 'a' }, buffered: false, duplicate: false });
      expect(await store.getStep('r10', 'a')).toMatchObject({ status: 'scheduled', state: { signal: { payload: { n: 3 } } } });
    });

    it('an event id counts within the namespace it was sent to: the same id sent to another namespace is delivered too', async () => {
      const key = 'event:paid:o12';
      const deliver = (eventId: string, namespace?: string) => store.deliverEvent({
        waitKey: key, namespace, eventId, payload: { namespace: namespace ?? null }, at: Date.now(), expiresAt: Date.now() + 3_600_000, state: (st) => st.state, events: [{ type: 'signal.received', at: Date.now() }],
      });
      // Buffered: team-a's id neither hides team-b's event nor tells team-b it was sent.
      expect(await deliver('x', 'team-a')).toEqual({ buffered: true, duplicate: false });
      expect(await deliver('x', 'team-b')).toEqual({ buffered: true, duplicate: false });
      expect(await deliver('x')).toEqual({ buffered: true, duplicate: false }); // every namespace: its own scope
      expect(await deliver('x', 'team-a')).toEqual({ buffered: false, duplicate: true });
      expect(await deliver('x')).toEqual({ buffered: false, duplicate: true });
      // Taken by a waiting step (remembered as consumed): the same.
      await store.admitRun({ ...joinRun('r12'), namespace: 'team-a' });
      await store.commit({ fence: { runId: 'r12', key: 'a', owner: 'w1', attempt: 1 }, update: { status: 'waiting', waitKey: key, owner: null, state: { waitKey: key } }, events: [] });
      expect(await deliver('y', 'team-a')).toEqual({ woken: { runId: 'r12', key: 'a' }, buffered: false, duplicate: false });
      expect(await deliver('y', 'team-b')).toEqual({ buffered: true, duplicate: false });
      expect(await deliver('y', 'team-a')).toEqual({ buffered: false, duplicate: true });
    });

    it('records emitted events with the commit (once per id) until marked dispatched', async () => {
      await store.admitRun(joinRun('r11'));
      const entry = { id: 'r11/a', runId: 'r11', namespace: 'team-a', eventJson: JSON.stringify({ id: 'r11/a', type: 't' }) };
      // A fenced-out commit records nothing.
      expect((await store.commit({ ...succeed('r11', 'a', 'w2'), outbox: [entry] })).ok).toBe(false);
      expect(await store.pendingOutbox(Date.now() + 1000, 10)).toEqual([]);
      expect((await store.commit({ ...succeed('r11', 'a', 'w1'), outbox: [entry] })).ok).toBe(true);
      expect((await store.commit({ ...succeed('r11', 'b', 'w1'), outbox: [entry] })).ok).toBe(true);
      const pending = await store.pendingOutbox(Date.now() + 1000, 10);
      expect(pending).toMatchObject([{ id: 'r11/a', runId: 'r11', namespace: 'team-a', event: { id: 'r11/a', type: 't' } }]);
      expect(await store.pendingOutbox(pending[0].createdAt, 10)).toEqual([]);
      await store.markDispatched('r11/a', Date.now());
      expect(await store.pendingOutbox(Date.now() + 1000, 10)).toEqual([]);
    });

    it('claims fairly: namespaces take turns, and within a namespace higher priority first', async () => {
      const oneStep = (id: string, namespace: string, priority = 0): NewRun => ({
        id, versionId: 'wf@1', workflow: 'wf', inputJson: '{}', createdAt: Date.now(), events: [], namespace, priority,
        steps: [{ key: 'only', stepId: 'only', status: 'scheduled', pendingDeps: 0, dueAt: 1 }],
      });
      // A flood in one namespace, admitted first, and three runs in two quiet ones.
      for (let i = 0; i < 200; i++) await store.admitRun(oneStep(`flood${String(i).padStart(3, '0')}`, 'tenant-a'));
      await store.admitRun(oneStep('quiet-low', 'tenant-b', 0));
      await store.admitRun(oneStep('quiet-high', 'tenant-b', 5));
      await store.admitRun(oneStep('other', 'tenant-c'));
      const first = (await store.claimSteps('w1', 6, Date.now())).map((c) => c.runId);
      expect(first).toHaveLength(6);
      // Each namespace gets its turn in the first round; tenant-b's higher priority comes first.
      expect(first.slice(0, 3).sort()).toEqual(['flood000', 'other', 'quiet-high']);
      expect(first).toContain('quiet-low');
      expect(first.filter((r) => r.startsWith('flood'))).toHaveLength(3);
      expect((await store.getRun('quiet-high'))).toMatchObject({ namespace: 'tenant-b', priority: 5 });
    });

    it('queues runs beyond their concurrency key\'s limit and starts the oldest when one ends', async () => {
      const keyed = (id: string): NewRun => ({ ...joinRun(id), concurrency: { key: 'customer-7', limit: 1 } });
      expect(await store.admitRun(keyed('k1'))).toEqual({ created: true });
      expect(await store.admitRun(keyed('k2'))).toEqual({ created: true, queued: true });
      expect(await store.admitRun(keyed('k3'))).toEqual({ created: true, queued: true });
      expect(await store.admitRun({ ...joinRun('free'), concurrency: { key: 'customer-8', limit: 1 } })).toEqual({ created: true });
      expect((await store.getRun('k2'))!.status).toBe('queued');
      // A queued run's steps are never claimed, even though they are scheduled.
      expect((await store.getStep('k2', 'a'))!.owner).toBeUndefined();
      expect((await store.claimSteps('w9', 100, Date.now())).filter((c) => c.runId.startsWith('k'))).toEqual([]);
      // k1 ends: k2 (the oldest) starts, k3 still waits.
      await store.finishRun({ runId: 'k1', status: 'completed', outputJson: '1', events: [] });
      expect((await store.getRun('k2'))!.status).toBe('running');
      expect((await store.getRun('k3'))!.status).toBe('queued');
      expect((await store.claimSteps('w9', 100, Date.now())).map((c) => `${c.runId}:${c.key}`).sort()).toEqual(['k2:a', 'k2:b']);
      // Cancelling the active one starts the next too.
      await store.cancelRun('k2', []);
      expect((await store.getRun('k3'))!.status).toBe('running');
      expect((await store.getEvents('k3')).map((e) => e.type)).toContain('run.dequeued');
    });

    it('shares a token bucket and concurrency slots between everyone using the store', async () => {
      const t0 = 1_000_000;
      // 60 a minute: a minute's burst at once, then one a second.
      expect(await store.takeTokens('svc:rpm', 60, 60, t0)).toBe(0);
      expect(await store.takeTokens('svc:rpm', 60, 1, t0)).toBe(1000);
      expect(await store.takeTokens('svc:rpm', 60, 1, t0 + 1000)).toBe(0);
      expect(await store.takeTokens('svc:rpm', 60, 2, t0 + 1000)).toBe(2000);
      expect(await store.acquireSlot('svc:c', 2, 'h1', t0, t0 + 5000)).toBe(true);
      expect(await store.acquireSlot('svc:c', 2, 'h2', t0, t0 + 5000)).toBe(true);
      expect(await store.acquireSlot('svc:c', 2, 'h3', t0, t0 + 5000)).toBe(false);
      await store.releaseSlot('svc:c', 'h1');
      expect(await store.acquireSlot('svc:c', 2, 'h3', t0, t0 + 5000)).toBe(true);
      // A holder that never released (a crashed worker) loses its slot when it expires.
      expect(await store.acquireSlot('svc:c', 2, 'h4', t0 + 6000, t0 + 9000)).toBe(true);
    });

    it('keeps schedule rows in step with the latest version and leases each due row to one scheduler', async () => {
      const t0 = 1_800_000_000_000;
      const row = (o: Partial<NewSchedule> = {}): NewSchedule => ({
        id: 'wf~schedule:0', workflow: 'wf', namespace: 'default', triggerId: 'schedule:0', versionId: 'wf@1',
        cron: '* * * * *', timezone: 'UTC', missed: 'once', maxCatchUp: 100, nextFireAt: t0 + 60_000, ...o,
      });
      expect(await store.syncSchedules('wf', 'wf@1', [row(), row({ id: 'wf~schedule:1', triggerId: 'schedule:1' })], t0)).toBe(true);
      // Not the latest version: nothing changes.
      expect(await store.syncSchedules('wf', 'wf@0', [], t0)).toBe(false);
      expect((await store.listSchedules()).map((s) => s.id)).toEqual(['wf~schedule:0', 'wf~schedule:1']);

      // Two schedulers claim at once: the due row goes to one of them.
      const [a, b] = await Promise.all([store.claimSchedules('s1', t0 + 60_000, t0 + 90_000, 10), store.claimSchedules('s2', t0 + 60_000, t0 + 90_000, 10)]);
      expect([...a, ...b].map((s) => s.id).sort()).toEqual(['wf~schedule:0', 'wf~schedule:1']);
      expect(new Set([...a, ...b].map((s) => s.id)).size).toBe(2);
      const holder = a.length ? 's1' : 's2';
      expect(await store.claimSchedules('s3', t0 + 61_000, t0 + 91_000, 10)).toEqual([]);
      expect(await store.nextScheduleAt()).toBe(t0 + 90_000);
      // Only the lease holder advances a claimed row, and that gives the lease back.
      const first = [...a, ...b].find((s) => s.leaseOwner === holder)!.id;
      expect(await store.updateSchedule(first, { nextFireAt: t0 + 120_000, lastFiredAt: t0 + 60_000, lastRunId: 'r' }, t0 + 60_001, 'intruder')).toBe(false);
      expect(await store.updateSchedule(first, { nextFireAt: t0 + 120_000, lastFiredAt: t0 + 60_000, lastRunId: 'r', lastError: null }, t0 + 60_001, holder)).toBe(true);
      expect(await store.getSchedule(first)).toMatchObject({ nextFireAt: t0 + 120_000, lastFiredAt: t0 + 60_000, lastRunId: 'r', paused: false, leaseOwner: undefined, leaseUntil: undefined });
      // An expired lease (its holder died) is claimable again.
      const other = ['wf~schedule:0', 'wf~schedule:1'].find((id) => id !== first)!;
      expect((await store.claimSchedules('s3', t0 + 90_001, t0 + 120_000, 10)).map((s) => s.id)).toEqual([other]);

      // A paused row is not claimed; the new version keeps an unchanged cron's next fire and history, takes a changed one's.
      expect(await store.updateSchedule(first, { paused: true }, t0)).toBe(true);
      expect((await store.claimSchedules('s4', t0 + 200_000, t0 + 230_000, 10)).map((s) => s.id)).toEqual([other]);
      await store.putVersion({ versionId: 'wf@2', name: 'wf', hash: '2', document: '{}' });
      expect(await store.syncSchedules('wf', 'wf@2', [row({ id: first, triggerId: first.split('~')[1], versionId: 'wf@2', missed: 'skip', nextFireAt: t0 + 999 })], t0)).toBe(true);
      const [kept] = await store.listSchedules();
      expect(kept).toMatchObject({ id: first, versionId: 'wf@2', missed: 'skip', nextFireAt: t0 + 120_000, lastRunId: 'r', paused: true });
      await store.putVersion({ versionId: 'wf@3', name: 'wf', hash: '3', document: '{}' });
      await store.syncSchedules('wf', 'wf@3', [row({ id: first, triggerId: first.split('~')[1], versionId: 'wf@3', cron: '0 * * * *', nextFireAt: undefined })], t0);
      expect(await store.getSchedule(first)).toMatchObject({ cron: '0 * * * *', nextFireAt: undefined });
      await store.putVersion({ versionId: 'wf@4', name: 'wf', hash: '4', document: '{}' });
      await store.syncSchedules('wf', 'wf@4', [], t0);
      expect(await store.listSchedules()).toEqual([]);
    });

    it('creates a task only with its step\'s fenced suspension; hands it to one poller at a time; fences results on the lease', async () => {
      await store.admitRun({ ...joinRun('t1'), steps: [{ key: 'a', stepId: 'a', status: 'scheduled', pendingDeps: 0, owner: 'w1' }] });
      const suspend = (owner: string): StepCommit => ({
        fence: { runId: 't1', key: 'a', owner, attempt: 1 },
        update: { status: 'waiting', waitKey: 'task:tsk_1', owner: null, state: { taskId: 'tsk_1' } },
        events: [{ type: 'step.waiting', stepKey: 'a', at: Date.now() }],
        task: { id: 'tsk_1', type: 'score', namespace: 'default', inputJson: '{"x":1}', leaseMs: 1000, createdAt: 5 },
      });
      // A stale worker's suspension writes nothing: no task either.
      expect((await store.commit(suspend('w2'))).ok).toBe(false);
      expect(await store.getTask('tsk_1')).toBeUndefined();
      expect((await store.commit(suspend('w1'))).ok).toBe(true);
      expect(await store.getTask('tsk_1')).toMatchObject({ status: 'pending', runId: 't1', stepKey: 'a', attempt: 1, input: { x: 1 }, attempts: 0, awaited: true });

      const now = Date.now();
      const poll = (workerId: string, at: number) => store.pollTask({ types: ['score'], workerId, token: `tok-${workerId}`, now: at });
      expect(await store.pollTask({ types: ['other'], workerId: 'x', token: 'x', now })).toBeUndefined();
      // Two pollers at once: one lease.
      const [p1, p2] = await Promise.all([poll('p1', now), poll('p2', now)]);
      const got = [p1, p2].filter(Boolean);
      expect(got).toHaveLength(1);
      const first = got[0]!;
      expect(first).toMatchObject({ status: 'leased', attempts: 1, leaseExpiresAt: now + 1000 });
      const lease = { taskId: 'tsk_1', workerId: first.leaseOwner!, token: first.leaseToken! };
      expect((await store.heartbeatTask(lease, now + 500)).result).toBe('ok');
      expect((await store.getTask('tsk_1'))!.leaseExpiresAt).toBe(now + 1500);
      expect(await poll('p3', now + 1400)).toBeUndefined();
      // The lease expires: the next poll takes it over, and the old lease is refused.
      const second = (await poll('p3', now + 1600))!;
      expect(second).toMatchObject({ leaseOwner: 'p3', attempts: 2 });
      const wake = { state: { taskId: 'tsk_1', result: { output: 1 } }, events: [{ type: 'step.resumed', at: now }] };
      expect((await store.completeTask({ lease, now: now + 1700, outputJson: '1', wake, events: [] })).result).toBe('lost');
      // The right worker with a wrong token (an older lease of the same worker id) is refused too.
      expect((await store.completeTask({ lease: { taskId: 'tsk_1', workerId: 'p3', token: 'stale' }, now: now + 1700, outputJson: '1', wake, events: [] })).result).toBe('lost');
      expect((await store.heartbeatTask(lease, now + 1700)).result).toBe('lost');
      expect((await store.getStep('t1', 'a'))!.status).toBe('waiting');
      // Back to pending with a retry time: not handed out before it.
      const lease2 = { taskId: 'tsk_1', workerId: 'p3', token: second.leaseToken! };
      expect((await store.failTask({ lease: lease2, now: now + 1700, error: { code: 'E', message: 'busy', retryable: true }, retryAt: now + 3000, events: [] })).result).toBe('ok');
      expect(await poll('p4', now + 2000)).toBeUndefined();
      const third = (await poll('p4', now + 3000))!;
      expect(third).toMatchObject({ attempts: 3, error: { code: 'E' } });
      const lease3 = { taskId: 'tsk_1', workerId: 'p4', token: third.leaseToken! };
      const done = await store.completeTask({ lease: lease3, now: now + 3100, outputJson: '{"score":1}', wake, events: [{ type: 'task.completed', at: now }] });
      expect(done).toMatchObject({ result: 'ok', task: { status: 'completed', output: { score: 1 } } });
      // The step was woken in the same transaction, with the resume state.
      const st = (await store.getStep('t1', 'a'))!;
      expect(st.status).toBe('scheduled');
      expect(st.state).toEqual(wake.state);
      expect((await store.completeTask({ lease: lease3, now: now + 3200, outputJson: '2', wake, events: [] })).result).toBe('lost');
      expect((await store.getEvents('t1')).map((e) => e.type)).toEqual(expect.arrayContaining(['task.leased', 'task.completed', 'step.resumed']));
    });

    it('does not hand out or accept a task whose step stopped waiting for it', async () => {
      await store.admitRun({ ...joinRun('t2'), steps: [{ key: 'a', stepId: 'a', status: 'scheduled', pendingDeps: 0, owner: 'w1' }] });
      await store.commit({
        fence: { runId: 't2', key: 'a', owner: 'w1', attempt: 1 },
        update: { status: 'waiting', waitKey: 'task:tsk_2', owner: null },
        events: [],
        task: { id: 'tsk_2', type: 'score', namespace: 'team-a', inputJson: 'null', leaseMs: 1000, createdAt: 5 },
      });
      const now = Date.now();
      expect(await store.pollTask({ types: ['score'], workerId: 'b', token: 'b', now, namespaces: ['team-b'] })).toBeUndefined();
      const t = (await store.pollTask({ types: ['score'], workerId: 'a', token: 'a', now, namespaces: ['team-a'] }))!;
      expect(t.id).toBe('tsk_2');
      await store.cancelRun('t2', [{ type: 'run.cancelled', at: now }]);
      expect((await store.getTask('tsk_2'))!.awaited).toBe(false);
      const r = await store.completeTask({ lease: { taskId: 'tsk_2', workerId: 'a', token: 'a' }, now, outputJson: '1', wake: { state: {}, events: [] }, events: [] });
      expect(r.result).toBe('gone');
      expect((await store.getTask('tsk_2'))!.status).toBe('leased');
      expect(await store.pollTask({ types: ['score'], workerId: 'c', token: 'c', now: now + 5000 })).toBeUndefined();
      expect((await store.completeTask({ lease: { taskId: 'tsk_none', workerId: 'a', token: 'a' }, now, events: [] })).result).toBe('missing');
    });

    it('a lease that expires at the last hand-out (maxAttempts) is not handed out again; usedUpTasks lists it until it is failed, fenced on the lease having expired', async () => {
      await store.admitRun({ ...joinRun('t3'), steps: [{ key: 'a', stepId: 'a', status: 'scheduled', pendingDeps: 0, owner: 'w1' }] });
      await store.commit({
        fence: { runId: 't3', key: 'a', owner: 'w1', attempt: 1 },
        update: { status: 'waiting', waitKey: 'task:tsk_3', owner: null },
        events: [],
        task: { id: 'tsk_3', type: 'last', namespace: 'default', inputJson: 'null', leaseMs: 1000, maxAttempts: 2, createdAt: 5 },
      });
      const now = Date.now();
      const poll = (workerId: string, at: number) => store.pollTask({ types: ['last'], workerId, token: `tok-${workerId}`, now: at });
      expect(await poll('p1', now)).toMatchObject({ attempts: 1, maxAttempts: 2 });
      expect(await store.usedUpTasks(now + 1500, 10)).toEqual([]);
      const second = (await poll('p2', now + 1500))!;
      expect(second).toMatchObject({ attempts: 2, leaseOwner: 'p2' });
      expect(await store.usedUpTasks(now + 2400, 10)).toEqual([]);
      // Its last lease ran out: no poll takes it, the sweep's query finds it.
      expect(await poll('p3', now + 2600)).toBeUndefined();
      expect((await store.usedUpTasks(now + 2600, 10)).map((t) => [t.id, t.leaseOwner])).toEqual([['tsk_3', 'p2']]);
      const lease = { taskId: 'tsk_3', workerId: 'p2', token: second.leaseToken! };
      const error = { code: 'LEASE_EXPIRED', message: 'x', retryable: false };
      const wake = { state: { failure: 1 }, events: [] };
      // A late heartbeat renewed it: failing "an expired lease" changes nothing.
      expect((await store.heartbeatTask(lease, now + 2600)).result).toBe('ok');
      expect((await store.failTask({ lease, now: now + 2700, leaseExpiredBy: now + 2700, error, wake, events: [] })).result).toBe('lost');
      expect((await store.getTask('tsk_3'))!.status).toBe('leased');
      expect((await store.failTask({ lease, now: now + 3700, leaseExpiredBy: now + 3700, error, wake, events: [] })).result).toBe('ok');
      expect(await store.getTask('tsk_3')).toMatchObject({ status: 'failed', leaseOwner: 'p2', attempts: 2 });
      expect((await store.getStep('t3', 'a'))!.status).toBe('scheduled');
      expect(await store.usedUpTasks(now + 5000, 10)).toEqual([]);
      expect((await store.getEvents('t3')).filter((e) => e.type === 'task.leased')).toHaveLength(2);
    });

    it('creates an approval only with its step\'s fenced suspension; applies one change per version; refuses late decisions and cancelled runs', async () => {
      await store.admitRun({ ...joinRun('ap1'), steps: [{ key: 'a', stepId: 'a', status: 'scheduled', pendingDeps: 0, owner: 'w1' }] });
      const t0 = Date.now();
      const suspend = (owner: string): StepCommit => ({
        fence: { runId: 'ap1', key: 'a', owner, attempt: 1 },
        update: { status: 'waiting', waitKey: 'approval:apr_1', owner: null, state: { approvalId: 'apr_1' } },
        events: [{ type: 'approval.requested', stepKey: 'a', at: t0 }],
        approval: {
          id: 'apr_1', namespace: 'team-a', workflow: 'wf', approvers: { roles: ['approver'], users: [] }, evidenceJson: '{"x":1}', evidenceHash: 'h',
          summary: 'ok?', formJson: '{"type":"object"}', deadlineAt: t0 + 10_000, onExpiryJson: '{"action":"fail"}', nextReminderAt: t0 + 1000, createdAt: t0,
        },
      });
      expect((await store.commit(suspend('w2'))).ok).toBe(false);
      expect(await store.getApproval('apr_1')).toBeUndefined();
      expect((await store.commit(suspend('w1'))).ok).toBe(true);
      const a = (await store.getApproval('apr_1'))!;
      expect(a).toMatchObject({ status: 'pending', runId: 'ap1', stepKey: 'a', attempt: 1, namespace: 'team-a', evidence: { x: 1 }, summary: 'ok?', version: 1, awaited: true, deadlineAt: t0 + 10_000 });
      expect((await store.listApprovals({ namespaces: ['team-b'] }))).toEqual([]);
      expect((await store.listApprovals({ namespaces: ['team-a'], status: ['pending'] })).map((x) => x.id)).toEqual(['apr_1']);
      expect(await store.nextApprovalDueAt()).toBe(t0 + 1000);
      expect(await store.dueApprovals(t0 + 500, 10)).toEqual([]);
      expect((await store.dueApprovals(t0 + 1000, 10)).map((x) => x.id)).toEqual(['apr_1']);

      // Two reminders of one version: one applies.
      const remind = () => store.updateApproval({ id: 'apr_1', version: 1, now: t0 + 1000, nextReminderAt: null, events: [{ type: 'approval.reminder', at: t0 + 1000 }] });
      const rs = await Promise.all([remind(), remind()]);
      expect(rs.map((r) => r.result).sort()).toEqual(['ok', 'stale']);
      expect((await store.getApproval('apr_1'))!).toMatchObject({ version: 2, nextReminderAt: undefined });
      // A decision at or after the deadline is refused and changes nothing.
      const wake = { state: { approvalId: 'apr_1', answer: { decision: 'approve' } }, events: [{ type: 'step.resumed', at: t0 }] };
      const decide = (version: number, now: number) => store.updateApproval({ id: 'apr_1', version, now, decision: true, status: 'approved', decidedBy: 'ana', answerJson: '{"decision":"approve"}', wake, events: [{ type: 'approval.decided', at: now }] });
      expect((await decide(2, t0 + 10_000)).result).toBe('late');
      expect((await store.getStep('ap1', 'a'))!.status).toBe('waiting');
      // Two decisions at once: one is recorded, and it wakes the step in the same transaction.
      const ds = await Promise.all([decide(2, t0 + 2000), decide(2, t0 + 2000)]);
      expect(ds.map((r) => r.result).sort()).toEqual(['ok', 'stale']);
      const done = (await store.getApproval('apr_1'))!;
      expect(done).toMatchObject({ status: 'approved', decidedBy: 'ana', decidedAt: t0 + 2000, answer: { decision: 'approve' }, version: 3 });
      const st = (await store.getStep('ap1', 'a'))!;
      expect(st.status).toBe('scheduled');
      expect(st.state).toEqual(wake.state);
      expect((await store.getEvents('ap1')).filter((e) => e.type === 'approval.decided')).toHaveLength(1);
      expect((await store.updateApproval({ id: 'apr_none', version: 1, now: t0, events: [] })).result).toBe('missing');

      // A cancelled run: the approval is no longer awaited, and a decision is refused.
      await store.admitRun({ ...joinRun('ap2'), steps: [{ key: 'a', stepId: 'a', status: 'scheduled', pendingDeps: 0, owner: 'w1' }] });
      await store.commit({
        fence: { runId: 'ap2', key: 'a', owner: 'w1', attempt: 1 },
        update: { status: 'waiting', waitKey: 'approval:apr_2', owner: null },
        events: [],
        approval: { id: 'apr_2', namespace: 'default', workflow: 'wf', approvers: { roles: [], users: ['ana'] }, evidenceJson: 'null', evidenceHash: 'h', formJson: '{}', createdAt: t0 },
      });
      await store.cancelRun('ap2', [{ type: 'run.cancelled', at: t0 }]);
      expect((await store.getApproval('apr_2'))!.awaited).toBe(false);
      const gone = await store.updateApproval({ id: 'apr_2', version: 1, now: t0, decision: true, status: 'approved', decidedBy: 'ana', wake, events: [] });
      expect(gone.result).toBe('gone');
      expect((await store.getApproval('apr_2'))!).toMatchObject({ status: 'pending', version: 1 });
    });

    it('retries an ended run in one transaction, only if it is still as planned, and hands re-run steps their attempt', async () => {
      await store.admitRun(joinRun('rt1'));
      await store.commit(succeed('rt1', 'a', 'w1'));
      // b fails the run: join, never scheduled, is cancelled.
      await store.commit({
        fence: { runId: 'rt1', key: 'b', owner: 'w1', attempt: 1 },
        update: { status: 'failed', error: { code: 'X', message: 'b broke', retryable: false }, owner: null, finishedAt: Date.now() },
        events: [{ type: 'step.failed', stepKey: 'b', at: Date.now() }],
        finishRun: { status: 'failed', error: { code: 'X', message: 'step b: b broke', retryable: false }, events: [{ type: 'run.failed', at: Date.now() }] },
      });
      const ended = (await store.getRun('rt1'))!;
      expect(ended).toMatchObject({ status: 'failed', error: { code: 'X' }, retries: 0 });
      expect(await store.getStep('rt1', 'join')).toMatchObject({ status: 'cancelled' });
      const plan = (finishedAt: number | undefined) => ({
        runId: 'rt1', from: ['failed' as const, 'cancelled' as const], finishedAt, at: Date.now(), deleteChildrenOf: [],
        reset: [
          { key: 'b', status: 'scheduled' as const, attempt: 2, pendingDeps: 0, liveDeps: 0, state: null },
          { key: 'join', status: 'pending' as const, attempt: 2, pendingDeps: 1, liveDeps: 1, state: null },
        ],
        events: [{ type: 'run.retried', at: Date.now(), data: { steps: ['b', 'join'] } }],
      });
      const eventsBefore = (await store.getEvents('rt1')).length;
      // A plan made from an older read (another end time) changes nothing.
      expect(await store.retryRun(plan(ended.finishedAt! - 1))).toEqual({ ok: false });
      expect((await store.getRun('rt1'))!.status).toBe('failed');
      expect(await store.getEvents('rt1')).toHaveLength(eventsBefore);
      expect(await store.retryRun(plan(ended.finishedAt))).toEqual({ ok: true, status: 'running' });
      const back = (await store.getRun('rt1'))!;
      expect(back).toMatchObject({ status: 'running', retries: 1 });
      expect(back.error).toBeUndefined();
      expect(back.finishedAt).toBeUndefined();
      const b = (await store.getStep('rt1', 'b'))!;
      expect(b).toMatchObject({ status: 'scheduled', attempt: 2, pendingDeps: 0 });
      expect([b.owner, b.error, b.output, b.finishedAt]).toEqual([undefined, undefined, undefined, undefined]);
      expect(await store.getStep('rt1', 'a')).toMatchObject({ status: 'succeeded', output: 'a' });
      expect(await store.getStep('rt1', 'join')).toMatchObject({ status: 'pending', attempt: 2, pendingDeps: 1, liveDeps: 1 });
      expect((await store.getEvents('rt1')).at(-1)).toMatchObject({ type: 'run.retried', data: { steps: ['b', 'join'] } });
      // The same plan again: the run is running now, so nothing happens.
      expect(await store.retryRun(plan(ended.finishedAt))).toEqual({ ok: false });
      // b is claimable; its commit schedules join and says join runs as attempt 2.
      // Claims say which life of the run they belong to (a worker's memory of an earlier one is stale).
      expect((await store.claimSteps('w2', 10, Date.now())).map((c) => [c.key, c.attempt, c.retries])).toEqual([['b', 2, 1]]);
      const r = await store.commit(succeed('rt1', 'b', 'w2', 2));
      expect(r).toMatchObject({ ok: true, ready: ['join'], attempts: { join: 2 } });
    });

    it('retries a keyed run into the queue when its key is at its limit, and deletes the items of a map re-run whole', async () => {
      const keyed = (id: string): NewRun => ({ ...joinRun(id), concurrency: { key: 'customer-9', limit: 1 } });
      await store.admitRun(keyed('q1'));
      await store.finishRun({ runId: 'q1', status: 'failed', events: [] });
      expect(await store.admitRun(keyed('q2'))).toEqual({ created: true });
      const q1 = (await store.getRun('q1'))!;
      const reset = [{ key: 'a', status: 'scheduled' as const, attempt: 2, pendingDeps: 0, liveDeps: 0, state: null }];
      expect(await store.retryRun({ runId: 'q1', from: ['failed'], finishedAt: q1.finishedAt, at: Date.now(), reset, deleteChildrenOf: [], events: [] })).toEqual({ ok: true, status: 'queued' });
      expect((await store.getRun('q1'))!.status).toBe('queued');
      await store.finishRun({ runId: 'q2', status: 'completed', outputJson: '1', events: [] });
      expect((await store.getRun('q1'))!.status).toBe('running');

      await store.admitRun({
        id: 'mp', versionId: 'wf@1', workflow: 'wf', inputJson: '{}', createdAt: Date.now(), events: [],
        steps: [
          { key: 'm', stepId: 'm', status: 'scheduled', pendingDeps: 0 },
          { key: 'm[0]', stepId: 'm', index: 0, parentKey: 'm', status: 'scheduled', pendingDeps: 0, state: { item: 1 } },
          { key: 'm[1]', stepId: 'm', index: 1, parentKey: 'm', status: 'pending', pendingDeps: 0, state: { item: 2 } },
        ],
      });
      await store.cancelRun('mp', []);
      const mp = (await store.getRun('mp'))!;
      const res = await store.retryRun({
        runId: 'mp', from: ['cancelled'], finishedAt: mp.finishedAt, at: Date.now(), deleteChildrenOf: ['m'],
        reset: [{ key: 'm', status: 'scheduled', attempt: 1, pendingDeps: 0, liveDeps: 0, state: null }], events: [],
      });
      expect(res).toEqual({ ok: true, status: 'running' });
      expect((await store.getSteps('mp')).map((s) => [s.key, s.status])).toEqual([['m', 'scheduled']]);
    });

    it('isolates a failing write in a batch from the others', async () => {
      await store.admitRun(joinRun('r7'));
      const dup = store.admitRun({ ...joinRun('r8'), steps: [{ key: 'x', stepId: 'x', status: 'scheduled', pendingDeps: 0 }, { key: 'x', stepId: 'x', status: 'scheduled', pendingDeps: 0 }] });
      const good = store.commit(succeed('r7', 'a', 'w1'));
      await expect(dup).rejects.toThrow(/unique/i);
      expect((await good).ok).toBe(true);
      expect(await store.getRun('r8')).toBeUndefined();
    });
    it('keeps pinned configurations, stage promotions, service status changes and lineage', async () => {
      await store.putServiceConfig('h1', '{"services":{}}', 1);
      await store.putServiceConfig('h1', '{"other":true}', 2); // content-addressed: the first stays
      expect(await store.getServiceConfig('h1')).toBe('{"services":{}}');
      expect(await store.getServiceConfig('nope')).toBeUndefined();
      await store.admitRun({ ...joinRun('g1'), configHash: 'h1' });
      await store.admitRun(joinRun('g2'));
      expect((await store.getRun('g1'))!.configHash).toBe('h1');
      expect((await store.getRun('g2'))!.configHash).toBeUndefined();
      expect(await store.lastRunConfig('wf@1')).toBe('h1');

      const p1 = await store.promoteVersion({ name: 'wf', stage: 'production', versionId: 'wf@1', by: 'ann', reason: 'first', at: 10 });
      await store.promoteVersion({ name: 'wf', stage: 'production', versionId: 'wf@2', at: 20 });
      await store.promoteVersion({ name: 'other', stage: 'production', versionId: 'other@1', at: 30 });
      expect(p1).toMatchObject({ name: 'wf', stage: 'production', versionId: 'wf@1', by: 'ann', reason: 'first', at: 10 });
      expect((await store.stageVersion('wf', 'production'))!.versionId).toBe('wf@2');
      expect(await store.stageVersion('wf', 'staging')).toBeUndefined();
      expect((await store.stageHistory('wf')).map((r) => [r.versionId, r.by ?? null])).toEqual([['wf@1', 'ann'], ['wf@2', null]]);

      await store.putServiceStatus({ service: 's', status: 'blocked', reason: 'recall', by: 'bo', at: 5 });
      await store.putServiceStatus({ service: 't', status: 'deprecated', at: 6 });
      expect((await store.serviceStatusHistory('s')).map((r) => [r.status, r.reason, r.by, r.at])).toEqual([['blocked', 'recall', 'bo', 5]]);
      expect((await store.serviceStatusHistory()).map((r) => r.service)).toEqual(['s', 't']);

      const call = (runId: string, version: string | undefined, at: number) => store.recordModelCall({
        runId, workflow: 'wf', stepKey: 'a', attempt: 1, service: 'chat', provider: 'openai', model: 'm', version, operation: 'chat', outcome: 'ok',
        inputTokens: 1, outputTokens: 1, cachedTokens: 0, cost: 0, latencyMs: 1, at,
      }, 0);
      await call('g1', 'v1', 100);
      await call('g1', 'v1', 110);
      await call('g2', 'v2', 120);
      await store.recordModelCall({
        runId: 'g2', workflow: 'wf', stepKey: 'a', attempt: 1, service: 'chat', provider: 'openai', model: 'm', version: 'v3', operation: 'chat', outcome: 'skipped',
        inputTokens: 0, outputTokens: 0, cachedTokens: 0, cost: 0, latencyMs: 0, at: 130,
      }, 0);
      const all = await store.lineage({ service: 'chat' });
      expect(all.map((l) => [l.runId, l.calls, l.versions])).toEqual(expect.arrayContaining([['g1', 2, ['v1']], ['g2', 1, ['v2']]]));
      expect(all).toHaveLength(2);
      expect((await store.lineage({ service: 'chat', version: 'v1' })).map((l) => [l.runId, l.workflow, l.versionId, l.namespace, l.firstCallAt, l.lastCallAt])).toEqual([['g1', 'wf', 'wf@1', 'default', 100, 110]]);
      expect((await store.lineage({ service: 'chat', since: 115 })).map((l) => l.runId)).toEqual(['g2']);
      expect(await store.lineage({ service: 'none' })).toEqual([]);
    });

    it('hash-chains the events of every write path, concurrent ones included, and anchors the run end; purge keeps the anchor', async () => {
      await store.admitRun(joinRun('ha'));
      // Concurrent writers to one run: two commits and several appends race for the next seqs.
      await Promise.all([
        store.commit(succeed('ha', 'a', 'w1')),
        store.commit(succeed('ha', 'b', 'w1')),
        ...Array.from({ length: 6 }, (_, i) => store.appendEvents('ha', [{ type: 'note', at: Date.now(), data: { i, text: 'ünïcødé \u2028 "q"' } }, { type: 'note2', at: Date.now() }])),
        store.recordModelCall({ runId: 'ha', workflow: 'wf', stepKey: 'a', attempt: 1, service: 's', provider: 'p', model: 'm', operation: 'chat', outcome: 'ok',
          inputTokens: 1, outputTokens: 1, cachedTokens: 0, cost: 0.001, latencyMs: 5, at: Date.now() }, 0),
      ]);
      const join = (await store.claimSteps('w1', 10, Date.now())).find((c) => c.key === 'join');
      const fence = { runId: 'ha', key: 'join', owner: 'w1', attempt: join?.attempt ?? 1 };
      const ended = await store.commit({ ...succeed('ha', 'join', 'w1'), fence, finishIfIdle: { runId: 'ha', status: 'completed', outputJson: '"done"', events: [{ type: 'run.completed', at: Date.now() }] } });
      expect(ended.runFinished).toBe(true);
      const rows = await store.auditEvents('ha');
      expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
      expect(rows.length).toBe(1 + 2 + 12 + 1 + 1 + 1);
      expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.hash ?? ''))).toBe(true);
      const report = await verifyStore(store);
      expect(report).toMatchObject({ ok: true, runs: 1, anchors: 1, events: rows.length });
      expect((await store.auditAnchors())[0]).toMatchObject({ seq: 1, runId: 'ha', runFinalHash: rows.at(-1)!.hash });

      // A second run ends by cancellation; both are anchored in order of their ends.
      await store.admitRun(joinRun('hb'));
      expect(await store.cancelRun('hb', [{ type: 'run.cancelled', at: Date.now() }])).toBe(true);
      expect((await verifyStore(store)).anchors).toBe(2);

      // Purge: gone whole, anchors stay, the store still verifies; a running run is not purged.
      await store.admitRun(joinRun('hc'));
      expect(await store.purgeRuns([{ runId: 'ha', mode: 'purge' }, { runId: 'hc', mode: 'purge' }], Date.now())).toEqual(['ha']);
      expect(await store.getRun('ha')).toBeUndefined();
      expect(await store.auditEvents('ha')).toEqual([]);
      expect(await store.getRun('hc')).toBeDefined();
      const after = await verifyStore(store);
      expect(after).toMatchObject({ ok: true, anchors: 2, purged: [expect.objectContaining({ runId: 'ha', mode: 'purge', finalHash: rows.at(-1)!.hash })] });
      expect(await store.listRuns({ finishedBefore: Date.now() + 1 })).toEqual([expect.objectContaining({ id: 'hb' })]);
    });
  });
}
