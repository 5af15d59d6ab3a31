/**
 * `POST /runs/{id}/retry` over real HTTP (the gateway listening on 127.0.0.1, an embedded
 * engine with its worker), on every store: 202 with the run, 409 for a run that cannot be
 * retried, 400 for a bad body or an unknown `from`, 404 for another namespace's run, and the
 * route in /openapi.json.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway } from '../../src/gateway/server.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

describe.each(STORE_KINDS)('POST /runs/{id}/retry on %s', (k) => {
  const suite = engineSuite(k, 'baton-retry-http-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('retries a failed run (202), and refuses what it must with the right problem, changing nothing', async () => {
    let healthy = false;
    const b = await suite.baton({
      functions: {
        fetchData: () => ({ rows: 3 }),
        flaky: (i: unknown) => {
          if (!healthy) throw new Error('warehouse offline');
          return i;
        },
      },
    });
    const operator = await createApiKey(b.store, { name: 'ops-a', role: 'operator', namespaces: ['team-a'] });
    const viewer = await createApiKey(b.store, { name: 'view-a', role: 'viewer', namespaces: ['team-a'] });
    const stranger = await createApiKey(b.store, { name: 'ops-b', role: 'operator', namespaces: ['team-b'] });
    const v = await b.register(`
name: nightly
steps:
  - { id: fetch_data, kind: function, function: fetchData }
  - { id: load, kind: function, function: flaky, input: "steps.fetch_data.output.rows" }
`, undefined, { namespace: 'team-a' });
    const failed = await b.run(v, {}, { namespace: 'team-a' });
    expect(failed.status).toBe('failed');

    app = await createGateway(b);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const call = async (path: string, key: string | undefined, body?: unknown, method = 'POST') => {
      const headers: Record<string, string> = {};
      if (key) headers.authorization = `Bearer ${key}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.json()) as Record<string, any> };
    };
    const snapshot = async () => ({ run: await b.getRun(failed.id), steps: await b.getSteps(failed.id), events: (await b.getEvents(failed.id)).length });
    const before = await snapshot();
    const path = `/runs/${failed.id}/retry`;

    // Refusals first: none of them changes the run.
    expect((await call(path, undefined)).status).toBe(401);
    const other = await call(path, stranger.key);
    expect(other.status).toBe(404);
    expect(other.body).toMatchObject({ code: 'BATON_RUN_NOT_FOUND' });
    const ro = await call(path, viewer.key);
    expect(ro.status).toBe(403);
    expect(ro.body).toMatchObject({ code: 'BATON_FORBIDDEN' });
    const unknownField = await call(path, operator.key, { from: 'load', force: true });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body).toMatchObject({ code: 'BATON_REQUEST_INVALID' });
    expect(unknownField.type).toMatch(/application\/problem\+json/);
    const wrongType = await call(path, operator.key, { from: 7 });
    expect(wrongType.status).toBe(400);
    const unknownStep = await call(path, operator.key, { from: 'fetch_dta' });
    expect(unknownStep.status).toBe(400);
    expect(unknownStep.body).toMatchObject({ code: 'BATON_RETRY_STEP_UNKNOWN', detail: expect.stringContaining('did you mean "fetch_data"') });
    expect(await call('/runs/run_nope/retry', operator.key)).toMatchObject({ status: 404, body: { code: 'BATON_RUN_NOT_FOUND' } });
    expect(await snapshot()).toEqual(before);

    // Accepted: 202 with the run, back at work; then it completes.
    healthy = true;
    const ok = await call(path, operator.key, { from: 'load' });
    expect(ok.status).toBe(202);
    expect(ok.body).toMatchObject({ run_id: failed.id, status: 'running', namespace: 'team-a', error: null, finished_at: null });
    const done = await b.wait(failed.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('completed');
    expect(done.output).toBe(3);
    const retried = (await b.getEvents(failed.id)).find((e) => e.type === 'run.retried');
    expect(retried?.data).toMatchObject({ from: 'load', by: `key ${operator.record.id} (ops-a)` });
    // No secret in the history.
    expect(JSON.stringify(retried)).not.toContain(operator.key.split('_').slice(2).join('_'));

    // A completed run is not retryable: 409, saying which states are.
    const again = await call(path, operator.key);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'BATON_RUN_NOT_RETRYABLE', detail: expect.stringMatching(/is completed; only a failed or cancelled run can be retried/) });

    // Described in the OpenAPI document.
    const spec = await call('/openapi.json', undefined, undefined, 'GET');
    const op = spec.body.paths['/runs/{id}/retry'].post;
    expect(Object.keys(op.responses)).toContain('202');
    expect(op.requestBody.content['application/json'].schema.properties).toHaveProperty('from');
  });
});
