/** The table of step kinds. A new kind is added here and nowhere else. */
import type { StepKind } from './kind.js';
import { functionKind } from './function.js';
import { transformKind } from './transform.js';
import { httpKind } from './http.js';
import { mapKind } from './map.js';
import { waitKind } from './wait.js';
import { workflowKind } from './workflow.js';
import { modelKind } from './model.js';
import { taskKind } from './task.js';
import { emitKind } from './emit.js';
import { approvalKind } from './approval.js';

export const STEP_KINDS: ReadonlyMap<string, StepKind<never>> = new Map<string, StepKind<never>>(
  [functionKind, transformKind, httpKind, modelKind, mapKind, waitKind, taskKind, workflowKind, emitKind, approvalKind].map((k) => [k.name, k as unknown as StepKind<never>]),
);

export type { StepKind, StepOutcome, ExecContext, PrepareContext, PreparedStep, StepFunction, FunctionContext } from './kind.js';
