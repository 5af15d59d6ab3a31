/**
 * `baton.approvals`: the people's side of `approval` steps (through the gateway's `/approvals`
 * routes, the CLI, or in-process), and the sweep that applies deadlines and reminders.
 *
 * Policy lives here, storage in the store: who may decide (the step's approvers; an admin
 * always may), whether the answer meets the form, what a deadline does. Every change is one
 * fenced `updateApproval` (on the row's version, its being open, its step still waiting and,
 * for a person's decision, the deadline not having passed), so a decision is recorded once, a
 * deadline fires once however many processes sweep, and a refused request changes nothing.
 */
import { SoonestTimer } from '../util/soonest-timer.js';
import type { ValidateFunction } from 'ajv';
import { BatonError } from '../errors.js';
import { newAjv } from '../spec/compile.js';
import type { ApprovalChange, ApprovalRecord, ApprovalStatus, ApproverRule, NewEvent, Store } from '../store/store.js';
import { nextReminder, type ApprovalExpiry, type ApprovalState, type ReminderPlan } from '../steps/approval.js';
import { parseKey } from './run-state.js';
import { EventType } from './states.js';

/** Who is deciding or asking: an API key (name, role, namespaces), or the CLI's local user. */
export interface ApproverIdentity {
  name: string;
  role?: string;
  roles?: string[];
  /** Namespaces reached; undefined or `*`: all. */
  namespaces?: string[];
}

/** As callers see it: `cancelled` when its step stopped waiting (run cancelled) before a decision. */
export type ApprovalView = Omit<ApprovalRecord, 'status' | 'awaited' | 'version'> & { status: ApprovalStatus | 'cancelled' };

export type ApprovalViewStatus = ApprovalView['status'];
export const APPROVAL_STATUSES: ApprovalViewStatus[] = ['pending', 'escalated', 'approved', 'rejected', 'expired', 'cancelled'];

export interface DecisionInput {
  decision: 'approve' | 'reject';
  reason?: string;
  /** The form's fields (a corrected amount, a label). */
  data?: Record<string, unknown>;
}

export interface ApprovalHost {
  readonly store: Store;
  /** A step was woken: a worker of this process may claim it now. */
  poke(): void;
  fetch: typeof fetch;
  onError(e: unknown, where: string): void;
}

/** Who decides when the deadline does. */
export const DEADLINE_ACTOR = 'baton:deadline';
const RESERVED = ['decision', 'reason', 'decided_by', 'decided_at'];
/** Longest the sweep sleeps without looking (approvals created by other processes). */
const IDLE_SWEEP_MS = 1_000;

export class ApprovalDesk {
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly timer = new SoonestTimer(() => {
    this.sweeping = this.tick();
  });
  private sweeping: Promise<unknown> = Promise.resolve();
  private running = false;

  constructor(private readonly host: ApprovalHost) {}

  /**
   * Approvals, newest first. With `for`: those this identity may decide (its namespaces, its
   * roles or name), by default only open ones (the inbox). `status` filters by the view status.
   */
  async list(o: { for?: ApproverIdentity; status?: ApprovalViewStatus | ApprovalViewStatus[]; runId?: string; namespaces?: string[]; limit?: number } = {}): Promise<ApprovalView[]> {
    const wanted = o.status === undefined ? (o.for ? ['pending', 'escalated'] : undefined) : Array.isArray(o.status) ? o.status : [o.status];
    for (const s of wanted ?? []) {
      if (!APPROVAL_STATUSES.includes(s as ApprovalViewStatus)) throw new BatonError('BATON_USAGE', { detail: `approval status must be one of ${APPROVAL_STATUSES.join(', ')}, got "${String(s)}".` });
    }
    const stored = wanted && [...new Set(wanted.flatMap((s) => (s === 'cancelled' || s === 'pending' ? ['pending', 'escalated'] : [s])))] as ApprovalStatus[];
    const namespaces = o.for?.namespaces ?? o.namespaces;
    const limit = Math.min(Math.max(1, o.limit ?? 100), 1000);
    const rows = await this.host.store.listApprovals({ status: stored, namespaces, runId: o.runId, limit: o.for ? limit * 5 : limit });
    return rows
      .map(view)
      .filter((v) => (!wanted || wanted.includes(v.status) || (wanted.includes('pending') && v.status === 'escalated')) && (!o.for || mayDecide(o.for, v.approvers)))
      .slice(0, limit);
  }

  /** One approval (BATON_APPROVAL_NOT_FOUND, also for one outside `namespaces`). */
  async get(id: string, o: { namespaces?: string[] } = {}): Promise<ApprovalView> {
    return view(await this.visible(id, o.namespaces));
  }

