/**
 * `baton serve --strict-egress` (a real process, real sockets): an http step aimed at a server on
 * 127.0.0.1 fails with BATON_EGRESS_DENIED and the server receives nothing; the same server is
 * reached by a `baton serve` without the flag (the dev default).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBuilt } from '../helpers/cli.js';

let dir: string;
let server: Server;
let port = 0;
const hits: string[] = [];
const procs: ChildProcess[] = [];

function serve(args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [bin, 'serve', '--port', '0', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /baton serve: (http:\/\/[^\s]+) /.exec(out);
      if (m) res(m[1]);
    };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', onData);
    p.on('exit', (code) => rej(new Error(`baton serve exited ${code}: ${out}`)));
  });
}

async function runThrough(base: string, path: string): Promise<Record<string, any>> {
  const wf = { name: `call-${path.slice(1)}`, steps: [{ id: 'call', kind: 'http', url: `http://127.0.0.1:${port}${path}`, retry: { max_attempts: 1 } }] };
  expect((await fetch(`${base}/workflows`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(wf) })).status).toBe(201);
  const res = await fetch(`${base}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ workflow: wf.name, wait: 20 }) });
  return (await res.json()) as Record<string, any>;
}

describe('baton serve --strict-egress', () => {
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'baton-strict-egress-'));
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses loopback with the flag and reaches it without', async () => {
    const strict = await serve(['--db', join(dir, 'strict'), '--strict-egress']);
    const denied = await runThrough(strict, '/denied');
    expect(denied.status).toBe('failed');
    expect(JSON.stringify(denied.error)).toMatch(/BATON_EGRESS_DENIED.*loopback is denied/);
    expect(hits).toEqual([]);
    const open = await serve(['--db', join(dir, 'open')]);
    const ok = await runThrough(open, '/allowed');
    expect(ok.status).toBe('completed');
    expect(hits).toEqual(['/allowed']);
  });
});
