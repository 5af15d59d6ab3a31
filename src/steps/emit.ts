/**
 * `emit`: publishes a CloudEvent. It starts the workflows whose `cloudevent` trigger matches
 * (in this run's namespace or the shared default one) and is delivered to waits for
 * `event: <type>` keyed by its `subject` (buffered if none waits yet, for a wait's lookback).
 *
 * The event is recorded in the same transaction as the step's result (an outbox row and an
 * `event.emitted` history event): a step that fails publishes nothing, and one that succeeded
 * has published, even if the process dies right after — whoever opens the store next
 * dispatches what was left. Its id is this step's identity (`<run id>/<step key>`) and every
 * effect is idempotent on it (runs started get ids derived from it, a wait takes it once), so
 * dispatching twice is harmless. The step's output is the event.
 *
 * Loops: the event carries `batonhops` (a CloudEvents extension attribute), 1 for an emit of a
 * run no emitted event started, and one more than the starting event's for a run that one
 * started. An emit that would pass an event on beyond MAX_EVENT_HOPS fails (non-retryable),
 * and an event arriving with more hops starts no run: a workflow whose emit matches its own
 * trigger (or A → B → A) stops after that many generations instead of starting runs forever.
 */
import { trace } from '@opentelemetry/api';
import { formatTraceparent } from '../observability/genai.js';
import { CloudEvent, HTTP } from 'cloudevents';
import { BatonError } from '../errors.js';
import type { EmitStepDoc } from '../spec/types.js';
import type { PublishedEvent, StepKind } from './kind.js';

/** How many times emit steps may pass an event on (a chain of runs each started by the last one's emit). */
export const MAX_EVENT_HOPS = 16;

/** The `batonhops` of a received CloudEvent (0 when absent or not a count: an event from outside). */
export function eventHops(e: { batonhops?: unknown }): number {
  const n = Number(e.batonhops ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** Sink answers worth another attempt (as for http steps). */
const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

export const emitKind: StepKind<EmitStepDoc> = {
  name: 'emit',
  recordsStart: false,
  // Only a sink can fail transiently; an expression error is not retryable anyway.
  defaultRetry: { maxAttempts: 3 },
  schema: {
    kind: 'emit',
    description: 'Publishes a CloudEvent with the step\'s commit: starts workflows whose cloudevent trigger matches and wakes (or buffers for) waits keyed by its subject. Output = the event.',
    required: ['type'],
    properties: {
      type: { type: 'string', minLength: 1, description: 'CloudEvent type, e.g. com.example.order.paid.' },
      source: { type: 'string', minLength: 1, description: 'CloudEvent source. Default baton://<workflow>.' },
      subject: { $ref: '#/$defs/expression', description: 'CloudEvent subject: the correlation key waits for this event type match on.' },
      data: { $ref: '#/$defs/expression', description: 'The event data. Default: the step input.' },
      sink: { type: 'string', pattern: '^https?://', description: 'Also POST the event to this URL before the step commits (a non-2xx answer fails the attempt; retried like an http step). The receiver dedupes on the event id.' },
      sink_mode: { enum: ['structured', 'binary'], description: 'CloudEvents HTTP mode for the sink. Default structured.' },
    },
  },
  prepare(step, ctx) {
    if (step.sink_mode !== undefined && step.sink === undefined) ctx.problem('sink_mode', '`sink_mode` only applies with `sink`.');
    const subject = ctx.expression('subject', step.subject);
    const data = ctx.expression('data', step.data);
    return {
      stepRefs: new Set([...(subject?.stepRefs ?? []), ...(data?.stepRefs ?? [])]),
      async execute(x) {
        const where = `in step ${x.stepKey}`;
        const value = data ? await data.evaluate(x.scope, `${where}: data`) : x.input ?? null;
        let subj: string | undefined;
        if (subject) {
          const v = await subject.evaluate(x.scope, `${where}: subject`);
          if (v !== undefined && v !== null) {
            if (typeof v === 'object') throw new BatonError('BATON_EXPR_EVAL', { where: `${where}: subject`, detail: `gave ${Array.isArray(v) ? 'an array' : 'an object'}; a subject is a string or number` }, { retryable: false });
            subj = String(v);
          }
        }
        const hops = (x.eventHops ?? 0) + 1;
        if (hops > MAX_EVENT_HOPS) {
          throw new BatonError('BATON_EVENT_HOP_LIMIT', { hops, limit: MAX_EVENT_HOPS, type: step.type, where: `in step ${x.stepKey}` }, { retryable: false });
        }
        const event: PublishedEvent = {
          specversion: '1.0',
          id: `${x.runId}/${x.stepKey}`,
          type: step.type,
          source: step.source ?? `baton://${x.workflow}`,
          ...(subj === undefined ? {} : { subject: subj }),
          time: new Date(x.now()).toISOString(),
          datacontenttype: 'application/json',
          data: value ?? null,
          batonhops: hops,
        };
        // Tracing on: the CloudEvents distributed-tracing extension, so runs this event starts join the trace.
        if (x.span) {
          const sc = trace.getSpanContext(x.span);
          if (sc) event.traceparent = formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & 1) === 1);
        }
        if (step.sink) await postToSink(step.sink, step.sink_mode ?? 'structured', event, x.services.fetch, x.signal);
        return { type: 'done', output: event, publish: [event] };
      },
    };
  },
};

/** POSTs the event in CloudEvents HTTP structured or binary mode; a non-2xx answer throws. */
async function postToSink(url: string, mode: 'structured' | 'binary', event: PublishedEvent, fetchFn: typeof fetch, signal: AbortSignal): Promise<void> {
  const msg = (mode === 'binary' ? HTTP.binary : HTTP.structured)(new CloudEvent<unknown>({ ...event }, false));
  const target = new URL(url);
  const shown = `${target.origin}${target.pathname}`;
  let res: Response;
  try {
    res = await fetchFn(target, { method: 'POST', headers: msg.headers as Record<string, string>, body: msg.body as string, signal });
  } catch (e) {
    if (signal.aborted && signal.reason instanceof BatonError) throw signal.reason;
    const cause = (e as Error & { cause?: { message?: string } }).cause;
    // An address the egress guard refused is not a network failure: it is final and says why.
    if (e instanceof BatonError) throw e;
    if (cause instanceof BatonError) throw cause;
    throw new BatonError('BATON_HTTP_NETWORK', { method: 'POST', url: shown, detail: cause?.message ?? (e as Error).message }, { cause: e });
  }
  const text = await res.text();
  if (!res.ok) {
    throw new BatonError('BATON_HTTP_STATUS', { method: 'POST', url: shown, httpStatus: res.status, detail: text.slice(0, 300) || res.statusText }, { retryable: RETRYABLE_STATUS.has(res.status) });
  }
}
