/**
 * Model steps against vendors over real sockets: the fake vendor speaks the OpenAI and
 * Anthropic wire protocols and is told to fail in the ways real vendors fail. The engine, the
 * service runtime, the AI SDK providers and the SQLite store are all real.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Baton, type BatonOptions } from '../../src/index.js';
import { FakeVendor } from '../../src/testing/fake-vendor.js';

let dir: string;
let vendor: FakeVendor;
const open: Baton[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'baton-vendors-'));
  vendor = await new FakeVendor().start();
});
afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
  await vendor.close();
  rmSync(dir, { recursive: true, force: true });
});

async function baton(services: BatonOptions['services']): Promise<Baton> {
  const b = await Baton.open({ dir, pollIntervalMs: 20, services });
  open.push(b);
  return b;
}


const THREE_STEPS = `
name: ticket-pipeline
steps:
  - id: intent
    kind: model
    service: primary
    fallback: [secondary]
    system: "Classify the ticket."
    prompt: "{{ input.text }}"
    output_schema: { type: object, required: [label, confidence], properties: { label: { type: string }, confidence: { type: number } } }
    guard: "output.confidence >= 0.5"
  - id: facts
    kind: model
    service: primary
    fallback: [secondary]
    prompt: "Facts about a {{ steps.intent.output.label }} ticket: {{ input.text }}"
  - id: reply
    kind: model
    service: primary
    fallback: [secondary]
    prompt: "Write a reply using: {{ steps.facts.output }}"
`;

describe('model services over real sockets', () => {
  it('completes a 3-step workflow through the fallback while the primary fails every call; the breaker opens, skips the dead service at once, and closes when it recovers', async () => {
    vendor.model('gpt-main', { reply: (r) => (r.json ? { label: 'billing', confidence: 0.9 } : `main: ${r.prompt.slice(0, 20)}`) });
    vendor.model('claude-backup', { reply: (r) => (r.json ? { label: 'billing', confidence: 0.8 } : `backup: ${r.prompt.slice(0, 20)}`) });
    vendor.faultRate('gpt-main', '500', 1);
    const b = await baton({
      primary: { provider: 'openai', model: 'gpt-main', endpoint: `${vendor.url}/v1`, retry: { max_attempts: 2, initial_delay: '10ms' }, breaker: { failures: 3, window: '1m', cooldown: '1h' } },
      secondary: { provider: 'anthropic', model: 'claude-backup', endpoint: `${vendor.url}/v1`, credential: 'env:BATON_TEST_ANTHROPIC_KEY' },
    });
    process.env.BATON_TEST_ANTHROPIC_KEY = 'test-key';
    const v = await b.register(THREE_STEPS);

    const first = await b.run(v, { text: 'I was charged twice' });
    expect(first.status).toBe('completed');
    expect(first.output).toMatch(/^backup: /);
    // intent: 2 attempts (retry) = 2 failures; facts: 1 failure opens the breaker (3 in the window),
    // so its retry is refused by the open breaker; reply: skipped at once.
    expect(vendor.calls('gpt-main')).toBe(3);
    expect(b.models!.breaker('primary')!.state).toBe('open');
    const cs = await b.store.getModelCalls(first.id);
    expect(cs.map((c) => `${c.stepKey}:${c.service}:${c.outcome}`)).toEqual([
      'intent:primary:error', 'intent:primary:error', 'intent:secondary:ok',
      'facts:primary:error', 'facts:primary:skipped', 'facts:secondary:ok',
      'reply:primary:skipped', 'reply:secondary:ok',
    ]);
    expect(cs[0].error?.code).toBe('BATON_MODEL_HTTP');

    // While open, more runs do not touch the dead service at all.
    const second = await b.run(v, { text: 'Where is my invoice' });
    expect(second.status).toBe('completed');
    expect(vendor.calls('gpt-main')).toBe(3);

    // The vendor recovers; after the cooldown one probe goes through, the breaker closes, and the
    // primary answers again. The cooldown is long (a slow machine cannot outlast it mid-test) and
    // passes by moving the clock an hour on, which is what the breaker reads.
    vendor.heal('gpt-main');
    const realNow = Date.now.bind(Date);
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
    try {
      const third = await b.run(v, { text: 'Refund please' });
      expect(third.output).toMatch(/^main: /);
      expect(b.models!.breaker('primary')!.state).toBe('closed');
      expect((await b.store.getModelCalls(third.id)).every((c) => c.service === 'primary' && c.outcome === 'ok')).toBe(true);
    } finally {
      clock.mockRestore();
    }
  });

  it('treats a stream cut mid-answer as a failure and restarts cleanly on the next service instead of returning the truncated text', async () => {
    vendor.model('gpt-main', { reply: () => 'The full answer from main that is long enough to be cut half way through its stream.' });
    vendor.model('gpt-spare', { reply: () => 'Complete answer from spare.' });
    vendor.fault('gpt-main', 'stream-cut');
    const b = await baton({
      primary: { provider: 'openai', model: 'gpt-main', endpoint: `${vendor.url}/v1`, retry: { max_attempts: 1 } },
      secondary: { provider: 'openai', model: 'gpt-spare', endpoint: `${vendor.url}/v1` },
    });
    const r = await b.run(await b.register(`
name: streamed
steps:
  - { id: say, kind: model, service: primary, fallback: [secondary], prompt: "hello", stream: true, stream_idle: 2s }
`));
    expect(r.status).toBe('completed');
    expect(r.output).toBe('Complete answer from spare.');
    const cs = await b.store.getModelCalls(r.id);
    expect(cs.map((c) => `${c.service}:${c.outcome}:${c.error?.code ?? ''}`)).toEqual(['primary:error:BATON_MODEL_STREAM_BROKEN', 'secondary:ok:']);
    expect(b.models!.status().find((s) => s.name === 'primary')!.failures).toBe(1);
  });

  it('treats a stalled stream as a failure after the idle limit', async () => {
    vendor.fault('gpt-main', 'stream-stall');
    vendor.model('gpt-spare', { reply: () => 'spare answer' });
    const b = await baton({
      primary: { provider: 'openai', model: 'gpt-main', endpoint: `${vendor.url}/v1`, retry: { max_attempts: 1 } },
      secondary: { provider: 'openai', model: 'gpt-spare', endpoint: `${vendor.url}/v1` },
    });
    const t0 = Date.now();
    const r = await b.run(await b.register(`
name: stalled
steps:
  - { id: say, kind: model, service: primary, fallback: [secondary], prompt: "hello", stream: true, stream_idle: 300ms }
`));
    expect(r.output).toBe('spare answer');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await b.store.getModelCalls(r.id))[0].error?.code).toBe('BATON_MODEL_STREAM_BROKEN');
  });

  it('falls back on a low-confidence answer that fails the guard', async () => {
    vendor.model('gpt-main', { reply: () => ({ label: 'billing', confidence: 0.95 }) });
    vendor.fault('gpt-main', 'low-confidence');
    vendor.model('gpt-spare', { reply: () => ({ label: 'bug', confidence: 0.97 }) });
    const b = await baton({
      primary: { provider: 'openai', model: 'gpt-main', endpoint: `${vendor.url}/v1` },
      secondary: { provider: 'openai', model: 'gpt-spare', endpoint: `${vendor.url}/v1` },
    });
    const r = await b.run(await b.register(`
name: confident
steps:
  - id: label
    kind: model
    service: primary
    fallback: [secondary]
    prompt: "The app crashes"
    output_schema: { type: object, required: [label, confidence] }
    guard: "output.confidence >= 0.7"
`));
    expect(r.output).toEqual({ label: 'bug', confidence: 0.97 });
    const cs = await b.store.getModelCalls(r.id);
    expect(cs.map((c) => `${c.service}:${c.outcome}`)).toEqual(['primary:degraded', 'secondary:ok']);
    expect(cs[0].error?.message).toContain('guard `output.confidence >= 0.7` is false');
  });

  it('honours Retry-After on a 429 before the next attempt', async () => {
    vendor.fault('gpt-main', { kind: '429', retryAfterSec: 1 }, 1);
    vendor.model('gpt-main', { reply: () => 'after the wait' });
    const b = await baton({ primary: { provider: 'openai', model: 'gpt-main', endpoint: `${vendor.url}/v1`, retry: { max_attempts: 3, initial_delay: '10ms' } } });
    const r = await b.run(await b.register('{ "name": "limited", "steps": [{ "id": "a", "kind": "model", "service": "primary", "prompt": "x" }] }'));
    expect(r.output).toBe('after the wait');
    const [first, second] = vendor.requests('gpt-main');
    expect(second.at - first.at).toBeGreaterThanOrEqual(950);
    const cs = await b.store.getModelCalls(r.id);
    expect(cs[0].error).toMatchObject({ code: 'BATON_MODEL_RATE_LIMITED', details: { retryAfterMs: 1000 } });
  });

  it('ends the step with typed errors naming the service for an HTML answer, an unreachable endpoint and an answer that breaks the schema after its re-asks, with every attempt in the history', async () => {
    vendor.fault('gpt-html', { kind: 'html', status: 200 });
    vendor.model('gpt-off-schema', { reply: () => ({ wrong: true }) });
    const b = await baton({
      html: { provider: 'openai', model: 'gpt-html', endpoint: `${vendor.url}/v1`, retry: { max_attempts: 1 } },
      gone: { provider: 'openai', model: 'x', endpoint: 'http://127.0.0.1:9/v1', retry: { max_attempts: 2, initial_delay: '10ms' } },
      offschema: { provider: 'openai', model: 'gpt-off-schema', endpoint: `${vendor.url}/v1` },
    });
    const r = await b.run(await b.register(`
name: all-bad
steps:
  - id: ask
    kind: model
    service: html
    fallback: [gone, offschema]
    prompt: "x"
    output_schema: { type: object, required: [label] }
    repair_attempts: 1
`));
    expect(r.status).toBe('failed');
    expect(r.error?.code).toBe('BATON_ALL_SERVICES_FAILED');
    const cs = await b.store.getModelCalls(r.id);
    expect(cs.map((c) => `${c.service}:${c.error?.code}`)).toEqual([
      'html:BATON_MODEL_BAD_RESPONSE', 'gone:BATON_MODEL_NETWORK', 'gone:BATON_MODEL_NETWORK', 'offschema:BATON_OUTPUT_DEGRADED', 'offschema:BATON_OUTPUT_DEGRADED',
    ]);
    expect(cs[0].error?.message).toMatch(/^Service html answered something that is not a valid .*HTML/);
    expect(cs[1].error?.message).toContain('Service gone: cannot reach http://127.0.0.1:9/v1');
    expect(cs[4].error?.message).toContain("must have required property 'label'");
    // One re-ask after the off-schema answer, carrying what was wrong.
    const asks = vendor.requests('gpt-off-schema');
    expect(asks).toHaveLength(2);
    expect(JSON.stringify(asks[1].body)).toContain("must have required property 'label'");
  });

  it('records the tokens the vendor reports, with cached input billed at its own price', async () => {
    vendor.model('gpt-main', { reply: () => 'ok', usage: { inputTokens: 300, cachedInputTokens: 700, outputTokens: 50 } });
    const b = await baton({ primary: { provider: 'openai', model: 'gpt-main', version: '2026-03', endpoint: `${vendor.url}/v1`, price: { input_per_mtok: 3, cached_input_per_mtok: 0.3, output_per_mtok: 15 } } });
    const r = await b.run(await b.register('{ "name": "tokens", "steps": [{ "id": "a", "kind": "model", "service": "primary", "prompt": "x" }] }'));
    const [c] = await b.store.getModelCalls(r.id);
    expect(c).toMatchObject({ inputTokens: 300, cachedTokens: 700, outputTokens: 50, version: '2026-03' });
    // 300×3 + 700×0.3 + 50×15 = 900 + 210 + 750 = 1860 per million = 0.00186 USD
    expect(c.cost).toBe(0.00186);
    expect(r.cost).toBe(0.00186);
    // The request carried the step's idempotency key.
    expect(vendor.lastRequest('gpt-main')!.headers['idempotency-key']).toMatch(new RegExp(`^${r.id}:a:1:1$`));
  });
});
