/**
 * Observability of a real `baton serve` process: JSON log lines on its stdout (`--log-level
 * debug`: requests and run lifecycle with run ids, no key), `GET /metrics` on `--metrics-port`
 * without a key, and spans exported over OTLP/HTTP to a collector (a local HTTP server here)
 * configured by `telemetry:` in baton.config.yaml, flushed when the process stops.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin/baton.js');
let dir: string;
let collector: Server;
const exported: Array<{ path: string; type: string; body: string }> = [];

beforeAll(async () => {
  // The CLI runs from dist/: build it from the current sources.
  spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  dir = mkdtempSync(join(tmpdir(), 'baton-obs-e2e-'));
  collector = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      exported.push({ path: req.url ?? '', type: req.headers['content-type'] ?? '', body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  const port = (collector.address() as { port: number }).port;
  writeFileSync(join(dir, 'fns.mjs'), 'export async function shout(s) { return String(s).toUpperCase(); }\n');
  writeFileSync(join(dir, 'baton.config.yaml'), `functions:\n  - ./fns.mjs\ntelemetry:\n  otlp_endpoint: http://127.0.0.1:${port}\n  service_name: baton-e2e\n`);
}, 120_000);

afterAll(async () => {
  await new Promise((r) => collector.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function serve(args: string[]): { proc: ChildProcess; out: () => string; ready: Promise<{ api: string; metrics: string }>; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, [bin, 'serve', '--db', join(dir, 'store'), '--port', '0', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '' } });
  let out = '';
  const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const ready = new Promise<{ api: string; metrics: string }>((res, rej) => {
    const look = () => {
      const api = /baton serve: (http:\/\/\S+) /.exec(out)?.[1];
      const metrics = /metrics on (http:\/\/\S+)/.exec(out)?.[1];
      if (api && metrics) res({ api, metrics });
    };
    proc.stdout!.on('data', (d: Buffer) => ((out += d.toString()), look()));
    proc.stderr!.on('data', (d: Buffer) => ((out += d.toString()), look()));
    exit.then((code) => rej(new Error(`baton serve exited ${code}: ${out}`)));
  });
  return { proc, out: () => out, ready, exit };
}

describe('baton serve observability', () => {
  it('logs JSON lines with run ids, serves /metrics on --metrics-port, and exports the run\'s spans over OTLP when it stops', async () => {
    const s = serve(['--log-level', 'debug', '--metrics-port', '0']);
    const { api, metrics } = await s.ready;
    try {
      const reg = await fetch(`${api}/workflows`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: 'name: loud\nsteps:\n  - { id: up, kind: function, function: shout, input: input.text }\n' });
      expect(reg.status).toBe(201);
      const callerTrace = '0af7651916cd43dd8448eb211c80319c';
      const res = await fetch(`${api}/runs?token=bk_0123456789ab_${'Q'.repeat(32)}`, {
        method: 'POST', body: JSON.stringify({ workflow: 'loud', input: { text: 'hi' }, wait: 20 }),
        headers: { 'content-type': 'application/json', traceparent: `00-${callerTrace}-b7ad6b7169203331-01`, authorization: 'Bearer not-a-real-key-but-secret' },
      });
      expect(res.status).toBe(200);
      const run = (await res.json()) as { run_id: string; output: unknown };
      expect(run.output).toBe('HI');

      const m = await fetch(metrics);
      expect(m.status).toBe(200);
      expect(m.headers.get('content-type')).toContain('version=0.0.4');
      const text = await m.text();
      expect(text).toMatch(/^baton_runs_started_total\{workflow="loud"\} 1$/m);
      expect(text).toMatch(/^baton_runs_finished_total\{workflow="loud",status="completed"\} 1$/m);
      expect(text).toMatch(/^baton_step_duration_seconds_count\{kind="function",service=""\} 1$/m);
      expect((await fetch(metrics.replace('/metrics', '/other'))).status).toBe(404);

      s.proc.kill('SIGTERM');
      expect(await s.exit).toBe(0);
      const out = s.out();
      expect(out).not.toContain('Q'.repeat(32));
      expect(out).not.toContain('not-a-real-key-but-secret');
      const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.find((l) => l.msg === 'request' && l.method === 'POST' && l.status === 200 && l.run_id === run.run_id)).toMatchObject({ level: 'info', url: '/runs?token=…' });
      expect(lines.find((l) => l.msg === 'run completed' && l.run_id === run.run_id)).toMatchObject({ level: 'debug' });
      expect(lines.find((l) => l.msg === 'step succeeded' && l.run_id === run.run_id)).toMatchObject({ step: 'up', attempt: 1 });

      // Spans went to the collector (OTLP/HTTP) by the time the process exited.
      const traces = exported.filter((e) => e.path === '/v1/traces');
      expect(traces.length).toBeGreaterThan(0);
      const all = traces.map((t) => t.body).join('\n');
      expect(all).toContain('baton.run loud');
      expect(all).toContain('baton.step up');
      expect(all).toContain('baton-e2e');
      expect(all).toContain(callerTrace);
    } finally {
      s.proc.kill('SIGKILL');
    }
  });

  it('baton worker --metrics-port serves its metrics too', async () => {
    const proc = spawn(process.execPath, [bin, 'worker', '--db', join(dir, 'store'), '--metrics-port', '0', '--log-level', 'warn'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '' } });
    try {
      let out = '';
      const url = await new Promise<string>((res, rej) => {
        const look = (d: Buffer) => {
          out += d.toString();
          const m = /metrics on (http:\/\/\S+)/.exec(out);
          if (m) res(m[1]);
        };
        proc.stdout!.on('data', look);
        proc.stderr!.on('data', look);
        proc.on('exit', (code) => rej(new Error(`baton worker exited ${code}: ${out}`)));
      });
      const text = await (await fetch(url)).text();
      expect(text).toMatch(/^baton_queue_depth 0$/m);
      expect(text).toContain('# TYPE baton_step_duration_seconds histogram');
      const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
      proc.kill('SIGTERM');
      expect(await exit).toBe(0);
    } finally {
      proc.kill('SIGKILL');
    }
  });

  it('refuses a bad --log-level and --metrics-port before starting anything', async () => {
    for (const [cmd, ...args] of [['serve', '--log-level', 'loud'], ['serve', '--metrics-port', 'x'], ['worker', '--metrics-port', '70000']]) {
      const r = spawnSync(process.execPath, [bin, cmd, '--db', join(dir, 'store2'), ...(cmd === 'serve' ? ['--port', '0'] : []), ...args], { cwd: dir, encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(args[0]);
      expect(r.stderr).toContain(args[1]);
    }
  });
});
