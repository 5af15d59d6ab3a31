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
import { bin, ensureBuilt, runBaton } from '../helpers/cli.js';

let dir: string;

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'baton-serve-stop-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * `baton serve` on a store of its own, once it listens, with workflow `hold` registered (its runs
 * wait for an event that never comes): its base URL, a JSON POST, its exit, what it printed.
 */
async function serve(store: string) {
  const p = spawn(process.execPath, [bin, 'serve', '--db', join(dir, store), '--port', '0', '--log-level', 'error'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
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
  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const reg = await fetch(`${base}/workflows`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: 'name: hold\nsteps:\n  - { id: w, kind: wait, event: go, key: "input.text" }\n' });
  expect(reg.status).toBe(201);
  return { p, base, post, exited, out: () => out };
}

/** How long the process takes to exit after SIGTERM, or 'slow' past 8 s. */
async function stopped(srv: Awaited<ReturnType<typeof serve>>): Promise<{ code: number | null | 'slow'; ms: number }> {
  const t0 = Date.now();
  srv.p.kill('SIGTERM');
  const code = await Promise.race([srv.exited, new Promise<'slow'>((r) => setTimeout(() => r('slow'), 8000))]);
  return { code, ms: Date.now() - t0 };
}

describe('baton serve on SIGTERM', () => {
  it('ends long polls, event streams and waits for runs at once, then exits 0', async () => {
    const srv = await serve('store');
    const { p, base, post } = srv;
    try {
      const { run_id: streamed } = (await (await post('/runs', { workflow: 'hold', input: { text: 'a' } })).json()) as { run_id: string };

      const poll = post('/tasks/poll', { types: ['nothing'], worker_id: 'w', wait: 30 });
      const sync = post('/runs', { workflow: 'hold', input: { text: 'b' }, wait: 30 });
      const chat = post('/v1/chat/completions', { model: 'workflow/hold', messages: [{ role: 'user', content: 'c' }] });
      const events = await fetch(`${base}/runs/${streamed}/events`);
      expect(events.status).toBe(200);
      const streamText = events.text();
      await new Promise((r) => setTimeout(r, 500)); // the other requests are waiting by now

      const { code, ms } = await stopped(srv);
      expect(code, srv.out()).toBe(0);
      // Not after fetch's own keep-alive timeout (4 s) either: the server closes connections
      // whose request ended after its close began.
      expect(ms).toBeLessThan(2500);

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

  it('stops a replay in flight: the caller gets 503, the replay run is cancelled saying why', async () => {
    const srv = await serve('replay-store');
    const { p, base, post } = srv;
    try {
      // A run cancelled while it waited has no recorded answer for its wait: a live replay
      // waits for the event for real (up to the replay's 5 minutes), in the gateway's process.
      const { run_id: recorded } = (await (await post('/runs', { workflow: 'hold', input: { text: 'r' } })).json()) as { run_id: string };
      for (let i = 0; i < 200 && ((await (await fetch(`${base}/runs/${recorded}`)).json()) as { status: string }).status !== 'waiting'; i++) await new Promise((r) => setTimeout(r, 25));
      expect((await post(`/runs/${recorded}/cancel`, {})).status).toBe(200);
      const replay = post(`/runs/${recorded}/replay`, { live: true });
      replay.catch(() => undefined); // awaited below; a process killed early must not leave it unhandled
      let replayRun: { run_id: string; status: string } | undefined;
      for (let i = 0; i < 200 && replayRun?.status !== 'waiting'; i++) {
        await new Promise((r) => setTimeout(r, 25));
        replayRun = ((await (await fetch(`${base}/runs?workflow=hold`)).json()) as Array<{ run_id: string; status: string; replay_of?: string }>).find((r) => r.replay_of === recorded);
      }
      expect(replayRun?.status).toBe('waiting');

      const { code, ms } = await stopped(srv);
      expect(code, srv.out()).toBe(0);
      expect(ms).toBeLessThan(2500);
      const r = await replay;
      expect(r.status).toBe(503);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      const body = (await r.json()) as { code: string; detail: string; retryable: boolean };
      expect(body).toMatchObject({ code: 'BATON_REPLAY_INTERRUPTED', retryable: true });
      expect(body.detail).toContain(replayRun!.run_id);
      expect(body.detail).toContain('the gateway is shutting down');
      // The replay run's stored end is final and says why, not a run left waiting forever.
      const shown = runBaton(dir, ['runs', 'show', replayRun!.run_id, '--json', '--db', join(dir, 'replay-store')]);
      expect(shown.code, shown.err).toBe(0);
      const { run, events } = JSON.parse(shown.out) as { run: { status: string }; events: Array<{ type: string; data: { reason?: string } }> };
      expect(run.status).toBe('cancelled');
      expect(events.find((e) => e.type === 'run.cancelled')?.data.reason).toContain('the gateway is shutting down');
    } finally {
      p.kill('SIGKILL');
    }
  });
});
