/** `transform`: pure data mapping; the output is a JSONata expression over the run context. */
import type { TransformStepDoc } from '../spec/types.js';
import type { StepKind } from './kind.js';

export const transformKind: StepKind<TransformStepDoc> = {
  name: 'transform',
  recordsStart: false,
  schema: {
    kind: 'transform',
    description: 'Maps data: the output is the value of `expression`.',
    required: ['expression'],
    properties: { expression: { $ref: '#/$defs/expression' } },
  },
  prepare(step, ctx) {
    const expr = ctx.expression('expression', step.expression);
    return {
      stepRefs: expr?.stepRefs ?? new Set(),
      async execute(x) {
        const output = await expr!.evaluate(x.input === undefined ? x.scope : { ...x.scope, $input: x.input }, `in step ${x.stepId}: expression`);
        return { type: 'done', output: output ?? null };
      },
    };
  },
};
