/**
 * The one storage contract. SQLite (`sqlite/`) implements it now, PostgreSQL (`postgres/`)
 * with the same file names later; SQL lives nowhere else.
 *
 * The store knows nothing of workflow documents: it keeps runs, step instances, events and
 * workflow versions, and applies the transitions the engine tells it in one transaction
 * (`commit`). Join counting happens inside that transaction, so two workers finishing the
 * two inputs of a join at once still schedule it exactly once.
 */
import type { RunStatus, StepStatus } from '../engine/states.js';
import type { SerializedError } from '../errors.js';
import type { AnchorRecord, AuditEventRow, PurgedRunRecord } from './audit-chain.js';

export interface VersionRecord {
  versionId: string;
  name: string;
  /** sha256 of the canonical document, hex. */
  hash: string;
  /** 1, 2, 3... in registration order per name. */
  seq: number;
  /** Canonical JSON of the document (child workflow references resolved to version ids). */
  document: string;
  /** Where it was loaded from, if a file. */
  source?: string;
  createdAt: number;
}

export interface RunRecord {
  id: string;
  versionId: string;
  workflow: string;
  status: RunStatus;
  /** Parsed stored JSON; may be a blob reference (see blobs.ts). */
  input: unknown;
  output?: unknown;
  error?: SerializedError;
  parentRunId?: string;
  parentStepKey?: string;
  createdAt: number;
  updatedAt: number;
  finishedAt?: number;
  /** USD the run may spend on model calls. */
  budget?: number;
  /** USD spent on model calls so far. */
  cost: number;
  /** Fairness group: claims take turns between namespaces, so one cannot starve another. */
  namespace: string;
  /** Within a namespace, higher first. */
  priority: number;
  /** At most `limit` runs with this key are active at once (cluster-wide); the rest wait `queued`. */
  concurrencyKey?: string;
  /** How many times it was retried (`retryRun`): what a worker remembers of an earlier life is stale. */
  retries: number;
  /** Set on a replay run (see engine/replay.ts): the run it replays. Replays call nothing and cost nothing. */
  replayOf?: string;
  /** Trace context of the run span, when tracing was on at admission (see observability/telemetry.ts). */
  trace?: string;
  /** Hash of the `service_configs` snapshot the run is pinned to (undefined: it calls no model services). */
  configHash?: string;
  /** Started by an event that emit steps passed on this many times (its `batonhops`): what its own emits add to. */
  eventHops?: number;
}

export interface StepRecord {
  runId: string;
  /** `classify`, or `summarise[3]` for item 3 of map step `summarise`. */
  key: string;
  stepId: string;
  /** Map item index; undefined for top-level steps. */
  index?: number;
  parentKey?: string;
  status: StepStatus;
  attempt: number;
  /** Epoch ms when a scheduled step becomes due. */
  dueAt: number;
  owner?: string;
  /** Dependencies not yet finished. */
  pendingDeps: number;
  /** Dependencies that finished without being skipped. */
  liveDeps: number;
  output?: unknown;
  error?: SerializedError;
  /** Kind-specific resume state (timers, delivered signals, child run ids). */
  state?: unknown;
  waitKey?: string;
  startedAt?: number;
  finishedAt?: number;
}

export interface NewStep {
  key: string;
  stepId: string;
  index?: number;
  parentKey?: string;
  status: 'pending' | 'scheduled';
  pendingDeps: number;
  dueAt?: number;
  owner?: string;
  /** Initial resume state (a map item's `item`). */
  state?: unknown;
}

export interface NewEvent {
  type: string;
  stepKey?: string;
  at: number;
  data?: unknown;
  /** `data` already serialised (the hot path builds it around an output's stored JSON). */
  dataJson?: string;
}

export interface EventRecord extends NewEvent {
  /** Position in the run's history: 1, 2, 3... */
  id: number;
  runId: string;
}

export interface NewRun {
  id: string;
  versionId: string;
  workflow: string;
  /** Serialised input (JSON text or a blob reference). */
  inputJson: string;
  parentRunId?: string;
  parentStepKey?: string;
  createdAt: number;
  budget?: number;
  /** Default `default`. */
  namespace?: string;
  /** Default 0; higher is claimed first within the namespace. */
  priority?: number;
  /** Admitted `queued` (root steps unclaimed) while `limit` runs with the same key are active. */
  concurrency?: { key: string; limit: number };
  /** A replay of this run (see engine/replay.ts). */
  replayOf?: string;
  /** Trace context of the run span (see observability/telemetry.ts). */
  trace?: string;
  /** The pinned AI configuration (`putServiceConfig` first). */
  configHash?: string;
  /** See RunRecord.eventHops. */
  eventHops?: number;
  steps: NewStep[];
  events: NewEvent[];
}

