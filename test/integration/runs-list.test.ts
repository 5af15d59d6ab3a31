/**
 * GET /runs filters and pages over a real socket on every store: by status, workflow and
 * creation time (`before`, with `before_run` so that runs of one millisecond are not skipped),
 * newest first; a bad filter is a 400 problem.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildGateway } from '../../src/gateway/server.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

describe.each(STORE_KINDS)('GET /runs on %s', (k) => {
  const suite = engineSuite(k, 'baton-runs-list-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('filters by status and workflow and pages by creation time', async () => {
    const b = await suite.baton();
    await b.register('{ "name": "ok", "steps": [{ "id": "a", "kind": "transform", "expression": "input.n" }] }');
    await b.register('{ "name": "bad", "steps": [{ "id": "a", "kind": "transform", "expression": "$error(\\"no\\")" }] }');
    const ids: string[] = [];
    for (let n = 0; n < 4; n++) {
      ids.push((await b.run('ok', { n })).id);
      await new Promise((r) => setTimeout(r, 5)); // distinct creation times
    }
    const failed = await b.run('bad', {});
    expect(failed.status).toBe('failed');
    app = buildGateway(b, { auth: 'off' });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const get = async (q: string) => {
      const res = await fetch(`${url}/runs${q}`);
      return { status: res.status, body: (await res.json()) as Array<{ run_id: string; workflow: string; status: string; created_at: string }> & { code?: string } };
    };

    expect((await get('?status=failed')).body.map((r) => r.run_id)).toEqual([failed.id]);
    const ok = (await get('?workflow=ok')).body;
    expect(ok.map((r) => r.run_id)).toEqual([...ids].reverse());
    const page1 = (await get('?workflow=ok&limit=2')).body;
    expect(page1.map((r) => r.run_id)).toEqual([ids[3], ids[2]]);
    const page2 = (await get(`?workflow=ok&limit=2&before=${encodeURIComponent(page1.at(-1)!.created_at)}`)).body;
    expect(page2.map((r) => r.run_id)).toEqual([ids[1], ids[0]]);
    const byMs = (await get(`?workflow=ok&before=${Date.parse(page1.at(-1)!.created_at)}`)).body;
    expect(byMs.map((r) => r.run_id)).toEqual([ids[1], ids[0]]);

    for (const q of ['?before=yesterday', '?status=done', '?limit=0', '?colour=red', `?before_run=${ids[0]}`]) {
      const r = await get(q);
      expect(r.status, q).toBe(400);
      expect(r.body.code, q).toMatch(/^BATON_/);
    }
  });

  it('pages through runs created in the same millisecond without skipping or repeating one', async () => {
    const b = await suite.baton();
    await b.register('{ "name": "ok", "steps": [{ "id": "a", "kind": "transform", "expression": "input.n" }] }');
    // A busy gateway starts many runs a millisecond; here the clock stands still for five.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const ids: string[] = [];
    try {
      for (let n = 0; n < 5; n++) ids.push((await b.run('ok', { n })).id);
    } finally {
      vi.useRealTimers();
    }
    app = buildGateway(b, { auth: 'off' });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const seen: string[] = [];
    let q = '?limit=2';
    for (let page = 0; page < 5; page++) {
      const rows = (await (await fetch(`${url}/runs${q}`)).json()) as Array<{ run_id: string; created_at: string }>;
      seen.push(...rows.map((r) => r.run_id));
      if (rows.length < 2) break;
      const last = rows.at(-1)!;
      q = `?limit=2&before=${encodeURIComponent(last.created_at)}&before_run=${last.run_id}`;
    }
    expect(new Set(ids).size).toBe(5);
    expect([...seen].sort()).toEqual([...ids].sort());
    expect(seen).toHaveLength(5);
    // `before` alone (a time) skips the rest of the boundary's millisecond, as documented.
    const first = (await (await fetch(`${url}/runs?limit=2`)).json()) as Array<{ created_at: string }>;
    expect(((await (await fetch(`${url}/runs?before=${encodeURIComponent(first[1].created_at)}`)).json()) as unknown[]).length).toBe(0);
  });
});
