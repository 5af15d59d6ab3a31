/**
 * Fuzzing the gateway's bodies over a real socket (fast-check, bounded runs; failures print the
 * seed and the shrunk body): arbitrary JSON, body-shaped records with odd values and raw
 * garbage to the write endpoints answer a 4xx problem (or 2xx when the body happens to be
 * valid), never a 5xx, never a dropped connection; and a 4xx changes nothing stored.
 * Run inputs against input schemas: BATON_INPUT_INVALID, typed, never anything else.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { createGateway } from '../../src/gateway/server.js';
import { BatonError } from '../../src/errors.js';
import { engineSuite } from '../helpers/stores.js';

const RUNS = Number(process.env.BATON_FUZZ_RUNS ?? 60);

const WF = `
name: greet
input:
  type: object
  required: [name]
  additionalProperties: false
  properties:
    name: { type: string, minLength: 1, maxLength: 50 }
    times: { type: integer, minimum: 1, maximum: 3 }
    tags: { type: array, items: { type: string }, maxItems: 3 }
steps:
  - { id: hello, kind: transform, expression: '"hello " & input.name' }
output: steps.hello.output
`;
const APPROVAL_WF = `
name: gate
steps:
  - id: ok
    kind: approval
    approvers: { roles: [approver] }
    summary: Approve?
    form: { type: object, properties: { note: { type: string } } }
`;

const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, '', 0, -1, 1e308, 'greet', 'workflow/greet', '__proto__', '../../etc/passwd', '\u0000', 'a'.repeat(5000)));
const shaped = (keys: string[]) => fc.dictionary(fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 6 })), anyValue, { maxKeys: 6 });

describe('fuzz: API bodies over a real socket', () => {
  const suite = engineSuite('sqlite', 'baton-fuzz-api-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('write endpoints answer 4xx problems or 2xx, never 5xx; a 4xx changes nothing', async () => {
    const b: Baton = await suite.baton();
    await b.register(WF);
    const gate = await b.register(APPROVAL_WF);
    const gateRun = await b.start(gate.versionId, {});
    const approval = await (async () => {
      for (let i = 0; i < 400; i++) {
        const a = (await b.store.listApprovals()).find((x) => x.runId === gateRun);
        if (a) return a;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error('no approval');
    })();
    app = await createGateway(b, { maxWaitMs: 50 });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });

    const snapshot = async () => JSON.stringify({
      runs: (await b.store.listRuns({ limit: 1000 })).map((r) => [r.id, r.status]),
      approvals: (await b.store.listApprovals()).map((a) => [a.id, a.status]),
      versions: (await b.store.listVersions()).map((v) => v.versionId),
      events: (await b.store.getEvents(gateRun)).length,
    });

    const settle = async () => {
      for (let i = 0; i < 200; i++) {
        const moving = (await b.store.listRuns({ limit: 1000 })).some((r) => r.status === 'running' || r.status === 'pending' || r.status === 'queued');
        if (!moving) return;
        await new Promise((r) => setTimeout(r, 25));
      }
    };

    const endpoints: Array<{ path: string; body: fc.Arbitrary<unknown> }> = [
      { path: '/runs', body: fc.oneof(anyValue, shaped(['workflow', 'input', 'id', 'namespace', 'priority', 'budget', 'wait']), fc.record({ workflow: fc.constantFrom('greet', 'nope', 'greet@production'), input: anyValue }, { requiredKeys: ['workflow'] })) },
      { path: '/workflows', body: fc.oneof(anyValue, shaped(['name', 'steps', 'input', 'output', 'triggers']), fc.record({ name: fc.string({ maxLength: 10 }), steps: fc.array(shaped(['id', 'kind', 'expression', 'needs']), { maxLength: 3 }) })) },
      { path: `/approvals/${approval.id}`, body: fc.oneof(anyValue, shaped(['decision', 'comment', 'data', 'by']), fc.record({ decision: fc.constantFrom('approve', 'reject', 'maybe', ''), data: anyValue })) },
      { path: '/approvals/apr_does_not_exist', body: anyValue },
      { path: '/tasks/poll', body: fc.oneof(anyValue, shaped(['types', 'worker_id', 'lease', 'wait']), fc.record({ types: fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), worker_id: anyValue, wait: fc.constantFrom(0, -1, 'x') })) },
      { path: '/events/order.paid/o-1', body: anyValue },
      { path: '/cloudevents', body: fc.oneof(anyValue, shaped(['specversion', 'id', 'source', 'type', 'data', 'datacontenttype']), fc.array(shaped(['specversion', 'id', 'source', 'type']), { maxLength: 3 })) },
      { path: '/v1/chat/completions', body: fc.oneof(anyValue, shaped(['model', 'messages', 'stream', 'temperature', 'user']), fc.record({ model: fc.constantFrom('workflow/greet', 'workflow/nope', 'gpt-4', ''), messages: fc.oneof(anyValue, fc.array(shaped(['role', 'content']), { maxLength: 3 })), stream: fc.boolean() })) },
    ];
    const post = async (path: string, raw: string, type = 'application/json') => {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': type }, body: raw });
      return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
    };
    for (const ep of endpoints) {
      await fc.assert(fc.asyncProperty(ep.body, async (body) => {
        // A run an earlier accepted request started (or an approval it decided) may still be
        // moving: let it settle first, so the comparison sees only what this request does.
        await settle();
        const before = await snapshot();
        const r = await post(ep.path, JSON.stringify(body) ?? 'null');
        expect(r.status, `${ep.path} ${r.text.slice(0, 300)}`).toBeLessThan(500);
        if (r.status >= 400) {
          // The OpenAI-compatible endpoint answers in OpenAI's error shape; everything else RFC 9457.
          if (ep.path.startsWith('/v1/')) expect(JSON.parse(r.text)).toHaveProperty('error');
          else expect(r.type).toContain('application/problem+json');
          expect(await snapshot(), `${ep.path} changed the store on ${r.status}`).toBe(before);
        }
      }), { numRuns: RUNS });
    }
    // Raw garbage: not JSON, wrong content types, truncated documents.
    const garbage = fc.oneof(fc.string({ maxLength: 200 }), fc.constantFrom('{', '{"workflow":', '[1,2', '\u0000\u0001', 'null', '{"__proto__":{"x":1}}', '{"a":1,"a":2}'));
    await fc.assert(fc.asyncProperty(fc.constantFrom(...endpoints.map((e) => e.path)), garbage, fc.constantFrom('application/json', 'text/plain', 'application/octet-stream', 'application/cloudevents+json'), async (path, raw, type) => {
      const r = await post(path, raw, type);
      expect(r.status, `${path} ${type} ${JSON.stringify(raw)} → ${r.text.slice(0, 200)}`).toBeLessThan(500);
    }), { numRuns: RUNS * 2 });
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('run inputs against the input schema: started, or BATON_INPUT_INVALID', async () => {
    const b = await suite.baton({ worker: false });
    const v = await b.register(WF);
    const input = fc.oneof(fc.constantFrom({ name: 'ada' }, { name: 'bo', times: 2, tags: ['x'] }), fc.jsonValue({ maxDepth: 3 }), fc.record({ name: fc.oneof(fc.string({ maxLength: 60 }), fc.integer(), fc.constant(null)), times: fc.oneof(fc.integer({ min: -2, max: 5 }), fc.double(), fc.string({ maxLength: 2 })), tags: fc.oneof(fc.array(fc.string({ maxLength: 4 }), { maxLength: 5 }), fc.jsonValue({ maxDepth: 1 })), extra: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }));
    let valid = 0;
    await fc.assert(fc.asyncProperty(input, async (x) => {
      try {
        await b.start(v.versionId, x);
        valid++;
        // Whatever started matches the schema's basics.
        expect(typeof (x as { name?: unknown }).name).toBe('string');
      } catch (e) {
        if (!(e instanceof BatonError)) throw e;
        expect(e.code).toBe('BATON_INPUT_INVALID');
        expect(e.message).toMatch(/input schema/);
      }
    }), { numRuns: RUNS * 4 });
    expect(valid).toBeGreaterThan(0);
  });
});
