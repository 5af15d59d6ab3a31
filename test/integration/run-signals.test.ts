/**
 * Signals addressed to one run (`POST /runs/{id}/signal`, `baton.signalRun`) through the real
 * gateway (a listening socket, fetch), on every store: only that run wakes; a finished run, a
 * run not waiting for the event and another namespace's run are refused and left as they were.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { buildGateway } from '../../src/gateway/server.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

const APPROVAL = `
name: approval
steps:
  - { id: approved, kind: wait, event: approve, key: "input.order", timeout: 1h }
  - { id: done, kind: transform, expression: "{ 'order': input.order, 'by': steps.approved.output.by }" }
`;

describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-signal-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function serve(auth: 'off' | 'required' = 'off'): Promise<{ b: Baton; url: string }> {
    const b = await suite.baton();
    app = buildGateway(b, { auth });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { b, url };
  }
  const signal = (url: string, runId: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}/runs/${runId}/signal`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });

  async function waitingRun(b: Baton, order: string): Promise<string> {
    const id = await b.start('approval', { order });
    await until(async () => (await b.getRun(id)).status === 'waiting', 'the run to wait');
    expect((await b.getRun(id)).status).toBe('waiting');
    return id;
  }

  it('wakes only the addressed run, whatever its wait key', async () => {
    const { b, url } = await serve();
    await b.register(APPROVAL);
    // Two runs wait on the same key: an event by key would wake one of them; a signal picks the run.
    const [r1, r2] = [await waitingRun(b, 'A-1'), await waitingRun(b, 'A-1')];
    const res = await signal(url, r2, { event: 'approve', payload: { by: 'ana' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ run_id: r2, woken: ['approved'] });
    expect((await b.wait(r2, { timeoutMs: 20_000 })).output).toEqual({ order: 'A-1', by: 'ana' });
    expect((await b.getRun(r1)).status).toBe('waiting');
    const history = (await b.getEvents(r2)).filter((e) => e.type === 'signal.received');
    expect(history).toHaveLength(1);
  });

  it('refuses a finished run, a run not waiting for the event, an unknown run and a bad body, and changes nothing', async () => {
    const { b, url } = await serve();
    await b.register(APPROVAL);
    const id = await waitingRun(b, 'B-2');
    const before = (await b.getEvents(id)).length;

    const other = await signal(url, id, { event: 'reject' });
    expect(other.status).toBe(409);
    expect(other.headers.get('content-type')).toContain('application/problem+json');
    const p = (await other.json()) as { code: string; detail: string };
    expect(p.code).toBe('BATON_SIGNAL_NO_TARGET');
    expect(p.detail).toContain('it waits for: approve');

    expect((await signal(url, id, { event: 'approve', extra: 1 })).status).toBe(400);
    expect((await signal(url, id, {})).status).toBe(400);
    expect((await signal(url, 'no-such-run', { event: 'approve' })).status).toBe(404);
    expect((await b.getEvents(id)).length).toBe(before);
    expect((await b.getRun(id)).status).toBe('waiting');

    await b.cancel(id);
    const late = await signal(url, id, { event: 'approve', payload: { by: 'late' } });
    expect(late.status).toBe(409);
    const problem = (await late.json()) as { code: string; detail: string };
    expect(problem.code).toBe('BATON_RUN_STATE');
    expect(problem.detail).toBe(`Run ${id} is cancelled; cannot send it the signal "approve".`);
    expect((await b.getRun(id)).status).toBe('cancelled');
  });

  it("a key cannot signal another namespace's run (404) nor signal with the viewer role (403)", async () => {
    const { b, url } = await serve('required');
    await b.register(APPROVAL);
    const id = await b.start('approval', { order: 'C-3' }, { namespace: 'team-b' });
    await until(async () => (await b.getRun(id)).status === 'waiting', 'the run to wait');
    const { createApiKey } = await import('../../src/gateway/auth.js');
    const teamA = await createApiKey(b.store, { name: 'a', role: 'operator', namespaces: ['team-a'] });
    const viewerB = await createApiKey(b.store, { name: 'vb', role: 'viewer', namespaces: ['team-b'] });
    const operatorB = await createApiKey(b.store, { name: 'ob', role: 'operator', namespaces: ['team-b'] });
    expect((await signal(url, id, { event: 'approve' }, { authorization: `Bearer ${teamA.key}` })).status).toBe(404);
    expect((await signal(url, id, { event: 'approve' }, { authorization: `Bearer ${viewerB.key}` })).status).toBe(403);
    expect((await b.getRun(id)).status).toBe('waiting');
    const ok = await signal(url, id, { event: 'approve', payload: { by: 'bo' } }, { authorization: `Bearer ${operatorB.key}` });
    expect(ok.status).toBe(200);
    expect((await b.wait(id, { timeoutMs: 20_000 })).output).toEqual({ order: 'C-3', by: 'bo' });
  });
});