  /**
   * Records a person's decision and wakes the step, in one transaction. Refused, changing
   * nothing: outside the identity's namespaces (404), not an allowed approver (403), already
   * decided, expired or its run cancelled (409), an answer that breaks the form (422).
   */
  async decide(id: string, input: DecisionInput, who: ApproverIdentity): Promise<ApprovalView> {
    if (!who || typeof who.name !== 'string' || who.name.length === 0) throw new BatonError('BATON_USAGE', { detail: 'approvals.decide: the deciding identity needs a `name`.' });
    for (let tries = 0; ; tries++) {
      const a = await this.visible(id, who.namespaces);
      const now = Date.now();
      refuseClosed(a, now);
      if (!mayDecide(who, a.approvers)) {
        throw new BatonError('BATON_APPROVAL_NOT_ALLOWED', { approvalId: a.id, who: who.name, role: rolesOf(who).join('/') || 'none', allowed: describeRule(a.approvers) });
      }
      const answer = this.checkAnswer(a, input);
      const full = { ...answer, decided_by: who.name, decided_at: new Date(now).toISOString() };
      const r = await this.host.store.updateApproval({
        id: a.id, version: a.version, now, decision: true,
        status: answer.decision === 'approve' ? 'approved' : 'rejected', decidedBy: who.name, answerJson: JSON.stringify(full),
        events: [{ type: EventType.approvalDecided, at: now, data: { approval_id: a.id, decided_by: who.name, role: rolesOf(who).join('/') || undefined, decided_at: full.decided_at, evidence_hash: a.evidenceHash, answer: full } }],
        wake: { state: await this.resumeState(a, { answer: full }), events: [{ type: EventType.stepResumed, at: now, data: { approval_id: a.id, decision: answer.decision } }] },
      });
      if (r.result === 'ok') {
        this.host.poke();
        return view(r.approval);
      }
      if (r.result === 'missing') throw new BatonError('BATON_APPROVAL_NOT_FOUND', { approvalId: id });
      // Changed since it was read (a reminder, an escalation, another decision): judge it again as it is now.
      if (r.result === 'stale' && tries < 5) continue;
      refuseClosed(r.approval, now, true);
      throw new BatonError('BATON_APPROVAL_CLOSED', { approvalId: id, status: r.approval.status, reason: 'it changed while being decided; try again' });
    }
  }

  /** Applies due deadlines and reminders; returns how many changes this process made. */
  async sweep(now = Date.now()): Promise<number> {
    let n = 0;
    for (const a of await this.host.store.dueApprovals(now, 100)) {
      try {
        if (a.deadlineAt !== undefined && a.deadlineAt <= now) n += (await this.expire(a, now)) ? 1 : 0;
        else if (a.nextReminderAt !== undefined && a.nextReminderAt <= now) n += (await this.remind(a, now)) ? 1 : 0;
      } catch (e) {
        this.host.onError(e, `approval ${a.id}`);
      }
    }
    return n;
  }

  /** Sweeps on a timer: at the next due deadline or reminder, and at least every second. */
  start(): void {
    this.running = true;
    this.schedule(0);
  }

  /** An approval was created here: look again by its first due time. */
  created(dueAt: number | undefined): void {
    if (this.running && dueAt !== undefined) this.schedule(Math.max(0, dueAt - Date.now()));
  }

  async close(): Promise<void> {
    this.running = false;
    this.timer.cancel();
    await this.sweeping.catch(() => undefined);
  }

  private schedule(delayMs: number): void {
    if (this.running) this.timer.arm(delayMs);
  }

  private async tick(): Promise<void> {
    let next = IDLE_SWEEP_MS;
    try {
      await this.sweep();
      const due = await this.host.store.nextApprovalDueAt();
      if (due !== undefined) next = Math.min(next, Math.max(0, due - Date.now()));
    } catch (e) {
      this.host.onError(e, 'approval sweep');
    }
    this.schedule(next);
  }

