/**
 * `baton.tasks`: the side of `task` steps that external workers talk to (through the gateway's
 * `/tasks` routes, or in-process). A worker polls for task types, holds what it gets under a
 * lease it renews by heartbeats, and completes or fails it. Every operation after the poll is
 * fenced on the lease token, so a worker whose lease expired and was given to another worker
 * cannot complete the task twice.
 *
 * Policy lives here, storage in the store: the output is checked against the step's
 * `output_schema` before anything is written (a bad output is refused, the task stays leased),
 * and a retryable failure goes back to pending only while the step's retry policy allows.
 * A lease that expires at the last hand-out the policy allows is not given out again; a sweep
 * (wherever a worker runs, fenced in the store) fails the step then, blaming its holder.
 */
import { runTraceparent } from '../observability/genai.js';
import { randomBytes } from 'node:crypto';
import { BatonError, type SerializedError } from '../errors.js';
import type { CompiledStep } from '../spec/compile.js';
import type { Store, TaskLease, TaskOpResult, TaskRecord } from '../store/store.js';
import { backoffDelay, shouldRetry } from '../resilience/retry.js';
import type { TaskState } from '../steps/task.js';
import { EventType } from './states.js';
import { parseKey } from './run-state.js';
import { SoonestTimer } from '../util/soonest-timer.js';
import type { WorkflowRegistry } from './registry.js';

/** How often a long poll looks at the store again (tasks made by other processes, leases that expired). */
const POLL_INTERVAL_MS = 250;
const MAX_WAIT_MS = 60_000;
const MAX_LEASE_MS = 24 * 3_600_000;
/** Longest the sweep sleeps without looking (last leases taken through other processes). */
const IDLE_SWEEP_MS = 1_000;

export interface TaskPollOptions {
  /** Task types this worker does. */
  types: string[];
  /** Who is asking (any stable name); the lease is held in its name. */
  workerId: string;
  /** Lease length; default the step's `lease`. */
  leaseMs?: number;
  /** Wait up to this long for a task (long poll). Default 0: answer at once. */
  waitMs?: number;
  /** Only tasks of runs in these namespaces (an API key's reach); undefined: all. */
  namespaces?: string[];
  /** Stops waiting (the client went away). */
  signal?: AbortSignal;
}

export interface TaskLeaseOptions {
  workerId: string;
  leaseToken: string;
  /** Only tasks of runs in these namespaces; undefined: all. */
  namespaces?: string[];
}

/** A task as callers see it: `cancelled` when its step stopped waiting (timeout, run cancelled). */
export type TaskView = Omit<TaskRecord, 'status' | 'leaseToken' | 'awaited'> & {
  status: TaskRecord['status'] | 'cancelled';
  leaseToken?: string;
  /** In the poll's answer, when the run is traced: W3C traceparent of the run span, for the worker's own spans. */
  traceparent?: string;
};

export interface TaskHost {
  readonly store: Store;
  readonly registry: WorkflowRegistry;
  /** A step was woken: a worker of this process may claim it now. */
  poke(): void;
  onError(e: unknown, where: string): void;
}

export class TaskQueue {
  private readonly waiters = new Set<() => void>();
  private closed = false;
  private readonly timer = new SoonestTimer(() => {
    this.sweeping = this.tick();
  });
  private sweeping: Promise<unknown> = Promise.resolve();
  private sweepOn = false;

  constructor(private readonly host: TaskHost) {}

  /** A task was created in this process: long polls look again at once. */
  created(_type: string): void {
    for (const w of [...this.waiters]) w();
  }

