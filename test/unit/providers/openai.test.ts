import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider } from '../../../src/providers/openai.js';
import type { CallOptions, ModelRequest, Provider } from '../../../src/providers/provider.js';
import { FakeVendor } from '../../../src/testing/fake-vendor.js';
import { failure, deadPort } from '../../helpers/providers.js';

const vendor = new FakeVendor({ apiKey: 'sk-test' });
let provider: Provider;

beforeAll(async () => {
  await vendor.start();
  provider = await openaiProvider({ service: 'gpt', model: 'gpt-test', endpoint: `${vendor.url}/v1`, credential: 'sk-test', options: {}, baseDir: '.' });
});
afterAll(() => vendor.close());
afterEach(() => vendor.reset());

function opts(extra: Partial<CallOptions> = {}): CallOptions {
  return { signal: new AbortController().signal, idempotencyKey: 'run1:step:1', ...extra };
}

const chat = (extra: Partial<ModelRequest> = {}): ModelRequest => ({
  operation: 'chat',
  system: 'Be brief.',
  messages: [{ role: 'user', content: 'hello there' }],
  ...extra,
});

describe('openai provider: chat', () => {
  it('answers a plain chat with the text, usage split into cached and non-cached input, finish reason and model', async () => {
    vendor.model('gpt-test', { usage: { inputTokens: 100, cachedInputTokens: 40, outputTokens: 7 } });
    const res = await provider.call(chat({ maxTokens: 50, temperature: 0.2 }), opts());
    expect(res.output).toBe('Answer from gpt-test: hello there');
    expect(res.usage).toEqual({ inputTokens: 100, outputTokens: 7, cachedInputTokens: 40 });
    expect(res.finishReason).toBe('stop');
    expect(res.model).toBe('gpt-test');

    const req = vendor.lastRequest('gpt-test')!;
    expect(req.path).toBe('/v1/chat/completions');
    expect(req.headers['idempotency-key']).toBe('run1:step:1');
    expect(req.headers['authorization']).toBe('Bearer sk-test');
    const body = req.body as Record<string, unknown>;
    expect(body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello there' },
    ]);
    expect(body.max_tokens).toBe(50);
    expect(body.temperature).toBe(0.2);
    expect(body.stream).not.toBe(true);
  });

  it('uses the programmed reply and reports the length finish reason', async () => {
    vendor.model('gpt-test', { reply: (r) => `You asked: ${r.prompt.toUpperCase()} and more words here` });
    const res = await provider.call(chat({ maxTokens: 2 }), opts());
    // 2 tokens ≈ 8 characters
    expect(res.output).toBe('You aske');
    expect(res.finishReason).toBe('length');
  });

  it('streams: deltas arrive one by one and the answer is their concatenation, with usage', async () => {
    vendor.model('gpt-test', { chunkDelayMs: 2, usage: { inputTokens: 12, cachedInputTokens: 3, outputTokens: 9 } });
    const deltas: string[] = [];
    const res = await provider.call(chat({ stream: true }), opts({ onDelta: (t) => deltas.push(t) }));
    expect(deltas.length).toBeGreaterThan(2);
    expect(res.output).toBe(deltas.join(''));
    expect(res.output).toBe('Answer from gpt-test: hello there');
    expect(res.usage).toEqual({ inputTokens: 12, outputTokens: 9, cachedInputTokens: 3 });
    expect(res.finishReason).toBe('stop');
    expect(res.model).toBe('gpt-test');
    const body = vendor.lastRequest('gpt-test')!.body as Record<string, unknown>;
    expect(body.stream).toBe(true);
    expect(body.stream_options).toEqual({ include_usage: true });
    expect(vendor.lastRequest('gpt-test')!.headers['idempotency-key']).toBe('run1:step:1');
  });

  it('asks for JSON with response_format json_schema and returns the raw text', async () => {
    const schema = { type: 'object', properties: { label: { type: 'string', enum: ['spam', 'ham'] }, confidence: { type: 'number' } }, required: ['label', 'confidence'] };
    const res = await provider.call(chat({ schema }), opts());
    expect(typeof res.output).toBe('string');
    const parsed = JSON.parse(res.output as string) as { label: string; confidence: number };
    expect(['spam', 'ham']).toContain(parsed.label);
    expect(parsed.confidence).toBe(0.9);
    const rf = (vendor.lastRequest('gpt-test')!.body as { response_format: { type: string; json_schema: { schema: unknown; strict: boolean } } }).response_format;
    expect(rf.type).toBe('json_schema');
    expect(rf.json_schema.schema).toEqual(schema);
    expect(rf.json_schema.strict).toBe(false);
  });

  it('returns JSON that does not fill the schema unvalidated (the caller validates)', async () => {
    vendor.model('gpt-test', { reply: () => '{"label": 42' });
    const res = await provider.call(chat({ schema: { type: 'object', properties: { label: { type: 'string' } } } }), opts());
    expect(res.output).toBe('{"label": 42');
  });

  it('sends json_object when structuredOutputs is off', async () => {
    const p = await openaiProvider({ service: 'local', model: 'llama', endpoint: `${vendor.url}/v1`, credential: 'sk-test', options: { structuredOutputs: false }, baseDir: '.' });
    const res = await p.call(chat({ schema: { type: 'object' } }), opts());
    expect(JSON.parse(res.output as string)).toMatchObject({ confidence: 0.9 });
    expect((vendor.lastRequest('llama')!.body as { response_format: unknown }).response_format).toEqual({ type: 'json_object' });
  });

  it('low-confidence fault answers valid JSON with confidence 0.1', async () => {
    vendor.fault('gpt-test', 'low-confidence', 1);
    const res = await provider.call(chat({ schema: { type: 'object', properties: { answer: { type: 'string' } } } }), opts());
    expect(JSON.parse(res.output as string)).toMatchObject({ confidence: 0.1 });
  });

  it('empty fault gives an empty answer, not an error', async () => {
    vendor.fault('gpt-test', 'empty', 1);
    const res = await provider.call(chat(), opts());
    expect(res.output).toBe('');
    expect(res.usage.outputTokens).toBe(0);
  });

  it('does not do other operations', async () => {
    const err = await failure(provider.call({ operation: 'classify', input: 'x' }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.details).toMatchObject({ operation: 'classify', operations: 'chat, embed' });
    expect(vendor.calls()).toBe(0);
  });
});

