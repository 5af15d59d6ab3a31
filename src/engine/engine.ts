/**
 * `Baton`: the embedded engine. Opens a store (SQLite under `.baton/` by default), registers
 * workflow versions and functions, admits runs durably, and runs a worker in this process.
 *
 * @example
 * const baton = await Baton.open({ functions: { greet: (i) => ({ hello: i.name }) } });
 * const v = await baton.registerFile('flow.yaml');
 * const run = await baton.run(v.versionId, { name: 'Ada' });
 * console.log(run.status, run.output);
 * await baton.close();
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BatonError, serializeError, type Problem, type SerializedError } from '../errors.js';
import { BlobStore, decodeValue, encodeValue, isBlobRef } from '../store/blobs.js';
import { purgeExpired, type RetentionPolicy } from '../audit/retention.js';
import { checkKeyFor, scrub, sealInput, sealRunOutput, sealStepOutput, sensitiveSpec, sensitiveValues, unseal } from '../audit/redaction.js';
import { SqliteStore, type SqliteStoreOptions } from '../store/sqlite/sqlite-store.js';
import type { EventRecord, FinishRun, LineageQuery, LineageRecord, NewRun, NewStep, RunFilter, RunRecord, ScheduleRecord, ServiceStatusRecord, StageRecord, StepRecord, Store, VersionRecord } from '../store/store.js';
import type { ExecServices, StepFunction } from '../steps/kind.js';
import { EVENT_RETENTION_MS, eventWaitKey } from '../steps/wait.js';
import { MAX_EVENT_HOPS, eventHops } from '../steps/emit.js';
import { cloudEventMatches, derivedRunId, runIdScope, triggerRun, type CloudEventTrigger, type Listening, type TriggerEvent } from './triggers.js';
import { parseSource, type SourceDocument } from '../spec/parse.js';
import type { CompiledWorkflow } from '../spec/compile.js';
import { childEndState, executeAttempt, withChild, type ExecutorHost, type PreparedFinish, type StepEvent, type Work } from './executor.js';
import { STAGES, WorkflowRegistry } from './registry.js';
import { planRetry } from './retry.js';
import { suggest } from '../util/suggest.js';
import { RunState, parseKey } from './run-state.js';
import { EventType, RunStatus, TERMINAL_RUN_STATES } from './states.js';
import { Worker } from './worker.js';
import { TaskQueue } from './tasks.js';
import { ApprovalDesk } from './approvals.js';
import { PROVIDERS } from '../providers/index.js';
import type { ProviderFactory } from '../providers/provider.js';
import { parseServices, type ServiceConfig } from '../services/config.js';
import { parsePolicies, type Policy } from '../services/policies.js';
import { diffServices, latestStatuses, parseSnapshot, SERVICE_STATUSES, servicesOf, snapshotOf, type PinnedService, type ServiceChange } from '../services/governance.js';
import { diffWorkflows, type WorkflowDiff } from '../spec/diff.js';
import { blockedWhy } from '../steps/model.js';
import { ServiceRuntime } from '../services/runtime.js';
import { StoreLedger } from './ledger.js';
import { crashPoint } from './crash-points.js';
import { checkNamespace, DEFAULT_NAMESPACE, splitQualified, workflowOfVersion } from './namespaces.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';
import { buildReport, ReplaySource, type ReplayReport } from './replay.js';
import type { Telemetry, TelemetryOptions } from '../observability/telemetry.js';
import { parseTraceparent, telemetryWanted } from '../observability/genai.js';
import { BatonMetrics } from '../observability/metrics.js';
import { EgressGuard, primeFetch, type NetworkPolicy } from '../security/egress.js';

export interface BatonOptions {
  /** Folder for the embedded store and blobs. Default `.baton` in the working directory. */
  dir?: string;
  /** A store to use instead of the embedded SQLite one. */
  store?: Store;
  /** Options of the embedded SQLite store (ignored with `store`). */
  sqlite?: SqliteStoreOptions;
  functions?: Record<string, StepFunction>;
  /** Run a worker in this process (default true). Without one, runs wait for another process. */
  worker?: boolean;
  /** Step attempts in flight at once in this process. Default 64. */
  concurrency?: number;
  /** How often an idle worker looks for work started elsewhere or timers due. Default 200 ms. */
  pollIntervalMs?: number;
  /** How long a silent worker keeps its claims. Default 30 s. */
  leaseMs?: number;
  fetch?: typeof fetch;
  /**
   * Egress rules for `http` steps, emit sinks and approval notify URLs (baton.config.yaml
   * `network:`; see src/security/egress.ts). Metadata addresses are always denied; with a
   * `network` section, loopback and private ranges are too unless allowed.
   */
  network?: NetworkPolicy;
  /**
   * Model services: parsed configs, or the `services:` mapping as written in baton.config.yaml.
   * Workflows are validated against them (unknown and blocked services are refused).
   */
  services?: ServiceConfig[] | Record<string, unknown>;
  /**
   * Governance policies, checked whenever a workflow is validated: parsed ones, or the
   * `policies:` list as written in baton.config.yaml (see src/services/policies.ts).
   */
  policies?: readonly Policy[] | unknown[];
  /** Extra providers by name, beside the built-in ones (`openai`, `anthropic`, `oip`, `http`, `onnx`, `local-*`). */
  providers?: Record<string, ProviderFactory>;
  /** Where relative paths in service options start (the config file's folder). Default: the working directory. */
  baseDir?: string;
  /**
   * Keep services' rate and concurrency limits in the store, shared by every worker using it
   * (default: on for PostgreSQL, where workers form a cluster; off for embedded SQLite).
   */
  sharedLimits?: boolean;
  /** Called for internal errors that are not any run's fault (store busy, bugs). Default: stderr. */
  onInternalError?: (e: unknown, where: string) => void;
  /**
   * Fire the cron schedules of registered workflows from this process (every process doing so
   * shares the work: each fire starts once). Default: on when a worker runs here. An object
   * turns it on with options (a clock for tests, sleep cap, misfire grace).
   */
  schedules?: boolean | SchedulerOptions;
  /**
   * OpenTelemetry traces (docs/observability.md): an OTLP endpoint and/or a span processor. Off
   * unless given here or OTEL_EXPORTER_OTLP_ENDPOINT is set; `false` keeps it off whatever the
   * environment says. The SDK is loaded only when on.
   */
  telemetry?: TelemetryOptions | false;
  /** Prometheus metrics (`baton.metrics`, served at `GET /metrics`). Default on. */
  metrics?: boolean;
  /**
   * Apply retention from this process's worker (`baton worker` / `baton serve` do, with
   * baton.config.yaml `retention:`): every `everyMs` (default 1 h), one worker of the cluster at
   * a time purges or archives ended runs past their policy (audit/retention.ts).
   */
  retention?: { policy?: RetentionPolicy; archiveDir?: string; everyMs?: number };
}

/** `baton.schedules`: the cron schedules of registered workflows. */
export interface ScheduleControl {
  /** Every schedule, or those of the given namespaces. */
  list(filter?: { namespaces?: string[] }): Promise<ScheduleRecord[]>;
  /** BATON_SCHEDULE_NOT_FOUND if there is none with this id. */
  get(id: string): Promise<ScheduleRecord>;
  /** Stops firing (until resumed). */
  pause(id: string): Promise<ScheduleRecord>;
  /** Fires again from the next fire after now; fires that fell while paused are not caught up. */
  resume(id: string): Promise<ScheduleRecord>;
  /** Fires once now, outside the cron; returns the run id. */
  trigger(id: string): Promise<string>;
  /** Starts the fires due now in this process (the scheduler does it on its own; for tests and embedding). */
  tick(): Promise<number>;
}

export interface StartOptions {
  /** Run id (idempotent: starting the same id twice starts one run). */
  id?: string;
  /** USD this run may spend on model calls; overrides the workflow's `budget.max_cost`. */
  budget?: number;
  /** Fairness group (a tenant, a team): workers take turns between namespaces. Default `default`. */
  namespace?: string;
  /** Higher runs first within the namespace; overrides the workflow's `priority`. Default 0. */
  priority?: number;
  /** Overrides the workflow's `concurrency.key` for this run. */
  concurrencyKey?: string;
  /** W3C `traceparent` of the caller: with tracing on, the run span becomes a child of that span. */
  traceparent?: string;
  /** @internal Started by an event emit steps passed on this many times (see steps/emit.ts). */
  eventHops?: number;
}

/** `baton.replay` options (see replay.ts). */
export interface ReplayOptions {
  /** Version id, or workflow name for its latest version. Default: the recorded run's own version. */
  version?: string;
  /** Fork: steps not downstream of this one keep their recorded outputs; it and what follows are replayed. */
  from?: string;
  /** Call for real the steps that have no recording for their new input (default: the replay fails instead). */
  live?: boolean;
  /** How long to wait for the replay run (default 5 minutes); it is cancelled after that. */
  timeoutMs?: number;
  /**
   * Stops the replay early (whoever aborts it calls `wakeWaiters()`, as for `wait`): the replay
   * run is cancelled with the signal's reason (a string) and the call fails BATON_REPLAY_INTERRUPTED.
   */
  signal?: AbortSignal;
}

/** The run's concurrency key from the workflow's expression over its input; a run without one is not limited. */
async function concurrencyKeyOf(expr: NonNullable<CompiledWorkflow['concurrencyKey']>, input: unknown): Promise<string | undefined> {
  const v = await expr.evaluate({ input }, 'in concurrency.key');
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object') throw new BatonError('BATON_EXPR_EVAL', { where: 'in concurrency.key', detail: `must give a string or number, got ${Array.isArray(v) ? 'an array' : 'an object'}` });
  return String(v);
}

