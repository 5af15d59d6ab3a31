import { describe, expect, it } from 'vitest';
import { BatonError } from '../../../src/errors.js';
import { parseServices } from '../../../src/services/config.js';
import { diffServices, snapshotOf } from '../../../src/services/governance.js';
import { checkPolicies, parsePolicies, type PolicyStep } from '../../../src/services/policies.js';
import { compileWorkflow } from '../../../src/spec/compile.js';
import { diffWorkflows, lineDiff } from '../../../src/spec/diff.js';
import { parseSource } from '../../../src/spec/parse.js';
import type { WorkflowDocument } from '../../../src/spec/types.js';

const SERVICES = parseServices({
  'chat-us': { provider: 'openai', model: 'gpt-4o', data_residency: 'us' },
  'chat-eu': { provider: 'openai', model: 'gpt-4o', data_residency: 'eu', labels: { tier: 'gold' } },
  bare: { provider: 'openai' },
});
const catalog = { get: (n: string) => SERVICES.find((s) => s.name === n), names: () => SERVICES.map((s) => s.name) };

const POLICIES = parsePolicies([
  { id: 'pii-eu-only', when: { workflow_tags: ['pii'] }, require: { service: { data_residency: 'eu' } }, message: 'PII workflows must stay in the EU' },
  { id: 'high-risk-needs-approval', when: { step_risk: 'high' }, require: { downstream_kind: 'approval' } },
]);

function problems(text: string, policies = POLICIES) {
  const src = parseSource(text, 'wf.yaml');
  return compileWorkflow(src.value, { source: src, services: catalog, policies }).problems.map((p) => `${p.line}:${p.column} ${p.message}`);
}

describe('policies', () => {
  it('pii-eu-only: refuses a pii workflow whose model step (or fallback) may call a non-EU service, at the field, naming the policy', () => {
    const p = problems(`
name: p
tags: [pii, billing]
steps:
  - { id: ok, kind: model, service: chat-eu, prompt: hi }
  - id: bad
    kind: model
    service: chat-eu
    fallback: [chat-us, bare]
    prompt: hi
`);
    expect(p).toEqual([
      '9:16 policy "pii-eu-only" (PII workflows must stay in the EU): step "bad" may call service "chat-us", whose data_residency is "us"; the policy requires "eu". Use a service with data_residency: eu.',
      '9:25 policy "pii-eu-only" (PII workflows must stay in the EU): step "bad" may call service "bare", whose data_residency is not set; the policy requires "eu". Use a service with data_residency: eu (or set `data_residency` on "bare" in baton.config.yaml).',
    ]);
  });

  it('pii-eu-only: passes for EU services, and does not apply to workflows without the tag', () => {
    expect(problems('name: p\ntags: [pii]\nsteps:\n  - { id: a, kind: model, service: chat-eu, prompt: hi }\n')).toEqual([]);
    expect(problems('name: p\ntags: [internal]\nsteps:\n  - { id: a, kind: model, service: chat-us, prompt: hi }\n')).toEqual([]);
    expect(problems('name: p\nsteps:\n  - { id: a, kind: model, service: chat-us, prompt: hi }\n')).toEqual([]);
  });

  it('high-risk-needs-approval: refuses a high-risk step with no approval step downstream, at its `risk` field', () => {
    const p = problems(`
name: r
steps:
  - { id: decide, kind: model, service: chat-us, prompt: hi, risk: high }
  - { id: low, kind: transform, expression: "1", risk: low }
  - { id: after, kind: transform, expression: "steps.decide.output" }
`);
    expect(p).toEqual(['4:68 policy "high-risk-needs-approval": step "decide" has risk high and has no step of kind approval downstream. Add a step of kind `approval` that needs "decide" (directly or through other steps).']);
  });

  it('high-risk-needs-approval: passes when an approval step is downstream, directly or through other steps (checked by kind name)', () => {
    const step = (id: string, kind: string, dependents: string[], risk?: 'high'): [string, PolicyStep] => [id, { id, kind, path: ['steps', id], risk, services: [], dependents }];
    const through = new Map([step('decide', 'model', ['shape'], 'high'), step('shape', 'transform', ['review']), step('review', 'approval', [])]);
    expect(checkPolicies(POLICIES, [], through, () => undefined)).toEqual([]);
    const beside = new Map([step('decide', 'model', ['shape'], 'high'), step('shape', 'transform', []), step('review', 'approval', [])]);
    expect(checkPolicies(POLICIES, [], beside, () => undefined).map((v) => v.path)).toEqual([['steps', 'decide', 'risk']]);
    // Through the compiler: a policy asking for another kind downstream is met the same way.
    const other = parsePolicies([{ id: 'needs-emit', when: { step_risk: 'medium' }, require: { downstream_kind: 'emit' } }]);
    expect(problems(`
name: r
steps:
  - { id: decide, kind: transform, expression: "1", risk: high }
  - { id: tell, kind: emit, type: decided, data: "steps.decide.output" }
`, other)).toEqual([]);
  });

  it('labels and lists of allowed values; invalid policies are refused with their path', () => {
    const gold = parsePolicies([{ id: 'gold', require: { service: { tier: ['gold', 'platinum'] } } }]);
    expect(problems('name: g\nsteps:\n  - { id: a, kind: model, service: chat-eu, prompt: hi }\n', gold)).toEqual([]);
    expect(problems('name: g\nsteps:\n  - { id: a, kind: model, service: chat-us, prompt: hi }\n', gold)[0]).toMatch(/policy "gold": .*whose tier is not set; the policy requires "gold" or "platinum"/);
    const bad = (raw: unknown) => {
      try {
        parsePolicies(raw, 'baton.config.yaml');
      } catch (e) {
        return (e as BatonError).message;
      }
      return 'no error';
    };
    expect(bad([{ id: 'x', require: {} }])).toMatch(/policies\.0\.require: give `service` or `downstream_kind`/);
    expect(bad([{ id: 'x', when: { step_risk: 'extreme' } , require: { downstream_kind: 'approval' } }])).toMatch(/policies\.0\.when\.step_risk/);
    expect(bad([{ id: 'x', require: { downstream_kind: 'approval' }, nope: 1 }])).toMatch(/unknown field `nope`/);
    expect(bad([{ id: 'x', require: { downstream_kind: 'a' } }, { id: 'x', require: { downstream_kind: 'b' } }])).toMatch(/id "x" is used twice/);
  });
});

