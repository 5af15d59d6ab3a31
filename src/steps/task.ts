/**
 * `task`: work handed to an external worker of any language. The step suspends durably and a
 * row in `tasks` (created in the same transaction as the suspension) waits for a worker that
 * polls `POST /tasks/poll` for its `task_type`. The worker holds it under a lease it renews by
 * heartbeats; its result (or failure) wakes the step. Baton never needs the worker's code.
 *
 * What lives where: the step row waits on `task:<id>` (with the overall `timeout` as its due
 * time); the task row carries the lease, attempts and result. Retries of a failed task follow
 * the step's retry policy (default 3 attempts), decided when the worker reports the failure;
 * expired leases count as attempts too (see TaskQueue.sweep).
 */
import { createHash } from 'node:crypto';
import { BatonError } from '../errors.js';
import type { TaskStepDoc } from '../spec/types.js';
import { parseDuration } from '../util/duration.js';
import type { StepKind } from './kind.js';

/** Resume state: what the step waits for, then what the worker reported. */
export interface TaskState {
  taskId: string;
  type: string;
  timeoutAt?: number;
  /** Set by a completion. */
  result?: { output: unknown; workerId: string; attempts: number };
  /** Set by a failure that is final (not retryable, or retries used up). */
  failure?: { code: string; message: string; workerId: string; attempts: number };
}

export const DEFAULT_LEASE_MS = 30_000;

/**
 * The task of a step attempt: derived, not random, so a commit retried after a lost answer
 * names the same task, and URL-safe (step keys of map items contain brackets).
 */
export function taskIdOf(runId: string, stepKey: string, attempt: number): string {
  return `tsk_${createHash('sha256').update(`${runId}\u0000${stepKey}\u0000${attempt}`).digest('hex').slice(0, 32)}`;
}

export function taskWaitKey(taskId: string): string {
  return `task:${taskId}`;
}

export const taskKind: StepKind<TaskStepDoc> = {
  name: 'task',
  recordsStart: true,
  suspends: true,
  defaultRetry: { maxAttempts: 3 },
  schema: {
    kind: 'task',
    description: 'Hands its input to an external worker that polls POST /tasks/poll for `task_type`, and waits durably for its result.',
    required: ['task_type'],
    properties: {
      task_type: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9_.:-]+$', description: 'What workers poll for.' },
      lease: { $ref: '#/$defs/duration', description: 'How long a worker holds the task without a heartbeat or result (default 30s).' },
    },
  },
  prepare(step, ctx) {
    let leaseMs = DEFAULT_LEASE_MS;
    if (step.lease !== undefined) {
      try {
        leaseMs = parseDuration(step.lease, 'lease');
        if (leaseMs < 1) ctx.problem('lease', 'a lease must be longer than 0 ms.');
      } catch (e) {
        ctx.problem('lease', (e as BatonError).message);
      }
    }
    let timeoutMs: number | undefined;
    try {
      if (step.timeout !== undefined) timeoutMs = parseDuration(step.timeout);
    } catch {
      // reported by the common-field check
    }
    return {
      stepRefs: new Set(),
      async execute(x) {
        const st = x.state as TaskState | undefined;
        if (st?.result) return { type: 'done', output: st.result.output ?? null };
        if (st?.failure) {
          throw new BatonError('BATON_TASK_FAILED', { taskId: st.taskId, type: st.type, workerId: st.failure.workerId, workerCode: st.failure.code, detail: st.failure.message, attempts: st.failure.attempts }, { retryable: false });
        }
        // Woken with neither: the overall timeout passed first.
        if (st?.taskId) throw new BatonError('BATON_STEP_TIMEOUT', { step: x.stepId, timeoutMs: timeoutMs ?? 0, taskId: st.taskId }, { retryable: false });
        const id = taskIdOf(x.runId, x.stepKey, x.attempt);
        const timeoutAt = timeoutMs === undefined ? undefined : x.now() + timeoutMs;
        const state: TaskState = { taskId: id, type: step.task_type, timeoutAt };
        // Without an `input` expression the worker gets the run's input.
        const input = x.input === undefined ? (x.scope.input ?? null) : x.input;
        return { type: 'wait', waitKey: taskWaitKey(id), timeoutAt, state, task: { id, type: step.task_type, input, leaseMs } };
      },
    };
  },
};
