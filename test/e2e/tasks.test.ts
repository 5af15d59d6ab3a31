/**
 * External workers of any language, end to end: the gateway on 127.0.0.1 (real sockets) and
 * the example Python worker (examples/tasks/worker.py, standard library only) as SEPARATE
 * processes. A run completes with the worker's output; a worker killed with SIGKILL mid-task
 * loses its lease and a second worker process finishes the task. Runs on both stores.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { createGateway } from '../../src/gateway/server.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

const root = resolve(import.meta.dirname, '../..');
const WORKER = join(root, 'examples/tasks/worker.py');
const WORKFLOW = join(root, 'examples/tasks/workflow.yaml');

interface Proc {
  p: ChildProcess;
  out(): string;
  /** Resolves when stdout matches. */
  when(re: RegExp): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
}

function python(url: string, env: Record<string, string>): Proc {
  const p = spawn('python3', [WORKER], { env: { ...process.env, BATON_URL: url, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) w();
  };
  p.stdout!.on('data', onData);
  p.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return {
    p,
    out: () => out,
    exited,
    when(re) {
      return new Promise((res, rej) => {
        const check = () => {
          const m = re.exec(out);
          if (m) return res(m);
          if (p.exitCode !== null || p.signalCode !== null) return rej(new Error(`worker exited before ${re}: ${out}`));
          waiters.push(check);
        };
        p.once('exit', () => waiters.length && check());
        check();
      });
    },
  };
}

async function http(base: string, method: string, path: string, body?: unknown, key?: string) {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = typeof body === 'string' ? 'application/yaml' : 'application/json';
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: (text ? JSON.parse(text) : null) as Record<string, any> };
}

