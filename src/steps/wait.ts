/**
 * `wait`: a durable timer (`duration`, `until`) or a wait for an external event matched by a
 * correlation key (`event` + `key`). Nothing lives in memory: the due time or the key is a
 * column of the step's row, so a restart anywhere picks it up. With `lookback`, an event that
 * arrived (and was buffered, nobody waiting) up to that long before the wait armed is taken in
 * the arming transaction itself (see StepCommit.inbox).
 */
import { BatonError } from '../errors.js';
import type { WaitStepDoc } from '../spec/types.js';
import { parseDuration } from '../util/duration.js';
import type { StepKind } from './kind.js';

interface WaitState {
  wakeAt?: number;
  waitKey?: string;
  /** Set by the signal that woke the step. */
  signal?: { payload: unknown; at: number };
}

/**
 * How long an event nobody was waiting for stays in the inbox (the longest lookback allowed).
 * Expired events are dropped lazily, by the next delivery.
 */
export const EVENT_RETENTION_MS = 24 * 3_600_000;

export function eventWaitKey(event: string, key: unknown): string {
  return `event:${event}:${typeof key === 'string' ? key : JSON.stringify(key ?? null)}`;
}

export const waitKind: StepKind<WaitStepDoc> = {
  name: 'wait',
  recordsStart: true,
  suspends: true,
  schema: {
    kind: 'wait',
    description: 'Waits durably: for a duration, until a time, or for an event with a correlation key.',
    required: [],
    properties: {
      duration: { $ref: '#/$defs/duration' },
      until: { $ref: '#/$defs/expression', description: 'ISO time or epoch milliseconds.' },
      event: { type: 'string', minLength: 1 },
      key: { $ref: '#/$defs/expression', description: 'Correlation key the event must carry.' },
      lookback: { $ref: '#/$defs/duration', description: 'With event: take an event for this key that arrived up to this long before the wait armed (buffered because nobody waited). Default: none.' },
    },
  },
  prepare(step, ctx) {
    const modes = [step.duration !== undefined, step.until !== undefined, step.event !== undefined].filter(Boolean).length;
    if (modes !== 1) ctx.problem('', 'a wait step needs exactly one of `duration`, `until` or `event`.');
    if (step.key !== undefined && step.event === undefined) ctx.problem('key', '`key` only applies with `event`.');
    if (step.lookback !== undefined && step.event === undefined) ctx.problem('lookback', '`lookback` only applies with `event`.');
    let lookbackMs: number | undefined;
    if (step.lookback !== undefined) {
      try {
        lookbackMs = parseDuration(step.lookback);
      } catch (e) {
        ctx.problem('lookback', (e as BatonError).message);
      }
      if (lookbackMs !== undefined && lookbackMs > EVENT_RETENTION_MS) {
        ctx.problem('lookback', `buffered events are kept ${EVENT_RETENTION_MS / 3_600_000} h; a lookback of ${step.lookback} could never be honoured. Use at most 24h.`);
      }
    }
    let durationMs: number | undefined;
    if (step.duration !== undefined) {
      try {
        durationMs = parseDuration(step.duration);
      } catch (e) {
        ctx.problem('duration', (e as BatonError).message);
      }
    }
    let timeoutMs: number | undefined;
    try {
      if (step.event !== undefined && step.timeout !== undefined) timeoutMs = parseDuration(step.timeout);
    } catch {
      // reported by the common-field check
    }
    const until = ctx.expression('until', step.until);
    const key = ctx.expression('key', step.key);
    const refs = new Set([...(until?.stepRefs ?? []), ...(key?.stepRefs ?? [])]);
    return {
      stepRefs: refs,
      async execute(x) {
        const st = x.state as WaitState | undefined;
        if (st?.signal) return { type: 'done', output: st.signal.payload ?? null };
        if (st?.wakeAt !== undefined && !st.waitKey) {
          // Timers (setTimeout's monotonic clock against Date.now) can fire a millisecond early:
          // a timer never ends before its due time, it sleeps the rest.
          if (x.now() < st.wakeAt) return { type: 'sleep', until: st.wakeAt, state: st };
          return { type: 'done', output: { woke_at: new Date(x.now()).toISOString(), due_at: new Date(st.wakeAt).toISOString() } };
        }
        // Woken without a signal: the event did not come within the step's timeout.
        if (st?.waitKey) throw new BatonError('BATON_STEP_TIMEOUT', { step: x.stepId, timeoutMs: timeoutMs ?? 0 }, { retryable: false });
        if (durationMs !== undefined) {
          const wakeAt = x.now() + durationMs;
          return { type: 'sleep', until: wakeAt, state: { wakeAt } satisfies WaitState };
        }
        if (until) {
          const v = await until.evaluate(x.scope, `in step ${x.stepId}: until`);
          const wakeAt = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : NaN;
          if (!Number.isFinite(wakeAt)) throw new BatonError('BATON_EXPR_EVAL', { where: `in step ${x.stepId}: until`, detail: `gave ${JSON.stringify(v)}, not an ISO time or epoch milliseconds` });
          return { type: 'sleep', until: wakeAt, state: { wakeAt } satisfies WaitState };
        }
        const k = key ? await key.evaluate(x.scope, `in step ${x.stepId}: key`) : x.runId;
        const waitKey = eventWaitKey(step.event!, k);
        const timeoutAt = timeoutMs === undefined ? undefined : x.now() + timeoutMs;
        return { type: 'wait', waitKey, timeoutAt, lookbackMs, state: { waitKey, wakeAt: timeoutAt } satisfies WaitState };
      },
    };
  },
};
