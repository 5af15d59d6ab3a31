import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { workflow } from '../../src/spec/builder.js';

const base = () =>
  workflow('t', { input: z.object({ text: z.string(), n: z.number() }) })
    .fn('classify', { input: (c) => c.input.text, run: async (text: string) => ({ label: text, score: 1 }) })
    .transform('shout', { expression: (c) => c.steps.classify.output.label, output: z.string() });

describe('builder types', () => {
  it('infers the input type from the zod schema', () => {
    workflow('t', { input: z.object({ text: z.string() }) }).transform('x', {
      expression: (c) => {
        expectTypeOf(c.input).toEqualTypeOf<{ text: string }>();
        return c.input.text;
      },
    });
  });

  it("infers a step's output from its function and from its schema", () => {
    base().transform('check', {
      expression: (c) => {
        expectTypeOf(c.steps.classify.output).toEqualTypeOf<{ label: string; score: number }>();
        expectTypeOf(c.steps.shout.output).toEqualTypeOf<string>();
        return 1;
      },
    });
    base().map('each', { over: (c) => [c.steps.classify.output.label], each: (s: string) => s.length }).transform('after', {
      expression: (c) => {
        expectTypeOf(c.steps.each.output).toEqualTypeOf<number[]>();
        return 1;
      },
    });
  });

  it('makes a reference to a missing step or field a compile error', () => {
    // @ts-expect-error: no step "nope"
    base().transform('bad1', { expression: (c) => c.steps.nope.output });
    // @ts-expect-error: classify's output has no field "confidence"
    base().transform('bad2', { expression: (c) => c.steps.classify.output.confidence });
    // @ts-expect-error: the input has no field "missing"
    base().transform('bad3', { expression: (c) => c.input.missing });
    // @ts-expect-error: needs names a step that does not exist
    base().transform('bad4', { expression: '1', needs: ['ghost'] });
    // @ts-expect-error: a step id cannot be declared twice
    base().transform('classify', { expression: '1' });
  });
});
