/**
 * `approval`: a human checkpoint. The step suspends durably and a row in `approvals` (created
 * in the same transaction as the suspension, like a task) waits for a person allowed by
 * `approvers` to answer through `POST /approvals/{id}` or `baton approve|reject`. The answer
 * (`decision`, `reason`, the form's fields, who and when) wakes the step and becomes its output.
 *
 * What lives where: the step row waits on `approval:<id>` with no due time of its own; the
 * approval row carries the deadline, the expiry policy and the next reminder, which the engine's
 * approval sweep (engine/approvals.ts) applies with fenced store changes, so a deadline fires
 * once whatever the number of processes and restarts. This file only builds the request and
 * turns the recorded answer into the step's outcome.
 */
import { createHash } from 'node:crypto';
import { BatonError } from '../errors.js';
import { canonicalJson } from '../spec/canonical.js';
import type { ApprovalStepDoc, Duration } from '../spec/types.js';
import type { NewApproval } from '../store/store.js';
import { parseDuration } from '../util/duration.js';
import type { StepKind } from './kind.js';

/** Roles an API key can have (gateway/auth.ts): approvers name these. */
const KEY_ROLES = ['admin', 'operator', 'approver', 'viewer'];

/** What happens at the deadline, as stored on the approval row. */
export type ApprovalExpiry =
  | { action: 'reject' | 'approve' | 'fail' }
  | { action: 'escalate'; approvers: { roles: string[]; users: string[] }; deadlineMs?: number; then: 'reject' | 'approve' | 'fail' };

/** Reminder plan as stored: durations (ms) before the deadline, or an interval from creation. */
export type ReminderPlan = { before: number[] } | { every: number };

/** Resume state: what the step waits for, then what was answered. */
export interface ApprovalState {
  approvalId: string;
  /** Set by a decision (or an expiry that decides). */
  answer?: Record<string, unknown>;
  /** Set by an expiry whose policy is `fail`. */
  expired?: { deadlineAt: number };
}

export function approvalIdOf(runId: string, stepKey: string, attempt: number): string {
  return `apr_${createHash('sha256').update(`${runId}\u0000${stepKey}\u0000${attempt}`).digest('hex').slice(0, 32)}`;
}

export function approvalWaitKey(id: string): string {
  return `approval:${id}`;
}

/** The answer's schema: the form's fields plus `decision` (required) and `reason`, which Baton always adds. */
export function answerForm(form: Record<string, unknown> | undefined): Record<string, unknown> {
  const f = form ?? {};
  const props = (f.properties && typeof f.properties === 'object' ? f.properties : {}) as Record<string, unknown>;
  const required = Array.isArray(f.required) ? (f.required as string[]) : [];
  return {
    ...f,
    type: 'object',
    properties: {
      ...props,
      decision: { enum: ['approve', 'reject'], description: 'approve or reject' },
      reason: { type: 'string', maxLength: 10_000, description: 'Why (shown in the history).' },
    },
    required: [...new Set(['decision', ...required])],
  };
}

/** The next reminder strictly after `after`, before the deadline; undefined when none is left. */
export function nextReminder(plan: ReminderPlan | undefined, createdAt: number, deadlineAt: number | undefined, after: number): number | undefined {
  if (!plan) return undefined;
  let next: number | undefined;
  if ('every' in plan) {
    if (plan.every <= 0) return undefined;
    const k = Math.floor((after - createdAt) / plan.every) + 1;
    next = createdAt + Math.max(1, k) * plan.every;
  } else if (deadlineAt !== undefined) {
    const times = plan.before.map((b) => deadlineAt - b).filter((t) => t > after && t > createdAt);
    next = times.length ? Math.min(...times) : undefined;
  }
  if (next !== undefined && deadlineAt !== undefined && next >= deadlineAt) return undefined;
  return next;
}

const listOfNames = { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true } as const;
const expiryAction = { enum: ['reject', 'approve', 'fail'] } as const;

