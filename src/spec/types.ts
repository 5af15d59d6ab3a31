/**
 * The workflow document as users write it (YAML or JSON) and as the typed builder produces it.
 * Field names are snake_case because they are written by hand in YAML.
 */

/** A JSON Schema object (draft 2020-12). */
export type JsonSchema = Record<string, unknown> | boolean;

/** `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"`, or a number of milliseconds. */
export type Duration = string | number;

/** A JSONata expression over `{ input, steps, vars, run }` (and `item`, `index` inside a map). */
export type Expression = string;

export interface RetryPolicyDoc {
  /** Total attempts including the first. Default 1 (no retry); http steps default to 3. */
  max_attempts?: number;
  initial_delay?: Duration;
  max_delay?: Duration;
  multiplier?: number;
  /** Fraction of the delay randomised, 0..1 (full jitter = 1). Default 0.2. */
  jitter?: number;
}

/**
 * What happens when a step fails after its retries:
 * - `fail` (default): the run fails.
 * - `continue` / `{ continue: expr }`: the step is recorded as failed with the given output
 *   (null by default) and its dependents run.
 * - `{ route: stepId }`: the named handler step runs (it runs only when routed to);
 *   the failed step's other dependents are skipped.
 */
export type OnErrorDoc = 'fail' | 'continue' | { continue: Expression } | { route: string };

export interface StepCommonDoc {
  id: string;
  description?: string;
  needs?: string[];
  when?: Expression;
  input?: Expression;
  output_schema?: JsonSchema;
  guard?: Expression;
  retry?: RetryPolicyDoc;
  timeout?: Duration;
  on_error?: OnErrorDoc;
  /** Risk level, read by governance policies (e.g. high-risk steps need an approval step downstream). */
  risk?: 'low' | 'medium' | 'high';
}

export interface FunctionStepDoc extends StepCommonDoc {
  kind: 'function';
  /** Name of a registered TypeScript function. */
  function: string;
}

export interface TransformStepDoc extends StepCommonDoc {
  kind: 'transform';
  /** The output: a JSONata expression over the run context. */
  expression: Expression;
}

export interface HttpStepDoc extends StepCommonDoc {
  kind: 'http';
  /** URL template: `{{ expr }}` parts are JSONata, URL-encoded. */
  url: string;
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
  headers?: Record<string, string>;
  query?: Record<string, string>;
  /** `json` (default) parses the body and fails on non-JSON; `text` keeps it as a string. */
  response?: 'json' | 'text';
}

export interface MapStepDoc extends StepCommonDoc {
  kind: 'map';
  /** Expression giving the array to iterate. */
  over: Expression;
  /** At most this many items run at once. Default 10. */
  concurrency?: number;
  /** The sub-step run for every item; it sees `item` and `index`. */
  step: SubStepDoc;
}

export interface WaitStepDoc extends StepCommonDoc {
  kind: 'wait';
  /** Sleep this long (durable: survives restarts). */
  duration?: Duration;
  /** Expression giving an ISO time or epoch milliseconds to wake at. */
  until?: Expression;
  /** Wait for an external event of this name... */
  event?: string;
  /** ...whose correlation key equals this expression's value. */
  key?: Expression;
  /**
   * With `event`: an event for this key that arrived up to this long before the wait armed
   * (nobody was waiting, so it was buffered) is taken at once. Default: none is.
   */
  lookback?: Duration;
}

export interface EmitStepDoc extends StepCommonDoc {
  kind: 'emit';
  /** The CloudEvent `type`. */
  type: string;
  /** The CloudEvent `source`. Default `baton://<workflow>`. */
  source?: string;
  /** Expression giving the `subject` (the correlation key waits match on). */
  subject?: Expression;
  /** Expression giving the event's `data`. Default: the step input. */
  data?: Expression;
  /** Also POST the event to this URL (before the step commits; retried like an http step). */
  sink?: string;
  /** CloudEvents HTTP mode for `sink`. Default structured. */
  sink_mode?: 'structured' | 'binary';
}

export interface TaskStepDoc extends StepCommonDoc {
  kind: 'task';
  /** What workers poll for (`POST /tasks/poll` with `types: [...]`). The task's input is the step's `input` (default: the run input). */
  task_type: string;
  /** How long a worker holds the task without a heartbeat or result before another may take it. Default 30s. */
  lease?: Duration;
}

/** What happens when an approval's deadline passes with no decision. */
export type ApprovalExpiryDoc =
  | 'reject'
  | 'approve'
  | 'fail'
  | { escalate: { roles?: string[]; users?: string[]; deadline?: Duration; on_expiry?: 'reject' | 'approve' | 'fail' } };

