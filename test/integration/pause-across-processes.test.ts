/**
 * Pause and resume from different processes. The process that paused a run (and keeps it in
 * memory) must not go on treating it as paused once another resumed it: before the fix, its
 * worker claimed the run's next step, saw "paused" in its own memory, gave the claim back, and
 * did so again on every poll, so the run never finished. And a run paused by another process
 * runs no further step in the one executing it until resumed. On every store.
 */
import { describe, expect, it } from 'vitest';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

describe.each(STORE_KINDS)('pause and resume across processes on %s', (k) => {
  const suite = engineSuite(k, 'baton-pause-x-');
  /** Engine `a` runs a two-step run (a 300 ms nap, then `input.n + 1`); `b`, without a worker, is the other process. */
  const twoEngines = async () => {
    const a = await suite.baton();
    const b = await suite.baton({ worker: false });
    const v = await a.register('name: napper\nsteps:\n  - { id: nap, kind: wait, duration: 300ms }\n  - { id: done, kind: transform, needs: [nap], expression: "input.n + 1" }\n');
    return { a, b, id: await a.start(v, { n: 1 }) };
  };

  it('a run paused by one engine and resumed by another finishes in the first', async () => {
    const { a, b, id } = await twoEngines();
    await a.pause(id);
    expect((await b.getRun(id)).status).toBe('paused');
    // The nap ends while the run is paused; then another process resumes it.
    await new Promise((r) => setTimeout(r, 500));
    await b.resume(id);
    const r = await a.wait(id, { timeoutMs: 5000 });
    expect(r.status).toBe('completed');
    expect(r.output).toBe(2);
  });

  it('a run paused by another engine stops at its next step in the one executing it, and resumes there', async () => {
    const { a, b, id } = await twoEngines();
    await b.pause(id);
    await new Promise((r) => setTimeout(r, 700));
    // The nap ended meanwhile; its successor must not have run while the run was paused.
    const run = await b.getRun(id);
    expect(run.status).toBe('paused');
    expect((await b.getSteps(id)).find((s) => s.key === 'done')?.status).not.toBe('succeeded');
    await b.resume(id);
    const r = await a.wait(id, { timeoutMs: 5000 });
    expect(r.status).toBe('completed');
    expect(r.output).toBe(2);
  });
});
