/**
 * Workflows as OpenAI models, called by the official `openai` client over real HTTP: an
 * embedded engine on SQLite, the gateway on 127.0.0.1, a fake model vendor for the one
 * workflow that calls a model. Nothing is mocked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI, { APIError, BadRequestError, NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Baton, type VersionRecord } from '../../src/index.js';
import { buildGateway } from '../../src/gateway/server.js';
import { FakeVendor } from '../../src/testing/fake-vendor.js';
import { until } from '../helpers/wait.js';

let dir: string;
let baton: Baton;
let app: FastifyInstance;
let vendor: FakeVendor;
let url: string;
let client: OpenAI;
let echoV1: VersionRecord;
let echoV2: VersionRecord;

/** Calls of the `slow` function waiting to be let go, by input. */
const held = new Map<string, () => void>();
const LONG = 'The quick brown fox jumps over the lazy dog, then naps in the sun — twice. ✓';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'baton-openai-'));
  vendor = await new FakeVendor().start();
  vendor.model('gpt-fake', { reply: (r) => `model says: ${r.prompt}`, usage: { inputTokens: 11, outputTokens: 7, cachedInputTokens: 3 } });
  baton = await Baton.open({
    dir,
    pollIntervalMs: 20,
    functions: {
      shout: (s) => String(s).toUpperCase(),
      boom: () => {
        throw new Error('the reactor melted');
      },
      // Held until the test lets it go (by its input): "still running" holds on any machine.
      slow: async (s) => {
        await new Promise<void>((r) => held.set(String(s), r));
        return s;
      },
    },
    services: { llm: { provider: 'openai', model: 'gpt-fake', endpoint: `${vendor.url}/v1`, retry: { max_attempts: 1 } } },
  });
  // Two versions of `echo`: the list shows the latest, a pinned id runs the older one.
  echoV1 = await baton.register(`
name: echo
steps:
  - { id: shout, kind: function, function: shout, input: "input.text" }
`);
  echoV2 = await baton.register(`
name: echo
steps:
  - { id: shout, kind: function, function: shout, input: "input.text" }
  - id: answer
    kind: transform
    expression: '{ "reply": "You said: " & steps.shout.output & " (" & $string($count(input.messages)) & " messages, user " & (input.user ? input.user : "none") & ")", "extra": 1 }'
`);
  await baton.register(`
name: broken
steps:
  - { id: prepare, kind: transform, expression: "input.text" }
  - { id: explode, kind: function, function: boom, input: "steps.prepare.output" }
`);
  await baton.register(`
name: sleepy
steps:
  - { id: nap, kind: function, function: slow, input: "input.text" }
`);
  await baton.register(`
name: structured
steps:
  - { id: pack, kind: transform, expression: '{ "items": [input.text, input.text], "n": 2 }' }
`);
  await baton.register(`
name: asker
steps:
  - { id: ask, kind: model, service: llm, prompt: "{{ input.text }}" }
`);
  app = buildGateway(baton);
  url = await app.listen({ port: 0, host: '127.0.0.1' });
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'test', maxRetries: 0 });
});

