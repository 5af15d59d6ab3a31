/**
 * Observability end to end, on every store: OpenTelemetry spans collected in memory (run →
 * step attempts → model calls with GenAI attributes; traceparent sent by http steps, taken
 * from POST /runs, handed to external workers), Prometheus metrics scraped over a real socket,
 * and the gateway's JSON logs (run ids in, secrets out). A model step talks to the fake
 * OpenAI-compatible vendor and an http step to a local server, both over real sockets.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Baton, BatonOptions } from '../../src/index.js';
import { buildGateway } from '../../src/gateway/server.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { createLogger } from '../../src/observability/logger.js';
import { FakeVendor } from '../../src/testing/fake-vendor.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(STORE_KINDS)('observability on %s', (k) => {
  const suite = engineSuite(k, 'baton-obs-');
  let vendor: FakeVendor;
  let hook: Server;
  let hookUrl = '';
  const hookHeaders: IncomingHttpHeaders[] = [];
  let app: FastifyInstance | undefined;

  beforeEach(async () => {
    vendor = await new FakeVendor().start();
    vendor.model('gpt-obs', { reply: () => 'forty-two', usage: { inputTokens: 11, outputTokens: 7 } });
    hookHeaders.length = 0;
    hook = createServer((req, res) => {
      hookHeaders.push(req.headers);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}`;
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    await vendor.close();
    await new Promise((r) => hook.close(r));
  });

  const services = (): BatonOptions['services'] => ({
    main: { provider: 'openai', model: 'gpt-obs', endpoint: `${vendor.url}/v1`, price: { input_per_mtok: 1, output_per_mtok: 2 }, retry: { max_attempts: 1 }, breaker: { failures: 1, window: '1m', cooldown: '10m' } },
  });
  const FLOW = () => `
name: traced
steps:
  - { id: ask, kind: model, service: main, prompt: "question {{ input.q }}" }
  - id: notify
    kind: http
    method: POST
    url: "${hookUrl}/notify"
    input: "{ 'answer': steps.ask.output }"
`;

  async function traced(opts: BatonOptions = {}): Promise<{ b: Baton; exporter: InMemorySpanExporter }> {
    const exporter = new InMemorySpanExporter();
    const b = await suite.baton({ services: services(), telemetry: { spanProcessor: new SimpleSpanProcessor(exporter) }, ...opts });
    return { b, exporter };
  }

  /** Spans are exported as they end; the run span is ended just after the run's end is recorded. */
  async function spansUntil(exporter: InMemorySpanExporter, pred: (s: ReadableSpan[]) => boolean): Promise<ReadableSpan[]> {
    for (let i = 0; i < 200; i++) {
      const spans = exporter.getFinishedSpans();
      if (pred(spans)) return spans;
      await sleep(10);
    }
    return exporter.getFinishedSpans();
  }
  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

  it('builds the span tree: run → step attempts → the model call with GenAI attributes; the http service gets the step span as traceparent', async () => {
    const { b, exporter } = await traced();
    await b.register(FLOW());
    const r = await b.run('traced', { q: 'life' }, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    const spans = await spansUntil(exporter, (s) => s.some((x) => x.name === 'baton.run traced'));
    const run = spans.find((s) => s.name === 'baton.run traced')!;
    expect(run).toBeDefined();
    expect(run.attributes['baton.run_id']).toBe(r.id);
    expect(parentOf(run)).toBeUndefined();
    const traceId = run.spanContext().traceId;
    // The stored context is the run span's own.
    expect((await b.store.getRun(r.id))!.trace).toContain(`${traceId}-${run.spanContext().spanId}`);

    const ask = spans.find((s) => s.name === 'baton.step ask')!;
    const notify = spans.find((s) => s.name === 'baton.step notify')!;
    for (const s of [ask, notify]) {
      expect(s.spanContext().traceId).toBe(traceId);
      expect(parentOf(s)).toBe(run.spanContext().spanId);
      expect(s.attributes['baton.step.outcome']).toBe('succeeded');
    }
    expect(ask.attributes['baton.step.kind']).toBe('model');

    const chat = spans.find((s) => s.name === 'chat gpt-obs')!;
    expect(chat).toBeDefined();
    expect(parentOf(chat)).toBe(ask.spanContext().spanId);
    expect(chat.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-obs',
      'gen_ai.response.model': 'gpt-obs',
      'gen_ai.usage.input_tokens': 11,
      'gen_ai.usage.output_tokens': 7,
      'baton.service': 'main',
    });
    expect(chat.attributes['baton.cost_usd']).toBeCloseTo((11 * 1 + 7 * 2) / 1e6, 12);

    // The http service received the notify attempt's span as its parent, in the run's trace.
    expect(hookHeaders).toHaveLength(1);
    expect(hookHeaders[0].traceparent).toBe(`00-${traceId}-${notify.spanContext().spanId}-01`);
  });

  it('a failed model call ends its span with error.type and the run span as an error; an open breaker reads 2 in /metrics', async () => {
    const { b, exporter } = await traced();
    vendor.fault('gpt-obs', '500');
    await b.register(FLOW());
    const r = await b.run('traced', { q: 'x' }, { timeoutMs: 20_000 });
    expect(r.status).toBe('failed');
    const spans = await spansUntil(exporter, (s) => s.some((x) => x.name === 'baton.run traced'));
    const chat = spans.find((s) => s.name === 'chat gpt-obs')!;
    expect(chat.status.code).toBe(2);
    expect(typeof chat.attributes['error.type']).toBe('string');
    expect(spans.find((s) => s.name === 'baton.run traced')!.status.code).toBe(2);
    expect(b.models!.breaker('main')!.state).toBe('open');

    app = buildGateway(b, { auth: 'off' });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/^baton_breaker_state\{service="main"\} 2$/m);
    expect(text).toMatch(/^baton_runs_finished_total\{workflow="traced",status="failed"\} 1$/m);
  });

  it('POST /runs with a traceparent puts the run under the caller\'s span; a task poll hands the run\'s traceparent to the worker', async () => {
    const { b, exporter } = await traced();
    await b.register('name: outsourced\nsteps:\n  - { id: work, kind: task, task_type: ocr, input: "input" }\n');
    app = buildGateway(b, { auth: 'off' });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const res = await fetch(`${url}/runs`, {
      method: 'POST', body: JSON.stringify({ workflow: 'outsourced', input: { page: 1 } }),
      headers: { 'content-type': 'application/json', traceparent: `00-${callerTrace}-${callerSpan}-01` },
    });
    expect(res.status).toBe(202);
    const { run_id: runId } = (await res.json()) as { run_id: string };

    const poll = await fetch(`${url}/tasks/poll`, { method: 'POST', body: JSON.stringify({ types: ['ocr'], worker_id: 'py-1', wait: 10 }), headers: { 'content-type': 'application/json' } });
    expect(poll.status).toBe(200);
    const task = (await poll.json()) as { id: string; lease_token: string; traceparent?: string };
    const stored = (await b.store.getRun(runId))!.trace!;
    expect(stored.startsWith(`00-${callerTrace}-`)).toBe(true);
    expect(task.traceparent).toBe(stored.split(' ')[0]);

    const done = await fetch(`${url}/tasks/${task.id}/complete`, { method: 'POST', body: JSON.stringify({ worker_id: 'py-1', lease_token: task.lease_token, output: { text: 'hi' } }), headers: { 'content-type': 'application/json' } });
    expect(done.status).toBe(200);
    expect((await b.wait(runId, { timeoutMs: 20_000 })).status).toBe('completed');
    const spans = await spansUntil(exporter, (s) => s.some((x) => x.name === 'baton.run outsourced'));
    const run = spans.find((s) => s.name === 'baton.run outsourced')!;
    expect(run.spanContext().traceId).toBe(callerTrace);
    expect(parentOf(run)).toBe(callerSpan);
    expect(`00-${callerTrace}-${run.spanContext().spanId}-01`).toBe(task.traceparent);
    // Two attempts of the task step (create the task, then resume with its result), both under the run span.
    const steps = spans.filter((s) => s.name === 'baton.step work');
    expect(steps.length).toBe(2);
    for (const s of steps) expect(parentOf(s)).toBe(run.spanContext().spanId);
  });

  it('a child run hangs under the workflow step that started it; a run started by an emitted event under the emit step', async () => {
    const { b, exporter } = await traced();
    await b.register('name: kid\nsteps:\n  - { id: twice, kind: transform, expression: "input.n * 2" }\n');
    await b.register(`
name: listener
triggers:
  - cloudevent: { type: obs.done }
    input: "{ 'n': data.n }"
steps:
  - { id: heard, kind: transform, expression: "input.n" }
`);
    await b.register(`
name: parent
steps:
  - { id: call, kind: workflow, workflow: kid, input: "{ 'n': 2 }" }
  - { id: tell, kind: emit, type: obs.done, data: "{ 'n': steps.call.output }" }
`);
    const r = await b.run('parent', {}, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    const spans = await spansUntil(exporter, (s) => ['baton.run parent', 'baton.run kid', 'baton.run listener'].every((n) => s.some((x) => x.name === n)));
    const byName = (n: string) => spans.filter((s) => s.name === n);
    const parent = byName('baton.run parent')[0];
    const kid = byName('baton.run kid')[0];
    const listener = byName('baton.run listener')[0];
    const traceId = parent.spanContext().traceId;
    // The workflow step has two attempts (start the child, resume with its end): the child hangs under the first.
    const callSteps = byName('baton.step call');
    expect(callSteps).toHaveLength(2);
    expect(callSteps.map((s) => s.spanContext().spanId)).toContain(parentOf(kid));
    expect(kid.spanContext().traceId).toBe(traceId);
    expect(byName('baton.step twice')[0].parentSpanContext?.spanId).toBe(kid.spanContext().spanId);
    const tell = byName('baton.step tell')[0];
    expect(listener.spanContext().traceId).toBe(traceId);
    expect(parentOf(listener)).toBe(tell.spanContext().spanId);
    expect((r.output as { traceparent?: string }).traceparent).toBe(`00-${traceId}-${tell.spanContext().spanId}-01`);
  });

  it('with tracing off: no trace stored, no traceparent sent, no errors', async () => {
    const b = await suite.baton({ services: services(), telemetry: false });
    expect(b.telemetry).toBeUndefined();
    await b.register(FLOW());
    const r = await b.run('traced', { q: 'off' }, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect((await b.store.getRun(r.id))!.trace).toBeUndefined();
    expect(hookHeaders[0].traceparent).toBeUndefined();
  });

  it('/metrics over a real socket: run counters, step latency histogram, queue gauges, tokens and cost; needs a viewer key when auth is on', async () => {
    const b = await suite.baton({ services: services() });
    await b.register(FLOW());
    for (let i = 0; i < 3; i++) expect((await b.run('traced', { q: String(i) }, { timeoutMs: 20_000 })).status).toBe('completed');

    app = buildGateway(b, { auth: 'required' });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    const teamViewer = await createApiKey(b.store, { name: 'team', role: 'viewer', namespaces: ['team-a'] });
    const denied = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${teamViewer.key}` } });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { detail: string }).detail).toContain('namespace *');
    const viewer = await createApiKey(b.store, { name: 'prom', role: 'viewer', namespaces: ['*'] });
    const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${viewer.key}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await res.text();
    const value = (line: RegExp) => Number(line.exec(text)?.[1]);
    expect(value(/^baton_runs_started_total\{workflow="traced"\} (\S+)$/m)).toBe(3);
    expect(value(/^baton_runs_finished_total\{workflow="traced",status="completed"\} (\S+)$/m)).toBe(3);
    expect(value(/^baton_step_duration_seconds_count\{kind="model",service="main"\} (\S+)$/m)).toBe(3);
    expect(value(/^baton_step_duration_seconds_count\{kind="http",service=""\} (\S+)$/m)).toBe(3);
    expect(value(/^baton_model_tokens_total\{service="main",direction="input"\} (\S+)$/m)).toBe(33);
    expect(value(/^baton_model_tokens_total\{service="main",direction="output"\} (\S+)$/m)).toBe(21);
    expect(value(/^baton_model_cost_usd_total\{service="main"\} (\S+)$/m)).toBeCloseTo((33 + 42) / 1e6, 12);
    expect(value(/^baton_breaker_state\{service="main"\} (\S+)$/m)).toBe(0);
    expect(value(/^baton_queue_depth (\S+)$/m)).toBe(0);
    expect(value(/^baton_queue_oldest_age_seconds (\S+)$/m)).toBe(0);
    expect(value(/^baton_approvals_pending (\S+)$/m)).toBe(0);
    // A second scrape does not count the store's totals twice.
    const again = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${viewer.key}` } })).text();
    expect(Number(/^baton_model_tokens_total\{service="main",direction="input"\} (\S+)$/m.exec(again)?.[1])).toBe(33);

    // No worker anywhere now: a new run's first step waits in the shared queue, and ages there.
    await app.close();
    await b.close();
    const idle = await suite.baton({ worker: false, services: services() });
    await idle.start('traced', { q: 'queued' });
    await sleep(30);
    app = buildGateway(idle, { auth: 'off' });
    const url2 = await app.listen({ host: '127.0.0.1', port: 0 });
    const queued = await (await fetch(`${url2}/metrics`)).text();
    expect(Number(/^baton_queue_depth (\S+)$/m.exec(queued)?.[1])).toBe(1);
    expect(Number(/^baton_queue_oldest_age_seconds (\S+)$/m.exec(queued)?.[1])).toBeGreaterThan(0);
    // Store totals are the cluster's, whichever process is scraped; counters are this process's own.
    expect(Number(/^baton_model_tokens_total\{service="main",direction="output"\} (\S+)$/m.exec(queued)?.[1])).toBe(21);
    expect(Number(/^baton_runs_started_total\{workflow="traced"\} (\S+)$/m.exec(queued)?.[1])).toBe(1);
  });

  it('gateway logs: JSON lines with run_id, and no API key or Authorization value even when sent', async () => {
    const b = await suite.baton({ services: services() });
    await b.register(FLOW());
    const lines: string[] = [];
    const stream = new Writable({ write(chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb(); } });
    const log = createLogger({ level: 'info', stream });
    const operator = await createApiKey(b.store, { name: 'ops', role: 'operator', namespaces: ['*'] });
    app = buildGateway(b, { auth: 'required', logger: log });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    // A key in the query string (a client's mistake) is logged by name only.
    const ok = await fetch(`${url}/runs?token=${operator.key}`, {
      method: 'POST', body: JSON.stringify({ workflow: 'traced', input: { q: 'logs' }, wait: 20 }),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${operator.key}` },
    });
    expect(ok.status).toBe(200);
    const { run_id: runId } = (await ok.json()) as { run_id: string };
    await fetch(`${url}/runs/${runId}`, { headers: { authorization: `Bearer ${operator.key}` } });
    await fetch(`${url}/runs`, { headers: { authorization: `Bearer bk_000000000000_${'x'.repeat(32)}` } });
    // Access lines are written as responses end: wait for the last request's (the 401).
    await until(async () => lines.some((l) => l.includes('"status":401')), 'the access line of the 401');
    const all = lines.join('\n');
    expect(all).not.toContain(operator.key);
    expect(all).not.toContain(operator.key.split('_').slice(2).join('_'));
    expect(all).not.toMatch(/x{32}/);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const started = parsed.find((p) => p.method === 'POST' && p.url === '/runs?token=…' && p.status === 200)!;
    expect(started).toMatchObject({ level: 'info', run_id: runId, key_id: operator.record.id });
    expect(typeof started.ms).toBe('number');
    expect(parsed.find((p) => p.url === `/runs/${runId}`)).toMatchObject({ run_id: runId, status: 200 });
    expect(parsed.find((p) => p.status === 401)).toBeDefined();
  });

  it('gateway logs: an internal error is one error line (request context, stack) with secrets scrubbed, and a 500 problem without internals', async () => {
    const b = await suite.baton();
    const lines: string[] = [];
    const stream = new Writable({ write(chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb(); } });
    app = buildGateway(b, { auth: 'off', logger: createLogger({ level: 'info', stream }) });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    // A store fault whose message carries a token, as a driver's might.
    const listRuns = b.store.listRuns.bind(b.store);
    b.store.listRuns = async () => {
      throw new Error('connection reset talking to db (Bearer abc.def-123)');
    };
    try {
      const res = await fetch(`${url}/runs?status=completed`);
      expect(res.status).toBe(500);
      const body = (await res.json()) as { detail: string; status: number };
      expect(body.status).toBe(500);
      expect(JSON.stringify(body)).not.toContain('connection reset');
    } finally {
      b.store.listRuns = listRuns;
    }
    await until(async () => lines.some((l) => l.includes('"status":500')), 'the access line of the 500');
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const internal = parsed.filter((p) => p.msg === 'internal error');
    expect(internal).toHaveLength(1);
    expect(internal[0]).toMatchObject({ level: 'error', method: 'GET', url: '/runs?status=…' });
    expect((internal[0].err as { message: string }).message).toBe('connection reset talking to db (Bearer [redacted])');
    expect((internal[0].err as { stack: string }).stack).toMatch(/^Error: connection reset[^\n]*\n\s+at /);
    expect(parsed.find((p) => p.msg === 'request failed')).toMatchObject({ level: 'error', status: 500 });
    expect(lines.join('\n')).not.toContain('abc.def-123');
  });
});