/** A namespaced workflow runs in its namespace; a shared (default) one in the caller's. */
function runNamespace(versionId: string, asked: string | undefined): string {
  const own = splitQualified(versionId).namespace;
  const ns = checkNamespace(asked ?? (own === DEFAULT_NAMESPACE ? undefined : own));
  if (own !== DEFAULT_NAMESPACE && ns !== own) {
    throw new BatonError('BATON_USAGE', { detail: `workflow ${versionId} belongs to namespace "${own}"; its runs cannot start in namespace "${ns}".` });
  }
  return ns;
}

const EMPTY_CATALOG = { get: () => undefined, names: () => [] };
/** How long run ends gather before a batch-anchoring store anchors them (see anchorSoon). */
const ANCHOR_DELAY_MS = 1000;

export interface EventDeliveryResult {
  /** Steps woken: 0 or 1. */
  delivered: number;
  /** Nobody waited: kept for a wait with a lookback. */
  buffered: boolean;
  /** Delivered before under the same event id: nothing changed. */
  duplicate?: boolean;
}

export interface PublishResult extends EventDeliveryResult {
  /** Runs the event's triggers started (or had started, for a repeat). */
  runs: Array<{ runId: string; workflow: string }>;
  /** Matching workflows that refused the event (input schema, trigger expressions). */
  failed: Array<{ workflow: string; error: SerializedError }>;
}

export interface RunResult extends RunRecord {
  /** Decoded output (blob references followed). */
  output?: unknown;
}

export interface BatonEvents {
  step: [StepEvent];
  run: [{ runId: string; status: RunStatus; at: number; error?: SerializedError }];
}

export class Baton extends EventEmitter<BatonEvents> {
  readonly store: Store;
  readonly blobs: BlobStore;
  readonly registry: WorkflowRegistry;
  readonly workerId: string;
  /** Model services and their shared resilience state (undefined when none are configured). */
  readonly models?: ServiceRuntime;
  /** External workers' side of `task` steps: poll, heartbeat, complete, fail, get. */
  readonly tasks: TaskQueue;
  /** People's side of `approval` steps: list (inbox), get, decide; and the deadline/reminder sweep. */
  readonly approvals: ApprovalDesk;
  /** Tracing (undefined when off). */
  readonly telemetry?: Telemetry;
  /** Prometheus metrics of this engine (undefined with `metrics: false`). */
  readonly metrics?: BatonMetrics;
  private readonly functions = new Map<string, StepFunction>();
  private readonly runs = new Map<string, RunState>();
  private readonly loading = new Map<string, Promise<RunState | undefined>>();
  private readonly waiters = new Map<string, Array<(r?: RunResult) => void>>();
  /** Replay runs this process drives: their recordings (see replay.ts). */
  private readonly replays = new Map<string, ReplaySource>();
  /**
   * The replays in flight here, each with what stops it: close() stops them (their runs are
   * cancelled, saying why) rather than leave runs that no other process can drive.
   */
  private readonly replaying = new Map<AbortController, Promise<unknown>>();
  private readonly worker?: Worker;
  private readonly host: ExecutorHost;
  private readonly onInternalError: (e: unknown, where: string) => void;
  private readonly scheduler: Scheduler;
  private readonly schedulesOn: boolean;
  readonly schedules: ScheduleControl;
  private closed = false;
  /** Governance policies checked at validation. */
  readonly policies: readonly Policy[];
  /** Per version: its services snapshot (null: it calls no configured service). */
  private readonly snapshots = new Map<string, { hash: string; json: string } | null>();
  private readonly storedSnapshots = new Set<string>();
  private readonly pinCache = new Map<string, Record<string, PinnedService>>();
  private governanceAt = 0;
  private governanceLoading?: Promise<void>;

  private constructor(store: Store, blobs: BlobStore, opts: BatonOptions, telemetry?: Telemetry) {
    super();
    this.retention = opts.retention;
    this.store = store;
    this.telemetry = telemetry;
    this.blobs = blobs;
    this.workerId = `w_${process.pid}_${randomBytes(4).toString('hex')}`;
    for (const [name, fn] of Object.entries(opts.functions ?? {})) this.registerFunction(name, fn);
    const serviceConfigs = Array.isArray(opts.services) ? opts.services : parseServices(opts.services);
    if (serviceConfigs.length) {
      const shared = opts.sharedLimits ?? store.kind === 'postgres';
      this.models = new ServiceRuntime(serviceConfigs, { ...PROVIDERS, ...opts.providers }, new StoreLedger(store), resolve(opts.baseDir ?? '.'), shared ? store : undefined, telemetry?.tracer);
    }
    if (opts.metrics !== false) this.metrics = new BatonMetrics({ store, models: this.models });
    const models = this.models;
    const catalog = models && {
      get: (name: string) => models.config(name),
      names: () => models.list().map((c) => c.name),
    };
    this.policies = isParsedPolicies(opts.policies) ? opts.policies : parsePolicies(opts.policies);
    if (models) {
      // Runs keep calling what they were pinned to; status changes made elsewhere are seen within a second.
      models.pins = (hash) => this.pinnedServices(hash);
      models.beforeInvoke = () => this.refreshGovernance();
    }
    this.registry = new WorkflowRegistry(
      store,
      () => ({ functions: new Set(this.functions.keys()), services: catalog ?? EMPTY_CATALOG, policies: this.policies }),
      // Every registration keeps the schedule rows in step, whether or not this process fires them.
      (rec, wf) => this.scheduler.sync(rec, wf),
      (e, versionId) => this.onInternalError(e, `version ${versionId} does not compile here: its triggers are not listened to`),
    );
    this.onInternalError = opts.onInternalError ?? ((e, where) => process.stderr.write(`baton: internal error (${where}): ${(e as Error)?.stack ?? String(e)}\n`));
    const schedOpts = typeof opts.schedules === 'object' ? opts.schedules : {};
    this.schedulesOn = opts.schedules === undefined ? opts.worker !== false : opts.schedules !== false;
    this.scheduler = new Scheduler({
      store,
      owner: this.workerId,
      getWorkflow: (v) => this.registry.get(v),
      start: (versionId, input, id) => this.start(versionId, input, { id }),
      onError: (e, w) => this.onInternalError(e, w),
    }, schedOpts);
    this.schedules = this.scheduleControl();
    // Every request made for a workflow goes through the egress guard.
    const egressFetch = new EgressGuard(opts.network).wrap(opts.fetch ?? fetch);
    const services: ExecServices = {
      callFunction: (name, input, ctx) => {
        const fn = this.functions.get(name);
        if (!fn) throw new BatonError('BATON_UNKNOWN_FUNCTION', { name }, { retryable: false });
        return Promise.resolve(fn(input, ctx));
      },
      fetch: egressFetch,
      childOutputs: async (runId, parentKey) => {
        const rows = (await this.store.getSteps(runId)).filter((s) => s.parentKey === parentKey).sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
        return rows.map((r) => ({ status: r.status, output: unseal(this.decode(r.output)), error: r.error }));
      },
      resolveWorkflow: (ref) => this.registry.resolve(ref),
      models: this.models,
    };
    this.host = {
      store,
      blobs,
      workerId: this.workerId,
      services,
      newRun: (versionId, input, o) => this.newRun(versionId, input, o),
      emitStep: (e) => this.emit('step', e),
      wantsStepEvents: () => this.listenerCount('step') > 0,
      refresh: (rs) => this.refresh(rs),
      prepareFinish: (rs, last) => this.prepareFinish(rs, last),
      inlineLimit: (wf) => this.inlineLimit(wf),
      afterFinish: (rs, fin) => this.afterFinish(rs, fin, true),
      taskCreated: (type) => this.tasks.created(type),
      approvalCreated: (dueAt) => this.approvals.created(dueAt),
      replay: (runId) => this.replays.get(runId),
      telemetry,
      metrics: this.metrics,
      dispatch: (entries) => this.dispatch(entries.map((e) => ({ id: e.id, runId: e.runId, namespace: e.namespace, event: JSON.parse(e.eventJson) as unknown }))),
      sealOutput: (rs, stepId, output) => (this.isSensitive(rs.workflow) ? sealStepOutput(rs.workflow.doc, stepId, output, this.sensitiveSteps(rs.workflow)) : output),
      recordedInput: (rs, input) => (this.isSensitive(rs.workflow) ? scrub(input, sensitiveValues(rs.workflow.doc, rs.scope, this.sensitiveSteps(rs.workflow))) : input),
    };
    this.tasks = new TaskQueue({ store, registry: this.registry, poke: () => this.worker?.poke(), onError: (e, w) => this.onInternalError(e, w) });
    this.approvals = new ApprovalDesk({ store, poke: () => this.worker?.poke(), fetch: egressFetch, onError: (e, w) => this.onInternalError(e, w) });
    if (opts.worker !== false) {
      this.worker = new Worker(
        {
          store, runWork: (w) => this.runWork(w), finishIdleRuns: () => this.finishIdleRuns(), onError: (e, w) => this.onInternalError(e, w),
          // Emitted events whose process died before dispatching them (a fresh one is being dispatched by its worker).
          sweep: async () => {
            await this.sweepOutbox(Date.now() - 5_000);
            // Run ends since the last sweep join the audit anchor chain (stores that batch it).
            await this.store.anchorPending?.();
            await this.applyRetention();
          },
        },
        this.workerId,
        { concurrency: opts.concurrency ?? 64, pollIntervalMs: opts.pollIntervalMs ?? 200, leaseMs: opts.leaseMs ?? 30_000 },
      );
    }
  }

