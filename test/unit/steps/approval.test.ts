/** The approval step's load-time checks, its answer form and its reminder plan. */
import { describe, expect, it } from 'vitest';
import { compileWorkflow } from '../../../src/spec/compile.js';
import { parseSource } from '../../../src/spec/parse.js';
import { answerForm, nextReminder } from '../../../src/steps/approval.js';

function problems(yaml: string): string[] {
  const src = parseSource(yaml, 'x.yaml');
  return compileWorkflow(src.value, { source: src }).problems.map((p) => `${p.severity ?? 'error'} ${p.line} ${p.message}`);
}

describe('approval step', () => {
  it('reports every problem at load time, each at its line', () => {
    const out = problems(`
name: x
steps:
  - id: a
    kind: approval
    approvers: { users: [] }
    timeout: 1m
    reminders: [1h]
    on_expiry: approve
    form: { type: object, properties: { n: { type: nope } } }
`);
    expect(out).toEqual(expect.arrayContaining([
      'error 6 name at least one role or user who may decide.',
      'warning 7 an approval waits for people, not a time limit: `timeout` does not apply; use `deadline` with `on_expiry`.',
      'error 8 reminders before the deadline need a `deadline` (or use `{ every: duration }`).',
      'error 9 `on_expiry` needs a `deadline`.',
    ]));
    expect(out.some((p) => p.startsWith('error 10 not a valid JSON Schema'))).toBe(true);
    expect(problems(`
name: y
steps:
  - { id: a, kind: approval, approvers: { roles: [boss] } }
`).join('\n')).toMatch(/must be one of "admin", "operator", "approver", "viewer"/);
  });

  it('always asks for decision (approve | reject) and allows a reason, keeping the form\'s fields', () => {
    const f = answerForm({ type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } });
    expect(f.required).toEqual(['decision', 'amount']);
    expect(Object.keys(f.properties as object)).toEqual(['amount', 'decision', 'reason']);
    expect(answerForm(undefined)).toMatchObject({ type: 'object', required: ['decision'] });
  });

  it('plans reminders before the deadline, or every interval, never at or after it', () => {
    const h = 3_600_000;
    expect(nextReminder({ before: [24 * h, h] }, 0, 48 * h, 0)).toBe(24 * h);
    expect(nextReminder({ before: [24 * h, h] }, 0, 48 * h, 24 * h)).toBe(47 * h);
    expect(nextReminder({ before: [24 * h, h] }, 0, 48 * h, 47 * h)).toBeUndefined();
    // A reminder that would fall before the approval existed is skipped.
    expect(nextReminder({ before: [2 * h] }, 0, h, 0)).toBeUndefined();
    expect(nextReminder({ every: 100 }, 1000, undefined, 1000)).toBe(1100);
    expect(nextReminder({ every: 100 }, 1000, undefined, 1250)).toBe(1300);
    expect(nextReminder({ every: 100 }, 1000, 1300, 1250)).toBeUndefined();
    expect(nextReminder(undefined, 0, 10, 0)).toBeUndefined();
  });
});