  /** The deadline passed: decide, fail or escalate as the step said. False when another process did it first. */
  private async expire(a: ApprovalRecord, now: number): Promise<boolean> {
    const policy = (a.onExpiry ?? { action: 'fail' }) as ApprovalExpiry;
    const deadline = new Date(a.deadlineAt!).toISOString();
    const base = { id: a.id, version: a.version, now };
    let ch: ApprovalChange;
    if (policy.action === 'escalate') {
      const deadlineAt = policy.deadlineMs === undefined ? null : now + policy.deadlineMs;
      const plan = a.reminders as ReminderPlan | undefined;
      ch = {
        ...base, status: 'escalated', approvers: policy.approvers, deadlineAt,
        onExpiryJson: deadlineAt === null ? null : JSON.stringify({ action: policy.then }),
        nextReminderAt: nextReminder(plan, now, deadlineAt ?? undefined, now) ?? null,
        events: [{ type: EventType.approvalEscalated, at: now, data: { approval_id: a.id, from: a.approvers, to: policy.approvers, missed_deadline: deadline, deadline_at: deadlineAt === null ? undefined : new Date(deadlineAt).toISOString() } }],
      };
    } else if (policy.action === 'fail') {
      ch = {
        ...base, status: 'expired', decidedBy: DEADLINE_ACTOR,
        events: [{ type: EventType.approvalExpired, at: now, data: { approval_id: a.id, deadline, on_expiry: 'fail', evidence_hash: a.evidenceHash } }],
        wake: { state: await this.resumeState(a, { expired: { deadlineAt: a.deadlineAt! } }), events: [{ type: EventType.stepResumed, at: now, data: { approval_id: a.id, expired: true } }] },
      };
    } else {
      const answer = { decision: policy.action, reason: `no decision before the deadline (${deadline}); on_expiry: ${policy.action}`, decided_by: DEADLINE_ACTOR, decided_at: new Date(now).toISOString() };
      ch = {
        ...base, status: 'expired', decidedBy: DEADLINE_ACTOR, answerJson: JSON.stringify(answer),
        events: [{ type: EventType.approvalExpired, at: now, data: { approval_id: a.id, deadline, on_expiry: policy.action, evidence_hash: a.evidenceHash, answer } }],
        wake: { state: await this.resumeState(a, { answer }), events: [{ type: EventType.stepResumed, at: now, data: { approval_id: a.id, decision: policy.action, expired: true } }] },
      };
    }
    const r = await this.host.store.updateApproval(ch);
    if (r.result !== 'ok') return false;
    if (ch.wake) this.host.poke();
    if (policy.action === 'escalate') this.notify(r.approval, 'approval.escalated');
    return true;
  }

  private async remind(a: ApprovalRecord, now: number): Promise<boolean> {
    const next = nextReminder(a.reminders as ReminderPlan | undefined, a.createdAt, a.deadlineAt, now);
    const events: NewEvent[] = [{
      type: EventType.approvalReminder, at: now,
      data: { approval_id: a.id, approvers: a.approvers, deadline_at: a.deadlineAt === undefined ? undefined : new Date(a.deadlineAt).toISOString(), due_at: new Date(a.nextReminderAt!).toISOString() },
    }];
    const r = await this.host.store.updateApproval({ id: a.id, version: a.version, now, nextReminderAt: next ?? null, events });
    if (r.result !== 'ok') return false;
    this.notify(r.approval, 'approval.reminder');
    return true;
  }

