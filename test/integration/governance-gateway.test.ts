/**
 * Versions, stages and governance over real HTTP, on both stores: the gateway on 127.0.0.1 with
 * an admin key and a viewer key (promotion and status changes need admin; reading does not),
 * the model vendor a fake one on its own socket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { createGateway } from '../../src/gateway/server.js';
import { FakeVendor } from '../../src/testing/fake-vendor.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

let vendor: FakeVendor;
beforeAll(async () => {
  vendor = await new FakeVendor().start();
  vendor.model('*', { reply: (r) => `answer from ${r.model}` });
});
afterAll(async () => {
  await vendor.close();
});

const doc = (n: number) => `
name: greet
tags: [support]
steps:
  - { id: ask, kind: model, service: chat, prompt: "say ${n}" }
`;

describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-gov-gw-');

  async function gateway(b: Baton) {
    const keys = {
      admin: (await createApiKey(b.store, { name: 'ada', role: 'admin', namespaces: ['*'] })).key,
      viewer: (await createApiKey(b.store, { name: 'vic', role: 'viewer', namespaces: ['*'] })).key,
      operator: (await createApiKey(b.store, { name: 'oli', role: 'operator', namespaces: ['default'] })).key,
    };
    const app = await createGateway(b);
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const call = async (method: string, path: string, key: keyof typeof keys, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${keys[key]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    return { app, call };
  }

  it('versions, promote (admin only, by = key name), name@production starts, diff and history', async () => {
    const b = await suite.baton({ services: { chat: { provider: 'openai', model: 'model-a', version: '1', endpoint: `${vendor.url}/v1` } } });
    const v1 = await b.register(doc(1));
    const v2 = await b.register(doc(2));
    const { app, call } = await gateway(b);
    try {
      // A viewer may read but not promote; nothing is recorded by a refused request.
      const refused = await call('POST', '/workflows/greet/promote', 'viewer', { version: v1.versionId, stage: 'production' });
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe('BATON_FORBIDDEN');
      expect((await call('GET', '/workflows/greet/history', 'viewer', undefined)).body).toEqual([]);
      expect((await call('POST', '/workflows/greet/promote', 'admin', { version: v1.versionId, stage: 'prod' })).status).toBe(400);
      expect((await call('POST', '/workflows/greet/promote', 'admin', { version: 'other@1234567890abcdef', stage: 'production' })).body.code).toBe('BATON_WORKFLOW_NOT_FOUND');
      const noStage = await call('POST', '/runs', 'operator', { workflow: 'greet@production' });
      expect(noStage.status).toBe(404);
      expect(noStage.body.code).toBe('BATON_STAGE_EMPTY');

      const p = await call('POST', '/workflows/greet/promote', 'admin', { version: v1.versionId, stage: 'production', reason: 'launch', by: 'mallory' });
      expect(p.status).toBe(201);
      expect(p.body).toMatchObject({ name: 'greet', stage: 'production', version_id: v1.versionId, by: 'ada', reason: 'launch' });

      const started = await call('POST', '/runs', 'operator', { workflow: 'greet@production', wait: 10 });
      expect(started.status).toBe(200);
      expect(started.body.output).toBe('answer from model-a');
      expect(started.body.version_id).toBe(v1.versionId);

      const versions = await call('GET', '/workflows/greet/versions', 'viewer');
      expect(versions.status).toBe(200);
      expect(versions.body.map((v: { version_id: string; stages: string[] }) => [v.version_id, v.stages])).toEqual([[v1.versionId, ['production']], [v2.versionId, ['draft']]]);
      expect((await call('GET', '/workflows/nope/versions', 'viewer')).status).toBe(404);

      const d = await call('GET', `/workflows/diff?a=greet@production&b=${encodeURIComponent(v2.versionId)}`, 'viewer');
      expect(d.status).toBe(200);
      expect(d.body).toMatchObject({ a: v1.versionId, b: v2.versionId, same: false, services: [] });
      expect(d.body.steps[0]).toMatchObject({ id: 'ask', change: 'changed', texts: [{ field: 'prompt', lines: ['- say 1', '+ say 2'] }] });
      expect((await call('GET', '/workflows/diff?a=greet@production', 'viewer')).status).toBe(400);

      const h = await call('GET', '/workflows/greet/history', 'viewer');
      expect(h.body.map((r: { version_id: string; by: string }) => [r.version_id, r.by])).toEqual([[v1.versionId, 'ada']]);
    } finally {
      await app.close();
    }
  });

  it('service status (admin only, with who and why), blocked refusals, history and lineage', async () => {
    const b = await suite.baton({ services: { chat: { provider: 'openai', model: 'model-a', version: '2024-07', endpoint: `${vendor.url}/v1` } } });
    const v = await b.register(doc(1));
    const done = await b.run(v);
    const { app, call } = await gateway(b);
    try {
      const denied = await call('POST', '/services/chat/status', 'viewer', { status: 'blocked', reason: 'recall' });
      expect(denied.status).toBe(403);
      expect((await call('GET', '/services/chat/history', 'viewer')).body).toEqual([]);
      const noReason = await call('POST', '/services/chat/status', 'admin', { status: 'blocked' });
      expect(noReason.status).toBe(400);
      expect(noReason.body.code).toBe("BATON_USAGE");
      expect((await call('POST', '/services/nope/status', 'admin', { status: 'blocked', reason: 'x' })).body.code).toBe('BATON_SERVICE_UNKNOWN');

      const set = await call('POST', '/services/chat/status', 'admin', { status: 'blocked', reason: 'vendor recall' });
      expect(set.status).toBe(201);
      expect(set.body).toMatchObject({ service: 'chat', status: 'blocked', reason: 'vendor recall', by: 'ada' });

      const list = await call('GET', '/services', 'viewer');
      expect(list.body).toEqual([expect.objectContaining({ name: 'chat', status: 'blocked', status_reason: 'vendor recall', status_by: 'ada', status_source: 'recorded', version: '2024-07' })]);
      expect(JSON.stringify(list.body)).not.toMatch(/credential/i);

      const refused = await call('POST', '/runs', 'operator', { workflow: 'greet' });
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe('BATON_SERVICE_BLOCKED');
      expect(refused.body.detail).toMatch(/chat.*vendor recall.*ada/);
      const reg = await call('POST', '/workflows', 'admin', { name: 'again', steps: [{ id: 'a', kind: 'model', service: 'chat', prompt: 'x' }] });
      expect(reg.status).toBe(400);
      expect(reg.body.code).toBe('BATON_DOC_INVALID');

      const hist = await call('GET', '/services/chat/history', 'viewer');
      expect(hist.body).toEqual([expect.objectContaining({ status: 'blocked', reason: 'vendor recall', by: 'ada' })]);

      const lin = await call('GET', '/lineage?service=chat&version=2024-07', 'viewer');
      expect(lin.status).toBe(200);
      expect(lin.body).toEqual([expect.objectContaining({ run_id: done.id, workflow: 'greet', version_id: v.versionId, status: 'completed', calls: 1, service_versions: ['2024-07'], models: ['model-a'] })]);
      expect((await call('GET', '/lineage?service=chat&version=2099', 'viewer')).body).toEqual([]);
      expect((await call('GET', '/lineage?service=chat&since=not-a-time', 'viewer')).status).toBe(400);
      expect((await call('GET', '/lineage', 'viewer')).status).toBe(400);
    } finally {
      await app.close();
    }
  });
});
