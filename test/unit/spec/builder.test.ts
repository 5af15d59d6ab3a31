import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Baton } from '../../../src/index.js';
import { toJsonata, workflow } from '../../../src/spec/builder.js';
import { compileWorkflow } from '../../../src/spec/compile.js';

const Ticket = z.object({ id: z.string(), text: z.string(), tags: z.array(z.string()) });

function triage() {
  return workflow('typed-triage', { input: Ticket })
    .fn('intent', {
      input: (c) => ({ text: c.input.text }),
      run: async ({ text }: { text: string }) => ({ label: text.includes('refund') ? 'billing' : 'other', confidence: 0.9 }),
      output: z.object({ label: z.string(), confidence: z.number() }),
      retry: { max_attempts: 2 },
    })
    .transform('route', { expression: (c) => ({ queue: c.steps.intent.output.label, ticket: c.input.id, tags: [c.input.tags, 'x', 1] }) })
    .map('tagged', { over: (c) => c.input.tags, concurrency: 2, each: (tag: string) => tag.toUpperCase() })
    .transform('loud', { expression: "'!' & steps.intent.output.label", when: 'steps.intent.output.confidence > 0.5', needs: ['tagged'] })
    .output((c) => ({ route: c.steps.route.output, tags: c.steps.tagged.output, loud: c.steps.loud.output }));
}

describe('typed builder', () => {
  it('produces the same plain document a YAML file would', () => {
    const { document, functions } = triage().build();
    expect(document).toEqual({
      name: 'typed-triage',
      input: {
        type: 'object',
        properties: { id: { type: 'string' }, text: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } } },
        required: ['id', 'text', 'tags'],
        additionalProperties: false,
      },
      steps: [
        {
          id: 'intent', kind: 'function', function: 'typed-triage.intent', input: '{ "text": input.text }', retry: { max_attempts: 2 },
          output_schema: { type: 'object', properties: { label: { type: 'string' }, confidence: { type: 'number' } }, required: ['label', 'confidence'], additionalProperties: false },
        },
        { id: 'route', kind: 'transform', expression: '{ "queue": steps.intent.output.label, "ticket": input.id, "tags": [input.tags, "x", 1] }' },
        { id: 'tagged', kind: 'map', over: 'input.tags', concurrency: 2, step: { kind: 'function', function: 'typed-triage.tagged', input: 'item' } },
        { id: 'loud', kind: 'transform', expression: "'!' & steps.intent.output.label", when: 'steps.intent.output.confidence > 0.5', needs: ['tagged'] },
      ],
      output: '{ "route": steps.route.output, "tags": steps.tagged.output, "loud": steps.loud.output }',
    });
    expect(Object.keys(functions).sort()).toEqual(['typed-triage.intent', 'typed-triage.tagged']);
    expect(compileWorkflow(document, { functions: new Set(Object.keys(functions)) }).problems).toEqual([]);
  });

  it('quotes names JSONata cannot read bare, and encodes literals as JSON', () => {
    const { document } = workflow('q', { input: z.object({ 'odd-name': z.object({ 'two words': z.string() }) }) })
      .transform('x', { expression: (c) => c.input['odd-name']['two words'] })
      .build();
    expect((document.steps[0] as { expression: string }).expression).toBe('input.`odd-name`.`two words`');
    expect(toJsonata({ a: null, b: [true, 'q"uote'] })).toBe('{ "a": null, "b": [true, "q\\"uote"] }');
  });

  it('runs what it builds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-builder-'));
    const { document, functions } = triage().build();
    const baton = await Baton.open({ dir, functions });
    try {
      const r = await baton.run(await baton.register(document), { id: 't1', text: 'refund me', tags: ['a', 'b'] });
      expect(r.status).toBe('completed');
      // JSONata's array constructor flattens the array it reads, as it would in a YAML document.
      expect(r.output).toEqual({ route: { queue: 'billing', ticket: 't1', tags: ['a', 'b', 'x', 1] }, tags: ['A', 'B'], loud: '!billing' });
      await expect(baton.start(await baton.register(document), { id: 1 })).rejects.toMatchObject({ code: 'BATON_INPUT_INVALID' });
    } finally {
      await baton.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
