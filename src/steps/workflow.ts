/**
 * `workflow`: starts a child run and finishes with its output. The child is admitted in the
 * same transaction that parks this step, with an id derived from this step, so a crash can
 * neither lose it nor start it twice.
 */
import { BatonError } from '../errors.js';
import type { WorkflowStepDoc } from '../spec/types.js';
import type { StepKind } from './kind.js';

interface ChildState {
  child?: { runId: string; status: string; output?: unknown; error?: { message?: string } };
}

export const workflowKind: StepKind<WorkflowStepDoc> = {
  name: 'workflow',
  recordsStart: true,
  suspends: true,
  schema: {
    kind: 'workflow',
    description: 'Runs another workflow as a child run; output = its output. Input = the step input.',
    required: ['workflow'],
    properties: { workflow: { type: 'string', minLength: 1, description: 'Workflow name, name@hash, or a file path relative to this document.' } },
  },
  prepare(step) {
    return {
      stepRefs: new Set(),
      async execute(x) {
        const st = x.state as ChildState | undefined;
        if (st?.child) {
          const c = st.child;
          if (c.status === 'completed') return { type: 'done', output: c.output ?? null };
          throw new BatonError('BATON_CHILD_FAILED', { workflow: step.workflow, childRunId: c.runId, status: c.status, detail: c.error?.message ?? c.status }, { cause: c.error });
        }
        const versionId = await x.services.resolveWorkflow(step.workflow);
        return { type: 'child', versionId, input: x.input === undefined ? {} : x.input, state: {} };
      },
    };
  },
};
