/**
 * A run's output when its steps ended in different processes. The process that records the
 * run's last step may have read the run from the store while another process's step was still
 * going; that step's output must still reach the run's output (before the fix the view, once
 * read, was never read again, and the default output had `d: null`). On every store.
 */
import { describe, expect, it } from 'vitest';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

describe.each(STORE_KINDS)('run output across processes on %s', (k) => {
  const suite = engineSuite(k, 'baton-output-x-');
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it.each([
    ['the default output (final steps by id)', ''],
    ['an output expression', 'output: "{ \'x\': steps.x.output, \'d\': steps.d.output }"\n'],
  ])('%s has the output of a step that ended in the other process after this one read the run', async (_label, output) => {
    // d runs in the engine that started the run and is held until x (after the wait) has
    // started; x runs in whichever engine claims the woken wait, and is held until d is recorded.
    let releaseD = () => {};
    let releaseX = () => {};
    let xStarted: (engine: string) => void = () => {};
    const functions = (engine: string) => ({
      a: () => engine,
      d: () => new Promise((r) => (releaseD = () => r('d'))),
      x: () => new Promise((r) => {
        xStarted(engine);
        releaseX = () => r(`x from ${engine}`);
      }),
    });
    // One looks for work started elsewhere rarely; two sends the event, so two is likely to
    // claim the woken wait (on PostgreSQL a notification wakes both: then it is a race).
    const one = await suite.baton({ functions: functions('one'), pollIntervalMs: 5_000 });
    const two = await suite.baton({ functions: functions('two') });
    const v = await one.register(`
name: split
${output}steps:
  - { id: a, kind: function, function: a }
  - { id: w, kind: wait, event: go, key: "input.k", needs: [a] }
  - { id: x, kind: function, function: x, needs: [w] }
  - { id: d, kind: function, function: d, needs: [a] }
`);
    const stepStatus = async (id: string, key: string) => (await one.getSteps(id)).find((s) => s.key === key)?.status;
    // Which engine claims the woken wait is up to the store: try until the other one has, a few times.
    let inTwo = 0;
    for (let i = 0; i < 40 && inTwo < 3; i++) {
      const id = await one.start(v, { k: `k${i}` });
      while ((await stepStatus(id, 'w')) !== 'waiting') await sleep(5);
      const started = new Promise<string>((r) => (xStarted = r));
      await two.sendEvent('go', `k${i}`, {});
      const engine = await started;
      if (engine === 'two') inTwo++;
      releaseD();
      while ((await stepStatus(id, 'd')) !== 'succeeded') await sleep(5);
      releaseX();
      const r = await one.wait(id, { timeoutMs: 10_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual({ x: `x from ${engine}`, d: 'd' });
    }
    expect(inTwo).toBe(3);
  });
});
