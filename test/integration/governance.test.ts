/**
 * Workflow versions and model governance on both stores: runs pinned to their AI configuration
 * across a restart with a changed config (the fake vendor, on a real socket, says which model
 * it was asked for), stages and rollback, service status history and blocked refusals, lineage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Baton, type BatonOptions } from '../../src/index.js';
import { BatonError } from '../../src/errors.js';
import { FakeVendor } from '../../src/testing/fake-vendor.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let vendor: FakeVendor;
beforeAll(async () => {
  vendor = await new FakeVendor().start();
});
afterAll(async () => {
  await vendor.close();
});

const WAITS_THEN_ASKS = `
name: pinned
steps:
  - { id: hold, kind: wait, event: go, key: "input.k" }
  - { id: ask, kind: model, service: chat, prompt: "hello {{ input.k }}", needs: [hold] }
`;

async function waitingOn(b: Baton, runId: string, step: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const st = (await b.getSteps(runId)).find((s) => s.key === step);
    if (st?.status === 'waiting') return;
    await sleep(10);
  }
  throw new Error(`${runId}/${step} never waited`);
}

async function rejects(p: Promise<unknown>): Promise<BatonError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BatonError);
    return e as BatonError;
  }
  throw new Error('expected a BatonError');
}

describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-gov-');
  const baton = (opts: BatonOptions = {}): Promise<Baton> => suite.baton(opts);
  const chat = (model: string, version: string, extra: Record<string, unknown> = {}) => ({
    provider: 'openai', model, version, endpoint: `${vendor.url}/v1`, credential: 'env:BATON_TEST_GOV_KEY', retry: { max_attempts: 1 }, ...extra,
  });
  process.env.BATON_TEST_GOV_KEY = 'sk-test-secret-value';

  it('a running run keeps the model it was pinned to after a restart with a changed config; new runs take the new one; a pinned service gone from the config still answers from its snapshot', async () => {
    vendor.reset();
    vendor.model('*', { reply: (r) => `answer from ${r.model}` });
    const b1 = await baton({ services: { chat: chat('model-a', '1') } });
    const v = await b1.register(WAITS_THEN_ASKS);
    const r1 = await b1.start(v, { k: 'one' });
    const r2 = await b1.start(v, { k: 'two' });
    await waitingOn(b1, r1, 'hold');
    await waitingOn(b1, r2, 'hold');
    const run1 = await b1.getRun(r1);
    expect(run1.configHash).toMatch(/^[0-9a-f]{64}$/);
    // The snapshot names the credential's variable, never its value.
    const snap = (await b1.store.getServiceConfig(run1.configHash!))!;
    expect(JSON.parse(snap).services.chat).toMatchObject({ provider: 'openai', model: 'model-a', version: '1', credentialEnv: 'BATON_TEST_GOV_KEY' });
    expect(snap).not.toContain('sk-test-secret-value');
    await b1.close();

    // "A new process" with the service now pointing at another model.
    const b2 = await baton({ services: { chat: chat('model-b', '2') } });
    expect((await b2.sendEvent('go', 'one', {})).delivered).toBe(1);
    const done1 = await b2.wait(r1, { timeoutMs: 20_000 });
    expect(done1.status).toBe('completed');
    expect(done1.output).toBe('answer from model-a');
    expect(vendor.requests('model-a')).toHaveLength(1);
    expect(vendor.requests('model-b')).toHaveLength(0);
    // The bearer token came from the environment at call time.
    expect(vendor.lastRequest('model-a')?.headers?.authorization).toBe('Bearer sk-test-secret-value');
    const calls = await b2.store.getModelCalls(r1);
    expect(calls.map((c) => `${c.service}:${c.model}:${c.version}`)).toEqual(['chat:model-a:1']);

    // A new run takes the configuration in force now.
    const fresh = await b2.run(await b2.register(`
name: fresh
steps:
  - { id: ask, kind: model, service: chat, prompt: "hi" }
`));
    expect(fresh.output).toBe('answer from model-b');
    expect(fresh.configHash).not.toBe(run1.configHash);
    await b2.close();

    // The service is gone from the config: the pinned run still has everything a call needs.
    const b3 = await baton({ services: { other: chat('model-c', '3') } });
    await b3.sendEvent('go', 'two', {});
    const done2 = await b3.wait(r2, { timeoutMs: 20_000 });
    expect(done2.status).toBe('completed');
    expect(done2.output).toBe('answer from model-a');
  });

  it('promotes versions through stages with who and why, starts name@production, and rolls back by promoting an older version', async () => {
    const b = await baton();
    const v1 = await b.register('name: staged\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n');
    const v2 = await b.register('name: staged\nsteps:\n  - { id: a, kind: transform, expression: "2" }\n');
    expect((await rejects(b.start('staged@production'))).code).toBe('BATON_STAGE_EMPTY');
    expect((await rejects(b.start('nothing@production'))).code).toBe('BATON_WORKFLOW_NOT_FOUND');
    expect((await rejects(b.promote(v1.versionId, 'prod'))).code).toBe('BATON_USAGE');

    await b.promote(v1.versionId, 'staging', { by: 'alice' });
    await b.promote('staged@staging', 'production', { by: 'alice', reason: 'passed staging' });
    expect((await b.run('staged@production')).output).toBe(1);
    // A plain name keeps meaning the latest version.
    expect((await b.run('staged')).output).toBe(2);
    expect((await b.run('staged@draft')).output).toBe(2);

    await b.promote(v2.versionId, 'production', { by: 'bob' });
    expect((await b.run('staged@production')).output).toBe(2);
    // Rollback: promote the older version again.
    await b.promote(v1.versionId, 'production', { by: 'carol', reason: 'rollback: v2 misroutes' });
    const r = await b.run('staged@production');
    expect(r.output).toBe(1);
    expect(r.versionId).toBe(v1.versionId);

    const history = await b.stageHistory('staged');
    expect(history.map((h) => `${h.stage}:${h.versionId === v1.versionId ? 'v1' : 'v2'}:${h.by}:${h.reason ?? ''}`)).toEqual([
      'staging:v1:alice:', 'production:v1:alice:passed staging', 'production:v2:bob:', 'production:v1:carol:rollback: v2 misroutes',
    ]);
    expect(history.every((h) => h.at > 0)).toBe(true);
    const versions = await b.versions('staged');
    expect(versions.map((x) => x.stages)).toEqual([['staging', 'production'], ['draft']]);

    const d = await b.diff(v1.versionId, 'staged@draft');
    expect(d.steps).toEqual([{ id: 'a', change: 'changed', kind: 'transform', fields: [{ field: 'expression', from: '1', to: '2' }] }]);
  });

  it('records service status changes with who and why; a blocked service refuses new runs and registrations, in every process; a running step falls back or fails', async () => {
    vendor.reset();
    vendor.model('*', { reply: (r) => `answer from ${r.model}` });
    const services = { chat: chat('model-a', '1'), spare: chat('model-s', '1') };
    const b = await baton({ services });
    const v = await b.register(WAITS_THEN_ASKS);
    const withFallback = await b.register(WAITS_THEN_ASKS.replace('name: pinned', 'name: spared').replace('service: chat,', 'service: chat, fallback: [spare],'));
    const plain = await b.start(v, { k: 'p' });
    const spared = await b.start(withFallback, { k: 's' });
    await waitingOn(b, plain, 'hold');
    await waitingOn(b, spared, 'hold');

    expect((await rejects(b.setServiceStatus('chat', 'blocked'))).code).toBe('BATON_USAGE'); // a reason is required
    expect((await rejects(b.setServiceStatus('nope', 'blocked', { reason: 'x' }))).code).toBe('BATON_SERVICE_UNKNOWN');
    await b.setServiceStatus('chat', 'deprecated', { reason: 'moving to v2', by: 'ops' });
    await b.setServiceStatus('chat', 'blocked', { reason: 'vendor recall', by: 'dana' });

    // New runs and registrations are refused, naming the service, the reason and who.
    const refused = await rejects(b.start(v, { k: 'new' }));
    expect(refused.code).toBe('BATON_SERVICE_BLOCKED');
    expect(refused.message).toContain('"chat"');
    expect(refused.message).toContain('vendor recall');
    expect(refused.message).toContain('dana');
    const reg = await rejects(b.register(WAITS_THEN_ASKS.replace('name: pinned', 'name: other')));
    expect(reg.code).toBe('BATON_DOC_INVALID');
    expect(reg.message).toMatch(/service "chat" is blocked \(vendor recall; set by dana\)/);

    // Another process on the same store sees it as soon as it opens.
    const other = await baton({ services, worker: false });
    expect((await rejects(other.start(v, { k: 'elsewhere' }))).code).toBe('BATON_SERVICE_BLOCKED');
    expect((await other.serviceList()).find((s) => s.name === 'chat')).toMatchObject({ status: 'blocked', statusReason: 'vendor recall', statusBy: 'dana', statusSource: 'recorded' });

    // Running runs: the step without a fallback fails; the one with a fallback moves on.
    await b.sendEvent('go', 'p', {});
    await b.sendEvent('go', 's', {});
    const failed = await b.wait(plain, { timeoutMs: 20_000 });
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('BATON_SERVICE_BLOCKED');
    const ok = await b.wait(spared, { timeoutMs: 20_000 });
    expect(ok.output).toBe('answer from model-s');
    const spentCalls = await b.store.getModelCalls(spared);
    expect(spentCalls.map((c) => `${c.service}:${c.outcome}:${c.error?.code ?? ''}`)).toEqual(['chat:skipped:BATON_SERVICE_BLOCKED', 'spare:ok:']);
    // Lineage counts calls that reached the service only.
    expect((await b.lineage({ service: 'chat' })).map((l) => l.runId)).not.toContain(spared);
    expect(vendor.requests('model-a')).toHaveLength(0);

    const history = await b.serviceHistory('chat');
    expect(history.map((h) => `${h.status}:${h.by}:${h.reason}`)).toEqual(['deprecated:ops:moving to v2', 'blocked:dana:vendor recall']);
    await b.setServiceStatus('chat', 'approved', { by: 'dana' });
    expect((await b.run(v.versionId.replace(/@.*/, ''), { k: 'x' }, { timeoutMs: 200 })).status).not.toBe('failed');
  });

  it('lineage: which runs called service X (version Y)', async () => {
    vendor.reset();
    vendor.model('*', { reply: (r) => `answer from ${r.model}` });
    const doc = 'name: lin\nsteps:\n  - { id: ask, kind: model, service: chat, prompt: "hi" }\n';
    const b1 = await baton({ services: { chat: chat('model-a', '2024-01') } });
    const v = await b1.register(doc);
    const a = await b1.run(v);
    const bRun = await b1.run(v);
    await b1.close();
    const b2 = await baton({ services: { chat: chat('model-a', '2024-06') } });
    const c = await b2.run(await b2.register(doc));
    const old = await b2.lineage({ service: 'chat', version: '2024-01' });
    expect(old.map((l) => l.runId).sort()).toEqual([a.id, bRun.id].sort());
    expect(old[0]).toMatchObject({ workflow: 'lin', versionId: v.versionId, status: 'completed', calls: 1, versions: ['2024-01'], models: ['model-a'] });
    expect((await b2.lineage({ service: 'chat' })).map((l) => l.runId)).toContain(c.id);
    expect(await b2.lineage({ service: 'chat', since: Date.now() + 60_000 })).toEqual([]);
    expect(await b2.lineage({ service: 'nobody' })).toEqual([]);
  });
  it('diff shows the service differences between the configurations two versions ran under', async () => {
    vendor.reset();
    vendor.model('*', { reply: (r) => `answer from ${r.model}` });
    const b1 = await baton({ services: { chat: chat('model-a', '1') } });
    const v1 = await b1.register('name: d\nsteps:\n  - { id: ask, kind: model, service: chat, prompt: "one" }\n');
    await b1.run(v1);
    await b1.close();
    const b2 = await baton({ services: { chat: chat('model-b', '2', { timeout: '5s' }) } });
    const v2 = await b2.register('name: d\nsteps:\n  - { id: ask, kind: model, service: chat, prompt: "two" }\n');
    await b2.run(v2);
    const d = await b2.diff(v1.versionId, v2.versionId);
    expect(d.steps).toEqual([{ id: 'ask', change: 'changed', kind: 'model', fields: [{ field: 'prompt', from: 'one', to: 'two' }], texts: [{ field: 'prompt', lines: ['- one', '+ two'] }] }]);
    expect(d.services).toEqual([{ service: 'chat', change: 'changed', fields: [{ field: 'model', from: 'model-a', to: 'model-b' }, { field: 'timeoutMs', from: 60000, to: 5000 }, { field: 'version', from: '1', to: '2' }] }]);
  });

  it('policies from the config are checked at registration with line and column', async () => {
    const b = await baton({
      services: { us: chat('m', '1', { data_residency: 'us' }), eu: chat('m', '1', { data_residency: 'eu' }) },
      policies: [{ id: 'pii-eu-only', when: { workflow_tags: ['pii'] }, require: { service: { data_residency: 'eu' } }, message: 'PII stays in the EU' }],
    });
    const e = await rejects(b.register('name: p\ntags: [pii]\nsteps:\n  - { id: a, kind: model, service: us, fallback: [eu], prompt: hi }\n', 'p.yaml'));
    expect(e.code).toBe('BATON_DOC_INVALID');
    expect(e.message).toContain('p.yaml:4:36: policy "pii-eu-only" (PII stays in the EU): step "a" may call service "us", whose data_residency is "us"');
    expect((await b.register('name: p\ntags: [pii]\nsteps:\n  - { id: a, kind: model, service: eu, prompt: hi }\n')).versionId).toMatch(/^p@/);
    await expect(Baton.open({ dir: suite.dir, policies: [{ id: 'x', require: {} }] })).rejects.toThrow(/policies\.0\.require/);
  });
});
