/**
 * `/approvals` over real HTTP (the gateway on 127.0.0.1) with API keys of each role, a named
 * user and another namespace, on both stores. Refused requests are checked to change nothing.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { createGateway } from '../../src/gateway/server.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

const root = resolve(import.meta.dirname, '../..');
const REFUND = readFileSync(resolve(root, 'examples/approvals/refund.yaml'), 'utf8');
const RISKY = JSON.parse(readFileSync(resolve(root, 'examples/approvals/risky.json'), 'utf8')) as Record<string, unknown>;

describe.each(STORE_KINDS)('/approvals over HTTP on %s', (k) => {
  const suite = engineSuite(k, 'baton-approvals-gw-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function setup(): Promise<{ b: Baton; call: (method: string, path: string, key?: string, body?: unknown) => Promise<{ status: number; type: string; body: any }> }> {
    const b = await suite.baton();
    const keys: Record<string, string> = {};
    for (const [name, role, namespaces] of [
      ['admin', 'admin', ['*']], ['ana', 'approver', ['team-a']], ['vic', 'viewer', ['team-a']], ['op', 'operator', ['team-a']],
      ['finance-lead', 'viewer', ['team-a']], ['bob', 'approver', ['team-b']],
    ] as const) {
      keys[name] = (await createApiKey(b.store, { name, role, namespaces: [...namespaces] })).key;
    }
    app = await createGateway(b);
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const call = async (method: string, path: string, key?: string, body?: unknown) => {
      const headers: Record<string, string> = key ? { authorization: `Bearer ${keys[key]}` } : {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.json()) as any };
    };
    return { b, call };
  }

  it('inbox by role and namespace, evidence for the console, one decision; refusals change nothing', async () => {
    const { b, call } = await setup();
    const v = await b.register(REFUND);
    const runId = await b.start(v, RISKY, { namespace: 'team-a' });
    const inbox = await until(async () => {
      const r = await call('GET', '/approvals', 'ana');
      return r.body.length ? r : undefined;
    }, 'the approval in ana\'s inbox');
    expect(inbox.status).toBe(200);
    const a = inbox.body[0];
    expect(a).toMatchObject({ status: 'pending', run_id: runId, step: 'review', namespace: 'team-a', workflow: 'refund-release', summary: 'Refund 420 for order A-1001? Fraud score 0.9.' });
    expect(a.evidence.fraud.score).toBe(0.9);
    expect(a.form.properties.decision).toEqual({ enum: ['approve', 'reject'], description: 'approve or reject' });
    // Not in the inbox of a viewer or operator the step does not name, nor of another namespace's approver.
    expect((await call('GET', '/approvals', 'vic')).body).toEqual([]);
    expect((await call('GET', '/approvals', 'op')).body).toEqual([]);
    expect((await call('GET', '/approvals', 'bob')).body).toEqual([]);
    // A named user's inbox has it whatever its role.
    expect((await call('GET', '/approvals', 'finance-lead')).body.map((x: { id: string }) => x.id)).toEqual([a.id]);
    // History by status, within the key's namespaces.
    expect((await call('GET', '/approvals?status=pending', 'vic')).body.map((x: { id: string }) => x.id)).toEqual([a.id]);
    const shown = await call('GET', `/approvals/${a.id}`, 'vic');
    expect(shown.status).toBe(200);
    expect(shown.body.evidence_hash).toBe(a.evidence_hash);

    const refused: Array<[string, unknown, number, string]> = [
      ['vic', { decision: 'approve' }, 403, 'BATON_APPROVAL_NOT_ALLOWED'],
      ['op', { decision: 'approve' }, 403, 'BATON_APPROVAL_NOT_ALLOWED'],
      ['bob', { decision: 'approve' }, 404, 'BATON_APPROVAL_NOT_FOUND'],
      ['ana', { decision: 'approve', data: { amount: 'lots' } }, 422, 'BATON_APPROVAL_FORM'],
      ['ana', { decision: 'perhaps' }, 422, 'BATON_APPROVAL_FORM'],
    ];
    for (const [key, body, status, code] of refused) {
      const r = await call('POST', `/approvals/${a.id}`, key, body);
      expect([key, r.status, r.body.code]).toEqual([key, status, code]);
      expect(r.type).toContain('application/problem+json');
    }
    const formErr = await call('POST', `/approvals/${a.id}`, 'ana', { decision: 'approve', data: { amount: -5, note: 7 } });
    expect(formErr.body.details.errors.map((e: { pointer: string }) => e.pointer).sort()).toEqual(['/amount', '/note']);
    expect((await call('GET', `/approvals/${a.id}`, 'admin')).body).toMatchObject({ status: 'pending', answer: null, decided_by: null });
    expect((await b.getEvents(runId)).some((e) => e.type === 'approval.decided')).toBe(false);
    expect((await call('GET', `/approvals/${a.id}`, 'bob')).status).toBe(404);
    expect((await call('GET', '/approvals')).status).toBe(401);

    const ok = await call('POST', `/approvals/${a.id}`, 'ana', { decision: 'approve', reason: 'known customer', data: { amount: 399.5 } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: 'approved', decided_by: 'ana', answer: { decision: 'approve', reason: 'known customer', amount: 399.5, decided_by: 'ana' } });
    const again = await call('POST', `/approvals/${a.id}`, 'finance-lead', { decision: 'reject', reason: 'late' });
    expect([again.status, again.body.code]).toEqual([409, 'BATON_APPROVAL_CLOSED']);
    const r = await b.wait(runId, { timeoutMs: 20_000 });
    expect(r.output).toMatchObject({ released: true, amount: 399.5, decided_by: 'ana' });
    expect((await call('GET', '/approvals?status=approved', 'vic')).body.map((x: { id: string }) => x.id)).toEqual([a.id]);
    expect((await call('GET', '/approvals', 'ana')).body).toEqual([]);
  });

  it('with auth off (a laptop) the caller decides as a local admin named anonymous', async () => {
    const b = await suite.baton();
    app = await createGateway(b, { auth: 'off' });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const v = await b.register(REFUND);
    const runId = await b.start(v, RISKY);
    const a = await until(async () => ((await (await fetch(`${base}/approvals`)).json()) as Array<{ id: string }>)[0], 'the approval');
    const res = await fetch(`${base}/approvals/${a.id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'reject', reason: 'no' }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'rejected', decided_by: 'anonymous' });
    expect((await b.wait(runId, { timeoutMs: 20_000 })).output).toMatchObject({ released: false });
  });

  it('a cancelled run: 409 and the approval shows cancelled; the routes and schema are in /openapi.json', async () => {
    const { b, call } = await setup();
    const v = await b.register(REFUND);
    const runId = await b.start(v, RISKY, { namespace: 'team-a' });
    const a = await until(async () => (await call('GET', '/approvals', 'admin')).body[0], 'the approval');
    expect((await call('POST', `/runs/${runId}/cancel`, 'admin', {})).status).toBeLessThan(300);
    const r = await call('POST', `/approvals/${a.id}`, 'admin', { decision: 'approve' });
    expect([r.status, r.body.code]).toEqual([409, 'BATON_APPROVAL_CLOSED']);
    expect((await call('GET', `/approvals/${a.id}`, 'ana')).body.status).toBe('cancelled');
    const doc = await call('GET', '/openapi.json');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/approvals', '/approvals/{id}']));
    expect(doc.body.components.schemas.Approval).toBeDefined();
  });
});
