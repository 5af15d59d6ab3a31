/**
 * Validation reports every problem in one pass: a step whose shape is wrong (an unknown field, a
 * field of the wrong type, a missing field) still has its references, expressions, functions and
 * cycles checked, as far as its well-formed parts go; its broken parts give their schema problem
 * only (no cascade, never a crash).
 */
import { describe, expect, it } from 'vitest';
import { compileOrThrow, compileWorkflow } from '../../../src/spec/compile.js';
import { parseSource } from '../../../src/spec/parse.js';
import { BatonError } from '../../../src/errors.js';
import type { ServiceCatalog } from '../../../src/steps/kind.js';

const services: ServiceCatalog = {
  get: (n) => (n === 'chat' ? { status: 'approved', provider: 'openai' } : undefined),
  names: () => ['chat'],
};

function problems(text: string, functions?: string[]) {
  const src = parseSource(text, 'wf.yaml');
  return compileWorkflow(src.value, { source: src, functions: functions && new Set(functions), services })
    .problems.map((p) => `${p.line}:${p.column} ${p.message}`);
}

describe('every problem in one pass', () => {
  it('an unknown field does not hide a reference to a missing step (the audit repro)', () => {
    expect(problems(`name: bad5
steps:
  - id: a
    kind: transform
    expresion: 1
    expression: "steps.zz.output"
`)).toEqual([
      '5:5 unknown field "expresion" in steps[0] (did you mean "expression"?).',
      '3:5 refers to steps.zz, but there is no step with that id.',
    ]);
  });

  it('schema problems, missing references, bad expressions, unknown functions and cycles together', () => {
    const out = problems(`name: mixed
steps:
  - id: a
    kind: transform
    colour: red
    expression: "steps.c.output"
  - id: b
    kind: function
    function: nope_fn
    timeout: 5 parsecs
    needs: [a, ghost]
  - id: c
    kind: transform
    expression: "steps.b.output"
    when: "steps.b.output >"
    retry: { max_attempts: many }
  - id: d
    kind: transform
    expression: "1"
    needs: a
    on_error: { route: nowhere }
  - kind: transform
    expression: "steps.phantom.output"
    needs: [spectre]
`, ['known_fn']);
    expect(out).toEqual([
      '5:5 unknown field "colour" in steps[0].',
      '10:14 steps[1].timeout is not valid. A duration: "250ms", "5s", "2m", "1h", "1d", or milliseconds.',
      '16:28 steps[2].retry.max_attempts must be integer',
      '20:12 steps[3].needs must be array',
      '22:5 steps[4] is missing the required field "id".',
      expect.stringMatching(/^9:15 function "nope_fn" is not registered \(registered: known_fn\)/),
      expect.stringMatching(/^15:11 Expression does not compile/),
      '11:16 needs "ghost", but there is no step with that id (steps[4] has no id).',
      '21:24 routes errors to "nowhere", but there is no step with that id (steps[4] has no id).',
      '3:5 dependency cycle: a → b → c → a. Steps form a directed acyclic graph; remove one of these dependencies.',
    ]);
  });

  it('a step with an unknown or missing kind still has its needs and expressions checked', () => {
    expect(problems(`name: kinds
steps:
  - id: a
    kind: transfrm
    needs: [ghost]
    when: "steps.nope.output"
  - id: b
    needs: [a, phantom]
  - id: c
    kind: transform
    expression: "steps.a.output + steps.b.output"
`)).toEqual([
      '4:11 unknown step kind "transfrm". Use one of: function, transform, http, model, map, wait, task, workflow, emit, approval.',
      '7:5 steps[1] is missing the required field "kind".',
      '7:5 steps[1] needs a string "kind" field.',
      '5:13 needs "ghost", but there is no step with that id.',
      '6:11 refers to steps.nope, but there is no step with that id.',
      '8:16 needs "phantom", but there is no step with that id.',
    ]);
  });

  it('checks the well-formed parts of map sub-steps, model steps and triggers beside their schema problems', () => {
    expect(problems(`name: parts
triggers:
  - { schedule: { cron: 5 } }
  - { cloudevent: { type: t }, input: "steps.a.output" }
steps:
  - id: a
    kind: map
    over: "steps.nope.output"
    step: { kind: transform, expression: "steps.ghost.output", colour: 1 }
  - id: m
    kind: model
    service: gpt
    prompt: "{{ steps.missing.output }}"
    temperature: hot
  - id: n
    kind: model
    prompt: "hello"
`)).toEqual([
      '3:25 triggers[0].schedule.cron must be string',
      '9:64 unknown field "colour" in steps[0].step.',
      '14:18 steps[1].temperature must be number',
      '15:5 steps[2] is missing the required field "service".',
      '12:14 names service "gpt", which is not configured (configured: chat). Declare it under `services:` in baton.config.yaml.',
      '6:5 refers to steps.nope, but there is no step with that id.',
      '9:11 refers to steps.ghost, but there is no step with that id.',
      '10:5 refers to steps.missing, but there is no step with that id.',
      '4:39 a trigger acts before any step runs, so it cannot read steps.a.',
    ]);
  });

  it('a trigger with two sources is reported beside a schema problem inside one of them', () => {
    expect(problems(`name: trig
triggers:
  - { schedule: { cron: 5 }, cloudevent: { type: t } }
steps:
  - { id: a, kind: transform, expression: "1" }
`)).toEqual([
      '3:25 triggers[0].schedule.cron must be string',
      '3:5 a trigger needs exactly one of schedule, webhook or cloudevent; this one has schedule and cloudevent.',
    ]);
  });

  it('reports a bad workflow default once, where it is written, not at every step', () => {
    expect(problems(`name: defaults
defaults: { timeout: 5 parsecs }
steps:
  - { id: a, kind: transform, expression: "steps.zz.output" }
  - { id: b, kind: transform, expression: "1" }
`)).toEqual([
      '2:22 defaults.timeout is not valid. A duration: "250ms", "5s", "2m", "1h", "1d", or milliseconds.',
      '4:5 refers to steps.zz, but there is no step with that id.',
    ]);
  });

  it('compileOrThrow (what POST /workflows and baton validate answer with) carries the same full list', () => {
    const text = `name: bad5
steps:
  - id: a
    kind: transform
    expresion: 1
    expression: "steps.zz.output"
`;
    const src = parseSource(text, 'request.yaml');
    try {
      compileOrThrow(src.value, { source: src });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BatonError);
      const be = e as BatonError;
      expect(be.code).toBe('BATON_DOC_INVALID');
      expect(be.problems.map((p) => `${p.file}:${p.line}:${p.column} ${p.path}: ${p.message}`)).toEqual([
        'request.yaml:5:5 steps[0].expresion: unknown field "expresion" in steps[0] (did you mean "expression"?).',
        'request.yaml:3:5 steps[0]: refers to steps.zz, but there is no step with that id.',
      ]);
    }
  });
});

