/**
 * What the gateway does with requests a client may well send, over a real socket on every
 * store: run ids it chooses (URL-safe, reachable, never someone else's run), a body-less POST
 * with a JSON content type, a JSON workflow document with problems (line and column, as YAML),
 * a `__proto__` key, and keys revoked down to none (the gateway stays closed).
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApiKey } from '../../src/gateway/auth.js';
import { createGateway } from '../../src/gateway/server.js';
import { LOOPBACK_HOSTS } from '../../src/gateway/browser-guard.js';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

const ECHO = '{ "name": "echo", "steps": [{ "id": "a", "kind": "transform", "expression": "input" }] }';
const OTHER = '{ "name": "other", "steps": [{ "id": "a", "kind": "transform", "expression": "1" }] }';

describe.each(STORE_KINDS)('gateway requests on %s', (k) => {
  const suite = engineSuite(k, 'baton-gw-requests-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await app?.close();
    app = undefined;
  });

  async function serve(auth: 'off' | 'auto' = 'off', allowedHosts?: readonly string[]) {
    const b = await suite.baton();
    app = await createGateway(b, { auth, allowedHosts });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const call = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base}${path}`, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, body });
      const text = await res.text();
      return { status: res.status, type: res.headers.get('content-type') ?? '', location: res.headers.get('location'), body: (text ? JSON.parse(text) : undefined) as Record<string, any> };
    };
    return { b, call };
  }

  it('takes only URL-safe run ids, reaches a long one, and never hands out a run of another workflow or namespace', async () => {
    const { b, call } = await serve();
    await b.register(ECHO);
    await b.register(OTHER);
    const runs = async () => (await b.store.listRuns({ limit: 1000 })).length;
    for (const id of ['snow-☃', '../../admin', '..', 'a b', 'tab\there', 'x'.repeat(201), '']) {
      const r = await call('POST', '/runs', JSON.stringify({ workflow: 'echo', id, input: { n: 1 } }));
      expect(r.status, id).toBe(400);
      expect(r.type, id).toContain('application/problem+json');
    }
    expect(await runs()).toBe(0);

    // A 150-character id (Fastify's default would answer 414 for /runs/<it>) and its location.
    const long = `r_${'x'.repeat(148)}`;
    const started = await call('POST', '/runs', JSON.stringify({ workflow: 'echo', id: long, input: { n: 1 }, wait: 10 }));
    expect(started.status).toBe(200);
    expect(started.location).toBe(`/runs/${long}`);
    expect((await call('GET', `/runs/${long}`)).body).toMatchObject({ run_id: long, status: 'completed' });

    // The same id again: the same run (an idempotency key), even with another input.
    expect((await call('POST', '/runs', JSON.stringify({ workflow: 'echo', id: long, input: { n: 2 }, wait: 10 }))).body).toMatchObject({ run_id: long, output: { n: 1 } });
    // Another workflow, or another namespace, with that id: refused, nothing of the run told.
    for (const body of [{ workflow: 'other', id: long }, { workflow: 'echo', id: long, namespace: 'team-b' }]) {
      const r = await call('POST', '/runs', JSON.stringify({ ...body, wait: 10 }));
      expect(r.status).toBe(409);
      expect(r.body.code).toBe('BATON_RUN_ID_TAKEN');
      expect(JSON.stringify(r.body)).not.toContain('"n"');
    }
    expect(await runs()).toBe(1);
    // The engine's own API says the same.
    await expect(b.start('other', {}, { id: long })).rejects.toMatchObject({ code: 'BATON_RUN_ID_TAKEN' });
    await expect(b.start('echo', {}, { id: 'a/b' })).rejects.toMatchObject({ code: 'BATON_USAGE' });
  });

  it('reads an empty JSON body as none, refuses a __proto__ key by name, and places a JSON document\'s problems', async () => {
    const { b, call } = await serve();
    await b.register('{ "name": "waits", "steps": [{ "id": "w", "kind": "wait", "event": "go", "key": "input.k" }] }');
    const id = await b.start('waits', { k: 'k1' });
    // Many clients send the header on a body-less POST.
    const cancelled = await call('POST', `/runs/${id}/cancel`, '');
    expect(cancelled.status).toBe(200);
    expect((await b.getRun(id)).status).toBe('cancelled');
    // A route that needs a body still says so.
    expect((await call('POST', '/runs', '')).body).toMatchObject({ status: 400, code: 'BATON_REQUEST_INVALID' });

    const proto = await call('POST', '/runs', '{ "workflow": "waits", "input": { "__proto__": { "admin": true } } }');
    expect(proto.status).toBe(400);
    expect(proto.body.detail).toContain('__proto__');
    const bad = await call('POST', '/runs', '{ "workflow": ');
    expect(bad.body).toMatchObject({ status: 400, code: 'BATON_REQUEST_INVALID' });
    expect(bad.body.detail).toContain('not valid JSON');
    // A byte order mark before the JSON (some Windows clients) is not part of it.
    expect((await call('POST', '/runs', `\uFEFF${JSON.stringify({ workflow: 'waits', input: { k: 'bom' } })}`)).status).toBe(202);
    // A JSON document registers as JSON reads it (the last of duplicate keys wins), as before.
    expect((await call('POST', '/workflows', '{ "name": "dup", "name": "dup2", "steps": [{ "id": "a", "kind": "transform", "expression": "1" }] }')).body).toMatchObject({ name: 'dup2' });

    // Two problems of a JSON document, each with its line and column.
    const doc = '{\n  "name": "broken",\n  "steps": [\n    { "id": "a", "kind": "transform", "expression": "steps.zz.output" },\n    { "id": "b", "kind": "nope" }\n  ]\n}';
    const reg = await call('POST', '/workflows', doc);
    expect(reg.status).toBe(400);
    const problems = reg.body.problems as Array<{ file: string; line: number; column: number; message: string }>;
    expect(problems.length).toBeGreaterThan(0);
    for (const p of problems) {
      expect(p.file).toBe('request.json');
      expect(p.line).toBeGreaterThanOrEqual(4);
    }
    // A good JSON document registers as it did.
    expect((await call('POST', '/workflows', ECHO)).status).toBe(201);
  });

  it('answers a malformed URL and a body of the wrong type as problems, and shows a large step output itself', async () => {
    const { b, call } = await serve();
    const badUrl = await call('GET', '/runs/%E0%A4%A');
    expect(badUrl.status).toBe(400);
    expect(badUrl.type).toContain('application/problem+json');
    expect(badUrl.body.code).toBe('BATON_REQUEST_INVALID');
    // text/plain is read as YAML by POST /workflows only; a JSON route answers 415.
    const plain = await call('POST', '/runs', 'workflow: echo', { 'content-type': 'text/plain' });
    expect(plain.status).toBe(415);
    expect(plain.body.code).toBe('BATON_UNSUPPORTED_MEDIA_TYPE');
    expect((await call('POST', '/workflows', 'name: plain\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n', { 'content-type': 'text/plain' })).status).toBe(201);
    // A step output stored apart for its size (over 256 KiB) comes back as the output.
    await b.register('{ "name": "big", "steps": [{ "id": "a", "kind": "transform", "expression": "$pad(\\"\\", 300000, \\"x\\")" }] }');
    const run = await call('POST', '/runs', JSON.stringify({ workflow: 'big', wait: 10 }));
    expect(run.body.status).toBe('completed');
    const got = await call('GET', `/runs/${run.body.run_id}`);
    expect(got.body.steps[0].output).toBe('x'.repeat(300000));
    // A step that failed has its start time, like one that succeeded (it had none: "started —").
    await b.register('{ "name": "boom", "steps": [{ "id": "a", "kind": "transform", "expression": "$error(\\"no\\")" }] }');
    const failed = await call('POST', '/runs', JSON.stringify({ workflow: 'boom', wait: 10 }));
    expect(failed.body.status).toBe('failed');
    const step = (await call('GET', `/runs/${failed.body.run_id}`)).body.steps[0];
    expect(step.status).toBe('failed');
    expect(Date.parse(step.started_at)).toBeLessThanOrEqual(Date.parse(step.finished_at));
  });

  it('refuses what a web page in the browser would do to it: cross-origin changes, other host names (DNS rebinding)', async () => {
    const { b, call } = await serve('off', LOOPBACK_HOSTS);
    const doc = 'name: planted\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n';
    // A page of another site POSTs text/plain (no preflight): refused, nothing registered.
    const cross = await call('POST', '/workflows', doc, { 'content-type': 'text/plain', origin: 'http://evil.example' });
    expect(cross.status).toBe(403);
    expect(cross.body.code).toBe('BATON_CROSS_ORIGIN');
    expect((await call('POST', '/workflows', doc, { 'content-type': 'text/plain', origin: 'null' })).status).toBe(403);
    expect(await b.store.listVersions()).toEqual([]);
    // The console's own origin, and programs (no Origin), may; reads are not concerned.
    const port = app!.server.address() as { port: number };
    expect((await call('POST', '/workflows', doc, { 'content-type': 'text/plain', origin: `http://127.0.0.1:${port.port}` })).status).toBe(201);
    expect((await call('GET', '/workflows', undefined, { origin: 'http://evil.example' })).status).toBe(200);
    // A Host that is not a loopback name (a rebound DNS name) is refused, whatever the request.
    const rebound = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = httpRequest({ host: '127.0.0.1', port: port.port, path: '/health', headers: { host: `attacker.example:${port.port}` } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      r.on('error', reject);
      r.end();
    });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).code).toBe('BATON_HOST_NOT_ALLOWED');
    expect((await call('GET', '/health')).status).toBe(200);
  });

  it('lets through what is no attack: an HTTP/1.0 probe without Host, a trailing-dot name, a default port, a proxy name the operator allowed', async () => {
    const { call } = await serve('off', [...LOOPBACK_HOSTS, 'baton.example.com']);
    const port = (app!.server.address() as { port: number }).port;
    const raw = (text: string) => new Promise<string>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => sock.end(text));
      let out = '';
      sock.on('data', (d) => (out += d));
      sock.on('end', () => resolve(out));
      sock.on('error', reject);
    });
    expect(await raw('GET /health HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.[01] 200/);
    expect(await raw(`GET /health HTTP/1.1\r\nHost: localhost.:${port}\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 200/);
    // Behind a proxy that keeps the public name, or one that rewrites Host but not Origin.
    expect(await raw(`GET /health HTTP/1.1\r\nHost: baton.example.com\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 200/);
    const doc = 'name: proxied\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n';
    expect((await call('POST', '/workflows', doc, { 'content-type': 'text/plain', origin: 'https://baton.example.com' })).status).toBe(201);
    // `Origin: http://127.0.0.1` is `Host: 127.0.0.1:80` (checked on the parsing, not a socket).
    const post = (host: string, origin: string) => raw(`POST /runs/x/cancel HTTP/1.1\r\nHost: ${host}\r\nOrigin: ${origin}\r\nConnection: close\r\n\r\n`);
    expect(await post('127.0.0.1:80', 'http://127.0.0.1')).not.toContain('BATON_CROSS_ORIGIN');
    // Another local app's page (another port) is still another origin.
    expect(await post(`127.0.0.1:${port}`, 'http://127.0.0.1:3000')).toContain('BATON_CROSS_ORIGIN');
  });

  it('refuses a JSON body nested deeper than the limit (a 500 before), and bounds how long a request may take to arrive', async () => {
    const { b, call } = await serve();
    await b.register(ECHO);
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    const r = await call('POST', '/runs', `{ "workflow": "echo", "input": { "x": ${deep(6000)} } }`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'BATON_REQUEST_INVALID' });
    expect(r.body.detail).toContain('nested deeper than 1000');
    expect(await b.store.listRuns({ limit: 10 })).toEqual([]);
    expect((await call('POST', '/runs', `{ "workflow": "echo", "input": { "x": ${deep(900)} }, "wait": 10 }`)).body.status).toBe('completed');
    // A body with many unknown fields: the first few are named, the rest counted (the answer
    // listed every one: 5 MB for 60,000 fields).
    const fields = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`f${i}`, 1]));
    const many = await call('POST', '/runs', JSON.stringify({ workflow: 'echo', ...fields }));
    expect(many.status).toBe(400);
    expect(many.body.detail).toContain('must NOT have additional properties ("f0")');
    expect(many.body.detail).toContain('and 1995 more problems');
    expect(JSON.stringify(many.body).length).toBeLessThan(2000);
    // A body sent a byte at a time is cut off (Fastify's default turns Node's limit off).
    expect(app!.server.requestTimeout).toBe(30_000);
  });

  it('keeps requiring keys after every key is revoked (auth auto)', async () => {
    const { b, call } = await serve('auto');
    const { key, record } = await createApiKey(b.store, { name: 'only', role: 'admin', namespaces: ['*'] });
    expect((await call('GET', '/runs', undefined, { authorization: `Bearer ${key}` })).status).toBe(200);
    expect((await call('GET', '/runs')).status).toBe(401);
    expect((await call('GET', '/favicon.ico')).status).toBe(204); // browsers ask for it without a key
    await b.store.revokeApiKey(record.id, Date.now());
    // Past the gateway's 2-second memory of whether keys exist.
    const now = Date.now();
    vi.spyOn(Date, 'now').mockImplementation(() => now + 10_000);
    expect((await call('GET', '/runs')).status).toBe(401);
    expect((await call('POST', '/workflows', ECHO)).status).toBe(401);
    expect((await call('GET', '/runs', undefined, { authorization: `Bearer ${key}` })).status).toBe(401);
    expect(await b.store.listVersions()).toEqual([]);
  });
});
