import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { anthropicProvider } from '../../../src/providers/anthropic.js';
import type { CallOptions, ModelRequest, Provider } from '../../../src/providers/provider.js';
import { FakeVendor } from '../../../src/testing/fake-vendor.js';
import { failure, deadPort } from '../../helpers/providers.js';

const MODEL = 'claude-sonnet-4-5';
const vendor = new FakeVendor({ apiKey: 'ak-test' });
let provider: Provider;

function make(model = MODEL, extra: { credential?: string; endpoint?: string; options?: Record<string, unknown> } = {}) {
  return anthropicProvider({
    service: 'claude',
    model,
    endpoint: extra.endpoint ?? `${vendor.url}/v1`,
    credential: 'credential' in extra ? extra.credential : 'ak-test',
    options: extra.options ?? {},
    baseDir: '.',
  });
}

beforeAll(async () => {
  await vendor.start();
  provider = await make();
});
afterAll(() => vendor.close());
afterEach(() => vendor.reset());

function opts(extra: Partial<CallOptions> = {}): CallOptions {
  return { signal: new AbortController().signal, idempotencyKey: 'run9:ask:2', ...extra };
}

const chat = (extra: Partial<ModelRequest> = {}): ModelRequest => ({
  operation: 'chat',
  system: 'You are terse.',
  messages: [
    { role: 'user', content: 'first' },
    { role: 'assistant', content: 'ok' },
    { role: 'user', content: 'summarise this' },
  ],
  ...extra,
});

