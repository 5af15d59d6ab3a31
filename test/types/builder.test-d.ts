import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { expr, workflow, type HttpOutput } from '../../src/spec/builder.js';

const base = () =>
  workflow('t', { input: z.object({ text: z.string(), tags: z.array(z.string()) }), vars: { limit: 3 } })
    .step('classify', { kind: 'function', input: (c) => c.input.text, fn: async (text) => ({ label: text, score: 1 }) })
    .step('shout', { kind: 'function', input: (c) => c.steps.classify.output.label, fn: async (): Promise<unknown> => 'x', output: z.string() });

describe('builder types', () => {
  it('infers the input type from the zod schema and the vars from their value', () => {
    workflow('t', { input: z.object({ text: z.string() }), vars: { limit: 3 } }).step('x', {
      kind: 'transform',
      expression: (c) => {
        expectTypeOf(c.input).toEqualTypeOf<{ text: string }>();
        expectTypeOf(c.vars).toEqualTypeOf<{ limit: number }>();
        return c.input.text;
      },
    });
    workflow('no-input').step('x', {
      kind: 'transform',
      expression: (c) => {
        expectTypeOf(c.input).toEqualTypeOf<unknown>();
        return 1;
      },
    });
  });

  it("infers a step's output from its function and from its zod output schema", () => {
    base().step('check', {
      kind: 'transform',
      expression: (c) => {
        expectTypeOf(c.steps.classify.output).toEqualTypeOf<{ label: string; score: number }>();
        expectTypeOf(c.steps.shout.output).toEqualTypeOf<string>();
        return 1;
      },
    });
    base()
      .step('each', { kind: 'map', over: (c) => c.input.tags, step: { kind: 'function', input: (c) => c.item, fn: (s) => s.length } })
      .step('pairs', { kind: 'map', over: (c) => c.input.tags, step: { kind: 'transform', expression: (c) => ({ at: c.index, tag: c.item }) } })
      .step('raw', { kind: 'transform', expression: expr<{ n: number }>('{"n": 1}') })
      .step('parsed', { kind: 'transform', expression: 'input.text', output: z.object({ ok: z.boolean() }) })
      .step('call', { kind: 'http', url: 'https://example.test', body: z.object({ id: z.string() }) })
      .step('after', {
        kind: 'transform',
        expression: (c) => {
          expectTypeOf(c.steps.each.output).toEqualTypeOf<number[]>();
          expectTypeOf(c.steps.pairs.output).toEqualTypeOf<Array<{ at: number; tag: string }>>();
          expectTypeOf(c.steps.raw.output).toEqualTypeOf<{ n: number }>();
          expectTypeOf(c.steps.parsed.output).toEqualTypeOf<{ ok: boolean }>();
          expectTypeOf(c.steps.call.output).toEqualTypeOf<HttpOutput<{ id: string }>>();
          return 1;
        },
      });
  });

  it('types a function input by its reference, and a guard by the output', () => {
    base().step('f', {
      kind: 'function',
      input: (c) => ({ label: c.steps.classify.output.label, tags: c.input.tags }),
      fn: (i) => {
        expectTypeOf(i).toEqualTypeOf<{ label: string; tags: string[] }>();
        return { done: true };
      },
      guard: (c) => {
        expectTypeOf(c.output).toEqualTypeOf<{ done: boolean }>();
        return c.output.done;
      },
    });
  });

  it('makes references to missing steps and fields compile errors', () => {
    // @ts-expect-error: there is no step "nope"
    base().step('bad1', { kind: 'transform', expression: (c) => c.steps.nope.output });
    // @ts-expect-error: classify's output has no field "confidence"
    base().step('bad2', { kind: 'transform', expression: (c) => c.steps.classify.output.confidence });
    // @ts-expect-error: the input has no field "missing"
    base().step('bad3', { kind: 'function', input: (c) => c.input.missing, fn: () => 1 });
    // @ts-expect-error: needs names a step that does not exist
    base().step('bad4', { kind: 'transform', expression: '1', needs: ['ghost'] });
    // @ts-expect-error: the workflow output reads a step that does not exist
    base().output((c) => c.steps.ghost.output);
    // @ts-expect-error: a step declared later is not visible yet
    workflow('order').step('a', { kind: 'transform', expression: (c) => c.steps.b.output }).step('b', { kind: 'transform', expression: '1' });
  });

  it('makes mismatched definitions compile errors', () => {
    // @ts-expect-error: a step id cannot be declared twice
    base().step('classify', { kind: 'transform', expression: '1' });
    // @ts-expect-error: the function takes a number, the reference gives a string
    base().step('bad5', { kind: 'function', input: (c) => c.input.text, fn: (n: number) => n });
    // @ts-expect-error: without `input` the function receives undefined
    base().step('bad6', { kind: 'function', fn: (s: string) => s });
    // @ts-expect-error: the output schema rejects what the function returns
    base().step('bad7', { kind: 'function', fn: () => ({ a: 'x' }), output: z.object({ a: z.number() }) });
    // @ts-expect-error: a map's function sub-step must say what it receives
    base().step('bad8', { kind: 'map', over: (c) => c.input.tags, step: { kind: 'function', fn: () => 1 } });
    // @ts-expect-error: `over` must give an array
    base().step('bad9', { kind: 'map', over: (c) => c.input.text, step: { kind: 'transform', expression: 'item' } });
    // @ts-expect-error: a misspelt field
    base().step('bad10', { kind: 'transform', expresion: '1' });
    // @ts-expect-error: `when` takes a reference to a boolean
    base().step('bad11', { kind: 'transform', expression: '1', when: (c) => c.input.text });
  });

  it("types a model step's output from its zod output schema", () => {
    const w = base()
      .step('intent', { kind: 'model', service: 'llm', fallback: ['backup'], prompt: 'Label: {{ input.text }}', output: z.object({ label: z.string(), confidence: z.number() }), guard: expr<boolean>('output.confidence >= 0.5') })
      .step('raw', { kind: 'model', service: 'kb', operation: 'retrieve', input: (c) => c.steps.intent.output.label })
      .step('use', {
        kind: 'transform',
        expression: (c) => {
          expectTypeOf(c.steps.intent.output).toEqualTypeOf<{ label: string; confidence: number }>();
          expectTypeOf(c.steps.raw.output).toEqualTypeOf<unknown>();
          return c.steps.intent.output.label;
        },
      });
    expectTypeOf(w).not.toBeNever();
    // @ts-expect-error a model step names its service
    base().step('bad', { kind: 'model', prompt: 'x' });
    // @ts-expect-error strategy is fallback or cascade
    base().step('bad2', { kind: 'model', service: 'x', strategy: 'random' });
  });
  it("types a task step's output by its zod output schema", () => {
    base()
      .step('ext', { kind: 'task', task_type: 'score', input: (c) => c.steps.classify.output.label, output: z.object({ score: z.number() }) })
      .step('use', {
        kind: 'transform',
        expression: (c) => {
          expectTypeOf(c.steps.ext.output).toEqualTypeOf<{ score: number }>();
          return c.steps.ext.output.score;
        },
      });
    // @ts-expect-error task_type is required
    base().step('bad', { kind: 'task' });
  });
  it("types an approval step's output as the answer with its zod form's fields", () => {
    base()
      .step('review', { kind: 'approval', approvers: { roles: ['approver'] }, evidence: (c) => c.steps.classify.output, when: (c) => c.steps.classify.output.score < 0.5, form: z.object({ label: z.string() }) })
      .step('use', {
        kind: 'transform',
        expression: (c) => {
          expectTypeOf(c.steps.review.output.decision).toEqualTypeOf<'approve' | 'reject'>();
          expectTypeOf(c.steps.review.output.label).toEqualTypeOf<string | undefined>();
          expectTypeOf(c.steps.review.output.decided_by).toEqualTypeOf<string>();
          return c.steps.review.output.decision;
        },
      });
    // @ts-expect-error approvers are required
    base().step('bad', { kind: 'approval' });
  });
});