  /** Opens the store and, unless `worker: false`, starts a worker that resumes every unfinished run. */
  static async open(opts: BatonOptions = {}): Promise<Baton> {
    // The egress guard pins connections through a dispatcher of the class Node's fetch uses.
    if (opts.network !== undefined) opts = { ...opts, network: EgressGuard.parse(opts.network) };
    await primeFetch();
    // A bad policy list is refused before anything is opened.
    if (!isParsedPolicies(opts.policies)) opts = { ...opts, policies: parsePolicies(opts.policies) };
    const dir = resolve(opts.dir ?? '.baton');
    // `baton serve` prints the database file's path, and it is easily given back as the store.
    const notFolder = opts.store ? undefined : fileInTheWay(dir);
    if (notFolder) {
      const hint = basename(dir) === 'baton.db' ? ` Give the folder that holds it: ${dirname(dir)}` : '';
      throw new BatonError('BATON_USAGE', { detail: `the store (--db, or dir in Baton.open) is a folder holding baton.db and blobs/, but ${notFolder}.${hint}` });
    }
    // The OpenTelemetry SDK is loaded only when tracing is on.
    const telemetry = telemetryWanted(opts.telemetry) ? (await import('../observability/telemetry.js')).Telemetry.from(opts.telemetry) : undefined;
    const store = opts.store ?? new SqliteStore(join(dir, 'baton.db'), opts.sqlite);
    const baton = new Baton(store, new BlobStore(join(dir, 'blobs')), opts, telemetry);
    await baton.refreshGovernance(true);
    await baton.worker?.start();
    if (baton.schedulesOn) baton.scheduler.start();
    // Deadlines and reminders, and last task leases that expired, are applied wherever a worker
    // runs (each fires once, fenced in the store).
    if (baton.worker) {
      baton.approvals.start();
      baton.tasks.start();
    }
    return baton;
  }

  // ------------------------------------------------------------------ registration

  /** Makes `fn` callable from `function` steps as `name`. Replacing a name is allowed. */
  registerFunction(name: string, fn: StepFunction): this {
    if (typeof fn !== 'function') throw new BatonError('BATON_USAGE', { detail: `registerFunction("${name}"): expected a function, got ${typeof fn}.` });
    this.functions.set(name, fn);
    return this;
  }

  /**
   * Validates and registers a workflow document (object, or YAML/JSON text). Idempotent per
   * content. With `namespace`, the workflow belongs to that team (see namespaces.ts).
   */
  async register(doc: unknown, file?: string, opts: { namespace?: string } = {}): Promise<VersionRecord & { warnings: Problem[] }> {
    let source: SourceDocument | undefined;
    if (typeof doc === 'string') {
      source = parseSource(doc, file ?? '<input>');
      doc = source.value;
    }
    await this.refreshGovernance();
    return this.registry.register(doc, source, checkNamespace(opts.namespace));
  }

  async registerFile(file: string, opts: { namespace?: string } = {}): Promise<VersionRecord & { warnings: Problem[] }> {
    await this.refreshGovernance();
    return this.registry.registerFile(file, checkNamespace(opts.namespace));
  }

  // ------------------------------------------------------------------ runs

  /**
   * Admits a run durably (it is in the store before this resolves) and starts it.
   * `ref` is a version id, a workflow name (its latest version) or a VersionRecord.
   * Throws BATON_INPUT_INVALID when the input breaks the workflow's input schema.
   */
  async start(ref: string | VersionRecord, input: unknown = {}, opts: StartOptions & { replay?: { of: string; from?: string; live: boolean } } = {}): Promise<string> {
    const versionId = typeof ref === 'string' ? await this.registry.resolve(ref, checkNamespace(opts.namespace)) : ref.versionId;
    const namespace = runNamespace(versionId, opts.namespace);
    const wf = await this.registry.get(versionId);
    if (wf.callsModels) await this.checkNotBlocked(wf);
    if (wf.inputValidator && !wf.inputValidator(input)) {
      const detail = (wf.inputValidator.errors ?? []).slice(0, 8).map((e) => `${e.instancePath || '(input)'} ${e.message}`).join('; ');
      throw new BatonError('BATON_INPUT_INVALID', { detail, errors: wf.inputValidator.errors });
    }
    if (opts.budget !== undefined && !(typeof opts.budget === 'number' && opts.budget > 0 && Number.isFinite(opts.budget))) {
      throw new BatonError('BATON_USAGE', { detail: `budget must be a positive number of USD, got ${JSON.stringify(opts.budget)}.` });
    }
    if (opts.id !== undefined) checkRunId(opts.id);
    const id = opts.id ?? newRunId();
    const run = await this.newRun(versionId, input, { id, budget: opts.budget ?? wf.doc.budget?.max_cost, traceparent: opts.traceparent });
    run.namespace = namespace;
    run.priority = opts.priority ?? wf.doc.priority ?? 0;
    // A replay takes no concurrency slot from real traffic and spends no budget of its own.
    const key = opts.replay ? undefined : opts.concurrencyKey ?? (wf.concurrencyKey ? await concurrencyKeyOf(wf.concurrencyKey, input) : undefined);
    if (opts.replay) {
      run.replayOf = opts.replay.of;
      run.events.push({ type: EventType.runReplay, at: run.createdAt, data: { replay_of: opts.replay.of, from: opts.replay.from ?? null, live: opts.replay.live } });
    }
    if (key !== undefined) run.concurrency = { key: `${run.workflow}:${key}`, limit: wf.doc.concurrency?.limit ?? 1 };
    if (opts.eventHops) run.eventHops = opts.eventHops;
    const { created, queued } = await this.store.admitRun(run);
    if (!created) {
      // The same id was admitted before: starting twice is harmless (the id is an idempotency
      // key, the first start wins), but only as the same workflow in the same namespace. Ids
      // are global: one that another team or workflow took is refused, saying nothing of it.
      const had = await this.store.getRun(id);
      if (had && (had.workflow !== run.workflow || had.namespace !== namespace)) throw new BatonError('BATON_RUN_ID_TAKEN', { runId: id });
      return id;
    }
    crashPoint('after-admit');
    this.metrics?.runStarted(run.workflow);
    const status = queued ? 'queued' : 'running';
    const rs = new RunState({ id, versionId, workflow: run.workflow, status, input, createdAt: run.createdAt, updatedAt: run.createdAt, budget: run.budget, cost: 0, namespace: run.namespace, priority: run.priority, concurrencyKey: run.concurrency?.key, retries: 0, replayOf: run.replayOf, trace: run.trace, configHash: run.configHash, eventHops: run.eventHops }, wf, input);
    this.runs.set(id, rs);
    this.emit('run', { runId: id, status, at: run.createdAt });
    // A queued run's first steps stay unclaimed: whichever worker sees it promoted runs them.
    if (!queued) this.worker?.push(run.steps.filter((s) => s.status === 'scheduled').map((s) => ({ runId: id, key: s.key, attempt: 1, fresh: true, retries: 0 })));
    return id;
  }

  /** Starts a run and waits for it to end. */
  async run(ref: string | VersionRecord, input: unknown = {}, opts: StartOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
    const id = await this.start(ref, input, opts);
    return this.wait(id, opts);
  }