export const approvalKind: StepKind<ApprovalStepDoc> = {
  name: 'approval',
  recordsStart: true,
  suspends: true,
  defaultRetry: { maxAttempts: 1 },
  schema: {
    kind: 'approval',
    description: 'Stops for a person: waits durably until an allowed approver answers (POST /approvals/{id}, `baton approve|reject`). Output = the answer { decision, reason?, ...form fields, decided_by, decided_at }.',
    required: ['approvers'],
    properties: {
      approvers: {
        type: 'object', additionalProperties: false, minProperties: 1,
        description: 'Who may decide: API key roles and/or key names (users). Admins always may.',
        properties: { roles: { ...listOfNames, items: { enum: KEY_ROLES } }, users: listOfNames },
      },
      evidence: { $ref: '#/$defs/expression', description: 'What the approver sees (model outputs, scores, documents); default the step input, else the run input. Its sha256 is recorded with the decision.' },
      summary: { type: 'string', description: 'A short text shown with the evidence; {{ expr }} parts are expressions.' },
      form: { $ref: '#/$defs/schemaObject', description: 'JSON Schema of the answer\'s fields (e.g. a corrected amount); `decision` and `reason` are always added. Required fields apply to approvals only.' },
      deadline: { $ref: '#/$defs/duration', description: 'How long the approvers have (default: no deadline).' },
      on_expiry: {
        description: 'At the deadline: reject, approve, fail (default) or escalate to other approvers with a new deadline.',
        anyOf: [
          expiryAction,
          {
            type: 'object', additionalProperties: false, required: ['escalate'],
            properties: {
              escalate: {
                type: 'object', additionalProperties: false, minProperties: 1,
                properties: { roles: { ...listOfNames, items: { enum: KEY_ROLES } }, users: listOfNames, deadline: { $ref: '#/$defs/duration' }, on_expiry: expiryAction },
              },
            },
          },
        ],
      },
      reminders: {
        description: 'Reminders (an `approval.reminder` event, and a POST to `notify`): durations before the deadline, or { every: duration }.',
        anyOf: [
          { type: 'array', items: { $ref: '#/$defs/duration' }, minItems: 1 },
          { type: 'object', additionalProperties: false, required: ['every'], properties: { every: { $ref: '#/$defs/duration' } } },
        ],
      },
      reject_fails: { type: 'boolean', description: 'A reject fails the step (BATON_APPROVAL_REJECTED, then on_error applies) instead of being its output.' },
      notify: { type: 'string', pattern: '^https?://', description: 'URL POSTed to (JSON) on reminders and escalations.' },
    },
  },
  prepare(step, ctx) {
    const evidence = ctx.expression('evidence', step.evidence);
    const summary = ctx.template('summary', step.summary);
    const refs = new Set([...(evidence?.stepRefs ?? []), ...(summary?.stepRefs ?? [])]);
    const approvers = { roles: step.approvers?.roles ?? [], users: step.approvers?.users ?? [] };
    if (approvers.roles.length + approvers.users.length === 0) ctx.problem('approvers', 'name at least one role or user who may decide.');
    const ms = (field: string, d: Duration | undefined): number | undefined => {
      if (d === undefined) return undefined;
      try {
        const v = parseDuration(d, field);
        if (v < 1) ctx.problem(field, 'must be longer than 0 ms.');
        return v;
      } catch (e) {
        ctx.problem(field, (e as BatonError).message);
        return undefined;
      }
    };
    if (step.timeout !== undefined) ctx.warn('timeout', 'an approval waits for people, not a time limit: `timeout` does not apply; use `deadline` with `on_expiry`.');
    const deadlineMs = ms('deadline', step.deadline);
    let expiry: ApprovalExpiry = { action: 'fail' };
    const oe = step.on_expiry;
    if (oe !== undefined && step.deadline === undefined) ctx.problem('on_expiry', '`on_expiry` needs a `deadline`.');
    if (typeof oe === 'string') expiry = { action: oe };
    else if (oe && typeof oe === 'object' && oe.escalate) {
      const e = oe.escalate;
      const to = { roles: e.roles ?? [], users: e.users ?? [] };
      if (to.roles.length + to.users.length === 0) ctx.problem('on_expiry.escalate', 'name at least one role or user to escalate to.');
      expiry = { action: 'escalate', approvers: to, deadlineMs: ms('on_expiry.escalate.deadline', e.deadline), then: e.on_expiry ?? 'fail' };
    }
    let plan: ReminderPlan | undefined;
    if (Array.isArray(step.reminders)) {
      if (step.deadline === undefined) ctx.problem('reminders', 'reminders before the deadline need a `deadline` (or use `{ every: duration }`).');
      plan = { before: step.reminders.map((d, i) => ms(`reminders.${i}`, d) ?? 0) };
    } else if (step.reminders && typeof step.reminders === 'object') {
      plan = { every: ms('reminders.every', step.reminders.every) ?? 0 };
    }
    const form = answerForm(step.form as Record<string, unknown> | undefined);
    // Compiled now so a broken form is a load-time problem, not a surprise at decision time.
    ctx.schema('form', form);

    return {
      stepRefs: refs,
      async execute(x) {
        const st = x.state as ApprovalState | undefined;
        if (st?.answer) {
          const a = st.answer;
          if (a.decision === 'reject' && step.reject_fails) {
            throw new BatonError('BATON_APPROVAL_REJECTED', { approvalId: st.approvalId, step: x.stepKey, by: String(a.decided_by), reason: typeof a.reason === 'string' ? `: ${a.reason}` : '' }, { retryable: false });
          }
          return { type: 'done', output: a };
        }
        if (st?.expired) {
          throw new BatonError('BATON_APPROVAL_EXPIRED', { approvalId: st.approvalId, step: x.stepKey, deadline: new Date(st.expired.deadlineAt).toISOString() }, { retryable: false });
        }
        if (st?.approvalId) throw new BatonError('BATON_STEP_FAILED', { step: x.stepKey, detail: `approval ${st.approvalId} woke the step without an answer` }, { retryable: false });
        const where = `in step ${x.stepKey}`;
        const id = approvalIdOf(x.runId, x.stepKey, x.attempt);
        const seen = evidence ? await evidence.evaluate(x.scope, `${where}: evidence`) : x.input === undefined ? (x.scope.input ?? null) : x.input;
        const evidenceJson = canonicalJson(seen ?? null);
        const now = x.now();
        const deadlineAt = deadlineMs === undefined ? undefined : now + deadlineMs;
        const approval: NewApproval = {
          id, namespace: x.namespace, workflow: x.workflow, approvers,
          evidenceJson, evidenceHash: createHash('sha256').update(evidenceJson).digest('hex'),
          summary: summary ? await summary.render(x.scope, `${where}: summary`) : undefined,
          formJson: JSON.stringify(form),
          deadlineAt,
          onExpiryJson: deadlineAt === undefined ? undefined : JSON.stringify(expiry),
          remindersJson: plan ? JSON.stringify(plan) : undefined,
          nextReminderAt: nextReminder(plan, now, deadlineAt, now),
          notify: step.notify,
          createdAt: now,
        };
        return { type: 'wait', waitKey: approvalWaitKey(id), state: { approvalId: id } satisfies ApprovalState, approval };
      },
    };
  },
};
