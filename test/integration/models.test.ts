/**
 * The model step and the service runtime, end to end through the engine and the SQLite store,
 * with providers written here so that every answer, failure and delay is chosen by the test.
 * (Vendor wire protocols over real sockets are covered in test/e2e/vendors.test.ts.)
 */
import { describe, expect, it, vi } from 'vitest';
import { Baton, type BatonOptions } from '../../src/index.js';
import { BatonError } from '../../src/errors.js';
import type { ModelRequest, ModelResponse, Provider, ProviderFactory } from '../../src/providers/provider.js';
import type { ModelCallRecord } from '../../src/store/store.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const usage = (i: number, o: number, c = 0) => ({ inputTokens: i, outputTokens: o, cachedInputTokens: c });

/** A provider whose behaviour the test scripts call by call. */
function scripted(name: string, answer: (req: ModelRequest, n: number, signal: AbortSignal) => Promise<ModelResponse> | ModelResponse) {
  const seen: ModelRequest[] = [];
  const factory: ProviderFactory = (): Provider => ({
    name,
    defaultOperation: 'chat',
    async call(req, o) {
      seen.push(req);
      return answer(req, seen.length, o.signal);
    },
  });
  return { factory, seen };
}

const fail = (code: 'BATON_MODEL_HTTP' | 'BATON_MODEL_RATE_LIMITED', extra: Record<string, unknown> = {}) =>
  new BatonError(code, { service: 'x', httpStatus: 500, detail: 'scripted failure', retryAfter: '', ...extra }, { retryable: true });

const calls = (b: Baton, runId: string): Promise<ModelCallRecord[]> => b.store.getModelCalls(runId);