  /**
   * Resolves when the run is completed, failed or cancelled (by any process); at `timeoutMs`, or
   * once `signal` has aborted, with the run as it is then. The signal is looked at when the wait
   * wakes: at once after wakeWaiters(), else within half a second.
   */
  async wait(runId: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<RunResult> {
    const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : Infinity;
    const stopped = () => Date.now() >= deadline || opts.signal?.aborted === true;
    let checked = false;
    // A run another process executes is read again now and then: soon at first (most runs a
    // client waits for are short: an API-only gateway answered them 500 ms late), then less
    // often. One executing here hands its end to the waiters: its re-read is a safety net.
    let elsewhere = 20;
    for (;;) {
      // A run executing here hands its final record to waiters; otherwise read the store.
      // (An engine without a worker keeps a started run's view but executes nothing of it.)
      const here = this.worker !== undefined && this.runs.has(runId);
      if (!here || checked) {
        const r = await this.getRun(runId);
        if (TERMINAL_RUN_STATES.has(r.status) || stopped()) return r;
      }
      const pause = here ? 500 : elsewhere;
      elsewhere = Math.min(500, elsewhere * 2);
      const rec = await new Promise<RunResult | undefined>((res) => {
        const list = this.waiters.get(runId) ?? [];
        const t = setTimeout(() => done(undefined), Math.min(pause, Math.max(1, deadline - Date.now())));
        function done(r?: RunResult) {
          clearTimeout(t);
          res(r);
        }
        // No listener on the signal (a sync start is the gateway's busiest path; one per request
        // costs a few µs): whoever aborts it calls wakeWaiters(), and this loop looks again.
        if (opts.signal?.aborted) return done(undefined);
        list.push(done);
        this.waiters.set(runId, list);
      });
      if (rec) return rec;
      if (stopped()) return this.getRun(runId);
      checked = true;
    }
  }

  async getRun(runId: string): Promise<RunResult> {
    const r = await this.store.getRun(runId);
    if (!r) throw new BatonError('BATON_RUN_NOT_FOUND', { runId });
    return { ...r, input: this.decode(r.input), output: this.decode(r.output) };
  }

  async listRuns(filter?: RunFilter): Promise<RunRecord[]> {
    // A status that does not exist would match nothing: "no runs" for a typo.
    const statuses = Object.values(RunStatus) as string[];
    for (const s of filter?.status ?? []) {
      if (!statuses.includes(s)) throw new BatonError('BATON_USAGE', { detail: `run status must be one of ${statuses.join(', ')}, got "${s}".` });
    }
    return this.store.listRuns(filter);
  }

  /** The run's steps, outputs resolved (one stored apart for its size is read back, as getRun does for the run's). */
  async getSteps(runId: string): Promise<StepRecord[]> {
    await this.getRun(runId);
    return (await this.store.getSteps(runId)).map((s) => (isBlobRef(s.output) ? { ...s, output: this.decode(s.output) } : s));
  }

  async getEvents(runId: string, afterId?: number): Promise<EventRecord[]> {
    await this.getRun(runId);
    return this.store.getEvents(runId, afterId);
  }

  /** Stops dispatching the run's steps; attempts in flight finish and are recorded. */
  async pause(runId: string): Promise<void> {
    const r = await this.getRun(runId);
    const ok = await this.store.setRunStatus(runId, ['running', 'waiting', 'pending'], 'paused', [{ type: EventType.runPaused, at: Date.now() }]);
    if (!ok) throw new BatonError('BATON_RUN_STATE', { runId, status: r.status, action: 'pause it' });
    const rs = this.runs.get(runId);
    if (rs) rs.status = 'paused';
    this.emit('run', { runId, status: 'paused', at: Date.now() });
  }

  async resume(runId: string): Promise<void> {
    const r = await this.getRun(runId);
    const ok = await this.store.setRunStatus(runId, ['paused'], 'running', [{ type: EventType.runResumed, at: Date.now() }]);
    if (!ok) throw new BatonError('BATON_RUN_STATE', { runId, status: r.status, action: 'resume it' });
    const rs = this.runs.get(runId);
    if (rs) rs.status = 'running';
    this.emit('run', { runId, status: 'running', at: Date.now() });
    this.worker?.poke();
  }

  /** Cancels the run, its child runs, and aborts its attempts in flight here. */
  async cancel(runId: string, reason = 'cancelled by request'): Promise<void> {
    const r = await this.getRun(runId);
    const children = (await this.store.getSteps(runId)).filter((s) => s.waitKey?.startsWith('run:')).map((s) => s.waitKey!.slice(4));
    const ok = await this.store.cancelRun(runId, [{ type: EventType.runCancelled, at: Date.now(), data: { reason } }]);
    if (!ok) throw new BatonError('BATON_RUN_STATE', { runId, status: r.status, action: 'cancel it' });
    this.runEnded(r, 'cancelled', Date.now(), { code: 'BATON_CANCELLED', message: reason });
    for (const c of children) await this.cancel(c, `parent run ${runId} cancelled`).catch(() => undefined);
    const rs = this.runs.get(runId);
    if (rs) {
      rs.status = 'cancelled';
      rs.abort.abort(new BatonError('BATON_CANCELLED', { runId }));
      this.runs.delete(runId);
    }
    if (r.parentRunId) {
      await this.store.signal(`run:${runId}`, (st) => withChild(st.index, st.state, { runId, status: 'cancelled', error: { message: reason } }), [
        { type: EventType.stepResumed, at: Date.now(), data: { child_run: runId, status: 'cancelled' } },
      ]);
      this.worker?.poke();
    }
    this.emit('run', { runId, status: 'cancelled', at: Date.now() });
    this.notify(runId);
    // A queued run with the same concurrency key may have been promoted.
    this.worker?.poke();
  }

  /**
   * Takes a failed or cancelled run back to work and returns its record (`running`, or
   * `queued` behind its concurrency key). What did not finish or failed unhandled is re-run,
   * with whatever depends on it; finished steps keep their outputs (see retry.ts). `from`
   * also re-runs that step and everything downstream of it, even if they succeeded. Attempt
   * numbers keep counting; the run's spend so far stays. `by` (who asked) goes into the
   * `run.retried` event. Refused, with nothing changed: BATON_RUN_NOT_FOUND,
   * BATON_RUN_NOT_RETRYABLE, BATON_RETRY_STEP_UNKNOWN.
   */
  async retry(runId: string, opts: { from?: string; by?: string } = {}): Promise<RunResult> {
    const r = await this.getRun(runId);
    if (r.status !== 'failed' && r.status !== 'cancelled') throw notRetryable(runId, r.status);
    if (r.parentRunId) {
      // Its parent's step has moved on (failed, or waits for another child): retrying the parent starts a fresh child.
      throw new BatonError('BATON_RUN_STATE', { runId, status: r.status, action: `retry it on its own: it is a child run of run ${r.parentRunId} (step ${r.parentStepKey}). Retry run ${r.parentRunId} instead; its workflow step starts a fresh child` });
    }
    const wf = await this.registry.get(r.versionId);
    const from = opts.from;
    if (from !== undefined && !wf.steps.has(from)) {
      const steps = wf.order.length > 20 ? `${wf.order.slice(0, 20).join(', ')}, …` : wf.order.join(', ');
      throw new BatonError('BATON_RETRY_STEP_UNKNOWN', { runId, workflow: r.workflow, step: from, suggestion: suggest(from, wf.order), steps });
    }
    const rows = await this.store.getSteps(runId);
    const plan = planRetry(wf, rows, from);
    const at = Date.now();
    const res = await this.store.retryRun({
      runId, from: ['failed', 'cancelled'], finishedAt: r.finishedAt, reset: plan.reset, deleteChildrenOf: plan.deleteChildrenOf, at,
      events: [{ type: EventType.runRetried, at, data: { from: from ?? null, previous: r.status, steps: plan.steps, items: plan.items, by: opts.by ?? null, attempts: Object.fromEntries(plan.reset.map((s) => [s.key, s.attempt])) } }],
    });
    if (!res.ok) {
      // Someone else retried (or otherwise moved) it between our read and our write.
      const now = await this.getRun(runId);
      throw notRetryable(runId, now.status, ' It changed while this retry was being planned; look at it again.');
    }
    // Nothing cached about its earlier life may stand in for the store's new truth (work of the
    // new life would drop it anyway, loadRun with its life: this frees it now). A view of the
    // new life may already be cached (this worker claimed its steps as the retry committed):
    // that one stays, or its steps would split across two views.
    const cached = this.runs.get(runId);
    if (cached && cached.retries <= r.retries) this.runs.delete(runId);
    this.emit('run', { runId, status: res.status!, at });
    // A child run of a re-run workflow step may still be going (its parent failed elsewhere):
    // it is cancelled, so that its end cannot wake the step that now waits for a fresh child.
    const reset = new Set(plan.reset.map((st) => st.key));
    for (const row of rows) {
      const st = row.state as { childRunId?: unknown; resume?: { childRunId?: unknown } } | undefined;
      const child = row.index === undefined ? st?.childRunId : st?.resume?.childRunId;
      if (!reset.has(row.key) || typeof child !== 'string') continue;
      const c = await this.store.getRun(child);
      if (c && !TERMINAL_RUN_STATES.has(c.status)) await this.cancel(child, `parent run ${runId} retried`).catch((e) => this.onInternalError(e, `cancel child ${child}`));
    }
    if (!plan.reset.some((st) => st.status !== 'pending')) {
      // Every step had finished (the output expression failed, or a cancel came after the last
      // step; unsent error handlers wait as before): no step will end the run, so its end is
      // evaluated again now.
      const rs = await this.loadRun(runId, r.retries + 1);
      if (rs) await this.finishRun(rs);
    }
    this.worker?.poke();
    return this.getRun(runId);
  }

  /**
   * Replays a finished run (see replay.ts): a new run `replay_…` (marked `replay_of`, in the same
   * namespace) of `version` (default: the run's own) with the recorded input, where recorded
   * outputs stand in for models, HTTP calls, tasks, waits, child runs and emitted events, and
   * the new version's own logic (transforms, `when`, routes, output) is evaluated. Returns the
   * step-by-step comparison. The replay runs in this process (it needs a worker here).
   * Refused, with nothing stored: BATON_RUN_NOT_FOUND, BATON_RUN_STATE (not finished),
   * BATON_WORKFLOW_NOT_FOUND / BATON_REPLAY_VERSION, BATON_REPLAY_STEP_UNKNOWN. A step whose new
   * input has no recording: BATON_REPLAY_NO_RECORDING (the replay run is kept, failed), unless `live`.
   */
  async replay(runId: string, opts: ReplayOptions = {}): Promise<ReplayReport> {
    if (!this.worker) throw new BatonError('BATON_REPLAY_NO_WORKER', {});
    const stop = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
    const replaying = this.replayRun(runId, { ...opts, signal });
    this.replaying.set(stop, replaying.catch(() => undefined));
    try {
      return await replaying;
    } finally {
      this.replaying.delete(stop);
    }
  }

  private async replayRun(runId: string, opts: ReplayOptions & { signal: AbortSignal }): Promise<ReplayReport> {
    const original = await this.getRun(runId);
    if (!TERMINAL_RUN_STATES.has(original.status)) throw new BatonError('BATON_RUN_STATE', { runId, status: original.status, action: 'replay it (wait for it to end)' });
    const before = await this.registry.get(original.versionId);
    let versionId = original.versionId;
    if (opts.version !== undefined) {
      versionId = await this.registry.resolve(opts.version, original.namespace);
      const workflow = workflowOfVersion(versionId);
      if (workflow !== original.workflow) throw new BatonError('BATON_REPLAY_VERSION', { version: opts.version, workflow, expected: original.workflow });
    }
    const after = await this.registry.get(versionId);
    const from = opts.from;
    if (from !== undefined && !after.steps.has(from)) {
      const steps = after.order.length > 20 ? `${after.order.slice(0, 20).join(', ')}, …` : after.order.join(', ');
      throw new BatonError('BATON_REPLAY_STEP_UNKNOWN', { runId, version: versionId, step: from, suggestion: suggest(from, after.order), steps });
    }
    // Forked: what is not downstream of `from` (in the replayed version) keeps its recorded fate.
    const copied = new Set<string>();
    if (from !== undefined) {
      const downstream = new Set([from]);
      // Document order need not be dependency order: grow until nothing is added.
      for (let grew = true; grew;) {
        grew = false;
        for (const id of after.order) if (!downstream.has(id) && after.steps.get(id)!.deps.some((d) => downstream.has(d))) grew = Boolean(downstream.add(id));
      }
      for (const id of after.order) if (!downstream.has(id)) copied.add(id);
    }
    const decodeRows = (rows: StepRecord[]) => rows.map((r) => ({ ...r, output: this.decode(r.output) }));
    const beforeRows = decodeRows(await this.store.getSteps(runId));
    const source = new ReplaySource(original, before, new Map(beforeRows.map((r) => [r.key, r])), copied, Boolean(opts.live));
    const id = `replay_${newRunId().slice(4)}`;
    this.replays.set(id, source);
    let replayed: RunResult;
    try {
      await this.start(versionId, original.input, { id, namespace: original.namespace, priority: original.priority, replay: { of: runId, from, live: Boolean(opts.live) } });
      replayed = await this.wait(id, { timeoutMs: opts.timeoutMs ?? 300_000, signal: opts.signal });
      if (!TERMINAL_RUN_STATES.has(replayed.status)) {
        // Its recordings live in this call only: a replay run left behind would never end
        // (another worker refuses its steps), so it is cancelled, saying why.
        const stopped = opts.signal.aborted;
        const reason = stopped ? (typeof opts.signal.reason === 'string' ? opts.signal.reason : 'the replay was stopped') : 'replay took too long';
        const cancelled = await this.cancel(id, reason).then(() => true, () => false);
        // Refused: it may have ended meanwhile, and then its report is as good as any.
        if (!cancelled) replayed = await this.getRun(id);
        if (cancelled || !TERMINAL_RUN_STATES.has(replayed.status)) {
          if (stopped) throw new BatonError('BATON_REPLAY_INTERRUPTED', { runId, replayRunId: id, reason });
          throw new BatonError('BATON_RUN_STATE', { runId: id, status: replayed.status, action: `finish the replay within ${opts.timeoutMs ?? 300_000} ms; it was cancelled` });
        }
      }
    } finally {
      this.replays.delete(id);
    }
    const afterRows = decodeRows(await this.store.getSteps(id));
    const missing = afterRows.find((r) => r.error?.code === 'BATON_REPLAY_NO_RECORDING');
    if (missing) throw new BatonError('BATON_REPLAY_NO_RECORDING', { ...(missing.error!.details as Record<string, unknown>), replayRunId: id });
    return buildReport({ original, replay: replayed, before, after, beforeRows, afterRows, sources: source.sources, from, live: Boolean(opts.live) });
  }

  /**
   * Delivers an external event for `event` with correlation `key`: it wakes ONE step waiting for
   * it (the longest waiting), or, when none is, is buffered for a wait that arms later with a
   * `lookback` covering its arrival (kept at most EVENT_RETENTION_MS). With `eventId`, a second
   * delivery of the same id for the same key and namespace changes nothing (`duplicate`); the
   * same id sent to another namespace is another event. It reaches runs of
   * every namespace; with `namespace`, only runs of that one (waiting now, or arming later), as
   * an `emit` step's event reaches only its own run's namespace.
   */
  async sendEvent(event: string, key: unknown, payload: unknown, opts: { eventId?: string; namespace?: string } = {}): Promise<EventDeliveryResult> {
    const at = Date.now();
    const signal = { payload: payload ?? null, at };
    const r = await this.store.deliverEvent({
      waitKey: eventWaitKey(event, key),
      namespace: opts.namespace === undefined ? undefined : checkNamespace(opts.namespace),
      eventId: opts.eventId,
      payload: payload ?? null,
      at,
      expiresAt: at + EVENT_RETENTION_MS,
      state: (st) => withSignal(st, signal),
      events: [{ type: EventType.signalReceived, at, data: { event, key, payload, ...(opts.eventId ? { event_id: opts.eventId } : {}) } }],
    });
    if (r.woken) this.worker?.poke();
    return { delivered: r.woken ? 1 : 0, buffered: r.buffered, ...(r.duplicate ? { duplicate: true } : {}) };
  }

  /**
   * Sends a signal to one run: wakes its steps that wait for event `event` (whatever their
   * correlation key), and no other run's. A finished run is refused (BATON_RUN_STATE) and so is
   * a run with no step waiting for it (BATON_SIGNAL_NO_TARGET, naming what it does wait for):
   * unlike `sendEvent`, a signal to a run is not buffered, since the caller addressed a run that
   * is there now and should hear at once that it was not waiting.
   */
  async signalRun(runId: string, event: string, payload: unknown): Promise<{ run_id: string; woken: string[] }> {
    const run = await this.store.getRun(runId);
    if (!run) throw new BatonError('BATON_RUN_NOT_FOUND', { runId });
    if (TERMINAL_RUN_STATES.has(run.status)) throw new BatonError('BATON_RUN_STATE', { runId, status: run.status, action: `send it the signal "${event}"` });
    const waiting = (await this.store.getSteps(runId)).filter((s) => s.status === 'waiting' && s.waitKey !== undefined);
    const targets = waiting.filter((s) => s.waitKey!.startsWith(`event:${event}:`));
    if (targets.length === 0) {
      const events = [...new Set(waiting.map((s) => s.waitKey!).filter((k) => k.startsWith('event:')).map((k) => k.split(':')[1]))];
      throw new BatonError('BATON_SIGNAL_NO_TARGET', { what: `event "${event}" in run ${runId} (${events.length ? `it waits for: ${events.join(', ')}` : `it is ${run.status} with no step waiting for an event`})` });
    }
    const at = Date.now();
    const signal = { payload: payload ?? null, at };
    const woken: string[] = [];
    for (const waitKey of new Set(targets.map((s) => s.waitKey!))) {
      const r = await this.store.signal(waitKey, (st) => withSignal(st, signal), [{ type: EventType.signalReceived, at, data: { event, run_id: runId, payload: payload ?? null } }], runId);
      woken.push(...r.map((w) => w.key));
    }
    if (woken.length === 0) throw new BatonError('BATON_SIGNAL_NO_TARGET', { what: `event "${event}" in run ${runId} (its waiting step moved on meanwhile)` });
    this.worker?.poke();
    return { run_id: runId, woken };
  }

  /**
   * Publishes a CloudEvent: starts every workflow whose latest version has a matching
   * `cloudevent` trigger (only those of `namespace` and the default one, when given), each with a
   * run id derived from the workflow and the event's source and id (or the trigger's `run_id`),
   * and for a default-namespace workflow the namespace it runs in (runIdScope), so publishing the
   * same event again starts nothing new; and, when the event has a `subject`,
   * delivers it to waits for `event: <type>` with `key` = the subject (buffered if none waits):
   * with `namespace`, only to runs of that namespace (an emit's event stays in its team).
   */
  async publish(e: TriggerEvent, opts: { namespace?: string; traceparent?: string } = {}): Promise<PublishResult> {
    const ns = opts.namespace === undefined ? undefined : checkNamespace(opts.namespace);
    const listening = (await this.registry.listening())
      .filter((l): l is Listening<CloudEventTrigger> => l.trigger.kind === 'cloudevent')
      .filter((l) => cloudEventMatches(l.trigger, e) && (ns === undefined || l.namespace === ns || l.namespace === DEFAULT_NAMESPACE));
    const runs: PublishResult['runs'] = [];
    const failed: PublishResult['failed'] = [];
    const hops = eventHops(e);
    for (const l of listening) {
      try {
        // An event that went round too often (a sink or a relay feeding it back) starts nothing;
        // emit steps refuse to pass one on beyond the limit themselves.
        if (hops > MAX_EVENT_HOPS) throw new BatonError('BATON_EVENT_HOP_LIMIT', { hops, limit: MAX_EVENT_HOPS, type: e.type, where: `starting ${l.workflow}` }, { retryable: false });
        const namespace = l.namespace !== DEFAULT_NAMESPACE ? l.namespace : ns ?? DEFAULT_NAMESPACE;
        const { input, id } = await triggerRun(l, { event: e, data: e.data ?? null }, e.data ?? {}, derivedRunId('ce', l.workflow, e.source, e.id, ...runIdScope(l, namespace)), namespace);
        const traceparent = typeof e.traceparent === 'string' ? e.traceparent : opts.traceparent;
        runs.push({ runId: await this.start(l.versionId, input, { id, namespace, traceparent, eventHops: hops }), workflow: l.workflow });
      } catch (err) {
        // One workflow refusing the event (its input schema, its expressions) does not stop the others.
        if (!(err instanceof BatonError) || err.retryable) throw err;
        failed.push({ workflow: l.workflow, error: serializeError(err) });
      }
    }
    let delivery: EventDeliveryResult = { delivered: 0, buffered: false };
    if (e.subject !== undefined && e.subject !== '') delivery = await this.sendEvent(e.type, e.subject, e.data ?? null, { eventId: `${e.source}#${e.id}`, namespace: ns });
    return { runs, failed, ...delivery };
  }

  /**
   * Dispatches CloudEvents recorded by emit steps' commits, then marks them dispatched. Never
   * throws: an event that could not be dispatched stays pending for the next sweep. Workflows
   * that refused it are recorded in the emitting run's history (`event.undelivered`).
   */
  private async dispatch(rows: Array<{ id: string; runId: string; namespace: string; event: unknown }>): Promise<void> {
    for (const row of rows) {
      try {
        const r = await this.publish(row.event as TriggerEvent, { namespace: row.namespace });
        if (r.failed.length) {
          await this.store.appendEvents(row.runId, [{ type: EventType.eventUndelivered, at: Date.now(), data: { id: row.id, failed: r.failed } }]);
        }
        await this.store.markDispatched(row.id, Date.now());
      } catch (e) {
        this.onInternalError(e, `dispatching event ${row.id}`);
      }
    }
  }

  private retentionAt = 0;
  private retention?: BatonOptions['retention'];

  /** Retention on the worker's sweep, at most every `everyMs`, by one worker of the cluster at a time. */
  private async applyRetention(): Promise<void> {
    const r = this.retention;
    if (!r || this.closed) return;
    const now = Date.now();
    if (now < this.retentionAt) return;
    this.retentionAt = now + (r.everyMs ?? 3_600_000);
    if (!(await this.store.acquireSlot('baton:retention', 1, this.workerId, now, now + 10 * 60_000))) return;
    try {
      await purgeExpired(this, { defaultPolicy: r.policy, archiveDir: r.archiveDir });
    } finally {
      await this.store.releaseSlot('baton:retention', this.workerId);
    }
  }

  private async sweepOutbox(before: number): Promise<void> {
    if (this.closed) return;
    const rows = await this.store.pendingOutbox(before, 100);
    if (rows.length) await this.dispatch(rows);
  }

  /**
   * Stops the worker (attempts in flight may finish within `graceMs`; whatever it still holds
   * is given back for another worker) and closes the store.
   */
  async close(opts: { graceMs?: number } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A replay's recordings are in this process only: its run is cancelled, saying why.
    for (const stop of this.replaying.keys()) stop.abort('the process driving the replay closed its engine');
    if (this.replaying.size) this.wakeWaiters(); // the replays' waits look at their signal now
    await Promise.all(this.replaying.values());
    await this.scheduler.stop();
    await this.tasks.close();
    await this.approvals.close();
    await this.worker?.stop(opts.graceMs);
    // Ends this process gathered for anchoring (those of attempts that finished during the
    // stop included) are anchored before it goes.
    this.anchoringStopped = true;
    if (this.anchorTimer) {
      clearTimeout(this.anchorTimer);
      this.anchorTimer = undefined;
      await this.anchorGathered();
    }
    await this.models?.close();
    await this.telemetry?.close().catch((e) => this.onInternalError(e, 'telemetry shutdown'));
    await this.store.close();
  }

  // ------------------------------------------------------------------ governance

  /**
   * Promotes a version (a version id, or `name@stage`) to `stage` of its workflow, recording who
   * and why. Rollback is promoting an older version. BATON_WORKFLOW_NOT_FOUND, BATON_USAGE.
   */
  async promote(ref: string, stage: string, opts: { by?: string; reason?: string; namespace?: string } = {}): Promise<StageRecord> {
    if (!(STAGES as readonly string[]).includes(stage)) throw new BatonError('BATON_USAGE', { detail: `stage must be one of ${STAGES.join(', ')}, got "${stage}".` });
    if (stage === 'draft') throw new BatonError('BATON_USAGE', { detail: 'every registered version is a draft already; promote to staging or production.' });
    const versionId = await this.registry.resolve(ref, checkNamespace(opts.namespace));
    const rec = await this.store.getVersion(versionId);
    if (!rec) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref });
    return this.store.promoteVersion({ name: rec.name, stage, versionId, by: opts.by, reason: opts.reason, at: Date.now() });
  }

  /** Every version of a workflow with the stages it holds now, oldest first. */
  async versions(name: string): Promise<Array<VersionRecord & { stages: string[] }>> {
    const list = await this.store.listVersions(name);
    const holding = new Map<string, string[]>();
    for (const st of STAGES.slice(1)) {
      const r = await this.store.stageVersion(name, st);
      if (r) holding.set(r.versionId, [...(holding.get(r.versionId) ?? []), st]);
    }
    return list.map((v) => ({ ...v, stages: holding.get(v.versionId) ?? ['draft'] }));
  }

  stageHistory(name: string): Promise<StageRecord[]> {
    return this.store.stageHistory(name);
  }

  /**
   * What changed from version `a` to `b` (version ids or `name@stage`): steps added, removed
   * and changed field by field, prompt texts line by line, and the services their newest runs
   * were pinned to (the current configuration for a version without runs).
   */
  async diff(a: string, b: string, opts: { namespace?: string } = {}): Promise<WorkflowDiff & { a: string; b: string; services: ServiceChange[] }> {
    const ns = checkNamespace(opts.namespace);
    const [va, vb] = [await this.registry.resolve(a, ns), await this.registry.resolve(b, ns)];
    const [ra, rb] = [(await this.store.getVersion(va))!, (await this.store.getVersion(vb))!];
    const d = diffWorkflows(JSON.parse(ra.document), JSON.parse(rb.document));
    const pinned = async (v: string) => {
      const hash = await this.store.lastRunConfig(v);
      const snap = hash ? await this.pinnedServices(hash) : undefined;
      if (snap) return snap;
      const wf = await this.registry.get(v);
      return snapshotOf(servicesOf(wf).map((n) => this.models?.config(n)).filter((c): c is ServiceConfig => c !== undefined)).services;
    };
    return { a: va, b: vb, ...d, services: diffServices(await pinned(va), await pinned(vb)) };
  }

  /**
   * Records a governance status change of a configured service (who and why); it overrides the
   * config file's status from now on, in every process using this store.
   */
  async setServiceStatus(service: string, status: string, opts: { reason?: string; by?: string } = {}): Promise<ServiceStatusRecord> {
    if (!this.models?.config(service)) throw new BatonError('BATON_SERVICE_UNKNOWN', { service, known: this.models?.list().map((c) => c.name).join(', ') || '(none)' });
    if (!(SERVICE_STATUSES as readonly string[]).includes(status)) throw new BatonError('BATON_USAGE', { detail: `status must be one of ${SERVICE_STATUSES.join(', ')}, got "${status}".` });
    if (status !== 'approved' && !opts.reason?.trim()) throw new BatonError('BATON_USAGE', { detail: `give a reason when a service is ${status} (--reason, or "reason" in the body): it is shown to everyone whose workflow uses "${service}".` });
    const rec = await this.store.putServiceStatus({ service, status: status as ServiceStatusRecord['status'], reason: opts.reason?.trim() || undefined, by: opts.by, at: Date.now() });
    await this.refreshGovernance(true);
    return rec;
  }

  /** Configured services with the status in force and where it comes from. */
  async serviceList(): Promise<Array<ServiceConfig & { statusSource: 'config' | 'recorded' }>> {
    await this.refreshGovernance(true);
    return (this.models?.list() ?? []).map((c) => ({ ...c, statusSource: c.statusAt !== undefined ? 'recorded' : 'config' }));
  }

  serviceHistory(service?: string): Promise<ServiceStatusRecord[]> {
    return this.store.serviceStatusHistory(service);
  }

  /** Runs that called `service` (of `version`), newest first: what a model recall must look at. */
  lineage(q: LineageQuery): Promise<LineageRecord[]> {
    if (!q.service) throw new BatonError('BATON_USAGE', { detail: 'lineage needs a service name.' });
    return this.store.lineage(q);
  }

  /** The pinned snapshot of a run (by its config hash). */
  async pinnedServices(hash: string): Promise<Record<string, PinnedService> | undefined> {
    const hit = this.pinCache.get(hash);
    if (hit) return hit;
    const json = await this.store.getServiceConfig(hash);
    if (json === undefined) return undefined;
    const snap = parseSnapshot(json);
    this.pinCache.set(hash, snap);
    return snap;
  }

  /** Reloads recorded status changes (at most once a second unless forced). */
  private async refreshGovernance(force = false): Promise<void> {
    if (!this.models || (!force && Date.now() - this.governanceAt < 1000)) return;
    if (this.governanceLoading && !force) return this.governanceLoading;
    const load = (async () => {
      const at = Date.now();
      this.models!.setStatusOverrides(latestStatuses(await this.store.serviceStatusHistory()));
      this.governanceAt = at;
    })();
    this.governanceLoading = load.finally(() => (this.governanceLoading = undefined));
    return load;
  }

  /** A new run is refused when a service its model steps use is blocked (since it was registered). */
  private async checkNotBlocked(wf: CompiledWorkflow): Promise<void> {
    if (!this.models) return;
    await this.refreshGovernance();
    for (const n of servicesOf(wf)) {
      const c = this.models.config(n);
      if (c?.status === 'blocked') throw new BatonError('BATON_SERVICE_BLOCKED', { service: n, reason: blockedWhy(c) });
    }
  }

  /** Stores (once per process) and returns the hash of the services snapshot a run of `versionId` is pinned to. */
  private async pinConfig(versionId: string, wf: CompiledWorkflow): Promise<string | undefined> {
    let snap = this.snapshots.get(versionId);
    if (snap === undefined) {
      const configs = servicesOf(wf).map((n) => this.models?.config(n)).filter((c): c is ServiceConfig => c !== undefined);
      snap = configs.length ? snapshotOf(configs) : null;
      this.snapshots.set(versionId, snap);
    }
    if (!snap) return undefined;
    if (!this.storedSnapshots.has(snap.hash)) {
      await this.store.putServiceConfig(snap.hash, snap.json, Date.now());
      this.storedSnapshots.add(snap.hash);
    }
    return snap.hash;
  }

  // ------------------------------------------------------------------ internals

  private scheduleControl(): ScheduleControl {
    const get = async (id: string) => {
      const row = await this.store.getSchedule(id);
      if (!row) throw new BatonError('BATON_SCHEDULE_NOT_FOUND', { id });
      return row;
    };
    return {
      list: async (filter = {}) => {
        const rows = await this.store.listSchedules();
        return filter.namespaces && !filter.namespaces.includes('*') ? rows.filter((r) => filter.namespaces!.includes(r.namespace)) : rows;
      },
      get,
      pause: async (id) => {
        await get(id);
        await this.store.updateSchedule(id, { paused: true }, Date.now());
        return get(id);
      },
      resume: async (id) => {
        const row = await get(id);
        // Resuming one that is not paused changes nothing (a due fire is not skipped).
        if (!row.paused) return row;
        await this.store.updateSchedule(id, { paused: false, nextFireAt: this.scheduler.nextAfterNow(row) ?? null }, Date.now());
        this.scheduler.poke();
        return get(id);
      },
      trigger: async (id) => this.scheduler.fireNow(await get(id)),
      tick: () => this.scheduler.tick(),
    };
  }

  private async runWork(w: Work) {
    const rs = await this.loadRun(w.runId, w.retries);
    // Work of an earlier life (claimed, or made ready, before a retry): the retry took its step
    // back, so its commit would fail its fence; it is dropped rather than run for nothing.
    if (!rs || TERMINAL_RUN_STATES.has(rs.status) || (w.retries !== undefined && rs.retries > w.retries)) return { ready: [], later: [], poke: false };
    if (rs.status === 'paused') {
      // Paused as this process last saw it; another process may have resumed it since (the
      // store handed out this claim), so the store has the say before the claim goes back.
      const now = (await this.store.getRun(w.runId))?.status;
      if (now === 'paused' || now === undefined) {
        await this.store.releaseClaims(this.workerId, [{ runId: w.runId, key: w.key }]);
        return { ready: [], later: [], poke: false };
      }
      rs.status = now;
      if (TERMINAL_RUN_STATES.has(now)) return { ready: [], later: [], poke: false };
    }
    // Claims skip queued runs: a claimed step means another run's end promoted this one.
    if (rs.status === 'queued') rs.status = 'running';
    let res: Awaited<ReturnType<typeof executeAttempt>>;
    try {
      res = await executeAttempt(this.host, rs, w);
    } catch (e) {
      // Not the step's fault (store busy, a bug): report it, give the claim back after a pause
      // so that this or another worker tries again, rather than holding it forever.
      this.onInternalError(e, `step ${w.runId}/${w.key}`);
      // The release is a write too: while the store refuses writes (a full disk) it fails as
      // well, and must be tried again, or this live worker would hold the step until restart.
      const release = (delayMs: number) => {
        const t = setTimeout(() => {
          if (this.closed) return;
          this.store.releaseClaims(this.workerId, [{ runId: w.runId, key: w.key }]).then(
            () => this.worker?.poke(),
            (e2) => {
              this.onInternalError(e2, 'release');
              release(Math.min(delayMs * 2, 30_000));
            },
          );
        }, delayMs);
        t.unref();
      };
      release(1000);
      return { ready: [], later: [], poke: false };
    }
    if (res.runIdle) await this.finishRun(rs);
    else if (TERMINAL_RUN_STATES.has(rs.status) && this.runs.get(rs.id) === rs) {
      // The attempt ended the run (a failure): waiters read the final record from the store.
      // (Only this view's end: a view of a later life cached since is not this one's to drop.)
      this.runs.delete(rs.id);
      this.runEnded(rs, rs.status, Date.now());
      this.emit('run', { runId: rs.id, status: rs.status, at: Date.now() });
      this.notify(rs.id);
    }
    return { ready: [...res.ready, ...res.childReady], later: res.later, poke: res.poke };
  }

  /**
   * The run's view in this process, cached: steps of one run share one view, or each would miss
   * the outputs recorded through the other. `life` (the work's `retries`): a view of an earlier
   * life is stale (its outputs and failures are from before a retry, which may have happened
   * elsewhere), so it is dropped and the run read again; a view of a later life is returned as
   * it is, for the caller to see that its work is outdated.
   */
  private async loadRun(runId: string, life?: number): Promise<RunState | undefined> {
    const stale = (rs: RunState | undefined) => rs !== undefined && life !== undefined && rs.retries < life;
    const hit = this.runs.get(runId);
    if (hit && !stale(hit)) return hit;
    if (hit) this.runs.delete(runId);
    // Steps of one run claimed together (after a restart, a retry) load it once.
    const read = () => {
      let loading = this.loading.get(runId);
      if (!loading) {
        loading = this.readRun(runId).finally(() => this.loading.delete(runId));
        this.loading.set(runId, loading);
      }
      return loading;
    };
    const rs = await read();
    if (!stale(rs)) return rs;
    // A read begun before the retry (or half before it: the run, then its steps): once more.
    if (this.runs.get(runId) === rs) this.runs.delete(runId);
    return read();
  }

  private async readRun(runId: string): Promise<RunState | undefined> {
    const r = await this.store.getRun(runId);
    if (!r || TERMINAL_RUN_STATES.has(r.status)) return undefined;
    const wf = await this.registry.get(r.versionId);
    const rs = new RunState(r, wf, unseal(this.decode(r.input)));
    await this.refresh(rs);
    const other = this.runs.get(runId);
    // A view of the same or a later life cached meanwhile stands: one view a life.
    if (other && other.retries >= rs.retries) return other;
    this.runs.set(runId, rs);
    return rs;
  }

  /** Reloads the recorded state of every top-level step of the run. */
  private async refresh(rs: RunState): Promise<void> {
    for (const st of await this.store.getSteps(rs.id)) {
      if (st.parentKey !== undefined) continue;
      if (st.status === 'succeeded' || st.status === 'failed' || st.status === 'skipped') rs.record(st.stepId, st.status, unseal(this.decode(st.output)), st.error);
    }
  }

  /** Ends a run that has no active step left: evaluates its output and records the end. */
  private async finishRun(rs: RunState): Promise<void> {
    const wf = rs.workflow;
    // Steps run by other processes are not in memory: reload if the output needs one that is
    // missing. A view read from the store also misses what ended elsewhere after the read (a
    // step woken and run by another worker while one of this process's ran here); a missing
    // step costs one read of the run's steps.
    const needed = wf.output ? [...wf.output.stepRefs] : wf.sinks;
    if (needed.some((s) => rs.steps[s] === undefined)) await this.refresh(rs);
    const fin = await this.prepareFinish(rs);
    this.afterFinish(rs, fin, await this.store.finishRun(fin.record));
  }

  /**
   * Computes a run's end (output, events, the parent to wake) from what is in memory, with
   * `last` standing in for a step whose commit is about to be written. The executor uses it
   * to end the run in the same transaction as its last step when it can tell that step is last.
   */
  private async prepareFinish(rs: RunState, last?: { stepId: string; output: unknown }): Promise<PreparedFinish> {
    const wf = rs.workflow;
    const steps = last ? { ...rs.steps, [last.stepId]: { status: 'succeeded' as const, output: last.output } } : rs.steps;
    let status: 'completed' | 'failed' = 'completed';
    let output: unknown;
    let error: SerializedError | undefined;
    try {
      // Default output: the final steps' outputs by id (just the value when there is one).
      const sinks = wf.sinks.filter((s) => !wf.steps.get(s)!.isHandler || steps[s] !== undefined);
      if (wf.output) output = await wf.output.evaluate(last ? { ...rs.scope, steps } : rs.scope, 'workflow output');
      else if (sinks.length === 1) output = steps[sinks[0]]?.output;
      else output = Object.fromEntries(sinks.map((s) => [s, steps[s]?.output ?? null]));
    } catch (e) {
      status = 'failed';
      error = serializeError(e);
    }
    const now = Date.now();
    const stored = this.isSensitive(wf) ? sealRunOutput(wf.doc, output ?? null, this.sensitiveSteps(wf)) : output;
    const outputJson = encodeValue(stored ?? null, this.blobs, this.inlineLimit(wf));
    const record: FinishRun = {
      runId: rs.id,
      status,
      outputJson,
      error,
      events: [status === 'completed'
        ? { type: EventType.runCompleted, at: now, dataJson: `{"duration_ms":${now - rs.createdAt}}` }
        : { type: EventType.runFailed, at: now, data: { error } }],
      parent: rs.parentRunId
        ? {
            runId: rs.parentRunId,
            key: rs.parentStepKey!,
            // As stored: sealed sensitive fields stay sealed in the parent's step state (its step unseals them in memory).
            state: await childEndState(this.store, rs, { runId: rs.id, status, output: stored ?? null, error }),
            events: [{ type: EventType.stepResumed, stepKey: rs.parentStepKey, at: now, data: { child_run: rs.id, status } }],
          }
        : undefined,
    };
    return { record, output, at: now };
  }

  /** Bookkeeping once a run's end is recorded (or found already recorded elsewhere: `ok` false). */
  private afterFinish(rs: RunState, fin: PreparedFinish, ok: boolean): void {
    const { status, error } = fin.record;
    rs.status = status;
    this.runs.delete(rs.id);
    if (!ok) {
      this.notify(rs.id);
      return;
    }
    this.emit('run', { runId: rs.id, status, at: fin.at, error });
    this.runEnded(rs, status, fin.at, error);
    // A parent woken, or a queued run with the same concurrency key promoted: claimable now.
    if (rs.parentRunId || rs.concurrencyKey) this.worker?.poke();
    // A run that called models has its cost in the store (other workers may have added to it).
    if (rs.workflow.callsModels) return this.notify(rs.id);
    this.notify(rs.id, {
      id: rs.id, versionId: rs.versionId, workflow: workflowOfVersion(rs.versionId), status, input: rs.input, output: status === 'completed' ? fin.output ?? null : undefined, error,
      parentRunId: rs.parentRunId, parentStepKey: rs.parentStepKey, createdAt: rs.createdAt, updatedAt: fin.at, finishedAt: fin.at, cost: 0,
      namespace: rs.namespace, priority: rs.priority, concurrencyKey: rs.concurrencyKey, retries: rs.retries,
    });
  }

  private async finishIdleRuns(): Promise<void> {
    // Whatever emitted events a dead process left undispatched (dispatching twice is harmless).
    await this.sweepOutbox(Date.now());
    for (const id of await this.store.idleRuns(1000)) {
      const rs = await this.loadRun(id);
      if (rs) await this.finishRun(rs);
    }
  }

  /** A run's end was recorded by this process: counted, and its run span emitted (tracing on). */
  private runEnded(run: { id: string; versionId: string; createdAt: number; trace?: string }, status: RunStatus, at: number, error?: Pick<SerializedError, 'code' | 'message'>): void {
    this.anchorSoon();
    const workflow = workflowOfVersion(run.versionId);
    this.metrics?.runFinished(workflow, status);
    this.telemetry?.endRun(run.trace, `baton.run ${workflow}`, run.createdAt, at, { 'baton.run_id': run.id, 'baton.workflow': workflow, 'baton.version_id': run.versionId, 'baton.run.status': status }, status === 'completed' ? undefined : error ?? { code: status });
  }

  private anchorTimer: NodeJS.Timeout | undefined;
  private anchoringStopped = false;

  /**
   * Stores that anchor run ends in batches (PostgreSQL: one lock on the anchor head per batch,
   * not per commit) get this process's ends anchored within a second, gathered; the workers'
   * sweep (every lease/3) stays the safety net for ends of processes that died first. Until a
   * run is anchored, a cut of its history's tail is not detectable, so the window is kept short.
   */
  private anchorSoon(): void {
    if (!this.store.anchorPending || this.anchorTimer || this.anchoringStopped) return;
    this.anchorTimer = setTimeout(() => {
      this.anchorTimer = undefined;
      void this.anchorGathered();
    }, ANCHOR_DELAY_MS);
    this.anchorTimer.unref();
  }

  private anchorGathered(): Promise<void> {
    return Promise.resolve(this.store.anchorPending?.()).then(() => undefined, (e) => this.onInternalError(e, 'audit anchoring'));
  }

  /**
   * Wakes every wait() of this process to look again: one whose `signal` was aborted (the
   * gateway closing) then returns the run as it is; the others wait on.
   */
  wakeWaiters(): void {
    for (const runId of [...this.waiters.keys()]) this.notify(runId);
  }

  private notify(runId: string, final?: RunResult): void {
    const list = this.waiters.get(runId);
    if (!list) return;
    this.waiters.delete(runId);
    for (const f of list) f(final);
  }

  private async newRun(versionId: string, input: unknown, o: { id: string; parentRunId?: string; parentStepKey?: string; budget?: number; namespace?: string; traceparent?: string; parentSpan?: { traceId: string; spanId: string; sampled: boolean } }): Promise<NewRun> {
    const wf = await this.registry.get(versionId);
    const now = Date.now();
    const steps: NewStep[] = wf.order.map((id) => {
      const s = wf.steps.get(id)!;
      // An error handler waits on a count nothing decrements: only a route schedules it.
      if (s.isHandler) return { key: id, stepId: id, status: 'pending', pendingDeps: 1 };
      if (s.deps.length === 0) return { key: id, stepId: id, status: 'scheduled', pendingDeps: 0, owner: this.worker ? this.workerId : undefined, dueAt: now };
      return { key: id, stepId: id, status: 'pending', pendingDeps: s.deps.length };
    });
    // Sensitive fields are sealed before anything is stored; a run that needs the key and has none is refused here.
    if (this.isSensitive(wf)) checkKeyFor(wf.doc, this.sensitiveSteps(wf));
    const sealed = this.isSensitive(wf) ? sealInput(wf.doc, input ?? null, this.sensitiveSteps(wf)) : input;
    const inputJson = encodeValue(sealed ?? null, this.blobs, this.inlineLimit(wf)) ?? 'null';
    const configHash = wf.callsModels ? await this.pinConfig(versionId, wf) : undefined;
    return {
      configHash,
      id: o.id, versionId, workflow: workflowOfVersion(versionId), inputJson, parentRunId: o.parentRunId, parentStepKey: o.parentStepKey, createdAt: now, steps,
      budget: o.budget ?? wf.doc.budget?.max_cost,
      namespace: o.namespace,
      // Tracing on: the run span's ids, chosen now and stored with the run (see telemetry.ts).
      trace: this.telemetry?.newRunTrace(o.parentSpan ?? parseTraceparent(o.traceparent)),
      events: [{ type: EventType.runCreated, at: now, dataJson: `{"version":${JSON.stringify(versionId)},"input":${inputJson}${o.parentRunId ? `,"parent_run":${JSON.stringify(o.parentRunId)}` : ''}}` }],
    };
  }

  /**
   * The blob store is a folder on this machine; workers of a PostgreSQL cluster may be on other
   * machines, so there every value stays in its row (PostgreSQL stores large text out of line).
   */
  private inlineLimit(wf: CompiledWorkflow): number {
    return this.store.kind === 'postgres' ? Infinity : wf.inlineOutputBytes;
  }

  private readonly sensitiveStepsOf = new WeakMap<CompiledWorkflow, string[]>();

  /** Model steps whose services mark their outputs sensitive (`sensitive_output: true`). */
  private sensitiveSteps(wf: CompiledWorkflow): string[] {
    let ids = this.sensitiveStepsOf.get(wf);
    if (!ids) {
      ids = [];
      for (const s of wf.doc.steps as Array<{ id: string; kind: string; service?: string; fallback?: string[] }>) {
        if (s.kind !== 'model' || !this.models) continue;
        if ([s.service, ...(s.fallback ?? [])].some((n) => n !== undefined && this.models!.config(n)?.sensitiveOutput)) ids.push(s.id);
      }
      this.sensitiveStepsOf.set(wf, ids);
    }
    return ids;
  }

  private isSensitive(wf: CompiledWorkflow): boolean {
    return sensitiveSpec(wf.doc, this.sensitiveSteps(wf)) !== undefined;
  }

  private decode(v: unknown): unknown {
    if (isBlobRef(v)) return decodeValue(JSON.stringify(v), this.blobs);
    return v;
  }
}