  /** Claims the oldest available task of `types`, waiting up to `waitMs` for one; undefined when none came. */
  async poll(o: TaskPollOptions): Promise<TaskView | undefined> {
    if (!Array.isArray(o.types) || o.types.length === 0 || o.types.some((t) => typeof t !== 'string' || t.length === 0)) {
      throw new BatonError('BATON_USAGE', { detail: 'tasks.poll: `types` must be a non-empty array of task type names.' });
    }
    checkWorker(o.workerId);
    if (o.leaseMs !== undefined && !(Number.isInteger(o.leaseMs) && o.leaseMs >= 1 && o.leaseMs <= MAX_LEASE_MS)) {
      throw new BatonError('BATON_USAGE', { detail: `tasks.poll: the lease must be a whole number of ms from 1 to ${MAX_LEASE_MS}, got ${JSON.stringify(o.leaseMs)}.` });
    }
    const waitMs = Math.min(Math.max(0, o.waitMs ?? 0), MAX_WAIT_MS);
    const namespaces = o.namespaces?.includes('*') ? undefined : o.namespaces;
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (this.closed || o.signal?.aborted) return undefined;
      const t = await this.host.store.pollTask({ types: o.types, workerId: o.workerId, leaseMs: o.leaseMs, namespaces, token: randomBytes(18).toString('base64url'), now: Date.now() });
      // Tasks without max_attempts (the store's migration gave it to those it found; an older
      // Baton still running during an upgrade writes them without) are judged here, after the hand-out.
      if (t && t.maxAttempts === undefined && (await this.usedUp(t))) continue;
      if (t) {
        this.watch(t);
        return withTrace(view(t, true), (await this.host.store.getRun(t.runId))?.trace);
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          o.signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, POLL_INTERVAL_MS));
        this.waiters.add(done);
        o.signal?.addEventListener('abort', done);
      });
    }
  }

  /**
   * Lease expiries count against the step's retry policy like failures do: a task whose lease
   * expired at its last allowed hand-out (every holder vanished, e.g. its input crashes them)
   * is not handed out again (the store's poll passes over it) and its step fails, blaming the
   * holder whose lease ran out. Failures alone never get here (one at the last attempt is final).
   * Returns how many steps this call failed (another process may have failed one first).
   */
  async sweep(now = Date.now()): Promise<number> {
    let n = 0;
    for (const t of await this.host.store.usedUpTasks(now, 100)) {
      try {
        if (await this.expire(t, now)) n++;
      } catch (e) {
        this.host.onError(e, `task ${t.id}`);
      }
    }
    return n;
  }

  /** Sweeps on a timer: when a last lease taken here expires, and at least every second (leases taken elsewhere, restarts). */
  start(): void {
    this.sweepOn = true;
    this.timer.arm(0);
  }

  private async tick(): Promise<void> {
    try {
      await this.sweep();
    } catch (e) {
      this.host.onError(e, 'task sweep');
    }
    if (this.sweepOn) this.timer.arm(IDLE_SWEEP_MS);
  }

  /** A lease given or renewed here at the last hand-out: sweep just after it would expire. */
  private watch(t: TaskRecord): void {
    if (this.sweepOn && t.maxAttempts !== undefined && t.attempts >= t.maxAttempts && t.leaseExpiresAt !== undefined) {
      this.timer.arm(Math.max(0, t.leaseExpiresAt - Date.now()) + 5);
    }
  }

  /** Fails the step of a task whose last lease ran out; false when that lease no longer holds (finished, renewed, or another process did it). */
  private async expire(t: TaskRecord, now: number): Promise<boolean> {
    const holder = t.leaseOwner!;
    const failure = { code: 'LEASE_EXPIRED', message: `no worker finished it: worker ${holder}'s lease expired at hand-out ${t.attempts}, the last of retry.max_attempts ${t.maxAttempts}`, workerId: holder, attempts: t.attempts };
    const error: SerializedError = { code: failure.code, message: failure.message, retryable: false };
    const r = await this.host.store.failTask({
      lease: { taskId: t.id, workerId: holder, token: t.leaseToken! }, now, error, leaseExpiredBy: now,
      events: [{ type: EventType.taskFailed, at: now, data: { task_id: t.id, worker_id: holder, attempts: t.attempts, error, final: true } }],
      wake: { state: await this.resumeState(t, { failure }), events: [{ type: EventType.stepResumed, at: now, data: { task_id: t.id, status: 'failed' } }] },
    });
    if (r.result !== 'ok') return false;
    this.host.poke();
    return true;
  }

  /**
   * Tasks stored without `maxAttempts` (written by an older Baton after the store was migrated,
   * or whose run is gone): judged after the poll leased them, so the hand-out is recorded and
   * the poller is blamed; others never get here.
   */
  private async usedUp(t: TaskRecord): Promise<boolean> {
    const step = await this.stepOf(t);
    if (t.attempts <= step.retry.maxAttempts) return false;
    const now = Date.now();
    const expired = t.attempts - 1;
    const failure = { code: 'LEASE_EXPIRED', message: `no worker finished it: its lease expired ${expired} time${expired === 1 ? '' : 's'} (retry.max_attempts ${step.retry.maxAttempts})`, workerId: t.leaseOwner!, attempts: expired };
    const error: SerializedError = { code: failure.code, message: failure.message, retryable: false };
    await this.host.store.failTask({
      lease: { taskId: t.id, workerId: t.leaseOwner!, token: t.leaseToken! }, now, error,
      events: [{ type: EventType.taskFailed, at: now, data: { task_id: t.id, attempts: expired, error, final: true } }],
      wake: { state: await this.resumeState(t, { failure }), events: [{ type: EventType.stepResumed, at: now, data: { task_id: t.id, status: 'failed' } }] },
    });
    this.host.poke();
    return true;
  }

  /** Extends the lease by its length; BATON_TASK_LEASE_LOST when the worker no longer holds it. */
  async heartbeat(taskId: string, o: TaskLeaseOptions): Promise<TaskView> {
    const t = await this.visible(taskId, o.namespaces);
    const lease = leaseOf(taskId, o);
    const r = await this.host.store.heartbeatTask(lease, Date.now());
    if (r.result === 'ok') this.watch(r.task);
    return this.outcome(t, r, lease, 'heartbeat');
  }

  /**
   * Records the worker's output and wakes the step, in one transaction. The output must meet the
   * step's `output_schema` (BATON_OUTPUT_SCHEMA otherwise, and the task stays leased for a corrected one).
   */
  async complete(taskId: string, o: TaskLeaseOptions & { output: unknown }): Promise<TaskView> {
    const t = await this.visible(taskId, o.namespaces);
    const lease = leaseOf(taskId, o);
    await this.refuseEarly(t, lease);
    const step = await this.stepOf(t);
    const output = o.output ?? null;
    const v = step.outputValidator;
    if (v && !v(output)) {
      const detail = (v.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '(root)'} ${e.message}`).join('; ');
      throw new BatonError('BATON_OUTPUT_SCHEMA', { step: t.stepKey, detail, taskId, errors: v.errors }, { retryable: false });
    }
    const now = Date.now();
    const r = await this.host.store.completeTask({
      lease, now, outputJson: JSON.stringify(output),
      wake: { state: await this.resumeState(t, { result: { output, workerId: o.workerId, attempts: t.attempts } }), events: [{ type: EventType.stepResumed, at: now, data: { task_id: taskId, status: 'completed' } }] },
      events: [{ type: EventType.taskCompleted, at: now, data: { task_id: taskId, worker_id: o.workerId, attempts: t.attempts } }],
    });
    return this.outcome(t, r, lease, 'complete');
  }

  /**
   * A worker could not do the task. `retryable` and the step's retry policy allow another
   * attempt: the task goes back to pending (after the policy's backoff). Otherwise the step
   * fails with the worker's error.
   */
  async fail(taskId: string, o: TaskLeaseOptions & { error: { code?: string; message: string }; retryable?: boolean }): Promise<TaskView & { willRetry: boolean }> {
    const t = await this.visible(taskId, o.namespaces);
    const lease = leaseOf(taskId, o);
    if (typeof o.error?.message !== 'string') throw new BatonError('BATON_USAGE', { detail: 'tasks.fail: `error.message` must be a string.' });
    await this.refuseEarly(t, lease);
    const step = await this.stepOf(t);
    const retryable = o.retryable === true;
    const error: SerializedError = { code: o.error.code ?? 'TASK_ERROR', message: o.error.message, retryable };
    const now = Date.now();
    const again = shouldRetry(step.retry, t.attempts, retryable);
    const retryAt = again ? now + backoffDelay(step.retry, t.attempts) : undefined;
    const failed = { type: EventType.taskFailed, at: now, data: { task_id: taskId, worker_id: o.workerId, attempts: t.attempts, error, final: !again, ...(retryAt ? { retry_at: new Date(retryAt).toISOString() } : {}) } };
    const r = await this.host.store.failTask(again
      ? { lease, now, error, retryAt, events: [failed] }
      : {
          lease, now, error, events: [failed],
          wake: { state: await this.resumeState(t, { failure: { code: error.code, message: error.message, workerId: o.workerId, attempts: t.attempts } }), events: [{ type: EventType.stepResumed, at: now, data: { task_id: taskId, status: 'failed' } }] },
        });
    return { ...(await this.outcome(t, r, lease, 'fail')), willRetry: again };
  }

  /** A task by id (BATON_TASK_NOT_FOUND, also for one outside `namespaces`). */
  async get(taskId: string, o: { namespaces?: string[] } = {}): Promise<TaskView> {
    return view(await this.visible(taskId, o.namespaces), false);
  }

  /** Long polls in flight return (with nothing) at once; the sweep stops. */
  async close(): Promise<void> {
    this.closed = true;
    this.sweepOn = false;
    this.timer.cancel();
    this.created('');
    await this.sweeping.catch(() => undefined);
  }

  private async visible(taskId: string, namespaces: string[] | undefined): Promise<TaskRecord> {
    const t = typeof taskId === 'string' ? await this.host.store.getTask(taskId) : undefined;
    if (!t || (namespaces && !namespaces.includes('*') && !namespaces.includes(t.namespace))) throw new BatonError('BATON_TASK_NOT_FOUND', { taskId });
    return t;
  }

  private async stepOf(t: TaskRecord): Promise<CompiledStep> {
    const run = await this.host.store.getRun(t.runId);
    if (!run) throw new BatonError('BATON_TASK_NOT_FOUND', { taskId: t.id });
    const wf = await this.host.registry.get(run.versionId);
    const { stepId, index } = parseKey(t.stepKey);
    const top = wf.steps.get(stepId);
    const step = index === undefined ? top : top?.sub;
    if (!step) throw new BatonError('BATON_TASK_NOT_FOUND', { taskId: t.id });
    return step;
  }

  /** The step's resume state with the worker's report added (a map item keeps its item). */
  private async resumeState(t: TaskRecord, add: Pick<TaskState, 'result' | 'failure'>): Promise<unknown> {
    const row = await this.host.store.getStep(t.runId, t.stepKey);
    const saved = (row?.state ?? {}) as Record<string, unknown>;
    if (parseKey(t.stepKey).index !== undefined) return { ...saved, resume: { ...(saved.resume as object), ...add } };
    return { ...saved, ...add };
  }

  private async outcome(t: TaskRecord, r: TaskOpResult, lease: TaskLease, action: string): Promise<TaskView> {
    if (r.result === 'ok') {
      if (action !== 'heartbeat') this.host.poke();
      return view(r.task, false);
    }
    if (r.result === 'missing') throw new BatonError('BATON_TASK_NOT_FOUND', { taskId: t.id });
    throw new BatonError('BATON_TASK_LEASE_LOST', { taskId: t.id, reason: await this.lostReason(r.task, lease, action), status: view(r.task, false).status });
  }

  /** Refuses before validating anything, so a worker that lost its lease hears that first. */
  private async refuseEarly(t: TaskRecord, lease: TaskLease): Promise<void> {
    if (t.status === 'leased' && t.leaseOwner === lease.workerId && t.leaseToken === lease.token && t.awaited) return;
    throw new BatonError('BATON_TASK_LEASE_LOST', { taskId: t.id, reason: await this.lostReason(t, lease, 'finish'), status: view(t, false).status });
  }

  /** What actually happened to the lease `lease` names (the record, the run and the task's hand-outs tell). */
  private async lostReason(t: TaskRecord, lease: TaskLease, action: string): Promise<string> {
    const w = lease.workerId;
    if (t.status === 'completed') return `it is already completed (by worker ${t.leaseOwner}); cannot ${action} it`;
    if (t.status === 'failed') return `it already failed${t.error ? ` (${t.error.code}: ${t.error.message})` : ''}; cannot ${action} it`;
    if (!t.awaited) {
      const run = await this.host.store.getRun(t.runId);
      if (run?.status === 'cancelled') return `the run was cancelled, so its step no longer waits for it; cannot ${action} it`;
      const step = await this.host.store.getStep(t.runId, t.stepKey);
      if (step?.error?.code === 'BATON_STEP_TIMEOUT') return `its step timed out and no longer waits for it; cannot ${action} it`;
      if (run && ['completed', 'failed'].includes(run.status)) return `the run already ended (${run.status}); cannot ${action} it`;
      return `its step no longer waits for it; cannot ${action} it`;
    }
    if (t.status === 'pending') {
      return t.attempts === 0 ? `no worker holds it: it was never handed out (poll for it)` : `no worker holds it: it went back to the queue after a retryable failure (poll for it again)`;
    }
    const leases = (await this.host.store.getEvents(t.runId))
      .filter((e) => e.type === 'task.leased' && (e.data as { task_id?: string })?.task_id === t.id)
      .map((e) => e.data as { worker_id?: string; expired_lease_of?: string });
    const mine = leases.filter((d) => d.worker_id === w).length;
    if (t.leaseOwner !== w) {
      if (mine === 0) return `worker ${w} never held it (it is leased to worker ${t.leaseOwner})`;
      return leases.at(-1)?.expired_lease_of === w
        ? `worker ${w}'s lease expired and the task was handed to worker ${t.leaseOwner}`
        : `worker ${w} no longer holds it: the task was handed to worker ${t.leaseOwner} since`;
    }
    return `wrong lease token: it is not the token of worker ${w}'s current lease${mine > 1 ? ` (the task was handed to ${w} ${mine} times; only the latest poll's token holds)` : ''}`;
  }
}

function checkWorker(workerId: unknown): void {
  if (typeof workerId !== 'string' || workerId.length === 0 || workerId.length > 200) {
    throw new BatonError('BATON_USAGE', { detail: 'tasks: `workerId` must be a non-empty string of at most 200 characters.' });
  }
}

function leaseOf(taskId: string, o: TaskLeaseOptions): TaskLease {
  checkWorker(o.workerId);
  if (typeof o.leaseToken !== 'string' || o.leaseToken.length === 0) throw new BatonError('BATON_USAGE', { detail: 'tasks: `leaseToken` (from the poll) is required.' });
  return { taskId, workerId: o.workerId, token: o.leaseToken };
}

function withTrace(v: TaskView, trace: string | undefined): TaskView {
  const traceparent = runTraceparent(trace);
  return traceparent ? { ...v, traceparent } : v;
}

function view(t: TaskRecord, withToken: boolean): TaskView {
  const { awaited, leaseToken, status, ...rest } = t;
  return { ...rest, status: !awaited && (status === 'pending' || status === 'leased') ? 'cancelled' : status, ...(withToken ? { leaseToken } : {}) };
}
