import { describe, expect, it } from 'vitest';
import { workflow, type Baton, type BatonOptions } from '../../src/index.js';
import { z } from 'zod';
import { BatonError } from '../../src/errors.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { code, until } from '../helpers/wait.js';

/** The reason a refused task operation gives (BATON_TASK_LEASE_LOST's `reason`). */
async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect((e as BatonError).code).toBe('BATON_TASK_LEASE_LOST');
    return String((e as BatonError).details.reason);
  }
  throw new Error('the operation was not refused');
}

// Two hand-outs at most, no step timeout: only the lease policy can end the step.
const POISON = `
name: poison
steps:
  - { id: t, kind: task, task_type: poison, retry: { max_attempts: 2 } }
`;

const FLOW = `
name: scoring
steps:
  - id: prep
    kind: transform
    expression: "{ 'text': $uppercase(input.text) }"
  - id: score
    kind: task
    task_type: score
    input: steps.prep.output
    lease: 1s
    retry: { max_attempts: 3, initial_delay: 10ms, max_delay: 20ms }
    output_schema:
      type: object
      required: [score]
      properties: { score: { type: number } }
  - id: label
    kind: transform
    expression: "steps.score.output.score > 0.5 ? 'good' : 'bad'"
`;

// Every test runs on each store: the embedded SQLite file and a fresh PostgreSQL database.
describe.each(STORE_KINDS)('task steps on %s', (k) => {
  const suite = engineSuite(k, 'baton-tasks-');
  const baton = (opts: BatonOptions = {}): Promise<Baton> => suite.baton(opts);

  it('a polled task, completed, wakes the step and the run completes', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const id = await b.start(v, { text: 'hello' });
    const t = await b.tasks.poll({ types: ['score'], workerId: 'py-1', waitMs: 10_000 });
    expect(t).toBeDefined();
    expect(t!.runId).toBe(id);
    expect(t!.stepKey).toBe('score');
    expect(t!.input).toEqual({ text: 'HELLO' });
    expect(t!.status).toBe('leased');
    expect(t!.attempts).toBe(1);
    expect(t!.leaseOwner).toBe('py-1');
    expect(typeof t!.leaseToken).toBe('string');
    // Nobody else gets it while the lease holds.
    expect(await b.tasks.poll({ types: ['score'], workerId: 'py-2' })).toBeUndefined();
    await b.tasks.heartbeat(t!.id, { workerId: 'py-1', leaseToken: t!.leaseToken! });
    const done = await b.tasks.complete(t!.id, { workerId: 'py-1', leaseToken: t!.leaseToken!, output: { score: 0.9 } });
    expect(done.status).toBe('completed');
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toBe('good');
    const got = await b.tasks.get(t!.id);
    expect(got.status).toBe('completed');
    expect(got.output).toEqual({ score: 0.9 });
    expect('leaseToken' in got).toBe(false);
    const types = (await b.getEvents(id)).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['task.leased', 'task.completed', 'step.resumed', 'run.completed']));
    // A second completion is refused: the task is finished.
    expect(await code(b.tasks.complete(t!.id, { workerId: 'py-1', leaseToken: t!.leaseToken!, output: { score: 0.1 } }))).toBe('BATON_TASK_LEASE_LOST');
  });

  it('a long poll is woken when a task is created', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const polled = b.tasks.poll({ types: ['score'], workerId: 'w', waitMs: 30_000 });
    const id = await b.start(v, { text: 'x' });
    const t = await polled;
    expect(t?.runId).toBe(id);
  });

  it('a retryable failure puts the task back; it is polled again and the attempts are counted', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const id = await b.start(v, { text: 'x' });
    const t1 = (await b.tasks.poll({ types: ['score'], workerId: 'a', waitMs: 10_000 }))!;
    const f = await b.tasks.fail(t1.id, { workerId: 'a', leaseToken: t1.leaseToken!, error: { code: 'GPU_BUSY', message: 'try later' }, retryable: true });
    expect(f.willRetry).toBe(true);
    expect(f.status).toBe('pending');
    const t2 = (await b.tasks.poll({ types: ['score'], workerId: 'b', waitMs: 10_000 }))!;
    expect(t2.id).toBe(t1.id);
    expect(t2.attempts).toBe(2);
    expect(t2.leaseOwner).toBe('b');
    // The first worker's lease is gone with its token.
    expect(await code(b.tasks.complete(t1.id, { workerId: 'a', leaseToken: t1.leaseToken!, output: { score: 1 } }))).toBe('BATON_TASK_LEASE_LOST');
    await b.tasks.complete(t2.id, { workerId: 'b', leaseToken: t2.leaseToken!, output: { score: 0.2 } });
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toBe('bad');
  });

  it('a failure that is not retryable (or retries used up) fails the step with the worker error', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const id = await b.start(v, { text: 'x' });
    const t = (await b.tasks.poll({ types: ['score'], workerId: 'a', waitMs: 10_000 }))!;
    const f = await b.tasks.fail(t.id, { workerId: 'a', leaseToken: t.leaseToken!, error: { code: 'BAD_INPUT', message: 'text too short' } });
    expect(f.willRetry).toBe(false);
    expect(f.status).toBe('failed');
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('failed');
    expect(r.error?.code).toBe('BATON_TASK_FAILED');
    expect(r.error?.message).toContain('BAD_INPUT');
    expect(r.error?.message).toContain('text too short');
    const step = (await b.getSteps(id)).find((s) => s.key === 'score')!;
    expect(step.status).toBe('failed');
    expect(step.error?.details).toMatchObject({ workerCode: 'BAD_INPUT', workerId: 'a' });
  });

  it('an expired lease lets another worker take the task; the first worker can no longer heartbeat or complete', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const id = await b.start(v, { text: 'x' });
    const t1 = (await b.tasks.poll({ types: ['score'], workerId: 'slow', leaseMs: 50, waitMs: 10_000 }))!;
    // Polls until the 50 ms lease has run out (no wall-clock assertion: just wait for the state).
    let t2;
    for (let i = 0; i < 200 && !t2; i++) t2 = await b.tasks.poll({ types: ['score'], workerId: 'fast', waitMs: 1000 });
    expect(t2).toBeDefined();
    expect(t2!.id).toBe(t1.id);
    expect(t2!.attempts).toBe(2);
    expect(await code(b.tasks.heartbeat(t1.id, { workerId: 'slow', leaseToken: t1.leaseToken! }))).toBe('BATON_TASK_LEASE_LOST');
    expect(await code(b.tasks.complete(t1.id, { workerId: 'slow', leaseToken: t1.leaseToken!, output: { score: 1 } }))).toBe('BATON_TASK_LEASE_LOST');
    await b.tasks.complete(t2!.id, { workerId: 'fast', leaseToken: t2!.leaseToken!, output: { score: 0.7 } });
    expect((await b.wait(id, { timeoutMs: 20_000 })).output).toBe('good');
    const leased = (await b.getEvents(id)).filter((e) => e.type === 'task.leased');
    expect(leased).toHaveLength(2);
    expect(leased[1].data).toMatchObject({ worker_id: 'fast', expired_lease_of: 'slow' });
  });

  it('the lease token fences even one worker id: a restarted worker that re-polls gets a new lease, the old one is refused', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const id = await b.start(v, { text: 'x' });
    const old = (await b.tasks.poll({ types: ['score'], workerId: 'same', leaseMs: 50, waitMs: 10_000 }))!;
    let again;
    for (let i = 0; i < 200 && !again; i++) again = await b.tasks.poll({ types: ['score'], workerId: 'same', waitMs: 1000 });
    expect(again!.id).toBe(old.id);
    expect(again!.attempts).toBe(2);
    expect(again!.leaseToken).not.toBe(old.leaseToken);
    expect(await code(b.tasks.complete(old.id, { workerId: 'same', leaseToken: old.leaseToken!, output: { score: 1 } }))).toBe('BATON_TASK_LEASE_LOST');
    expect(await code(b.tasks.fail(old.id, { workerId: 'same', leaseToken: old.leaseToken!, error: { message: 'x' } }))).toBe('BATON_TASK_LEASE_LOST');
    await b.tasks.complete(again!.id, { workerId: 'same', leaseToken: again!.leaseToken!, output: { score: 0.1 } });
    expect((await b.wait(id, { timeoutMs: 20_000 })).output).toBe('bad');
  });

  it('lease expiries count against retry.max_attempts: a task no worker finishes fails its step', async () => {
    const b = await baton();
    const v = await b.register(`
name: poison
steps:
  - { id: t, kind: task, task_type: poison, retry: { max_attempts: 2 } }
`);
    const id = await b.start(v, {});
    const holders: string[] = [];
    // Two workers vanish in turn (they take the task and never report); the third poll finds nothing.
    for (const w of ['w1', 'w2', 'w3']) {
      let t;
      for (let i = 0; i < 200 && !t && (await b.getRun(id)).status !== 'failed'; i++) t = await b.tasks.poll({ types: ['poison'], workerId: w, leaseMs: 30, waitMs: 500 });
      if (t) holders.push(w);
    }
    expect(holders).toEqual(['w1', 'w2']);
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('failed');
    expect(r.error?.code).toBe('BATON_TASK_FAILED');
    expect(r.error?.message).toContain('LEASE_EXPIRED');
  });

  it('the last lease running out fails the step then, with no further poll, blaming its holder; any engine on the store notices', async () => {
    const b = await baton();
    // The task is handed out by another process that runs no worker (a gateway): b, whose
    // worker sweeps, sees the expiry through the store alone.
    const gw = await baton({ worker: false });
    const id = await b.start(await b.register(POISON), {});
    const t1 = (await gw.tasks.poll({ types: ['poison'], workerId: 'w1', leaseMs: 100, waitMs: 10_000 }))!;
    const t2 = await until(() => gw.tasks.poll({ types: ['poison'], workerId: 'w2', leaseMs: 100 }), 'the second hand-out');
    expect(t2.id).toBe(t1.id);
    expect(t2.attempts).toBe(2);
    // Nobody polls again; the step has no timeout. Before: the run waited for ever.
    const r = await until(async () => {
      const run = await b.getRun(id);
      return run.status === 'failed' && run;
    }, 'the run to fail', 15_000);
    expect(r.error?.code).toBe('BATON_TASK_FAILED');
    expect(r.error?.message).toContain('LEASE_EXPIRED');
    expect(r.error?.message).toContain('w2');
    const events = await b.getEvents(id);
    expect(events.filter((e) => e.type === 'task.leased').map((e) => (e.data as { worker_id: string }).worker_id)).toEqual(['w1', 'w2']);
    expect(events.find((e) => e.type === 'task.failed')?.data).toMatchObject({ worker_id: 'w2', attempts: 2, final: true, error: { code: 'LEASE_EXPIRED' } });
    expect(await b.tasks.get(t1.id)).toMatchObject({ status: 'failed', leaseOwner: 'w2', attempts: 2 });
    // The holder's late result is refused, saying why.
    expect(await reason(gw.tasks.complete(t2.id, { workerId: 'w2', leaseToken: t2.leaseToken!, output: 1 }))).toContain('LEASE_EXPIRED');
  });

  it('a task whose last lease expired is not handed out again: a later poll gets nothing and is recorded as no hand-out', async () => {
    const b = await baton();
    const id = await b.start(await b.register(POISON), {});
    const t1 = (await b.tasks.poll({ types: ['poison'], workerId: 'w1', leaseMs: 100, waitMs: 10_000 }))!;
    const t2 = await until(() => b.tasks.poll({ types: ['poison'], workerId: 'w2', leaseMs: 100 }), 'the second hand-out');
    await until(async () => Date.now() > t2.leaseExpiresAt!, "w2's lease to run out");
    // Before: this poll leased the task to w3 (attempts 3, recorded), answered nothing, and the
    // step failed "in worker w3", which never had it.
    expect(await b.tasks.poll({ types: ['poison'], workerId: 'w3' })).toBeUndefined();
    const r = await b.wait(id, { timeoutMs: 15_000 });
    expect(r.status).toBe('failed');
    expect(r.error?.message).toContain('worker w2');
    expect(r.error?.message).not.toContain('w3');
    const leased = (await b.getEvents(id)).filter((e) => e.type === 'task.leased').map((e) => e.data as { worker_id: string; attempts: number });
    expect(leased.map((d) => [d.worker_id, d.attempts])).toEqual([['w1', 1], ['w2', 2]]);
    expect((await b.tasks.get(t1.id)).attempts).toBe(2);
  });

  it('a refused report says what happened: never held, wrong token, expired and handed to another, run cancelled', async () => {
    const b = await baton();
    const id = await b.start(await b.register(FLOW), { text: 'x' });
    const t1 = (await b.tasks.poll({ types: ['score'], workerId: 'slow', leaseMs: 100, waitMs: 10_000 }))!;
    expect(await reason(b.tasks.complete(t1.id, { workerId: 'slow', leaseToken: 'forged', output: { score: 1 } }))).toMatch(/^wrong lease token/);
    expect(await reason(b.tasks.heartbeat(t1.id, { workerId: 'stranger', leaseToken: t1.leaseToken! }))).toBe('worker stranger never held it (it is leased to worker slow)');
    const t2 = await until(() => b.tasks.poll({ types: ['score'], workerId: 'fast' }), 'the lease to expire and be taken');
    expect(await reason(b.tasks.complete(t1.id, { workerId: 'slow', leaseToken: t1.leaseToken!, output: { score: 1 } }))).toBe("worker slow's lease expired and the task was handed to worker fast");
    expect(await reason(b.tasks.fail(t1.id, { workerId: 'stranger', leaseToken: t2.leaseToken!, error: { message: 'x' } }))).toBe('worker stranger never held it (it is leased to worker fast)');
    await b.cancel(id);
    expect(await reason(b.tasks.complete(t2.id, { workerId: 'fast', leaseToken: t2.leaseToken!, output: { score: 1 } }))).toContain('the run was cancelled');
    expect((await b.tasks.get(t2.id)).status).toBe('cancelled');
  });

  it('heartbeats keep the lease: nobody else gets the task while they come', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const id = await b.start(v, { text: 'x' });
    const t = (await b.tasks.poll({ types: ['score'], workerId: 'a', leaseMs: 1500, waitMs: 10_000 }))!;
    // Kept well past two lease lengths by heartbeats; a rival poll in between never finds it.
    const until = Date.now() + 3500;
    let beats = 0;
    while (Date.now() < until) {
      const hb = await b.tasks.heartbeat(t.id, { workerId: 'a', leaseToken: t.leaseToken! });
      beats++;
      expect(hb.status).toBe('leased');
      expect(await b.tasks.poll({ types: ['score'], workerId: 'rival' })).toBeUndefined();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(beats).toBeGreaterThan(2);
    await b.tasks.complete(t.id, { workerId: 'a', leaseToken: t.leaseToken!, output: { score: 0.6 } });
    expect((await b.wait(id, { timeoutMs: 20_000 })).status).toBe('completed');
  });

  it('an output breaking output_schema is refused and the task stays leased for a corrected one', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const id = await b.start(v, { text: 'x' });
    const t = (await b.tasks.poll({ types: ['score'], workerId: 'a', waitMs: 10_000 }))!;
    let err: BatonError | undefined;
    try {
      await b.tasks.complete(t.id, { workerId: 'a', leaseToken: t.leaseToken!, output: { score: 'high' } });
    } catch (e) {
      err = e as BatonError;
    }
    expect(err?.code).toBe('BATON_OUTPUT_SCHEMA');
    expect(err?.status).toBe(422);
    expect((await b.tasks.get(t.id)).status).toBe('leased');
    expect((await b.getRun(id)).status).not.toBe('completed');
    await b.tasks.complete(t.id, { workerId: 'a', leaseToken: t.leaseToken!, output: { score: 0.8 } });
    expect((await b.wait(id, { timeoutMs: 20_000 })).output).toBe('good');
  });

  it('a task whose step timed out cannot be polled or completed, and the step fails on its timeout', async () => {
    const b = await baton();
    const v = await b.register(`
name: late
steps:
  - { id: t, kind: task, task_type: never_done, timeout: 200ms }
`);
    const id = await b.start(v, { a: 1 });
    // Nobody polls: the step's own deadline ends it (no race with a poll against 200 ms).
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('failed');
    expect(r.error?.code).toBe('BATON_STEP_TIMEOUT');
    const waiting = (await b.getEvents(id)).find((e) => e.type === 'step.waiting')!;
    const taskId = (waiting.data as { task_id: string }).task_id;
    const t = await b.tasks.get(taskId);
    expect(t).toMatchObject({ status: 'cancelled', input: { a: 1 }, type: 'never_done' });
    expect(await b.tasks.poll({ types: ['never_done'], workerId: 'a' })).toBeUndefined();
    expect(await reason(b.tasks.complete(taskId, { workerId: 'a', leaseToken: 'x', output: 1 }))).toContain('its step timed out');
  });

  it('namespaces bound who sees a task', async () => {
    const b = await baton();
    const v = await b.register(FLOW);
    const id = await b.start(v, { text: 'x' }, { namespace: 'team-a' });
    expect(await b.tasks.poll({ types: ['score'], workerId: 'b', namespaces: ['team-b'], waitMs: 300 })).toBeUndefined();
    const t = (await b.tasks.poll({ types: ['score'], workerId: 'a', namespaces: ['team-a'], waitMs: 10_000 }))!;
    expect(t.runId).toBe(id);
    expect(t.namespace).toBe('team-a');
    expect(await code(b.tasks.get(t.id, { namespaces: ['team-b'] }))).toBe('BATON_TASK_NOT_FOUND');
    expect(await code(b.tasks.get('tsk_nope'))).toBe('BATON_TASK_NOT_FOUND');
  });

  it('refuses a task step without a task type or with a bad lease, at registration, with where', async () => {
    const b = await baton();
    let err: BatonError | undefined;
    try {
      await b.register(`
name: bad
steps:
  - { id: t, kind: task, lease: soon }
`);
    } catch (e) {
      err = e as BatonError;
    }
    expect(err?.code).toBe('BATON_DOC_INVALID');
    const text = err!.describe();
    expect(text).toContain('task_type');
    expect(text).toContain('lease');
  });

  it('a task sub-step of a map: one task per item, each result lands in its item', async () => {
    const b = await baton();
    const v = await b.register(`
name: many
steps:
  - id: each
    kind: map
    over: input.texts
    concurrency: 2
    step: { kind: task, task_type: upper, input: "{ 'text': item }" }
`);
    const id = await b.start(v, { texts: ['a', 'b', 'c'] });
    for (let n = 0; n < 3; n++) {
      const t = (await b.tasks.poll({ types: ['upper'], workerId: 'w', waitMs: 10_000 }))!;
      expect(t.stepKey).toMatch(/^each\[\d\]$/);
      await b.tasks.complete(t.id, { workerId: 'w', leaseToken: t.leaseToken!, output: String((t.input as { text: string }).text).toUpperCase() });
    }
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toEqual(['A', 'B', 'C']);
  });

  it('the typed builder makes task steps; the zod output becomes the checked output_schema', async () => {
    const b = await baton();
    const { document } = workflow('built', { input: z.object({ text: z.string() }) })
      .step('score', { kind: 'task', task_type: 'score', lease: '5s', input: (c) => ({ text: c.input.text }), output: z.object({ score: z.number() }) })
      .step('label', { kind: 'transform', expression: "steps.score.output.score > 0.5 ? 'good' : 'bad'" })
      .build();
    const id = await b.start(await b.register(document), { text: 'x' });
    const t = (await b.tasks.poll({ types: ['score'], workerId: 'w', waitMs: 10_000 }))!;
    expect(t.input).toEqual({ text: 'x' });
    expect(t.leaseMs).toBe(5000);
    expect(await code(b.tasks.complete(t.id, { workerId: 'w', leaseToken: t.leaseToken!, output: { score: 'no' } }))).toBe('BATON_OUTPUT_SCHEMA');
    await b.tasks.complete(t.id, { workerId: 'w', leaseToken: t.leaseToken!, output: { score: 0.9 } });
    expect((await b.wait(id, { timeoutMs: 20_000 })).output).toBe('good');
  });

  it('a worker in another process (engine) completes a task created here', async () => {
    const b1 = await baton();
    const b2 = await baton({ worker: false });
    const v = await b1.register(FLOW);
    const id = await b1.start(v, { text: 'x' });
    const t = (await b2.tasks.poll({ types: ['score'], workerId: 'remote', waitMs: 10_000 }))!;
    await b2.tasks.complete(t.id, { workerId: 'remote', leaseToken: t.leaseToken!, output: { score: 0.99 } });
    expect((await b1.wait(id, { timeoutMs: 20_000 })).output).toBe('good');
  });
});