/** Identifies the claim a worker holds; a commit whose fence no longer holds changes nothing. */
export interface Fence {
  runId: string;
  key: string;
  owner: string;
  attempt: number;
}

/** What a finished step attempt changes, applied atomically by `commit`. */
export interface StepCommit {
  fence: Fence;
  update: {
    status: StepStatus;
    /** Already-serialised output (JSON text, possibly a blob reference). */
    outputJson?: string;
    error?: SerializedError;
    attempt?: number;
    dueAt?: number;
    /** For a re-scheduled step: keep the claim (short retry) or give it back (`null`). */
    owner?: string | null;
    state?: unknown;
    waitKey?: string | null;
    pendingDeps?: number;
    startedAt?: number;
    finishedAt?: number;
  };
  events: NewEvent[];
  /** Dependents to count down; `live` = this step produced an output (was not skipped). */
  decrement?: Array<{ key: string; live: boolean }>;
  /** Steps to schedule now regardless of counts (error routes). */
  schedule?: string[];
  /** New step instances (map items). */
  insert?: NewStep[];
  /** Schedule the lowest-index pending child of this parent (map concurrency window). */
  startNextChildOf?: string;
  /** Cancel the still-pending children of this parent (a map whose item failed). */
  cancelChildrenOf?: string;
  /** Wake a waiting step of the same run with a new resume state (a map told of a failed item). */
  wake?: { key: string; state: unknown; events: NewEvent[] };
  /** A child run admitted in the same transaction. */
  childRun?: NewRun;
  /** If, after this commit, the run has no active step, record this end in the same transaction. */
  finishIfIdle?: FinishRun;
  /**
   * With `update.status: 'waiting'` on an event key: in the same transaction, consume the oldest
   * buffered event for that key that arrived at or after `since` (the step's lookback window).
   * If there is one, the step is not parked: it is scheduled again, claimed for the committing
   * worker, with `resume(payload, at)` as its state (CommitResult.consumed).
   */
  inbox?: {
    since: number;
    /** The run's namespace: buffered events of another namespace are not taken (see EventDelivery.namespace). */
    namespace: string;
    resume: (payload: unknown, at: number) => { state: unknown; events: NewEvent[] };
  };
  /** CloudEvents this step publishes (emit): recorded with the commit, dispatched after it. */
  outbox?: OutboxEntry[];
  /** Ends the run; every non-terminal step is cancelled. */
  finishRun?: { status: 'failed'; error?: SerializedError; events: NewEvent[]; parent?: FinishRun['parent'] };
  /**
   * An external task created with the step's suspension (a `task` step): inserted in the same
   * transaction, only if the fence holds, so a crash can neither lose nor duplicate it. Its run,
   * step key and step attempt are the fence's. Idempotent on `id`.
   */
  task?: NewTask;
  /** A human approval created with the step's suspension (an `approval` step), like `task`. Idempotent on `id`. */
  approval?: NewApproval;
}

/** Who may decide an approval: API key roles or named keys (users). */
export interface ApproverRule {
  roles: string[];
  users: string[];
}

export interface NewApproval {
  /** Derived from run, step key and attempt (see steps/approval.ts). */
  id: string;
  namespace: string;
  workflow: string;
  approvers: ApproverRule;
  /** Canonical JSON of what the approver sees. */
  evidenceJson: string;
  /** sha256 (hex) of `evidenceJson`: recorded with the decision as what was seen. */
  evidenceHash: string;
  summary?: string;
  /** The answer's JSON Schema (decision and reason already added). */
  formJson: string;
  deadlineAt?: number;
  /** What happens at the deadline (see ApprovalExpiry in steps/approval.ts), JSON. */
  onExpiryJson?: string;
  /** Reminder plan (`{ before: ms[] }` or `{ every: ms }`), JSON. */
  remindersJson?: string;
  nextReminderAt?: number;
  /** URL POSTed to on reminders and escalations. */
  notify?: string;
  createdAt: number;
}

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'escalated';

/** A human checkpoint of an `approval` step. */
export interface ApprovalRecord {
  id: string;
  runId: string;
  stepKey: string;
  /** The step attempt that created it. */
  attempt: number;
  namespace: string;
  workflow: string;
  status: ApprovalStatus;
  approvers: ApproverRule;
  evidence: unknown;
  evidenceHash: string;
  summary?: string;
  form: Record<string, unknown>;
  deadlineAt?: number;
  onExpiry?: unknown;
  reminders?: unknown;
  nextReminderAt?: number;
  notify?: string;
  decidedBy?: string;
  decidedAt?: number;
  answer?: Record<string, unknown>;
  /** Bumped by every change: the fence of `updateApproval`. */
  version: number;
  createdAt: number;
  updatedAt: number;
  /** False when its step no longer waits for it (run cancelled): it cannot be decided. */
  awaited: boolean;
}