/** Why the store folder `dir` cannot be one (a file is in the way), or undefined (a missing folder is made). */
function fileInTheWay(dir: string): string | undefined {
  try {
    return statSync(dir).isDirectory() ? undefined : `${dir} is a file`;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOTDIR' ? `a part of ${dir} is a file` : undefined;
  }
}

function isParsedPolicies(p: BatonOptions['policies']): p is readonly Policy[] {
  return Array.isArray(p) && p.every((x) => x && typeof x === 'object' && typeof (x as Policy).require === 'object' && 'downstreamKind' in (x as Policy).require);
}

function notRetryable(runId: string, status: RunStatus, extra = ''): BatonError {
  const hint = extra || (status === 'completed'
    ? ' A completed run is final; start a new run instead.'
    : status === 'paused'
      ? ' Let it continue with `baton runs unpause` (POST /runs/{id}/resume) instead.'
      : ' Wait for it to end, or cancel it first.');
  return new BatonError('BATON_RUN_NOT_RETRYABLE', { runId, status, hint });
}

/**
 * A run id a caller chooses: it appears in URLs (`/runs/{id}`, the `location` header), so it is
 * URL-safe as it is and cannot be a path segment like `..`.
 */
export const RUN_ID_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.:~-]{0,199}$';
const RUN_ID = new RegExp(RUN_ID_PATTERN);