// Every test runs on each store: the embedded SQLite file and a fresh PostgreSQL database.
describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-models-');
  /** An engine on this test's store (each call opens another, like another process). */
  const baton = (opts: BatonOptions = {}): Promise<Baton> => suite.baton(opts);

  describe('model steps', () => {
    it('falls back when the primary fails, opens its breaker, skips it at once, and closes it again after a good probe', async () => {
      let healthy = false;
      const primary = scripted('p', () => {
        if (!healthy) throw fail('BATON_MODEL_HTTP');
        return { output: '{"answer":"primary"}', usage: usage(10, 5) };
      });
      const backup = scripted('b', () => ({ output: '{"answer":"backup"}', usage: usage(10, 5) }));
      const b = await baton({
        providers: { p: primary.factory, b: backup.factory },
        services: {
          primary: { provider: 'p', retry: { max_attempts: 1 }, breaker: { failures: 2, window: '1m', cooldown: '1h' } },
          backup: { provider: 'b' },
        },
      });
      const v = await b.register(`
name: three
steps:
  - { id: one, kind: model, service: primary, fallback: [backup], prompt: "1", output_schema: { type: object } }
  - { id: two, kind: model, service: primary, fallback: [backup], prompt: "2 {{ steps.one.output.answer }}", output_schema: { type: object } }
  - { id: three, kind: model, service: primary, fallback: [backup], prompt: "3 {{ steps.two.output.answer }}", output_schema: { type: object } }
`);
      const r = await b.run(v);
      expect(r.status).toBe('completed');
      expect(r.output).toEqual({ answer: 'backup' });
      // Two failures open the breaker: the third step never reaches the primary.
      expect(primary.seen).toHaveLength(2);
      const outcomes = (await calls(b, r.id)).map((c) => `${c.stepKey}:${c.service}:${c.outcome}`);
      expect(outcomes).toEqual(['one:primary:error', 'one:backup:ok', 'two:primary:error', 'two:backup:ok', 'three:primary:skipped', 'three:backup:ok']);
      expect(b.models!.breaker('primary')!.state).toBe('open');

      // The service recovers; after the cooldown one probe goes through and closes the breaker.
      // The cooldown is long (a slow machine cannot outlast it mid-run) and passes by moving the
      // clock an hour on, which is what the breaker reads.
      healthy = true;
      const realNow = Date.now.bind(Date);
      const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
      try {
        const r2 = await b.run(v);
        expect(r2.output).toEqual({ answer: 'primary' });
        expect(b.models!.breaker('primary')!.state).toBe('closed');
        expect((await calls(b, r2.id)).every((c) => c.service === 'primary' && c.outcome === 'ok')).toBe(true);
        expect(b.models!.breaker('primary')!.transitions.map((t) => t.state)).toEqual(['open', 'half-open', 'closed']);
      } finally {
        clock.mockRestore();
      }
    });

    it('treats a failed guard as a failure and asks the next service (degraded output never flows downstream)', async () => {
      const low = scripted('low', () => ({ output: { label: 'billing', confidence: 0.2 }, usage: usage(5, 1) }));
      const high = scripted('high', () => ({ output: { label: 'technical', confidence: 0.95 }, usage: usage(5, 1) }));
      const b = await baton({
        providers: { low: low.factory, high: high.factory },
        services: { small: { provider: 'low', retry: { max_attempts: 1 } }, large: { provider: 'high' } },
      });
      const v = await b.register(`
name: guarded
steps:
  - { id: classify, kind: model, service: small, fallback: [large], operation: classify, input: "input.text", guard: "output.confidence >= 0.7" }
  - { id: after, kind: transform, expression: "steps.classify.output.label" }
`);
      const r = await b.run(v, { text: 'my app crashes' });
      expect(r.status).toBe('completed');
      expect(r.output).toBe('technical');
      const cs = await calls(b, r.id);
      expect(cs.map((c) => [c.service, c.outcome])).toEqual([['small', 'degraded'], ['large', 'ok']]);
      expect(cs[0].error?.code).toBe('BATON_OUTPUT_DEGRADED');
      expect(cs[0].error?.message).toContain('guard `output.confidence >= 0.7` is false');
      // The classifier got the step input, not a chat conversation.
      expect(low.seen[0]).toMatchObject({ operation: 'classify', input: 'my app crashes' });
    });

    it('repairs broken JSON mechanically and re-asks once when the answer breaks the schema', async () => {
      const model = scripted('m', (req, n) => {
        if (n === 1) return { output: 'Sure! ```json\n{"name": "Ada", "age": "forty",}\n```', usage: usage(20, 10) };
        return { output: '{"name": "Ada", "age": 40}', usage: usage(40, 8) };
      });
      const b = await baton({ providers: { m: model.factory }, services: { llm: { provider: 'm' } } });
      const v = await b.register(`
name: extract
steps:
  - id: person
    kind: model
    service: llm
    prompt: "Extract the person from: {{ input.text }}"
    output_schema: { type: object, required: [name, age], properties: { name: { type: string }, age: { type: integer } } }
`);
      const r = await b.run(v, { text: 'Ada is forty' });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual({ name: 'Ada', age: 40 });
      expect(model.seen).toHaveLength(2);
      // The re-ask carries the first answer and says what was wrong with it.
      const followUp = model.seen[1].messages!;
      expect(followUp.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
      expect(followUp[2].content).toContain('/age must be integer');
      expect(model.seen[0].schema).toMatchObject({ required: ['name', 'age'] });
      expect((await calls(b, r.id)).map((c) => c.outcome)).toEqual(['degraded', 'ok']);
    });

    it('fails the step with a typed error naming every service when all of them fail, keeping every attempt in the history', async () => {
      const bad = scripted('bad', () => ({ output: '<html><title>502 Bad Gateway</title></html>', usage: usage(1, 1) }));
      const down = scripted('down', () => {
        throw new BatonError('BATON_MODEL_NETWORK', { service: 'fallback-svc', endpoint: 'http://127.0.0.1:9', detail: 'connect ECONNREFUSED' });
      });
      const b = await baton({
        providers: { bad: bad.factory, down: down.factory },
        services: { main: { provider: 'bad', retry: { max_attempts: 1 } }, spare: { provider: 'down', retry: { max_attempts: 2, initial_delay: '10ms' } } },
      });
      const v = await b.register(`
name: doomed
steps:
  - { id: ask, kind: model, service: main, fallback: [spare], prompt: "hi", output_schema: { type: object }, repair_attempts: 0 }
`);
      const r = await b.run(v);
      expect(r.status).toBe('failed');
      expect(r.error?.code).toBe('BATON_ALL_SERVICES_FAILED');
      expect(r.error?.message).toContain('main: Service main gave a degraded answer');
      expect(r.error?.message).toContain('spare: Service fallback-svc: cannot reach http://127.0.0.1:9');
      const cs = await calls(b, r.id);
      expect(cs.map((c) => `${c.service}:${c.outcome}:${c.error?.code}`)).toEqual([
        'main:degraded:BATON_OUTPUT_DEGRADED', 'spare:error:BATON_MODEL_NETWORK', 'spare:error:BATON_MODEL_NETWORK',
      ]);
    });

    it('waits as long as Retry-After says before repeating a rate-limited call', async () => {
      const times: number[] = [];
      const m = scripted('m', (_r, n) => {
        times.push(Date.now());
        if (n === 1) throw new BatonError('BATON_MODEL_RATE_LIMITED', { service: 'llm', detail: 'slow down', retryAfter: ' (retry after 400 ms)', retryAfterMs: 400 });
        return { output: 'ok', usage: usage(1, 1) };
      });
      const b = await baton({ providers: { m: m.factory }, services: { llm: { provider: 'm', retry: { max_attempts: 3, initial_delay: '10ms' } } } });
      const r = await b.run(await b.register('{ "name": "ra", "steps": [{ "id": "a", "kind": "model", "service": "llm", "prompt": "x" }] }'));
      expect(r.status).toBe('completed');
      expect(times).toHaveLength(2);
      expect(times[1] - times[0]).toBeGreaterThanOrEqual(390);
    });

    it('hedges a slow call: the next service starts after the delay, the first good answer wins, the loser is aborted', async () => {
      let primaryAborted = false;
      const slow = scripted('slow', async (_r, _n, signal) => {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, 2000);
          signal.addEventListener('abort', () => {
            clearTimeout(t);
            primaryAborted = true;
            reject(signal.reason);
          });
        });
        return { output: 'slow answer', usage: usage(1, 1) };
      });
      const fast = scripted('fast', () => ({ output: 'fast answer', usage: usage(1, 1) }));
      const b = await baton({
        providers: { slow: slow.factory, fast: fast.factory },
        services: { primary: { provider: 'slow', hedge: { after: '100ms' } }, secondary: { provider: 'fast' } },
      });
      const r = await b.run(await b.register('{ "name": "hedged", "steps": [{ "id": "a", "kind": "model", "service": "primary", "fallback": ["secondary"], "prompt": "x" }] }'));
      expect(r.status).toBe('completed');
      // The fast answer won, so the run did not wait for the slow one (which would answer 'slow answer').
      expect(r.output).toBe('fast answer');
      expect(primaryAborted).toBe(true);
      // The aborted primary's call is recorded as it unwinds, which may be just after the run ends.
      const cs = await until(async () => {
        const all = await calls(b, r.id);
        return all.some((c) => c.service === 'primary') && all;
      }, 'the cancelled primary call to be recorded');
      expect(cs.find((c) => c.service === 'secondary')).toMatchObject({ outcome: 'ok', hedge: true });
      expect(cs.find((c) => c.service === 'primary')).toMatchObject({ outcome: 'cancelled' });
      // A cancelled hedge says nothing about the primary's health.
      expect(b.models!.status().find((s) => s.name === 'primary')!.failures).toBe(0);
    });

    it('with hedging on, a primary that fails before the hedge delay falls back at once, as a plain fallback', async () => {
      const broken = scripted('broken', () => {
        throw fail('BATON_MODEL_HTTP');
      });
      const fast = scripted('fast', () => ({ output: 'fallback answer', usage: usage(1, 1) }));
      const b = await baton({
        providers: { broken: broken.factory, fast: fast.factory },
        services: { primary: { provider: 'broken', hedge: { after: '60s' }, retry: { max_attempts: 1 } }, secondary: { provider: 'fast' } },
      });
      // Far sooner than the hedge delay (the bound allows for a slow machine; the calls below say it was no hedge).
      const t0 = Date.now();
      const r = await b.run(await b.register('{ "name": "hedge-fails", "steps": [{ "id": "a", "kind": "model", "service": "primary", "fallback": ["secondary"], "prompt": "x" }] }'));
      expect(r.output).toBe('fallback answer');
      expect(Date.now() - t0).toBeLessThan(20_000);
      const cs = await calls(b, r.id);
      expect(cs.map((c) => [c.service, c.outcome, c.hedge ?? false])).toEqual([['primary', 'error', false], ['secondary', 'ok', false]]);
    });

    it('in cascade mode asks the cheapest service first and escalates only when the guard fails', async () => {
      const cheap = scripted('cheap', (req) => ({ output: { label: String(req.input).includes('hard') ? '?' : 'easy', confidence: String(req.input).includes('hard') ? 0.3 : 0.9 }, usage: usage(10, 2) }));
      const dear = scripted('dear', () => ({ output: { label: 'expert', confidence: 0.99 }, usage: usage(10, 2) }));
      const b = await baton({
        providers: { cheap: cheap.factory, dear: dear.factory },
        services: {
          // Written dearest first: the cascade orders by price, not by position.
          big: { provider: 'dear', price: { input_per_mtok: 10, output_per_mtok: 30 } },
          small: { provider: 'cheap', price: { input_per_mtok: 0.1, output_per_mtok: 0.3 }, breaker: { failures: 1 } },
        },
      });
      const v = await b.register(`
name: cascade
steps:
  - { id: label, kind: model, service: big, fallback: [small], strategy: cascade, operation: classify, input: "input.text", guard: "output.confidence >= 0.8" }
`);
      const easy = await b.run(v, { text: 'easy one' });
      const hard = await b.run(v, { text: 'hard one' });
      expect(easy.output).toEqual({ label: 'easy', confidence: 0.9 });
      expect(hard.output).toEqual({ label: 'expert', confidence: 0.99 });
      expect((await calls(b, easy.id)).map((c) => c.service)).toEqual(['small']);
      expect((await calls(b, hard.id)).map((c) => `${c.service}:${c.outcome}`)).toEqual(['small:degraded', 'big:ok']);
      // "Not sure" from the cheap tier is an escalation, not ill health: its breaker stays closed.
      const again = await b.run(v, { text: 'hard two' });
      expect((await calls(b, again.id)).map((c) => c.service)).toEqual(['small', 'big']);
      expect(b.models!.breaker('small')!.state).toBe('closed');
    });

    it('records tokens and cost of every call, with cached input at its own price, and totals them per run, service and workflow', async () => {
      const m = scripted('m', (_r, n) => ({ output: `answer ${n}`, usage: n === 1 ? usage(1200, 300, 0) : usage(200, 150, 1000), model: 'gpt-x-2026-01-01' }));
      const b = await baton({
        providers: { m: m.factory },
        services: { llm: { provider: 'm', model: 'gpt-x', version: '2026-01-01', price: { input_per_mtok: 2.5, output_per_mtok: 10, cached_input_per_mtok: 1.25, per_call: 0.0001 } } },
      });
      const v = await b.register(`
name: costed
steps:
  - { id: a, kind: model, service: llm, prompt: "first" }
  - { id: b, kind: model, service: llm, prompt: "second {{ steps.a.output }}" }
`);
      const r = await b.run(v);
      // By hand: call 1 = 1200×2.5/1e6 + 300×10/1e6 + 0.0001 = 0.003 + 0.003 + 0.0001 = 0.0061
      //          call 2 = 200×2.5/1e6 + 150×10/1e6 + 1000×1.25/1e6 + 0.0001 = 0.0005 + 0.0015 + 0.00125 + 0.0001 = 0.00335
      const cs = await calls(b, r.id);
      expect(cs.map((c) => c.cost)).toEqual([0.0061, 0.00335]);
      expect(cs[1]).toMatchObject({ inputTokens: 200, outputTokens: 150, cachedTokens: 1000, model: 'gpt-x', version: '2026-01-01', servedBy: 'gpt-x-2026-01-01' });
      expect(r.cost).toBeCloseTo(0.00945, 12);
      const [byService] = await b.store.costReport({ by: 'service' });
      expect(byService).toMatchObject({ key: 'llm', calls: 2, inputTokens: 1400, outputTokens: 450, cachedTokens: 1000, cost: 0.00945 });
      const [byModel] = await b.store.costReport({ by: 'model' });
      expect(byModel.key).toBe('m/gpt-x@2026-01-01');
      const [byWorkflow] = await b.store.costReport({ by: 'workflow' });
      expect(byWorkflow).toMatchObject({ key: 'costed', cost: 0.00945 });
      // The same figures are in the run's event history.
      const ev = (await b.getEvents(r.id)).filter((e) => e.type === 'model.call');
      expect(ev.map((e) => (e.data as { cost: number }).cost)).toEqual([0.0061, 0.00335]);
    });

    it('reserves budget before each call so that parallel branches cannot overspend together, and stops the run with a clear error', async () => {
      let inFlight = 0;
      let maxInFlight = 0;
      // Calls are held until the run has failed: a call that ended early would hand back its
      // reservation, and on a slow machine a late step could then fit (that is not overspending).
      let release = () => {};
      const held = new Promise<void>((r) => (release = r));
      const m = scripted('m', async () => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await held;
        inFlight--;
        return { output: 'ok', usage: usage(100, 100) };
      });
      const b = await baton({
        providers: { m: m.factory },
        // Each call may cost up to 1000 output tokens × $100/Mtok = $0.10 (+ input), so $0.25 fits two.
        services: { llm: { provider: 'm', max_tokens: 1000, price: { input_per_mtok: 100, output_per_mtok: 100 } } },
      });
      // `on_error: continue` on a step does not let a run spend past its budget.
      const v = await b.register(`
name: budgeted
budget: { max_cost: 0.25 }
steps:
  - { id: a, kind: model, service: llm, prompt: "a", on_error: continue }
  - { id: b, kind: model, service: llm, prompt: "b", on_error: continue }
  - { id: c, kind: model, service: llm, prompt: "c", on_error: continue }
  - { id: d, kind: model, service: llm, prompt: "d", on_error: continue }
`);
      const r = await b.run(v);
      release();
      expect(r.status).toBe('failed');
      expect(r.error?.code).toBe('BATON_BUDGET_EXCEEDED');
      expect(r.error?.message).toMatch(/would exceed its budget of 0\.25 USD/);
      expect(m.seen.length).toBe(2);
      expect(maxInFlight).toBe(2);
      // The two calls admitted were in flight when the run failed; they finish and are recorded.
      await until(async () => (await calls(b, r.id)).length === 2, 'the two calls recorded');
      const run = await b.getRun(r.id);
      expect(run.cost).toBeLessThanOrEqual(0.25);
      expect(run.cost).toBeCloseTo(2 * (100 * 100 + 100 * 100) / 1e6, 9);
      // A larger budget given for one run overrides the document's.
      const ok = await b.run(v, {}, { budget: 1 });
      expect(ok.status).toBe('completed');
      expect(ok.budget).toBe(1);
    });

    it('answers a repeated request from the response cache when asked to, and counts hits and misses', async () => {
      const m = scripted('m', (req) => ({ output: `echo ${req.messages![0].content}`, usage: usage(10, 10) }));
      const b = await baton({ providers: { m: m.factory }, services: { llm: { provider: 'm', price: { input_per_mtok: 1, output_per_mtok: 1 } } } });
      const v = await b.register(`
name: cached
steps:
  - { id: a, kind: model, service: llm, prompt: "say {{ input.word }}", cache: { ttl: 1h } }
`);
      const r1 = await b.run(v, { word: 'hi' });
      const r2 = await b.run(v, { word: 'hi' });
      const r3 = await b.run(v, { word: 'bye' });
      expect([r1.output, r2.output, r3.output]).toEqual(['echo say hi', 'echo say hi', 'echo say bye']);
      expect(m.seen).toHaveLength(2);
      expect((await calls(b, r2.id)).map((c) => [c.outcome, c.cost])).toEqual([['cache_hit', 0]]);
      expect(b.models!.status()[0]).toMatchObject({ cacheHits: 1, cacheMisses: 2 });
      expect(r2.cost).toBe(0);
    });

    it('holds a service to its concurrency limit across runs on the worker', async () => {
      let inFlight = 0;
      let maxInFlight = 0;
      const m = scripted('m', async () => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await sleep(30);
        inFlight--;
        return { output: 'ok', usage: usage(1, 1) };
      });
      const b = await baton({ providers: { m: m.factory }, services: { llm: { provider: 'm', limits: { concurrency: 2 } } } });
      const v = await b.register(`
name: fan
steps:
  - { id: each, kind: map, over: "input.items", concurrency: 10, step: { kind: model, service: llm, prompt: "{{ item }}" } }
`);
      const runs = await Promise.all([b.run(v, { items: [1, 2, 3, 4, 5, 6] }), b.run(v, { items: [7, 8, 9] })]);
      expect(runs.map((r) => r.status)).toEqual(['completed', 'completed']);
      expect(m.seen).toHaveLength(9);
      expect(maxInFlight).toBe(2);
    });

    it('with shared limits, holds the concurrency limit across two engines (workers) on one store', async () => {
      let inFlight = 0;
      let maxInFlight = 0;
      const m = scripted('m', async () => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await sleep(25);
        inFlight--;
        return { output: 'ok', usage: usage(1, 1) };
      });
      const services = { llm: { provider: 'm', limits: { concurrency: 2, requests_per_minute: 6000 } } };
      const one = await baton({ providers: { m: m.factory }, services, sharedLimits: true });
      const two = await baton({ providers: { m: m.factory }, services, sharedLimits: true });
      const doc = `
name: fan-shared
steps:
  - { id: each, kind: map, over: "input.items", concurrency: 10, step: { kind: model, service: llm, prompt: "{{ item }}" } }
`;
      const [v1, v2] = [await one.register(doc), await two.register(doc)];
      const runs = await Promise.all([one.run(v1, { items: [1, 2, 3, 4, 5, 6] }), two.run(v2, { items: [7, 8, 9, 10, 11, 12] })]);
      expect(runs.map((r) => r.status)).toEqual(['completed', 'completed']);
      expect(m.seen).toHaveLength(12);
      // Each engine alone would allow 2; together they still hold 2.
      expect(maxInFlight).toBe(2);
    });

    it('ends the step with a typed error naming the service and the variable when a credential is missing', async () => {
      delete process.env.BATON_TEST_MISSING_KEY;
      const m = scripted('m', () => ({ output: 'never', usage: usage(1, 1) }));
      const b = await baton({ providers: { m: m.factory }, services: { vendor: { provider: 'm', credential: { env: 'BATON_TEST_MISSING_KEY' } } } });
      const r = await b.run(await b.register('{ "name": "nokey", "steps": [{ "id": "a", "kind": "model", "service": "vendor", "prompt": "x" }] }'));
      expect(r.status).toBe('failed');
      expect(r.error?.message).toContain('Service vendor needs its credential from environment variable BATON_TEST_MISSING_KEY, which is not set');
      expect(m.seen).toHaveLength(0);
      expect((await calls(b, r.id)).map((c) => c.error?.code)).toEqual(['BATON_CREDENTIAL_MISSING']);
    });
  });

  describe('services governance in validation', () => {
    it('refuses unknown and blocked services with their positions, and warns on deprecated ones', async () => {
      const m = scripted('m', () => ({ output: 'ok', usage: usage(1, 1) }));
      const b = await baton({
        providers: { m: m.factory },
        services: {
          'gpt-small': { provider: 'm', status: 'approved' },
          legacy: { provider: 'm', status: 'deprecated', status_reason: 'retired 2027-01' },
          banned: { provider: 'm', status: 'blocked', status_reason: 'failed the privacy review' },
        },
      });
      const err = await b.register(`
name: gov
steps:
  - { id: a, kind: model, service: gpt-smal, prompt: x }
  - { id: b, kind: model, service: legacy, fallback: [banned], prompt: x }
`, 'gov.yaml').catch((e: BatonError) => e);
      expect(err).toBeInstanceOf(BatonError);
      const lines = (err as BatonError).problems.map((p) => `${p.line}:${p.column} ${p.severity ?? 'error'} ${p.message}`);
      expect(lines).toContain('4:36 error names service "gpt-smal", which is not configured (did you mean "gpt-small"?). Declare it under `services:` in baton.config.yaml.');
      expect(lines).toContain('5:55 error service "banned" is blocked (failed the privacy review); choose an approved service.');
      expect(lines).toContain('5:36 warning service "legacy" is deprecated (retired 2027-01); plan a move to an approved one.');

      const ok = await b.register('{ "name": "gov2", "steps": [{ "id": "a", "kind": "model", "service": "legacy", "prompt": "x" }] }');
      expect(ok.warnings.map((w) => w.message)).toEqual(['service "legacy" is deprecated (retired 2027-01); plan a move to an approved one.']);
    });

    it('rejects a services config with every problem named by path', () => {
      const attempt = () => Baton.open({ dir: suite.dir, services: { a: { provider: 'openai', price: { input_per_mtok: -1 }, timeout: 'soon', credential: 'sk-live-123' }, b: { provider: 'nope' } } });
      return expect(attempt()).rejects.toThrow(/3 problems in services:\n  services\.a\.credential: .*never the secret itself\n  services\.a\.price\.input_per_mtok: .*>=0\n  services\.a\.timeout: "soon" is not a duration/);
    });

    it('names an unknown provider and lists the known ones', async () => {
      await expect(Baton.open({ dir: suite.dir, services: { b: { provider: 'nope' } } })).rejects.toThrow(/services\.b\.provider: unknown provider "nope"; use one of: .*local-classifier.*openai/);
    });
  });
});