export interface ApprovalFilter {
  /** Stored statuses to include (undefined: all). */
  status?: ApprovalStatus[];
  /** Only approvals of runs in these namespaces; undefined: all. */
  namespaces?: string[];
  runId?: string;
  limit?: number;
}

/**
 * One change of an approval (a decision, an expiry, an escalation, a reminder), applied by
 * `updateApproval` in one transaction only if the row is still at `version`, still open
 * (pending or escalated) and its step still waits for it; with `decision`, also only before
 * its deadline. Whatever refuses it, nothing is written.
 */
export interface ApprovalChange {
  id: string;
  version: number;
  now: number;
  /** A person's decision: refused at or after the deadline. */
  decision?: boolean;
  status?: ApprovalStatus;
  decidedBy?: string;
  answerJson?: string;
  approvers?: ApproverRule;
  deadlineAt?: number | null;
  onExpiryJson?: string | null;
  nextReminderAt?: number | null;
  /** Wakes the step with this resume state (a decision, an expiry that ends the wait). */
  wake?: { state: unknown; events: NewEvent[] };
  /** Recorded in the run's history (approval.decided, .expired, .escalated, .reminder). */
  events: NewEvent[];
}

/**
 * `ok`; `missing`; `stale` (changed since it was read: decided, expired, escalated, reminded —
 * read it again); `late` (a decision at or after the deadline); `gone` (its step no longer waits).
 */
export type ApprovalOpResult = { result: 'ok'; approval: ApprovalRecord } | { result: 'missing' } | { result: 'stale' | 'late' | 'gone'; approval: ApprovalRecord };

export interface NewTask {
  /** Derived from run, step key and attempt (see steps/task.ts), so a retried commit names the same task. */
  id: string;
  type: string;
  namespace: string;
  /** Serialised input (JSON text). */
  inputJson: string;
  /** Lease given to a poller that asks for none. */
  leaseMs: number;
  /** Most hand-outs (the step's retry.max_attempts): a lease that expires at the last one is not handed out again. */
  maxAttempts?: number;
  createdAt: number;
}

export type TaskStatus = 'pending' | 'leased' | 'completed' | 'failed';

/** A task handed to external workers (`POST /tasks/poll`). */
export interface TaskRecord {
  id: string;
  runId: string;
  stepKey: string;
  /** The step attempt that created it. */
  attempt: number;
  type: string;
  namespace: string;
  input: unknown;
  status: TaskStatus;
  /** Worker id given by the poller holding (or last holding) the lease. */
  leaseOwner?: string;
  /** Random per claim: fences heartbeats and results, so a worker whose lease was re-given cannot finish it. */
  leaseToken?: string;
  leaseExpiresAt?: number;
  leaseMs: number;
  /** How many times it was handed out (polls that claimed it). */
  attempts: number;
  /** Most hand-outs (the step's retry.max_attempts); undefined for a task an older Baton wrote after the store's migration filled those it found. */
  maxAttempts?: number;
  /** A pending task is not handed out before this time (backoff after a retryable failure). */
  availableAt: number;
  output?: unknown;
  /** The last error a worker reported. */
  error?: SerializedError;
  createdAt: number;
  updatedAt: number;
  /** False when its step no longer waits for it (timed out, run cancelled): it cannot be polled or finished. */
  awaited: boolean;
}

export interface TaskPoll {
  types: string[];
  workerId: string;
  /** Lease length; default the task's own (the step's `lease`). */
  leaseMs?: number;
  /** Only tasks of runs in these namespaces; undefined: all. */
  namespaces?: string[];
  /** The new lease's token. */
  token: string;
  now: number;
}

/** Identifies a worker's lease on a task; operations whose lease no longer holds change nothing. */
export interface TaskLease {
  taskId: string;
  workerId: string;
  token: string;
}

/**
 * The outcome of a fenced task operation: `ok`, `missing` (no such task), `lost` (not leased to
 * this worker under this token any more) or `gone` (its step no longer waits for it).
 */
export type TaskOpResult = { result: 'ok'; task: TaskRecord } | { result: 'missing' } | { result: 'lost' | 'gone'; task: TaskRecord };