describe('anthropic provider: chat', () => {
  it('answers with text, usage (cache reads apart), stop reason and model; sends the Anthropic headers', async () => {
    vendor.model(MODEL, { usage: { inputTokens: 100, cachedInputTokens: 40, outputTokens: 7 } });
    const res = await provider.call(chat({ maxTokens: 300, temperature: 0.3 }), opts());
    expect(res.output).toBe(`Answer from ${MODEL}: summarise this`);
    expect(res.usage).toEqual({ inputTokens: 100, outputTokens: 7, cachedInputTokens: 40 });
    expect(res.finishReason).toBe('end_turn');
    expect(res.model).toBe(MODEL);

    const req = vendor.lastRequest(MODEL)!;
    expect(req.path).toBe('/v1/messages');
    expect(req.headers['x-api-key']).toBe('ak-test');
    expect(req.headers['anthropic-version']).toBeTruthy();
    expect(req.headers['idempotency-key']).toBe('run9:ask:2');
    const body = req.body as Record<string, unknown>;
    expect(body.system).toEqual([{ type: 'text', text: 'You are terse.' }]);
    expect((body.messages as unknown[]).length).toBe(3);
    expect(body.max_tokens).toBe(300);
    expect(body.temperature).toBe(0.3);
  });

  it('streams: deltas arrive and join to the answer, usage from message_start/message_delta', async () => {
    vendor.model(MODEL, { chunkDelayMs: 2, usage: { inputTokens: 20, cachedInputTokens: 5, outputTokens: 11 } });
    const deltas: string[] = [];
    const res = await provider.call(chat({ stream: true }), opts({ onDelta: (t) => deltas.push(t) }));
    expect(deltas.length).toBeGreaterThan(2);
    expect(res.output).toBe(deltas.join(''));
    expect(res.output).toBe(`Answer from ${MODEL}: summarise this`);
    expect(res.usage).toEqual({ inputTokens: 20, outputTokens: 11, cachedInputTokens: 5 });
    expect(res.finishReason).toBe('end_turn');
    const req = vendor.lastRequest(MODEL)!;
    expect((req.body as { stream?: boolean }).stream).toBe(true);
    expect(req.headers['idempotency-key']).toBe('run9:ask:2');
  });

  it('max_tokens cut → finish reason max_tokens', async () => {
    const res = await provider.call(chat({ maxTokens: 3 }), opts());
    expect(res.finishReason).toBe('max_tokens');
    expect(res.output).toBe(`Answer from ${MODEL}: summarise this`.slice(0, 12));
  });

  const schema = { type: 'object', properties: { title: { type: 'string' }, confidence: { type: 'number' } }, required: ['title', 'confidence'], additionalProperties: false };

  it('structured output through the forced json tool comes back as raw JSON text (plain and streamed)', async () => {
    // Older models get JSON through a forced `json` tool; the option forces it on newer ones.
    const cases = [
      ['claude-3-haiku-20240307', await make('claude-3-haiku-20240307')],
      [MODEL, await make(MODEL, { options: { structuredOutputMode: 'jsonTool' } })],
    ] as const;
    for (const [model, p] of cases) {
      for (const stream of [false, true]) {
        const res = await p.call(chat({ schema, stream }), opts());
        expect(typeof res.output).toBe('string');
        expect(JSON.parse(res.output as string)).toEqual({ title: 'summarise this', confidence: 0.9 });
        const body = vendor.lastRequest(model)!.body as { tools?: Array<{ name: string; input_schema: unknown }>; output_config?: unknown };
        expect(body.tools?.[0].name).toBe('json');
        expect(body.tools?.[0].input_schema).toMatchObject({ properties: schema.properties });
        expect(body.output_config).toBeUndefined();
      }
    }
  });

  it('structured output through output_config.format on models that support it (plain and streamed)', async () => {
    for (const stream of [false, true]) {
      const res = await provider.call(chat({ schema, stream }), opts());
      expect(JSON.parse(res.output as string)).toEqual({ title: 'summarise this', confidence: 0.9 });
      const body = vendor.lastRequest(MODEL)!.body as { output_config?: { format?: { type: string; schema: unknown } }; tools?: unknown };
      expect(body.output_config?.format?.type).toBe('json_schema');
      expect(body.output_config?.format?.schema).toMatchObject({ properties: schema.properties });
      expect(body.tools).toBeUndefined();
    }
  });

  it('low-confidence fault answers confidence 0.1', async () => {
    vendor.fault(MODEL, 'low-confidence', 1);
    const res = await provider.call(chat({ schema }), opts());
    expect(JSON.parse(res.output as string)).toMatchObject({ confidence: 0.1 });
  });

  it('does only chat', async () => {
    const err = await failure(provider.call({ operation: 'embed', input: 'x' }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.details).toMatchObject({ provider: 'anthropic', operation: 'embed', operations: 'chat' });
  });
});

describe('anthropic provider: failures', () => {
  it.each([
    ['500', 500, true],
    ['503', 503, true],
    ['400', 400, false],
  ] as const)('fault %s → BATON_MODEL_HTTP %s, retryable: %s', async (fault, status, retryable) => {
    vendor.fault(MODEL, fault);
    for (const stream of [false, true]) {
      const err = await failure(provider.call(chat({ stream }), opts()));
      expect(err.code).toBe('BATON_MODEL_HTTP');
      expect(err.details.httpStatus).toBe(status);
      expect(err.retryable).toBe(retryable);
    }
    expect(vendor.calls(MODEL)).toBe(2);
  });

  it('a wrong or missing key → non-retryable 401', async () => {
    for (const credential of ['ak-wrong', undefined]) {
      const p = await make(MODEL, { credential });
      const err = await failure(p.call(chat(), opts()));
      expect(err.code).toBe('BATON_MODEL_HTTP');
      expect(err.details.httpStatus).toBe(401);
      expect(err.retryable).toBe(false);
      expect(err.message).toContain('x-api-key');
    }
  });

  it('429 → BATON_MODEL_RATE_LIMITED with retryAfterMs', async () => {
    vendor.fault(MODEL, { kind: '429', retryAfterSec: 3 });
    for (const stream of [false, true]) {
      const err = await failure(provider.call(chat({ stream }), opts()));
      expect(err.code).toBe('BATON_MODEL_RATE_LIMITED');
      expect(err.details.retryAfterMs).toBe(3000);
    }
  });

  it('html and malformed bodies → BATON_MODEL_BAD_RESPONSE naming the protocol', async () => {
    for (const fault of ['html', 'malformed'] as const) {
      for (const stream of [false, true]) {
        vendor.fault(MODEL, fault, 1);
        const err = await failure(provider.call(chat({ stream }), opts()));
        expect(err.code, `${fault} stream=${stream}`).toBe('BATON_MODEL_BAD_RESPONSE');
        expect(err.details.protocol).toBe('Anthropic messages');
      }
    }
  });

  it('connection refused → BATON_MODEL_NETWORK', async () => {
    const endpoint = `http://127.0.0.1:${await deadPort()}/v1`;
    const p = await make(MODEL, { endpoint });
    for (const stream of [false, true]) {
      const err = await failure(p.call(chat({ stream }), opts()));
      expect(err.code).toBe('BATON_MODEL_NETWORK');
      expect(err.details.endpoint).toBe(endpoint);
    }
  });

  it('stream cut → BATON_MODEL_STREAM_BROKEN', async () => {
    vendor.model(MODEL, { reply: () => 'a b c d e f g h i j k l m n o p' });
    vendor.fault(MODEL, 'stream-cut');
    const deltas: string[] = [];
    const err = await failure(provider.call(chat({ stream: true }), opts({ onDelta: (t) => deltas.push(t) })));
    expect(err.code).toBe('BATON_MODEL_STREAM_BROKEN');
  });

  it('stream stall → BATON_MODEL_STREAM_BROKEN after streamIdleMs', async () => {
    vendor.fault(MODEL, 'stream-stall');
    const t0 = Date.now();
    const err = await failure(provider.call(chat({ stream: true }), opts({ streamIdleMs: 200 })));
    expect(err.code).toBe('BATON_MODEL_STREAM_BROKEN');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(180);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a stream that ends before message_stop → BATON_MODEL_STREAM_BROKEN', async () => {
    const { createServer: createHttp } = await import('node:http');
    const srv = createHttp((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const ev = (type: string, d: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...d })}\n\n`;
      res.end(
        ev('message_start', { message: { id: 'm', type: 'message', role: 'assistant', model: 'x', content: [], stop_reason: null, usage: { input_tokens: 1, output_tokens: 1 } } }) +
          ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) +
          ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'partial' } }),
      );
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as { port: number }).port;
      const p = await make(MODEL, { endpoint: `http://127.0.0.1:${port}/v1` });
      const err = await failure(p.call(chat({ stream: true }), opts()));
      expect(err.code).toBe('BATON_MODEL_STREAM_BROKEN');
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it.each([false, true])('caller abort (stream: %s) rejects promptly with the abort reason', async (stream) => {
    vendor.fault(MODEL, stream ? 'stream-stall' : 'timeout');
    const ac = new AbortController();
    const reason = new Error('cancelled by user');
    setTimeout(() => ac.abort(reason), 100);
    const t0 = Date.now();
    const err = await provider.call(chat({ stream }), opts({ signal: ac.signal })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBe(reason);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});
