import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Baton } from '../../../src/index.js';
import { expr, toJsonata, workflow } from '../../../src/spec/builder.js';
import { compileWorkflow } from '../../../src/spec/compile.js';

const Ticket = z.object({ id: z.string(), body: z.string(), tags: z.array(z.string()) });

function triage() {
  return workflow('typed-triage', { input: Ticket, description: 'route a ticket', vars: { threshold: 0.5 } })
    .step('classify', {
      kind: 'function',
      input: (c) => ({ text: c.input.body }),
      fn: async ({ text }) => ({ label: text.includes('refund') ? 'billing' : 'other', confidence: 0.9 }),
      output: z.object({ label: z.string(), confidence: z.number() }),
      retry: { max_attempts: 2 },
      timeout: '5s',
    })
    .step('route', {
      kind: 'transform',
      expression: (c) => ({ queue: c.steps.classify.output.label, ticket: c.input.id, extra: [c.input.tags, 'x', 1, null, true] }),
    })
    .step('tagged', {
      kind: 'map',
      over: (c) => c.input.tags,
      concurrency: 2,
      step: { kind: 'function', input: (c) => ({ tag: c.item, at: c.index }), fn: ({ tag, at }) => `${at}:${tag.toUpperCase()}` },
    })
    .step('loud', {
      kind: 'transform',
      expression: expr<string>("'!' & steps.classify.output.label"),
      when: 'steps.classify.output.confidence > vars.threshold',
      needs: ['tagged'],
      on_error: 'continue',
    })
    .output((c) => ({ route: c.steps.route.output, tags: c.steps.tagged.output, loud: c.steps.loud.output }));
}