/** How a task ends or goes back, applied by `completeTask` / `failTask` in one transaction. */
export interface TaskFinish {
  lease: TaskLease;
  now: number;
  /** completeTask: the output (JSON text). */
  outputJson?: string;
  /** failTask: the worker's error. */
  error?: SerializedError;
  /** failTask: back to pending, handed out again from this time (the step's retry policy allows it). */
  retryAt?: number;
  /** Wakes the step (completion, or a failure that is final) with this resume state. */
  wake?: { state: unknown; events: NewEvent[] };
  /** Events recorded on the run whatever happens (task.completed, task.failed). */
  events: NewEvent[];
  /** Only if the lease expired by this time (a sweep ending a lease nobody renewed, not one a late heartbeat just renewed). */
  leaseExpiredBy?: number;
}

export interface CommitResult {
  /** False when the fence did not hold (claimed elsewhere, cancelled): nothing was written. */
  ok: boolean;
  /** Keys scheduled by this commit and claimed for the committing worker. */
  ready: string[];
  /** Attempt numbers of ready steps that do not start at 1 (steps a retry put back keep counting). */
  attempts?: Record<string, number>;
  /** The run has no active step left and should be finalised. */
  runIdle: boolean;
  /** `finishIfIdle` was applied: the run's end is recorded. */
  runFinished?: boolean;
  /** `inbox` found a buffered event: the step is scheduled again (its key is in `ready`). */
  consumed?: boolean;
}

/** A CloudEvent recorded by a step's commit, to be dispatched (started triggers, woken waits). */
export interface OutboxEntry {
  /** The event's id (unique: `<run id>/<step key>`); recording it twice keeps one. */
  id: string;
  runId: string;
  /** The emitting run's namespace (an emit reaches it and the default one). */
  namespace: string;
  eventJson: string;
}

export interface OutboxRecord {
  id: string;
  runId: string;
  namespace: string;
  event: unknown;
  createdAt: number;
}

/** An event for a correlation key (`event:<name>:<key>`), delivered by `deliverEvent`. */
export interface EventDelivery {
  waitKey: string;
  /**
   * Only steps of runs in this namespace are woken, and if none waits, only a wait of this
   * namespace takes the buffered event (an `emit`'s event stays in its run's namespace). Absent:
   * every namespace (events from a caller that reaches them all).
   */
  namespace?: string;
  /**
   * Dedupe: a second delivery with the same id for the same key, sent to the same namespace
   * (or, absent, to every namespace), changes nothing. Ids of different namespaces never meet.
   */
  eventId?: string;
  payload: unknown;
  at: number;
  /** A buffered event is dropped (lazily) after this time. */
  expiresAt: number;
  /** The woken step's new resume state. */
  state: (step: StepRecord) => unknown;
  events: NewEvent[];
}

export interface DeliveryResult {
  /** The one step woken (the longest waiting), if any. */
  woken?: { runId: string; key: string };
  /** Nobody was waiting: kept in the inbox for a future wait with a lookback. */
  buffered: boolean;
  /** Already delivered or buffered under the same event id: nothing changed. */
  duplicate: boolean;
}

export interface ClaimedStep {
  runId: string;
  key: string;
  attempt: number;
  /** The step's resume state as claimed (saves the executor reading the row again). */
  state?: unknown;
  /** Its run's `retries` at the claim. */
  retries: number;
}

export interface RunFilter {
  status?: RunStatus[];
  workflow?: string;
  limit?: number;
  /** Runs created before this time (pagination), newest first. */
  before?: number;
  /**
   * With `before`, the last run of the previous page: runs created in that same millisecond
   * come after it in the order (created_at, then id, descending) and are not skipped.
   */
  beforeId?: string;
  /** Only runs in these namespaces (an API key's reach). */
  namespaces?: string[];
  /** Only runs that ended before this time (retention). */
  finishedBefore?: number;
}

/**
 * A run taken back to work after it failed or was cancelled (`retryRun`). The engine plans it
 * (which steps go back, with what counts); the store applies it in one transaction, only if the
 * run is still as the plan saw it.
 */
export interface RetryRun {
  runId: string;
  /** The run must still be in one of these states... */
  from: RunStatus[];
  /** ...and have ended at this time (a run retried and ended again since is another plan). */
  finishedAt: number | undefined;
  /** Steps put back: everything recorded about their earlier attempt (output, error, state, times) is cleared. */
  reset: StepReset[];
  /** Map steps re-run whole: their item rows are deleted (the map fans out again). */
  deleteChildrenOf: string[];
  events: NewEvent[];
  at: number;
}

export interface StepReset {
  key: string;
  /** `scheduled` (ready now, unowned), `pending` (waits for `pendingDeps`), `waiting` (a map waiting for re-run items). */
  status: 'pending' | 'scheduled' | 'waiting';
  /** The attempt it runs as next: attempt numbers keep counting across retries. */
  attempt: number;
  pendingDeps: number;
  liveDeps: number;
  /** New resume state (a map item keeps its `item`; a partly re-run map its item count); null clears it. */
  state: unknown;
}

