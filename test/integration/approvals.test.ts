/**
 * Human approvals on both stores: decisions (approve, reject, refused ones that change nothing),
 * deadlines with each expiry policy (short deadlines; states asserted, never timings), a deadline
 * firing once with two engines on one store, reminders, restarts while pending, cancelled runs,
 * and the conditional checkpoint of the refund example.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expr, workflow, type Baton, type BatonOptions } from '../../src/index.js';
import { z } from 'zod';
import type { BatonError } from '../../src/errors.js';
import type { ApprovalView } from '../../src/engine/approvals.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until, code } from '../helpers/wait.js';

const root = resolve(import.meta.dirname, '../..');
const REFUND = readFileSync(resolve(root, 'examples/approvals/refund.yaml'), 'utf8');
const RISKY = JSON.parse(readFileSync(resolve(root, 'examples/approvals/risky.json'), 'utf8')) as Record<string, unknown>;
const SAFE = JSON.parse(readFileSync(resolve(root, 'examples/approvals/safe.json'), 'utf8')) as Record<string, unknown>;

const APPROVER = { name: 'ana', role: 'approver' };

/** A gate whose approval step takes `extra` YAML lines. */
function gate(extra: string, name = 'gate'): string {
  return `
name: ${name}
steps:
  - id: check
    kind: approval
    approvers: { roles: [approver], users: [olga] }
    form: { type: object, required: [label], properties: { label: { enum: [spam, ham] } }, additionalProperties: false }
${extra.split('\n').filter(Boolean).map((l) => `    ${l}`).join('\n')}
  - id: after
    kind: transform
    expression: 'steps.check.output'
`;
}

/** The run's one approval, once its step has asked. */
function approvalOf(b: Baton, runId: string): Promise<ApprovalView> {
  return until(async () => (await b.approvals.list({ runId }))[0], `the approval of ${runId}`);
}

