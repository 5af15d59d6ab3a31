/**
 * What a run sees of steps that ended in another process. The process that records the run's
 * last step (or runs an error handler) may have read the run from the store while another
 * process's step was still going; that step's output must still reach the run's output and the
 * handler's expressions (before the fix the view, once read, was never read again: the default
 * output had `d: null`, the handler saw no `steps.d`). On every store.
 */
import { describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

describe.each(STORE_KINDS)('run output across processes on %s', (k) => {
  const suite = engineSuite(k, 'baton-output-x-');
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /**
   * Two engines and a workflow `a → w (wait for "go") → x` beside `a → d`. d runs in the engine
   * that started the run and is held until x has started; x runs in whichever engine claims the
   * woken wait, and is held until d is recorded, then answers (or fails, with `xFails`). Engine
   * one looks for work started elsewhere rarely and two sends the event, so two is likely to
   * claim the wait (on PostgreSQL a notification wakes both: then it is a race). Runs are
   * started until x has run in two three times; `check` sees each ended run and x's engine.
   */
  async function splitRuns(doc: { output?: string; more: string }, xFails: boolean, check: (one: Baton, id: string, engine: string) => Promise<void>) {
    let releaseD = () => {};
    let releaseX = () => {};
    let xStarted: (engine: string) => void = () => {};
    const functions = (engine: string) => ({
      a: () => engine,
      d: () => new Promise((r) => (releaseD = () => r('d'))),
      x: () => new Promise((res, rej) => {
        xStarted(engine);
        releaseX = () => (xFails ? rej(new Error(`x failed in ${engine}`)) : res(`x from ${engine}`));
      }),
    });
    const one = await suite.baton({ functions: functions('one'), pollIntervalMs: 5_000 });
    const two = await suite.baton({ functions: functions('two') });
    const v = await one.register(`
name: split
${doc.output ? `output: "${doc.output}"\n` : ''}steps:
  - { id: a, kind: function, function: a }
  - { id: w, kind: wait, event: go, key: "input.k", needs: [a] }
  - { id: d, kind: function, function: d, needs: [a] }
${doc.more}`);
    const status = async (id: string, key: string) => (await one.getSteps(id)).find((s) => s.key === key)?.status;
    let inTwo = 0;
    for (let i = 0; i < 40 && inTwo < 3; i++) {
      const id = await one.start(v, { k: `k${i}` });
      while ((await status(id, 'w')) !== 'waiting') await sleep(5);
      const started = new Promise<string>((r) => (xStarted = r));
      await two.sendEvent('go', `k${i}`, {});
      const engine = await started;
      if (engine === 'two') inTwo++;
      releaseD();
      while ((await status(id, 'd')) !== 'succeeded') await sleep(5);
      releaseX();
      await check(one, id, engine);
    }
    expect(inTwo).toBe(3);
  }

  const X = '  - { id: x, kind: function, function: x, needs: [w] }\n';

  it.each([
    ['the default output (final steps by id)', undefined],
    ['an output expression', "{ 'x': steps.x.output, 'd': steps.d.output }"],
  ])('%s has the output of a step that ended in the other process after this one read the run', async (_label, output) => {
    await splitRuns({ output, more: X }, false, async (one, id, engine) => {
      const r = await one.wait(id, { timeoutMs: 10_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual({ x: `x from ${engine}`, d: 'd' });
    });
  });

  it('the output has an error handler that ran in the other process while this one ran the last step', async () => {
    // x fails in engine one while the run is paused: its handler h goes back to the store, and
    // the engine that resumes the run (two) runs it. d, still running in one, ends after h:
    // one's view has x failed and no h. Before the fix one took d for the run's last step and
    // recorded the end from its view, without h ({ x: null, d: 'd' }).
    let releaseD = () => {};
    let releaseX = () => {};
    let xCalls = 0;
    let dCalls = 0;
    const functions = (engine: string) => ({
      a: () => engine,
      d: () => new Promise((r) => {
        dCalls++;
        releaseD = () => r('d');
      }),
      x: () => new Promise((_res, rej) => {
        xCalls++;
        releaseX = () => rej(new Error('x failed'));
      }),
      h: () => `h from ${engine}`,
    });
    const one = await suite.baton({ functions: functions('one'), pollIntervalMs: 5_000 });
    const two = await suite.baton({ functions: functions('two') });
    const v = await one.register(`
name: handled
steps:
  - { id: a, kind: function, function: a }
  - { id: x, kind: function, function: x, needs: [a], retry: { max_attempts: 1 }, on_error: { route: h } }
  - { id: d, kind: function, function: d, needs: [a] }
  - { id: h, kind: function, function: h }
`);
    const step = async (id: string, key: string) => (await one.getSteps(id)).find((s) => s.key === key);
    let inTwo = 0;
    for (let i = 0; i < 20 && inTwo < 2; i++) {
      const id = await one.start(v, {});
      await until(async () => xCalls > i && dCalls > i, 'x and d called');
      await one.pause(id);
      releaseX();
      // h is scheduled by x's failure and handed back, the run being paused.
      await until(async () => (await step(id, 'x'))?.status === 'failed' && (await step(id, 'h'))?.status === 'scheduled' && (await step(id, 'h'))?.owner === undefined, 'h handed back');
      await two.resume(id);
      await until(async () => (await step(id, 'h'))?.status === 'succeeded', 'h run');
      const h = (await step(id, 'h'))!.output as string;
      if (h === 'h from two') inTwo++;
      releaseD();
      const r = await one.wait(id, { timeoutMs: 10_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual({ x: null, d: 'd', h });
    }
    expect(inTwo).toBe(2);
  });

  it('an error handler sees the output of a step that ended in the other process after this one read the run', async () => {
    // x fails and routes to a handler that reads d: the handler runs where x failed.
    const more = `${X.replace('needs: [w] }', 'needs: [w], on_error: { route: h } }')}  - { id: h, kind: transform, expression: "{ 'why': steps.x.error.message, 'd': steps.d.output }" }\n`;
    await splitRuns({ more }, true, async (one, id, engine) => {
      expect((await one.wait(id, { timeoutMs: 10_000 })).status).toBe('completed');
      expect((await one.getSteps(id)).find((s) => s.key === 'h')?.output).toEqual({ why: `x failed in ${engine}`, d: 'd' });
    });
  });
});
