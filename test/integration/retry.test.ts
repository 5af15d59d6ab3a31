/**
 * Retrying failed and cancelled runs (`baton.retry`), on every store: what re-runs and what
 * keeps its output, attempt numbers, map items, child runs, `from`, and refusals that change
 * nothing.
 */
import { describe, expect, it } from 'vitest';
import type { Baton, BatonOptions } from '../../src/index.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

describe.each(STORE_KINDS)('retry on %s', (k) => {
  const suite = engineSuite(k, 'baton-retry-');
  const baton = (opts: BatonOptions = {}): Promise<Baton> => suite.baton(opts);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const statuses = async (b: Baton, id: string) => Object.fromEntries((await b.getSteps(id)).map((s) => [s.key, s.status]));
  const attempts = async (b: Baton, id: string) => Object.fromEntries((await b.getSteps(id)).map((s) => [s.key, s.attempt]));

  it('re-runs the failed step and what depends on it; finished steps keep their outputs and are not run again', async () => {
    const calls: Record<string, number> = {};
    let healthy = false;
    const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
    const b = await baton({
      functions: {
        prep: (i: unknown) => (count('prep'), { n: (i as { n: number }).n }),
        side: () => (count('side'), 'side'),
        flaky: (i: unknown) => {
          count('flaky');
          if (!healthy) throw new Error('upstream down');
          return (i as number) * 10;
        },
        finish: (i: unknown) => (count('finish'), i),
      },
    });
    const v = await b.register(`
name: retry-basic
steps:
  - { id: prep, kind: function, function: prep, input: "input" }
  - { id: side, kind: function, function: side }
  - { id: flaky, kind: function, function: flaky, input: "steps.prep.output.n", needs: [side] }
  - { id: finish, kind: function, function: finish, input: "{ 'v': steps.flaky.output, 's': steps.side.output }" }
`);
    const r1 = await b.run(v, { n: 4 });
    expect(r1.status).toBe('failed');
    expect(await statuses(b, r1.id)).toEqual({ prep: 'succeeded', side: 'succeeded', flaky: 'failed', finish: 'cancelled' });
    expect(calls).toEqual({ prep: 1, side: 1, flaky: 1 });
    const costBefore = r1.cost;

    healthy = true;
    const back = await b.retry(r1.id, { by: 'test' });
    expect(back.status).toBe('running');
    expect(back.error).toBeUndefined();
    expect(back.finishedAt).toBeUndefined();
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.status).toBe('completed');
    expect(r2.output).toEqual({ v: 40, s: 'side' });
    expect(r2.cost).toBe(costBefore);
    // prep and side ran once in all; flaky twice; finish once (it never ran the first time).
    expect(calls).toEqual({ prep: 1, side: 1, flaky: 2, finish: 1 });
    // Attempts keep counting: flaky's first attempt is followed by its second; finish never ran before.
    expect(await attempts(b, r1.id)).toEqual({ prep: 1, side: 1, flaky: 2, finish: 1 });
    const events = await b.getEvents(r1.id);
    const retried = events.find((e) => e.type === 'run.retried');
    expect(retried?.data).toEqual({ from: null, previous: 'failed', steps: ['flaky', 'finish'], items: [], by: 'test', attempts: { flaky: 2, finish: 1 } });
    // The history is one log: the failure, the retry, then the second life, in order.
    const types = events.map((e) => `${e.type}${e.stepKey ? `:${e.stepKey}` : ''}`);
    expect(types.indexOf('run.failed')).toBeLessThan(types.indexOf('run.retried'));
    expect(types.indexOf('run.retried')).toBeLessThan(types.indexOf('run.completed'));
    expect(events.filter((e) => e.type === 'step.failed' && e.stepKey === 'flaky').map((e) => (e.data as { attempt: number }).attempt)).toEqual([1]);
    expect(events.filter((e) => e.type === 'step.succeeded' && e.stepKey === 'flaky').map((e) => (e.data as { attempt: number }).attempt)).toEqual([2]);
  });

  it('continues attempt numbers after the step\'s own retries (failed on attempt 3, runs next as attempt 4), with its retry policy renewed', async () => {
    const seen: number[] = [];
    let healthyFrom = Infinity;
    const b = await baton({
      functions: {
        flaky: (_: unknown, ctx: { attempt: number; idempotencyKey: string }) => {
          seen.push(ctx.attempt);
          if (ctx.attempt < healthyFrom) throw new Error(`try ${ctx.attempt}`);
          return ctx.idempotencyKey;
        },
      },
    });
    const v = await b.register(`
name: retry-attempts
steps:
  - { id: flaky, kind: function, function: flaky, retry: { max_attempts: 3, initial_delay: 1ms, max_delay: 2ms } }
`);
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    expect(seen).toEqual([1, 2, 3]);
    // Still failing on attempt 4: the policy's 3 attempts count again from the retry.
    healthyFrom = 5;
    await b.retry(r1.id);
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.status).toBe('completed');
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    // A fresh idempotency key: an external service does not mistake it for an earlier attempt.
    expect(r2.output).toBe(`${r1.id}:flaky:5`);
    // Another run that keeps failing: after its retry, three more attempts (4, 5, 6), then it fails again.
    const r3 = await b.run(v);
    healthyFrom = Infinity;
    seen.length = 0;
    expect(r3.status).toBe('failed');
    await b.retry(r3.id);
    expect((await b.wait(r3.id, { timeoutMs: 20_000 })).status).toBe('failed');
    expect(seen).toEqual([4, 5, 6]);
  });

  it('with from, re-runs that step and everything downstream of it, even though they succeeded', async () => {
    const calls: Record<string, number> = {};
    let healthy = false;
    const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
    const b = await baton({
      functions: {
        a: () => (count('a'), 'a'),
        b: () => (count('b'), calls.b),
        c: (i: unknown) => (count('c'), i),
        d: () => {
          count('d');
          if (!healthy) throw new Error('d down');
          return 'd';
        },
      },
    });
    const v = await b.register(`
name: retry-from
steps:
  - { id: a, kind: function, function: a }
  - { id: b, kind: function, function: b, needs: [a] }
  - { id: c, kind: function, function: c, input: "steps.b.output" }
  - { id: d, kind: function, function: d, needs: [a] }
`);
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    expect(await statuses(b, r1.id)).toMatchObject({ a: 'succeeded', d: 'failed' });
    healthy = true;
    await expect(b.retry(r1.id, { from: 'e' })).rejects.toMatchObject({ code: 'BATON_RETRY_STEP_UNKNOWN' });
    await b.retry(r1.id, { from: 'b' });
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.status).toBe('completed');
    // a upstream kept; b and c (downstream of b) re-ran if they had run, d (failed) re-ran.
    expect(calls.a).toBe(1);
    expect(calls.d).toBe(2);
    expect(calls.b).toBeGreaterThanOrEqual(1);
    expect(r2.output).toEqual({ c: calls.b, d: 'd' });
    const retried = (await b.getEvents(r1.id)).find((e) => e.type === 'run.retried');
    expect(retried?.data).toMatchObject({ from: 'b', steps: ['b', 'c', 'd'] });
  });

  it('re-runs from a step that succeeded in a completed-then-failed chain: b ran twice, its output is new', async () => {
    let bCalls = 0;
    let fail = true;
    const b = await baton({
      functions: {
        b: () => ++bCalls,
        gate: (i: unknown) => {
          if (fail) throw new Error('gate closed');
          return i;
        },
      },
    });
    const v = await b.register(`
name: retry-from-2
steps:
  - { id: b, kind: function, function: b }
  - { id: gate, kind: function, function: gate, input: "steps.b.output" }
`);
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    fail = false;
    await b.retry(r1.id, { from: 'b' });
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.output).toBe(2);
    expect(await attempts(b, r1.id)).toEqual({ b: 2, gate: 2 });
  });

  it('re-runs only the failed items of a map, keeping the finished items\' outputs', async () => {
    const calls: number[] = [];
    let healthy = false;
    const b = await baton({
      functions: {
        work: (x: unknown) => {
          calls.push(x as number);
          if (x === 3 && !healthy) throw new Error('three is broken');
          return (x as number) * 10;
        },
      },
    });
    const v = await b.register(`
name: retry-map
steps:
  - id: m
    kind: map
    over: "[1,2,3,4,5,6]"
    concurrency: 1
    step: { kind: function, function: work, input: "item" }
  - { id: total, kind: transform, expression: "$sum(steps.m.output)" }
`);
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    // One at a time: 1 and 2 succeeded, 3 failed, 4..6 never ran (cancelled).
    expect(calls).toEqual([1, 2, 3]);
    expect(await statuses(b, r1.id)).toMatchObject({ m: 'failed', 'm[0]': 'succeeded', 'm[1]': 'succeeded', 'm[2]': 'failed', 'm[3]': 'cancelled', total: 'cancelled' });
    healthy = true;
    await b.retry(r1.id);
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.status).toBe('completed');
    expect(r2.output).toBe(210);
    // Items 1 and 2 were not run again; the window of 1 still held.
    expect(calls).toEqual([1, 2, 3, 3, 4, 5, 6]);
    expect(await attempts(b, r1.id)).toMatchObject({ m: 2, 'm[0]': 1, 'm[1]': 1, 'm[2]': 2, 'm[3]': 1, 'm[5]': 1, total: 1 });
    const retried = (await b.getEvents(r1.id)).find((e) => e.type === 'run.retried');
    expect(retried?.data).toMatchObject({ steps: ['m', 'total'], items: ['m[2]', 'm[3]', 'm[4]', 'm[5]'] });
  });

  it('gives map items that were in flight when the run was cancelled a new attempt, and items never started their first', async () => {
    const gate: Array<() => void> = [];
    let holding = true;
    const seen: string[] = [];
    const b = await baton({
      functions: {
        work: (x: unknown, ctx: { attempt: number }) => {
          seen.push(`${x as number}#${ctx.attempt}`);
          return holding ? new Promise<number>((res) => gate.push(() => res(x as number))) : x;
        },
      },
    });
    const v = await b.register(`
name: retry-map-cancel
steps:
  - { id: m, kind: map, over: "[1,2,3]", concurrency: 2, step: { kind: function, function: work, input: "item" } }
`);
    const id = await b.start(v);
    while (gate.length < 2) await sleep(5);
    await b.cancel(id);
    holding = false;
    for (const g of gate.splice(0)) g();
    await b.retry(id);
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.output).toEqual([1, 2, 3]);
    expect(await attempts(b, id)).toEqual({ m: 2, 'm[0]': 2, 'm[1]': 2, 'm[2]': 1 });
    expect(seen.sort()).toEqual(['1#1', '1#2', '2#1', '2#2', '3#1']);
  });

  it('re-runs a map whole when retried from it', async () => {
    const calls: number[] = [];
    let fail = true;
    const b = await baton({
      functions: {
        work: (x: unknown) => (calls.push(x as number), x),
        after: (i: unknown) => {
          if (fail) throw new Error('after broke');
          return i;
        },
      },
    });
    const v = await b.register(`
name: retry-map-from
steps:
  - { id: m, kind: map, over: "[1,2]", step: { kind: function, function: work, input: "item" } }
  - { id: after, kind: function, function: after, input: "steps.m.output" }
`);
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    expect(calls.sort()).toEqual([1, 2]);
    fail = false;
    await b.retry(r1.id, { from: 'm' });
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.output).toEqual([1, 2]);
    expect(calls.sort()).toEqual([1, 1, 2, 2]);
  });

  it('retries a cancelled run: what was in flight or never started runs, what finished does not', async () => {
    const gate: Array<() => void> = [];
    const calls: Record<string, number> = {};
    const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
    let hold = true;
    const b = await baton({
      functions: {
        first: () => (count('first'), 1),
        hold: () => {
          count('hold');
          return hold ? new Promise<number>((res) => gate.push(() => res(2))) : 2;
        },
      },
    });
    const v = await b.register(`
name: retry-cancelled
steps:
  - { id: first, kind: function, function: first }
  - { id: slow, kind: function, function: hold, needs: [first] }
  - { id: last, kind: transform, expression: "steps.first.output + steps.slow.output" }
`);
    const id = await b.start(v);
    while (gate.length === 0) await sleep(5);
    await b.cancel(id);
    expect((await b.getRun(id)).status).toBe('cancelled');
    hold = false;
    gate.shift()!(); // the cancelled attempt ends; its result is not recorded
    const back = await b.retry(id);
    expect(back.status).toBe('running');
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toBe(3);
    expect(calls).toEqual({ first: 1, hold: 2 });
    const retried = (await b.getEvents(id)).find((e) => e.type === 'run.retried');
    expect(retried?.data).toMatchObject({ previous: 'cancelled', steps: ['slow', 'last'] });
  });

  it('starts a fresh child run for a failed workflow step, and retries a child run only through its parent', async () => {
    let healthy = false;
    const b = await baton({
      functions: {
        kid: (i: unknown) => {
          if (!healthy) throw new Error('kid failed');
          return (i as { n: number }).n + 1;
        },
      },
    });
    await b.register('name: kid\nsteps:\n  - { id: k, kind: function, function: kid, input: "input" }\n');
    const v = await b.register('name: retry-parent\nsteps:\n  - { id: child, kind: workflow, workflow: kid, input: "{ \'n\': 1 }" }\n');
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    const firstChild = `${r1.id}.child.1`;
    expect((await b.getRun(firstChild)).status).toBe('failed');
    // A child run is retried through its parent, not on its own.
    await expect(b.retry(firstChild)).rejects.toMatchObject({ code: 'BATON_RUN_STATE', message: expect.stringMatching(/child run of run .*Retry run/) });
    healthy = true;
    await b.retry(r1.id);
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.status).toBe('completed');
    expect(r2.output).toBe(2);
    // A new child (the id carries the attempt); the first one's failure stays recorded.
    expect((await b.getRun(`${r1.id}.child.2`)).status).toBe('completed');
    expect((await b.getRun(firstChild)).status).toBe('failed');
  });

  it('cancels a child run still going from the earlier life, so that it cannot answer for the fresh one', async () => {
    const gate: Array<() => void> = [];
    let kidCalls = 0;
    let xHealthy = false;
    const b = await baton({
      functions: {
        kid: () => (++kidCalls === 1 ? new Promise<string>((res) => gate.push(() => res('old child'))) : 'new child'),
        x: async () => {
          while (gate.length === 0 && !xHealthy) await sleep(5); // fails only once the child runs
          if (!xHealthy) throw new Error('x broke');
          return 'x';
        },
      },
    });
    await b.register('name: slowkid\nsteps:\n  - { id: k, kind: function, function: kid }\n');
    const v = await b.register(`
name: retry-family
steps:
  - { id: y, kind: workflow, workflow: slowkid }
  - { id: x, kind: function, function: x }
`);
    const id = await b.start(v);
    while (gate.length === 0) await sleep(5);
    // x fails the parent while its child still runs.
    while ((await b.getRun(id)).status !== 'failed') await sleep(10);
    const oldChild = `${id}.y.1`;
    expect((await b.getRun(oldChild)).status).toBe('running');
    await expect(b.retry(oldChild)).rejects.toMatchObject({ code: 'BATON_RUN_NOT_RETRYABLE' });
    xHealthy = true;
    await b.retry(id);
    expect((await b.getRun(oldChild)).status).toBe('cancelled');
    gate.shift()!(); // the old child's attempt ends; nothing of it is recorded
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toEqual({ y: 'new child', x: 'x' });
    expect((await b.getRun(`${id}.y.2`)).status).toBe('completed');
  });

  it('refuses to retry a completed, running or unknown run, or from an unknown step, and changes nothing', async () => {
    const gate: Array<() => void> = [];
    const b = await baton({ functions: { boom: () => { throw new Error('boom'); }, hold: () => new Promise<number>((res) => gate.push(() => res(1))) } });
    const ok = await b.register('name: retry-ok\nsteps:\n  - { id: one, kind: transform, expression: "1" }\n');
    const done = await b.run(ok);
    expect(done.status).toBe('completed');
    const before = { run: await b.getRun(done.id), steps: await b.getSteps(done.id), events: await b.getEvents(done.id) };
    await expect(b.retry(done.id)).rejects.toMatchObject({ code: 'BATON_RUN_NOT_RETRYABLE', status: 409, message: expect.stringMatching(/is completed; only a failed or cancelled run can be retried/) });
    expect({ run: await b.getRun(done.id), steps: await b.getSteps(done.id), events: await b.getEvents(done.id) }).toEqual(before);

    const held = await b.register('name: retry-held\nsteps:\n  - { id: h, kind: function, function: hold }\n');
    const running = await b.start(held);
    while (gate.length === 0) await sleep(5);
    await expect(b.retry(running)).rejects.toMatchObject({ code: 'BATON_RUN_NOT_RETRYABLE', message: expect.stringMatching(/is running/) });
    gate.shift()!();
    expect((await b.wait(running)).status).toBe('completed');

    await expect(b.retry('run_nope')).rejects.toMatchObject({ code: 'BATON_RUN_NOT_FOUND' });

    const parked = await b.register('name: retry-parked\nsteps:\n  - { id: w, kind: wait, event: never.comes, key: "1" }\n');
    const waiting = await b.start(parked);
    while ((await b.getRun(waiting)).status !== 'waiting') await sleep(10);
    await expect(b.retry(waiting)).rejects.toMatchObject({ code: 'BATON_RUN_NOT_RETRYABLE', message: expect.stringMatching(/is waiting; .*Wait for it to end, or cancel it first/) });
    await b.cancel(waiting);

    const bad = await b.register('name: retry-bad\nsteps:\n  - { id: explode, kind: function, function: boom }\n');
    const failed = await b.run(bad);
    const snap = { run: await b.getRun(failed.id), steps: await b.getSteps(failed.id), events: await b.getEvents(failed.id) };
    await expect(b.retry(failed.id, { from: 'explod' })).rejects.toMatchObject({
      code: 'BATON_RETRY_STEP_UNKNOWN', message: expect.stringMatching(/has no step "explod" \(did you mean "explode"\?\)\. Retry from one of: explode/),
    });
    expect({ run: await b.getRun(failed.id), steps: await b.getSteps(failed.id), events: await b.getEvents(failed.id) }).toEqual(snap);
  });

  it('leaves handled failures alone and re-runs a failed error handler', async () => {
    const calls: Record<string, number> = {};
    const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
    let handlerWorks = false;
    const b = await baton({
      functions: {
        risky: () => (count('risky'), Promise.reject(new Error('risky broke'))),
        handler: () => {
          count('handler');
          if (!handlerWorks) throw new Error('handler broke too');
          return 'handled';
        },
        soft: () => (count('soft'), Promise.reject(new Error('soft broke'))),
      },
    });
    const v = await b.register(`
name: retry-handlers
steps:
  - { id: soft, kind: function, function: soft, on_error: { continue: "'fallback'" } }
  - { id: fine, kind: transform, expression: "steps.soft.output", on_error: { route: spare } }
  - { id: risky, kind: function, function: risky, needs: [fine], on_error: { route: handle } }
  - { id: handle, kind: function, function: handler }
  - { id: spare, kind: transform, expression: "'spare'" }
`);
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    expect(await statuses(b, r1.id)).toMatchObject({ risky: 'failed', soft: 'failed', handle: 'failed', fine: 'succeeded', spare: 'cancelled' });
    handlerWorks = true;
    await b.retry(r1.id);
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.status).toBe('completed');
    // risky (routed) and soft (continued) are not run again; the failed handler is; spare, never sent, stays unsent.
    expect(calls).toEqual({ risky: 1, soft: 1, handler: 2 });
    expect(await statuses(b, r1.id)).toMatchObject({ risky: 'failed', soft: 'failed', handle: 'succeeded', fine: 'succeeded', spare: 'pending' });
    expect(r2.output).toMatchObject({ handle: 'handled' });
    expect((await b.getEvents(r1.id)).find((e) => e.type === 'run.retried')?.data).toMatchObject({ steps: ['handle'] });
    expect((await b.getSteps(r1.id)).find((st) => st.key === 'fine')?.output).toBe('fallback');
  });

  it('with from on a step whose failure was routed, puts its handler back to wait for a new failure', async () => {
    const calls: Record<string, number> = {};
    const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
    let aWorks = false;
    let cWorks = false;
    const b = await baton({
      functions: {
        a: () => {
          count('a');
          if (!aWorks) throw new Error('a broke');
          return 'a';
        },
        h: () => (count('h'), 'handled'),
        c: () => {
          count('c');
          if (!cWorks) throw new Error('c broke');
          return 'c';
        },
      },
    });
    const v = await b.register(`
name: retry-route-from
steps:
  - { id: a, kind: function, function: a, on_error: { route: h } }
  - { id: h, kind: function, function: h }
  - { id: after_a, kind: transform, expression: "steps.a.output" }
  - { id: c, kind: function, function: c, needs: [h, after_a] }
`);
    // a fails and is handled by h; c (after h) fails the run.
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    expect(await statuses(b, r1.id)).toMatchObject({ a: 'failed', h: 'succeeded', c: 'failed', after_a: 'skipped' });
    cWorks = true;
    aWorks = true;
    Object.keys(calls).forEach((key) => delete calls[key]);
    await b.retry(r1.id, { from: 'a' });
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.status).toBe('completed');
    // a now succeeds: h waits for a failure that does not come, and c (after h) with it; after_a runs.
    expect(calls).toEqual({ a: 1 });
    expect(await statuses(b, r1.id)).toMatchObject({ a: 'succeeded', h: 'pending', c: 'pending', after_a: 'succeeded' });
    expect((await b.getSteps(r1.id)).find((st) => st.key === 'after_a')?.output).toBe('a');
  });

  it('ends again at once a run whose steps had all finished (its output is evaluated again)', async () => {
    const b = await baton();
    const v = await b.register(`
name: retry-output
steps:
  - { id: one, kind: transform, expression: "1" }
output: "$error('the output expression is wrong')"
`);
    const r1 = await b.run(v);
    expect(r1.status).toBe('failed');
    const back = await b.retry(r1.id);
    expect(back.status).toBe('failed');
    expect(back.error?.message).toMatch(/the output expression is wrong/);
    expect((await b.getEvents(r1.id)).filter((e) => e.type === 'run.failed')).toHaveLength(2);

    // The same with an error handler that no route ever sent: it is put back to wait, and the run still ends.
    const h = await b.register(`
name: retry-output-handler
steps:
  - { id: one, kind: transform, expression: "1", on_error: { route: never_sent } }
  - { id: never_sent, kind: transform, expression: "2" }
output: "$error('still wrong')"
`);
    const r3 = await b.run(h);
    expect(r3.status).toBe('failed');
    expect((await b.retry(r3.id)).status).toBe('failed');
  });

  it('queues a retried run behind an active run with its concurrency key, and runs it when that one ends', async () => {
    const gate: Array<() => void> = [];
    let healthy = false;
    const b = await baton({
      functions: {
        work: (i: unknown) => {
          const { hold } = i as { hold: boolean };
          if (hold) return new Promise<string>((res) => gate.push(() => res('held')));
          if (!healthy) throw new Error('not yet');
          return 'done';
        },
      },
    });
    const v = await b.register(`
name: retry-keyed
concurrency: { key: "input.customer", limit: 1 }
steps:
  - { id: w, kind: function, function: work, input: "input" }
`);
    const r1 = await b.run(v, { customer: 'c7', hold: false });
    expect(r1.status).toBe('failed');
    const busy = await b.start(v, { customer: 'c7', hold: true });
    while (gate.length === 0) await sleep(5);
    healthy = true;
    const back = await b.retry(r1.id);
    expect(back.status).toBe('queued');
    await sleep(100);
    expect((await b.getRun(r1.id)).status).toBe('queued');
    expect(await statuses(b, r1.id)).toEqual({ w: 'scheduled' });
    gate.shift()!();
    expect((await b.wait(busy, { timeoutMs: 20_000 })).status).toBe('completed');
    const r2 = await b.wait(r1.id, { timeoutMs: 20_000 });
    expect(r2.status).toBe('completed');
    expect(r2.output).toBe('done');
  });

  it('a worker that cached the run before it ended elsewhere runs its retry from the store\'s truth, not its memory', async () => {
    const gate: Array<() => void> = [];
    let calls = 0;
    const a = await baton({ functions: { hold: () => (++calls === 1 ? new Promise<number>((res) => gate.push(() => res(1))) : 10) } });
    const other = await baton({ worker: false }); // another process: no worker
    const v = await a.register(`
name: retry-stale
steps:
  - { id: s1, kind: function, function: hold }
  - { id: s2, kind: transform, expression: "steps.s1.output + 1" }
`);
    const id = await a.start(v);
    while (gate.length === 0) await sleep(5);
    // This worker pauses the run (and remembers it paused); another process cancels and retries it.
    await a.pause(id);
    await other.cancel(id);
    gate.shift()!(); // the attempt of the cancelled life ends; nothing of it is recorded
    await sleep(50);
    expect((await other.retry(id)).status).toBe('running');
    const r = await a.wait(id, { timeoutMs: 10_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toBe(11);
  });

  it('lets only one of two concurrent retries through', async () => {
    let healthy = false;
    const b = await baton({ functions: { f: () => { if (!healthy) throw new Error('no'); return 1; } } });
    const v = await b.register('name: retry-race\nsteps:\n  - { id: f, kind: function, function: f }\n');
    const r1 = await b.run(v);
    healthy = true;
    const other = await baton({ worker: false });
    const results = await Promise.allSettled([b.retry(r1.id), other.retry(r1.id)]);
    expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((x) => x.status === 'rejected')).toMatchObject({ reason: { code: 'BATON_RUN_NOT_RETRYABLE' } });
    expect((await b.wait(r1.id, { timeoutMs: 20_000 })).status).toBe('completed');
    expect((await b.getEvents(r1.id)).filter((e) => e.type === 'run.retried')).toHaveLength(1);
  });

  it('a retry timer left from the run\'s earlier life does not run the step again once the run was cancelled and retried', async () => {
    const attempts: number[] = [];
    // Later attempts are held until the test lets them go, so the retried run is still going when the old timer fires.
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    const b = await baton({
      functions: {
        flaky: async (_: unknown, ctx: { attempt: number }) => {
          attempts.push(ctx.attempt);
          if (ctx.attempt === 1) throw new Error('first try fails');
          await held;
          return ctx.attempt;
        },
      },
    });
    // The second attempt is due in 1 s: a timer in this worker holds it (short delays stay local).
    const v = await b.register(`
name: retry-timer
steps:
  - { id: flaky, kind: function, function: flaky, retry: { max_attempts: 3, initial_delay: 1s, max_delay: 1s } }
`);
    const id = await b.start(v);
    await until(async () => (await b.getSteps(id))[0]?.attempt === 2, 'the second attempt to be scheduled');
    await b.cancel(id);
    await b.retry(id);
    await until(async () => attempts.includes(3), 'the retried run\'s attempt to start');
    // The old timer fires meanwhile: its attempt belongs to the cancelled life and is dropped,
    // rather than calling the function again (with an attempt whose commit could only fail).
    await sleep(1_500);
    release();
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toBe(3);
    expect(attempts).toEqual([1, 3]);
  });
});