describe.each(STORE_KINDS)('approval steps on %s', (k) => {
  const suite = engineSuite(k, 'baton-approvals-');
  const baton = (opts: BatonOptions = {}): Promise<Baton> => suite.baton(opts);

  it('approve: the answer is the step output and the run continues; history has who, when, the evidence hash and the answer', async () => {
    const b = await baton();
    const v = await b.register(REFUND);
    const id = await b.start(v, RISKY);
    const a = await approvalOf(b, id);
    expect(a.status).toBe('pending');
    expect(a.summary).toBe('Refund 420 for order A-1001? Fraud score 0.9.');
    expect(a.evidence).toEqual({ order: RISKY, fraud: { score: 0.9, signals: ['new customer', 'card country differs'] } });
    expect(a.evidenceHash).toMatch(/^[0-9a-f]{64}$/);
    // In the approver's inbox, not in a viewer's.
    expect((await b.approvals.list({ for: APPROVER })).map((x) => x.id)).toEqual([a.id]);
    expect(await b.approvals.list({ for: { name: 'vic', role: 'viewer' } })).toEqual([]);
    const d = await b.approvals.decide(a.id, { decision: 'approve', reason: 'customer known', data: { amount: 400 } }, APPROVER);
    expect(d.status).toBe('approved');
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toEqual({ order_id: 'A-1001', released: true, amount: 400, decided_by: 'ana', fraud_score: 0.9 });
    const review = (await b.getSteps(id)).find((s) => s.key === 'review')!;
    expect(review.output).toMatchObject({ decision: 'approve', reason: 'customer known', amount: 400, decided_by: 'ana' });
    const ev = (await b.getEvents(id)).find((e) => e.type === 'approval.decided')!;
    expect(ev.stepKey).toBe('review');
    expect(ev.data).toMatchObject({ approval_id: a.id, decided_by: 'ana', evidence_hash: a.evidenceHash, answer: { decision: 'approve', amount: 400 } });
    expect(typeof (ev.data as { decided_at: string }).decided_at).toBe('string');
    // A second decision is refused and changes nothing.
    expect(await code(b.approvals.decide(a.id, { decision: 'reject' }, APPROVER))).toBe('BATON_APPROVAL_CLOSED');
    expect((await b.approvals.get(a.id)).answer).toMatchObject({ decision: 'approve', amount: 400 });
  });

  it('the conditional checkpoint: a low score and a small amount ask nobody', async () => {
    const b = await baton();
    const v = await b.register(REFUND);
    const r = await b.run(v, SAFE, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toMatchObject({ released: true, amount: 35, decided_by: 'automatic (low risk)' });
    expect((await b.getSteps(r.id)).find((s) => s.key === 'review')!.status).toBe('skipped');
    expect(await b.approvals.list({ runId: r.id })).toEqual([]);
    // A large amount asks even with a low score.
    const big = await b.start(v, { ...SAFE, amount: 20_000 });
    const a = await approvalOf(b, big);
    expect(a.status).toBe('pending');
  });

  it('reject: the step succeeds with the decision (downstream branches on it); with reject_fails the step fails', async () => {
    const b = await baton();
    const v = await b.register(REFUND);
    const id = await b.start(v, RISKY);
    const a = await approvalOf(b, id);
    // A reject does not need the form's required fields.
    await b.approvals.decide(a.id, { decision: 'reject', reason: 'stolen card' }, { name: 'finance-lead', role: 'viewer' });
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toMatchObject({ released: false, decided_by: 'finance-lead' });

    const g = await b.register(gate('reject_fails: true'));
    const id2 = await b.start(g, {});
    const a2 = await approvalOf(b, id2);
    await b.approvals.decide(a2.id, { decision: 'reject', reason: 'no' }, APPROVER);
    const r2 = await b.wait(id2, { timeoutMs: 20_000 });
    expect(r2.status).toBe('failed');
    expect(r2.error?.cause?.code ?? r2.error?.code).toBe('BATON_APPROVAL_REJECTED');
  });

  it('refused decisions change nothing: a form violation (422), the wrong person (403), another namespace (404)', async () => {
    const b = await baton();
    const v = await b.register(gate(''));
    const id = await b.start(v, {}, { namespace: 'team-a' });
    const a = await approvalOf(b, id);
    const eventsBefore = (await b.getEvents(id)).length;
    let err: BatonError | undefined;
    try {
      await b.approvals.decide(a.id, { decision: 'approve', data: { label: 'eggs', extra: 1 } }, APPROVER);
    } catch (e) {
      err = e as BatonError;
    }
    expect(err?.code).toBe('BATON_APPROVAL_FORM');
    expect(err?.status).toBe(422);
    const pointers = (err?.details.errors as Array<{ pointer: string }>).map((e) => e.pointer);
    expect(pointers).toEqual(expect.arrayContaining(['/label', '/extra']));
    expect(await code(b.approvals.decide(a.id, { decision: 'approve' }, APPROVER))).toBe('BATON_APPROVAL_FORM'); // label required to approve
    expect(await code(b.approvals.decide(a.id, { decision: 'maybe' as 'approve', data: { label: 'ham' } }, APPROVER))).toBe('BATON_APPROVAL_FORM');
    expect(await code(b.approvals.decide(a.id, { decision: 'approve', data: { label: 'ham' } }, { name: 'op', role: 'operator' }))).toBe('BATON_APPROVAL_NOT_ALLOWED');
    expect(await code(b.approvals.decide(a.id, { decision: 'approve', data: { label: 'ham' } }, { name: 'vic', role: 'viewer' }))).toBe('BATON_APPROVAL_NOT_ALLOWED');
    expect(await code(b.approvals.decide(a.id, { decision: 'approve', data: { label: 'ham' } }, { ...APPROVER, namespaces: ['team-b'] }))).toBe('BATON_APPROVAL_NOT_FOUND');
    const still = await b.approvals.get(a.id);
    expect(still.status).toBe('pending');
    expect(still.answer).toBeUndefined();
    expect((await b.getEvents(id)).length).toBe(eventsBefore);
    expect((await b.getRun(id)).status).toBe('waiting');
    // A named user decides whatever its role.
    await b.approvals.decide(a.id, { decision: 'approve', data: { label: 'ham' } }, { name: 'olga', role: 'operator', namespaces: ['team-a'] });
    expect((await b.wait(id, { timeoutMs: 20_000 })).output).toMatchObject({ decision: 'approve', label: 'ham', decided_by: 'olga' });
  });

  it.each([
    ['reject', 'completed', 'reject'],
    ['approve', 'completed', 'approve'],
  ])('deadline with on_expiry: %s decides for the approvers', async (policy, runStatus, decision) => {
    const b = await baton();
    const v = await b.register(gate(`deadline: 300ms\non_expiry: ${policy}`));
    const r = await b.run(v, {}, { timeoutMs: 30_000 });
    expect(r.status).toBe(runStatus);
    expect(r.output).toMatchObject({ decision, decided_by: 'baton:deadline' });
    const a = (await b.approvals.list({ runId: r.id }))[0];
    expect(a.status).toBe('expired');
    expect((await b.getEvents(r.id)).filter((e) => e.type === 'approval.expired')).toHaveLength(1);
  });

  it('deadline with on_expiry: fail (the default) fails the step with BATON_APPROVAL_EXPIRED', async () => {
    const b = await baton();
    const v = await b.register(gate('deadline: 300ms'));
    const r = await b.run(v, {}, { timeoutMs: 30_000 });
    expect(r.status).toBe('failed');
    expect(r.error?.cause?.code ?? r.error?.code).toBe('BATON_APPROVAL_EXPIRED');
    expect((await b.approvals.list({ runId: r.id }))[0].status).toBe('expired');
  });

  it('deadline with escalate: new approvers and deadline, then its own policy', async () => {
    const b = await baton();
    const v = await b.register(gate('deadline: 300ms\non_expiry: { escalate: { users: [boss], deadline: 20s, on_expiry: reject } }'));
    const id = await b.start(v, {});
    const a = await until(async () => (await b.approvals.list({ runId: id })).find((x) => x.status === 'escalated'), 'the escalation');
    expect(a.approvers).toEqual({ roles: [], users: ['boss'] });
    expect(a.deadlineAt).toBeGreaterThan(a.createdAt);
    // The first approvers are no longer the ones.
    expect(await code(b.approvals.decide(a.id, { decision: 'approve', data: { label: 'ham' } }, APPROVER))).toBe('BATON_APPROVAL_NOT_ALLOWED');
    expect((await b.approvals.list({ for: { name: 'boss', role: 'viewer' } })).map((x) => x.id)).toEqual([a.id]);
    await b.approvals.decide(a.id, { decision: 'approve', data: { label: 'spam' } }, { name: 'boss', role: 'viewer' });
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.output).toMatchObject({ decision: 'approve', label: 'spam', decided_by: 'boss' });
    expect((await b.getEvents(id)).map((e) => e.type)).toEqual(expect.arrayContaining(['approval.escalated', 'approval.decided']));
  });

  it('a deadline fires once with two engines sweeping one store', async () => {
    const b1 = await baton();
    const b2 = await baton();
    const v = await b1.register(gate('deadline: 300ms\non_expiry: approve'));
    const ids = await Promise.all([0, 1, 2].map(() => b1.start(v, {})));
    for (const id of ids) {
      const r = await b2.wait(id, { timeoutMs: 30_000 });
      expect(r.status).toBe('completed');
      const ev = await b2.getEvents(id);
      expect(ev.filter((e) => e.type === 'approval.expired')).toHaveLength(1);
      expect(ev.filter((e) => e.type === 'step.succeeded' && e.stepKey === 'check')).toHaveLength(1);
    }
  });

  it('a decision after the deadline is refused, even before any sweep applied it', async () => {
    const b1 = await baton();
    const v = await b1.register(gate('deadline: 300ms\non_expiry: approve'));
    // This engine runs the step but applies no deadline; the next has no worker: nobody applies it.
    await b1.approvals.close();
    const id = await b1.start(v, {});
    const a = await approvalOf(b1, id);
    await b1.close();
    const b2 = await baton({ worker: false });
    await until(async () => Date.now() > a.deadlineAt! + 50 || undefined, 'the deadline');
    expect(await code(b2.approvals.decide(a.id, { decision: 'approve', data: { label: 'ham' } }, APPROVER))).toBe('BATON_APPROVAL_CLOSED');
    const still = await b2.approvals.get(a.id);
    expect(still.status).toBe('pending');
    expect(still.answer).toBeUndefined();
    expect((await b2.getEvents(id)).some((e) => e.type === 'approval.decided')).toBe(false);
  });

  it('a cancelled run: its approval shows cancelled and decisions are refused', async () => {
    const b = await baton();
    const v = await b.register(gate(''));
    const id = await b.start(v, {});
    const a = await approvalOf(b, id);
    await b.cancel(id);
    expect((await b.approvals.get(a.id)).status).toBe('cancelled');
    expect(await b.approvals.list({ for: APPROVER })).toEqual([]);
    expect((await b.approvals.list({ status: 'cancelled' })).map((x) => x.id)).toEqual([a.id]);
    expect(await code(b.approvals.decide(a.id, { decision: 'approve', data: { label: 'ham' } }, APPROVER))).toBe('BATON_APPROVAL_CLOSED');
    expect((await b.getRun(id)).status).toBe('cancelled');
  });

  it('reminders are recorded before the deadline and POSTed to `notify`', async () => {
    const got: Array<Record<string, unknown>> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        got.push({ path: req.url, ...(JSON.parse(body) as Record<string, unknown>) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const b = await baton();
      const v = await b.register(gate(`deadline: 30s\nreminders: { every: 150ms }\nnotify: http://127.0.0.1:${port}/hook`));
      const id = await b.start(v, {});
      await until(async () => (await b.getEvents(id)).filter((e) => e.type === 'approval.reminder').length >= 2 || undefined, 'two reminders');
      const a = await approvalOf(b, id);
      expect(a.nextReminderAt).toBeGreaterThan(a.createdAt);
      await until(async () => got.length > 0 || undefined, 'a notification');
      expect(got[0]).toMatchObject({ path: '/hook', type: 'approval.reminder', approval_id: a.id, run_id: id, step: 'check' });
      await b.approvals.decide(a.id, { decision: 'approve', data: { label: 'ham' } }, APPROVER);
      expect((await b.wait(id, { timeoutMs: 20_000 })).status).toBe('completed');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('an approval per map item: each answer is its item\'s output', async () => {
    const b = await baton();
    const v = await b.register(`
name: batch
steps:
  - id: each
    kind: map
    over: input.invoices
    concurrency: 2
    step:
      kind: approval
      approvers: { roles: [approver] }
      evidence: item
      summary: 'Pay invoice {{ item.no }}?'
`);
    const id = await b.start(v, { invoices: [{ no: 1 }, { no: 2 }] });
    const open = await until(async () => {
      const l = await b.approvals.list({ runId: id });
      return l.length === 2 ? l : undefined;
    }, 'two approvals');
    expect(open.map((a) => a.stepKey).sort()).toEqual(['each[0]', 'each[1]']);
    for (const a of open) {
      await b.approvals.decide(a.id, { decision: (a.evidence as { no: number }).no === 1 ? 'approve' : 'reject' }, APPROVER);
    }
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    const out = r.output as Array<{ decision: string }> | { each: Array<{ decision: string }> };
    expect((Array.isArray(out) ? out : out.each).map((x) => x.decision)).toEqual(['approve', 'reject']);
  });

  it('the typed builder: a zod form, evidence and a conditional checkpoint', async () => {
    const b = await baton();
    const { document } = workflow('built-review', { input: z.object({ text: z.string(), score: z.number() }) })
      .step('review', {
        kind: 'approval', approvers: { users: ['ana'] }, when: expr<boolean>('input.score < 0.5'),
        evidence: (c) => ({ text: c.input.text }), summary: 'Label {{ input.text }}', form: z.object({ label: z.enum(['spam', 'ham']) }),
      })
      .step('use', { kind: 'transform', expression: (c) => c.steps.review.output.label })
      .build();
    const v = await b.register(document);
    const id = await b.start(v, { text: 'buy now', score: 0.2 });
    const a = await approvalOf(b, id);
    expect(a.evidence).toEqual({ text: 'buy now' });
    expect(a.summary).toBe('Label buy now');
    expect(await code(b.approvals.decide(a.id, { decision: 'approve', data: { label: 'eggs' } }, { name: 'ana' }))).toBe('BATON_APPROVAL_FORM');
    await b.approvals.decide(a.id, { decision: 'approve', data: { label: 'spam' } }, { name: 'ana' });
    expect((await b.wait(id, { timeoutMs: 20_000 })).output).toBe('spam');
  });

  it('durable: a deadline that passes while no engine runs fires once when one opens', async () => {
    const b1 = await baton();
    const v = await b1.register(gate('deadline: 400ms\non_expiry: reject'));
    await b1.approvals.close();
    const id = await b1.start(v, {});
    const a = await approvalOf(b1, id);
    await b1.close();
    await until(async () => Date.now() > a.deadlineAt! || undefined, 'the deadline');
    const [b2, b3] = [await baton(), await baton()];
    const r = await b2.wait(id, { timeoutMs: 20_000 });
    expect(r.output).toMatchObject({ decision: 'reject', decided_by: 'baton:deadline' });
    expect((await b3.getEvents(id)).filter((e) => e.type === 'approval.expired')).toHaveLength(1);
  });

  it('durable: engines closed and reopened while pending; the decision on a new one completes the run', async () => {
    const b1 = await baton();
    const v = await b1.register(REFUND);
    const id = await b1.start(v, RISKY);
    const a = await approvalOf(b1, id);
    await b1.close();
    const b2 = await baton();
    expect((await b2.approvals.get(a.id)).status).toBe('pending');
    await b2.close();
    const b3 = await baton();
    await b3.approvals.decide(a.id, { decision: 'approve', data: { amount: 410 } }, { name: 'root', role: 'admin' });
    const r = await b3.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toMatchObject({ released: true, amount: 410, decided_by: 'root' });
  });
});
