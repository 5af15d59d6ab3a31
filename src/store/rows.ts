/**
 * Rows to records, shared by both stores: their tables have the same columns (the PostgreSQL
 * pool parses BIGINT as numbers), so a record means the same whatever stores it.
 */
import type { RunStatus, StepStatus } from '../engine/states.js';
import type { SerializedError } from '../errors.js';
import type { AnchorRecord, AuditEventRow, PurgedRunRecord } from './audit-chain.js';
import type { ApiKeyRecord, ApprovalChange, ApprovalOpResult, ApprovalRecord, ApprovalStatus, ApproverRule, EventRecord, LineageRecord, RunRecord, ScheduleRecord, ServiceStatusRecord, StageRecord, StepRecord, TaskLease, TaskOpResult, TaskRecord, TaskStatus, VersionRecord } from './store.js';

export type Row = Record<string, unknown>;

export function parseJsonColumn(v: unknown): unknown {
  return v === null || v === undefined ? undefined : JSON.parse(v as string);
}

export function toVersion(r: Row): VersionRecord {
  return {
    versionId: r.version_id as string, name: r.name as string, hash: r.hash as string, seq: r.seq as number,
    document: r.document as string, source: (r.source as string | null) ?? undefined, createdAt: r.created_at as number,
  };
}

/** SQL, the same on both stores: the latest version of every workflow. */
export const LATEST_VERSIONS = `SELECT w.* FROM workflow_versions w
  JOIN (SELECT name, MAX(seq) AS seq FROM workflow_versions GROUP BY name) m ON m.name = w.name AND m.seq = w.seq ORDER BY w.name`;

export function toRun(r: Row): RunRecord {
  return {
    id: r.id as string, versionId: r.version_id as string, workflow: r.workflow as string, status: r.status as RunStatus,
    input: parseJsonColumn(r.input), output: parseJsonColumn(r.output), error: parseJsonColumn(r.error) as SerializedError | undefined,
    parentRunId: (r.parent_run_id as string | null) ?? undefined, parentStepKey: (r.parent_step_key as string | null) ?? undefined,
    createdAt: r.created_at as number, updatedAt: r.updated_at as number, finishedAt: (r.finished_at as number | null) ?? undefined,
    budget: (r.budget as number | null) ?? undefined, cost: Math.round(((r.cost_spent as number | null) ?? 0) * 1e9) / 1e9,
    namespace: (r.namespace as string | undefined) ?? 'default', priority: (r.priority as number | undefined) ?? 0,
    concurrencyKey: (r.concurrency_key as string | null) ?? undefined, retries: (r.retries as number | null | undefined) ?? 0,
    ...(r.replay_of ? { replayOf: r.replay_of as string } : {}),
    ...(r.trace ? { trace: r.trace as string } : {}),
    ...(r.config_hash ? { configHash: r.config_hash as string } : {}),
    ...(r.event_hops ? { eventHops: Number(r.event_hops) } : {}),
  };
}

export function toStep(r: Row): StepRecord {
  return {
    runId: r.run_id as string, key: r.key as string, stepId: r.step_id as string, index: (r.idx as number | null) ?? undefined,
    parentKey: (r.parent_key as string | null) ?? undefined, status: r.status as StepStatus, attempt: r.attempt as number,
    dueAt: r.due_at as number, owner: (r.owner as string | null) ?? undefined, pendingDeps: r.pending_deps as number,
    liveDeps: r.live_deps as number, output: parseJsonColumn(r.output), error: parseJsonColumn(r.error) as SerializedError | undefined,
    state: parseJsonColumn(r.state), waitKey: (r.wait_key as string | null) ?? undefined,
    startedAt: (r.started_at as number | null) ?? undefined, finishedAt: (r.finished_at as number | null) ?? undefined,
  };
}

export function toEvent(r: Row): EventRecord {
  return {
    id: r.seq as number, runId: r.run_id as string, type: r.type as string, stepKey: (r.step_key as string | null) ?? undefined,
    at: r.at as number, data: parseJsonColumn(r.data),
  };
}

export function toAuditEvent(r: Row): AuditEventRow {
  return {
    seq: Number(r.seq), type: r.type as string, stepKey: (r.step_key as string | null) ?? undefined, at: Number(r.at),
    dataText: (r.data as string | null) ?? null, hash: (r.hash as string | null) ?? null,
  };
}

export function toAnchor(r: Row): AnchorRecord {
  return {
    seq: Number(r.seq), runId: r.run_id as string, runFinalHash: r.run_final_hash as string, prevAnchorHash: r.prev_anchor_hash as string,
    anchorHash: r.anchor_hash as string, at: Number(r.at),
  };
}

