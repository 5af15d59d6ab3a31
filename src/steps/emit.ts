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
 */
import { BatonError } from '../errors.js';
import type { EmitStepDoc } from '../spec/types.js';
import type { PublishedEvent, StepKind } from './kind.js';

export const emitKind: StepKind<EmitStepDoc> = {
  name: 'emit',
  recordsStart: false,
  schema: {
    kind: 'emit',
    description: 'Publishes a CloudEvent with the step\'s commit: starts workflows whose cloudevent trigger matches and wakes (or buffers for) waits keyed by its subject. Output = the event.',
    required: ['type'],
    properties: {
      type: { type: 'string', minLength: 1, description: 'CloudEvent type, e.g. com.example.order.paid.' },
      source: { type: 'string', minLength: 1, description: 'CloudEvent source. Default baton://<workflow>.' },
      subject: { $ref: '#/$defs/expression', description: 'CloudEvent subject: the correlation key waits for this event type match on.' },
      data: { $ref: '#/$defs/expression', description: 'The event data. Default: the step input.' },
    },
  },
  prepare(step, ctx) {
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
        const event: PublishedEvent = {
          specversion: '1.0',
          id: `${x.runId}/${x.stepKey}`,
          type: step.type,
          source: step.source ?? `baton://${x.workflow}`,
          ...(subj === undefined ? {} : { subject: subj }),
          time: new Date(x.now()).toISOString(),
          datacontenttype: 'application/json',
          data: value ?? null,
        };
        return { type: 'done', output: event, publish: [event] };
      },
    };
  },
};
