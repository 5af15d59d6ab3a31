import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileWorkflow, findCycles } from '../../../src/spec/compile.js';
import { parseSource } from '../../../src/spec/parse.js';
import { renderSchema } from '../../../src/spec/artifacts.js';
import { BatonError } from '../../../src/errors.js';

function problems(text: string, functions?: string[]) {
  const src = parseSource(text, 'wf.yaml');
  return compileWorkflow(src.value, { source: src, functions: functions && new Set(functions) }).problems.map((p) => `${p.line}:${p.column} ${p.message}`);
}

describe('workflow validation', () => {
  it('accepts a valid document and computes dependencies from needs and expressions', () => {
    const src = parseSource(`
name: ok
steps:
  - { id: a, kind: transform, expression: "1" }
  - { id: b, kind: transform, expression: "steps.a.output + 1" }
  - { id: c, kind: transform, expression: "2", needs: [a] }
  - { id: d, kind: transform, expression: "steps.b.output + steps.c.output" }
`);
    const r = compileWorkflow(src.value, { source: src });
    expect(r.problems).toEqual([]);
    const wf = r.workflow!;
    expect(wf.steps.get('b')!.deps).toEqual(['a']);
    expect(wf.steps.get('c')!.deps).toEqual(['a']);
    expect(wf.steps.get('d')!.deps.sort()).toEqual(['b', 'c']);
    expect(wf.steps.get('a')!.dependents.sort()).toEqual(['b', 'c']);
    expect(wf.sinks).toEqual(['d']);
  });

  it('reports every problem at once, each at its line and column', () => {
    const out = problems(`name: demo
steps:
  - id: a
    kind: transfrm
    expression: "1"
  - id: b
    kind: transform
    expresion: "1"
  - id: c
    kind: transform
    expression: "steps.nope.output +"
  - id: a
    kind: transform
    expression: "1"
  - id: e
    kind: function
    function: missing_fn
    needs: [ghost]
`, ['known_fn']);
    expect(out).toContain('4:11 unknown step kind "transfrm". Use one of: function, transform, http, model, map, wait, task, workflow, emit, approval.');
    expect(out).toContain('8:5 unknown field "expresion" in steps[1] (did you mean "expression"?).');
    expect(out).toContain('6:5 steps[1] is missing the required field "expression".');
    expect(out.some((p) => p.startsWith('11:17 Expression does not compile'))).toBe(true);
    expect(out).toContain('12:9 duplicate step id "a" (first used at steps[0]). Step ids must be unique.');
    expect(out.some((p) => p.startsWith('17:15 function "missing_fn" is not registered'))).toBe(true);
    expect(out.some((p) => p.startsWith('18:13 needs "ghost", but there is no step with that id'))).toBe(true);
    expect(out.length).toBe(7);
  });

  it('names the steps of a cycle', () => {
    const out = problems(`name: cyc
steps:
  - { id: a, kind: transform, expression: "steps.c.output" }
  - { id: b, kind: transform, expression: "steps.a.output" }
  - { id: c, kind: transform, expression: "steps.b.output" }
  - { id: d, kind: transform, expression: "1", needs: [d] }
`);
    expect(out.some((p) => /dependency cycle: a → b → c → a/.test(p))).toBe(true);
    expect(out.some((p) => /cannot need itself/.test(p))).toBe(true);
  });

  it('reports references to missing steps in expressions, with a suggestion', () => {
    const out = problems(`name: refs
steps:
  - { id: classify, kind: transform, expression: "1" }
  - { id: b, kind: transform, expression: "steps.clasify.output" }
`);
    expect(out).toEqual(['4:5 refers to steps.clasify, but there is no step with that id (did you mean "classify"?).']);
  });

  it('rejects output and input schemas that are not valid JSON Schema', () => {
    const out = problems(`name: schemas
input: { type: objekt }
steps:
  - id: a
    kind: transform
    expression: "1"
    output_schema: { type: object, properties: { x: { minimum: "ten" } } }
`);
    expect(out.some((p) => p.startsWith('2:8 not a valid JSON Schema'))).toBe(true);
    expect(out.some((p) => p.startsWith('7:20 not a valid JSON Schema'))).toBe(true);
  });

  it('checks error routes, durations and wait modes', () => {
    const out = problems(`name: misc
steps:
  - { id: a, kind: transform, expression: "1", on_error: { route: nowhere } }
  - { id: t, kind: transform, expression: "1", timeout: 5 parsecs }
  - { id: w, kind: wait }
  - { id: h, kind: transform, expression: "1", needs: [a] }
  - { id: b, kind: transform, expression: "1", on_error: { route: h } }
`);
    expect(out.some((p) => /routes errors to "nowhere"/.test(p))).toBe(true);
    expect(out).toContain('4:57 steps[1].timeout is not valid. A duration: "250ms", "5s", "2m", "1h", "1d", or milliseconds.');
    expect(out.some((p) => /exactly one of `duration`, `until` or `event`/.test(p))).toBe(true);
    expect(out.some((p) => /error handler .* cannot have needs/.test(p))).toBe(true);
  });

  it('checks wait lookbacks and emit steps', () => {
    const out = problems(`name: evts
steps:
  - { id: a, kind: wait, duration: 1s, lookback: 5m }
  - { id: b, kind: wait, event: paid, key: "input.k", lookback: 2d }
  - { id: c, kind: wait, event: paid, key: "input.k", lookback: 30s }
  - { id: d, kind: emit, type: t, sink_mode: binary }
  - { id: e, kind: emit }
`);
    expect(out).toEqual([
      '7:5 steps[4] is missing the required field "type".',
      '3:50 `lookback` only applies with `event`.',
      '4:65 buffered events are kept 24 h; a lookback of 2d could never be honoured. Use at most 24h.',
      '6:46 `sink_mode` only applies with `sink`.',
    ]);
  });

  it('gives YAML syntax errors with their position', () => {
    try {
      parseSource('name: x\nsteps:\n  - id: a\n   kind: transform\n', 'bad.yaml');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BatonError);
      const be = e as BatonError;
      expect(be.code).toBe('BATON_DOC_SYNTAX');
      expect(be.problems[0].file).toBe('bad.yaml');
      expect(be.problems[0].line).toBe(4);
    }
  });

  it('parses JSON documents with positions too', () => {
    const src = parseSource('{\n  "name": "j",\n  "steps": [\n    { "id": "a", "kind": "nope" }\n  ]\n}', 'wf.json');
    const r = compileWorkflow(src.value, { source: src });
    expect(r.problems.map((p) => `${p.line}:${p.column}`)).toEqual(['4:26']);
  });

  it('finds cycles with Tarjan and reports each once', () => {
    const edges: Record<string, string[]> = { a: ['b'], b: ['a'], c: ['d'], d: ['e'], e: ['c'], f: [] };
    const cycles = findCycles(Object.keys(edges), (n) => edges[n]);
    expect(cycles.length).toBe(2);
  });

  it('keeps the committed JSON Schema in step with the step kinds', () => {
    expect(readFileSync(new URL('../../../schema/workflow.schema.json', import.meta.url), 'utf8')).toBe(renderSchema());
  });
});