export interface ApprovalStepDoc extends StepCommonDoc {
  kind: 'approval';
  /** Who may decide: API key roles and/or key names (at least one). */
  approvers: { roles?: string[]; users?: string[] };
  /** Expression selecting what the approver sees; default the step input (or the run input). */
  evidence?: Expression;
  /** A short text shown with the evidence; `{{ expr }}` parts are expressions. */
  summary?: string;
  /** JSON Schema of the answer's fields; `decision` (approve | reject) and `reason` are always added. */
  form?: JsonSchema;
  /** How long the approvers have. Default: no deadline. */
  deadline?: Duration;
  /** At the deadline: reject, approve, fail (BATON_APPROVAL_EXPIRED) or escalate. Default fail. */
  on_expiry?: ApprovalExpiryDoc;
  /** Reminders: durations before the deadline, or `{ every: duration }`. */
  reminders?: Duration[] | { every: Duration };
  /** A reject decision fails the step (BATON_APPROVAL_REJECTED) instead of giving it as output. */
  reject_fails?: boolean;
  /** URL POSTed to (JSON) when the approval is created, reminded or escalated. */
  notify?: string;
}

export interface WorkflowStepDoc extends StepCommonDoc {
  kind: 'workflow';
  /** A registered workflow name (latest version), `name@versionHash`, or a file path relative to this document. */
  workflow: string;
}

export interface ModelStepDoc extends StepCommonDoc {
  kind: 'model';
  /** The service asked first (a name from the services registry). */
  service: string;
  /** Services asked in order when the previous one fails or answers a degraded output. */
  fallback?: string[];
  /** `cascade`: cheapest service first, escalating only on failure or a failed guard. */
  strategy?: 'fallback' | 'cascade';
  operation?: 'chat' | 'embed' | 'classify' | 'sentiment' | 'entities' | 'retrieve' | 'ocr' | 'anomaly' | 'infer';
  /** Templates: `{{ expr }}` parts are expressions. */
  system?: string;
  prompt?: string;
  /** Expression giving [{ role, content }], instead of `prompt`. */
  messages?: Expression;
  max_tokens?: number;
  temperature?: number;
  stream?: boolean;
  stream_idle?: Duration;
  repair_attempts?: number;
  cache?: boolean | { ttl?: Duration };
}

export type StepDoc = FunctionStepDoc | TransformStepDoc | HttpStepDoc | MapStepDoc | WaitStepDoc | TaskStepDoc | WorkflowStepDoc | ModelStepDoc | EmitStepDoc | ApprovalStepDoc;

/** A map's sub-step: a step without `id` and `needs` (they belong to the map). */
export type SubStepDoc = DistributiveOmit<Exclude<StepDoc, MapStepDoc>, 'id' | 'needs'>;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

import type { TriggerDoc } from './triggers.js';

export interface SensitiveFieldDoc {
  path: string;
  mode?: 'mask' | 'hash';
}

export interface RetentionDoc {
  /** Ended runs older than this many days are removed. */
  days: number;
  /** `purge` (default): deleted; `archive`: their audit export is written to the archive folder first. */
  mode?: 'purge' | 'archive';
}

export interface WorkflowDocument {
  /** The workflow's name: letters, digits, `-`, `_`, `.`. */
  name: string;
  description?: string;
  /** JSON Schema the run input must meet. */
  input?: JsonSchema;
  /** Expression for the run's output. Default: the outputs of the final (sink) steps by id. */
  output?: Expression;
  /** Constants available to expressions as `vars`. */
  vars?: Record<string, unknown>;
  /** Cost limit per run (USD) for model calls; a run option can override it. */
  budget?: { max_cost: number };
  /** At most `limit` (default 1) runs with the same key active at once, cluster-wide; the others queue. */
  concurrency?: { key: Expression; limit?: number };
  /** Default priority of its runs within their namespace (higher first). */
  priority?: number;
  /** Labels read by governance policies (e.g. `pii`: only services with `data_residency: eu`). */
  tags?: string[];
  /**
   * Fields holding personal data or secrets: `input.customer.ssn`, `steps.kyc.output.document_number`,
   * `output.token`. `mask` (default) stores them encrypted (AES-256-GCM, key BATON_ENCRYPTION_KEY)
   * and shows `***` to readers without access; `hash` stores only their sha256 (irreversible).
   */
  sensitive?: Array<string | SensitiveFieldDoc>;
  /** How long its ended runs are kept (`baton audit purge`); the store-wide default otherwise. */
  retention?: RetentionDoc;
  /** What starts runs besides an explicit start: schedules, webhooks, CloudEvents (see triggers.ts). */
  triggers?: TriggerDoc[];
  /** Defaults applied to every step that does not set its own. */
  defaults?: { retry?: RetryPolicyDoc; timeout?: Duration };
  limits?: {
    /** Time limit for one expression evaluation. Default 1000 ms. */
    expression_timeout?: Duration;
    /** Outputs larger than this many bytes go to the blob store. Default 256 KiB. */
    inline_output_bytes?: number;
  };
  steps: StepDoc[];
}

export type StepKindName = StepDoc['kind'];