describe('openai provider: embed', () => {
  it('embeds a list of strings through /v1/embeddings', async () => {
    const p = await openaiProvider({ service: 'emb', model: 'embed-test', endpoint: `${vendor.url}/v1`, credential: 'sk-test', options: {}, baseDir: '.' });
    const res = await p.call({ operation: 'embed', input: ['the cat sat', 'the cat sat', 'quantum flux'] }, opts({ idempotencyKey: 'r:e:1' }));
    const { embeddings } = res.output as { embeddings: number[][] };
    expect(embeddings).toHaveLength(3);
    expect(embeddings[0]).toHaveLength(64);
    expect(embeddings[0]).toEqual(embeddings[1]);
    expect(embeddings[0]).not.toEqual(embeddings[2]);
    expect(res.usage.inputTokens).toBeGreaterThan(0);
    expect(res.model).toBe('embed-test');
    const req = vendor.lastRequest('embed-test')!;
    expect(req.path).toBe('/v1/embeddings');
    expect(req.headers['idempotency-key']).toBe('r:e:1');
  });

  it('embeds a single string', async () => {
    const p = await openaiProvider({ service: 'emb', model: 'embed-test', endpoint: `${vendor.url}/v1`, credential: 'sk-test', options: {}, baseDir: '.' });
    const res = await p.call({ operation: 'embed', input: 'one' }, opts());
    expect((res.output as { embeddings: number[][] }).embeddings).toHaveLength(1);
  });

  it('maps embedding faults too', async () => {
    const p = await openaiProvider({ service: 'emb', model: 'embed-test', endpoint: `${vendor.url}/v1`, credential: 'sk-test', options: {}, baseDir: '.' });
    vendor.fault('embed-test', '503', 1).fault('embed-test', 'malformed', 1);
    const e1 = await failure(p.call({ operation: 'embed', input: 'x' }, opts()));
    expect(e1.code).toBe('BATON_MODEL_HTTP');
    expect(e1.retryable).toBe(true);
    const e2 = await failure(p.call({ operation: 'embed', input: 'x' }, opts()));
    expect(e2.code).toBe('BATON_MODEL_BAD_RESPONSE');
  });
});