  /** POSTs to the step's `notify` URL; a failure is reported, never retried (the history has the event). */
  private notify(a: ApprovalRecord, type: string): void {
    if (!a.notify) return;
    const body = { type, approval_id: a.id, run_id: a.runId, step: a.stepKey, workflow: a.workflow, summary: a.summary, approvers: a.approvers, deadline_at: a.deadlineAt === undefined ? null : new Date(a.deadlineAt).toISOString() };
    this.host.fetch(a.notify, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
      .then((res) => { if (!res.ok) this.host.onError(new Error(`notify ${a.notify} answered HTTP ${res.status}`), `approval ${a.id}`); })
      .catch((e) => this.host.onError(e, `approval ${a.id} notify`));
  }

  /** `{ decision, reason?, ...data }`, checked against the form; BATON_APPROVAL_FORM listing each violation with its JSON pointer. */
  private checkAnswer(a: ApprovalRecord, input: DecisionInput): Record<string, unknown> & { decision: string } {
    const errors: Array<{ pointer: string; message: string }> = [];
    if (!input || typeof input !== 'object') throw formError(a.id, [{ pointer: '', message: 'the answer must be an object { decision, reason?, data? }' }]);
    const data = input.data ?? {};
    if (typeof data !== 'object' || data === null || Array.isArray(data)) errors.push({ pointer: '/data', message: 'data must be an object of the form\'s fields' });
    else for (const k of RESERVED) if (k in data) errors.push({ pointer: `/${k}`, message: `"${k}" is set by Baton or given on its own, not inside data` });
    if (errors.length) throw formError(a.id, errors);
    const answer: Record<string, unknown> = { ...(data as Record<string, unknown>), decision: input.decision };
    if (input.reason !== undefined) answer.reason = input.reason;
    const validate = this.validator(a, input.decision === 'reject');
    if (!validate(answer)) {
      for (const e of validate.errors ?? []) {
        // The pointer names the field itself for a missing or an unexpected one.
        const params = e.params as { missingProperty?: string; additionalProperty?: string };
        const missing = e.keyword === 'required' ? `/${params.missingProperty}` : e.keyword === 'additionalProperties' ? `/${params.additionalProperty}` : '';
        errors.push({ pointer: `${e.instancePath}${missing}`, message: e.keyword === 'required' ? 'is required' : e.keyword === 'additionalProperties' ? 'is not a field of the form' : (e.message ?? 'is not valid') });
      }
      throw formError(a.id, errors);
    }
    return answer as Record<string, unknown> & { decision: string };
  }

  /** The form's validator; for a reject, the form's required fields are not asked for (a corrected amount makes no sense then). */
  private validator(a: ApprovalRecord, reject: boolean): ValidateFunction {
    const key = `${reject ? 'r' : 'a'}:${JSON.stringify(a.form)}`;
    let v = this.validators.get(key);
    if (!v) {
      const schema = reject ? { ...a.form, required: ['decision'] } : a.form;
      v = newAjv().compile(schema);
      if (this.validators.size > 500) this.validators.clear();
      this.validators.set(key, v);
    }
    return v;
  }

  private async visible(id: string, namespaces: string[] | undefined): Promise<ApprovalRecord> {
    const a = typeof id === 'string' && id.length > 0 ? await this.host.store.getApproval(id) : undefined;
    if (!a || (namespaces && !namespaces.includes('*') && !namespaces.includes(a.namespace))) throw new BatonError('BATON_APPROVAL_NOT_FOUND', { approvalId: id });
    return a;
  }

  /** The step's resume state with the answer added (a map item keeps its item). */
  private async resumeState(a: ApprovalRecord, add: Pick<ApprovalState, 'answer' | 'expired'>): Promise<unknown> {
    const row = await this.host.store.getStep(a.runId, a.stepKey);
    const saved = (row?.state ?? {}) as Record<string, unknown>;
    if (parseKey(a.stepKey).index !== undefined) return { ...saved, resume: { ...(saved.resume as object), ...add } };
    return { ...saved, ...add };
  }
}

function rolesOf(who: ApproverIdentity): string[] {
  return [...(who.roles ?? []), ...(who.role ? [who.role] : [])];
}

/** Named users and listed roles may decide; an admin always may. */
export function mayDecide(who: ApproverIdentity, rule: ApproverRule): boolean {
  const roles = rolesOf(who);
  return roles.includes('admin') || rule.users.includes(who.name) || roles.some((r) => rule.roles.includes(r));
}

function describeRule(rule: ApproverRule): string {
  const parts = [...(rule.roles.length ? [`role ${rule.roles.join(' or ')}`] : []), ...(rule.users.length ? [`user ${rule.users.join(' or ')}`] : [])];
  return parts.join(', or ') || 'nobody but an admin';
}

function formError(id: string, errors: Array<{ pointer: string; message: string }>): BatonError {
  return new BatonError('BATON_APPROVAL_FORM', { approvalId: id, detail: errors.map((e) => `${e.pointer || '(answer)'} ${e.message}`).join('; '), errors });
}

/** BATON_APPROVAL_CLOSED when no decision may be recorded any more (decided, expired, cancelled). */
function refuseClosed(a: ApprovalRecord, now: number, late = false): void {
  const v = view(a);
  if (v.status === 'approved' || v.status === 'rejected') {
    throw new BatonError('BATON_APPROVAL_CLOSED', { approvalId: a.id, status: v.status, reason: `already decided by ${a.decidedBy} at ${new Date(a.decidedAt ?? a.updatedAt).toISOString()}` });
  }
  if (v.status === 'expired') throw new BatonError('BATON_APPROVAL_CLOSED', { approvalId: a.id, status: 'expired', reason: `its deadline passed at ${new Date(a.deadlineAt ?? a.updatedAt).toISOString()}` });
  if (v.status === 'cancelled') throw new BatonError('BATON_APPROVAL_CLOSED', { approvalId: a.id, status: 'cancelled', reason: 'its run was cancelled (or its step stopped waiting)' });
  if (late || (a.deadlineAt !== undefined && a.deadlineAt <= now)) {
    throw new BatonError('BATON_APPROVAL_CLOSED', { approvalId: a.id, status: 'expired', reason: `its deadline passed at ${new Date(a.deadlineAt ?? now).toISOString()}` });
  }
}

function view(a: ApprovalRecord): ApprovalView {
  const { awaited, version: _v, status, ...rest } = a;
  return { ...rest, status: !awaited && (status === 'pending' || status === 'escalated') ? 'cancelled' : status };
}