describe.each(STORE_KINDS)('external task workers on %s', (k) => {
  const suite = engineSuite(k, 'baton-e2e-tasks-');
  const procs: Proc[] = [];

  async function gateway(b: Baton, auth: 'off' | 'required' = 'off'): Promise<{ app: FastifyInstance; base: string }> {
    const app = await createGateway(b, { auth });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    return { app, base };
  }
  async function cleanup(app: FastifyInstance) {
    for (const w of procs.splice(0)) {
      if (w.p.exitCode === null && w.p.signalCode === null) w.p.kill('SIGKILL');
      await w.exited;
    }
    await app.close();
  }

  it('a run completes with the output of a Python worker process; a SIGKILLed worker\'s task is finished by another after its lease expires', async () => {
    const b = await suite.baton();
    const { app, base } = await gateway(b);
    try {
      const { readFileSync } = await import('node:fs');
      // A short lease so that the killed worker's task comes back soon.
      const doc = readFileSync(WORKFLOW, 'utf8').replace('lease: 10s', 'lease: 1500ms');
      const reg = await http(base, 'POST', '/workflows', doc);
      expect(reg.status).toBe(201);

      // 1. A worker process does the task; the run completes with its output.
      const a = python(base, { WORKER_ID: 'py-a', WORKER_ONCE: '1' });
      procs.push(a);
      await a.when(/polling/);
      const r1 = await http(base, 'POST', '/runs', { workflow: 'review-scoring', input: { review: '  Great product, works perfect, but slow  ' }, wait: 30 });
      expect(r1.status).toBe(200);
      expect(r1.body.status).toBe('completed');
      expect(r1.body.output).toEqual({ score: 0.75, queue: 'standard', scored_by: 'py-a' });
      expect(await a.exited).toBe(0);
      expect(a.out()).toMatch(/completed tsk_/);

      // 2. A worker that takes long is killed (SIGKILL: no goodbye) while it holds the task.
      const slow = python(base, { WORKER_ID: 'py-slow', SCORE_DELAY: '600' });
      procs.push(slow);
      await slow.when(/polling/);
      const started = await http(base, 'POST', '/runs', { workflow: 'review-scoring', input: { review: 'terrible, broken, refund' } });
      expect(started.status).toBe(202);
      const runId = started.body.run_id as string;
      const leased = await slow.when(/leased (tsk_[0-9a-f]+)/);
      const taskId = leased[1];
      const held = await http(base, 'GET', `/tasks/${taskId}`);
      expect(held.body).toMatchObject({ status: 'leased', worker_id: 'py-slow', attempts: 1, run_id: runId, step: 'score' });
      expect(held.body.lease_token).toBeUndefined();
      slow.p.kill('SIGKILL');
      expect(await slow.exited).toBe(null);

      // A second worker process gets the task once the lease has expired, and finishes it.
      const c = python(base, { WORKER_ID: 'py-b', WORKER_ONCE: '1' });
      procs.push(c);
      expect(await c.exited).toBe(0);
      expect(c.out()).toContain(`leased ${taskId} attempt 2`);
      const run = await b.wait(runId, { timeoutMs: 30_000 });
      expect(run.status).toBe('completed');
      expect(run.output).toEqual({ score: 0, queue: 'escalate', scored_by: 'py-b' });
      const task = await http(base, 'GET', `/tasks/${taskId}`);
      expect(task.body).toMatchObject({ status: 'completed', worker_id: 'py-b', attempts: 2 });
      const leases = (await b.getEvents(runId)).filter((e) => e.type === 'task.leased').map((e) => e.data);
      expect(leases).toEqual([
        expect.objectContaining({ worker_id: 'py-slow', attempts: 1 }),
        expect.objectContaining({ worker_id: 'py-b', attempts: 2, expired_lease_of: 'py-slow' }),
      ]);
    } finally {
      await cleanup(app);
    }
  });

  it('the /tasks API over HTTP: 204, 400, 403, 404, 409, 422 as problem+json; keys see only their namespace; documented in /openapi.json', async () => {
    const b = await suite.baton();
    const { app, base } = await gateway(b, 'required');
    try {
      const admin = (await createApiKey(b.store, { name: 'admin', role: 'admin', namespaces: ['*'] })).key;
      const opA = (await createApiKey(b.store, { name: 'a', role: 'operator', namespaces: ['team-a'] })).key;
      const opB = (await createApiKey(b.store, { name: 'b', role: 'operator', namespaces: ['team-b'] })).key;
      const viewer = (await createApiKey(b.store, { name: 'v', role: 'viewer', namespaces: ['*'] })).key;
      const viewerB = (await createApiKey(b.store, { name: 'vb', role: 'viewer', namespaces: ['team-b'] })).key;
      const { readFileSync } = await import('node:fs');
      expect((await http(base, 'POST', '/workflows', readFileSync(WORKFLOW, 'utf8'), admin)).status).toBe(201);

      const spec = await http(base, 'GET', '/openapi.json');
      expect(Object.keys(spec.body.paths)).toEqual(expect.arrayContaining(['/tasks/poll', '/tasks/{id}', '/tasks/{id}/heartbeat', '/tasks/{id}/complete', '/tasks/{id}/fail']));
      expect(Object.keys(spec.body.components.schemas)).toContain('Task');
      expect(spec.body.paths['/tasks/poll'].post.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/Task');
      expect(spec.body.paths['/tasks/poll'].post.requestBody.content['application/json'].schema.required).toEqual(['types', 'worker_id']);
      expect(spec.body.paths['/tasks/{id}/complete'].post.responses['4XX'].content['application/problem+json'].schema.$ref).toBe('#/components/schemas/Problem');

      expect((await http(base, 'POST', '/tasks/poll', { types: ['score'], worker_id: 'w' })).status).toBe(401);
      const forbidden = await http(base, 'POST', '/tasks/poll', { types: ['score'], worker_id: 'w' }, viewer);
      expect(forbidden.status).toBe(403);
      expect(forbidden.type).toContain('application/problem+json');
      const bad = await http(base, 'POST', '/tasks/poll', { types: [], worker_id: 'w' }, opA);
      expect(bad.status).toBe(400);
      expect(bad.body.code).toBe('BATON_REQUEST_INVALID');
      expect((await http(base, 'POST', '/tasks/poll', { types: ['score'], worker_id: 'w', extra: 1 }, opA)).status).toBe(400);
      expect((await http(base, 'POST', '/tasks/poll', { types: ['score'], worker_id: 'w' }, opA)).status).toBe(204);

      const run = await http(base, 'POST', '/runs', { workflow: 'review-scoring', input: { review: 'good' }, namespace: 'team-a' }, opA);
      expect(run.status).toBe(202);
      // team-b's key does not see team-a's task, even waiting for it.
      expect((await http(base, 'POST', '/tasks/poll', { types: ['score'], worker_id: 'wb', wait: 0.3 }, opB)).status).toBe(204);
      const polled = await http(base, 'POST', '/tasks/poll', { types: ['score'], worker_id: 'wa', wait: 10, lease: 30 }, opA);
      expect(polled.status).toBe(200);
      const t = polled.body;
      expect(t).toMatchObject({ type: 'score', status: 'leased', input: { text: 'good' }, run_id: run.body.run_id, step: 'score', attempt: 1, attempts: 1, namespace: 'team-a', worker_id: 'wa', lease_ms: 30_000 });
      expect(t.idempotency_key).toBe(`${run.body.run_id}:score:1`);
      expect(typeof t.lease_token).toBe('string');
      const lease = { worker_id: 'wa', lease_token: t.lease_token };

      expect((await http(base, 'GET', `/tasks/${t.id}`, undefined, opB)).status).toBe(404);
      // Viewers read tasks of their namespaces (the lease token is only ever in the poll's answer).
      const read = await http(base, 'GET', `/tasks/${t.id}`, undefined, viewer);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ id: t.id, status: 'leased', worker_id: 'wa' });
      expect(read.body.lease_token).toBeUndefined();
      expect((await http(base, 'GET', `/tasks/${t.id}`, undefined, viewerB)).status).toBe(404);
      expect((await http(base, 'POST', `/tasks/${t.id}/heartbeat`, lease, viewer)).status).toBe(403);
      const missing = await http(base, 'POST', '/tasks/tsk_nope/heartbeat', lease, opA);
      expect(missing.status).toBe(404);
      expect(missing.body.code).toBe('BATON_TASK_NOT_FOUND');
      const stolen = await http(base, 'POST', `/tasks/${t.id}/complete`, { worker_id: 'wa', lease_token: 'not-the-token', output: { score: 1 } }, opA);
      expect(stolen.status).toBe(409);
      expect(stolen.body.code).toBe('BATON_TASK_LEASE_LOST');
      expect((await http(base, 'POST', `/tasks/${t.id}/fail`, { ...lease, error: { code: 'X' } }, opA)).status).toBe(400);
      expect((await http(base, 'POST', `/tasks/${t.id}/heartbeat`, lease, opA)).status).toBe(200);

      const invalid = await http(base, 'POST', `/tasks/${t.id}/complete`, { ...lease, output: { score: 7 } }, opA);
      expect(invalid.status).toBe(422);
      expect(invalid.type).toContain('application/problem+json');
      expect(invalid.body.code).toBe('BATON_OUTPUT_SCHEMA');
      expect(invalid.body.details.errors[0]).toMatchObject({ instancePath: '/score' });
      expect((await http(base, 'GET', `/tasks/${t.id}`, undefined, opA)).body.status).toBe('leased');

      const ok = await http(base, 'POST', `/tasks/${t.id}/complete`, { ...lease, output: { score: 0.9, worker: 'wa' } }, opA);
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ status: 'completed', output: { score: 0.9, worker: 'wa' } });
      expect(ok.body.lease_token).toBeUndefined();
      const done = await b.wait(run.body.run_id, { timeoutMs: 20_000 });
      expect(done.output).toEqual({ score: 0.9, queue: 'standard', scored_by: 'wa' });
    } finally {
      await cleanup(app);
    }
  });
});
