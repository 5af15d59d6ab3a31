/**
 * `map`: runs its sub-step once per item of an array, at most `concurrency` at a time, and
 * outputs the results in item order. Each item is a step instance of its own (`id[i]`) with its
 * own retries and record, so a crash mid-map re-runs only the unfinished items.
 */
import { BatonError } from '../errors.js';
import type { MapStepDoc } from '../spec/types.js';
import type { StepKind } from './kind.js';

interface MapState {
  count: number;
  /** Set when an item failed for good: the map fails with it. */
  failed?: { key: string; error: unknown };
}

export const mapKind: StepKind<MapStepDoc> = {
  name: 'map',
  recordsStart: true,
  suspends: true,
  schema: {
    kind: 'map',
    description: 'Runs `step` for every item of `over` (as `item`, `index`), `concurrency` at a time; output = results in order.',
    required: ['over', 'step'],
    properties: {
      over: { $ref: '#/$defs/expression' },
      concurrency: { type: 'integer', minimum: 1, maximum: 10000 },
      step: { $ref: '#/$defs/subStep' },
    },
  },
  prepare(step, ctx) {
    const over = ctx.expression('over', step.over);
    const concurrency = step.concurrency ?? 10;
    return {
      stepRefs: over?.stepRefs ?? new Set(),
      async execute(x) {
        const st = x.state as MapState | undefined;
        if (!st) {
          const items = await over!.evaluate(x.scope, `in step ${x.stepId}: over`);
          const list = items === undefined || items === null ? [] : items;
          if (!Array.isArray(list)) throw new BatonError('BATON_MAP_NOT_ARRAY', { step: x.stepId, type: typeof list });
          if (list.length === 0) return { type: 'done', output: [] };
          return { type: 'fanout', items: list, concurrency, state: { count: list.length } satisfies MapState };
        }
        if (st.failed) {
          const err = st.failed.error as { message?: string } | undefined;
          throw new BatonError('BATON_STEP_FAILED', { step: `${x.stepId} (item ${st.failed.key})`, detail: err?.message ?? 'item failed' }, { retryable: false, cause: st.failed.error });
        }
        const results = await x.services.childOutputs(x.runId, x.stepKey);
        return { type: 'done', output: results.map((r) => r.output ?? null) };
      },
    };
  },
};
