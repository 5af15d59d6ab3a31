import { spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeVendor, main } from '../../../src/testing/fake-vendor.js';

const vendor = new FakeVendor();

beforeAll(async () => {
  await vendor.start();
});
afterAll(() => vendor.close());
afterEach(() => vendor.reset());

const ANTHROPIC_HEADERS = { 'content-type': 'application/json', 'x-api-key': 'k', 'anthropic-version': '2023-06-01' };

function openai(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return fetch(`${vendor.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer k', ...headers },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'ping' }], ...body }),
  });
}

function anthropic(body: Record<string, unknown>, headers: Record<string, string> = ANTHROPIC_HEADERS) {
  return fetch(`${vendor.url}/v1/messages`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: 'c', max_tokens: 100, messages: [{ role: 'user', content: 'ping' }], ...body }),
  });
}

/** The `data:` payloads of an SSE body. */
function sseData(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6));
}

describe('fake vendor: OpenAI protocol', () => {
  it('answers a chat completion deterministically with usage incl. cached tokens', async () => {
    vendor.model('m', { usage: { inputTokens: 10, cachedInputTokens: 4, outputTokens: 3 } });
    const a = (await (await openai({})).json()) as Record<string, any>;
    const b = (await (await openai({})).json()) as Record<string, any>;
    expect(a.object).toBe('chat.completion');
    expect(a.choices[0].message).toMatchObject({ role: 'assistant', content: 'Answer from m: ping' });
    expect(a.choices[0].finish_reason).toBe('stop');
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
    expect(a.usage).toMatchObject({ prompt_tokens: 14, completion_tokens: 3, total_tokens: 17, prompt_tokens_details: { cached_tokens: 4 } });
  });

  it('streams chat.completion.chunk events, a usage chunk when asked, then [DONE]', async () => {
    const res = await openai({ stream: true, stream_options: { include_usage: true } });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const data = sseData(await res.text());
    expect(data[data.length - 1]).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Record<string, any>);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    expect(text).toBe('Answer from m: ping');
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop')).toBe(true);
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('sends no usage chunk without stream_options.include_usage', async () => {
    const data = sseData(await (await openai({ stream: true })).text());
    expect(data.slice(0, -1).some((d) => 'usage' in (JSON.parse(d) as object))).toBe(false);
  });

  it('answers JSON filling the json_schema, JSON for json_object, and a programmed reply', async () => {
    const schema = { type: 'object', properties: { label: { enum: ['a', 'b'] }, n: { type: 'integer', minimum: 3 }, tags: { type: 'array', items: { type: 'string' } } } };
    const r1 = (await (await openai({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } })).json()) as Record<string, any>;
    const v1 = JSON.parse(r1.choices[0].message.content as string) as Record<string, unknown>;
    expect(['a', 'b']).toContain(v1.label);
    expect(v1.n).toBe(3);
    expect(v1.tags).toEqual(['ping']);
    const r2 = (await (await openai({ response_format: { type: 'json_object' } })).json()) as Record<string, any>;
    expect(JSON.parse(r2.choices[0].message.content as string)).toEqual({ answer: 'ping', confidence: 0.9 });
    vendor.model('m', { reply: (req) => ({ echoed: req.prompt, json: req.json }) });
    const r3 = (await (await openai({})).json()) as Record<string, any>;
    expect(JSON.parse(r3.choices[0].message.content as string)).toEqual({ echoed: 'ping', json: false });
  });

  it('cuts the answer at max_tokens with finish_reason length', async () => {
    const r = (await (await openai({ max_tokens: 2 })).json()) as Record<string, any>;
    expect(r.choices[0].message.content).toBe('Answer f');
    expect(r.choices[0].finish_reason).toBe('length');
  });

  it('embeds: one unit vector per input, sized by dimensions', async () => {
    const res = await fetch(`${vendor.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'e', input: ['a b', 'c'], dimensions: 16 }) });
    const body = (await res.json()) as { data: Array<{ index: number; embedding: number[] }>; usage: { prompt_tokens: number } };
    expect(body.data.map((d) => d.index)).toEqual([0, 1]);
    expect(body.data[0].embedding).toHaveLength(16);
    const norm = Math.sqrt(body.data[0].embedding.reduce((s, x) => s + x * x, 0));
    expect(norm).toBeCloseTo(1, 4);
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('lists the models it has seen or been told about', async () => {
    vendor.model('listed', {});
    await openai({});
    const body = (await (await fetch(`${vendor.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(body.data.map((d) => d.id).sort()).toEqual(['listed', 'm']);
  });

  it('answers errors in the OpenAI shape: unknown route, bad JSON, wrong key', async () => {
    const r404 = await fetch(`${vendor.url}/v1/nope`, { method: 'POST' });
    expect(r404.status).toBe(404);
    expect(((await r404.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const bad = await fetch(`${vendor.url}/v1/chat/completions`, { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    const keyed = await new FakeVendor({ apiKey: 'right' }).start();
    try {
      const res = await fetch(`${keyed.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer wrong' }, body: JSON.stringify({ model: 'm', messages: [] }) });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: 'invalid_api_key', type: 'invalid_request_error' } });
    } finally {
      await keyed.close();
    }
  });
});

describe('fake vendor: Anthropic protocol', () => {
  it('answers a message with usage incl. cache reads', async () => {
    vendor.model('c', { usage: { inputTokens: 9, cachedInputTokens: 2, outputTokens: 5 } });
    const res = await anthropic({ system: 'sys' });
    const body = (await res.json()) as Record<string, any>;
    expect(body).toMatchObject({ type: 'message', role: 'assistant', model: 'c', stop_reason: 'end_turn' });
    expect(body.content).toEqual([{ type: 'text', text: 'Answer from c: ping' }]);
    expect(body.usage).toMatchObject({ input_tokens: 9, output_tokens: 5, cache_read_input_tokens: 2 });
  });

  it('streams the message event sequence', async () => {
    const res = await anthropic({ stream: true });
    const text = await res.text();
    const events = text
      .split('\n')
      .filter((l) => l.startsWith('event: '))
      .map((l) => l.slice(7));
    expect(events[0]).toBe('message_start');
    expect(events).toContain('content_block_start');
    expect(events).toContain('content_block_delta');
    expect(events.slice(-3)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
    const datas = sseData(text).map((d) => JSON.parse(d) as Record<string, any>);
    const joined = datas
      .filter((d) => d.type === 'content_block_delta')
      .map((d) => d.delta.text as string)
      .join('');
    expect(joined).toBe('Answer from c: ping');
    expect(datas.find((d) => d.type === 'message_delta')).toMatchObject({ delta: { stop_reason: 'end_turn' }, usage: { output_tokens: expect.any(Number) } });
  });

  it('answers a forced json tool with a tool_use block', async () => {
    const body = (await (
      await anthropic({ tools: [{ name: 'json', input_schema: { type: 'object', properties: { ok: { type: 'boolean' } } } }], tool_choice: { type: 'tool', name: 'json' } })
    ).json()) as Record<string, any>;
    expect(body.stop_reason).toBe('tool_use');
    expect(body.content[0]).toMatchObject({ type: 'tool_use', name: 'json', input: { ok: true } });
  });

  it('checks x-api-key, anthropic-version and max_tokens, answering errors in the Anthropic shape', async () => {
    const noKey = await anthropic({}, { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' });
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    const noVersion = await anthropic({}, { 'content-type': 'application/json', 'x-api-key': 'k' });
    expect(noVersion.status).toBe(400);
    expect(await noVersion.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('anthropic-version') } });
    const noMax = await anthropic({ max_tokens: undefined });
    expect(noMax.status).toBe(400);
  });
});

describe('fake vendor: faults', () => {
  it('serves queued faults the given number of times, in order, then answers', async () => {
    vendor.fault('m', '500', 2).fault('m', '503', 1);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await openai({})).status);
    expect(statuses).toEqual([500, 500, 503, 200]);
    expect(vendor.calls('m')).toBe(4);
    expect(vendor.requests('m').map((r) => r.fault)).toEqual(['500', '500', '503', undefined]);
  });

  it('heal() removes faults; "*" applies to every model', async () => {
    vendor.fault('*', '503');
    expect((await openai({})).status).toBe(503);
    expect((await anthropic({})).status).toBe(503);
    vendor.heal();
    expect((await openai({})).status).toBe(200);
  });

  it('faultRate uses the random source', async () => {
    let next = 0;
    const v = await new FakeVendor({ random: () => [0.1, 0.9][next++ % 2] }).start();
    try {
      v.faultRate('m', '500', 0.5);
      const statuses = [];
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${v.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) });
        statuses.push(res.status);
      }
      expect(statuses).toEqual([500, 200, 500, 200]);
      v.faultRate('m', '500', 0);
      expect((await fetch(`${v.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) })).status).toBe(200);
    } finally {
      await v.close();
    }
  });

  it('429 carries Retry-After and the vendor error shape', async () => {
    vendor.fault('m', { kind: '429', retryAfterSec: 5 }, 1).fault('c', '429', 1);
    const o = await openai({});
    expect(o.status).toBe(429);
    expect(o.headers.get('retry-after')).toBe('5');
    expect(await o.json()).toMatchObject({ error: { code: 'rate_limit_exceeded' } });
    const a = await anthropic({});
    expect(a.headers.get('retry-after')).toBe('1');
    expect(await a.json()).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
  });

  it('html, malformed, empty and low-confidence answer what they say', async () => {
    vendor.fault('m', 'html', 1).fault('m', { kind: 'html', status: 502 }, 1).fault('m', 'malformed', 1).fault('m', 'empty', 1).fault('m', 'low-confidence', 1);
    const html = await openai({});
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toContain('text/html');
    expect(await html.text()).toContain('<title>');
    expect((await openai({})).status).toBe(502);
    const malformed = await openai({});
    expect(malformed.status).toBe(200);
    const mtext = await malformed.text();
    expect(() => JSON.parse(mtext)).toThrow();
    const empty = (await (await openai({})).json()) as Record<string, any>;
    expect(empty.choices[0].message.content).toBe('');
    const low = (await (await openai({})).json()) as Record<string, any>;
    expect(JSON.parse(low.choices[0].message.content as string)).toMatchObject({ confidence: 0.1 });
  });

  it('malformed is a truncated JSON body', async () => {
    vendor.fault('m', 'malformed', 1);
    const text = await (await openai({})).text();
    expect(text.startsWith('{"id":')).toBe(true);
    expect(() => JSON.parse(text)).toThrow();
  });

  it('stream-cut drops the connection mid-stream without [DONE]', async () => {
    vendor.model('m', { reply: () => 'one two three four five six' });
    vendor.fault('m', 'stream-cut', 1);
    const res = await openai({ stream: true });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let got = '';
    const dec = new TextDecoder();
    const err = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return undefined;
          got += dec.decode(value);
        }
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeDefined();
    expect(got).toContain('chat.completion.chunk');
    expect(got).not.toContain('[DONE]');
  });

  it('stream-stall sends a chunk then goes silent; timeout never answers; close() frees both', async () => {
    const v = await new FakeVendor().start();
    v.fault('s', 'stream-stall', 1).fault('t', 'timeout', 1);
    const stall = await fetch(`${v.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 's', stream: true, messages: [{ role: 'user', content: 'x' }] }) });
    const reader = stall.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('data: ');
    const next = reader.read();
    const silent = await Promise.race([next.then(() => 'data', () => 'error'), new Promise((r) => setTimeout(() => r('silent'), 150))]);
    expect(silent).toBe('silent');

    const hanging = fetch(`${v.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 't', messages: [] }) }).then(
      () => 'answered',
      () => 'dropped',
    );
    const early = await Promise.race([hanging, new Promise((r) => setTimeout(() => r('waiting'), 150))]);
    expect(early).toBe('waiting');

    const t0 = Date.now();
    await v.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await hanging).toBe('dropped');
    await expect(next).rejects.toBeDefined();
  });

  it('latencyMs delays the answer', async () => {
    vendor.model('m', { latencyMs: 120 });
    const t0 = Date.now();
    await (await openai({})).json();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(110);
  });

  it('logs requests with headers (Idempotency-Key) and body', async () => {
    await openai({ temperature: 0.5 }, { 'Idempotency-Key': 'r:s:1' });
    const req = vendor.lastRequest('m')!;
    expect(req.headers['idempotency-key']).toBe('r:s:1');
    expect(req.body).toMatchObject({ temperature: 0.5 });
    expect(req.path).toBe('/v1/chat/completions');
    expect(req.protocol).toBe('openai');
    expect(vendor.calls()).toBe(1);
  });
});

describe('fake vendor: standalone', () => {
  it('main() starts on the given port and prints the URL', async () => {
    const lines: string[] = [];
    const v = await main(['--port', '0', '--fault', 'm=503:1'], (l) => lines.push(l));
    try {
      expect(lines[0]).toBe(v.url);
      expect(v.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const first = await fetch(`${v.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) });
      expect(first.status).toBe(503);
    } finally {
      await v.close();
    }
  });

  it('runs as a script and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/testing/fake-vendor.ts', '--port', '0'], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /http:\/\/127\.0\.0\.1:\d+/.exec(out);
          if (m) resolve(m[0]);
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}`)));
        setTimeout(() => reject(new Error('no URL printed')), 15_000);
      });
      const res = await fetch(`${url}/v1/models`);
      expect(res.status).toBe(200);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });
});