describe('typed builder', () => {
  it('produces the plain document a YAML file would, which compiles without problems', () => {
    const { document, functions } = triage().build();
    expect(document).toEqual({
      name: 'typed-triage',
      description: 'route a ticket',
      input: {
        type: 'object',
        properties: { id: { type: 'string' }, body: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } } },
        required: ['id', 'body', 'tags'],
        additionalProperties: false,
      },
      vars: { threshold: 0.5 },
      steps: [
        {
          id: 'classify',
          kind: 'function',
          function: 'typed-triage.classify',
          input: '{"text": input.body}',
          retry: { max_attempts: 2 },
          timeout: '5s',
          output_schema: {
            type: 'object',
            properties: { label: { type: 'string' }, confidence: { type: 'number' } },
            required: ['label', 'confidence'],
            additionalProperties: false,
          },
        },
        { id: 'route', kind: 'transform', expression: '{"queue": steps.classify.output.label, "ticket": input.id, "extra": [input.tags, "x", 1, null, true]}' },
        {
          id: 'tagged',
          kind: 'map',
          over: 'input.tags',
          concurrency: 2,
          step: { kind: 'function', function: 'typed-triage.tagged', input: '{"tag": item, "at": index}' },
        },
        {
          id: 'loud',
          kind: 'transform',
          expression: "'!' & steps.classify.output.label",
          when: 'steps.classify.output.confidence > vars.threshold',
          needs: ['tagged'],
          on_error: 'continue',
        },
      ],
      output: '{"route": steps.route.output, "tags": steps.tagged.output, "loud": steps.loud.output}',
    });
    expect(Object.keys(functions).sort()).toEqual(['typed-triage.classify', 'typed-triage.tagged']);
    expect(compileWorkflow(document, { functions: new Set(Object.keys(functions)) }).problems).toEqual([]);
  });

  it('records nested objects, arrays and literals as JSONata', () => {
    const { document } = workflow('rec', { input: z.object({ a: z.object({ b: z.array(z.number()) }), s: z.string() }) })
      .step('x', {
        kind: 'transform',
        expression: (c) => ({
          deep: { list: [c.input.a.b, [1, 'two', { three: c.input.s }], []], empty: {} },
          lits: { n: -1.5, s: 'q"uote\n', t: true, f: false, z: null },
          first: c.input.a.b[0],
          whole: c.input,
        }),
      })
      .build();
    expect((document.steps[0] as { expression: string }).expression).toBe(
      '{"deep": {"list": [input.a.b, [1, "two", {"three": input.s}], []], "empty": {}}, ' +
        '"lits": {"n": -1.5, "s": "q\\"uote\\n", "t": true, "f": false, "z": null}, "first": input.a.b[0], "whole": input}',
    );
    expect(compileWorkflow(document).problems).toEqual([]);
    expect(toJsonata([1, undefined, { gone: undefined, kept: 'k' }])).toBe('[1, null, {"kept": "k"}]');
  });

  it('quotes names JSONata cannot read bare', () => {
    const { document } = workflow('q', { input: z.object({ 'odd-name': z.object({ 'two words': z.string(), true: z.string(), and: z.string() }) }) })
      .step('x', { kind: 'transform', expression: (c) => [c.input['odd-name']['two words'], c.input['odd-name'].true, c.input['odd-name'].and] })
      .build();
    expect((document.steps[0] as { expression: string }).expression).toBe('[input.`odd-name`.`two words`, input.`odd-name`.`true`, input.`odd-name`.`and`]');
    expect(compileWorkflow(document).problems).toEqual([]);
  });

  it('accepts refs for when and guard, and raw JSONata strings everywhere', () => {
    const { document } = workflow('cond', { input: z.object({ urgent: z.boolean() }) })
      .step('check', { kind: 'function', input: 'input', fn: async () => ({ ok: true }), when: (c) => c.input.urgent, guard: (c) => c.output.ok })
      .step('http', { kind: 'http', url: 'https://example.test/{{ steps.check.output.ok }}', method: 'POST', input: (c) => c.steps.check.output, body: z.object({ id: z.string() }) })
      .build();
    expect(document.steps).toEqual([
      { id: 'check', kind: 'function', function: 'cond.check', input: 'input', when: 'input.urgent', guard: 'output.ok' },
      {
        id: 'http', kind: 'http', url: 'https://example.test/{{ steps.check.output.ok }}', method: 'POST', input: 'steps.check.output',
        output_schema: { type: 'object', properties: { body: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'], additionalProperties: false } }, required: ['body'] },
      },
    ]);
    expect(compileWorkflow(document, { functions: new Set(['cond.check']) }).problems).toEqual([]);
  });

  it('refuses to compute with references at build time instead of recording nonsense', () => {
    const w = workflow('bad', { input: z.object({ n: z.number(), s: z.string(), l: z.array(z.string()) }) });
    expect(() => w.step('a', { kind: 'transform', expression: (c) => c.input.n + 1 })).toThrow(/can only select values.*input\.n/);
    expect(() => w.step('b', { kind: 'transform', expression: (c) => `x${c.input.s}` })).toThrow(/can only select values/);
    expect(() => w.step('c', { kind: 'transform', expression: (c) => c.input.s.toUpperCase() })).toThrow(/call methods.*input\.s\.toUpperCase/);
    expect(() => w.step('d', { kind: 'transform', expression: (c) => [...c.input.l] })).toThrow(/iterate or spread/);
    expect(() => w.step('e', { kind: 'transform', expression: () => new Date(0) })).toThrow(/returned Date/);
  });

  it('is immutable: a shared prefix can be extended two ways', () => {
    const base = workflow('fork').step('a', { kind: 'transform', expression: '1' });
    const one = base.step('b', { kind: 'transform', expression: (c) => c.steps.a.output }).build();
    const two = base.step('c', { kind: 'function', fn: () => 2 }).build();
    expect(base.build().document.steps.map((s) => s.id)).toEqual(['a']);
    expect(one.document.steps.map((s) => s.id)).toEqual(['a', 'b']);
    expect(two.document.steps.map((s) => s.id)).toEqual(['a', 'c']);
    expect(Object.keys(one.functions)).toEqual([]);
    expect(Object.keys(two.functions)).toEqual(['fork.c']);
  });

  it('runs what it builds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-builder-'));
    const { document, functions } = triage().build();
    const baton = await Baton.open({ dir, functions });
    try {
      const r = await baton.run(await baton.register(document), { id: 't1', body: 'refund me', tags: ['a', 'b'] });
      expect(r.status).toBe('completed');
      // JSONata's array constructor splices the array it reads, as it would in a YAML document.
      expect(r.output).toEqual({ route: { queue: 'billing', ticket: 't1', extra: ['a', 'b', 'x', 1, null, true] }, tags: ['0:A', '1:B'], loud: '!billing' });
      await expect(baton.start(await baton.register(document), { id: 1 })).rejects.toMatchObject({ code: 'BATON_INPUT_INVALID' });
    } finally {
      await baton.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds model steps whose zod output becomes the output_schema the service must fill', async () => {
    const { document } = workflow('typed-model', { input: z.object({ text: z.string() }) })
      .step('intent', { kind: 'model', service: 'llm', prompt: 'Label: {{ input.text }}', output: z.object({ label: z.string() }), guard: "output.label != ''" })
      .build();
    expect(document.steps[0]).toEqual({
      id: 'intent', kind: 'model', service: 'llm', prompt: 'Label: {{ input.text }}', guard: "output.label != ''",
      output_schema: { type: 'object', properties: { label: { type: 'string' } }, required: ['label'], additionalProperties: false },
    });
    const dir = mkdtempSync(join(tmpdir(), 'baton-builder-'));
    const baton = await Baton.open({
      dir,
      services: { llm: { provider: 'echo' } },
      providers: { echo: () => ({ name: 'echo', defaultOperation: 'chat', call: async (req) => ({ output: JSON.stringify({ label: req.messages![0].content }), usage: { inputTokens: 1, outputTokens: 1, cachedInputTokens: 0 } }) }) },
    });
    try {
      const r = await baton.run(await baton.register(document), { text: 'refund' });
      expect(r.output).toEqual({ label: 'Label: refund' });
    } finally {
      await baton.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds emit steps and waits with a lookback', async () => {
    const { document } = workflow('emitter', { input: z.object({ order: z.string() }) })
      .step('paid', { kind: 'wait', event: 'order.paid', key: (c) => c.input.order, lookback: '1m' })
      .step('ship', { kind: 'emit', type: 'order.shipped', subject: (c) => c.input.order, data: (c) => ({ order: c.input.order, paid: c.steps.paid.output }) })
      .output((c) => c.steps.ship.output.id)
      .build();
    expect(document.steps[1]).toEqual({ id: 'ship', kind: 'emit', type: 'order.shipped', subject: 'input.order', data: '{"order": input.order, "paid": steps.paid.output}' });
    expect(compileWorkflow(document).problems).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), 'baton-builder-'));
    const baton = await Baton.open({ dir });
    try {
      await baton.sendEvent('order.paid', 'O-1', { amount: 1 });
      const r = await baton.run(await baton.register(document), { order: 'O-1' }, { timeoutMs: 20_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toBe(`${r.id}/ship`);
    } finally {
      await baton.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

