/** Baton's public API. Everything not exported here is internal. */
export { Baton, newRunId, type BatonOptions, type RunResult, type BatonEvents, type ScheduleControl, type EventDeliveryResult, type PublishResult } from './engine/engine.js';
export type { SchedulerOptions } from './engine/scheduler.js';
export type { StepEvent } from './engine/executor.js';
export type { TaskQueue, TaskView, TaskPollOptions, TaskLeaseOptions } from './engine/tasks.js';
export type { ApprovalDesk, ApprovalView, ApproverIdentity, DecisionInput } from './engine/approvals.js';
export { RunStatus, StepStatus, EventType, TERMINAL_RUN_STATES } from './engine/states.js';
export { BatonError, ERRORS, type ErrorCode, type Problem, type SerializedError, formatProblem } from './errors.js';
export type { WorkflowDocument, StepDoc, TaskStepDoc, ApprovalStepDoc, JsonSchema, Duration, RetryPolicyDoc, OnErrorDoc } from './spec/types.js';
export { compileWorkflow, WORKFLOW_SCHEMA, type CompileResult } from './spec/compile.js';
export { parseSource, readSource, type SourceDocument } from './spec/parse.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqlite/sqlite-store.js';
export type { Store, RunRecord, StepRecord, EventRecord, VersionRecord, RunFilter, ScheduleRecord, TaskRecord, TaskStatus, ApprovalRecord, ApprovalStatus } from './store/store.js';
export type { StepFunction, FunctionContext } from './steps/kind.js';
export { workflow, WorkflowBuilder, expr, toJsonata, type Ctx, type ItemCtx, type Ref, type Expr, type HttpOutput, type Built, type EmittedEvent, type ApprovalAnswer } from './spec/builder.js';
export type { TelemetryOptions } from './observability/telemetry.js';
export { METRIC_NAMES, METRICS_CONTENT_TYPE, type BatonMetrics } from './observability/metrics.js';
export { createLogger, logLifecycle, type LogLevel, type LoggerOptions } from './observability/logger.js';
