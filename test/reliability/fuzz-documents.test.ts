/**
 * Fuzzing workflow documents and expressions (fast-check, bounded runs; a failure prints its
 * seed and shrunk counterexample, rerun with `{ seed, path }`). Whatever comes in, the answer is
 * problems or a compiled workflow (documents) or a typed BatonError (expressions): never another
 * exception, never a hang (expressions are time and depth limited).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { compileWorkflow } from '../../src/spec/compile.js';
import { parseSource } from '../../src/spec/parse.js';
import { Expression } from '../../src/expr/expression.js';
import { BatonError } from '../../src/errors.js';

const root = resolve(import.meta.dirname, '../..');
const EXAMPLES = ['examples/approvals/refund.yaml', 'examples/support/triage.yaml', 'examples/resilience/answer.yaml', 'examples/tasks/workflow.yaml']
  .map((f) => parseYaml(readFileSync(resolve(root, f), 'utf8')) as unknown);
const RUNS = Number(process.env.BATON_FUZZ_RUNS ?? 300);
const LIMITS = { timeoutMs: 200, maxDepth: 100, maxSequence: 100_000 };

/** Only BatonErrors may escape; anything else fails the property with what went in. */
function typed(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof BatonError)) throw new Error(`non-Baton error: ${(e as Error)?.stack ?? String(e)}`);
  }
}
function compiles(value: unknown): void {
  typed(() => {
    const r = compileWorkflow(value);
    expect(r.workflow !== undefined || r.problems.length > 0).toBe(true);
  });
}

/** A valid document with one random change: a value replaced, a key dropped or added. */
const mutation = fc.tuple(fc.constantFrom(...EXAMPLES), fc.array(fc.tuple(fc.nat(), fc.nat(), fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('set', 'drop', 'add')), { minLength: 1, maxLength: 4 }))
  .map(([doc, edits]) => {
    const d = structuredClone(doc) as Record<string, unknown>;
    for (const [i, j, v, op] of edits) {
      // Walk down to some object.
      let node: unknown = d;
      for (let depth = 0; depth < (i % 4); depth++) {
        const kids = node && typeof node === 'object' ? Object.values(node as object).filter((x) => x && typeof x === 'object') : [];
        if (!kids.length) break;
        node = kids[(i + depth) % kids.length];
      }
      if (!node || typeof node !== 'object') continue;
      const keys = Object.keys(node);
      const k = keys.length ? keys[j % keys.length] : 'x';
      const o = node as Record<string, unknown>;
      if (op === 'drop') delete o[k];
      else if (op === 'set') o[k] = v;
      else o[`${k}_${j % 7}`] = v;
    }
    return d;
  });

describe('fuzz: workflow documents', () => {
  it('arbitrary JSON values compile to problems or a workflow, never throw', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), compiles), { numRuns: RUNS });
  });
  it('document-shaped values (name, steps of known kinds, odd fields) never throw', () => {
    const step = fc.record({
      id: fc.oneof(fc.string({ maxLength: 8 }), fc.constant('a'), fc.constant('b')),
      kind: fc.constantFrom('transform', 'function', 'http', 'model', 'map', 'wait', 'approval', 'task', 'emit', 'workflow', 'nope', ''),
      input: fc.oneof(fc.string({ maxLength: 30 }), fc.jsonValue({ maxDepth: 2 })),
      needs: fc.array(fc.constantFrom('a', 'b', 'c', 'a'), { maxLength: 3 }),
      url: fc.string({ maxLength: 30 }),
      over: fc.string({ maxLength: 20 }),
      retry: fc.jsonValue({ maxDepth: 1 }),
      timeout: fc.oneof(fc.string({ maxLength: 6 }), fc.integer()),
    }, { requiredKeys: ['id', 'kind'] });
    const doc = fc.record({ name: fc.oneof(fc.string({ maxLength: 12 }), fc.constant('ok')), steps: fc.array(step, { maxLength: 5 }), input_schema: fc.jsonValue({ maxDepth: 2 }), output: fc.string({ maxLength: 20 }) }, { requiredKeys: ['name', 'steps'] });
    fc.assert(fc.property(doc, compiles), { numRuns: RUNS });
  });
  it('every top-level field with any value never throws', () => {
    const top = fc.record({
      name: fc.oneof(fc.constant('ok'), fc.jsonValue({ maxDepth: 1 })),
      steps: fc.oneof(fc.constant([{ id: 'a', kind: 'transform', expression: '1' }]), fc.jsonValue({ maxDepth: 2 })),
      triggers: fc.jsonValue({ maxDepth: 3 }), sensitive: fc.jsonValue({ maxDepth: 2 }), tags: fc.jsonValue({ maxDepth: 2 }),
      concurrency: fc.jsonValue({ maxDepth: 2 }), limits: fc.jsonValue({ maxDepth: 2 }), defaults: fc.jsonValue({ maxDepth: 3 }),
      input: fc.jsonValue({ maxDepth: 2 }), output: fc.jsonValue({ maxDepth: 2 }), retention: fc.jsonValue({ maxDepth: 2 }),
      description: fc.jsonValue({ maxDepth: 1 }), version: fc.jsonValue({ maxDepth: 1 }),
    }, { requiredKeys: [] });
    fc.assert(fc.property(top, compiles), { numRuns: RUNS * 3 });
  });
  it('mutations of the example workflows never throw', () => {
    for (const d of EXAMPLES) expect(compileWorkflow(d).problems.filter((p) => p.severity !== 'warning').map((p) => p.message)).toBeDefined();
    fc.assert(fc.property(mutation, compiles), { numRuns: RUNS });
  });
  it('arbitrary text as YAML: BATON_DOC_SYNTAX or a value that compiles or has problems', () => {
    const text = fc.oneof(fc.string({ maxLength: 200 }), fc.constantFrom('a: &x [*x]', 'a: !!binary x', '{{{', 'name: x\nsteps:\n  - id: a\n    kind: transform\n    input: "$$$"', `a: ${'['.repeat(500)}`, '- &a [*a, *a]\n'));
    fc.assert(fc.property(text, (t) => {
      typed(() => compileWorkflow(parseSource(t).value, {}));
    }), { numRuns: RUNS });
  });
});