function checkRunId(id: unknown): void {
  if (typeof id !== 'string' || !RUN_ID.test(id)) {
    throw new BatonError('BATON_USAGE', { detail: `a run id must be 1-200 letters, digits, '_', '-', '.', ':' or '~', starting with a letter, digit or '_'; got ${JSON.stringify(id)?.slice(0, 80)}. Leave it out for a generated one.` });
  }
}

/** Time-ordered, unique run ids: `run_` + ms time (base36) + 48 random bits. */
/** A waiting step's state with the signal that wakes it; a map item keeps its kind's state under `resume` (see executor wrapState). */
function withSignal(st: StepRecord, signal: { payload: unknown; at: number }): unknown {
  return st.index === undefined
    ? { ...(st.state as object), signal }
    : { ...(st.state as object), resume: { ...((st.state as { resume?: object } | undefined)?.resume ?? {}), signal } };
}

export function newRunId(): string {
  // Random bytes are drawn 6 KiB at a time: one crypto call per thousand ids, not per id.
  if (randomPos + 6 > randomPool.length) {
    randomPool = randomBytes(6 * 1024);
    randomPos = 0;
  }
  const hex = randomPool.toString('hex', randomPos, randomPos + 6);
  randomPos += 6;
  return `run_${Date.now().toString(36)}${hex}`;
}
let randomPool = Buffer.alloc(0);
let randomPos = 0;

export { parseKey };
