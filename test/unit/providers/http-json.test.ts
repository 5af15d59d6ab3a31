/**
 * The generic JSON endpoint provider against a small local model server that answers like an
 * in-house model API would, including its failures.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHttpJsonProvider, httpJsonProvider } from '../../../src/providers/http-json.js';
import { estimateTokens, type CallOptions, type ProviderSetup } from '../../../src/providers/provider.js';
import { failure } from '../../helpers/providers.js';

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  raw: string;
}

let requests: Recorded[] = [];
let server: Server;
let endpoint: string;

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw });
      const url = new URL(req.url ?? '/', 'http://x');
      const body = () => {
        if (req.headers['content-type'] !== 'application/json') throw new Error('content-type must be application/json');
        return JSON.parse(raw);
      };
      try {
        switch (`${req.method} ${url.pathname}`) {
          case 'POST /api/v1/sentiment': {
            const { text } = body();
            if (typeof text !== 'string') return json(res, 422, { error: { message: '`text` is required' } });
            const positive = /good|great|love/i.test(text);
            return json(res, 200, {
              result: { label: positive ? 'positive' : 'negative', score: positive ? 0.9 : -0.7, tokens: text.split(' ') },
              meta: { usage: { prompt: 11, completion: 2, cached: 4 } },
            });
          }
          case 'POST /chat': {
            const { system, messages } = body();
            return json(res, 200, { reply: { text: `[${system ?? '-'}] ${messages.at(-1).content.toUpperCase()}` }, n: messages.length });
          }
          case 'POST /structured':
            return json(res, 200, { answer: { city: 'Paris', population: 2100000 } });
          case 'PUT /models/fraud-v2/score': {
            const { amount } = body();
            return json(res, 200, [{ score: amount > 1000 ? 0.95 : 0.05 }]);
          }
          case 'GET /lookup':
            return json(res, 200, { q: url.searchParams.get('q'), k: Number(url.searchParams.get('k')), tags: url.searchParams.getAll('tag') });
          case 'POST /html':
            return res.writeHead(200, { 'content-type': 'text/html' }).end('<html><head><title>Sign in - Corp SSO</title></head><body></body></html>');
          case 'POST /plain':
            return res.writeHead(200, { 'content-type': 'text/plain' }).end('OK done');
          case 'POST /empty':
            return res.writeHead(200).end();
          case 'POST /bad-request':
            return json(res, 400, { error: { message: 'field `text` must be shorter than 512 characters' } });
          case 'POST /overloaded':
            return json(res, 503, { error: 'model overloaded' });
          case 'POST /slow-down':
            return json(res, 429, { error: 'quota' }, { 'retry-after': '2' });
          case 'POST /hang':
            return; // never answers
          default:
            return json(res, 404, { error: `no route ${req.method} ${url.pathname}` });
        }
      } catch (e) {
        return json(res, 400, { error: (e as Error).message });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

afterEach(() => {
  requests = [];
});

function setup(options: Record<string, unknown>, over: Partial<ProviderSetup> = {}): ProviderSetup {
  return { service: 'inhouse', model: 'fraud-v2', endpoint, options, baseDir: '/tmp', ...over };
}

function opts(over: Partial<CallOptions> = {}): CallOptions {
  return { signal: new AbortController().signal, idempotencyKey: 'run9:classify:2', ...over };
}

describe('http provider: requests and answers', () => {
  it('POSTs the input as JSON and returns the value at the output path with the reported usage', async () => {
    const p = await httpJsonProvider(
      setup(
        { path: '/api/v1/sentiment', output: 'result.label', usage: { input_tokens: 'meta.usage.prompt', output_tokens: 'meta.usage.completion', cached_input_tokens: 'meta.usage.cached' }, operation: 'sentiment' },
        { credential: 'tok-123' },
      ),
    );
    expect(p.name).toBe('http');
    expect(p.defaultOperation).toBe('sentiment');
    const res = await p.call({ operation: 'sentiment', input: { text: 'I love it' } }, opts());
    expect(res.output).toBe('positive');
    expect(res.usage).toEqual({ inputTokens: 7, outputTokens: 2, cachedInputTokens: 4 });
    expect(requests).toHaveLength(1);
    const r = requests[0];
    expect(r.method).toBe('POST');
    expect(r.url).toBe('/api/v1/sentiment');
    expect(JSON.parse(r.raw)).toEqual({ text: 'I love it' });
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers.authorization).toBe('Bearer tok-123');
    expect(r.headers['idempotency-key']).toBe('run9:classify:2');
  });

  it('returns the whole parsed body without an output path, with estimated usage and no auth header without a credential', async () => {
    const p = await httpJsonProvider(setup({ path: 'api/v1/sentiment' }, { endpoint: `${endpoint}/` }));
    expect(p.defaultOperation).toBe('infer');
    const res = await p.call({ operation: 'infer', input: { text: 'bad day' } }, opts());
    expect(res.output).toEqual({ result: { label: 'negative', score: -0.7, tokens: ['bad', 'day'] }, meta: { usage: { prompt: 11, completion: 2, cached: 4 } } });
    expect(res.usage.inputTokens).toBe(estimateTokens('{"text":"bad day"}'));
    expect(res.usage.outputTokens).toBe(estimateTokens(JSON.stringify(res.output)));
    expect(res.usage.cachedInputTokens).toBe(0);
    expect(requests[0].url).toBe('/api/v1/sentiment');
    expect(requests[0].headers.authorization).toBeUndefined();
  });

  it('reads array indexes in output paths, both spellings', async () => {
    const p1 = await httpJsonProvider(setup({ path: '/api/v1/sentiment', output: 'result.tokens[1]' }));
    expect((await p1.call({ operation: 'infer', input: { text: 'so good' } }, opts())).output).toBe('good');
    const p2 = await httpJsonProvider(setup({ path: '/api/v1/sentiment', output: 'result.tokens.0' }));
    expect((await p2.call({ operation: 'infer', input: { text: 'so good' } }, opts())).output).toBe('so');
  });

  it('chat sends { system, messages } and returns text', async () => {
    const p = await httpJsonProvider(setup({ path: '/chat', output: 'reply.text' }));
    const res = await p.call(
      { operation: 'chat', system: 'be loud', messages: [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'hi' }, { role: 'user', content: 'again' }] },
      opts(),
    );
    expect(res.output).toBe('[be loud] AGAIN');
    expect(JSON.parse(requests[0].raw)).toEqual({
      system: 'be loud',
      messages: [
        { role: 'user', content: 'hello' },
        { role: 'assistant', content: 'hi' },
        { role: 'user', content: 'again' },
      ],
    });
    expect(res.usage.inputTokens).toBe(estimateTokens('be loud\nhello\nhi\nagain'));
    expect(res.usage.outputTokens).toBe(estimateTokens('[be loud] AGAIN'));
  });

  it('chat gives structured answers as JSON text, and streams the text in one piece', async () => {
    const p = await httpJsonProvider(setup({ path: '/structured', output: 'answer' }));
    const deltas: string[] = [];
    const res = await p.call({ operation: 'chat', messages: [{ role: 'user', content: 'capital?' }], stream: true }, opts({ onDelta: (t) => deltas.push(t) }));
    expect(res.output).toBe('{"city":"Paris","population":2100000}');
    expect(deltas).toEqual([res.output]);
    expect(JSON.parse(requests[0].raw)).toEqual({ messages: [{ role: 'user', content: 'capital?' }] });
  });

  it('uses the method, {model} in the path and the extra headers', async () => {
    const p = await httpJsonProvider(setup({ method: 'put', path: '/models/{model}/score', output: '0.score', headers: { 'X-Tenant': 'acme', 'X-Num': 7 } }));
    const res = await p.call({ operation: 'anomaly', input: { amount: 5000 } }, opts());
    expect(res.output).toBe(0.95);
    expect(requests[0]).toMatchObject({ method: 'PUT', url: '/models/fraud-v2/score' });
    expect(requests[0].headers['x-tenant']).toBe('acme');
    expect(requests[0].headers['x-num']).toBe('7');
  });

  it('GET sends no body and puts plain input values in the query string', async () => {
    const p = await httpJsonProvider(setup({ method: 'GET', path: '/lookup', operation: 'retrieve' }));
    const res = await p.call({ operation: 'retrieve', input: { q: 'red shoes', k: 3, tag: ['a', 'b'] } }, opts());
    expect(res.output).toEqual({ q: 'red shoes', k: 3, tags: ['a', 'b'] });
    expect(requests[0].method).toBe('GET');
    expect(requests[0].raw).toBe('');
    const err = await failure(p.call({ operation: 'retrieve', input: { q: { nested: true } } }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.retryable).toBe(false);
  });
});

describe('http provider: errors', () => {
  it('an HTML page is a bad response', async () => {
    const p = await httpJsonProvider(setup({ path: '/html' }));
    const err = await failure(p.call({ operation: 'infer', input: { a: 1 } }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.message).toContain('Sign in - Corp SSO');
  });

  it('plain text and an empty body are bad responses', async () => {
    let err = await failure((await httpJsonProvider(setup({ path: '/plain' }))).call({ operation: 'infer', input: {} }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.message).toContain('not JSON: OK done');
    err = await failure((await httpJsonProvider(setup({ path: '/empty' }))).call({ operation: 'infer', input: {} }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.message).toContain('empty body');
  });

  it('an output path that is not in the answer is a bad response naming the path', async () => {
    const p = await httpJsonProvider(setup({ path: '/api/v1/sentiment', output: 'result.labels.0' }));
    const err = await failure(p.call({ operation: 'infer', input: { text: 'x' } }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.message).toContain('`result.labels.0`');
    expect(err.message).toContain('result, meta');
  });

  it('non-2xx answers go through the shared HTTP status error', async () => {
    let err = await failure((await httpJsonProvider(setup({ path: '/bad-request' }))).call({ operation: 'infer', input: {} }, opts()));
    expect(err.code).toBe('BATON_MODEL_HTTP');
    expect(err.details.httpStatus).toBe(400);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('shorter than 512 characters');

    err = await failure((await httpJsonProvider(setup({ path: '/overloaded' }))).call({ operation: 'infer', input: {} }, opts()));
    expect(err.code).toBe('BATON_MODEL_HTTP');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('model overloaded');

    err = await failure((await httpJsonProvider(setup({ path: '/slow-down' }))).call({ operation: 'infer', input: {} }, opts()));
    expect(err.code).toBe('BATON_MODEL_RATE_LIMITED');
    expect(err.details.retryAfterMs).toBe(2000);

    err = await failure((await httpJsonProvider(setup({ path: '/nowhere' }))).call({ operation: 'infer', input: {} }, opts()));
    expect(err.details.httpStatus).toBe(404);
  });

  it('connection refused is a network error', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const dead = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    await new Promise((r) => s.close(r));
    const p = await httpJsonProvider(setup({ path: '/x' }, { endpoint: dead }));
    const err = await failure(p.call({ operation: 'infer', input: {} }, opts()));
    expect(err.code).toBe('BATON_MODEL_NETWORK');
    expect(err.retryable).toBe(true);
    expect(err.details.endpoint).toBe(dead);
  });

  it('an abort rejects promptly with the signal reason', async () => {
    const p = await httpJsonProvider(setup({ path: '/hang' }));
    const ac = new AbortController();
    const reason = new Error('step timed out');
    const started = Date.now();
    setTimeout(() => ac.abort(reason), 50);
    await expect(p.call({ operation: 'infer', input: {} }, opts({ signal: ac.signal }))).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('bad settings are configuration errors', () => {
    expect(() => createHttpJsonProvider(setup({}, { endpoint: undefined }))).toThrow(/needs an `endpoint`/);
    expect(() => createHttpJsonProvider(setup({ method: 'TRACE' }))).toThrow(/options.method/);
    expect(() => createHttpJsonProvider(setup({ operation: 'dance' }))).toThrow(/options.operation/);
    expect(() => createHttpJsonProvider(setup({ usage: { tokens: 'a.b' } }))).toThrow(/options.usage.tokens/);
    expect(() => createHttpJsonProvider(setup({ headers: { a: { b: 1 } } }))).toThrow(/options.headers/);
  });
});
