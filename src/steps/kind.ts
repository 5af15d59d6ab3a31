/**
 * The contract every step kind implements: a check at load time (`prepare`, which compiles the
 * kind's own expressions and reports problems) and an execution at run time. The engine never
 * switches on a kind's name; it only calls these.
 *
 * A kind that must wait (timer, event, child run, map items, and later approvals and external
 * tasks) returns a suspending outcome. The engine records it durably and calls `execute` again
 * with the saved `state` when the wait is over, on whatever worker picks the step up.
 */
import type { Context } from '@opentelemetry/api';
import type { ValidateFunction } from 'ajv';
import type { Expression, ExpressionCache, Template } from '../expr/expression.js';
import type { ServiceRuntime } from '../services/runtime.js';
import type { KindSchema } from '../spec/schema.js';
import type { RetryPolicy } from '../resilience/retry.js';
import type { NewApproval } from '../store/store.js';

/** A registered TypeScript function callable from `function` steps. */
export type StepFunction = (input: unknown, ctx: FunctionContext) => unknown | Promise<unknown>;

export interface FunctionContext {
  runId: string;
  stepId: string;
  attempt: number;
  /** `runId:stepKey:attempt`: pass it to external systems so repeats are harmless. */
  idempotencyKey: string;
  /** Aborted on timeout or cancellation. */
  signal: AbortSignal;
}

export interface PrepareContext {
  expressions: ExpressionCache;
  /** Compiles `source`, or records a problem at `field` and returns undefined. */
  expression(field: string, source: string | undefined): Expression | undefined;
  /** Compiles a `{{ expr }}` template, or records a problem at `field` and returns undefined. */
  template(field: string, src: string | undefined): Template | undefined;
  /** Compiles a JSON Schema, or records a problem at `field` and returns undefined. */
  schema(field: string, schema: unknown): ValidateFunction | undefined;
  /** Records a problem at a path relative to the step (e.g. `url`). */
  problem(path: string, message: string): void;
  /** Records a warning (the document still loads). */
  warn(path: string, message: string): void;
  /** The configured model services, or undefined when they are not known (document-only validation). */
  services?: ServiceCatalog;
  /** Known function names, or undefined when functions are not known (document-only validation). */
  functions?: ReadonlySet<string>;
  /** Document path of this step, e.g. `steps[2]`. */
  path: string;
}

/** What validation (and policies) need to know of one configured service. */
export interface CatalogService {
  status: 'approved' | 'deprecated' | 'blocked';
  statusReason?: string;
  statusBy?: string;
  provider: string;
  model?: string;
  version?: string;
  owner?: string;
  dataResidency?: string;
  labels?: Record<string, string>;
}

/** What validation needs to know of the services registry. */
export interface ServiceCatalog {
  get(name: string): CatalogService | undefined;
  names(): string[];
}

export interface ExecContext {
  runId: string;
  stepKey: string;
  stepId: string;
  attempt: number;
  idempotencyKey: string;
  signal: AbortSignal;
  /** The expression context: { input, steps, vars, run } (+ item, index in a map). */
  scope: Record<string, unknown>;
  /** The evaluated `input` expression (undefined when the step has none). */
  input: unknown;
  /** The workflow's name (for cost reports). */
  workflow: string;
  /** The run's namespace. */
  namespace: string;
  /** The run's cost budget in USD, when it has one. */
  budget?: number;
  /** The run's pinned AI configuration (services snapshot hash), when it has one. */
  configHash?: string;
  /** Started by an event emit steps passed on this many times (see emit.ts); undefined: not by one. */
  eventHops?: number;
  /** Resume state saved by a previous suspending outcome; undefined on first execution. */
  state: unknown;
  now(): number;
  services: ExecServices;
  /**
   * The OpenTelemetry context of this attempt's span, when tracing is on: model calls become its
   * children and `http` steps send its `traceparent`.
   */
  span?: Context;
}

export interface ExecServices {
  callFunction(name: string, input: unknown, ctx: FunctionContext): Promise<unknown>;
  fetch: typeof fetch;
  /** Outputs of a map step's items, in index order (for map). */
  childOutputs(runId: string, parentKey: string): Promise<Array<{ status: string; output: unknown; error?: unknown }>>;
  /** Resolves a child workflow reference to a registered version id. */
  resolveWorkflow(ref: string): Promise<string>;
  /** Model services (undefined when none are configured). */
  models?: ServiceRuntime;
}

/** A CloudEvent as Baton publishes it (spec version 1.0). */
export interface PublishedEvent {
  specversion: '1.0';
  id: string;
  type: string;
  source: string;
  subject?: string;
  time: string;
  datacontenttype: 'application/json';
  data: unknown;
  /** Extension attribute: how many emits this event has passed through (1: emitted by a run no event started). */
  batonhops: number;
  /** Distributed-tracing extension: the emitting attempt's span (tracing on). */
  traceparent?: string;
}

export type StepOutcome =
  /**
   * Finished with this output. `publish`: CloudEvents recorded in the same commit (an outbox)
   * and dispatched once it is written — to matching triggers and waiting steps (emit).
   */
  | { type: 'done'; output: unknown; publish?: PublishedEvent[] }
  /** Sleep until `until` (epoch ms), then execute again with `state`. */
  | { type: 'sleep'; until: number; state: unknown }
  /**
   * Park until a signal on `waitKey` arrives (or `timeoutAt` passes), then execute again. With
   * `task`, an external task is created in the same transaction (its result is the signal); with
   * `approval`, a human approval likewise (its decision is the signal). With
   * `lookbackMs`, an event buffered within that window is taken at once instead.
   */
  | { type: 'wait'; waitKey: string; state: unknown; timeoutAt?: number; task?: { id: string; type: string; input: unknown; leaseMs: number }; lookbackMs?: number; approval?: NewApproval }
  /** Start a child run of `versionId`; execute again when it finishes, with `state.child`. */
  | { type: 'child'; versionId: string; input: unknown; state: unknown }
  /** Run the prepared sub-step over `items`; execute again when all finished. */
  | { type: 'fanout'; items: unknown[]; concurrency: number; state: unknown };

export interface PreparedStep {
  /** Step ids referenced by this kind's own expressions (beyond the common fields). */
  stepRefs: ReadonlySet<string>;
  execute(ctx: ExecContext): Promise<StepOutcome>;
  /**
   * What executing would send out (a model request, an HTTP request), as plain JSON: a replay
   * (engine/replay.ts) reuses a recorded answer only for an equal request. Kinds without it are
   * compared by their definition, their input and the outputs of the steps they read.
   */
  request?(ctx: ExecContext): Promise<unknown>;
}

export interface StepKind<D = Record<string, unknown>> {
  readonly name: string;
  readonly schema: KindSchema;
  /** Whether the start of an attempt is recorded durably before executing (slow kinds). */
  readonly recordsStart: boolean;
  /** Suspending kinds (timers, events, children, maps) keep their own deadlines; the step timeout does not wrap them. */
  readonly suspends?: boolean;
  /** Retry policy when neither the step nor the workflow defaults set one. */
  readonly defaultRetry?: Partial<RetryPolicy>;
  prepare(step: D, ctx: PrepareContext): PreparedStep;
}
