/**
 * The one suite every `Store` must pass: a commit is fenced on its claim (a stale worker writes
 * nothing), a join is scheduled exactly once, a step is claimed by one worker at a time, a dead
 * worker's claims come back, a paused run's steps stay unclaimed, signals wake only their
 * waiters, one failing write in a batch does not undo the others, and a retry of an ended run
 * applies in one transaction only if the run is still as its plan saw it.
 *
 * Each store's test file (`sqlite.test.ts`, later `postgres.test.ts`) calls `storeConformance`
 * with a factory for a fresh, empty store; any case a store skips is named with its reason.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewRun, StepCommit, Store } from '../../src/store/store.js';

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
  });
}
