/**
 * `baton serve` as deployed: a gateway process serving the API (here without a worker) and a
 * separate `baton worker` process, both on one PostgreSQL database; requests over real HTTP.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_KINDS, createTestDatabase, type TestDatabase } from '../helpers/stores.js';
import { bin, ensureBuilt } from '../helpers/cli.js';

let dir: string;
let db: TestDatabase;
let base: string;
const procs: ChildProcess[] = [];

function start(args: string[], ready: RegExp): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) res(m[1] ?? out);
    };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', onData);
    p.on('exit', (code) => rej(new Error(`baton ${args[0]} exited ${code}: ${out}`)));
  });
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= typeof body === 'string' ? 'application/yaml' : 'application/json';
  }
  const res = await fetch(`${base}${path}`, init);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.json()) as Record<string, any> };
}

describe.runIf(STORE_KINDS.includes('postgres'))('baton serve', () => {
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'baton-serve-'));
    writeFileSync(join(dir, 'fns.mjs'), 'export async function shout(s) { return String(s).toUpperCase(); }\n');
    writeFileSync(join(dir, 'baton.config.yaml'), 'functions:\n  - ./fns.mjs\n');
    db = await createTestDatabase('baton_serve');
    base = await start(['serve', '--db', db.url, '--port', '0', '--no-worker'], /baton serve: (http:\/\/[^\s]+) /);
    await start(['worker', '--db', db.url], /baton worker w_/);
  });
  afterAll(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers a workflow, reporting every problem of a bad one with line and column', async () => {
    const bad = await call('POST', '/workflows', 'name: bad\nsteps:\n  - { id: a, kind: function, function: shout, input: "input.text" }\n  - { id: b, kind: transfrm, expression: "1" }\n');
    expect(bad.status).toBe(400);
    expect(bad.type).toMatch(/application\/problem\+json/);
    expect(bad.body).toMatchObject({ code: 'BATON_DOC_INVALID', status: 400 });
    expect(bad.body.problems[0]).toMatchObject({ line: 4, message: expect.stringContaining('unknown step kind "transfrm"') });
    const ok = await call('POST', '/workflows', 'name: shout\nsteps:\n  - { id: a, kind: function, function: shout, input: "input.text" }\n');
    expect(ok.status).toBe(201);
    expect(ok.body.version_id).toMatch(/^shout@[0-9a-f]{16}$/);
    expect((await call('GET', '/workflows')).body.map((w: { name: string }) => w.name)).toEqual(['shout']);
  });

  it('starts runs sync (200 with the output) and async (202, then the run with its steps), executed by a separate worker', async () => {
    const sync = await call('POST', '/runs', { workflow: 'shout', input: { text: 'hello' }, wait: 10 });
    expect(sync.status).toBe(200);
    expect(sync.body).toMatchObject({ status: 'completed', output: 'HELLO', workflow: 'shout' });
    const async = await call('POST', '/runs', { workflow: 'shout', input: { text: 'later' } });
    expect(async.status).toBe(202);
    let run = async.body;
    for (let i = 0; i < 100 && run.status !== 'completed'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      run = (await call('GET', `/runs/${async.body.run_id}`)).body;
    }
    expect(run).toMatchObject({ status: 'completed', output: 'LATER', steps: [{ key: 'a', status: 'succeeded', output: 'LATER' }] });
    const list = await call('GET', '/runs?status=completed&limit=10');
    expect(list.body.length).toBe(2);
  });

  it('answers bad requests with the right 4xx and a problem body, storing nothing', async () => {
    const before = (await call('GET', '/runs?limit=1000')).body.length;
    const malformed = await fetch(`${base}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"workflow": ' });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { code: string }).code).toBe('BATON_REQUEST_INVALID');
    expect((await call('POST', '/runs', { workflow: 'shout', nonsense: true })).body).toMatchObject({ status: 400, code: 'BATON_REQUEST_INVALID' });
    expect((await call('POST', '/runs', { workflow: 'nope' })).body).toMatchObject({ status: 404, code: 'BATON_WORKFLOW_NOT_FOUND' });
    const big = await call('POST', '/runs', { workflow: 'shout', input: { text: 'x'.repeat(2 * 1024 * 1024) } });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('BATON_REQUEST_TOO_LARGE');
    const wrongType = await fetch(`${base}/runs`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<run/>' });
    expect(wrongType.status).toBe(415);
    expect((await call('GET', '/runs/run_nope')).body).toMatchObject({ status: 404, code: 'BATON_RUN_NOT_FOUND' });
    expect((await call('GET', '/no/such/route')).status).toBe(404);
    expect((await call('GET', '/runs?limit=1000')).body.length).toBe(before);
  });

  it('serves its OpenAPI 3.1 document and browsable docs', async () => {
    const doc = await call('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/runs', '/runs/{id}', '/runs/{id}/events', '/workflows']));
    expect(doc.body.paths['/runs'].post.requestBody.content['application/json'].schema.required).toEqual(['workflow']);
    // Responses are described too: runs, and problem bodies for every error status.
    expect(Object.keys(doc.body.components.schemas)).toEqual(expect.arrayContaining(['Run', 'RunWithSteps', 'Problem', 'WorkflowVersion']));
    expect(doc.body.paths['/runs/{id}'].get.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/RunWithSteps');
    expect(doc.body.paths['/runs'].post.responses['4XX'].content['application/problem+json'].schema.$ref).toBe('#/components/schemas/Problem');
    const docs = await fetch(`${base}/docs/static/index.html`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger-ui/i);
  });

  it('streams a run\'s events as Server-Sent Events and resumes after a given event id', async () => {
    await call('POST', '/workflows', 'name: three\nsteps:\n  - { id: a, kind: function, function: shout, input: "input.text" }\n  - { id: b, kind: function, function: shout, input: "steps.a.output & \'!\'" }\n  - { id: c, kind: transform, expression: "steps.b.output" }\n');
    const started = await call('POST', '/runs', { workflow: 'three', input: { text: 'sse' } });
    const read = async (path: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base}${path}`, { headers });
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const text = await res.text();
      return text.split('\n\n').filter((b) => b.startsWith('id:') || b.startsWith('event:')).map((b) => {
        const f = Object.fromEntries(b.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
        return { id: f.id ? Number(f.id) : undefined, event: f.event, data: JSON.parse(f.data) };
      });
    };
    const all = await read(`/runs/${started.body.run_id}/events`);
    expect(all.at(-1)).toEqual({ id: undefined, event: 'end', data: { status: 'completed' } });
    const ids = all.filter((e) => e.id !== undefined).map((e) => e.id);
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    expect(all.map((e) => e.event)).toEqual(expect.arrayContaining(['run.created', 'step.succeeded', 'run.completed']));
    const tail = await read(`/runs/${started.body.run_id}/events`, { 'last-event-id': String(ids.length - 2) });
    expect(tail.filter((e) => e.id !== undefined).map((e) => e.id)).toEqual([ids.length - 1, ids.length]);
    // An EventSource opened on ?after=1 reconnects to that URL with the last id it saw: the later wins, either way round.
    const resumed = await read(`/runs/${started.body.run_id}/events?after=1`, { 'last-event-id': String(ids.length - 2) });
    expect(resumed.filter((e) => e.id !== undefined).map((e) => e.id)).toEqual([ids.length - 1, ids.length]);
    const later = await read(`/runs/${started.body.run_id}/events?after=${ids.length - 1}`, { 'last-event-id': '1' });
    expect(later.filter((e) => e.id !== undefined).map((e) => e.id)).toEqual([ids.length]);
    for (const bad of ['abc', '-1', '1e3']) {
      const res = await fetch(`${base}/runs/${started.body.run_id}/events`, { headers: { 'last-event-id': bad } });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ status: 400, code: 'BATON_REQUEST_INVALID' });
    }
    expect((await call('GET', '/runs/run_missing/events')).status).toBe(404);
  });

  it('reports health and readiness', async () => {
    expect((await call('GET', '/health')).body).toEqual({ status: 'ok' });
    expect((await call('GET', '/ready')).body).toEqual({ status: 'ready', store: 'postgres' });
  });

  // Last: once a key exists, the gateway (auth auto) requires keys.
  it('requires API keys once one exists: roles, namespaces, revocation and per-key rate limits', async () => {
    const key = (args: string[]) => {
      const r = spawnSync(process.execPath, [bin, 'keys', 'create', '--db', db.url, ...args], { cwd: dir, encoding: 'utf8' });
      expect(r.status).toBe(0);
      return r.stdout.trim();
    };
    const admin = key(['--role', 'admin', '--namespace', '*', '--name', 'ops']);
    const opA = key(['--role', 'operator', '--namespace', 'team-a']);
    const opB = key(['--role', 'operator', '--namespace', 'team-b']);
    const viewA = key(['--role', 'viewer', '--namespace', 'team-a']);
    const slow = key(['--role', 'viewer', '--namespace', 'team-a', '--rate', '3']);
    expect(admin).toMatch(/^bk_[0-9a-f]{12}_[A-Za-z0-9_-]{32}$/);
    // The secret is stored hashed: the listing and the database never show it.
    const listed = spawnSync(process.execPath, [bin, 'keys', 'list', '--json', '--db', db.url], { cwd: dir, encoding: 'utf8' }).stdout;
    expect(listed).not.toContain(admin.slice(16));
    await new Promise((r) => setTimeout(r, 2100));
    const as = (k: string) => ({ authorization: `Bearer ${k}` });

    const none = await call('GET', '/runs');
    expect(none.status).toBe(401);
    expect(none.body.code).toBe('BATON_UNAUTHENTICATED');
    expect((await call('GET', '/runs', undefined, as(`${admin.slice(0, -1)}${admin.endsWith('x') ? 'y' : 'x'}`))).status).toBe(401);
    expect((await call('GET', '/health')).status).toBe(200);

    const a = await call('POST', '/runs', { workflow: 'shout', input: { text: 'a' }, wait: 10 }, as(opA));
    expect(a.body).toMatchObject({ status: 'completed', namespace: 'team-a' });
    const b = await call('POST', '/runs', { workflow: 'shout', input: { text: 'b' }, wait: 10 }, as(opB));
    expect(b.body.namespace).toBe('team-b');
    // team-a cannot see or touch team-b's run, nor start runs elsewhere.
    expect((await call('GET', `/runs/${b.body.run_id}`, undefined, as(opA))).body.code).toBe('BATON_RUN_NOT_FOUND');
    expect((await call('POST', `/runs/${b.body.run_id}/cancel`, undefined, as(opA))).status).toBe(404);
    expect((await call('POST', '/runs', { workflow: 'shout', input: { text: 'x' }, namespace: 'team-b' }, as(opA))).body.code).toBe('BATON_FORBIDDEN');
    const seen = (await call('GET', '/runs?limit=100', undefined, as(viewA))).body.map((r: { namespace: string }) => r.namespace);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set(['team-a']));
    expect((await call('GET', '/runs?limit=100', undefined, as(admin))).body.length).toBeGreaterThan(seen.length);
    // Roles: a viewer cannot start runs, an operator cannot register workflows.
    expect((await call('POST', '/runs', { workflow: 'shout', input: { text: 'v' } }, as(viewA))).body).toMatchObject({ status: 403, code: 'BATON_FORBIDDEN' });
    expect((await call('POST', '/workflows', 'name: nope\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n', as(opA))).status).toBe(403);
    expect((await call('POST', '/workflows', 'name: by-admin\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n', as(admin))).status).toBe(201);

    // Workflows belong to namespaces: each team registers its own `triage`, and neither sees,
    // starts or models the other's; shared (default-namespace) workflows stay usable by both.
    const adminA = key(['--role', 'admin', '--namespace', 'team-a']);
    const doc = (word: string) => `name: triage\nsteps:\n  - { id: a, kind: transform, expression: '"${word}"' }\n`;
    const regA = await call('POST', '/workflows', doc('team-a says hi'), as(adminA));
    expect(regA.body).toMatchObject({ name: 'triage', namespace: 'team-a' });
    expect(regA.body.version_id).toMatch(/^team-a\/triage@/);
    expect((await call('POST', '/workflows?namespace=team-b', doc('team-b says hi'), as(adminA))).body.code).toBe('BATON_FORBIDDEN');
    const regB = await call('POST', '/workflows?namespace=team-b', doc('team-b says hi'), as(admin));
    expect(regB.status).toBe(201);
    expect(regB.body.namespace).toBe('team-b');
    const ranA = await call('POST', '/runs', { workflow: 'triage', wait: 10 }, as(opA));
    expect(ranA.body).toMatchObject({ status: 'completed', namespace: 'team-a', output: 'team-a says hi' });
    expect((await call('POST', '/runs', { workflow: 'triage', wait: 10 }, as(opB))).body.output).toBe('team-b says hi');
    const listA = (await call('GET', '/workflows', undefined, as(opA))).body as Array<{ name: string; namespace: string }>;
    expect(listA.filter((w) => w.name === 'triage').map((w) => w.namespace)).toEqual(['team-a']);
    expect(listA.some((w) => w.name === 'shout' && w.namespace === 'default')).toBe(true);
    // Another team's workflow by version id is "not found", as is its model.
    expect((await call('POST', '/runs', { workflow: regA.body.version_id }, as(opB))).body).toMatchObject({ status: 404, code: 'BATON_WORKFLOW_NOT_FOUND' });
    expect((await call('POST', '/runs', { workflow: 'team-a/triage' }, as(opB))).status).toBe(404);
    const modelsB = (await call('GET', '/v1/models', undefined, as(opB))).body.data.map((m: { id: string }) => m.id);
    expect(modelsB).toContain('workflow/triage');
    expect(modelsB).toContain('workflow/shout');
    expect(modelsB.some((m: string) => m.includes('team-a'))).toBe(false);
    const chatB = await call('POST', '/v1/chat/completions', { model: 'workflow/triage', messages: [{ role: 'user', content: 'hi' }] }, as(opB));
    expect(chatB.body.choices[0].message.content).toContain('team-b says hi');
    expect((await call('POST', '/v1/chat/completions', { model: 'workflow/team-a/triage', messages: [{ role: 'user', content: 'hi' }] }, as(opB))).status).toBe(404);
    // A namespaced workflow's runs stay in its namespace.
    expect((await call('POST', '/runs', { workflow: 'team-b/triage', namespace: 'team-a' }, as(admin))).body.code).toBe('BATON_USAGE');

    // Per-key rate limit: the fourth request in the minute is refused with Retry-After.
    for (let i = 0; i < 3; i++) expect((await call('GET', '/runs', undefined, as(slow))).status).toBe(200);
    const limited = await fetch(`${base}/runs`, { headers: as(slow) });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    // Revoked: refused at once.
    const id = viewA.split('_')[1];
    expect(spawnSync(process.execPath, [bin, 'keys', 'revoke', id, '--db', db.url], { cwd: dir, encoding: 'utf8' }).stdout).toContain(`revoked ${id}`);
    expect((await call('GET', '/runs', undefined, as(viewA))).status).toBe(401);
  }, 120_000); // spawns a `baton keys` process per key: slow on a busy machine
});