describe('fuzz: expressions', () => {
  const tokens = fc.constantFrom('$', '$$', '.', '(', ')', '[', ']', '{', '}', ',', ':', '"a"', "'b'", '1', '0', '-1', '1e308', 'input', 'steps', 'x', '$sum', '$map', '$string', '$eval', '$count', '&', '+', '*', '/', '%', '=', '!=', '?', '~>', ':=', 'function($x){$x}', '..', '@', '#', '^(', 'and', 'or', 'in', ';', '`', '\\');
  const source = fc.oneof(fc.string({ maxLength: 60 }), fc.array(tokens, { maxLength: 25 }).map((t) => t.join('')), fc.array(tokens, { maxLength: 25 }).map((t) => t.join(' ')));
  async function evaluatesOrTyped(src: string, ctx: Record<string, unknown>): Promise<void> {
    let e: Expression;
    try {
      e = Expression.compile(src, LIMITS);
    } catch (err) {
      expect(err).toBeInstanceOf(BatonError);
      expect((err as BatonError).code).toBe('BATON_EXPR_COMPILE');
      return;
    }
    try {
      await e.evaluate(ctx, 'fuzz');
    } catch (err) {
      if (!(err instanceof BatonError)) throw new Error(`non-Baton error for ${JSON.stringify(src)}: ${String(err)}`);
      expect(['BATON_EXPR_EVAL', 'BATON_EXPR_TIMEOUT', 'BATON_EXPR_DEPTH']).toContain(err.code);
    }
  }
  it('arbitrary JSONata-ish strings: compile error or a value or a typed evaluation error', async () => {
    await fc.assert(fc.asyncProperty(source, fc.jsonValue({ maxDepth: 3 }), async (src, input) => evaluatesOrTyped(src, { input, steps: { a: { output: input } }, vars: {} })), { numRuns: RUNS });
  });
  it('deep nesting and runaway recursion end in BATON_EXPR_DEPTH / TIMEOUT / COMPILE, not a crash or hang', async () => {
    const depth = fc.integer({ min: 1, max: 3000 });
    await fc.assert(fc.asyncProperty(depth, fc.constantFrom('(', '[', '{"a":', '$string('), async (n, open) => {
      const close = open === '(' ? ')' : open === '[' ? ']' : open === '$string(' ? ')' : '}';
      await evaluatesOrTyped(`${open.repeat(n)}1${close.repeat(n)}`, {});
    }), { numRuns: 40 });
    const rec = Expression.compile('($f := function($n){ $f($n + 1) }; $f(0))', LIMITS);
    await expect(rec.evaluate({}, 'rec')).rejects.toMatchObject({ code: expect.stringMatching(/BATON_EXPR_(DEPTH|TIMEOUT)/) });
    const loop = Expression.compile('($f := function($n){ $n > 1e12 ? $n : $f($n + 1) }; [1..100000].($f(0)))', LIMITS);
    await expect(loop.evaluate({}, 'loop')).rejects.toMatchObject({ code: expect.stringMatching(/BATON_EXPR_(DEPTH|TIMEOUT)/) });
    const wide = Expression.compile('$count([1..10000000])', LIMITS);
    await expect(wide.evaluate({}, 'wide')).rejects.toBeInstanceOf(BatonError);
  });
});