describe('openai provider: failures map to one typed error each, never retried', () => {
  it.each([
    ['500', 500, true],
    ['503', 503, true],
    ['400', 400, false],
    ['401', 401, false],
  ] as const)('fault %s → BATON_MODEL_HTTP %s, retryable: %s', async (fault, status, retryable) => {
    vendor.fault('gpt-test', fault);
    for (const stream of [false, true]) {
      const err = await failure(provider.call(chat({ stream }), opts()));
      expect(err.code).toBe('BATON_MODEL_HTTP');
      expect(err.details.httpStatus).toBe(status);
      expect(err.retryable).toBe(retryable);
    }
    expect(vendor.calls('gpt-test')).toBe(2);
  });

  it('a wrong API key is a non-retryable 401 with the vendor message', async () => {
    const p = await openaiProvider({ service: 'gpt', model: 'gpt-test', endpoint: `${vendor.url}/v1`, credential: 'sk-wrong', options: {}, baseDir: '.' });
    const err = await failure(p.call(chat(), opts()));
    expect(err.code).toBe('BATON_MODEL_HTTP');
    expect(err.details.httpStatus).toBe(401);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('Incorrect API key');
  });

  it('429 → BATON_MODEL_RATE_LIMITED with retryAfterMs from Retry-After', async () => {
    vendor.fault('gpt-test', { kind: '429', retryAfterSec: 7 });
    for (const stream of [false, true]) {
      const err = await failure(provider.call(chat({ stream }), opts()));
      expect(err.code).toBe('BATON_MODEL_RATE_LIMITED');
      expect(err.retryable).toBe(true);
      expect(err.details.retryAfterMs).toBe(7000);
    }
    expect(vendor.calls('gpt-test')).toBe(2);
  });

  it('a 200 HTML page → BATON_MODEL_BAD_RESPONSE naming the protocol', async () => {
    vendor.fault('gpt-test', 'html');
    for (const stream of [false, true]) {
      const err = await failure(provider.call(chat({ stream }), opts()));
      expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
      expect(err.details.protocol).toBe('OpenAI chat completions');
      expect(err.message).toContain('text/html');
    }
  });

  it('a 502 HTML gateway page → retryable BATON_MODEL_HTTP naming the page', async () => {
    vendor.fault('gpt-test', { kind: 'html', status: 502 }, 1);
    const err = await failure(provider.call(chat(), opts()));
    expect(err.code).toBe('BATON_MODEL_HTTP');
    expect(err.details.httpStatus).toBe(502);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('502 Bad Gateway');
  });

  it('a truncated JSON body → BATON_MODEL_BAD_RESPONSE', async () => {
    vendor.fault('gpt-test', 'malformed');
    for (const stream of [false, true]) {
      const err = await failure(provider.call(chat({ stream }), opts()));
      expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
      expect(err.retryable).toBe(true);
    }
  });

  it('connection refused → BATON_MODEL_NETWORK naming the endpoint', async () => {
    const endpoint = `http://127.0.0.1:${await deadPort()}/v1`;
    const p = await openaiProvider({ service: 'gpt', model: 'gpt-test', endpoint, credential: 'k', options: {}, baseDir: '.' });
    for (const req of [chat(), chat({ stream: true }), { operation: 'embed' as const, input: 'x' }]) {
      const err = await failure(p.call(req, opts()));
      expect(err.code).toBe('BATON_MODEL_NETWORK');
      expect(err.details.endpoint).toBe(endpoint);
      expect(err.retryable).toBe(true);
      expect(String(err.details.detail)).toMatch(/ECONNREFUSED/);
    }
  });

  it('a stream cut mid-answer → BATON_MODEL_STREAM_BROKEN, not a short answer', async () => {
    vendor.model('gpt-test', { reply: () => 'one two three four five six seven eight nine ten' });
    vendor.fault('gpt-test', 'stream-cut');
    const deltas: string[] = [];
    const err = await failure(provider.call(chat({ stream: true }), opts({ onDelta: (t) => deltas.push(t) })));
    expect(err.code).toBe('BATON_MODEL_STREAM_BROKEN');
    expect(err.retryable).toBe(true);
    expect(deltas.length).toBeGreaterThan(0);
  });

  it('a non-streamed body cut half-way → BATON_MODEL_STREAM_BROKEN', async () => {
    vendor.fault('gpt-test', 'stream-cut', 1);
    const err = await failure(provider.call(chat(), opts()));
    expect(err.code).toBe('BATON_MODEL_STREAM_BROKEN');
    expect(err.retryable).toBe(true);
  });

  it('a stalled stream → BATON_MODEL_STREAM_BROKEN after streamIdleMs', async () => {
    vendor.fault('gpt-test', 'stream-stall');
    const t0 = Date.now();
    const err = await failure(provider.call(chat({ stream: true }), opts({ streamIdleMs: 200 })));
    const took = Date.now() - t0;
    expect(err.code).toBe('BATON_MODEL_STREAM_BROKEN');
    expect(err.message).toContain('200 ms');
    expect(took).toBeGreaterThanOrEqual(180);
    expect(took).toBeLessThan(3000);
  });

  it('a stream without a finish reason → BATON_MODEL_STREAM_BROKEN', async () => {
    // A server that closes the stream cleanly but never says why it stopped.
    const { createServer: createHttp } = await import('node:http');
    const srv = createHttp((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { content: 'partial' }, finish_reason: null }] })}\n\n`,
      );
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as { port: number }).port;
      const p = await openaiProvider({ service: 'gpt', model: 'm', endpoint: `http://127.0.0.1:${port}/v1`, options: {}, baseDir: '.' });
      const err = await failure(p.call(chat({ stream: true }), opts()));
      expect(err.code).toBe('BATON_MODEL_STREAM_BROKEN');
      expect(err.message).toContain('finish');
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it.each([false, true])('caller abort (stream: %s) rejects promptly with the abort reason', async (stream) => {
    vendor.fault('gpt-test', stream ? 'stream-stall' : 'timeout');
    const ac = new AbortController();
    const reason = new Error('step timeout');
    setTimeout(() => ac.abort(reason), 100);
    const t0 = Date.now();
    const err = await provider.call(chat({ stream }), opts({ signal: ac.signal, streamIdleMs: 10_000 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBe(reason);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('an already aborted signal sends nothing', async () => {
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    await expect(provider.call(chat(), opts({ signal: ac.signal }))).rejects.toThrow('gone');
    expect(vendor.calls()).toBe(0);
  });
});