afterAll(async () => {
  await app?.close();
  await baton?.close();
  await vendor?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('workflows as OpenAI models', () => {
  it('lists each registered workflow once, at its latest version, as a model', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) {
      expect(m).toMatchObject({ object: 'model', owned_by: 'baton', created: expect.any(Number) });
      ids.push(m.id);
    }
    expect(ids.sort()).toEqual(['workflow/asker', 'workflow/broken', 'workflow/echo', 'workflow/sleepy', 'workflow/structured']);
    const echo = await client.models.retrieve('workflow/echo');
    expect(echo.created).toBe(Math.floor(echoV2.createdAt / 1000));
  });

  it('answers a chat completion with the workflow output, a run id the engine confirms, and estimated usage', async () => {
    const messages = [
      { role: 'system' as const, content: 'be loud' },
      { role: 'user' as const, content: 'first question' },
      { role: 'assistant' as const, content: 'an answer' },
      { role: 'user' as const, content: 'hello there' },
    ];
    const res = await client.chat.completions.create({ model: 'workflow/echo', messages, user: 'ada' });
    const content = 'You said: HELLO THERE (4 messages, user ada)';
    expect(res.object).toBe('chat.completion');
    expect(res.model).toBe(`workflow/${echoV2.versionId}`);
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]).toMatchObject({ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' });
    const ext = (res as unknown as { baton: { run_id: string; cost: number } }).baton;
    expect(res.id).toBe(`chatcmpl-${ext.run_id}`);
    expect(ext.cost).toBe(0);
    const run = await baton.getRun(ext.run_id);
    expect(run.status).toBe('completed');
    expect(run.versionId).toBe(echoV2.versionId);
    expect(run.input).toEqual({ messages, text: 'hello there', user: 'ada' });
    expect(res.created).toBe(Math.floor(run.createdAt / 1000));
    // No model was called: ~4 characters a token.
    expect(res.usage).toMatchObject({
      prompt_tokens: [7, 14, 9, 11].reduce((a, b) => a + Math.ceil(b / 4), 0),
      completion_tokens: Math.ceil(content.length / 4),
    });
    expect(res.usage!.total_tokens).toBe(res.usage!.prompt_tokens + res.usage!.completion_tokens);
  });

  it('runs a pinned version with workflow/<name>@<hash>, and takes text from array content', async () => {
    const res = await client.chat.completions.create({
      model: `workflow/${echoV1.versionId}`,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'pinned' }, { type: 'text', text: 'version' }] }],
    });
    expect(res.model).toBe(`workflow/${echoV1.versionId}`);
    expect(res.choices[0].message.content).toBe('PINNED\nVERSION');
  });

  it('sends JSON text for an output that has no reply/text/content string', async () => {
    const res = await client.chat.completions.create({ model: 'workflow/structured', messages: [{ role: 'user', content: 'x' }] });
    expect(JSON.parse(res.choices[0].message.content!)).toEqual({ items: ['x', 'x'], n: 2 });
  });

  it('reports usage from the run’s recorded model calls', async () => {
    const res = await client.chat.completions.create({ model: 'workflow/asker', messages: [{ role: 'user', content: 'what is up' }] });
    expect(res.choices[0].message.content).toBe('model says: what is up');
    const runId = (res as unknown as { baton: { run_id: string } }).baton.run_id;
    const calls = await baton.store.getModelCalls(runId);
    expect(calls).toHaveLength(1);
    expect(res.usage).toMatchObject({ prompt_tokens: calls[0].inputTokens, completion_tokens: calls[0].outputTokens, total_tokens: calls[0].inputTokens + calls[0].outputTokens });
    expect(res.usage!.completion_tokens).toBe(7);
  });

  it('streams the same answer in chunks, ending with finish_reason stop and a usage chunk', async () => {
    const full = await client.chat.completions.create({ model: 'workflow/echo', messages: [{ role: 'user', content: LONG }] });
    const stream = await client.chat.completions.create({
      model: 'workflow/echo',
      messages: [{ role: 'user', content: LONG }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let role: string | undefined;
    let finish: string | null | undefined;
    let contentChunks = 0;
    let usage: OpenAI.CompletionUsage | null | undefined;
    const ids = new Set<string>();
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      ids.add(chunk.id);
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      role ??= choice.delta.role;
      if (choice.delta.content) {
        text += choice.delta.content;
        contentChunks++;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    expect(role).toBe('assistant');
    expect(text).toBe(full.choices[0].message.content);
    expect(text).toContain(LONG.toUpperCase());
    expect(contentChunks).toBeGreaterThan(2);
    expect(finish).toBe('stop');
    expect(usage).toMatchObject({ completion_tokens: Math.ceil(text.length / 4) });
    expect(ids.size).toBe(1);
    const runId = [...ids][0].replace(/^chatcmpl-/, '');
    expect((await baton.getRun(runId)).status).toBe('completed');
  });

  it('speaks OpenAI’s SSE wire format exactly: headers, role chunk first, progress comments, [DONE] last', async () => {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'workflow/echo', messages: [{ role: 'user', content: 'wire' }], stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const raw = await res.text();
    const events = raw.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(events).toContain(': step shout succeeded');
    const data = events.filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    expect(data[0].choices[0].delta).toMatchObject({ role: 'assistant', content: '' });
    expect(data.at(-1).choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    expect(data.every((d) => !('usage' in d))).toBe(true); // no include_usage: no usage fields
    expect(data.map((d) => d.choices[0].delta.content ?? '').join('')).toBe('You said: WIRE (1 messages, user none)');
  });

  it('gives the client’s NotFoundError for an unknown workflow or a model that is not a workflow', async () => {
    for (const model of ['workflow/nope', 'gpt-4o', `workflow/echo@${'0'.repeat(16)}`]) {
      const err = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err).toMatchObject({ status: 404, type: 'invalid_request_error', code: 'model_not_found' });
    }
  });

  it('answers a failed workflow with 502 workflow_failed carrying the BATON code and the run id, without the client retrying', async () => {
    const retrying = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'test', maxRetries: 2 });
    const before = (await baton.listRuns({ workflow: 'broken' })).length;
    const err = await retrying.chat.completions.create({ model: 'workflow/broken', messages: [{ role: 'user', content: 'go' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    const e = err as APIError;
    expect(e.status).toBe(502);
    expect(e.type).toBe('workflow_failed');
    expect(e.code).toMatch(/^BATON_/);
    expect(e.message).toContain('the reactor melted');
    const runId = /run (\S+) failed/.exec(e.message)?.[1];
    expect(runId).toBeTruthy();
    const run = await baton.getRun(runId!);
    expect(run.status).toBe('failed');
    // A function's own Error is recorded as code `Error`; the client gets the Baton code for a failed step.
    expect(e.code).toBe(run.error!.code.startsWith('BATON_') ? run.error!.code : 'BATON_STEP_FAILED');
    expect(e.message).toContain(run.error!.message);
    expect(e.headers?.get('x-baton-run-id')).toBe(runId);
    // x-should-retry: false, so the client's own retries did not start more runs.
    expect((await baton.listRuns({ workflow: 'broken' })).length).toBe(before + 1);
  });

  it('ends a stream whose workflow fails with an error event the client throws', async () => {
    const stream = await client.chat.completions.create({ model: 'workflow/broken', messages: [{ role: 'user', content: 'go' }], stream: true });
    const seen: string[] = [];
    const err = await (async () => {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).code).toBe('BATON_STEP_FAILED');
    expect((err as APIError).type).toBe('workflow_failed');
    expect((err as APIError).message).toContain('the reactor melted');
    expect(seen.join('')).toBe(''); // nothing of an answer was sent
  });

  it('refuses a body that is not a chat completions request with 400 invalid_request_error', async () => {
    const empty = await client.chat.completions.create({ model: 'workflow/echo', messages: [] }).catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(BadRequestError);
    expect(empty).toMatchObject({ status: 400, type: 'invalid_request_error', param: 'messages' });
    const badRole = await client.chat.completions.create({ model: 'workflow/echo', messages: [{ role: 'robot', content: 'x' }] as never }).catch((e: unknown) => e);
    expect(badRole).toMatchObject({ status: 400, type: 'invalid_request_error' });
    const twoAnswers = await client.chat.completions.create({ model: 'workflow/echo', messages: [{ role: 'user', content: 'x' }], n: 2 }).catch((e: unknown) => e);
    expect(twoAnswers).toMatchObject({ status: 400, param: 'n' });
    // Asking for another kind of answer (tool calls, a JSON format, logprobs) is refused by name;
    // sampling parameters are ignored (a workflow decides how it calls its models).
    const message = [{ role: 'user' as const, content: 'x' }];
    const tools = [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object' } } }];
    for (const [param, extra] of [
      ['tools', { tools }],
      ['tool_choice', { tool_choice: 'required' }],
      ['response_format', { response_format: { type: 'json_object' } }],
      ['logprobs', { logprobs: true }],
    ] as const) {
      const refused = await client.chat.completions.create({ model: 'workflow/echo', messages: message, ...extra } as never).catch((e: unknown) => e);
      expect(refused, param).toBeInstanceOf(BadRequestError);
      expect(refused, param).toMatchObject({ status: 400, type: 'invalid_request_error', code: 'unsupported_parameter', param });
    }
    const sampled = await client.chat.completions.create({ model: 'workflow/echo', messages: message, temperature: 0.2, max_tokens: 5, tools: [], response_format: { type: 'text' } });
    expect(sampled.choices[0].message.content).toBeTruthy();
    const notJson = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": ' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  });

  it('stops waiting when a streaming client disconnects, while the run itself goes on', async () => {
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'workflow/sleepy', messages: [{ role: 'user', content: 'left' }], stream: true }),
      signal: ac.signal,
    });
    // Headers and the role chunk arrive at once, long before the run ends.
    const runId = res.headers.get('x-baton-run-id')!;
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('"role":"assistant"');
    expect(baton.listenerCount('step')).toBe(1); // the stream is watching the run's steps
    ac.abort();
    await until(async () => baton.listenerCount('step') === 0, 'the stream to stop watching'); // ...and stopped when the client left
    expect((await baton.getRun(runId)).status).toBe('running');
    await until(async () => held.has('left'), 'the step to start');
    held.get('left')!();
    expect((await baton.wait(runId, { timeoutMs: 10_000 })).status).toBe('completed');
  });

  it('answers 504 with the run id when the run outlasts x-baton-timeout-ms; the run goes on and completes', async () => {
    // The step is held until after the answer: a 504 is the only answer the timeout can give.
    const err = await client.chat.completions
      .create({ model: 'workflow/sleepy', messages: [{ role: 'user', content: 'zzz' }] }, { headers: { 'x-baton-timeout-ms': '200' } })
      .catch((e: unknown) => e);
    await until(async () => held.has('zzz'), 'the step to start');
    held.get('zzz')!();
    expect(err).toBeInstanceOf(APIError);
    const e = err as APIError;
    expect(e.status).toBe(504);
    const runId = e.headers?.get('x-baton-run-id');
    expect(runId).toBeTruthy();
    expect(e.message).toContain(runId!);
    expect(e.headers?.get('x-should-retry')).toBe('false');
    const done = await baton.wait(runId!, { timeoutMs: 10_000 });
    expect(done.status).toBe('completed');
    expect(done.output).toBe('zzz');
  });
});