export function toPurged(r: Row): PurgedRunRecord {
  return {
    runId: r.run_id as string, workflow: r.workflow as string, finalHash: (r.final_hash as string | null) ?? undefined, purgedAt: Number(r.purged_at),
    mode: r.mode as PurgedRunRecord['mode'], archive: (r.archive as string | null) ?? undefined,
  };
}

export function toApiKey(r: Row): ApiKeyRecord {
  return {
    id: r.id as string, hash: r.hash as string, name: r.name as string, role: r.role as ApiKeyRecord['role'],
    namespaces: JSON.parse(r.namespaces as string) as string[], ratePerMinute: r.rate_per_minute as number,
    createdAt: r.created_at as number, revokedAt: (r.revoked_at as number | null) ?? undefined,
  };
}

export function toSchedule(r: Row): ScheduleRecord {
  const opt = (v: unknown) => (v === null || v === undefined ? undefined : v);
  return {
    id: r.id as string, workflow: r.workflow as string, namespace: r.namespace as string, triggerId: r.trigger_id as string,
    versionId: r.version_id as string, cron: r.cron as string, timezone: r.timezone as string, missed: r.missed as ScheduleRecord['missed'],
    maxCatchUp: r.max_catch_up as number, nextFireAt: opt(r.next_fire_at) as number | undefined, lastFiredAt: opt(r.last_fired_at) as number | undefined,
    lastRunId: opt(r.last_run_id) as string | undefined, paused: Boolean(r.paused), lastError: parseJsonColumn(r.last_error) as SerializedError | undefined,
    leaseOwner: opt(r.lease_owner) as string | undefined, leaseUntil: opt(r.lease_until) as number | undefined,
    createdAt: r.created_at as number, updatedAt: r.updated_at as number,
  };
}

/** `SET` clauses and values of a schedule patch, for either store (`ph(i)` makes a placeholder). */
export function schedulePatchSql(patch: { nextFireAt?: number | null; lastFiredAt?: number; lastRunId?: string; lastError?: SerializedError | null; paused?: boolean },
  ph: (i: number) => string, pausedValue: (b: boolean) => unknown): { sets: string[]; values: unknown[] } {
  const sets: string[] = [];
  const values: unknown[] = [];
  const set = (col: string, v: unknown) => {
    values.push(v);
    sets.push(`${col} = ${ph(values.length)}`);
  };
  if (patch.nextFireAt !== undefined) set('next_fire_at', patch.nextFireAt);
  if (patch.lastFiredAt !== undefined) set('last_fired_at', patch.lastFiredAt);
  if (patch.lastRunId !== undefined) set('last_run_id', patch.lastRunId);
  if (patch.lastError !== undefined) set('last_error', patch.lastError === null ? null : JSON.stringify(patch.lastError));
  if (patch.paused !== undefined) set('paused', pausedValue(patch.paused));
  return { sets, values };
}

/** A `tasks` row; `awaited` is computed by the query (its step still waits on `task:<id>`). */
export function toTask(r: Row): TaskRecord {
  return {
    id: r.id as string, runId: r.run_id as string, stepKey: r.step_key as string, attempt: r.step_attempt as number,
    type: r.type as string, namespace: r.namespace as string, input: parseJsonColumn(r.input), status: r.status as TaskStatus,
    leaseOwner: (r.lease_owner as string | null) ?? undefined, leaseToken: (r.lease_token as string | null) ?? undefined,
    leaseExpiresAt: (r.lease_expires_at as number | null) ?? undefined, leaseMs: r.lease_ms as number, attempts: r.attempts as number,
    maxAttempts: (r.max_attempts as number | null) ?? undefined, availableAt: r.available_at as number, output: parseJsonColumn(r.output), error: parseJsonColumn(r.error) as SerializedError | undefined,
    createdAt: r.created_at as number, updatedAt: r.updated_at as number, awaited: Boolean(r.awaited),
  };
}

/**
 * Why a fenced task operation is refused, or undefined when `lease` holds and the step still
 * waits (and, with `expiredBy`, the lease ran out by then: a heartbeat since renewed it).
 */
export function checkLease(t: TaskRecord | undefined, lease: TaskLease, expiredBy?: number): TaskOpResult | undefined {
  if (!t) return { result: 'missing' };
  if (t.status !== 'leased' || t.leaseOwner !== lease.workerId || t.leaseToken !== lease.token) return { result: 'lost', task: t };
  if (expiredBy !== undefined && !(t.leaseExpiresAt! <= expiredBy)) return { result: 'lost', task: t };
  if (!t.awaited) return { result: 'gone', task: t };
  return undefined;
}