describe('workflow diff', () => {
  const a = {
    name: 'w', tags: ['pii'],
    steps: [
      { id: 'ask', kind: 'model', service: 'chat-us', prompt: 'Classify:\n{{ input.text }}\nAnswer in JSON.' },
      { id: 'gone', kind: 'transform', expression: '1' },
    ],
  } as unknown as WorkflowDocument;
  const b = {
    name: 'w', tags: ['pii', 'billing'],
    steps: [
      { id: 'ask', kind: 'model', service: 'chat-eu', fallback: ['bare'], prompt: 'Classify carefully:\n{{ input.text }}\nAnswer in JSON.', temperature: 0 },
      { id: 'new', kind: 'transform', expression: '2' },
    ],
  } as unknown as WorkflowDocument;

  it('lists steps added, removed and changed field by field, with prompt texts diffed line by line', () => {
    const d = diffWorkflows(a, b);
    expect(d.same).toBe(false);
    expect(d.workflow).toEqual([{ field: 'tags', from: ['pii'], to: ['pii', 'billing'] }]);
    expect(d.steps).toEqual([
      {
        id: 'ask', change: 'changed', kind: 'model',
        fields: [
          { field: 'fallback', to: ['bare'] },
          { field: 'prompt', from: 'Classify:\n{{ input.text }}\nAnswer in JSON.', to: 'Classify carefully:\n{{ input.text }}\nAnswer in JSON.' },
          { field: 'service', from: 'chat-us', to: 'chat-eu' },
          { field: 'temperature', to: 0 },
        ],
        texts: [{ field: 'prompt', lines: ['- Classify:', '+ Classify carefully:', '  {{ input.text }}', '  Answer in JSON.'] }],
      },
      { id: 'gone', change: 'removed', kind: 'transform' },
      { id: 'new', change: 'added', kind: 'transform' },
    ]);
    expect(diffWorkflows(a, structuredClone(a))).toEqual({ same: true, workflow: [], steps: [] });
  });

  it('line diff keeps common lines', () => {
    expect(lineDiff('a\nb\nc', 'a\nc\nd')).toEqual(['  a', '- b', '  c', '+ d']);
  });

  it('service snapshots: content-addressed, without status, and diffed field by field', () => {
    const s1 = snapshotOf(SERVICES);
    const s2 = snapshotOf([...SERVICES].reverse());
    expect(s2.hash).toBe(s1.hash);
    const blocked = parseServices({ 'chat-us': { provider: 'openai', model: 'gpt-4o', data_residency: 'us', status: 'blocked', owner: 'x' } });
    expect(snapshotOf(blocked).hash).toBe(snapshotOf([SERVICES[0]]).hash);
    const changed = parseServices({ 'chat-us': { provider: 'openai', model: 'gpt-4.1', data_residency: 'us', price: { input_per_mtok: 2 } } });
    expect(diffServices(snapshotOf([SERVICES[0], SERVICES[2]]).services, snapshotOf(changed).services)).toEqual([
      { service: 'bare', change: 'removed' },
      { service: 'chat-us', change: 'changed', fields: [{ field: 'model', from: 'gpt-4o', to: 'gpt-4.1' }, { field: 'price.cachedInputPerMTok', from: 0, to: 2 }, { field: 'price.inputPerMTok', from: 0, to: 2 }] },
    ]);
  });
});
