/**
 * Webhooks and CloudEvents through the real gateway (a listening socket, fetch), on every store.
 */
import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { buildGateway } from '../../src/gateway/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { canonicalJson, contentHash, versionIdOf } from '../../src/spec/canonical.js';
import { derivedRunId } from '../../src/engine/triggers.js';
import { fireRunId } from '../../src/engine/scheduler.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

const SECRET = 'wh-secret-3f9a1c77e2';
const sign = (body: string, key = SECRET, alg = 'sha256') => createHmac(alg, key).update(body).digest('hex');

describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-triggers-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
    delete process.env.TEST_HOOK_SECRET;
    delete process.env.TEST_UNSET_SECRET;
  });

  /** A gateway on a fresh engine; its log lines (JSON, parsed) are in `log`. */
  async function serve(auth: 'off' | 'required' = 'off'): Promise<{ b: Baton; url: string; log: Array<Record<string, unknown>> }> {
    const b = await suite.baton();
    const log: Array<Record<string, unknown>> = [];
    const stream = new Writable({ write(chunk, _enc, cb) { log.push(...String(chunk).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)); cb(); } });
    app = buildGateway(b, { auth, logger: createLogger({ level: 'info', stream }) });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { b, url, log };
  }
  const post = (url: string, body: string, headers: Record<string, string>) => fetch(url, { method: 'POST', body, headers });

  const hooked = `
name: hooked
triggers:
  - webhook: { path: orders/new, secret: env:TEST_HOOK_SECRET }
    input: "{ 'order': body.id, 'source': query.src }"
    run_id: "headers.\\"x-delivery\\""
steps:
  - { id: echo, kind: transform, expression: "input" }
`;

  describe('webhooks', () => {
    it('a valid signature starts the run; a redelivery answers the same run', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url } = await serve();
      await b.register(hooked);
      const body = JSON.stringify({ id: 'A-17' });
      const res = await post(`${url}/hooks/orders/new?src=shop`, body, { 'content-type': 'application/json', 'x-baton-signature': `sha256=${sign(body)}`, 'x-delivery': 'd-1' });
      expect(res.status).toBe(202);
      const { run_id } = (await res.json()) as { run_id: string };
      expect((await b.wait(run_id, { timeoutMs: 20_000 })).output).toEqual({ order: 'A-17', source: 'shop' });
      // Bare hex is accepted too; the same delivery id gives the same run.
      const again = await post(`${url}/hooks/orders/new?src=shop`, body, { 'content-type': 'application/json', 'x-baton-signature': sign(body), 'x-delivery': 'd-1' });
      expect(again.status).toBe(202);
      expect(((await again.json()) as { run_id: string }).run_id).toBe(run_id);
      expect(await b.listRuns({ workflow: 'hooked' })).toHaveLength(1);
    });

    it('a wrong or missing signature is 401 with a problem, and starts nothing', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url } = await serve();
      await b.register(hooked);
      const body = JSON.stringify({ id: 'A-18' });
      for (const headers of <Array<Record<string, string>>>[
        { 'x-baton-signature': `sha256=${sign(body, 'not-the-secret')}` },
        { 'x-baton-signature': sign(`${body} `) },
        { 'x-baton-signature': 'sha256=zz' },
        {},
      ]) {
        const res = await post(`${url}/hooks/orders/new`, body, { 'content-type': 'application/json', 'x-delivery': 'd-2', ...headers });
        expect(res.status).toBe(401);
        expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
        const text = await res.text();
        expect(JSON.parse(text)).toMatchObject({ status: 401, code: 'BATON_WEBHOOK_REFUSED' });
        expect(text).not.toContain(SECRET);
        expect(text).not.toContain(sign(body));
      }
      expect(await b.listRuns({ workflow: 'hooked' })).toHaveLength(0);
    });

    it('an unset secret variable refuses every delivery as a bad signature would; the log names the variable, never a value', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url, log } = await serve();
      const registered = await b.register(`
name: unset
triggers:
  - webhook: { path: unset, secret: env:TEST_UNSET_SECRET, header: X-Hub-Signature, algorithm: sha1 }
steps:
  - { id: x, kind: transform, expression: "input" }
`);
      // Registering says so at once, naming the variable and where the document names it.
      const unsetWarning = { path: 'triggers[0].webhook.secret', severity: 'warning', message: expect.stringMatching(/^environment variable TEST_UNSET_SECRET is not set in this process: the webhook \/hooks\/unset refuses every delivery/) };
      expect(registered.warnings).toEqual([expect.objectContaining(unsetWarning)]);
      const overHttp = await fetch(`${url}/workflows`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: 'name: unset_too\ntriggers:\n  - webhook: { path: unset/too, secret: env:TEST_UNSET_SECRET }\nsteps:\n  - { id: x, kind: transform, expression: "input" }\n' });
      expect(overHttp.status).toBe(201);
      expect(((await overHttp.json()) as { warnings: unknown[] }).warnings).toEqual([expect.objectContaining({ ...unsetWarning, message: expect.stringContaining('/hooks/unset/too'), line: 3 })]);
      const res = await post(`${url}/hooks/unset`, '{}', { 'content-type': 'application/json', 'x-hub-signature': `sha1=${sign('{}', SECRET, 'sha1')}` });
      expect(res.status).toBe(401);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ code: 'BATON_WEBHOOK_REFUSED' });
      expect(text).not.toContain('TEST_UNSET_SECRET');
      expect(text).not.toContain(SECRET);
      expect(await b.listRuns({ workflow: 'unset' })).toHaveLength(0);
      // The operator's problem, in the operator's log: an error naming the variable and the workflow.
      const line = await until(async () => log.find((l) => l.code === 'BATON_WEBHOOK_SECRET_MISSING'), 'the log line of the unset variable');
      expect(line).toMatchObject({ level: 'error', path: 'unset', workflow: 'unset', env: 'TEST_UNSET_SECRET' });
      expect(String(line.msg)).toContain('environment variable TEST_UNSET_SECRET, which is not set');
      expect(JSON.stringify(log)).not.toContain(SECRET);
      // Once set, the trigger's own header and algorithm apply; the default body is the input.
      process.env.TEST_UNSET_SECRET = 'other-secret';
      expect((await b.register({ name: 'unset_set', triggers: [{ webhook: { path: 'unset/set', secret: 'env:TEST_UNSET_SECRET' } }], steps: [{ id: 'x', kind: 'transform', expression: 'input' }] })).warnings).toEqual([]);
      const ok = await post(`${url}/hooks/unset`, '{"a":1}', { 'content-type': 'application/json', 'x-hub-signature': `sha1=${sign('{"a":1}', 'other-secret', 'sha1')}` });
      expect(ok.status).toBe(202);
      expect((await b.wait(((await ok.json()) as { run_id: string }).run_id, { timeoutMs: 20_000 })).output).toEqual({ a: 1 });
    });

    it('without a logger, an unset secret variable is written to stderr once, however many deliveries come', async () => {
      const b = await suite.baton();
      app = buildGateway(b, { auth: 'off' });
      const url = await app.listen({ host: '127.0.0.1', port: 0 });
      await b.register({ name: 'unset_quiet', triggers: [{ webhook: { path: 'quiet', secret: 'env:TEST_UNSET_SECRET' } }], steps: [{ id: 'x', kind: 'transform', expression: 'input' }] });
      const written: string[] = [];
      const write = process.stderr.write.bind(process.stderr);
      process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
        written.push(String(chunk));
        return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof process.stderr.write;
      try {
        for (let i = 0; i < 3; i++) expect((await post(`${url}/hooks/quiet`, '{}', { 'content-type': 'application/json' })).status).toBe(401);
      } finally {
        process.stderr.write = write;
      }
      expect(written.filter((l) => l.includes('TEST_UNSET_SECRET'))).toHaveLength(1);
    });

    it('a caller that cannot sign cannot tell a known path from an unknown one; the log can', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url, log } = await serve();
      await b.register(hooked);
      await b.register(`
name: unset
triggers:
  - webhook: { path: orders/put, secret: env:TEST_UNSET_SECRET }
steps:
  - { id: x, kind: transform, expression: "input" }
`);
      const body = '{"id":"P-1"}';
      /** Status, content type, length and body of a POST, its path (all three the same length) made generic. */
      const probe = async (path: string, headers: Record<string, string>) => {
        const res = await post(`${url}/hooks/${path}`, body, { 'content-type': 'application/json', ...headers });
        return { status: res.status, type: res.headers.get('content-type'), length: res.headers.get('content-length'), body: (await res.text()).replaceAll(path, '<path>') };
      };
      for (const headers of <Array<Record<string, string>>>[{}, { 'x-baton-signature': `sha256=${sign(body, 'guessed')}` }]) {
        const unknown = await probe('orders/old', headers);
        expect(unknown).toMatchObject({ status: 401, type: expect.stringMatching(/^application\/problem\+json/) });
        // A path a workflow listens on, and one whose secret variable is unset: byte for byte the same answer.
        expect(await probe('orders/new', headers)).toEqual(unknown);
        expect(await probe('orders/put', headers)).toEqual(unknown);
        expect(JSON.parse(unknown.body)).toEqual({
          type: 'https://baton.dev/errors/BATON_WEBHOOK_REFUSED', title: 'BATON_WEBHOOK_REFUSED', status: 401, code: 'BATON_WEBHOOK_REFUSED', retryable: false,
          detail: expect.stringMatching(/^No webhook at \/hooks\/<path> accepts this request; nothing was started\. Check the path .* and the signature/), details: { path: '<path>' }, instance: '/hooks/<path>',
        });
        expect(unknown.body).not.toMatch(/hooked|unset|TEST_|SECRET/);
      }
      expect(await b.listRuns()).toHaveLength(0);
      // The log tells the cases apart (and never holds a signature).
      const about = (path: string) => log.filter((l) => l.path === path);
      await until(async () => ['orders/old', 'orders/new', 'orders/put'].every((p) => about(p).length === 2), 'the log lines of the refusals');
      expect(about('orders/old').map((l) => [l.level, l.reason])).toEqual([['info', 'unknown path'], ['info', 'unknown path']]);
      expect(about('orders/new').map((l) => [l.level, l.workflow, l.reason])).toEqual([
        ['warn', 'hooked', 'header x-baton-signature is missing; nothing was started.'],
        ['warn', 'hooked', 'the signature does not match the body; nothing was started.'],
      ]);
      expect(about('orders/put').map((l) => [l.level, l.env])).toEqual([['error', 'TEST_UNSET_SECRET'], ['error', 'TEST_UNSET_SECRET']]);
      expect(JSON.stringify(log)).not.toContain(sign(body, 'guessed'));
      expect(JSON.stringify(log)).not.toContain(SECRET);
    });

    it('a namespaced workflow listens under its namespace (its bare path is refused) and runs there', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url } = await serve();
      await b.register(hooked, undefined, { namespace: 'team-a' });
      const body = '{"id":"N-1"}';
      const headers = { 'content-type': 'application/json', 'x-baton-signature': sign(body), 'x-delivery': 'n-1' };
      const miss = await post(`${url}/hooks/orders/new`, body, headers);
      expect(miss.status).toBe(401);
      expect(((await miss.json()) as { code: string }).code).toBe('BATON_WEBHOOK_REFUSED');
      const res = await post(`${url}/hooks/team-a/orders/new`, body, headers);
      expect(res.status).toBe(202);
      const run = await b.getRun(((await res.json()) as { run_id: string }).run_id);
      expect(run).toMatchObject({ workflow: 'team-a/hooked', namespace: 'team-a' });
    });

    it('refuses to register a second workflow on a path already held; a new version of the holder may keep it', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url } = await serve();
      await b.register(hooked, undefined, { namespace: 'team-a' });
      const copy = hooked.replace('name: hooked', 'name: hooked_too');
      await expect(b.register(copy, undefined, { namespace: 'team-a' })).rejects.toMatchObject({ code: 'BATON_WEBHOOK_PATH_TAKEN', message: expect.stringContaining('"team-a/orders/new" is already declared by workflow team-a/hooked') });
      // Through the gateway: a 409 problem, and the first workflow's webhook keeps working.
      const reg = await post(`${url}/workflows?namespace=team-a`, copy, { 'content-type': 'application/yaml' });
      expect(reg.status).toBe(409);
      expect(await reg.json()).toMatchObject({ status: 409, code: 'BATON_WEBHOOK_PATH_TAKEN' });
      const body = '{"id":"N-2"}';
      const res = await post(`${url}/hooks/team-a/orders/new`, body, { 'content-type': 'application/json', 'x-baton-signature': sign(body), 'x-delivery': 'n-2' });
      expect(res.status).toBe(202);
      // Another namespace, or the same workflow's next version, is no clash.
      await b.register(copy, undefined, { namespace: 'team-b' });
      await b.register(`${hooked}  - { id: more, kind: transform, expression: "1" }\n`, undefined, { namespace: 'team-a' });
    });

    it('two workflows registering one path at the same instant, on two engines: exactly one gets it', async () => {
      const [one, two] = [await suite.baton(), await suite.baton()];
      const doc = (name: string, path: string) => `
name: ${name}
triggers:
  - webhook: { path: ${path}, secret: env:TEST_HOOK_SECRET }
steps:
  - { id: x, kind: transform, expression: "input" }
`;
      for (let i = 0; i < 8; i++) {
        const path = `race/${i}`;
        const results = await Promise.allSettled([one.register(doc(`first_${i}`, path)), two.register(doc(`second_${i}`, path))]);
        expect(results.map((r) => r.status).sort(), `round ${i}`).toEqual(['fulfilled', 'rejected']);
        const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!.reason as { code: string; message: string };
        expect(refused.code).toBe('BATON_WEBHOOK_PATH_TAKEN');
        expect(refused.message).toMatch(new RegExp(`^Webhook path "${path}" is already declared by workflow (first|second)_${i}; (first|second)_${i} was not registered`));
        // The refused workflow was not stored: the path has one holder.
        expect((await one.store.listVersions()).filter((v) => v.name.endsWith(`_${i}`))).toHaveLength(1);
      }
    });

    it('a path two workflows hold anyway answers an unsigned caller 401, naming nobody', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url } = await serve();
      await b.register(hooked);
      // As an older Baton (whose check two registrations at one instant could both pass) could have stored it.
      const doc = { name: 'hooked_too', triggers: [{ webhook: { path: 'orders/new', secret: 'env:TEST_HOOK_SECRET' } }], steps: [{ id: 'x', kind: 'transform', expression: 'input' }] };
      const canonical = canonicalJson(doc);
      await b.store.putVersion({ versionId: versionIdOf('hooked_too', contentHash(canonical)), name: 'hooked_too', hash: contentHash(canonical), document: canonical });
      const body = '{"id":"C-1"}';
      const unsigned = await post(`${url}/hooks/orders/new`, body, { 'content-type': 'application/json' });
      expect(unsigned.status).toBe(401);
      expect(await unsigned.text()).not.toContain('hooked');
      const signed = await post(`${url}/hooks/orders/new`, body, { 'content-type': 'application/json', 'x-baton-signature': sign(body), 'x-delivery': 'c-1' });
      expect(signed.status).toBe(409);
      expect(await signed.json()).toMatchObject({ code: 'BATON_WEBHOOK_CONFLICT' });
      expect(await b.listRuns()).toHaveLength(0);
    });
    it('a stored version this Baton cannot compile silences only its own triggers, reported once', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url } = await serve();
      const errors: string[] = [];
      (b as unknown as { onInternalError: (e: unknown, where: string) => void }).onInternalError = (_e, where) => errors.push(where);
      await b.register(hooked);
      // Written by a newer Baton (a step kind this one lacks), straight into the store.
      await b.store.putVersion({ versionId: 'newer@1', name: 'newer', hash: '1', document: JSON.stringify({ name: 'newer', triggers: [{ webhook: { path: 'newer', secret: 'env:TEST_HOOK_SECRET' } }], steps: [{ id: 'a', kind: 'from_a_newer_baton' }] }) });
      const body = '{"id":"A-2"}';
      const signed = await post(`${url}/hooks/orders/new`, body, { 'content-type': 'application/json', 'x-baton-signature': `sha256=${sign(body)}`, 'x-delivery': 'd-2' });
      expect(signed.status, await signed.clone().text()).toBe(202);
      // An unsigned caller learns nothing of the stored document: the usual refusal.
      const probe = await post(`${url}/hooks/elsewhere`, body, { 'content-type': 'application/json' });
      expect(probe.status).toBe(401);
      expect(((await probe.json()) as { code: string }).code).toBe('BATON_WEBHOOK_REFUSED');
      // Registering another webhook still works; the CloudEvents route still answers.
      await b.register({ name: 'later', triggers: [{ webhook: { path: 'later', secret: 'env:TEST_HOOK_SECRET' } }], steps: [{ id: 'x', kind: 'transform', expression: 'input' }] });
      const ce = await post(`${url}/cloudevents`, JSON.stringify({ specversion: '1.0', id: 'e-1', source: '/t', type: 'com.example.none' }), { 'content-type': 'application/cloudevents+json' });
      expect(ce.status).toBe(202);
      expect(errors).toEqual(['version newer@1 does not compile here: its triggers are not listened to']);
    });

    it('with API keys required, a webhook is authenticated by its signature alone; /cloudevents needs a key', async () => {
      process.env.TEST_HOOK_SECRET = SECRET;
      const { b, url } = await serve('required');
      await b.register(hooked);
      const body = '{"id":"K-1"}';
      const res = await post(`${url}/hooks/orders/new`, body, { 'content-type': 'application/json', 'x-baton-signature': sign(body), 'x-delivery': 'k-1' });
      expect(res.status).toBe(202);
      const ce = await post(`${url}/cloudevents`, '{}', { 'content-type': 'application/cloudevents+json' });
      expect(ce.status).toBe(401);
    });
  });

  describe('CloudEvents', () => {
    const listeners = async (b: Baton) => {
      await b.register(`
name: on_created
triggers:
  - cloudevent: { type: com.example.order.created }
steps:
  - { id: x, kind: transform, expression: "input" }
`);
      await b.register(`
name: on_created_by_shop
triggers:
  - cloudevent: { type: com.example.order.created, source: /shop }
    input: "{ 'id': event.id, 'order': data.order }"
steps:
  - { id: x, kind: transform, expression: "input" }
`);
      await b.register(`
name: on_deleted
triggers:
  - cloudevent: { type: com.example.order.deleted }
steps:
  - { id: x, kind: transform, expression: "input" }
`);
    };
    const ce = (id: string, type: string, source: string, data: unknown, extra: Record<string, unknown> = {}) => ({ specversion: '1.0', id, type, source, datacontenttype: 'application/json', data, ...extra });
    const workflowsOf = (runs: Array<{ workflow: string }>) => runs.map((r) => r.workflow).sort();

    it('structured mode starts the workflows whose type (and source) match, once per event id', async () => {
      const { b, url } = await serve();
      await listeners(b);
      const body = JSON.stringify(ce('e-1', 'com.example.order.created', '/shop', { order: 'S-1' }));
      const res = await post(`${url}/cloudevents`, body, { 'content-type': 'application/cloudevents+json' });
      expect(res.status).toBe(202);
      const out = (await res.json()) as { events: number; runs: Array<{ run_id: string; workflow: string }> };
      expect(out.events).toBe(1);
      expect(workflowsOf(out.runs)).toEqual(['on_created', 'on_created_by_shop']);
      const shop = out.runs.find((r) => r.workflow === 'on_created_by_shop')!;
      expect((await b.wait(shop.run_id, { timeoutMs: 20_000 })).output).toEqual({ id: 'e-1', order: 'S-1' });
      // Another source: only the source-less trigger matches.
      const other = await post(`${url}/cloudevents`, JSON.stringify(ce('e-1', 'com.example.order.created', '/elsewhere', {})), { 'content-type': 'application/cloudevents+json' });
      expect(workflowsOf(((await other.json()) as { runs: Array<{ workflow: string }> }).runs)).toEqual(['on_created']);
      // The same event again: the same runs, nothing new.
      const again = (await (await post(`${url}/cloudevents`, body, { 'content-type': 'application/cloudevents+json' })).json()) as typeof out;
      expect(again.runs.map((r) => r.run_id).sort()).toEqual(out.runs.map((r) => r.run_id).sort());
      expect(await b.listRuns({ workflow: 'on_created' })).toHaveLength(2);
      expect(await b.listRuns({ workflow: 'on_deleted' })).toHaveLength(0);
    });

    it('binary mode starts runs and, with a subject, wakes the wait keyed by it', async () => {
      const { b, url } = await serve();
      await listeners(b);
      const w = await b.start(await b.register(`
name: wait_paid
steps:
  - { id: paid, kind: wait, event: com.example.order.deleted, key: "input.order" }
`), { order: 'B-9' });
      for (let i = 0; i < 500 && (await b.getRun(w)).status !== 'waiting'; i++) await new Promise((r) => setTimeout(r, 20));
      const res = await post(`${url}/cloudevents`, JSON.stringify({ reason: 'gone' }), {
        'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'b-1', 'ce-type': 'com.example.order.deleted', 'ce-source': '/shop', 'ce-subject': 'B-9',
      });
      expect(res.status).toBe(202);
      const out = (await res.json()) as { runs: Array<{ run_id: string; workflow: string }>; delivered: number };
      expect(workflowsOf(out.runs)).toEqual(['on_deleted']);
      expect(out.delivered).toBe(1);
      expect((await b.wait(out.runs[0].run_id, { timeoutMs: 20_000 })).output).toEqual({ reason: 'gone' });
      expect((await b.wait(w, { timeoutMs: 20_000 })).output).toEqual({ reason: 'gone' });
    });

    it('batch mode starts a run per matching event', async () => {
      const { b, url } = await serve();
      await listeners(b);
      const batch = [ce('x-1', 'com.example.order.created', '/pos', { n: 1 }), ce('x-2', 'com.example.order.deleted', '/pos', { n: 2 }), ce('x-3', 'com.example.unrelated', '/pos', {})];
      const res = await post(`${url}/cloudevents`, JSON.stringify(batch), { 'content-type': 'application/cloudevents-batch+json' });
      expect(res.status).toBe(202);
      const out = (await res.json()) as { events: number; runs: Array<{ workflow: string; event_id: string }> };
      expect(out.events).toBe(3);
      expect(out.runs.map((r) => `${r.workflow}:${r.event_id}`).sort()).toEqual(['on_created:x-1', 'on_deleted:x-2']);
    });

    it('each event of a batch counts against the key\'s rate limit; a batch over the whole minute is refused whole', async () => {
      const { b, url } = await serve('required');
      await listeners(b);
      const { key } = await createApiKey(b.store, { name: 'events', role: 'operator', namespaces: ['*'], ratePerMinute: 5 });
      const send = (events: unknown[]) => post(`${url}/cloudevents`, JSON.stringify(events), { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${key}` });
      const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ce(`r-${from + i}`, 'com.example.order.created', '/pos', { n: from + i }));
      // 20 events against 5 a minute can never pass: a clear refusal, not a wait, and nothing started.
      const huge = await send(batch(0, 20));
      expect(huge.status).toBe(413);
      expect(huge.headers.get('retry-after')).toBeNull();
      const refused = (await huge.json()) as { code: string; detail: string; retryable: boolean };
      expect(refused).toMatchObject({ code: 'BATON_RATE_BATCH_TOO_LARGE', retryable: false });
      expect(refused.detail).toContain('batch of 20 CloudEvents counts as 20 requests, more than the 5 a minute key');
      expect(refused.detail).toContain('batches of at most 5 events');
      expect(refused.detail).toContain('--rate');
      expect(await b.listRuns()).toHaveLength(0);
      // It counted as one request, as any refused request does: 4 are left, and a batch of 3 passes.
      const three = await send(batch(100, 3));
      expect(three.status).toBe(202);
      expect(((await three.json()) as { runs: unknown[] }).runs).toHaveLength(3);
      // A batch of 2 with 1 left waits, and starts nothing; so do the next single event and a
      // batch refused before it was read (they count one request each, taken before the body).
      const more = await send(batch(200, 2));
      expect(more.status).toBe(429);
      expect(Number(more.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(((await more.json()) as { detail: string }).detail).toContain('this batch of 2 CloudEvents counts as 2');
      const single = await post(`${url}/cloudevents`, JSON.stringify(ce('r-300', 'com.example.order.created', '/pos', {})), { 'content-type': 'application/cloudevents+json', authorization: `Bearer ${key}` });
      expect(single.status).toBe(429);
      expect((await send([{ id: 'bad' }])).status).toBe(429);
      expect(await b.listRuns()).toHaveLength(3);
    });

    it('a batch refused before its events are counted still counts as one request: a bad query, a body over the limit, too many events', async () => {
      const { b, url } = await serve('required');
      await listeners(b);
      const { key } = await createApiKey(b.store, { name: 'events', role: 'operator', namespaces: ['*'], ratePerMinute: 3 });
      const batch = JSON.stringify([ce('q-1', 'com.example.order.created', '/pos', {})]);
      const send = (query: string, body: string) => post(`${url}/cloudevents${query}`, body, { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${key}` });
      // Refused by the route's schema and by the body limit, before the route reads the batch.
      expect((await send('?namespac=claims', batch)).status).toBe(400);
      expect((await send('', `[${' '.repeat(1024 * 1024)}]`)).status).toBe(413);
      // More events than the key's minute: refused (413) after reading them, and counted.
      const four = JSON.stringify([1, 2, 3, 4].map((i) => ce(`q-${i}`, 'com.example.order.created', '/pos', {})));
      expect(await (await send('', four)).json()).toMatchObject({ code: 'BATON_RATE_BATCH_TOO_LARGE' });
      // Three requests made: the key's minute is used up, and the next batch is refused unread.
      const next = await send('', four);
      expect(next.status).toBe(429);
      expect(await next.json()).toMatchObject({ code: 'BATON_RATE_LIMITED' });
      expect((await send('', batch)).status).toBe(429);
      expect(await b.listRuns()).toHaveLength(0);
    });

    it('a batch that waited as long as its 429 said passes', async () => {
      const { b, url } = await serve('required');
      await listeners(b);
      // 600 a minute: a request every 100 ms.
      const { key } = await createApiKey(b.store, { name: 'events', role: 'operator', namespaces: ['*'], ratePerMinute: 600 });
      const send = (from: number, n: number) => post(`${url}/cloudevents`, JSON.stringify(Array.from({ length: n }, (_, i) => ce(`w-${from + i}`, 'com.example.unrelated', '/pos', {}))), { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${key}` });
      expect((await send(0, 600)).status).toBe(202);
      const statuses: number[] = [];
      for (let i = 0; i < 4 && statuses.at(-1) !== 202; i++) {
        const res = await send(1000, 3);
        statuses.push(res.status);
        if (res.status === 429) {
          const { details } = (await res.json()) as { details: { retryAfterMs: number } };
          await new Promise((r) => setTimeout(r, details.retryAfterMs));
        }
      }
      expect(statuses.at(-1), String(statuses)).toBe(202);
      expect(statuses.length).toBeLessThanOrEqual(3);
    });

    it('an invalid event is 400 with a problem and starts nothing', async () => {
      const { b, url } = await serve();
      await listeners(b);
      const cases: Array<[string, Record<string, string>]> = [
        [JSON.stringify({ specversion: '1.0', type: 'com.example.order.created', source: '/shop' }), { 'content-type': 'application/cloudevents+json' }],
        ['not json', { 'content-type': 'application/cloudevents+json' }],
        [JSON.stringify(ce('v-1', 'com.example.order.created', '/shop', {}, { specversion: '0.3' })), { 'content-type': 'application/cloudevents+json' }],
        [JSON.stringify({ a: 1 }), { 'content-type': 'application/cloudevents-batch+json' }],
        [JSON.stringify([ce('ok', 'com.example.order.created', '/s', {}), { id: 'bad' }]), { 'content-type': 'application/cloudevents-batch+json' }],
        ['{}', { 'content-type': 'application/json', 'ce-id': 'h-1', 'ce-type': 'com.example.order.created' }],
        [JSON.stringify(ce('t-1', 'com.example.order.created', '/shop', {}, { time: 'yesterday' })), { 'content-type': 'application/cloudevents+json' }],
        ['{}', { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 't-2', 'ce-source': '/s', 'ce-type': 'com.example.order.created', 'ce-time': 'yesterday' }],
      ];
      for (const [body, headers] of cases) {
        const res = await post(`${url}/cloudevents`, body, headers);
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ status: 400, code: 'BATON_CLOUDEVENT_INVALID' });
      }
      expect(await b.listRuns()).toHaveLength(0);
    });

    it('a "specversion" key inside the data is not the event\'s own attribute', async () => {
      const { b, url } = await serve();
      await listeners(b);
      const body = JSON.stringify(ce('d-1', 'com.example.order.created', '/shop', { order: 'S-8', payload: { specversion: '2' } }, { time: '2026-01-31T09:00:00.5+01:00' }));
      const res = await post(`${url}/cloudevents`, body, { 'content-type': 'application/cloudevents+json' });
      expect(res.status).toBe(202);
      expect(workflowsOf(((await res.json()) as { runs: Array<{ workflow: string }> }).runs)).toEqual(['on_created', 'on_created_by_shop']);
      // In a batch too, each event is judged by its own attribute.
      const batch = [ce('d-2', 'com.example.order.created', '/pos', { specversion: '0.3' }), ce('d-3', 'com.example.order.created', '/pos', {}, { specversion: '0.3' })];
      const bad = await post(`${url}/cloudevents`, JSON.stringify(batch), { 'content-type': 'application/cloudevents-batch+json' });
      expect(bad.status).toBe(400);
      const { detail } = (await bad.json()) as { detail: string };
      expect(detail).toContain('event [1]: only spec version 1.0 is supported');
      expect(detail).not.toContain('event [0]');
    });

    it('POST /events answers 202 with what the delivery did', async () => {
      const { url } = await serve();
      const res = await post(`${url}/events/paid/o-1`, '{"amount":1}', { 'content-type': 'application/json' });
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ delivered: 0, buffered: true });
      // With an Idempotency-Key, a retried request changes nothing the second time.
      const h = { 'content-type': 'application/json', 'idempotency-key': 'req-1' };
      expect(await (await post(`${url}/events/paid/o-2`, '{}', h)).json()).toEqual({ delivered: 0, buffered: true });
      expect(await (await post(`${url}/events/paid/o-2`, '{}', h)).json()).toEqual({ delivered: 0, buffered: false, duplicate: true });
    });
  });

  describe('events from keys confined to namespaces', () => {
    const waiter = `
name: waiter
steps:
  - { id: paid, kind: wait, event: paid, key: "input.order", lookback: 1m }
`;
    /** A gateway with keys required: a fraud key, a key of fraud and claims, a * key; waiters registered in fraud and claims. */
    async function teams() {
      const { b, url } = await serve('required');
      const key = async (namespaces: string[]) => (await createApiKey(b.store, { name: namespaces.join('+'), role: 'operator', namespaces })).key;
      const keys = { fraud: await key(['fraud']), claims: await key(['claims']), both: await key(['fraud', 'claims']), all: await key(['*']) };
      const waiters = { fraud: await b.register(waiter, undefined, { namespace: 'fraud' }), claims: await b.register(waiter, undefined, { namespace: 'claims' }) };
      /** A waiter run of that namespace, parked on its wait. */
      const parked = async (ns: 'fraud' | 'claims', order: string) => {
        const id = await b.start(waiters[ns], { order });
        await until(async () => (await b.getRun(id)).status === 'waiting', `${id} waiting`);
        return id;
      };
      const send = (k: string, path: string, body = '{}', headers: Record<string, string> = {}) => post(`${url}${path}`, body, { 'content-type': 'application/json', authorization: `Bearer ${k}`, ...headers });
      return { b, url, keys, waiters, parked, send };
    }
    const problemOf = async (res: Response) => ({ status: res.status, ...((await res.json()) as { code: string; detail: string }) });

    it("a fraud key's event wakes the fraud run's wait, not the same wait of a claims run, and is buffered for fraud only", async () => {
      const { b, keys, waiters, parked, send } = await teams();
      // The claims run waits longer: an event for every namespace would wake it first.
      const claims = await parked('claims', 'O-1');
      const fraud = await parked('fraud', 'O-1');
      const res = await send(keys.fraud, '/events/paid/O-1', '{"by":"fraud"}');
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ delivered: 1, buffered: false });
      expect((await b.wait(fraud, { timeoutMs: 20_000 })).output).toEqual({ by: 'fraud' });
      await new Promise((r) => setTimeout(r, 300));
      expect((await b.getRun(claims)).status).toBe('waiting');
      // Buffered: a claims wait arming within the lookback does not take it, a fraud wait does.
      expect(await (await send(keys.fraud, '/events/paid/O-2', '{"by":"fraud"}')).json()).toEqual({ delivered: 0, buffered: true });
      const laterClaims = await parked('claims', 'O-2');
      expect((await b.run(waiters.fraud, { order: 'O-2' }, { timeoutMs: 20_000 })).output).toEqual({ by: 'fraud' });
      // The claims key's own event reaches the claims runs.
      expect(await (await send(keys.claims, '/events/paid/O-2', '{"by":"claims"}')).json()).toEqual({ delivered: 1, buffered: false });
      expect((await b.wait(laterClaims, { timeoutMs: 20_000 })).output).toEqual({ by: 'claims' });
      // An Idempotency-Key counts within the namespace: fraud's does not swallow claims' event.
      const idem = { 'idempotency-key': 'delivery-7' };
      expect(await (await send(keys.fraud, '/events/paid/O-3', '{}', idem)).json()).toEqual({ delivered: 0, buffered: true });
      expect(await (await send(keys.claims, '/events/paid/O-3', '{}', idem)).json()).toEqual({ delivered: 0, buffered: true });
      expect(await (await send(keys.claims, '/events/paid/O-3', '{}', idem)).json()).toEqual({ delivered: 0, buffered: false, duplicate: true });
      expect((await b.getRun(claims)).status).toBe('waiting');
    });

    it('a key of several namespaces names one with ?namespace= or gets 400; one it does not reach is refused as elsewhere', async () => {
      const { b, keys, parked, send } = await teams();
      const claims = await parked('claims', 'M-1');
      const fraud = await parked('fraud', 'M-1');
      const ce = JSON.stringify({ specversion: '1.0', id: 'm-1', source: '/test', type: 'paid', subject: 'M-1', data: {} });
      for (const [path, body, headers] of [['/events/paid/M-1', '{}', {}], ['/cloudevents', ce, { 'content-type': 'application/cloudevents+json' }]] as const) {
        const p = await problemOf(await send(keys.both, path, body, headers));
        expect(p).toMatchObject({ status: 400, code: 'BATON_NAMESPACE_REQUIRED' });
        expect(p.detail).toContain('fraud, claims');
        expect(p.detail).toContain('?namespace=');
        // A namespace the key does not reach: the gateway's usual refusal, whether or not it exists.
        const other = await problemOf(await send(keys.fraud, `${path}?namespace=claims`, body, headers));
        const none = await problemOf(await send(keys.fraud, `${path}?namespace=nowhere`, body, headers));
        expect(other).toMatchObject({ status: 403, code: 'BATON_FORBIDDEN' });
        expect(none).toMatchObject({ status: 403, code: 'BATON_FORBIDDEN' });
        expect(none.detail.replace('nowhere', 'claims')).toBe(other.detail);
        // A misspelt parameter is refused, not ignored (ignored, it would send to the key's default).
        expect(await problemOf(await send(keys.all, `${path}?namespcae=claims`, body, headers))).toMatchObject({ status: 400, code: 'BATON_REQUEST_INVALID' });
      }
      await new Promise((r) => setTimeout(r, 300));
      expect([(await b.getRun(claims)).status, (await b.getRun(fraud)).status]).toEqual(['waiting', 'waiting']);
      // Named: only that namespace's run.
      expect(await (await send(keys.both, '/events/paid/M-1?namespace=claims', '{"to":"claims"}')).json()).toEqual({ delivered: 1, buffered: false });
      expect((await b.wait(claims, { timeoutMs: 20_000 })).output).toEqual({ to: 'claims' });
      // A * key reaches every namespace as before, or the one it names.
      const claims2 = await parked('claims', 'M-2');
      expect(await (await send(keys.all, '/events/paid/M-2?namespace=fraud', '{}')).json()).toEqual({ delivered: 0, buffered: true });
      expect((await b.getRun(claims2)).status).toBe('waiting');
      expect(await (await send(keys.all, '/events/paid/M-1', '{"to":"any"}')).json()).toEqual({ delivered: 1, buffered: false });
      expect((await b.wait(fraud, { timeoutMs: 20_000 })).output).toEqual({ to: 'any' });
    });

    it("another team can neither take the run id a team's trigger will give its run nor ask whether that run exists", async () => {
      const { b, keys, send } = await teams();
      await b.register(`
name: on_alert
triggers:
  - cloudevent: { type: com.example.alert }
steps:
  - { id: x, kind: transform, expression: "input" }
`);
      // Each is known in advance: fraud's CloudEvent run of the shared workflow, a webhook's
      // delivery, a schedule's fire. A run of claims taking one first would refuse fraud's.
      const fraudsRun = derivedRunId('ce', 'on_alert', '/upstream', 'a-9', 'fraud');
      for (const id of [fraudsRun, derivedRunId('hook', 'fraud/orders', 'webhook:0', 'd-1'), fireRunId('fraud/beat~schedule:0', Date.UTC(2027, 0, 1, 9))]) {
        const p = await problemOf(await send(keys.claims, '/runs', JSON.stringify({ workflow: 'on_alert', id })));
        expect(p).toMatchObject({ status: 400, code: 'BATON_USAGE' });
        expect(p.detail).toContain('which only they may take');
      }
      expect(await b.listRuns()).toHaveLength(0);
      const event = JSON.stringify({ specversion: '1.0', id: 'a-9', source: '/upstream', type: 'com.example.alert', data: {} });
      const out = (await (await send(keys.fraud, '/cloudevents', event, { 'content-type': 'application/cloudevents+json' })).json()) as { runs: unknown[]; failed: unknown[] };
      expect(out.failed).toEqual([]);
      expect(out.runs).toEqual([expect.objectContaining({ run_id: fraudsRun, workflow: 'on_alert' })]);
      // An id of the caller's own is taken as before.
      expect((await send(keys.claims, '/runs', JSON.stringify({ workflow: 'on_alert', id: 'claims-alert-9' }))).status).toBe(202);
    });

    it("a fraud key's CloudEvent starts the fraud workflow's trigger and the shared one, in fraud, not the claims one", async () => {
      const { b, keys, send } = await teams();
      const listener = (name: string) => `
name: ${name}
triggers:
  - cloudevent: { type: com.example.alert }
steps:
  - { id: x, kind: transform, expression: "input" }
`;
      await b.register(listener('on_alert'), undefined, { namespace: 'fraud' });
      await b.register(listener('on_alert'), undefined, { namespace: 'claims' });
      await b.register(listener('audit'));
      const event = JSON.stringify({ specversion: '1.0', id: 'a-1', source: '/upstream', type: 'com.example.alert', data: { n: 1 } });
      const h = { 'content-type': 'application/cloudevents+json' };
      type Out = { runs: Array<{ run_id: string; workflow: string }>; failed: unknown[] };
      const fromFraud = (await (await send(keys.fraud, '/cloudevents', event, h)).json()) as Out;
      expect(fromFraud.runs.map((r) => r.workflow).sort()).toEqual(['audit', 'fraud/on_alert']);
      for (const r of fromFraud.runs) expect((await b.wait(r.run_id, { timeoutMs: 20_000 })).namespace).toBe('fraud');
      expect(await b.listRuns({ workflow: 'claims/on_alert' })).toHaveLength(0);
      // The claims team relaying the same upstream event starts its own runs, the shared workflow's included.
      const fromClaims = (await (await send(keys.claims, '/cloudevents', event, h)).json()) as Out;
      expect(fromClaims.failed).toEqual([]);
      expect(fromClaims.runs.map((r) => r.workflow).sort()).toEqual(['audit', 'claims/on_alert']);
      for (const r of fromClaims.runs) expect((await b.wait(r.run_id, { timeoutMs: 20_000 })).namespace).toBe('claims');
      // Sent again by fraud: the same runs, nothing new.
      const again = (await (await send(keys.fraud, '/cloudevents', event, h)).json()) as Out;
      expect(again.runs.map((r) => r.run_id).sort()).toEqual(fromFraud.runs.map((r) => r.run_id).sort());
      expect(await b.listRuns({ workflow: 'audit' })).toHaveLength(2);
    });
  });
});
