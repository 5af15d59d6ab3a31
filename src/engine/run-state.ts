/**
 * What a worker keeps in memory about a run it is executing: the compiled version, the
 * decoded input and outputs, and the expression scope built from them. It is a cache: the
 * store is the truth, and anything missing (a step finished by another process) is reloaded.
 */
import type { CompiledWorkflow } from '../spec/compile.js';
import type { RunRecord } from '../store/store.js';
import type { RunStatus, StepStatus } from './states.js';

export interface StepView {
  output?: unknown;
  status: StepStatus;
  error?: unknown;
}

export class RunState {
  readonly id: string;
  readonly workflow: CompiledWorkflow;
  readonly versionId: string;
  status: RunStatus;
  readonly input: unknown;
  readonly parentRunId?: string;
  readonly parentStepKey?: string;
  readonly createdAt: number;
  /** USD the run may spend on model calls. */
  readonly budget?: number;
  readonly namespace: string;
  readonly priority: number;
  readonly concurrencyKey?: string;
  /** The run's `retries` when loaded: a claim of a later life means this view is stale. */
  readonly retries: number;
  /** Set on a replay run: the run it replays (see replay.ts). */
  readonly replayOf?: string;
  /** The pinned AI configuration (services snapshot hash). */
  readonly configHash?: string;
  /** Step id → what expressions see as `steps.<id>`. Mutated in place as steps finish. */
  readonly steps: Record<string, StepView> = Object.create(null) as Record<string, StepView>;
  /** The expression scope shared by every step of this run. */
  readonly scope: Record<string, unknown>;
  /** Aborted when the run is cancelled: every attempt in flight here sees it (one per run, not per attempt). */
  readonly abort = new AbortController();
  /** Trace context of the run span (see observability/telemetry.ts). */
  readonly trace?: string;
  /** See RunRecord.eventHops. */
  readonly eventHops?: number;

  constructor(run: RunRecord, workflow: CompiledWorkflow, input: unknown) {
    this.id = run.id;
    this.workflow = workflow;
    this.versionId = run.versionId;
    this.trace = run.trace;
    this.eventHops = run.eventHops;
    this.status = run.status;
    this.input = input;
    this.parentRunId = run.parentRunId;
    this.parentStepKey = run.parentStepKey;
    this.createdAt = run.createdAt;
    this.budget = run.budget;
    this.namespace = run.namespace;
    this.priority = run.priority;
    this.concurrencyKey = run.concurrencyKey;
    this.retries = run.retries;
    this.replayOf = run.replayOf;
    this.configHash = run.configHash;
    this.scope = {
      input,
      steps: this.steps,
      vars: workflow.doc.vars ?? {},
      run: { id: run.id, workflow: run.workflow, version: run.versionId, created_at: new Date(run.createdAt).toISOString() },
    };
  }

  record(stepId: string, status: StepStatus, output?: unknown, error?: unknown): void {
    const v: StepView = { status };
    if (output !== undefined) v.output = output;
    if (error !== undefined) v.error = error;
    this.steps[stepId] = v;
  }
}

/** `summarise[3]` → { stepId: 'summarise', index: 3 }. */
export function parseKey(key: string): { stepId: string; index?: number } {
  const m = /^(.*)\[(\d+)\]$/.exec(key);
  return m ? { stepId: m[1], index: Number(m[2]) } : { stepId: key };
}
