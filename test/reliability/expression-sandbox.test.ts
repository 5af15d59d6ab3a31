/**
 * Expressions cannot reach the process, the file system or the network: the escape routes
 * people try on JavaScript-hosted expression languages are refused (compile/eval error) or
 * inert (give nothing), and none of them changes Object.prototype.
 */
import { describe, expect, it } from 'vitest';
import { Expression } from '../../src/expr/expression.js';
import { BatonError } from '../../src/errors.js';

async function outcome(src: string, ctx: Record<string, unknown> = { input: { a: 1 } }): Promise<{ code?: string; value?: unknown }> {
  try {
    return { value: await Expression.compile(src).evaluate(ctx, 'sandbox') };
  } catch (e) {
    expect(e).toBeInstanceOf(BatonError);
    return { code: (e as BatonError).code };
  }
}

const ATTEMPTS = [
  '$eval("1+1")',
  '$eval("$$.constructor")',
  'process',
  '$process',
  'process.env',
  'require("fs")',
  '$require("child_process")',
  'global',
  'globalThis.process',
  '$string.constructor',
  '$string.constructor("return process")()',
  '$$.constructor.constructor("return process")()',
  'input.constructor.constructor("return process")()',
  '$lookup(input, "constructor")',
  '$lookup($lookup(input, "constructor"), "constructor")',
  'input.__proto__',
  '$lookup(input, "__proto__")',
  '$import("node:fs")',
  '$readFile("/etc/passwd")',
  '$fetch("http://169.254.169.254/")',
  '$exec("id")',
  '$sum.call',
  '($f := $string; $f.constructor)',
  '$function("return process")',
  '"x".constructor',
  'input ~> $eval',
];

describe('expression sandbox', () => {
  it.each(ATTEMPTS)('%s is refused or gives nothing of the host', async (src) => {
    const r = await outcome(src);
    if (r.code) {
      expect(['BATON_EXPR_COMPILE', 'BATON_EXPR_EVAL']).toContain(r.code);
      return;
    }
    // Inert: nothing callable, nothing of the process.
    expect(typeof r.value).not.toBe('function');
    const text = JSON.stringify(r.value ?? null) ?? '';
    expect(text).not.toMatch(/PATH|HOME|node_modules|root:/);
    expect(r.value === undefined || r.value === null || typeof r.value !== 'object' || !('env' in (r.value as object))).toBe(true);
  });

  it('$eval is disabled: data is never run as an expression', async () => {
    expect((await outcome('$eval("1+1")')).code).toBe('BATON_EXPR_EVAL');
    await expect(Expression.compile('$eval(input.code)').evaluate({ input: { code: '$string(1)' } }, 'step x: input')).rejects.toThrow(/\$eval is disabled/);
  });

  it('prototype pollution attempts do not reach Object.prototype', async () => {
    for (const src of [
      '$merge([{}, {"__proto__": {"polluted": true}}])',
      '($x := {"__proto__": {"polluted": true}}; $x)',
      '$spread({"__proto__": {"polluted": true}})',
      '{"constructor": {"prototype": {"polluted": true}}}',
      '$lookup(input, "__proto__") ~> |$|{"polluted": true}|',
      'input ~> |__proto__|{"polluted": true}|',
    ]) {
      await outcome(src, { input: { a: 1, __proto__: {} } });
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('the context is read-only from an expression: the caller sees its object unchanged', async () => {
    const ctx = { input: { a: 1, nested: { b: 2 } } };
    await outcome('($x := input; $x.a := 5; input ~> |nested|{"b": 9}|)', ctx);
    expect(ctx).toEqual({ input: { a: 1, nested: { b: 2 } } });
  });
});