/** An API key of the gateway. The secret is never stored: only its sha256. */
export interface ApiKeyRecord {
  id: string;
  /** sha256 (hex) of the secret part. */
  hash: string;
  name: string;
  role: 'admin' | 'operator' | 'approver' | 'viewer';
  /** Namespaces it reaches; `*` for all. */
  namespaces: string[];
  /** Requests per minute it may make. */
  ratePerMinute: number;
  createdAt: number;
  revokedAt?: number;
}

export interface FinishRun {
  runId: string;
  status: 'completed' | 'failed';
  outputJson?: string;
  error?: SerializedError;
  events: NewEvent[];
  /** Wake the parent step waiting for this child. */
  parent?: { runId: string; key: string; state: unknown; events: NewEvent[] };
}

/** One model call, as the service runtime records it (an event plus a `model_calls` row). */
export interface ModelCallRecord {
  runId: string;
  workflow: string;
  stepKey: string;
  /** The step attempt this call belongs to. */
  attempt: number;
  service: string;
  provider: string;
  model: string;
  version?: string;
  operation: string;
  outcome: 'ok' | 'error' | 'degraded' | 'cache_hit' | 'skipped' | 'cancelled';
  error?: SerializedError;
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  /** USD. */
  cost: number;
  latencyMs: number;
  at: number;
  /** Started as a hedge while an earlier service was still answering. */
  hedge?: boolean;
  stream?: boolean;
  finishReason?: string;
  /** The model the vendor says answered. */
  servedBy?: string;
}

export interface CostQuery {
  by: 'service' | 'workflow' | 'run' | 'model';
  since?: number;
  runId?: string;
  workflow?: string;
  service?: string;
}

export interface CostLine {
  /** The service, workflow, run id or `provider/model@version`. */
  key: string;
  calls: number;
  /** Calls that failed, were degraded or skipped by an open breaker. */
  failed: number;
  cacheHits: number;
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  cost: number;
  avgLatencyMs: number;
}

/**
 * One cron schedule: a `schedule` trigger of the latest registered version of a workflow.
 * Registration keeps the rows in step with the document; schedulers claim due rows under a
 * lease, so with several processes on one store each fire is started once.
 */
export interface ScheduleRecord {
  /** `<name>~<trigger id>`, or `<namespace>~<name>~<trigger id>`: `nightly~schedule:0`. */
  id: string;
  /** Qualified workflow name (`team-a/nightly`). */
  workflow: string;
  namespace: string;
  /** The trigger's id in the document: `schedule:0`. */
  triggerId: string;
  /** The version whose trigger this is (the latest registered). */
  versionId: string;
  cron: string;
  timezone: string;
  missed: 'skip' | 'once' | 'all';
  maxCatchUp: number;
  /** Epoch ms of the next fire; undefined when the expression never fires again. */
  nextFireAt?: number;
  lastFiredAt?: number;
  lastRunId?: string;
  paused: boolean;
  /** Why the last fire failed to start a run (cleared by the next fire that starts one). */
  lastError?: SerializedError;
  leaseOwner?: string;
  leaseUntil?: number;
  createdAt: number;
  updatedAt: number;
}

export type NewSchedule = Pick<ScheduleRecord, 'id' | 'workflow' | 'namespace' | 'triggerId' | 'versionId' | 'cron' | 'timezone' | 'missed' | 'maxCatchUp' | 'nextFireAt'>;

export interface SchedulePatch {
  nextFireAt?: number | null;
  lastFiredAt?: number;
  lastRunId?: string;
  lastError?: SerializedError | null;
  paused?: boolean;
  /** With an owner fence: keep the lease until then (a retry later) instead of giving it back. */
  holdUntil?: number;
}

export interface WorkerInfo {
  id: string;
  pid: number;
  host: string;
  startedAt: number;
}

/** A promotion of a workflow version to a stage (`draft`, `staging`, `production`). */
export interface StageRecord {
  seq: number;
  /** Qualified workflow name (`ns/name` outside the default namespace). */
  name: string;
  stage: string;
  versionId: string;
  by?: string;
  reason?: string;
  at: number;
}

/** A governance status change of a model service; the latest per service overrides the config file. */
export interface ServiceStatusRecord {
  seq: number;
  service: string;
  status: 'approved' | 'deprecated' | 'blocked';
  reason?: string;
  by?: string;
  at: number;
}

