import { describe, expect, it } from 'vitest';
import { compileWorkflow } from '../../../src/spec/compile.js';
import { parseSource } from '../../../src/spec/parse.js';
import { nextFire } from '../../../src/spec/triggers.js';

function compile(triggers: string) {
  const text = `name: t\ntriggers:\n${triggers}\nsteps:\n  - id: a\n    kind: transform\n    expression: input\n`;
  const src = parseSource(text, 'wf.yaml');
  const r = compileWorkflow(src.value, { source: src });
  return { problems: r.problems.map((p) => `${p.line}:${p.column} ${p.message}`), triggers: r.workflow?.triggers };
}

describe('workflow triggers', () => {
  it('compiles each source with its defaults', () => {
    const r = compile(`  - schedule: { cron: "0 9 * * 1-5", timezone: Europe/Paris }
  - webhook: { path: orders/created, secret: env:ORDERS_SECRET }
    input: body.order
  - cloudevent: { type: com.acme.order.created, source: /shop }
    run_id: event.id`);
    expect(r.problems).toEqual([]);
    expect(r.triggers!.map((t) => t.id)).toEqual(['schedule:0', 'webhook:1', 'cloudevent:2']);
    expect(r.triggers![0]).toMatchObject({ kind: 'schedule', schedule: { cron: '0 9 * * 1-5', timezone: 'Europe/Paris', missed: 'once', max_catch_up: 100 } });
    expect(r.triggers![1]).toMatchObject({ kind: 'webhook', webhook: { path: 'orders/created', secret: 'env:ORDERS_SECRET', header: 'x-baton-signature', algorithm: 'sha256' } });
    expect(r.triggers![1].input).toBeDefined();
    expect(r.triggers![2].runId).toBeDefined();
  });

  it('names a bad cron, time zone, duplicate path, literal secret and mixed sources at their line', () => {
    const r = compile(`  - schedule: { cron: "61 * * * *" }
  - schedule: { cron: "0 9 * * *", timezone: Mars/Olympus }
  - webhook: { path: a, secret: env:S }
  - webhook: { path: a, secret: env:S }
  - webhook: { path: b, secret: hunter2 }
  - schedule: { cron: "* * * * *" }
    webhook: { path: c, secret: env:S }
  - cloudevent: { type: x }
    input: steps.a`);
    const text = r.problems.join('\n');
    expect(text).toMatch(/^3:\d+ .*"61 \* \* \* \*" is not a cron expression/m);
    expect(text).toMatch(/^4:\d+ .*"Mars\/Olympus" is not a time zone/m);
    expect(text).toMatch(/^6:\d+ .*path "a" is already used by triggers\[2\]/m);
    expect(text).toMatch(/^7:\d+ .*must be a reference like env:/m);
    expect(text).toMatch(/^8:\d+ .*exactly one of schedule, webhook or cloudevent; this one has schedule and webhook/m);
    expect(text).toMatch(/^11:\d+ .*cannot read steps\.a/m);
  });

  it('takes 5 or 6 cron fields, as documented, and says so with the count it found', () => {
    expect(compile(`  - schedule: { cron: "0 0 9 * * 1-5" }`).problems).toEqual([]);
    for (const [cron, n] of [['0 0 9 * * 1-5 2027', 7], ['9 * *', 3]] as const) {
      const text = compile(`  - schedule: { cron: "${cron}" }`).problems.join('\n');
      expect(text).toContain(`"${cron}" is not a cron expression: it has ${n} fields. Use 5 fields`);
      expect(text).not.toMatch(/seven/);
    }
  });

  it('computes the next fire in the declared time zone', () => {
    // 09:00 in Paris on a weekday is 08:00 UTC in winter.
    expect(new Date(nextFire('0 9 * * 1-5', 'Europe/Paris', Date.parse('2026-11-25T12:00:00Z'))!).toISOString()).toBe('2026-11-26T08:00:00.000Z');
    // Friday evening → Monday morning.
    expect(new Date(nextFire('0 9 * * 1-5', 'UTC', Date.parse('2026-11-27T18:00:00Z'))!).toISOString()).toBe('2026-11-30T09:00:00.000Z');
  });
});
