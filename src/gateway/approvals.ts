/**
 * `/approvals`: where people answer `approval` steps. `GET /approvals` is the caller's inbox
 * (open approvals it may decide, in its namespaces; `?status=` for history), `GET
 * /approvals/{id}` shows the evidence, summary and form, and `POST /approvals/{id}` records the
 * answer once.
 *
 * Who may decide is the step's rule (its roles or named keys; an admin always may), not a
 * capability alone: a viewer named in `users` may decide, an approver key the step does not
 * name may not (403). An approval of another namespace is "not found", so ids do not leak.
 * With auth off (no keys, a laptop) the caller acts as a local admin named `anonymous`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { APPROVAL_STATUSES, type ApprovalView, type ApproverIdentity, type DecisionInput } from '../engine/approvals.js';
import type { Baton } from '../engine/engine.js';
import type { ApiKeyRecord } from '../store/store.js';
import { requireCap } from './auth.js';
import { responses } from './schemas.js';

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 200 } } } as const;

export function registerApprovalRoutes(app: FastifyInstance, baton: Baton, keyOf: (req: FastifyRequest) => ApiKeyRecord | undefined): void {
  const identity = (req: FastifyRequest): ApproverIdentity => {
    const key = keyOf(req);
    requireCap(key, 'read', 'see approvals');
    return key ? { name: key.name, role: key.role, namespaces: key.namespaces } : { name: 'anonymous', role: 'admin' };
  };

  app.get('/approvals', {
    schema: {
      summary: 'The inbox: open approvals the caller may decide, in its namespaces. With `status` (or `all`): every approval in its namespaces with that status.',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          status: { type: 'string', enum: [...APPROVAL_STATUSES, 'all'] },
          run_id: { type: 'string', minLength: 1, maxLength: 200 },
          limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
        },
      },
      response: responses.approvals,
    },
  }, async (req) => {
    const q = req.query as { status?: string; run_id?: string; limit?: string };
    const who = identity(req);
    const limit = q.limit === undefined ? undefined : Number(q.limit);
    const list = q.status === undefined
      ? await baton.approvals.list({ for: who, runId: q.run_id, limit })
      : await baton.approvals.list({ namespaces: who.namespaces, status: q.status === 'all' ? undefined : (q.status as ApprovalView['status']), runId: q.run_id, limit });
    return list.map(approvalBody);
  });

  app.get('/approvals/:id', {
    schema: { summary: 'One approval: its evidence, summary, form, deadline and, once decided, the answer.', params: idParams, response: responses.approval },
  }, async (req) => {
    const { id } = req.params as { id: string };
    return approvalBody(await baton.approvals.get(id, { namespaces: identity(req).namespaces }));
  });

  app.post('/approvals/:id', {
    schema: {
      summary: 'Answers an approval: 200 with the recorded decision. 403 when the caller is not one of its approvers, 404 unknown (or another namespace), 409 already decided, expired or its run cancelled, 422 an answer that breaks its form. A refused answer changes nothing.',
      params: idParams,
      body: {
        type: 'object',
        required: ['decision'],
        additionalProperties: false,
        properties: {
          decision: { type: 'string', description: 'approve or reject (checked with the form: anything else is a 422).' },
          reason: { type: 'string', maxLength: 10_000 },
          data: { type: 'object', description: 'The form\'s fields, e.g. a corrected amount.' },
        },
      },
      response: responses.approval,
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const b = req.body as DecisionInput;
    return approvalBody(await baton.approvals.decide(id, { decision: b.decision, reason: b.reason, data: b.data }, identity(req)));
  });
}

export function approvalBody(a: ApprovalView) {
  return {
    id: a.id, status: a.status, run_id: a.runId, step: a.stepKey, namespace: a.namespace, workflow: a.workflow, approvers: a.approvers,
    evidence: a.evidence ?? null, evidence_hash: a.evidenceHash, summary: a.summary ?? null, form: a.form,
    deadline_at: iso(a.deadlineAt), next_reminder_at: iso(a.nextReminderAt), decided_by: a.decidedBy ?? null, decided_at: iso(a.decidedAt),
    answer: a.answer ?? null, created_at: iso(a.createdAt), updated_at: iso(a.updatedAt),
  };
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}
