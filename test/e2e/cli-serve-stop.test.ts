/**
 * `baton serve` stops promptly on SIGTERM while requests are held open: a task long poll, a run's
 * event stream, a sync start and a chat completion waiting for their runs. The server's close
 * waits for requests in flight, so each must end when the gateway begins to close, not when its
 * own wait runs out (30 s, 120 s). The client is Node's fetch, which keeps connections alive.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBuilt } from '../helpers/cli.js';

let dir: string;

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'baton-serve-stop-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('baton serve on SIGTERM', () => {
  it('ends long polls, event streams and waits for runs at once, then exits 0', async () => {
    const p = spawn(process.execPath, [bin, 'serve', '--db', join(dir, 'store'), '--port', '0', '--log-level', 'error'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((res) => p.on('exit', (code) => res(code)));
    let out = '';
    const base = await new Promise<string>((res, rej) => {
      const onData = (d: Buffer) => {
        out += d.toString();
        const m = /baton serve: (http:\/\/\S+) /.exec(out);
        if (m) res(m[1]);
      };
      p.stdout.on('data', onData);
      p.stderr.on('data', onData);
      void exited.then((code) => rej(new Error(`baton serve exited ${code}: ${out}`)));
    });
    try {
      const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      // Runs of `hold` wait for an event that never comes.
      const reg = await fetch(`${base}/workflows`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: 'name: hold\nsteps:\n  - { id: w, kind: wait, event: go, key: "input.text" }\n' });
      expect(reg.status).toBe(201);
      const { run_id: streamed } = (await (await post('/runs', { workflow: 'hold', input: { text: 'a' } })).json()) as { run_id: string };

      const poll = post('/tasks/poll', { types: ['nothing'], worker_id: 'w', wait: 30 });
      const sync = post('/runs', { workflow: 'hold', input: { text: 'b' }, wait: 30 });
      const chat = post('/v1/chat/completions', { model: 'workflow/hold', messages: [{ role: 'user', content: 'c' }] });
      const events = await fetch(`${base}/runs/${streamed}/events`);
      expect(events.status).toBe(200);
      const streamText = events.text();
      await new Promise((r) => setTimeout(r, 500)); // the other requests are waiting by now

      const t0 = Date.now();
      p.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'slow'>((r) => setTimeout(() => r('slow'), 8000))]);
      expect(code, out).toBe(0);
      // Not after fetch's own keep-alive timeout (4 s) either: the server closes connections
      // whose request ended after its close began.
      expect(Date.now() - t0).toBeLessThan(2500);

      expect((await poll).status).toBe(204); // no task: the worker polls again
      const s = await sync;
      expect(s.status).toBe(202); // as at the deadline: the run goes on
      expect(((await s.json()) as { status: string }).status).toMatch(/^(running|waiting)$/);
      const c = await chat;
      expect(c.status).toBe(503);
      expect(c.headers.get('x-should-retry')).toBe('false');
      expect(((await c.json()) as { error: { code: string; run_id: string } }).error).toMatchObject({ code: 'server_shutting_down', run_id: expect.stringMatching(/^run_/) });
      const text = await streamText;
      expect(text).toContain('event: run.created');
      expect(text).not.toContain('event: end'); // the run has not ended: a client resumes from Last-Event-ID
    } finally {
      p.kill('SIGKILL');
    }
  });
});