/** One run that called a service (lineage, e.g. for a model recall). */
export interface LineageRecord {
  runId: string;
  workflow: string;
  versionId: string;
  status: RunStatus;
  namespace: string;
  createdAt: number;
  /** Calls the run made to the service (matching the version, when asked). */
  calls: number;
  /** Service versions it called (as recorded per call). */
  versions: string[];
  models: string[];
  firstCallAt: number;
  lastCallAt: number;
}

export interface LineageQuery {
  service: string;
  version?: string;
  /** Calls at or after (epoch ms). */
  since?: number;
  /** Default 1000. */
  limit?: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Where the store lives, for messages. */
  readonly location: string;

  // --- workflow versions (immutable) ---
  /**
   * Inserts the version unless it exists; throws BATON_VERSION_CONFLICT if the id exists with
   * another hash. With `check`, a new version is inserted only if `check` passes (returns) on
   * the latest version of every workflow, read in the insert's own transaction: the inserts
   * of all calls with a check are serialised (every process of the store), so two cannot both
   * pass on a state that neither includes the other (the registry's webhook-path check).
   */
  putVersion(v: Omit<VersionRecord, 'seq' | 'createdAt'>, check?: (latest: VersionRecord[]) => void): Promise<VersionRecord>;
  getVersion(versionId: string): Promise<VersionRecord | undefined>;
  latestVersion(name: string): Promise<VersionRecord | undefined>;
  /** The latest version of every workflow (what listens for triggers), by name. */
  latestVersions(): Promise<VersionRecord[]>;
  listVersions(name?: string): Promise<VersionRecord[]>;

  // --- runs ---
  /**
   * Admits a run with its first steps and events in one transaction. Idempotent on run id.
   * `queued`: held back by its concurrency key; its root steps were left unclaimed and the run
   * starts when an earlier run with the key ends (any process's `finishRun`/`commit`/`cancelRun`
   * promotes the oldest queued run in the same transaction).
   */
  admitRun(run: NewRun): Promise<{ created: boolean; queued?: boolean }>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  listRuns(filter?: RunFilter): Promise<RunRecord[]>;
  getSteps(runId: string): Promise<StepRecord[]>;
  getStep(runId: string, key: string): Promise<StepRecord | undefined>;
  /** Outputs of succeeded/failed-with-value steps, keyed by step key (blob refs unresolved). */
  getOutputs(runId: string, keys?: string[]): Promise<Map<string, unknown>>;
  getEvents(runId: string, afterId?: number): Promise<EventRecord[]>;
  appendEvents(runId: string, events: NewEvent[]): Promise<void>;

  // --- run control ---
  /** Moves a run between states if it is in one of `from`; false if it was not. */
  setRunStatus(runId: string, from: RunStatus[], to: RunStatus, events: NewEvent[]): Promise<boolean>;
  /** Cancels a run and every non-terminal step; true if it was not already finished. */
  cancelRun(runId: string, events: NewEvent[]): Promise<boolean>;
  finishRun(f: FinishRun): Promise<boolean>;
  /**
   * Puts a failed or cancelled run back to work in one transaction: resets the planned steps,
   * deletes the item rows of maps re-run whole, clears the run's end (error, output,
   * finished_at; its spend stays) and appends the events. The run becomes `running`, or
   * `queued` if its concurrency key is at its limit. `ok` false, and nothing changed, when the
   * run is no longer in `from` at `finishedAt`.
   */
  retryRun(r: RetryRun): Promise<{ ok: boolean; status?: 'running' | 'queued' }>;
  /** Running runs with no active step (a crash hit between a last step and finalisation). */
  idleRuns(limit: number): Promise<string[]>;

