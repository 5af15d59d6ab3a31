import jsonata from 'jsonata';
import { describe, expect, it, vi } from 'vitest';
import { Expression, Template, ExpressionCache } from '../../../src/expr/expression.js';
import { BatonError } from '../../../src/errors.js';

describe('expressions', () => {
  it('finds the steps an expression reads', () => {
    const e = Expression.compile('steps.a.output.x + $count(steps.b.output) + input.y + ($v := steps.c; 1)');
    expect([...e.stepRefs].sort()).toEqual(['a', 'b', 'c']);
    expect([...Expression.compile('input.steps.a + $string(steps)').stepRefs]).toEqual([]);
  });

  it('compiles a deeply nested expression or refuses it as BATON_EXPR_COMPILE, at any depth, never with a stack overflow', () => {
    // Where JSONata's parser still takes the text, Baton's own walk over the tree must too (a
    // recursive walk overflowed at about 1,250 nested objects on a fresh stack, fewer on a deep one).
    const raw: string[] = [];
    for (const [open, close] of [['{"a":', '}'], ['(', ')'], ['[', ']']]) {
      for (let n = 200; n <= 3000; n += 25) {
        try {
          Expression.compile(`${open.repeat(n)}1${close.repeat(n)}`);
        } catch (e) {
          if (!(e instanceof BatonError) || e.code !== 'BATON_EXPR_COMPILE') raw.push(`${n} × ${open}: ${String(e).slice(0, 60)}`);
        }
      }
    }
    expect(raw).toEqual([]);
    // Refs deep inside are still found, in the order written.
    expect([...Expression.compile(`${'{"a":'.repeat(400)}[steps.b.output, steps.a.output]${'}'.repeat(400)}`).stepRefs]).toEqual(['b', 'a']);
  });

  it('reports a syntax error with its position', () => {
    try {
      Expression.compile('steps.a.output +');
      expect.unreachable();
    } catch (e) {
      expect((e as BatonError).code).toBe('BATON_EXPR_COMPILE');
      expect((e as BatonError).message).toMatch(/at character 16/);
    }
  });

  it('reads plain paths exactly as JSONata does', async () => {
    const ctx = {
      steps: { a: { output: { n: 1, list: [1, 2], nested: [{ v: 1 }, { v: 2 }], one: [7], s: 'str', nul: null } } },
      input: { x: { y: 'z' } },
    };
    const paths = ['steps.a.output.n', 'steps.a.output.list', 'steps.a.output.nested.v', 'steps.a.output.one', 'steps.a.output.s.length',
      'steps.a.output.missing.deeper', 'input.x.y', 'input', 'steps.a.output.nul', 'steps.a.output.nul.x'];
    for (const p of paths) {
      const ours = await Expression.compile(p).evaluate(ctx, 'test');
      const theirs = await jsonata(p).evaluate(ctx);
      expect(JSON.stringify(ours), p).toBe(JSON.stringify(theirs));
    }
  });

  it('stops a runaway expression at its time limit', async () => {
    const e = Expression.compile('($f := function($n) { $n > 0 ? $f($n - 1) + $f($n - 1) : 0 }; $f(40))', { timeoutMs: 100, maxDepth: 10_000, maxSequence: 1e6 });
    const t0 = Date.now();
    await expect(e.evaluate({}, 'in step x: input')).rejects.toMatchObject({ code: 'BATON_EXPR_TIMEOUT' });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('does not count time the process was not running against the limit (a starved host, a throttled container)', async () => {
    // The clock jumps 5 s while the expression evaluates, as for a process descheduled that
    // long, but the process uses next to no CPU: a trivial expression still gives its value.
    const e = Expression.compile('$sum([1, 2, 3]) & "!"', { timeoutMs: 1000, maxDepth: 200, maxSequence: 1e6 });
    const real = Date.now.bind(Date);
    let calls = 0;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => real() + (++calls > 1 ? 5000 : 0));
    try {
      expect(await e.evaluate({}, 'in step x: input')).toBe('6!');
      expect(calls).toBeGreaterThan(1); // the guard did see the jump
    } finally {
      spy.mockRestore();
    }
    // A clock that keeps jumping (the process never gets to run) still ends in the timeout.
    const always = vi.spyOn(Date, 'now').mockImplementation(() => real() + 5000 * calls++);
    try {
      await expect(e.evaluate({}, 'in step x: input')).rejects.toMatchObject({ code: 'BATON_EXPR_TIMEOUT' });
    } finally {
      always.mockRestore();
    }
  });

  it('stops unbounded recursion at the depth limit', async () => {
    const e = Expression.compile('($f := function($n) { 1 + $f($n + 1) }; $f(0))', { timeoutMs: 10_000, maxDepth: 50, maxSequence: 1e6 });
    await expect(e.evaluate({}, 'in step x: input')).rejects.toMatchObject({ code: 'BATON_EXPR_DEPTH' });
  });

  it('turns evaluation errors into BATON_EXPR_EVAL naming the place', async () => {
    const e = Expression.compile('"a" + 1');
    await expect(e.evaluate({}, 'in step s: input')).rejects.toThrow(/Expression in step s: input failed/);
  });

  it('cannot reach the process or globals', async () => {
    const e = Expression.compile('$process');
    expect(await e.evaluate({}, 'x')).toBeUndefined();
    // $eval is disabled (it would run data as an expression): a typed evaluation error.
    await expect(Expression.compile('$eval("process.exit(1)")').evaluate({}, 'x')).rejects.toMatchObject({ code: 'BATON_EXPR_EVAL' });
    await expect(Expression.compile('$require("fs")').evaluate({}, 'x')).rejects.toBeInstanceOf(BatonError);
  });

  it('renders templates with URL encoding', async () => {
    const t = new Template('https://h/x/{{ input.id }}?q={{ steps.a.output }}', new ExpressionCache());
    expect([...t.stepRefs]).toEqual(['a']);
    expect(await t.render({ input: { id: 'a b/c' }, steps: { a: { output: 'ok' } } }, 'url', (v) => encodeURIComponent(String(v)))).toBe('https://h/x/a%20b%2Fc?q=ok');
  });
});