export function toApproval(r: Row): ApprovalRecord {
  const opt = <T>(v: unknown): T | undefined => (v === null || v === undefined ? undefined : (v as T));
  return {
    id: r.id as string, runId: r.run_id as string, stepKey: r.step_key as string, attempt: Number(r.step_attempt),
    namespace: r.namespace as string, workflow: r.workflow as string, status: r.status as ApprovalStatus,
    approvers: parseJsonColumn(r.approvers) as ApproverRule, evidence: parseJsonColumn(r.evidence), evidenceHash: r.evidence_hash as string,
    summary: opt<string>(r.summary), form: parseJsonColumn(r.form) as Record<string, unknown>,
    deadlineAt: opt<number>(r.deadline_at), onExpiry: parseJsonColumn(r.on_expiry), reminders: parseJsonColumn(r.reminders),
    nextReminderAt: opt<number>(r.next_reminder_at), notify: opt<string>(r.notify), decidedBy: opt<string>(r.decided_by),
    decidedAt: opt<number>(r.decided_at), answer: parseJsonColumn(r.answer) as Record<string, unknown> | undefined,
    version: Number(r.version), createdAt: r.created_at as number, updatedAt: r.updated_at as number, awaited: Boolean(r.awaited),
  };
}

/** Why a fenced approval change is refused, or undefined when it applies (the step's wake is checked after). */
export function checkApproval(a: ApprovalRecord | undefined, ch: ApprovalChange): ApprovalOpResult | undefined {
  if (!a) return { result: 'missing' };
  if (a.version !== ch.version || (a.status !== 'pending' && a.status !== 'escalated')) return { result: 'stale', approval: a };
  if (!a.awaited) return { result: 'gone', approval: a };
  if (ch.decision && a.deadlineAt !== undefined && a.deadlineAt <= ch.now) return { result: 'late', approval: a };
  return undefined;
}

/** The SET part of an approval change (both stores bind the same named values). */
export function approvalChangeValues(ch: ApprovalChange): Record<string, unknown> {
  const keep = (v: unknown) => (v === undefined ? 0 : 1);
  return {
    status: ch.status ?? null, decidedBy: ch.decidedBy ?? null, decidedAt: ch.decidedBy === undefined ? null : ch.now, answer: ch.answerJson ?? null,
    setApprovers: keep(ch.approvers), approvers: ch.approvers ? JSON.stringify(ch.approvers) : null,
    setDeadline: keep(ch.deadlineAt), deadline: ch.deadlineAt ?? null,
    setExpiry: keep(ch.onExpiryJson), expiry: ch.onExpiryJson ?? null,
    setReminder: keep(ch.nextReminderAt), reminder: ch.nextReminderAt ?? null,
    now: ch.now, id: ch.id,
  };
}

export function toStage(r: Row): StageRecord {
  return {
    seq: Number(r.seq), name: r.name as string, stage: r.stage as string, versionId: r.version_id as string,
    ...(r.promoted_by != null ? { by: r.promoted_by as string } : {}), ...(r.reason != null ? { reason: r.reason as string } : {}), at: Number(r.at),
  };
}

export function toServiceStatus(r: Row): ServiceStatusRecord {
  return {
    seq: Number(r.seq), service: r.service as string, status: r.status as ServiceStatusRecord['status'],
    ...(r.reason != null ? { reason: r.reason as string } : {}), ...(r.changed_by != null ? { by: r.changed_by as string } : {}), at: Number(r.at),
  };
}

/** Lineage rows: one per (run, call version, model), folded into one per run, newest run first. */
export function toLineage(rows: Row[]): LineageRecord[] {
  const out = new Map<string, LineageRecord>();
  for (const r of rows) {
    const id = r.run_id as string;
    let rec = out.get(id);
    if (!rec) {
      rec = { runId: id, workflow: r.workflow as string, versionId: r.version_id as string, status: r.status as RunStatus, namespace: (r.namespace as string | null) ?? 'default', createdAt: Number(r.created_at), calls: 0, versions: [], models: [], firstCallAt: Number(r.first_at), lastCallAt: Number(r.last_at) };
      out.set(id, rec);
    }
    rec.calls += Number(r.calls);
    if (r.version != null && !rec.versions.includes(r.version as string)) rec.versions.push(r.version as string);
    if (!rec.models.includes(r.model as string)) rec.models.push(r.model as string);
    rec.firstCallAt = Math.min(rec.firstCallAt, Number(r.first_at));
    rec.lastCallAt = Math.max(rec.lastCallAt, Number(r.last_at));
  }
  return [...out.values()].sort((a, b) => b.createdAt - a.createdAt || (a.runId < b.runId ? 1 : -1));
}
