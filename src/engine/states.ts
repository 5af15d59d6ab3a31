/** Run and step states, as named in DESIGN.md. `const` objects plus derived union types. */

export const RunStatus = {
  pending: 'pending',
  /** Admitted, but held back by its concurrency key until an earlier run with the key ends. */
  queued: 'queued',
  running: 'running',
  waiting: 'waiting',
  paused: 'paused',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

export const TERMINAL_RUN_STATES: ReadonlySet<RunStatus> = new Set<RunStatus>(['completed', 'failed', 'cancelled']);

/**
 * Step instance states. `pending` waits for its dependencies; `scheduled` is ready once its
 * `due_at` has passed (and is what a worker claims); `running` was claimed and recorded as
 * started; `waiting` is parked on an external signal (event, child run, map items).
 */
export const StepStatus = {
  pending: 'pending',
  scheduled: 'scheduled',
  running: 'running',
  waiting: 'waiting',
  succeeded: 'succeeded',
  failed: 'failed',
  skipped: 'skipped',
  cancelled: 'cancelled',
} as const;
export type StepStatus = (typeof StepStatus)[keyof typeof StepStatus];

export const ACTIVE_STEP_STATES: readonly StepStatus[] = ['scheduled', 'running', 'waiting'];
export const TERMINAL_STEP_STATES: ReadonlySet<StepStatus> = new Set<StepStatus>(['succeeded', 'failed', 'skipped', 'cancelled']);

/** Event types in a run's history. */
export const EventType = {
  runCreated: 'run.created',
  runStarted: 'run.started',
  runPaused: 'run.paused',
  runResumed: 'run.resumed',
  runCompleted: 'run.completed',
  runFailed: 'run.failed',
  runCancelled: 'run.cancelled',
  /** A failed or cancelled run taken back to work (`data`: from, steps and items re-run, by). */
  runRetried: 'run.retried',
  /** A replay run's first event after run.created: which run it replays, from which step, live or not. */
  runReplay: 'run.replay_of',
  stepStarted: 'step.started',
  stepSucceeded: 'step.succeeded',
  stepFailed: 'step.failed',
  stepRetrying: 'step.retrying',
  stepSkipped: 'step.skipped',
  stepWaiting: 'step.waiting',
  stepResumed: 'step.resumed',
  signalReceived: 'signal.received',
  /** An external task was handed to a worker (also after another worker's lease expired). */
  taskLeased: 'task.leased',
  taskCompleted: 'task.completed',
  taskFailed: 'task.failed',
  /** An approval step asked for a person's decision (`data`: approval id, approvers, evidence hash, deadline). */
  approvalRequested: 'approval.requested',
  /** A person (or the deadline's policy) decided: who, when, evidence hash, answer. */
  approvalDecided: 'approval.decided',
  approvalReminder: 'approval.reminder',
  approvalEscalated: 'approval.escalated',
  approvalExpired: 'approval.expired',
  eventEmitted: 'event.emitted',
  eventUndelivered: 'event.undelivered',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];
