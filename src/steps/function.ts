/** `function`: calls registered TypeScript code. Without `input`, the function gets the whole context. */
import type { FunctionStepDoc } from '../spec/types.js';
import type { StepKind } from './kind.js';

export const functionKind: StepKind<FunctionStepDoc> = {
  name: 'function',
  recordsStart: false,
  schema: {
    kind: 'function',
    description: 'Calls a registered TypeScript function with the step input.',
    required: ['function'],
    properties: { function: { type: 'string', minLength: 1, description: 'Name of a registered function.' } },
  },
  prepare(step, ctx) {
    if (ctx.functions && !ctx.functions.has(step.function)) {
      const known = [...ctx.functions].sort().join(', ') || 'none';
      ctx.problem('function', `function "${step.function}" is not registered (registered: ${known}). Register it in code or list its module under \`functions:\` in baton.config.yaml.`);
    }
    return {
      stepRefs: new Set(),
      async execute(x) {
        const input = x.input === undefined ? x.scope : x.input;
        const output = await x.services.callFunction(step.function, input, {
          runId: x.runId, stepId: x.stepId, attempt: x.attempt, idempotencyKey: x.idempotencyKey, signal: x.signal,
        });
        return { type: 'done', output };
      },
    };
  },
};