  // --- workers and claims ---
  registerWorker(w: WorkerInfo, leaseMs: number): Promise<void>;
  heartbeat(workerId: string, leaseMs: number): Promise<void>;
  unregisterWorker(workerId: string): Promise<void>;
  /** Frees the claims of workers whose lease expired or (same host) whose process is gone. */
  releaseDeadWorkers(now: number, isAlive: (w: WorkerInfo) => boolean | undefined): Promise<number>;
  /**
   * Claims up to `limit` due, unowned, scheduled steps of runs that are not paused or queued:
   * namespaces take turns (round robin), and within a namespace higher priority goes first,
   * then the longest due.
   */
  claimSteps(workerId: string, limit: number, now: number): Promise<ClaimedStep[]>;
  /**
   * Calls `onWork` when another process may have made work claimable (PostgreSQL LISTEN/NOTIFY).
   * Stores without push notifications omit it; workers then rely on polling.
   */
  listen?(onWork: () => void): Promise<() => Promise<void>>;
  /** Gives back claimed steps that this worker will not run (paused run, shutdown). */
  releaseClaims(workerId: string, keys?: Array<{ runId: string; key: string }>): Promise<void>;
  /** Earliest due time of unowned scheduled steps. */
  nextDueAt(): Promise<number | undefined>;
  /**
   * The shared queue, for metrics: steps due now that no worker has claimed yet (`ready`) and
   * the earliest due time among them. Steps of paused or finished runs do not count.
   */
  queueStats(now: number): Promise<{ ready: number; oldestDueAt?: number }>;
  /**
   * Pending approvals, for metrics: optional, a store without approvals leaves it out (the
   * gauges then read 0).
   */
  approvalStats?(): Promise<{ pending: number; oldestCreatedAt?: number }>;
  /** Marks a claimed step as running and records its start event (kinds that take time). */
  markStarted(fence: Fence, at: number, events: NewEvent[]): Promise<boolean>;
  /** The one transaction per step attempt. */
  commit(c: StepCommit): Promise<CommitResult>;
  /**
   * Delivers one event: wakes ONE step waiting on its key (the longest waiting) or, if none is,
   * buffers it in the inbox where a wait arming with a lookback consumes it (`StepCommit.inbox`).
   * Serialised per key against arming, so an event is never both missed and left buffered.
   */
  deliverEvent(d: EventDelivery): Promise<DeliveryResult>;
  /** Recorded CloudEvents not yet dispatched, created before `before`, oldest first. */
  pendingOutbox(before: number, limit: number): Promise<OutboxRecord[]>;
  markDispatched(id: string, at: number): Promise<void>;
  /** Wakes steps waiting on `waitKey` (only run `runId`'s, when given); returns the woken (runId, key). */
  signal(waitKey: string, state: (step: StepRecord) => unknown, events: NewEvent[], runId?: string): Promise<Array<{ runId: string; key: string }>>;

  // --- external tasks (`task` steps) ---
  /**
   * Claims the oldest task of one of `types` that is pending (and available) or whose lease
   * expired with hand-outs left (`attempts < maxAttempts`), and whose step still waits for it;
   * leases it to the poller (attempts + 1) and records a `task.leased` event. Atomic: two
   * pollers never get the same lease.
   */
  pollTask(q: TaskPoll): Promise<TaskRecord | undefined>;
  /** Awaited tasks whose lease expired by `now` at their last hand-out (`attempts >= maxAttempts`): their step is to fail. */
  usedUpTasks(now: number, limit: number): Promise<TaskRecord[]>;
  /** Extends the lease by its length from `now` if `lease` still holds. */
  heartbeatTask(lease: TaskLease, now: number): Promise<TaskOpResult>;
  /** Records the output and wakes the step, in one transaction, if the lease holds. */
  completeTask(f: TaskFinish): Promise<TaskOpResult>;
  /** Puts the task back to pending (`retryAt`) or fails it and wakes the step (`wake`), if the lease holds. */
  failTask(f: TaskFinish): Promise<TaskOpResult>;
  getTask(taskId: string): Promise<TaskRecord | undefined>;

  // --- human approvals (`approval` steps) ---
  getApproval(id: string): Promise<ApprovalRecord | undefined>;
  /** Newest first. */
  listApprovals(filter?: ApprovalFilter): Promise<ApprovalRecord[]>;
  /** Open approvals (pending, escalated) still awaited whose deadline or next reminder is at or before `now`. */
  dueApprovals(now: number, limit: number): Promise<ApprovalRecord[]>;
  /** Earliest deadline or reminder of open, awaited approvals. */
  nextApprovalDueAt(): Promise<number | undefined>;
  /** Applies a fenced change (see ApprovalChange). */
  updateApproval(ch: ApprovalChange): Promise<ApprovalOpResult>;

  // --- model calls, cost, budgets, response cache ---
  /**
   * Reserves `amount` USD of the run's budget if spent + reserved + amount fits; otherwise
   * changes nothing and says how things stand. Atomic, so concurrent branches cannot overspend.
   */
  reserveBudget(runId: string, amount: number): Promise<{ ok: boolean; budget?: number; spent: number; reserved: number }>;
  /** Records a call (event + row) and moves `release` of the run's reservation to its real cost. */
  recordModelCall(call: ModelCallRecord, release: number): Promise<void>;
  getModelCalls(runId: string): Promise<ModelCallRecord[]>;
  costReport(q: CostQuery): Promise<CostLine[]>;
  cacheGet(key: string, now: number): Promise<string | undefined>;
  /**
   * Shared rate limit: takes `n` tokens from bucket `name` (refilled at `perMinute`, holding at
   * most a minute's worth) if it has them and returns 0, or returns how many ms to wait.
   */
  takeTokens(name: string, perMinute: number, n: number, now: number): Promise<number>;
  /** Shared concurrency limit: takes one of `limit` slots of `name` for `holder` until `expiresAt` (a crashed holder's slot expires). */
  acquireSlot(name: string, limit: number, holder: string, now: number, expiresAt: number): Promise<boolean>;
  releaseSlot(name: string, holder: string): Promise<void>;