/**
 * Structurally broken documents: every field of a document using most features, replaced in turn
 * by values of other shapes. Compilation never crashes (only BatonError BATON_DOC_INVALID, or
 * BATON_DOC_SYNTAX for text that is not YAML), and an intact step's missing reference is
 * reported whatever else is broken.
 */
describe('structurally broken documents', () => {
  const base = () => ({
    name: 'fuzz',
    tags: ['t'],
    defaults: { timeout: '5s', retry: { max_attempts: 2 } },
    limits: { expression_timeout: '1s' },
    input: { type: 'object' },
    concurrency: { key: 'input.k' },
    sensitive: ['steps.a.output'],
    triggers: [{ schedule: { cron: '0 9 * * *' } }, { webhook: { path: 'p', secret: 'env:S' } }],
    output: 'steps.a.output',
    steps: [
      { id: 'a', kind: 'transform', expression: '1', when: 'true', retry: { max_attempts: 3 }, timeout: '1s', on_error: 'continue' },
      { id: 'b', kind: 'function', function: 'f', needs: ['a'], on_error: { route: 'h' } },
      { id: 'h', kind: 'transform', expression: '2' },
      { id: 'm', kind: 'map', over: 'steps.a.output', step: { kind: 'model', service: 'chat', prompt: 'hi {{ item }}', fallback: ['chat2'] } },
      { id: 'w', kind: 'wait', event: 'e', key: 'input.k', lookback: '1m' },
      { id: 'x', kind: 'http', url: 'https://example.com/{{ steps.a.output }}', headers: { h: 'v' } },
      { id: 'p', kind: 'approval', approvers: { roles: ['approver'] }, deadline: '1h', on_expiry: { escalate: { roles: ['admin'] } }, reminders: ['10m'] },
      { id: 'e', kind: 'emit', type: 't', data: 'steps.a.output' },
      { id: 'z', kind: 'transform', expression: 'steps.ghost.output' },
    ],
  });
  const shapes: unknown[] = [null, 7, 'text', [], {}, [null], true, { route: 5 }, [7, 'x']];
  const targets: Array<Array<string | number>> = [
    ['name'], ['tags'], ['defaults'], ['defaults', 'timeout'], ['defaults', 'retry'], ['limits'], ['input'], ['concurrency'],
    ['sensitive'], ['triggers'], ['triggers', 0], ['triggers', 0, 'schedule'], ['triggers', 1, 'webhook'], ['output'],
    ['steps', 0], ['steps', 0, 'id'], ['steps', 0, 'kind'], ['steps', 0, 'when'], ['steps', 0, 'retry'], ['steps', 0, 'on_error'],
    ['steps', 1, 'needs'], ['steps', 1, 'function'], ['steps', 1, 'on_error'], ['steps', 3, 'step'], ['steps', 3, 'step', 'fallback'],
    ['steps', 3, 'step', 'service'], ['steps', 4, 'lookback'], ['steps', 5, 'url'], ['steps', 5, 'headers'], ['steps', 6, 'approvers'],
    ['steps', 6, 'on_expiry'], ['steps', 6, 'reminders'], ['steps', 7, 'data'],
  ];
  const set = (doc: Record<string, unknown>, path: Array<string | number>, v: unknown) => {
    let o = doc as Record<string | number, unknown>;
    for (const seg of path.slice(0, -1)) o = o[seg] as Record<string | number, unknown>;
    o[path[path.length - 1]] = v;
    return doc;
  };
  const cases: Array<[string, Record<string, unknown>]> = [];
  for (const t of targets) for (const v of shapes) cases.push([`${t.join('.')} = ${JSON.stringify(v)}`, set(base(), t, v)]);
  const catalog = { functions: new Set(['f']), services, policies: [{ id: 'pol', when: { stepKind: 'http' }, require: { downstreamKind: 'approval', service: { provider: ['openai'] } } }] };

  it('the intact base has exactly its planted problems', () => {
    expect(compileWorkflow(base(), catalog).problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/names service "chat2", which is not configured/),
      'refers to steps.ghost, but there is no step with that id.',
      expect.stringMatching(/policy "pol": step "x" has no step of kind approval downstream/),
    ]);
  });

  it.each(cases)('%s: only document problems, the missing reference among them', (_name, doc) => {
    let problems: Array<{ path: string; message: string }> = [];
    try {
      compileOrThrow(doc, catalog);
      expect.unreachable('a broken document compiled');
    } catch (e) {
      expect(e).toBeInstanceOf(BatonError);
      expect((e as BatonError).code).toBe('BATON_DOC_INVALID');
      problems = (e as BatonError).problems;
    }
    expect(problems.some((p) => p.path === 'steps[8]' && p.message.startsWith('refers to steps.ghost, but there is no step with that id'))).toBe(true);
    // A kind tripping over a field of another type is a consequence, never reported as such.
    expect(problems.filter((p) => /cannot prepare|is not a function|Cannot read prop|undefined/.test(p.message))).toEqual([]);
  });

  it('YAML text that does not parse, or parses to something else, is BATON_DOC_SYNTAX or BATON_DOC_INVALID', () => {
    const texts = ['', 'null', '7', '- a\n- b', 'name: x\nsteps: 5', 'name: x\nsteps:\n  - 5\n  - [1]\n  - null', 'steps: [', 'a: b: c', 'name: x\nsteps:\n  - id: a\n   kind: transform\n'];
    for (const t of texts) {
      try {
        const src = parseSource(t, 'wf.yaml');
        compileOrThrow(src.value, { source: src });
        expect.unreachable(t);
      } catch (e) {
        expect(e, t).toBeInstanceOf(BatonError);
        expect(['BATON_DOC_SYNTAX', 'BATON_DOC_INVALID'], t).toContain((e as BatonError).code);
      }
    }
  });
});
