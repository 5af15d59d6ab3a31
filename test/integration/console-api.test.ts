/**
 * The console's server side over real HTTP on both stores: `/console-api/*` (who am I, a
 * version's graph, costs, services) bounded by the key's role and namespaces, the built app
 * served at /console/ without a key (SPA fallback), browsers sent from `/` to it, and a clear
 * 503 when the console was never built.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { BatonError } from '../../src/errors.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { registerConsole } from '../../src/gateway/console.js';
import { createGateway } from '../../src/gateway/server.js';
import type { ProviderFactory } from '../../src/providers/provider.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

const WF = `
name: graphy
steps:
  - { id: ask, kind: model, service: main, fallback: [spare], prompt: "hi", output_schema: { type: object } }
  - { id: check, kind: transform, when: 'steps.ask.output.ok = true', expression: '1' }
  - { id: oops, kind: transform, expression: '2' }
`;

const down: ProviderFactory = () => ({
  name: 'down', defaultOperation: 'chat',
  async call() {
    throw new BatonError('BATON_MODEL_HTTP', { service: 'main', httpStatus: 500, detail: 'scripted', retryAfter: '' }, { retryable: true });
  },
});
const up: ProviderFactory = () => ({ name: 'up', defaultOperation: 'chat', async call() { return { output: '{"ok":true}', usage: { inputTokens: 1000, outputTokens: 1000, cachedInputTokens: 0 } }; } });

describe.each(STORE_KINDS)('console API on %s', (k) => {
  const suite = engineSuite(k, 'baton-console-api-');
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    for (const a of apps.splice(0)) await a.close();
  });

  it('whoami, version graph, costs and services follow the key; other namespaces stay hidden', async () => {
    const b = await suite.baton({
      providers: { down, up },
      services: { main: { provider: 'down', retry: { max_attempts: 1 } }, spare: { provider: 'up', price: { input_per_mtok: 1, output_per_mtok: 2 } } },
    });
    const keys: Record<string, string> = {};
    for (const [name, role, ns] of [['adm', 'admin', ['*']], ['vic', 'viewer', ['team-a']], ['bob', 'operator', ['team-b']]] as const) {
      keys[name] = (await createApiKey(b.store, { name, role, namespaces: [...ns] })).key;
    }
    const app = await createGateway(b, { auth: 'required' });
    apps.push(app);
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const get = async (path: string, who?: string) => {
      const res = await fetch(`${base}${path}`, { headers: who ? { authorization: `Bearer ${keys[who]}` } : {} });
      return { status: res.status, body: (await res.json()) as any };
    };

    expect((await get('/console-api/whoami')).status).toBe(401);
    expect((await get('/console-api/whoami', 'vic')).body).toEqual({
      auth: 'on', key: { id: expect.any(String), name: 'vic', role: 'viewer', namespaces: ['team-a'] }, can: { run: false, approve: false, register: false, admin: false },
    });
    expect((await get('/console-api/whoami', 'bob')).body.can).toEqual({ run: true, approve: false, register: false, admin: false });

    // The graph: deps, `when`, services in order; a team's version is not found for another team.
    const va = await b.register(WF, undefined, { namespace: 'team-a' });
    const g = await get(`/console-api/versions/${encodeURIComponent(va.versionId)}`, 'vic');
    expect(g.status).toBe(200);
    expect(g.body.steps.map((s: any) => [s.id, s.kind, s.deps, s.when, s.services])).toEqual([
      ['ask', 'model', [], null, ['main', 'spare']],
      ['check', 'transform', ['ask'], 'steps.ask.output.ok = true', []],
      ['oops', 'transform', [], null, []],
    ]);
    expect(g.body.document.name).toBe('graphy');
    const hidden = await get(`/console-api/versions/${encodeURIComponent(va.versionId)}`, 'bob');
    expect(hidden.status).toBe(404);
    expect(hidden.body.code).toBe('BATON_WORKFLOW_NOT_FOUND');
    expect((await get('/console-api/versions/nope%40123', 'vic')).status).toBe(404);

    // Costs: team-a's run spends (the fallback answers); team-b sees none of it, the admin all.
    const r = await b.run(va, {}, { namespace: 'team-a' });
    expect(r.status).toBe('completed');
    const spent = 1000 / 1e6 * 1 + 1000 / 1e6 * 2;
    const vicW = await get('/console-api/costs?by=workflow', 'vic');
    expect(vicW.body.lines).toEqual([{ key: 'team-a/graphy', calls: 2, failed: 1, tokens: 2000, cost: expect.closeTo(spent, 9) }]);
    const vicS = (await get('/console-api/costs?by=service', 'vic')).body.lines;
    expect(vicS.map((l: any) => [l.key, l.calls, l.failed])).toEqual([['spare', 1, 0], ['main', 1, 1]]);
    const day = new Date().toISOString().slice(0, 10);
    expect((await get('/console-api/costs?by=day', 'vic')).body.lines.map((l: any) => l.key)).toEqual([day]);
    expect((await get('/console-api/costs?by=workflow', 'bob')).body.lines).toEqual([]);
    expect((await get('/console-api/costs?by=service', 'adm')).body.lines.map((l: any) => l.key).sort()).toEqual(['main', 'spare']);
    expect((await get(`/console-api/costs?by=workflow&since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, 'vic')).body.lines).toEqual([]);
    const bad = await get('/console-api/costs?by=planet', 'vic');
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('BATON_REQUEST_INVALID');

    // Services: health for everyone, a service's total spend only for a key reaching every namespace.
    const sv = (await get('/console-api/services', 'vic')).body as any[];
    const main = sv.find((s) => s.name === 'main');
    expect(main).toMatchObject({ provider: 'down', breaker: 'closed', calls: 1, failures: 1, error_rate: 1, calls_24h: 1, error_rate_24h: 1, cost_24h: null });
    expect(sv.find((s) => s.name === 'spare')).toMatchObject({ failures: 0, error_rate: 0 });
    expect(typeof sv.find((s) => s.name === 'spare').p50_ms).toBe('number');
    expect((await get('/console-api/services', 'adm')).body.find((s: any) => s.name === 'spare').cost_24h).toBeCloseTo(spent, 9);
  });

  it('serves the built app without a key (SPA fallback), sends browsers from / to it, keeps the JSON index for clients', async () => {
    const b = await suite.baton();
    await createApiKey(b.store, { name: 'k', role: 'viewer', namespaces: ['*'] });
    const dir = mkdtempSync(join(tmpdir(), 'baton-console-dist-'));
    try {
      mkdirSync(join(dir, 'assets'));
      writeFileSync(join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
      writeFileSync(join(dir, 'assets', 'app.js'), 'console.log(1)');
      // The gateway's own routes plus the console from this folder (as createGateway does with dist/console).
      const app = Fastify();
      apps.push(app);
      const { buildGateway } = await import('../../src/gateway/server.js');
      buildGateway(b, { auth: 'required' }, app);
      await registerConsole(app, dir);
      const base = await app.listen({ port: 0, host: '127.0.0.1' });

      const page = await fetch(`${base}/console/runs/run_x`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(await page.text()).toContain('id="root"');
      const asset = await fetch(`${base}/console/assets/app.js`);
      expect(asset.status).toBe(200);
      expect(await asset.text()).toBe('console.log(1)');
      const browser = await fetch(`${base}/`, { headers: { accept: 'text/html,application/xhtml+xml' }, redirect: 'manual' });
      expect(browser.status).toBe(302);
      expect(browser.headers.get('location')).toBe('/console/');
      const client = await fetch(`${base}/`, { headers: { accept: 'application/json' } });
      expect(((await client.json()) as { name: string }).name).toBe('baton');
      // The API itself still needs a key.
      expect((await fetch(`${base}/runs`)).status).toBe(401);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers a clear 503 problem when the console was never built', async () => {
    const b = await suite.baton();
    const app = Fastify();
    apps.push(app);
    await registerConsole(app, join(suite.dir, 'no-console-here'));
    const res = await app.inject({ method: 'GET', url: '/console/runs' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const body = res.json() as { code: string; detail: string };
    expect(body.code).toBe('BATON_CONSOLE_NOT_BUILT');
    expect(body.detail).toContain('npm run build');
    expect(b).toBeDefined();
  });
});
