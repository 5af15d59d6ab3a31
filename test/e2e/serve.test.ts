/**
 * `baton serve` as deployed: a gateway process serving the API (here without a worker) and a
 * separate `baton worker` process, both on one PostgreSQL database; requests over real HTTP.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_KINDS, createTestDatabase, type TestDatabase } from '../helpers/stores.js';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin/baton.js');
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
    if (!existsSync(join(root, 'dist/cli/main.js'))) spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
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
    expect((await call('GET', '/runs/run_missing/events')).status).toBe(404);
  });

  it('reports health and readiness', async () => {
    expect((await call('GET', '/health')).body).toEqual({ status: 'ok' });
    expect((await call('GET', '/ready')).body).toEqual({ status: 'ready', store: 'postgres' });
  });
});