  // --- gateway API keys ---
  putApiKey(k: ApiKeyRecord): Promise<void>;
  findApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** False if there is no such key or it was already revoked. */
  revokeApiKey(id: string, at: number): Promise<boolean>;
  cachePut(key: string, valueJson: string, now: number, expiresAt: number): Promise<void>;

  // --- cron schedules ---
  /**
   * Makes `workflow`'s schedule rows those given, in one transaction, if `versionId` is its
   * latest version (else changes nothing and returns false: an older document re-registered).
   * A row whose cron and time zone are unchanged keeps its next fire, pause and history; a
   * changed one takes the given `nextFireAt`; rows not given are deleted.
   */
  syncSchedules(workflow: string, versionId: string, schedules: NewSchedule[], now: number): Promise<boolean>;
  listSchedules(): Promise<ScheduleRecord[]>;
  getSchedule(id: string): Promise<ScheduleRecord | undefined>;
  /**
   * Leases up to `limit` unpaused rows due at `now` whose lease is free or expired, atomically
   * (two schedulers never hold one row), earliest first.
   */
  claimSchedules(owner: string, now: number, leaseUntil: number, limit: number): Promise<ScheduleRecord[]>;
  /**
   * Applies `patch`. With `owner`, only while that owner holds the lease, which is then given
   * back (or held until `holdUntil`). False if no row (or lease) matched.
   */
  updateSchedule(id: string, patch: SchedulePatch, now: number, owner?: string): Promise<boolean>;
  /** When the scheduler should look next: the earliest unpaused next fire (past a live lease). */
  nextScheduleAt(): Promise<number | undefined>;

  // --- governance (versions, stages, pinned configuration, service status, lineage) ---
  /** Stores a pinned configuration snapshot under its content hash (a second put of the same hash changes nothing). */
  putServiceConfig(hash: string, configJson: string, at: number): Promise<void>;
  getServiceConfig(hash: string): Promise<string | undefined>;
  /** The config hash of the newest run of a version that has one. */
  lastRunConfig(versionId: string): Promise<string | undefined>;
  /** Appends a promotion; the latest per (name, stage) holds the stage. */
  promoteVersion(p: Omit<StageRecord, 'seq'>): Promise<StageRecord>;
  /** The promotion holding `stage` of `name` now. */
  stageVersion(name: string, stage: string): Promise<StageRecord | undefined>;
  /** Every promotion of `name`, oldest first. */
  stageHistory(name: string): Promise<StageRecord[]>;
  /** Appends a service status change. */
  putServiceStatus(r: Omit<ServiceStatusRecord, 'seq'>): Promise<ServiceStatusRecord>;
  /** Status changes, oldest first (of one service, or all). */
  serviceStatusHistory(service?: string): Promise<ServiceStatusRecord[]>;
  /** Runs that called `service` (matching `version`), newest first; calls skipped before reaching it (open breaker, blocked) do not count. */
  lineage(q: LineageQuery): Promise<LineageRecord[]>;
  // --- audit trail (store/audit-chain.ts) ---
  /** A run's events as stored (data as its exact text, with each row's hash), in seq order. */
  auditEvents(runId: string): Promise<AuditEventRow[]>;
  /** The anchor chain, in seq order. */
  auditAnchors(): Promise<AnchorRecord[]>;
  /** Every run id in the store. */
  auditRunIds(): Promise<string[]>;
  /**
   * Deletes ended runs whole (steps, events, model calls, tasks, approvals, outbox rows) in one transaction,
   * keeping their anchors and recording each in `audit_purged`. A run not ended is left alone.
   * Returns the ids purged.
   */
  purgeRuns(runs: Array<{ runId: string; mode: 'purge' | 'archive'; archive?: string }>, at: number): Promise<string[]>;
  listPurged(): Promise<PurgedRunRecord[]>;
  /**
   * Stores that anchor run ends in batches (PostgreSQL: the anchor chain's lock would otherwise
   * serialise every run end cluster-wide) anchor the pending ones; returns how many. Stores that
   * anchor in the ending transaction (SQLite) omit it.
   */
  anchorPending?(limit?: number): Promise<number>;
  /** Whether any stored row still refers to this blob (`sha256:<hex>`); stores that never write blobs omit it. */
  blobReferenced?(ref: string): Promise<boolean>;

  close(): Promise<void>;
}
